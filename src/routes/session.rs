//! The session routes (spec §11): `GET /get-session`, `POST /sign-out`, the
//! health check `GET /ok`, and `GET /error`, the page Better Auth's links fall back to.

use serde_json::Value;

use crate::endpoint::{Ctx, Outcome, RouteDef};
use crate::error::AuthError;
use crate::model::{SessionJson, UserJson};
use crate::route;
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
    let response = crate::http::response::Response {
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

pub async fn get_session(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    match auth.sessions.current(ctx.req).await? {
        Current::None => Ok(no_store(Outcome::json(&Value::Null))),
        Current::Stale { token, expired_row } => {
            let out = no_store(Outcome::json(&Value::Null)).cookies(auth.sessions.cookies.expire_session());
            Ok(if expired_row { out.writes([WriteOp::DeleteSessionByToken(token)]) } else { out })
        }
        Current::Valid { mut session, user, dont_remember } => {
            let guest = user.is_anonymous;
            let refresh = if dont_remember || flag(ctx, "disableRefresh") {
                None
            } else {
                auth.sessions.refresh(&mut session, guest)
            };
            let cookies = if refresh.is_some() { auth.sessions.cookies_for(&session, guest, true) } else { Vec::new() };
            let body =
                serde_json::json!({ "session": SessionJson(&session), "user": UserJson(&user, auth.user_fields) });
            Ok(no_store(Outcome::json(&body)).cookies(cookies).writes(refresh))
        }
    }
}

pub async fn sign_out(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let revoke = auth.sessions.token(ctx.req).map(WriteOp::DeleteSessionByToken);
    Ok(Outcome::json(&serde_json::json!({ "success": true }))
        .cookies(auth.sessions.cookies.expire_session())
        .writes(revoke))
}
