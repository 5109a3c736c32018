//! The SQL both dialects run, written once: the statements of each write, the
//! lookups, and how a row becomes a [`User`], [`Session`], [`Passkey`] or
//! [`Verification`]. Statements use `$1`-style placeholders and `true`/`false`;
//! SQLite reads them as `?1` ([`Sql::sqlite`]) and as 1 and 0. What only one
//! dialect can say (PostgreSQL's data-modifying CTEs and row locks, SQLite's
//! `json_each`, the stale-guest test) stays with that dialect.

use std::sync::LazyLock;

use super::schema::{ACCOUNT_COLUMNS, PASSKEY_COLUMNS, SESSION_COLUMNS, USER_COLUMNS};
use super::{Login, PasskeyBy, WriteOp};
use crate::model::{Account, Passkey, Session, User, Verification};

/// One statement's text in each dialect's placeholder form.
pub struct Sql {
    postgres: String,
    sqlite: String,
}

impl Sql {
    fn new(postgres: String) -> Self {
        Sql { sqlite: to_sqlite(&postgres), postgres }
    }

    pub fn postgres(&self) -> &str {
        &self.postgres
    }

    pub fn sqlite(&self) -> &str {
        &self.sqlite
    }
}

/// `$1` → `?1`: SQLite numbers its parameters by first appearance for `$name`,
/// by the number for `?NNN`.
fn to_sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

/// A value bound to a statement, in a form each dialect binds its own way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Bool(bool),
    /// An `integer` column (PostgreSQL: `int4`, clamped).
    Int32(i64),
    /// A `bigint` column (the guest funnel's milliseconds).
    Int64(i64),
    /// A date: ISO text on SQLite, `timestamptz` on PostgreSQL.
    Time(i64),
    OptBool(Option<bool>),
}

/// A write statement and its parameters.
pub struct Statement<'a> {
    pub sql: &'static Sql,
    pub params: Vec<Param<'a>>,
}

fn st<'a>(sql: &'static LazyLock<Sql>, params: Vec<Param<'a>>) -> Statement<'a> {
    Statement { sql, params }
}

