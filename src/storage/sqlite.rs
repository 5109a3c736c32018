//! SQLite through rusqlite. rusqlite is synchronous and fast (spec'd at 5–7× sqlx's
//! SQLite driver on this kind of machine), so it runs on threads of its own:
//! one writer thread that commits queued write-sets together (group commit, each
//! request under its own savepoint so one failure undoes only that request), and
//! reader threads for lookups, which WAL lets run beside the writer.

use std::sync::Mutex;
use std::thread::JoinHandle;

use async_trait::async_trait;
use crossbeam_channel::{unbounded, Receiver, Sender};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use tokio::sync::oneshot;

use super::schema::{self, SESSION_COLUMNS, USER_COLUMNS};
use super::{constraint_from, Store, StoreError, WriteOp};
use crate::config::ConfigError;
use crate::model::{Session, User};
use crate::time::{iso, parse_iso};

/// Write-sets committed in one transaction at most.
const MAX_BATCH: usize = 128;

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

enum Job {
    Write {
        ops: Vec<WriteOp>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Read(ReadJob),
}

struct Channels {
    writer: Sender<Job>,
    /// `None` for in-memory databases, whose one connection serves reads too.
    readers: Option<Sender<ReadJob>>,
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
    if let rusqlite::Error::SqliteFailure(code, Some(msg)) = &e {
        if code.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains("UNIQUE") {
            return StoreError::Conflict(constraint_from(msg));
        }
    }
    backend(e)
}

fn open_connection(path: Option<&str>) -> rusqlite::Result<Connection> {
    let conn = match path {
        Some(p) => Connection::open_with_flags(
            p,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?,
        None => Connection::open_in_memory()?,
    };
    // WAL lets readers run beside the writer; NORMAL sync in WAL survives an
    // application crash and costs no fsync per commit.
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
                .prepare(&format!(
                    "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
                ))?
                .exists([column])?;
            if !exists {
                conn.execute_batch(&format!(
                    r#"ALTER TABLE "{table}" ADD COLUMN "{column}" {sqlite_type}"#
                ))?;
            }
        }
        conn.execute_batch(schema::ADDED_INDEXES)
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
        let writer_conn = open_connection(path.as_deref()).map_err(describe)?;
        migrate(&writer_conn).map_err(describe)?;

        let mut threads = Vec::new();
        let readers = match &path {
            None => None,
            Some(p) => {
                let (tx, rx) = unbounded::<ReadJob>();
                let count = if pool_size == 0 { 2 } else { pool_size };
                for i in 0..count {
                    let conn = open_connection(Some(p)).map_err(describe)?;
                    let rx = rx.clone();
                    threads.push(spawn(format!("kernia-sqlite-r{i}"), move || {
                        reader_loop(conn, rx)
                    }));
                }
                Some(tx)
            }
        };
        let (writer, writer_rx) = unbounded::<Job>();
        threads.push(spawn("kernia-sqlite-w".into(), move || {
            writer_loop(writer_conn, writer_rx)
        }));
        Ok(SqliteStore {
            channels: Mutex::new(Some(Channels { writer, readers })),
            threads: Mutex::new(threads),
        })
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
            let ch = guard.as_ref().ok_or_else(closed)?;
            match &ch.readers {
                Some(readers) => readers.send(job).map_err(|_| closed())?,
                None => ch.writer.send(Job::Read(job)).map_err(|_| closed())?,
            }
        }
        rx.await.map_err(|_| closed())?
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .expect("spawn SQLite thread")
}

fn reader_loop(conn: Connection, rx: Receiver<ReadJob>) {
    while let Ok(job) = rx.recv() {
        job(&conn);
    }
}

fn writer_loop(conn: Connection, rx: Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        let take = |job: Job, batch: &mut Vec<_>| match job {
            Job::Read(f) => f(&conn),
            Job::Write { ops, reply } => batch.push((ops, reply)),
        };
        take(first, &mut batch);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => take(job, &mut batch),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            commit_batch(&conn, &mut batch);
        }
    }
    let _ = conn.execute_batch("PRAGMA optimize");
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
        apply_op(conn, op).map_err(map_err)?;
    }
    Ok(())
}

