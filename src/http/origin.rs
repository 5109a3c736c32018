//! Trusted origins and the CSRF checks of spec §13.
//!
//! Every trust decision reads a URL the way browsers do (the WHATWG URL
//! standard, as the `url` crate implements it): `\` is `/` in http(s) URLs,
//! tabs and newlines vanish, `user@` is not the host. And the value that was
//! checked is the value that is used: [`trusted_url`] hands back the URL in
//! the form browsers will read it, so nothing decodes or reparses it after the
//! check.

use url::Url;

use crate::config::Config;
use crate::error::{AuthError, UrlField};
use crate::http::request::Request;

/// Schemes a callback may never have, whatever the trusted origins say: they
/// run code or embed content instead of navigating somewhere.
const NEVER_TRUSTED: [&str; 5] = ["javascript", "data", "vbscript", "file", "blob"];

use crate::weburl::is_web;
pub use crate::weburl::origin_of;

/// `*` any run of characters, `?` exactly one.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..])),
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p.eq_ignore_ascii_case(t) => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// `host[:port]` as `new URL(url).host` gives it.
fn host_and_port(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// A path with percent-escapes decoded and `.`/`..` resolved, so a path-pinned
/// custom-scheme pattern cannot be escaped with traversal.
fn normalized_path(path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            ".." => {
                segments.pop();
            }
            "." | "" => {}
            s => segments.push(s),
        }
    }
    if segments.is_empty() {
        String::new()
    } else {
        format!("/{}", segments.join("/"))
    }
}

