//! Budgets under a 10x burst: three providers with `rpm` budgets, steady traffic they can carry,
//! then ten times that for 10 s. Nothing is sent over a budget; the excess waits within its
//! deadline for the earliest admission, else fails `RateLimited`.

use super::{AROUND_50_MS, mock, router};
use crate::sim::{Burst, Scenario, run};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// Each provider's `rpm` (default burst: a second's worth).
pub const RPM: [u64; 3] = [600, 300, 120];
const STEADY_PER_S: u64 = 12;

/// Per provider: what was sent against what its budget admits.
#[derive(Debug, Clone)]
pub struct BudgetRow {
    pub rpm: u64,
    pub burst: u64,
    pub sent: usize,
    /// Most sends in any 60 s and any 1 s.
    pub most_per_minute: usize,
    pub most_per_second: usize,
}

impl BudgetRow {
    /// What the budget admits in any 60 s: `rpm + burst`.
    pub fn minute_bound(&self) -> usize {
        (self.rpm + self.burst) as usize
    }

    /// What it admits in any 1 s: `burst + rpm / 60`.
    pub fn second_bound(&self) -> usize {
        (self.burst + self.rpm / 60) as usize
    }
}

/// The budgets run.
#[derive(Debug, Clone)]
pub struct BudgetsRun {
    pub rows: Vec<BudgetRow>,
    pub requests: usize,
    pub succeeded: usize,
    pub errors: BTreeMap<&'static str, usize>,
    /// Sends per second during the burst and the 10 s after (the budgets' total is 17/s).
    pub sends_per_second_in_burst: f64,
}

impl BudgetsRun {
    /// The table README shows.
    pub fn table(&self) -> String {
        let mut t = format!(
            "budgets, {STEADY_PER_S} requests/s for 60 s plus a 10x burst ({} requests/s) from t=20s to t=30s, deadline 10 s\n\n\
             | provider | rpm | burst | sent | most in any 60 s | rpm + burst | most in any 1 s | burst + rpm/60 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
            STEADY_PER_S * 10
        );
        for (i, r) in self.rows.iter().enumerate() {
            let _ = writeln!(
                t,
                "| p{i} | {} | {} | {} | {} | {} | {} | {} |",
                r.rpm,
                r.burst,
                r.sent,
                r.most_per_minute,
                r.minute_bound(),
                r.most_per_second,
                r.second_bound()
            );
        }
        let _ = write!(
            t,
            "\n{} requests: {} served, errors {:?}; {:.1} sends/s from t=20s to t=40s (the budgets admit {}/s)",
            self.requests,
            self.succeeded,
            self.errors,
            self.sends_per_second_in_burst,
            RPM.iter().sum::<u64>() / 60
        );
        t
    }
}

/// Runs the burst with `seed`.
pub fn budgets(seed: u64) -> BudgetsRun {
    let providers: Vec<String> = RPM
        .iter()
        .enumerate()
        .map(|(i, rpm)| mock(i, AROUND_50_MS, "{}", &format!(r#","rpm":{rpm}"#)))
        .collect();
    let mut scenario = Scenario::steady(
        router(&providers, r#","deadline_ms":10000"#),
        (STEADY_PER_S * 60) as usize,
        Duration::from_secs(1) / STEADY_PER_S as u32,
    );
    scenario.bursts.push(Burst {
        at: Duration::from_secs(20),
        requests: (STEADY_PER_S * 9 * 10) as usize,
        interarrival: Duration::from_secs(1) / (STEADY_PER_S * 9) as u32,
    });
    let report = run(&scenario, seed);
    let rows = RPM
        .iter()
        .enumerate()
        .map(|(i, &rpm)| BudgetRow {
            rpm,
            burst: (rpm / 60).max(1),
            sent: report.sent.iter().filter(|s| s.provider == i).count(),
            most_per_minute: report.most_sends_in(i, Duration::from_secs(60)),
            most_per_second: report.most_sends_in(i, Duration::from_secs(1)),
        })
        .collect();
    let in_burst = report.sends_between(Duration::from_secs(20), Duration::from_secs(40), 3);
    BudgetsRun {
        rows,
        requests: report.requests,
        succeeded: report.succeeded,
        errors: report.errors.clone(),
        sends_per_second_in_burst: in_burst.iter().sum::<usize>() as f64 / 20.0,
    }
}
