//! Ownership of the machine and execution of its actions.
//!
//! One [`RouterMachine`] per router, behind one `std::sync::Mutex` held only to feed an input
//! and execute the actions it produced. Every action is cheap and non-blocking to execute
//! (start an attempt through a [`Transport`], signal an abort, push into a [`Call`]'s slot), so
//! they are executed while the lock is still held: that keeps them in the machine's order across
//! threads (a `Deliver` can never overtake its request's `Complete`, a `Cancel` can never run
//! before the `Send` it cancels has something to abort).
//!
//! - `Send`: through the transport the request was submitted with; what aborts it is kept by
//!   attempt id until the attempt ends. A `mock` provider's answer is drawn at once and kept
//!   until it is due, then fed like a timer.
//! - `Cancel`: abort the attempt (or drop the mock answer).
//! - `Deliver` / `Complete`: into the request's slot, which wakes its caller.
//! - Timers: [`TimerSource::wake_at`] whenever an input moves the earliest due time earlier;
//!   the driver calls [`Host::fire_timers`] then.
//!
//! A panic under the lock (a bug in the machine or in a transport) is caught: the request being
//! handled fails with [`RouteError::Internal`] and every other request goes on. A panic while
//! timers fire cannot be tied to one request, so every request in flight fails then.

use crate::call::Call;
use crate::sink::AttemptSink;
use crate::slot::Slot;
use crate::transport::{Attempt, AttemptAbort, TimerSource, Transport};
use f3dx_router_core::id_map::IdMap;
use f3dx_router_core::mock::{MockOutcome, MockProvider, MockReply};
use f3dx_router_core::{
    Action, AttemptId, ChatRequest, Input, RequestId, RouteError, RouterMachine, Time,
};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// A request in flight: where its outcome goes and where its attempts are sent.
struct Pending {
    slot: Arc<Slot>,
    transport: Arc<dyn Transport>,
}

/// What the host holds for one attempt sent and not yet ended or cancelled.
struct Task {
    request: RequestId,
    kind: TaskKind,
}

enum TaskKind {
    Http {
        abort: Box<dyn AttemptAbort>,
        /// The sink's flag: set on cancel, so the sink feeds nothing more.
        cancelled: Arc<AtomicBool>,
    },
    /// A mock provider's answer, fed when `due`.
    Mock { due: Time, reply: MockReply },
}

impl Task {
    fn abort(self, mocks_due: &mut BTreeSet<(Time, AttemptId)>, attempt: AttemptId) {
        match self.kind {
            TaskKind::Http { abort, cancelled } => {
                cancelled.store(true, Ordering::Release);
                abort.abort();
            }
            TaskKind::Mock { due, .. } => {
                mocks_due.remove(&(due, attempt));
            }
        }
    }
}

/// Everything behind the lock.
struct Shared {
    machine: RouterMachine,
    pending: IdMap<RequestId, Pending>,
    tasks: IdMap<AttemptId, Task>,
    /// One in-process model per `mock` provider, by provider index.
    mocks: Vec<Option<MockProvider>>,
    /// Mock answers by due time.
    mocks_due: BTreeSet<(Time, AttemptId)>,
    /// The earliest wake asked of the driver and not yet fired.
    wake_at: Option<Time>,
}

thread_local! {
    /// The host whose lock this thread holds (its address), 0 if none.
    static HOLDING: Cell<usize> = const { Cell::new(0) };
}

/// Inputs fed by the thread holding the lock, fed before it lets go.
struct Deferred {
    attempt: AttemptId,
    inputs: Vec<Input>,
    last: bool,
}

/// Which requests a panic under the lock is blamed on.
#[derive(Clone, Copy)]
enum Blame {
    Request(RequestId),
    /// The request of this attempt.
    Attempt(AttemptId),
    Everyone,
    Nobody,
}

/// The machine of one router and everything in flight through it; shared (`Arc`) by every
/// clone of a driver's router, every call and every attempt's sink.
pub struct Host {
    shared: Mutex<Shared>,
    timers: Arc<dyn TimerSource>,
    /// Unix time at the timer source's epoch, for the mocks' `Date` headers.
    unix_at_epoch: Duration,
    next_id: AtomicU64,
    /// Feeds made under the lock by the thread holding it.
    deferred: Mutex<Vec<Deferred>>,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Nothing of the config: it holds keys.
        f.debug_struct("Host").finish_non_exhaustive()
    }
}

