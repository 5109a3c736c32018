//! Storage behind one async trait, with two implementations: SQLite through
//! rusqlite (threads of its own, never blocking the async workers) and
//! PostgreSQL through sqlx. Both create or migrate Better Auth's schema (spec §4)
//! when opened, idempotently.
//!
//! Reads are single indexed lookups. Writes are staged by the endpoints as a
//! list of [`WriteOp`]s and committed by the pipeline with one [`Store::apply`]:
//! one transaction per request.

pub mod app_tx;
pub mod conversion_db;
pub mod health;
pub mod mirrored;
mod postgres;
pub mod redis;
pub mod schema;
mod sql;
mod sqlite;
pub mod sqlite_locks;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::ConfigError;
use crate::error::AuthError;
use crate::model::{Account, Passkey, Session, User, Verification};

#[derive(Debug, Clone)]
pub enum WriteOp {
    InsertUser(User),
    InsertAccount(Account),
    InsertSession(Session),
    DeleteSessionByToken(String),
    /// The same for a session seen expired: nothing is ended that was not over.
    DeleteExpiredSession(String),
    RefreshSession {
        id: String,
        /// The session's token, for the copy of it in Redis.
        token: String,
        expires_at: i64,
        updated_at: i64,
    },
    /// The user with all its sessions and accounts.
    DeleteUser(String),
    /// Every session and account of the user (a sign-in that proved the email
    /// revokes whatever was set up before the address was proven).
    RevokeSessionsAndAccounts(String),
    MarkEmailVerified {
        user_id: String,
        updated_at: i64,
    },
    InsertVerification(Verification),
    /// Deletes every row of this identifier; none left (used or never there) is a
    /// [`Constraint::Verification`] conflict, so a token is consumed exactly once.
    ConsumeVerification(String),
    /// Deletes every row of this identifier, if any.
    DeleteVerification(String),
    InsertPasskey(Passkey),
    UpdatePasskeyCounter {
        id: String,
        counter: i64,
    },
    RenamePasskey {
        id: String,
        name: String,
    },
    DeletePasskey(String),
    /// A guest becomes a registered user, keeping its id; the fields given
    /// replace the guest's. A user that is no longer a guest is a
    /// [`Constraint::NotAnonymous`] conflict, so an upgrade happens once.
    UpgradeAnonymous {
        user_id: String,
        updated_at: i64,
        profile: Profile,
    },
    /// Every session of the user but this one.
    RevokeOtherSessions {
        user_id: String,
        keep_id: String,
    },
    /// Profile fields of a user; `None` leaves a field as it is (`image: Some(None)` clears it).
    UpdateUser {
        user_id: String,
        updated_at: i64,
        name: Option<String>,
        image: Option<Option<String>>,
        username: Option<String>,
        display_username: Option<String>,
    },
    /// The session with this token, if it is the user's.
    DeleteUserSession {
        user_id: String,
        token: String,
    },
    /// Every session of the user.
    DeleteSessionsOfUser(String),
    /// The user's unexpired sessions other than the one with `keep_token` (expired ones stay).
    DeleteOtherLiveSessions {
        user_id: String,
        keep_token: String,
        now: i64,
    },
    /// The user's email-and-password credential gets this hash, created if the user has none.
    SetPassword {
        user_id: String,
        hash: String,
        now: i64,
        /// The id of the credential row, if one is created.
        new_account_id: String,
    },
    /// One account row of the user.
    DeleteAccount {
        user_id: String,
        id: String,
    },
    /// Verification rows that expired before this time.
    DeleteExpiredVerifications(i64),
    /// A new email for the user; `email_verified: None` keeps the flag.
    UpdateEmail {
        user_id: String,
        email: String,
        email_verified: Option<bool>,
        updated_at: i64,
    },
    /// The guest funnel: how a guest's time as a guest ended (the first ending counts).
    /// Live guests are counted from the user table; ended ones from these rows.
    GuestEnded {
        id: String,
        /// When the guest was created (its user row's `createdAt`).
        created_ms: i64,
        outcome: GuestOutcome,
        /// The sign-in method of a conversion or upgrade.
        method: Option<&'static str>,
        at_ms: i64,
    },
}

/// How a guest stopped being one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestOutcome {
    /// Signed in or up to another account, which took its data.
    Converted,
    /// Became a registered account in place.
    Upgraded,
    /// Deleted itself.
    Deleted,
    /// Deleted by the stale-guest cleanup.
    CleanedUp,
}

impl GuestOutcome {
    pub fn name(self) -> &'static str {
        match self {
            GuestOutcome::Converted => "converted",
            GuestOutcome::Upgraded => "upgraded",
            GuestOutcome::Deleted => "deleted",
            GuestOutcome::CleanedUp => "cleaned_up",
        }
    }
}

