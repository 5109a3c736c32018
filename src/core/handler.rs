//! The request pipeline (spec §1.3): rate limit → route → origin check →
//! endpoint → commit of the endpoint's staged writes in one transaction → response.

use std::sync::Arc;

use serde::Serialize;

use crate::auth::Auth;
use crate::core::hooks::{CallbackRequest, EventKind, EventOrigin};
use crate::core::request::Request;
use crate::core::response::Response;
use crate::core::router::Route;
use crate::core::{origin, router};
use crate::error::AuthError;
use crate::link::{self, Conversion, StoreErrorOr};
use crate::model::{Session, User};
use crate::session::Current;
use crate::storage::{Constraint, StoreError, WriteOp};

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
    pub fn event(mut self, kind: EventKind, user_id: &str) -> Self {
        self.events.push((kind, user_id.to_owned(), None));
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

impl Ctx<'_> {
    /// The request's own session, looked up once however many steps ask for it
    /// (an endpoint and the conversion hook).
    pub async fn current(&self) -> Result<&Current, AuthError> {
        self.current.get_or_try_init(|| self.auth.current_session(self.req)).await
    }
}

impl Auth {
    pub fn client_ip(&self, req: &Request) -> Option<String> {
        crate::net::client_ip(req.peer_ip.as_deref(), req.header("x-forwarded-for"), &self.cfg.trusted_proxies)
    }

    /// Serves one request. Never panics and never fails: every error becomes its response.
    pub async fn handle(self: &Arc<Self>, req: Request) -> Response {
        match self.process(&req).await {
            Ok(resp) => resp,
            Err(e) => {
                if let AuthError::DatabaseUnavailable(detail) = &e {
                    self.db_health.failed(&self.store, detail);
                }
                e.to_response()
            }
        }
    }

    async fn process(self: &Arc<Self>, req: &Request) -> Result<Response, AuthError> {
        if req.http_version == "HTTP/1.1" && req.header("host").is_none_or(str::is_empty) {
            return Err(AuthError::MissingHost);
        }
        let client_ip = self.client_ip(req);
        let now = self.clock.now_ms();
        if let Err(e) = self.limiter.check(self.store.as_ref(), &req.path, client_ip.as_deref(), now).await {
            if matches!(e, AuthError::TooManyRequests { .. }) {
                let from = EventOrigin { ip: client_ip.as_deref(), path: Some(&req.path), extension: &req.extension };
                self.emit(EventKind::RateLimited, None, None, &from);
            }
            return Err(e);
        }
        let route = router::route(&req.method, &req.path, self.plugins()).ok_or(AuthError::NotFound)?;
        if req.body.len() > self.cfg.advanced.max_body_size {
            return Err(AuthError::PayloadTooLarge(self.cfg.advanced.max_body_size));
        }
        origin::check_cookie_origin(&self.cfg, req)?;
        let ctx = Ctx { auth: self, req, client_ip, current: tokio::sync::OnceCell::new() };
        let mut outcome = route.run(&ctx).await?;
        match (self.commit(&ctx, route, &mut outcome).await, outcome.error_redirect.take()) {
            (Ok(()), _) => {
                let from =
                    EventOrigin { ip: ctx.client_ip.as_deref(), path: Some(&req.path), extension: &req.extension };
                for (kind, user_id, new_user_id) in &outcome.events {
                    self.emit(*kind, Some(user_id), new_user_id.as_deref(), &from);
                }
                Ok(outcome.response)
            }
            (Err(e), Some(url)) => Ok(Response::redirect_with_error(&url, e.redirect_code())),
            (Err(e), None) => Err(e),
        }
    }

    pub fn plugins(&self) -> router::Plugins {
        router::Plugins {
            anonymous: self.anonymous_callbacks.is_some(),
            username: self.username_hooks.is_some(),
            magic_link: self.magic_link_sender.is_some(),
            passkey: self.cfg.passkey.is_some(),
        }
    }

    /// Commits the endpoint's writes, through a guest conversion when one is due.
    async fn commit(self: &Arc<Self>, ctx: &Ctx<'_>, route: Route, outcome: &mut Outcome) -> Result<(), AuthError> {
        let (on_conflict, on_used) = (outcome.on_conflict.take(), outcome.on_used.take());
        let store_error = |e: StoreError| match (e, &on_conflict, &on_used) {
            (StoreError::Conflict(Constraint::UserEmail | Constraint::UserUsername), Some(err), _) => err.clone(),
            (StoreError::Conflict(Constraint::Verification), _, Some(err)) => err.clone(),
            (e, _, _) => AuthError::from(e),
        };
        match self.conversion(ctx, route, outcome).await? {
            None => self.store.apply(std::mem::take(&mut outcome.writes)).await.map_err(store_error)?,
            Some(conversion) => {
                let (guest, new_user) = (conversion.guest_user.id.clone(), conversion.new_user.id.clone());
                match tokio::spawn(self.clone().convert(conversion)).await {
                    Ok(Ok(linked)) => {
                        if linked && guest != new_user {
                            outcome.events.push((EventKind::Linked, guest, Some(new_user)));
                        }
                    }
                    Ok(Err(StoreErrorOr::Store(e))) => return Err(store_error(e)),
                    Ok(Err(StoreErrorOr::Auth(e))) => return Err(e),
                    Err(e) => return Err(AuthError::internal(format!("conversion task failed: {e}"))),
                }
            }
        }
        Ok(())
    }

    /// A conversion when the endpoint minted a session while the request carried a guest's.
    async fn conversion(
        &self,
        ctx: &Ctx<'_>,
        route: Route,
        outcome: &mut Outcome,
    ) -> Result<Option<Conversion>, AuthError> {
        if self.anonymous_callbacks.is_none()
            || !self.allows_linking()
            || !link::converts(route.path())
            || outcome.new_session.is_none()
        {
            return Ok(None);
        }
        let Some(new_user) = outcome.new_user.clone() else { return Ok(None) };
        let Current::Valid { session, user, .. } = ctx.current().await? else { return Ok(None) };
        if !user.is_anonymous {
            return Ok(None);
        }
        Ok(Some(Conversion {
            guest_session: session.clone(),
            guest_user: user.clone(),
            new_user,
            writes: std::mem::take(&mut outcome.writes),
            request: CallbackRequest::of(ctx.req, ctx.client_ip.clone()),
        }))
    }
}