impl Host {
    /// Hosts `machine`, whose clock is `timers`' and whose wall clock read `unix_at_epoch` at
    /// that clock's epoch (for `Retry-After` dates and the mocks' `Date` headers).
    pub fn new(
        mut machine: RouterMachine,
        timers: Arc<dyn TimerSource>,
        unix_at_epoch: Duration,
    ) -> Arc<Host> {
        machine.set_unix_time_at_zero(unix_at_epoch);
        let mocks = machine.mock_providers();
        Arc::new(Host {
            shared: Mutex::new(Shared {
                machine,
                pending: IdMap::default(),
                tasks: IdMap::default(),
                mocks,
                mocks_due: BTreeSet::new(),
                wake_at: None,
            }),
            timers,
            unix_at_epoch,
            next_id: AtomicU64::new(0),
            deferred: Mutex::default(),
        })
    }

    /// The lock. Every section under it catches its panics, so the lock is never left poisoned
    /// by one; should it be anyway, the state is used as it is rather than failing every call.
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `section` under the lock; a panic in it fails what `blame` names and is swallowed.
    ///
    /// Feeds made by this thread while it holds the lock (a transport failing an attempt inside
    /// `spawn`, a sink dropped by a panic under the lock) are queued and fed before it lets go.
    fn locked<R>(
        self: &Arc<Self>,
        blame: Blame,
        section: impl FnOnce(&mut Shared) -> R,
    ) -> Option<R> {
        let mut s = self.lock();
        let outer = HOLDING.replace(self.address());
        let r = self.guarded(&mut s, blame, section);
        loop {
            let deferred =
                std::mem::take(&mut *self.deferred.lock().unwrap_or_else(PoisonError::into_inner));
            if deferred.is_empty() {
                break;
            }
            for Deferred {
                attempt,
                inputs,
                last,
            } in deferred
            {
                self.guarded(&mut s, Blame::Attempt(attempt), |s| {
                    self.feed_locked(s, attempt, inputs, last)
                });
            }
        }
        HOLDING.set(outer);
        r
    }

    /// Runs `section`; a panic in it fails what `blame` names and is swallowed.
    fn guarded<R>(
        self: &Arc<Self>,
        s: &mut Shared,
        blame: Blame,
        section: impl FnOnce(&mut Shared) -> R,
    ) -> Option<R> {
        // Resolved first: the section may end the attempt before it panics.
        let blame = match blame {
            Blame::Attempt(attempt) => s
                .tasks
                .get(&attempt)
                .map_or(Blame::Nobody, |t| Blame::Request(t.request)),
            blame => blame,
        };
        match catch_unwind(AssertUnwindSafe(|| section(s))) {
            Ok(r) => Some(r),
            Err(_) => {
                self.recover(s, blame);
                None
            }
        }
    }

