//! What an endpoint is: a function from a request's [`Ctx`] to an [`Outcome`]
//! (the response and the writes to commit), declared in a route table of
//! [`RouteDef`]s. Endpoints live in `routes/`; the pipeline runs them.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use crate::auth::Auth;
use crate::callbacks::{AccountCallback, EventKind, Mail};
pub use crate::config::Plugin;
use crate::error::AuthError;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::model::{Session, User};
use crate::session::Current;
use crate::storage::{GuestOutcome, WriteOp};

/// An endpoint's future, boxed so that every endpoint has one type.
pub type EndpointFuture<'a> = Pin<Box<dyn Future<Output = Result<Outcome, AuthError>> + Send + 'a>>;

/// An endpoint as a route table holds it (see [`endpoint!`](crate::endpoint!)).
pub type Endpoint = for<'a, 'b> fn(&'a Ctx<'b>) -> EndpointFuture<'a>;

/// One route: everything the pipeline needs to know about it.
pub struct RouteDef {
    pub method: &'static str,
    /// Relative to the base path; matched exactly.
    pub path: &'static str,
    pub endpoint: Endpoint,
    /// The plugin that serves it; `None`: always served.
    pub plugin: Option<Plugin>,
    /// The sign-in method, when it signs someone in with a new session (what converts
    /// a guest who makes the request: spec §7.3; the method is what the guest funnel
    /// counts conversions by). The endpoint reports the session with [`Outcome::minted`].
    pub signs_in: Option<&'static str>,
}

impl RouteDef {
    pub fn mints_session(&self) -> bool {
        self.signs_in.is_some()
    }
}

/// A [`RouteDef`] entry: `route!("POST", "/sign-in/email", sign_in, signs_in = "email")`,
/// `route!("GET", "/passkey/list-user-passkeys", list, plugin = Passkey)`.
#[macro_export]
macro_rules! route {
    (@def $method:literal, $path:literal, $endpoint:path, $plugin:expr, $signs_in:expr) => {
        $crate::endpoint::RouteDef {
            method: $method,
            path: $path,
            endpoint: {
                fn run<'a, 'b>(ctx: &'a $crate::endpoint::Ctx<'b>) -> $crate::endpoint::EndpointFuture<'a> {
                    Box::pin($endpoint(ctx))
                }
                run
            },
            plugin: $plugin,
            signs_in: $signs_in,
        }
    };
    ($method:literal, $path:literal, $endpoint:path) => {
        $crate::route!(@def $method, $path, $endpoint, None, None)
    };
    ($method:literal, $path:literal, $endpoint:path, signs_in = $how:literal) => {
        $crate::route!(@def $method, $path, $endpoint, None, Some($how))
    };
    ($method:literal, $path:literal, $endpoint:path, plugin = $plugin:ident) => {
        $crate::route!(@def $method, $path, $endpoint, Some($crate::endpoint::Plugin::$plugin), None)
    };
    ($method:literal, $path:literal, $endpoint:path, plugin = $plugin:ident, signs_in = $how:literal) => {
        $crate::route!(@def $method, $path, $endpoint, Some($crate::endpoint::Plugin::$plugin), Some($how))
    };
}

/// How a guest's time as a guest ended in a request (see [`WriteOp::GuestEnded`]).
#[derive(Debug, Clone)]
pub struct GuestEnding {
    pub id: String,
    pub created_ms: i64,
    pub outcome: GuestOutcome,
    pub method: Option<&'static str>,
}

impl GuestEnding {
    fn of(guest: &User, outcome: GuestOutcome, method: Option<&'static str>) -> Self {
        GuestEnding { id: guest.id.clone(), created_ms: guest.created_at, outcome, method }
    }

    pub fn write(self, at_ms: i64) -> WriteOp {
        let GuestEnding { id, created_ms, outcome, method } = self;
        WriteOp::GuestEnded { id, created_ms, outcome, method, at_ms }
    }
}

/// What an endpoint decided: the response it wants and the writes that must
/// commit, all together, before that response may be sent.
#[derive(Debug)]
pub struct Outcome {
    pub response: Response,
    pub writes: Vec<WriteOp>,
    /// The session this request minted and its user (what the guest-conversion hook keys on).
    pub new_session: Option<Session>,
    pub new_user: Option<User>,
    /// The error to answer with if the writes hit a unique constraint of the user table.
    pub on_conflict: Option<AuthError>,
    /// The error to answer with if a verification row to consume was already used.
    pub on_used: Option<AuthError>,
    /// Where a failure after the endpoint (commit, conversion) sends the browser,
    /// with `?error=<code>`, instead of answering with JSON (navigations, spec §9.2).
    pub error_redirect: Option<String>,
    /// Guest events to report once the writes are committed: kind, user id, new user id.
    pub events: Vec<(EventKind, String, Option<String>)>,
    /// A guest whose time as a guest ends here (upgraded in place, deleted), for the
    /// guest funnel: written with the writes.
    pub guest_ended: Option<GuestEnding>,
    /// The app's hooks and mails that run once the writes are committed.
    pub after: Vec<AfterCommit>,
}

/// App code that must run only for writes that happened: awaited after the commit,
/// before the response; a failure there is logged and does not change the answer.
#[derive(Debug)]
pub enum AfterCommit {
    /// `hook(user, ctx)`.
    Notify(AccountCallback, User),
    /// A mail through the app's sender.
    Send(AccountCallback, Mail),
    /// A one-time code through the email-OTP plugin's sender.
    SendOtp { email: String, otp: String, kind: String },
}

