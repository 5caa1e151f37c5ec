//! The extension's one multi-thread tokio runtime (shared with `pyo3_async_runtimes`, so sync
//! and async calls run on the same workers and the same connection pools), and the blocking
//! wait sync calls use.

use pyo3::prelude::*;
use std::future::Future;
use std::time::Duration;
use tokio::runtime::Runtime;

/// How often a blocked sync call wakes to run Python's signal handlers (Ctrl-C).
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Names the runtime's threads. Called at module import, before anything builds the runtime.
pub(crate) fn configure() {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name("f3dx-router");
    pyo3_async_runtimes::tokio::init(builder);
}

pub(crate) fn runtime() -> &'static Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Drives `future` to completion on the runtime with the GIL released, waking every
/// [`SIGNAL_CHECK`] to run Python's signal handlers. If a handler raises (`KeyboardInterrupt`),
/// the future is dropped (which cancels whatever it started) and the exception propagates.
pub(crate) fn wait<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime();
    let mut future = std::pin::pin!(future);
    loop {
        let step = py.detach(|| {
            rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, future.as_mut()).await })
        });
        match step {
            Ok(output) => return Ok(output),
            Err(_elapsed) => py.check_signals()?,
        }
    }
}
