//! Per-provider budgets: `rpm` and `tpm` (requests and tokens per minute, LiteLLM's names), from
//! the config and from what the provider itself says is left.
//!
//! # The configured part: GCRA
//!
//! Each configured dimension is a GCRA (generic cell rate algorithm, the ATM traffic-policing
//! algorithm, equivalent to a token bucket but kept as one number): a *theoretical arrival time*
//! `tat` in integer nanoseconds, an emission interval `T` (one minute / rate, rounded **up** so the
//! rounding can only make the budget stricter) and a burst of `B` cells. A send of `n` cells at
//! `now` is admitted when `max(tat, now) + min(n, B)·T - now <= B·T`, and `take` moves `tat` to
//! `max(tat, now) + n·T`. All arithmetic saturates.
//!
//! **What it guarantees** (tested by `prop_window_never_exceeds_budget` below): for any closed time
//! window `[t1, t2]`, the cells taken at times inside it satisfy
//! `Σ cells − cells_last + min(cells_last, B) <= B + floor((t2 − t1) / T) <= B + rate·(t2 − t1)/60 s`,
//! where `cells_last` is the last send in the window. For requests (one cell each) that is simply:
//! **no more than `rpm + burst` requests in any 60 s**. For tokens it is the same bound, except that
//! one request estimated larger than the whole token burst is still admitted (once the bucket is
//! full) and its excess over the burst is paid back as delay before anything else is admitted:
//! without the clamp such a request could never be sent, and the provider, not us, is the judge of
//! whether it is too large.
//!
//! # Defaults for the burst
//!
//! `burst` counts requests that may go at once. Unset, it is one second's worth of each rate
//! (`max(1, rpm/60)` requests, `max(1, tpm/60)` tokens): one minute's budget can then never leave
//! in the first second, which is how OpenAI says it enforces per-minute limits ("60,000 requests
//! per minute may be enforced as 1,000 requests per second"). Set, the token burst is the same
//! share of a minute as the request burst (`tpm · burst / rpm`, rounded up); without `rpm` there is
//! no share to take and the token burst stays one second of `tpm`.
//!
//! # The learned part
//!
//! A response's rate-limit headers ([`super::rate_limit_headers`]) say "N requests / M tokens left,
//! reset in D". [`Budget::learn`] keeps that view until `now + D`: until then at most N more
//! requests (M tokens) are admitted, [`Budget::take`] counts them down, and after the reset the
//! learned constraint lapses (the next response renews it). Configured and learned limits combine
//! as the stricter. The learned view is the provider's count at the time it answered, so requests
//! already in flight then may not be in it: it stops us before the 429, it is not a guarantee.
//!
//! Nothing here allocates, and every method is a few integer operations: O(1).

use crate::time::Time;
use std::num::NonZeroU64;
use std::time::Duration;

use super::rate_limit_headers::LearnedLimits;

const MINUTE_NS: u64 = 60_000_000_000;

/// One provider's budget: configured `rpm`/`tpm` (GCRA) combined with what it last said is left.
#[derive(Debug, Clone)]
pub struct Budget {
    requests: Option<Gcra>,
    tokens: Option<Gcra>,
    learned_requests: Option<Learned>,
    learned_tokens: Option<Learned>,
}

/// What is left of a budget now, for stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSnapshot {
    /// Requests that could be sent now (the stricter of configured and learned), None if neither
    /// limits requests.
    pub requests_remaining: Option<u64>,
    /// Tokens that could be sent now, likewise.
    pub tokens_remaining: Option<u64>,
    /// How long until every limit is back to its full allowance (configured buckets refilled,
    /// learned windows over); None when that is already so.
    pub resets_in: Option<Duration>,
    /// Whether a limit learned from the provider's headers is in force now.
    pub learned: bool,
}

