//! `weighted`: shares over 10,000 requests follow the weights within 1 %, with 1 % of calls
//! failing (and falling through by the rotation).

use super::{AROUND_50_MS, mock, router};
use crate::sim::{Scenario, run};
use std::fmt::Write;
use std::time::Duration;

/// The weights of the three providers.
pub const WEIGHTS: [u32; 3] = [5, 3, 2];

/// What the weighted run measured, per provider.
#[derive(Debug, Clone)]
pub struct WeightedRun {
    pub requests: usize,
    /// Share of first attempts (the rotation's own choice).
    pub first_share: Vec<f64>,
    /// Share of successful requests served.
    pub served_share: Vec<f64>,
    pub success_rate: f64,
}

impl WeightedRun {
    /// The share `weight / total` of each provider.
    pub fn expected(&self) -> Vec<f64> {
        let total: u32 = WEIGHTS.iter().sum();
        WEIGHTS
            .iter()
            .map(|&w| f64::from(w) / f64::from(total))
            .collect()
    }

    /// The table README shows.
    pub fn table(&self) -> String {
        let mut t = format!(
            "weighted, {} requests, weights {WEIGHTS:?}, 1% of calls fail (503)\n\n\
             | provider | weight | expected | first attempts | served |\n|---|---:|---:|---:|---:|\n",
            self.requests
        );
        for (i, expected) in self.expected().iter().enumerate() {
            let _ = writeln!(
                t,
                "| p{i} | {} | {:.2}% | {:.2}% | {:.2}% |",
                WEIGHTS[i],
                expected * 100.0,
                self.first_share[i] * 100.0,
                self.served_share[i] * 100.0
            );
        }
        let _ = write!(t, "\nsuccess {:.2}%", self.success_rate * 100.0);
        t
    }
}

/// Runs `requests` through three providers weighted 5:3:2.
pub fn weighted(seed: u64, requests: usize) -> WeightedRun {
    let providers: Vec<String> = WEIGHTS
        .iter()
        .enumerate()
        .map(|(i, w)| {
            mock(
                i,
                AROUND_50_MS,
                r#"{"probability":0.01}"#,
                &format!(r#","weight":{w}"#),
            )
        })
        .collect();
    let config = router(&providers, r#","policy":"weighted""#);
    let report = run(
        &Scenario::steady(config, requests, Duration::from_millis(2)),
        seed,
    );
    let firsts: Vec<usize> = (0..WEIGHTS.len())
        .map(|p| {
            report
                .sent
                .iter()
                .filter(|s| s.first && s.provider == p)
                .count()
        })
        .collect();
    let total_first = firsts.iter().sum::<usize>().max(1) as f64;
    let total_served = report.served.iter().sum::<usize>().max(1) as f64;
    WeightedRun {
        requests,
        first_share: firsts.iter().map(|&c| c as f64 / total_first).collect(),
        served_share: report
            .served
            .iter()
            .map(|&c| c as f64 / total_served)
            .collect(),
        success_rate: report.success_rate(),
    }
}
