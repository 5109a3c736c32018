//! The magic-link plugin (spec §9): `POST /sign-in/magic-link` mails a single-use
//! link through the app's `send_magic_link`; `GET /magic-link/verify` consumes it
//! and signs the browser in, creating the user for a new email.
//!
//! The token is consumed by the same transaction that creates the session (and
//! converts a guest): two clicks on one link sign in once, and a conversion that
//! fails leaves the link usable for another try.

use serde_json::{json, Value};

use crate::callbacks::{CallbackRequest, MagicLinkCallbacks, MagicLinkMessage};
use crate::config::StoreToken;
use crate::crypto::{new_id, random_string, sha256_b64url};
use crate::endpoint::{Ctx, Outcome, RouteDef};
use crate::error::{AuthError, UrlField};
use crate::http::body::{query_text, Body};
use crate::http::origin::{check_callback_url, check_form_csrf, trusted_url};
use crate::http::response::Response;
use crate::model::{SessionJson, User, UserJson, Verification};
use crate::route;
use crate::storage::{Login, WriteOp};

pub const ROUTES: &[RouteDef] = &[
    route!("POST", "/sign-in/magic-link", sign_in, plugin = MagicLink),
    route!("GET", "/magic-link/verify", verify, plugin = MagicLink, signs_in = "magic-link"),
];

const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The optional URLs of a magic link, in the order they appear in the mailed link.
const URL_FIELDS: [(&str, UrlField); 3] = [
    ("callbackURL", UrlField::CallbackUrl),
    ("newUserCallbackURL", UrlField::NewUserCallbackUrl),
    ("errorCallbackURL", UrlField::ErrorCallbackUrl),
];

/// What the `verification` row is keyed by: the token, its hash, or the app's hash of it.
async fn identifier(
    ctx: &Ctx<'_>,
    sender: &dyn MagicLinkCallbacks,
    store: StoreToken,
    token: &str,
) -> Result<String, AuthError> {
    Ok(match store {
        StoreToken::Plain => token.to_owned(),
        StoreToken::Hashed => sha256_b64url(token),
        StoreToken::Custom => {
            let request = CallbackRequest::of(ctx.req, ctx.client_ip.clone());
            let hashed = sender.hash_token(&request, token).await?;
            if hashed.is_empty() {
                return Err(AuthError::CallbackFailed("store_token hash"));
            }
            hashed
        }
    })
}

