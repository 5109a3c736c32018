//! SQLite through rusqlite. rusqlite is synchronous and fast (spec'd at 5–7× sqlx's
//! SQLite driver on this kind of machine), so it runs on threads of its own:
//! one writer thread that commits queued write-sets together (group commit, each
//! request under its own savepoint so one failure undoes only that request), and
//! reader threads for lookups, which WAL lets run beside the writer.

use std::sync::Mutex;
use std::thread::JoinHandle;

use async_trait::async_trait;
use crossbeam_channel::{never, select, unbounded, Receiver, Sender};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use tokio::sync::oneshot;

use super::schema::{self, PASSKEY_COLUMNS, SESSION_COLUMNS, USER_COLUMNS};
use super::{constraint_from, GuestRef, Login, PasskeyBy, SqlRow, SqlValue, Store, StoreError, Tx, WriteOp};
use crate::config::ConfigError;
use crate::model::{Passkey, Session, User, Verification};
use crate::time::{iso, parse_iso};

/// Write-sets committed in one transaction at most.
const MAX_BATCH: usize = 128;

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

enum Job {
    Write {
        ops: Vec<WriteOp>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Work of its own on the writer's connection (it opens its own transaction, if any).
    Exec(Box<dyn FnOnce(&Connection) + Send>),
    /// Holds the writer for one transaction driven by [`TxCmd`]s until commit or drop.
    Interactive {
        begun: oneshot::Sender<Result<(), StoreError>>,
        cmds: Receiver<TxCmd>,
    },
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum TxCmd {
    Apply(Vec<WriteOp>, Reply<()>),
    LockGuest(GuestRef, Reply<Option<User>>),
    Execute(String, Vec<SqlValue>, Reply<u64>),
    FetchAll(String, Vec<SqlValue>, Reply<Vec<SqlRow>>),
    Commit(Reply<()>),
}

struct Channels {
    writer: Sender<Job>,
    /// Served by the reader threads; for in-memory databases, whose one
    /// connection does everything, by the writer thread.
    reads: Sender<ReadJob>,
}

pub struct SqliteStore {
    channels: Mutex<Option<Channels>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn closed() -> StoreError {
    StoreError::Backend("the database is closed".into())
}

fn map_err(e: rusqlite::Error) -> StoreError {
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

fn open_connection(path: Option<&str>) -> rusqlite::Result<Connection> {
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

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
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
        Ok(SqliteStore { channels: Mutex::new(Some(Channels { writer, reads })), threads: Mutex::new(threads) })
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

impl SqliteStore {
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

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new().name(name).spawn(f).expect("spawn SQLite thread")
}

fn reader_loop(conn: Connection, rx: Receiver<ReadJob>) {
    while let Ok(job) = rx.recv() {
        job(&conn);
    }
}

fn writer_loop(conn: Connection, rx: Receiver<Job>, mut reads: Receiver<ReadJob>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let first = select! {
            recv(rx) -> job => match job {
                Ok(job) => job,
                Err(_) => break,
            },
            recv(reads) -> read => {
                match read {
                    Ok(f) => f(&conn),
                    Err(_) => reads = never(),
                }
                continue;
            }
        };
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Write { ops, reply } => batch.push((ops, reply)),
                Job::Interactive { begun, cmds } => {
                    if !batch.is_empty() {
                        commit_batch(&conn, &mut batch);
                    }
                    run_interactive(&conn, begun, &cmds, &reads);
                }
                Job::Exec(f) => {
                    if !batch.is_empty() {
                        commit_batch(&conn, &mut batch);
                    }
                    f(&conn);
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            commit_batch(&conn, &mut batch);
        }
    }
    let _ = conn.execute_batch("PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);");
}

/// Serves one interactive transaction; reads of an in-memory database keep
/// being answered meanwhile, so its owner can still look things up.
fn run_interactive(conn: &Connection, begun: Reply<()>, cmds: &Receiver<TxCmd>, reads: &Receiver<ReadJob>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let _ = begun.send(Err(map_err(e)));
        return;
    }
    if begun.send(Ok(())).is_err() {
        let _ = conn.execute_batch("ROLLBACK");
        return;
    }
    loop {
        select! {
            recv(cmds) -> cmd => match cmd {
                Ok(TxCmd::Commit(reply)) => {
                    let r = conn.execute_batch("COMMIT").map_err(map_err);
                    if r.is_err() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    let _ = reply.send(r);
                    return;
                }
                Ok(cmd) => run_tx_cmd(conn, cmd),
                Err(_) => {
                    // The owner dropped the transaction: roll it back.
                    let _ = conn.execute_batch("ROLLBACK");
                    return;
                }
            },
            recv(reads) -> read => if let Ok(f) = read { f(conn) },
        }
    }
}

fn run_tx_cmd(conn: &Connection, cmd: TxCmd) {
    match cmd {
        TxCmd::Apply(ops, reply) => {
            let _ = reply.send(apply_in_savepoint(conn, &ops));
        }
        TxCmd::LockGuest(GuestRef::Session(token), reply) => {
            let sql = format!(
                r#"SELECT {USER_COLUMNS} FROM "session" s JOIN "user" u ON u."id" = s."userId"
                   WHERE s."token" = ?1 AND u."isAnonymous" = 1"#
            );
            let r = conn.prepare_cached(&sql).and_then(|mut st| st.query_row([&token], |r| user_at(r, 0)).optional());
            let _ = reply.send(r.map_err(map_err));
        }
        TxCmd::LockGuest(GuestRef::Stale { id, cutoff_ms }, reply) => {
            let sql = format!(r#"SELECT {USER_COLUMNS} FROM "user" u WHERE u."id" = ?1 AND {STALE}"#);
            let r = conn
                .prepare_cached(&sql)
                .and_then(|mut st| st.query_row(params![id, iso(cutoff_ms)], |r| user_at(r, 0)).optional());
            let _ = reply.send(r.map_err(map_err));
        }
        TxCmd::Execute(sql, params, reply) => {
            let r = conn.prepare_cached(&sql).and_then(|mut st| st.execute(rusqlite::params_from_iter(params.iter())));
            let _ = reply.send(r.map(|n| n as u64).map_err(sql_err));
        }
        TxCmd::FetchAll(sql, params, reply) => {
            let _ = reply.send(fetch_all(conn, &sql, &params).map_err(sql_err));
        }
        TxCmd::Commit(_) => unreachable!("handled by run_interactive"),
    }
}

fn sql_err(e: rusqlite::Error) -> StoreError {
    match map_err(e) {
        StoreError::Backend(msg) => StoreError::Sql(msg),
        other => other,
    }
}

fn fetch_all(conn: &Connection, sql: &str, params: &[SqlValue]) -> rusqlite::Result<Vec<SqlRow>> {
    let mut st = conn.prepare_cached(sql)?;
    let names: Vec<String> = st.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cols = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let v = match row.get_ref(i)? {
                ValueRef::Null => SqlValue::Null,
                ValueRef::Integer(n) => SqlValue::Int(n),
                ValueRef::Real(f) => SqlValue::Float(f),
                ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => SqlValue::Bytes(b.to_vec()),
            };
            cols.push((name.clone(), v));
        }
        out.push(cols);
    }
    Ok(out)
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlValue::Null => ToSqlOutput::Owned(Value::Null),
            SqlValue::Bool(b) => ToSqlOutput::Owned(Value::Integer(*b as i64)),
            SqlValue::Int(n) => ToSqlOutput::Owned(Value::Integer(*n)),
            SqlValue::Float(f) => ToSqlOutput::Owned(Value::Real(*f)),
            SqlValue::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            SqlValue::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// The client side of an interactive transaction on the writer thread.
struct SqliteTx {
    cmds: Sender<TxCmd>,
}

impl SqliteTx {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> TxCmd) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(make(tx)).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

#[async_trait]
impl Tx for SqliteTx {
    async fn apply(&mut self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.call(|r| TxCmd::Apply(ops, r)).await
    }

    async fn lock_guest(&mut self, guest: &GuestRef) -> Result<Option<User>, StoreError> {
        let guest = guest.clone();
        self.call(|r| TxCmd::LockGuest(guest, r)).await
    }

    async fn execute(&mut self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        let sql = sql.to_owned();
        self.call(|r| TxCmd::Execute(sql, params, r)).await
    }

    async fn fetch_all(&mut self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<SqlRow>, StoreError> {
        let sql = sql.to_owned();
        self.call(|r| TxCmd::FetchAll(sql, params, r)).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.call(TxCmd::Commit).await
    }
}

type PendingWrite = (Vec<WriteOp>, oneshot::Sender<Result<(), StoreError>>);

fn commit_batch(conn: &Connection, batch: &mut Vec<PendingWrite>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = map_err(e);
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(Err(err.clone()));
        }
        return;
    }
    // A write-set alone in its batch needs no savepoint: on failure the whole
    // transaction is rolled back instead of committed.
    if let [(ops, _)] = batch.as_slice() {
        if let Err(e) = apply_ops(conn, ops) {
            let _ = conn.execute_batch("ROLLBACK");
            if let Some((_, reply)) = batch.pop() {
                let _ = reply.send(Err(e));
            }
            return;
        }
    }
    let mut results = Vec::with_capacity(batch.len());
    if batch.len() == 1 {
        results.push(Ok(()));
    } else {
        for (ops, _) in batch.iter() {
            results.push(apply_in_savepoint(conn, ops));
        }
    }
    let commit = conn.execute_batch("COMMIT").map_err(map_err);
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    // Replies go out only after the commit, so no client sees a write that could still be lost.
    for ((_, reply), r) in batch.drain(..).zip(results) {
        let _ = reply.send(match &commit {
            Ok(()) => r,
            Err(e) => Err(e.clone()),
        });
    }
}

fn apply_in_savepoint(conn: &Connection, ops: &[WriteOp]) -> Result<(), StoreError> {
    conn.execute_batch("SAVEPOINT w").map_err(map_err)?;
    let r = apply_ops(conn, ops);
    if r.is_err() {
        conn.execute_batch("ROLLBACK TO w").map_err(map_err)?;
    }
    conn.execute_batch("RELEASE w").map_err(map_err)?;
    r
}

fn apply_ops(conn: &Connection, ops: &[WriteOp]) -> Result<(), StoreError> {
    for op in ops {
        let changed = apply_op(conn, op).map_err(map_err)?;
        if let Some(conflict) = op.conflict_if_unchanged().filter(|_| changed == 0) {
            return Err(StoreError::Conflict(conflict));
        }
    }
    Ok(())
}

/// A guest inactive since `?2` (an ISO date): neither its row nor any of its sessions updated since.
const STALE: &str = r#"u."isAnonymous" = 1 AND u."updatedAt" < ?2
    AND NOT EXISTS (SELECT 1 FROM "session" s WHERE s."userId" = u."id" AND s."updatedAt" >= ?2)"#;

/// `ids` as a JSON array, for `IN (SELECT value FROM json_each(?))`.
fn json_ids(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

fn delete_stale(conn: &Connection, ids: &[String], cutoff_ms: i64) -> rusqlite::Result<Vec<String>> {
    let sql = format!(r#"SELECT u."id" FROM "user" u WHERE u."id" IN (SELECT value FROM json_each(?1)) AND {STALE}"#);
    let still: Vec<String> = conn
        .prepare_cached(&sql)?
        .query_map(params![json_ids(ids), iso(cutoff_ms)], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let json = json_ids(&still);
    for table in ["session", "account", "passkey"] {
        let sql = format!(r#"DELETE FROM "{table}" WHERE "userId" IN (SELECT value FROM json_each(?1))"#);
        conn.prepare_cached(&sql)?.execute([&json])?;
    }
    conn.prepare_cached(r#"DELETE FROM "user" WHERE "id" IN (SELECT value FROM json_each(?1))"#)?.execute([&json])?;
    Ok(still)
}

/// A user filter on `isAnonymous`, as SQL.
fn anonymous_filter(anonymous: Option<bool>) -> &'static str {
    match anonymous {
        None => "",
        Some(true) => r#"WHERE u."isAnonymous" = 1"#,
        Some(false) => r#"WHERE COALESCE(u."isAnonymous", 0) = 0"#,
    }
}

/// Runs one op; returns the rows its last statement changed.
fn apply_op(conn: &Connection, op: &WriteOp) -> rusqlite::Result<usize> {
    Ok(match op {
        WriteOp::InsertUser(u) => {
            conn.prepare_cached(
                r#"INSERT INTO "user" ("id","name","email","emailVerified","image","createdAt","updatedAt","isAnonymous","username","displayUsername")
                   VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"#,
            )?
            .execute(params![
                u.id, u.name, u.email, u.email_verified, u.image, iso(u.created_at), iso(u.updated_at),
                u.is_anonymous, u.username, u.display_username
            ])?
        }
        WriteOp::InsertAccount(a) => {
            conn.prepare_cached(
                r#"INSERT INTO "account" ("id","accountId","providerId","userId","password","createdAt","updatedAt")
                   VALUES (?1,?2,?3,?4,?5,?6,?7)"#,
            )?
            .execute(params![
                a.id,
                a.account_id,
                a.provider_id,
                a.user_id,
                a.password,
                iso(a.created_at),
                iso(a.updated_at)
            ])?
        }
        WriteOp::InsertSession(s) => {
            conn.prepare_cached(
                r#"INSERT INTO "session" ("id","token","userId","expiresAt","createdAt","updatedAt","ipAddress","userAgent")
                   VALUES (?1,?2,?3,?4,?5,?6,?7,?8)"#,
            )?
            .execute(params![
                s.id, s.token, s.user_id, iso(s.expires_at), iso(s.created_at), iso(s.updated_at), s.ip_address, s.user_agent
            ])?
        }
        WriteOp::DeleteSessionByToken(token) => {
            conn.prepare_cached(r#"DELETE FROM "session" WHERE "token" = ?1"#)?.execute([token])?
        }
        WriteOp::RefreshSession { id, expires_at, updated_at } => {
            conn.prepare_cached(r#"UPDATE "session" SET "expiresAt" = ?1, "updatedAt" = ?2 WHERE "id" = ?3"#)?
                .execute(params![iso(*expires_at), iso(*updated_at), id])?
        }
        WriteOp::DeleteUser(id) => {
            // Explicit, not left to ON DELETE CASCADE: tables created elsewhere may lack it.
            conn.prepare_cached(r#"DELETE FROM "session" WHERE "userId" = ?1"#)?.execute([id])?;
            conn.prepare_cached(r#"DELETE FROM "account" WHERE "userId" = ?1"#)?.execute([id])?;
            conn.prepare_cached(r#"DELETE FROM "passkey" WHERE "userId" = ?1"#)?.execute([id])?;
            conn.prepare_cached(r#"DELETE FROM "user" WHERE "id" = ?1"#)?.execute([id])?
        }
        WriteOp::RevokeSessionsAndAccounts(id) => {
            conn.prepare_cached(r#"DELETE FROM "session" WHERE "userId" = ?1"#)?.execute([id])?;
            conn.prepare_cached(r#"DELETE FROM "account" WHERE "userId" = ?1"#)?.execute([id])?
        }
        WriteOp::MarkEmailVerified { user_id, updated_at } => {
            conn.prepare_cached(r#"UPDATE "user" SET "emailVerified" = 1, "updatedAt" = ?1 WHERE "id" = ?2"#)?
                .execute(params![iso(*updated_at), user_id])?
        }
        WriteOp::InsertVerification(v) => {
            conn.prepare_cached(
                r#"INSERT INTO "verification" ("id","identifier","value","expiresAt","createdAt","updatedAt")
                   VALUES (?1,?2,?3,?4,?5,?6)"#,
            )?
            .execute(params![
                v.id,
                v.identifier,
                v.value,
                iso(v.expires_at),
                iso(v.created_at),
                iso(v.updated_at)
            ])?
        }
        WriteOp::DeleteVerification(identifier) | WriteOp::ConsumeVerification(identifier) => {
            conn.prepare_cached(r#"DELETE FROM "verification" WHERE "identifier" = ?1"#)?.execute([identifier])?
        }
        WriteOp::InsertPasskey(p) => {
            conn.prepare_cached(&format!(
                r#"INSERT INTO "passkey" ({PASSKEY_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)"#
            ))?
            .execute(params![
                p.id,
                p.name,
                p.public_key,
                p.user_id,
                p.credential_id,
                p.counter,
                p.device_type,
                p.backed_up,
                p.transports,
                iso(p.created_at),
                p.aaguid
            ])?
        }
        WriteOp::UpdatePasskeyCounter { id, counter } => {
            conn.prepare_cached(r#"UPDATE "passkey" SET "counter" = ?1 WHERE "id" = ?2"#)?
                .execute(params![counter, id])?
        }
        WriteOp::RenamePasskey { id, name } => {
            conn.prepare_cached(r#"UPDATE "passkey" SET "name" = ?1 WHERE "id" = ?2"#)?.execute(params![name, id])?
        }
        WriteOp::DeletePasskey(id) => {
            conn.prepare_cached(r#"DELETE FROM "passkey" WHERE "id" = ?1"#)?.execute([id])?
        }
        WriteOp::UpgradeAnonymous { user_id, updated_at, profile: p } => {
            conn.prepare_cached(
                r#"UPDATE "user" SET "isAnonymous" = 0, "emailVerified" = 0, "email" = COALESCE(?1, "email"),
                     "name" = COALESCE(?2, "name"), "username" = COALESCE(?3, "username"),
                     "displayUsername" = COALESCE(?4, "displayUsername"), "updatedAt" = ?5
                   WHERE "id" = ?6 AND "isAnonymous" = 1"#,
            )?
            .execute(params![p.email, p.name, p.username, p.display_username, iso(*updated_at), user_id])?
        }
        WriteOp::RevokeOtherSessions { user_id, keep_id } => {
            conn.prepare_cached(r#"DELETE FROM "session" WHERE "userId" = ?1 AND "id" <> ?2"#)?
                .execute(params![user_id, keep_id])?
        }
    })
}

fn passkey_at(r: &Row) -> rusqlite::Result<Passkey> {
    Ok(Passkey {
        id: r.get(0)?,
        name: r.get(1)?,
        public_key: r.get(2)?,
        user_id: r.get(3)?,
        credential_id: r.get(4)?,
        counter: r.get(5)?,
        device_type: r.get(6)?,
        backed_up: r.get(7)?,
        transports: r.get(8)?,
        created_at: date_at(r, 9)?,
        aaguid: r.get(10)?,
    })
}

/// Dates are ISO text (Better Auth's SQLite format); epoch numbers are tolerated.
fn date_at(row: &Row, idx: usize) -> rusqlite::Result<i64> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Text(t) => parse_iso(std::str::from_utf8(t).unwrap_or("")).unwrap_or(0),
        ValueRef::Integer(n) if n < 100_000_000_000 => n * 1000,
        ValueRef::Integer(n) => n,
        ValueRef::Real(f) => f as i64,
        _ => 0,
    })
}

fn bool_at(row: &Row, idx: usize) -> rusqlite::Result<bool> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Integer(n) => n != 0,
        ValueRef::Text(t) => t == b"true" || t == b"1",
        _ => false,
    })
}

fn user_at(row: &Row, o: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(o)?,
        name: row.get(o + 1)?,
        email: row.get(o + 2)?,
        email_verified: bool_at(row, o + 3)?,
        image: row.get(o + 4)?,
        created_at: date_at(row, o + 5)?,
        updated_at: date_at(row, o + 6)?,
        is_anonymous: bool_at(row, o + 7)?,
        username: row.get(o + 8)?,
        display_username: row.get(o + 9)?,
    })
}

fn session_at(row: &Row) -> rusqlite::Result<Session> {
    Ok(Session {
        id: row.get(0)?,
        token: row.get(1)?,
        user_id: row.get(2)?,
        expires_at: date_at(row, 3)?,
        created_at: date_at(row, 4)?,
        updated_at: date_at(row, 5)?,
        ip_address: row.get(6)?,
        user_agent: row.get(7)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn session_with_user(&self, token: &str) -> Result<Option<(Session, User)>, StoreError> {
        let token = token.to_owned();
        self.read(move |conn| {
            let sql = format!(
                r#"SELECT {SESSION_COLUMNS}, {USER_COLUMNS} FROM "session" s JOIN "user" u ON u."id" = s."userId" WHERE s."token" = ?1"#
            );
            conn.prepare_cached(&sql)
                .and_then(|mut st| st.query_row([&token], |r| Ok((session_at(r)?, user_at(r, 8)?))).optional())
                .map_err(map_err)
        })
        .await
    }

    async fn user_with_password(&self, by: Login, key: &str) -> Result<Option<(User, Option<String>)>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            let sql = format!(
                r#"SELECT {USER_COLUMNS}, a."password" FROM "user" u
                   LEFT JOIN "account" a ON a."userId" = u."id" AND a."providerId" = 'credential' AND a."accountId" = u."id"
                   WHERE u."{}" = ?1 ORDER BY a."password" IS NULL LIMIT 1"#,
                by.column()
            );
            conn.prepare_cached(&sql)
                .and_then(|mut st| st.query_row([&key], |r| Ok((user_at(r, 0)?, r.get(10)?))).optional())
                .map_err(map_err)
        })
        .await
    }

    async fn verification(&self, identifier: &str) -> Result<Option<Verification>, StoreError> {
        let identifier = identifier.to_owned();
        self.read(move |conn| {
            let sql = r#"SELECT "id", "identifier", "value", "expiresAt", "createdAt", "updatedAt" FROM "verification"
                         WHERE "identifier" = ?1 ORDER BY "createdAt" DESC LIMIT 1"#;
            conn.prepare_cached(sql)
                .and_then(|mut st| {
                    st.query_row([&identifier], |r| {
                        Ok(Verification {
                            id: r.get(0)?,
                            identifier: r.get(1)?,
                            value: r.get(2)?,
                            expires_at: date_at(r, 3)?,
                            created_at: date_at(r, 4)?,
                            updated_at: date_at(r, 5)?,
                        })
                    })
                    .optional()
                })
                .map_err(map_err)
        })
        .await
    }

    async fn user(&self, by: Login, key: &str) -> Result<Option<User>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            let sql = format!(r#"SELECT {USER_COLUMNS} FROM "user" u WHERE u."{}" = ?1"#, by.column());
            conn.prepare_cached(&sql)
                .and_then(|mut st| st.query_row([&key], |r| user_at(r, 0)).optional())
                .map_err(map_err)
        })
        .await
    }

    async fn passkeys(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |conn| {
            let sql =
                format!(r#"SELECT {PASSKEY_COLUMNS} FROM "passkey" WHERE "userId" = ?1 ORDER BY "createdAt", "id""#);
            conn.prepare_cached(&sql)
                .and_then(|mut st| st.query_map([&user_id], passkey_at)?.collect())
                .map_err(map_err)
        })
        .await
    }

    async fn passkey(&self, by: PasskeyBy, key: &str) -> Result<Option<Passkey>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            let sql = format!(r#"SELECT {PASSKEY_COLUMNS} FROM "passkey" WHERE "{}" = ?1 LIMIT 1"#, by.column());
            conn.prepare_cached(&sql).and_then(|mut st| st.query_row([&key], passkey_at).optional()).map_err(map_err)
        })
        .await
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
            conn.prepare_cached(r#"SELECT "lastRequest" FROM "rateLimit" WHERE "key" = ?1"#)?
                .query_row([&key], |r| r.get(0))
                .optional()
        })
        .await
    }

    async fn prune_rate_limits(&self, before_ms: i64) -> Result<(), StoreError> {
        self.write_with(move |conn| {
            conn.prepare_cached(r#"DELETE FROM "rateLimit" WHERE "lastRequest" < ?1"#)?.execute([before_ms]).map(drop)
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

    async fn delete_stale_guests(&self, ids: Vec<String>, cutoff_ms: i64) -> Result<Vec<String>, StoreError> {
        self.write_with(move |conn| {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            match delete_stale(conn, &ids, cutoff_ms).and_then(|gone| conn.execute_batch("COMMIT").map(|()| gone)) {
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
            let sql = format!(
                r#"SELECT {USER_COLUMNS} FROM "user" u {} ORDER BY u."createdAt" DESC, u."id" DESC LIMIT ?1 OFFSET ?2"#,
                anonymous_filter(anonymous)
            );
            conn.prepare_cached(&sql)
                .and_then(|mut st| st.query_map(params![limit as i64, offset as i64], |r| user_at(r, 0))?.collect())
                .map_err(map_err)
        })
        .await
    }

    async fn count_users(&self, anonymous: Option<bool>) -> Result<u64, StoreError> {
        self.read(move |conn| {
            let sql = format!(r#"SELECT count(*) FROM "user" u {}"#, anonymous_filter(anonymous));
            conn.prepare_cached(&sql).and_then(|mut st| st.query_row([], |r| r.get::<_, i64>(0))).map_err(map_err)
        })
        .await
        .map(|n| n as u64)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, email: &str) -> User {
        User::new(id.into(), "n".into(), email.into(), false, 0)
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row(r#"SELECT COUNT(*) FROM "user""#, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn one_failing_write_set_in_a_batch_fails_alone() {
        let conn = open_connection(None).unwrap();
        migrate(&conn).unwrap();
        let mut batch = Vec::new();
        let mut replies = Vec::new();
        let sets = [
            vec![WriteOp::InsertUser(user("a", "a@x.io"))],
            // Inserts a user, then conflicts on a's email: both statements must go.
            vec![WriteOp::InsertUser(user("b", "b@x.io")), WriteOp::InsertUser(user("c", "a@x.io"))],
            vec![WriteOp::InsertUser(user("d", "d@x.io"))],
        ];
        for ops in sets {
            let (tx, rx) = oneshot::channel();
            batch.push((ops, tx));
            replies.push(rx);
        }
        commit_batch(&conn, &mut batch);
        let results: Vec<_> = replies.into_iter().map(|mut rx| rx.try_recv().unwrap()).collect();
        assert_eq!(results[0], Ok(()));
        assert_eq!(results[1], Err(StoreError::Conflict(super::super::Constraint::UserEmail)));
        assert_eq!(results[2], Ok(()));
        assert_eq!(count(&conn), 2);
    }

    #[test]
    fn a_lone_failing_write_set_commits_nothing() {
        let conn = open_connection(None).unwrap();
        migrate(&conn).unwrap();
        let (tx, mut rx) = oneshot::channel();
        let ops = vec![WriteOp::InsertUser(user("a", "a@x.io")), WriteOp::InsertUser(user("b", "a@x.io"))];
        commit_batch(&conn, &mut vec![(ops, tx)]);
        assert!(rx.try_recv().unwrap().is_err());
        assert_eq!(count(&conn), 0);
        // The connection is usable afterwards.
        let (tx, mut rx) = oneshot::channel();
        commit_batch(&conn, &mut vec![(vec![WriteOp::InsertUser(user("a", "a@x.io"))], tx)]);
        assert_eq!(rx.try_recv().unwrap(), Ok(()));
        assert_eq!(count(&conn), 1);
    }
}
