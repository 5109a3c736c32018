//! The anonymous plugin as a native Python object, and the app's Python
//! callbacks as [`AnonymousCallbacks`]. The GIL is held only to call a function
//! (creating its coroutine) and to convert data; the coroutine itself is awaited
//! from Rust on the request's event loop without the GIL.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;
use pyo3_async_runtimes::TaskLocals;
use serde_json::Value;

use super::bridge::{self, attach, attach_result};
use super::database::ConversionDatabase;
use crate::callbacks::{
    AnonymousCallbacks, CallbackRequest, Extension, GuestEvent, LinkContext, MagicLinkCallbacks, MagicLinkMessage,
    UsernameCallbacks,
};
use crate::config::{RateLimitRule, GUEST_RATE_LIMIT};
use crate::error::AuthError;
use crate::model::{User, UserFields, UserJson};
use crate::storage::conversion_db::ConversionDb;

/// What `kernia.plugins.anonymous.anonymous(...)` returns. Arguments are checked here,
/// when the plugin is built, not at the first request.
#[pyclass(module = "kernia._native", frozen)]
pub struct AnonymousPlugin {
    on_link: Option<Py<PyAny>>,
    generate_name: Option<Py<PyAny>>,
    generate_random_email: Option<Py<PyAny>>,
    should_delete: Option<Py<PyAny>>,
    before_delete: Option<Py<PyAny>>,
    on_event: Option<Py<PyAny>>,
    #[pyo3(get)]
    email_domain_name: Option<String>,
    #[pyo3(get)]
    disable_delete_anonymous_user: bool,
    #[pyo3(get)]
    allow_linking: bool,
    #[pyo3(get)]
    expires_in: Option<i64>,
    #[pyo3(get)]
    max_age: Option<i64>,
    /// Seconds between runs of the in-process sweeper; `None`: no sweeper.
    #[pyo3(get)]
    cleanup_interval: Option<f64>,
    rate_limit: Option<RateLimitRule>,
}

fn callable(name: &str, value: Option<Bound<'_, PyAny>>) -> PyResult<Option<Py<PyAny>>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) if v.is_callable() => Ok(Some(v.unbind())),
        Some(v) => Err(PyTypeError::new_err(format!(
            "anonymous(): {name} must be a function (sync or async), got {}",
            v.get_type().name()?
        ))),
    }
}

fn flag(name: &str, value: Option<Bound<'_, PyAny>>, default: bool) -> PyResult<bool> {
    match value {
        None => Ok(default),
        Some(v) => Ok(v
            .downcast::<PyBool>()
            .map_err(|_| PyTypeError::new_err(format!("anonymous(): {name} must be True or False")))?
            .is_true()),
    }
}

/// A positive number of seconds, or `None`.
fn seconds(name: &str, value: Option<Bound<'_, PyAny>>) -> PyResult<Option<f64>> {
    let Some(v) = value.filter(|v| !v.is_none()) else { return Ok(None) };
    if v.is_instance_of::<PyBool>() || !(v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>()) {
        return Err(PyTypeError::new_err(format!(
            "anonymous(): {name} must be a number of seconds, got {}",
            v.get_type().name()?
        )));
    }
    let n: f64 = v.extract()?;
    if !(n > 0.0 && n.is_finite()) {
        return Err(PyValueError::new_err(format!("anonymous(): {name} must be positive, got {n}")));
    }
    Ok(Some(n))
}

/// `RateLimitRule(window=..., max=...)` (or anything with those attributes), `False`
/// for no limit, `None` or `True` for the default.
fn rate_limit_rule(value: Option<Bound<'_, PyAny>>) -> PyResult<Option<RateLimitRule>> {
    let Some(v) = value.filter(|v| !v.is_none()) else { return Ok(Some(GUEST_RATE_LIMIT)) };
    if let Ok(b) = v.downcast::<PyBool>() {
        return Ok(b.is_true().then_some(GUEST_RATE_LIMIT));
    }
    let bad = || PyTypeError::new_err("anonymous(): rate_limit must be RateLimitRule(window=..., max=...) or False");
    let field = |name: &str| -> PyResult<u64> {
        let n: i64 = v.getattr(name).map_err(|_| bad())?.extract().map_err(|_| bad())?;
        u64::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| PyValueError::new_err(format!("anonymous(): rate_limit.{name} must be positive, got {n}")))
    };
    Ok(Some(RateLimitRule { window: field("window")?, max: field("max")? }))
}

