//! The username plugin (spec §8): usernames on sign-up, `POST /sign-in/username`,
//! `POST /is-username-available`, and Kernia's `POST /sign-up/username`.
//!
//! Usernames are stored normalized (lower-cased by default) under a unique index;
//! `displayUsername` keeps what the user typed. Validation checks the value as
//! typed by default (`pre-normalization`), the stored value with `post-normalization`,
//! the same way on every endpoint.

use crate::callbacks::{CallbackRequest, UsernameCallbacks};
use crate::config::{UsernameOptions, ValidationOrder};
use crate::crypto::new_id;
use crate::endpoint::{Ctx, Outcome, RouteDef};
use crate::error::AuthError;
use crate::http::body::Body;
use crate::http::origin::check_form_csrf;
use crate::model::User;
use crate::route;
use crate::routes::password_account::{
    check_password_length, create_account, sign_in_fields, PasswordSignIn, SignInFields,
};
use crate::storage::Login;

pub const ROUTES: &[RouteDef] = &[
    route!("POST", "/sign-in/username", sign_in, plugin = Username, signs_in = "username"),
    route!("POST", "/sign-up/username", sign_up, plugin = Username, signs_in = "username"),
    route!("POST", "/is-username-available", is_available, plugin = Username),
];

/// Usernames for accounts made by `/sign-up/username` without an email.
pub const USERNAME_EMAIL_DOMAIN: &str = "username.placeholder.invalid";

/// The default rule: letters, digits, `_` and `.`.
pub fn default_valid(username: &str) -> bool {
    !username.is_empty() && username.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// The plugin's options and the app's rules, for one request.
struct Rules<'a> {
    opts: &'a UsernameOptions,
    hooks: &'a dyn UsernameCallbacks,
    req: CallbackRequest,
}

impl<'a> Rules<'a> {
    fn of(ctx: &'a Ctx<'_>) -> Option<Self> {
        let opts = ctx.auth.cfg.username.as_ref()?;
        let hooks = ctx.auth.username_callbacks.as_deref()?;
        Some(Rules { opts, hooks, req: CallbackRequest::of(ctx.req, ctx.client_ip.clone()) })
    }

    async fn normalize(&self, raw: &str) -> Result<String, AuthError> {
        if let Some(stored) = self.hooks.normalize(&self.req, raw).await? {
            return Ok(stored);
        }
        Ok(if self.opts.normalize { raw.to_lowercase() } else { raw.to_owned() })
    }

    async fn normalize_display(&self, raw: &str) -> Result<String, AuthError> {
        Ok(self.hooks.normalize_display(&self.req, raw).await?.unwrap_or_else(|| raw.to_owned()))
    }

    /// Length and validator; errors carry `status` (400 on sign-up, 422 elsewhere).
    async fn validate(&self, raw: &str, stored: &str, status: u16) -> Result<(), AuthError> {
        let value = match self.opts.username_validation_order {
            ValidationOrder::PreNormalization => raw,
            ValidationOrder::PostNormalization => stored,
        };
        // Counted in UTF-16 units, as JavaScript's `length` does.
        let len = value.encode_utf16().count();
        if len < self.opts.min_username_length {
            return Err(AuthError::UsernameTooShort(status));
        }
        if len > self.opts.max_username_length {
            return Err(AuthError::UsernameTooLong(status));
        }
        let valid = match self.hooks.validate(&self.req, value).await? {
            Some(valid) => valid,
            None => default_valid(value),
        };
        if valid {
            Ok(())
        } else {
            Err(AuthError::InvalidUsername(status))
        }
    }

    async fn validate_display(&self, raw: &str, stored: &str) -> Result<(), AuthError> {
        let value = match self.opts.display_username_validation_order {
            ValidationOrder::PreNormalization => raw,
            ValidationOrder::PostNormalization => stored,
        };
        match self.hooks.validate_display(&self.req, value).await? {
            Some(false) => Err(AuthError::InvalidDisplayUsername),
            _ => Ok(()),
        }
    }

    async fn taken(&self, ctx: &Ctx<'_>, stored: &str) -> Result<bool, AuthError> {
        Ok(ctx.auth.store.user(Login::Username, stored).await?.is_some())
    }
}

fn string_field(body: &Body, key: &str) -> Option<String> {
    body.get(key).and_then(|v| v.as_str()).map(str::to_owned)
}

/// The `(username, displayUsername)` to store for a sign-up body (spec §8.1);
/// both `None` when the plugin is off or the body has neither. Errors answer 400.
/// `required`: the body must carry a username (Kernia's `/sign-up/username`).
pub async fn sign_up_fields(
    ctx: &Ctx<'_>,
    body: &Body,
    required: bool,
) -> Result<(Option<String>, Option<String>), AuthError> {
    let Some(rules) = Rules::of(ctx) else { return Ok((None, None)) };
    let display = string_field(body, "displayUsername");
    let username = match (string_field(body, "username"), &display) {
        (Some(raw), _) => {
            let stored = rules.normalize(&raw).await?;
            rules.validate(&raw, &stored, 400).await?;
            Some((raw, stored))
        }
        // A display name alone becomes the username too, when it would pass as one.
        (None, Some(d)) => {
            let stored = rules.normalize(d).await?;
            rules.validate(d, &stored, 400).await.is_ok().then(|| (d.clone(), stored))
        }
        (None, None) => None,
    };
    if username.is_none() && required {
        return Err(AuthError::InvalidUsername(400));
    }
    if let Some((_, stored)) = &username {
        if rules.taken(ctx, stored).await? {
            return Err(AuthError::UsernameTaken);
        }
    }
    let (raw, stored) = username.unzip();
    let Some(display_raw) = display.or(raw) else { return Ok((None, None)) };
    let display_stored = rules.normalize_display(&display_raw).await?;
    rules.validate_display(&display_raw, &display_stored).await?;
    Ok((stored, Some(display_stored)))
}

