//! The asyncio side of the awaitables (`achat_completions`, a stream's `__anext__`): the event
//! loop's own thread drives each call's future and does its HTTP, woken through one fd per loop.
//! No tokio task per call, and no tokio thread ever takes the GIL.
//!
//! A call creates an `asyncio.Future` on the running loop and polls its Rust future right there
//! (inside the runtime's context): that submits the request, and the machine's attempts become
//! jobs of the same loop ([`crate::net`]), polled in the same pass: the request is written
//! before the call returns to the loop. Sockets wake their jobs through asyncio's own
//! `add_reader`/`add_writer` callbacks, on the loop thread. Whatever wakes a job from another
//! thread (a timer of the router, DNS, a cancel) queues its id and, unless the loop thread is
//! draining already, writes one byte to a socketpair whose read end the loop watches. Every
//! callback ends by polling the queued jobs and setting each finished call's [`Answer`] (a value
//! or an exception) on its asyncio future.
//!
//! Cancelling the asyncio future (task cancel, `wait_for` timeout) drops the Rust future from the
//! future's done callback, on the loop thread: a request and every attempt in flight are
//! cancelled, and the attempts' sockets closed.
//!
//! Loops that cannot watch an fd (no `add_reader`, e.g. the Windows proactor loop) or cannot be
//! weakly referenced fall back to `pyo3_async_runtimes`, and their calls' HTTP to the runtime's
//! pool.

use crate::awaitable::Answer;
use crate::net::LoopIo;
use crate::net::jobs::Jobs;
use crate::net::socket::Readiness;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyWeakrefReference};
use pyo3::{PyTraverseError, PyVisit};
use std::cell::RefCell;
use std::future::Future;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// One event loop's jobs (calls and HTTP attempts), the fds it watches for them, and the read
/// end of its wake-up socketpair.
///
/// The loop keeps it alive (its `add_reader` callbacks); so do the done callbacks of its calls
/// in flight, which is a cycle through the loop that the garbage collector frees once the loop
/// is closed (`__traverse__`).
#[pyclass(frozen, weakref, name = "_LoopWaker", module = "f3dx_router._native")]
pub(crate) struct LoopWaker {
    io: LoopIo,
    reader: UnixStream,
}

impl LoopWaker {
    /// Polls every queued job, `first` having run inside the drain, then has asyncio watch
    /// what the jobs now wait on. Returns what `first` returned.
    fn run<T>(
        slf: &Bound<'_, Self>,
        event_loop: &Bound<'_, PyAny>,
        first: impl FnOnce() -> T,
    ) -> T {
        let this = slf.get();
        let first = this.io.jobs.drain(first);
        this.io.reactor.sync(event_loop, slf.as_any());
        first
    }

    fn ready(slf: &Bound<'_, Self>, fd: RawFd, readiness: Readiness) -> PyResult<()> {
        let event_loop = running_loop(slf.py())?;
        Self::run(slf, &event_loop, || {
            slf.get().io.reactor.ready(&event_loop, fd, readiness)
        })
    }
}

impl Drop for LoopWaker {
    /// A loop dropped with calls in flight cancels them.
    fn drop(&mut self) {
        self.io.clear();
    }
}

#[pymethods]
impl LoopWaker {
    /// The wake-up socketpair's `add_reader` callback: polls every queued job.
    fn _drain(slf: &Bound<'_, Self>) -> PyResult<()> {
        let mut buf = [0u8; 256];
        loop {
            match (&slf.get().reader).read(&mut buf) {
                Ok(n) if n == buf.len() => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                _ => break,
            }
        }
        let event_loop = running_loop(slf.py())?;
        Self::run(slf, &event_loop, || {});
        Ok(())
    }

    /// asyncio reports a job's socket readable.
    fn _readable(slf: &Bound<'_, Self>, fd: RawFd) -> PyResult<()> {
        Self::ready(slf, fd, Readiness::Read)
    }

    /// asyncio reports a job's socket writable.
    fn _writable(slf: &Bound<'_, Self>, fd: RawFd) -> PyResult<()> {
        Self::ready(slf, fd, Readiness::Write)
    }

