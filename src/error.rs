//! One error type for the whole engine. Every variant has an HTTP status, a stable
//! `code` and a readable message, in one table ([`AuthError::describe`]; spec §1.5
//! and the per-endpoint tables); `Response::error` (in `http/response.rs`) is the
//! only place that turns one into HTTP, and the Python bindings raise it as `kernia.APIError`.

use std::borrow::Cow;

/// Seconds a client is told to wait before trying again after a 503.
pub const RETRY_AFTER_S: u64 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    // Transport and body (spec §1.1, §1.2).
    NotFound,
    InvalidJson,
    UnsupportedMediaType(String),
    PayloadTooLarge(usize),
    Validation(String),
    MissingHost,
    RequestTimeout,
    TooManyConnections,
    /// The database is down, out of connections or out of disk; the detail is logged.
    DatabaseUnavailable(String),
    /// Redis (the secondary storage) cannot be reached, and the request would end or
    /// change sessions it holds; the detail is logged.
    SecondaryStorageUnavailable(String),

    // Email and password (spec §6).
    EmailPasswordSignUpDisabled,
    EmailPasswordDisabled,
    PasswordTooShort,
    PasswordTooLong,
    UserAlreadyExists,
    InvalidEmail,
    InvalidEmailOrPassword,
    EmailNotVerified,

    // Sessions (spec §11).
    Unauthorized,
    MethodNotAllowedDeferSessionRequired,

    // Origin and CSRF (spec §13).
    MissingOrNullOrigin,
    InvalidOrigin,
    CrossSiteNavigationLoginBlocked,
    InvalidUrl(UrlField),
    UrlNotAString(UrlField),

    // Rate limiting (spec §12).
    TooManyRequests {
        retry_after: u64,
    },

    // Anonymous plugin (spec §7.4).
    InvalidEmailFormat,
    FailedToCreateUser,
    AnonymousCannotSignInAgain,
    UserIsNotAnonymous,
    DeleteAnonymousUserDisabled,
    LinkingDisabled,
    /// `on_link` raised something other than `kernia.APIError`.
    OnLinkFailed,
    /// `/anonymous/resume`: no live guest behind the token.
    InvalidResumeToken,
    /// `/anonymous/resume`: the guest became a registered account.
    GuestAlreadyConverted,
    /// A guest where registered users only are allowed.
    GuestNotAllowed,

    // Email OTP.
    OtpExpired,
    InvalidOtp,
    TooManyAttempts,
    OtpSenderMissing,
    InvalidOtpType,
    /// Another app callback (`generate_name`, `generate_random_email`) raised.
    CallbackFailed(&'static str),

    // Username plugin (spec §8.4): validation answers 400 on sign-up, 422 elsewhere.
    UsernameTooShort(u16),
    UsernameTooLong(u16),
    InvalidUsername(u16),
    InvalidDisplayUsername,
    UsernameTaken,
    InvalidUsernameOrPassword,

    // Magic link (spec §9.2): sent as `?error=` on a redirect.
    InvalidToken,
    NewUserSignupDisabled,

    // Passkeys (spec §10). Statuses vary by endpoint, as in Better Auth.
    ChallengeNotFound,
    NotAllowedToRegisterPasskey,
    FailedToVerifyRegistration(u16),
    PasskeyNotFound(u16),
    AuthenticationFailed(u16),
    OriginMissing,
    UserNotFound,
    SessionNotFresh,

    // Account routes (account-routes spec §11).
    /// An answer with this status and an empty body.
    Empty(u16),
    /// `{"message":"Not found","code":"NOT_FOUND"}` (a disabled `/delete-user/callback`).
    NotFoundJson,
    NoFieldsToUpdate,
    EmailCanNotBeUpdated,
    FieldNotAllowed(&'static str),
    CredentialAccountNotFound,
    InvalidPassword,
    ChangeEmailDisabled,
    EmailIsTheSame,
    /// Change-email with no way to send the mail it needs (a message-only 400).
    ChangeEmailNeedsVerification,
    VerificationEmailNotEnabled,
    EmailMismatch,
    EmailAlreadyVerified,
    /// "Invalid token" (the account routes' wording; magic links say "Invalid or expired token").
    TokenInvalid,
    TokenExpired,
    /// `USER_NOT_FOUND` with a code (the passkey routes' `UserNotFound` is message-only).
    NoSuchUser,
    InvalidUser,
    FailedToGetUserInfo,
    SessionExpired,
    FailedToUnlinkLastAccount,
    AccountNotFound,
    ProviderNotConfigured,
    ResetPasswordDisabled,

    /// Another error answered with another status (an endpoint whose statuses
    /// differ from Better Auth's for the same code).
    WithStatus(u16, Box<AuthError>),

    /// An error raised by application code (for example `kernia.APIError`).
    Custom {
        status: u16,
        code: String,
        message: String,
    },

    /// Something broke that the client cannot fix; the detail is logged, not sent.
    Internal(String),
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe().2)
    }
}

