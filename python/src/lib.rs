//! `f3dx_router._native`: the Python binding of f3dx-router, over the tokio driver.
//!
//! - [`awaitable`]: Rust futures as asyncio awaitables; `bridge` (Unix): the loop's thread polls
//!   each one, one wake-up fd per event loop (elsewhere `pyo3_async_runtimes` runs them).
//! - `net` (Unix): HTTP done by the thread that waits for the call (the event loop's own thread,
//!   or the sync caller's).
//! - [`router`]: the `Router` class (keyword arguments -> core's JSON config, sync calls that
//!   release the GIL and watch for Ctrl-C, async calls that are real awaitables).
//! - [`stream`]: `ChatCompletionStream` and `AsyncChatCompletionStream` over a `ChunkStream`.
//! - [`route`]: `Route` and `Attempt`, the route metadata of every answer and error.
//! - [`stats`]: `Router.stats()`, core's per-provider snapshot as dicts.
//! - [`errors`]: the exception hierarchy under `RouterError`, and key scrubbing.
//! - [`runtime`]: the multi-thread tokio runtime the extension owns (one per process: rebuilt
//!   in a forked child).
//! - [`blocking`]: sync calls and streams on the caller's thread (a `poll(2)` driver).
//! - [`json`]: Python objects to JSON bytes and back (the interpreter's own `json` module).

mod awaitable;
mod blocking;
#[cfg(unix)]
mod bridge;
mod errors;
mod json;
#[cfg(unix)]
mod net;
mod route;
mod router;
mod runtime;
mod stats;
mod stream;

use pyo3::prelude::*;
use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking over a lock poisoned by a panic: every state behind these locks stays
/// consistent between statements, and a poisoned lock must not make the router unusable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The native module. `f3dx_router/__init__.py` re-exports everything public.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<router::PyRouter>()?;
    m.add_class::<stream::SyncStream>()?;
    m.add_class::<stream::AsyncStream>()?;
    m.add_class::<route::Route>()?;
    m.add_class::<route::Attempt>()?;
    errors::register(py, m)?;
    runtime::register(py, m)?;
    // For tests; `setattr`, not `add`, keeps it out of `__all__`.
    m.setattr(
        "_thread_drivers",
        wrap_pyfunction!(blocking::_thread_drivers, m)?,
    )?;
    m.setattr(
        "_json_fast_paths",
        wrap_pyfunction!(json::_json_fast_paths, m)?,
    )?;
    Ok(())
}
