//! Random but valid scenarios, one per seed: what the simulator's sweep over a thousand seeds
//! runs, with every rule checked after every step.

use super::{Burst, Fault, FaultKind, Scenario};
use f3dx_router_core::RouterConfig;
use f3dx_router_core::rng::Rng;
use std::time::Duration;

/// A random but valid scenario for `seed`: 1-5 mock providers with random latency and failure
/// models, weights, budgets, breakers and fault windows; a random policy (sequential, hedged with
/// a fixed or learned delay, weighted, fastest), throttle, deadline and workload with bursts.
pub fn random_scenario(seed: u64) -> Scenario {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let n = 1 + rng.below(5) as usize;
    // A third of the runs are healthy, so the weighted-shares rule judges long runs too.
    let healthy = rng.below(3) == 0;
    let providers: Vec<String> = (0..n)
        .map(|i| {
            let latency = match rng.below(3) {
                0 => format!(r#"{{"kind":"fixed","ms":{}}}"#, 1 + rng.below(100)),
                1 => format!(r#"{{"kind":"uniform","min_ms":1,"max_ms":{}}}"#, 2 + rng.below(200)),
                _ => format!(
                    r#"{{"kind":"lognormal","median_ms":{},"sigma":0.8,"tail":{{"probability":0.05,"min_ms":300,"max_ms":3000}}}}"#,
                    5 + rng.below(50)
                ),
            };
            let steps = [
                "429",
                r#"{"status":429,"retry_after":"1"}"#,
                r#"{"status":503,"retry_after":"2"}"#,
                "500",
                "502",
                "408",
                "400",
                "401",
                "\"reset\"",
                "\"refused\"",
                "\"timeout\"",
                "200",
            ];
            let picked: Vec<&str> = (0..1 + rng.below(4)).map(|_| steps[rng.below(steps.len() as u64) as usize]).collect();
            let failures = if healthy {
                "{}".to_owned()
            } else if rng.below(2) == 0 {
                format!(r#"{{"sequence":[{}]}}"#, picked.join(","))
            } else {
                format!(r#"{{"probability":{:.2},"steps":[{}]}}"#, rng.next_f64() * 0.6, picked.join(","))
            };
            let mut extra = String::new();
            if !healthy && rng.below(2) == 0 {
                extra += &format!(r#","timeout_ms":{}"#, 20 + rng.below(500));
            }
            if rng.below(2) == 0 {
                extra += &format!(r#","weight":{}"#, rng.below(6));
            }
            if rng.below(3) == 0 {
                extra += &format!(r#","rpm":{}"#, 1 + rng.below(3000));
            }
            if rng.below(4) == 0 {
                extra += &format!(r#","tpm":{}"#, 1 + rng.below(50_000));
            }
            if rng.below(4) == 0 {
                extra += &format!(r#","burst":{}"#, 1 + rng.below(20));
            }
            format!(
                r#"{{"name":"m{i}","kind":"mock"{extra},"mock":{{"latency":{latency},"failures":{failures}}}}}"#
            )
        })
        .collect();
    let mut extra = String::new();
    match rng.below(5) {
        0 | 1 => {}
        2 => {
            extra += &format!(
                r#","policy":"hedged","hedge_k":{}"#,
                1 + rng.below(n as u64)
            );
            match rng.below(3) {
                0 => extra += &format!(r#","hedge_delay_ms":{}"#, rng.below(100)),
                1 => extra += r#","hedge_delay_ms":"auto""#,
                _ => {}
            }
        }
        3 => extra += r#","policy":"weighted""#,
        _ => extra += r#","policy":"fastest""#,
    }
    if !healthy && rng.below(2) == 0 {
        extra += &format!(r#","deadline_ms":{}"#, 50 + rng.below(3000));
    }
    if !healthy && rng.below(3) == 0 {
        extra += &format!(r#","ttft_ms":{}"#, 10 + rng.below(500));
    }
    if rng.below(4) == 0 {
        extra += &format!(r#","max_attempts":{}"#, 1 + rng.below(n as u64));
    }
    if rng.below(2) == 0 {
        extra += &format!(
            r#","health":{{"consecutive_failures":{},"window":{},"min_samples":{},"open_ms":{},"max_open_ms":{}}}"#,
            1 + rng.below(5),
            4 + rng.below(8),
            1 + rng.below(4),
            10 + rng.below(500),
            600 + rng.below(2000),
        );
    }
    if rng.below(3) == 0 {
        extra += &format!(
            r#","throttle":{{"max_tokens":{},"token_ratio":{:.2}}}"#,
            2 + rng.below(10),
            0.1 + 0.9 * rng.next_f64()
        );
    }
    let json = format!(r#"{{"providers":[{}]{extra}}}"#, providers.join(","));
    let config = RouterConfig::from_json(json.as_bytes())
        .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{json}"));
    let faults = if healthy {
        Vec::new()
    } else {
        (0..rng.below(3))
            .map(|_| {
                let from = Duration::from_millis(rng.below(1000));
                Fault {
                    provider: rng.below(n as u64) as usize,
                    from,
                    until: from + Duration::from_millis(1 + rng.below(1000)),
                    kind: if rng.below(2) == 0 {
                        FaultKind::Fail
                    } else {
                        FaultKind::Slow(10)
                    },
                }
            })
            .collect()
    };
    let bursts = (0..rng.below(2))
        .map(|_| Burst {
            at: Duration::from_millis(rng.below(1000)),
            requests: 1 + rng.below(30) as usize,
            interarrival: Duration::from_micros(rng.below(2000)),
        })
        .collect();
    Scenario {
        config,
        requests: 10 + rng.below(30) as usize,
        interarrival: Duration::from_micros(rng.below(50_000)),
        stream_share: [0.0, 0.5, 1.0][rng.below(3) as usize],
        chunk_gap: Duration::from_micros(rng.below(20_000)),
        cancel_share: if healthy {
            0.0
        } else {
            [0.0, 0.1][rng.below(2) as usize]
        },
        bursts,
        faults,
        max_tokens: (rng.below(2) == 0).then(|| rng.below(500) as u32),
    }
}