impl std::error::Error for AuthError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlField {
    CallbackUrl,
    RedirectUrl,
    ErrorCallbackUrl,
    NewUserCallbackUrl,
}

impl UrlField {
    fn code(self) -> &'static str {
        match self {
            UrlField::CallbackUrl => "INVALID_CALLBACK_URL",
            UrlField::RedirectUrl => "INVALID_REDIRECT_URL",
            UrlField::ErrorCallbackUrl => "INVALID_ERROR_CALLBACK_URL",
            UrlField::NewUserCallbackUrl => "INVALID_NEW_USER_CALLBACK_URL",
        }
    }
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

/// Every error the engine answers with that has a stable code, once per code and
/// message (Kernia's error-code tables and `auth.errors` are built from it).
pub fn catalogue() -> Vec<(u16, String, String)> {
    use AuthError::*;
    let all = [
        NotFound,
        InvalidJson,
        UnsupportedMediaType("Unsupported media type".into()),
        PayloadTooLarge(1024 * 1024),
        Validation(String::new()),
        MissingHost,
        RequestTimeout,
        TooManyConnections,
        DatabaseUnavailable(String::new()),
        SecondaryStorageUnavailable(String::new()),
        EmailPasswordSignUpDisabled,
        EmailPasswordDisabled,
        PasswordTooShort,
        PasswordTooLong,
        UserAlreadyExists,
        InvalidEmail,
        InvalidEmailOrPassword,
        EmailNotVerified,
        Unauthorized,
        MethodNotAllowedDeferSessionRequired,
        MissingOrNullOrigin,
        InvalidOrigin,
        CrossSiteNavigationLoginBlocked,
        InvalidUrl(UrlField::CallbackUrl),
        InvalidUrl(UrlField::RedirectUrl),
        InvalidUrl(UrlField::ErrorCallbackUrl),
        InvalidUrl(UrlField::NewUserCallbackUrl),
        UrlNotAString(UrlField::CallbackUrl),
        TooManyRequests { retry_after: 0 },
        InvalidEmailFormat,
        FailedToCreateUser,
        AnonymousCannotSignInAgain,
        UserIsNotAnonymous,
        DeleteAnonymousUserDisabled,
        LinkingDisabled,
        OnLinkFailed,
        InvalidResumeToken,
        GuestAlreadyConverted,
        GuestNotAllowed,
        OtpExpired,
        InvalidOtp,
        TooManyAttempts,
        CallbackFailed("on_link"),
        UsernameTooShort(400),
        UsernameTooLong(400),
        InvalidUsername(400),
        InvalidDisplayUsername,
        UsernameTaken,
        InvalidUsernameOrPassword,
        InvalidToken,
        NewUserSignupDisabled,
        ChallengeNotFound,
        NotAllowedToRegisterPasskey,
        FailedToVerifyRegistration(400),
        PasskeyNotFound(400),
        AuthenticationFailed(401),
        OriginMissing,
        UserNotFound,
        SessionNotFresh,
        Empty(404),
        NotFoundJson,
        NoFieldsToUpdate,
        EmailCanNotBeUpdated,
        FieldNotAllowed("email"),
        CredentialAccountNotFound,
        InvalidPassword,
        ChangeEmailDisabled,
        EmailIsTheSame,
        ChangeEmailNeedsVerification,
        VerificationEmailNotEnabled,
        EmailMismatch,
        EmailAlreadyVerified,
        TokenInvalid,
        TokenExpired,
        NoSuchUser,
        InvalidUser,
        FailedToGetUserInfo,
        SessionExpired,
        FailedToUnlinkLastAccount,
        AccountNotFound,
        ProviderNotConfigured,
        ResetPasswordDisabled,
        Internal(String::new()),
    ];
    let mut out: Vec<(u16, String, String)> = Vec::new();
    for e in &all {
        // Codes carried by parametrised messages are listed with their generic form.
        let message = match e {
            Validation(_) | UnsupportedMediaType(_) => "The request is not valid".into(),
            PayloadTooLarge(_) => "Request body is too large".into(),
            FieldNotAllowed(_) => "The field is not allowed to be set".into(),
            CallbackFailed(_) => "The app's callback failed".into(),
            _ => e.message(),
        };
        if let Some(code) = e.code() {
            if !out.iter().any(|(_, c, m)| c == code && *m == message) {
                out.push((e.status(), code.to_owned(), message));
            }
        }
    }
    out
}