/// `POST /sign-in/magic-link` (spec §9.1): `{status: true}` once the app's sender returned.
pub async fn sign_in(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let (Some(opts), Some(sender)) = (auth.cfg.magic_link.as_ref(), auth.magic_link_callbacks.as_ref()) else {
        return Err(AuthError::NotFound);
    };
    let body = Body::parse(ctx.req, true)?;
    let urls = URL_FIELDS
        .iter()
        .map(|(key, field)| check_callback_url(&auth.cfg, *field, body.get(key)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut v = body.validator();
    let email = v.email("email");
    let name = v.optional_string("name");
    for (key, _) in URL_FIELDS {
        v.optional_string(key);
    }
    let metadata = v.optional_object("metadata");
    v.finish()?;
    let Some(email) = email else { unreachable!("validation passed, so the email is present") };
    check_form_csrf(&auth.cfg, ctx.req)?;

    let request = CallbackRequest::of(ctx.req, ctx.client_ip.clone());
    let token = match sender.generate_token(&request, &email).await? {
        Some(token) if !token.is_empty() => token,
        Some(_) => return Err(AuthError::CallbackFailed("generate_token")),
        None => random_string(32, LETTERS),
    };
    let identifier = identifier(ctx, sender.as_ref(), opts.store_token, &token).await?;
    let now = auth.clock.now_ms();
    let mut value = json!({ "email": email });
    if let Some(name) = &name {
        value["name"] = json!(name);
    }
    let row = Verification {
        id: new_id(),
        identifier,
        value: value.to_string(),
        expires_at: now + opts.expires_in * 1000,
        created_at: now,
        updated_at: now,
    };
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("token", &token);
        query.append_pair("callbackURL", urls[0].as_deref().unwrap_or("/"));
        for ((key, _), url) in URL_FIELDS.iter().zip(&urls).skip(1) {
            if let Some(url) = url {
                query.append_pair(key, url);
            }
        }
        query.finish()
    };
    let url = format!("{}{}/magic-link/verify?{query}", auth.cfg.base_origin, auth.cfg.base_path);

    let stored_as = row.identifier.clone();
    auth.store.apply(vec![WriteOp::InsertVerification(row)]).await?;
    if let Err(e) = sender.send(&request, MagicLinkMessage { email, url, token, metadata }).await {
        // Nothing was delivered, or the app cannot tell: no usable link is left behind.
        auth.store.apply(vec![WriteOp::DeleteVerification(stored_as)]).await?;
        return Err(e);
    }
    Ok(Outcome::json(&json!({ "status": true })))
}

/// A callback URL of the verify query, decoded a second time as Better Auth does,
/// then checked in that decoded form (the one the redirect uses) and resolved
/// against the base URL. The query form is checked too, as Better Auth's global
/// origin check does before the endpoint.
fn callback_param(ctx: &Ctx<'_>, key: &str) -> Result<Option<String>, AuthError> {
    let Some(raw) = ctx.req.query_param(key) else { return Ok(None) };
    let cfg = &ctx.auth.cfg;
    let decoded = percent_encoding::percent_decode_str(&raw).decode_utf8_lossy().into_owned();
    let used = if cfg.advanced.disable_origin_check {
        Some(decoded)
    } else {
        trusted_url(cfg, &raw, true).and_then(|_| trusted_url(cfg, &decoded, true))
    };
    let used = used.ok_or(AuthError::InvalidUrl(UrlField::CallbackUrl))?;
    Ok(Some(if used.starts_with('/') { format!("{}{used}", cfg.base_origin) } else { used }))
}

/// `GET /magic-link/verify` (spec §9.2). Failures after the URL checks redirect to
/// the error callback with `?error=<code>`, even when the answer would be JSON.
pub async fn verify(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let (Some(opts), Some(sender)) = (auth.cfg.magic_link.as_ref(), auth.magic_link_callbacks.as_ref()) else {
        return Err(AuthError::NotFound);
    };
    let token = query_text(ctx.req, "token")?.unwrap_or_default();
    let callback = callback_param(ctx, "callbackURL")?;
    let error_url = callback_param(ctx, "errorCallbackURL")?;
    let new_user_url = callback_param(ctx, "newUserCallbackURL")?;
    if token.is_empty() {
        return Err(AuthError::Validation("[query.token] Invalid input: expected string, received undefined".into()));
    }
    let error_url = error_url.or_else(|| callback.clone()).unwrap_or_else(|| format!("{}/", auth.cfg.base_origin));
    // A refusal is a redirect too, and may still clean up after itself.
    let fail = |e: AuthError, writes: Vec<WriteOp>| {
        Ok(Outcome::response(Response::redirect_with_error(&error_url, e.redirect_code())).writes(writes))
    };

    let identifier = identifier(ctx, sender.as_ref(), opts.store_token, &token).await?;
    let now = auth.clock.now_ms();
    let Some(row) = auth.store.verification(&identifier).await? else { return fail(AuthError::InvalidToken, vec![]) };
    let link: Value = serde_json::from_str(&row.value).unwrap_or(Value::Null);
    let email = link.get("email").and_then(Value::as_str).map(str::to_lowercase);
    let Some(email) = email.filter(|_| row.expires_at > now) else {
        return fail(AuthError::InvalidToken, vec![WriteOp::DeleteVerification(identifier)]);
    };

    let mut writes = vec![WriteOp::ConsumeVerification(identifier.clone())];
    let (user, is_new) = match auth.store.user(Login::Email, &email).await? {
        None if opts.disable_sign_up => {
            return fail(AuthError::NewUserSignupDisabled, vec![WriteOp::DeleteVerification(identifier)]);
        }
        None => {
            let name = link.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
            let user = User { email_verified: true, ..User::new(new_id(), name, email, false, now) };
            writes.push(WriteOp::InsertUser(user.clone()));
            (user, true)
        }
        Some(mut user) => {
            crate::routes::verification::inbox_proven(&mut user, now, &mut writes);
            (user, false)
        }
    };

    let session = auth.sessions.create(&user.id, false, true, ctx.req, ctx.client_ip.as_deref());
    writes.push(WriteOp::InsertSession(session.clone()));
    let out = match &callback {
        None => Outcome::json(&json!({
            "token": session.token,
            "user": UserJson(&user, auth.user_fields),
            "session": SessionJson(&session),
        })),
        Some(callback) => {
            let to = if is_new { new_user_url.as_deref().unwrap_or(callback) } else { callback };
            Outcome::response(Response::redirect(to))
        }
    };
    Ok(out
        .cookies(auth.sessions.cookies_for(&session, &user, true))
        .writes(writes)
        .minted(session, user)
        .on_conflict(AuthError::FailedToCreateUser)
        .error_redirect(error_url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_tokens_are_unpadded_base64url_sha256() {
        // SHA-256("abc"), the FIPS 180-2 test vector, in base64url without padding.
        assert_eq!(sha256_b64url("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }
}
