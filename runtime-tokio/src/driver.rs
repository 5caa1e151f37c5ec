//! Ownership of the machine and execution of its actions.
//!
//! One [`RouterMachine`] per router, behind one `std::sync::Mutex` that is held only to feed an
//! input and execute the actions it produced, never across an `.await`. Every action is cheap
//! and non-blocking to execute (spawn a task, abort a task, push into a channel), so they are
//! executed while the lock is still held: that keeps them in the machine's order across threads
//! (a `Deliver` can never overtake its request's `Complete`, a `Cancel` can never run before the
//! `Send` it cancels has a task to abort).
//!
//! - `Send`: one tokio task per attempt ([`crate::attempt`]), spawned on its request's [`Home`]
//!   (the runtime the call was made on, through the pool of the router clone it was made
//!   with); its `AbortHandle` is kept by attempt id until the attempt ends.
//! - `Cancel`: abort that task, which drops its connection (the server sees the disconnect).
//! - `Deliver` / `Complete`: into the caller's channel, found by request id.
//! - Timers: one task per router sleeps until `poll_timeout`, woken by a `Notify` whenever an
//!   input moves the earliest timer earlier.

use crate::attempt;
use crate::external::{AttemptAbort, AttemptSpawner, ExternalAttempt};
use crate::sink::AttemptSink;
use bytes::Bytes;
use f3dx_router_core::id_map::IdMap;
use f3dx_router_core::mock::MockProvider;
use f3dx_router_core::{
    Action, AttemptId, ChatRequest, Input, RequestId, RouteError, Routed, RouterMachine, Time,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// What a streaming caller receives, in order: chunks, then exactly one `Done`.
#[derive(Debug)]
pub(crate) enum StreamEvent {
    Chunk(Bytes),
    Done(Result<Routed, RouteError>),
}

/// Where a request's outcome goes.
#[derive(Debug)]
pub(crate) enum Waiter {
    Unary(oneshot::Sender<Result<Routed, RouteError>>),
    Stream(mpsc::UnboundedSender<StreamEvent>),
}

/// Where a request's attempts run: the runtime its call was made on, sending through the pool of
/// the router clone the call was made with.
///
/// Not wherever the action happens to be executed: a `Send` can come out of another request's
/// input or out of the timer task, and an attempt spawned on a current-thread runtime other than
/// its caller's would sit unpolled until that runtime's thread next blocks on it. Likewise a
/// pooled connection is served by a task on the runtime that opened it, so a pool is only ever
/// used from one runtime (see [`crate::Router::with_own_pool`]).
#[derive(Clone)]
pub(crate) struct Home {
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) transport: Transport,
}

/// How a router clone sends HTTP attempts.
#[derive(Clone)]
pub(crate) enum Transport {
    /// As tokio tasks on the request's runtime, through this pool.
    Pool(reqwest::Client),
    /// Handed to whoever drives this spawner (an event loop outside tokio).
    External(Arc<dyn AttemptSpawner>),
}

/// What cancels an attempt in flight: its task, and its sink's flag (a mock attempt has none).
struct AttemptTask {
    abort: Abort,
    sink_cancelled: Option<Arc<AtomicBool>>,
}

enum Abort {
    Tokio(AbortHandle),
    External(Box<dyn AttemptAbort>),
}

impl AttemptTask {
    fn abort(&self) {
        if let Some(cancelled) = &self.sink_cancelled {
            cancelled.store(true, Ordering::Release);
        }
        match &self.abort {
            Abort::Tokio(task) => task.abort(),
            Abort::External(task) => task.abort(),
        }
    }
}

/// A request in flight: where its outcome goes and where its attempts run.
struct Pending {
    waiter: Waiter,
    home: Home,
}

/// Everything behind the lock.
pub(crate) struct Shared {
    pub(crate) machine: RouterMachine,
    pending: IdMap<RequestId, Pending>,
    /// What cancels every attempt sent and not yet ended or cancelled.
    tasks: IdMap<AttemptId, AttemptTask>,
    /// One in-process model per `mock` provider, by provider index.
    mocks: Vec<Option<MockProvider>>,
    /// When the timer task will next wake (None: it waits for a notification).
    timer_at: Option<Time>,
    /// The timer task. Respawned if it has ended, which happens when the runtime it ran on
    /// shut down while the router lives on (a router shared by several `#[tokio::test]`s).
    timer: Option<AbortHandle>,
}

