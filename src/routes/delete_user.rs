//! Deleting one's account (account-routes spec §4): `POST /delete-user` (with the
//! password, a fresh session, or a mailed link) and `GET /delete-user/callback`
//! (the mailed link). Off unless `user.delete_user.enabled`.

use serde_json::{json, Value};

use crate::callbacks::{AccountCallback, CallbackRequest, Mail};
use crate::crypto::{encode_uri_component, random_string};
use crate::endpoint::{AfterCommit, Ctx, Outcome, RouteDef, SignedIn};
use crate::error::{AuthError, UrlField};
use crate::http::body::{query_text, Body};
use crate::http::origin::check_callback_url;
use crate::http::response::Response;
use crate::route;
use crate::routes::password_account::check_current_password;
use crate::routes::tokens;
use crate::storage::WriteOp;

pub const ROUTES: &[RouteDef] =
    &[route!("POST", "/delete-user", delete_user), route!("GET", "/delete-user/callback", delete_user_callback)];

fn identifier(token: &str) -> String {
    format!("delete-account-{token}")
}

fn deleted() -> Outcome {
    Outcome::json(&json!({ "success": true, "message": "User deleted" }))
}

/// `POST /delete-user`: `{password?, token?, callbackURL?}`.
async fn delete_user(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let body = Body::parse(ctx.req, false)?;
    let callback = check_callback_url(&auth.cfg, UrlField::CallbackUrl, body.get("callbackURL"))?;
    let mut v = body.validator();
    let (password, token) = (v.optional_string("password"), v.optional_string("token"));
    v.optional_string("callbackURL");
    v.finish()?;
    let me = ctx.signed_in().await?;
    let opts = &auth.cfg.user.delete_user;
    if !opts.enabled {
        return Err(AuthError::NotFound);
    }
    if let Some(password) = &password {
        check_current_password(ctx, &me.user.id, password.clone()).await?;
    }
    if let Some(token) = token {
        let row = tokens::find(auth, &identifier(&token)).await?.filter(|row| row.value == me.user.id);
        let Some(row) = row else { return Err(AuthError::TokenInvalid.with_status(404)) };
        let consume = WriteOp::ConsumeVerification(row.identifier);
        return delete(ctx, &me, deleted(), Some(consume)).await;
    }
    if auth.has_callback(AccountCallback::SendDeleteAccountVerification) {
        let token = random_string(32, b"0123456789abcdefghijklmnopqrstuvwxyz");
        let row = tokens::new_row(auth, &identifier(&token), &me.user.id, opts.delete_token_expires_in);
        let back = encode_uri_component(callback.as_deref().unwrap_or("/"));
        let url = auth.cfg.api_url(&format!("/delete-user/callback?token={token}&callbackURL={back}"));
        let mail = Mail { user: me.user.clone(), url, token, new_email: None };
        return Ok(Outcome::json(&json!({ "success": true, "message": "Verification email sent" }))
            .writes([WriteOp::InsertVerification(row)])
            .after_commit([AfterCommit::Send(AccountCallback::SendDeleteAccountVerification, mail)]));
    }
    if password.is_none() && !me.is_fresh(auth) {
        return Err(AuthError::SessionExpired);
    }
    delete(ctx, &me, deleted(), None).await
}

/// `GET /delete-user/callback?token=&callbackURL=`: the mailed link, opened where
/// its user is signed in.
async fn delete_user_callback(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let Some(token) = query_text(ctx.req, "token")? else {
        return Err(AuthError::Validation("[query.token] Invalid input: expected string, received undefined".into()));
    };
    let raw_callback = query_text(ctx.req, "callbackURL")?.map(Value::String);
    let callback = check_callback_url(&auth.cfg, UrlField::CallbackUrl, raw_callback.as_ref())?;
    if !auth.cfg.user.delete_user.enabled {
        return Err(AuthError::NotFoundJson);
    }
    let me = match ctx.signed_in().await {
        Ok(me) => me,
        Err(AuthError::Unauthorized) => return Err(AuthError::FailedToGetUserInfo),
        Err(e) => return Err(e),
    };
    let Some(row) = tokens::find(auth, &identifier(&token)).await? else {
        return Err(AuthError::TokenInvalid.with_status(404));
    };
    let consume = WriteOp::ConsumeVerification(row.identifier.clone());
    if row.value != me.user.id {
        // Opened by someone else: refused, and the link is spent (as Better Auth does).
        let refused = Response::error(&AuthError::TokenInvalid.with_status(404));
        return Ok(Outcome::response(refused).writes([consume]));
    }
    let answer = match &callback {
        Some(url) => Outcome::response(Response::redirect(url)),
        None => deleted(),
    };
    delete(ctx, &me, answer, Some(consume)).await
}

/// Deletes the signed-in user with its sessions, accounts and passkeys: the app's
/// `before_delete` first (an `APIError` there refuses), `after_delete` once done.
async fn delete(
    ctx: &Ctx<'_>,
    me: &SignedIn<'_>,
    answer: Outcome,
    consume: Option<WriteOp>,
) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let req = CallbackRequest::of(ctx.req, ctx.client_ip.clone());
    auth.account_callbacks.notify(AccountCallback::BeforeDeleteUser, &req, me.user).await?;
    let mut out = answer
        .writes(consume)
        .writes([WriteOp::DeleteUser(me.user.id.clone())])
        .on_used(AuthError::TokenInvalid.with_status(404))
        .cookies(auth.sessions.cookies.expire_session())
        .after_commit([AfterCommit::Notify(AccountCallback::AfterDeleteUser, me.user.clone())]);
    if me.user.is_anonymous {
        out = out.guest_deleted(me.user);
    }
    Ok(out)
}
