//! What the password sign-in methods (email, username, a guest's upgrade) share:
//! password rules, the sign-in fields, the new account with its credential, and
//! the end of a password sign-in.

use serde_json::json;

use crate::endpoint::{Ctx, Outcome};
use crate::error::{AuthError, UrlField};
use crate::http::body::Body;
use crate::http::origin::check_callback_url;
use crate::model::{Account, User, UserJson};
use crate::routes::verification;
use crate::storage::{Login, WriteOp};

pub fn check_password_length(ctx: &Ctx<'_>, password: &str) -> Result<(), AuthError> {
    let ep = &ctx.auth.cfg.email_password;
    // Counted in UTF-16 units, as JavaScript's `length` does.
    let len = password.encode_utf16().count();
    if len < ep.min_password_length {
        Err(AuthError::PasswordTooShort)
    } else if len > ep.max_password_length {
        Err(AuthError::PasswordTooLong)
    } else {
        Ok(())
    }
}

/// The signed-in user's own password, checked before a sensitive change (change-password,
/// delete-user): too long is 400 `PASSWORD_TOO_LONG`, no password 400
/// `CREDENTIAL_ACCOUNT_NOT_FOUND`, a wrong one 400 `INVALID_PASSWORD`.
pub async fn check_current_password(ctx: &Ctx<'_>, user_id: &str, password: String) -> Result<(), AuthError> {
    let auth = ctx.auth;
    if password.encode_utf16().count() > auth.cfg.email_password.max_password_length {
        return Err(AuthError::PasswordTooLong);
    }
    let hash = auth.store.user_with_password(Login::Id, user_id).await?.and_then(|(_, hash)| hash);
    let Some(hash) = hash else { return Err(AuthError::CredentialAccountNotFound) };
    if !auth.hasher.verify(hash, password).await? {
        return Err(AuthError::InvalidPassword);
    }
    Ok(())
}

/// What a password sign-in reads: `{<login field>, password, callbackURL?, rememberMe?}`.
pub struct SignInFields {
    pub login: String,
    pub password: String,
    pub callback: Option<String>,
    pub remember: bool,
}

/// Reads a password sign-in's fields, its callback URL checked against the trusted origins.
pub fn sign_in_fields(ctx: &Ctx<'_>, body: &Body, login: &str) -> Result<SignInFields, AuthError> {
    let callback = check_callback_url(&ctx.auth.cfg, UrlField::CallbackUrl, body.get("callbackURL"))?;
    let mut v = body.validator();
    let (id, password) = (v.string(login), v.string("password"));
    v.optional_string("callbackURL");
    let remember = v.optional_bool("rememberMe").unwrap_or(true);
    v.finish()?;
    let (Some(login), Some(password)) = (id, password) else {
        unreachable!("validation passed, so the required fields are present")
    };
    Ok(SignInFields { login, password, callback, remember })
}

/// Stages a new user with a password credential and, when `signs_in`, its first
/// session: `{token, user}` (spec §6.1 steps 4-7).
pub async fn create_account(
    ctx: &Ctx<'_>,
    user: User,
    password: String,
    remember: bool,
    signs_in: bool,
    callback: Option<&str>,
) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let hash = auth.hasher.hash(password).await?;
    let account = Account::credential(&user.id, hash, user.created_at);
    let user_json =
        serde_json::to_value(UserJson(&user, auth.user_fields)).map_err(|e| AuthError::internal(e.to_string()))?;
    let mut writes = vec![WriteOp::InsertUser(user.clone()), WriteOp::InsertAccount(account)];
    let mail = verification::after_sign_up(ctx, &user, callback);
    if !signs_in {
        return Ok(Outcome::json(&json!({ "token": null, "user": user_json })).writes(writes).after_commit(mail));
    }
    let session = auth.sessions.create(&user.id, false, remember, ctx.req, ctx.client_ip.as_deref());
    let cookies = auth.sessions.cookies_for(&session, &user, remember);
    let body = json!({ "token": session.token, "user": user_json });
    writes.push(WriteOp::InsertSession(session.clone()));
    Ok(Outcome::json(&body).cookies(cookies).writes(writes).minted(session, user).after_commit(mail))
}

/// The common end of a password sign-in, by email or by username (spec §6.2, §8.2).
pub struct PasswordSignIn {
    pub password: String,
    pub remember: bool,
    pub callback: Option<String>,
    /// The answer to an unknown user or a wrong password.
    pub wrong: AuthError,
}

impl PasswordSignIn {
    pub async fn finish(self, ctx: &Ctx<'_>, found: Option<(User, Option<String>)>) -> Result<Outcome, AuthError> {
        let auth = ctx.auth;
        let (user, verified) = match found {
            Some((user, Some(hash))) => {
                let ok = auth.hasher.verify(hash, self.password).await?;
                (Some(user), ok)
            }
            // Same cost as a wrong password, so timing does not reveal which accounts exist.
            _ => (None, auth.hasher.verify_nothing(self.password).await?),
        };
        let user = match user {
            Some(user) if verified => user,
            _ => return Err(self.wrong),
        };
        if auth.cfg.email_password.require_email_verification && !user.email_verified {
            return Err(verification::refuse_unverified(ctx, &user, self.callback.as_deref()).await);
        }

        let session = auth.sessions.create(&user.id, false, self.remember, ctx.req, ctx.client_ip.as_deref());
        let cookies = auth.sessions.cookies_for(&session, &user, self.remember);
        let mut body = json!({ "redirect": self.callback.is_some(), "token": session.token });
        if let Some(url) = &self.callback {
            body["url"] = json!(url);
        }
        body["user"] =
            serde_json::to_value(UserJson(&user, auth.user_fields)).map_err(|e| AuthError::internal(e.to_string()))?;
        let mut out = Outcome::json(&body)
            .cookies(cookies)
            .writes([WriteOp::InsertSession(session.clone())])
            .minted(session, user);
        if let Some(url) = self.callback {
            out = out.header("location", url);
        }
        Ok(out)
    }
}