    /// Identifies this host in [`HOLDING`].
    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// After a panic under the lock: fail the blamed requests with an internal error, abort
    /// their attempts, and tell the machine they are gone (itself guarded: a second panic is
    /// swallowed too).
    fn recover(self: &Arc<Self>, s: &mut Shared, blame: Blame) {
        let ids: Vec<RequestId> = match blame {
            Blame::Request(id) => vec![id],
            Blame::Everyone => s.pending.keys().copied().collect(),
            Blame::Attempt(_) | Blame::Nobody => Vec::new(),
        };
        for &id in &ids {
            if let Some(pending) = s.pending.remove(&id) {
                pending.slot.complete(Err(RouteError::Internal {
                    reason: "a panic in the router while handling this request",
                    attempts: Vec::new(),
                }));
            }
            let attempts: Vec<AttemptId> = s
                .tasks
                .iter()
                .filter(|(_, t)| t.request == id)
                .map(|(a, _)| *a)
                .collect();
            for attempt in attempts {
                if let Some(task) = s.tasks.remove(&attempt) {
                    task.abort(&mut s.mocks_due, attempt);
                }
            }
        }
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let now = self.timers.now();
            for id in ids {
                let _ = s.machine.handle_input(now, Input::Cancel { id });
            }
            self.drain(s);
            self.rearm(s);
        }));
    }

    /// Hands a request to the machine; its chunks (when `stream`) and outcome go to the returned
    /// [`Call`], its attempts through `transport`.
    pub fn submit(
        self: &Arc<Self>,
        request: ChatRequest,
        stream: bool,
        transport: Arc<dyn Transport>,
    ) -> Call {
        let id = RequestId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let slot = Arc::new(Slot::new(stream));
        let pending = Pending {
            slot: slot.clone(),
            transport,
        };
        self.locked(Blame::Request(id), |s| {
            let now = self.timers.now();
            s.pending.insert(id, pending);
            if s.machine
                .handle_input(now, Input::Request { id, request })
                .is_err()
            {
                // Unreachable: ids come from a counter.
                s.pending.remove(&id);
            }
            self.drain(s);
            self.rearm(s);
        });
        Call::new(self.clone(), id, slot)
    }

    /// Cancels request `id` on behalf of its caller, who still holds its [`Call`] and gets the
    /// machine's `Cancelled` outcome through it (a blocking caller is woken with it). For
    /// cancelling from another thread; dropping the call does the same for its own thread.
    pub fn cancel_call(self: &Arc<Self>, id: RequestId) {
        self.locked(Blame::Request(id), |s| {
            let now = self.timers.now();
            let _ = s.machine.handle_input(now, Input::Cancel { id });
            self.drain(s);
            self.rearm(s);
        });
    }

    /// The caller gave up on `id` (its call was dropped).
    pub(crate) fn cancel(self: &Arc<Self>, id: RequestId) {
        self.locked(Blame::Request(id), |s| {
            // Nobody listens any more; the `Cancelled` completion goes nowhere.
            s.pending.remove(&id);
            let now = self.timers.now();
            let _ = s.machine.handle_input(now, Input::Cancel { id });
            self.drain(s);
            self.rearm(s);
        });
    }

    /// Feeds what an attempt observed. `last` when nothing follows. Returns whether the attempt
    /// is still open (a transport whose attempt was closed stops reading).
    pub(crate) fn feed(
        self: &Arc<Self>,
        attempt: AttemptId,
        inputs: impl IntoIterator<Item = Input>,
        last: bool,
    ) -> bool {
        if HOLDING.get() == self.address() {
            // This thread holds the lock already (see `locked`): fed before it lets go.
            let inputs = inputs.into_iter().collect();
            let deferred = Deferred {
                attempt,
                inputs,
                last,
            };
            self.deferred
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(deferred);
            return !last;
        }
        self.locked(Blame::Attempt(attempt), |s| {
            self.feed_locked(s, attempt, inputs, last)
        })
        .unwrap_or(false)
    }

    fn feed_locked(
        self: &Arc<Self>,
        s: &mut Shared,
        attempt: AttemptId,
        inputs: impl IntoIterator<Item = Input>,
        last: bool,
    ) -> bool {
        let now = self.timers.now();
        for input in inputs {
            // Inputs for attempts the machine has closed are ignored by it; no other error
            // exists for attempt inputs.
            let _ = s.machine.handle_input(now, input);
            self.drain(s);
        }
        let open = if last {
            s.tasks.remove(&attempt);
            false
        } else {
            s.tasks.contains_key(&attempt)
        };
        self.rearm(s);
        open
    }

    /// Feeds the mock answers now due, then fires the machine's due timers; returns when to be
    /// woken next (`None`: nothing is due until an input says so through
    /// [`TimerSource::wake_at`]). Spurious calls are harmless.
    pub fn fire_timers(self: &Arc<Self>) -> Option<Time> {
        self.locked(Blame::Everyone, |s| {
            let now = self.timers.now();
            while let Some(&(due, attempt)) = s.mocks_due.first()
                && due <= now
            {
                s.mocks_due.pop_first();
                if let Some(Task {
                    kind: TaskKind::Mock { reply, .. },
                    ..
                }) = s.tasks.remove(&attempt)
                {
                    for input in mock_inputs(attempt, reply) {
                        let _ = s.machine.handle_input(now, input);
                        self.drain(s);
                    }
                }
            }
            s.machine.handle_timeout(now);
            self.drain(s);
            let next = next_due(s);
            s.wake_at = next;
            next
        })
        .flatten()
    }

    /// A caller's own verdict on a completed request's answer, for the validity classifier:
    /// `false` when the machine no longer remembers `id` (the report is ignored).
    pub fn report(self: &Arc<Self>, id: RequestId, valid: bool) -> bool {
        self.locked(Blame::Nobody, |s| {
            let now = self.timers.now();
            s.machine.feedback(now, id, valid) == f3dx_router_core::FeedbackResult::Applied
        })
        .unwrap_or(false)
    }

    /// When something is next due (the machine's earliest timer or a mock answer), for a driver
    /// whose callers wait for it themselves.
    pub fn next_due(&self) -> Option<Time> {
        next_due(&self.lock())
    }

    /// The driver's clock, as the machine sees it.
    pub fn now(&self) -> Time {
        self.timers.now()
    }

    /// Reads the machine under the lock. The place for what a driver shows of it: requests and
    /// attempts in flight now, and `RouterMachine::stats()` once core has it.
    pub fn inspect<R>(&self, read: impl FnOnce(&RouterMachine) -> R) -> R {
        read(&self.lock().machine)
    }

    /// What the machine knows about each provider now, in config order, at the driver's clock:
    /// one consistent moment, taken under the lock.
    pub fn stats(&self) -> Vec<f3dx_router_core::ProviderStats> {
        let now = self.timers.now();
        self.inspect(|machine| machine.stats(now))
    }

    /// `(requests, attempts)` the machine holds, and the attempts the host holds (sent, neither
    /// ended nor cancelled).
    pub fn in_flight(&self) -> (usize, usize, usize) {
        let s = self.lock();
        (
            s.machine.requests_in_flight(),
            s.machine.attempts_in_flight(),
            s.tasks.len(),
        )
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
                    let Some(pending) = s.pending.get(&id) else {
                        // The caller's cancel is being fed and the machine fired a timer due
                        // before it (a delayed hedge): its `Cancel` follows. Nothing to send.
                        continue;
                    };
                    let kind = match s.mocks.get_mut(provider.0).and_then(Option::as_mut) {
                        Some(mock) => {
                            // Drawn here, in the machine's order, so a seed replays.
                            let now = self.timers.now();
                            let unix = (self.unix_at_epoch + Duration::from_nanos(now.as_nanos()))
                                .as_secs();
                            let reply = mock.respond(&request, unix);
                            let due = now + reply.latency;
                            s.mocks_due.insert((due, attempt));
                            TaskKind::Mock { due, reply }
                        }
                        None => {
                            let (sink, cancelled) =
                                AttemptSink::new(self.clone(), attempt, pending.slot.clone());
                            let abort = pending.transport.spawn(Attempt { request, sink });
                            TaskKind::Http { abort, cancelled }
                        }
                    };
                    s.tasks.insert(attempt, Task { request: id, kind });
                }
                Action::Cancel { attempt } => {
                    if let Some(task) = s.tasks.remove(&attempt) {
                        task.abort(&mut s.mocks_due, attempt);
                    }
                }
                Action::Deliver { id, chunk } => {
                    if let Some(pending) = s.pending.get(&id) {
                        pending.slot.push_chunk(chunk);
                    }
                }
                Action::Complete { id, outcome } => {
                    if let Some(pending) = s.pending.remove(&id) {
                        pending.slot.complete(outcome);
                    }
                }
                // `Action` is non-exhaustive: an action this host does not know is a version
                // mismatch with core, caught by the tests.
                _ => debug_assert!(false, "unknown action from the machine"),
            }
        }
    }

    /// Asks the driver to wake earlier if the earliest due time moved before its alarm.
    fn rearm(&self, s: &mut Shared) {
        if let Some(at) = next_due(s)
            && s.wake_at.is_none_or(|current| at < current)
        {
            s.wake_at = Some(at);
            self.timers.wake_at(at);
        }
    }
}

/// The earliest of the machine's timers and the mock answers.
fn next_due(s: &Shared) -> Option<Time> {
    let mock = s.mocks_due.first().map(|&(due, _)| due);
    match (s.machine.poll_timeout(), mock) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A mock answer as the inputs an HTTP attempt would have fed: head, body pieces, end.
fn mock_inputs(attempt: AttemptId, reply: MockReply) -> Vec<Input> {
    match reply.outcome {
        MockOutcome::Response {
            status,
            headers,
            body,
        } => std::iter::once(Input::ResponseHead {
            attempt,
            status,
            headers,
        })
        .chain(
            body.into_iter()
                .map(|chunk| Input::ResponseBody { attempt, chunk }),
        )
        .chain(std::iter::once(Input::ResponseEnd { attempt }))
        .collect(),
        MockOutcome::Transport(kind) => vec![Input::TransportError { attempt, kind }],
    }
}
