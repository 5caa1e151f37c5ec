//! The simulator from the command line.
//!
//! `f3dx-sim tail-at-scale` reproduces the hedging result of "The Tail at Scale" (Dean and Barroso,
//! CACM 2013) on providers with a heavy latency tail. `f3dx-sim seeds N` runs N consecutive random
//! scenarios from `F3DX_SIM_SEED` (or a fresh seed) and checks every rule.

use f3dx_router_core::RouterConfig;
use f3dx_router_testkit::sim::{
    Scenario, TABLE_HEADER, format_row, random_scenario, run, seed_from_env,
};
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
    let json = format!(r#"{{"providers":[{}]{policy}}}"#, providers.join(","));
    Scenario::steady(
        RouterConfig::from_json(json.as_bytes()).expect("valid"),
        requests,
        Duration::from_millis(1),
    )
}

fn tail_at_scale(seed: u64, requests: usize) {
    let sequential = run(&scenario("", requests), seed);
    // The paper's delay: the 95th percentile of the unhedged latency.
    let p95 = sequential.quantile(0.95).as_millis();
    println!(
        "Tail at Scale, {requests} requests, 4 mock providers (lognormal median 10 ms, 1% tail 0.5-2 s), seed {seed}\n"
    );
    println!("{TABLE_HEADER}");
    println!("{}", format_row("sequential", &sequential));
    let policies = [
        (
            "hedged k=2, delay 0 (both at once)",
            r#","policy":"hedged","hedge_k":2"#.to_owned(),
        ),
        (
            "hedged k=2, delay = p95",
            format!(r#","policy":"hedged","hedge_k":2,"hedge_delay_ms":{p95}"#),
        ),
    ];
    for (name, policy) in policies {
        println!(
            "{}",
            format_row(name, &run(&scenario(&policy, requests), seed))
        );
    }
    println!("\n(p95 of sequential = {p95} ms)");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seed = seed_from_env();
    println!("seed {seed}");
    match args.first().map(String::as_str) {
        Some("tail-at-scale") | None => {
            let requests = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
            tail_at_scale(seed, requests);
        }
        Some("seeds") => {
            let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
            for s in (0..n).map(|i| seed.wrapping_add(i)) {
                let r = run(&random_scenario(s), s);
                println!(
                    "seed {s}: {} requests, {:.1}% ok, errors {:?}",
                    r.requests,
                    r.success_rate() * 100.0,
                    r.errors
                );
            }
        }
        Some(other) => {
            eprintln!("unknown command {other:?}; use `tail-at-scale [requests]` or `seeds [n]`");
            std::process::exit(2);
        }
    }
}
