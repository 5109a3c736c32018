//! The route table. Paths are relative to the base path; anything else, a
//! wrong method or a trailing slash is a 404 with an empty body (spec §1.1).

use crate::core::handler::{Ctx, Outcome};
use crate::error::AuthError;
use crate::methods::email;
use crate::session::routes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Ok,
    SignUpEmail,
    SignInEmail,
    GetSession,
    GetSessionPost,
    SignOut,
}

pub fn route(method: &str, path: &str) -> Option<Route> {
    Some(match (method, path) {
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
    pub async fn run(self, ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
        match self {
            Route::Ok => Ok(Outcome::json(&serde_json::json!({ "ok": true }))),
            Route::SignUpEmail => email::sign_up(ctx).await,
            Route::SignInEmail => email::sign_in(ctx).await,
            Route::GetSession => routes::get_session(ctx).await,
            Route::GetSessionPost => Err(AuthError::MethodNotAllowedDeferSessionRequired),
            Route::SignOut => routes::sign_out(ctx).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_matches_only() {
        assert_eq!(route("POST", "/sign-up/email"), Some(Route::SignUpEmail));
        assert_eq!(route("GET", "/sign-up/email"), None);
        assert_eq!(route("POST", "/sign-up/email/"), None);
        assert_eq!(route("POST", "//sign-up/email"), None);
        assert_eq!(route("GET", "/nope"), None);
    }
}
