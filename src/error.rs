//! One error type for the whole engine. Every variant has a stable `code`, a
//! readable message and an HTTP status (spec §1.5 and the per-endpoint tables);
//! [`AuthError::to_response`] is the only place that turns one into HTTP.

use crate::core::response::Response;

/// Seconds a client is told to wait before trying again after a 503.
pub const RETRY_AFTER_S: u64 = 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    // Transport and body (spec §1.1, §1.2).
    #[error("Not Found")]
    NotFound,
    #[error("Invalid JSON in request body")]
    InvalidJson,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("Request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Validation(String),
    #[error("HTTP/1.1 requests must carry a Host header")]
    MissingHost,
    #[error("The request was not received in time")]
    RequestTimeout,
    #[error("The server is at its connection limit. Please try again shortly.")]
    TooManyConnections,
    /// The database is down, out of connections or out of disk; the detail is logged.
    #[error("The database is unavailable. Please try again shortly.")]
    DatabaseUnavailable(String),

    // Email and password (spec §6).
    #[error("Email and password sign up is not enabled")]
    EmailPasswordSignUpDisabled,
    #[error("Email and password is not enabled")]
    EmailPasswordDisabled,
    #[error("Password too short")]
    PasswordTooShort,
    #[error("Password too long")]
    PasswordTooLong,
    #[error("User already exists. Use another email.")]
    UserAlreadyExists,
    #[error("Invalid email")]
    InvalidEmail,
    #[error("Invalid email or password")]
    InvalidEmailOrPassword,
    #[error("Email not verified")]
    EmailNotVerified,

    // Sessions (spec §11).
    #[error("Unauthorized")]
    Unauthorized,
    #[error("POST method requires deferSessionRefresh to be enabled in session config")]
    MethodNotAllowedDeferSessionRequired,

    // Origin and CSRF (spec §13).
    #[error("Missing or null Origin")]
    MissingOrNullOrigin,
    #[error("Invalid origin")]
    InvalidOrigin,
    #[error("Cross-site navigation login blocked. This request appears to be a CSRF attack.")]
    CrossSiteNavigationLoginBlocked,
    #[error("Invalid {0}")]
    InvalidUrl(UrlField),
    #[error("Invalid {0}: expected a string")]
    UrlNotAString(UrlField),

    // Rate limiting (spec §12).
    #[error("Too many requests. Please try again later.")]
    TooManyRequests { retry_after: u64 },

    // Anonymous plugin (spec §7.4).
    #[error("Email was not generated in a valid format")]
    InvalidEmailFormat,
    #[error("Failed to create user")]
    FailedToCreateUser,
    #[error("Anonymous users cannot sign in again anonymously")]
    AnonymousCannotSignInAgain,
    #[error("User is not anonymous")]
    UserIsNotAnonymous,
    #[error("Deleting anonymous users is disabled")]
    DeleteAnonymousUserDisabled,
    #[error("Linking anonymous users to accounts is disabled")]
    LinkingDisabled,
    /// `on_link` raised something other than `kernia.APIError`.
    #[error("The app's on_link callback failed; the guest was not converted")]
    OnLinkFailed,
    /// Another app callback (`generate_name`, `generate_random_email`) raised.
    #[error("The app's {0} callback failed")]
    CallbackFailed(&'static str),

    // Username plugin (spec §8.4): validation answers 400 on sign-up, 422 elsewhere.
    #[error("Username is too short")]
    UsernameTooShort(u16),
    #[error("Username is too long")]
    UsernameTooLong(u16),
    #[error("Username is invalid")]
    InvalidUsername(u16),
    #[error("Display username is invalid")]
    InvalidDisplayUsername,
    #[error("Username is already taken. Please try another.")]
    UsernameTaken,
    #[error("Invalid username or password")]
    InvalidUsernameOrPassword,

    // Magic link (spec §9.2): sent as `?error=` on a redirect.
    #[error("Invalid or expired token")]
    InvalidToken,
    #[error("Sign-up with a magic link is disabled")]
    NewUserSignupDisabled,

    // Passkeys (spec §10). Statuses vary by endpoint, as in Better Auth.
    #[error("Challenge not found")]
    ChallengeNotFound,
    #[error("You are not allowed to register this passkey")]
    NotAllowedToRegisterPasskey,
    #[error("Failed to verify registration")]
    FailedToVerifyRegistration(u16),
    #[error("Passkey not found")]
    PasskeyNotFound(u16),
    #[error("Authentication failed")]
    AuthenticationFailed(u16),
    #[error("origin missing")]
    OriginMissing,
    #[error("User not found")]
    UserNotFound,
    #[error("Session is not fresh")]
    SessionNotFresh,

    /// Another error answered with another status (an endpoint whose statuses
    /// differ from Better Auth's for the same code).
    #[error("{1}")]
    WithStatus(u16, Box<AuthError>),

    /// An error raised by application code (for example `kernia.APIError`).
    #[error("{message}")]
    Custom { status: u16, code: String, message: String },

    /// Something broke that the client cannot fix; the detail is logged, not sent.
    #[error("Internal server error")]
    Internal(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlField {
    CallbackUrl,
    RedirectUrl,
    ErrorCallbackUrl,
    NewUserCallbackUrl,
}

impl std::fmt::Display for UrlField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UrlField::CallbackUrl => "callbackURL",
            UrlField::RedirectUrl => "redirectURL",
            UrlField::ErrorCallbackUrl => "errorCallbackURL",
            UrlField::NewUserCallbackUrl => "newUserCallbackURL",
        })
    }
}

