//! SQLite through rusqlite. rusqlite is synchronous and fast (spec'd at 5–7× sqlx's
//! SQLite driver on this kind of machine), so it runs on threads of its own:
//! one writer thread that commits queued write-sets together (group commit, each
//! request under its own savepoint so one failure undoes only that request), and
//! reader threads for lookups, which WAL lets run beside the writer.

mod ops;
mod values;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;
use std::thread::JoinHandle;

use async_trait::async_trait;
use crossbeam_channel::{never, unbounded};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use super::schema::{self, USER_COLUMNS};
use super::sql::{self, account_at, passkey_at, session_at, user_at, verification_at};
use super::{constraint_from, GuestStats, Login, PasskeyBy, SqlRow, SqlValue, Store, StoreError, Tx, WriteOp};
use crate::config::ConfigError;
use crate::model::{Account, Passkey, Session, User, Verification};
use crate::time::iso;
use ops::{delete_stale, STALE};
use values::{fetch_all, sql_err};
use writer::{reader_loop, spawn, writer_loop, Channels, Job, ReadJob, SqliteTx};

pub struct SqliteStore {
    channels: Mutex<Option<Channels>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Connections for lookups on the caller's own thread (a file database only).
    inline: Option<InlineReaders>,
}

/// Reader connections lent to whichever thread asks, for point lookups that take a few
/// microseconds: a tokio worker or the app's event loop reads on the spot instead of
/// waking a reader thread and waiting to be woken in turn. Opened on first need, so
/// there are never more than the threads that read at once; closed with the store.
struct InlineReaders {
    path: String,
    idle: Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

impl InlineReaders {
    fn new(path: String) -> Self {
        InlineReaders { path, idle: Mutex::new(Vec::new()), closed: AtomicBool::new(false) }
    }

