//! `fastest` under a brownout: one of three providers answers ten times slower from t = 30 s to
//! t = 60 s. Traffic should leave it (>= 90 % of its share gone) within 2 s and come back within
//! 10 s after it recovers.

use super::{AROUND_50_MS, mock, router};
use crate::sim::{Fault, FaultKind, Scenario, SimReport, run};
use std::fmt::Write;
use std::time::Duration;

const RATE_PER_S: usize = 100;
const SECONDS: usize = 90;
const BROWNOUT: (u64, u64) = (30, 60);

/// What the brownout run measured about the slow provider `p0`.
#[derive(Debug, Clone)]
pub struct BrownoutRun {
    /// p0's share of sends in each second of the run.
    pub share_by_second: Vec<f64>,
    /// Its share over the 20 s before the brownout.
    pub baseline: f64,
    /// Seconds after the brownout began until every later second of it has at most 10 % of the
    /// baseline share.
    pub off_after: Option<u64>,
    /// Seconds after the brownout ended until a second has at least half the baseline share.
    pub back_after: Option<u64>,
    /// Its share over the last 20 s, after recovery.
    pub after: f64,
    pub success_rate: f64,
}

impl BrownoutRun {
    /// The table README shows: p0's share second by second around the brownout.
    pub fn table(&self) -> String {
        let mut t = format!(
            "fastest, 3 providers (40-60 ms), {RATE_PER_S} requests/s for {SECONDS} s; p0 x10 slower from t={}s to t={}s\n\n\
             | t (s) | p0 share of sends |\n|---:|---:|\n",
            BROWNOUT.0, BROWNOUT.1
        );
        for s in (26..36).chain(56..72) {
            let _ = writeln!(t, "| {s} | {:.1}% |", self.share_by_second[s] * 100.0);
        }
        let _ = write!(
            t,
            "\nbaseline share (10-30 s) {:.1}%; >= 90% of it off p0 {} s after the brownout began; back (>= half) {} s after it ended; share 70-90 s {:.1}%; success {:.2}%",
            self.baseline * 100.0,
            self.off_after.map_or("never".to_owned(), |s| s.to_string()),
            self.back_after
                .map_or("never".to_owned(), |s| s.to_string()),
            self.after * 100.0,
            self.success_rate * 100.0
        );
        t
    }
}

fn share(report: &SimReport, from: u64, until: u64) -> f64 {
    let counts = report.sends_between(Duration::from_secs(from), Duration::from_secs(until), 3);
    counts[0] as f64 / counts.iter().sum::<usize>().max(1) as f64
}

/// Runs the brownout with `seed`.
pub fn brownout(seed: u64) -> BrownoutRun {
    let providers: Vec<String> = (0..3).map(|i| mock(i, AROUND_50_MS, "{}", "")).collect();
    let mut scenario = Scenario::steady(
        router(&providers, r#","policy":"fastest""#),
        RATE_PER_S * SECONDS,
        Duration::from_secs(1) / RATE_PER_S as u32,
    );
    scenario.faults.push(Fault {
        provider: 0,
        from: Duration::from_secs(BROWNOUT.0),
        until: Duration::from_secs(BROWNOUT.1),
        kind: FaultKind::Slow(10),
    });
    let report = run(&scenario, seed);
    let share_by_second: Vec<f64> = (0..SECONDS as u64)
        .map(|s| share(&report, s, s + 1))
        .collect();
    let baseline = share(&report, 10, 30);
    let off_after = (BROWNOUT.0..BROWNOUT.1)
        .find(|&s| (s..BROWNOUT.1).all(|t| share_by_second[t as usize] <= 0.1 * baseline))
        .map(|s| s - BROWNOUT.0);
    let back_after = (BROWNOUT.1..SECONDS as u64)
        .find(|&s| share_by_second[s as usize] >= 0.5 * baseline)
        .map(|s| s - BROWNOUT.1);
    BrownoutRun {
        share_by_second,
        baseline,
        off_after,
        back_after,
        after: share(&report, 70, 90),
        success_rate: report.success_rate(),
    }
}
