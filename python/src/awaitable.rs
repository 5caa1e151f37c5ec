//! Rust futures as asyncio awaitables: [`awaitable`] and the [`Answer`] they resolve to.
//!
//! On a loop that can watch an fd, the loop's own thread polls the future (`bridge`); elsewhere
//! `pyo3_async_runtimes` runs it as a task on the extension's runtime. Either way the future
//! itself never touches the GIL: it ends with an [`Answer`], which becomes Python objects (or
//! the exception) only where the GIL is held anyway. A runtime worker waiting for the GIL would
//! stall every task on it.

use pyo3::prelude::*;
use std::future::Future;

/// Makes an awaitable's value (or the exception it raises) under the GIL.
type MakeAnswer = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// What an awaitable resolves to, made under the GIL: its value, or the exception it raises.
pub(crate) struct Answer(MakeAnswer);

impl Answer {
    pub(crate) fn new(
        make: impl FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send + 'static,
    ) -> Self {
        Answer(Box::new(make))
    }

    /// The value, or the exception to raise.
    pub(crate) fn make(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        (self.0)(py)
    }
}

impl<'py> IntoPyObject<'py> for Answer {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.make(py).map(|value| value.into_bound(py))
    }
}

/// `future` as an asyncio awaitable on the running loop.
pub(crate) fn awaitable<'py, F>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Answer> + Send + 'static,
{
    #[cfg(unix)]
    let future = match crate::bridge::start(py, future)? {
        Ok(awaitable) => return Ok(awaitable),
        Err(future) => future,
    };
    crate::runtime::future_into_py(py, async move { Ok(future.await) })
}
