//! Where a sync call (or a sync stream) runs: on the calling thread itself, with a current-thread
//! tokio runtime of the thread's own and, per router, a connection pool of its own on it
//! ([`Router::with_own_pool`]); the routing machine stays shared.
//!
//! Why: on the shared multi-thread runtime a sync call crosses threads three times (the caller
//! hands the attempt to a worker, the worker wakes on the response, the caller is woken with the
//! answer), and on a small VM each cross-thread wake costs as much as the loopback round trip
//! itself. Here the thread that waits is the one that sends and reads: one wake per call, on the
//! response. The machine's timer task stays on the shared runtime, and wakes this thread when a
//! deadline or a delayed hedge fires.
//!
//! Two exceptions keep the shared runtime and pool. A thread's first
//! [`SHARED_CALLS_BEFORE_LOCAL`] calls: a thread that makes one call and ends (a thread per
//! request) would otherwise open a connection, and a TLS session, per call. And every call of a
//! thread beyond the first [`MAX_THREAD_RUNTIMES`] to have a runtime of its own: each holds an
//! epoll descriptor, an eventfd and its connections, and hundreds of threads would run out of
//! descriptors.
//!
//! A pool here is only polled while its thread waits on a call. Two consequences, both handled
//! in [`call`] and [`start_stream`]: connections the server closed meanwhile are noticed before the next request is
//! sent (one yield to the runtime first), and attempts cancelled by the call's end (a hedge's
//! loser) are dropped, closing their connections, before the thread returns to Python.

use crate::runtime::{SIGNAL_CHECK, fork_generation, runtime};
use crate::stream::StreamHome;
use f3dx_router_core::{ChatRequest, RouteError, Routed};
use f3dx_router_tokio::{ChunkStream, Router};
use pyo3::prelude::*;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use tokio::runtime::Runtime;

/// Identifies one Python `Router` in the per-thread pool lists, without keeping it alive.
pub(crate) type PoolKey = Arc<()>;

/// One thread's runtime, and the router clones (own pools) it has used.
struct ThreadLocalDriver {
    /// The fork generation it was made in: a forked child's thread inherits its parent's driver
    /// (the thread that called `fork`), whose descriptors it shares with the parent.
    generation: usize,
    /// Shared with the streams started on this thread, which may be read from another one.
    runtime: Arc<Runtime>,
    routers: Vec<(Weak<()>, Router)>,
}

impl Drop for ThreadLocalDriver {
    fn drop(&mut self) {
        THREAD_RUNTIMES.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sync calls a thread makes on the shared runtime before it gets one of its own.
const SHARED_CALLS_BEFORE_LOCAL: u32 = 2;

/// Threads that may have a runtime of their own at once.
const MAX_THREAD_RUNTIMES: usize = 64;

/// Threads that have a runtime of their own now.
static THREAD_RUNTIMES: AtomicUsize = AtomicUsize::new(0);

/// The number of threads with a runtime of their own. For tests.
#[pyfunction]
pub(crate) fn _thread_runtimes() -> usize {
    THREAD_RUNTIMES.load(Ordering::Acquire)
}

/// In a forked child only the forking thread exists; its inherited driver is forgotten (never
/// dropped, so never counted down) at its next call.
pub(crate) fn after_fork_in_child() {
    THREAD_RUNTIMES.store(0, Ordering::Release);
}

thread_local! {
    static DRIVER: RefCell<Option<ThreadLocalDriver>> = const { RefCell::new(None) };
    /// Sync calls this thread has made on the shared runtime.
    static SHARED_CALLS: Cell<u32> = const { Cell::new(0) };
}

/// Yields to the runtime twice: enough for every task already woken (an aborted attempt, then
/// the connection task its drop woke) to run once more.
async fn settle() {
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
}

/// Runs what cancelled attempts left on a thread runtime: their connections close now, not at
/// that runtime's next use. Skipped inside another runtime's context (a drop there cannot
/// block); the connections then close at the next use.
pub(crate) fn settle_on(runtime: &Runtime) {
    if tokio::runtime::Handle::try_current().is_err() {
        runtime.block_on(settle());
    }
}

/// Counts a new thread runtime in, unless [`MAX_THREAD_RUNTIMES`] are alive.
fn reserve_thread_runtime() -> bool {
    THREAD_RUNTIMES
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_THREAD_RUNTIMES).then_some(n + 1)
        })
        .is_ok()
}