impl Budget {
    /// A budget of `rpm` requests and `tpm` tokens per minute (None: that dimension is not limited by
    /// config), with `burst` requests allowed at once (see the module docs for the defaults).
    pub fn new(
        rpm: Option<NonZeroU64>,
        tpm: Option<NonZeroU64>,
        burst: Option<NonZeroU64>,
    ) -> Budget {
        let requests = rpm.map(|rpm| {
            let burst = burst.map_or(one_second_of(rpm), NonZeroU64::get);
            Gcra::new(rpm.get(), burst)
        });
        let tokens = tpm.map(|tpm| {
            let burst = match (burst, rpm) {
                (Some(burst), Some(rpm)) => {
                    let share = u128::from(tpm.get()) * u128::from(burst.get());
                    u64::try_from(share.div_ceil(u128::from(rpm.get()))).unwrap_or(u64::MAX)
                }
                _ => one_second_of(tpm),
            };
            Gcra::new(tpm.get(), burst)
        });
        Budget {
            requests,
            tokens,
            learned_requests: None,
            learned_tokens: None,
        }
    }

    /// Whether a send estimated at `tokens` tokens is admitted at `now`; if not, the earliest time
    /// it would be (with nothing else taken meanwhile), which is exact: admitted then, not 1 ns
    /// before.
    pub fn admits(&self, now: Time, tokens: u64) -> Result<(), Time> {
        let earliest = [
            self.requests.as_ref().map(|g| g.earliest(now, 1)),
            self.tokens.as_ref().map(|g| g.earliest(now, tokens)),
            self.learned_requests.as_ref().map(|l| l.earliest(now, 1)),
            self.learned_tokens
                .as_ref()
                .map(|l| l.earliest(now, tokens)),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(now);
        if earliest <= now {
            Ok(())
        } else {
            Err(earliest)
        }
    }

    /// Consumes one request and `tokens` estimated tokens at send (whether or not `admits` said
    /// yes: a send the machine chose to make anyway, the last-resort try, still counts).
    pub fn take(&mut self, now: Time, tokens: u64) {
        if let Some(g) = &mut self.requests {
            g.take(now, 1);
        }
        if let Some(g) = &mut self.tokens {
            g.take(now, tokens);
        }
        if let Some(l) = &mut self.learned_requests {
            l.take(now, 1);
        }
        if let Some(l) = &mut self.learned_tokens {
            l.take(now, tokens);
        }
    }

    /// Replaces a send's estimate by the tokens its response's `usage` reports, in either
    /// direction (saturating). Only the configured dimension is corrected: the learned remainder
    /// is the provider's own count, which its next response renews.
    pub fn correct(&mut self, estimated: u64, actual: u64) {
        if let Some(g) = &mut self.tokens {
            g.correct(estimated, actual);
        }
    }

    /// Takes in what a response said is left: each dimension present replaces the learned one and
    /// holds until `now + reset`.
    pub fn learn(&mut self, now: Time, limits: &LearnedLimits) {
        if let Some(limit) = &limits.requests {
            self.learned_requests = Some(Learned {
                remaining: limit.remaining,
                until: now + limit.reset,
            });
        }
        if let Some(limit) = &limits.tokens {
            self.learned_tokens = Some(Learned {
                remaining: limit.remaining,
                until: now + limit.reset,
            });
        }
    }

    /// What is left at `now`, for stats.
    pub fn snapshot(&self, now: Time) -> BudgetSnapshot {
        let active = |l: Option<Learned>| l.filter(|l| now < l.until);
        let (learned_requests, learned_tokens) =
            (active(self.learned_requests), active(self.learned_tokens));
        let stricter = |configured: Option<u64>, learned: Option<Learned>| match (
            configured,
            learned.map(|l| l.remaining),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let full_at = [
            self.requests.as_ref().map(|g| g.tat),
            self.tokens.as_ref().map(|g| g.tat),
            learned_requests.map(|l| l.until.as_nanos()),
            learned_tokens.map(|l| l.until.as_nanos()),
        ]
        .into_iter()
        .flatten()
        .max()
        .filter(|&t| t > now.as_nanos());
        BudgetSnapshot {
            requests_remaining: stricter(
                self.requests.as_ref().map(|g| g.remaining(now)),
                learned_requests,
            ),
            tokens_remaining: stricter(
                self.tokens.as_ref().map(|g| g.remaining(now)),
                learned_tokens,
            ),
            resets_in: full_at.map(|t| Time::from_nanos(t) - now),
            learned: learned_requests.is_some() || learned_tokens.is_some(),
        }
    }
}

/// One second's worth of a per-minute rate, at least 1.
fn one_second_of(per_minute: NonZeroU64) -> u64 {
    (per_minute.get() / 60).max(1)
}

/// One GCRA dimension (see the module docs).
#[derive(Debug, Clone)]
struct Gcra {
    /// Nanoseconds per cell, rounded up (a rate above 60e9 per minute is 1 ns per cell).
    interval_ns: u64,
    /// Cells that may go at once, at least 1.
    burst: u64,
    /// The theoretical arrival time, in nanoseconds on the driver's clock.
    tat: u64,
}

impl Gcra {
    fn new(per_minute: u64, burst: u64) -> Gcra {
        Gcra {
            interval_ns: MINUTE_NS.div_ceil(per_minute.max(1)).max(1),
            burst: burst.max(1),
            tat: 0,
        }
    }

    fn cost(&self, cells: u64) -> u64 {
        cells.saturating_mul(self.interval_ns)
    }

    /// The earliest time at which `cells` are admitted: the bucket must hold `min(cells, burst)`.
    fn earliest(&self, now: Time, cells: u64) -> Time {
        let needed = self.cost(cells.min(self.burst));
        let at = self
            .tat
            .saturating_add(needed)
            .saturating_sub(self.cost(self.burst));
        Time::from_nanos(at.max(now.as_nanos()))
    }

    fn take(&mut self, now: Time, cells: u64) {
        self.tat = self
            .tat
            .max(now.as_nanos())
            .saturating_add(self.cost(cells));
    }

    fn correct(&mut self, estimated: u64, actual: u64) {
        self.tat = if actual >= estimated {
            self.tat.saturating_add(self.cost(actual - estimated))
        } else {
            self.tat.saturating_sub(self.cost(estimated - actual))
        };
    }

    /// Whole cells the bucket holds at `now`.
    fn remaining(&self, now: Time) -> u64 {
        let backlog = self.tat.saturating_sub(now.as_nanos());
        self.cost(self.burst).saturating_sub(backlog) / self.interval_ns
    }
}

/// A provider's "this many left until then".
#[derive(Debug, Clone, Copy)]
struct Learned {
    remaining: u64,
    until: Time,
}

impl Learned {
    /// Admitted at once if enough is left or the window is over, else when it ends. A send larger
    /// than what is left waits for the reset rather than being refused forever.
    fn earliest(&self, now: Time, cells: u64) -> Time {
        if now >= self.until || cells <= self.remaining {
            now
        } else {
            self.until
        }
    }

    fn take(&mut self, now: Time, cells: u64) {
        if now < self.until {
            self.remaining = self.remaining.saturating_sub(cells);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::rate_limit_headers::Limit;
    use proptest::prelude::*;

    fn nz(n: u64) -> Option<NonZeroU64> {
        NonZeroU64::new(n)
    }

    fn secs(s: u64) -> Time {
        Time::from_millis(s * 1000)
    }

    #[test]
    fn unlimited_admits_everything() {
        let mut b = Budget::new(None, None, None);
        for _ in 0..1000 {
            assert_eq!(b.admits(Time::ZERO, u64::MAX), Ok(()));
            b.take(Time::ZERO, u64::MAX);
        }
        let snap = b.snapshot(Time::ZERO);
        assert_eq!(snap.requests_remaining, None);
        assert_eq!(snap.resets_in, None);
        assert!(!snap.learned);
    }

    #[test]
    fn default_burst_is_one_second_and_pacing_is_exact() {
        // 120 rpm: 2 per second at once, then one every 500 ms.
        let mut b = Budget::new(nz(120), None, None);
        let t0 = secs(100);
        b.take(t0, 0);
        b.take(t0, 0);
        let next = t0 + Duration::from_millis(500);
        assert_eq!(b.admits(t0, 0), Err(next));
        assert_eq!(
            b.admits(Time::from_nanos(next.as_nanos() - 1), 0),
            Err(next),
            "not 1 ns early"
        );
        assert_eq!(b.admits(next, 0), Ok(()));
        // A small rate still lets one request go.
        let b = Budget::new(nz(7), None, None);
        assert_eq!(b.admits(Time::ZERO, 0), Ok(()));
    }

    #[test]
    fn explicit_burst_and_proportional_token_burst() {
        // 60 rpm with burst 10 = ten seconds' worth; tpm 6000 gets ten seconds = 1000 tokens.
        let mut b = Budget::new(nz(60), nz(6000), nz(10));
        let t0 = secs(1000);
        assert_eq!(b.snapshot(t0).requests_remaining, Some(10));
        assert_eq!(b.snapshot(t0).tokens_remaining, Some(1000));
        for _ in 0..10 {
            assert_eq!(b.admits(t0, 10), Ok(()));
            b.take(t0, 10);
        }
        assert_eq!(b.admits(t0, 10), Err(t0 + Duration::from_secs(1)));
        let snap = b.snapshot(t0);
        assert_eq!(snap.requests_remaining, Some(0));
        assert_eq!(snap.tokens_remaining, Some(900));
        assert_eq!(snap.resets_in, Some(Duration::from_secs(10)));
        // Tokens bind: 1000 tokens at once, 100 per second after.
        let mut b = Budget::new(nz(60), nz(6000), nz(10));
        b.take(t0, 1000);
        assert_eq!(b.admits(t0, 100), Err(t0 + Duration::from_secs(1)));
        assert_eq!(b.admits(t0, 0), Ok(()));
    }

    #[test]
    fn a_request_larger_than_the_token_burst_goes_once_the_bucket_is_full() {
        // tpm 6000, no burst: 100 tokens at once. A 1000-token request waits for a full bucket,
        // goes, and its excess is paid back before anything else.
        let mut b = Budget::new(None, nz(6000), None);
        let t0 = secs(50);
        b.take(t0, 50);
        let full = t0 + Duration::from_millis(500);
        assert_eq!(b.admits(t0, 1000), Err(full));
        assert_eq!(b.admits(full, 1000), Ok(()));
        b.take(full, 1000);
        // 1000 tokens at 10 ms each: the next 1-token send waits 9.01 s (the bucket must refill
        // from -900 to 1).
        assert_eq!(b.admits(full, 1), Err(full + Duration::from_millis(9_010)));
    }

    #[test]
    fn corrections_move_the_token_dimension_both_ways() {
        let t0 = secs(10);
        let mut b = Budget::new(None, nz(6000), None); // 10 ms per token, burst 100
        b.take(t0, 100);
        assert_eq!(b.admits(t0, 1), Err(t0 + Duration::from_millis(10)));
        b.correct(100, 40); // it used 40: 60 tokens back
        assert_eq!(b.admits(t0, 60), Ok(()));
        assert_eq!(b.admits(t0, 61), Err(t0 + Duration::from_millis(10)));
        b.correct(40, 1040); // it used 1040 after all: 10 s more to pay back
        assert_eq!(b.admits(t0, 1), Err(t0 + Duration::from_millis(9_410)));
        // Absurd corrections saturate.
        b.correct(0, u64::MAX);
        assert!(b.admits(t0, 1).unwrap_err() > Time::from_nanos(u64::MAX / 2));
        b.correct(u64::MAX, 0);
        assert_eq!(b.admits(t0, 100), Ok(()));
    }

    #[test]
    fn learned_limits_hold_until_the_reset_and_combine_as_the_stricter() {
        let t0 = secs(5);
        let mut b = Budget::new(nz(6000), None, None); // 100 at once: config is loose
        let limits = LearnedLimits {
            requests: Some(Limit {
                remaining: 2,
                limit: Some(50),
                reset: Duration::from_secs(3),
            }),
            tokens: Some(Limit {
                remaining: 500,
                limit: None,
                reset: Duration::from_secs(1),
            }),
            unparsable: 0,
        };
        b.learn(t0, &limits);
        let snap = b.snapshot(t0);
        assert_eq!(snap.requests_remaining, Some(2));
        assert_eq!(snap.tokens_remaining, Some(500));
        assert!(snap.learned);
        assert_eq!(snap.resets_in, Some(Duration::from_secs(3)));
        // Too many tokens for what is left: wait for the token reset.
        assert_eq!(b.admits(t0, 501), Err(t0 + Duration::from_secs(1)));
        b.take(t0, 300);
        b.take(t0, 200);
        assert_eq!(b.admits(t0, 0), Err(t0 + Duration::from_secs(3)));
        assert_eq!(b.admits(t0 + Duration::from_secs(3), 10_000), Ok(()));
        let later = b.snapshot(t0 + Duration::from_secs(3));
        assert!(!later.learned);
        assert_eq!(
            later.requests_remaining,
            Some(100),
            "the configured bucket refilled"
        );
        assert_eq!(later.tokens_remaining, None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Advance(u64),
        /// Send now if admitted.
        Send(u64),
        /// Wait for the admission time `admits` returns, then send: the greedy sender that finds
        /// any rounding in the budget's favour.
        SendAsap(u64),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                (0u64..3_000_000_000).prop_map(Op::Advance),
                (0u64..3_000).prop_map(Op::Send),
                (0u64..3_000).prop_map(Op::SendAsap),
            ],
            1..400,
        )
    }

    proptest! {
        /// The GCRA guarantee stated in the module docs, checked over every window that starts and
        /// ends at a send (the tightest windows): requests never exceed `burst + floor(window·rpm
        /// / 60 s)`, and tokens likewise with the window's last send counted at most the token
        /// burst. A send happens only when `admits` says yes; its returned time is also exact.
        #[test]
        fn prop_window_never_exceeds_budget(
            rpm in 1u64..600,
            tpm in 1u64..200_000,
            burst in prop::option::of(1u64..50),
            ops in ops(),
        ) {
            let mut b = Budget::new(nz(rpm), nz(tpm), burst.and_then(nz));
            let request_burst = burst.unwrap_or((rpm / 60).max(1));
            let token_burst = match burst {
                Some(burst) => (tpm * burst).div_ceil(rpm),
                None => (tpm / 60).max(1),
            };
            let mut now = Time::from_nanos(1);
            let mut sent: Vec<(u64, u64)> = Vec::new();
            for op in ops {
                match op {
                    Op::Advance(ns) => now = now + Duration::from_nanos(ns),
                    Op::SendAsap(tokens) => {
                        if let Err(at) = b.admits(now, tokens) {
                            now = at;
                        }
                        prop_assert_eq!(b.admits(now, tokens), Ok(()));
                        b.take(now, tokens);
                        sent.push((now.as_nanos(), tokens));
                    }
                    Op::Send(tokens) => match b.admits(now, tokens) {
                        Ok(()) => {
                            b.take(now, tokens);
                            sent.push((now.as_nanos(), tokens));
                        }
                        Err(at) => {
                            prop_assert!(at > now);
                            prop_assert_eq!(b.admits(at, tokens), Ok(()));
                            prop_assert!(b.admits(Time::from_nanos(at.as_nanos() - 1), tokens).is_err());
                        }
                    },
                }
            }
            for i in 0..sent.len() {
                let mut tokens = 0u64;
                for j in i..sent.len() {
                    let window = u128::from(sent[j].0 - sent[i].0);
                    let requests = (j - i + 1) as u128;
                    prop_assert!(
                        requests <= u128::from(request_burst) + window * u128::from(rpm) / u128::from(MINUTE_NS),
                        "{} requests in {} ns", requests, window
                    );
                    let counted = u128::from(tokens) + u128::from(sent[j].1.min(token_burst));
                    prop_assert!(
                        counted <= u128::from(token_burst) + window * u128::from(tpm) / u128::from(MINUTE_NS),
                        "{} tokens in {} ns", counted, window
                    );
                    tokens += sent[j].1;
                }
            }
        }

        /// Learned limits: while a window is open, no more sends are admitted than it said were
        /// left, and none at all is refused after it ends.
        #[test]
        fn prop_learned_remaining_is_never_exceeded(
            remaining in 0u64..20,
            reset_ms in 0u64..10_000,
            steps in prop::collection::vec(0u64..500, 1..100),
        ) {
            let mut b = Budget::new(None, None, None);
            let t0 = secs(1);
            b.learn(t0, &LearnedLimits {
                requests: Some(Limit { remaining, limit: None, reset: Duration::from_millis(reset_ms) }),
                tokens: None,
                unparsable: 0,
            });
            let until = t0 + Duration::from_millis(reset_ms);
            let (mut now, mut in_window) = (t0, 0);
            for step in steps {
                now = now + Duration::from_millis(step);
                match b.admits(now, 0) {
                    Ok(()) => {
                        b.take(now, 0);
                        if now < until { in_window += 1; }
                    }
                    Err(at) => {
                        prop_assert!(now < until);
                        prop_assert_eq!(at, until);
                    }
                }
            }
            prop_assert!(in_window <= remaining);
        }
    }
}
