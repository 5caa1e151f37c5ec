//! The blocking driver's time: a monotonic clock, and callers that wait for their calls
//! themselves, bounded by the host's next due time, firing the timers when it comes.
//!
//! There is no timer thread. Every caller blocked in a call is a potential timer: it sleeps
//! until its call is woken or until the host's next due time, whichever is first, and fires the
//! host's timers when that time has come (for every call, not only its own). When an input moves
//! the next due time earlier ([`TimerSource::wake_at`]), every waiting caller is unparked to
//! look again. A call nobody waits on (a stream its reader is not reading) has its timers fired
//! by whichever caller waits next, or by its own reader when it reads again.

use f3dx_router_core::Time;
use f3dx_router_host::{Host, TimerSource};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

/// The router's clock and the threads waiting on it.
pub(crate) struct Clock {
    epoch: Instant,
    /// Threads blocked in [`Clock::wait`], each under the number it registered with.
    waiting: Mutex<Vec<(u64, Thread)>>,
    next_ticket: std::sync::atomic::AtomicU64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            epoch: Instant::now(),
            waiting: Mutex::new(Vec::new()),
            next_ticket: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Blocks the calling thread until `poll` is ready, firing `host`'s timers as they come due.
    pub(crate) fn wait<T>(
        &self,
        host: &Arc<Host>,
        mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> T {
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut cx = Context::from_waker(&waker);
        let ticket = self
            .next_ticket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Registered before the first look at the due time, so a `wake_at` in between unparks
        // this thread (an unpark before the park makes the park return at once).
        self.waiting_list().push((ticket, thread::current()));
        let _registered = Registered {
            clock: self,
            ticket,
        };
        loop {
            if let Poll::Ready(value) = poll(&mut cx) {
                return value;
            }
            let now = self.now();
            match host.next_due() {
                Some(due) if due <= now => {
                    host.fire_timers();
                }
                Some(due) => thread::park_timeout(due.saturating_since(now)),
                None => thread::park(),
            }
        }
    }

    fn waiting_list(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Thread)>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock").finish_non_exhaustive()
    }
}

impl TimerSource for Clock {
    fn now(&self) -> Time {
        Time::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn wake_at(&self, _at: Time) {
        for (_, thread) in self.waiting_list().iter() {
            thread.unpark();
        }
    }
}

/// Takes a waiting thread off the list however its wait ends (a panic in `poll` included).
struct Registered<'a> {
    clock: &'a Clock,
    ticket: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.clock.waiting_list().retain(|(t, _)| *t != self.ticket);
    }
}

/// Wakes a parked thread: a call's chunk or outcome arrived, or a stream has room again.
pub(crate) struct Unpark(pub(crate) Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}
