//! The deterministic simulator over many seeds: every rule of DESIGN.md is checked after every
//! step (see `f3dx_router_testkit::sim`), and two runs of one seed must act identically.
//!
//! `F3DX_SIM_SEED=<n>` replays one seed; `F3DX_SIM_SEEDS=<n>` sets how many consecutive seeds the
//! sweep runs (default 1000).

use f3dx_router_testkit::sim::{random_scenario, run, seed_from_env};

#[test]
fn rules_hold_over_consecutive_seeds() {
    let first = seed_from_env();
    let count: u64 = std::env::var("F3DX_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let count =
        if std::env::var("F3DX_SIM_SEED").is_ok() && std::env::var("F3DX_SIM_SEEDS").is_err() {
            1
        } else {
            count
        };
    println!(
        "simulator: seeds {first}..{} (replay one with F3DX_SIM_SEED=<seed>)",
        first.wrapping_add(count)
    );
    let mut requests = 0;
    let mut succeeded = 0;
    for seed in (0..count).map(|i| first.wrapping_add(i)) {
        let report = run(&random_scenario(seed), seed);
        requests += report.requests;
        succeeded += report.succeeded;
    }
    println!(
        "simulator: {count} seeds, {requests} requests, {succeeded} succeeded, all rules held"
    );
    assert!(requests > 0);
}

#[test]
fn same_seed_same_actions() {
    let seed = seed_from_env();
    for s in [seed, seed.wrapping_add(1), seed.wrapping_add(2)] {
        let scenario = random_scenario(s);
        let (a, b) = (run(&scenario, s), run(&scenario, s));
        assert_eq!(a.trace_hash, b.trace_hash, "seed {s}: two runs diverged");
        assert_eq!(a.latencies, b.latencies, "seed {s}");
    }
}

#[test]
fn different_seeds_differ() {
    let scenario = random_scenario(42);
    let hashes: std::collections::HashSet<u64> =
        (0..8).map(|s| run(&scenario, s).trace_hash).collect();
    assert!(hashes.len() > 1, "the seed must change the run");
}
