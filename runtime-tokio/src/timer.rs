//! The tokio driver's [`TimerSource`]: one task per router sleeps until the host's next due time,
//! woken earlier by a `Notify` whenever an input moves that time earlier.
//!
//! The task follows the runtime of the calls: a call made on another runtime than the one the
//! task runs on moves it there. A task left on a current-thread runtime that no thread drives
//! any more (its `block_on` returned) would never wake, and every deadline of the calls on the
//! new runtime would be missed.

use f3dx_router_core::Time;
use f3dx_router_host::{Host, TimerSource};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::runtime::{Handle, Id};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

pub(crate) struct TokioTimers {
    epoch: Instant,
    notify: Arc<Notify>,
    /// The timer task and the runtime it runs on.
    task: Mutex<Option<(Id, AbortHandle)>>,
}

impl TokioTimers {
    pub(crate) fn new() -> Self {
        TokioTimers {
            epoch: Instant::now(),
            notify: Arc::new(Notify::new()),
            task: Mutex::new(None),
        }
    }

    /// Makes sure the timer task runs on `runtime`: started if there is none or it ended (its
    /// runtime shut down), moved if it runs on another runtime.
    pub(crate) fn follow(&self, runtime: &Handle, host: &Arc<Host>) {
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        let id = runtime.id();
        if task
            .as_ref()
            .is_some_and(|(on, task)| *on == id && !task.is_finished())
        {
            return;
        }
        if let Some((_, old)) = task.take() {
            old.abort();
        }
        let run = timer_loop(Arc::downgrade(host), self.notify.clone(), self.epoch);
        *task = Some((id, runtime.spawn(run).abort_handle()));
    }
}

impl TimerSource for TokioTimers {
    fn now(&self) -> Time {
        Time::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn wake_at(&self, _at: Time) {
        // The task reads the new due time from `fire_timers` once woken.
        self.notify.notify_one();
    }
}

impl Drop for TokioTimers {
    fn drop(&mut self) {
        let task = self.task.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, task)) = task.take() {
            task.abort();
        }
    }
}

/// Fire, sleep until the next due time (or a nudge), repeat. Holds only a weak reference while
/// asleep, so dropping every router clone ends it.
async fn timer_loop(host: Weak<Host>, notify: Arc<Notify>, epoch: Instant) {
    loop {
        let next = match host.upgrade() {
            Some(host) => host.fire_timers(),
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
