//! Better Auth's email-OTP plugin (1.7.25, `plugins/email-otp`): one-time codes mailed
//! through the app's `send_verification_otp` for signing in (creating the user for a
//! new email, converting a guest as every sign-in does), verifying an email and
//! resetting a password.
//!
//! A code lives in a `verification` row `<type>-otp-<email>` holding `<code>:<attempts>`
//! (Better Auth's layout), the code kept as its SHA-256 unless `store_otp="plain"`. A
//! wrong code counts an attempt; `allowed_attempts` wrong ones end it. A right code is
//! consumed by the same transaction that signs in, verifies or resets, so it works once.

use serde_json::json;

use crate::callbacks::{AccountCallback, CallbackRequest};
use crate::config::{EmailOtpOptions, StoreToken};
use crate::crypto::{constant_time_eq, new_id, random_string, sha256_b64url};
use crate::endpoint::{AfterCommit, Ctx, Outcome, RouteDef};
use crate::error::AuthError;
use crate::http::body::{is_valid_email, Body};
use crate::model::{User, UserJson, Verification};
use crate::route;
use crate::routes::password_account::check_password_length;
use crate::routes::tokens;
use crate::routes::verification::inbox_proven;
use crate::storage::{Login, WriteOp};

pub const ROUTES: &[RouteDef] = &[
    route!("POST", "/email-otp/send-verification-otp", send, plugin = EmailOtp),
    route!("POST", "/email-otp/check-verification-otp", check, plugin = EmailOtp),
    route!("POST", "/email-otp/verify-email", verify_email, plugin = EmailOtp, signs_in = "email-otp"),
    route!("POST", "/sign-in/email-otp", sign_in, plugin = EmailOtp, signs_in = "email-otp"),
    route!("POST", "/email-otp/request-password-reset", request_reset, plugin = EmailOtp),
    route!("POST", "/forget-password/email-otp", request_reset, plugin = EmailOtp),
    route!("POST", "/email-otp/reset-password", reset_password, plugin = EmailOtp),
];

const TYPES: [&str; 4] = ["email-verification", "sign-in", "forget-password", "change-email"];

fn options<'a>(ctx: &'a Ctx<'_>) -> Result<&'a EmailOtpOptions, AuthError> {
    ctx.auth.cfg.email_otp.as_ref().ok_or(AuthError::NotFound)
}

/// Where a code for `kind` and `email` is kept (with `verification.store_identifier` applied).
fn identifier(ctx: &Ctx<'_>, kind: &str, email: &str) -> String {
    tokens::stored(ctx.auth, &format!("{kind}-otp-{email}"))
}

/// A lower-cased email from the body; `INVALID_EMAIL` when it is not one.
fn email_of(v: Option<String>) -> Result<String, AuthError> {
    let email = v.map(|e| e.to_lowercase()).unwrap_or_default();
    if is_valid_email(&email) {
        Ok(email)
    } else {
        Err(AuthError::InvalidEmail)
    }
}

fn stored_form(opts: &EmailOtpOptions, otp: &str) -> String {
    match opts.store_otp {
        StoreToken::Hashed => sha256_b64url(otp),
        _ => otp.to_owned(),
    }
}

/// A new code for `email`: the writes that keep it (replacing an older one) and the code.
fn new_code(ctx: &Ctx<'_>, opts: &EmailOtpOptions, kind: &str, email: &str) -> (Vec<WriteOp>, String) {
    let otp = random_string(opts.otp_length, b"0123456789");
    let now = ctx.auth.clock.now_ms();
    let identifier = identifier(ctx, kind, email);
    let row = Verification {
        id: new_id(),
        identifier: identifier.clone(),
        value: format!("{}:0", stored_form(opts, &otp)),
        expires_at: now + opts.expires_in * 1000,
        created_at: now,
        updated_at: now,
    };
    (vec![WriteOp::DeleteVerification(identifier), WriteOp::InsertVerification(row)], otp)
}

/// The app's sender gets the code once the row that holds it is committed.
fn mail_after_commit(email: &str, otp: String, kind: &str) -> AfterCommit {
    AfterCommit::SendOtp { email: email.to_owned(), otp, kind: kind.to_owned() }
}

