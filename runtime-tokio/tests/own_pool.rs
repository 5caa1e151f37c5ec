//! One router shared by blocking threads, each driving its own current-thread runtime only while
//! it waits on a call, with [`Router::with_own_pool`]: over real loopback HTTP to the testkit's
//! mock server.

use f3dx_router_core::{ChatRequest, RouteError, RouterConfig};
use f3dx_router_testkit::server::{MockServer, Step};
use f3dx_router_tokio::Router;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

fn request() -> ChatRequest {
    ChatRequest::from_value(json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
    }))
    .unwrap()
}

fn provider(server: &MockServer, name: &str) -> Value {
    json!({"name": name, "kind": "openai", "base_url": server.base_url(name), "api_key": "sk-test"})
}

/// A router built inside `home` (so its timer task runs there, as the binding's does).
fn router(home: &Runtime, config: Value) -> Router {
    let config = RouterConfig::from_json(config.to_string().as_bytes()).unwrap();
    let _entered = home.enter();
    Router::new(config).unwrap()
}

/// A blocking thread's runtime: current-thread, driven only inside `block_on`.
fn local_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Whether `provider`'s first request ended with the client going away, driving `rt` meanwhile
/// (an attempt aborted on it closes its connection only when it runs).
fn disconnected(rt: &Runtime, server: &MockServer, provider: &str) -> bool {
    rt.block_on(server.wait_for_disconnect(provider, 0, Duration::from_secs(2)))
}

fn home_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn blocking_threads_with_their_own_pools_lose_nothing() {
    let server = MockServer::start_blocking();
    let home = home_runtime();
    let shared = router(&home, json!({"providers": [provider(&server, "a")]}));
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let local = shared.with_own_pool().unwrap();
            scope.spawn(move || {
                let rt = local_runtime();
                for _ in 0..25 {
                    let routed = rt.block_on(local.chat_completions(request())).unwrap();
                    assert_eq!(&*routed.provider_name, "a");
                    // The runtime idles between calls, with its pooled connection unpolled.
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
    });
    assert_eq!(server.request_count(), 100);
    // Four pools, each reusing its connection: not a connection per call.
    assert!(
        server.connection_count() <= 8,
        "{}",
        server.connection_count()
    );
    assert_eq!(shared.in_flight(), (0, 0));
}

#[test]
fn the_deadline_fires_while_the_thread_blocks() {
    let server = MockServer::start_blocking();
    server.set_default("slow", Step::ok().delay(Duration::from_secs(5)));
    let home = home_runtime();
    let shared = router(
        &home,
        json!({"providers": [provider(&server, "slow")], "deadline_ms": 100}),
    );
    let local = shared.with_own_pool().unwrap();
    let rt = local_runtime();
    let start = Instant::now();
    let outcome = rt.block_on(local.chat_completions(request()));
    assert!(
        matches!(outcome, Err(RouteError::DeadlineExceeded { .. })),
        "{outcome:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    // The aborted attempt lives on the local runtime: it closes its connection when that
    // runtime next runs.
    assert!(disconnected(&rt, &server, "slow"));
}

#[test]
fn a_delayed_hedge_fired_by_the_timer_task_reaches_the_blocked_caller() {
    let server = MockServer::start_blocking();
    server.set_default("slow", Step::ok().delay(Duration::from_secs(5)));
    let home = home_runtime();
    let shared = router(
        &home,
        json!({
            "providers": [provider(&server, "slow"), provider(&server, "fast")],
            "policy": "hedged", "hedge_k": 2, "hedge_delay_ms": 20,
        }),
    );
    let local = shared.with_own_pool().unwrap();
    let rt = local_runtime();
    let start = Instant::now();
    let routed = rt.block_on(local.chat_completions(request())).unwrap();
    assert_eq!(&*routed.provider_name, "fast");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(disconnected(&rt, &server, "slow"));
    // One connection per leg: the cut one and the winner's.
    assert_eq!(server.connection_count(), 2);
}
