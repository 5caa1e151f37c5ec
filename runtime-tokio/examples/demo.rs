//! Routing policies compared over in-process mock providers (no network, a few seconds):
//!
//! ```text
//! cargo run --release -p f3dx-router-tokio --example demo
//! ```
//!
//! Three seeded mock providers, in preference order: `tail` (fast, but a heavy latency tail),
//! `ratelimited` (answers 429 with `retry-after` in bursts) and `flaky` (5xx in bursts). The same
//! workload (thousands of requests, 64 in flight, a 100 ms deadline) runs under each policy; each
//! call is timed with an `Instant` around it, and its attempts come from its `Routed` or
//! `RouteError`.

use f3dx_router_core::{ChatRequest, RouterConfig};
use f3dx_router_tokio::Router;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const REQUESTS: usize = 4_000;
const IN_FLIGHT: usize = 64;
const SEED: u64 = 7;

fn providers() -> Value {
    let ok = json!(200);
    let limited = json!({"status": 429, "retry_after": "0.02"});
    let mut rate_script = vec![ok.clone(); 12];
    rate_script.extend([limited.clone(), limited.clone(), limited]);
    let mut flaky_script = vec![ok; 8];
    flaky_script.extend([json!(502), json!(503), json!(500), json!(503)]);
    json!([
        {"name": "tail", "kind": "mock", "mock": {
            "latency": {"kind": "lognormal", "median_ms": 3, "sigma": 0.3,
                        "tail": {"probability": 0.05, "min_ms": 40, "max_ms": 250}},
        }},
        {"name": "ratelimited", "kind": "mock", "mock": {
            "latency": {"kind": "uniform", "min_ms": 2, "max_ms": 6},
            "failures": {"sequence": rate_script},
        }},
        {"name": "flaky", "kind": "mock", "mock": {
            "latency": {"kind": "lognormal", "median_ms": 5, "sigma": 0.4},
            "failures": {"sequence": flaky_script},
        }},
    ])
}

/// One call's result, as the caller sees it.
struct Sample {
    latency: Duration,
    ok: bool,
    attempts: usize,
    label: String,
}

async fn run(policy: Value) -> Vec<Sample> {
    let mut config = json!({"providers": providers(), "deadline_ms": 100});
    config
        .as_object_mut()
        .unwrap()
        .extend(policy.as_object().unwrap().clone());
    let config = RouterConfig::from_json(config.to_string().as_bytes()).expect("valid config");
    let router = Router::builder(config).seed(SEED).build().expect("router");
    let request = ChatRequest::from_value(json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "What is the tail at scale?"}],
    }))
    .unwrap();

    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (router, request, next) = (router.clone(), request.clone(), next.clone());
        workers.spawn(async move {
            let mut samples = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < REQUESTS {
                let start = Instant::now();
                let result = router.chat_completions(request.clone()).await;
                let latency = start.elapsed();
                samples.push(match result {
                    Ok(routed) => Sample {
                        latency,
                        ok: true,
                        attempts: routed.attempts.len(),
                        label: format!("served by {}", routed.provider_name),
                    },
                    Err(e) => Sample {
                        latency,
                        ok: false,
                        attempts: e.attempts().len(),
                        label: format!("error: {}", error_kind(&e.to_string())),
                    },
                });
            }
            samples
        });
    }
    let mut samples = Vec::with_capacity(REQUESTS);
    while let Some(worker) = workers.join_next().await {
        samples.extend(worker.expect("worker"));
    }
    assert_eq!(router.in_flight(), (0, 0));
    samples
}

fn error_kind(message: &str) -> &str {
    message.split(':').next().unwrap_or(message)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn report(name: &str, samples: &[Sample]) -> Duration {
    let mut latencies: Vec<_> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    let ok = samples.iter().filter(|s| s.ok).count();
    let attempts: usize = samples.iter().map(|s| s.attempts).sum();
    println!(
        "{name:<26} {:>7.2}% {:>10} {:>10} {:>10} {:>9.2}",
        100.0 * ok as f64 / samples.len() as f64,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.95)),
        ms(percentile(&latencies, 0.99)),
        attempts as f64 / samples.len() as f64,
    );
    let mut labels: BTreeMap<&str, usize> = BTreeMap::new();
    for s in samples {
        *labels.entry(&s.label).or_default() += 1;
    }
    for (label, n) in labels {
        println!("{:<28}{n:>6}  {label}", "");
    }
    percentile(&latencies, 0.95)
}

#[tokio::main]
async fn main() {
    println!(
        "{REQUESTS} requests per policy, {IN_FLIGHT} in flight, deadline 100 ms, seed {SEED}\n"
    );
    println!(
        "{:<26} {:>8} {:>10} {:>10} {:>10} {:>9}",
        "policy", "success", "p50", "p95", "p99", "attempts"
    );
    let started = Instant::now();
    let sequential = run(json!({"policy": "sequential"})).await;
    let p95 = report("sequential", &sequential);
    let hedged = run(json!({"policy": "hedged", "hedge_k": 2, "hedge_delay_ms": 0})).await;
    report("hedged k=2, delay 0", &hedged);
    // "The Tail at Scale": send the second leg only when the first is slower than its p95.
    let delay_ms = (p95.as_secs_f64() * 1e3).ceil().max(1.0) as i64;
    let tail_hedged =
        run(json!({"policy": "hedged", "hedge_k": 2, "hedge_delay_ms": delay_ms})).await;
    report(
        &format!("hedged k=2, delay {delay_ms} ms (p95)"),
        &tail_hedged,
    );
    println!("\nall policies in {:.2} s", started.elapsed().as_secs_f64());
}
