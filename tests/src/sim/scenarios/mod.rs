//! The named scenarios of issue 11, each a function of a seed returning what it measured (tested
//! against the issue's targets in `tests/tests/simulator.rs`) and a table (printed by `f3dx-sim`
//! and copied into README.md).

pub mod breaker;
pub mod brownout;
pub mod budgets;
pub mod outage;
pub mod tail;
pub mod weighted;

use f3dx_router_core::RouterConfig;

/// A mock provider `p{i}` with a `latency` model, `failures` model (JSON) and extra keys.
pub(crate) fn mock(i: usize, latency: &str, failures: &str, extra: &str) -> String {
    format!(
        r#"{{"name":"p{i}","kind":"mock"{extra},"mock":{{"latency":{latency},"failures":{failures}}}}}"#
    )
}

/// A router over `providers` with `extra` top-level keys.
pub(crate) fn router(providers: &[String], extra: &str) -> RouterConfig {
    let json = format!(r#"{{"providers":[{}]{extra}}}"#, providers.join(","));
    RouterConfig::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

/// Latency around 50 ms (uniform 40-60 ms).
pub(crate) const AROUND_50_MS: &str = r#"{"kind":"uniform","min_ms":40,"max_ms":60}"#;
