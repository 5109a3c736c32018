//! Where tokio's worker threads meet Python, and how they stay out of its way
//! when the interpreter exits.
//!
//! A worker thread that asks for the GIL while the interpreter finalizes is
//! ended by CPython with `pthread_exit`; unwinding through Rust frames then
//! aborts the process (SIGABRT after the program's last line ran). Such a request
//! is ordinary at exit: the worker that resolved an awaitable is still inside
//! `loop.call_soon_threadsafe` (which lets go of the GIL while it wakes the
//! loop) when the loop's thread returns and the interpreter shuts down.
//!
//! So every entry of a worker thread into Python goes through [`attach`], which
//! counts the threads inside, and an `atexit` hook ([`drain`]) closes the door
//! and waits, without the GIL, until the last one has left. Awaitables are made
//! by [`awaitable`], which resolves them through [`attach`] too, and Python
//! coroutines are awaited from Rust by [`into_future`], whose answer comes back
//! on the loop's thread, so no worker waits on Python for it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pyo3::exceptions::asyncio::CancelledError;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::IntoPyObjectExt;
use pyo3_async_runtimes::TaskLocals;
use tokio::sync::oneshot;

/// Worker threads inside [`attach`] now.
static INSIDE: AtomicUsize = AtomicUsize::new(0);
/// Set by [`drain`]: the interpreter is exiting, no worker enters Python again.
static EXITING: AtomicBool = AtomicBool::new(false);

/// How long the exit waits for workers still inside Python (a callback that
/// never returns must not hold the process forever).
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

struct Leave;

/// A value a Python callback may use once (pyclasses are shared, so it sits behind a lock).
struct TakeOnce<T>(Mutex<Option<T>>);

impl<T> TakeOnce<T> {
    fn new(value: T) -> Self {
        TakeOnce(Mutex::new(Some(value)))
    }

    fn take(&self) -> Option<T> {
        self.0.lock().map(|mut v| v.take()).unwrap_or(None)
    }
}

impl Drop for Leave {
    fn drop(&mut self) {
        INSIDE.fetch_sub(1, SeqCst);
    }
}

/// `Python::attach` for code that may run on a worker thread: `None`, without
/// touching Python, once the interpreter has begun to exit.
pub(crate) fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    // Counted before the flag is read: `drain` sets the flag before it reads
    // the count, so either it waits for this thread or this thread stays out.
    INSIDE.fetch_add(1, SeqCst);
    let _leave = Leave;
    if EXITING.load(SeqCst) {
        return None;
    }
    Some(Python::attach(f))
}

/// [`attach`] for code that returns a `PyResult`: exiting is an error like any other.
pub(crate) fn attach_result<R>(f: impl for<'py> FnOnce(Python<'py>) -> PyResult<R>) -> PyResult<R> {
    attach(f).unwrap_or_else(|| Err(PyRuntimeError::new_err("the Python interpreter is exiting")))
}

