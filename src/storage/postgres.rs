//! PostgreSQL through sqlx: a connection pool, statements prepared once per
//! connection (sqlx caches them), one transaction per write-set, and
//! migrations serialized across processes by an advisory lock.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::{Column, Row, TypeInfo};

use super::schema::{self, PASSKEY_COLUMNS, SESSION_COLUMNS, USER_COLUMNS};
use super::{constraint_from, GuestRef, Login, PasskeyBy, SqlRow, SqlValue, Store, StoreError, Tx, WriteOp};
use crate::config::ConfigError;
use crate::model::{Passkey, Session, User, Verification};

/// Any constant shared by every kernia process: serializes schema migrations.
const MIGRATION_LOCK: i64 = 0x6b65_726e_6961;

pub struct PgStore {
    pool: PgPool,
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(constraint_from(db.constraint().unwrap_or(db.message())))
        }
        // 22021: a NUL in text ("invalid byte sequence for encoding UTF8: 0x00").
        sqlx::Error::Database(db) if db.code().as_deref() == Some("22021") => StoreError::BadText(db.message().into()),
        // Class 08: connection exceptions; 57P0x: the server shutting down or starting;
        // 53xxx: out of resources (disk full, too many connections).
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c.starts_with("53")) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

fn ms(row: &PgRow, idx: usize) -> Result<i64, sqlx::Error> {
    Ok(row.try_get::<DateTime<Utc>, _>(idx)?.timestamp_millis())
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..s + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl PgStore {
    pub async fn open(url: &str, pool_size: usize, timeout: Duration) -> Result<PgStore, ConfigError> {
        let size = if pool_size == 0 { 8 } else { pool_size } as u32;
        let cannot =
            |e: sqlx::Error| ConfigError::Database(format!("cannot connect to PostgreSQL at {}: {e}", redact(url)));
        // No JIT: every query here is a short indexed lookup or write, and the planner's
        // cost estimates for cleanup's per-guest subquery set off JIT compiles of 180 ms
        // around 4 ms of work (measured).
        let connect = url.parse::<PgConnectOptions>().map_err(cannot)?.options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .min_connections(1)
            .acquire_timeout(timeout)
            .connect_with(connect)
            .await
            .map_err(cannot)?;
        let store = PgStore { pool };
        store.migrate().await.map_err(|e| ConfigError::Database(format!("cannot create the schema: {e}")))?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        // DDL takes strong table locks even when it changes nothing, and a process
        // starting up beside a busy one would deadlock with its requests (caught by
        // the tests). So: only when something is missing.
        if self.schema_complete().await? {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL lock_timeout = '10s'").execute(&mut *tx).await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await?;
        sqlx::raw_sql(schema::POSTGRES_TABLES).execute(&mut *tx).await?;
        for (table, column, _, pg_type) in schema::ADDED_COLUMNS {
            let sql = format!(r#"ALTER TABLE "{table}" ADD COLUMN IF NOT EXISTS "{column}" {pg_type}"#);
            sqlx::raw_sql(&sql).execute(&mut *tx).await?;
        }
        sqlx::raw_sql(schema::POSTGRES_ADDED_INDEXES).execute(&mut *tx).await?;
        tx.commit().await
    }

    /// Whether every table, added column and index is there already (a catalog read, no locks).
    async fn schema_complete(&self) -> Result<bool, sqlx::Error> {
        let relations = [
            "user",
            "session",
            "account",
            "verification",
            "passkey",
            "session_userId_idx",
            "passkey_credentialID_idx",
            "user_username_uidx",
            "user_isAnonymous_idx",
            "rateLimit",
            "rateLimit_key_uidx",
        ];
        for name in relations {
            let found: Option<String> = sqlx::query_scalar("SELECT to_regclass(quote_ident($1))::text")
                .bind(name)
                .fetch_one(&self.pool)
                .await?;
            if found.is_none() {
                return Ok(false);
            }
        }
        for (table, column, _, _) in schema::ADDED_COLUMNS {
            let found: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2)",
            )
            .bind(table)
            .bind(column)
            .fetch_one(&self.pool)
            .await?;
            if !found {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn user_at(row: &PgRow, o: usize) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get(o)?,
        name: row.try_get(o + 1)?,
        email: row.try_get(o + 2)?,
        email_verified: row.try_get(o + 3)?,
        image: row.try_get(o + 4)?,
        created_at: ms(row, o + 5)?,
        updated_at: ms(row, o + 6)?,
        is_anonymous: row.try_get::<Option<bool>, _>(o + 7)?.unwrap_or(false),
        username: row.try_get(o + 8)?,
        display_username: row.try_get(o + 9)?,
    })
}

fn passkey_at(r: &PgRow) -> Result<Passkey, sqlx::Error> {
    let created: Option<DateTime<Utc>> = r.try_get(9)?;
    Ok(Passkey {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        public_key: r.try_get(2)?,
        user_id: r.try_get(3)?,
        credential_id: r.try_get(4)?,
        counter: i64::from(r.try_get::<i32, _>(5)?),
        device_type: r.try_get(6)?,
        backed_up: r.try_get(7)?,
        transports: r.try_get(8)?,
        created_at: created.map_or(0, |t| t.timestamp_millis()),
        aaguid: r.try_get(10)?,
    })
}

fn session_at(row: &PgRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: row.try_get(0)?,
        token: row.try_get(1)?,
        user_id: row.try_get(2)?,
        expires_at: ms(row, 3)?,
        created_at: ms(row, 4)?,
        updated_at: ms(row, 5)?,
        ip_address: row.try_get(6)?,
        user_agent: row.try_get(7)?,
    })
}

