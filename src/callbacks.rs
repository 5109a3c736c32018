//! App callbacks as the engine sees them. The engine knows nothing of Python:
//! the bindings implement [`AnonymousCallbacks`] by awaiting Python coroutines,
//! Rust tests implement it with closures.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::AuthError;
use crate::http::request::Request;
use crate::model::User;
use crate::storage::conversion_db::ConversionDb;

pub use crate::http::request::Extension;

/// What callbacks learn about the request that triggered them.
#[derive(Clone)]
pub struct CallbackRequest {
    pub method: String,
    pub path: String,
    /// Raw query string without the `?`.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub client_ip: Option<String>,
    /// The JSON body, for the callbacks that get it (`before_create`).
    pub body: Option<serde_json::Value>,
    pub extension: Extension,
}

impl CallbackRequest {
    pub fn of(req: &Request, client_ip: Option<String>) -> Self {
        CallbackRequest {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            headers: req.headers.clone(),
            client_ip,
            body: None,
            extension: req.extension.clone(),
        }
    }

    /// For callbacks the engine runs on its own (cleanup, events): no request.
    pub fn internal(extension: Extension) -> Self {
        CallbackRequest {
            method: String::new(),
            path: String::new(),
            query: String::new(),
            headers: Vec::new(),
            client_ip: None,
            body: None,
            extension,
        }
    }
}

/// What `on_link` gets besides the two users.
pub struct LinkContext {
    pub request: CallbackRequest,
    /// The auth database, inside the conversion's transaction.
    pub db: ConversionDb,
}

/// What happened to a guest (the `type` of an `on_event` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Signed in as a new guest.
    Created,
    /// Converted to another account by a sign-in or sign-up.
    Linked,
    /// Became a registered account in place, keeping its id.
    Upgraded,
    /// Deleted itself through `/delete-anonymous-user`.
    Deleted,
    /// Deleted by the stale-guest cleanup.
    CleanedUp,
    /// A request was refused by the rate limiter (no user).
    RateLimited,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Linked => "linked",
            EventKind::Upgraded => "upgraded",
            EventKind::Deleted => "deleted",
            EventKind::CleanedUp => "cleaned_up",
            EventKind::RateLimited => "rate_limited",
        }
    }
}

/// One event for the app's `on_event`, for audit trails and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestEvent {
    pub kind: EventKind,
    pub user_id: Option<String>,
    /// `Linked`: the account the guest became.
    pub new_user_id: Option<String>,
    pub at_ms: i64,
    pub ip: Option<String>,
    /// The request's path relative to the base path; `None` for cleanup.
    pub path: Option<String>,
}

/// Where events come from: a request (its client IP, path and event loop), or cleanup.
pub struct EventOrigin<'a> {
    pub ip: Option<&'a str>,
    pub path: Option<&'a str>,
    pub extension: &'a Extension,
}

#[async_trait]
pub trait AnonymousCallbacks: Send + Sync {
    fn has_on_link(&self) -> bool;
    /// Whether the app gave `before_create` (then the body is handed to it).
    fn has_before_create(&self) -> bool {
        false
    }
    /// Before a guest is created: an error refuses it (nothing is written).
    async fn before_create(&self, _req: &CallbackRequest) -> Result<(), AuthError> {
        Ok(())
    }
    /// A display name for a new guest; `None` or empty means "Anonymous".
    async fn generate_name(&self, req: &CallbackRequest) -> Result<Option<String>, AuthError>;
    /// A whole email address for a new guest; `None` or empty means the default.
    async fn generate_random_email(&self, req: &CallbackRequest) -> Result<Option<String>, AuthError>;
    /// Moves the guest's data to the new user. An error undoes the conversion.
    async fn on_link(&self, anonymous_user: &User, new_user: &User, ctx: LinkContext) -> Result<(), AuthError>;

