//! Email verification (account-routes spec §7): `POST /send-verification-email`
//! and `GET /verify-email`, and the verification mails other routes send. Links
//! carry a JWT signed with the server secret (§7.1): nothing is stored, so a
//! Better Auth server with the same secret reads our links and we read its.

use serde_json::{json, Map, Value};

use crate::callbacks::{AccountCallback, CallbackRequest, Mail};
use crate::crypto::{encode_uri_component, JwtError};
use crate::endpoint::{AfterCommit, Ctx, Outcome, RouteDef};
use crate::error::{AuthError, UrlField};
use crate::http::body::{query_text, Body};
use crate::http::origin::check_callback_url;
use crate::http::response::Response;
use crate::model::{User, UserJson};
use crate::route;
use crate::session::Current;
use crate::storage::{Login, WriteOp};

pub const ROUTES: &[RouteDef] = &[
    route!("POST", "/send-verification-email", send_verification_email),
    route!("GET", "/verify-email", verify_email, signs_in = "email-verification"),
];

/// What a verification token says (§7.1).
pub struct EmailClaims<'a> {
    pub email: &'a str,
    /// The address a change of email goes to.
    pub update_to: Option<&'a str>,
    /// `change-email-confirmation` or `change-email-verification`.
    pub request_type: Option<&'a str>,
    pub user_id: &'a str,
}

/// A signed verification link for `claims`: `(url, token)`. The link returns to
/// `callback` (default `/`) after `/verify-email`.
pub fn verification_link(ctx: &Ctx<'_>, claims: EmailClaims<'_>, callback: Option<&str>) -> (String, String) {
    let auth = ctx.auth;
    let now_s = auth.clock.now_ms().div_euclid(1000);
    let mut map = Map::new();
    map.insert("email".into(), claims.email.to_lowercase().into());
    if let Some(to) = claims.update_to {
        map.insert("updateTo".into(), to.to_lowercase().into());
    }
    if let Some(kind) = claims.request_type {
        map.insert("requestType".into(), kind.into());
    }
    map.insert("userId".into(), claims.user_id.into());
    map.insert("iat".into(), now_s.into());
    map.insert("exp".into(), (now_s + auth.cfg.email_verification.expires_in).into());
    let token = auth.cfg.signer.sign_jwt(&Value::Object(map));
    let callback = encode_uri_component(callback.filter(|c| !c.is_empty()).unwrap_or("/"));
    (auth.cfg.api_url(&format!("/verify-email?token={token}&callbackURL={callback}")), token)
}

/// A sign-in that proved `user` owns the inbox (a magic link, an email code): an
/// unverified user becomes verified, and whoever registered the address before it was
/// proven (say, with a password) loses that access.
pub fn inbox_proven(user: &mut User, now: i64, writes: &mut Vec<WriteOp>) {
    if !user.email_verified {
        writes.push(WriteOp::RevokeSessionsAndAccounts(user.id.clone()));
        writes.push(WriteOp::MarkEmailVerified { user_id: user.id.clone(), updated_at: now });
        user.email_verified = true;
        user.updated_at = now;
    }
}

/// The plain verification mail for `user` (§7.2): to `user.email`.
pub fn verification_mail(ctx: &Ctx<'_>, user: &User, callback: Option<&str>) -> Mail {
    let claims = EmailClaims { email: &user.email, update_to: None, request_type: None, user_id: &user.id };
    let (url, token) = verification_link(ctx, claims, callback);
    Mail { user: user.clone(), url, token, new_email: None }
}

/// Whether sign-up sends a verification mail (§7.4).
pub fn sends_on_sign_up(ctx: &Ctx<'_>) -> bool {
    let cfg = &ctx.auth.cfg;
    let wanted = cfg.email_verification.send_on_sign_up.unwrap_or(cfg.email_password.require_email_verification);
    wanted && ctx.auth.has_callback(AccountCallback::SendVerificationEmail)
}

/// The verification mail a sign-up sends once the user exists (§7.4).
pub fn after_sign_up(ctx: &Ctx<'_>, user: &User, callback: Option<&str>) -> Option<AfterCommit> {
    sends_on_sign_up(ctx)
        .then(|| AfterCommit::Send(AccountCallback::SendVerificationEmail, verification_mail(ctx, user, callback)))
}

/// Sign-in refused for an unverified email: with `send_on_sign_in`, a fresh link first (§7.4).
pub async fn refuse_unverified(ctx: &Ctx<'_>, user: &User, callback: Option<&str>) -> AuthError {
    let auth = ctx.auth;
    if auth.cfg.email_verification.send_on_sign_in && auth.has_callback(AccountCallback::SendVerificationEmail) {
        let req = CallbackRequest::of(ctx.req, ctx.client_ip.clone());
        auth.send_quietly(AccountCallback::SendVerificationEmail, &req, verification_mail(ctx, user, callback)).await;
    }
    AuthError::EmailNotVerified
}

