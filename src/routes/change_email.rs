//! `POST /change-email` (account-routes spec §3). Nothing changes until a mailed
//! link is opened (`/verify-email`, §7.3 b-d), except for an unverified user with
//! `update_email_without_verification`, whose email changes at once.

use serde_json::json;

use crate::callbacks::{AccountCallback, CallbackRequest, Mail};
use crate::endpoint::{AfterCommit, Ctx, Outcome, RouteDef};
use crate::error::{AuthError, UrlField};
use crate::http::body::Body;
use crate::http::origin::check_callback_url;
use crate::model::User;
use crate::route;
use crate::routes::verification::{verification_link, verification_mail, EmailClaims};
use crate::storage::{Login, WriteOp};

pub const ROUTES: &[RouteDef] = &[route!("POST", "/change-email", change_email)];

/// `{newEmail, callbackURL?}`.
async fn change_email(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let body = Body::parse(ctx.req, false)?;
    let callback = check_callback_url(&auth.cfg, UrlField::CallbackUrl, body.get("callbackURL"))?;
    let mut v = body.validator();
    let new_email = v.email("newEmail");
    v.optional_string("callbackURL");
    v.finish()?;
    let Some(new_email) = new_email.map(|e| e.to_lowercase()) else { unreachable!("validation passed") };
    let me = ctx.signed_in().await?;
    let opts = &auth.cfg.user.change_email;
    if !opts.enabled {
        return Err(AuthError::ChangeEmailDisabled);
    }
    let user = me.user;
    if new_email == user.email {
        return Err(AuthError::EmailIsTheSame);
    }
    let at_once = !user.email_verified && opts.update_email_without_verification;
    let can_verify = auth.has_callback(AccountCallback::SendVerificationEmail);
    let can_confirm =
        can_verify && user.email_verified && auth.has_callback(AccountCallback::SendChangeEmailConfirmation);
    if !at_once && !can_verify {
        return Err(AuthError::ChangeEmailNeedsVerification);
    }
    let done = Outcome::json(&json!({ "status": true }));
    if auth.store.user(Login::Email, &new_email).await?.is_some() {
        // Taken: the same answer, and no mail, so the route reveals no account.
        return Ok(done);
    }
    let callback = callback.as_deref();
    if at_once {
        let now = auth.clock.now_ms();
        let changed = User { email: new_email.clone(), updated_at: now, ..user.clone() };
        let write =
            WriteOp::UpdateEmail { user_id: user.id.clone(), email: new_email, email_verified: None, updated_at: now };
        let mail = can_verify.then(|| {
            AfterCommit::Send(AccountCallback::SendVerificationEmail, verification_mail(ctx, &changed, callback))
        });
        return Ok(done
            .writes([write])
            .on_conflict(AuthError::UserAlreadyExists)
            .cookies(me.cookies_again(auth, &changed))
            .after_commit(mail));
    }
    let (request_type, sender) = if can_confirm {
        ("change-email-confirmation", AccountCallback::SendChangeEmailConfirmation)
    } else {
        ("change-email-verification", AccountCallback::SendVerificationEmail)
    };
    let claims = EmailClaims {
        email: &user.email,
        update_to: Some(&new_email),
        request_type: Some(request_type),
        user_id: &user.id,
    };
    let (url, token) = verification_link(ctx, claims, callback);
    let mail = if can_confirm {
        Mail { user: user.clone(), url, token, new_email: Some(new_email) }
    } else {
        Mail { user: User { email: new_email, ..user.clone() }, url, token, new_email: None }
    };
    auth.send_quietly(sender, &CallbackRequest::of(ctx.req, ctx.client_ip.clone()), mail).await;
    Ok(done)
}
