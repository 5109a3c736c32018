//! The app's Python functions as the engine's callbacks ([`AnonymousCallbacks`],
//! [`UsernameCallbacks`], [`MagicLinkCallbacks`]). The GIL is held only to call a function
//! (creating its coroutine) and to convert data; the coroutine itself is awaited
//! from Rust on the request's event loop without the GIL.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3_async_runtimes::TaskLocals;
use serde_json::Value;

use super::bridge::{self, attach, attach_result};
use super::convert::{event_dict, json_to_py, request_dict, user_dict};
use super::database::ConversionDatabase;
use crate::callbacks::{
    AccountCallback, AccountCallbacks, AnonymousCallbacks, CallbackRequest, Extension, GuestEvent, LinkContext,
    MagicLinkCallbacks, MagicLinkMessage, Mail, UsernameCallbacks,
};
use crate::error::AuthError;
use crate::model::{User, UserFields};
use crate::storage::conversion_db::ConversionDb;

/// The `ctx` callbacks get: `ctx.request` (method, path, headers, client_ip),
/// `ctx.auth` (the handle `init()` returned), in `on_link` `ctx.db`, and in
/// `send_magic_link` `ctx.metadata`.
#[pyclass(module = "kernia._native", frozen)]
pub struct CallbackContext {
    #[pyo3(get)]
    request: Py<PyAny>,
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
pub struct AppFunction {
    name: &'static str,
    /// Shared, so a task can hold the function without taking the GIL to clone it.
    f: Arc<Py<PyAny>>,
}

impl AppFunction {
    pub fn new(name: &'static str, f: Option<Py<PyAny>>) -> Option<AppFunction> {
        f.map(|f| AppFunction { name, f: Arc::new(f) })
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
pub struct PythonCallbacks {
    pub on_link: Option<AppFunction>,
    pub before_create: Option<AppFunction>,
    pub generate_name: Option<AppFunction>,
    pub generate_random_email: Option<AppFunction>,
    pub should_delete: Option<AppFunction>,
    pub before_delete: Option<AppFunction>,
    pub on_event: Option<AppFunction>,
    pub username_validator: Option<AppFunction>,
    pub display_username_validator: Option<AppFunction>,
    pub username_normalization: Option<AppFunction>,
    pub display_username_normalization: Option<AppFunction>,
    pub send_magic_link: Option<AppFunction>,
    pub generate_magic_link_token: Option<AppFunction>,
    pub hash_magic_link_token: Option<AppFunction>,
    pub send_verification_otp: Option<AppFunction>,
    /// The account routes' senders and hooks, by [`AccountCallback`], in `ALL` order.
    pub account: Vec<Option<AppFunction>>,
    /// The handle `init()` returned, for `ctx.auth`.
    pub handle: Arc<OnceLock<Py<PyAny>>>,
    /// Which plugin columns the user dicts given to `on_link` carry.
    pub user_fields: UserFields,
    /// Whether any Python may run on a request (then its event loop is needed).
    pub any: bool,
}

impl PythonCallbacks {
    /// The app's functions from `callables` (by callback name; `None` values are absent).
    pub fn new(
        callables: Option<&Bound<'_, PyDict>>,
        handle: Arc<OnceLock<Py<PyAny>>>,
        user_fields: UserFields,
    ) -> PyResult<Self> {
        let get = |name: &'static str| -> PyResult<Option<AppFunction>> {
            let Some(d) = callables else { return Ok(None) };
            Ok(AppFunction::new(name, d.get_item(name)?.filter(|f| !f.is_none()).map(Bound::unbind)))
        };
        Ok(PythonCallbacks {
            on_link: get("on_link")?,
            before_create: get("before_create")?,
            generate_name: get("generate_name")?,
            generate_random_email: get("generate_random_email")?,
            should_delete: get("should_delete")?,
            before_delete: get("before_delete")?,
            on_event: get("on_event")?,
            username_validator: get("username_validator")?,
            display_username_validator: get("display_username_validator")?,
            username_normalization: get("username_normalization")?,
            display_username_normalization: get("display_username_normalization")?,
            send_magic_link: get("send_magic_link")?,
            generate_magic_link_token: get("generate_token")?,
            hash_magic_link_token: get("hash_token")?,
            send_verification_otp: get("send_verification_otp")?,
            account: AccountCallback::ALL.iter().map(|c| get(c.name())).collect::<PyResult<_>>()?,
            handle,
            user_fields,
            any: callables.is_some_and(|d| d.values().iter().any(|f| !f.is_none())),
        })
    }
}

impl PythonCallbacks {
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
fn optional_string(value: Py<PyAny>, cb: &AppFunction) -> Result<Option<String>, AuthError> {
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
impl AnonymousCallbacks for PythonCallbacks {
    fn has_on_link(&self) -> bool {
        self.on_link.is_some()
    }

    fn has_before_create(&self) -> bool {
        self.before_create.is_some()
    }

    async fn before_create(&self, req: &CallbackRequest) -> Result<(), AuthError> {
        let Some(cb) = &self.before_create else { return Ok(()) };
        let failed = AuthError::CallbackFailed(cb.name);
        cb.call(req, |py| PyTuple::new(py, [self.context(py, req, None, None)?]), failed).await.map(drop)
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
        let request = CallbackRequest::internal(extension.clone());
        // Its own task: the request does not wait for it, and its failure is only logged.
        tokio::spawn(async move {
            if let Err(e) = call(&f, &request, |py| PyTuple::new(py, [event_dict(py, &event)?])).await {
                to_auth_error(e, "on_event", AuthError::CallbackFailed("on_event"));
            }
        });
    }
}

impl PythonCallbacks {
    fn account_fn(&self, which: AccountCallback) -> Option<&AppFunction> {
        let i = AccountCallback::ALL.iter().position(|c| *c == which)?;
        self.account.get(i)?.as_ref()
    }
}

#[async_trait]
impl AccountCallbacks for PythonCallbacks {
    fn has(&self, which: AccountCallback) -> bool {
        self.account_fn(which).is_some()
    }

    /// `f({"user", "url", "token"[, "new_email", "newEmail"]}, ctx)`.
    async fn send(&self, which: AccountCallback, req: &CallbackRequest, mail: Mail) -> Result<(), AuthError> {
        let Some(cb) = self.account_fn(which) else { return Ok(()) };
        let fields = self.user_fields;
        cb.call(
            req,
            |py| {
                let data = PyDict::new(py);
                data.set_item("user", user_dict(py, &mail.user, fields)?)?;
                data.set_item("url", &mail.url)?;
                data.set_item("token", &mail.token)?;
                if let Some(new_email) = &mail.new_email {
                    data.set_item("new_email", new_email)?;
                    data.set_item("newEmail", new_email)?;
                }
                PyTuple::new(py, [data.into_any(), self.context(py, req, None, None)?.into_any()])
            },
            AuthError::CallbackFailed(cb.name),
        )
        .await
        .map(drop)
    }

    fn has_otp_sender(&self) -> bool {
        self.send_verification_otp.is_some()
    }

    async fn send_otp(&self, req: &CallbackRequest, email: &str, otp: &str, kind: &str) -> Result<(), AuthError> {
        let Some(cb) = &self.send_verification_otp else { return Ok(()) };
        cb.call(
            req,
            |py| {
                let data = PyDict::new(py);
                data.set_item("email", email)?;
                data.set_item("otp", otp)?;
                data.set_item("type", kind)?;
                PyTuple::new(py, [data.into_any(), self.context(py, req, None, None)?.into_any()])
            },
            AuthError::CallbackFailed(cb.name),
        )
        .await
        .map(drop)
    }

    /// `f(user, ctx)`; `on_password_reset({"user": user}, ctx)`, as Better Auth calls it.
    async fn notify(&self, which: AccountCallback, req: &CallbackRequest, user: &User) -> Result<(), AuthError> {
        let Some(cb) = self.account_fn(which) else { return Ok(()) };
        let fields = self.user_fields;
        cb.call(
            req,
            |py| {
                let user = user_dict(py, user, fields)?;
                let first = if which == AccountCallback::OnPasswordReset {
                    let data = PyDict::new(py);
                    data.set_item("user", user)?;
                    data.into_any()
                } else {
                    user
                };
                PyTuple::new(py, [first, self.context(py, req, None, None)?.into_any()])
            },
            AuthError::CallbackFailed(cb.name),
        )
        .await
        .map(drop)
    }
}

impl PythonCallbacks {
    /// `f(user)`, or `f(user, ctx)` with `ctx.db`, for the cleanup hooks.
    async fn user_hook(
        &self,
        cb: &AppFunction,
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
impl UsernameCallbacks for PythonCallbacks {
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
impl MagicLinkCallbacks for PythonCallbacks {
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
