//! The futures one thread polls: on an event loop's thread, awaited calls (each with the asyncio
//! future its answer goes to) and HTTP attempts; in a blocking driver, HTTP attempts. A job's
//! waker queues its id; the owning thread polls queued jobs in [`Jobs::drain`]. A waker run on
//! another thread (a tokio timer, the machine's lock holder) also writes one byte to the wake-up
//! socketpair, unless the owning thread is draining already (it will see the id before it
//! stops).

use crate::awaitable::Answer;
use crate::lock;
use crate::runtime::runtime;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

pub(crate) type CallFuture = Pin<Box<dyn Future<Output = Answer> + Send>>;
pub(crate) type AttemptFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

enum Work {
    /// An awaited call: its answer goes to `future` (an `asyncio.Future`), from which the
    /// done callback `forget` (which watches for a cancel) is removed first.
    Call {
        call: CallFuture,
        future: Py<PyAny>,
        forget: Option<Py<PyAny>>,
    },
    /// An HTTP attempt: it reports through its sink.
    Attempt(AttemptFuture),
}

struct Job {
    work: Work,
    waker: Waker,
}

/// The id no job has: what [`Jobs::nudge`] queues.
const NO_JOB: u64 = u64::MAX;

#[derive(Default)]
struct Queued {
    woken: Vec<u64>,
    aborted: Vec<u64>,
    /// The owning thread is in `drain`: no wake-up byte needed.
    draining: bool,
}

/// Woken and aborted job ids, and the write end of the wake-up socketpair.
struct Queue {
    queued: Mutex<Queued>,
    wake: UnixStream,
}

impl Queue {
    fn push(&self, id: u64, aborted: bool) {
        let write = {
            let mut q = lock(&self.queued);
            let idle = q.woken.is_empty() && q.aborted.is_empty() && !q.draining;
            if aborted {
                q.aborted.push(id);
            } else {
                q.woken.push(id);
            }
            idle
        };
        if write {
            // Non-blocking: a full buffer already holds a pending wake-up.
            let _ = (&self.wake).write(&[1]);
        }
    }
}

struct JobWaker {
    id: u64,
    queue: Arc<Queue>,
}

impl Wake for JobWaker {
    fn wake(self: Arc<Self>) {
        self.queue.push(self.id, false);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.queue.push(self.id, false);
    }
}

/// The jobs in flight of one thread: an event loop's, or a blocking driver's.
pub(crate) struct Jobs {
    queue: Arc<Queue>,
    jobs: Mutex<HashMap<u64, Job>>,
    next_id: AtomicU64,
    /// The loop or driver is gone: nothing will poll a job again.
    closed: AtomicBool,
}

