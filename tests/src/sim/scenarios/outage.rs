//! A total outage: every provider fails every call. Sends per request with and without the
//! retry throttle (gRPC A6), breakers on (their default) in both.

use super::{AROUND_50_MS, mock, router};
use crate::sim::{Fault, Scenario, SimReport, run};
use std::fmt::Write;
use std::time::Duration;

const PROVIDERS: usize = 3;
const REQUESTS: usize = 1000;
/// The throttle of the second row.
pub const THROTTLE: &str = r#"{"max_tokens":10,"token_ratio":0.1}"#;

/// One row: sends per request overall, and once the first 100 requests have gone.
#[derive(Debug, Clone)]
pub struct OutageRow {
    pub name: &'static str,
    pub sends_per_request: f64,
    pub sends_per_request_later: f64,
    pub success_rate: f64,
}

/// Runs the outage with and without the throttle.
pub fn outage(seed: u64) -> Vec<OutageRow> {
    [
        ("no throttle", String::new()),
        ("throttle", format!(r#","throttle":{THROTTLE}"#)),
    ]
    .into_iter()
    .map(|(name, extra)| {
        let providers: Vec<String> = (0..PROVIDERS)
            .map(|i| mock(i, AROUND_50_MS, "{}", ""))
            .collect();
        let mut scenario = Scenario::steady(
            router(&providers, &extra),
            REQUESTS,
            Duration::from_millis(50),
        );
        scenario.faults = Fault::outage(PROVIDERS);
        let report = run(&scenario, seed);
        OutageRow {
            name,
            sends_per_request: report.attempts_per_request(),
            sends_per_request_later: later(&report),
            success_rate: report.success_rate(),
        }
    })
    .collect()
}

/// Sends per request from the 101st request's arrival on (5 s at 20 requests/s).
fn later(report: &SimReport) -> f64 {
    let from = Duration::from_millis(50 * 100);
    let sends = report.sent.iter().filter(|s| s.at >= from).count();
    sends as f64 / (REQUESTS - 100) as f64
}

/// The table README shows.
pub fn table(rows: &[OutageRow]) -> String {
    let mut t = format!(
        "total outage, {PROVIDERS} providers all failing (503), {REQUESTS} requests at 20/s, breakers at their defaults\n\n\
         | router | success | sends/request | sends/request after the first 100 |\n|---|---:|---:|---:|\n"
    );
    for r in rows {
        let name = if r.name == "throttle" {
            format!("throttle {THROTTLE}")
        } else {
            r.name.to_owned()
        };
        let _ = writeln!(
            t,
            "| {name} | {:.1}% | {:.3} | {:.3} |",
            r.success_rate * 100.0,
            r.sends_per_request,
            r.sends_per_request_later
        );
    }
    t
}