/// The column list of an insert, and how many values it takes.
fn insert_head(op: &WriteOp) -> Option<(&'static str, usize)> {
    Some(match op {
        WriteOp::InsertUser(_) => (
            r#"INSERT INTO "user" ("id","name","email","emailVerified","image","createdAt","updatedAt","isAnonymous","username","displayUsername")"#,
            10,
        ),
        WriteOp::InsertAccount(_) => {
            (r#"INSERT INTO "account" ("id","accountId","providerId","userId","password","createdAt","updatedAt")"#, 7)
        }
        WriteOp::InsertSession(_) => (
            r#"INSERT INTO "session" ("id","token","userId","expiresAt","createdAt","updatedAt","ipAddress","userAgent")"#,
            8,
        ),
        _ => return None,
    })
}

fn values(first: usize, count: usize) -> String {
    let params: Vec<String> = (first..first + count).map(|i| format!("${i}")).collect();
    format!("VALUES ({})", params.join(","))
}

/// Binds an insert's values, in [`insert_head`]'s column order.
fn bind_insert<'q>(q: Query<'q, Postgres, PgArguments>, op: &'q WriteOp) -> Query<'q, Postgres, PgArguments> {
    match op {
        WriteOp::InsertUser(u) => q
            .bind(&u.id)
            .bind(&u.name)
            .bind(&u.email)
            .bind(u.email_verified)
            .bind(&u.image)
            .bind(ts(u.created_at))
            .bind(ts(u.updated_at))
            .bind(u.is_anonymous)
            .bind(&u.username)
            .bind(&u.display_username),
        WriteOp::InsertAccount(a) => q
            .bind(&a.id)
            .bind(&a.account_id)
            .bind(&a.provider_id)
            .bind(&a.user_id)
            .bind(&a.password)
            .bind(ts(a.created_at))
            .bind(ts(a.updated_at)),
        WriteOp::InsertSession(s) => q
            .bind(&s.id)
            .bind(&s.token)
            .bind(&s.user_id)
            .bind(ts(s.expires_at))
            .bind(ts(s.created_at))
            .bind(ts(s.updated_at))
            .bind(&s.ip_address)
            .bind(&s.user_agent),
        _ => q,
    }
}

/// Several inserts as one statement (data-modifying CTEs): atomic on its own and
/// one round trip instead of BEGIN, one per insert, and COMMIT. Foreign keys are
/// checked at the end of the statement, so a session may reference a user
/// inserted beside it.
fn combined_inserts(ops: &[WriteOp]) -> Option<String> {
    let heads: Vec<(&str, usize)> = ops.iter().map(insert_head).collect::<Option<_>>()?;
    let (last, rest) = heads.split_last()?;
    let mut sql = String::new();
    let mut next = 1;
    for (i, (head, count)) in rest.iter().enumerate() {
        sql.push_str(if i == 0 { "WITH " } else { ", " });
        sql.push_str(&format!("w{i} AS ({head} {})", values(next, *count)));
        next += count;
    }
    sql.push_str(&format!(" {} {}", last.0, values(next, last.1)));
    Some(sql)
}

/// One op; an op that must change a row and changed none is a conflict.
async fn apply_one(conn: &mut PgConnection, op: &WriteOp) -> Result<(), StoreError> {
    let changed = apply_op(conn, op).await.map_err(map_err)?;
    match op.conflict_if_unchanged().filter(|_| changed == 0) {
        Some(conflict) => Err(StoreError::Conflict(conflict)),
        None => Ok(()),
    }
}

/// A guest inactive since `$2`: neither its row nor any of its sessions updated since.
/// The sessions are read per candidate through `session_userId_idx`: as `NOT EXISTS`,
/// the planner turns the check into an anti-join that reads the whole session table
/// for every batch (measured: 160 ms a batch at 250k sessions, against 2 ms).
const STALE: &str = r#"u."isAnonymous" = true AND u."updatedAt" < $2
    AND COALESCE((SELECT max(s."updatedAt") FROM "session" s WHERE s."userId" = u."id"), '-infinity') < $2"#;

fn anonymous_filter(anonymous: Option<bool>) -> &'static str {
    match anonymous {
        None => "",
        Some(true) => r#"WHERE u."isAnonymous" = true"#,
        Some(false) => r#"WHERE u."isAnonymous" IS NOT TRUE"#,
    }
}

