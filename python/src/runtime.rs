//! The extension's multi-thread tokio runtime: every router's timer task, DNS lookups and connect
//! timeouts run on it, and so do the calls that cannot run on their caller's thread (no fd-watching
//! event loop, not Unix). Sync calls and streams run on their caller's thread
//! ([`crate::blocking`]), awaited ones on the event loop's ([`crate::bridge`]).
//!
//! One runtime per process. A forked child (multiprocessing's default start method on Linux,
//! prefork servers) inherits the parent's runtime without its worker threads: anything spawned
//! there would never run, so every call would hang. `os.register_at_fork` bumps a generation
//! counter in the child, and everything process-bound (this runtime, each thread's sync driver,
//! each router's driver and sync pool) is rebuilt when it finds the generation changed. The
//! parent's copies are left alone, never dropped: dropping them would close descriptors the
//! parent still uses.

use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;
use pyo3_async_runtimes::generic::{self, ContextExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::runtime::Runtime;

/// How often a blocked sync call wakes to run Python's signal handlers (Ctrl-C).
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// How many forks separate this process from the one that imported the module.
static FORK_GENERATION: AtomicUsize = AtomicUsize::new(0);

/// This process's generation (see the module doc).
pub(crate) fn fork_generation() -> usize {
    FORK_GENERATION.load(Ordering::Acquire)
}

/// The `after_in_child` hook of `os.register_at_fork`.
#[pyfunction]
fn _after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::AcqRel);
    crate::blocking::after_fork_in_child();
}

/// Registers the fork hook, where the platform can fork (not Windows). Called once, at module
/// import.
pub(crate) fn register(py: Python<'_>, m: &Bound<'_, PyModule>) -> PyResult<()> {
    let Ok(register_at_fork) = py.import("os")?.getattr("register_at_fork") else {
        return Ok(());
    };
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("after_in_child", wrap_pyfunction!(_after_fork_in_child, m)?)?;
    register_at_fork.call((), Some(&kwargs))?;
    Ok(())
}

/// The runtime of one generation, and the way to the next. A chain of `OnceLock`s rather than a
/// lock-protected slot: a child must never wait on a lock a parent thread held at the fork.
struct Generation {
    runtime: OnceLock<Runtime>,
    next: OnceLock<Box<Generation>>,
}

impl Generation {
    const fn new() -> Self {
        Generation {
            runtime: OnceLock::new(),
            next: OnceLock::new(),
        }
    }
}

static FIRST: Generation = Generation::new();

/// This process's runtime, built on first use.
pub(crate) fn runtime() -> &'static Runtime {
    let mut generation: &'static Generation = &FIRST;
    for _ in 0..fork_generation() {
        generation = generation.next.get_or_init(|| Box::new(Generation::new()));
    }
    generation.runtime.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("f3dx-router")
            .build()
            .expect("f3dx_router: the OS refused to start the tokio runtime's threads")
    })
}

/// [`runtime`] for `pyo3_async_runtimes`' conversions of futures into awaitables.
struct ProcessRuntime;

tokio::task_local! {
    static TASK_LOCALS: OnceLock<TaskLocals>;
}

impl generic::Runtime for ProcessRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        runtime().spawn(fut)
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        runtime().spawn_blocking(f)
    }
}

impl ContextExt for ProcessRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        Box::pin(TASK_LOCALS.scope(OnceLock::from(locals), fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|locals| locals.get().cloned())
            .unwrap_or_default()
    }
}

/// `fut` as an asyncio awaitable, run on this process's runtime.
pub(crate) fn future_into_py<F, T>(py: Python<'_>, fut: F) -> PyResult<Bound<'_, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    generic::future_into_py::<ProcessRuntime, F, T>(py, fut)
}
