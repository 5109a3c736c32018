//! What a signed-in user's account page calls (account-routes spec §2, §5, §6):
//! the profile, the password, the sessions and the linked accounts.

use serde_json::{json, Value};

use crate::crypto::new_id;
use crate::endpoint::{Ctx, Outcome, RouteDef};
use crate::error::AuthError;
use crate::http::body::{query_text, Body};
use crate::model::{Account, SessionJson, User, UserJson};
use crate::route;
use crate::routes::password_account::{check_current_password, check_password_length};
use crate::routes::username;
use crate::storage::WriteOp;

pub const ROUTES: &[RouteDef] = &[
    route!("POST", "/update-user", update_user),
    route!("POST", "/change-password", change_password),
    route!("GET", "/list-sessions", list_sessions),
    route!("POST", "/revoke-session", revoke_session),
    route!("POST", "/revoke-sessions", revoke_sessions),
    route!("POST", "/revoke-other-sessions", revoke_other_sessions),
    route!("GET", "/list-accounts", list_accounts),
    route!("POST", "/unlink-account", unlink_account),
    route!("GET", "/account-info", account_info),
];

fn status_true() -> Outcome {
    Outcome::json(&json!({ "status": true }))
}

/// JavaScript's truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `POST /update-user` (§2.1): `name`, `image` and the username plugin's fields;
/// `email` is refused, `isAnonymous` may not be set, other keys are ignored.
async fn update_user(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let body = Body::parse(ctx.req, false)?;
    let mut v = body.validator();
    let name = v.optional_string("name");
    let image = match body.get("image") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => v.optional_string("image").map(Some),
    };
    v.finish()?;
    let me = ctx.signed_in().await?;
    if body.get("email").is_some_and(truthy) {
        return Err(AuthError::EmailCanNotBeUpdated);
    }
    if auth.cfg.anonymous.is_some() && body.get("isAnonymous").is_some_and(truthy) {
        return Err(AuthError::FieldNotAllowed("isAnonymous"));
    }
    let (username, display_username) = username::update_fields(ctx, &body, &me.user.id).await?;
    if name.is_none() && image.is_none() && username.is_none() && display_username.is_none() {
        return Err(AuthError::NoFieldsToUpdate);
    }
    let now = auth.clock.now_ms();
    let updated = User {
        name: name.clone().unwrap_or_else(|| me.user.name.clone()),
        image: image.clone().unwrap_or_else(|| me.user.image.clone()),
        username: username.clone().or_else(|| me.user.username.clone()),
        display_username: display_username.clone().or_else(|| me.user.display_username.clone()),
        updated_at: now,
        ..me.user.clone()
    };
    let update =
        WriteOp::UpdateUser { user_id: me.user.id.clone(), updated_at: now, name, image, username, display_username };
    Ok(status_true().cookies(me.cookies_again(auth, &updated)).writes([update]).on_conflict(AuthError::UsernameTaken))
}

/// `POST /change-password` (§2.2): `{newPassword, currentPassword, revokeOtherSessions?}`.
async fn change_password(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let body = Body::parse(ctx.req, false)?;
    let mut v = body.validator();
    let (new_password, current) = (v.string("newPassword"), v.string("currentPassword"));
    let revoke = v.optional_bool("revokeOtherSessions").unwrap_or(false);
    v.finish()?;
    let (Some(new_password), Some(current)) = (new_password, current) else {
        unreachable!("validation passed, so the required fields are present")
    };
    let me = ctx.signed_in().await?;
    check_password_length(ctx, &new_password)?;
    check_current_password(ctx, &me.user.id, current).await?;
    let now = auth.clock.now_ms();
    let new_hash = auth.hasher.hash(new_password).await?;
    let set = WriteOp::SetPassword { user_id: me.user.id.clone(), hash: new_hash, now, new_account_id: new_id() };
    let user =
        serde_json::to_value(UserJson(me.user, auth.user_fields)).map_err(|e| AuthError::internal(e.to_string()))?;
    if !revoke {
        return Ok(Outcome::json(&json!({ "token": null, "user": user })).writes([set]));
    }
    let session = auth.sessions.create(&me.user.id, me.user.is_anonymous, true, ctx.req, ctx.client_ip.as_deref());
    let cookies = auth.sessions.cookies_for(&session, me.user, true);
    let body = json!({ "token": session.token, "user": user });
    let writes = [WriteOp::DeleteSessionsOfUser(me.user.id.clone()), set, WriteOp::InsertSession(session)];
    Ok(Outcome::json(&body).cookies(cookies).writes(writes))
}

