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

#[cfg(unix)]
pub(crate) use crate::net::LoopIo;

/// Where there is no loop IO (no `add_reader`), nothing is ever one.
#[cfg(not(unix))]
pub(crate) enum LoopIo {}

#[cfg(not(unix))]
impl LoopIo {
    pub(crate) fn spawner(
        &self,
        _tls: std::sync::Arc<rustls::ClientConfig>,
        _router: &f3dx_router_tokio::Router,
    ) -> std::sync::Arc<dyn f3dx_router_tokio::AttemptSpawner> {
        match *self {}
    }
}

/// The future `make` builds as an asyncio awaitable on the running loop. `make` is given the
/// loop's own [`LoopIo`] when the loop's thread polls the future (and can do its HTTP), `None`
/// when `pyo3_async_runtimes` runs it on the runtime instead.
pub(crate) fn awaitable<'py, M, F>(py: Python<'py>, make: M) -> PyResult<Bound<'py, PyAny>>
where
    M: FnOnce(Option<&LoopIo>) -> F,
    F: Future<Output = Answer> + Send + 'static,
{
    #[cfg(unix)]
    let make = match crate::bridge::start(py, make)? {
        Ok(awaitable) => return Ok(awaitable),
        Err(make) => make,
    };
    let future = make(None);
    crate::runtime::future_into_py(py, async move { Ok(future.await) })
}
