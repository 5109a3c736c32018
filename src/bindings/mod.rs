//! The Python face of the engine (`kernia._native`). pyo3 lives only here.
//!
//! Requests are served on the engine's tokio runtime: Python hands over the
//! request, gets an awaitable back, and the GIL is not held while the engine
//! waits on the database or on hashing. Responses convert to Python objects
//! lazily, on the event loop's thread, through [`NativeResponse`].

mod bridge;
mod callbacks;
mod convert;
mod database;

use std::net::ToSocketAddrs;
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::callbacks::{AccountCallbacks, AnonymousCallbacks, Callbacks, MagicLinkCallbacks, UsernameCallbacks};
use crate::config::{Config, ConfigError, Options};
use crate::http::request::Request;
use crate::model::{Session, SessionJson, User, UserFields, UserJson};
use crate::server::Server;
use crate::Auth;

create_exception!(kernia._native, KerniaError, PyException, "Base class of every error kernia raises.");
// A `ValueError` too; defined in Python (`kernia.errors`).
pyo3::import_exception!(kernia.errors, ConfigurationError);
create_exception!(kernia._native, DatabaseError, KerniaError, "SQL run through ctx.db failed.");

fn config_error(e: ConfigError) -> PyErr {
    ConfigurationError::new_err(e.to_string())
}

fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// `[(name: bytes, value: bytes), ...]` as ASGI gives them, names lower-cased.
fn headers_from(list: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    header_pairs(list, |_| true)
}

/// The `Cookie` headers of header pairs, the only ones a session check reads (the
/// others are not copied).
fn cookie_headers(list: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    header_pairs(list, |name| name == "cookie")
}

/// Header pairs (`str` or `bytes`) as lower-cased names and values, those whose name `keep`s.
fn header_pairs(list: &Bound<'_, PyAny>, keep: impl Fn(&str) -> bool) -> PyResult<Vec<(String, String)>> {
    let text = |v: Bound<'_, PyAny>| -> PyResult<String> {
        Ok(match v.downcast::<PyBytes>() {
            // Checked as UTF-8 first: far quicker than the lossy scan, which only text
            // that is not UTF-8 needs.
            Ok(b) => match std::str::from_utf8(b.as_bytes()) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(b.as_bytes()).into_owned(),
            },
            Err(_) => v.extract::<String>()?,
        })
    };
    let mut out = Vec::new();
    for item in list.try_iter()? {
        let item = item?;
        let pair = item.downcast::<PyTuple>().map_err(PyErr::from)?;
        let name = text(pair.get_item(0)?)?.to_ascii_lowercase();
        if keep(&name) {
            out.push((name, text(pair.get_item(1)?)?));
        }
    }
    Ok(out)
}

/// What `get_session` answers for a lookup: the session and user, `None` when signed out,
/// `GUEST_NOT_ALLOWED` for a guest where guests are refused.
fn session_answer(
    found: Option<(Session, User)>,
    allow_guests: bool,
    fields: UserFields,
) -> PyResult<Option<convert::SessionAndUser>> {
    match found {
        Some((_, user)) if user.is_anonymous && !allow_guests => {
            Err(callbacks::engine_error(crate::error::AuthError::GuestNotAllowed))
        }
        found => Ok(found.map(|(session, user)| convert::SessionAndUser(session, user, fields))),
    }
}

#[pyclass(module = "kernia._native", frozen)]
pub struct NativeResponse {
    #[pyo3(get)]
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[pymethods]
impl NativeResponse {
    /// ASGI-style `[(name, value), ...]` as bytes.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let pairs = self.headers.iter().map(|(k, v)| (PyBytes::new(py, k.as_bytes()), PyBytes::new(py, v.as_bytes())));
        PyList::new(py, pairs)
    }

    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.body)
    }
}

/// A native server started by `NativeAuth.start_server`.
#[pyclass(module = "kernia._native", frozen)]
pub struct ServerHandle {
    #[pyo3(get)]
    host: String,
    #[pyo3(get)]
    port: u16,
    server: Mutex<Option<Server>>,
}

