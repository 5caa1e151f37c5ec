//! The blocking router on two in-process mock providers (no network, no keys): sequential
//! fall-through past a provider whose every other answer is a 503 (its circuit breaker soon
//! takes it out of rotation), from 4 threads, then a stream.
//!
//! `cargo run -p f3dx-router-blocking --example quickstart`

use f3dx_router_blocking::Router;
use f3dx_router_core::{ChatRequest, RouterConfig};
use std::collections::BTreeMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = RouterConfig::from_json(
        br#"{"providers": [
            {"name": "flaky", "kind": "mock",
             "mock": {"latency": {"kind": "fixed", "ms": 3}, "failures": {"sequence": [503, 200]}}},
            {"name": "steady", "kind": "mock", "mock": {"latency": {"kind": "fixed", "ms": 5}}}
        ]}"#,
    )?;
    let router = Router::new(config)?;
    let request = || {
        ChatRequest::from_json(
            br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}]}"#.to_vec(),
        )
    };

    let served: BTreeMap<String, usize> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let router = router.clone();
                s.spawn(move || {
                    (0..25)
                        .map(|_| router.chat_completions(request().expect("valid")))
                        .map(|r| r.map(|routed| routed.provider_name.to_string()))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut served = BTreeMap::new();
        for t in threads {
            for name in t.join().expect("no panic").expect("every call served") {
                *served.entry(name).or_insert(0) += 1;
            }
        }
        served
    });
    println!("100 calls from 4 threads, served by: {served:?}");

    let mut stream = router.chat_completions_stream(ChatRequest::from_json(
        br#"{"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}"#
            .to_vec(),
    )?);
    let chunks = stream.by_ref().collect::<Result<Vec<_>, _>>()?;
    let served_by = stream.routed().map(|r| r.provider_name.to_string());
    println!("a stream of {} chunks from {served_by:?}", chunks.len());
    Ok(())
}