/// The guest funnel of the guests created since a time (`auth.api.guest_stats`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct GuestStats {
    pub created: u64,
    /// Guests (of any age) with a live session now.
    pub active: u64,
    pub converted: u64,
    pub converted_by_method: std::collections::BTreeMap<String, u64>,
    pub upgraded: u64,
    pub deleted_by_guest: u64,
    pub cleaned_up: u64,
    /// (converted + upgraded) / created; `None` when none were created.
    pub conversion_rate: Option<f64>,
    /// Of the converted and upgraded guests, seconds from creation to conversion.
    pub median_seconds_to_conversion: Option<f64>,
}

impl GuestStats {
    /// LIMIT and OFFSET of the middle row (odd `n`) or rows (even `n`) of `n` sorted rows.
    pub fn median_window(n: i64) -> (i64, i64) {
        match n {
            n if n <= 0 => (0, 0),
            n if n % 2 == 1 => (1, n / 2),
            n => (2, n / 2 - 1),
        }
    }

    /// The stats from the funnel's counts (created, converted, upgraded, deleted,
    /// cleaned up), conversions by method, the active guests, and the middle times (ms).
    /// `counts`: ended guests, and of them converted, upgraded, deleted, cleaned up;
    /// `live`: guests still guests.
    pub fn from_parts(counts: [i64; 5], live: i64, by_method: Vec<(String, i64)>, active: i64, middle: &[i64]) -> Self {
        let [ended, converted, upgraded, deleted, cleaned] = counts.map(|n| n.max(0) as u64);
        let created = ended + live.max(0) as u64;
        GuestStats {
            created,
            active: active.max(0) as u64,
            converted,
            converted_by_method: by_method.into_iter().map(|(m, n)| (m, n.max(0) as u64)).collect(),
            upgraded,
            deleted_by_guest: deleted,
            cleaned_up: cleaned,
            conversion_rate: (created > 0).then(|| (converted + upgraded) as f64 / created as f64),
            median_seconds_to_conversion: (!middle.is_empty())
                .then(|| middle.iter().sum::<i64>() as f64 / middle.len() as f64 / 1000.0),
        }
    }
}

impl WriteOp {
    /// The conflict to report when this op changes no row: the ops whose effect
    /// must happen exactly once (a token consumed, a guest upgraded).
    pub(crate) fn conflict_if_unchanged(&self) -> Option<Constraint> {
        match self {
            WriteOp::ConsumeVerification(_) => Some(Constraint::Verification),
            WriteOp::UpgradeAnonymous { .. } => Some(Constraint::NotAnonymous),
            _ => None,
        }
    }
}

/// What an in-place upgrade sets on the user besides `isAnonymous`.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub email: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
    pub display_username: Option<String>,
}

/// The guest a transaction locks before app code runs in it.
#[derive(Debug, Clone)]
pub enum GuestRef {
    /// The user of the session with this token, if still a guest (a conversion).
    Session(String),
    /// This user, if still a guest inactive since `cutoff_ms` (a cleanup).
    Stale { id: String, cutoff_ms: i64 },
}

/// A value passed to or read from app SQL run through `ctx.db`.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

/// A row from app SQL: column name and value, in select order.
pub type SqlRow = Vec<(String, SqlValue)>;

/// An open transaction. Dropping it without [`Tx::commit`] rolls it back.
#[async_trait]
pub trait Tx: Send {
    async fn apply(&mut self, ops: Vec<WriteOp>) -> Result<(), StoreError>;
    /// The guest, if it still is one, locked until the transaction ends so that
    /// concurrent conversions and cleanups of one guest serialize.
    async fn lock_guest(&mut self, guest: &GuestRef) -> Result<Option<User>, StoreError>;
    /// Runs app SQL; returns the number of rows changed.
    async fn execute(&mut self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError>;
    async fn fetch_all(&mut self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<SqlRow>, StoreError>;
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Unique constraints the endpoints turn into client errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    UserEmail,
    UserUsername,
    /// A verification row to consume was gone.
    Verification,
    /// A guest to upgrade was no longer a guest.
    NotAnonymous,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated: {0:?}")]
    Conflict(Constraint),
    #[error("database error: {0}")]
    Backend(String),
    /// App SQL run through `ctx.db` failed; the message is the database's.
    #[error("{0}")]
    Sql(String),
    /// The database cannot be reached or cannot write right now (a server down,
    /// no connection in time, a full disk); the request may succeed later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Redis, the secondary storage, cannot be reached for a write that must reach it.
    #[error("secondary storage unavailable: {0}")]
    SecondaryUnavailable(String),
    /// A value the database cannot store as text (a NUL character).
    #[error("text the database cannot store: {0}")]
    BadText(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(Constraint::UserEmail) => AuthError::UserAlreadyExists,
            StoreError::Conflict(Constraint::UserUsername) => AuthError::UsernameTaken,
            StoreError::Conflict(Constraint::Verification) => AuthError::InvalidToken,
            StoreError::Conflict(Constraint::NotAnonymous) => AuthError::UserIsNotAnonymous.with_status(400),
            StoreError::Unavailable(detail) => AuthError::DatabaseUnavailable(detail),
            StoreError::SecondaryUnavailable(detail) => AuthError::SecondaryStorageUnavailable(detail),
            StoreError::BadText(_) => {
                AuthError::Validation("Invalid input: text must not contain NUL characters".into())
            }
            other => AuthError::internal(other.to_string()),
        }
    }
}

/// Reads the constraint out of a unique-violation message or constraint name.
pub(crate) fn constraint_from(text: &str) -> Constraint {
    let t = text.to_ascii_lowercase();
    if t.contains("username") {
        Constraint::UserUsername
    } else if t.contains("email") {
        Constraint::UserEmail
    } else {
        Constraint::Other(text.to_owned())
    }
}

/// The unique column a user is found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    Id,
    Email,
    Username,
}