#[pymethods]
impl ServerHandle {
    /// Stops accepting connections, lets in-flight requests finish, and returns.
    fn stop(&self, py: Python<'_>) {
        let server = self.server.lock().expect("server lock").take();
        if let Some(server) = server {
            py.detach(|| runtime().block_on(server.stop()));
        }
    }
}

#[pyclass(module = "kernia._native", frozen)]
pub struct NativeAuth {
    auth: Arc<Auth>,
    /// The Python handle `init()` returns, for `ctx.auth` in callbacks.
    handle: Arc<OnceLock<Py<PyAny>>>,
    /// Whether any Python callback may run on a request (then its event loop is captured).
    has_callbacks: bool,
}

#[pymethods]
impl NativeAuth {
    /// Validates the options (JSON with Kernia's field names, each plugin's
    /// options under its key), opens the database and migrates its schema. Blocks
    /// until ready, without the GIL. `callables` maps the plugins' callback names
    /// (`on_link`, `username_validator`, `send_magic_link`, ...) to Python functions.
    #[new]
    #[pyo3(signature = (options_json, callables=None))]
    fn new(py: Python<'_>, options_json: &str, callables: Option<Bound<'_, PyDict>>) -> PyResult<Self> {
        let options: Options = serde_json::from_str(options_json)
            .map_err(|e| ConfigurationError::new_err(format!("invalid options: {e}")))?;
        let cfg = Config::from_options(options).map_err(config_error)?;
        let handle = Arc::new(OnceLock::new());
        let cb = Arc::new(callbacks::PythonCallbacks::new(callables.as_ref(), handle.clone(), cfg.user_fields())?);
        let has_callbacks = cb.any;
        // The engine keeps each plugin's callbacks only when the plugin is on.
        let all = Callbacks {
            anonymous: Some(cb.clone() as Arc<dyn AnonymousCallbacks>),
            username: Some(cb.clone() as Arc<dyn UsernameCallbacks>),
            magic_link: cb.send_magic_link.is_some().then(|| cb.clone() as Arc<dyn MagicLinkCallbacks>),
            account: Some(cb.clone() as Arc<dyn AccountCallbacks>),
        };
        let auth = py.detach(|| runtime().block_on(Auth::with_callbacks(cfg, all))).map_err(config_error)?;
        Ok(NativeAuth { auth: Arc::new(auth), handle, has_callbacks })
    }

    /// Remembers the Python handle, for `ctx.auth`.
    fn _attach(&self, handle: Py<PyAny>) {
        let _ = self.handle.set(handle);
    }

