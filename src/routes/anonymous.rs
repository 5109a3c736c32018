//! The anonymous plugin's endpoints (spec §7.1, §7.2). Conversion of guests is
//! not here: it is the generic after-hook in `link.rs`.

use serde_json::json;

use crate::callbacks::{AnonymousCallbacks, CallbackRequest, EventKind};
use crate::crypto::{new_id, random_string, sha256_b64url, ALNUM};
use crate::endpoint::{Ctx, Outcome, RouteDef};
use crate::error::AuthError;
use crate::http::body::{is_valid_email, Body};
use crate::model::{Account, Session, User, UserJson};
use crate::route;
use crate::routes::tokens;
use crate::session::Current;
use crate::storage::{Login, Profile, WriteOp};

pub const ROUTES: &[RouteDef] = &[
    route!("POST", "/sign-in/anonymous", sign_in, plugin = Anonymous, signs_in = "anonymous"),
    route!("POST", "/delete-anonymous-user", delete_user, plugin = Anonymous),
    route!("POST", "/anonymous/upgrade", upgrade, plugin = Anonymous),
    route!("POST", "/anonymous/link", upgrade, plugin = Anonymous),
    route!("POST", "/anonymous/resume", resume, plugin = Anonymous),
];

/// Where guests' placeholder addresses live by default: `.invalid` is reserved
/// and can never receive mail (what Better Auth 1.7.25 writes).
pub const GUEST_EMAIL_DOMAIN: &str = "anonymous.placeholder.invalid";

fn callbacks<'a>(ctx: &'a Ctx<'_>) -> Result<&'a dyn AnonymousCallbacks, AuthError> {
    ctx.auth.anonymous_callbacks.as_deref().ok_or(AuthError::NotFound)
}

/// Whether an address is a guest's placeholder, which no plugin may mail or verify.
pub fn is_placeholder_email(email: &str, domain: Option<&str>) -> bool {
    let at = email.rsplit_once('@').map_or("", |(_, d)| d);
    at == GUEST_EMAIL_DOMAIN || domain.is_some_and(|d| email.starts_with("temp-") && at.eq_ignore_ascii_case(d))
}

pub async fn sign_in(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let opts = auth.cfg.anonymous.as_ref();
    // No fields are read, but a body that is not JSON is still refused.
    let body = Body::parse(ctx.req, false)?;
    if let Current::Valid { session, user, .. } = ctx.current().await? {
        if user.is_anonymous {
            if !opts.is_some_and(|a| a.reuse_existing) {
                return Err(AuthError::AnonymousCannotSignInAgain);
            }
            // The same guest and session, as Realm's `reuseExisting` (and Firebase) answer.
            // No new resume token: the one given at creation stays the guest's one.
            return Ok(Outcome::json(&json!({ "token": session.token, "user": UserJson(user, auth.user_fields) })));
        }
    }
    let cb = callbacks(ctx)?;
    let mut request = CallbackRequest::of(ctx.req, ctx.client_ip.clone());
    if cb.has_before_create() {
        request.body = Some(serde_json::Value::Object(body.fields.clone()));
        cb.before_create(&request).await?;
        request.body = None;
    }
    let id = new_id();
    let email = match cb.generate_random_email(&request).await?.filter(|e| !e.is_empty()) {
        Some(email) if is_valid_email(&email) => email,
        Some(_) => return Err(AuthError::InvalidEmailFormat),
        None => match opts.and_then(|a| a.email_domain_name.as_deref()) {
            Some(domain) => format!("temp-{id}@{domain}"),
            None => format!("{id}@{GUEST_EMAIL_DOMAIN}"),
        },
    };
    let name = cb.generate_name(&request).await?.filter(|n| !n.is_empty()).unwrap_or_else(|| "Anonymous".into());

    let now = auth.clock.now_ms();
    let user = User::new(id, name, email.to_lowercase(), true, now);
    // No rememberMe here: a browser that asked not to be remembered stays so.
    let remember = !auth.sessions.dont_remember(ctx.req);
    let session = auth.sessions.create(&user.id, true, true, ctx.req, ctx.client_ip.as_deref());
    let mut body = json!({ "token": session.token, "user": UserJson(&user, auth.user_fields) });
    let mut writes = vec![WriteOp::InsertUser(user.clone()), WriteOp::InsertSession(session.clone())];
    if let Some(token) = resume_token(ctx, &user.id, &mut writes) {
        body["resumeToken"] = token.into();
    }
    Ok(Outcome::json(&body)
        .cookies(auth.sessions.cookies_for(&session, &user, remember))
        .writes(writes)
        .on_conflict(AuthError::FailedToCreateUser)
        .event(EventKind::Created, &user.id)
        .minted(session, user))
}

