//! The engine end to end through `Auth::handle`, on SQLite (memory and file)
//! and on PostgreSQL (see `common`).

mod common;

use std::sync::Arc;

use kernia::cleanup::CleanupOptions;
use kernia::pipeline::handle;
use kernia::storage::{self, Login, WriteOp};
use kernia::{Auth, Config, Request, Response};
use serde_json::{json, Value};

const ORIGIN: &str = "http://localhost:3000";

fn config(database: &str) -> Config {
    config_with(database, json!({}))
}

/// The test options with `extra`'s top-level fields added.
fn config_with(database: &str, extra: Value) -> Config {
    let mut opts = json!({
        "database": database,
        "secret": "engine-test-secret-0123456789abcdef",
        "email_and_password": { "enabled": true },
        "rate_limit": { "enabled": false },
    });
    if let (Some(opts), Value::Object(extra)) = (opts.as_object_mut(), extra) {
        opts.extend(extra);
    }
    Config::from_json(&opts.to_string()).expect("valid options")
}

fn unique(tag: &str) -> String {
    format!("{tag}-{}", kernia::crypto::new_id().to_lowercase())
}

/// Every backend this machine offers, each with a fresh engine; PostgreSQL's in a
/// database of its own, dropped after the engines.
async fn engines() -> Engines {
    engines_with(json!({})).await
}

struct Engines {
    list: Vec<(String, Arc<Auth>)>,
    postgres: Option<common::PgDatabase>,
}

struct EnginesIter {
    inner: std::vec::IntoIter<(String, Arc<Auth>)>,
    _postgres: Option<common::PgDatabase>,
}

impl IntoIterator for Engines {
    type Item = (String, Arc<Auth>);
    type IntoIter = EnginesIter;
    fn into_iter(self) -> EnginesIter {
        EnginesIter { inner: self.list.into_iter(), _postgres: self.postgres }
    }
}

