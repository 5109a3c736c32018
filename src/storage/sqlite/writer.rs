//! The writer thread and the reader threads: jobs in, replies out. Write-sets
//! queued while a transaction commits are committed together in the next one,
//! each under its own savepoint; an interactive transaction (a conversion's)
//! holds the writer until it commits or is dropped, serving reads meanwhile.

use std::thread::JoinHandle;

use async_trait::async_trait;
use crossbeam_channel::{never, select, Receiver, Sender};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::ops::{apply_in_savepoint, apply_ops, STALE};
use super::values::{fetch_all, sql_err};
use super::{closed, map_err};
use crate::model::User;
use crate::storage::schema::USER_COLUMNS;
use crate::storage::sql::{self, user_at};
use crate::storage::{GuestRef, SqlRow, SqlValue, StoreError, Tx, WriteOp};
use crate::time::iso;

/// Write-sets committed in one transaction at most.
pub(super) const MAX_BATCH: usize = 128;

pub(super) type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

pub(super) enum Job {
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

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub(super) enum TxCmd {
    Apply(Vec<WriteOp>, Reply<()>),
    LockGuest(GuestRef, Reply<Option<User>>),
    Execute(String, Vec<SqlValue>, Reply<u64>),
    FetchAll(String, Vec<SqlValue>, Reply<Vec<SqlRow>>),
    Commit(Reply<()>),
}

pub(super) struct Channels {
    pub(super) writer: Sender<Job>,
    /// Served by the reader threads; for in-memory databases, whose one
    /// connection does everything, by the writer thread.
    pub(super) reads: Sender<ReadJob>,
}

pub(super) fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new().name(name).spawn(f).expect("spawn SQLite thread")
}

pub(super) fn reader_loop(conn: Connection, rx: Receiver<ReadJob>) {
    while let Ok(job) = rx.recv() {
        job(&conn);
    }
}

pub(super) fn writer_loop(conn: Connection, rx: Receiver<Job>, mut reads: Receiver<ReadJob>) {
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
pub(super) fn run_interactive(conn: &Connection, begun: Reply<()>, cmds: &Receiver<TxCmd>, reads: &Receiver<ReadJob>) {
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

pub(super) fn run_tx_cmd(conn: &Connection, cmd: TxCmd) {
    match cmd {
        TxCmd::Apply(ops, reply) => {
            let _ = reply.send(apply_in_savepoint(conn, &ops));
        }
        TxCmd::LockGuest(GuestRef::Session(token), reply) => {
            let r = conn
                .prepare_cached(sql::GUEST_BY_SESSION.sqlite())
                .and_then(|mut st| st.query_row([&token], |r| user_at(r, 0)).optional());
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

/// The client side of an interactive transaction on the writer thread.
pub(super) struct SqliteTx {
    pub(super) cmds: Sender<TxCmd>,
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

pub(super) type PendingWrite = (Vec<WriteOp>, oneshot::Sender<Result<(), StoreError>>);

pub(super) fn commit_batch(conn: &Connection, batch: &mut Vec<PendingWrite>) {
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

#[cfg(test)]
mod tests {
    use super::super::{migrate, open_connection};
    use super::*;
    use crate::storage::Constraint;

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
        assert_eq!(results[1], Err(StoreError::Conflict(Constraint::UserEmail)));
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
