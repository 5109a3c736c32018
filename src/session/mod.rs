//! Sessions: create, look up, refresh, revoke (spec §2.4, §11). The service the
//! engine owns; the routes that expose it are in `routes/session.rs`.

pub mod cache;
pub mod cookies;
mod verified;

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::{new_id, new_session_token};
use crate::error::AuthError;
use crate::http::request::Request;
use crate::model::{Session, User};
use crate::storage::{Store, WriteOp};
use crate::time::Clock;

use cache::{Cached, CookieCache};
use cookies::CookieNames;
use verified::Verified;

/// `rememberMe: false` sessions live one day, whatever `expires_in` says.
const DONT_REMEMBER_LIFETIME_S: i64 = 86_400;
/// Verified signed-cookie values remembered at most (see [`Verified`]).
const SIGNED_MAX: usize = 4096;

/// What the request's cookies say about its session.
// Lives for one call only: boxing the large variant would cost an allocation per get-session.
#[allow(clippy::large_enum_variant)]
pub enum Current {
    /// No cookie, or one whose signature does not verify.
    None,
    /// A signed cookie whose session is gone or expired.
    Stale {
        token: String,
        expired_row: bool,
    },
    Valid {
        session: Session,
        user: User,
        dont_remember: bool,
    },
}

/// How an app's session check begins ([`Sessions::app_check`]).
// Lives for one call only, as `Current` does.
#[allow(clippy::large_enum_variant)]
enum AppCheck {
    Answered(Option<(Session, User)>),
    Lookup(Request, String),
}

/// Sessions and their cookies.
pub struct Sessions {
    cfg: Arc<Config>,
    store: Arc<dyn Store>,
    clock: Clock,
    pub cookies: CookieNames,
    pub cache: CookieCache,
    /// Signed cookie values (the session token, "don't remember me") whose signature
    /// verified, and what they carry.
    signed: Verified<String>,
}

impl Sessions {
    pub fn new(cfg: Arc<Config>, store: Arc<dyn Store>, clock: Clock) -> Self {
        let cache = CookieCache::new(&cfg.session, cfg.user_fields());
        Sessions { cookies: CookieNames::new(&cfg), cache, cfg, store, clock, signed: Verified::new(SIGNED_MAX) }
    }

    /// Seconds a new or refreshed session of this user lives (guests may have their own lifetime).
    pub fn lifetime(&self, anonymous: bool) -> i64 {
        let guest = if anonymous { self.cfg.anonymous.as_ref().and_then(|a| a.expires_in) } else { None };
        guest.unwrap_or(self.cfg.session.expires_in)
    }

    /// The signed session token carried by the request, if its signature verifies.
    pub fn token(&self, req: &Request) -> Option<String> {
        self.signed_cookie(req, &self.cookies.session_token).map(|token| String::clone(&token))
    }

    pub fn dont_remember(&self, req: &Request) -> bool {
        self.signed_cookie(req, &self.cookies.dont_remember).is_some_and(|v| *v == "true")
    }

    /// The value of the signed cookie `name`, if its signature verifies (each value is
    /// verified once, then remembered).
    fn signed_cookie(&self, req: &Request, name: &str) -> Option<Arc<String>> {
        let raw = req.cookie(name)?;
        self.signed.get_or_verify(raw, |raw| self.cfg.signer.verify_cookie_value(raw))
    }

    /// One indexed lookup: the session and its user, if the cookie is valid and the session live.
    ///
    /// On the async workers this is awaited on the store's reader threads. Reading on the
    /// worker instead (as [`Sessions::for_headers_now`] does) showed no clear gain for native
    /// get-session: in paired A/B rounds (SQLite, 16 connections) one series favoured it
    /// and another did not, within the machine's noise, and CPU per request was the same.
    pub async fn current(&self, req: &Request) -> Result<Current, AuthError> {
        let Some(token) = self.token(req) else {
            return Ok(Current::None);
        };
        self.lookup(req, token).await
    }

    /// [`Sessions::current`] for a token already read from the request's cookie.
    pub async fn lookup(&self, req: &Request, token: String) -> Result<Current, AuthError> {
        let found = self.store.session_with_user(&token).await?;
        Ok(self.classify(req, token, found))
    }

    /// What the request's cookie cache holds for the session of `token` (see
    /// [`CookieCache::read`]); `use_cache` false when the caller wants the database.
    pub fn cached(&self, req: &Request, token: &str, use_cache: bool) -> Cached {
        self.cache.read(&self.cfg.signer, &self.cookies, req, token, use_cache, self.clock.now_ms())
    }

    fn classify(&self, req: &Request, token: String, found: Option<(Session, User)>) -> Current {
        match found {
            None => Current::Stale { token, expired_row: false },
            Some((session, _)) if session.expires_at <= self.clock.now_ms() => {
                Current::Stale { token, expired_row: true }
            }
            Some((session, user)) => Current::Valid { session, user, dont_remember: self.dont_remember(req) },
        }
    }

    /// A new session row for `user_id`, with a guest's lifetime when `anonymous`;
    /// `remember: false` makes it a one-day session.
    pub fn create(
        &self,
        user_id: &str,
        anonymous: bool,
        remember: bool,
        req: &Request,
        client_ip: Option<&str>,
    ) -> Session {
        let now = self.clock.now_ms();
        let lifetime = if remember { self.lifetime(anonymous) } else { DONT_REMEMBER_LIFETIME_S };
        Session {
            id: new_id(),
            token: new_session_token(),
            user_id: user_id.to_owned(),
            expires_at: now + lifetime * 1000,
            created_at: now,
            updated_at: now,
            ip_address: Some(client_ip.unwrap_or("").to_owned()),
            user_agent: Some(req.header("user-agent").unwrap_or("").to_owned()),
        }
    }