#[pymethods]
impl AnonymousPlugin {
    #[getter]
    fn id(&self) -> &'static str {
        "anonymous"
    }

    #[getter]
    fn on_link(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.on_link.as_ref().map(|f| f.clone_ref(py))
    }

    /// `(window, max)` of the guest sign-in limit, or `None` when off.
    #[getter]
    fn rate_limit(&self) -> Option<(u64, u64)> {
        self.rate_limit.map(|r| (r.window, r.max))
    }

    fn __repr__(&self) -> String {
        format!(
            "anonymous(on_link={}, email_domain_name={:?}, disable_delete_anonymous_user={}, allow_linking={}, \
             expires_in={:?}, max_age={:?})",
            if self.on_link.is_some() { "<function>" } else { "None" },
            self.email_domain_name,
            self.disable_delete_anonymous_user,
            self.allow_linking,
            self.expires_in,
            self.max_age,
        )
    }
}

/// Guest sessions: `anonymous(on_link=None, *, email_domain_name=None, generate_name=None,
/// generate_random_email=None, disable_delete_anonymous_user=False, allow_linking=True,
/// expires_in=None, rate_limit=None, max_age=None, should_delete=None, before_delete=None,
/// on_event=None, cleanup_interval=None)`.
#[pyfunction]
#[pyo3(signature = (on_link=None, *, email_domain_name=None, generate_name=None, generate_random_email=None,
    disable_delete_anonymous_user=None, allow_linking=None, expires_in=None, rate_limit=None, max_age=None,
    should_delete=None, before_delete=None, on_event=None, cleanup_interval=None))]
#[allow(clippy::too_many_arguments)]
pub fn anonymous(
    on_link: Option<Bound<'_, PyAny>>,
    email_domain_name: Option<Bound<'_, PyAny>>,
    generate_name: Option<Bound<'_, PyAny>>,
    generate_random_email: Option<Bound<'_, PyAny>>,
    disable_delete_anonymous_user: Option<Bound<'_, PyAny>>,
    allow_linking: Option<Bound<'_, PyAny>>,
    expires_in: Option<Bound<'_, PyAny>>,
    rate_limit: Option<Bound<'_, PyAny>>,
    max_age: Option<Bound<'_, PyAny>>,
    should_delete: Option<Bound<'_, PyAny>>,
    before_delete: Option<Bound<'_, PyAny>>,
    on_event: Option<Bound<'_, PyAny>>,
    cleanup_interval: Option<Bound<'_, PyAny>>,
) -> PyResult<AnonymousPlugin> {
    let email_domain_name = match email_domain_name {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => {
            let s = v.downcast::<PyString>().map_err(|_| {
                PyTypeError::new_err("anonymous(): email_domain_name must be a str such as \"guests.example.com\"")
            })?;
            let domain = s.to_str()?.to_owned();
            if !crate::http::body::is_valid_email(&format!("guest@{domain}")) {
                return Err(PyValueError::new_err(format!(
                    "anonymous(): email_domain_name {domain:?} is not a domain"
                )));
            }
            Some(domain)
        }
    };
    let whole = |name: &str, v| -> PyResult<Option<i64>> { Ok(seconds(name, v)?.map(|s| s.ceil() as i64)) };
    let max_age = whole("max_age", max_age)?;
    let cleanup_interval = seconds("cleanup_interval", cleanup_interval)?;
    if cleanup_interval.is_some() && max_age.is_none() {
        return Err(PyValueError::new_err("anonymous(): cleanup_interval needs max_age, the age at which guests go"));
    }
    Ok(AnonymousPlugin {
        on_link: callable("on_link", on_link)?,
        generate_name: callable("generate_name", generate_name)?,
        generate_random_email: callable("generate_random_email", generate_random_email)?,
        should_delete: callable("should_delete", should_delete)?,
        before_delete: callable("before_delete", before_delete)?,
        on_event: callable("on_event", on_event)?,
        email_domain_name,
        disable_delete_anonymous_user: flag("disable_delete_anonymous_user", disable_delete_anonymous_user, false)?,
        allow_linking: flag("allow_linking", allow_linking, true)?,
        expires_in: whole("expires_in", expires_in)?,
        max_age,
        cleanup_interval,
        rate_limit: rate_limit_rule(rate_limit)?,
    })
}

impl AnonymousPlugin {
    pub fn options(&self) -> crate::config::AnonymousOptions {
        crate::config::AnonymousOptions {
            email_domain_name: self.email_domain_name.clone(),
            disable_delete_anonymous_user: self.disable_delete_anonymous_user,
            allow_linking: self.allow_linking,
            expires_in: self.expires_in,
            rate_limit: self.rate_limit,
            max_age: self.max_age,
        }
    }

