//! PostgreSQL through sqlx: a connection pool, statements prepared once per
//! connection (sqlx caches them), one transaction per write-set, and
//! migrations serialized across processes by an advisory lock.

mod ops;
mod values;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};
use sqlx::Row;

use super::schema::{self, USER_COLUMNS};
use super::sql::{self, account_at, passkey_at, session_at, user_at, verification_at};
use super::{
    constraint_from, GuestRef, GuestStats, Login, PasskeyBy, SqlRow, SqlValue, Store, StoreError, Tx, WriteOp,
};
use crate::config::ConfigError;
use crate::model::{Account, Passkey, Session, User, Verification};
use ops::{apply_one, bind_params, combined_inserts, STALE};
use values::{bind_all, sql_err, sql_rows};

/// Any constant shared by every kernia process: serializes schema migrations.
const MIGRATION_LOCK: i64 = 0x6b65_726e_6961;

pub struct PgStore {
    pool: PgPool,
}

pub(super) fn map_err(e: sqlx::Error) -> StoreError {
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

pub(super) fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
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
            "guestFunnel",
            "guestFunnel_createdAt_idx",
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

#[async_trait]
impl Store for PgStore {
    async fn session_with_user(&self, token: &str) -> Result<Option<(Session, User)>, StoreError> {
        let row = sqlx::query(sql::SESSION_WITH_USER.postgres())
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|r| Ok((session_at(&r)?, user_at(&r, 8)?))).transpose().map_err(map_err)
    }

    async fn user_with_password(&self, by: Login, key: &str) -> Result<Option<(User, Option<String>)>, StoreError> {
        let row = sqlx::query(sql::user_with_password(by).postgres())
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|r| Ok((user_at(&r, 0)?, r.try_get(10)?))).transpose().map_err(map_err)
    }

    async fn verification(&self, identifier: &str) -> Result<Option<Verification>, StoreError> {
        let row = sqlx::query(sql::VERIFICATION.postgres())
            .bind(identifier)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(verification_at).transpose().map_err(map_err)
    }

    async fn passkeys(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
        let rows =
            sqlx::query(sql::PASSKEYS_OF_USER.postgres()).bind(user_id).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(passkey_at).collect::<Result<_, _>>().map_err(map_err)
    }

    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Session>, StoreError> {
        let rows =
            sqlx::query(sql::SESSIONS_OF_USER.postgres()).bind(user_id).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(session_at).collect::<Result<_, _>>().map_err(map_err)
    }

    async fn accounts_of_user(&self, user_id: &str) -> Result<Vec<Account>, StoreError> {
        let rows =
            sqlx::query(sql::ACCOUNTS_OF_USER.postgres()).bind(user_id).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(account_at).collect::<Result<_, _>>().map_err(map_err)
    }

    async fn passkey(&self, by: PasskeyBy, key: &str) -> Result<Option<Passkey>, StoreError> {
        let row =
            sqlx::query(sql::passkey(by).postgres()).bind(key).fetch_optional(&self.pool).await.map_err(map_err)?;
        row.as_ref().map(passkey_at).transpose().map_err(map_err)
    }

    async fn user(&self, by: Login, key: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(sql::user(by).postgres()).bind(key).fetch_optional(&self.pool).await.map_err(map_err)?;
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
                if let Some((text, params)) = combined_inserts(ops) {
                    let q = bind_params(sqlx::query(&text), &params);
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
        sqlx::query_scalar(sql::RATE_LIMIT_LAST_REQUEST.postgres())
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn prune_rate_limits(&self, before_ms: i64) -> Result<(), StoreError> {
        sqlx::query(sql::PRUNE_RATE_LIMITS.postgres())
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

    async fn delete_stale_guests(
        &self,
        ids: Vec<String>,
        cutoff_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
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
                    p AS (DELETE FROM "passkey" WHERE "userId" = ANY($1)),
                    f AS (INSERT INTO "guestFunnel" ("id", "createdAt", "endedAt", "outcome", "durationMs")
                          SELECT "id", c, $2, 'cleaned_up', $2 - c
                          FROM (SELECT "id", (extract(epoch FROM "createdAt") * 1000)::bigint AS c
                                FROM "user" WHERE "id" = ANY($1)) g
                          ON CONFLICT DO NOTHING)
               DELETE FROM "user" WHERE "id" = ANY($1)"#,
        )
        .bind(&still)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(still)
    }

    async fn list_users(&self, anonymous: Option<bool>, limit: u64, offset: u64) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(sql::list_users(anonymous).postgres())
            .bind(limit.min(i64::MAX as u64) as i64)
            .bind(offset.min(i64::MAX as u64) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| user_at(r, 0)).collect::<Result<_, _>>().map_err(map_err)
    }

    async fn count_users(&self, anonymous: Option<bool>) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar(sql::count_users(anonymous).postgres()).fetch_one(&self.pool).await.map_err(map_err)?;
        Ok(n as u64)
    }

    async fn guest_stats(&self, since_ms: Option<i64>, now_ms: i64) -> Result<GuestStats, StoreError> {
        let since = since_ms.unwrap_or(0);
        let live: i64 = sqlx::query_scalar(sql::GUESTS_LIVE.postgres())
            .bind(ts(since))
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        let (a, b, c, d, e): (i64, i64, i64, i64, i64) = sqlx::query_as(sql::GUEST_FUNNEL_COUNTS.postgres())
            .bind(since)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        let by_method: Vec<(String, i64)> = sqlx::query_as(sql::GUEST_FUNNEL_METHODS.postgres())
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let active: i64 = sqlx::query_scalar(sql::GUESTS_ACTIVE.postgres())
            .bind(ts(now_ms))
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        let (limit, offset) = GuestStats::median_window(b + c);
        let middle: Vec<i64> = sqlx::query_scalar(sql::GUEST_FUNNEL_MEDIAN.postgres())
            .bind(since)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(GuestStats::from_parts([a, b, c, d, e], live, by_method, active, &middle))
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

struct PgTx {
    tx: sqlx::Transaction<'static, Postgres>,
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
                let sql = format!("{} FOR UPDATE OF s, u", sql::GUEST_BY_SESSION.postgres());
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
    fn passwords_are_redacted() {
        assert_eq!(super::redact("postgres://bob:hunter2@db:5432/app"), "postgres://bob@db:5432/app");
        assert_eq!(super::redact("postgres://db/app"), "postgres://db/app");
    }
}