/// Runs one op; returns the rows it changed.
async fn apply_op(conn: &mut PgConnection, op: &WriteOp) -> Result<u64, sqlx::Error> {
    if let Some((head, count)) = insert_head(op) {
        let sql = format!("{head} {}", values(1, count));
        return Ok(bind_insert(sqlx::query(&sql), op).execute(conn).await?.rows_affected());
    }
    Ok(match op {
        WriteOp::InsertUser(_) | WriteOp::InsertAccount(_) | WriteOp::InsertSession(_) => unreachable!("handled above"),
        WriteOp::DeleteSessionByToken(token) => {
            sqlx::query(r#"DELETE FROM "session" WHERE "token" = $1"#).bind(token).execute(conn).await?.rows_affected()
        }
        WriteOp::RefreshSession { id, expires_at, updated_at } => {
            sqlx::query(r#"UPDATE "session" SET "expiresAt" = $1, "updatedAt" = $2 WHERE "id" = $3"#)
                .bind(ts(*expires_at))
                .bind(ts(*updated_at))
                .bind(id)
                .execute(conn)
                .await?
                .rows_affected()
        }
        WriteOp::DeleteUser(id) => {
            // One statement, explicit rather than left to ON DELETE CASCADE.
            sqlx::query(
                r#"WITH s AS (DELETE FROM "session" WHERE "userId" = $1), a AS (DELETE FROM "account" WHERE "userId" = $1),
                        p AS (DELETE FROM "passkey" WHERE "userId" = $1)
                   DELETE FROM "user" WHERE "id" = $1"#,
            )
            .bind(id)
            .execute(conn)
            .await?
            .rows_affected()
        }
        WriteOp::RevokeSessionsAndAccounts(id) => sqlx::query(
            r#"WITH s AS (DELETE FROM "session" WHERE "userId" = $1) DELETE FROM "account" WHERE "userId" = $1"#,
        )
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected(),
        WriteOp::MarkEmailVerified { user_id, updated_at } => {
            sqlx::query(r#"UPDATE "user" SET "emailVerified" = true, "updatedAt" = $1 WHERE "id" = $2"#)
                .bind(ts(*updated_at))
                .bind(user_id)
                .execute(conn)
                .await?
                .rows_affected()
        }
        WriteOp::InsertVerification(v) => sqlx::query(
            r#"INSERT INTO "verification" ("id","identifier","value","expiresAt","createdAt","updatedAt")
                   VALUES ($1,$2,$3,$4,$5,$6)"#,
        )
        .bind(&v.id)
        .bind(&v.identifier)
        .bind(&v.value)
        .bind(ts(v.expires_at))
        .bind(ts(v.created_at))
        .bind(ts(v.updated_at))
        .execute(conn)
        .await?
        .rows_affected(),
        WriteOp::DeleteVerification(identifier) | WriteOp::ConsumeVerification(identifier) => {
            sqlx::query(r#"DELETE FROM "verification" WHERE "identifier" = $1"#)
                .bind(identifier)
                .execute(conn)
                .await?
                .rows_affected()
        }
        WriteOp::InsertPasskey(p) => {
            let sql =
                format!(r#"INSERT INTO "passkey" ({PASSKEY_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"#);
            sqlx::query(&sql)
                .bind(&p.id)
                .bind(&p.name)
                .bind(&p.public_key)
                .bind(&p.user_id)
                .bind(&p.credential_id)
                .bind(i32::try_from(p.counter).unwrap_or(i32::MAX))
                .bind(&p.device_type)
                .bind(p.backed_up)
                .bind(&p.transports)
                .bind(ts(p.created_at))
                .bind(&p.aaguid)
                .execute(conn)
                .await?
                .rows_affected()
        }
        WriteOp::UpdatePasskeyCounter { id, counter } => {
            sqlx::query(r#"UPDATE "passkey" SET "counter" = $1 WHERE "id" = $2"#)
                .bind(i32::try_from(*counter).unwrap_or(i32::MAX))
                .bind(id)
                .execute(conn)
                .await?
                .rows_affected()
        }
        WriteOp::RenamePasskey { id, name } => sqlx::query(r#"UPDATE "passkey" SET "name" = $1 WHERE "id" = $2"#)
            .bind(name)
            .bind(id)
            .execute(conn)
            .await?
            .rows_affected(),
        WriteOp::DeletePasskey(id) => {
            sqlx::query(r#"DELETE FROM "passkey" WHERE "id" = $1"#).bind(id).execute(conn).await?.rows_affected()
        }
        WriteOp::UpgradeAnonymous { user_id, updated_at, profile: p } => sqlx::query(
            r#"UPDATE "user" SET "isAnonymous" = false, "emailVerified" = false, "email" = COALESCE($1, "email"),
                     "name" = COALESCE($2, "name"), "username" = COALESCE($3, "username"),
                     "displayUsername" = COALESCE($4, "displayUsername"), "updatedAt" = $5
                   WHERE "id" = $6 AND "isAnonymous" = true"#,
        )
        .bind(&p.email)
        .bind(&p.name)
        .bind(&p.username)
        .bind(&p.display_username)
        .bind(ts(*updated_at))
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected(),
        WriteOp::RevokeOtherSessions { user_id, keep_id } => {
            sqlx::query(r#"DELETE FROM "session" WHERE "userId" = $1 AND "id" <> $2"#)
                .bind(user_id)
                .bind(keep_id)
                .execute(conn)
                .await?
                .rows_affected()
        }
    })
}

#[async_trait]
impl Store for PgStore {
    async fn session_with_user(&self, token: &str) -> Result<Option<(Session, User)>, StoreError> {
        let sql = format!(
            r#"SELECT {SESSION_COLUMNS}, {USER_COLUMNS} FROM "session" s JOIN "user" u ON u."id" = s."userId" WHERE s."token" = $1"#
        );
        let row = sqlx::query(&sql).bind(token).fetch_optional(&self.pool).await.map_err(map_err)?;
        row.map(|r| Ok((session_at(&r)?, user_at(&r, 8)?))).transpose().map_err(map_err)
    }

    async fn user_with_password(&self, by: Login, key: &str) -> Result<Option<(User, Option<String>)>, StoreError> {
        let sql = format!(
            r#"SELECT {USER_COLUMNS}, a."password" FROM "user" u
               LEFT JOIN "account" a ON a."userId" = u."id" AND a."providerId" = 'credential' AND a."accountId" = u."id"
               WHERE u."{}" = $1 ORDER BY a."password" IS NULL LIMIT 1"#,
            by.column()
        );
        let row = sqlx::query(&sql).bind(key).fetch_optional(&self.pool).await.map_err(map_err)?;
        row.map(|r| Ok((user_at(&r, 0)?, r.try_get(10)?))).transpose().map_err(map_err)
    }

    async fn verification(&self, identifier: &str) -> Result<Option<Verification>, StoreError> {
        let sql = r#"SELECT "id", "identifier", "value", "expiresAt", "createdAt", "updatedAt" FROM "verification"
                     WHERE "identifier" = $1 ORDER BY "createdAt" DESC LIMIT 1"#;
        let row = sqlx::query(sql).bind(identifier).fetch_optional(&self.pool).await.map_err(map_err)?;
        row.map(|r| {
            Ok(Verification {
                id: r.try_get(0)?,
                identifier: r.try_get(1)?,
                value: r.try_get(2)?,
                expires_at: ms(&r, 3)?,
                created_at: ms(&r, 4)?,
                updated_at: ms(&r, 5)?,
            })
        })
        .transpose()
        .map_err(map_err)
    }

    async fn passkeys(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
        let sql = format!(r#"SELECT {PASSKEY_COLUMNS} FROM "passkey" WHERE "userId" = $1 ORDER BY "createdAt", "id""#);
        let rows = sqlx::query(&sql).bind(user_id).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(passkey_at).collect::<Result<_, _>>().map_err(map_err)
    }

    async fn passkey(&self, by: PasskeyBy, key: &str) -> Result<Option<Passkey>, StoreError> {
        let sql = format!(r#"SELECT {PASSKEY_COLUMNS} FROM "passkey" WHERE "{}" = $1 LIMIT 1"#, by.column());
        let row = sqlx::query(&sql).bind(key).fetch_optional(&self.pool).await.map_err(map_err)?;
        row.as_ref().map(passkey_at).transpose().map_err(map_err)
    }

    async fn user(&self, by: Login, key: &str) -> Result<Option<User>, StoreError> {
        let sql = format!(r#"SELECT {USER_COLUMNS} FROM "user" u WHERE u."{}" = $1"#, by.column());
        let row = sqlx::query(&sql).bind(key).fetch_optional(&self.pool).await.map_err(map_err)?;
        row.map(|r| user_at(&r, 0)).transpose().map_err(map_err)
    }

    async fn apply(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        match ops.as_slice() {
            [] => Ok(()),
            // A single statement is atomic on its own: no BEGIN/COMMIT round trips.
            [op] => {
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                apply_one(&mut conn, op).await
            }
            ops => {
                if let Some(sql) = combined_inserts(ops) {
                    let q = ops.iter().fold(sqlx::query(&sql), bind_insert);
                    return q.execute(&self.pool).await.map(drop).map_err(map_err);
                }
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                for op in ops {
                    apply_one(&mut tx, op).await?;
                }
                tx.commit().await.map_err(map_err)
            }
        }
    }

    async fn rate_limit(&self, key: &str, now_ms: i64, window_ms: i64, max: u64) -> Result<Option<i64>, StoreError> {
        // One statement, atomic across processes: the row is inserted or updated
        // only when the request is allowed, so no row back means "denied".
        let sql = r#"INSERT INTO "rateLimit" ("id", "key", "count", "lastRequest") VALUES ($1, $2, 1, $3)
            ON CONFLICT ("key") DO UPDATE SET
              "count" = CASE WHEN $3 - "rateLimit"."lastRequest" >= $4 THEN 1 ELSE "rateLimit"."count" + 1 END,
              "lastRequest" = $3
            WHERE $3 - "rateLimit"."lastRequest" >= $4 OR "rateLimit"."count" < $5
            RETURNING 1"#;
        let allowed = sqlx::query(sql)
            .bind(crate::crypto::new_id())
            .bind(key)
            .bind(now_ms)
            .bind(window_ms)
            .bind(i32::try_from(max).unwrap_or(i32::MAX))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        if allowed.is_some() {
            return Ok(None);
        }
        sqlx::query_scalar(r#"SELECT "lastRequest" FROM "rateLimit" WHERE "key" = $1"#)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn prune_rate_limits(&self, before_ms: i64) -> Result<(), StoreError> {
        sqlx::query(r#"DELETE FROM "rateLimit" WHERE "lastRequest" < $1"#)
            .bind(before_ms)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(map_err)
    }

    async fn stale_guests(&self, cutoff_ms: i64, after: Option<String>, limit: usize) -> Result<Vec<User>, StoreError> {
        let sql =
            format!(r#"SELECT {USER_COLUMNS} FROM "user" u WHERE u."id" > $1 AND {STALE} ORDER BY u."id" LIMIT $3"#);
        let rows = sqlx::query(&sql)
            .bind(after.unwrap_or_default())
            .bind(ts(cutoff_ms))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| user_at(r, 0)).collect::<Result<_, _>>().map_err(map_err)
    }

    async fn delete_stale_guests(&self, ids: Vec<String>, cutoff_ms: i64) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Guests locked by a conversion in flight are skipped: they are not stale.
        let sql = format!(
            r#"SELECT u."id" FROM "user" u WHERE u."id" = ANY($1) AND {STALE} ORDER BY u."id" FOR UPDATE SKIP LOCKED"#
        );
        let still: Vec<String> =
            sqlx::query_scalar(&sql).bind(&ids).bind(ts(cutoff_ms)).fetch_all(&mut *tx).await.map_err(map_err)?;
        // One statement, explicit rather than left to ON DELETE CASCADE (as DeleteUser).
        sqlx::query(
            r#"WITH s AS (DELETE FROM "session" WHERE "userId" = ANY($1)), a AS (DELETE FROM "account" WHERE "userId" = ANY($1)),
                    p AS (DELETE FROM "passkey" WHERE "userId" = ANY($1))
               DELETE FROM "user" WHERE "id" = ANY($1)"#,
        )
        .bind(&still)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(still)
    }

    async fn list_users(&self, anonymous: Option<bool>, limit: u64, offset: u64) -> Result<Vec<User>, StoreError> {
        let sql = format!(
            r#"SELECT {USER_COLUMNS} FROM "user" u {} ORDER BY u."createdAt" DESC, u."id" DESC LIMIT $1 OFFSET $2"#,
            anonymous_filter(anonymous)
        );
        let rows = sqlx::query(&sql)
            .bind(limit.min(i64::MAX as u64) as i64)
            .bind(offset.min(i64::MAX as u64) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| user_at(r, 0)).collect::<Result<_, _>>().map_err(map_err)
    }

    async fn count_users(&self, anonymous: Option<bool>) -> Result<u64, StoreError> {
        let sql = format!(r#"SELECT count(*) FROM "user" u {}"#, anonymous_filter(anonymous));
        let n: i64 = sqlx::query_scalar(&sql).fetch_one(&self.pool).await.map_err(map_err)?;
        Ok(n as u64)
    }

    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError> {
        Ok(Box::new(PgTx { tx: self.pool.begin().await.map_err(map_err)? }))
    }

    fn single_writer(&self) -> bool {
        false
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn read_sql(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<SqlRow>, StoreError> {
        let rows = bind_all(sqlx::query(sql), &params).fetch_all(&self.pool).await.map_err(sql_err)?;
        sql_rows(&rows)
    }

    fn dialect(&self) -> &'static str {
        "postgres"
    }
}

/// App SQL's rows: column name and value, in select order.
fn sql_rows(rows: &[PgRow]) -> Result<Vec<SqlRow>, StoreError> {
    rows.iter()
        .map(|row| {
            (0..row.columns().len())
                .map(|i| Ok((row.columns()[i].name().to_owned(), decode(row, i)?)))
                .collect::<Result<SqlRow, sqlx::Error>>()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err)
}

struct PgTx {
    tx: sqlx::Transaction<'static, Postgres>,
}

fn sql_err(e: sqlx::Error) -> StoreError {
    match map_err(e) {
        StoreError::Backend(msg) => StoreError::Sql(msg),
        other => other,
    }
}

fn bind_all<'q>(mut q: Query<'q, Postgres, PgArguments>, params: &'q [SqlValue]) -> Query<'q, Postgres, PgArguments> {
    for p in params {
        q = match p {
            SqlValue::Null => q.bind(None::<String>),
            SqlValue::Bool(b) => q.bind(*b),
            SqlValue::Int(n) => q.bind(*n),
            SqlValue::Float(f) => q.bind(*f),
            SqlValue::Text(t) => q.bind(t.as_str()),
            SqlValue::Bytes(b) => q.bind(b.as_slice()),
        };
    }
    q
}

/// Decodes a column of any common type; others must be cast to text in the query.
fn decode(row: &PgRow, idx: usize) -> Result<SqlValue, sqlx::Error> {
    let kind = row.columns()[idx].type_info().name().to_owned();
    let v = match kind.as_str() {
        "BOOL" => row.try_get::<Option<bool>, _>(idx)?.map(SqlValue::Bool),
        "INT2" => row.try_get::<Option<i16>, _>(idx)?.map(|n| SqlValue::Int(n.into())),
        "INT4" => row.try_get::<Option<i32>, _>(idx)?.map(|n| SqlValue::Int(n.into())),
        "INT8" => row.try_get::<Option<i64>, _>(idx)?.map(SqlValue::Int),
        "FLOAT4" => row.try_get::<Option<f32>, _>(idx)?.map(|f| SqlValue::Float(f.into())),
        "FLOAT8" => row.try_get::<Option<f64>, _>(idx)?.map(SqlValue::Float),
        "TIMESTAMPTZ" => row
            .try_get::<Option<DateTime<Utc>>, _>(idx)?
            .map(|t| SqlValue::Text(crate::time::iso(t.timestamp_millis()))),
        "BYTEA" => row.try_get::<Option<Vec<u8>>, _>(idx)?.map(SqlValue::Bytes),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => row.try_get::<Option<String>, _>(idx)?.map(SqlValue::Text),
        other => {
            return Err(sqlx::Error::Decode(
                format!("column {:?} has type {other}; cast it to text in the query", row.columns()[idx].name()).into(),
            ))
        }
    };
    Ok(v.unwrap_or(SqlValue::Null))
}

#[async_trait]
impl Tx for PgTx {
    async fn apply(&mut self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        for op in &ops {
            apply_one(&mut self.tx, op).await?;
        }
        Ok(())
    }

    async fn lock_guest(&mut self, guest: &GuestRef) -> Result<Option<User>, StoreError> {
        let row = match guest {
            GuestRef::Session(token) => {
                let sql = format!(
                    r#"SELECT {USER_COLUMNS} FROM "session" s JOIN "user" u ON u."id" = s."userId"
                       WHERE s."token" = $1 AND u."isAnonymous" = true FOR UPDATE OF s, u"#
                );
                sqlx::query(&sql).bind(token).fetch_optional(&mut *self.tx).await
            }
            GuestRef::Stale { id, cutoff_ms } => {
                let sql = format!(r#"SELECT {USER_COLUMNS} FROM "user" u WHERE u."id" = $1 AND {STALE} FOR UPDATE"#);
                sqlx::query(&sql).bind(id).bind(ts(*cutoff_ms)).fetch_optional(&mut *self.tx).await
            }
        }
        .map_err(map_err)?;
        row.map(|r| user_at(&r, 0)).transpose().map_err(map_err)
    }

    async fn execute(&mut self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        let done = bind_all(sqlx::query(sql), &params).execute(&mut *self.tx).await.map_err(sql_err)?;
        Ok(done.rows_affected())
    }

    async fn fetch_all(&mut self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<SqlRow>, StoreError> {
        let rows = bind_all(sqlx::query(sql), &params).fetch_all(&mut *self.tx).await.map_err(sql_err)?;
        sql_rows(&rows)
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn inserts_combine_into_one_statement() {
        use crate::model::{Session, User};
        use crate::storage::WriteOp;
        let user = User::new("u".into(), "n".into(), "e@x.io".into(), true, 0);
        let session = Session {
            id: "s".into(),
            token: "t".into(),
            user_id: "u".into(),
            expires_at: 0,
            created_at: 0,
            updated_at: 0,
            ip_address: None,
            user_agent: None,
        };
        let sql = super::combined_inserts(&[WriteOp::InsertUser(user), WriteOp::InsertSession(session)]).unwrap();
        assert!(sql.starts_with(r#"WITH w0 AS (INSERT INTO "user""#), "{sql}");
        assert!(sql.contains("VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10))"), "{sql}");
        assert!(sql.ends_with("VALUES ($11,$12,$13,$14,$15,$16,$17,$18)"), "{sql}");
        assert!(super::combined_inserts(&[WriteOp::DeleteUser("u".into())]).is_none());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(super::redact("postgres://bob:hunter2@db:5432/app"), "postgres://bob@db:5432/app");
        assert_eq!(super::redact("postgres://db/app"), "postgres://db/app");
    }
}
