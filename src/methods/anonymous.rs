//! The anonymous plugin's endpoints (spec §7.1, §7.2). Conversion of guests is
//! not here: it is the generic after-hook in `link.rs`.

use serde_json::json;

use crate::core::body::{is_valid_email, Body};
use crate::core::handler::{Ctx, Outcome};
use crate::core::hooks::{AnonymousCallbacks, CallbackRequest};
use crate::crypto::new_id;
use crate::error::AuthError;
use crate::model::{User, UserJson};
use crate::session::Current;
use crate::storage::WriteOp;

/// Where guests' placeholder addresses live by default: `.invalid` is reserved
/// and can never receive mail (what Better Auth 1.7.25 writes).
pub const PLACEHOLDER_DOMAIN: &str = "anonymous.placeholder.invalid";

fn callbacks<'a>(ctx: &'a Ctx<'_>) -> Result<&'a dyn AnonymousCallbacks, AuthError> {
    ctx.auth.anonymous_callbacks.as_deref().ok_or(AuthError::NotFound)
}

/// Whether an address is a guest's placeholder, which no plugin may mail or verify.
pub fn is_placeholder_email(email: &str, domain: Option<&str>) -> bool {
    let at = email.rsplit_once('@').map_or("", |(_, d)| d);
    at == PLACEHOLDER_DOMAIN || domain.is_some_and(|d| email.starts_with("temp-") && at.eq_ignore_ascii_case(d))
}

pub async fn sign_in(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    // No fields are read, but a body that is not JSON is still refused.
    Body::parse(ctx.req, false)?;
    if let Current::Valid { user, .. } = ctx.current().await? {
        if user.is_anonymous {
            return Err(AuthError::AnonymousCannotSignInAgain);
        }
    }
    let cb = callbacks(ctx)?;
    let request = CallbackRequest::of(ctx.req, ctx.client_ip.clone());
    let id = new_id();
    let email = match cb.generate_random_email(&request).await?.filter(|e| !e.is_empty()) {
        Some(email) if is_valid_email(&email) => email,
        Some(_) => return Err(AuthError::InvalidEmailFormat),
        None => match auth.cfg.anonymous.as_ref().and_then(|a| a.email_domain_name.as_deref()) {
            Some(domain) => format!("temp-{id}@{domain}"),
            None => format!("{id}@{PLACEHOLDER_DOMAIN}"),
        },
    };
    let name = cb.generate_name(&request).await?.filter(|n| !n.is_empty()).unwrap_or_else(|| "Anonymous".into());

    let now = auth.clock.now_ms();
    let user = User::new(id, name, email.to_lowercase(), true, now);
    // No rememberMe here: a browser that asked not to be remembered stays so.
    let remember = !auth.has_dont_remember(ctx.req);
    let session = auth.new_session(&user.id, true, ctx.req, ctx.client_ip.as_deref());
    let body = json!({ "token": session.token, "user": UserJson(&user, auth.user_fields) });
    Ok(Outcome::json(&body)
        .cookies(auth.session_cookies(&session, remember))
        .writes([WriteOp::InsertUser(user.clone()), WriteOp::InsertSession(session.clone())])
        .on_conflict(AuthError::FailedToCreateUser)
        .minted(session, user))
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
        .cookies(auth.cookies.expire_session())
        .writes([WriteOp::DeleteUser(user.id.clone())]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_emails() {
        assert!(is_placeholder_email("abc@anonymous.placeholder.invalid", None));
        assert!(is_placeholder_email("temp-abc@guests.example.com", Some("guests.example.com")));
        assert!(!is_placeholder_email("ada@example.com", Some("guests.example.com")));
        assert!(is_valid_email(&format!("{}@{PLACEHOLDER_DOMAIN}", new_id().to_lowercase())));
    }
}
