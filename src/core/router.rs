//! The route table. Paths are relative to the base path; anything else, a
//! wrong method or a trailing slash is a 404 with an empty body (spec §1.1).

use crate::core::handler::{Ctx, Outcome};
use crate::error::AuthError;
use crate::methods::{anonymous, email, magic_link, passkey, username};
use crate::session::routes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Ok,
    SignUpEmail,
    SignInEmail,
    GetSession,
    GetSessionPost,
    SignOut,
    SignInAnonymous,
    DeleteAnonymousUser,
    UpgradeAnonymous,
    LinkAnonymous,
    SignInUsername,
    SignUpUsername,
    IsUsernameAvailable,
    SignInMagicLink,
    VerifyMagicLink,
    PasskeyRegisterOptions,
    PasskeyVerifyRegistration,
    PasskeyAuthenticateOptions,
    PasskeyVerifyAuthentication,
    PasskeyList,
    PasskeyDelete,
    PasskeyUpdate,
}

/// Which plugins are on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plugins {
    pub anonymous: bool,
    pub username: bool,
    pub magic_link: bool,
    pub passkey: bool,
}

/// The route for a method and relative path; plugin routes only when their plugin is on.
pub fn route(method: &str, path: &str, on: Plugins) -> Option<Route> {
    Some(match (method, path) {
        ("POST", "/sign-in/anonymous") if on.anonymous => Route::SignInAnonymous,
        ("POST", "/delete-anonymous-user") if on.anonymous => Route::DeleteAnonymousUser,
        ("POST", "/anonymous/upgrade") if on.anonymous => Route::UpgradeAnonymous,
        ("POST", "/anonymous/link") if on.anonymous => Route::LinkAnonymous,
        ("POST", "/sign-in/username") if on.username => Route::SignInUsername,
        ("POST", "/sign-up/username") if on.username => Route::SignUpUsername,
        ("POST", "/is-username-available") if on.username => Route::IsUsernameAvailable,
        ("POST", "/sign-in/magic-link") if on.magic_link => Route::SignInMagicLink,
        ("GET", "/magic-link/verify") if on.magic_link => Route::VerifyMagicLink,
        ("GET", "/passkey/generate-register-options") if on.passkey => Route::PasskeyRegisterOptions,
        ("POST", "/passkey/verify-registration") if on.passkey => Route::PasskeyVerifyRegistration,
        ("GET", "/passkey/generate-authenticate-options") if on.passkey => Route::PasskeyAuthenticateOptions,
        ("POST", "/passkey/verify-authentication") if on.passkey => Route::PasskeyVerifyAuthentication,
        ("GET", "/passkey/list-user-passkeys") if on.passkey => Route::PasskeyList,
        ("POST", "/passkey/delete-passkey") if on.passkey => Route::PasskeyDelete,
        ("POST", "/passkey/update-passkey") if on.passkey => Route::PasskeyUpdate,
        ("GET", "/ok") => Route::Ok,
        ("POST", "/sign-up/email") => Route::SignUpEmail,
        ("POST", "/sign-in/email") => Route::SignInEmail,
        ("GET", "/get-session") => Route::GetSession,
        ("POST", "/get-session") => Route::GetSessionPost,
        ("POST", "/sign-out") => Route::SignOut,
        _ => return None,
    })
}

impl Route {
    /// The registered path: what the conversion hook matches its prefixes against.
    pub fn path(self) -> &'static str {
        match self {
            Route::Ok => "/ok",
            Route::SignUpEmail => "/sign-up/email",
            Route::SignInEmail => "/sign-in/email",
            Route::GetSession | Route::GetSessionPost => "/get-session",
            Route::SignOut => "/sign-out",
            Route::SignInAnonymous => "/sign-in/anonymous",
            Route::DeleteAnonymousUser => "/delete-anonymous-user",
            Route::UpgradeAnonymous => "/anonymous/upgrade",
            Route::LinkAnonymous => "/anonymous/link",
            Route::SignInUsername => "/sign-in/username",
            Route::SignUpUsername => "/sign-up/username",
            Route::IsUsernameAvailable => "/is-username-available",
            Route::SignInMagicLink => "/sign-in/magic-link",
            Route::VerifyMagicLink => "/magic-link/verify",
            Route::PasskeyRegisterOptions => "/passkey/generate-register-options",
            Route::PasskeyVerifyRegistration => "/passkey/verify-registration",
            Route::PasskeyAuthenticateOptions => "/passkey/generate-authenticate-options",
            Route::PasskeyVerifyAuthentication => "/passkey/verify-authentication",
            Route::PasskeyList => "/passkey/list-user-passkeys",
            Route::PasskeyDelete => "/passkey/delete-passkey",
            Route::PasskeyUpdate => "/passkey/update-passkey",
        }
    }

    pub async fn run(self, ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
        match self {
            Route::Ok => Ok(Outcome::json(&serde_json::json!({ "ok": true }))),
            Route::SignUpEmail => email::sign_up(ctx).await,
            Route::SignInEmail => email::sign_in(ctx).await,
            Route::GetSession => routes::get_session(ctx).await,
            Route::GetSessionPost => Err(AuthError::MethodNotAllowedDeferSessionRequired),
            Route::SignOut => routes::sign_out(ctx).await,
            Route::SignInAnonymous => anonymous::sign_in(ctx).await,
            Route::DeleteAnonymousUser => anonymous::delete_user(ctx).await,
            Route::UpgradeAnonymous | Route::LinkAnonymous => anonymous::upgrade(ctx).await,
            Route::SignInUsername => username::sign_in(ctx).await,
            Route::SignUpUsername => username::sign_up(ctx).await,
            Route::IsUsernameAvailable => username::is_available(ctx).await,
            Route::SignInMagicLink => magic_link::sign_in(ctx).await,
            Route::VerifyMagicLink => magic_link::verify(ctx).await,
            Route::PasskeyRegisterOptions => passkey::register_options(ctx).await,
            Route::PasskeyVerifyRegistration => passkey::verify_registration(ctx).await,
            Route::PasskeyAuthenticateOptions => passkey::authenticate_options(ctx).await,
            Route::PasskeyVerifyAuthentication => passkey::verify_authentication(ctx).await,
            Route::PasskeyList => passkey::list(ctx).await,
            Route::PasskeyDelete => passkey::delete(ctx).await,
            Route::PasskeyUpdate => passkey::update(ctx).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_matches_only() {
        let off = Plugins::default();
        let on = Plugins { anonymous: true, username: true, magic_link: true, passkey: true };
        assert_eq!(route("POST", "/sign-up/email", off), Some(Route::SignUpEmail));
        assert_eq!(route("GET", "/sign-up/email", off), None);
        assert_eq!(route("POST", "/sign-up/email/", off), None);
        assert_eq!(route("POST", "//sign-up/email", off), None);
        assert_eq!(route("GET", "/nope", off), None);
        for (method, path) in [
            ("POST", "/sign-in/anonymous"),
            ("POST", "/anonymous/upgrade"),
            ("POST", "/anonymous/link"),
            ("POST", "/sign-in/username"),
            ("POST", "/is-username-available"),
            ("POST", "/sign-in/magic-link"),
            ("GET", "/magic-link/verify"),
            ("GET", "/passkey/generate-register-options"),
            ("POST", "/passkey/verify-authentication"),
            ("POST", "/passkey/update-passkey"),
        ] {
            assert_eq!(route(method, path, off), None, "{path}");
            assert_eq!(route(method, path, on).map(Route::path), Some(path));
        }
    }
}
