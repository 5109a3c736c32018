//! CPU per `GET /get-session` inside the engine, without HTTP: `pipeline::handle` called
//! in a loop on one thread, with the cookie cache off (SQLite read) and on. The figure
//! the native server adds to hyper's own cost per request.
//!
//! cargo run --release --example engine_cost -- [ITERATIONS [cached|uncached]]

use std::sync::Arc;
use std::time::Instant;

use kernia::pipeline::handle;
use kernia::{Auth, Config, Request};
use serde_json::json;

async fn engine(cache: bool) -> Arc<Auth> {
    let file = std::env::temp_dir().join(format!("kernia-engine-cost-{}-{cache}.db", std::process::id()));
    let session = if cache { json!({ "cookie_cache_enabled": true, "cookie_cache_max_age": 3600 }) } else { json!({}) };
    let opts = json!({
        "database": format!("sqlite:///{}", file.display()),
        "secret": "bench-secret-0123456789abcdef0123456789",
        "base_url": "http://127.0.0.1:3000",
        "rate_limit": { "enabled": false },
        "anonymous": {},
        "session": session,
    });
    Arc::new(Auth::new(Config::from_json(&opts.to_string()).expect("options")).await.expect("engine"))
}

fn request(method: &str, path: &str, cookie: Option<&str>) -> Request {
    let mut req =
        Request::new(method, path).with_header("host", "127.0.0.1:3000").with_header("origin", "http://127.0.0.1:3000");
    if let Some(cookie) = cookie {
        req = req.with_header("cookie", cookie);
    }
    req.peer_ip = Some("127.0.0.1".into());
    req.http_version = "HTTP/1.1";
    req
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let only = args.next();
    for cache in [false, true] {
        if only.as_deref().is_some_and(|o| (o == "cached") != cache) {
            continue;
        }
        let auth = engine(cache).await;
        let signed_in = handle(&auth, request("POST", "/sign-in/anonymous", None).with_json(&json!({}))).await;
        let cookie: Vec<String> = signed_in
            .headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .filter_map(|(_, v)| v.split(';').next().map(str::to_owned))
            .collect();
        let cookie = cookie.join("; ");
        let get = request("GET", "/get-session", Some(&cookie));
        for _ in 0..n / 10 {
            let _ = handle(&auth, get.clone()).await;
        }
        let started = Instant::now();
        for _ in 0..n {
            let resp = handle(&auth, get.clone()).await;
            assert_eq!(resp.status, 200);
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!("get-session, cookie cache {}: {per:.2} µs per request", if cache { "on " } else { "off" });
    }
}
