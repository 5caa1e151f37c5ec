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

// ---- the scenarios of issue 11, at the seeds README's tables come from ---------------------------

use f3dx_router_testkit::sim::scenarios::{breaker, brownout, budgets, outage, tail, weighted};

/// The seed of every table in README.md.
const TABLE_SEED: u64 = 2026;

#[test]
fn weighted_shares_match_the_weights_within_one_percent() {
    let r = weighted::weighted(TABLE_SEED, 10_000);
    println!("{}", r.table());
    for (i, expected) in r.expected().iter().enumerate() {
        assert!((r.first_share[i] - expected).abs() <= 0.01, "{}", r.table());
        assert!(
            (r.served_share[i] - expected).abs() <= 0.01,
            "{}",
            r.table()
        );
    }
    assert!(r.success_rate > 0.99, "{}", r.table());
}

#[test]
fn fastest_moves_off_a_brownout_within_2s_and_back_within_10s() {
    let r = brownout::brownout(TABLE_SEED);
    println!("{}", r.table());
    assert!(r.off_after.is_some_and(|s| s <= 2), "{}", r.table());
    assert!(r.back_after.is_some_and(|s| s <= 10), "{}", r.table());
    assert!(r.after >= 0.8 * r.baseline, "{}", r.table());
}

#[test]
fn budgets_hold_under_a_10x_burst() {
    let r = budgets::budgets(TABLE_SEED);
    println!("{}", r.table());
    for row in &r.rows {
        assert!(row.most_per_minute <= row.minute_bound(), "{}", r.table());
        assert!(row.most_per_second <= row.second_bound(), "{}", r.table());
    }
    // The waiting requests keep every budget busy through the burst: no slot left idle while
    // requests wait (the budgets admit 17 per second).
    assert!(r.sends_per_second_in_burst >= 16.5, "{}", r.table());
    assert_eq!(
        r.succeeded + r.errors.values().sum::<usize>(),
        r.requests,
        "{}",
        r.table()
    );
}

#[test]
fn a_failing_provider_is_cut_off_probed_once_per_open_period_and_readmitted() {
    let r = breaker::breaker(TABLE_SEED);
    println!("{}", r.table());
    let opened = r.opened_at().expect("the breaker opened");
    assert!(
        opened >= std::time::Duration::from_secs(10) && opened < std::time::Duration::from_secs(11),
        "{}",
        r.table()
    );
    assert_eq!(r.sent_while_open, 0, "{}", r.table());
    // One probe per open period: 5 s, then 10 s, then 20 s (doubling), the last after recovery.
    let gaps: Vec<u64> = std::iter::once(opened)
        .chain(r.probes.iter().copied())
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs())
        .collect();
    assert_eq!(gaps, [5, 10, 20], "{}", r.table());
    let closed = r.closed_at().expect("it closed again");
    assert!(
        closed >= std::time::Duration::from_secs(40),
        "{}",
        r.table()
    );
    // Traffic returns: sequential sends everything to p0 again once it is closed.
    assert!(
        r.closed_sends_per_5s[10..].iter().all(|&n| n >= 90),
        "{}",
        r.table()
    );
}

#[test]
fn the_throttle_cuts_sends_per_request_in_a_total_outage() {
    let rows = outage::outage(TABLE_SEED);
    println!("{}", outage::table(&rows));
    let (plain, throttled) = (&rows[0], &rows[1]);
    assert_eq!(plain.success_rate, 0.0);
    assert!(
        throttled.sends_per_request_later < plain.sends_per_request_later,
        "{}",
        outage::table(&rows)
    );
    assert!(
        throttled.sends_per_request_later <= 1.1,
        "{}",
        outage::table(&rows)
    );
}

#[test]
fn auto_hedge_delay_lands_near_the_hand_tuned_p95() {
    let r = tail::tail_at_scale(TABLE_SEED, 20_000);
    println!("{}", r.table(TABLE_SEED));
    let (tuned, auto) = (
        r.row("hedged k=2, delay = p95"),
        r.row("hedged k=2, delay \"auto\""),
    );
    let sequential = r.row("sequential");
    assert!(
        auto.quantile(0.999) * 4 < sequential.quantile(0.999),
        "{}",
        r.table(TABLE_SEED)
    );
    assert!(
        auto.quantile(0.999) <= tuned.quantile(0.999) * 2,
        "{}",
        r.table(TABLE_SEED)
    );
    assert!(
        auto.attempts_per_request() <= tuned.attempts_per_request() + 0.1,
        "{}",
        r.table(TABLE_SEED)
    );
}
