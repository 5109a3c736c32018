//! The native HTTP server: hyper on tokio, HTTP/1.1 with keep-alive. It only
//! converts between hyper and the core; every behaviour lives in `Auth::handle`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;

use crate::error::AuthError;
use crate::http::request::Extension;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::Auth;

/// How long in-flight requests get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// File descriptors kept free of connections, for the database, logs and the app.
const RESERVED_FDS: usize = 128;
/// The most connections served at once when the app does not say.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Connections served at once: the option, or what the process's file-descriptor
/// limit allows (raised to its hard maximum first, as servers usually do).
fn max_connections(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let soft = raise_fd_limit();
    soft.saturating_sub(RESERVED_FDS).clamp(16, DEFAULT_MAX_CONNECTIONS)
}

#[cfg(unix)]
fn raise_fd_limit() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        let want = lim.rlim_max.min(65_536);
        if lim.rlim_cur < want {
            let raised = libc::rlimit { rlim_cur: want, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = want;
            }
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

#[cfg(not(unix))]
fn raise_fd_limit() -> usize {
    DEFAULT_MAX_CONNECTIONS + RESERVED_FDS
}

/// A running server; [`Server::stop`] shuts it down gracefully.
pub struct Server {
    pub local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: JoinHandle<()>,
}

impl Server {
    /// Binds `addr` and serves until stopped. `extension` goes with every request
    /// (the Python bindings pass the event loop their callbacks run on).
    pub async fn start(auth: Arc<Auth>, addr: SocketAddr, extension: Extension) -> io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let done = tokio::spawn(accept_loop(listener, auth, extension, stopped));
        Ok(Server { local_addr, stop: Some(stop), done })
    }

    /// Stops accepting, lets in-flight requests finish (up to 30 s), then returns.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.done).await;
    }
}

/// A whole HTTP/1.1 response that closes its connection, as bytes.
fn raw_response(resp: Response) -> Arc<[u8]> {
    let reason = hyper::StatusCode::from_u16(resp.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", resp.status);
    for (name, value) in &resp.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("connection: close\r\ncontent-length: {}\r\n\r\n", resp.body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&resp.body);
    bytes.into()
}

/// Answers a connection over the limit and closes it, without waiting on the client
/// for long.
async fn refuse(mut stream: tokio::net::TcpStream, answer: Arc<[u8]>) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    })
    .await;
}

async fn accept_loop(listener: TcpListener, auth: Arc<Auth>, extension: Extension, mut stopped: oneshot::Receiver<()>) {
    let graceful = GracefulShutdown::new();
    let timeout = Duration::from_secs_f64(auth.cfg.advanced.request_timeout);
    let slots = Arc::new(Semaphore::new(max_connections(auth.cfg.advanced.max_connections)));
    let over_limit = raw_response(Response::error(&AuthError::TooManyConnections));
    let mut builder = http1::Builder::new();
    builder.keep_alive(true).timer(TokioTimer::new()).header_read_timeout(timeout);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tokio::spawn(refuse(stream, over_limit.clone()));
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let (auth, extension) = (auth.clone(), extension.clone());
                    let peer_ip: Arc<str> = peer.ip().to_string().into();
                    let service =
                        service_fn(move |req| serve_one(auth.clone(), extension.clone(), peer_ip.clone(), timeout, req));
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        let _ = conn.await;
                        drop(slot);
                    });
                }
                // Out of file descriptors and the like: wait a little instead of spinning.
                Err(e) => {
                    eprintln!("kernia: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

fn to_hyper(resp: Response) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(Bytes::from(resp.body)));
    *out.status_mut() = hyper::StatusCode::from_u16(resp.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    for (name, value) in resp.headers {
        if let (Ok(n), Ok(v)) =
            (hyper::header::HeaderName::from_bytes(name.as_bytes()), hyper::header::HeaderValue::from_str(&value))
        {
            headers.append(n, v);
        }
    }
    out
}

/// A `Content-Length` the body may not have.
fn declared_too_large(headers: &hyper::HeaderMap, limit: usize) -> bool {
    headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
}

/// The most of a refused body read (and dropped) so its sender gets the answer.
const DISCARD_AT_MOST: usize = 16 * 1024 * 1024;

async fn discard(mut body: Incoming, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, async {
        let mut seen = 0;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > DISCARD_AT_MOST {
                break;
            }
        }
    })
    .await;
}

async fn serve_one(
    auth: Arc<Auth>,
    extension: Extension,
    peer_ip: Arc<str>,
    timeout: Duration,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let limit = auth.cfg.advanced.max_body_size;
    // Refused before a byte of the body is used. The body is still read and
    // dropped for a while (in the background, up to a bound): a client that is
    // sending it reads no answer from a connection closed under its feet.
    if declared_too_large(&parts.headers, limit) {
        tokio::spawn(discard(body, timeout));
        return Ok(to_hyper(Response::error(&AuthError::PayloadTooLarge(limit))));
    }
    // No body (a GET): nothing to wait for, and no timer to set.
    let body = if body.is_end_stream() {
        Ok(Ok(Vec::new()))
    } else {
        tokio::time::timeout(timeout, Limited::new(body, limit).collect())
            .await
            .map(|read| read.map(|collected| collected.to_bytes().to_vec()))
    };
    let body = match body {
        Ok(Ok(body)) => body,
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Ok(to_hyper(Response::error(&AuthError::PayloadTooLarge(limit))));
        }
        // The client went away or sent a broken body: nobody is left to answer.
        Ok(Err(_)) => return Ok(to_hyper(Response::empty(400))),
        // A body that never finishes does not hold the connection any longer.
        Err(_) => return Ok(to_hyper(Response::error(&AuthError::RequestTimeout))),
    };
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            let value = match std::str::from_utf8(v.as_bytes()) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            };
            (k.as_str().to_owned(), value)
        })
        .collect();
    if let (Some(metrics), Some(path)) = (&auth.metrics, &auth.cfg.metrics_path) {
        // Metrics outside the base path: the native server answers them itself.
        if parts.uri.path() == path && parts.method == hyper::Method::GET && auth.cfg.metrics_route().is_none() {
            return Ok(to_hyper(crate::pipeline::metrics_page(metrics)));
        }
    }
    let req = Request {
        method: parts.method.as_str().to_owned(),
        path: auth.relative_path(parts.uri.path(), "").unwrap_or("").to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
        body,
        peer_ip: Some(peer_ip.to_string()),
        http_version: match parts.version {
            hyper::Version::HTTP_10 => "HTTP/1.0",
            hyper::Version::HTTP_11 => "HTTP/1.1",
            _ => "",
        },
        extension,
    };
    Ok(to_hyper(crate::pipeline::handle(&auth, req).await))
}

/// Resolves when the process gets SIGINT or SIGTERM, and says so on standard error.
pub async fn shutdown_signal() {
    let name = received_signal().await;
    eprintln!("kernia: {name} received; stopping: finishing the requests in flight (up to 30 s)");
}

async fn received_signal() -> &'static str {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            let _ = ctrl_c.await;
            return "SIGINT";
        };
        tokio::select! {
            _ = ctrl_c => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
        "Ctrl-C"
    }
}
