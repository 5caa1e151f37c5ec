//! The blocking driver of sync calls and sync streams: the thread that waits for an answer polls
//! the call's future and its HTTP attempts itself, and sleeps in `poll(2)` on the sockets they
//! wait on plus one wake-up socketpair.
//!
//! Why: a sync call that hands its attempts to tokio threads crosses threads on the way out and
//! on the way back, and even a current-thread runtime of the caller's own adds its scheduler,
//! timer wheel and epoll registrations. Here a call costs one `poll(2)` sleep, woken by the
//! response itself. Whatever wakes a job from another thread (a router timer: the deadline, a
//! delayed hedge, a cancel; DNS) writes one byte to the socketpair.
//!
//! `poll(2)` keeps no registrations: sockets can move between drivers freely, which is what lets
//! one pool of idle connections per router serve every thread. A socket that would block tells
//! the driver polling its job at that moment ([`want`], through a thread-local set for the length
//! of each round of polling); the driver's list holds the socket weakly, so a dropped socket
//! closes at once.

use super::jobs::Jobs;
use super::socket::{Readiness, Watched};
use crate::lock;
use crate::runtime::runtime;
use rustix::event::{PollFd, PollFlags, Timespec};
use std::cell::RefCell;
use std::future::Future;
use std::io::{ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// A job waiting for one socket to be ready.
struct Want {
    stream: Weak<Watched>,
    readiness: Readiness,
    waker: Waker,
}

thread_local! {
    /// What the jobs polled in this thread's current round asked to wait on; `None` outside a
    /// round.
    static ROUND: RefCell<Option<Vec<Want>>> = const { RefCell::new(None) };
}

/// Has the job of `waker` woken once `stream` is ready; called by a socket that would block.
pub(crate) fn want(stream: &Arc<Watched>, readiness: Readiness, waker: &Waker) {
    let want = Want {
        stream: Arc::downgrade(stream),
        readiness,
        waker: waker.clone(),
    };
    let unheard = ROUND.with_borrow_mut(|round| match round {
        Some(wants) => {
            wants.push(want);
            None
        }
        None => Some(want),
    });
    // Polled outside any driver's round (not expected): poll it again rather than never.
    if let Some(want) = unheard {
        want.waker.wake();
    }
}

/// Wakes the driver's own future (the call, or the stream's next chunk).
struct MainWake {
    woken: AtomicBool,
    jobs: Arc<Jobs>,
}

impl Wake for MainWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.jobs.nudge();
    }
}

/// One blocking driver: its jobs, the sockets they wait on, and the read end of its wake-up
/// socketpair. Driven by one thread at a time.
pub(crate) struct Driver {
    jobs: Arc<Jobs>,
    reader: UnixStream,
    wants: Mutex<Vec<Want>>,
}