impl Outcome {
    /// Any response, with nothing staged yet.
    pub fn response(response: Response) -> Self {
        Outcome {
            response,
            writes: Vec::new(),
            new_session: None,
            new_user: None,
            on_conflict: None,
            on_used: None,
            error_redirect: None,
            events: Vec::new(),
            guest_ended: None,
            after: Vec::new(),
        }
    }

    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        Outcome::response(Response::json(200, value))
    }

    pub fn error_redirect(mut self, url: impl Into<String>) -> Self {
        self.error_redirect = Some(url.into());
        self
    }

    pub fn cookies(mut self, cookies: impl IntoIterator<Item = String>) -> Self {
        self.response.headers.extend(cookies.into_iter().map(|c| ("set-cookie".to_owned(), c)));
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.response.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn writes(mut self, ops: impl IntoIterator<Item = WriteOp>) -> Self {
        self.writes.extend(ops);
        self
    }

    pub fn minted(mut self, session: Session, user: User) -> Self {
        self.new_session = Some(session);
        self.new_user = Some(user);
        self
    }

    pub fn on_conflict(mut self, err: AuthError) -> Self {
        self.on_conflict = Some(err);
        self
    }

    /// Reports `kind` for `user_id` to the app's `on_event` once the writes commit.
    /// Guests created and deleted are written to the guest funnel with the writes.
    pub fn event(mut self, kind: EventKind, user_id: &str) -> Self {
        self.events.push((kind, user_id.to_owned(), None));
        self
    }

    /// The guest became a registered account in place, by `method`.
    pub fn upgraded(mut self, guest: &User, method: &'static str) -> Self {
        self.guest_ended = Some(GuestEnding::of(guest, GuestOutcome::Upgraded, Some(method)));
        self.event(EventKind::Upgraded, &guest.id)
    }

    /// The guest deleted itself.
    pub fn guest_deleted(mut self, guest: &User) -> Self {
        self.guest_ended = Some(GuestEnding::of(guest, GuestOutcome::Deleted, None));
        self.event(EventKind::Deleted, &guest.id)
    }

    /// Runs `work` once the writes are committed.
    pub fn after_commit(mut self, work: impl IntoIterator<Item = AfterCommit>) -> Self {
        self.after.extend(work);
        self
    }

    pub fn on_used(mut self, err: AuthError) -> Self {
        self.on_used = Some(err);
        self
    }
}

/// One request as an endpoint sees it.
pub struct Ctx<'a> {
    pub auth: &'a Auth,
    pub req: &'a Request,
    pub client_ip: Option<String>,
    current: tokio::sync::OnceCell<Current>,
}

impl<'a> Ctx<'a> {
    pub fn new(auth: &'a Auth, req: &'a Request, client_ip: Option<String>) -> Self {
        Ctx { auth, req, client_ip, current: tokio::sync::OnceCell::new() }
    }

    /// The request's own session, looked up once however many steps ask for it
    /// (an endpoint and the conversion hook).
    pub async fn current(&self) -> Result<&Current, AuthError> {
        self.current.get_or_try_init(|| self.auth.sessions.current(self.req)).await
    }

    /// The signed-in session and its user, or 401 `UNAUTHORIZED` (account-routes
    /// §1.2: "session" and "sensitive" are one level here, as every session is read
    /// from the database).
    pub async fn signed_in(&self) -> Result<SignedIn<'_>, AuthError> {
        match self.current().await? {
            Current::Valid { session, user, dont_remember } => {
                Ok(SignedIn { session, user, remember: !*dont_remember })
            }
            _ => Err(AuthError::Unauthorized),
        }
    }

    /// [`Ctx::signed_in`], and signed in less than `session.fresh_age` ago (403
    /// `SESSION_NOT_FRESH`); freshness counts from the session's creation.
    pub async fn fresh(&self) -> Result<SignedIn<'_>, AuthError> {
        let signed_in = self.signed_in().await?;
        if !signed_in.is_fresh(self.auth) {
            return Err(AuthError::SessionNotFresh);
        }
        Ok(signed_in)
    }

    /// Whether the request carried a signed session cookie whose session is gone:
    /// a 401 then also expires the cookies, as Better Auth's session check does.
    pub fn had_dead_session(&self) -> bool {
        matches!(self.current.get(), Some(Current::Stale { .. }))
    }
}

/// A request's valid session.
pub struct SignedIn<'a> {
    pub session: &'a Session,
    pub user: &'a User,
    /// Not a "don't remember me" session: its cookie has a `Max-Age`.
    pub remember: bool,
}

impl SignedIn<'_> {
    /// Created less than `session.fresh_age` ago (always, with `fresh_age` 0).
    pub fn is_fresh(&self, auth: &Auth) -> bool {
        let fresh_age = auth.cfg.session.fresh_age;
        fresh_age == 0 || auth.clock.now_ms() - self.session.created_at < fresh_age * 1000
    }

    /// The session cookie set again, with the same token, for the user as it now is
    /// (Better Auth's `setSessionCookie` after a change to the user).
    pub fn cookies_again(&self, auth: &Auth, user: &User) -> Vec<String> {
        auth.sessions.cookies_for(self.session, user, self.remember)
    }
}