    /// `on_link`, `generate_name`, `generate_random_email`, `should_delete`,
    /// `before_delete` and `on_event`, as configured.
    pub fn callbacks(&self, py: Python<'_>) -> [Option<Callback>; 6] {
        let own = |name, f: &Option<Py<PyAny>>| Callback::new(name, f.as_ref().map(|f| f.clone_ref(py)));
        [
            own("on_link", &self.on_link),
            own("generate_name", &self.generate_name),
            own("generate_random_email", &self.generate_random_email),
            own("should_delete", &self.should_delete),
            own("before_delete", &self.before_delete),
            own("on_event", &self.on_event),
        ]
    }
}

pub fn json_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into_bound_py_any(py)?,
            None => n.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py)?,
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            PyList::new(py, items.iter().map(|x| json_to_py(py, x)).collect::<PyResult<Vec<_>>>()?)?.into_any()
        }
        Value::Object(map) => {
            let d = PyDict::new(py);
            for (k, x) in map {
                d.set_item(k, json_to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

/// JSON converted to Python objects on the event loop's thread, when an awaitable resolves.
pub struct PyJson(pub Value);

impl<'py> IntoPyObject<'py> for PyJson {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.0)
    }
}

fn user_dict<'py>(py: Python<'py>, user: &User, fields: UserFields) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(UserJson(user, fields)).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    json_to_py(py, &value)
}

/// The `ctx` callbacks get: `ctx.request` (method, path, headers, client_ip),
/// `ctx.auth` (the handle `init()` returned), in `on_link` `ctx.db`, and in
/// `send_magic_link` `ctx.metadata`.
#[pyclass(module = "kernia._native", frozen)]
pub struct CallbackContext {
    #[pyo3(get)]
    request: Py<PyDict>,
    #[pyo3(get)]
    auth: Option<Py<PyAny>>,
    db: Option<Py<ConversionDatabase>>,
    /// `send_magic_link`: the request's `metadata` object, or `None`.
    #[pyo3(get)]
    metadata: Option<Py<PyAny>>,
}

#[pymethods]
impl CallbackContext {
    #[getter]
    fn db(&self, py: Python<'_>) -> PyResult<Py<ConversionDatabase>> {
        self.db.as_ref().map(|d| d.clone_ref(py)).ok_or_else(|| {
            PyRuntimeError::new_err("ctx.db exists only in on_link, inside the conversion's transaction")
        })
    }
}

/// An app function, and the name its failures are reported by.
pub struct Callback {
    name: &'static str,
    /// Shared, so a task can hold the function without taking the GIL to clone it.
    f: Arc<Py<PyAny>>,
}

impl Callback {
    pub fn new(name: &'static str, f: Option<Py<PyAny>>) -> Option<Callback> {
        f.map(|f| Callback { name, f: Arc::new(f) })
    }

    /// Calls it, awaiting what it returns if that is awaitable. `kernia.APIError`
    /// becomes that response; any other exception is logged and becomes `failed`.
    async fn call<F>(&self, req: &CallbackRequest, args: F, failed: AuthError) -> Result<Py<PyAny>, AuthError>
    where
        F: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>>,
    {
        call(&self.f, req, args).await.map_err(|e| to_auth_error(e, self.name, failed))
    }

    fn failed(&self, err: PyErr) -> AuthError {
        to_auth_error(err, self.name, AuthError::CallbackFailed(self.name))
    }

    /// `f(value)` for the username rules: whether `value` passes.
    async fn test(&self, req: &CallbackRequest, value: &str) -> Result<bool, AuthError> {
        let value = value.to_owned();
        let result = self.call(req, |py| PyTuple::new(py, [value]), AuthError::CallbackFailed(self.name)).await?;
        attach_result(|py| result.bind(py).is_truthy()).map_err(|e| self.failed(e))
    }

    /// `f(value)` for the username rules: the value's stored form.
    async fn map(&self, req: &CallbackRequest, value: &str) -> Result<String, AuthError> {
        let value = value.to_owned();
        let result = self.call(req, |py| PyTuple::new(py, [value]), AuthError::CallbackFailed(self.name)).await?;
        attach_result(|py| result.bind(py).extract::<String>())
            .map_err(|_| self.failed(PyTypeError::new_err(format!("{} must return a str", self.name))))
    }
}

