//! The validated Rust form of `KerniaOptions`, built once at `init()`.
//!
//! Python hands the options over as JSON with Kernia's (snake_case) field names;
//! Rust tests build them the same way, so there is one parser and one set of defaults.

use serde::Deserialize;

use crate::crypto::Signer;

/// The plugins that turn routes on; routes without one are always served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    Anonymous,
    Username,
    MagicLink,
    Passkey,
    EmailOtp,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Database(String),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub database: String,
    pub secret: Option<String>,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default = "default_base_path")]
    pub base_path: String,
    #[serde(default)]
    pub trusted_origins: Vec<String>,
    /// Origins whose pages may call the routes with their cookies (CORS); each is
    /// trusted as well.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Redis for sessions and rate-limit counters: `redis://host:port/db`.
    #[serde(default)]
    pub secondary_storage: Option<String>,
    #[serde(default)]
    pub email_and_password: EmailPasswordOptions,
    #[serde(default)]
    pub session: SessionOptions,
    #[serde(default)]
    pub rate_limit: RateLimitOptions,
    #[serde(default)]
    pub advanced: AdvancedOptions,
    /// Present when the anonymous plugin is on.
    #[serde(default)]
    pub anonymous: Option<AnonymousOptions>,
    /// Present when the username plugin is on.
    #[serde(default)]
    pub username: Option<UsernameOptions>,
    /// Present when the magic-link plugin is on.
    #[serde(default)]
    pub magic_link: Option<MagicLinkOptions>,
    /// Present when the passkey plugin is on.
    #[serde(default)]
    pub passkey: Option<PasskeyOptions>,
    /// Present when the email-OTP plugin is on.
    #[serde(default)]
    pub email_otp: Option<EmailOtpOptions>,
    #[serde(default)]
    pub email_verification: EmailVerificationOptions,
    #[serde(default)]
    pub user: UserOptions,
    #[serde(default)]
    pub account: AccountOptions,
    #[serde(default)]
    pub verification: VerificationOptions,
    /// Prometheus metrics, served at `metrics_path`.
    #[serde(default)]
    pub metrics: bool,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

/// Email verification (Better Auth's `emailVerification`). Whether the app sends
/// the mails is known from its callbacks, not from here.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailVerificationOptions {
    /// Mail a verification link on sign-up; `None`: when `require_email_verification`.
    pub send_on_sign_up: Option<bool>,
    /// Mail a fresh link when an unverified user is refused sign-in.
    pub send_on_sign_in: bool,
    /// Opening a verification link signs its user in.
    pub auto_sign_in_after_verification: bool,
    /// Seconds a verification link stays valid.
    pub expires_in: i64,
}

impl Default for EmailVerificationOptions {
    fn default() -> Self {
        EmailVerificationOptions {
            send_on_sign_up: None,
            send_on_sign_in: false,
            auto_sign_in_after_verification: false,
            expires_in: 3600,
        }
    }
}