/// Statements made once in both dialects' forms.
macro_rules! write_sql {
    ($($(#[$doc:meta])* $vis:vis $name:ident = $sql:expr;)*) => {
        $($(#[$doc])* $vis static $name: LazyLock<Sql> = LazyLock::new(|| Sql::new(String::from($sql)));)*
    };
}

write_sql! {
    INSERT_USER = r#"INSERT INTO "user" ("id","name","email","emailVerified","image","createdAt","updatedAt","isAnonymous","username","displayUsername") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"#;
    INSERT_ACCOUNT = r#"INSERT INTO "account" ("id","accountId","providerId","userId","password","createdAt","updatedAt") VALUES ($1,$2,$3,$4,$5,$6,$7)"#;
    INSERT_SESSION = r#"INSERT INTO "session" ("id","token","userId","expiresAt","createdAt","updatedAt","ipAddress","userAgent") VALUES ($1,$2,$3,$4,$5,$6,$7,$8)"#;
    INSERT_VERIFICATION = r#"INSERT INTO "verification" ("id","identifier","value","expiresAt","createdAt","updatedAt") VALUES ($1,$2,$3,$4,$5,$6)"#;
    INSERT_PASSKEY = r#"INSERT INTO "passkey" ("id", "name", "publicKey", "userId", "credentialID", "counter", "deviceType", "backedUp", "transports", "createdAt", "aaguid") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"#;
    DELETE_SESSION_BY_TOKEN = r#"DELETE FROM "session" WHERE "token" = $1"#;
    REFRESH_SESSION = r#"UPDATE "session" SET "expiresAt" = $1, "updatedAt" = $2 WHERE "id" = $3"#;
    DELETE_PASSKEYS_OF_USER = r#"DELETE FROM "passkey" WHERE "userId" = $1"#;
    DELETE_USER = r#"DELETE FROM "user" WHERE "id" = $1"#;
    MARK_EMAIL_VERIFIED = r#"UPDATE "user" SET "emailVerified" = true, "updatedAt" = $1 WHERE "id" = $2"#;
    DELETE_VERIFICATION = r#"DELETE FROM "verification" WHERE "identifier" = $1"#;
    UPDATE_PASSKEY_COUNTER = r#"UPDATE "passkey" SET "counter" = $1 WHERE "id" = $2"#;
    RENAME_PASSKEY = r#"UPDATE "passkey" SET "name" = $1 WHERE "id" = $2"#;
    DELETE_PASSKEY = r#"DELETE FROM "passkey" WHERE "id" = $1"#;
    UPGRADE_ANONYMOUS = r#"UPDATE "user" SET "isAnonymous" = false, "emailVerified" = false, "email" = COALESCE($1, "email"),
                 "name" = COALESCE($2, "name"), "username" = COALESCE($3, "username"),
                 "displayUsername" = COALESCE($4, "displayUsername"), "updatedAt" = $5
               WHERE "id" = $6 AND "isAnonymous" = true"#;
    REVOKE_OTHER_SESSIONS = r#"DELETE FROM "session" WHERE "userId" = $1 AND "id" <> $2"#;
    DELETE_SESSIONS_OF_USER = r#"DELETE FROM "session" WHERE "userId" = $1"#;
    DELETE_ACCOUNTS_OF_USER = r#"DELETE FROM "account" WHERE "userId" = $1"#;
    UPDATE_USER = r#"UPDATE "user" SET "name" = COALESCE($1, "name"),
                 "image" = CASE WHEN $2 THEN $3 ELSE "image" END,
                 "username" = COALESCE($4, "username"), "displayUsername" = COALESCE($5, "displayUsername"),
                 "updatedAt" = $6 WHERE "id" = $7"#;
    DELETE_USER_SESSION = r#"DELETE FROM "session" WHERE "token" = $1 AND "userId" = $2"#;
    DELETE_OTHER_LIVE_SESSIONS = r#"DELETE FROM "session" WHERE "userId" = $1 AND "token" <> $2 AND "expiresAt" > $3"#;
    UPDATE_PASSWORD = r#"UPDATE "account" SET "password" = $1, "updatedAt" = $2
               WHERE "userId" = $3 AND "providerId" = 'credential' AND "accountId" = $3"#;
    INSERT_PASSWORD_IF_NONE = r#"INSERT INTO "account" ("id","accountId","providerId","userId","password","createdAt","updatedAt")
               SELECT $1, $2, 'credential', $2, $3, $4, $4 WHERE NOT EXISTS
                 (SELECT 1 FROM "account" WHERE "userId" = $2 AND "providerId" = 'credential' AND "accountId" = $2)"#;
    DELETE_ACCOUNT = r#"DELETE FROM "account" WHERE "id" = $1 AND "userId" = $2"#;
    DELETE_EXPIRED_VERIFICATIONS = r#"DELETE FROM "verification" WHERE "expiresAt" < $1"#;
    UPDATE_EMAIL = r#"UPDATE "user" SET "email" = $1, "emailVerified" = COALESCE($2, "emailVerified"), "updatedAt" = $3
               WHERE "id" = $4"#;
    GUEST_ENDED = r#"INSERT INTO "guestFunnel" ("id","createdAt","endedAt","outcome","method","durationMs")
               VALUES ($1,$2,$3,$4,$5,$3 - $2) ON CONFLICT DO NOTHING"#;
    /// The guest funnel's ended guests (`$1`: created since, ms): all, converted,
    /// upgraded, deleted, cleaned up. Read from the covering index on `createdAt`.
    pub GUEST_FUNNEL_COUNTS = r#"SELECT count(*),
                 coalesce(sum(CASE WHEN "outcome" = 'converted' THEN 1 ELSE 0 END), 0),
                 coalesce(sum(CASE WHEN "outcome" = 'upgraded' THEN 1 ELSE 0 END), 0),
                 coalesce(sum(CASE WHEN "outcome" = 'deleted' THEN 1 ELSE 0 END), 0),
                 coalesce(sum(CASE WHEN "outcome" = 'cleaned_up' THEN 1 ELSE 0 END), 0)
               FROM "guestFunnel" WHERE "createdAt" >= $1"#;
    pub GUEST_FUNNEL_METHODS = r#"SELECT coalesce("method", ''), count(*) FROM "guestFunnel"
               WHERE "createdAt" >= $1 AND "outcome" = 'converted' GROUP BY "method""#;
    /// The middle one or two times to conversion (`$2` rows from offset `$3`).
    pub GUEST_FUNNEL_MEDIAN = r#"SELECT "durationMs" FROM "guestFunnel"
               WHERE "createdAt" >= $1 AND "outcome" IN ('converted', 'upgraded')
               ORDER BY "durationMs" LIMIT $2 OFFSET $3"#;
    /// Guests still guests, created since `$1` (a time), not yet counted as ended
    /// (a converted guest kept by `disable_delete_anonymous_user` is).
    pub GUESTS_LIVE = r#"SELECT count(*) FROM "user" u WHERE u."isAnonymous" = true AND u."createdAt" >= $1
               AND NOT EXISTS (SELECT 1 FROM "guestFunnel" f WHERE f."id" = u."id")"#;
    /// Guests with a live session (`$1`: now).
    pub GUESTS_ACTIVE = r#"SELECT count(*) FROM "user" u WHERE u."isAnonymous" = true
               AND EXISTS (SELECT 1 FROM "session" s WHERE s."userId" = u."id" AND s."expiresAt" > $1)"#;
}

/// The statements that carry out `op`, in order. The rows the last one changed
/// are what [`WriteOp::conflict_if_unchanged`] looks at.
pub fn statements(op: &WriteOp) -> Vec<Statement<'_>> {
    use Param::{Bool, Int32, Text, Time};
    match op {
        WriteOp::InsertUser(u) => vec![st(
            &INSERT_USER,
            vec![
                Text(&u.id),
                Text(&u.name),
                Text(&u.email),
                Bool(u.email_verified),
                opt(&u.image),
                Time(u.created_at),
                Time(u.updated_at),
                Bool(u.is_anonymous),
                opt(&u.username),
                opt(&u.display_username),
            ],
        )],
        WriteOp::InsertAccount(a) => vec![st(
            &INSERT_ACCOUNT,
            vec![
                Text(&a.id),
                Text(&a.account_id),
                Text(&a.provider_id),
                Text(&a.user_id),
                opt(&a.password),
                Time(a.created_at),
                Time(a.updated_at),
            ],
        )],
        WriteOp::InsertSession(s) => vec![st(
            &INSERT_SESSION,
            vec![
                Text(&s.id),
                Text(&s.token),
                Text(&s.user_id),
                Time(s.expires_at),
                Time(s.created_at),
                Time(s.updated_at),
                opt(&s.ip_address),
                opt(&s.user_agent),
            ],
        )],
        WriteOp::DeleteSessionByToken(token) | WriteOp::DeleteExpiredSession(token) => {
            vec![st(&DELETE_SESSION_BY_TOKEN, vec![Text(token)])]
        }
        WriteOp::RefreshSession { id, expires_at, updated_at, .. } => {
            vec![st(&REFRESH_SESSION, vec![Time(*expires_at), Time(*updated_at), Text(id)])]
        }
        WriteOp::DeleteUser(id) => {
            // Explicit, not left to ON DELETE CASCADE: tables created elsewhere may lack it.
            let mut all = revoke_sessions_and_accounts(id);
            all.insert(1, st(&DELETE_PASSKEYS_OF_USER, vec![Text(id)]));
            all.push(st(&DELETE_USER, vec![Text(id)]));
            all
        }
        WriteOp::RevokeSessionsAndAccounts(id) => revoke_sessions_and_accounts(id),
        WriteOp::MarkEmailVerified { user_id, updated_at } => {
            vec![st(&MARK_EMAIL_VERIFIED, vec![Time(*updated_at), Text(user_id)])]
        }
        WriteOp::InsertVerification(v) => vec![st(
            &INSERT_VERIFICATION,
            vec![
                Text(&v.id),
                Text(&v.identifier),
                Text(&v.value),
                Time(v.expires_at),
                Time(v.created_at),
                Time(v.updated_at),
            ],
        )],
        WriteOp::DeleteVerification(identifier) | WriteOp::ConsumeVerification(identifier) => {
            vec![st(&DELETE_VERIFICATION, vec![Text(identifier)])]
        }
        WriteOp::InsertPasskey(p) => vec![st(
            &INSERT_PASSKEY,
            vec![
                Text(&p.id),
                opt(&p.name),
                Text(&p.public_key),
                Text(&p.user_id),
                Text(&p.credential_id),
                Int32(p.counter),
                Text(&p.device_type),
                Bool(p.backed_up),
                opt(&p.transports),
                Time(p.created_at),
                opt(&p.aaguid),
            ],
        )],
        WriteOp::UpdatePasskeyCounter { id, counter } => {
            vec![st(&UPDATE_PASSKEY_COUNTER, vec![Int32(*counter), Text(id)])]
        }
        WriteOp::RenamePasskey { id, name } => {
            vec![st(&RENAME_PASSKEY, vec![Text(name), Text(id)])]
        }
        WriteOp::DeletePasskey(id) => vec![st(&DELETE_PASSKEY, vec![Text(id)])],
        WriteOp::UpgradeAnonymous { user_id, updated_at, profile: p } => vec![st(
            &UPGRADE_ANONYMOUS,
            vec![
                opt(&p.email),
                opt(&p.name),
                opt(&p.username),
                opt(&p.display_username),
                Time(*updated_at),
                Text(user_id),
            ],
        )],
        WriteOp::RevokeOtherSessions { user_id, keep_id } => {
            vec![st(&REVOKE_OTHER_SESSIONS, vec![Text(user_id), Text(keep_id)])]
        }
        WriteOp::UpdateUser { user_id, updated_at, name, image, username, display_username } => vec![st(
            &UPDATE_USER,
            vec![
                opt(name),
                Bool(image.is_some()),
                Param::OptText(image.as_ref().and_then(|i| i.as_deref())),
                opt(username),
                opt(display_username),
                Time(*updated_at),
                Text(user_id),
            ],
        )],
        WriteOp::DeleteUserSession { user_id, token } => {
            vec![st(&DELETE_USER_SESSION, vec![Text(token), Text(user_id)])]
        }
        WriteOp::DeleteSessionsOfUser(user_id) => vec![st(&DELETE_SESSIONS_OF_USER, vec![Text(user_id)])],
        WriteOp::DeleteOtherLiveSessions { user_id, keep_token, now } => {
            vec![st(&DELETE_OTHER_LIVE_SESSIONS, vec![Text(user_id), Text(keep_token), Time(*now)])]
        }
        WriteOp::SetPassword { user_id, hash, now, new_account_id } => vec![
            st(&UPDATE_PASSWORD, vec![Text(hash), Time(*now), Text(user_id)]),
            st(&INSERT_PASSWORD_IF_NONE, vec![Text(new_account_id), Text(user_id), Text(hash), Time(*now)]),
        ],
        WriteOp::DeleteAccount { user_id, id } => vec![st(&DELETE_ACCOUNT, vec![Text(id), Text(user_id)])],
        WriteOp::DeleteExpiredVerifications(before) => vec![st(&DELETE_EXPIRED_VERIFICATIONS, vec![Time(*before)])],
        WriteOp::UpdateEmail { user_id, email, email_verified, updated_at } => vec![st(
            &UPDATE_EMAIL,
            vec![Text(email), Param::OptBool(*email_verified), Time(*updated_at), Text(user_id)],
        )],
        WriteOp::GuestEnded { id, created_ms, outcome, method, at_ms } => vec![st(
            &GUEST_ENDED,
            vec![
                Text(id),
                Param::Int64(*created_ms),
                Param::Int64(*at_ms),
                Text(outcome.name()),
                Param::OptText(*method),
            ],
        )],
    }
}

fn opt(s: &Option<String>) -> Param<'_> {
    Param::OptText(s.as_deref())
}

fn revoke_sessions_and_accounts(id: &str) -> Vec<Statement<'_>> {
    vec![st(&DELETE_SESSIONS_OF_USER, vec![Param::Text(id)]), st(&DELETE_ACCOUNTS_OF_USER, vec![Param::Text(id)])]
}

/// A session and its user by the session's token: the lookup behind every get-session.
pub static SESSION_WITH_USER: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(format!(
        r#"SELECT {SESSION_COLUMNS}, {USER_COLUMNS} FROM "session" s JOIN "user" u ON u."id" = s."userId" WHERE s."token" = $1"#
    ))
});