/// `POST /send-verification-email` (§7.2): `{email, callbackURL?}`.
async fn send_verification_email(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let started = tokio::time::Instant::now();
    let body = Body::parse(ctx.req, false)?;
    let callback = check_callback_url(&auth.cfg, UrlField::CallbackUrl, body.get("callbackURL"))?;
    let mut v = body.validator();
    let email = v.email("email");
    v.optional_string("callbackURL");
    v.finish()?;
    let Some(email) = email else { unreachable!("validation passed") };
    let expose = auth.cfg.advanced.expose_verification_token_for_tests;
    let has_sender = auth.has_callback(AccountCallback::SendVerificationEmail);
    if !has_sender && !expose {
        return Err(AuthError::VerificationEmailNotEnabled);
    }
    let req = CallbackRequest::of(ctx.req, ctx.client_ip.clone());
    // Mails the link (when the app has a sender); its token, for the test switch.
    let send = |user: &User| {
        let mail = verification_mail(ctx, user, callback.as_deref());
        let token = mail.token.clone();
        async move {
            if has_sender {
                auth.account_callbacks.send(AccountCallback::SendVerificationEmail, &req, mail).await?;
            }
            Ok::<_, AuthError>(token)
        }
    };
    let answer = |token: Option<String>| {
        let mut body = json!({ "status": true });
        if let (true, Some(token)) = (expose, token) {
            body["_token"] = Value::String(token);
        }
        Outcome::json(&body)
    };
    if let Current::Valid { user, .. } = ctx.current().await? {
        if !user.email.eq_ignore_ascii_case(&email) {
            return Err(AuthError::EmailMismatch);
        }
        if user.email_verified {
            return Err(AuthError::EmailAlreadyVerified);
        }
        let token = send(user).await?;
        return Ok(answer(Some(token)));
    }
    // Signed out: the same answer, after the same time, whether or not the address
    // is known, so the route tells no one which addresses have accounts.
    let sent = match auth.store.user(Login::Email, &email.to_lowercase()).await? {
        Some(user) if !user.email_verified => send(&user).await.map(Some),
        _ => Ok(None),
    };
    tokio::time::sleep_until(started + std::time::Duration::from_millis(500)).await;
    Ok(answer(sent?))
}

/// What `/verify-email` answers on success: 302 to the callback, or JSON.
fn answer(callback: &Option<String>, body: Value) -> Outcome {
    match callback {
        Some(url) => Outcome::response(Response::redirect(url)),
        None => Outcome::json(&body),
    }
}

/// `GET /verify-email?token=&callbackURL=` (§7.3). Token and user errors answer 401
/// JSON, or with a callback URL a 302 to it with `?error=<CODE>`.
async fn verify_email(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let Some(token) = query_text(ctx.req, "token")? else {
        return Err(AuthError::Validation("[query.token] Invalid input: expected string, received undefined".into()));
    };
    let raw_callback = query_text(ctx.req, "callbackURL")?.map(Value::String);
    let callback = check_callback_url(&ctx.auth.cfg, UrlField::CallbackUrl, raw_callback.as_ref())?;
    match verify(ctx, &token, &callback).await {
        Err(
            e @ (AuthError::TokenInvalid | AuthError::TokenExpired | AuthError::NoSuchUser | AuthError::InvalidUser),
        ) => match &callback {
            Some(url) => Ok(Outcome::response(Response::redirect_with_error(url, e.redirect_code()))),
            None => Err(e.with_status(401)),
        },
        other => other,
    }
}

async fn verify(ctx: &Ctx<'_>, token: &str, callback: &Option<String>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let now_s = auth.clock.now_ms().div_euclid(1000);
    let claims = auth.cfg.signer.verify_jwt(token, now_s).map_err(|e| match e {
        JwtError::Expired => AuthError::TokenExpired,
        JwtError::Invalid => AuthError::TokenInvalid,
    })?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let Some(email) = text("email").filter(|e| crate::model::is_valid_email(e)) else {
        // Better Auth fails on such a payload with an empty 500.
        return Err(AuthError::Empty(500));
    };
    let user_id = text("userId");
    match text("updateTo") {
        None => plain(ctx, &email, user_id, callback).await,
        Some(new_email) => {
            let user = bound_user(ctx, &email, user_id).await?;
            match text("requestType").as_deref() {
                Some("change-email-confirmation") => confirmed(ctx, user, &new_email, callback).await,
                Some("change-email-verification") => email_changed(ctx, user, &new_email, false, callback).await,
                _ => email_changed(ctx, user, &new_email, true, callback).await,
            }
        }
    }
}

