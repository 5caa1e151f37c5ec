//! A circuit breaker per provider, fed by every attempt's outcome.
//!
//! Closed, it counts outcomes in a sliding window of the last `window` attempts (a bitset ring,
//! inline, no allocation) and opens when either `consecutive_failures` attempts in a row failed or,
//! with at least `min_samples` in the window, at least one failed and the failure share reached
//! `failure_rate`. The check runs after every outcome, as in Resilience4j, so a success that
//! brings the window to `min_samples` can open it too: the share, not the last outcome, decides.
//!
//! Open, the provider is skipped without sending for `open_ms`. Then it is half-open: exactly one
//! live request goes as a probe ([`Admit::Probe`]; the machine calls [`Breaker::probe_started`]
//! when it sends it) while every other request skips it. The probe's outcome decides: success
//! closes (with an empty window, so old failures cannot reopen it at once), failure reopens for
//! twice the last open time, up to `max_open_ms`, so a provider that stays down is probed less and
//! less often. A probe cancelled without an outcome ([`Breaker::probe_abandoned`]) frees the slot.
//!
//! Outcomes arriving while open and no probe is in flight are from attempts sent before it
//! opened: old news, ignored. While a probe is in flight, the next outcome recorded is taken as
//! the probe's, so the machine should record only the probe's outcome then (it knows which attempt
//! the probe is).
//!
//! Every method is O(1) (a few bit and integer operations) and none allocates.

use crate::time::Time;
use serde::Deserialize;
use std::time::Duration;

/// The largest `window`: the ring is an inline bitset of this many bits (128 bytes).
pub const MAX_WINDOW: u32 = 1024;
const WORDS: usize = MAX_WINDOW as usize / 64;

/// The config key `health`. Defaults: a 50 % failure share (Resilience4j's threshold) judged over
/// the last 20 outcomes once there are 10 (LLM traffic per provider is seconds apart, so
/// Resilience4j's 100 calls would take minutes to judge), 5 failures in a row (Envoy's
/// `consecutive_5xx`), open 30 s, doubling on each failed probe up to 5 minutes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Opens after this many failures in a row (at least 1).
    pub consecutive_failures: u32,
    /// Opens when the window's failure share reaches this (0..=1; 0 opens on any failure once
    /// `min_samples` outcomes are in the window).
    pub failure_rate: f64,
    /// How many of the latest outcomes the failure share is taken over (1..=1024).
    pub window: u32,
    /// The failure share is not judged on fewer outcomes than this (at most `window`).
    pub min_samples: u32,
    /// How long an open breaker skips the provider before it lets one probe through, in ms.
    pub open_ms: u64,
    /// The cap for the open time as it doubles after each failed probe, in ms (at least `open_ms`).
    pub max_open_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: 20,
            min_samples: 10,
            open_ms: 30_000,
            max_open_ms: 300_000,
        }
    }
}

impl HealthConfig {
    /// Checks the values; the error names the field (relative to `health`) and what is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |field: &str, message: &str| Err((field.to_owned(), message.to_owned()));
        if self.consecutive_failures == 0 {
            return err("consecutive_failures", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return err("failure_rate", "must be between 0 and 1");
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return err("window", "must be between 1 and 1024");
        }
        if self.min_samples > self.window {
            return err("min_samples", "must not be larger than window");
        }
        if self.open_ms == 0 {
            return err("open_ms", "must be greater than 0");
        }
        if self.max_open_ms < self.open_ms {
            return err("max_open_ms", "must not be smaller than open_ms");
        }
        Ok(())
    }
}

/// What the breaker says about sending a request to its provider now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Healthy: send as usual.
    Closed,
    /// Half-open and nobody is probing: this request may be the one probe.
    Probe,
    /// Open, or half-open with a probe in flight: do not send.
    Skip,
}

/// The breaker's state, for stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Healthy.
    Closed,
    /// Skipping the provider until `until`.
    Open {
        /// When it turns half-open.
        until: Time,
    },
    /// Letting one probe through (or waiting for its outcome).
    HalfOpen,
}