/// The state every clone of a router shares.
pub(crate) struct Inner {
    shared: Mutex<Shared>,
    epoch: Instant,
    /// Unix time at `epoch`, for the mocks' `Date` headers.
    unix_at_epoch: Duration,
    next_id: AtomicU64,
    notify: Arc<Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let shared = match self.shared.get_mut() {
            Ok(shared) => shared,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(timer) = &shared.timer {
            timer.abort();
        }
    }
}

impl Inner {
    pub(crate) fn new(mut machine: RouterMachine, unix_at_epoch: Duration, epoch: Instant) -> Self {
        machine.set_unix_time_at_zero(unix_at_epoch);
        let mocks = machine.mock_providers();
        Inner {
            shared: Mutex::new(Shared {
                machine,
                pending: IdMap::default(),
                tasks: IdMap::default(),
                mocks,
                timer_at: None,
                timer: None,
            }),
            epoch,
            unix_at_epoch,
            next_id: AtomicU64::new(0),
            notify: Arc::new(Notify::new()),
        }
    }

    /// The machine's clock: nanoseconds since the router was built.
    fn now(&self) -> Time {
        Time::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Locks the shared state. A panic while it was held leaves the machine in an unknown state,
    /// so that panic is propagated rather than routing on.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .expect("f3dx-router: the router's state was poisoned by an earlier panic")
    }

    /// Hands a request to the machine; its outcome goes to `waiter`, its attempts are sent
    /// through `transport` (a pool's on the current runtime).
    ///
    /// Panics outside a tokio runtime, before taking the lock (a panic under it would poison
    /// the router for every other caller).
    pub(crate) fn submit(
        self: &Arc<Self>,
        request: ChatRequest,
        waiter: Waiter,
        transport: &Transport,
    ) -> RequestId {
        let runtime = tokio::runtime::Handle::try_current()
            .expect("f3dx-router: requests must be made from within a tokio runtime");
        let home = Home {
            runtime,
            transport: transport.clone(),
        };
        let id = RequestId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut s = self.lock();
        self.ensure_timer(&mut s);
        let now = self.now();
        s.pending.insert(id, Pending { waiter, home });
        if s.machine
            .handle_input(now, Input::Request { id, request })
            .is_err()
        {
            // Unreachable: ids come from a counter. Dropping the waiter ends the call.
            s.pending.remove(&id);
        }
        self.after_input(&mut s);
        id
    }

    /// The caller gave up on `id` (its future or stream was dropped).
    pub(crate) fn cancel(self: &Arc<Self>, id: RequestId) {
        // Never panic in a drop path: a poisoned lock already reported its panic.
        let Ok(mut s) = self.shared.lock() else {
            return;
        };
        // Nobody listens any more; the `Cancelled` completion goes nowhere.
        s.pending.remove(&id);
        let now = self.now();
        let _ = s.machine.handle_input(now, Input::Cancel { id });
        self.after_input(&mut s);
    }

    /// Feeds what an attempt's task observed. `last` when the task ends after this. Returns
    /// whether the attempt is still open (a task whose attempt was closed stops reading).
    pub(crate) fn feed(
        self: &Arc<Self>,
        attempt: AttemptId,
        inputs: impl IntoIterator<Item = Input>,
        last: bool,
    ) -> bool {
        let mut s = self.lock();
        let now = self.now();
        for input in inputs {
            // Inputs for attempts the machine has closed are ignored by it; no other error
            // exists for attempt inputs.
            let _ = s.machine.handle_input(now, input);
            self.drain(&mut s);
        }
        let open = if last {
            s.tasks.remove(&attempt);
            false
        } else {
            s.tasks.contains_key(&attempt)
        };
        self.rearm(&mut s);
        open
    }

    /// Drains and executes the actions, then rearms the timer.
    fn after_input(self: &Arc<Self>, s: &mut Shared) {
        self.drain(s);
        self.rearm(s);
    }

