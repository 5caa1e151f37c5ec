//! A snapshot of what the machine knows about each provider, for `stats()` in every driver.

use crate::state::budget::BudgetSnapshot;
use crate::state::health::BreakerState;
use crate::time::Time;
use std::sync::Arc;
use std::time::Duration;

/// One provider, as [`crate::RouterMachine::stats`] sees it at a given time.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProviderStats {
    /// The provider's configured name.
    pub name: Arc<str>,
    /// Attempts sent to it.
    pub requests: u64,
    /// Attempts that succeeded.
    pub successes: u64,
    /// Soft failures other than timeouts (408/429/5xx, transport errors, bad bodies, broken streams).
    pub soft_failures: u64,
    /// Hard failures (4xx other than 408/429): the payload's fault, not counted against health.
    pub hard_failures: u64,
    /// Attempts whose `timeout_ms` or `ttft_ms` expired.
    pub timeouts: u64,
    /// Rate-limit headers it sent that did not parse (ignored).
    pub unparsable_headers: u64,
    /// Attempts in flight now.
    pub in_flight: u32,
    /// The peak-EWMA latency `fastest` uses, if any answer was seen.
    pub latency_ewma_ms: Option<f64>,
    /// Median latency to first byte, once there are enough samples.
    pub latency_p50_ms: Option<f64>,
    /// 99th percentile latency to first byte, likewise.
    pub latency_p99_ms: Option<f64>,
    /// The circuit breaker.
    pub breaker: BreakerStats,
    /// How long a `Retry-After` still keeps it out.
    pub cooldown_until: Option<Duration>,
    /// What is left of its budget (configured and learned).
    pub budget: BudgetSnapshot,
    /// Its validity per (tenant, model) with outcomes in the window, sorted.
    pub validity: Vec<crate::validity::ValidityStats>,
}

/// The breaker's state, with how long an open breaker stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerStats {
    /// Sends go through.
    Closed,
    /// Skipped without sending for this long, then half-open.
    Open {
        /// Time until half-open.
        for_: Duration,
    },
    /// One probe may go (or is in flight).
    HalfOpen,
}

impl BreakerStats {
    pub(crate) fn from_state(state: BreakerState, now: Time) -> Self {
        match state {
            BreakerState::Closed => BreakerStats::Closed,
            BreakerState::Open { until } => BreakerStats::Open { for_: until - now },
            BreakerState::HalfOpen => BreakerStats::HalfOpen,
        }
    }

    /// `"closed"`, `"open"` or `"half_open"`, as Python and the CLI print it.
    pub fn name(self) -> &'static str {
        match self {
            BreakerStats::Closed => "closed",
            BreakerStats::Open { .. } => "open",
            BreakerStats::HalfOpen => "half_open",
        }
    }
}

/// Counters of the machine itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MachineStats {
    /// Inputs for attempts or requests the machine no longer knows (late, after a cancel or a
    /// completion): ignored, and counted here so they are visible.
    pub ignored_inputs: u64,
    /// Requests and attempts in flight.
    pub requests_in_flight: usize,
    /// Attempts in flight.
    pub attempts_in_flight: usize,
    /// Timers armed.
    pub timers: usize,
    /// Reports ([`crate::Input::Feedback`]) for requests the machine did not remember: ignored.
    pub ignored_feedback: u64,
    /// Distinct `response_format`/`tools` schemas compiled (a request with a schema seen
    /// before compiles nothing).
    pub schemas_compiled: u64,
}