/// Checks `provided` against the live code of `identifier`, Better Auth's way: an
/// expired code is deleted (`OTP_EXPIRED`); a wrong one counts an attempt
/// (`INVALID_OTP`), and once `allowed_attempts` were wrong the code is gone
/// (`TOO_MANY_ATTEMPTS`). Those are committed at once. A right code is returned,
/// still there: the caller consumes it with its own writes.
async fn verify(
    ctx: &Ctx<'_>,
    opts: &EmailOtpOptions,
    identifier: &str,
    provided: &str,
) -> Result<Verification, AuthError> {
    let store = &ctx.auth.store;
    let row = store.verification(identifier).await?.ok_or(AuthError::InvalidOtp)?;
    if row.expires_at <= ctx.auth.clock.now_ms() {
        store.apply(vec![WriteOp::DeleteVerification(identifier.to_owned())]).await?;
        return Err(AuthError::OtpExpired);
    }
    let (stored, attempts) = row.value.rsplit_once(':').unwrap_or((row.value.as_str(), "0"));
    let attempts: u32 = attempts.parse().unwrap_or(0);
    if attempts >= opts.allowed_attempts {
        store.apply(vec![WriteOp::DeleteVerification(identifier.to_owned())]).await?;
        return Err(AuthError::TooManyAttempts);
    }
    if !constant_time_eq(stored_form(opts, provided).as_bytes(), stored.as_bytes()) {
        let counted = Verification { id: new_id(), value: format!("{stored}:{}", attempts + 1), ..row.clone() };
        // Consumed and put back with one more attempt; a request that consumed it
        // meanwhile (a right code, or another wrong one) wins, and this one is wrong anyway.
        let _ = store
            .apply(vec![WriteOp::ConsumeVerification(identifier.to_owned()), WriteOp::InsertVerification(counted)])
            .await;
        return Err(AuthError::InvalidOtp);
    }
    Ok(row)
}

fn otp_type(v: &mut crate::http::body::Validator<'_>) -> Option<String> {
    let kind = v.string("type")?;
    if TYPES.contains(&kind.as_str()) {
        Some(kind)
    } else {
        let expected = TYPES.map(|t| format!("\"{t}\"")).join("|");
        v.issue("type", format!("Invalid option: expected one of {expected}"));
        None
    }
}

/// `POST /email-otp/send-verification-otp {email, type}` → `{success: true}`. A code
/// is sent to a known address, or for `sign-in` to any (unless sign-up is off).
async fn send(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let opts = options(ctx)?;
    let body = Body::parse(ctx.req, false)?;
    crate::http::origin::check_form_csrf(&ctx.auth.cfg, ctx.req)?;
    let mut v = body.validator();
    let (email, kind) = (v.string("email"), otp_type(&mut v));
    v.finish()?;
    let Some(kind) = kind else { unreachable!("validation passed") };
    if !ctx.auth.account_callbacks.has_otp_sender() {
        return Err(AuthError::OtpSenderMissing);
    }
    let email = email_of(email)?;
    if kind == "change-email" {
        return Err(AuthError::InvalidOtpType);
    }
    let known = ctx.auth.store.user(Login::Email, &email).await?.is_some();
    let answer = Outcome::json(&json!({ "success": true }));
    let signs_up = kind == "sign-in" && !opts.disable_sign_up;
    if !known && !signs_up {
        return Ok(answer.writes([WriteOp::DeleteVerification(identifier(ctx, &kind, &email))]));
    }
    let (writes, otp) = new_code(ctx, opts, &kind, &email);
    Ok(answer.writes(writes).after_commit([mail_after_commit(&email, otp, &kind)]))
}

/// `POST /email-otp/check-verification-otp {email, type, otp}` → `{success: true}`;
/// the code stays usable.
async fn check(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let opts = options(ctx)?;
    let body = Body::parse(ctx.req, false)?;
    let mut v = body.validator();
    let (email, kind, otp) = (v.string("email"), otp_type(&mut v), v.string("otp"));
    v.finish()?;
    let (Some(kind), Some(otp)) = (kind, otp) else { unreachable!("validation passed") };
    let email = email_of(email)?;
    verify(ctx, opts, &identifier(ctx, &kind, &email), &otp).await?;
    ctx.auth.store.user(Login::Email, &email).await?.ok_or(AuthError::NoSuchUser)?;
    Ok(Outcome::json(&json!({ "success": true })))
}

/// `POST /email-otp/verify-email {email, otp}` → `{status, token, user}`: the email is
/// verified; with `auto_sign_in_after_verification` the browser is signed in too.
async fn verify_email(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let opts = options(ctx)?;
    let body = Body::parse(ctx.req, false)?;
    let mut v = body.validator();
    let (email, otp) = (v.string("email"), v.string("otp"));
    v.finish()?;
    let Some(otp) = otp else { unreachable!("validation passed") };
    let email = email_of(email)?;
    let row = verify(ctx, opts, &identifier(ctx, "email-verification", &email), &otp).await?;
    let user = auth.store.user(Login::Email, &email).await?.ok_or(AuthError::NoSuchUser)?;
    let request = CallbackRequest::of(ctx.req, ctx.client_ip.clone());
    auth.account_callbacks.notify(AccountCallback::BeforeEmailVerification, &request, &user).await?;
    let now = auth.clock.now_ms();
    let verified = User { email_verified: true, updated_at: now, ..user };
    let writes = [
        WriteOp::ConsumeVerification(row.identifier),
        WriteOp::MarkEmailVerified { user_id: verified.id.clone(), updated_at: now },
    ];
    let after = AfterCommit::Notify(AccountCallback::AfterEmailVerification, verified.clone());
    let user_json = UserJson(&verified, auth.user_fields);
    let out = if auth.cfg.email_verification.auto_sign_in_after_verification {
        let session = auth.sessions.create(&verified.id, false, true, ctx.req, ctx.client_ip.as_deref());
        Outcome::json(&json!({ "status": true, "token": session.token, "user": user_json }))
            .cookies(auth.sessions.cookies_for(&session, &verified, true))
            .writes([WriteOp::InsertSession(session.clone())])
            .minted(session, verified)
    } else {
        Outcome::json(&json!({ "status": true, "token": null, "user": user_json }))
    };
    Ok(out.writes(writes).after_commit([after]).on_used(AuthError::InvalidOtp))
}