    /// The asyncio futures of the calls in flight hold this object through their done
    /// callbacks: visiting them lets the garbage collector free a loop closed with calls
    /// never awaited nor cancelled.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.io.jobs.traverse(&visit)
    }

    fn __clear__(&self) {
        self.io.clear();
    }

    /// The asyncio future's done callback: a cancelled call's router future is dropped, which
    /// cancels the request (a no-op for a finished call).
    fn _forget(slf: &Bound<'_, Self>, id: u64) -> PyResult<()> {
        slf.get().io.jobs.forget(id);
        // The cancel aborted attempts: their sockets close once asyncio forgets them.
        let event_loop = running_loop(slf.py())?;
        Self::run(slf, &event_loop, || {});
        Ok(())
    }
}

fn running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    GET_RUNNING_LOOP
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
        })?
        .bind(py)
        .call0()
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// `weakref.WeakKeyDictionary`: loop -> weak reference to its `LoopWaker`, or `False` for a
/// loop that cannot watch an fd. An entry goes away with its loop; the value is weak because
/// the waker refers to the loop (through the futures of its calls in flight).
static WAKERS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

thread_local! {
    /// The last loop this thread called on and its `LoopWaker`, both held weakly: most programs
    /// run one loop per thread, and `WAKERS.get` (a Python-level function) costs about a
    /// microsecond of every call.
    static LAST: RefCell<Option<(Py<PyWeakrefReference>, Py<PyWeakrefReference>)>> =
        const { RefCell::new(None) };
}

/// The running loop's `LoopWaker`, registering it on first use; `None` when the loop cannot
/// have one.
fn waker_for<'py>(
    py: Python<'py>,
    event_loop: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, LoopWaker>>> {
    let cached = LAST.with_borrow(|last| {
        let (loop_ref, waker_ref) = last.as_ref()?;
        if !loop_ref.bind(py).upgrade()?.is(event_loop) {
            return None;
        }
        waker_ref.bind(py).upgrade()?.cast_into::<LoopWaker>().ok()
    });
    if let Some(waker) = cached {
        return Ok(Some(waker));
    }
    let found = lookup_waker(py, event_loop)?;
    if let Some(waker) = &found {
        let refs = (
            PyWeakrefReference::new(event_loop)?.unbind(),
            PyWeakrefReference::new(waker)?.unbind(),
        );
        LAST.with_borrow_mut(|last| *last = Some(refs));
    }
    Ok(found)
}

/// [`waker_for`] through `WAKERS`.
fn lookup_waker<'py>(
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
                io: LoopIo::new(Jobs::new(writer)),
                reader,
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

/// The call `make` builds (given the running loop's [`LoopIo`]) as an `asyncio.Future` on that
/// loop, or `Err(make)` back when this loop needs the `pyo3_async_runtimes` path.
pub(crate) fn start<'py, M, F>(py: Python<'py>, make: M) -> PyResult<Result<Bound<'py, PyAny>, M>>
where
    M: FnOnce(Option<&LoopIo>) -> F,
    F: Future<Output = Answer> + Send + 'static,
{
    let event_loop = running_loop(py)?;
    let Some(loop_waker) = waker_for(py, &event_loop)? else {
        return Ok(Err(make));
    };
    let this = loop_waker.get();
    let future = event_loop.call_method0(intern!(py, "create_future"))?;
    let call = make(Some(&this.io));
    // Added inside the drain, so it is polled there and then without a wake-up byte.
    let id = LoopWaker::run(&loop_waker, &event_loop, || {
        this.io
            .jobs
            .add_call(Box::pin(call), future.clone().unbind())
    });
    let forget = Py::new(
        py,
        Forget {
            waker: loop_waker.clone().unbind(),
            id,
        },
    )?
    .into_any();
    future.call_method1(intern!(py, "add_done_callback"), (&forget,))?;
    this.io.jobs.set_forget(id, forget);
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

    fn __call__(&self, py: Python<'_>, _future: &Bound<'_, PyAny>) -> PyResult<()> {
        LoopWaker::_forget(self.waker.bind(py), self.id)
    }
}