    /// Executes every pending action, in the machine's order, with the lock held.
    fn drain(self: &Arc<Self>, s: &mut Shared) {
        while let Some(action) = s.machine.poll_action() {
            match action {
                Action::Send {
                    id,
                    attempt,
                    provider,
                    request,
                } => {
                    let Some(home) = s.pending.get(&id).map(|p| p.home.clone()) else {
                        // The machine sends only for requests in flight, and every request in
                        // flight has an entry until its `Complete`.
                        debug_assert!(false, "a send for a request the driver does not hold");
                        continue;
                    };
                    let task = match (
                        s.mocks.get_mut(provider.0).and_then(Option::as_mut),
                        home.transport,
                    ) {
                        (Some(mock), _) => {
                            // Drawn here, in the machine's order, so a seed replays.
                            let unix = (self.unix_at_epoch + self.epoch.elapsed()).as_secs();
                            let reply = mock.respond(&request, unix);
                            let task =
                                home.runtime
                                    .spawn(attempt::mock(self.clone(), attempt, reply));
                            AttemptTask {
                                abort: Abort::Tokio(task.abort_handle()),
                                sink_cancelled: None,
                            }
                        }
                        (None, Transport::Pool(client)) => {
                            let (sink, cancelled) = AttemptSink::new(self.clone(), attempt);
                            let task = home.runtime.spawn(attempt::http(sink, client, request));
                            AttemptTask {
                                abort: Abort::Tokio(task.abort_handle()),
                                sink_cancelled: Some(cancelled),
                            }
                        }
                        (None, Transport::External(spawner)) => {
                            let (sink, cancelled) = AttemptSink::new(self.clone(), attempt);
                            AttemptTask {
                                abort: Abort::External(
                                    spawner.spawn(ExternalAttempt { request, sink }),
                                ),
                                sink_cancelled: Some(cancelled),
                            }
                        }
                    };
                    s.tasks.insert(attempt, task);
                }
                Action::Cancel { attempt } => {
                    if let Some(task) = s.tasks.remove(&attempt) {
                        task.abort();
                    }
                }
                Action::Deliver { id, chunk } => match s.pending.get(&id).map(|p| &p.waiter) {
                    Some(Waiter::Stream(tx)) => {
                        // A closed receiver means the stream is being dropped; its guard
                        // cancels the request.
                        let _ = tx.send(StreamEvent::Chunk(chunk));
                    }
                    // A unary call of a `stream: true` request has nowhere to put chunks.
                    Some(Waiter::Unary(_)) | None => {}
                },
                Action::Complete { id, outcome } => match s.pending.remove(&id).map(|p| p.waiter) {
                    Some(Waiter::Unary(tx)) => {
                        let _ = tx.send(outcome);
                    }
                    Some(Waiter::Stream(tx)) => {
                        let _ = tx.send(StreamEvent::Done(outcome));
                    }
                    None => {}
                },
                // `Action` is non-exhaustive: an action this driver does not know is a version
                // mismatch with core, caught by the tests.
                _ => debug_assert!(false, "unknown action from the machine"),
            }
        }
    }

    /// Wakes the timer task if the machine's earliest timer moved earlier than its sleep.
    fn rearm(&self, s: &mut Shared) {
        if let Some(at) = s.machine.poll_timeout()
            && s.timer_at.is_none_or(|current| at < current)
        {
            s.timer_at = Some(at);
            self.notify.notify_one();
        }
    }

    /// Fires due timers; returns when to wake next.
    fn fire_timers(self: &Arc<Self>) -> Option<Time> {
        let mut s = self.lock();
        let now = self.now();
        s.machine.handle_timeout(now);
        self.drain(&mut s);
        let next = s.machine.poll_timeout();
        s.timer_at = next;
        next
    }

    /// Starts the timer task on the current runtime unless one is running.
    pub(crate) fn ensure_timer(self: &Arc<Self>, s: &mut Shared) {
        if s.timer.as_ref().is_none_or(AbortHandle::is_finished) {
            let task = timer_loop(Arc::downgrade(self), self.notify.clone(), self.epoch);
            s.timer = Some(tokio::spawn(task).abort_handle());
            // The new task reads the machine's next timer when it starts.
            s.timer_at = None;
        }
    }

    /// (requests, attempts) the machine holds, and the attempt tasks the driver holds.
    pub(crate) fn in_flight(&self) -> (usize, usize, usize) {
        let s = self.lock();
        (
            s.machine.requests_in_flight(),
            s.machine.attempts_in_flight(),
            s.tasks.len(),
        )
    }
}

/// The router's one timer: sleep until the machine's next deadline (or a nudge), fire, repeat.
/// Holds only a weak reference while asleep, so dropping every router clone ends it.
async fn timer_loop(inner: Weak<Inner>, notify: Arc<Notify>, epoch: Instant) {
    loop {
        let next = match inner.upgrade() {
            Some(inner) => inner.fire_timers(),
            None => return,
        };
        match next {
            Some(at) => {
                let wake = epoch + Duration::from_nanos(at.as_nanos());
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => {}
                    () = notify.notified() => {}
                }
            }
            None => notify.notified().await,
        }
    }
}

/// Sends `Input::Cancel` for a request when its caller's future or stream is dropped first.
pub(crate) struct CancelOnDrop {
    pub(crate) inner: Arc<Inner>,
    pub(crate) id: RequestId,
    pub(crate) armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.inner.cancel(self.id);
        }
    }
}
