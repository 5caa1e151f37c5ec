//! The simulator from the command line: each scenario of issue 11 prints its table (the ones in
//! README.md), from `F3DX_SIM_SEED` (or a fresh seed, printed first).
//!
//! - `tail-at-scale [requests]`: "The Tail at Scale" (Dean and Barroso, CACM 2013), hedging on
//!   providers with a heavy latency tail, with a hand-tuned and a learned (`"auto"`) delay;
//! - `weighted [requests]`: shares by weight; `brownout`: `fastest` moving off a slow provider and
//!   back; `budgets`: a 10x burst against `rpm` budgets; `breaker`: a provider failing for 30 s;
//!   `outage`: every provider down, with and without the retry throttle;
//! - `seeds N`: N consecutive random scenarios, every rule checked.

use f3dx_router_testkit::sim::scenarios::{breaker, brownout, budgets, outage, tail, weighted};
use f3dx_router_testkit::sim::{random_scenario, run, seed_from_env};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seed = seed_from_env();
    println!("seed {seed}");
    let count = |default: usize| args.get(1).and_then(|s| s.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("tail-at-scale") | None => {
            println!("{}", tail::tail_at_scale(seed, count(100_000)).table(seed))
        }
        Some("weighted") => println!("{}", weighted::weighted(seed, count(10_000)).table()),
        Some("brownout") => println!("{}", brownout::brownout(seed).table()),
        Some("budgets") => println!("{}", budgets::budgets(seed).table()),
        Some("breaker") => println!("{}", breaker::breaker(seed).table()),
        Some("outage") => println!("{}", outage::table(&outage::outage(seed))),
        Some("seeds") => {
            for s in (0..count(1000) as u64).map(|i| seed.wrapping_add(i)) {
                let started = std::time::Instant::now();
                let r = run(&random_scenario(s), s);
                println!(
                    "seed {s}: {} requests, {} sends, {:.1}% ok, errors {:?}, {:.1} ms",
                    r.requests,
                    r.sends,
                    r.success_rate() * 100.0,
                    r.errors,
                    started.elapsed().as_secs_f64() * 1e3
                );
            }
        }
        Some(other) => {
            eprintln!(
                "unknown command {other:?}; use tail-at-scale [requests], weighted [requests], \
                 brownout, budgets, breaker, outage, or seeds [n]"
            );
            std::process::exit(2);
        }
    }
}