/// `GET /list-sessions` (§5.1): the user's unexpired sessions, tokens included.
async fn list_sessions(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let me = ctx.fresh().await?;
    let now = ctx.auth.clock.now_ms();
    let sessions = ctx.auth.store.sessions_of_user(&me.user.id).await?;
    let live: Vec<_> = sessions.iter().filter(|s| s.expires_at > now).map(SessionJson).collect();
    Ok(Outcome::json(&live))
}

/// `POST /revoke-session` (§5.2): `{token}`; someone else's or an unknown token changes nothing.
async fn revoke_session(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let token = Body::parse(ctx.req, false)?.required_string("token")?;
    let me = ctx.signed_in().await?;
    let own = token == me.session.token;
    let out = status_true().writes([WriteOp::DeleteUserSession { user_id: me.user.id.clone(), token }]);
    Ok(if own { out.cookies(ctx.auth.sessions.cookies.expire_session()) } else { out })
}

/// `POST /revoke-sessions` (§5.3): every session of the user, this one included.
async fn revoke_sessions(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let me = ctx.signed_in().await?;
    Ok(status_true()
        .writes([WriteOp::DeleteSessionsOfUser(me.user.id.clone())])
        .cookies(ctx.auth.sessions.cookies.expire_session()))
}

/// `POST /revoke-other-sessions` (§5.4): every unexpired session but this one.
async fn revoke_other_sessions(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let me = ctx.signed_in().await?;
    let revoke = WriteOp::DeleteOtherLiveSessions {
        user_id: me.user.id.clone(),
        keep_token: me.session.token.clone(),
        now: ctx.auth.clock.now_ms(),
    };
    Ok(status_true().writes([revoke]))
}

/// An account as `/list-accounts` shows it: no secrets, `scope` split into `scopes`.
fn account_json(a: &Account) -> Value {
    let scopes: Vec<&str> =
        a.scope.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    json!({
        "id": a.id,
        "providerId": a.provider_id,
        "accountId": a.account_id,
        "userId": a.user_id,
        "createdAt": crate::time::iso(a.created_at),
        "updatedAt": crate::time::iso(a.updated_at),
        "scopes": scopes,
    })
}

/// `GET /list-accounts` (§6.1).
async fn list_accounts(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let me = ctx.signed_in().await?;
    let accounts = ctx.auth.store.accounts_of_user(&me.user.id).await?;
    Ok(Outcome::json(&accounts.iter().map(account_json).collect::<Vec<_>>()))
}

/// `POST /unlink-account` (§6.2): `{accountId}`, the account row's id.
async fn unlink_account(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let id = Body::parse(ctx.req, false)?.required_string("accountId")?;
    let me = ctx.fresh().await?;
    let accounts = ctx.auth.store.accounts_of_user(&me.user.id).await?;
    if accounts.len() == 1 && !ctx.auth.cfg.account.account_linking.allow_unlinking_all {
        return Err(AuthError::FailedToUnlinkLastAccount);
    }
    if !accounts.iter().any(|a| a.id == id) {
        return Err(AuthError::AccountNotFound);
    }
    Ok(status_true().writes([WriteOp::DeleteAccount { user_id: me.user.id.clone(), id }]))
}

/// `GET /account-info` (§6.3): a social account's provider profile. This server has
/// no social providers, so a found account is always `PROVIDER_NOT_CONFIGURED`.
async fn account_info(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let keys: Vec<String> = form_urlencoded::parse(ctx.req.query.as_bytes()).map(|(k, _)| k.into_owned()).collect();
    let allowed = |k: &String| matches!(k.as_str(), "accountId" | "userId" | "useAccountCookie");
    let account_id = query_text(ctx.req, "accountId")?;
    let cookie_form = query_text(ctx.req, "useAccountCookie")?.is_some_and(|v| v == "true");
    if !keys.iter().all(allowed) || account_id.is_some() == cookie_form {
        return Err(AuthError::Validation("[query] Invalid input".into()));
    }
    let me = match ctx.signed_in().await {
        Ok(me) => me,
        Err(AuthError::Unauthorized) => return Err(AuthError::Empty(401)),
        Err(e) => return Err(e),
    };
    let accounts = ctx.auth.store.accounts_of_user(&me.user.id).await?;
    match account_id.and_then(|id| accounts.into_iter().find(|a| a.id == id)) {
        None => Err(AuthError::AccountNotFound),
        Some(_) => Err(AuthError::ProviderNotConfigured),
    }
}
