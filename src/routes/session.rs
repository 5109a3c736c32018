//! The session routes (spec §11): `GET /get-session`, `POST /sign-out`, the
//! health check `GET /ok`, and `GET /error`, the page Better Auth's links fall back to.

use serde_json::Value;

use crate::auth::Auth;
use crate::endpoint::{Ctx, Outcome, RouteDef};
use crate::error::AuthError;
use crate::http::response::Response;
use crate::model::{Session, SessionAndUserJson, User};
use crate::route;
use crate::session::cache::Cached;
use crate::session::Current;
use crate::storage::WriteOp;

pub const ROUTES: &[RouteDef] = &[
    route!("GET", "/ok", ok),
    route!("GET", "/error", error_page),
    route!("GET", "/get-session", get_session),
    route!("POST", "/get-session", get_session_post),
    route!("POST", "/sign-out", sign_out),
];

async fn ok(_: &Ctx<'_>) -> Result<Outcome, AuthError> {
    Ok(Outcome::json(&serde_json::json!({ "ok": true })))
}

/// `GET /error?error=<CODE>&error_description=`: a plain HTML page naming the error,
/// where a link with nowhere else to go lands (a reset link mailed without `redirectTo`).
async fn error_page(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    fn escape(s: &str) -> String {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
    }
    let code = escape(&ctx.req.query_param("error").filter(|c| !c.is_empty()).unwrap_or_else(|| "UNKNOWN".into()));
    let description =
        ctx.req.query_param("error_description").map(|d| format!("<p>{}</p>", escape(&d))).unwrap_or_default();
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authentication error</title></head>\n\
         <body><h1>Something went wrong</h1><p>Error code: <code>{code}</code></p>{description}\n\
         <p><a href=\"/\">Back to the start</a></p></body></html>\n"
    );
    let response = Response {
        status: 200,
        headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
        body: html.into_bytes(),
    };
    Ok(Outcome::response(response))
}

/// Better Auth declares get-session for GET and POST, then refuses POST.
async fn get_session_post(_: &Ctx<'_>) -> Result<Outcome, AuthError> {
    Err(AuthError::MethodNotAllowedDeferSessionRequired)
}

fn no_store(o: Outcome) -> Outcome {
    o.header("cache-control", "no-store").header("pragma", "no-cache")
}

/// Any non-empty value counts as set, as with Better Auth's boolean coercion.
fn flag(ctx: &Ctx<'_>, name: &str) -> bool {
    ctx.req.query_param(name).is_some_and(|v| !v.is_empty())
}

/// Spec §11.1: the cookie cache first (when on and not `disableCookieCache`), then the
/// database, refreshing the session when due. A `session_data` cookie that is broken, or
/// that may not answer, is expired; a database answer caches the session anew.
pub async fn get_session(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let sessions = &auth.sessions;
    let Some(token) = sessions.token(ctx.req) else {
        return Ok(no_store(Outcome::json(&Value::Null)));
    };
    let mut cookies = Vec::new();
    match sessions.cached(ctx.req, &token, !flag(ctx, "disableCookieCache")) {
        Cached::Hit(hit) => return Ok(no_store(Outcome::response(Response::json_text(200, hit.answer_json())))),
        Cached::Invalid | Cached::Stale => cookies.push(sessions.cookies.expire(&sessions.cookies.session_data)),
        Cached::Absent => {}
    }
    match sessions.lookup(ctx.req, token).await? {
        Current::None => unreachable!("a token was read"),
        Current::Stale { token, expired_row } => {
            let out = no_store(Outcome::json(&Value::Null)).cookies(sessions.cookies.expire_session());
            Ok(if expired_row { out.writes([WriteOp::DeleteExpiredSession(token)]) } else { out })
        }
        Current::Valid { session, user, dont_remember } if dont_remember || flag(ctx, "disableRefresh") => {
            Ok(no_store(answer(&session, &user, auth)).cookies(cookies))
        }
        Current::Valid { mut session, user, .. } => {
            let refresh = sessions.refresh(&mut session, user.is_anonymous);
            cookies.extend(if refresh.is_some() {
                sessions.cookies_for(&session, &user, true)
            } else {
                sessions.cache_cookies(&session, &user, true)
            });
            Ok(no_store(answer(&session, &user, auth)).cookies(cookies).writes(refresh))
        }
    }
}

fn answer(session: &Session, user: &User, auth: &Auth) -> Outcome {
    Outcome::json(&SessionAndUserJson(session, user, auth.user_fields))
}

pub async fn sign_out(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let revoke = auth.sessions.token(ctx.req).map(WriteOp::DeleteSessionByToken);
    Ok(Outcome::json(&serde_json::json!({ "success": true }))
        .cookies(auth.sessions.cookies.expire_session())
        .writes(revoke))
}