impl AuthError {
    pub fn internal(detail: impl Into<String>) -> Self {
        AuthError::Internal(detail.into())
    }

    /// The same code and message with another status.
    pub fn with_status(self, status: u16) -> Self {
        AuthError::WithStatus(status, Box::new(self))
    }

    /// The one table: every variant's HTTP status, stable code (`None` where Better
    /// Auth sends only a message) and message.
    fn describe(&self) -> (u16, Option<&str>, Cow<'_, str>) {
        use AuthError::*;
        let fixed =
            |status: u16, code: &'static str, message: &'static str| (status, Some(code), Cow::Borrowed(message));
        match self {
            NotFound => fixed(404, "NOT_FOUND", "Not Found"),
            InvalidJson => fixed(400, "BAD_REQUEST", "Invalid JSON in request body"),
            UnsupportedMediaType(m) => (415, Some("UNSUPPORTED_MEDIA_TYPE"), Cow::Borrowed(m)),
            PayloadTooLarge(n) => {
                (413, Some("PAYLOAD_TOO_LARGE"), format!("Request body is larger than {n} bytes").into())
            }
            Validation(m) => (400, Some("VALIDATION_ERROR"), Cow::Borrowed(m)),
            MissingHost => fixed(400, "MISSING_HOST", "HTTP/1.1 requests must carry a Host header"),
            RequestTimeout => fixed(408, "REQUEST_TIMEOUT", "The request was not received in time"),
            TooManyConnections => {
                fixed(503, "TOO_MANY_CONNECTIONS", "The server is at its connection limit. Please try again shortly.")
            }
            DatabaseUnavailable(_) => {
                fixed(503, "DATABASE_UNAVAILABLE", "The database is unavailable. Please try again shortly.")
            }
            SecondaryStorageUnavailable(_) => fixed(
                503,
                "SECONDARY_STORAGE_UNAVAILABLE",
                "The session storage is unavailable. Please try again shortly.",
            ),
            EmailPasswordSignUpDisabled => {
                fixed(400, "EMAIL_PASSWORD_SIGN_UP_DISABLED", "Email and password sign up is not enabled")
            }
            EmailPasswordDisabled => fixed(400, "EMAIL_PASSWORD_DISABLED", "Email and password is not enabled"),
            PasswordTooShort => fixed(400, "PASSWORD_TOO_SHORT", "Password too short"),
            PasswordTooLong => fixed(400, "PASSWORD_TOO_LONG", "Password too long"),
            UserAlreadyExists => {
                fixed(422, "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL", "User already exists. Use another email.")
            }
            InvalidEmail => fixed(400, "INVALID_EMAIL", "Invalid email"),
            InvalidEmailOrPassword => fixed(401, "INVALID_EMAIL_OR_PASSWORD", "Invalid email or password"),
            EmailNotVerified => fixed(403, "EMAIL_NOT_VERIFIED", "Email not verified"),
            Unauthorized => fixed(401, "UNAUTHORIZED", "Unauthorized"),
            MethodNotAllowedDeferSessionRequired => fixed(
                405,
                "METHOD_NOT_ALLOWED_DEFER_SESSION_REQUIRED",
                "POST method requires deferSessionRefresh to be enabled in session config",
            ),
            MissingOrNullOrigin => fixed(403, "MISSING_OR_NULL_ORIGIN", "Missing or null Origin"),
            InvalidOrigin => fixed(403, "INVALID_ORIGIN", "Invalid origin"),
            CrossSiteNavigationLoginBlocked => fixed(
                403,
                "CROSS_SITE_NAVIGATION_LOGIN_BLOCKED",
                "Cross-site navigation login blocked. This request appears to be a CSRF attack.",
            ),
            InvalidUrl(field) => (403, Some(field.code()), format!("Invalid {field}").into()),
            UrlNotAString(field) => (400, None, format!("Invalid {field}: expected a string").into()),
            TooManyRequests { .. } => (429, None, "Too many requests. Please try again later.".into()),
            InvalidEmailFormat => fixed(400, "INVALID_EMAIL_FORMAT", "Email was not generated in a valid format"),
            FailedToCreateUser => fixed(500, "FAILED_TO_CREATE_USER", "Failed to create user"),
            AnonymousCannotSignInAgain => fixed(
                400,
                "ANONYMOUS_USERS_CANNOT_SIGN_IN_AGAIN_ANONYMOUSLY",
                "Anonymous users cannot sign in again anonymously",
            ),
            UserIsNotAnonymous => fixed(403, "USER_IS_NOT_ANONYMOUS", "User is not anonymous"),
            DeleteAnonymousUserDisabled => {
                fixed(400, "DELETE_ANONYMOUS_USER_DISABLED", "Deleting anonymous users is disabled")
            }
            LinkingDisabled => {
                fixed(403, "ANONYMOUS_LINKING_DISABLED", "Linking anonymous users to accounts is disabled")
            }
            OnLinkFailed => {
                fixed(500, "ON_LINK_FAILED", "The app's on_link callback failed; the guest was not converted")
            }
            InvalidResumeToken => fixed(401, "INVALID_RESUME_TOKEN", "Invalid or expired resume token"),
            GuestAlreadyConverted => {
                fixed(403, "GUEST_ALREADY_CONVERTED", "This guest is a registered account now; sign in instead")
            }
            GuestNotAllowed => fixed(403, "GUEST_NOT_ALLOWED", "Guests cannot use this; sign up or sign in first"),
            OtpExpired => fixed(400, "OTP_EXPIRED", "OTP expired"),
            InvalidOtp => fixed(400, "INVALID_OTP", "Invalid OTP"),
            TooManyAttempts => fixed(403, "TOO_MANY_ATTEMPTS", "Too many attempts"),
            OtpSenderMissing => (400, None, "send email verification is not implemented".into()),
            InvalidOtpType => (400, None, "Invalid OTP type".into()),
            CallbackFailed(name) => (500, Some("CALLBACK_FAILED"), format!("The app's {name} callback failed").into()),
            UsernameTooShort(status) => (*status, Some("USERNAME_TOO_SHORT"), "Username is too short".into()),
            UsernameTooLong(status) => (*status, Some("USERNAME_TOO_LONG"), "Username is too long".into()),
            InvalidUsername(status) => (*status, Some("INVALID_USERNAME"), "Username is invalid".into()),
            InvalidDisplayUsername => fixed(400, "INVALID_DISPLAY_USERNAME", "Display username is invalid"),
            UsernameTaken => fixed(400, "USERNAME_IS_ALREADY_TAKEN", "Username is already taken. Please try another."),
            InvalidUsernameOrPassword => fixed(401, "INVALID_USERNAME_OR_PASSWORD", "Invalid username or password"),
            InvalidToken => fixed(400, "INVALID_TOKEN", "Invalid or expired token"),
            NewUserSignupDisabled => fixed(403, "new_user_signup_disabled", "Sign-up with a magic link is disabled"),
            ChallengeNotFound => fixed(400, "CHALLENGE_NOT_FOUND", "Challenge not found"),
            NotAllowedToRegisterPasskey => fixed(
                401,
                "YOU_ARE_NOT_ALLOWED_TO_REGISTER_THIS_PASSKEY",
                "You are not allowed to register this passkey",
            ),
            FailedToVerifyRegistration(status) => {
                (*status, Some("FAILED_TO_VERIFY_REGISTRATION"), "Failed to verify registration".into())
            }
            PasskeyNotFound(status) => (*status, Some("PASSKEY_NOT_FOUND"), "Passkey not found".into()),
            AuthenticationFailed(status) => (*status, Some("AUTHENTICATION_FAILED"), "Authentication failed".into()),
            OriginMissing => (400, None, "origin missing".into()),
            UserNotFound => (500, None, "User not found".into()),
            SessionNotFresh => fixed(403, "SESSION_NOT_FRESH", "Session is not fresh"),
            Empty(status) => (*status, None, Cow::Borrowed("")),
            NotFoundJson => fixed(404, "NOT_FOUND", "Not found"),
            NoFieldsToUpdate => (400, None, "No fields to update".into()),
            EmailCanNotBeUpdated => fixed(400, "EMAIL_CAN_NOT_BE_UPDATED", "Email can not be updated"),
            FieldNotAllowed(field) => {
                (400, Some("FIELD_NOT_ALLOWED"), format!("{field} is not allowed to be set").into())
            }
            CredentialAccountNotFound => fixed(400, "CREDENTIAL_ACCOUNT_NOT_FOUND", "Credential account not found"),
            InvalidPassword => fixed(400, "INVALID_PASSWORD", "Invalid password"),
            ChangeEmailDisabled => fixed(400, "CHANGE_EMAIL_DISABLED", "Change email is disabled"),
            EmailIsTheSame => (400, None, "Email is the same".into()),
            ChangeEmailNeedsVerification => (400, None, "Verification email isn't enabled".into()),
            VerificationEmailNotEnabled => {
                fixed(400, "VERIFICATION_EMAIL_NOT_ENABLED", "Verification email isn't enabled")
            }
            EmailMismatch => fixed(400, "EMAIL_MISMATCH", "Email mismatch"),
            EmailAlreadyVerified => fixed(400, "EMAIL_ALREADY_VERIFIED", "Email is already verified"),
            TokenInvalid => fixed(400, "INVALID_TOKEN", "Invalid token"),
            TokenExpired => fixed(401, "TOKEN_EXPIRED", "Token expired"),
            NoSuchUser => fixed(400, "USER_NOT_FOUND", "User not found"),
            InvalidUser => fixed(401, "INVALID_USER", "Invalid user"),
            FailedToGetUserInfo => fixed(404, "FAILED_TO_GET_USER_INFO", "Failed to get user info"),
            SessionExpired => fixed(400, "SESSION_EXPIRED", "Session expired. Re-authenticate to perform this action."),
            FailedToUnlinkLastAccount => {
                fixed(400, "FAILED_TO_UNLINK_LAST_ACCOUNT", "You can't unlink your last account")
            }
            AccountNotFound => fixed(400, "ACCOUNT_NOT_FOUND", "Account not found"),
            ProviderNotConfigured => {
                fixed(400, "PROVIDER_NOT_CONFIGURED", "Account is not associated with a configured social provider.")
            }
            ResetPasswordDisabled => fixed(400, "RESET_PASSWORD_DISABLED", "Reset password isn't enabled"),
            WithStatus(status, inner) => {
                let (_, code, message) = inner.describe();
                (*status, code, message)
            }
            Custom { status, code, message } => (*status, Some(code), Cow::Borrowed(message)),
            Internal(_) => fixed(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
        }
    }

    pub fn status(&self) -> u16 {
        self.describe().0
    }

    /// The stable code clients switch on; `None` where Better Auth sends only a message.
    pub fn code(&self) -> Option<&str> {
        self.describe().1
    }

    /// The `?error=` value of a redirect that reports this error (spec §9.2).
    pub fn redirect_code(&self) -> &str {
        match self {
            AuthError::FailedToCreateUser => "failed_to_create_user",
            other => other.code().unwrap_or("INTERNAL_SERVER_ERROR"),
        }
    }

    pub fn message(&self) -> String {
        self.describe().2.into_owned()
    }

    /// An internal error's detail goes to the log, never to the client.
    pub fn log_if_internal(&self) {
        if let AuthError::Internal(detail) = self {
            eprintln!("kernia: internal error: {detail}");
        }
    }
}

#[cfg(test)]
mod catalogue_tests {
    use super::*;

    /// Every code written in `describe` is in the catalogue, so Kernia's tables list
    /// every code the server can answer with.
    #[test]
    fn the_catalogue_lists_every_code_the_errors_carry() {
        let source = include_str!("error.rs");
        let describe = &source[source.find("fn describe(").unwrap()..source.find("pub fn status(").unwrap()];
        let listed: Vec<String> = catalogue().into_iter().map(|(_, code, _)| code).collect();
        let quoted = describe.split('"').skip(1).step_by(2);
        let codes: Vec<&str> = quoted
            .filter(|s| s.len() > 3 && s.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_lowercase()))
            .filter(|s| {
                s.contains('_') && (s.chars().all(|c| !c.is_ascii_lowercase()) || *s == "new_user_signup_disabled")
            })
            .collect();
        assert!(codes.len() > 60, "{codes:?}");
        for code in codes {
            assert!(listed.iter().any(|c| c == code), "{code} is missing from catalogue()");
        }
    }
}
