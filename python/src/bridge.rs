//! The asyncio side of the awaitables (`achat_completions`, a stream's `__anext__`): the event
//! loop's own thread drives each call's future, woken through one fd per loop. No tokio task per
//! call, and no tokio thread ever takes the GIL.
//!
//! A call creates an `asyncio.Future` on the running loop and polls its Rust future once right
//! there (inside the runtime's context): that submits a request and spawns its attempts exactly
//! as the blocking call does, and a stream chunk already buffered is answered at once. The
//! future's waker, run on a tokio worker when something arrives, pushes the call's id onto the
//! loop's queue and, only when the queue was empty, writes one byte to a socketpair whose read
//! end the loop watches (`loop.add_reader`, registered once per loop). The drain callback runs
//! on the loop thread: it reads the bytes, polls every woken call again, and sets each finished
//! one's [`Answer`] (a value or an exception) on its asyncio future.
//!
//! Cancelling the asyncio future (task cancel, `wait_for` timeout) drops the Rust future from the
//! future's done callback, on the loop thread: a request and every attempt in flight are
//! cancelled.
//!
//! Loops that cannot watch an fd (no `add_reader`, e.g. the Windows proactor loop) or cannot be
//! weakly referenced fall back to `pyo3_async_runtimes`.

use crate::awaitable::Answer;
use crate::runtime::runtime;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyWeakrefReference};
use pyo3::{PyTraverseError, PyVisit};
use std::collections::HashMap;
use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Call = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// A call in flight: its Rust future, and the asyncio future its answer goes to.
struct Pending {
    call: Call,
    waker: Waker,
    future: Py<PyAny>,
}

/// The woken calls of one loop, shared with the wakers tokio workers run.
struct Queue {
    woken: Mutex<Vec<u64>>,
    wake: UnixStream,
}

impl Queue {
    fn push(&self, id: u64) {
        let was_empty = {
            let mut woken = lock(&self.woken);
            let was_empty = woken.is_empty();
            woken.push(id);
            was_empty
        };
        if was_empty {
            // Non-blocking: a full buffer already holds a pending wake-up.
            let _ = (&self.wake).write(&[1]);
        }
    }
}

/// Wakes one call: queues its id for the loop thread.
struct CallWaker {
    id: u64,
    queue: Arc<Queue>,
}

impl Wake for CallWaker {
    fn wake(self: Arc<Self>) {
        self.queue.push(self.id);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.queue.push(self.id);
    }
}

/// One event loop's calls in flight, its queue of woken ones, and the read end of its wake-up
/// socketpair.
///
/// The loop keeps it alive (its `add_reader` callback); so do the done callbacks of its calls in
/// flight, which is a cycle through the loop that the garbage collector frees once the loop is
/// closed (`__traverse__`).
#[pyclass(frozen, weakref, name = "_LoopWaker", module = "f3dx_router._native")]
pub(crate) struct LoopWaker {
    queue: Arc<Queue>,
    reader: UnixStream,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
}

impl LoopWaker {
    /// Polls `pending` once (in the runtime's context). Finished: delivers its outcome; not yet:
    /// keeps it until its waker runs.
    fn poll(&self, py: Python<'_>, id: u64, mut pending: Pending) {
        let polled = {
            let _entered = runtime().enter();
            let mut cx = Context::from_waker(&pending.waker);
            pending.call.as_mut().poll(&mut cx)
        };
        match polled {
            Poll::Ready(answer) => {
                if let Err(err) = deliver(py, &pending.future, answer) {
                    // Whatever went wrong reaches the awaiting task rather than leaving it
                    // waiting forever (ignored if the future is done already), and the loop's
                    // other calls go on.
                    let _ = pending
                        .future
                        .bind(py)
                        .call_method1(intern!(py, "set_exception"), (err.into_value(py),));
                }
                drop_call(pending);
            }
            Poll::Pending => {
                lock(&self.pending).insert(id, pending);
            }
        }
    }
}

impl Drop for LoopWaker {
    /// A loop dropped with calls in flight cancels them (in the runtime's context).
    fn drop(&mut self) {
        let _entered = runtime().enter();
        lock(&self.pending).clear();
    }
}

/// Drops a call's router future in the runtime's context (cancelling it, if unfinished).
fn drop_call(pending: Pending) {
    let _entered = runtime().enter();
    drop(pending);
}

#[pymethods]
impl LoopWaker {
    /// The `add_reader` callback: polls every woken call.
    fn _drain(&self, py: Python<'_>) {
        let mut buf = [0u8; 256];
        loop {
            match (&self.reader).read(&mut buf) {
                Ok(n) if n == buf.len() => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                _ => break,
            }
        }
        let woken = std::mem::take(&mut *lock(&self.queue.woken));
        for id in woken {
            // Absent: already finished, or cancelled (a waker can run after either).
            let Some(pending) = lock(&self.pending).remove(&id) else {
                continue;
            };
            self.poll(py, id, pending);
        }
    }