    /// Serves one request; returns an awaitable of `NativeResponse`, or `None`
    /// when the path is outside this app (the caller answers 404).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (method, path, root_path, query, headers, body, client_host=None, http_version=None))]
    fn handle<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        path: &str,
        root_path: &str,
        query: &[u8],
        headers: &Bound<'py, PyAny>,
        body: &[u8],
        client_host: Option<String>,
        http_version: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let (Some(metrics), Some(metrics_path)) = (&self.auth.metrics, &self.auth.cfg.metrics_path) {
            // Served standalone, the app answers a metrics path outside the base path too.
            if root_path.is_empty() && path == metrics_path && method.eq_ignore_ascii_case("GET") {
                let resp = crate::pipeline::metrics_page(metrics);
                let ready = NativeResponse { status: resp.status, headers: resp.headers, body: resp.body };
                return bridge::awaitable(py, async move { Ok(ready) });
            }
        }
        let relative = self.auth.asgi_relative_path(path, root_path).unwrap_or("").to_owned();
        let req = Request {
            method: method.to_ascii_uppercase(),
            path: relative,
            query: String::from_utf8_lossy(query).into_owned(),
            headers: headers_from(headers)?,
            body: body.to_vec(),
            peer_ip: client_host,
            http_version: match http_version {
                Some("1.1") => "HTTP/1.1",
                Some("1.0") => "HTTP/1.0",
                Some("2") => "HTTP/2",
                _ => "",
            },
            extension: if self.has_callbacks {
                Some(Arc::new(pyo3_async_runtimes::tokio::get_current_locals(py)?))
            } else {
                None
            },
        };
        let auth = self.auth.clone();
        bridge::awaitable(py, async move {
            let resp = crate::pipeline::handle(&auth, req).await;
            Ok(NativeResponse { status: resp.status, headers: resp.headers, body: resp.body })
        })
    }

    /// Awaitable of `{"session": ..., "user": ...}` (dicts like the JSON) for the live session, or `None`;
    /// without `allow_guests` a guest's raises `GUEST_NOT_ALLOWED`. With the cookie cache on,
    /// a valid `session_data` cookie answers unless `disable_cookie_cache`.
    #[pyo3(signature = (headers, allow_guests=true, disable_cookie_cache=false))]
    fn get_session<'py>(
        &self,
        py: Python<'py>,
        headers: &Bound<'py, PyAny>,
        allow_guests: bool,
        disable_cookie_cache: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cookies = cookie_headers(headers)?;
        let auth = self.auth.clone();
        bridge::awaitable(py, async move {
            let found =
                auth.sessions.for_headers(cookies, !disable_cookie_cache).await.map_err(callbacks::engine_error)?;
            session_answer(found, allow_guests, auth.user_fields)
        })
    }

    /// `get_session` answered on the calling thread, with the GIL released for the read:
    /// the dict, `None` when signed out, or `NotImplemented` when only the awaitable
    /// `get_session` can answer (a refresh or an expired row to write, PostgreSQL, an
    /// in-memory database, a database error).
    #[pyo3(signature = (headers, allow_guests=true, disable_cookie_cache=false))]
    fn get_session_now<'py>(
        &self,
        py: Python<'py>,
        headers: &Bound<'py, PyAny>,
        allow_guests: bool,
        disable_cookie_cache: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cookies = cookie_headers(headers)?;
        let auth = &self.auth;
        match py.detach(|| auth.sessions.for_headers_now(cookies, !disable_cookie_cache)) {
            Some(Ok(found)) => session_answer(found, allow_guests, auth.user_fields)?.into_bound_py_any(py),
            None | Some(Err(_)) => Ok(py.NotImplemented().into_bound(py)),
        }
    }

    /// Awaitable of the guest funnel of the guests created at or after `since_ms` (all without it).
    #[pyo3(signature = (since_ms=None))]
    fn guest_stats<'py>(&self, py: Python<'py>, since_ms: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
        let auth = self.auth.clone();
        bridge::awaitable(py, async move {
            let stats = auth
                .store
                .guest_stats(since_ms, auth.clock.now_ms())
                .await
                .map_err(|e| callbacks::engine_error(e.into()))?;
            Ok(convert::PyJson(serde_json::to_value(stats).unwrap_or_default()))
        })
    }

    /// Awaitable of the cleanup's counts: `{"stale", "deleted", "kept", "failed", "dry_run"}`.
    #[pyo3(signature = (dry_run=false, batch_size=1000, max_age=None))]
    fn cleanup_anonymous_users<'py>(
        &self,
        py: Python<'py>,
        dry_run: bool,
        batch_size: usize,
        max_age: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let extension: crate::http::request::Extension =
            Some(Arc::new(pyo3_async_runtimes::tokio::get_current_locals(py)?));
        let options = crate::cleanup::CleanupOptions { dry_run, batch_size, max_age, extension };
        let auth = self.auth.clone();
        bridge::awaitable(py, async move {
            let report = auth.cleanup_anonymous_users(options).await.map_err(callbacks::engine_error)?;
            Ok(convert::PyJson(serde_json::to_value(report).unwrap_or_default()))
        })
    }

    /// Awaitable of user dicts, newest first.
    #[pyo3(signature = (is_anonymous=None, limit=100, offset=0))]
    fn list_users<'py>(
        &self,
        py: Python<'py>,
        is_anonymous: Option<bool>,
        limit: u64,
        offset: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let auth = self.auth.clone();
        bridge::awaitable(py, async move {
            let users = auth
                .store
                .list_users(is_anonymous, limit, offset)
                .await
                .map_err(|e| callbacks::engine_error(e.into()))?;
            let json: Vec<_> =
                users.iter().map(|u| serde_json::to_value(UserJson(u, auth.user_fields)).unwrap_or_default()).collect();
            Ok(convert::PyJson(serde_json::Value::Array(json)))
        })
    }

    /// Awaitable of the user's unexpired sessions, as `/list-sessions` shows them.
    fn list_sessions<'py>(&self, py: Python<'py>, user_id: String) -> PyResult<Bound<'py, PyAny>> {
        let auth = self.auth.clone();
        bridge::awaitable(py, async move {
            let sessions = auth.live_sessions(&user_id).await.map_err(callbacks::engine_error)?;
            let json = sessions.iter().map(|s| serde_json::to_value(SessionJson(s)).unwrap_or_default()).collect();
            Ok(convert::PyJson(serde_json::Value::Array(json)))
        })
    }

    /// Awaitable of whether a session with this token existed (it is gone now).
    fn revoke_session<'py>(&self, py: Python<'py>, token: String) -> PyResult<Bound<'py, PyAny>> {
        let auth = self.auth.clone();
        bridge::awaitable(py, async move { auth.revoke_session(&token).await.map_err(callbacks::engine_error) })
    }

    /// Awaitable: every session of the user ends.
    fn revoke_sessions<'py>(&self, py: Python<'py>, user_id: String) -> PyResult<Bound<'py, PyAny>> {
        let auth = self.auth.clone();
        bridge::awaitable(py, async move { auth.revoke_sessions(&user_id).await.map_err(callbacks::engine_error) })
    }

    /// Awaitable of the updated user, or `None` without such a user. `clear_image`
    /// removes the image; otherwise `None` leaves a field as it is.
    #[pyo3(signature = (user_id, name=None, image=None, clear_image=false))]
    fn update_user<'py>(
        &self,
        py: Python<'py>,
        user_id: String,
        name: Option<String>,
        image: Option<String>,
        clear_image: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let auth = self.auth.clone();
        let image = if clear_image { Some(None) } else { image.map(Some) };
        bridge::awaitable(py, async move {
            let user = auth.update_profile(&user_id, name, image).await.map_err(callbacks::engine_error)?;
            Ok(user.map(|u| convert::PyJson(serde_json::to_value(UserJson(&u, auth.user_fields)).unwrap_or_default())))
        })
    }

    /// Awaitable of whether the user existed (deleted now, with its sessions, accounts and passkeys).
    fn delete_user<'py>(&self, py: Python<'py>, user_id: String) -> PyResult<Bound<'py, PyAny>> {
        let auth = self.auth.clone();
        bridge::awaitable(py, async move { auth.delete_user(&user_id).await.map_err(callbacks::engine_error) })
    }

    /// Awaitable of the number of users (of guests, or of registered users).
    #[pyo3(signature = (is_anonymous=None))]
    fn count_users<'py>(&self, py: Python<'py>, is_anonymous: Option<bool>) -> PyResult<Bound<'py, PyAny>> {
        let auth = self.auth.clone();
        bridge::awaitable(py, async move {
            auth.store.count_users(is_anonymous).await.map_err(|e| callbacks::engine_error(e.into()))
        })
    }

    #[getter]
    fn base_path(&self) -> String {
        self.auth.cfg.base_path.clone()
    }

    /// The session cookie's name (its prefix and `__Secure-` applied).
    #[getter]
    fn session_cookie_name(&self) -> String {
        self.auth.sessions.cookies.session_token.clone()
    }

    #[getter]
    fn max_body_size(&self) -> usize {
        self.auth.cfg.advanced.max_body_size
    }

    /// The engine's 408 answer, for the ASGI adapter to send when a body does not arrive in time.
    fn request_timeout_response(&self) -> NativeResponse {
        let resp = crate::http::response::Response::error(&crate::error::AuthError::RequestTimeout);
        NativeResponse { status: resp.status, headers: resp.headers, body: resp.body }
    }

    /// `auth.db`: the app's SQL on the auth database.
    #[getter]
    fn db(&self) -> database::AppDatabase {
        database::AppDatabase::new(self.auth.store.clone())
    }

    /// Seconds a client may take to send a request body (`advanced["request_timeout"]`).
    #[getter]
    fn request_timeout(&self) -> f64 {
        self.auth.cfg.advanced.request_timeout
    }

    #[getter]
    fn dialect(&self) -> &'static str {
        self.auth.store.dialect()
    }

    /// Whether Python callbacks are configured (then the server needs an event loop for them).
    #[getter]
    fn has_callbacks(&self) -> bool {
        self.has_callbacks
    }

    /// Starts the native HTTP server in the background. `event_loop` is the running
    /// asyncio loop (in a thread of its own) that Python callbacks are awaited on.
    #[pyo3(signature = (host, port, event_loop=None))]
    fn start_server(
        &self,
        py: Python<'_>,
        host: &str,
        port: u16,
        event_loop: Option<Bound<'_, PyAny>>,
    ) -> PyResult<ServerHandle> {
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("cannot resolve {host}:{port}: {e}")))?
            .next()
            .ok_or_else(|| pyo3::exceptions::PyOSError::new_err(format!("no address for {host}")))?;
        let extension: crate::http::request::Extension = match event_loop {
            Some(event_loop) => Some(Arc::new(pyo3_async_runtimes::TaskLocals::new(event_loop).copy_context(py)?)),
            None if self.has_callbacks => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "callbacks are configured: pass the event loop they run on",
                ))
            }
            None => None,
        };
        let auth = self.auth.clone();
        let server = py
            .detach(|| runtime().block_on(Server::start(auth, addr, extension)))
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("cannot listen on {addr}: {e}")))?;
        Ok(ServerHandle { host: host.to_owned(), port: server.local_addr.port(), server: Mutex::new(Some(server)) })
    }

    /// Blocks, without the GIL, until the process gets SIGINT or SIGTERM.
    fn wait_for_shutdown_signal(&self, py: Python<'_>) {
        py.detach(|| runtime().block_on(crate::server::shutdown_signal()));
    }

    /// Moves the engine's clock forward, for tests of expiry (`kernia.testing.advance_clock`).
    fn advance_clock(&self, seconds: f64) -> PyResult<()> {
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "advance_clock: seconds must be a finite number of 0 or more, got {seconds}"
            )));
        }
        self.auth.clock.advance_ms((seconds * 1000.0).round() as i64);
        Ok(())
    }

    /// The Prometheus text page, when metrics are on.
    fn metrics_text(&self) -> Option<String> {
        self.auth.metrics.as_ref().map(|m| m.render())
    }

    /// Stops the engine's clock; only `advance_clock` moves it then (`kernia.testing.freeze_clock`).
    fn freeze_clock(&self) {
        self.auth.clock.freeze();
    }

    /// Finishes queued writes and closes the database.
    fn close(&self, py: Python<'_>) {
        let auth = self.auth.clone();
        py.detach(|| runtime().block_on(auth.close()));
    }
}

