//! The route table. Paths are relative to the base path; anything else, a
//! wrong method or a trailing slash is a 404 with an empty body (spec §1.1).

use crate::core::handler::{Ctx, Outcome};
use crate::error::AuthError;
use crate::methods::{anonymous, email};
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
}

/// The route for a method and relative path; plugin routes only when their plugin is on.
pub fn route(method: &str, path: &str, anonymous: bool) -> Option<Route> {
    Some(match (method, path) {
        ("POST", "/sign-in/anonymous") if anonymous => Route::SignInAnonymous,
        ("POST", "/delete-anonymous-user") if anonymous => Route::DeleteAnonymousUser,
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_matches_only() {
        assert_eq!(route("POST", "/sign-up/email", false), Some(Route::SignUpEmail));
        assert_eq!(route("GET", "/sign-up/email", false), None);
        assert_eq!(route("POST", "/sign-up/email/", false), None);
        assert_eq!(route("POST", "//sign-up/email", false), None);
        assert_eq!(route("GET", "/nope", false), None);
        assert_eq!(route("POST", "/sign-in/anonymous", false), None);
        assert_eq!(route("POST", "/sign-in/anonymous", true), Some(Route::SignInAnonymous));
    }
}