    fn has_should_delete(&self) -> bool {
        false
    }
    /// Whether cleanup may delete this stale guest (default: yes).
    async fn should_delete(&self, _user: &User, _req: &CallbackRequest) -> Result<bool, AuthError> {
        Ok(true)
    }
    fn has_before_delete(&self) -> bool {
        false
    }
    /// Runs in the transaction that deletes this stale guest; an error keeps the guest.
    async fn before_delete(&self, _user: &User, _ctx: LinkContext) -> Result<(), AuthError> {
        Ok(())
    }
    fn has_on_event(&self) -> bool {
        false
    }
    /// Reports an event. Never fails and never waits: the work runs on its own.
    fn on_event(&self, _event: GuestEvent, _extension: &Extension) {}
}

/// The plugin with no callbacks: guests get default names and emails, nothing to move.
pub struct NoCallbacks;

#[async_trait]
impl AnonymousCallbacks for NoCallbacks {
    fn has_on_link(&self) -> bool {
        false
    }
    async fn generate_name(&self, _: &CallbackRequest) -> Result<Option<String>, AuthError> {
        Ok(None)
    }
    async fn generate_random_email(&self, _: &CallbackRequest) -> Result<Option<String>, AuthError> {
        Ok(None)
    }
    async fn on_link(&self, _: &User, _: &User, _: LinkContext) -> Result<(), AuthError> {
        Ok(())
    }
}

/// The username plugin's app rules. `None` means "use the default rule".
#[async_trait]
pub trait UsernameCallbacks: Send + Sync {
    /// Whether `username` is acceptable (default: only `[a-zA-Z0-9_.]`).
    async fn validate(&self, req: &CallbackRequest, username: &str) -> Result<Option<bool>, AuthError>;
    /// Whether `display` is acceptable (default: anything).
    async fn validate_display(&self, req: &CallbackRequest, display: &str) -> Result<Option<bool>, AuthError>;
    /// The stored form of `username` (default: lower-cased).
    async fn normalize(&self, req: &CallbackRequest, username: &str) -> Result<Option<String>, AuthError>;
    /// The stored form of `display` (default: as typed).
    async fn normalize_display(&self, req: &CallbackRequest, display: &str) -> Result<Option<String>, AuthError>;
}

#[async_trait]
impl UsernameCallbacks for NoCallbacks {
    async fn validate(&self, _: &CallbackRequest, _: &str) -> Result<Option<bool>, AuthError> {
        Ok(None)
    }
    async fn validate_display(&self, _: &CallbackRequest, _: &str) -> Result<Option<bool>, AuthError> {
        Ok(None)
    }
    async fn normalize(&self, _: &CallbackRequest, _: &str) -> Result<Option<String>, AuthError> {
        Ok(None)
    }
    async fn normalize_display(&self, _: &CallbackRequest, _: &str) -> Result<Option<String>, AuthError> {
        Ok(None)
    }
}

/// What `send_magic_link` is given.
pub struct MagicLinkMessage {
    /// The address as typed.
    pub email: String,
    pub url: String,
    pub token: String,
    /// The `metadata` object of the request, if any.
    pub metadata: Option<serde_json::Value>,
}

/// Delivers magic links (the app's `send_magic_link`). An error means nothing was sent.
#[async_trait]
pub trait MagicLinkCallbacks: Send + Sync {
    async fn send(&self, req: &CallbackRequest, message: MagicLinkMessage) -> Result<(), AuthError>;
    /// The app's `generate_token(email)`; `None`: the engine makes a random one.
    async fn generate_token(&self, _req: &CallbackRequest, _email: &str) -> Result<Option<String>, AuthError> {
        Ok(None)
    }
    /// The app's `store_token={"type": "custom-hasher", "hash": f}`: what a token is
    /// stored (and looked up) as.
    async fn hash_token(&self, _req: &CallbackRequest, _token: &str) -> Result<String, AuthError> {
        Err(AuthError::CallbackFailed("store_token hash"))
    }
}

