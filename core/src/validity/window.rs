//! One (provider, tenant, model) key: its window of recent outcomes and its state.
//!
//! **The rule.** A key is excluded when its window holds at least `min_samples` outcomes and
//! the Wilson score lower bound (95 %, z = 1.96) of its failure rate is above `threshold`: the
//! failure rate is then above the threshold with 97.5 % confidence, so a short unlucky run does
//! not trip it (1 failure in 2 has a lower bound of 0.09; 5 in 10 has 0.24). After `probe_ms`
//! one request of that tenant and model is let through to it (again every `probe_ms` while no
//! probe answers); a valid probe lets the next request probe at once, an invalid one waits
//! `probe_ms` again, and `recovery` valid probes in a row restore the key with an empty window.
//!
//! Outcomes are kept in order of the time the answer came, so a report that arrives after later
//! answers lands where it belongs; one older than a full window's oldest is dropped.

use crate::time::Time;
use std::collections::VecDeque;
use std::time::Duration;

/// The rule's parameters (from [`super::ValidityConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub(crate) window: usize,
    pub(crate) min_samples: usize,
    pub(crate) threshold: f64,
    pub(crate) probe_after: Duration,
    pub(crate) recovery: u32,
}

const Z: f64 = 1.96;

/// The Wilson score interval's lower bound for `failures` in `n`.
pub(crate) fn wilson_lower(failures: usize, n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    let p = failures as f64 / n;
    let z2 = Z * Z;
    let centre = p + z2 / (2.0 * n);
    let spread = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).max(0.0)
}

/// Outcomes by time: each is the answer's time in nanoseconds shifted left once, its low bit
/// set when valid (8 bytes an outcome).
#[derive(Debug, Default, Clone)]
pub(crate) struct Window {
    outcomes: VecDeque<u64>,
    failures: usize,
}

fn pack(at: Time, valid: bool) -> u64 {
    (at.as_nanos().min(u64::MAX >> 1) << 1) | u64::from(valid)
}

impl Window {
    pub(crate) fn len(&self) -> usize {
        self.outcomes.len()
    }

    pub(crate) fn failures(&self) -> usize {
        self.failures
    }

    /// Share of valid outcomes, if any.
    pub(crate) fn pass_rate(&self) -> Option<f64> {
        (!self.outcomes.is_empty()).then(|| 1.0 - self.failures as f64 / self.outcomes.len() as f64)
    }

    /// Adds an outcome at its time, keeping the newest `capacity`.
    pub(crate) fn insert(&mut self, at: Time, valid: bool, capacity: usize) {
        let packed = pack(at, valid);
        let position = self.outcomes.partition_point(|&o| o >> 1 <= packed >> 1);
        if self.outcomes.len() >= capacity && position == 0 {
            return; // Older than everything in a full window: it no longer belongs.
        }
        self.outcomes.insert(position, packed);
        self.failures += usize::from(!valid);
        while self.outcomes.len() > capacity {
            if let Some(old) = self.outcomes.pop_front() {
                self.failures -= usize::from(old & 1 == 0);
            }
        }
    }

    /// Changes the outcome recorded at `at` from `old` to its opposite; `false` when it is no
    /// longer in the window.
    pub(crate) fn flip(&mut self, at: Time, old: bool) -> bool {
        let target = pack(at, old);
        let Some(slot) = self.outcomes.iter_mut().find(|o| **o == target) else {
            return false;
        };
        *slot ^= 1;
        if old {
            self.failures += 1;
        } else {
            self.failures -= 1;
        }
        true
    }

    pub(crate) fn clear(&mut self) {
        self.outcomes.clear();
        self.failures = 0;
    }
}

/// Where a key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Routed to as usual.
    Ok,
    /// Skipped for its tenant and model; a request may probe it from `next_probe_at`.
    Out { next_probe_at: Time, passes: u32 },
}

/// What a key says about sending it a request now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Admission {
    Yes,
    /// This request may be the key's recovery probe.
    Probe,
    /// Skipped; its pass rate, for choosing the best when everyone is excluded.
    Excluded {
        pass_rate: f64,
    },
}

/// One key's window and state.
#[derive(Debug, Clone)]
pub(crate) struct KeyState {
    pub(crate) window: Window,
    pub(crate) status: Status,
    /// When the status last changed (or the key was created).
    pub(crate) since: Time,
}

impl KeyState {
    pub(crate) fn new(now: Time) -> Self {
        KeyState {
            window: Window::default(),
            status: Status::Ok,
            since: now,
        }
    }

    pub(crate) fn admission(&self, now: Time) -> Admission {
        match self.status {
            Status::Ok => Admission::Yes,
            Status::Out { next_probe_at, .. } if now >= next_probe_at => Admission::Probe,
            Status::Out { .. } => Admission::Excluded {
                pass_rate: self.window.pass_rate().unwrap_or(0.0),
            },
        }
    }

    /// A probe was sent: the next one may go after `probe_after` if this one never answers.
    pub(crate) fn probe_sent(&mut self, now: Time, rule: &Rule) {
        if let Status::Out { next_probe_at, .. } = &mut self.status {
            *next_probe_at = now + rule.probe_after;
        }
    }

    /// Records an outcome of an answer at `at`, learned at `now`; `probe` when it answered a
    /// recovery probe. Returns whether the key went out (`Some(true)`) or came back
    /// (`Some(false)`).
    pub(crate) fn record(
        &mut self,
        now: Time,
        at: Time,
        valid: bool,
        probe: bool,
        rule: &Rule,
    ) -> Option<bool> {
        self.window.insert(at, valid, rule.window);
        self.after_change(now, valid, probe, rule)
    }

