//! The request pipeline (spec §1.3): rate limit → route → origin check →
//! endpoint → commit of the endpoint's staged writes in one transaction → response.

use serde::Serialize;

use crate::auth::Auth;
use crate::core::request::Request;
use crate::core::response::Response;
use crate::core::{origin, router};
use crate::error::AuthError;
use crate::model::Session;
use crate::storage::WriteOp;

/// What an endpoint decided: the response it wants and the writes that must
/// commit, all together, before that response may be sent.
#[derive(Debug)]
pub struct Outcome {
    pub response: Response,
    pub writes: Vec<WriteOp>,
    /// The session this request minted, if any (what the guest-conversion hook keys on).
    pub new_session: Option<Session>,
}

impl Outcome {
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        Outcome {
            response: Response::json(200, value),
            writes: Vec::new(),
            new_session: None,
        }
    }

    pub fn cookies(mut self, cookies: impl IntoIterator<Item = String>) -> Self {
        self.response
            .headers
            .extend(cookies.into_iter().map(|c| ("set-cookie".to_owned(), c)));
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

    pub fn minted(mut self, session: Session) -> Self {
        self.new_session = Some(session);
        self
    }
}

/// One request as an endpoint sees it.
pub struct Ctx<'a> {
    pub auth: &'a Auth,
    pub req: &'a Request,
    pub client_ip: Option<String>,
}

impl Auth {
    pub fn client_ip(&self, req: &Request) -> Option<String> {
        crate::net::client_ip(
            req.peer_ip.as_deref(),
            req.header("x-forwarded-for"),
            &self.cfg.trusted_proxies,
        )
    }

    /// Serves one request. Never panics and never fails: every error becomes its response.
    pub async fn handle(&self, req: Request) -> Response {
        match self.process(&req).await {
            Ok(resp) => resp,
            Err(e) => e.to_response(),
        }
    }

    async fn process(&self, req: &Request) -> Result<Response, AuthError> {
        let client_ip = self.client_ip(req);
        self.limiter
            .check(&req.path, client_ip.as_deref(), self.clock.now_ms())?;
        let route = router::route(&req.method, &req.path).ok_or(AuthError::NotFound)?;
        if req.body.len() > self.cfg.advanced.max_body_size {
            return Err(AuthError::PayloadTooLarge(self.cfg.advanced.max_body_size));
        }
        origin::check_cookie_origin(&self.cfg, req)?;
        let ctx = Ctx {
            auth: self,
            req,
            client_ip,
        };
        let outcome = route.run(&ctx).await?;
        self.store.apply(outcome.writes).await?;
        Ok(outcome.response)
    }
}
