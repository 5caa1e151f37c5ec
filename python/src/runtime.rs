//! The extension's one multi-thread tokio runtime, shared with `pyo3_async_runtimes`: async calls,
//! streams and every router's timer task run on it. Sync unary calls run on their own thread
//! ([`crate::local`]).

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