/// Every plugin's app callbacks, each optional, awaited from Rust.
pub struct PyCallbacks {
    pub on_link: Option<Callback>,
    pub generate_name: Option<Callback>,
    pub generate_random_email: Option<Callback>,
    pub should_delete: Option<Callback>,
    pub before_delete: Option<Callback>,
    pub on_event: Option<Callback>,
    pub username_validator: Option<Callback>,
    pub display_username_validator: Option<Callback>,
    pub username_normalization: Option<Callback>,
    pub display_username_normalization: Option<Callback>,
    pub send_magic_link: Option<Callback>,
    pub generate_magic_link_token: Option<Callback>,
    pub hash_magic_link_token: Option<Callback>,
    /// The handle `init()` returned, for `ctx.auth`.
    pub handle: Arc<OnceLock<Py<PyAny>>>,
    /// Which plugin columns the user dicts given to `on_link` carry.
    pub user_fields: UserFields,
}

impl PyCallbacks {
    /// Whether any Python may run on a request (then its event loop is needed).
    pub fn any(&self) -> bool {
        [
            &self.on_link,
            &self.generate_name,
            &self.generate_random_email,
            &self.should_delete,
            &self.before_delete,
            &self.on_event,
            &self.username_validator,
            &self.display_username_validator,
            &self.username_normalization,
            &self.display_username_normalization,
            &self.send_magic_link,
            &self.generate_magic_link_token,
            &self.hash_magic_link_token,
        ]
        .iter()
        .any(|c| c.is_some())
    }
}

fn request_dict<'py>(py: Python<'py>, req: &CallbackRequest) -> PyResult<Bound<'py, PyDict>> {
    let headers = PyDict::new(py);
    for (k, v) in &req.headers {
        let joined = match headers.get_item(k)? {
            Some(prev) => format!("{}{}{v}", prev.extract::<String>()?, if k == "cookie" { "; " } else { ", " }),
            None => v.clone(),
        };
        headers.set_item(k, joined)?;
    }
    let d = PyDict::new(py);
    d.set_item("method", &req.method)?;
    d.set_item("path", &req.path)?;
    d.set_item("headers", headers)?;
    d.set_item("client_ip", &req.client_ip)?;
    Ok(d)
}

impl PyCallbacks {
    /// A callback's `ctx`.
    fn context<'py>(
        &self,
        py: Python<'py>,
        req: &CallbackRequest,
        db: Option<ConversionDb>,
        metadata: Option<&Value>,
    ) -> PyResult<Bound<'py, CallbackContext>> {
        let db = db.map(|db| Py::new(py, ConversionDatabase::new(db))).transpose()?;
        let auth = self.handle.get().map(|h| h.clone_ref(py));
        let metadata = metadata.map(|m| json_to_py(py, m).map(Bound::unbind)).transpose()?;
        Bound::new(py, CallbackContext { request: request_dict(py, req)?.unbind(), auth, db, metadata })
    }
}

enum Called {
    Ready(Py<PyAny>),
    Pending(std::pin::Pin<Box<dyn std::future::Future<Output = PyResult<Py<PyAny>>> + Send>>),
}

/// Calls `func` with the GIL; if it returned an awaitable, awaits it on the
/// request's event loop without the GIL.
async fn call<F>(func: &Py<PyAny>, req: &CallbackRequest, args: F) -> PyResult<Py<PyAny>>
where
    F: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>>,
{
    let locals = req.extension.as_ref().and_then(|e| e.downcast_ref::<TaskLocals>());
    let called = attach_result(|py| -> PyResult<Called> {
        let result = func.bind(py).call1(args(py)?)?;
        if !result.hasattr("__await__")? {
            return Ok(Called::Ready(result.unbind()));
        }
        let locals = locals.ok_or_else(|| PyRuntimeError::new_err("an async callback needs a running event loop"))?;
        Ok(Called::Pending(Box::pin(bridge::into_future(locals, result)?)))
    })?;
    match called {
        Called::Ready(v) => Ok(v),
        Called::Pending(f) => f.await,
    }
}