impl AuthError {
    pub fn internal(detail: impl Into<String>) -> Self {
        AuthError::Internal(detail.into())
    }

    /// The same code and message with another status.
    pub fn with_status(self, status: u16) -> Self {
        AuthError::WithStatus(status, Box::new(self))
    }

    pub fn status(&self) -> u16 {
        use AuthError::*;
        match self {
            NotFound => 404,
            InvalidEmailFormat | AnonymousCannotSignInAgain | DeleteAnonymousUserDisabled => 400,
            UserIsNotAnonymous | LinkingDisabled => 403,
            WithStatus(status, _) => *status,
            FailedToCreateUser | OnLinkFailed | CallbackFailed(_) => 500,
            UsernameTooShort(status) | UsernameTooLong(status) | InvalidUsername(status) => *status,
            InvalidDisplayUsername | UsernameTaken | InvalidToken => 400,
            InvalidUsernameOrPassword => 401,
            ChallengeNotFound | OriginMissing => 400,
            NotAllowedToRegisterPasskey => 401,
            FailedToVerifyRegistration(status) | PasskeyNotFound(status) | AuthenticationFailed(status) => *status,
            UserNotFound => 500,
            SessionNotFresh => 403,
            NewUserSignupDisabled => 403,
            MissingHost => 400,
            RequestTimeout => 408,
            TooManyConnections | DatabaseUnavailable(_) => 503,
            InvalidJson
            | Validation(_)
            | EmailPasswordSignUpDisabled
            | EmailPasswordDisabled
            | PasswordTooShort
            | PasswordTooLong
            | InvalidEmail
            | UrlNotAString(_) => 400,
            UnsupportedMediaType(_) => 415,
            PayloadTooLarge(_) => 413,
            UserAlreadyExists => 422,
            InvalidEmailOrPassword | Unauthorized => 401,
            EmailNotVerified
            | MissingOrNullOrigin
            | InvalidOrigin
            | CrossSiteNavigationLoginBlocked
            | InvalidUrl(_) => 403,
            MethodNotAllowedDeferSessionRequired => 405,
            TooManyRequests { .. } => 429,
            Custom { status, .. } => *status,
            Internal(_) => 500,
        }
    }

