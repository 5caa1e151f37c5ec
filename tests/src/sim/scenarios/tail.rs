//! "The Tail at Scale" (Dean and Barroso, CACM 2013) on providers with a heavy latency tail:
//! sequential, hedging both legs at once, hedging after the hand-tuned p95 delay, and hedging after
//! the learned delay (`hedge_delay_ms: "auto"`, no tuning).

use super::router;
use crate::sim::{Scenario, SimReport, TABLE_HEADER, format_row, run};
use std::time::Duration;

/// Four providers whose latency is mostly ~10 ms with a 1% tail of 0.5-2 s, like the servers in
/// the paper (a rare slow request dominates the 99.9th percentile).
fn tail_provider(i: usize) -> String {
    format!(
        r#"{{"name":"p{i}","kind":"mock","mock":{{"latency":{{"kind":"lognormal","median_ms":10,"sigma":0.3,"tail":{{"probability":0.01,"min_ms":500,"max_ms":2000}}}}}}}}"#
    )
}

fn scenario(policy: &str, requests: usize) -> Scenario {
    let providers: Vec<String> = (0..4).map(tail_provider).collect();
    Scenario::steady(
        router(&providers, policy),
        requests,
        Duration::from_millis(1),
    )
}

/// The four rows, and the p95 of the sequential run (the hand-tuned delay).
#[derive(Debug, Clone)]
pub struct TailRun {
    pub requests: usize,
    pub p95_ms: u128,
    pub rows: Vec<(String, SimReport)>,
}

impl TailRun {
    pub fn row(&self, name_starts: &str) -> &SimReport {
        &self
            .rows
            .iter()
            .find(|(n, _)| n.starts_with(name_starts))
            .expect("row")
            .1
    }

    /// The table README shows.
    pub fn table(&self, seed: u64) -> String {
        let mut t = format!(
            "Tail at Scale, {} requests, 4 mock providers (lognormal median 10 ms, 1% tail 0.5-2 s), seed {seed}\n\n{TABLE_HEADER}\n",
            self.requests
        );
        for (name, report) in &self.rows {
            t += &format_row(name, report);
            t += "\n";
        }
        t += &format!("\n(p95 of sequential = {} ms)", self.p95_ms);
        t
    }
}

/// Runs the four rows with `seed`.
pub fn tail_at_scale(seed: u64, requests: usize) -> TailRun {
    let sequential = run(&scenario("", requests), seed);
    // The paper's delay: the 95th percentile of the unhedged latency.
    let p95_ms = sequential.quantile(0.95).as_millis();
    let mut rows = vec![("sequential".to_owned(), sequential)];
    for (name, policy) in [
        (
            "hedged k=2, delay 0 (both at once)".to_owned(),
            r#","policy":"hedged","hedge_k":2"#.to_owned(),
        ),
        (
            format!("hedged k=2, delay = p95 ({p95_ms} ms)"),
            format!(r#","policy":"hedged","hedge_k":2,"hedge_delay_ms":{p95_ms}"#),
        ),
        (
            "hedged k=2, delay \"auto\"".to_owned(),
            r#","policy":"hedged","hedge_k":2,"hedge_delay_ms":"auto""#.to_owned(),
        ),
    ] {
        let report = run(&scenario(&policy, requests), seed);
        rows.push((name, report));
    }
    TailRun {
        requests,
        p95_ms,
        rows,
    }
}
