//! The engine: configuration, storage, clock, hashing pool and the services
//! (sessions, rate limits, conversions), built once at `init()` and shared by
//! every request of either transport. Serving a request is `pipeline.rs`.

use std::sync::Arc;

use crate::callbacks::{
    AccountCallback, AccountCallbacks, AnonymousCallbacks, CallbackRequest, Callbacks, EventKind, EventOrigin,
    GuestEvent, MagicLinkCallbacks, Mail, NoCallbacks, UsernameCallbacks,
};
use crate::config::{Config, ConfigError};
use crate::link::Linker;
use crate::model::UserFields;
use crate::password::PasswordHasher;
use crate::ratelimit::RateLimiter;
use crate::session::Sessions;
use crate::storage::{self, Store};
use crate::time::Clock;

pub struct Auth {
    pub cfg: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    pub hasher: PasswordHasher,
    pub limiter: RateLimiter,
    pub sessions: Sessions,
    pub user_fields: UserFields,
    /// Present exactly when the anonymous plugin is on.
    pub anonymous_callbacks: Option<Arc<dyn AnonymousCallbacks>>,
    /// Present exactly when the username plugin is on.
    pub username_callbacks: Option<Arc<dyn UsernameCallbacks>>,
    /// Present exactly when the magic-link plugin is on.
    pub magic_link_callbacks: Option<Arc<dyn MagicLinkCallbacks>>,
    /// The account routes' mail senders and hooks (none: [`NoCallbacks`]).
    pub account_callbacks: Arc<dyn AccountCallbacks>,
    /// Guest conversions (`link.rs`).
    pub linker: Arc<Linker>,
    /// Whether the database is in an episode of unavailability (logged once each).
    pub db_health: Arc<crate::storage::health::Health>,
    /// When expired verification rows were last deleted (engine clock, ms).
    pub verifications_swept_ms: std::sync::atomic::AtomicI64,
    /// Prometheus counters, when `metrics` is on.
    pub metrics: Option<crate::metrics::Metrics>,
}

impl Auth {
    pub async fn new(cfg: Config) -> Result<Auth, ConfigError> {
        Self::with_callbacks(cfg, Callbacks::default()).await
    }

    /// With the app's callbacks (each used only when its plugin is on).
    pub async fn with_callbacks(cfg: Config, callbacks: Callbacks) -> Result<Auth, ConfigError> {
        if cfg.magic_link.is_some() && callbacks.magic_link.is_none() {
            return Err(ConfigError::Invalid("magic_link needs send_magic_link(email, url, token, ctx)".into()));
        }
        let timeout = std::time::Duration::from_secs_f64(cfg.advanced.database_timeout);
        let mut store = storage::open(&cfg.database, cfg.advanced.database_pool_size, timeout).await?;
        let mut redis = None;
        if let Some(url) = &cfg.secondary_storage {
            let connected = Arc::new(storage::redis::Redis::connect(url, timeout).await?);
            store = Arc::new(storage::mirrored::Mirrored::new(store, connected.clone()));
            redis = Some(connected);
        }
        let mut auth = Self::with_store(cfg, store, callbacks);
        auth.limiter.use_redis(redis);
        Ok(auth)
    }