/// Registered with `atexit` when the module loads.
#[pyfunction]
pub(crate) fn drain(py: Python<'_>) {
    py.detach(|| {
        EXITING.store(true, SeqCst);
        let deadline = Instant::now() + DRAIN_LIMIT;
        while INSIDE.load(SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Called on the event loop's thread when a future made by [`awaitable`] is
/// done: if it was cancelled, the Rust side stops too.
#[pyclass(module = "kernia._native", frozen)]
struct CancelOnDone {
    tx: TakeOnce<oneshot::Sender<()>>,
}

#[pymethods]
impl CancelOnDone {
    fn __call__(&self, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Some(tx) = self.tx.take() {
            if fut.call_method0("cancelled")?.is_truthy()? {
                let _ = tx.send(());
            }
        }
        Ok(())
    }
}

/// Runs on the event loop's thread (through `call_soon_threadsafe`) and settles the future.
#[pyclass(module = "kernia._native", frozen)]
struct Settle;

#[pymethods]
impl Settle {
    fn __call__(&self, fut: &Bound<'_, PyAny>, ok: bool, value: Bound<'_, PyAny>) -> PyResult<()> {
        if fut.call_method0("done")?.is_truthy()? {
            return Ok(());
        }
        fut.call_method1(if ok { "set_result" } else { "set_exception" }, (value,))?;
        Ok(())
    }
}

/// An asyncio future, on the running loop, of what `fut` gives when it has run
/// on the engine's runtime. Cancelling the asyncio future drops `fut`.
pub(crate) fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let event_loop = pyo3_async_runtimes::get_running_loop(py)?;
    let py_fut = event_loop.call_method0("create_future")?;
    let (cancel_tx, cancel_rx) = oneshot::channel();
    py_fut.call_method1("add_done_callback", (CancelOnDone { tx: TakeOnce::new(cancel_tx) },))?;
    let (event_loop, target) = (event_loop.unbind(), py_fut.clone().unbind());
    super::runtime().spawn(async move {
        let cancelled = async {
            // A dropped sender means the future finished without being cancelled.
            if cancel_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            biased;
            () = cancelled => return,
            result = AssertUnwindSafe(fut).catch_unwind() => result,
        };
        attach(move |py| {
            let (ok, value) = match result.map(|r| r.and_then(|v| v.into_py_any(py))) {
                Ok(Ok(value)) => (true, value),
                Ok(Err(err)) => (false, err.into_value(py).into_any()),
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    (
                        false,
                        PyRuntimeError::new_err(format!("kernia: the engine panicked: {what}"))
                            .into_value(py)
                            .into_any(),
                    )
                }
            };
            // A closed loop has nobody left to tell.
            let _ = event_loop.call_method1(py, "call_soon_threadsafe", (Settle, target, ok, value));
        });
    });
    Ok(py_fut)
}

type Answer = oneshot::Sender<PyResult<Py<PyAny>>>;

/// Runs on the event loop's thread: wraps the awaitable in a task whose end is
/// sent back to Rust by [`Forward`].
#[pyclass(module = "kernia._native", frozen)]
struct Start {
    job: TakeOnce<(Py<PyAny>, Answer)>,
}

#[pymethods]
impl Start {
    fn __call__(&self, py: Python<'_>) {
        let Some((awaitable, tx)) = self.job.take() else { return };
        let task = match py.import("asyncio").and_then(|asyncio| asyncio.call_method1("ensure_future", (awaitable,))) {
            Ok(task) => task,
            Err(err) => {
                let _ = tx.send(Err(err));
                return;
            }
        };
        if let Err(err) = task.call_method1("add_done_callback", (Forward { tx: TakeOnce::new(tx) },)) {
            // The sender is gone with the callback: the Rust side sees a cancelled wait.
            err.print(py);
        }
    }
}

/// Done callback of the task [`Start`] made: its result or exception goes to Rust.
#[pyclass(module = "kernia._native", frozen)]
struct Forward {
    tx: TakeOnce<Answer>,
}

#[pymethods]
impl Forward {
    fn __call__(&self, task: &Bound<'_, PyAny>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(task.call_method0("result").map(Bound::unbind));
        }
    }
}

/// Schedules `awaitable` on the loop of `locals`, in their context (so the
/// request's context variables are seen), and gives a future of its result.
pub(crate) fn into_future(
    locals: &TaskLocals,
    awaitable: Bound<'_, PyAny>,
) -> PyResult<impl Future<Output = PyResult<Py<PyAny>>> + Send + 'static> {
    let py = awaitable.py();
    let (tx, rx) = oneshot::channel();
    let start = Start { job: TakeOnce::new((awaitable.unbind(), tx)) };
    let kwargs = PyDict::new(py);
    kwargs.set_item("context", locals.context(py))?;
    locals.event_loop(py).call_method("call_soon_threadsafe", (start,), Some(&kwargs))?;
    Ok(async move {
        rx.await.unwrap_or_else(|_| Err(CancelledError::new_err("the event loop stopped before the callback finished")))
    })
}
