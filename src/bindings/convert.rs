//! Engine values as Python objects: JSON, users (shaped like the user JSON), a
//! callback's request, guest events.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};
use pyo3::IntoPyObjectExt;
use serde_json::Value;

use crate::callbacks::{CallbackRequest, GuestEvent};
use crate::model::{Session, SessionAndUserJson, User, UserFields, UserJson};

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

/// `{"session", "user"}` as `get_session` answers: `GET /get-session`'s JSON
/// ([`SessionAndUserJson`]) as Python objects.
pub struct SessionAndUser(pub Session, pub User, pub UserFields);

impl<'py> IntoPyObject<'py> for SessionAndUser {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    /// Straight into Python objects, with no JSON in between (a session check is on the
    /// path of every request an app serves).
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pythonize::pythonize(py, &SessionAndUserJson(&self.0, &self.1, self.2))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }
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

pub(super) fn user_dict<'py>(py: Python<'py>, user: &User, fields: UserFields) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(UserJson(user, fields)).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    json_to_py(py, &value)
}

/// `ctx.request`: a `kernia.types.context.RequestInfo`, a dict also read by attribute.
pub(super) fn request_dict<'py>(py: Python<'py>, req: &CallbackRequest) -> PyResult<Bound<'py, PyAny>> {
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
    d.set_item("query_string", &req.query)?;
    d.set_item("headers", headers)?;
    d.set_item("client_ip", &req.client_ip)?;
    if let Some(body) = &req.body {
        d.set_item("body", json_to_py(py, body)?)?;
    }
    py.import("kernia.types.context")?.getattr("RequestInfo")?.call1((d,))
}

/// An event as the dict `on_event` gets.
pub(super) fn event_dict<'py>(py: Python<'py>, e: &GuestEvent) -> PyResult<Bound<'py, PyDict>> {
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
