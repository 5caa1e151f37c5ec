//! What a simulated run reports: outcomes, latencies, and the logs the scenarios read (every send,
//! every change of a provider's breaker).

use f3dx_router_core::BreakerStats;
use std::collections::BTreeMap;
use std::time::Duration;

/// One attempt sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendRecord {
    /// Simulated time of the send.
    pub at: Duration,
    pub provider: usize,
    /// Whether it was its request's first attempt.
    pub first: bool,
    /// The provider's breaker as the machine's stats said just before the step that sent it.
    pub breaker: BreakerStats,
}

/// A provider's breaker as the machine's stats saw it change between steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerChange {
    /// When the change was first seen (an open breaker turns half-open by time alone, so that
    /// change is seen at the first step after it).
    pub at: Duration,
    pub provider: usize,
    pub state: BreakerStats,
}

/// What happened in a run.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub seed: u64,
    pub requests: usize,
    pub succeeded: usize,
    /// Completion latency of every request, successful or not, sorted.
    pub latencies: Vec<Duration>,
    /// Attempts sent (not counting ones the codec refused).
    pub sends: usize,
    /// Hash of the full action trace; equal seeds must give equal hashes.
    pub trace_hash: u64,
    /// Errors by kind.
    pub errors: BTreeMap<&'static str, usize>,
    /// Every send, in order.
    pub sent: Vec<SendRecord>,
    /// Successful requests per provider that served them.
    pub served: Vec<usize>,
    /// Every breaker change, in order.
    pub breaker_changes: Vec<BreakerChange>,
}

impl SimReport {
    /// Share of requests that succeeded.
    pub fn success_rate(&self) -> f64 {
        self.succeeded as f64 / self.requests.max(1) as f64
    }

    /// The `q` quantile (0..=1) of request latency.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank =
            ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }

    /// Sends per request.
    pub fn attempts_per_request(&self) -> f64 {
        self.sends as f64 / self.requests.max(1) as f64
    }

    /// Sends to each provider in `[from, until)`.
    pub fn sends_between(&self, from: Duration, until: Duration, providers: usize) -> Vec<usize> {
        let mut counts = vec![0; providers];
        for s in self.sent.iter().filter(|s| from <= s.at && s.at < until) {
            counts[s.provider] += 1;
        }
        counts
    }

    /// The most sends `provider` got in any window of `window` (a sliding count over its sends).
    pub fn most_sends_in(&self, provider: usize, window: Duration) -> usize {
        let times: Vec<Duration> = self
            .sent
            .iter()
            .filter(|s| s.provider == provider)
            .map(|s| s.at)
            .collect();
        let mut most = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= window {
                start += 1;
            }
            most = most.max(end - start + 1);
        }
        most
    }
}

/// One line per policy run, for tables.
pub fn format_row(name: &str, r: &SimReport) -> String {
    format!(
        "| {name:<34} | {:>7.2}% | {:>8.1} | {:>8.1} | {:>9.1} | {:>8.3} |",
        r.success_rate() * 100.0,
        r.quantile(0.5).as_secs_f64() * 1e3,
        r.quantile(0.99).as_secs_f64() * 1e3,
        r.quantile(0.999).as_secs_f64() * 1e3,
        r.attempts_per_request()
    )
}

/// The table header matching [`format_row`].
pub const TABLE_HEADER: &str = "| policy                             | success  | p50 (ms) | p99 (ms) | p99.9 (ms) | sends/req |\n|---|---:|---:|---:|---:|---:|";