/// The `(username, displayUsername)` an `/update-user` body sets (account-routes
/// §2.1): each checked like on sign-up; the username free or already the user's.
/// Unlike sign-up, neither is derived from the other. `(None, None)` when the plugin is off.
pub async fn update_fields(
    ctx: &Ctx<'_>,
    body: &Body,
    user_id: &str,
) -> Result<(Option<String>, Option<String>), AuthError> {
    let Some(rules) = Rules::of(ctx) else { return Ok((None, None)) };
    let username = match string_field(body, "username") {
        Some(raw) => {
            let stored = rules.normalize(&raw).await?;
            rules.validate(&raw, &stored, 400).await?;
            let owner = ctx.auth.store.user(Login::Username, &stored).await?;
            if owner.is_some_and(|u| u.id != user_id) {
                return Err(AuthError::UsernameTaken);
            }
            Some(stored)
        }
        None => None,
    };
    let display = match string_field(body, "displayUsername") {
        Some(raw) => {
            let stored = rules.normalize_display(&raw).await?;
            rules.validate_display(&raw, &stored).await?;
            Some(stored)
        }
        None => None,
    };
    Ok((username, display))
}

/// `POST /sign-in/username` (spec §8.2).
pub async fn sign_in(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let rules = Rules::of(ctx).ok_or(AuthError::NotFound)?;
    let body = Body::parse(ctx.req, false)?;
    let SignInFields { login: username, password, callback, remember } = sign_in_fields(ctx, &body, "username")?;
    if username.is_empty() || password.is_empty() {
        return Err(AuthError::InvalidUsernameOrPassword);
    }
    let stored = rules.normalize(&username).await?;
    rules.validate(&username, &stored, 422).await?;
    let found = ctx.auth.store.user_with_password(Login::Username, &stored).await?;
    let sign_in = PasswordSignIn { password, remember, callback, wrong: AuthError::InvalidUsernameOrPassword };
    sign_in.finish(ctx, found).await
}

/// `POST /is-username-available` (spec §8.3): `{available}`.
pub async fn is_available(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let rules = Rules::of(ctx).ok_or(AuthError::NotFound)?;
    let body = Body::parse(ctx.req, false)?;
    let mut v = body.validator();
    let username = v.string("username");
    v.finish()?;
    let username = username.unwrap_or_default();
    if username.is_empty() {
        return Err(AuthError::InvalidUsername(422));
    }
    let stored = rules.normalize(&username).await?;
    rules.validate(&username, &stored, 422).await?;
    let available = !rules.taken(ctx, &stored).await?;
    Ok(Outcome::json(&serde_json::json!({ "available": available })))
}

/// Kernia's `POST /sign-up/username`: `{username, password, email?, name?,
/// displayUsername?, rememberMe?}` → `{token, user}` like `/sign-up/email`. Without
/// an email the account gets `<id>@username.placeholder.invalid`.
pub async fn sign_up(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let body = Body::parse(ctx.req, true)?;
    let mut v = body.validator();
    let (username, password) = (v.string("username"), v.string("password"));
    let email = v.optional_email("email");
    let name = v.optional_string("name");
    v.optional_string("displayUsername");
    let remember = v.optional_bool("rememberMe").unwrap_or(true);
    v.finish()?;
    let (Some(_), Some(password)) = (username, password) else {
        unreachable!("validation passed, so the required fields are present")
    };
    check_form_csrf(&auth.cfg, ctx.req)?;
    let (Some(stored), Some(display)) = sign_up_fields(ctx, &body, true).await? else {
        return Err(AuthError::InvalidUsername(400));
    };
    check_password_length(ctx, &password)?;

    let id = new_id();
    let email = match email {
        Some(email) => {
            let email = email.to_lowercase();
            if auth.store.user(Login::Email, &email).await?.is_some() {
                return Err(AuthError::UserAlreadyExists);
            }
            email
        }
        None => format!("{}@{USERNAME_EMAIL_DOMAIN}", id.to_lowercase()),
    };
    let name = name.unwrap_or_else(|| display.clone());
    let now = auth.clock.now_ms();
    let user =
        User { username: Some(stored), display_username: Some(display), ..User::new(id, name, email, false, now) };
    let ep = &auth.cfg.email_password;
    create_account(ctx, user, password, remember, ep.auto_sign_in && !ep.require_email_verification, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rule_allows_letters_digits_underscore_and_dot() {
        assert!(default_valid("Ada_Lovelace.1815"));
        for bad in ["", "ada lovelace", "ada-l", "adá", "ada@x"] {
            assert!(!default_valid(bad), "{bad:?}");
        }
    }
}
