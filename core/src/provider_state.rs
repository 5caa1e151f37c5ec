//! What the machine knows about each provider across requests: cooldown, breaker, budget,
//! latency, and the counters behind [`crate::stats`]. Policies read it; the machine updates it
//! from every attempt's outcome. Fixed size per provider, allocated once at construction.

use crate::config::{HealthConfig, ProviderConfig};
use crate::outcome::AttemptOutcome;
use crate::state::budget::Budget;
use crate::state::health::{Admit, Breaker};
use crate::state::latency::{DEFAULT_HALVE_AT, DEFAULT_MIN_SAMPLES, LatencyQuantiles, PeakEwma};
use crate::state::rate_limit_headers::LearnedLimits;
use crate::stats::{BreakerStats, ProviderStats};
use crate::time::Time;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

/// Why a provider cannot take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ineligible {
    /// Cooling down, or out of budget: it can at this time.
    Until(Time),
    /// Its breaker is open (and its probe taken).
    Open,
}

/// One provider's state.
#[derive(Debug)]
pub(crate) struct ProviderState {
    /// Until when a `Retry-After` keeps it out.
    pub(crate) cooldown_until: Option<Time>,
    pub(crate) breaker: Breaker,
    pub(crate) budget: Budget,
    /// Whether the budget has a token dimension, so requests need a token estimate.
    pub(crate) counts_tokens: bool,
    /// Load-weighted latency (and attempts in flight) for `fastest`.
    pub(crate) ewma: PeakEwma,
    /// Latency to first byte, for `hedge_delay_ms: "auto"` and the p50/p99 in stats.
    pub(crate) ttfb: LatencyQuantiles,
    pub(crate) counters: Counters,
    /// The breaker's half-open probe is in flight: only its outcome may be recorded (the
    /// breaker takes the next outcome it is given as the probe's).
    probe_out: bool,
}

/// What happened to this provider's attempts.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub(crate) requests: u64,
    pub(crate) successes: u64,
    pub(crate) soft_failures: u64,
    pub(crate) hard_failures: u64,
    pub(crate) timeouts: u64,
    pub(crate) unparsable_headers: u64,
}

fn positive(value: Option<i64>) -> Option<NonZeroU64> {
    value.and_then(|v| NonZeroU64::new(v.max(0) as u64))
}

impl ProviderState {
    pub(crate) fn new(config: &ProviderConfig, health: &HealthConfig, half_life: Duration) -> Self {
        ProviderState {
            cooldown_until: None,
            breaker: Breaker::new(health),
            budget: Budget::new(
                positive(config.rpm),
                positive(config.tpm),
                positive(config.burst),
            ),
            counts_tokens: config.tpm.is_some(),
            ewma: PeakEwma::new(half_life),
            ttfb: LatencyQuantiles::new(DEFAULT_MIN_SAMPLES, DEFAULT_HALVE_AT),
            counters: Counters::default(),
            probe_out: false,
        }
    }

    /// Whether a request estimated at `tokens` may be sent now: `Ok(probe)` when it may (as the
    /// breaker's half-open probe when `probe`), else why not.
    pub(crate) fn admits(&self, now: Time, tokens: u64) -> Result<bool, Ineligible> {
        if let Some(until) = self.cooldown_until.filter(|&until| until > now) {
            return Err(Ineligible::Until(until));
        }
        self.budget.admits(now, tokens).map_err(Ineligible::Until)?;
        match self.breaker.admit(now) {
            Admit::Closed => Ok(false),
            Admit::Probe => Ok(true),
            Admit::Skip => Err(Ineligible::Open),
        }
    }

    /// `fastest`'s cost: peak-EWMA latency weighted by the attempts in flight; None if unseen.
    pub(crate) fn load_cost(&self, now: Time) -> Option<f64> {
        self.ewma.cost(now)
    }

    /// An attempt was sent.
    pub(crate) fn sent(&mut self, now: Time, tokens: u64, probe: bool) {
        self.counters.requests += 1;
        self.ewma.sent();
        self.budget.take(now, tokens);
        if probe {
            self.breaker.probe_started();
            self.probe_out = true;
        }
    }

    /// The first byte of an answer came `latency` after the send.
    pub(crate) fn first_byte(&mut self, latency: Duration) {
        self.ttfb.record(latency);
    }

    /// An attempt ended with `outcome`; `first_byte` is how long its head took, if it came,
    /// else `elapsed` is how long it had waited for one.
    pub(crate) fn ended(
        &mut self,
        now: Time,
        outcome: &AttemptOutcome,
        first_byte: Option<Duration>,
        elapsed: Duration,
        probe: bool,
    ) {
        // An attempt that never got its head (cancelled as a hedge's loser, timed out, cut off)
        // was at least `elapsed` slow: recording that lower bound keeps the peak EWMA from
        // favouring a provider that stopped answering, and the quantiles from forgetting the
        // tail that hedging cuts off (a quantile only needs to know a sample lies above it).
        self.ewma.completed(now, first_byte.unwrap_or(elapsed));
        if first_byte.is_none() && !matches!(outcome, AttemptOutcome::Unsupported { .. }) {
            self.ttfb.record(elapsed);
        }
        if probe {
            self.probe_out = false;
        }
        let judged = probe || !self.probe_out;
        // What the outcome says of the provider's health: a hard 4xx is the payload's fault,
        // a cancel nobody's.
        let healthy = match outcome {
            AttemptOutcome::Success { .. } => {
                self.counters.successes += 1;
                Some(true)
            }
            AttemptOutcome::HardStatus { .. } => {
                self.counters.hard_failures += 1;
                None
            }
            AttemptOutcome::Cancelled | AttemptOutcome::Unsupported { .. } => None,
            // It answered: whether the answer fits the schema is the classifier's business, per
            // tenant and model, not the breaker's for everyone.
            AttemptOutcome::InvalidOutput { .. } => {
                self.counters.soft_failures += 1;
                Some(true)
            }
            AttemptOutcome::TimedOut => {
                self.counters.timeouts += 1;
                Some(false)
            }
            _ => {
                self.counters.soft_failures += 1;
                Some(false)
            }
        };
        match healthy {
            Some(ok) if judged => self.breaker.record(now, ok),
            None if probe => self.breaker.probe_abandoned(),
            _ => {}
        }
    }

    /// What a response's rate-limit headers said.
    pub(crate) fn learn(&mut self, now: Time, limits: &LearnedLimits) {
        self.counters.unparsable_headers += u64::from(limits.unparsable);
        self.budget.learn(now, limits);
    }

    pub(crate) fn snapshot(&self, now: Time, name: &Arc<str>) -> ProviderStats {
        let c = self.counters;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        ProviderStats {
            name: name.clone(),
            requests: c.requests,
            successes: c.successes,
            soft_failures: c.soft_failures,
            hard_failures: c.hard_failures,
            timeouts: c.timeouts,
            unparsable_headers: c.unparsable_headers,
            in_flight: self.ewma.in_flight(),
            latency_ewma_ms: self.ewma.estimate(now).map(ms),
            latency_p50_ms: self.ttfb.quantile(0.5).map(ms),
            latency_p99_ms: self.ttfb.quantile(0.99).map(ms),
            breaker: BreakerStats::from_state(self.breaker.state(now), now),
            cooldown_until: self
                .cooldown_until
                .filter(|&until| until > now)
                .map(|until| until - now),
            budget: self.budget.snapshot(now),
            validity: Vec::new(),
        }
    }
}
