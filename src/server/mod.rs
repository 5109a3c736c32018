//! The native HTTP server: hyper on tokio, HTTP/1.1 with keep-alive. It only
//! converts between hyper and the core; every behaviour lives in `Auth::handle`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::core::hooks::Extension;
use crate::core::request::Request;
use crate::core::response::Response;
use crate::error::AuthError;
use crate::Auth;

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight requests get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

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

async fn accept_loop(listener: TcpListener, auth: Arc<Auth>, extension: Extension, mut stopped: oneshot::Receiver<()>) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder.keep_alive(true).timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let (auth, extension) = (auth.clone(), extension.clone());
                    let service = service_fn(move |req| serve_one(auth.clone(), extension.clone(), peer, req));
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        let _ = conn.await;
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

async fn serve_one(
    auth: Arc<Auth>,
    extension: Extension,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let limit = auth.cfg.advanced.max_body_size;
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Ok(to_hyper(AuthError::PayloadTooLarge(limit).to_response()));
        }
        // The client went away or sent a broken body: nobody is left to answer.
        Err(_) => return Ok(to_hyper(Response::empty(400))),
    };
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let req = Request {
        method: parts.method.as_str().to_owned(),
        path: auth.relative_path(parts.uri.path(), "").unwrap_or("").to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
        body,
        peer_ip: Some(peer.ip().to_string()),
        extension,
    };
    Ok(to_hyper(auth.handle(req).await))
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