/// The latest verification row of an identifier.
pub static VERIFICATION: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(
        r#"SELECT "id", "identifier", "value", "expiresAt", "createdAt", "updatedAt" FROM "verification"
           WHERE "identifier" = $1 ORDER BY "createdAt" DESC LIMIT 1"#
            .to_owned(),
    )
});

/// Three statements, one per [`Login`].
fn by_login(make: impl Fn(&str) -> String) -> [Sql; 3] {
    [Login::Id, Login::Email, Login::Username].map(|by| Sql::new(make(by.column())))
}

/// A user by id, email or username.
pub fn user(by: Login) -> &'static Sql {
    static SQL: LazyLock<[Sql; 3]> =
        LazyLock::new(|| by_login(|col| format!(r#"SELECT {USER_COLUMNS} FROM "user" u WHERE u."{col}" = $1"#)));
    &SQL[by as usize]
}

/// A user and its password credential's hash (`NULL` without one): a password sign-in's lookup.
pub fn user_with_password(by: Login) -> &'static Sql {
    static SQL: LazyLock<[Sql; 3]> = LazyLock::new(|| {
        by_login(|col| {
            format!(
                r#"SELECT {USER_COLUMNS}, a."password" FROM "user" u
                   LEFT JOIN "account" a ON a."userId" = u."id" AND a."providerId" = 'credential' AND a."accountId" = u."id"
                   WHERE u."{col}" = $1 ORDER BY a."password" IS NULL LIMIT 1"#
            )
        })
    });
    &SQL[by as usize]
}

/// A user's sessions, oldest first.
pub static SESSIONS_OF_USER: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(format!(
        r#"SELECT {SESSION_COLUMNS} FROM "session" s WHERE s."userId" = $1 ORDER BY s."createdAt", s."id""#
    ))
});