fn apply_op(conn: &Connection, op: &WriteOp) -> rusqlite::Result<()> {
    match op {
        WriteOp::InsertUser(u) => {
            conn.prepare_cached(
                r#"INSERT INTO "user" ("id","name","email","emailVerified","image","createdAt","updatedAt","isAnonymous","username","displayUsername")
                   VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"#,
            )?
            .execute(params![
                u.id, u.name, u.email, u.email_verified, u.image, iso(u.created_at), iso(u.updated_at),
                u.is_anonymous, u.username, u.display_username
            ])?;
        }
        WriteOp::InsertAccount(a) => {
            conn.prepare_cached(
                r#"INSERT INTO "account" ("id","accountId","providerId","userId","password","createdAt","updatedAt")
                   VALUES (?1,?2,?3,?4,?5,?6,?7)"#,
            )?
            .execute(params![a.id, a.account_id, a.provider_id, a.user_id, a.password, iso(a.created_at), iso(a.updated_at)])?;
        }
        WriteOp::InsertSession(s) => {
            conn.prepare_cached(
                r#"INSERT INTO "session" ("id","token","userId","expiresAt","createdAt","updatedAt","ipAddress","userAgent")
                   VALUES (?1,?2,?3,?4,?5,?6,?7,?8)"#,
            )?
            .execute(params![
                s.id, s.token, s.user_id, iso(s.expires_at), iso(s.created_at), iso(s.updated_at), s.ip_address, s.user_agent
            ])?;
        }
        WriteOp::DeleteSessionByToken(token) => {
            conn.prepare_cached(r#"DELETE FROM "session" WHERE "token" = ?1"#)?
                .execute([token])?;
        }
        WriteOp::RefreshSession {
            id,
            expires_at,
            updated_at,
        } => {
            conn.prepare_cached(
                r#"UPDATE "session" SET "expiresAt" = ?1, "updatedAt" = ?2 WHERE "id" = ?3"#,
            )?
            .execute(params![iso(*expires_at), iso(*updated_at), id])?;
        }
    }
    Ok(())
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

    async fn user_with_password(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let email = email.to_owned();
        self.read(move |conn| {
            let sql = format!(
                r#"SELECT {USER_COLUMNS}, a."password" FROM "user" u
                   LEFT JOIN "account" a ON a."userId" = u."id" AND a."providerId" = 'credential' AND a."accountId" = u."id"
                   WHERE u."email" = ?1 ORDER BY a."password" IS NULL LIMIT 1"#
            );
            conn.prepare_cached(&sql)
                .and_then(|mut st| st.query_row([&email], |r| Ok((user_at(r, 0)?, r.get(10)?))).optional())
                .map_err(map_err)
        })
        .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let email = email.to_owned();
        self.read(move |conn| {
            let sql = format!(r#"SELECT {USER_COLUMNS} FROM "user" u WHERE u."email" = ?1"#);
            conn.prepare_cached(&sql)
                .and_then(|mut st| st.query_row([&email], |r| user_at(r, 0)).optional())
                .map_err(map_err)
        })
        .await
    }

    async fn apply(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        {
            let guard = self.channels.lock().expect("channel lock");
            let ch = guard.as_ref().ok_or_else(closed)?;
            ch.writer
                .send(Job::Write { ops, reply })
                .map_err(|_| closed())?;
        }
        rx.await.map_err(|_| closed())?
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
        User {
            id: id.into(),
            name: "n".into(),
            email: email.into(),
            email_verified: false,
            image: None,
            created_at: 0,
            updated_at: 0,
            is_anonymous: false,
            username: None,
            display_username: None,
        }
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row(r#"SELECT COUNT(*) FROM "user""#, [], |r| r.get(0))
            .unwrap()
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
            vec![
                WriteOp::InsertUser(user("b", "b@x.io")),
                WriteOp::InsertUser(user("c", "a@x.io")),
            ],
            vec![WriteOp::InsertUser(user("d", "d@x.io"))],
        ];
        for ops in sets {
            let (tx, rx) = oneshot::channel();
            batch.push((ops, tx));
            replies.push(rx);
        }
        commit_batch(&conn, &mut batch);
        let results: Vec<_> = replies
            .into_iter()
            .map(|mut rx| rx.try_recv().unwrap())
            .collect();
        assert_eq!(results[0], Ok(()));
        assert_eq!(
            results[1],
            Err(StoreError::Conflict(super::super::Constraint::UserEmail))
        );
        assert_eq!(results[2], Ok(()));
        assert_eq!(count(&conn), 2);
    }

    #[test]
    fn a_lone_failing_write_set_commits_nothing() {
        let conn = open_connection(None).unwrap();
        migrate(&conn).unwrap();
        let (tx, mut rx) = oneshot::channel();
        let ops = vec![
            WriteOp::InsertUser(user("a", "a@x.io")),
            WriteOp::InsertUser(user("b", "a@x.io")),
        ];
        commit_batch(&conn, &mut vec![(ops, tx)]);
        assert!(rx.try_recv().unwrap().is_err());
        assert_eq!(count(&conn), 0);
        // The connection is usable afterwards.
        let (tx, mut rx) = oneshot::channel();
        commit_batch(
            &conn,
            &mut vec![(vec![WriteOp::InsertUser(user("a", "a@x.io"))], tx)],
        );
        assert_eq!(rx.try_recv().unwrap(), Ok(()));
        assert_eq!(count(&conn), 1);
    }
}