impl Iterator for EnginesIter {
    type Item = (String, Arc<Auth>);
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

/// [`engines`] with `extra` options.
async fn engines_with(extra: Value) -> Engines {
    let file = std::env::temp_dir().join(format!("{}.db", unique("kernia-engine")));
    let mut urls = vec!["sqlite::memory:".to_owned(), format!("sqlite:///{}", file.display())];
    let postgres = common::postgres();
    urls.extend(postgres.as_ref().map(|db| db.url.clone()));
    let mut list = Vec::new();
    for url in urls {
        let auth = Auth::new(config_with(&url, extra.clone())).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
        list.push((url, Arc::new(auth)));
    }
    Engines { list, postgres }
}

fn post(path: &str, body: Value, cookie: Option<&str>) -> Request {
    let mut r = Request::new("POST", path).with_json(&body).with_header("origin", ORIGIN);
    r.peer_ip = Some("127.0.0.1".into());
    if let Some(c) = cookie {
        r = r.with_header("cookie", c);
    }
    r
}

fn get(path: &str, cookie: Option<&str>) -> Request {
    let mut r = Request::new("GET", path);
    if let Some(c) = cookie {
        r = r.with_header("cookie", c);
    }
    r
}

fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

/// `name=value` of the session cookie a response sets.
fn session_cookie(r: &Response) -> Option<String> {
    r.set_cookies()
        .find(|c| c.starts_with("better-auth.session_token=") && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_session_sign_out_sign_in() {
    for (url, auth) in engines().await {
        let email = format!("{}@example.com", unique("flow"));
        let body = json!({ "name": "Ada", "email": email, "password": "correct-horse" });
        let r = handle(&auth, post("/sign-up/email", body, None)).await;
        assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
        let cookie = session_cookie(&r).expect("session cookie");
        let user_id = json_of(&r)["user"]["id"].as_str().unwrap().to_owned();

        let s = handle(&auth, get("/get-session", Some(&cookie))).await;
        assert_eq!(json_of(&s)["user"]["id"], user_id.as_str(), "{url}");

        let out = handle(&auth, post("/sign-out", json!({}), Some(&cookie))).await;
        assert_eq!(json_of(&out), json!({ "success": true }), "{url}");
        assert_eq!(handle(&auth, get("/get-session", Some(&cookie))).await.body, b"null", "{url}");

        let login = json!({ "email": email, "password": "correct-horse" });
        let r = handle(&auth, post("/sign-in/email", login, None)).await;
        assert_eq!(r.status, 200, "{url}");
        let cookie = session_cookie(&r).unwrap();
        assert_eq!(json_of(&handle(&auth, get("/get-session", Some(&cookie))).await)["user"]["id"], user_id.as_str());
        auth.close().await;
    }
}

/// Concurrent sign-ups commit together on SQLite; a duplicate in the same batch
/// fails alone (its savepoint is rolled back) and every other account is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ups_with_duplicates_lose_nothing() {
    for (url, auth) in engines().await {
        let tag = unique("race");
        let shared = format!("{tag}-shared@example.com");
        let mut tasks = Vec::new();
        for i in 0..24 {
            let email = if i % 3 == 0 { shared.clone() } else { format!("{tag}-{i}@example.com") };
            let auth = auth.clone();
            tasks.push(tokio::spawn(async move {
                let body = json!({ "name": "N", "email": email, "password": "password123" });
                handle(&auth, post("/sign-up/email", body, None)).await.status
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        let ok = statuses.iter().filter(|s| **s == 200).count();
        let dup = statuses.iter().filter(|s| **s == 422).count();
        assert_eq!((ok, dup), (17, 7), "{url}: {statuses:?}");
        for i in (0..24).filter(|i| i % 3 != 0) {
            let email = format!("{tag}-{i}@example.com");
            assert!(auth.store.user(Login::Email, &email).await.unwrap().is_some(), "{url}: {email} lost");
        }
        assert!(auth.store.user(Login::Email, &shared).await.unwrap().is_some());
        auth.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_set_changes_nothing() {
    for (url, auth) in engines().await {
        let email = format!("{}@example.com", unique("atomic"));
        let now = auth.clock.now_ms();
        let user = |id: &str| kernia::model::User::new(id.into(), "x".into(), email.clone(), false, now);
        let first = unique("u");
        auth.store.apply(vec![WriteOp::InsertUser(user(&first))]).await.unwrap();
        // A new session for the first user, then a user that conflicts: both must roll back.
        let session = auth.sessions.create(&first, false, true, &Request::new("GET", "/"), None);
        let token = session.token.clone();
        let err =
            auth.store.apply(vec![WriteOp::InsertSession(session), WriteOp::InsertUser(user(&unique("u")))]).await;
        assert_eq!(err, Err(storage::StoreError::Conflict(storage::Constraint::UserEmail)), "{url}");
        assert!(auth.store.session_with_user(&token).await.unwrap().is_none(), "{url}: half a write-set committed");
        auth.close().await;
    }
}

#[tokio::test]
async fn closed_stores_fail_cleanly() {
    let auth = Arc::new(Auth::new(config("sqlite::memory:")).await.unwrap());
    auth.close().await;
    let r = handle(&auth, get("/get-session", Some("better-auth.session_token=x.y"))).await;
    assert_eq!(r.status, 200); // an unsigned cookie never reaches the store
    let body = json!({ "name": "A", "email": "closed@example.com", "password": "password123" });
    let r = handle(&auth, post("/sign-up/email", body, None)).await;
    assert_eq!(r.status, 500);
    assert_eq!(json_of(&r)["code"], "INTERNAL_SERVER_ERROR");
}

#[tokio::test]
async fn opening_is_idempotent_and_migrates_an_existing_better_auth_schema() {
    let path = std::env::temp_dir().join(format!("{}.db", unique("kernia-migrate")));
    {
        // The core tables as Better Auth creates them, without any plugin column.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            r#"CREATE TABLE "user" ("id" text not null primary key, "name" text not null, "email" text not null unique,
                 "emailVerified" integer not null, "image" text, "createdAt" date not null, "updatedAt" date not null);"#,
        )
        .unwrap();
    }
    let url = format!("sqlite:///{}", path.display());
    for _ in 0..2 {
        let auth = Auth::new(config(&url)).await.expect("migrates");
        auth.close().await;
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('user')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for c in ["isAnonymous", "username", "displayUsername"] {
        assert!(cols.iter().any(|x| x == c), "missing {c}: {cols:?}");
    }
}

/// A process starting up (and checking the schema) beside a busy one must not
/// deadlock with its requests: DDL runs only when something is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_beside_a_busy_engine_fails_no_request() {
    let Some(db) = common::postgres() else { return };
    let url = db.url.clone();
    let opts = json!({
        "database": url, "secret": "engine-test-secret-0123456789abcdef",
        "email_and_password": { "enabled": true }, "rate_limit": { "enabled": false }, "anonymous": {},
    });
    let busy = Arc::new(Auth::new(Config::from_json(&opts.to_string()).unwrap()).await.unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (busy, stop) = (busy.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                statuses.push(handle(&busy, post("/sign-in/anonymous", json!({}), None)).await.status);
            }
            statuses
        }));
    }
    for _ in 0..10 {
        let starting = Auth::new(Config::from_json(&opts.to_string()).unwrap()).await.expect("starts");
        starting.close().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let statuses = w.await.unwrap();
        assert!(!statuses.is_empty());
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    busy.close().await;
}

/// Keeps the links it is asked to send.
#[derive(Default)]
struct Outbox(std::sync::Mutex<Vec<kernia::callbacks::MagicLinkMessage>>);

#[async_trait::async_trait]
impl kernia::callbacks::MagicLinkCallbacks for Outbox {
    async fn send(
        &self,
        _: &kernia::callbacks::CallbackRequest,
        m: kernia::callbacks::MagicLinkMessage,
    ) -> Result<(), kernia::AuthError> {
        self.0.lock().unwrap().push(m);
        Ok(())
    }
}

/// The username and magic-link plugins need no Python: the engine's defaults
/// and a Rust sender are enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usernames_and_magic_links_in_rust_alone() {
    let file = std::env::temp_dir().join(format!("{}.db", unique("kernia-plugins")));
    let mut opts = json!({
        "database": format!("sqlite:///{}", file.display()),
        "secret": "engine-test-secret-0123456789abcdef",
        "email_and_password": { "enabled": true },
        "rate_limit": { "enabled": false },
        "username": {},
        "magic_link": { "store_token": "hashed" },
    });
    let outbox = Arc::new(Outbox::default());
    let without = Config::from_json(&opts.to_string()).unwrap();
    let refused = Auth::with_callbacks(without, Default::default()).await.err().expect("a sender is required");
    assert!(refused.to_string().contains("send_magic_link"));
    opts["database"] = json!("sqlite::memory:");
    let hooks = kernia::callbacks::Callbacks { magic_link: Some(outbox.clone()), ..Default::default() };
    let auth = Arc::new(Auth::with_callbacks(Config::from_json(&opts.to_string()).unwrap(), hooks).await.unwrap());

    let up = json!({ "name": "Ada", "email": "ada@example.com", "password": "correct-horse", "username": "Ada_L" });
    let r = handle(&auth, post("/sign-up/email", up, None)).await;
    assert_eq!((json_of(&r)["user"]["username"].as_str(), r.status), (Some("ada_l"), 200));
    let r = handle(&auth, post("/sign-in/username", json!({ "username": "ADA_L", "password": "correct-horse" }), None));
    assert_eq!(r.await.status, 200);

    let r = handle(&auth, post("/sign-in/magic-link", json!({ "email": "grace@example.com" }), None)).await;
    assert_eq!(json_of(&r), json!({ "status": true }));
    let token = outbox.0.lock().unwrap()[0].token.clone();
    let verify = || Request { query: format!("token={token}"), ..get("/magic-link/verify", None) };
    let r = handle(&auth, verify()).await;
    assert_eq!((r.status, json_of(&r)["user"]["emailVerified"].as_bool()), (200, Some(true)));
    let again = handle(&auth, verify()).await;
    assert_eq!(again.status, 302);
    assert_eq!(again.header("location"), Some("http://localhost:3000/?error=INVALID_TOKEN"));
    auth.close().await;
}

fn seconds_between(start: &Value, end: &Value) -> i64 {
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a date")).expect("ISO 8601");
    (at(end) - at(start)).num_seconds()
}

/// The guest lifecycle without Python: a guest lifetime of its own, the in-place
/// upgrade, and cleanup that deletes idle guests only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_lifecycle_in_rust_alone() {
    let guests = json!({ "anonymous": { "expires_in": 3600, "max_age": 60 } });
    for (url, auth) in engines_with(guests).await {
        let sign_in = || handle(&auth, post("/sign-in/anonymous", json!({}), None));
        let r = sign_in().await;
        assert_eq!(r.status, 200, "{url}");
        let upgraded = session_cookie(&r).unwrap();
        let id = json_of(&r)["user"]["id"].as_str().unwrap().to_owned();
        let session = json_of(&handle(&auth, get("/get-session", Some(&upgraded))).await)["session"].clone();
        assert_eq!(seconds_between(&session["createdAt"], &session["expiresAt"]), 3600, "{url}");

        let email = format!("{}@example.com", unique("upgrade"));
        let body = json!({ "email": email.to_uppercase(), "password": "correct-horse", "name": "Ada" });
        let r = handle(&auth, post("/anonymous/upgrade", body.clone(), Some(&upgraded))).await;
        assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
        let user = &json_of(&r)["user"];
        assert_eq!(
            (user["id"].as_str(), user["email"].as_str(), &user["isAnonymous"]),
            (Some(&*id), Some(&*email), &json!(false))
        );
        let again = handle(&auth, post("/anonymous/upgrade", body, Some(&upgraded))).await;
        assert_eq!((again.status, json_of(&again)["code"].as_str()), (400, Some("USER_IS_NOT_ANONYMOUS")), "{url}");
        let login = handle(&auth, post("/sign-in/email", json!({ "email": email, "password": "correct-horse" }), None));
        assert_eq!(json_of(&login.await)["user"]["id"], id.as_str(), "{url}");

        let idle: Vec<String> = [sign_in().await, sign_in().await].iter().map(|r| session_cookie(r).unwrap()).collect();
        auth.clock.advance(120);
        let fresh = session_cookie(&sign_in().await).unwrap();
        let options = |dry_run| CleanupOptions { dry_run, batch_size: 1, max_age: None, extension: None };
        let dry = auth.cleanup_anonymous_users(options(true)).await.unwrap();
        assert!(dry.dry_run && dry.deleted == 2, "{url}: {dry:?}");
        assert!(
            handle(&auth, get("/get-session", Some(&idle[0]))).await.body != b"null",
            "{url}: a dry run deletes nothing"
        );
        let report = auth.cleanup_anonymous_users(options(false)).await.unwrap();
        assert!(report.deleted == 2 && report.failed == 0, "{url}: {report:?}");
        for cookie in &idle {
            assert_eq!(
                handle(&auth, get("/get-session", Some(cookie))).await.body,
                b"null",
                "{url}: an idle guest is gone"
            );
        }
        for cookie in [&fresh, &upgraded] {
            assert!(handle(&auth, get("/get-session", Some(cookie))).await.body != b"null", "{url}: kept");
        }
        auth.close().await;
    }
}

/// Every route of a plugin, read off the route tables: an empty 404 while its plugin
/// is off (as for an unknown path, spec §1.1), served once it is on.
#[tokio::test]
async fn plugin_routes_follow_their_plugin() {
    let request = |def: &kernia::endpoint::RouteDef| {
        let r = if def.method == "GET" { get(def.path, None) } else { post(def.path, json!({}), None) };
        r.with_header("host", "localhost")
    };
    let off = Arc::new(Auth::new(config("sqlite::memory:")).await.unwrap());
    let plugins =
        json!({ "anonymous": { "resume": true }, "username": {}, "magic_link": {}, "passkey": {}, "email_otp": {} });
    let outbox = Arc::new(Outbox(std::sync::Mutex::new(Vec::new())));
    let callbacks = kernia::callbacks::Callbacks { magic_link: Some(outbox), ..Default::default() };
    let on = Arc::new(Auth::with_callbacks(config_with("sqlite::memory:", plugins), callbacks).await.unwrap());
    let routes: Vec<_> = kernia::routes::TABLES.iter().flat_map(|t| t.iter()).filter(|d| d.plugin.is_some()).collect();
    assert!(routes.len() >= 16, "{}", routes.len());
    for def in routes {
        let r = handle(&off, request(def)).await;
        assert_eq!((r.status, r.body.len()), (404, 0), "{} {} with its plugin off", def.method, def.path);
        let r = handle(&on, request(def)).await;
        assert!(!(r.status == 404 && r.body.is_empty()), "{} {} with its plugin on", def.method, def.path);
    }
}
