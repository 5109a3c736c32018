//! The HTTP ceiling for `GET /get-session`: a hyper server set up as the native server
//! is (HTTP/1.1 keep-alive on tokio's multi-threaded runtime, `TCP_NODELAY`), answering
//! every request with a fixed body of the given size and the headers get-session sends,
//! and nothing else: no routing, no cookie, no database. bench/run.py measures it beside
//! the native server, in the same run, with the same wrk.
//!
//! cargo run --release --example bare_http -- PORT BODY_BYTES

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).expect("PORT");
    let size: usize = args.next().and_then(|n| n.parse().ok()).expect("BODY_BYTES");
    let body = Bytes::from(vec![b'x'; size]);
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await.expect("bind");
    let mut builder = http1::Builder::new();
    builder.keep_alive(true).timer(TokioTimer::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        let service = service_fn(move |_req| {
            let mut resp = hyper::Response::new(Full::new(body.clone()));
            let headers = resp.headers_mut();
            headers.insert("content-type", "application/json".parse().expect("header"));
            headers.insert("cache-control", "no-store".parse().expect("header"));
            headers.insert("pragma", "no-cache".parse().expect("header"));
            async move { Ok::<_, Infallible>(resp) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
