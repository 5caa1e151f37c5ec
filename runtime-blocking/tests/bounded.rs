//! Under load, cancelled hedge legs do not pile up threads or connections: 500 hedged calls
//! from 16 threads, where every loser stalls, end with the workers at most at their cap, every
//! loser disconnected, and no more connections open than the pool keeps.

use f3dx_router_blocking::Router;
use f3dx_router_core::{ChatRequest, RouterConfig};
use f3dx_router_testkit::server::{MockServer, Outcome, Step};
use serde_json::json;
use std::time::Duration;

const CALLS: usize = 500;
const CALLERS: usize = 16;
const MAX_THREADS: usize = 24;

#[test]
fn five_hundred_hedged_calls_with_stalled_losers_stay_bounded() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the mock server");
    let server = runtime.block_on(MockServer::start());
    // a stalls far longer than the test runs; b answers after 2 ms.
    server.set_default("a", Step::ok().delay(Duration::from_secs(120)));
    server.set_default("b", Step::ok().delay(Duration::from_millis(2)));
    let config = RouterConfig::from_json(
        json!({
            "providers": [
                {"name": "a", "kind": "openai", "base_url": server.base_url("a")},
                {"name": "b", "kind": "openai", "base_url": server.base_url("b")},
            ],
            "policy": "hedged", "hedge_k": 2, "hedge_delay_ms": 0,
            // Never let the breaker take a out of the race: every call must hedge.
            "health": {"consecutive_failures": 1000000, "failure_rate": 1.0},
        })
        .to_string()
        .as_bytes(),
    )
    .expect("config");
    let router = Router::builder(config)
        .max_threads(MAX_THREADS)
        .build()
        .expect("router");

    let mut peak_threads = 0;
    std::thread::scope(|s| {
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let router = router.clone();
                s.spawn(move || {
                    for _ in 0..CALLS / CALLERS + 1 {
                        let request = ChatRequest::from_json(
                            br#"{"model":"m","messages":[{"role":"user","content":"race"}]}"#
                                .to_vec(),
                        )
                        .unwrap();
                        let routed = router.chat_completions(request).expect("b serves");
                        assert_eq!(&*routed.provider_name, "b");
                    }
                })
            })
            .collect();
        while callers.iter().any(|c| !c.is_finished()) {
            peak_threads = peak_threads.max(router.threads());
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let calls = (CALLS / CALLERS + 1) * CALLERS;
    assert!(peak_threads <= MAX_THREADS, "{peak_threads} worker threads");
    // A leg still queued for a worker when b won was never sent (more callers' legs than
    // workers): a saw most calls, not necessarily all.
    let sent_to_a = server.received("a").len();
    assert!(
        sent_to_a > calls / 2 && sent_to_a <= calls,
        "a saw {sent_to_a} of {calls}"
    );
    runtime.block_on(async {
        for index in 0..sent_to_a {
            let outcome = server
                .wait_for_outcome("a", index, Duration::from_secs(10))
                .await;
            assert_eq!(
                outcome,
                Some(Outcome::ClientDisconnected),
                "a's request {index}"
            );
        }
        assert!(
            server
                .wait_for_open_connections(16, Duration::from_secs(10))
                .await,
            "{} connections still open",
            server.open_connections()
        );
    });
    assert_eq!(router.in_flight(), (0, 0));
}
