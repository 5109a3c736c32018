//! Property tests (a fuzzer that runs in `cargo test`): body, query and cookie
//! parsing never panic, trusted URLs are trusted in the form they are used, and
//! no request, however malformed, gets a 5xx from the engine.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use kernia::callbacks::{CallbackRequest, Callbacks, MagicLinkCallbacks, MagicLinkMessage};
use kernia::error::AuthError;
use kernia::http::body::Body;
use kernia::http::origin;
use kernia::pipeline::handle;
use kernia::{Auth, Config, Request};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/sign-up/email"),
    ("POST", "/sign-in/email"),
    ("GET", "/get-session"),
    ("POST", "/sign-out"),
    ("POST", "/sign-in/anonymous"),
    ("POST", "/delete-anonymous-user"),
    ("POST", "/anonymous/upgrade"),
    ("POST", "/sign-in/username"),
    ("POST", "/sign-up/username"),
    ("POST", "/is-username-available"),
    ("POST", "/sign-in/magic-link"),
    ("GET", "/magic-link/verify"),
    ("GET", "/passkey/generate-register-options"),
    ("POST", "/passkey/verify-registration"),
    ("GET", "/passkey/generate-authenticate-options"),
    ("POST", "/passkey/verify-authentication"),
    ("POST", "/passkey/delete-passkey"),
    ("POST", "/passkey/update-passkey"),
    ("GET", "/ok"),
];

const FIELDS: &[&str] = &[
    "email",
    "password",
    "name",
    "image",
    "callbackURL",
    "newUserCallbackURL",
    "errorCallbackURL",
    "rememberMe",
    "username",
    "displayUsername",
    "token",
    "id",
    "response",
    "metadata",
];

const CONTENT_TYPES: &[&str] =
    &["application/json", "application/x-www-form-urlencoded", "text/plain", "", "application/json; charset=x"];

/// Text with the characters that break parsers: separators, escapes, NUL, non-ASCII.
fn nasty_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a",
        "@",
        "%",
        "%00",
        "\0",
        "\\",
        "/",
        "//",
        "?",
        "#",
        "=",
        "&",
        ";",
        ":",
        "\t",
        "\n",
        " ",
        "é",
        "💥",
        "http://",
        "localhost:3000",
        "evil.com",
        "%5C",
        "..",
        "\"",
        "{",
        "}",
        "[",
        "]",
        ",",
    ]);
    prop_oneof![any::<String>(), prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        nasty_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(nasty_text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Values a route accepts, now and then spoiled by a character that breaks things.
fn plausible() -> impl Strategy<Value = String> {
    let good = prop::sample::select(vec![
        "fuzz@example.com",
        "correct-horse-battery",
        "Ada",
        "ada_1",
        "/dashboard",
        "http://localhost:3000/x",
        "true",
    ]);
    let spoil = prop::sample::select(vec!["", "", "\0", "\0", "\0", "%00", "\\", "é", "\n"]);
    (good, spoil, any::<bool>()).prop_map(|(g, s, front)| if front { format!("{s}{g}") } else { format!("{g}{s}") })
}

fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![json_value(), plausible().prop_map(Value::String)]
}

/// A body: random bytes, or an object of the fields the routes read, with any values.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let object = prop::collection::vec((prop::sample::select(FIELDS.to_vec()), field_value()), 0..6).prop_map(|kv| {
        let map: Map<String, Value> = kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        serde_json::to_vec(&Value::Object(map)).unwrap()
    });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..200), object, form().prop_map(String::into_bytes)]
}

/// `key=value&...` of the fields the routes read.
fn form() -> impl Strategy<Value = String> {
    let value = prop_oneof![nasty_text(), plausible()];
    prop::collection::vec((prop::sample::select(FIELDS.to_vec()), value), 0..6).prop_map(|kv| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in kv {
            s.append_pair(k, &v);
        }
        s.finish()
    })
}

