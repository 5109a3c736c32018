//! SQL on the auth database from Python: `ctx.db` in `on_link` and `before_delete`
//! (inside the engine's transaction), `auth.db` (statements of their own) and
//! `auth.db.transaction()`. All three speak through one surface: `execute`,
//! `fetch_all`, `fetch_one`, `dialect`.

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};
use pyo3::IntoPyObjectExt;

use super::bridge;
use super::DatabaseError;
use crate::storage::app_tx::{AppTx, Autocommit};
use crate::storage::conversion_db::ConversionDb;
use crate::storage::{AppSql, SqlRow, SqlValue, Store, StoreError};

/// The statements every handle offers, for a pyclass whose `target` is a
/// [`AppSql`], with the class's own methods after them.
macro_rules! sql_methods {
    ($class:ty $(, { $($own:tt)* })?) => {
        #[pymethods]
        impl $class {
            $($($own)*)?

            /// `"sqlite"` (placeholders `?`) or `"postgres"` (placeholders `$1`).
            #[getter]
            fn dialect(&self) -> &'static str {
                self.target.dialect()
            }

            /// Runs one statement; the awaitable gives the number of rows it changed.
            #[pyo3(signature = (sql, params=None))]
            fn execute<'py>(
                &self,
                py: Python<'py>,
                sql: String,
                params: Option<Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (target, params) = (self.target.clone(), sql_params(params)?);
                bridge::awaitable(py, async move { target.execute(&sql, params).await.map_err(db_error) })
            }

            /// Runs a query; the awaitable gives its rows as dicts.
            #[pyo3(signature = (sql, params=None))]
            fn fetch_all<'py>(
                &self,
                py: Python<'py>,
                sql: String,
                params: Option<Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (target, params) = (self.target.clone(), sql_params(params)?);
                bridge::awaitable(py, async move { target.fetch_all(&sql, params).await.map(Rows).map_err(db_error) })
            }

            /// The first row as a dict, or `None`.
            #[pyo3(signature = (sql, params=None))]
            fn fetch_one<'py>(
                &self,
                py: Python<'py>,
                sql: String,
                params: Option<Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (target, params) = (self.target.clone(), sql_params(params)?);
                bridge::awaitable(py, async move {
                    let rows = target.fetch_all(&sql, params).await.map_err(db_error)?;
                    Ok(FirstRow(rows.into_iter().next()))
                })
            }
        }
    };
}

/// `ctx.db`: SQL on the auth database inside the engine's transaction.
#[pyclass(module = "kernia._native", frozen)]
pub struct ConversionDatabase {
    target: Arc<ConversionDb>,
}

impl ConversionDatabase {
    pub fn new(db: ConversionDb) -> Self {
        ConversionDatabase { target: Arc::new(db) }
    }
}

sql_methods!(ConversionDatabase);

/// `auth.db`: statements of their own on the auth database.
#[pyclass(module = "kernia._native", frozen)]
pub struct AppDatabase {
    target: Arc<Autocommit>,
}

impl AppDatabase {
    pub fn new(store: Arc<dyn Store>) -> Self {
        AppDatabase { target: Arc::new(Autocommit(store)) }
    }
}

sql_methods!(AppDatabase, {
    /// A transaction; it opens at its first statement. `kernia.auth.db` wraps it in
    /// `async with auth.db.transaction() as tx:`.
    fn begin(&self) -> AppTransaction {
        AppTransaction { target: Arc::new(AppTx::new(self.target.0.clone())) }
    }
});

/// One transaction of `auth.db`.
#[pyclass(module = "kernia._native", frozen)]
pub struct AppTransaction {
    target: Arc<AppTx>,
}

sql_methods!(AppTransaction, {
    fn commit<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let tx = self.target.clone();
        bridge::awaitable(py, async move { tx.commit().await.map_err(db_error) })
    }

    fn rollback<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let tx = self.target.clone();
        bridge::awaitable(py, async move {
            tx.rollback().await;
            Ok(())
        })
    }
});

fn sql_value_to_py<'py>(py: Python<'py>, v: &SqlValue) -> PyResult<Bound<'py, PyAny>> {
    match v {
        SqlValue::Null => Ok(py.None().into_bound(py)),
        SqlValue::Bool(b) => Ok(PyBool::new(py, *b).to_owned().into_any()),
        SqlValue::Int(n) => n.into_bound_py_any(py),
        SqlValue::Float(f) => f.into_bound_py_any(py),
        SqlValue::Text(t) => Ok(PyString::new(py, t).into_any()),
        SqlValue::Bytes(b) => Ok(PyBytes::new(py, b).into_any()),
    }
}

fn sql_params(params: Option<Bound<'_, PyAny>>) -> PyResult<Vec<SqlValue>> {
    let Some(params) = params.filter(|p| !p.is_none()) else { return Ok(Vec::new()) };
    if params.is_instance_of::<PyString>() || params.is_instance_of::<PyDict>() {
        return Err(PyTypeError::new_err("SQL parameters must be a list or tuple of values"));
    }
    let mut out = Vec::new();
    for item in params.try_iter()? {
        let v = item?;
        out.push(if v.is_none() {
            SqlValue::Null
        } else if let Ok(b) = v.downcast::<PyBool>() {
            SqlValue::Bool(b.is_true())
        } else if v.is_instance_of::<PyInt>() {
            SqlValue::Int(v.extract()?)
        } else if v.is_instance_of::<PyFloat>() {
            SqlValue::Float(v.extract()?)
        } else if let Ok(s) = v.downcast::<PyString>() {
            SqlValue::Text(s.to_str()?.to_owned())
        } else if let Ok(b) = v.downcast::<PyBytes>() {
            SqlValue::Bytes(b.as_bytes().to_vec())
        } else {
            return Err(PyTypeError::new_err(format!(
                "SQL parameters must be None, bool, int, float, str or bytes; got {}",
                v.get_type().name()?
            )));
        });
    }
    Ok(out)
}

/// Rows converted to `list[dict]` on the event loop's thread.
struct Rows(Vec<SqlRow>);

fn row_dict<'py>(py: Python<'py>, row: &SqlRow) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, value) in row {
        d.set_item(name, sql_value_to_py(py, value)?)?;
    }
    Ok(d)
}

/// The first row as a dict, or `None`.
struct FirstRow(Option<SqlRow>);

impl<'py> IntoPyObject<'py> for FirstRow {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.0 {
            Some(row) => Ok(row_dict(py, &row)?.into_any()),
            None => Ok(py.None().into_bound(py)),
        }
    }
}

impl<'py> IntoPyObject<'py> for Rows {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let rows = self.0.iter().map(|row| row_dict(py, row)).collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, rows)
    }
}

fn db_error(e: StoreError) -> PyErr {
    match e {
        StoreError::Sql(msg) => DatabaseError::new_err(msg),
        other => DatabaseError::new_err(other.to_string()),
    }
}
