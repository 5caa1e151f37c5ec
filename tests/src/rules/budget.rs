//! The budget rule: no provider is sent more than its `rpm` / `tpm` admits.
//!
//! Stated from the outside, as a bound over every window of sends (what the core's GCRA
//! guarantees, see `core/src/state/budget.rs`): for sends `i..=j` at times `t_i <= t_j`,
//!
//! ```text
//! cells(i..j) + min(cells_j, burst) <= burst + (t_j - t_i) * rate / 60 s + refunds after send i
//! ```
//!
//! where a request is one cell and a send's tokens are its estimate (prompt characters / 4 plus
//! `max_tokens`), and a *refund* is what a non-streamed answer's `usage` gave back below that
//! estimate (a correction upwards only makes the budget stricter, so the bound ignores it). The
//! burst defaults are the ones README documents: one second's worth of each rate, or with `burst`
//! the same share of a minute for tokens. Checking every window is O(1) per send: with
//! `g(k) = cells before send k - t_k * rate / 60 s - refunds before send k`, the bound is
//! `g(j) + min(cells_j, burst) - min over i <= j of g(i) <= burst`, so only the running minimum is
//! kept (in integer nanoseconds times the rate, so nothing rounds).

use f3dx_router_core::{ProviderConfig, Time};

const MINUTE_NS: i128 = 60_000_000_000;

/// One budget dimension of one provider, seen from the sends.
#[derive(Debug, Clone)]
pub struct WindowBound {
    what: &'static str,
    per_minute: i128,
    burst: i128,
    /// Cells sent so far.
    cells: i128,
    /// Cells given back by corrections so far.
    refunds: i128,
    /// The least `g(i)` over the sends so far, scaled by one minute in ns.
    least: Option<i128>,
}

impl WindowBound {
    fn new(what: &'static str, per_minute: u64, burst: u64) -> Self {
        WindowBound {
            what,
            per_minute: i128::from(per_minute),
            burst: i128::from(burst.max(1)),
            cells: 0,
            refunds: 0,
            least: None,
        }
    }

    /// A send of `cells` at `now`: Err says how far over the bound it went.
    pub fn send(&mut self, now: Time, cells: u64) -> Result<(), String> {
        let cells = i128::from(cells);
        let g =
            (self.cells - self.refunds) * MINUTE_NS - i128::from(now.as_nanos()) * self.per_minute;
        let least = self.least.map_or(g, |l| l.min(g));
        self.least = Some(least);
        let used = g + cells.min(self.burst) * MINUTE_NS - least;
        self.cells += cells;
        if used > self.burst * MINUTE_NS {
            return Err(format!(
                "{} budget {}/min with burst {} exceeded by {:.3} at {now:?}",
                self.what,
                self.per_minute,
                self.burst,
                (used - self.burst * MINUTE_NS) as f64 / MINUTE_NS as f64
            ));
        }
        Ok(())
    }

    /// An answer's usage came in below its estimate by `cells`.
    pub fn refund(&mut self, cells: u64) {
        self.refunds += i128::from(cells);
    }
}

/// A provider's configured budgets.
#[derive(Debug, Clone, Default)]
pub struct ProviderBudget {
    pub requests: Option<WindowBound>,
    pub tokens: Option<WindowBound>,
}

impl ProviderBudget {
    /// The bounds `config` sets, with README's burst defaults.
    pub fn of(config: &ProviderConfig) -> Self {
        let positive = |v: Option<i64>| v.filter(|&v| v > 0).map(|v| v as u64);
        let (rpm, tpm, burst) = (
            positive(config.rpm),
            positive(config.tpm),
            positive(config.burst),
        );
        let one_second = |per_minute: u64| (per_minute / 60).max(1);
        ProviderBudget {
            requests: rpm
                .map(|rpm| WindowBound::new("request", rpm, burst.unwrap_or(one_second(rpm)))),
            tokens: tpm.map(|tpm| {
                let token_burst = match (burst, rpm) {
                    (Some(burst), Some(rpm)) => (tpm * burst).div_ceil(rpm),
                    _ => one_second(tpm),
                };
                WindowBound::new("token", tpm, token_burst)
            }),
        }
    }

    /// A send estimated at `tokens`.
    pub fn send(&mut self, now: Time, tokens: u64) -> Result<(), String> {
        if let Some(r) = &mut self.requests {
            r.send(now, 1)?;
        }
        if let Some(t) = &mut self.tokens {
            t.send(now, tokens)?;
        }
        Ok(())
    }

    /// A non-streamed success reported `used` tokens for a send estimated at `estimated`.
    pub fn corrected(&mut self, estimated: u64, used: u64) {
        if let Some(t) = &mut self.tokens {
            t.refund(estimated.saturating_sub(used));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    #[test]
    fn the_bound_allows_the_burst_then_the_rate_and_no_more() {
        // 60/min, burst 2: two at once, then one per second.
        let mut b = WindowBound::new("request", 60, 2);
        assert!(b.send(at(0), 1).is_ok());
        assert!(b.send(at(0), 1).is_ok());
        assert!(
            b.send(at(999), 1).is_err(),
            "a third within the first second"
        );
        let mut b = WindowBound::new("request", 60, 2);
        for s in 0..2 {
            assert!(b.send(at(0), 1).is_ok(), "{s}");
        }
        for s in 1..100 {
            assert!(b.send(at(s * 1000), 1).is_ok(), "{s}");
        }
        // Sixty seconds of pacing later, a window starting at the burst still holds only
        // burst + its length's worth: one early send is over.
        assert!(b.send(at(99_500), 1).is_err());
    }

    #[test]
    fn refunds_give_back_and_large_sends_count_at_most_the_burst() {
        let mut b = WindowBound::new("token", 6000, 100); // 100 per second
        assert!(b.send(at(0), 100).is_ok());
        assert!(b.send(at(0), 1).is_err());
        let mut b = WindowBound::new("token", 6000, 100);
        assert!(b.send(at(0), 100).is_ok());
        b.refund(60);
        assert!(b.send(at(0), 60).is_ok());
        // One send larger than the burst is admitted once (it counts as the burst)...
        let mut b = WindowBound::new("token", 6000, 100);
        assert!(b.send(at(0), 1000).is_ok());
        // ...and its excess must be paid back before the next.
        assert!(b.send(Time::ZERO + Duration::from_secs(5), 1).is_err());
        assert!(b.send(Time::ZERO + Duration::from_secs(11), 1).is_ok());
    }
}
