//! `POST /sign-up/email` and `POST /sign-in/email` (spec §6).

use serde_json::json;

use crate::core::body::{is_valid_email, Body};
use crate::core::handler::{Ctx, Outcome};
use crate::core::origin::{check_callback_url, check_form_csrf};
use crate::crypto::new_id;
use crate::error::{AuthError, UrlField};
use crate::methods::username;
use crate::model::{Account, User, UserJson};
use crate::storage::{Login, WriteOp};

pub(crate) fn check_password_length(ctx: &Ctx<'_>, password: &str) -> Result<(), AuthError> {
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

/// What a password sign-in reads: `{<login field>, password, callbackURL?, rememberMe?}`.
pub(crate) struct SignInFields {
    pub login: String,
    pub password: String,
    pub callback: Option<String>,
    pub remember: bool,
}

/// Reads a password sign-in's fields, its callback URL checked against the trusted origins.
pub(crate) fn sign_in_fields(ctx: &Ctx<'_>, body: &Body, login: &str) -> Result<SignInFields, AuthError> {
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

pub async fn sign_up(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let ep = &auth.cfg.email_password;
    let body = Body::parse(ctx.req, true)?;
    check_callback_url(&auth.cfg, UrlField::CallbackUrl, body.get("callbackURL"))?;
    let mut v = body.validator();
    let (name, email, password) = (v.string("name"), v.email("email"), v.string("password"));
    let image = v.optional_string("image");
    v.optional_string("callbackURL");
    let remember = v.optional_bool("rememberMe").unwrap_or(true);
    if auth.username_hooks.is_some() {
        v.optional_string("username");
        v.optional_string("displayUsername");
    }
    v.finish()?;
    let (Some(name), Some(email), Some(password)) = (name, email, password) else {
        unreachable!("validation passed, so the required fields are present")
    };
    check_form_csrf(&auth.cfg, ctx.req)?;
    if !ep.enabled || ep.disable_sign_up {
        return Err(AuthError::EmailPasswordSignUpDisabled);
    }
    let (username, display_username) = username::sign_up_fields(ctx, &body, false).await?;
    check_password_length(ctx, &password)?;

    let now = auth.clock.now_ms();
    let user =
        User { image, username, display_username, ..User::new(new_id(), name, email.to_lowercase(), false, now) };
    let signs_in = ep.auto_sign_in && !ep.require_email_verification;
    if auth.store.user(Login::Email, &user.email).await?.is_some() {
        if signs_in {
            return Err(AuthError::UserAlreadyExists);
        }
        // Without sign-in the answer must not reveal that the email is taken:
        // spend the same hashing time and answer as for a new account.
        auth.hasher.hash(password).await?;
        return Ok(Outcome::json(&json!({ "token": null, "user": UserJson(&user, auth.user_fields) })));
    }
    create_account(ctx, user, password, remember, signs_in).await
}

/// Stages a new user with a password credential and, when `signs_in`, its first
/// session: `{token, user}` (spec §6.1 steps 4-7).
pub(crate) async fn create_account(
    ctx: &Ctx<'_>,
    user: User,
    password: String,
    remember: bool,
    signs_in: bool,
) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let hash = auth.hasher.hash(password).await?;
    let account = Account::credential(&user.id, hash, user.created_at);
    let user_json =
        serde_json::to_value(UserJson(&user, auth.user_fields)).map_err(|e| AuthError::internal(e.to_string()))?;
    let mut writes = vec![WriteOp::InsertUser(user.clone()), WriteOp::InsertAccount(account)];
    if !signs_in {
        return Ok(Outcome::json(&json!({ "token": null, "user": user_json })).writes(writes));
    }
    let session = auth.new_session(&user.id, remember, ctx.req, ctx.client_ip.as_deref());
    let cookies = auth.session_cookies(&session, remember);
    let body = json!({ "token": session.token, "user": user_json });
    writes.push(WriteOp::InsertSession(session.clone()));
    Ok(Outcome::json(&body).cookies(cookies).writes(writes).minted(session, user))
}

pub async fn sign_in(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let ep = &auth.cfg.email_password;
    let body = Body::parse(ctx.req, true)?;
    let SignInFields { login: email, password, callback, remember } = sign_in_fields(ctx, &body, "email")?;
    check_form_csrf(&auth.cfg, ctx.req)?;
    if !ep.enabled {
        return Err(AuthError::EmailPasswordDisabled);
    }
    if !is_valid_email(&email) {
        return Err(AuthError::InvalidEmail);
    }
    let found = auth.store.user_with_password(Login::Email, &email.to_lowercase()).await?;
    let sign_in = PasswordSignIn { password, remember, callback, wrong: AuthError::InvalidEmailOrPassword };
    sign_in.finish(ctx, found).await
}

/// The common end of a password sign-in, by email or by username (spec §6.2, §8.2).
pub(crate) struct PasswordSignIn {
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
            return Err(AuthError::EmailNotVerified);
        }

        let session = auth.new_session(&user.id, self.remember, ctx.req, ctx.client_ip.as_deref());
        let cookies = auth.session_cookies(&session, self.remember);
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