    /// The asyncio futures of the calls in flight hold this object through their done
    /// callbacks: visiting them lets the garbage collector free a loop closed with calls
    /// never awaited nor cancelled.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Only the loop thread, holding the GIL, locks `pending`; the collector runs there
        // or on another thread that holds the GIL, so this never waits.
        if let Ok(pending) = self.pending.try_lock() {
            for call in pending.values() {
                visit.call(&call.future)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let calls = std::mem::take(&mut *lock(&self.pending));
        let _entered = runtime().enter();
        drop(calls);
    }

    /// The asyncio future's done callback: a cancelled call's router future is dropped, which
    /// cancels the request (a no-op for a finished call).
    fn _forget(&self, id: u64) {
        let pending = lock(&self.pending).remove(&id);
        if let Some(pending) = pending {
            drop_call(pending);
        }
    }
}

fn deliver(py: Python<'_>, future: &Py<PyAny>, answer: Answer) -> PyResult<()> {
    let future = future.bind(py);
    if future.call_method0(intern!(py, "done"))?.is_truthy()? {
        return Ok(());
    }
    match answer.make(py) {
        Ok(value) => future.call_method1(intern!(py, "set_result"), (value,))?,
        Err(err) => future.call_method1(intern!(py, "set_exception"), (err.into_value(py),))?,
    };
    Ok(())
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// `weakref.WeakKeyDictionary`: loop -> weak reference to its `LoopWaker`, or `False` for a
/// loop that cannot watch an fd. An entry goes away with its loop; the value is weak because
/// the waker refers to the loop (through the futures of its calls in flight).
static WAKERS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The running loop's `LoopWaker`, registering it on first use; `None` when the loop cannot
/// have one.
fn waker_for<'py>(
    py: Python<'py>,
    event_loop: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, LoopWaker>>> {
    let wakers = WAKERS
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("weakref")?
                    .getattr("WeakKeyDictionary")?
                    .call0()?
                    .unbind(),
            )
        })?
        .bind(py);
    let Ok(entry) = wakers.call_method1(intern!(py, "get"), (event_loop,)) else {
        return Ok(None); // not weakly referenceable
    };
    if entry.is_instance_of::<PyBool>() {
        return Ok(None);
    }
    if !entry.is_none() {
        if let Ok(waker) = entry.call0()?.cast_into::<LoopWaker>() {
            return Ok(Some(waker));
        }
        // Dead: the loop was closed, which dropped its reader callback.
    }
    let registered = (|| -> PyResult<Bound<'py, LoopWaker>> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        let fd = reader.as_raw_fd();
        let waker = Bound::new(
            py,
            LoopWaker {
                queue: Arc::new(Queue {
                    woken: Mutex::new(Vec::new()),
                    wake: writer,
                }),
                reader,
                pending: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
            },
        )?;
        event_loop.call_method1(
            intern!(py, "add_reader"),
            (fd, waker.getattr(intern!(py, "_drain"))?),
        )?;
        Ok(waker)
    })();
    match registered {
        Ok(waker) => {
            let weak = PyWeakrefReference::new(&waker)?;
            wakers.set_item(event_loop, weak)?;
            Ok(Some(waker))
        }
        Err(_) => {
            wakers.set_item(event_loop, false)?;
            Ok(None)
        }
    }
}

/// `call` as an `asyncio.Future` on the running loop, or `Err(call)` back when this loop needs
/// the `pyo3_async_runtimes` path.
pub(crate) fn start<'py, F>(py: Python<'py>, call: F) -> PyResult<Result<Bound<'py, PyAny>, F>>
where
    F: Future<Output = Answer> + Send + 'static,
{
    let get_running_loop = GET_RUNNING_LOOP
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
        })?
        .bind(py);
    let event_loop = get_running_loop.call0()?;
    let Some(loop_waker) = waker_for(py, &event_loop)? else {
        return Ok(Err(call));
    };
    let future = event_loop.call_method0(intern!(py, "create_future"))?;
    let this = loop_waker.get();
    let id = this.next_id.fetch_add(1, Ordering::Relaxed);
    future.call_method1(
        intern!(py, "add_done_callback"),
        (Forget {
            waker: loop_waker.clone().unbind(),
            id,
        },),
    )?;
    let pending = Pending {
        call: Box::pin(call),
        waker: Waker::from(Arc::new(CallWaker {
            id,
            queue: this.queue.clone(),
        })),
        future: future.clone().unbind(),
    };
    this.poll(py, id, pending);
    Ok(Ok(future))
}

/// The done callback of a call's asyncio future: [`LoopWaker::_forget`] of its id.
#[pyclass(frozen, name = "_Forget", module = "f3dx_router._native")]
struct Forget {
    waker: Py<LoopWaker>,
    id: u64,
}

#[pymethods]
impl Forget {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.waker)
    }

    fn __call__(&self, _future: &Bound<'_, PyAny>) {
        self.waker.get()._forget(self.id);
    }
}