    /// A reported outcome corrects one recorded before (`old` -> `!old`).
    pub(crate) fn correct(&mut self, now: Time, at: Time, old: bool, rule: &Rule) -> Option<bool> {
        if !self.window.flip(at, old) {
            self.window.insert(at, !old, rule.window);
        }
        match self.status {
            // A probe counted as passed turns out invalid: recovery starts over.
            Status::Out { .. } if old => self.after_change(now, false, true, rule),
            Status::Out { .. } => None,
            Status::Ok => self.after_change(now, !old, false, rule),
        }
    }

    fn after_change(&mut self, now: Time, valid: bool, probe: bool, rule: &Rule) -> Option<bool> {
        match &mut self.status {
            Status::Ok => {
                let n = self.window.len();
                if n >= rule.min_samples && wilson_lower(self.window.failures(), n) > rule.threshold
                {
                    self.status = Status::Out {
                        next_probe_at: now + rule.probe_after,
                        passes: 0,
                    };
                    self.since = now;
                    return Some(true);
                }
                None
            }
            Status::Out { .. } if !probe => None,
            Status::Out {
                next_probe_at,
                passes,
            } => {
                if !valid {
                    *passes = 0;
                    *next_probe_at = now + rule.probe_after;
                    return None;
                }
                *passes += 1;
                if *passes >= rule.recovery {
                    self.status = Status::Ok;
                    self.since = now;
                    self.window.clear();
                    return Some(false);
                }
                *next_probe_at = now;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RULE: Rule = Rule {
        window: 50,
        min_samples: 10,
        threshold: 0.2,
        probe_after: Duration::from_secs(30),
        recovery: 3,
    };

    fn t(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    #[test]
    fn the_wilson_bound_is_the_documented_one() {
        assert!((wilson_lower(1, 2) - 0.0945).abs() < 1e-3);
        assert!((wilson_lower(5, 10) - 0.2366).abs() < 1e-3);
        assert!(wilson_lower(4, 10) < 0.2);
        assert_eq!(wilson_lower(0, 0), 0.0);
    }

    #[test]
    fn late_reports_land_by_time_and_stale_ones_are_dropped() {
        let mut w = Window::default();
        for i in 0..5 {
            w.insert(t(10 * i + 10), true, 5);
        }
        w.insert(t(25), false, 5); // between 20 and 30: the oldest (10) drops out
        assert_eq!((w.len(), w.failures()), (5, 1));
        w.insert(t(1), false, 5); // older than a full window's oldest
        assert_eq!(w.failures(), 1);
        assert!(w.flip(t(25), false));
        assert_eq!(w.failures(), 0);
        assert!(!w.flip(t(25), false));
    }

    #[test]
    fn a_key_goes_out_probes_and_recovers() {
        let mut k = KeyState::new(t(0));
        let mut went_out = None;
        for i in 0..50 {
            if k.record(t(i), t(i), i % 2 == 0, false, &RULE) == Some(true) {
                went_out = Some(i);
                break;
            }
        }
        let out_at = went_out.expect("50 % invalid must exclude");
        assert!(out_at >= 9);
        assert!(matches!(
            k.admission(t(out_at + 1)),
            Admission::Excluded { .. }
        ));
        let probe_at = t(out_at) + RULE.probe_after;
        assert_eq!(k.admission(probe_at), Admission::Probe);
        k.probe_sent(probe_at, &RULE);
        assert!(matches!(k.admission(probe_at), Admission::Excluded { .. }));
        // An invalid probe waits another `probe_ms`.
        k.record(probe_at, probe_at, false, true, &RULE);
        let next = probe_at + RULE.probe_after;
        assert!(matches!(
            k.admission(Time::from_nanos(next.as_nanos() - 1)),
            Admission::Excluded { .. }
        ));
        assert_eq!(k.admission(next), Admission::Probe);
        for i in 0..3 {
            let at = next + Duration::from_millis(i);
            assert_eq!(k.admission(at), Admission::Probe);
            k.probe_sent(at, &RULE);
            let back = k.record(at, at, true, true, &RULE);
            assert_eq!(back, (i == 2).then_some(false));
        }
        assert_eq!(k.admission(next + Duration::from_secs(1)), Admission::Yes);
        assert_eq!(k.window.len(), 0);
    }

    proptest! {
        #[test]
        fn never_out_below_min_samples_and_always_probes_after_probe_ms(
            outcomes in proptest::collection::vec((any::<bool>(), 0u64..5_000, any::<bool>()), 1..300),
            min_samples in 1usize..30,
        ) {
            let rule = Rule { min_samples, ..RULE };
            let mut k = KeyState::new(Time::ZERO);
            let mut now = Time::ZERO;
            for (valid, gap_ms, probe) in outcomes {
                now = now + Duration::from_millis(gap_ms);
                let probing = matches!(k.admission(now), Admission::Probe);
                if probing && probe {
                    k.probe_sent(now, &rule);
                }
                let before = k.status;
                let change = k.record(now, now, valid, probing && probe, &rule);
                prop_assert!(k.window.len() <= rule.window);
                if change == Some(true) {
                    prop_assert!(k.window.len() >= rule.min_samples);
                    prop_assert_eq!(before, Status::Ok);
                }
                if let Status::Out { next_probe_at, .. } = k.status {
                    prop_assert!(next_probe_at <= now + rule.probe_after);
                    prop_assert_eq!(k.admission(now + rule.probe_after), Admission::Probe);
                }
            }
        }
    }
}
