//! The machine's one timer queue: every timer is armed, forgotten and fired through it.
//!
//! Timers live in one ordered set of `(due, timer)` (firezone's `BTreeSet<(deadline, id)>`), so
//! [`RouterMachine::poll_timeout`] is its first entry. Each owner (a request or an attempt) also
//! keeps the few timers it armed in a small list, so that ending the owner forgets them at once:
//! the set never holds a timer whose owner is gone, and its size is bounded by the requests and
//! attempts in flight.

use crate::ids::{AttemptId, RequestId};
use crate::time::Time;
use smallvec::SmallVec;
use std::collections::BTreeSet;

/// A timer the machine keeps, and so why [`crate::RouterMachine::poll_timeout`] will wake: a
/// driver may log it for tracing (as firezone's snownet does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Timer {
    /// The request's `deadline_ms` ends it.
    Deadline(RequestId),
    /// The request's next hedge leg is due.
    Hedge(RequestId),
    /// A provider the request may use becomes eligible again (a cooldown ends, a budget admits).
    Wake(RequestId),
    /// The attempt's `timeout_ms` expires.
    AttemptTimeout(AttemptId),
    /// The streaming attempt's `ttft_ms` expires before it committed.
    FirstToken(AttemptId),
    /// The attempt's `idle_timeout_ms` since its provider's last bytes may have run out.
    Idle(AttemptId),
}

/// The timers one owner armed (a request has at most deadline, hedge and wake; an attempt its
/// timeout, first-token and idle limits), kept inline.
pub(crate) type OwnTimers = SmallVec<[(Time, Timer); 3]>;

/// Every armed timer, ordered by when it is due.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    due: BTreeSet<(Time, Timer)>,
}

impl TimerQueue {
    /// Arms `timer` at `at` for the owner whose list is `own`.
    pub(crate) fn arm(&mut self, own: &mut OwnTimers, at: Time, timer: Timer) {
        own.push((at, timer));
        self.due.insert((at, timer));
    }

    /// Forgets the owner's timers that `which` selects.
    pub(crate) fn forget(&mut self, own: &mut OwnTimers, which: impl Fn(Timer) -> bool) {
        own.retain(|entry| {
            let gone = which(entry.1);
            if gone {
                self.due.remove(entry);
            }
            !gone
        });
    }

    /// Forgets every timer of an owner that has ended.
    pub(crate) fn forget_all(&mut self, own: &OwnTimers) {
        for entry in own {
            self.due.remove(entry);
        }
    }

    /// Takes the earliest timer due at or before `now`. The caller must also drop it from its
    /// owner's list ([`OwnTimers`]), which [`TimerQueue::fired`] does.
    pub(crate) fn pop_due(&mut self, now: Time) -> Option<(Time, Timer)> {
        let &(at, _) = self.due.first()?;
        (at <= now).then(|| self.due.pop_first().expect("first exists"))
    }

    /// Drops a fired timer from its owner's list, so ending the owner does not forget it again.
    pub(crate) fn fired(own: &mut OwnTimers, entry: (Time, Timer)) {
        if let Some(i) = own.iter().position(|e| *e == entry) {
            own.swap_remove(i);
        }
    }

    /// The earliest timer, and why.
    pub(crate) fn next(&self) -> Option<(Time, Timer)> {
        self.due.first().copied()
    }

    /// How many timers are armed (for the bounded-memory rule).
    pub(crate) fn len(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_and_forgets_what_its_owner_drops() {
        let mut q = TimerQueue::default();
        let (mut a, mut b) = (OwnTimers::new(), OwnTimers::new());
        q.arm(&mut a, Time::from_millis(30), Timer::Deadline(RequestId(1)));
        q.arm(&mut a, Time::from_millis(10), Timer::Hedge(RequestId(1)));
        q.arm(
            &mut b,
            Time::from_millis(20),
            Timer::AttemptTimeout(AttemptId(7)),
        );
        assert_eq!(q.next().unwrap().0, Time::from_millis(10));
        assert_eq!(q.pop_due(Time::from_millis(5)), None);
        let fired = q.pop_due(Time::from_millis(25)).unwrap();
        assert_eq!(fired.1, Timer::Hedge(RequestId(1)));
        TimerQueue::fired(&mut a, fired);
        assert_eq!(a.len(), 1);
        q.forget(&mut b, |t| matches!(t, Timer::AttemptTimeout(_)));
        assert!(b.is_empty());
        assert_eq!(q.next().unwrap().1, Timer::Deadline(RequestId(1)));
        q.forget_all(&a);
        assert_eq!(q.len(), 0);
        assert_eq!(q.pop_due(Time::from_nanos(u64::MAX)), None);
    }
}