impl Driver {
    pub(crate) fn new() -> std::io::Result<Driver> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Driver {
            jobs: Arc::new(Jobs::new(writer)),
            reader,
            wants: Mutex::default(),
        })
    }

    pub(crate) fn jobs(&self) -> &Arc<Jobs> {
        &self.jobs
    }

    /// One round: polls every queued job (`first` inside the round, so what it wakes or adds
    /// needs no wake-up byte) and keeps what they now wait on. Returns what `first` returned.
    pub(crate) fn round<T>(&self, first: impl FnOnce() -> T) -> T {
        let outer = ROUND.replace(Some(Vec::new()));
        let first = self.jobs.drain(first);
        let wanted = ROUND.replace(outer).unwrap_or_default();
        if wanted.is_empty() {
            return first;
        }
        let mut wants = lock(&self.wants);
        for want in wanted {
            let same = wants
                .iter_mut()
                .find(|w| w.readiness == want.readiness && Weak::ptr_eq(&w.stream, &want.stream));
            match same {
                Some(existing) => existing.waker = want.waker,
                None => wants.push(want),
            }
        }
        first
    }

    /// Polls what is queued without waiting: drops aborted attempts (their sockets close now),
    /// starts new ones.
    pub(crate) fn settle(&self) {
        self.round(|| {});
    }

    /// Polls `future` and the jobs until `future` is ready, sleeping on their sockets between
    /// rounds. `None` once `limit` has passed or a signal interrupted the sleep: time for the
    /// caller to run Python's signal handlers.
    pub(crate) fn run<F: Future>(
        &self,
        mut future: Pin<&mut F>,
        limit: Duration,
    ) -> Option<F::Output> {
        let main = Arc::new(MainWake {
            woken: AtomicBool::new(true),
            jobs: self.jobs.clone(),
        });
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        let give_up = Instant::now() + limit;
        let mut ready = Vec::new();
        loop {
            let output = self.round(|| {
                ready.drain(..).for_each(Waker::wake);
                if !main.woken.swap(false, Ordering::AcqRel) {
                    return None;
                }
                let _entered = runtime().enter();
                match future.as_mut().poll(&mut cx) {
                    Poll::Ready(value) => Some(value),
                    Poll::Pending => None,
                }
            });
            if output.is_some() {
                return output;
            }
            if main.woken.load(Ordering::Acquire) {
                continue;
            }
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if !self.wait(left, &mut ready) {
                // Interrupted: what did get ready is polled at the next call.
                ready.drain(..).for_each(Waker::wake);
                return None;
            }
        }
    }

    /// Sleeps until a socket a job waits on is ready, a byte arrives on the socketpair, or
    /// `timeout`; moves the wakers of ready sockets to `ready`. False if a signal interrupted it.
    fn wait(&self, timeout: Duration, ready: &mut Vec<Waker>) -> bool {
        let wants = std::mem::take(&mut *lock(&self.wants));
        // A socket dropped since is closed already: its want goes.
        let (streams, wants): (Vec<Arc<Watched>>, Vec<Want>) = wants
            .into_iter()
            .filter_map(|w| Some((w.stream.upgrade()?, w)))
            .unzip();
        let mut fds = Vec::with_capacity(streams.len() + 1);
        fds.push(PollFd::new(&self.reader, PollFlags::IN));
        for (stream, want) in streams.iter().zip(&wants) {
            let flags = match want.readiness {
                Readiness::Read => PollFlags::IN,
                Readiness::Write => PollFlags::OUT,
            };
            fds.push(PollFd::new(&**stream, flags));
        }
        let limit = Timespec::try_from(timeout).ok();
        let interrupted = match rustix::event::poll(&mut fds, limit.as_ref()) {
            Ok(_) => false,
            Err(rustix::io::Errno::INTR) => true,
            Err(_) => {
                // Out of kernel memory (nothing else applies to these fds): wait a little and
                // let the caller try again, rather than spin.
                std::thread::sleep(timeout.min(Duration::from_millis(1)));
                false
            }
        };
        let woken_from_afar = !fds[0].revents().is_empty();
        let fired: Vec<bool> = fds[1..].iter().map(|fd| !fd.revents().is_empty()).collect();
        drop(fds);
        let mut kept = Vec::with_capacity(wants.len());
        for ((want, fired), stream) in wants.into_iter().zip(fired).zip(&streams) {
            if fired {
                if want.readiness == Readiness::Read {
                    stream.set_readable();
                }
                ready.push(want.waker);
            } else {
                kept.push(want);
            }
        }
        lock(&self.wants).extend(kept);
        if woken_from_afar {
            self.empty_socketpair();
        }
        !interrupted
    }

    fn empty_socketpair(&self) {
        let mut buf = [0u8; 64];
        loop {
            match (&self.reader).read(&mut buf) {
                Ok(n) if n == buf.len() => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                _ => break,
            }
        }
    }
}

impl Drop for Driver {
    /// A driver dropped with attempts in flight (a thread ending) drops them on the runtime.
    fn drop(&mut self) {
        self.jobs.clear();
    }
}
