//! A panic under the router's lock fails the request it happened in, with a typed internal
//! error, and the router keeps serving; it never poisons the router nor aborts the process.
//!
//! Core has no answer that makes the machine panic, so a test-only transport stands in for it:
//! it panics when the host asks it to start a fail-over attempt, which the host does while it
//! feeds the first attempt's answer (under the lock, inside that attempt's sink). Before the
//! host caught such panics, the unwind dropped the sink, whose `Drop` fed the poisoned router
//! again: a panic in a destructor during unwinding, which aborts the process (a Python
//! interpreter with it). This file is its own test binary so that an abort shows as a failure.

use bytes::Bytes;
use f3dx_router_core::{ChatRequest, RouteError, RouterConfig, TransportErrorKind};
use f3dx_router_tokio::{AttemptAbort, AttemptSpawner, ExternalAttempt, Router};
use http::HeaderMap;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Answers provider `a` with 500 and `b` with a completion, on a tokio task; the second attempt
/// it is asked to start panics instead.
struct PanicsOnSecondAttempt(AtomicUsize);

struct NoAbort;

impl AttemptAbort for NoAbort {
    fn abort(&self) {}
}

impl AttemptSpawner for PanicsOnSecondAttempt {
    fn spawn(&self, attempt: ExternalAttempt) -> Box<dyn AttemptAbort> {
        if self.0.fetch_add(1, Ordering::Relaxed) == 1 {
            panic!("test transport: panic inside the host's feed");
        }
        let ExternalAttempt { request, sink } = attempt;
        let (status, body) = if request.uri().path().starts_with("/a/") {
            (
                500,
                json!({"error": {"message": "boom", "type": "server_error"}}),
            )
        } else {
            (
                200,
                json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": "hi"}}]}),
            )
        };
        let body = Bytes::from(body.to_string());
        tokio::spawn(async move {
            let body = futures_util::stream::iter([Ok::<_, Infallible>(body)]);
            sink.response(status, HeaderMap::new(), body, |_| {
                TransportErrorKind::Reset
            })
            .await;
        });
        Box::new(NoAbort)
    }
}

#[tokio::test]
async fn a_panic_under_the_lock_fails_that_request_and_the_router_keeps_serving() {
    let provider = |name: &str| {
        json!({"name": name, "kind": "openai", "base_url": format!("http://127.0.0.1:9/{name}"),
               "api_key": "sk-test"})
    };
    let config = json!({"providers": [provider("a"), provider("b")]});
    let config = RouterConfig::from_json(config.to_string().as_bytes()).unwrap();
    let router = Router::new(config)
        .unwrap()
        .with_spawner(Arc::new(PanicsOnSecondAttempt(AtomicUsize::new(0))));
    let request = || {
        ChatRequest::from_value(json!({
            "model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
        }))
        .unwrap()
    };

    let first = router.chat_completions(request()).await;
    assert!(
        matches!(first, Err(RouteError::Internal { .. })),
        "{first:?}"
    );
    assert_eq!(router.in_flight(), (0, 0));

    // Not poisoned: the next request fails over from a's 500 to b as usual.
    let second = router.chat_completions(request()).await.unwrap();
    assert_eq!(&*second.provider_name, "b");
    assert_eq!(router.in_flight(), (0, 0));
    assert_eq!(router.open_tasks(), 0);
}