/// A body each route accepts as it is (what the fuzzer spoils one field of).
fn template(path: &str, n: u32) -> Value {
    let email = format!("fuzz{n}@example.com");
    let password = "correct-horse-battery";
    match path {
        "/sign-up/email" => json!({"name": "Ada", "email": email, "password": password, "image": "http://x/y.png",
                                   "username": "ada_1", "displayUsername": "Ada", "callbackURL": "/dashboard"}),
        "/sign-in/email" => json!({"email": email, "password": password, "callbackURL": "/dashboard"}),
        "/anonymous/upgrade" => json!({"email": email, "password": password, "name": "Ada"}),
        "/sign-in/username" => json!({"username": "ada_1", "password": password}),
        "/sign-up/username" => json!({"username": "ada_1", "password": password, "name": "Ada"}),
        "/is-username-available" => json!({"username": "ada_1"}),
        "/sign-in/magic-link" => json!({"email": email, "name": "Ada", "callbackURL": "/a",
                                        "newUserCallbackURL": "/b", "errorCallbackURL": "/c"}),
        "/passkey/delete-passkey" => json!({"id": "abc"}),
        "/passkey/update-passkey" => json!({"id": "abc", "name": "laptop"}),
        "/passkey/verify-authentication" | "/passkey/verify-registration" => {
            json!({"response": {"id": "abc", "rawId": "abc", "response": {}, "type": "public-key"}})
        }
        _ => json!({}),
    }
}

/// A route's template with one field (or none) replaced by anything at all.
fn spoiled(path: &'static str) -> impl Strategy<Value = Value> {
    let keys: Vec<String> = template(path, 0).as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    let n = keys.len().max(1);
    let value = prop_oneof![1 => field_value(), 2 => plausible().prop_map(Value::String)];
    (0..n + 1, value, any::<u32>()).prop_map(move |(which, value, unique)| {
        let mut t = template(path, unique);
        if let (Some(key), Some(map)) = (keys.get(which), t.as_object_mut()) {
            map.insert(key.clone(), value);
        }
        t
    })
}

fn request_for(route: (&'static str, &'static str), session: Option<String>) -> impl Strategy<Value = Request> {
    let (method, path) = route;
    let query = if path == "/magic-link/verify" {
        prop_oneof![
            form(),
            (plausible(), plausible()).prop_map(|(t, c)| format!(
                "token={}&callbackURL={}",
                form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>(),
                form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
            ))
        ]
        .boxed()
    } else {
        prop_oneof![nasty_text(), form()].boxed()
    };
    let cookie = prop_oneof![Just(None), nasty_text().prop_map(Some), Just(session).prop_map(|s| s)];
    // Mostly well-formed requests with one thing wrong: those reach the database.
    let body = prop_oneof![1 => body(), 4 => spoiled(path).prop_map(|v| serde_json::to_vec(&v).unwrap())];
    let origin = prop_oneof![
        3 => Just(Some("http://localhost:3000")),
        1 => prop::option::of(prop::sample::select(vec!["null", "https://evil.com", ""])),
    ];
    let content_type = prop_oneof![3 => Just("application/json"), 1 => prop::sample::select(CONTENT_TYPES.to_vec())];
    (prop::option::of(query), cookie, origin, content_type, body).prop_map(
        move |(query, cookie, origin, content_type, body)| {
            let mut req = Request::new(method, path).with_header("host", "localhost:3000");
            req.http_version = "HTTP/1.1";
            req.peer_ip = Some("127.0.0.1".into());
            if let Some(q) = query {
                req.query = q;
            }
            if let Some(c) = cookie {
                req = req.with_header("cookie", &c);
            }
            if let Some(o) = origin {
                req = req.with_header("origin", o);
            }
            if !content_type.is_empty() {
                req = req.with_header("content-type", content_type);
            }
            req.body = body;
            req
        },
    )
}

/// Any route; `session` is a valid session cookie some requests carry.
fn request_with(session: Option<String>) -> impl Strategy<Value = Request> {
    prop::sample::select(ROUTES.to_vec()).prop_flat_map(move |route| request_for(route, session.clone()))
}

fn request() -> impl Strategy<Value = Request> {
    request_with(None)
}

