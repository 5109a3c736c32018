//! `POST /sign-up/email` and `POST /sign-in/email` (spec §6).

use serde_json::json;

use crate::crypto::new_id;
use crate::endpoint::{Ctx, Outcome, RouteDef};
use crate::error::{AuthError, UrlField};
use crate::http::body::{is_valid_email, Body};
use crate::http::origin::{check_callback_url, check_form_csrf};
use crate::model::{User, UserJson};
use crate::route;
use crate::routes::password_account::{
    check_password_length, create_account, sign_in_fields, PasswordSignIn, SignInFields,
};
use crate::routes::username;
use crate::storage::Login;

pub const ROUTES: &[RouteDef] = &[
    route!("POST", "/sign-up/email", sign_up, signs_in = "email"),
    route!("POST", "/sign-in/email", sign_in, signs_in = "email"),
];

pub async fn sign_up(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let ep = &auth.cfg.email_password;
    let body = Body::parse(ctx.req, true)?;
    let callback = check_callback_url(&auth.cfg, UrlField::CallbackUrl, body.get("callbackURL"))?;
    let mut v = body.validator();
    let (name, email, password) = (v.string("name"), v.email("email"), v.string("password"));
    let image = v.optional_string("image");
    v.optional_string("callbackURL");
    let remember = v.optional_bool("rememberMe").unwrap_or(true);
    if auth.username_callbacks.is_some() {
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
    create_account(ctx, user, password, remember, signs_in, callback.as_deref()).await
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