/// This thread's runtime and `shared`'s clone with a pool on it, made on first use (`None`: too
/// many threads have one). Routers whose Python object is gone are dropped from the list here.
fn driver_for(shared: &Router, key: &PoolKey) -> PyResult<Option<(Arc<Runtime>, Router)>> {
    DRIVER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let generation = fork_generation();
        if slot.as_ref().is_some_and(|d| d.generation != generation) {
            // The parent's: never dropped here (dropping deregisters its sockets from an epoll
            // instance the parent still uses).
            std::mem::forget(slot.take());
        }
        let driver = match slot.as_mut() {
            Some(driver) => driver,
            None => {
                if !reserve_thread_runtime() {
                    return Ok(None);
                }
                let built = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let runtime = built.map_err(|e| {
                    THREAD_RUNTIMES.fetch_sub(1, Ordering::AcqRel);
                    pyo3::exceptions::PyRuntimeError::new_err(format!(
                        "f3dx_router: cannot start this thread's tokio runtime: {e}"
                    ))
                })?;
                slot.insert(ThreadLocalDriver {
                    generation,
                    runtime: Arc::new(runtime),
                    routers: Vec::new(),
                })
            }
        };
        driver.routers.retain(|(owner, _)| owner.strong_count() > 0);
        let found = driver
            .routers
            .iter()
            .find(|(owner, _)| std::ptr::eq(owner.as_ptr(), Arc::as_ptr(key)));
        let router = match found {
            Some((_, router)) => router.clone(),
            None => {
                let router = shared.with_own_pool().map_err(|e| {
                    pyo3::exceptions::PyRuntimeError::new_err(format!(
                        "f3dx_router: cannot build this thread's connection pool: {e}"
                    ))
                })?;
                driver.routers.push((Arc::downgrade(key), router.clone()));
                router
            }
        };
        Ok(Some((driver.runtime.clone(), router)))
    })
}

/// Drives `future` on `runtime` from this thread with the GIL released, waking every
/// [`SIGNAL_CHECK`] to run Python's signal handlers. If a handler raises (`KeyboardInterrupt`),
/// the future is dropped (which cancels the call's attempts) and the exception propagates.
fn block_on_with_signals<F>(py: Python<'_>, runtime: &Runtime, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let mut future = std::pin::pin!(future);
    loop {
        let step = py.detach(|| {
            runtime.block_on(async { tokio::time::timeout(SIGNAL_CHECK, future.as_mut()).await })
        });
        match step {
            Ok(output) => return Ok(output),
            Err(_elapsed) => py.check_signals()?,
        }
    }
}

/// Where this thread's next call runs: its own runtime and `shared`'s clone with a pool on it,
/// or `None` for the shared runtime (see the module doc).
fn home_for_call(shared: &Router, key: &PoolKey) -> PyResult<Option<(Arc<Runtime>, Router)>> {
    let shared_calls = SHARED_CALLS.get();
    if shared_calls < SHARED_CALLS_BEFORE_LOCAL {
        SHARED_CALLS.set(shared_calls + 1);
        return Ok(None);
    }
    driver_for(shared, key)
}

/// Starts a streaming request where [`home_for_call`] says; returns its chunks and where its
/// attempts run. On a thread runtime, attempts run only while the runtime is driven, so it is
/// driven a little here, with the GIL released: after a yield (connections the server closed
/// meanwhile are noticed first), the submit, then [`settle`], which on a pooled connection is
/// enough for the request to be written. The rest happens while the stream is read.
pub(crate) fn start_stream(
    py: Python<'_>,
    shared: &Router,
    key: &PoolKey,
    request: ChatRequest,
) -> PyResult<(ChunkStream, StreamHome)> {
    let Some((runtime, router)) = home_for_call(shared, key)? else {
        let _entered = runtime().enter();
        return Ok((shared.chat_completions_stream(request), StreamHome::Shared));
    };
    let chunks = py.detach(|| {
        runtime.block_on(async {
            tokio::task::yield_now().await;
            let chunks = router.chat_completions_stream(request);
            settle().await;
            chunks
        })
    });
    Ok((chunks, StreamHome::Thread(runtime)))
}

/// Routes `request` with the GIL released, where [`home_for_call`] says.
pub(crate) fn call(
    py: Python<'_>,
    shared: &Router,
    key: &PoolKey,
    request: ChatRequest,
) -> PyResult<Result<Routed, RouteError>> {
    let Some((runtime, router)) = home_for_call(shared, key)? else {
        let router = shared.clone();
        return block_on_with_signals(py, runtime(), async move {
            router.chat_completions(request).await
        });
    };
    // Not borrowed from the thread-local across the wait: a signal handler may call again.
    let runtime: &Runtime = &runtime;
    // The call (and, on a signal, whatever it still had in flight) is dropped inside.
    let outcome = block_on_with_signals(py, runtime, async move {
        tokio::task::yield_now().await;
        router.chat_completions(request).await
    });
    // A call answered by its only attempt left nothing behind; otherwise attempts were cut short
    // (a hedge's loser, a failover's timed-out attempt, the deadline) and their connections close
    // now, not at this thread's next call.
    let single_attempt = matches!(&outcome, Ok(Ok(routed)) if routed.attempts.len() == 1);
    if !single_attempt {
        py.detach(|| settle_on(runtime));
    }
    outcome
}