fn config(extra: Value) -> Config {
    let mut opts = json!({
        "database": "sqlite::memory:",
        "secret": "fuzz-secret-0123456789abcdef-0123456789",
        "email_and_password": { "enabled": true },
        "rate_limit": { "enabled": false },
        "trusted_origins": ["https://app.example.com", "*.preview.example.com", "myapp://callback"],
    });
    if let (Some(opts), Value::Object(extra)) = (opts.as_object_mut(), extra) {
        opts.extend(extra);
    }
    Config::from_json(&opts.to_string()).unwrap()
}

struct DropMail;

#[async_trait]
impl MagicLinkCallbacks for DropMail {
    async fn send(&self, _: &CallbackRequest, _: MagicLinkMessage) -> Result<(), AuthError> {
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parsing_never_panics(req in request(), key in nasty_text()) {
        let _ = req.cookie(&key);
        let _ = req.query_param(&key);
        for allow_form in [false, true] {
            if let Ok(body) = Body::parse(&req, allow_form) {
                let mut v = body.validator();
                for field in FIELDS {
                    let _ = v.optional_string(field);
                    let _ = v.optional_email(field);
                    let _ = v.optional_bool(field);
                    let _ = v.optional_object(field);
                }
                let _ = v.finish();
            }
        }
    }

    #[test]
    fn a_trusted_url_is_trusted_in_the_form_it_is_used(url in nasty_text()) {
        let cfg = config(json!({}));
        if let Some(used) = origin::trusted_url(&cfg, &url, true) {
            let again = origin::trusted_url(&cfg, &used, true);
            prop_assert_eq!(again.as_deref(), Some(used.as_str()));
            prop_assert!(!used.contains(['\t', '\n', '\r', '\\', '\0']), "{:?} -> {:?}", url, used);
            if !used.starts_with('/') {
                let parsed = url::Url::parse(&used).unwrap();
                let host = parsed.host_str().unwrap_or_default();
                prop_assert!(
                    ["localhost", "app.example.com", "callback"].contains(&host) || host.ends_with(".preview.example.com"),
                    "{:?} -> {:?}", url, used
                );
            }
        }
    }
}

/// Throws `cases` generated requests at an engine on `database` with every plugin on.
fn no_request_gets_a_5xx_on(database: &str, cases: u32) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let extra = json!({ "database": database, "anonymous": {}, "username": {}, "magic_link": {}, "passkey": {} });
    let hooks = Callbacks { magic_link: Some(Arc::new(DropMail)), ..Callbacks::default() };
    let auth = Arc::new(rt.block_on(Auth::with_callbacks(config(extra), hooks)).unwrap());
    // A signed-in user, so that requests carrying its cookie reach the routes behind a session.
    let sign_up = Request::new("POST", "/sign-up/email")
        .with_header("host", "localhost:3000")
        .with_json(&json!({"name": "Eve", "email": format!("eve-{}@example.com", kernia::crypto::new_id().to_lowercase()), "password": "correct-horse-battery"}));
    let resp = rt.block_on(handle(&auth, sign_up));
    assert_eq!(resp.status, 200);
    let session = resp.header("set-cookie").and_then(|c| c.split(';').next()).map(str::to_owned);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let served = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&request_with(session), |req| {
            served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let summary = format!("{} {}?{} {:?}", req.method, req.path, req.query, String::from_utf8_lossy(&req.body));
            let resp = rt.block_on(handle(&auth, req));
            prop_assert!(
                resp.status < 500,
                "{} answered {}: {}",
                summary,
                resp.status,
                String::from_utf8_lossy(&resp.body)
            );
            Ok(())
        })
        .unwrap();
    eprintln!("{database}: {} requests served, none with a 5xx", served.into_inner());
    rt.block_on(auth.close());
}

#[test]
fn no_request_gets_a_5xx_on_sqlite() {
    no_request_gets_a_5xx_on("sqlite::memory:", 3000);
}

/// PostgreSQL refuses some text SQLite stores (NUL characters): that must be a 400 too.
#[test]
fn no_request_gets_a_5xx_on_postgres() {
    let Some(db) = common::postgres() else { return };
    no_request_gets_a_5xx_on(&db.url, 2000);
}