/// The account routes' app callbacks: the mails they send and the hooks around
/// verification, password reset and deletion (account-routes spec §K).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountCallback {
    SendVerificationEmail,
    BeforeEmailVerification,
    AfterEmailVerification,
    SendResetPassword,
    OnPasswordReset,
    SendChangeEmailConfirmation,
    SendDeleteAccountVerification,
    BeforeDeleteUser,
    AfterDeleteUser,
}

impl AccountCallback {
    pub const ALL: [AccountCallback; 9] = [
        AccountCallback::SendVerificationEmail,
        AccountCallback::BeforeEmailVerification,
        AccountCallback::AfterEmailVerification,
        AccountCallback::SendResetPassword,
        AccountCallback::OnPasswordReset,
        AccountCallback::SendChangeEmailConfirmation,
        AccountCallback::SendDeleteAccountVerification,
        AccountCallback::BeforeDeleteUser,
        AccountCallback::AfterDeleteUser,
    ];

    /// Its name in the options and in log lines.
    pub fn name(self) -> &'static str {
        match self {
            AccountCallback::SendVerificationEmail => "send_verification_email",
            AccountCallback::BeforeEmailVerification => "before_email_verification",
            AccountCallback::AfterEmailVerification => "after_email_verification",
            AccountCallback::SendResetPassword => "send_reset_password",
            AccountCallback::OnPasswordReset => "on_password_reset",
            AccountCallback::SendChangeEmailConfirmation => "send_change_email_confirmation",
            AccountCallback::SendDeleteAccountVerification => "send_delete_account_verification",
            AccountCallback::BeforeDeleteUser => "before_delete_user",
            AccountCallback::AfterDeleteUser => "after_delete_user",
        }
    }
}

/// One mail for the app to send: to `user.email` (for a change-email
/// verification, `user.email` is already the new address).
#[derive(Debug, Clone)]
pub struct Mail {
    pub user: User,
    pub url: String,
    pub token: String,
    /// The change-email confirmation: the address asked for.
    pub new_email: Option<String>,
}

#[async_trait]
pub trait AccountCallbacks: Send + Sync {
    fn has(&self, which: AccountCallback) -> bool;
    /// Hands a mail to the app's sender `which`. An error means it was not sent.
    async fn send(&self, which: AccountCallback, req: &CallbackRequest, mail: Mail) -> Result<(), AuthError>;
    /// Tells the app's hook `which` about `user`; an error (an `APIError`) stops the operation.
    async fn notify(&self, which: AccountCallback, req: &CallbackRequest, user: &User) -> Result<(), AuthError>;
    /// Whether the app gave the email-OTP plugin's `send_verification_otp`.
    fn has_otp_sender(&self) -> bool {
        false
    }
    /// Hands a one-time code to the app's `send_verification_otp({email, otp, type}, ctx)`.
    async fn send_otp(&self, _req: &CallbackRequest, _email: &str, _otp: &str, _kind: &str) -> Result<(), AuthError> {
        Ok(())
    }
}

#[async_trait]
impl AccountCallbacks for NoCallbacks {
    fn has(&self, _: AccountCallback) -> bool {
        false
    }
    async fn send(&self, _: AccountCallback, _: &CallbackRequest, _: Mail) -> Result<(), AuthError> {
        Ok(())
    }
    async fn notify(&self, _: AccountCallback, _: &CallbackRequest, _: &User) -> Result<(), AuthError> {
        Ok(())
    }
}

/// Every app callback the engine may await, by plugin.
#[derive(Clone, Default)]
pub struct Callbacks {
    pub anonymous: Option<Arc<dyn AnonymousCallbacks>>,
    pub username: Option<Arc<dyn UsernameCallbacks>>,
    pub magic_link: Option<Arc<dyn MagicLinkCallbacks>>,
    pub account: Option<Arc<dyn AccountCallbacks>>,
}
