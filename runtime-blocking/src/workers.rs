//! A bounded pool of threads for HTTP attempts. A blocking HTTP call holds its thread, and
//! ureq cannot abort one in flight, so an attempt the machine cancels is abandoned: its thread
//! stops at the next thing it would report (the head, a body piece) or when the read times
//! out. The pool never grows past its cap, so abandoned attempts cannot pile up threads (or
//! the connections they hold): past the cap, attempts queue, and one cancelled while queued is
//! dropped without being sent.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// How long an idle worker waits for work before its thread ends.
const IDLE_KEEP: Duration = Duration::from_secs(30);

/// One attempt's work. Called with `true` on a worker; with `false` when no thread could be had
/// for it, to report that at once instead of being stranded (it may then be called under the
/// router's lock, so it must only report, never block).
pub(crate) type Job = Box<dyn FnOnce(bool) + Send>;

/// The pool. Cheap to share: every call of a router (and its clones) uses one.
pub(crate) struct Workers {
    state: Mutex<State>,
    work: Condvar,
    cap: usize,
}

struct State {
    queue: VecDeque<Job>,
    /// Threads alive, and how many of them wait for work.
    live: usize,
    idle: usize,
}

impl Workers {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Workers {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                live: 0,
                idle: 0,
            }),
            work: Condvar::new(),
            cap: cap.max(1),
        })
    }

    /// Runs `job` on a worker: an idle one, a new one while under the cap, else the next free.
    pub(crate) fn run(self: &Arc<Self>, job: Job) {
        let mut s = self.lock();
        s.queue.push_back(job);
        if s.idle > 0 {
            drop(s);
            self.work.notify_one();
        } else if s.live < self.cap {
            s.live += 1;
            drop(s);
            let workers = self.clone();
            let spawned = thread::Builder::new()
                .name("f3dx-router-attempt".to_owned())
                .spawn(move || workers.work_loop());
            if spawned.is_err() {
                // The system refused a thread: the job waits for a live worker, or, with none
                // alive, is refused (a call must never be stranded).
                let mut s = self.lock();
                s.live -= 1;
                if s.live == 0 {
                    let refused: Vec<Job> = s.queue.drain(..).collect();
                    drop(s);
                    refused.into_iter().for_each(|job| job(false));
                }
            }
        }
    }

    /// Threads alive now (for tests and stats).
    pub(crate) fn threads(&self) -> usize {
        self.lock().live
    }

    fn work_loop(self: Arc<Self>) {
        let mut s = self.lock();
        loop {
            if let Some(job) = s.queue.pop_front() {
                drop(s);
                // A panic in an attempt ends that attempt (its sink reports a reset as it
                // unwinds), not the worker, whose count would otherwise be lost.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(true)));
                s = self.lock();
                continue;
            }
            s.idle += 1;
            let (guard, timeout) = self
                .work
                .wait_timeout(s, IDLE_KEEP)
                .unwrap_or_else(PoisonError::into_inner);
            s = guard;
            s.idle -= 1;
            if timeout.timed_out() && s.queue.is_empty() {
                s.live -= 1;
                return;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
