//! The ceiling: what SQLite itself does on this machine for the same work as a guest
//! sign-in (two inserts in one transaction) and a get-session (one indexed join),
//! through rusqlite with prepared statements on one connection, in the same schema
//! and with the same pragmas as the server. Also the time of one password hash,
//! which bounds conversions. Prints one JSON object.
//!
//! cargo run --release --example ceiling -- /tmp/ceiling.db

use std::time::{Duration, Instant};

use kernia::crypto::new_id;
use kernia::time::iso;
use rusqlite::{params, Connection};

const RUN: Duration = Duration::from_secs(3);

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "/tmp/kernia-ceiling.db".into());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
    )
    .unwrap();
    conn.execute_batch(kernia::storage::schema::SQLITE_TABLES).unwrap();
    for (table, column, sqlite_type, _) in kernia::storage::schema::ADDED_COLUMNS {
        conn.execute_batch(&format!(r#"ALTER TABLE "{table}" ADD COLUMN "{column}" {sqlite_type}"#)).unwrap();
    }
    conn.execute_batch(kernia::storage::schema::SQLITE_ADDED_INDEXES).unwrap();

    let mut tokens = Vec::new();
    let start = Instant::now();
    let mut sign_ins = 0u64;
    while start.elapsed() < RUN {
        let (uid, token, now) = (new_id(), new_id(), chrono::Utc::now().timestamp_millis());
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.prepare_cached(
            r#"INSERT INTO "user" ("id","name","email","emailVerified","image","createdAt","updatedAt","isAnonymous")
               VALUES (?1,?2,?3,0,NULL,?4,?4,1)"#,
        )
        .unwrap()
        .execute(params![uid, "Anonymous", format!("{}@anonymous.placeholder.invalid", uid.to_lowercase()), iso(now)])
        .unwrap();
        conn.prepare_cached(
            r#"INSERT INTO "session" ("id","token","userId","expiresAt","createdAt","updatedAt","ipAddress","userAgent")
               VALUES (?1,?2,?3,?4,?5,?5,'127.0.0.1','bench')"#,
        )
        .unwrap()
        .execute(params![new_id(), token, uid, iso(now + 604_800_000), iso(now)])
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
        tokens.push(token);
        sign_ins += 1;
    }
    let sign_in_per_s = sign_ins as f64 / start.elapsed().as_secs_f64();

    let sql = format!(
        r#"SELECT {}, {} FROM "session" s JOIN "user" u ON u."id" = s."userId" WHERE s."token" = ?1"#,
        kernia::storage::schema::SESSION_COLUMNS,
        kernia::storage::schema::USER_COLUMNS
    );
    let mut stmt = conn.prepare_cached(&sql).unwrap();
    let start = Instant::now();
    let mut lookups = 0u64;
    while start.elapsed() < RUN {
        for token in tokens.iter().take(1000) {
            let found: String = stmt.query_row([token], |r| r.get(0)).unwrap();
            std::hint::black_box(found);
            lookups += 1;
        }
    }
    let lookups_per_s = lookups as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    let hashes = 6;
    for _ in 0..hashes {
        std::hint::black_box(kernia::password::hash_blocking("correct-horse-battery"));
    }
    let hash_ms = start.elapsed().as_secs_f64() * 1000.0 / hashes as f64;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "{{\"sign_in_per_s\": {sign_in_per_s:.0}, \"lookups_per_s\": {lookups_per_s:.0}, \"hash_ms\": {hash_ms:.1}, \"cores\": {cores}, \"hash_limit_per_s\": {:.1}}}",
        cores as f64 * 1000.0 / hash_ms
    );
}