    /// The stable code clients switch on; `None` where Better Auth sends only a message.
    pub fn code(&self) -> Option<&str> {
        use AuthError::*;
        Some(match self {
            NotFound => "NOT_FOUND",
            InvalidJson => "BAD_REQUEST",
            UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Validation(_) => "VALIDATION_ERROR",
            MissingHost => "MISSING_HOST",
            RequestTimeout => "REQUEST_TIMEOUT",
            TooManyConnections => "TOO_MANY_CONNECTIONS",
            DatabaseUnavailable(_) => "DATABASE_UNAVAILABLE",
            EmailPasswordSignUpDisabled => "EMAIL_PASSWORD_SIGN_UP_DISABLED",
            EmailPasswordDisabled => "EMAIL_PASSWORD_DISABLED",
            PasswordTooShort => "PASSWORD_TOO_SHORT",
            PasswordTooLong => "PASSWORD_TOO_LONG",
            UserAlreadyExists => "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL",
            InvalidEmail => "INVALID_EMAIL",
            InvalidEmailOrPassword => "INVALID_EMAIL_OR_PASSWORD",
            EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Unauthorized => "UNAUTHORIZED",
            MethodNotAllowedDeferSessionRequired => "METHOD_NOT_ALLOWED_DEFER_SESSION_REQUIRED",
            MissingOrNullOrigin => "MISSING_OR_NULL_ORIGIN",
            InvalidOrigin => "INVALID_ORIGIN",
            CrossSiteNavigationLoginBlocked => "CROSS_SITE_NAVIGATION_LOGIN_BLOCKED",
            InvalidUrl(UrlField::CallbackUrl) => "INVALID_CALLBACK_URL",
            InvalidUrl(UrlField::RedirectUrl) => "INVALID_REDIRECT_URL",
            InvalidUrl(UrlField::ErrorCallbackUrl) => "INVALID_ERROR_CALLBACK_URL",
            InvalidUrl(UrlField::NewUserCallbackUrl) => "INVALID_NEW_USER_CALLBACK_URL",
            InvalidEmailFormat => "INVALID_EMAIL_FORMAT",
            FailedToCreateUser => "FAILED_TO_CREATE_USER",
            AnonymousCannotSignInAgain => "ANONYMOUS_USERS_CANNOT_SIGN_IN_AGAIN_ANONYMOUSLY",
            UserIsNotAnonymous => "USER_IS_NOT_ANONYMOUS",
            DeleteAnonymousUserDisabled => "DELETE_ANONYMOUS_USER_DISABLED",
            LinkingDisabled => "ANONYMOUS_LINKING_DISABLED",
            WithStatus(_, inner) => return inner.code(),
            OnLinkFailed => "ON_LINK_FAILED",
            CallbackFailed(_) => "CALLBACK_FAILED",
            UsernameTooShort(_) => "USERNAME_TOO_SHORT",
            UsernameTooLong(_) => "USERNAME_TOO_LONG",
            InvalidUsername(_) => "INVALID_USERNAME",
            InvalidDisplayUsername => "INVALID_DISPLAY_USERNAME",
            UsernameTaken => "USERNAME_IS_ALREADY_TAKEN",
            InvalidUsernameOrPassword => "INVALID_USERNAME_OR_PASSWORD",
            InvalidToken => "INVALID_TOKEN",
            NewUserSignupDisabled => "new_user_signup_disabled",
            ChallengeNotFound => "CHALLENGE_NOT_FOUND",
            NotAllowedToRegisterPasskey => "YOU_ARE_NOT_ALLOWED_TO_REGISTER_THIS_PASSKEY",
            FailedToVerifyRegistration(_) => "FAILED_TO_VERIFY_REGISTRATION",
            PasskeyNotFound(_) => "PASSKEY_NOT_FOUND",
            AuthenticationFailed(_) => "AUTHENTICATION_FAILED",
            SessionNotFresh => "SESSION_NOT_FRESH",
            UrlNotAString(_) | TooManyRequests { .. } | OriginMissing | UserNotFound => return None,
            Custom { code, .. } => code,
            Internal(_) => "INTERNAL_SERVER_ERROR",
        })
    }

    /// The `?error=` value of a redirect that reports this error (spec §9.2).
    pub fn redirect_code(&self) -> &str {
        match self {
            AuthError::FailedToCreateUser => "failed_to_create_user",
            other => other.code().unwrap_or("INTERNAL_SERVER_ERROR"),
        }
    }

    pub fn message(&self) -> String {
        self.to_string()
    }

    pub fn to_response(&self) -> Response {
        if let AuthError::Internal(detail) = self {
            eprintln!("kernia: internal error: {detail}");
        }
        let status = self.status();
        if status == 404 && matches!(self, AuthError::NotFound) {
            return Response::empty(404);
        }
        let mut body = serde_json::Map::new();
        if let Some(code) = self.code() {
            body.insert("code".into(), code.into());
        }
        body.insert("message".into(), self.message().into());
        let mut resp = Response::json(status, &serde_json::Value::Object(body));
        match self {
            AuthError::TooManyRequests { retry_after } => {
                resp.headers.push(("x-retry-after".into(), retry_after.to_string()));
            }
            AuthError::DatabaseUnavailable(_) | AuthError::TooManyConnections => {
                resp.headers.push(("retry-after".into(), RETRY_AFTER_S.to_string()));
            }
            AuthError::RequestTimeout => resp.headers.push(("connection".into(), "close".into())),
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_render_as_code_and_message() {
        let r = AuthError::UserAlreadyExists.to_response();
        assert_eq!(r.status, 422);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["code"], "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL");
        assert_eq!(v["message"], "User already exists. Use another email.");
    }

    #[test]
    fn not_found_has_an_empty_body() {
        let r = AuthError::NotFound.to_response();
        assert_eq!((r.status, r.body.len()), (404, 0));
    }

    #[test]
    fn rate_limit_has_only_a_message_and_a_retry_header() {
        let r = AuthError::TooManyRequests { retry_after: 7 }.to_response();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(v.get("code").is_none());
        assert!(r.headers.iter().any(|(k, v)| k == "x-retry-after" && v == "7"));
    }

    #[test]
    fn an_unavailable_database_is_a_503_to_retry_without_details() {
        let r = AuthError::DatabaseUnavailable("connection refused at 10.0.0.5".into()).to_response();
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("2"));
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains("DATABASE_UNAVAILABLE") && !body.contains("10.0.0.5"));
    }

    #[test]
    fn internal_errors_do_not_leak_details() {
        let r = AuthError::internal("disk on fire at /var/secret").to_response();
        assert!(!String::from_utf8_lossy(&r.body).contains("secret"));
    }
}
