//! A write-set's operations on the writer's connection, and the stale-guest
//! deletion (SQLite's own SQL).

use rusqlite::{params, Connection};

use super::map_err;
use crate::storage::sql;
use crate::storage::{StoreError, WriteOp};
use crate::time::iso;

pub(super) fn apply_in_savepoint(conn: &Connection, ops: &[WriteOp]) -> Result<(), StoreError> {
    conn.execute_batch("SAVEPOINT w").map_err(map_err)?;
    let r = apply_ops(conn, ops);
    if r.is_err() {
        conn.execute_batch("ROLLBACK TO w").map_err(map_err)?;
    }
    conn.execute_batch("RELEASE w").map_err(map_err)?;
    r
}

pub(super) fn apply_ops(conn: &Connection, ops: &[WriteOp]) -> Result<(), StoreError> {
    for op in ops {
        let changed = apply_op(conn, op).map_err(map_err)?;
        if let Some(conflict) = op.conflict_if_unchanged().filter(|_| changed == 0) {
            return Err(StoreError::Conflict(conflict));
        }
    }
    Ok(())
}

/// A guest inactive since `?2` (an ISO date): neither its row nor any of its sessions updated since.
pub(super) const STALE: &str = r#"u."isAnonymous" = 1 AND u."updatedAt" < ?2
    AND NOT EXISTS (SELECT 1 FROM "session" s WHERE s."userId" = u."id" AND s."updatedAt" >= ?2)"#;

/// `ids` as a JSON array, for `IN (SELECT value FROM json_each(?))`.
pub(super) fn json_ids(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// The guest funnel: these guests (`?1`, a JSON list) were cleaned up at `?2` (before
/// their rows go: their creation time is read from them).
const CLEANED_UP: &str = r#"INSERT INTO "guestFunnel" ("id", "createdAt", "endedAt", "outcome", "durationMs")
  SELECT "id", c, ?2, 'cleaned_up', ?2 - c FROM (SELECT "id", CAST((julianday("createdAt") - 2440587.5) * 86400000 AS integer) AS c
    FROM "user" WHERE "id" IN (SELECT value FROM json_each(?1))) WHERE true ON CONFLICT DO NOTHING"#;

pub(super) fn delete_stale(
    conn: &Connection,
    ids: &[String],
    cutoff_ms: i64,
    now_ms: i64,
) -> rusqlite::Result<Vec<String>> {
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
    conn.prepare_cached(CLEANED_UP)?.execute(params![json, now_ms])?;
    conn.prepare_cached(r#"DELETE FROM "user" WHERE "id" IN (SELECT value FROM json_each(?1))"#)?.execute([&json])?;
    Ok(still)
}

/// A user filter on `isAnonymous`, as SQL.
pub(super) fn apply_op(conn: &Connection, op: &WriteOp) -> rusqlite::Result<usize> {
    let mut changed = 0;
    for st in sql::statements(op) {
        changed = conn.prepare_cached(st.sql.sqlite())?.execute(rusqlite::params_from_iter(st.params.iter()))?;
    }
    Ok(changed)
}