/// Where a resume token is kept: only its hash, under this prefix, holding the guest's id.
fn resume_identifier(token: &str) -> String {
    format!("anonymous-resume:{}", sha256_b64url(token))
}

/// With `anonymous(resume=True)`: a new resume token for the guest, its row added to
/// `writes`. A guest holds one live token: given at creation, replaced at each resume.
fn resume_token(ctx: &Ctx<'_>, guest_id: &str, writes: &mut Vec<WriteOp>) -> Option<String> {
    let opts = ctx.auth.cfg.anonymous.as_ref().filter(|a| a.resume)?;
    let token = random_string(43, ALNUM);
    let row = tokens::new_row(ctx.auth, &resume_identifier(&token), guest_id, opts.resume_lifetime());
    writes.push(WriteOp::InsertVerification(row));
    Some(token)
}

/// `POST /anonymous/resume {resumeToken}`: a new session for the guest the token was
/// given to (same id, same data), and a new token; the old one is spent. Fails once
/// the guest is gone (converted by a sign-in, deleted, cleaned up) or upgraded.
pub async fn resume(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    if !auth.cfg.anonymous.as_ref().is_some_and(|a| a.resume) {
        return Err(AuthError::NotFound);
    }
    let body = Body::parse(ctx.req, false)?;
    let token = body.required_string("resumeToken")?;
    let identifier = resume_identifier(&token);
    let Some(row) = tokens::find(auth, &identifier).await? else {
        return Err(AuthError::InvalidResumeToken);
    };
    let spent = WriteOp::ConsumeVerification(row.identifier.clone());
    let guest = match auth.store.user(Login::Id, &row.value).await? {
        Some(user) if user.is_anonymous => user,
        found => {
            auth.store.apply(vec![spent]).await?;
            return Err(match found {
                Some(_) => AuthError::GuestAlreadyConverted,
                None => AuthError::InvalidResumeToken,
            });
        }
    };
    let session = auth.sessions.create(&guest.id, true, true, ctx.req, ctx.client_ip.as_deref());
    let mut writes = vec![spent, WriteOp::InsertSession(session.clone())];
    let mut answer = json!({ "token": session.token, "user": UserJson(&guest, auth.user_fields) });
    if let Some(next) = resume_token(ctx, &guest.id, &mut writes) {
        answer["resumeToken"] = next.into();
    }
    Ok(Outcome::json(&answer)
        .cookies(auth.sessions.cookies_for(&session, &guest, true))
        .writes(writes)
        .on_used(AuthError::InvalidResumeToken))
}

pub async fn delete_user(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    Body::parse(ctx.req, false)?;
    let Current::Valid { user, .. } = ctx.current().await? else {
        return Err(AuthError::Unauthorized);
    };
    if auth.cfg.anonymous.as_ref().is_some_and(|a| a.disable_delete_anonymous_user) {
        return Err(AuthError::DeleteAnonymousUserDisabled);
    }
    if !user.is_anonymous {
        return Err(AuthError::UserIsNotAnonymous);
    }
    Ok(Outcome::json(&json!({ "success": true }))
        .cookies(auth.sessions.cookies.expire_session())
        .writes([WriteOp::DeleteUser(user.id.clone())])
        .guest_deleted(user))
}

