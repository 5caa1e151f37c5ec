//! The breaker: the first of three providers fails every call from t = 10 s to t = 40 s, then
//! recovers. Its breaker opens, lets one probe through per open period (5 s, doubling to 20 s),
//! and closes on the first probe after recovery; traffic returns to it.

use super::{AROUND_50_MS, mock, router};
use crate::sim::{BreakerChange, Fault, FaultKind, Scenario, run};
use f3dx_router_core::BreakerStats;
use std::fmt::Write;
use std::time::Duration;

const FAILING: (u64, u64) = (10, 40);
const SECONDS: u64 = 70;
const RATE_PER_S: u64 = 20;

/// What happened to `p0`.
#[derive(Debug, Clone)]
pub struct BreakerRun {
    /// p0's breaker changes, in order.
    pub changes: Vec<BreakerChange>,
    /// Sends to p0 while its breaker was open (as stats read just before each step).
    pub sent_while_open: usize,
    /// Sends to p0 while half-open, with their times: the probes.
    pub probes: Vec<Duration>,
    /// Sends to p0 while closed, per 5 s.
    pub closed_sends_per_5s: Vec<usize>,
    pub success_rate: f64,
}

impl BreakerRun {
    /// When p0's breaker first opened.
    pub fn opened_at(&self) -> Option<Duration> {
        self.changes
            .iter()
            .find(|c| matches!(c.state, BreakerStats::Open { .. }))
            .map(|c| c.at)
    }

    /// When it last closed.
    pub fn closed_at(&self) -> Option<Duration> {
        self.changes
            .iter()
            .rev()
            .find(|c| c.state == BreakerStats::Closed)
            .map(|c| c.at)
    }

    /// The table README shows.
    pub fn table(&self) -> String {
        let mut t = format!(
            "breaker, sequential over 3 providers, {RATE_PER_S} requests/s for {SECONDS} s; p0 fails every call from t={}s to t={}s; health open_ms 5000, max_open_ms 20000\n\n\
             | t (s) | p0's breaker |\n|---:|---|\n",
            FAILING.0, FAILING.1
        );
        for c in &self.changes {
            let state = match c.state {
                BreakerStats::Open { for_ } => format!("open for {:.1} s", for_.as_secs_f64()),
                other => other.name().replace('_', "-"),
            };
            let _ = writeln!(t, "| {:.3} | {state} |", c.at.as_secs_f64());
        }
        let _ = write!(
            t,
            "\nprobes at {:?} s; sends to p0 while open: {}; sends to p0 per 5 s while closed: {:?}; success {:.2}%",
            self.probes
                .iter()
                .map(|p| (p.as_secs_f64() * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
            self.sent_while_open,
            self.closed_sends_per_5s,
            self.success_rate * 100.0
        );
        t
    }
}

/// Runs it with `seed`.
pub fn breaker(seed: u64) -> BreakerRun {
    let providers: Vec<String> = (0..3).map(|i| mock(i, AROUND_50_MS, "{}", "")).collect();
    let mut scenario = Scenario::steady(
        router(
            &providers,
            r#","health":{"open_ms":5000,"max_open_ms":20000}"#,
        ),
        (RATE_PER_S * SECONDS) as usize,
        Duration::from_secs(1) / RATE_PER_S as u32,
    );
    scenario.faults.push(Fault {
        provider: 0,
        from: Duration::from_secs(FAILING.0),
        until: Duration::from_secs(FAILING.1),
        kind: FaultKind::Fail,
    });
    let report = run(&scenario, seed);
    let to_p0 = || report.sent.iter().filter(|s| s.provider == 0);
    let mut closed_sends_per_5s = vec![0; (SECONDS / 5) as usize];
    for s in to_p0().filter(|s| s.breaker == BreakerStats::Closed) {
        closed_sends_per_5s[(s.at.as_secs() / 5) as usize] += 1;
    }
    BreakerRun {
        changes: report
            .breaker_changes
            .iter()
            .filter(|c| c.provider == 0)
            .copied()
            .collect(),
        sent_while_open: to_p0()
            .filter(|s| matches!(s.breaker, BreakerStats::Open { .. }))
            .count(),
        probes: to_p0()
            .filter(|s| s.breaker == BreakerStats::HalfOpen)
            .map(|s| s.at)
            .collect(),
        closed_sends_per_5s,
        success_rate: report.success_rate(),
    }
}