/// (a) A plain verification: the user of that email becomes verified.
async fn plain(
    ctx: &Ctx<'_>,
    email: &str,
    user_id: Option<String>,
    callback: &Option<String>,
) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let user = auth.store.user(Login::Email, &email.to_lowercase()).await?.ok_or(AuthError::NoSuchUser)?;
    if user_id.is_some_and(|id| id != user.id) {
        return Err(AuthError::TokenInvalid);
    }
    let done = json!({ "status": true, "user": null });
    if user.email_verified {
        return Ok(answer(callback, done));
    }
    let req = CallbackRequest::of(ctx.req, ctx.client_ip.clone());
    auth.account_callbacks.notify(AccountCallback::BeforeEmailVerification, &req, &user).await?;
    let now = auth.clock.now_ms();
    let verified = User { email_verified: true, updated_at: now, ..user };
    let mut out = answer(callback, done)
        .writes([WriteOp::MarkEmailVerified { user_id: verified.id.clone(), updated_at: now }])
        .after_commit([AfterCommit::Notify(AccountCallback::AfterEmailVerification, verified.clone())]);
    if auth.cfg.email_verification.auto_sign_in_after_verification {
        match ctx.current().await? {
            // Already signed in as this address: the cookie is set again.
            Current::Valid { session, user: current, dont_remember }
                if current.email.eq_ignore_ascii_case(&verified.email) =>
            {
                let current = User { email_verified: true, updated_at: now, ..current.clone() };
                out = out.cookies(auth.sessions.cookies_for(session, &current, !dont_remember));
            }
            // Anyone else (a guest too, who converts): a new session for the verified user.
            _ => {
                let session = auth.sessions.create(&verified.id, false, true, ctx.req, ctx.client_ip.as_deref());
                let cookies = auth.sessions.cookies_for(&session, &verified, true);
                out = out.cookies(cookies).writes([WriteOp::InsertSession(session.clone())]).minted(session, verified);
            }
        }
    }
    Ok(out)
}

/// The user a change-of-email token is bound to, checked as §7.3 (b)-(d) do.
async fn bound_user(ctx: &Ctx<'_>, email: &str, user_id: Option<String>) -> Result<User, AuthError> {
    let user_id = user_id.ok_or(AuthError::TokenInvalid)?;
    let user = ctx.auth.store.user(Login::Id, &user_id).await?.ok_or(AuthError::NoSuchUser)?;
    if !user.email.eq_ignore_ascii_case(email) {
        return Err(AuthError::TokenInvalid);
    }
    if let Current::Valid { user: current, .. } = ctx.current().await? {
        if current.id != user.id {
            return Err(AuthError::InvalidUser);
        }
    }
    Ok(user)
}

/// (b) The old address confirmed the change: the new address gets its verification link.
async fn confirmed(
    ctx: &Ctx<'_>,
    user: User,
    new_email: &str,
    callback: &Option<String>,
) -> Result<Outcome, AuthError> {
    let claims = EmailClaims {
        email: &user.email,
        update_to: Some(new_email),
        request_type: Some("change-email-verification"),
        user_id: &user.id,
    };
    let (url, token) = verification_link(ctx, claims, callback.as_deref());
    let to_new = User { email: new_email.to_lowercase(), ..user };
    let req = CallbackRequest::of(ctx.req, ctx.client_ip.clone());
    let mail = Mail { user: to_new, url, token, new_email: None };
    ctx.auth.send_quietly(AccountCallback::SendVerificationEmail, &req, mail).await;
    Ok(answer(callback, json!({ "status": true })))
}

/// (c) The new address opened its link: the email changes, `emailVerified` as it was.
/// (d) An older token without a request type: changes it unverified and mails a
/// verification link to the new address.
async fn email_changed(
    ctx: &Ctx<'_>,
    user: User,
    new_email: &str,
    legacy: bool,
    callback: &Option<String>,
) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let now = auth.clock.now_ms();
    let was_verified = user.email_verified;
    let email_verified = if legacy { false } else { was_verified };
    let updated = User { email: new_email.to_lowercase(), email_verified, updated_at: now, ..user };
    let write = WriteOp::UpdateEmail {
        user_id: updated.id.clone(),
        email: updated.email.clone(),
        email_verified: legacy.then_some(false),
        updated_at: now,
    };
    let body = json!({ "status": true, "user": UserJson(&updated, auth.user_fields) });
    let mut out = answer(callback, body).writes([write]).on_conflict(AuthError::UserAlreadyExists);
    if let Current::Valid { session, user: current, dont_remember } = ctx.current().await? {
        let current = if current.id == updated.id { &updated } else { current };
        out = out.cookies(auth.sessions.cookies_for(session, current, !dont_remember));
    }
    if legacy {
        let mail = verification_mail(ctx, &updated, callback.as_deref());
        out = out.after_commit([AfterCommit::Send(AccountCallback::SendVerificationEmail, mail)]);
    } else if was_verified {
        out = out.after_commit([AfterCommit::Notify(AccountCallback::AfterEmailVerification, updated.clone())]);
    }
    Ok(out)
}