/// The column a passkey is found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyBy {
    Id,
    CredentialId,
}

impl PasskeyBy {
    pub(crate) fn column(self) -> &'static str {
        match self {
            PasskeyBy::Id => "id",
            PasskeyBy::CredentialId => "credentialID",
        }
    }
}

impl Login {
    pub(crate) fn column(self) -> &'static str {
        match self {
            Login::Id => "id",
            Login::Email => "email",
            Login::Username => "username",
        }
    }
}

/// SQL the app runs on the auth database: `ctx.db` ([`conversion_db::ConversionDb`]),
/// `auth.db` ([`app_tx::Autocommit`]) and its transactions ([`app_tx::AppTx`]).
#[async_trait]
pub trait AppSql: Send + Sync + 'static {
    /// `"sqlite"` (placeholders `?`) or `"postgres"` (placeholders `$1`).
    fn dialect(&self) -> &'static str;
    /// Runs a statement; returns the number of rows it changed.
    async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError>;
    async fn fetch_all(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<SqlRow>, StoreError>;
}

#[async_trait]
pub trait Store: Send + Sync {
    /// The session with this token and its user, expired or not.
    async fn session_with_user(&self, token: &str) -> Result<Option<(Session, User)>, StoreError>;
    /// [`Store::session_with_user`] on the calling thread, when the store can answer at
    /// once, waiting on nothing but its own file (SQLite on a file: microseconds, where a
    /// hop to a reader thread and back costs more than the read); `None` when it cannot,
    /// and the caller awaits `session_with_user` instead.
    fn session_with_user_now(&self, _token: &str) -> Option<Result<Option<(Session, User)>, StoreError>> {
        None
    }
    /// The user with this (lower-cased) email, or (normalized) username, and the
    /// hash of its credential account, if any.
    async fn user_with_password(&self, by: Login, key: &str) -> Result<Option<(User, Option<String>)>, StoreError>;
    /// The newest verification row of this identifier, expired or not.
    async fn verification(&self, identifier: &str) -> Result<Option<Verification>, StoreError>;
    /// The user with this (lower-cased) email or (normalized) username.
    async fn user(&self, by: Login, key: &str) -> Result<Option<User>, StoreError>;
    /// The user's passkeys, oldest first.
    async fn passkeys(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError>;
    /// The user's sessions, expired or not, oldest first.
    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Session>, StoreError>;
    /// The user's accounts (every provider), oldest first.
    async fn accounts_of_user(&self, user_id: &str) -> Result<Vec<Account>, StoreError>;
    async fn passkey(&self, by: PasskeyBy, key: &str) -> Result<Option<Passkey>, StoreError>;
    /// All ops in one transaction: all of them happen or none does.
    async fn apply(&self, ops: Vec<WriteOp>) -> Result<(), StoreError>;
    /// Counts a request against a rate-limit bucket (spec §12's algorithm, atomic
    /// across processes): `None` when allowed, else the bucket's last allowed request.
    async fn rate_limit(&self, key: &str, now_ms: i64, window_ms: i64, max: u64) -> Result<Option<i64>, StoreError>;
    /// Forgets rate-limit buckets whose last request is older than `before_ms`.
    async fn prune_rate_limits(&self, before_ms: i64) -> Result<(), StoreError>;
    /// Up to `limit` guests inactive since `cutoff_ms` (no session updated since,
    /// the user row neither), with ids after `after`, in id order.
    async fn stale_guests(&self, cutoff_ms: i64, after: Option<String>, limit: usize) -> Result<Vec<User>, StoreError>;
    /// Deletes those of `ids` that are still stale guests, with their sessions,
    /// accounts and passkeys, in one transaction; returns the ids deleted.
    async fn delete_stale_guests(
        &self,
        ids: Vec<String>,
        cutoff_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// Users, newest first; `anonymous` filters on `isAnonymous`.
    async fn list_users(&self, anonymous: Option<bool>, limit: u64, offset: u64) -> Result<Vec<User>, StoreError>;
    async fn count_users(&self, anonymous: Option<bool>) -> Result<u64, StoreError>;
    /// The funnel of the guests created at or after `since_ms` (all without it).
    async fn guest_stats(&self, since_ms: Option<i64>, now_ms: i64) -> Result<GuestStats, StoreError>;
    /// Opens a transaction for work that must await other things between statements.
    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError>;
    /// Runs app SQL that only reads, outside any transaction (on SQLite, on a
    /// reader connection, beside the writer).
    async fn read_sql(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<SqlRow>, StoreError>;
    /// SQLite: one writer for the whole database, so an open transaction blocks
    /// every other write and should be opened as late as possible.
    fn single_writer(&self) -> bool;
    /// Finishes queued work and closes connections; later calls fail.
    async fn close(&self);
    /// `"sqlite"` or `"postgres"`.
    fn dialect(&self) -> &'static str;
}

/// Where a `database=` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    SqliteMemory,
    SqliteFile(String),
    Postgres(String),
}

/// SQLAlchemy-style SQLite URLs (`sqlite:///relative.db`, `sqlite:////absolute.db`,
/// `sqlite::memory:`), and `postgres://` / `postgresql://` as libpq reads them.
pub fn parse_database_url(url: &str) -> Result<DatabaseUrl, ConfigError> {
    let bad = |why: &str| ConfigError::Invalid(format!("database URL {url:?}: {why}"));
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(DatabaseUrl::Postgres(url.to_owned()));
    }
    let Some(rest) = url.strip_prefix("sqlite:") else {
        let scheme = url.split(':').next().unwrap_or("");
        return Err(bad(&format!(
            "unknown scheme {scheme:?}; use sqlite:///path/to/app.db, sqlite::memory: or postgresql://user@host/db"
        )));
    };
    let path = match rest {
        ":memory:" | "//:memory:" | "///:memory:" => return Ok(DatabaseUrl::SqliteMemory),
        r if r.starts_with("///") => &r[3..],
        r if r.starts_with("//") => &r[2..],
        r => r,
    };
    if path.is_empty() {
        return Err(bad("no file path; use sqlite:///app.db (relative) or sqlite:////abs/app.db"));
    }
    if path.contains('?') {
        return Err(bad("query parameters are not supported in SQLite URLs"));
    }
    Ok(DatabaseUrl::SqliteFile(path.to_owned()))
}

/// Opens the database, creating or migrating the schema. `timeout` bounds how long
/// a request waits for a PostgreSQL connection.
pub async fn open(url: &str, pool_size: usize, timeout: std::time::Duration) -> Result<Arc<dyn Store>, ConfigError> {
    match parse_database_url(url)? {
        DatabaseUrl::SqliteMemory => Ok(Arc::new(sqlite::SqliteStore::open(None, pool_size).await?)),
        DatabaseUrl::SqliteFile(path) => Ok(Arc::new(sqlite::SqliteStore::open(Some(path), pool_size).await?)),
        DatabaseUrl::Postgres(u) => Ok(Arc::new(postgres::PgStore::open(&u, pool_size, timeout).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_read_like_sqlalchemy() {
        assert_eq!(parse_database_url("sqlite:///app.db").unwrap(), DatabaseUrl::SqliteFile("app.db".into()));
        assert_eq!(parse_database_url("sqlite:////var/app.db").unwrap(), DatabaseUrl::SqliteFile("/var/app.db".into()));
        assert_eq!(parse_database_url("sqlite::memory:").unwrap(), DatabaseUrl::SqliteMemory);
        assert!(matches!(parse_database_url("postgresql://u@h/db").unwrap(), DatabaseUrl::Postgres(_)));
        assert!(parse_database_url("mysql://x").unwrap_err().to_string().contains("unknown scheme"));
        assert!(parse_database_url("sqlite:///").is_err());
    }

    #[test]
    fn constraint_names_are_recognized() {
        assert_eq!(constraint_from("UNIQUE constraint failed: user.email"), Constraint::UserEmail);
        assert_eq!(constraint_from("user_email_key"), Constraint::UserEmail);
        assert_eq!(constraint_from("user_username_uidx"), Constraint::UserUsername);
    }
}
