//! The conversion engine with Rust callbacks: the cases no HTTP endpoint reaches
//! yet (the new user is the guest itself, or another guest), on every backend.

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kernia::callbacks::{AnonymousCallbacks, CallbackRequest, LinkContext};
use kernia::link::Conversion;
use kernia::model::User;
use kernia::pipeline::handle;
use kernia::storage::{AppSql, Login, SqlValue, WriteOp};
use kernia::{Auth, AuthError, Config, Request};
use serde_json::json;

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl AnonymousCallbacks for Recorder {
    fn has_on_link(&self) -> bool {
        true
    }
    async fn generate_name(&self, _: &CallbackRequest) -> Result<Option<String>, AuthError> {
        Ok(Some("Rusty Guest".into()))
    }
    async fn generate_random_email(&self, _: &CallbackRequest) -> Result<Option<String>, AuthError> {
        Ok(None)
    }
    async fn on_link(&self, anon: &User, new: &User, ctx: LinkContext) -> Result<(), AuthError> {
        // ctx.db sees the guest inside the conversion's transaction.
        let sql = if ctx.db.dialect() == "postgres" {
            r#"SELECT "id" FROM "user" WHERE "id" = $1"#
        } else {
            r#"SELECT "id" FROM "user" WHERE "id" = ?"#
        };
        let rows = ctx
            .db
            .fetch_all(sql, vec![SqlValue::Text(anon.id.clone())])
            .await
            .map_err(|e| AuthError::internal(e.to_string()))?;
        assert_eq!(rows.len(), 1);
        self.calls.lock().unwrap().push((anon.id.clone(), new.id.clone()));
        Ok(())
    }
}

/// Every backend's URL, and PostgreSQL's database (to keep until the test ends).
fn urls() -> (Vec<String>, Option<common::PgDatabase>) {
    let file = std::env::temp_dir().join(format!("kernia-guest-{}.db", kernia::crypto::new_id()));
    let mut urls = vec!["sqlite::memory:".to_owned(), format!("sqlite:///{}", file.display())];
    let postgres = common::postgres();
    urls.extend(postgres.as_ref().map(|db| db.url.clone()));
    (urls, postgres)
}

async fn engine(url: &str, recorder: Arc<Recorder>) -> Arc<Auth> {
    let opts = json!({
        "database": url, "secret": "guest-test-secret-0123456789abcdef",
        "email_and_password": { "enabled": true }, "rate_limit": { "enabled": false }, "anonymous": {},
    });
    let cfg = Config::from_json(&opts.to_string()).unwrap();
    let hooks = kernia::callbacks::Callbacks { anonymous: Some(recorder), ..Default::default() };
    Arc::new(Auth::with_callbacks(cfg, hooks).await.unwrap())
}

async fn new_guest(auth: &Arc<Auth>) -> (kernia::model::Session, User) {
    let mut req = Request::new("POST", "/sign-in/anonymous").with_json(&json!({}));
    req.peer_ip = Some("127.0.0.1".into());
    let resp = handle(auth, req).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["user"]["name"], "Rusty Guest");
    let token = body["token"].as_str().unwrap();
    auth.store.session_with_user(token).await.unwrap().unwrap()
}

fn conversion(session: &kernia::model::Session, guest: &User, new_user: User, writes: Vec<WriteOp>) -> Conversion {
    Conversion {
        guest_session: session.clone(),
        guest_user: guest.clone(),
        new_user,
        writes,
        request: CallbackRequest::of(&Request::new("POST", "/sign-in/passkey"), None),
        method: "passkey",
        at_ms: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_user_keeps_the_guest_and_still_calls_on_link() {
    let (urls, _postgres) = urls();
    for url in urls {
        let rec = Arc::new(Recorder::default());
        let auth = engine(&url, rec.clone()).await;
        let (session, guest) = new_guest(&auth).await;
        let fresh = auth.sessions.create(&guest.id, false, true, &Request::new("GET", "/"), None);
        let c = conversion(&session, &guest, guest.clone(), vec![WriteOp::InsertSession(fresh.clone())]);
        auth.linker.clone().convert(c).await.unwrap();
        assert_eq!(*rec.calls.lock().unwrap(), vec![(guest.id.clone(), guest.id.clone())], "{url}");
        assert!(auth.store.session_with_user(&session.token).await.unwrap().is_some(), "{url}: guest session kept");
        assert!(auth.store.session_with_user(&fresh.token).await.unwrap().is_some(), "{url}: new session committed");
        auth.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_new_user_keeps_the_guest() {
    let (urls, _postgres) = urls();
    for url in urls {
        let rec = Arc::new(Recorder::default());
        let auth = engine(&url, rec.clone()).await;
        let (session, guest) = new_guest(&auth).await;
        let (_, other_guest) = new_guest(&auth).await;
        let c = conversion(&session, &guest, other_guest.clone(), vec![]);
        auth.linker.clone().convert(c).await.unwrap();
        assert_eq!(rec.calls.lock().unwrap().len(), 1, "{url}");
        assert!(auth.store.session_with_user(&session.token).await.unwrap().is_some(), "{url}");
        auth.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_new_user_deletes_the_guest_and_leaves_no_locks() {
    let (urls, _postgres) = urls();
    for url in urls {
        let rec = Arc::new(Recorder::default());
        let auth = engine(&url, rec.clone()).await;
        let (session, guest) = new_guest(&auth).await;
        let now = auth.clock.now_ms();
        let email = format!("{}@example.com", kernia::crypto::new_id().to_lowercase());
        let real = User::new(kernia::crypto::new_id(), "Real".into(), email, false, now);
        let c = conversion(&session, &guest, real.clone(), vec![WriteOp::InsertUser(real.clone())]);
        auth.linker.clone().convert(c).await.unwrap();
        assert!(auth.store.session_with_user(&session.token).await.unwrap().is_none(), "{url}");
        assert!(auth.store.user(Login::Email, &guest.email).await.unwrap().is_none(), "{url}: guest deleted");
        assert!(auth.store.user(Login::Email, &real.email).await.unwrap().is_some(), "{url}");
        assert!(auth.linker.locks.is_empty(), "{url}: lock entries must not pile up");
        auth.close().await;
    }
}
