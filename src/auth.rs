//! The engine: configuration, storage, clock and hashing pool, built once at
//! `init()` and shared by every request of either transport.

use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::core::hooks::{
    AnonymousCallbacks, EventKind, EventOrigin, GuestEvent, Hooks, MagicLinkSender, NoCallbacks, UsernameHooks,
};
use crate::core::request::Request;
use crate::error::AuthError;
use crate::link::GuestLocks;
use crate::model::{Session, User, UserFields};
use crate::password::PasswordHasher;
use crate::ratelimit::RateLimiter;
use crate::session::cookies::CookieNames;
use crate::session::Current;
use crate::storage::{self, Store};
use crate::time::Clock;

pub struct Auth {
    pub cfg: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    pub hasher: PasswordHasher,
    pub limiter: RateLimiter,
    pub cookies: CookieNames,
    pub user_fields: UserFields,
    /// Present exactly when the anonymous plugin is on.
    pub anonymous_callbacks: Option<Arc<dyn AnonymousCallbacks>>,
    /// Present exactly when the username plugin is on.
    pub username_hooks: Option<Arc<dyn UsernameHooks>>,
    /// Present exactly when the magic-link plugin is on.
    pub magic_link_sender: Option<Arc<dyn MagicLinkSender>>,
    pub guest_locks: GuestLocks,
    /// Whether the database is in an episode of unavailability (logged once each).
    pub db_health: Arc<crate::storage::health::Health>,
}

impl Auth {
    pub async fn new(cfg: Config) -> Result<Auth, ConfigError> {
        Self::with_hooks(cfg, Hooks::default()).await
    }

    /// With the app's callbacks (each used only when its plugin is on).
    pub async fn with_hooks(cfg: Config, hooks: Hooks) -> Result<Auth, ConfigError> {
        if cfg.magic_link.is_some() && hooks.magic_link.is_none() {
            return Err(ConfigError::Invalid("magic_link needs send_magic_link(email, url, token, ctx)".into()));
        }
        let timeout = std::time::Duration::from_secs_f64(cfg.advanced.database_timeout);
        let store = storage::open(&cfg.database, cfg.advanced.database_pool_size, timeout).await?;
        Ok(Self::with_store(cfg, store, hooks))
    }

    pub fn with_store(cfg: Config, store: Arc<dyn Store>, hooks: Hooks) -> Auth {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let none = || Arc::new(NoCallbacks);
        let anonymous_callbacks =
            cfg.anonymous.as_ref().map(|_| hooks.anonymous.unwrap_or_else(|| none() as Arc<dyn AnonymousCallbacks>));
        let username_hooks =
            cfg.username.as_ref().map(|_| hooks.username.unwrap_or_else(|| none() as Arc<dyn UsernameHooks>));
        let magic_link_sender = cfg.magic_link.as_ref().and(hooks.magic_link);
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
        }
        Auth {
            cookies: CookieNames::new(&cfg),
            limiter: RateLimiter::new(cfg.rate_limit.clone(), plugin_rules),
            hasher: PasswordHasher::new(cores),
            clock: Clock::default(),
            user_fields: UserFields { anonymous: anonymous_callbacks.is_some(), username: username_hooks.is_some() },
            anonymous_callbacks,
            username_hooks,
            magic_link_sender,
            guest_locks: GuestLocks::default(),
            db_health: Arc::default(),
            store,
            cfg: Arc::new(cfg),
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

    /// The live session and user for app code; refreshes the expiry like get-session.
    pub async fn session_for_headers(
        &self,
        headers: Vec<(String, String)>,
    ) -> Result<Option<(Session, User)>, AuthError> {
        let req = Request { headers, ..Request::new("GET", "/get-session") };
        match self.current_session(&req).await? {
            Current::Valid { mut session, user, dont_remember } => {
                let refresh = if dont_remember { None } else { self.refresh(&mut session, user.is_anonymous) };
                if let Some(op) = refresh {
                    self.store.apply(vec![op]).await?;
                }
                Ok(Some((session, user)))
            }
            _ => Ok(None),
        }
    }

    /// Seconds a new or refreshed session of this user lives (guests may have their own lifetime).
    pub fn session_lifetime(&self, anonymous: bool) -> i64 {
        let guest = if anonymous { self.cfg.anonymous.as_ref().and_then(|a| a.expires_in) } else { None };
        guest.unwrap_or(self.cfg.session.expires_in)
    }

    /// Whether guests may become registered accounts (`anonymous(allow_linking=...)`).
    pub fn allows_linking(&self) -> bool {
        self.cfg.anonymous.as_ref().is_none_or(|a| a.allow_linking)
    }

    /// Hands an event to the app's `on_event`, if it has one (nothing is built
    /// otherwise); never waits.
    pub fn emit(&self, kind: EventKind, user_id: Option<&str>, new_user_id: Option<&str>, from: &EventOrigin<'_>) {
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

    pub async fn close(&self) {
        self.store.close().await;
    }
}