/// `kernia.APIError` becomes that response; anything else is logged and becomes `otherwise`.
fn to_auth_error(err: PyErr, what: &str, otherwise: AuthError) -> AuthError {
    let custom = attach(|py| {
        let api_error = py.import("kernia.errors").and_then(|m| m.getattr("APIError")).ok();
        if let Some(api_error) = api_error {
            if err.is_instance(py, &api_error) {
                let v = err.value(py);
                let status = v.getattr("status").and_then(|s| s.extract::<u16>()).unwrap_or(500);
                let code = v.getattr("code").and_then(|s| s.extract::<String>()).unwrap_or_else(|_| "ERROR".into());
                let message = v.getattr("message").and_then(|s| s.extract::<String>()).unwrap_or_else(|_| code.clone());
                if (400..=599).contains(&status) {
                    return Some(AuthError::Custom { status, code, message });
                }
            }
        }
        let logged = py.import("logging").and_then(|logging| {
            let logger = logging.call_method1("getLogger", ("kernia",))?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("exc_info", err.value(py))?;
            logger.call_method("error", (format!("{what} raised; the request failed"),), Some(&kwargs))
        });
        if logged.is_err() {
            err.print(py);
        }
        None
    });
    custom.flatten().unwrap_or(otherwise)
}

/// What a name generator returned: a string, or `None` for the default.
fn optional_string(value: Py<PyAny>, cb: &Callback) -> Result<Option<String>, AuthError> {
    attach(|py| {
        let v = value.bind(py);
        if v.is_none() {
            return Ok(None);
        }
        v.extract::<String>().map(Some).map_err(|_| {
            cb.failed(PyTypeError::new_err(format!("{} must return a str or None, got {}", cb.name, v.get_type())))
        })
    })
    .unwrap_or(Err(AuthError::CallbackFailed(cb.name)))
}

#[async_trait]
impl AnonymousCallbacks for PyCallbacks {
    fn has_on_link(&self) -> bool {
        self.on_link.is_some()
    }

    async fn generate_name(&self, req: &CallbackRequest) -> Result<Option<String>, AuthError> {
        let Some(cb) = &self.generate_name else { return Ok(None) };
        let failed = AuthError::CallbackFailed(cb.name);
        let value = cb.call(req, |py| PyTuple::new(py, [self.context(py, req, None, None)?]), failed).await?;
        optional_string(value, cb)
    }

    async fn generate_random_email(&self, req: &CallbackRequest) -> Result<Option<String>, AuthError> {
        let Some(cb) = &self.generate_random_email else { return Ok(None) };
        let value = cb.call(req, |py| Ok(PyTuple::empty(py)), AuthError::CallbackFailed(cb.name)).await?;
        optional_string(value, cb)
    }

    async fn on_link(&self, anonymous_user: &User, new_user: &User, ctx: LinkContext) -> Result<(), AuthError> {
        let Some(cb) = &self.on_link else { return Ok(()) };
        let LinkContext { request, db } = ctx;
        let fields = self.user_fields;
        cb.call(
            &request,
            |py| {
                let c = self.context(py, &request, Some(db), None)?;
                PyTuple::new(
                    py,
                    [user_dict(py, anonymous_user, fields)?, user_dict(py, new_user, fields)?, c.into_any()],
                )
            },
            AuthError::OnLinkFailed,
        )
        .await
        .map(drop)
    }

    fn has_should_delete(&self) -> bool {
        self.should_delete.is_some()
    }

    async fn should_delete(&self, user: &User, req: &CallbackRequest) -> Result<bool, AuthError> {
        let Some(cb) = &self.should_delete else { return Ok(true) };
        let verdict = self.user_hook(cb, user, req, None).await?;
        attach_result(|py| verdict.bind(py).is_truthy()).map_err(|e| cb.failed(e))
    }

    fn has_before_delete(&self) -> bool {
        self.before_delete.is_some()
    }

    async fn before_delete(&self, user: &User, ctx: LinkContext) -> Result<(), AuthError> {
        let Some(cb) = &self.before_delete else { return Ok(()) };
        self.user_hook(cb, user, &ctx.request, Some(ctx.db)).await.map(drop)
    }

    fn has_on_event(&self) -> bool {
        self.on_event.is_some()
    }

    fn on_event(&self, event: GuestEvent, extension: &Extension) {
        let Some(cb) = &self.on_event else { return };
        let f = cb.f.clone();
        let request = CallbackRequest {
            method: String::new(),
            path: String::new(),
            headers: Vec::new(),
            client_ip: None,
            extension: extension.clone(),
        };
        // Its own task: the request does not wait for it, and its failure is only logged.
        tokio::spawn(async move {
            if let Err(e) = call(&f, &request, |py| PyTuple::new(py, [event_dict(py, &event)?])).await {
                to_auth_error(e, "on_event", AuthError::CallbackFailed("on_event"));
            }
        });
    }
}