fn has_userinfo(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// Scheme, authority (`user@host:port` as written, lower-cased) and normalized path
/// of a custom-scheme URL such as `myapp://callback/done`.
fn custom_parts(url: &Url) -> (String, String, String) {
    let mut authority = String::new();
    if has_userinfo(url) {
        authority.push_str(url.username());
        if let Some(p) = url.password() {
            authority.push(':');
            authority.push_str(p);
        }
        authority.push('@');
    }
    authority.push_str(&host_and_port(url).unwrap_or_default());
    (url.scheme().to_owned(), authority.to_ascii_lowercase(), normalized_path(url.path()))
}

fn matches_pattern(pattern: &str, url: &Url) -> bool {
    if pattern.contains(['*', '?']) {
        return if pattern.contains("://") {
            let origin = if is_web(url) { url.origin().ascii_serialization() } else { url.as_str().to_owned() };
            glob(pattern.as_bytes(), origin.as_bytes())
        } else {
            host_and_port(url).is_some_and(|host| glob(pattern.as_bytes(), host.as_bytes()))
        };
    }
    let Ok(pattern) = Url::parse(pattern) else { return false };
    if is_web(url) || is_web(&pattern) {
        return is_web(url) && is_web(&pattern) && pattern.origin() == url.origin();
    }
    // Custom schemes (`myapp://`): the scheme, then the authority if the pattern
    // pins one, then the path (equal, or nested under it) if the pattern has one.
    let (scheme, authority, path) = custom_parts(url);
    let (p_scheme, p_authority, p_path) = custom_parts(&pattern);
    scheme == p_scheme
        && (p_authority.is_empty() || authority == p_authority)
        && (p_path.is_empty() || path == p_path || path.starts_with(&format!("{p_path}/")))
}

/// A same-site relative URL: one leading `/`, simple characters, an optional simple
/// query (Better Auth's rule). Tabs, newlines and backslashes are refused outright:
/// a browser would drop or turn them into `/` and leave the site.
fn is_safe_relative(url: &str) -> bool {
    let Some(rest) = url.strip_prefix('/') else {
        return false;
    };
    let lower = rest.to_ascii_lowercase();
    if rest.starts_with(['/', '\\']) || lower.starts_with("%2f") || lower.starts_with("%5c") {
        return false;
    }
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let simple = |c: char, extra: &str| c.is_ascii_alphanumeric() || c == '_' || extra.contains(c);
    path.chars().all(|c| simple(c, "-.+/@")) && query.chars().all(|c| simple(c, "-.+/=&%@"))
}

/// The URL to use for `raw` if it is trusted, in the form browsers read it; `None`
/// if it is not trusted. Relative URLs are allowed where `allow_relative`.
pub fn trusted_url(cfg: &Config, raw: &str, allow_relative: bool) -> Option<String> {
    if raw.starts_with('/') {
        return (allow_relative && is_safe_relative(raw)).then(|| raw.to_owned());
    }
    let url = Url::parse(raw).ok()?;
    // Credentials in a callback serve no purpose but to disguise where it leads.
    if NEVER_TRUSTED.contains(&url.scheme()) || (is_web(&url) && has_userinfo(&url)) {
        return None;
    }
    let own = is_web(&url) && url.origin().ascii_serialization() == cfg.base_origin;
    if !own && !cfg.trusted_origins.iter().any(|p| matches_pattern(p, &url)) {
        return None;
    }
    // The serialized form is what was checked; keep the caller's spelling only where
    // the two differ by the root path a serializer adds (`https://a.example`).
    // A backslash left in a query or fragment (or a non-web path) is sent as `%5C`:
    // the same value to whoever decodes it, and never a path separator to anyone.
    let serialized = url.as_str().replace('\\', "%5C");
    Some(if serialized.strip_suffix('/') == Some(raw) { raw.to_owned() } else { serialized })
}

pub fn is_trusted(cfg: &Config, url: &str, allow_relative: bool) -> bool {
    trusted_url(cfg, url, allow_relative).is_some()
}

/// `Origin`, or `Referer` when `Origin` is missing or empty; `"null"` is returned as
/// it is, since it is evidence of a cross-site (sandboxed or opaque) sender.
fn request_origin(req: &Request) -> Option<&str> {
    req.header("origin").filter(|o| !o.is_empty()).or_else(|| req.header("referer")).filter(|o| !o.is_empty())
}

fn check_origin_header(cfg: &Config, req: &Request) -> Result<(), AuthError> {
    let origin = request_origin(req).filter(|o| *o != "null").ok_or(AuthError::MissingOrNullOrigin)?;
    if is_trusted(cfg, origin, false) {
        Ok(())
    } else {
        Err(AuthError::InvalidOrigin)
    }
}

fn csrf_enabled(cfg: &Config) -> bool {
    !cfg.advanced.disable_csrf_check && !cfg.advanced.disable_origin_check
}

/// §13.2 step 1: a state-changing request that carries cookies must come from a trusted origin.
pub fn check_cookie_origin(cfg: &Config, req: &Request) -> Result<(), AuthError> {
    if !csrf_enabled(cfg) || matches!(req.method.as_str(), "GET" | "HEAD" | "OPTIONS") || !req.has_cookies() {
        return Ok(());
    }
    check_origin_header(cfg, req)
}

/// §13.3: sign-in and sign-up forms are protected against login CSRF even without cookies.
pub fn check_form_csrf(cfg: &Config, req: &Request) -> Result<(), AuthError> {
    if !csrf_enabled(cfg) {
        return Ok(());
    }
    if req.has_cookies() {
        return check_origin_header(cfg, req);
    }
    let site = req.header("sec-fetch-site");
    let given = |h: Option<&str>| h.is_some_and(|v| !v.trim().is_empty());
    let has_fetch_metadata = given(site) || given(req.header("sec-fetch-mode")) || given(req.header("sec-fetch-dest"));
    if has_fetch_metadata {
        if site == Some("cross-site") && req.header("sec-fetch-mode") == Some("navigate") {
            return Err(AuthError::CrossSiteNavigationLoginBlocked);
        }
        return check_origin_header(cfg, req);
    }
    match request_origin(req) {
        Some(_) => check_origin_header(cfg, req),
        None => Ok(()),
    }
}

/// §13.2 step 2: a callback-type URL of the body or query must be trusted (relative
/// allowed). Returns the URL to use from here on: the checked form, or `None` when
/// the field is absent or empty.
pub fn check_callback_url(
    cfg: &Config,
    field: UrlField,
    value: Option<&serde_json::Value>,
) -> Result<Option<String>, AuthError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(url)) if url.is_empty() => Ok(None),
        Some(serde_json::Value::String(url)) if cfg.advanced.disable_origin_check => Ok(Some(url.clone())),
        Some(serde_json::Value::String(url)) => {
            trusted_url(cfg, url, true).map(Some).ok_or(AuthError::InvalidUrl(field))
        }
        Some(_) if cfg.advanced.disable_origin_check => Ok(None),
        Some(_) => Err(AuthError::UrlNotAString(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::from_json(
            r#"{"database":"sqlite::memory:","secret":"x","base_url":"http://localhost:3000",
                "trusted_origins":["https://app.example.com","*.preview.example.com","myapp://"]}"#,
        )
        .unwrap()
    }

    #[test]
    fn origins_are_extracted() {
        assert_eq!(origin_of("HTTPS://Example.com:443/a?b").as_deref(), Some("https://example.com"));
        assert_eq!(origin_of("http://localhost:3000/x").as_deref(), Some("http://localhost:3000"));
        assert_eq!(origin_of("/relative"), None);
    }

    #[test]
    fn trust_rules() {
        let c = cfg();
        assert!(is_trusted(&c, "http://localhost:3000", false));
        assert!(is_trusted(&c, "https://app.example.com/cb", false));
        assert!(!is_trusted(&c, "https://evil.example.com", false));
        assert!(is_trusted(&c, "https://pr-1.preview.example.com", false));
        assert!(is_trusted(&c, "myapp://callback", false));
        assert!(is_trusted(&c, "/dashboard?tab=1", true));
        assert!(!is_trusted(&c, "//evil.com", true));
        assert!(!is_trusted(&c, "/%2fevil.com", true));
        assert!(!is_trusted(&c, "/dashboard", false));
    }

    /// One shape of each kind that fools string-splitting origin checks; the whole
    /// matrix runs against every route in tests/python/test_hardening.py.
    const BYPASSES: &[&str] = &[
        "http://evil.com\\@localhost:3000",
        "http://evil.com%5C@localhost:3000",
        "http://localhost:3000@evil.com",
        "http://evil.com#@localhost:3000",
        "http://evil.com\t@localhost:3000",
        "//evil.com",
        "/\\evil.com",
        "/%2F/evil.com",
        "https:\\\\evil.com",
        "javascript:alert(1)",
        "myapp://callback.attacker.tld",
        "myapp://user@callback",
    ];

    #[test]
    fn bypass_shapes_are_not_trusted() {
        let c = cfg();
        let c = Config { trusted_origins: vec!["myapp://callback".into()], ..c };
        for url in BYPASSES {
            assert_eq!(trusted_url(&c, url, true), None, "{url:?} must not be trusted");
        }
    }

    #[test]
    fn the_checked_value_is_the_one_used() {
        let c = cfg();
        // Tabs and newlines vanish in browsers; the value handed back has none.
        assert_eq!(trusted_url(&c, "http://local\thost:3000/a", true).as_deref(), Some("http://localhost:3000/a"));
        assert_eq!(trusted_url(&c, "HTTP://LOCALHOST:3000/x", true).as_deref(), Some("http://localhost:3000/x"));
        assert_eq!(trusted_url(&c, "http://localhost:3000", true).as_deref(), Some("http://localhost:3000"));
        assert_eq!(trusted_url(&c, "http://localhost:3000\\a", true).as_deref(), Some("http://localhost:3000/a"));
        assert_eq!(
            trusted_url(&c, "https://app.example.com:443/cb", true).as_deref(),
            Some("https://app.example.com/cb")
        );
        assert_eq!(trusted_url(&c, "/dashboard?tab=1", true).as_deref(), Some("/dashboard?tab=1"));
        // A backslash kept in the query goes out encoded, so the value used checks the same again.
        let used = trusted_url(&c, "http://localhost:3000?\\", true);
        assert_eq!(used.as_deref(), Some("http://localhost:3000/?%5C"));
        assert_eq!(trusted_url(&c, used.as_deref().unwrap(), true), used);
    }

    #[test]
    fn custom_schemes_pin_authority_and_path() {
        let c = Config { trusted_origins: vec!["myapp://host/cb".into(), "exp://".into()], ..cfg() };
        assert!(is_trusted(&c, "myapp://host/cb", true));
        assert!(is_trusted(&c, "myapp://host/cb/done", true));
        assert!(!is_trusted(&c, "myapp://host/cbx", true));
        assert!(!is_trusted(&c, "myapp://host/cb/../evil", true));
        assert!(!is_trusted(&c, "myapp://host/cb/%2e%2e/evil", true));
        assert!(!is_trusted(&c, "myapp://other/cb", true));
        assert!(is_trusted(&c, "exp://192.168.1.2:8081/--/x", true));
    }

    #[test]
    fn null_origin_is_refused_on_forms() {
        let c = cfg();
        let null = Request::new("POST", "/sign-in/email").with_header("origin", "null");
        assert_eq!(check_form_csrf(&c, &null), Err(AuthError::MissingOrNullOrigin));
        let blank_metadata = Request::new("POST", "/sign-in/email").with_header("sec-fetch-site", " ");
        assert_eq!(check_form_csrf(&c, &blank_metadata), Ok(()));
    }

    #[test]
    fn cookie_bearing_posts_need_a_trusted_origin() {
        let c = cfg();
        let base = Request::new("POST", "/sign-out").with_header("cookie", "a=b");
        assert_eq!(check_cookie_origin(&c, &base), Err(AuthError::MissingOrNullOrigin));
        let evil = base.clone().with_header("origin", "https://evil.com");
        assert_eq!(check_cookie_origin(&c, &evil), Err(AuthError::InvalidOrigin));
        let ok = base.clone().with_header("origin", "http://localhost:3000");
        assert_eq!(check_cookie_origin(&c, &ok), Ok(()));
        assert_eq!(check_cookie_origin(&c, &Request::new("POST", "/sign-out")), Ok(()));
    }

    #[test]
    fn form_csrf_blocks_cross_site_navigation() {
        let c = cfg();
        let r = Request::new("POST", "/sign-in/email")
            .with_header("sec-fetch-site", "cross-site")
            .with_header("sec-fetch-mode", "navigate");
        assert_eq!(check_form_csrf(&c, &r), Err(AuthError::CrossSiteNavigationLoginBlocked));
        let no_origin = Request::new("POST", "/sign-in/email").with_header("sec-fetch-site", "same-origin");
        assert_eq!(check_form_csrf(&c, &no_origin), Err(AuthError::MissingOrNullOrigin));
        assert_eq!(check_form_csrf(&c, &Request::new("POST", "/sign-in/email")), Ok(()));
    }
}
