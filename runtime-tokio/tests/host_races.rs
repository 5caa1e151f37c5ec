//! Races between the caller and the router's timer, and runtimes coming and going, over real
//! loopback HTTP to the testkit's mock server.

use f3dx_router_core::{ChatRequest, RouteError, RouterConfig};
use f3dx_router_testkit::server::{MockServer, Step, StreamStep};
use f3dx_router_tokio::Router;
use futures_util::{FutureExt, StreamExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn request(stream: bool) -> ChatRequest {
    ChatRequest::from_value(json!({
        "model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": stream,
    }))
    .unwrap()
}

fn provider(server: &MockServer, name: &str) -> Value {
    json!({"name": name, "kind": "openai", "base_url": server.base_url(name), "api_key": "sk-test"})
}

fn config(v: Value) -> RouterConfig {
    RouterConfig::from_json(v.to_string().as_bytes()).unwrap()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Waits (driving `rt`) until the router holds nothing in flight.
fn settle(rt: &tokio::runtime::Runtime, router: &Router) {
    let start = Instant::now();
    while router.in_flight() != (0, 0) || router.open_tasks() != 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "never settled");
        rt.block_on(tokio::time::sleep(Duration::from_millis(2)));
    }
}

/// The caller drops its call after the hedge delay has passed but before the timer task could
/// fire it (the one thread was busy): feeding the cancel fires the due hedge first, whose `Send`
/// is for a request the host no longer holds. That is a legitimate race, not a bug: nothing is
/// sent, nothing panics.
#[test]
fn a_hedge_due_while_the_cancel_is_fed_sends_nothing() {
    let server = MockServer::start_blocking();
    server.script("a", vec![Step::ok().delay(Duration::from_secs(2))]);
    let rt = current_thread();
    let router = {
        let _entered = rt.enter();
        Router::new(config(json!({
            "providers": [provider(&server, "a"), provider(&server, "b")],
            "policy": "hedged", "hedge_k": 2, "hedge_delay_ms": 50,
        })))
        .unwrap()
    };
    rt.block_on(async {
        let mut call = Box::pin(router.chat_completions(request(false)));
        assert!(call.as_mut().now_or_never().is_none());
        // The hedge falls due while nothing else can run on this thread.
        std::thread::sleep(Duration::from_millis(120));
        drop(call);
    });
    settle(&rt, &router);
    assert!(server.received("b").is_empty(), "the hedge was sent");
    // And the router goes on serving.
    rt.block_on(router.chat_completions(request(false)))
        .unwrap();
}

/// A router built outside any runtime, used on one current-thread runtime (whose thread then
/// stops driving it) and then, through its own pool, on another: the timer task must follow,
/// or the second runtime's deadlines never fire.
#[test]
fn the_timer_follows_the_runtime_of_the_calls() {
    let server = MockServer::start_blocking();
    let router = Router::new(config(json!({
        "providers": [provider(&server, "a")], "deadline_ms": 100,
    })))
    .unwrap();
    let first = current_thread();
    first
        .block_on(router.chat_completions(request(false)))
        .unwrap();

    // An answer so late that only the deadline can end the call (an answer would feed the
    // machine, which then notices the deadline has passed).
    server.script("a", vec![Step::ok().delay(Duration::from_secs(30))]);
    let second = current_thread();
    let other = router.with_own_pool().unwrap();
    let outcome = second
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(5),
                other.chat_completions(request(false)),
            )
            .await
        })
        .expect("the 100 ms deadline never fired");
    assert!(
        matches!(outcome, Err(RouteError::DeadlineExceeded { .. })),
        "{outcome:?}"
    );
    drop(first);
}

/// One OpenAI SSE chunk event.
fn chunk_event(i: usize) -> String {
    let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": format!("t{i} ")}, "finish_reason": null}]});
    format!("data: {chunk}\n\n")
}

/// A stream whose caller stops reading holds a bounded number of chunks: the attempt stops
/// reading from the socket (backpressure) instead of buffering the whole stream.
#[test]
fn an_unread_stream_holds_a_bounded_number_of_chunks() {
    const EVENTS: usize = 2000;
    let server = MockServer::start_blocking();
    let mut events: Vec<String> = (0..EVENTS).map(chunk_event).collect();
    events.push("data: [DONE]\n\n".to_owned());
    server.script("a", vec![Step::streaming(StreamStep::events(events))]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let router = {
        let _entered = rt.enter();
        Router::new(config(json!({"providers": [provider(&server, "a")]}))).unwrap()
    };
    rt.block_on(async {
        let mut stream = router.chat_completions_stream(request(true));
        let first = stream.next().await.unwrap().unwrap();
        assert!(!first.is_empty());
        // The attempt runs on the workers meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = stream.held_chunks();
        assert!(held <= 128, "{held} chunks held unread");
        let mut read = 1;
        while let Some(chunk) = stream.next().await {
            chunk.unwrap();
            read += 1;
        }
        assert_eq!(read, EVENTS);
        assert_eq!(&*stream.routed().unwrap().provider_name, "a");
    });
}