/// One provider's circuit breaker (see the module docs).
#[derive(Debug, Clone)]
pub struct Breaker {
    consecutive_limit: u32,
    failure_rate: f64,
    window: u32,
    min_samples: u32,
    base_open: Duration,
    max_open: Duration,
    /// Bit i set: the outcome in ring slot i was a failure.
    ring: [u64; WORDS],
    /// The slot the next outcome goes to.
    next: u32,
    samples: u32,
    failures: u32,
    consecutive: u32,
    /// Some while open or half-open.
    open: Option<Open>,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    at: Time,
    for_: Duration,
    probing: bool,
}

impl Breaker {
    /// A closed breaker. The config should have passed [`HealthConfig::validate`]; out-of-range
    /// values are clamped here rather than panicking (a window above 1024 is 1024).
    pub fn new(config: &HealthConfig) -> Breaker {
        let window = config.window.clamp(1, MAX_WINDOW);
        Breaker {
            consecutive_limit: config.consecutive_failures.max(1),
            failure_rate: config.failure_rate,
            window,
            min_samples: config.min_samples.min(window),
            base_open: Duration::from_millis(config.open_ms.max(1)),
            max_open: Duration::from_millis(config.max_open_ms.max(config.open_ms.max(1))),
            ring: [0; WORDS],
            next: 0,
            samples: 0,
            failures: 0,
            consecutive: 0,
            open: None,
        }
    }

    /// An attempt's outcome: `ok` false for soft failures and timeouts (hard 4xx should not be
    /// recorded at all: they say the request was bad, not the provider).
    pub fn record(&mut self, now: Time, ok: bool) {
        match self.open {
            None => {
                self.push(!ok);
                if self.trips() {
                    self.open = Some(Open {
                        at: now,
                        for_: self.base_open,
                        probing: false,
                    });
                }
            }
            Some(open) if open.probing => {
                if ok {
                    self.close();
                } else {
                    self.open = Some(Open {
                        at: now,
                        for_: open.for_.saturating_mul(2).min(self.max_open),
                        probing: false,
                    });
                }
            }
            Some(_) => {} // an attempt sent before it opened
        }
    }

    /// Whether a request may be sent to this provider at `now`.
    pub fn admit(&self, now: Time) -> Admit {
        match self.open {
            None => Admit::Closed,
            Some(open) if open.probing || now < open.at + open.for_ => Admit::Skip,
            Some(_) => Admit::Probe,
        }
    }

    /// The machine sent the probe that [`Breaker::admit`] offered.
    pub fn probe_started(&mut self) {
        if let Some(open) = &mut self.open {
            open.probing = true;
        }
    }

    /// The probe was cancelled without an outcome (the caller's deadline, another leg won): the
    /// next request may probe.
    pub fn probe_abandoned(&mut self) {
        if let Some(open) = &mut self.open {
            open.probing = false;
        }
    }