/// An event as the dict `on_event` gets.
fn event_dict<'py>(py: Python<'py>, e: &GuestEvent) -> PyResult<Bound<'py, PyDict>> {
    let datetime = py.import("datetime")?;
    let utc = datetime.getattr("timezone")?.getattr("utc")?;
    let time = datetime.getattr("datetime")?.call_method1("fromtimestamp", (e.at_ms as f64 / 1000.0, utc))?;
    let d = PyDict::new(py);
    d.set_item("type", e.kind.name())?;
    d.set_item("user_id", &e.user_id)?;
    d.set_item("new_user_id", &e.new_user_id)?;
    d.set_item("time", time)?;
    d.set_item("ip", &e.ip)?;
    d.set_item("path", &e.path)?;
    Ok(d)
}

impl PyCallbacks {
    /// `f(user)`, or `f(user, ctx)` with `ctx.db`, for the cleanup hooks.
    async fn user_hook(
        &self,
        cb: &Callback,
        user: &User,
        request: &CallbackRequest,
        db: Option<ConversionDb>,
    ) -> Result<Py<PyAny>, AuthError> {
        let fields = self.user_fields;
        let with_ctx = db.is_some();
        cb.call(
            request,
            |py| {
                let user = user_dict(py, user, fields)?;
                if with_ctx {
                    let c = self.context(py, request, db, None)?;
                    PyTuple::new(py, [user, c.into_any()])
                } else {
                    PyTuple::new(py, [user])
                }
            },
            AuthError::CallbackFailed(cb.name),
        )
        .await
    }
}

#[async_trait]
impl UsernameCallbacks for PyCallbacks {
    async fn validate(&self, req: &CallbackRequest, username: &str) -> Result<Option<bool>, AuthError> {
        let Some(cb) = &self.username_validator else { return Ok(None) };
        cb.test(req, username).await.map(Some)
    }
    async fn validate_display(&self, req: &CallbackRequest, display: &str) -> Result<Option<bool>, AuthError> {
        let Some(cb) = &self.display_username_validator else { return Ok(None) };
        cb.test(req, display).await.map(Some)
    }
    async fn normalize(&self, req: &CallbackRequest, username: &str) -> Result<Option<String>, AuthError> {
        let Some(cb) = &self.username_normalization else { return Ok(None) };
        cb.map(req, username).await.map(Some)
    }
    async fn normalize_display(&self, req: &CallbackRequest, display: &str) -> Result<Option<String>, AuthError> {
        let Some(cb) = &self.display_username_normalization else { return Ok(None) };
        cb.map(req, display).await.map(Some)
    }
}

#[async_trait]
impl MagicLinkCallbacks for PyCallbacks {
    async fn send(&self, req: &CallbackRequest, m: MagicLinkMessage) -> Result<(), AuthError> {
        let Some(cb) = &self.send_magic_link else { return Err(AuthError::CallbackFailed("send_magic_link")) };
        cb.call(
            req,
            |py| {
                let c = self.context(py, req, None, m.metadata.as_ref())?;
                let text = |s: &str| PyString::new(py, s).into_any();
                PyTuple::new(py, [text(&m.email), text(&m.url), text(&m.token), c.into_any()])
            },
            AuthError::CallbackFailed(cb.name),
        )
        .await
        .map(drop)
    }

    async fn generate_token(&self, req: &CallbackRequest, email: &str) -> Result<Option<String>, AuthError> {
        let Some(cb) = &self.generate_magic_link_token else { return Ok(None) };
        let email = email.to_owned();
        let value = cb.call(req, |py| PyTuple::new(py, [email]), AuthError::CallbackFailed(cb.name)).await?;
        optional_string(value, cb)
    }

    async fn hash_token(&self, req: &CallbackRequest, token: &str) -> Result<String, AuthError> {
        let Some(cb) = &self.hash_magic_link_token else { return Err(AuthError::CallbackFailed("hash_token")) };
        cb.map(req, token).await
    }
}

// The class apps catch, defined in Python; looked up when an error is raised, with the GIL.
pyo3::import_exception!(kernia.errors, APIError);

/// Raised from `api.get_session` and friends when the engine fails: `kernia.APIError`
/// with the error's `status`, `code` and `message`. Made without the GIL; the exception
/// object is built where it is raised.
pub fn engine_error(e: AuthError) -> PyErr {
    e.log_if_internal();
    APIError::new_err((e.status(), e.code().unwrap_or("INTERNAL_SERVER_ERROR").to_owned(), e.message()))
}