/// `POST /sign-in/email-otp {email, otp, name?, image?}` → `{token, user}`: signs in,
/// creating the user for a new email (verified: the code proved the inbox).
async fn sign_in(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let opts = options(ctx)?;
    let body = Body::parse(ctx.req, false)?;
    let mut v = body.validator();
    let (email, otp) = (v.string("email"), v.string("otp"));
    let (name, image) = (v.optional_string("name"), v.optional_string("image"));
    v.finish()?;
    let (Some(email), Some(otp)) = (email, otp) else { unreachable!("validation passed") };
    let email = email.to_lowercase();
    let row = verify(ctx, opts, &identifier(ctx, "sign-in", &email), &otp).await?;
    let now = auth.clock.now_ms();
    let mut writes = vec![WriteOp::ConsumeVerification(row.identifier)];
    let user = match auth.store.user(Login::Email, &email).await? {
        None if opts.disable_sign_up => return Err(AuthError::InvalidOtp),
        None => {
            let user = User {
                email_verified: true,
                image,
                ..User::new(new_id(), name.unwrap_or_default(), email, false, now)
            };
            writes.push(WriteOp::InsertUser(user.clone()));
            user
        }
        Some(mut user) => {
            inbox_proven(&mut user, now, &mut writes);
            user
        }
    };
    let session = auth.sessions.create(&user.id, false, true, ctx.req, ctx.client_ip.as_deref());
    writes.push(WriteOp::InsertSession(session.clone()));
    Ok(Outcome::json(&json!({ "token": session.token, "user": UserJson(&user, auth.user_fields) }))
        .cookies(auth.sessions.cookies_for(&session, &user, true))
        .writes(writes)
        .minted(session, user)
        .on_conflict(AuthError::FailedToCreateUser)
        .on_used(AuthError::InvalidOtp))
}

/// `POST /email-otp/request-password-reset {email}` (and the deprecated
/// `/forget-password/email-otp`) → `{success: true}`; a code goes to a known address.
async fn request_reset(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let opts = options(ctx)?;
    let body = Body::parse(ctx.req, false)?;
    let mut v = body.validator();
    let email = v.string("email");
    v.finish()?;
    let email = email_of(email)?;
    let answer = Outcome::json(&json!({ "success": true }));
    if ctx.auth.store.user(Login::Email, &email).await?.is_none() {
        return Ok(answer.writes([WriteOp::DeleteVerification(identifier(ctx, "forget-password", &email))]));
    }
    let (writes, otp) = new_code(ctx, opts, "forget-password", &email);
    Ok(answer.writes(writes).after_commit([mail_after_commit(&email, otp, "forget-password")]))
}

/// `POST /email-otp/reset-password {email, otp, password}` → `{success: true}`.
async fn reset_password(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let opts = options(ctx)?;
    let body = Body::parse(ctx.req, false)?;
    let mut v = body.validator();
    let (email, otp, password) = (v.string("email"), v.string("otp"), v.string("password"));
    v.finish()?;
    let (Some(otp), Some(password)) = (otp, password) else { unreachable!("validation passed") };
    let email = email_of(email)?;
    check_password_length(ctx, &password)?;
    let row = verify(ctx, opts, &identifier(ctx, "forget-password", &email), &otp).await?;
    let user = auth.store.user(Login::Email, &email).await?.ok_or(AuthError::NoSuchUser)?;
    let now = auth.clock.now_ms();
    let hash = auth.hasher.hash(password).await?;
    let mut writes = vec![
        WriteOp::ConsumeVerification(row.identifier),
        WriteOp::SetPassword { user_id: user.id.clone(), hash, now, new_account_id: new_id() },
    ];
    if auth.cfg.email_password.revoke_sessions_on_password_reset {
        writes.push(WriteOp::DeleteSessionsOfUser(user.id.clone()));
    }
    if !user.email_verified {
        writes.push(WriteOp::MarkEmailVerified { user_id: user.id.clone(), updated_at: now });
    }
    Ok(Outcome::json(&json!({ "success": true }))
        .writes(writes)
        .after_commit([AfterCommit::Notify(AccountCallback::OnPasswordReset, user)])
        .on_used(AuthError::InvalidOtp))
}