    /// `Set-Cookie` values for a session of `user` (Better Auth's `setSessionCookie`),
    /// with a guest's lifetime as Max-Age for a guest. Without `remember` the token is a
    /// browser-session cookie and a signed `dont_remember` flag goes with it. With the
    /// cookie cache on, `session_data` caches the session and user as given.
    pub fn cookies_for(&self, session: &Session, user: &User, remember: bool) -> Vec<String> {
        let value = self.cfg.signer.sign_cookie_value(&session.token);
        let mut cookies = if remember {
            vec![self.cookies.set(&self.cookies.session_token, &value, Some(self.lifetime(user.is_anonymous)))]
        } else {
            let flag = self.cfg.signer.sign_cookie_value("true");
            vec![
                self.cookies.set(&self.cookies.session_token, &value, None),
                self.cookies.set(&self.cookies.dont_remember, &flag, None),
            ]
        };
        cookies.extend(self.cache_cookies(session, user, remember));
        cookies
    }

    /// The `session_data` cookie alone (none with the cache off), for an answer whose
    /// session stays but whose user or expiry changed.
    pub fn cache_cookies(&self, session: &Session, user: &User, remember: bool) -> Vec<String> {
        self.cache.write(&self.cfg.signer, &self.cookies, session, user, remember, self.clock.now_ms())
    }

    /// Whether the session's last refresh is `update_age` old (spec §11.1 step 5).
    fn due_for_refresh(&self, session: &Session, anonymous: bool) -> bool {
        let s = &self.cfg.session;
        let last_refresh = session.expires_at - self.lifetime(anonymous) * 1000;
        !s.disable_session_refresh && self.clock.now_ms() >= last_refresh + s.update_age * 1000
    }

    /// Pushes the expiry forward when the last refresh is `update_age` old (spec
    /// §11.1 step 5): updates `session` and returns the write that persists it.
    pub fn refresh(&self, session: &mut Session, anonymous: bool) -> Option<WriteOp> {
        if !self.due_for_refresh(session, anonymous) {
            return None;
        }
        let now = self.clock.now_ms();
        session.expires_at = now + self.lifetime(anonymous) * 1000;
        session.updated_at = now;
        Some(WriteOp::RefreshSession {
            id: session.id.clone(),
            token: session.token.clone(),
            expires_at: session.expires_at,
            updated_at: now,
        })
    }

    /// The start of an app's check: answered when there is no signed cookie or the cookie
    /// cache holds the session, else the request and token to look up.
    fn app_check(&self, headers: Vec<(String, String)>, use_cache: bool) -> AppCheck {
        let req = Request { headers, ..Request::new("GET", "/get-session") };
        let Some(token) = self.token(&req) else {
            return AppCheck::Answered(None);
        };
        match self.cached(&req, &token, use_cache) {
            Cached::Hit(hit) => AppCheck::Answered(Some((hit.session.clone(), hit.user.clone()))),
            _ => AppCheck::Lookup(req, token),
        }
    }

    /// [`Sessions::for_headers`] on the calling thread, for app code checking a session on
    /// its own endpoints: `None` when the answer needs a write (a refresh that is due, an
    /// expired row to delete) or the store cannot read at once; the caller then awaits
    /// `for_headers`, which does the same and more.
    /// With `use_cache` the cookie cache answers when it holds the session, as it does
    /// for get-session, with no read at all.
    pub fn for_headers_now(
        &self,
        headers: Vec<(String, String)>,
        use_cache: bool,
    ) -> Option<Result<Option<(Session, User)>, AuthError>> {
        let (req, token) = match self.app_check(headers, use_cache) {
            AppCheck::Answered(answered) => return Some(Ok(answered)),
            AppCheck::Lookup(req, token) => (req, token),
        };
        let found = match self.store.session_with_user_now(&token)? {
            Ok(found) => found,
            Err(e) => return Some(Err(e.into())),
        };
        match self.classify(&req, token, found) {
            Current::Valid { session, user, dont_remember } => {
                let write_due = !dont_remember && self.due_for_refresh(&session, user.is_anonymous);
                (!write_due).then_some(Ok(Some((session, user))))
            }
            Current::Stale { expired_row: true, .. } => None,
            _ => Some(Ok(None)),
        }
    }

    /// The live session and user for app code; refreshes the expiry like get-session.
    pub async fn for_headers(
        &self,
        headers: Vec<(String, String)>,
        use_cache: bool,
    ) -> Result<Option<(Session, User)>, AuthError> {
        let (req, token) = match self.app_check(headers, use_cache) {
            AppCheck::Answered(answered) => return Ok(answered),
            AppCheck::Lookup(req, token) => (req, token),
        };
        match self.lookup(&req, token).await? {
            Current::Valid { mut session, user, dont_remember } => {
                let refresh = if dont_remember { None } else { self.refresh(&mut session, user.is_anonymous) };
                if let Some(op) = refresh {
                    self.store.apply(vec![op]).await?;
                }
                Ok(Some((session, user)))
            }
            // As `GET /get-session` does: an expired row is deleted when it is seen.
            Current::Stale { token, expired_row: true } => {
                self.store.apply(vec![WriteOp::DeleteExpiredSession(token)]).await?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }
}
