//! Password reset (account-routes spec §8): `POST /request-password-reset` mails
//! a single-use link, `GET /reset-password/:token` sends the browser to the app's
//! reset page with the token, `POST /reset-password` sets the new password.
//!
//! Beyond Better Auth: a guest who resets a password (after changing its email to
//! a real address) is upgraded in place, as `/anonymous/upgrade` does, instead of
//! staying flagged anonymous with a password that stale-guest cleanup would delete.

use serde_json::{json, Value};

use crate::callbacks::{AccountCallback, Mail};
use crate::crypto::{encode_uri_component, new_id, random_string, ALNUM};
use crate::endpoint::{AfterCommit, Ctx, Outcome, RouteDef};
use crate::error::{AuthError, UrlField};
use crate::http::body::{query_text, Body};
use crate::http::origin::check_callback_url;
use crate::http::response::Response;
use crate::model::User;
use crate::route;
use crate::routes::password_account::check_password_length;
use crate::routes::tokens;
use crate::session::Current;
use crate::storage::{Login, Profile, WriteOp};

pub const ROUTES: &[RouteDef] = &[
    route!("POST", "/request-password-reset", request_password_reset),
    route!("GET", "/reset-password/:token", reset_page),
    route!("POST", "/reset-password", reset_password),
];

fn identifier(token: &str) -> String {
    format!("reset-password:{token}")
}

const SENT: &str = "If this email exists in our system, check your email for the reset link";

/// `POST /request-password-reset` (§8.1): `{email, redirectTo?}`. The same answer
/// whether or not the address has an account.
async fn request_password_reset(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let body = Body::parse(ctx.req, false)?;
    let redirect = check_callback_url(&auth.cfg, UrlField::RedirectUrl, body.get("redirectTo"))?;
    let mut v = body.validator();
    let email = v.email("email");
    v.optional_string("redirectTo");
    v.finish()?;
    let Some(email) = email else { unreachable!("validation passed") };
    let expose = auth.cfg.advanced.expose_reset_token_for_tests;
    let has_sender = auth.has_callback(AccountCallback::SendResetPassword);
    if !has_sender && !expose {
        return Err(AuthError::ResetPasswordDisabled);
    }
    let answer = Outcome::json(&json!({ "status": true, "message": SENT }));
    let Some(user) = auth.store.user(Login::Email, &email.to_lowercase()).await? else {
        // As long as for a known address: a lookup of a token that is not there.
        tokens::find(auth, &identifier(&random_string(24, ALNUM))).await?;
        return Ok(answer);
    };
    let token = random_string(24, ALNUM);
    let expires_in = auth.cfg.email_password.reset_password_token_expires_in;
    let row = tokens::new_row(auth, &identifier(&token), &user.id, expires_in);
    let callback = encode_uri_component(redirect.as_deref().unwrap_or(""));
    let url = auth.cfg.api_url(&format!("/reset-password/{token}?callbackURL={callback}"));
    let answer = match expose {
        true => Outcome::json(&json!({ "status": true, "message": SENT, "_token": token })),
        false => answer,
    };
    let mail = Mail { user, url, token, new_email: None };
    let sends = has_sender.then_some(AfterCommit::Send(AccountCallback::SendResetPassword, mail));
    Ok(answer.writes([WriteOp::InsertVerification(row)]).after_commit(sends))
}

/// `GET /reset-password/:token?callbackURL=` (§8.2): to the app's page with
/// `?token=`, or `?error=INVALID_TOKEN`. Nothing is consumed here.
async fn reset_page(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let token = ctx.req.path.rsplit('/').next().unwrap_or_default().to_owned();
    let Some(raw) = query_text(ctx.req, "callbackURL")? else {
        return Err(AuthError::Validation(
            "[query.callbackURL] Invalid input: expected string, received undefined".into(),
        ));
    };
    let callback = check_callback_url(&auth.cfg, UrlField::CallbackUrl, Some(&Value::String(raw)))?;
    let Some(callback) = callback else {
        // The link mailed without `redirectTo` has nowhere to go (Better Auth's own error page).
        let page = auth.cfg.api_url("/error");
        return Ok(Outcome::response(Response::redirect_with_error(&page, "INVALID_TOKEN")));
    };
    let base = url::Url::parse(&auth.cfg.api_url("")).map_err(|e| AuthError::internal(e.to_string()))?;
    let mut target = base.join(&callback).map_err(|_| AuthError::InvalidUrl(UrlField::CallbackUrl))?;
    if tokens::find(auth, &identifier(&token)).await?.is_none() {
        return Ok(Outcome::response(Response::redirect_with_error(target.as_str(), "INVALID_TOKEN")));
    }
    let kept: Vec<(String, String)> =
        target.query_pairs().filter(|(k, _)| k != "token").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    target.query_pairs_mut().clear().extend_pairs(kept).append_pair("token", &token);
    Ok(Outcome::response(Response::redirect(target.as_str())))
}

/// `POST /reset-password` (§8.3): `{newPassword, token}` (or `?token=`).
async fn reset_password(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let body = Body::parse(ctx.req, false)?;
    let mut v = body.validator();
    let new_password = v.string("newPassword");
    let token = v.optional_string("token");
    v.finish()?;
    let Some(new_password) = new_password else { unreachable!("validation passed") };
    let token = match token {
        Some(t) => Some(t),
        None => query_text(ctx.req, "token")?,
    };
    let Some(token) = token.filter(|t| !t.is_empty()) else { return Err(AuthError::TokenInvalid) };
    check_password_length(ctx, &new_password)?;
    let row = tokens::find(auth, &identifier(&token)).await?.ok_or(AuthError::TokenInvalid)?;
    let user: User = auth.store.user(Login::Id, &row.value).await?.ok_or(AuthError::NoSuchUser)?;
    let now = auth.clock.now_ms();
    let hash = auth.hasher.hash(new_password).await?;
    let mut writes = vec![WriteOp::ConsumeVerification(row.identifier.clone())];
    let mut out = Outcome::json(&json!({ "status": true })).on_used(AuthError::TokenInvalid);
    if auth.cfg.email_password.revoke_sessions_on_password_reset {
        writes.push(WriteOp::DeleteSessionsOfUser(user.id.clone()));
    } else if user.is_anonymous {
        // The guest becomes the account its password now protects; sessions other
        // than the one making this request end.
        let keep = match ctx.current().await? {
            Current::Valid { session, .. } if session.user_id == user.id => Some(session.id.clone()),
            _ => None,
        };
        writes.push(match keep {
            Some(keep_id) => WriteOp::RevokeOtherSessions { user_id: user.id.clone(), keep_id },
            None => WriteOp::DeleteSessionsOfUser(user.id.clone()),
        });
    }
    if user.is_anonymous {
        let profile = Profile::default();
        writes.push(WriteOp::UpgradeAnonymous { user_id: user.id.clone(), updated_at: now, profile });
        out = out.upgraded(&user, "password-reset");
    }
    writes.push(WriteOp::SetPassword { user_id: user.id.clone(), hash, now, new_account_id: new_id() });
    let reset = User { is_anonymous: false, ..user };
    Ok(out.writes(writes).after_commit([AfterCommit::Notify(AccountCallback::OnPasswordReset, reset)]))
}