    /// `f` on an idle connection (or a new one); `None` once the store is closed, or
    /// when no connection can be opened (the caller takes the usual way then).
    fn with<T>(&self, f: impl FnOnce(&Connection) -> T) -> Option<T> {
        if self.closed.load(Relaxed) {
            return None;
        }
        let idle = self.idle.lock().expect("inline readers lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_connection(Some(&self.path)).ok()?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock().expect("inline readers lock");
        if !self.closed.load(Relaxed) {
            idle.push(conn);
        }
        Some(out)
    }

    fn close(&self) {
        let mut idle = self.idle.lock().expect("inline readers lock");
        self.closed.store(true, Relaxed);
        idle.clear();
    }
}

pub(super) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(super) fn closed() -> StoreError {
    StoreError::Backend("the database is closed".into())
}

pub(super) fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match &e {
        rusqlite::Error::SqliteFailure(code, Some(msg))
            if code.code == ConstraintViolation && msg.contains("UNIQUE") =>
        {
            StoreError::Conflict(constraint_from(msg))
        }
        // A full disk, an I/O failure, a file that cannot be opened or written, or
        // a lock held past the busy timeout: the request may succeed later.
        rusqlite::Error::SqliteFailure(code, _)
            if matches!(
                code.code,
                DiskFull | SystemIoFailure | CannotOpen | ReadOnly | DatabaseBusy | DatabaseLocked | OutOfMemory
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => backend(e),
    }
}

pub(super) fn open_connection(path: Option<&str>) -> rusqlite::Result<Connection> {
    let conn = match path {
        Some(p) => Connection::open_with_flags(
            p,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?,
        None => Connection::open_in_memory()?,
    };
    // WAL lets readers run beside the writer; NORMAL sync in WAL survives an
    // application crash, stays consistent through a power loss, and costs no fsync
    // per commit: fsyncs happen at checkpoints, which SQLite runs inside the commit
    // that crosses 1000 WAL pages. Those fsyncs set the p99 of writes under load
    // (measured, 16 connections of guest sign-ins: 11-15 ms, and 5 ms with no
    // fsync at all). Measured alternatives were worse or unsafe: 4000 pages,
    // p99 30 ms; checkpoints from a thread beside the writer, 5 ms but they never
    // complete under steady load, so the WAL grew by gigabytes (and with the writer
    // finishing them past 16 MiB, 15-22 ms); the writer checkpointing every 20 ms, 30 ms.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8000;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        conn.execute_batch(schema::SQLITE_TABLES)?;
        for (table, column, sqlite_type, _) in schema::ADDED_COLUMNS {
            let exists: bool = conn
                .prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"))?
                .exists([column])?;
            if !exists {
                conn.execute_batch(&format!(r#"ALTER TABLE "{table}" ADD COLUMN "{column}" {sqlite_type}"#))?;
            }
        }
        conn.execute_batch(schema::SQLITE_ADDED_INDEXES)
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

impl SqliteStore {
    pub async fn open(path: Option<String>, pool_size: usize) -> Result<SqliteStore, ConfigError> {
        tokio::task::spawn_blocking(move || Self::open_blocking(path, pool_size))
            .await
            .map_err(|e| ConfigError::Database(e.to_string()))?
    }

    fn open_blocking(path: Option<String>, pool_size: usize) -> Result<SqliteStore, ConfigError> {
        let describe = |e: rusqlite::Error| {
            let target = path.as_deref().unwrap_or(":memory:");
            ConfigError::Database(format!("cannot open SQLite database {target:?}: {e}"))
        };
        if path.is_some() {
            // Before the first file is opened: the app's own SQLite must not be able to
            // drop the engine's locks on a file they share.
            super::sqlite_locks::install();
        }
        let writer_conn = open_connection(path.as_deref()).map_err(describe)?;
        migrate(&writer_conn).map_err(describe)?;

        let mut threads = Vec::new();
        let (reads, reads_rx) = unbounded::<ReadJob>();
        let writer_reads = match &path {
            None => reads_rx,
            Some(p) => {
                let count = if pool_size == 0 { 2 } else { pool_size };
                for i in 0..count {
                    let conn = open_connection(Some(p)).map_err(describe)?;
                    let rx = reads_rx.clone();
                    threads.push(spawn(format!("kernia-sqlite-r{i}"), move || reader_loop(conn, rx)));
                }
                never()
            }
        };
        let (writer, writer_rx) = unbounded::<Job>();
        threads.push(spawn("kernia-sqlite-w".into(), move || writer_loop(writer_conn, writer_rx, writer_reads)));
        Ok(SqliteStore {
            channels: Mutex::new(Some(Channels { writer, reads })),
            threads: Mutex::new(threads),
            inline: path.map(InlineReaders::new),
        })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let guard = self.channels.lock().expect("channel lock");
        guard.as_ref().ok_or_else(closed)?.writer.send(job).map_err(|_| closed())
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        {
            let guard = self.channels.lock().expect("channel lock");
            guard.as_ref().ok_or_else(closed)?.reads.send(job).map_err(|_| closed())?;
        }
        rx.await.map_err(|_| closed())?
    }
}

fn session_with_user_at(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Session, User)> {
    Ok((session_at(r)?, user_at(r, 8)?))
}

impl SqliteStore {
    /// The row `sql` finds by one key, on a reader thread.
    async fn lookup<T: Send + 'static>(
        &self,
        sql: &'static str,
        key: &str,
        row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(sql).and_then(|mut st| st.query_row([&key], row).optional()).map_err(map_err)
        })
        .await
    }

    /// Runs `f` on the writer's connection, between group commits.
    async fn write_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Exec(Box::new(move |conn| {
            let _ = tx.send(f(conn).map_err(map_err));
        })))?;
        rx.await.map_err(|_| closed())?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn session_with_user(&self, token: &str) -> Result<Option<(Session, User)>, StoreError> {
        self.lookup(sql::SESSION_WITH_USER.sqlite(), token, session_with_user_at).await
    }

    fn session_with_user_now(&self, token: &str) -> Option<Result<Option<(Session, User)>, StoreError>> {
        self.inline.as_ref()?.with(|conn| {
            conn.prepare_cached(sql::SESSION_WITH_USER.sqlite())
                .and_then(|mut st| st.query_row([token], session_with_user_at).optional())
                .map_err(map_err)
        })
    }

    async fn user_with_password(&self, by: Login, key: &str) -> Result<Option<(User, Option<String>)>, StoreError> {
        self.lookup(sql::user_with_password(by).sqlite(), key, |r| Ok((user_at(r, 0)?, r.get(10)?))).await
    }

    async fn verification(&self, identifier: &str) -> Result<Option<Verification>, StoreError> {
        self.lookup(sql::VERIFICATION.sqlite(), identifier, |r| verification_at(r)).await
    }

    async fn user(&self, by: Login, key: &str) -> Result<Option<User>, StoreError> {
        self.lookup(sql::user(by).sqlite(), key, |r| user_at(r, 0)).await
    }

    async fn passkeys(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(sql::PASSKEYS_OF_USER.sqlite())
                .and_then(|mut st| st.query_map([&user_id], |r| passkey_at(r))?.collect())
                .map_err(map_err)
        })
        .await
    }

    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Session>, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(sql::SESSIONS_OF_USER.sqlite())
                .and_then(|mut st| st.query_map([&user_id], |r| session_at(r))?.collect())
                .map_err(map_err)
        })
        .await
    }

    async fn accounts_of_user(&self, user_id: &str) -> Result<Vec<Account>, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(sql::ACCOUNTS_OF_USER.sqlite())
                .and_then(|mut st| st.query_map([&user_id], |r| account_at(r))?.collect())
                .map_err(map_err)
        })
        .await
    }

    async fn passkey(&self, by: PasskeyBy, key: &str) -> Result<Option<Passkey>, StoreError> {
        self.lookup(sql::passkey(by).sqlite(), key, |r| passkey_at(r)).await
    }

    async fn apply(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        self.send(Job::Write { ops, reply })?;
        rx.await.map_err(|_| closed())?
    }

    async fn rate_limit(&self, key: &str, now_ms: i64, window_ms: i64, max: u64) -> Result<Option<i64>, StoreError> {
        let key = key.to_owned();
        self.write_with(move |conn| {
            // One statement, atomic on its own: the row is inserted or updated only
            // when the request is allowed, so no row back means "denied".
            let sql = r#"INSERT INTO "rateLimit" ("id", "key", "count", "lastRequest") VALUES (?1, ?2, 1, ?3)
                ON CONFLICT ("key") DO UPDATE SET
                  "count" = CASE WHEN ?3 - "lastRequest" >= ?4 THEN 1 ELSE "count" + 1 END, "lastRequest" = ?3
                WHERE ?3 - "lastRequest" >= ?4 OR "count" < ?5
                RETURNING 1"#;
            let allowed = conn
                .prepare_cached(sql)?
                .query_row(params![crate::crypto::new_id(), key, now_ms, window_ms, max as i64], |_| Ok(()))
                .optional()?;
            if allowed.is_some() {
                return Ok(None);
            }
            conn.prepare_cached(sql::RATE_LIMIT_LAST_REQUEST.sqlite())?.query_row([&key], |r| r.get(0)).optional()
        })
        .await
    }

    async fn prune_rate_limits(&self, before_ms: i64) -> Result<(), StoreError> {
        self.write_with(move |conn| {
            conn.prepare_cached(sql::PRUNE_RATE_LIMITS.sqlite())?.execute([before_ms]).map(drop)
        })
        .await
    }

    async fn stale_guests(&self, cutoff_ms: i64, after: Option<String>, limit: usize) -> Result<Vec<User>, StoreError> {
        self.read(move |conn| {
            let sql = format!(
                r#"SELECT {USER_COLUMNS} FROM "user" u WHERE u."id" > ?1 AND {STALE} ORDER BY u."id" LIMIT ?3"#
            );
            conn.prepare_cached(&sql)
                .and_then(|mut st| {
                    st.query_map(params![after.unwrap_or_default(), iso(cutoff_ms), limit as i64], |r| user_at(r, 0))?
                        .collect()
                })
                .map_err(map_err)
        })
        .await
    }

    async fn delete_stale_guests(
        &self,
        ids: Vec<String>,
        cutoff_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.write_with(move |conn| {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            match delete_stale(conn, &ids, cutoff_ms, now_ms)
                .and_then(|gone| conn.execute_batch("COMMIT").map(|()| gone))
            {
                Ok(gone) => Ok(gone),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e)
                }
            }
        })
        .await
    }

    async fn list_users(&self, anonymous: Option<bool>, limit: u64, offset: u64) -> Result<Vec<User>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(sql::list_users(anonymous).sqlite())
                .and_then(|mut st| st.query_map(params![limit as i64, offset as i64], |r| user_at(r, 0))?.collect())
                .map_err(map_err)
        })
        .await
    }

    async fn count_users(&self, anonymous: Option<bool>) -> Result<u64, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(sql::count_users(anonymous).sqlite())
                .and_then(|mut st| st.query_row([], |r| r.get::<_, i64>(0)))
                .map_err(map_err)
        })
        .await
        .map(|n| n as u64)
    }

    async fn guest_stats(&self, since_ms: Option<i64>, now_ms: i64) -> Result<GuestStats, StoreError> {
        let since = since_ms.unwrap_or(0);
        self.read(move |conn| {
            let stats = || -> rusqlite::Result<GuestStats> {
                let counts = conn
                    .prepare_cached(sql::GUEST_FUNNEL_COUNTS.sqlite())?
                    .query_row([since], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?]))?;
                let by_method = conn
                    .prepare_cached(sql::GUEST_FUNNEL_METHODS.sqlite())?
                    .query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<(String, i64)>>>()?;
                let active: i64 =
                    conn.prepare_cached(sql::GUESTS_ACTIVE.sqlite())?.query_row([iso(now_ms)], |r| r.get(0))?;
                let (limit, offset) = GuestStats::median_window(counts[1] + counts[2]);
                let middle = conn
                    .prepare_cached(sql::GUEST_FUNNEL_MEDIAN.sqlite())?
                    .query_map(params![since, limit, offset], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()?;
                let live: i64 =
                    conn.prepare_cached(sql::GUESTS_LIVE.sqlite())?.query_row([iso(since)], |r| r.get(0))?;
                Ok(GuestStats::from_parts(counts, live, by_method, active, &middle))
            };
            stats().map_err(map_err)
        })
        .await
    }

    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError> {
        let (begun, begun_rx) = oneshot::channel();
        let (cmds, cmds_rx) = unbounded();
        self.send(Job::Interactive { begun, cmds: cmds_rx })?;
        begun_rx.await.map_err(|_| closed())??;
        Ok(Box::new(SqliteTx { cmds }))
    }

    fn single_writer(&self) -> bool {
        true
    }

    async fn close(&self) {
        if let Some(inline) = &self.inline {
            inline.close();
        }
        // Dropping the senders lets each thread finish its queue and exit.
        drop(self.channels.lock().expect("channel lock").take());
        let threads: Vec<_> = std::mem::take(&mut *self.threads.lock().expect("thread lock"));
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }

    async fn read_sql(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<SqlRow>, StoreError> {
        let sql = sql.to_owned();
        self.read(move |conn| fetch_all(conn, &sql, &params).map_err(sql_err)).await
    }

    fn dialect(&self) -> &'static str {
        "sqlite"
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Ok(mut ch) = self.channels.lock() {
            ch.take();
        }
    }
}
