//! What the Rust integration tests share: a PostgreSQL database of their own.
//!
//! The server is the one `KERNIA_TEST_POSTGRES_URL` names, or else the one on
//! 127.0.0.1:5432. Each [`postgres`] call creates a fresh database there, dropped
//! with the value it returns; the database the URL names is never touched. Without
//! a server the PostgreSQL cases are skipped, each with a `SKIPPED:` line on stderr
//! that the test harness does not hide, unless
//! `KERNIA_TEST_POSTGRES_URL` or `CI` is set: then a missing server fails the test.

#![allow(dead_code)]

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;

/// A database made for one test, dropped (with its connections) when this is.
pub struct PgDatabase {
    pub url: String,
    server: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (server, sql) = (self.server.clone(), format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name));
        let _ = std::thread::spawn(move || blocking(admin(server, sql))).join();
    }
}

fn blocking<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

async fn admin(server: String, sql: String) -> Result<(), String> {
    let opts: PgConnectOptions = server.parse().map_err(|e: sqlx::Error| e.to_string())?;
    let mut conn = tokio::time::timeout(Duration::from_secs(3), PgConnection::connect_with(&opts))
        .await
        .map_err(|_| "no answer in 3 s".to_owned())?
        .map_err(|e| e.to_string())?;
    sqlx::raw_sql(&sql).execute(&mut conn).await.map_err(|e| e.to_string())?;
    conn.close().await.map_err(|e| e.to_string())
}

/// A fresh database on the machine's PostgreSQL, or `None` when there is none (see the module docs).
pub fn postgres() -> Option<PgDatabase> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let named = std::env::var("KERNIA_TEST_POSTGRES_URL").ok();
    let server = named.clone().unwrap_or_else(|| "postgresql://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("kernia_rs_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let create = (server.clone(), format!(r#"CREATE DATABASE "{name}""#));
    match std::thread::spawn(move || blocking(admin(create.0, create.1))).join().expect("create thread") {
        Ok(()) => {
            let mut url = url::Url::parse(&server).expect("a PostgreSQL URL");
            url.set_path(&format!("/{name}"));
            Some(PgDatabase { url: url.to_string(), server, name })
        }
        Err(e) if named.is_some() || std::env::var_os("CI").is_some() => {
            panic!("PostgreSQL at {server} is required and did not answer: {e}")
        }
        Err(e) => {
            // Written to the stream itself, past the test harness's capture, so the skip shows.
            let _ = writeln!(std::io::stderr(), "SKIPPED: no PostgreSQL at {server} ({e}): the PostgreSQL cases");
            None
        }
    }
}