/// Better Auth's `user.changeEmail` and `user.deleteUser`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserOptions {
    pub change_email: ChangeEmailOptions,
    pub delete_user: DeleteUserOptions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChangeEmailOptions {
    pub enabled: bool,
    /// An unverified user's email changes at once, without a link.
    pub update_email_without_verification: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeleteUserOptions {
    pub enabled: bool,
    /// Seconds a deletion link stays valid.
    pub delete_token_expires_in: i64,
}

impl Default for DeleteUserOptions {
    fn default() -> Self {
        DeleteUserOptions { enabled: false, delete_token_expires_in: 86_400 }
    }
}

/// Better Auth's `account.accountLinking`, the part that applies without social sign-in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountOptions {
    pub account_linking: AccountLinkingOptions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountLinkingOptions {
    /// `/unlink-account` may remove a user's last account.
    pub allow_unlinking_all: bool,
}

/// How the tokens of password-reset and account-deletion links are kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerificationOptions {
    /// `plain`, or `hashed`: the identifier's SHA-256 (base64url), so a leaked table holds no usable link.
    pub store_identifier: StoreIdentifier,
    /// Keep expired verification rows instead of deleting them as lookups pass.
    pub disable_cleanup: bool,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreIdentifier {
    #[default]
    Plain,
    Hashed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasskeyOptions {
    /// The relying party id; default: the host name of `base_url`.
    pub rp_id: Option<String>,
    /// Shown by authenticators; default "Better Auth" (Better Auth's `appName`).
    pub rp_name: Option<String>,
    /// Origins ceremonies may come from; default: the request's `Origin`.
    #[serde(deserialize_with = "one_or_many")]
    pub origin: Vec<String>,
    /// Merged over `{residentKey: "preferred", userVerification: "preferred"}`.
    pub authenticator_selection: Option<serde_json::Map<String, serde_json::Value>>,
    /// A guest who registers a passkey becomes a registered account in place.
    pub upgrade_anonymous: bool,
}

impl Default for PasskeyOptions {
    fn default() -> Self {
        PasskeyOptions {
            rp_id: None,
            rp_name: None,
            origin: Vec::new(),
            authenticator_selection: None,
            upgrade_anonymous: true,
        }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
        None(()),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
        OneOrMany::None(()) => Vec::new(),
    })
}

/// Which value a username rule checks: the one typed, or the one stored.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum ValidationOrder {
    #[default]
    #[serde(rename = "pre-normalization")]
    PreNormalization,
    #[serde(rename = "post-normalization")]
    PostNormalization,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsernameOptions {
    pub min_username_length: usize,
    pub max_username_length: usize,
    /// `false`: usernames are stored as typed (the default lower-cases them).
    pub normalize: bool,
    pub username_validation_order: ValidationOrder,
    pub display_username_validation_order: ValidationOrder,
}

impl Default for UsernameOptions {
    fn default() -> Self {
        UsernameOptions {
            min_username_length: 3,
            max_username_length: 30,
            normalize: true,
            username_validation_order: ValidationOrder::PreNormalization,
            display_username_validation_order: ValidationOrder::PreNormalization,
        }
    }
}

/// How a magic-link token is kept in the `verification` table.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreToken {
    #[default]
    Plain,
    /// Unpadded base64url of the token's SHA-256: a leaked table holds no usable link.
    Hashed,
    /// The app's own `hash(token)` (Better Auth's and Kernia's `custom-hasher`).
    Custom,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MagicLinkOptions {
    /// Seconds a link stays valid.
    pub expires_in: i64,
    /// Links for unknown emails are refused instead of creating the user.
    pub disable_sign_up: bool,
    pub store_token: StoreToken,
}

impl Default for MagicLinkOptions {
    fn default() -> Self {
        MagicLinkOptions { expires_in: 300, disable_sign_up: false, store_token: StoreToken::Plain }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnonymousOptions {
    /// Guests get `temp-<id>@<domain>`; without it `<id>@anonymous.placeholder.invalid`.
    pub email_domain_name: Option<String>,
    pub disable_delete_anonymous_user: bool,
    /// `false` turns off every way a guest becomes a registered account: the
    /// in-place upgrade endpoints, conversion on sign-in or sign-up, and the
    /// upgrade by passkey registration.
    pub allow_linking: bool,
    /// Seconds a guest session lives; `None`: `session.expires_in`, as for everyone.
    pub expires_in: Option<i64>,
    /// The limit on `/sign-in/anonymous` per client IP; `None` leaves the path to
    /// the global rules.
    pub rate_limit: Option<RateLimitRule>,
    /// Seconds of inactivity after which a guest is stale and cleanup deletes it.
    pub max_age: Option<i64>,
    /// Seconds between runs of the in-process sweeper (run by the Python package);
    /// `None`: no sweeper.
    pub cleanup_interval: Option<f64>,
    /// `/sign-in/anonymous` from a live guest session answers that guest instead of 400.
    pub reuse_existing: bool,
    /// Guest sign-ins answer a `resumeToken` too, for `/anonymous/resume`.
    pub resume: bool,
}

impl Default for AnonymousOptions {
    fn default() -> Self {
        AnonymousOptions {
            email_domain_name: None,
            disable_delete_anonymous_user: false,
            allow_linking: true,
            expires_in: None,
            rate_limit: Some(GUEST_RATE_LIMIT),
            max_age: None,
            cleanup_interval: None,
            reuse_existing: false,
            resume: false,
        }
    }
}

/// How long a guest's resume token lasts without `max_age`: a year.
pub const RESUME_TOKEN_LIFETIME_S: i64 = 365 * 86_400;

impl AnonymousOptions {
    /// Seconds a resume token lasts: as long as an idle guest is kept (`max_age`),
    /// or a year.
    pub fn resume_lifetime(&self) -> i64 {
        self.max_age.unwrap_or(RESUME_TOKEN_LIFETIME_S)
    }
}

/// Guest sign-ins per client IP: 10 a minute (nevr's and Kernia's default).
pub const GUEST_RATE_LIMIT: RateLimitRule = RateLimitRule { window: 60, max: 10 };

fn default_base_url() -> String {
    "http://localhost:3000".into()
}
fn default_base_path() -> String {
    "/api/auth".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailPasswordOptions {
    pub enabled: bool,
    pub disable_sign_up: bool,
    pub require_email_verification: bool,
    pub min_password_length: usize,
    pub max_password_length: usize,
    pub auto_sign_in: bool,
    /// Seconds a password-reset link stays valid.
    pub reset_password_token_expires_in: i64,
    /// A password reset signs the user out everywhere.
    pub revoke_sessions_on_password_reset: bool,
}

impl Default for EmailPasswordOptions {
    fn default() -> Self {
        EmailPasswordOptions {
            enabled: false,
            disable_sign_up: false,
            require_email_verification: false,
            min_password_length: 8,
            max_password_length: 128,
            auto_sign_in: true,
            reset_password_token_expires_in: 3600,
            revoke_sessions_on_password_reset: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionOptions {
    /// Seconds.
    pub expires_in: i64,
    /// Seconds; 0 refreshes on every get-session.
    pub update_age: i64,
    pub disable_session_refresh: bool,
    /// Seconds; 0 disables freshness checks.
    pub fresh_age: i64,
    /// Better Auth's `session.cookieCache.enabled`: a signed `session_data` cookie
    /// carries the session and user, so get-session answers without the database.
    pub cookie_cache_enabled: bool,
    /// Seconds the `session_data` cookie is trusted (`cookieCache.maxAge`).
    pub cookie_cache_max_age: i64,
    /// `cookieCache.version`: a cookie written under another version is not used, so
    /// changing it makes every browser's cached session go back to the database.
    pub cookie_cache_version: String,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            expires_in: 604_800,
            update_age: 86_400,
            disable_session_refresh: false,
            fresh_age: 86_400,
            cookie_cache_enabled: false,
            cookie_cache_max_age: 300,
            cookie_cache_version: "1".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitOptions {
    pub enabled: bool,
    /// Seconds.
    pub window: u64,
    pub max: u64,
    pub storage: String,
    /// Path (exact, or ending in `*`) → rule; `null` disables limiting on that path.
    pub custom_rules: Vec<(String, Option<RateLimitRule>)>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    pub window: u64,
    pub max: u64,
}

impl Default for RateLimitOptions {
    fn default() -> Self {
        RateLimitOptions { enabled: true, window: 60, max: 100, storage: "memory".into(), custom_rules: Vec::new() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdvancedOptions {
    pub cookie_prefix: String,
    /// `None`: secure iff `base_url` is https.
    pub use_secure_cookies: Option<bool>,
    pub disable_csrf_check: bool,
    pub disable_origin_check: bool,
    /// Proxies (IPs or CIDRs) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    pub max_body_size: usize,
    /// Connections to the database (readers for SQLite, pool size for PostgreSQL); 0 = automatic.
    pub database_pool_size: usize,
    /// Seconds a request waits for the database before it is answered 503.
    pub database_timeout: f64,
    /// Native server: connections served at once (0 = automatic, below the process's
    /// file-descriptor limit); further ones are answered 503 and closed.
    pub max_connections: usize,
    /// Native server: seconds a client may take to send a request's headers, and
    /// again its body.
    pub request_timeout: f64,
    /// For tests: `/send-verification-email` answers the link's token as `_token`, and
    /// sends it without a sender (Kernia's test switch).
    pub expose_verification_token_for_tests: bool,
    /// For tests: `/request-password-reset` answers the link's token as `_token`, and
    /// works without a sender (Kernia's test switch).
    pub expose_reset_token_for_tests: bool,
    /// Attributes every cookie gets (Better Auth's `defaultCookieAttributes`).
    pub default_cookie_attributes: CookieAttributes,
}

/// Better Auth's `advanced.defaultCookieAttributes`: each set attribute replaces the
/// default one on every cookie the server sets (never its `Max-Age`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieAttributes {
    /// `"lax"`, `"strict"` or `"none"`.
    pub same_site: Option<String>,
    pub secure: Option<bool>,
    pub http_only: Option<bool>,
    pub domain: Option<String>,
    pub path: Option<String>,
    pub partitioned: Option<bool>,
}

impl Default for AdvancedOptions {
    fn default() -> Self {
        AdvancedOptions {
            cookie_prefix: "better-auth".into(),
            use_secure_cookies: None,
            disable_csrf_check: false,
            disable_origin_check: false,
            trusted_proxies: Vec::new(),
            max_body_size: 1024 * 1024,
            database_pool_size: 0,
            database_timeout: 2.0,
            max_connections: 0,
            request_timeout: 30.0,
            expose_verification_token_for_tests: false,
            expose_reset_token_for_tests: false,
            default_cookie_attributes: CookieAttributes::default(),
        }
    }
}

/// Attributes a browser would refuse, or that would break the cookies, are refused.
fn check_cookie_attributes(a: &CookieAttributes, secure_cookies: bool) -> Result<(), ConfigError> {
    let bad = |m: &str| Err(invalid(format!("advanced.default_cookie_attributes: {m}")));
    let secure = a.secure.unwrap_or(secure_cookies);
    match a.same_site.as_deref() {
        None | Some("lax" | "strict") => {}
        Some("none") if !secure => return bad("same_site \"none\" needs secure cookies (browsers drop it without)"),
        Some("none") => {}
        Some(other) => return bad(&format!("same_site must be \"lax\", \"strict\" or \"none\", got {other:?}")),
    }
    if a.partitioned == Some(true) && !secure {
        return bad("partitioned needs secure cookies");
    }
    if a.secure == Some(false) && secure_cookies {
        return bad("secure false with __Secure- cookie names (https base_url or use_secure_cookies)");
    }
    let token = |v: &str| !v.is_empty() && !v.contains([';', ',', ' ', '\r', '\n']);
    if a.domain.as_deref().is_some_and(|d| !token(d)) {
        return bad("domain must be a host name");
    }
    if a.path.as_deref().is_some_and(|p| !token(p) || !p.starts_with('/')) {
        return bad("path must start with /");
    }
    Ok(())
}

/// One of `cors_origins`, as a browser serializes it in `Origin`: an http(s) URL with
/// nothing after the host and port (a trailing `/` is allowed), no user info.
fn cors_origin(raw: &str) -> Result<String, ConfigError> {
    let refuse = || invalid(format!("cors_origins: {raw:?} is not an origin such as https://app.example.com"));
    let url = url::Url::parse(raw).map_err(|_| refuse())?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !crate::weburl::is_web(&url) || !bare || !url.username().is_empty() || url.password().is_some() {
        return Err(refuse());
    }
    let origin = url.origin().ascii_serialization();
    // `https://*.example.com` parses, with a host no browser will ever send.
    if origin.contains('*') {
        return Err(refuse());
    }
    Ok(origin)
}

/// Everything the engine needs, checked and derived once.
#[derive(Debug)]
pub struct Config {
    pub database: String,
    pub signer: Signer,
    pub base_url: String,
    /// `scheme://host[:port]` of `base_url`.
    pub base_origin: String,
    pub base_path: String,
    /// `trusted_origins`, then the `cors_origins`.
    pub trusted_origins: Vec<String>,
    /// `scheme://host[:port]` of each of `cors_origins`, as browsers serialize it.
    pub cors_origins: Vec<String>,
    /// Redis's URL, when sessions are copied there and counters kept there.
    pub secondary_storage: Option<String>,
    pub email_password: EmailPasswordOptions,
    pub session: SessionOptions,
    pub rate_limit: RateLimitOptions,
    pub advanced: AdvancedOptions,
    pub secure_cookies: bool,
    pub trusted_proxies: Vec<crate::net::IpNet>,
    pub anonymous: Option<AnonymousOptions>,
    pub username: Option<UsernameOptions>,
    pub magic_link: Option<MagicLinkOptions>,
    pub passkey: Option<PasskeyOptions>,
    pub email_otp: Option<EmailOtpOptions>,
    pub email_verification: EmailVerificationOptions,
    pub user: UserOptions,
    pub account: AccountOptions,
    pub verification: VerificationOptions,
    /// Where Prometheus metrics are served, when they are on: the path from the root.
    pub metrics_path: Option<String>,
}

impl Config {
    /// The metrics path relative to the base path, when it lies under it (then the
    /// auth routes serve it, on every transport).
    pub fn metrics_route(&self) -> Option<&str> {
        let path = self.metrics_path.as_deref()?;
        path.strip_prefix(self.base_path.as_str()).filter(|r| r.starts_with('/') && r.len() > 1)
    }
    pub fn from_json(json: &str) -> Result<Config, ConfigError> {
        let opts: Options = serde_json::from_str(json).map_err(|e| invalid(format!("invalid options: {e}")))?;
        Config::from_options(opts)
    }

    /// The plugin columns users carry in their JSON.
    pub fn user_fields(&self) -> crate::model::UserFields {
        crate::model::UserFields { anonymous: self.anonymous.is_some(), username: self.username.is_some() }
    }

    /// An absolute URL of one of our routes: `<base origin><base path><path>`
    /// (Better Auth's `baseURL` + path), for mailed links.
    pub fn api_url(&self, path: &str) -> String {
        format!("{}{}{}", self.base_origin, self.base_path, path)
    }

    /// Whether `plugin` is on.
    pub fn has(&self, plugin: Plugin) -> bool {
        match plugin {
            Plugin::Anonymous => self.anonymous.is_some(),
            Plugin::Username => self.username.is_some(),
            Plugin::MagicLink => self.magic_link.is_some(),
            Plugin::Passkey => self.passkey.is_some(),
            Plugin::EmailOtp => self.email_otp.is_some(),
        }
    }

    pub fn from_options(o: Options) -> Result<Config, ConfigError> {
        let secret = o.secret.filter(|s| !s.is_empty()).ok_or_else(|| {
            invalid("a secret is required: pass secret=... (at least 32 random characters, e.g. from `openssl rand -hex 32`)")
        })?;
        let base_origin = crate::weburl::origin_of(&o.base_url)
            .filter(|origin| origin.starts_with("http://") || origin.starts_with("https://"))
            .ok_or_else(|| invalid(format!("base_url must be an http(s) URL, got {:?}", o.base_url)))?;
        let base_path = normalize_base_path(&o.base_path)?;
        let ep = &o.email_and_password;
        if ep.min_password_length == 0 || ep.min_password_length > ep.max_password_length {
            return Err(invalid("email_and_password: need 0 < min_password_length <= max_password_length"));
        }
        for (name, value) in [
            ("email_verification.expires_in", o.email_verification.expires_in),
            ("email_and_password.reset_password_token_expires_in", ep.reset_password_token_expires_in),
            ("user.delete_user.delete_token_expires_in", o.user.delete_user.delete_token_expires_in),
        ] {
            if value <= 0 {
                return Err(invalid(format!("{name} must be a positive number of seconds, got {value}")));
            }
        }
        let s = &o.session;
        if s.expires_in <= 0 || s.update_age < 0 || s.fresh_age < 0 {
            return Err(invalid("session: expires_in must be positive; update_age and fresh_age not negative"));
        }
        if s.expires_in > 34_560_000 {
            return Err(invalid("session: expires_in is above the 400-day cookie limit"));
        }
        if !(1..=34_560_000).contains(&s.cookie_cache_max_age) {
            return Err(invalid(format!(
                "session.cookie_cache_max_age must be a positive number of seconds within the 400-day cookie limit, got {}",
                s.cookie_cache_max_age
            )));
        }
        let defaults = SessionOptions::default();
        if !s.cookie_cache_enabled {
            for (name, changed) in [
                ("cookie_cache_max_age", s.cookie_cache_max_age != defaults.cookie_cache_max_age),
                ("cookie_cache_version", s.cookie_cache_version != defaults.cookie_cache_version),
            ] {
                if changed {
                    return Err(invalid(format!(
                        "session.{name} is set but the cookie cache is off: set session.cookie_cache_enabled too"
                    )));
                }
            }
        }
        let rl = &o.rate_limit;
        if rl.enabled && (rl.window == 0 || rl.max == 0) {
            return Err(invalid("rate_limit: window and max must be positive"));
        }
        if !["memory", "database", "secondary-storage"].contains(&rl.storage.as_str()) {
            return Err(invalid(format!(
                "rate_limit: storage must be \"memory\", \"database\" or \"secondary-storage\", got {:?}",
                rl.storage
            )));
        }
        if rl.storage == "secondary-storage" && o.secondary_storage.is_none() {
            return Err(invalid("rate_limit: storage \"secondary-storage\" needs secondary_storage (a Redis URL)"));
        }
        if rl.custom_rules.iter().any(|(_, r)| r.is_some_and(|r| r.window == 0 || r.max == 0)) {
            return Err(invalid("rate_limit: custom rules need a positive window and max"));
        }
        let trusted_proxies = o
            .advanced
            .trusted_proxies
            .iter()
            .map(|p| crate::net::IpNet::parse(p).ok_or_else(|| invalid(format!("trusted_proxies: bad address {p:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        for (name, value) in
            [("database_timeout", o.advanced.database_timeout), ("request_timeout", o.advanced.request_timeout)]
        {
            if !(value.is_finite() && value > 0.0 && value <= 3600.0) {
                return Err(invalid(format!("advanced.{name} must be a positive number of seconds (at most 3600)")));
            }
        }
        if o.advanced.cookie_prefix.is_empty() || o.advanced.cookie_prefix.contains([';', '=', ' ', ',']) {
            return Err(invalid("advanced.cookie_prefix must be a non-empty cookie-name token"));
        }
        if let Some(a) = &o.anonymous {
            a.check()?;
        }
        if let Some(u) = &o.username {
            u.check()?;
        }
        if let Some(m) = &o.magic_link {
            m.check()?;
        }
        if let Some(p) = &o.passkey {
            p.check()?;
        }
        if let Some(e) = &o.email_otp {
            e.check()?;
        }
        if o.metrics
            && (!o.metrics_path.starts_with('/') || o.metrics_path.len() < 2 || o.metrics_path.contains(['?', '#']))
        {
            return Err(invalid(format!("metrics_path must be a path such as /metrics, got {:?}", o.metrics_path)));
        }
        let cors_origins = o.cors_origins.iter().map(|raw| cors_origin(raw)).collect::<Result<Vec<_>, _>>()?;
        let mut trusted_origins = o.trusted_origins;
        trusted_origins.extend(cors_origins.iter().cloned());
        let secure_cookies = o.advanced.use_secure_cookies.unwrap_or_else(|| base_origin.starts_with("https://"));
        check_cookie_attributes(&o.advanced.default_cookie_attributes, secure_cookies)?;
        Ok(Config {
            database: o.database,
            signer: Signer::new(&secret),
            base_url: o.base_url,
            base_origin,
            base_path,
            trusted_origins,
            cors_origins,
            secondary_storage: o.secondary_storage,
            email_password: o.email_and_password,
            session: o.session,
            rate_limit: o.rate_limit,
            advanced: o.advanced,
            secure_cookies,
            trusted_proxies,
            anonymous: o.anonymous,
            username: o.username,
            magic_link: o.magic_link,
            passkey: o.passkey,
            email_otp: o.email_otp,
            email_verification: o.email_verification,
            user: o.user,
            account: o.account,
            verification: o.verification,
            metrics_path: o.metrics.then_some(o.metrics_path),
        })
    }
}

/// Plugin options are checked here, once: when `init()` builds the configuration,
/// and when Python builds the plugin (through [`check_plugin`]), so a bad value is
/// refused where it is written. Messages name the plugin and the option.
impl AnonymousOptions {
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(domain) = &self.email_domain_name {
            if !crate::model::is_valid_email(&format!("guest@{domain}")) {
                return Err(invalid(format!("anonymous(): email_domain_name {domain:?} is not a domain")));
            }
        }
        if self.expires_in.is_some_and(|s| s <= 0 || s > 34_560_000) {
            return Err(invalid("anonymous(): expires_in must be positive and at most 400 days"));
        }
        if self.max_age.is_some_and(|s| s <= 0) {
            return Err(invalid("anonymous(): max_age must be a positive number of seconds"));
        }
        if self.rate_limit.is_some_and(|r| r.window == 0 || r.max == 0) {
            return Err(invalid("anonymous(): rate_limit needs a positive window and max"));
        }
        match self.cleanup_interval {
            Some(s) if !(s > 0.0 && s.is_finite()) => {
                Err(invalid("anonymous(): cleanup_interval must be a positive number of seconds"))
            }
            Some(_) if self.max_age.is_none() => {
                Err(invalid("anonymous(): cleanup_interval needs max_age, the age at which guests go"))
            }
            _ => Ok(()),
        }
    }
}

impl UsernameOptions {
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.min_username_length == 0 || self.min_username_length > self.max_username_length {
            return Err(invalid(format!(
                "username(): need 0 < min_username_length <= max_username_length, got {} and {}",
                self.min_username_length, self.max_username_length
            )));
        }
        Ok(())
    }
}

impl MagicLinkOptions {
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.expires_in <= 0 {
            return Err(invalid(format!("magic_link(): expires_in must be positive, got {}", self.expires_in)));
        }
        Ok(())
    }
}

/// The email-OTP plugin (Better Auth's `emailOTP`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailOtpOptions {
    /// Digits in a code.
    pub otp_length: usize,
    /// Seconds a code stays valid.
    pub expires_in: i64,
    /// Wrong codes after which a code is gone.
    pub allowed_attempts: u32,
    /// `plain`, or `hashed` (the default here): a leaked table holds no usable code.
    pub store_otp: StoreToken,
    /// A code for an unknown email does not create the user.
    pub disable_sign_up: bool,
    /// The limit on each of the plugin's routes per client IP; `None` leaves them to the global rules.
    pub rate_limit: Option<RateLimitRule>,
}

impl Default for EmailOtpOptions {
    fn default() -> Self {
        EmailOtpOptions {
            otp_length: 6,
            expires_in: 300,
            allowed_attempts: 3,
            store_otp: StoreToken::Hashed,
            disable_sign_up: false,
            rate_limit: Some(RateLimitRule { window: 60, max: 3 }),
        }
    }
}

impl EmailOtpOptions {
    /// The paths its rate limit covers, each on its own (Better Auth: 3 per 60 s each).
    pub const LIMITED_PATHS: &[&str] = &[
        "/email-otp/send-verification-otp",
        "/email-otp/check-verification-otp",
        "/email-otp/verify-email",
        "/sign-in/email-otp",
        "/email-otp/request-password-reset",
        "/forget-password/email-otp",
        "/email-otp/reset-password",
    ];

    pub fn check(&self) -> Result<(), ConfigError> {
        if !(4..=12).contains(&self.otp_length) {
            return Err(invalid(format!("email_otp(): otp_length must be 4 to 12 digits, got {}", self.otp_length)));
        }
        if self.expires_in <= 0 {
            return Err(invalid(format!("email_otp(): expires_in must be positive, got {}", self.expires_in)));
        }
        if self.allowed_attempts == 0 {
            return Err(invalid("email_otp(): allowed_attempts must be at least 1"));
        }
        if self.store_otp == StoreToken::Custom {
            return Err(invalid("email_otp(): store_otp must be \"plain\" or \"hashed\""));
        }
        if self.rate_limit.is_some_and(|r| r.window == 0 || r.max == 0) {
            return Err(invalid("email_otp(): rate_limit needs a positive window and max"));
        }
        Ok(())
    }
}

impl PasskeyOptions {
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(bad) = self.origin.iter().find(|o| crate::weburl::origin_of(o).as_deref() != Some(o.as_str())) {
            return Err(invalid(format!("passkey(): origin {bad:?} must be scheme://host[:port], without a path")));
        }
        if self.rp_id.as_deref().is_some_and(|id| id.is_empty() || id.contains(['/', ':'])) {
            return Err(invalid("passkey(): rp_id must be a bare host name such as example.com"));
        }
        Ok(())
    }
}

/// Checks one plugin's options, as `KerniaOptions` would carry them under `key`.
pub fn check_plugin(key: &str, json: &str) -> Result<(), ConfigError> {
    fn parse<T: serde::de::DeserializeOwned>(name: &str, json: &str) -> Result<T, ConfigError> {
        serde_json::from_str(json).map_err(|e| invalid(format!("{name}(): {e}")))
    }
    match key {
        "anonymous" => parse::<AnonymousOptions>("anonymous", json)?.check(),
        "username" => parse::<UsernameOptions>("username", json)?.check(),
        "magic_link" => parse::<MagicLinkOptions>("magic_link", json)?.check(),
        "passkey" => parse::<PasskeyOptions>("passkey", json)?.check(),
        "email_otp" => parse::<EmailOtpOptions>("email_otp", json)?.check(),
        other => Err(invalid(format!("unknown plugin {other:?}"))),
    }
}

fn normalize_base_path(p: &str) -> Result<String, ConfigError> {
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if !trimmed.starts_with('/') || trimmed.contains("//") {
        return Err(invalid(format!("base_path must start with '/', got {p:?}")));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Result<Config, ConfigError> {
        Config::from_json(&format!(r#"{{"database":"sqlite::memory:","secret":"s3cret-s3cret-s3cret"{extra}}}"#))
    }

    #[test]
    fn defaults_follow_kernia() {
        let c = cfg("").unwrap();
        assert_eq!(c.base_path, "/api/auth");
        assert_eq!(c.base_origin, "http://localhost:3000");
        assert_eq!(c.session.expires_in, 604_800);
        assert!(!c.secure_cookies);
        assert!(!c.email_password.enabled);
    }

    #[test]
    fn a_secret_is_required() {
        let err = Config::from_json(r#"{"database":"sqlite::memory:"}"#).unwrap_err();
        assert!(err.to_string().contains("secret is required"));
        assert!(Config::from_json(r#"{"database":"sqlite::memory:","secret":""}"#).is_err());
    }

    #[test]
    fn https_base_urls_make_cookies_secure() {
        assert!(cfg(r#","base_url":"https://app.example.com/x""#).unwrap().secure_cookies);
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(cfg(r#","base_url":"ftp://x""#).is_err());
        assert!(cfg(r#","base_path":"api""#).is_err());
        assert!(cfg(r#","unknown":1"#).is_err());
        assert!(cfg(r#","email_and_password":{"min_password_length":10,"max_password_length":5}"#).is_err());
        assert!(cfg(r#","advanced":{"trusted_proxies":["not-an-ip"]}"#).is_err());
        assert!(cfg(r#","username":{"min_username_length":0}"#).is_err());
        assert!(cfg(r#","username":{"username_validation_order":"sideways"}"#).is_err());
        assert!(cfg(r#","magic_link":{"expires_in":0}"#).is_err());
        assert!(cfg(r#","magic_link":{"store_token":"encrypted"}"#).is_err());
    }

    #[test]
    fn plugin_options_have_better_auths_defaults() {
        let c = cfg(r#","username":{},"magic_link":{"store_token":"hashed"}"#).unwrap();
        let u = c.username.unwrap();
        assert_eq!((u.min_username_length, u.max_username_length, u.normalize), (3, 30, true));
        let m = c.magic_link.unwrap();
        assert_eq!((m.expires_in, m.store_token), (300, StoreToken::Hashed));
    }

    #[test]
    fn plugin_checks_name_the_plugin_and_the_option() {
        let err = |key: &str, json: &str| check_plugin(key, json).unwrap_err().to_string();
        assert!(err("anonymous", r#"{"max_age":0}"#).starts_with("anonymous(): max_age"));
        assert!(err("anonymous", r#"{"cleanup_interval":60}"#).contains("needs max_age"));
        assert!(err("anonymous", r#"{"email_domain_name":"not a domain"}"#).contains("not a domain"));
        let order = r#"{"min_username_length":10,"max_username_length":5}"#;
        assert!(err("username", order).starts_with("username(): need 0 < min_username_length"));
        assert!(err("passkey", r#"{"rp_id":"https://x"}"#).starts_with("passkey(): rp_id"));
        assert!(err("magic_link", r#"{"expires_in":0}"#).starts_with("magic_link(): expires_in"));
        assert!(err("anonymous", r#"{"rate_limit":{"window":0,"max":5}}"#).contains("positive"));
        assert!(check_plugin("anonymous", "{}").is_ok() && check_plugin("passkey", "{}").is_ok());
    }
}