    pub fn with_store(cfg: Config, store: Arc<dyn Store>, callbacks: Callbacks) -> Auth {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let none = || Arc::new(NoCallbacks);
        let anonymous_callbacks = cfg
            .anonymous
            .as_ref()
            .map(|_| callbacks.anonymous.unwrap_or_else(|| none() as Arc<dyn AnonymousCallbacks>));
        let username_callbacks =
            cfg.username.as_ref().map(|_| callbacks.username.unwrap_or_else(|| none() as Arc<dyn UsernameCallbacks>));
        let magic_link_callbacks = cfg.magic_link.as_ref().and(callbacks.magic_link);
        let account_callbacks = callbacks.account.unwrap_or_else(|| none() as Arc<dyn AccountCallbacks>);
        let mut plugin_rules = Vec::new();
        if cfg.magic_link.is_some() {
            // The magic-link plugin's own rule (spec §12): 5 per minute, before custom rules.
            let rule = Some(crate::config::RateLimitRule { window: 60, max: 5 });
            plugin_rules.push(("/sign-in/magic-link*".to_owned(), rule));
            plugin_rules.push(("/magic-link/verify*".to_owned(), rule));
        }
        if let Some(a) = &cfg.anonymous {
            // Guest sign-ins per IP (10 a minute unless configured); `None`: not limited.
            plugin_rules.push(("/sign-in/anonymous".to_owned(), a.rate_limit));
            // A resume gives a session without credentials, as guest creation does.
            plugin_rules.push(("/anonymous/resume".to_owned(), a.rate_limit));
        }
        if let Some(e) = &cfg.email_otp {
            plugin_rules
                .extend(crate::config::EmailOtpOptions::LIMITED_PATHS.iter().map(|p| ((*p).to_owned(), e.rate_limit)));
        }
        let keep_guest = cfg.anonymous.as_ref().is_some_and(|a| a.disable_delete_anonymous_user);
        let linker = Arc::new(Linker::new(store.clone(), anonymous_callbacks.clone(), keep_guest));
        let cfg = Arc::new(cfg);
        let clock = Clock::default();
        Auth {
            sessions: Sessions::new(cfg.clone(), store.clone(), clock.clone()),
            limiter: RateLimiter::new(cfg.rate_limit.clone(), plugin_rules),
            hasher: PasswordHasher::new(cores),
            clock,
            user_fields: cfg.user_fields(),
            anonymous_callbacks,
            username_callbacks,
            magic_link_callbacks,
            account_callbacks,
            linker,
            db_health: Arc::default(),
            verifications_swept_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
            metrics: cfg.metrics_path.is_some().then(crate::metrics::Metrics::default),
            store,
            cfg,
        }
    }

    /// The path relative to the base path, or `None` when the request is not for us.
    /// Mounted under a prefix (ASGI `root_path`), the prefix is the base: newer
    /// Starlette keeps the full path in `path`, older versions strip it already.
    /// Standalone, the configured `base_path` is the base.
    pub fn relative_path<'p>(&self, path: &'p str, root_path: &str) -> Option<&'p str> {
        let rest = if root_path.is_empty() {
            path.strip_prefix(self.cfg.base_path.as_str())?
        } else {
            let root = root_path.trim_end_matches('/');
            path.strip_prefix(root).filter(|r| r.starts_with('/')).unwrap_or(path)
        };
        (rest.starts_with('/') && rest.len() > 1).then_some(rest)
    }

    /// [`Auth::relative_path`] for the ASGI app: served standalone, it also answers
    /// paths without the base path (`/sign-up/email`), as Kernia's router does, so an
    /// app or test that calls `auth.router.mount()` directly finds the routes either way.
    pub fn asgi_relative_path<'p>(&self, path: &'p str, root_path: &str) -> Option<&'p str> {
        self.relative_path(path, root_path)
            .or_else(|| (root_path.is_empty() && path.starts_with('/') && path.len() > 1).then_some(path))
    }

    /// Whether guests may become registered accounts (`anonymous(allow_linking=...)`).
    pub fn allows_linking(&self) -> bool {
        self.cfg.anonymous.as_ref().is_none_or(|a| a.allow_linking)
    }

    /// Hands an event to the app's `on_event`, if it has one (nothing is built
    /// otherwise); never waits.
    pub fn emit(&self, kind: EventKind, user_id: Option<&str>, new_user_id: Option<&str>, from: &EventOrigin<'_>) {
        if let Some(m) = &self.metrics {
            m.event(kind);
        }
        let Some(cb) = self.anonymous_callbacks.as_ref().filter(|cb| cb.has_on_event()) else { return };
        let event = GuestEvent {
            kind,
            user_id: user_id.map(str::to_owned),
            new_user_id: new_user_id.map(str::to_owned),
            at_ms: self.clock.now_ms(),
            ip: from.ip.map(str::to_owned),
            path: from.path.map(str::to_owned),
        };
        cb.on_event(event, from.extension);
    }

    /// Whether the app gave this account callback.
    pub fn has_callback(&self, which: AccountCallback) -> bool {
        self.account_callbacks.has(which)
    }

    /// Hands a mail to the app's sender; a failure is logged on the `kernia` logger
    /// (by the bindings) and swallowed, as Better Auth's `runInBackgroundOrAwait` does.
    pub async fn send_quietly(&self, which: AccountCallback, req: &CallbackRequest, mail: Mail) {
        let _ = self.account_callbacks.send(which, req, mail).await;
    }

    pub async fn close(&self) {
        self.store.close().await;
    }
}