/// Checks one plugin's options (JSON, as `init()` would pass them under `key`)
/// with the same rules as `init()`; raises `ConfigurationError` naming the option.
#[pyfunction]
fn check_plugin(key: &str, options_json: &str) -> PyResult<()> {
    crate::config::check_plugin(key, options_json).map_err(config_error)
}

/// `[(status, code, message)]`: every error the engine answers with a stable code.
#[pyfunction]
fn error_catalogue() -> Vec<(u16, String, String)> {
    crate::error::catalogue()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeAuth>()?;
    m.add_class::<NativeResponse>()?;
    m.add_class::<ServerHandle>()?;
    m.add("KerniaError", m.py().get_type::<KerniaError>())?;
    m.add("DatabaseError", m.py().get_type::<DatabaseError>())?;
    m.add_class::<callbacks::CallbackContext>()?;
    m.add_class::<database::ConversionDatabase>()?;
    m.add_class::<database::AppDatabase>()?;
    m.add_class::<database::AppTransaction>()?;
    m.add_function(wrap_pyfunction!(check_plugin, m)?)?;
    m.add_function(wrap_pyfunction!(error_catalogue, m)?)?;
    // Worker threads leave Python before the interpreter finalizes (see `bridge`).
    let drain = wrap_pyfunction!(bridge::drain, m)?;
    m.py().import("atexit")?.call_method1("register", (drain,))?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