/// `POST /anonymous/upgrade` and `POST /anonymous/link`: the signed-in guest becomes
/// a registered account in place. Same id, so every row the app keyed on it stays
/// valid; same session, refreshed to a registered user's lifetime; every other
/// session of the guest is revoked in the same transaction, so a leaked guest
/// token never becomes a session of the real account.
pub async fn upgrade(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let body = Body::parse(ctx.req, false)?;
    let Current::Valid { session, user, dont_remember } = ctx.current().await? else {
        return Err(AuthError::Unauthorized);
    };
    let mut v = body.validator();
    let (email, password) = (v.string("email"), v.string("password"));
    let name = v.optional_string("name");
    if auth.username_callbacks.is_some() {
        v.optional_string("username");
        v.optional_string("displayUsername");
    }
    v.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        unreachable!("validation passed, so the required fields are present")
    };
    if !auth.allows_linking() {
        return Err(AuthError::LinkingDisabled);
    }
    if !user.is_anonymous {
        return Err(AuthError::UserIsNotAnonymous.with_status(400));
    }
    let domain = auth.cfg.anonymous.as_ref().and_then(|a| a.email_domain_name.as_deref());
    let email = email.trim().to_lowercase();
    if !is_valid_email(&email) || is_placeholder_email(&email, domain) {
        return Err(AuthError::InvalidEmail.with_status(422));
    }
    crate::routes::password_account::check_password_length(ctx, &password).map_err(|e| e.with_status(422))?;
    let (username, display_username) = crate::routes::username::sign_up_fields(ctx, &body, false).await?;
    if auth.store.user(Login::Email, &email).await?.is_some() {
        return Err(AuthError::UserAlreadyExists.with_status(409));
    }
    let hash = auth.hasher.hash(password).await?;

    let now = auth.clock.now_ms();
    let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    let profile = Profile {
        email: Some(email.clone()),
        name: name.clone(),
        username: username.clone(),
        display_username: display_username.clone(),
    };
    let account = Account::credential(&user.id, hash, now);
    let mut upgraded = User {
        email,
        email_verified: false,
        is_anonymous: false,
        updated_at: now,
        username: username.or(user.username.clone()),
        display_username: display_username.or(user.display_username.clone()),
        ..user.clone()
    };
    if let Some(name) = name {
        upgraded.name = name;
    }
    let mut writes = vec![
        WriteOp::UpgradeAnonymous { user_id: user.id.clone(), updated_at: now, profile },
        WriteOp::InsertAccount(account),
        WriteOp::RevokeOtherSessions { user_id: user.id.clone(), keep_id: session.id.clone() },
    ];
    let cookies = if *dont_remember {
        // The session stays as it is; only a cached copy of the user must not say "guest".
        auth.sessions.cache_cookies(session, &upgraded, false)
    } else {
        // From now on a registered user's session: its lifetime, counted from now.
        let expires_at = now + auth.cfg.session.expires_in * 1000;
        let refreshed = Session { expires_at, updated_at: now, ..session.clone() };
        let token = session.token.clone();
        writes.push(WriteOp::RefreshSession { id: session.id.clone(), token, expires_at, updated_at: now });
        auth.sessions.cookies_for(&refreshed, &upgraded, true)
    };
    let conflict = AuthError::UserAlreadyExists.with_status(409);
    Ok(Outcome::json(&json!({ "success": true, "user": UserJson(&upgraded, auth.user_fields) }))
        .cookies(cookies)
        .writes(writes)
        .on_conflict(conflict)
        .upgraded(user, "email"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_emails() {
        assert!(is_placeholder_email("abc@anonymous.placeholder.invalid", None));
        assert!(is_placeholder_email("temp-abc@guests.example.com", Some("guests.example.com")));
        assert!(!is_placeholder_email("ada@example.com", Some("guests.example.com")));
        assert!(is_valid_email(&format!("{}@{GUEST_EMAIL_DOMAIN}", new_id().to_lowercase())));
    }
}