/// A user's accounts, oldest first.
pub static ACCOUNTS_OF_USER: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(format!(r#"SELECT {ACCOUNT_COLUMNS} FROM "account" WHERE "userId" = $1 ORDER BY "createdAt", "id""#))
});

/// A user's passkeys, oldest first.
pub static PASSKEYS_OF_USER: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(format!(r#"SELECT {PASSKEY_COLUMNS} FROM "passkey" WHERE "userId" = $1 ORDER BY "createdAt", "id""#))
});

/// A passkey by id or credential id.
pub fn passkey(by: PasskeyBy) -> &'static Sql {
    static SQL: LazyLock<[Sql; 2]> = LazyLock::new(|| {
        [PasskeyBy::Id, PasskeyBy::CredentialId].map(|by| {
            Sql::new(format!(r#"SELECT {PASSKEY_COLUMNS} FROM "passkey" WHERE "{}" = $1 LIMIT 1"#, by.column()))
        })
    });
    &SQL[by as usize]
}

fn anonymous_filter(anonymous: Option<bool>) -> &'static str {
    match anonymous {
        None => "",
        Some(true) => r#"WHERE u."isAnonymous" = true"#,
        Some(false) => r#"WHERE u."isAnonymous" IS NOT TRUE"#,
    }
}

fn by_filter(make: impl Fn(&str) -> String) -> [Sql; 3] {
    [None, Some(true), Some(false)].map(|a| Sql::new(make(anonymous_filter(a))))
}

