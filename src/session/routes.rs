//! `GET /get-session` and `POST /sign-out` (spec §11).

use serde_json::Value;

use crate::core::handler::{Ctx, Outcome};
use crate::error::AuthError;
use crate::model::{SessionJson, UserJson};
use crate::session::Current;
use crate::storage::WriteOp;

fn no_store(o: Outcome) -> Outcome {
    o.header("cache-control", "no-store").header("pragma", "no-cache")
}

/// Any non-empty value counts as set, as with Better Auth's boolean coercion.
fn flag(ctx: &Ctx<'_>, name: &str) -> bool {
    ctx.req.query_param(name).is_some_and(|v| !v.is_empty())
}

pub async fn get_session(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    match auth.current_session(ctx.req).await? {
        Current::None => Ok(no_store(Outcome::json(&Value::Null))),
        Current::Stale { token, expired_row } => {
            let out = no_store(Outcome::json(&Value::Null)).cookies(auth.cookies.expire_session());
            Ok(if expired_row { out.writes([WriteOp::DeleteSessionByToken(token)]) } else { out })
        }
        Current::Valid { mut session, user, dont_remember } => {
            let guest = user.is_anonymous;
            let refresh =
                if dont_remember || flag(ctx, "disableRefresh") { None } else { auth.refresh(&mut session, guest) };
            let cookies = if refresh.is_some() { auth.session_cookies_for(&session, guest, true) } else { Vec::new() };
            let body =
                serde_json::json!({ "session": SessionJson(&session), "user": UserJson(&user, auth.user_fields) });
            Ok(no_store(Outcome::json(&body)).cookies(cookies).writes(refresh))
        }
    }
}

pub async fn sign_out(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let revoke = auth.session_token(ctx.req).map(WriteOp::DeleteSessionByToken);
    Ok(Outcome::json(&serde_json::json!({ "success": true })).cookies(auth.cookies.expire_session()).writes(revoke))
}