    /// The state at `now`, for stats.
    pub fn state(&self, now: Time) -> BreakerState {
        match self.open {
            None => BreakerState::Closed,
            Some(open) if now < open.at + open.for_ => BreakerState::Open {
                until: open.at + open.for_,
            },
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// When it last opened, if it is not closed: when every provider is open, the machine tries
    /// the one that opened longest ago.
    pub fn opened_at(&self) -> Option<Time> {
        self.open.map(|open| open.at)
    }

    fn push(&mut self, failed: bool) {
        let (word, bit) = ((self.next / 64) as usize, self.next % 64);
        let mask = 1u64 << bit;
        if self.samples == self.window {
            if self.ring[word] & mask != 0 {
                self.failures -= 1;
            }
        } else {
            self.samples += 1;
        }
        if failed {
            self.ring[word] |= mask;
            self.failures += 1;
            self.consecutive = self.consecutive.saturating_add(1);
        } else {
            self.ring[word] &= !mask;
            self.consecutive = 0;
        }
        self.next = if self.next + 1 == self.window {
            0
        } else {
            self.next + 1
        };
    }

    fn trips(&self) -> bool {
        self.consecutive >= self.consecutive_limit
            || (self.samples >= self.min_samples
                && self.failures > 0
                && f64::from(self.failures) >= self.failure_rate * f64::from(self.samples))
    }

    fn close(&mut self) {
        self.ring = [0; WORDS];
        self.next = 0;
        self.samples = 0;
        self.failures = 0;
        self.consecutive = 0;
        self.open = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    fn config(json: &str) -> HealthConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn config_defaults_and_validation() {
        let c = config("{}");
        assert_eq!(c, HealthConfig::default());
        assert_eq!(c.validate(), Ok(()));
        let c = config(r#"{"open_ms": 1000, "window": 5, "min_samples": 5}"#);
        assert_eq!((c.open_ms, c.window, c.consecutive_failures), (1000, 5, 5));
        assert!(serde_json::from_str::<HealthConfig>(r#"{"windw": 5}"#).is_err());
        for (json, field) in [
            (r#"{"failure_rate": 1.5}"#, "failure_rate"),
            (r#"{"failure_rate": -0.1}"#, "failure_rate"),
            (r#"{"window": 0, "min_samples": 0}"#, "window"),
            (r#"{"window": 1025}"#, "window"),
            (r#"{"window": 5}"#, "min_samples"),
            (r#"{"open_ms": 0}"#, "open_ms"),
            (r#"{"max_open_ms": 10}"#, "max_open_ms"),
            (r#"{"consecutive_failures": 0}"#, "consecutive_failures"),
        ] {
            assert_eq!(config(json).validate().unwrap_err().0, field, "{json}");
        }
        let nan = HealthConfig {
            failure_rate: f64::NAN,
            ..HealthConfig::default()
        };
        assert_eq!(nan.validate().unwrap_err().0, "failure_rate");
    }

    #[test]
    fn consecutive_failures_open_it() {
        let mut b = Breaker::new(&HealthConfig::default());
        for i in 0..4 {
            b.record(at(i), false);
            assert_eq!(b.admit(at(i)), Admit::Closed);
        }
        b.record(at(10), true); // a success resets the run
        for i in 0..4 {
            b.record(at(20 + i), false);
        }
        assert_eq!(b.state(at(23)), BreakerState::Closed);
        b.record(at(24), false);
        assert_eq!(b.state(at(24)), BreakerState::Open { until: at(30_024) });
        assert_eq!(b.opened_at(), Some(at(24)));
        assert_eq!(b.admit(at(30_023)), Admit::Skip);
        assert_eq!(b.admit(at(30_024)), Admit::Probe);
    }

    #[test]
    fn failure_rate_opens_it_once_there_are_enough_samples() {
        // 4 failures in 9: below min_samples. The 10th outcome, a success, makes 4/10 < 0.5.
        let mut b = Breaker::new(&config(r#"{"consecutive_failures": 100}"#));
        for i in 0..9 {
            b.record(at(i), i % 2 == 0);
        }
        assert_eq!(b.admit(at(9)), Admit::Closed);
        b.record(at(9), true);
        assert_eq!(b.admit(at(9)), Admit::Closed);
        b.record(at(10), false); // 5 of 11
        assert_eq!(b.admit(at(10)), Admit::Closed);
        b.record(at(11), false); // 6 of 12 = 0.5
        assert_eq!(b.opened_at(), Some(at(11)));
    }

    #[test]
    fn the_window_slides() {
        // window 4, min 4, rate 0.75: failures that slide out of the window stop counting.
        let mut b = Breaker::new(&config(
            r#"{"consecutive_failures": 100, "window": 4, "min_samples": 4, "failure_rate": 0.75}"#,
        ));
        for (i, ok) in [false, true, false, true, true, false, true]
            .into_iter()
            .enumerate()
        {
            b.record(at(i as u64), ok);
            assert_eq!(b.admit(at(i as u64)), Admit::Closed, "step {i}");
        }
        b.record(at(7), false); // the window is now S F S F: 2/4
        assert_eq!(b.admit(at(7)), Admit::Closed);
        b.record(at(8), false); // F S F F: 3/4 = 0.75, with only 2 in a row
        assert_eq!(b.opened_at(), Some(at(8)));
    }

    #[test]
    fn one_probe_then_close_or_reopen_with_doubling_up_to_the_cap() {
        let mut b = Breaker::new(&config(
            r#"{"consecutive_failures": 1, "open_ms": 1000, "max_open_ms": 3000}"#,
        ));
        b.record(at(0), false);
        assert_eq!(b.state(at(999)), BreakerState::Open { until: at(1000) });
        assert_eq!(b.state(at(1000)), BreakerState::HalfOpen);
        assert_eq!(b.admit(at(1000)), Admit::Probe);
        b.probe_started();
        assert_eq!(b.admit(at(1001)), Admit::Skip, "only one probe");
        b.probe_abandoned();
        assert_eq!(
            b.admit(at(1002)),
            Admit::Probe,
            "an abandoned probe frees the slot"
        );
        b.probe_started();
        b.record(at(1500), false);
        assert_eq!(b.state(at(1500)), BreakerState::Open { until: at(3500) });
        assert_eq!(b.opened_at(), Some(at(1500)));
        // A straggler from before it opened changes nothing.
        b.record(at(1600), true);
        assert_eq!(b.admit(at(3499)), Admit::Skip);
        b.probe_started(); // while open, before half-open: not a probe the breaker offered...
        b.probe_abandoned(); // ...and undone
        assert_eq!(b.admit(at(3500)), Admit::Probe);
        b.probe_started();
        b.record(at(3500), false);
        assert_eq!(b.state(at(3500)), BreakerState::Open { until: at(6500) }); // capped at 3 s
        b.probe_started();
        b.record(at(6600), false);
        assert_eq!(b.state(at(6600)), BreakerState::Open { until: at(9600) });
        b.probe_started();
        b.record(at(9700), true);
        assert_eq!(b.state(at(9700)), BreakerState::Closed);
        assert_eq!(b.opened_at(), None);
        // Closed afresh: one failure (consecutive 1) opens it for the base time again.
        b.record(at(9800), false);
        assert_eq!(b.state(at(9800)), BreakerState::Open { until: at(10_800) });
    }

    proptest! {
        /// However outcomes, time and probes interleave: an open breaker admits nothing before its
        /// time, at most one probe is ever outstanding, and the window's counters match a naive
        /// recount of the last `window` outcomes since it last closed.
        #[test]
        fn prop_never_two_probes_and_counters_match(
            window in 1u32..70,
            steps in prop::collection::vec((0u64..3_000, any::<bool>(), 0u8..4), 1..300),
        ) {
            let cfg = HealthConfig {
                consecutive_failures: 3,
                failure_rate: 0.6,
                window,
                min_samples: window.min(5),
                open_ms: 1_000,
                max_open_ms: 8_000,
            };
            let mut b = Breaker::new(&cfg);
            let mut now = Time::ZERO;
            let mut history: Vec<bool> = Vec::new(); // failures since the last close
            let mut probing = false;
            for (advance, ok, action) in steps {
                now = now + Duration::from_millis(advance);
                match (b.admit(now), action) {
                    (Admit::Probe, 0 | 1) => {
                        prop_assert!(!probing);
                        b.probe_started();
                        probing = true;
                    }
                    (Admit::Skip, _) => {
                        if let BreakerState::Open { until } = b.state(now) {
                            prop_assert!(now < until);
                        } else {
                            prop_assert!(probing, "half-open skips only while a probe is out");
                        }
                    }
                    _ => {}
                }
                if action == 2 && probing {
                    b.probe_abandoned();
                    probing = false;
                    continue;
                }
                let was_closed = b.opened_at().is_none();
                b.record(now, ok);
                if was_closed {
                    history.push(!ok);
                }
                if probing {
                    probing = false;
                    if ok {
                        prop_assert_eq!(b.state(now), BreakerState::Closed);
                        history.clear();
                    }
                }
                if b.opened_at().is_none() {
                    let recent = &history[history.len().saturating_sub(window as usize)..];
                    prop_assert_eq!(b.samples as usize, recent.len());
                    prop_assert_eq!(b.failures as usize, recent.iter().filter(|f| **f).count());
                } else if was_closed {
                    history.clear();
                }
            }
        }
    }
}