fn filter_index(anonymous: Option<bool>) -> usize {
    match anonymous {
        None => 0,
        Some(true) => 1,
        Some(false) => 2,
    }
}

/// Users newest first, all of them, guests only or registered only; `$1` limit, `$2` offset.
pub fn list_users(anonymous: Option<bool>) -> &'static Sql {
    static SQL: LazyLock<[Sql; 3]> = LazyLock::new(|| {
        by_filter(|filter| {
            format!(
                r#"SELECT {USER_COLUMNS} FROM "user" u {filter} ORDER BY u."createdAt" DESC, u."id" DESC LIMIT $1 OFFSET $2"#
            )
        })
    });
    &SQL[filter_index(anonymous)]
}

pub fn count_users(anonymous: Option<bool>) -> &'static Sql {
    static SQL: LazyLock<[Sql; 3]> =
        LazyLock::new(|| by_filter(|filter| format!(r#"SELECT count(*) FROM "user" u {filter}"#)));
    &SQL[filter_index(anonymous)]
}

/// The guest a session belongs to (PostgreSQL adds its row locks).
pub static GUEST_BY_SESSION: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(format!(
        r#"SELECT {USER_COLUMNS} FROM "session" s JOIN "user" u ON u."id" = s."userId"
           WHERE s."token" = $1 AND u."isAnonymous" = true"#
    ))
});

write_sql! {
    /// Deletes rate-limit rows last used before `$1`.
    pub PRUNE_RATE_LIMITS = r#"DELETE FROM "rateLimit" WHERE "lastRequest" < $1"#;
    /// When the rate-limit row of `$1` was last used.
    pub RATE_LIMIT_LAST_REQUEST = r#"SELECT "lastRequest" FROM "rateLimit" WHERE "key" = $1"#;
}