impl Jobs {
    /// `wake` is the write end of the socketpair whose read end the owning thread watches.
    pub(crate) fn new(wake: UnixStream) -> Self {
        Jobs {
            queue: Arc::new(Queue {
                queued: Mutex::new(Queued::default()),
                wake,
            }),
            jobs: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    fn add(&self, work: Work) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if self.closed.load(Ordering::Acquire) {
            // Dropped on the runtime, not here: an attempt is added with the router's lock held,
            // and its dropped sink reports to the router (the machine hears a reset).
            runtime().spawn(async move { drop(work) });
            return id;
        }
        let waker = Waker::from(Arc::new(JobWaker {
            id,
            queue: self.queue.clone(),
        }));
        lock(&self.jobs).insert(id, Job { work, waker });
        self.queue.push(id, false);
        id
    }

    /// Queues an awaited call whose answer goes to `future`; polled at the next drain.
    pub(crate) fn add_call(&self, call: CallFuture, future: Py<PyAny>) -> u64 {
        self.add(Work::Call {
            call,
            future,
            forget: None,
        })
    }

    /// Records the done callback that watches call `id`'s future for a cancel, to be removed
    /// when the call answers (it would otherwise run, uselessly, on every call). A call that
    /// answered already is gone: its callback just runs.
    pub(crate) fn set_forget(&self, id: u64, callback: Py<PyAny>) {
        if let Some(Job {
            work: Work::Call { forget, .. },
            ..
        }) = lock(&self.jobs).get_mut(&id)
        {
            *forget = Some(callback);
        }
    }

    /// Queues an attempt, from any thread; polled at the owning thread's next drain.
    pub(crate) fn add_attempt(&self, attempt: AttemptFuture) -> u64 {
        self.add(Work::Attempt(attempt))
    }

    /// Wakes the owning thread as a woken job would, for a future it polls itself.
    pub(crate) fn nudge(&self) {
        self.queue.push(NO_JOB, false);
    }

    /// Drops job `id` at the next drain, from any thread.
    pub(crate) fn abort(&self, id: u64) {
        self.queue.push(id, true);
    }

    /// Drops job `id` now (aborted, or its asyncio future was cancelled); on the owning thread.
    pub(crate) fn forget(&self, id: u64) {
        let job = lock(&self.jobs).remove(&id);
        drop_in_runtime(job);
    }

    /// Drops every job (the loop or thread is going away) and every job added from now on, on
    /// the runtime: this may run in a thread-local's destructor, where tokio's own thread-locals
    /// are gone. Taken out first: dropping a call cancels its request, which may abort attempts
    /// or start new ones.
    pub(crate) fn clear(&self) {
        self.closed.store(true, Ordering::Release);
        let jobs = std::mem::take(&mut *lock(&self.jobs));
        if !jobs.is_empty() {
            runtime().spawn(async move { drop(jobs) });
        }
    }

    /// Visits the asyncio futures of the calls in flight and their done callbacks, for the
    /// garbage collector.
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Only the loop thread, holding the GIL, locks `jobs` for long; the collector runs
        // there or on another thread that holds the GIL, so this never waits.
        if let Ok(jobs) = self.jobs.try_lock() {
            for job in jobs.values() {
                if let Work::Call { future, forget, .. } = &job.work {
                    visit.call(future)?;
                    if let Some(forget) = forget {
                        visit.call(forget)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Polls woken jobs and drops aborted ones until none is left, on the owning thread.
    /// `first` runs once the queue knows that thread is draining (so whatever it wakes or adds
    /// is picked up here without a wake-up byte); its value is returned.
    pub(crate) fn drain<T>(&self, first: impl FnOnce() -> T) -> T {
        lock(&self.queue.queued).draining = true;
        let first = first();
        loop {
            let (woken, aborted) = {
                let mut q = lock(&self.queue.queued);
                if q.woken.is_empty() && q.aborted.is_empty() {
                    q.draining = false;
                    return first;
                }
                (std::mem::take(&mut q.woken), std::mem::take(&mut q.aborted))
            };
            for id in aborted {
                self.forget(id);
            }
            for id in woken {
                // Absent: already finished or aborted (a waker can run after either).
                let Some(job) = lock(&self.jobs).remove(&id) else {
                    continue;
                };
                self.poll(id, job);
            }
        }
    }

    fn poll(&self, id: u64, mut job: Job) {
        let _entered = runtime().enter();
        let mut cx = Context::from_waker(&job.waker);
        let done = match &mut job.work {
            Work::Call {
                call,
                future,
                forget,
            } => match call.as_mut().poll(&mut cx) {
                Poll::Ready(answer) => {
                    // Only the loop thread, which holds the GIL, has calls to poll.
                    Python::attach(|py| deliver(py, future, forget.as_ref(), answer));
                    true
                }
                Poll::Pending => false,
            },
            Work::Attempt(attempt) => attempt.as_mut().poll(&mut cx).is_ready(),
        };
        if done {
            drop(job);
        } else {
            lock(&self.jobs).insert(id, job);
        }
    }
}

/// Drops jobs inside the runtime's context: a call's router future cancels its request, which
/// may abort attempts and start timers.
fn drop_in_runtime<T>(jobs: T) {
    let _entered = runtime().enter();
    drop(jobs);
}

/// Sets `answer` on `future` unless it is done already. Whatever goes wrong reaches the awaiting
/// task rather than leaving it waiting forever, and the loop's other jobs go on.
fn deliver(py: Python<'_>, future: &Py<PyAny>, forget: Option<&Py<PyAny>>, answer: Answer) {
    let future = future.bind(py);
    let set = || -> PyResult<()> {
        if future.call_method0(intern!(py, "done"))?.is_truthy()? {
            return Ok(());
        }
        if let Some(forget) = forget {
            future.call_method1(intern!(py, "remove_done_callback"), (forget,))?;
        }
        match answer.make(py) {
            Ok(value) => future.call_method1(intern!(py, "set_result"), (value,))?,
            Err(err) => future.call_method1(intern!(py, "set_exception"), (err.into_value(py),))?,
        };
        Ok(())
    };
    if let Err(err) = set() {
        let _ = future.call_method1(intern!(py, "set_exception"), (err.into_value(py),));
    }
}
