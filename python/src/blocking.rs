//! Where a sync call (or a sync stream) runs: on the calling thread, which polls the call and
//! does its HTTP itself, sleeping in `poll(2)` with the GIL released ([`Driver`]); the routing
//! machine and its timers stay the router's, shared with every other call.
//!
//! Why: a call whose attempts run on tokio threads crosses threads on the way out and on the way
//! back, and on a small VM each cross-thread wake costs as much as the loopback round trip
//! itself. Here the thread that waits is the one that sends and reads: one wake per call, on the
//! response. Connections come from one pool per router ([`SyncNet`]), shared by every thread:
//! a thread per request reuses its predecessors' connections.
//!
//! A thread keeps its driver (one socketpair) for its next calls; at most
//! [`MAX_THREAD_DRIVERS`] threads do at once, and the calls of the others make one per call. A
//! sync stream has a driver of its own, which whichever thread reads the stream drives.
//!
//! Where no driver can be used (not Unix; the router's HTTP/1.1 TLS setup failed) a call runs
//! on the extension's shared runtime and its pool instead.

use crate::runtime::{SIGNAL_CHECK, fork_generation, runtime};
use crate::stream::StreamHome;
use f3dx_router_core::{ChatRequest, RouteError, Routed};
use f3dx_router_tokio::{ChunkStream, Router};
use pyo3::prelude::*;
use std::future::Future;

#[cfg(unix)]
pub(crate) use crate::net::SyncNet;
#[cfg(unix)]
use crate::net::poll::Driver;
#[cfg(unix)]
use std::cell::RefCell;
#[cfg(unix)]
use std::sync::Arc;
#[cfg(unix)]
use std::sync::atomic::{AtomicUsize, Ordering};

/// Without a poll driver, nothing is ever one.
#[cfg(not(unix))]
pub(crate) enum SyncNet {}

/// Threads that may keep a driver at once (each holds a socketpair).
#[cfg(unix)]
const MAX_THREAD_DRIVERS: usize = 64;

/// Threads that keep a driver now.
#[cfg(unix)]
static THREAD_DRIVERS: AtomicUsize = AtomicUsize::new(0);

/// The number of threads that keep a driver. For tests.
#[pyfunction]
pub(crate) fn _thread_drivers() -> usize {
    #[cfg(unix)]
    return THREAD_DRIVERS.load(Ordering::Acquire);
    #[cfg(not(unix))]
    0
}

/// In a forked child only the forking thread exists; its inherited driver is forgotten (never
/// dropped, so never counted down) at its next call.
pub(crate) fn after_fork_in_child() {
    #[cfg(unix)]
    THREAD_DRIVERS.store(0, Ordering::Release);
}

/// A thread's driver, and the fork generation it was made in: a forked child's thread inherits
/// the forking thread's, whose jobs belong to the parent.
#[cfg(unix)]
struct ThreadDriver {
    generation: usize,
    driver: Arc<Driver>,
}

#[cfg(unix)]
impl Drop for ThreadDriver {
    fn drop(&mut self) {
        THREAD_DRIVERS.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(unix)]
thread_local! {
    static DRIVER: RefCell<Option<ThreadDriver>> = const { RefCell::new(None) };
}

/// This thread's driver, made on first use; a driver for one call once [`MAX_THREAD_DRIVERS`]
/// threads keep one. Cloned out, not borrowed across the call: a signal handler may call again.
#[cfg(unix)]
fn thread_driver() -> PyResult<Arc<Driver>> {
    let made = |e: std::io::Error| {
        pyo3::exceptions::PyOSError::new_err(format!(
            "f3dx_router: cannot make this thread's wake-up socketpair: {e}"
        ))
    };
    DRIVER.with_borrow_mut(|slot| {
        let generation = fork_generation();
        if slot.as_ref().is_some_and(|d| d.generation != generation) {
            std::mem::forget(slot.take());
        }
        if let Some(kept) = slot {
            return Ok(kept.driver.clone());
        }
        let reserved = THREAD_DRIVERS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_THREAD_DRIVERS).then_some(n + 1)
            })
            .is_ok();
        if !reserved {
            return Driver::new().map(Arc::new).map_err(made);
        }
        let driver = Driver::new().map(Arc::new).map_err(|e| {
            THREAD_DRIVERS.fetch_sub(1, Ordering::AcqRel);
            made(e)
        })?;
        *slot = Some(ThreadDriver {
            generation,
            driver: driver.clone(),
        });
        Ok(driver)
    })
}

/// Drives `future` on `driver` from this thread with the GIL released, waking every
/// [`SIGNAL_CHECK`] (or at once on a signal) to run Python's signal handlers. If a handler raises
/// (`KeyboardInterrupt`), the future is dropped, which cancels the call's attempts, and they are
/// dropped (their sockets closed) before the exception propagates.
#[cfg(unix)]
fn drive<F>(py: Python<'_>, driver: &Driver, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let outcome = {
        let mut future = std::pin::pin!(future);
        loop {
            if let Some(output) = py.detach(|| driver.run(future.as_mut(), SIGNAL_CHECK)) {
                break Ok(output);
            }
            if let Err(interrupt) = py.check_signals() {
                break Err(interrupt);
            }
        }
    };
    if outcome.is_err() {
        py.detach(|| driver.settle());
    }
    outcome
}

/// Drives `future` on the shared runtime with the GIL released, checking for signals as
/// [`drive`] does.
fn block_on_shared<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let mut future = std::pin::pin!(future);
    loop {
        let step = py.detach(|| {
            runtime().block_on(async { tokio::time::timeout(SIGNAL_CHECK, future.as_mut()).await })
        });
        match step {
            Ok(output) => return Ok(output),
            Err(_elapsed) => py.check_signals()?,
        }
    }
}

/// Routes `request` with the GIL released: on this thread's driver with `net`'s connections,
/// or on the shared runtime without `net`.
pub(crate) fn call(
    py: Python<'_>,
    router: Router,
    net: Option<&SyncNet>,
    request: ChatRequest,
) -> PyResult<Result<Routed, RouteError>> {
    #[cfg(unix)]
    if let Some(net) = net {
        let driver = thread_driver()?;
        let router = router.with_spawner(net.spawner(&driver));
        return drive(py, &driver, router.chat_completions(request));
    }
    #[cfg(not(unix))]
    let _ = net;
    block_on_shared(py, async move { router.chat_completions(request).await })
}

/// Starts a streaming request on a driver of its own (or the shared runtime without `net`) and
/// returns its chunks and where its attempts run. The driver is run once before returning, with
/// the GIL released: the request is on its way before Python reads the first chunk.
pub(crate) fn start_stream(
    py: Python<'_>,
    router: Router,
    net: Option<&SyncNet>,
    request: ChatRequest,
) -> PyResult<(ChunkStream, StreamHome)> {
    #[cfg(unix)]
    if let Some(net) = net {
        let driver = Arc::new(Driver::new()?);
        let router = router.with_spawner(net.spawner(&driver));
        // Submitted inside a round: its attempts are polled (the request written) at once.
        let chunks = py.detach(|| {
            driver.round(|| {
                let _entered = runtime().enter();
                router.chat_completions_stream(request)
            })
        });
        return Ok((chunks, StreamHome::Driver(driver)));
    }
    #[cfg(not(unix))]
    let _ = net;
    let _entered = runtime().enter();
    Ok((router.chat_completions_stream(request), StreamHome::Shared))
}