/// How each dialect reads a column of its rows. `NULL` reads as false or 0 where the
/// model has no `None`.
pub trait Columns {
    type Error;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn flag(&self, i: usize) -> Result<bool, Self::Error>;
    /// An `integer` column.
    fn int32(&self, i: usize) -> Result<i64, Self::Error>;
    /// A date, as epoch milliseconds.
    fn time(&self, i: usize) -> Result<i64, Self::Error>;
}

/// A user from [`USER_COLUMNS`], starting at column `o`.
pub fn user_at<R: Columns>(r: &R, o: usize) -> Result<User, R::Error> {
    Ok(User {
        id: r.text(o)?,
        name: r.text(o + 1)?,
        email: r.text(o + 2)?,
        email_verified: r.flag(o + 3)?,
        image: r.opt_text(o + 4)?,
        created_at: r.time(o + 5)?,
        updated_at: r.time(o + 6)?,
        is_anonymous: r.flag(o + 7)?,
        username: r.opt_text(o + 8)?,
        display_username: r.opt_text(o + 9)?,
    })
}

/// A session from [`SESSION_COLUMNS`].
pub fn session_at<R: Columns>(r: &R) -> Result<Session, R::Error> {
    Ok(Session {
        id: r.text(0)?,
        token: r.text(1)?,
        user_id: r.text(2)?,
        expires_at: r.time(3)?,
        created_at: r.time(4)?,
        updated_at: r.time(5)?,
        ip_address: r.opt_text(6)?,
        user_agent: r.opt_text(7)?,
    })
}

/// A passkey from [`PASSKEY_COLUMNS`].
pub fn passkey_at<R: Columns>(r: &R) -> Result<Passkey, R::Error> {
    Ok(Passkey {
        id: r.text(0)?,
        name: r.opt_text(1)?,
        public_key: r.text(2)?,
        user_id: r.text(3)?,
        credential_id: r.text(4)?,
        counter: r.int32(5)?,
        device_type: r.text(6)?,
        backed_up: r.flag(7)?,
        transports: r.opt_text(8)?,
        created_at: r.time(9)?,
        aaguid: r.opt_text(10)?,
    })
}

/// An account from [`ACCOUNT_COLUMNS`].
pub fn account_at<R: Columns>(r: &R) -> Result<Account, R::Error> {
    Ok(Account {
        id: r.text(0)?,
        account_id: r.text(1)?,
        provider_id: r.text(2)?,
        user_id: r.text(3)?,
        password: r.opt_text(4)?,
        created_at: r.time(5)?,
        updated_at: r.time(6)?,
        scope: r.opt_text(7)?,
    })
}

/// A verification row from [`VERIFICATION`].
pub fn verification_at<R: Columns>(r: &R) -> Result<Verification, R::Error> {
    Ok(Verification {
        id: r.text(0)?,
        identifier: r.text(1)?,
        value: r.text(2)?,
        expires_at: r.time(3)?,
        created_at: r.time(4)?,
        updated_at: r.time(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_numbers_the_same_parameters() {
        assert_eq!(
            to_sqlite(r#"UPDATE "s" SET "a" = $1 WHERE "id" = $2 OR "x" = $1"#),
            r#"UPDATE "s" SET "a" = ?1 WHERE "id" = ?2 OR "x" = ?1"#
        );
        assert!(SESSION_WITH_USER.sqlite().ends_with(r#"s."token" = ?1"#));
        assert!(user(Login::Username).postgres().ends_with(r#"u."username" = $1"#));
        assert!(list_users(Some(false)).postgres().contains("IS NOT TRUE"));
    }

    #[test]
    fn every_placeholder_has_its_parameter() {
        let user = User::new("u".into(), "n".into(), "e@x.io".into(), true, 0);
        for op in [WriteOp::InsertUser(user), WriteOp::DeleteUser("u".into()), WriteOp::DeletePasskey("p".into())] {
            for s in statements(&op) {
                let highest = (1..=20).rev().find(|n| s.sql.postgres().contains(&format!("${n}"))).unwrap_or(0);
                assert_eq!(highest, s.params.len(), "{}", s.sql.postgres());
            }
        }
    }
}
