//! The contract of [`AttemptSpawner`]: a router clone made with [`Router::with_spawner`] hands
//! every HTTP attempt to the spawner, routes on what its sinks report, aborts the ones the
//! machine cancels, and hears a reset from a sink dropped unreported.

use bytes::Bytes;
use f3dx_router_core::{AttemptOutcome, ChatRequest, RouteError, RouterConfig, TransportErrorKind};
use f3dx_router_tokio::{AttemptAbort, AttemptSpawner, ExternalAttempt, Router};
use futures_util::stream;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

fn router(policy: &str) -> Router {
    let providers: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            json!({"name": name, "kind": "openai", "base_url": format!("http://{name}.invalid/v1"),
                   "api_key": "sk-test"})
        })
        .collect();
    let config = json!({"providers": providers, "policy": policy, "hedge_k": 2});
    Router::new(RouterConfig::from_json(config.to_string().as_bytes()).unwrap()).unwrap()
}

fn request() -> ChatRequest {
    ChatRequest::from_value(
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .unwrap()
}

/// A chat completion as a provider sends it.
fn completion() -> Bytes {
    Bytes::from(
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
               "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "hello"}}]})
        .to_string(),
    )
}

/// Keeps every attempt it is given, and counts aborts.
#[derive(Default)]
struct Keeper {
    attempts: Mutex<Vec<ExternalAttempt>>,
    aborts: Arc<AtomicUsize>,
}

struct CountAbort(Arc<AtomicUsize>);

impl AttemptAbort for CountAbort {
    fn abort(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl AttemptSpawner for Keeper {
    fn spawn(&self, attempt: ExternalAttempt) -> Box<dyn AttemptAbort> {
        self.attempts.lock().unwrap().push(attempt);
        Box::new(CountAbort(self.aborts.clone()))
    }
}

impl Keeper {
    fn take(&self) -> Vec<ExternalAttempt> {
        std::mem::take(&mut *self.attempts.lock().unwrap())
    }

    /// The next attempt the router hands over.
    async fn next(&self) -> ExternalAttempt {
        loop {
            if let Some(attempt) = self.take().pop() {
                return attempt;
            }
            tokio::task::yield_now().await;
        }
    }
}

/// One call through `router`, running on its own task.
fn start(router: &Router) -> tokio::task::JoinHandle<Result<f3dx_router_core::Routed, RouteError>> {
    let router = router.clone();
    tokio::spawn(async move { router.chat_completions(request()).await })
}

#[tokio::test]
async fn a_reported_response_completes_the_call_and_the_hedge_loser_is_aborted() {
    let keeper = Arc::new(Keeper::default());
    let router = router("hedged").with_spawner(keeper.clone());
    let call = start(&router);
    while keeper.attempts.lock().unwrap().len() < 2 {
        tokio::task::yield_now().await;
    }
    let mut attempts = keeper.take();
    let second = attempts.pop().unwrap();
    let first = attempts.pop().unwrap();
    assert_eq!(first.request.uri(), "http://a.invalid/v1/chat/completions");
    assert_eq!(second.request.uri(), "http://b.invalid/v1/chat/completions");
    let body = stream::iter([Ok::<_, std::io::Error>(completion())]);
    let complete = first
        .sink
        .response(200, http::HeaderMap::new(), body, |_| {
            TransportErrorKind::Other
        })
        .await;
    assert!(complete);
    let routed = call.await.unwrap().unwrap();
    assert_eq!(&*routed.provider_name, "a");
    assert_eq!(keeper.aborts.load(Ordering::SeqCst), 1);
    // The loser's sink, dropped after its abort, reports nothing the machine still hears.
    drop(second);
    assert_eq!(router.in_flight(), (0, 0));
    assert_eq!(router.open_tasks(), 0);
}

#[tokio::test]
async fn a_sink_dropped_unreported_is_a_reset_and_the_call_fails_over() {
    let keeper = Arc::new(Keeper::default());
    let router = router("sequential").with_spawner(keeper.clone());
    let call = start(&router);
    for _ in 0..2 {
        let attempt = keeper.next().await;
        drop(attempt);
    }
    match call.await.unwrap() {
        Err(RouteError::AllProvidersFailed { attempts }) => {
            let reset = AttemptOutcome::Transport(TransportErrorKind::Reset);
            let outcomes: Vec<_> = attempts.iter().map(|a| &a.outcome).collect();
            assert_eq!(outcomes, [&reset, &reset]);
        }
        other => panic!("expected every provider failed, got {other:?}"),
    }
    assert_eq!(router.in_flight(), (0, 0));
}

#[tokio::test]
async fn a_failed_attempt_is_reported_with_its_kind() {
    let keeper = Arc::new(Keeper::default());
    let router = router("sequential").with_spawner(keeper.clone());
    let call = start(&router);
    let kinds = [TransportErrorKind::Refused, TransportErrorKind::Tls];
    for kind in kinds {
        let attempt = keeper.next().await;
        attempt.sink.fail(kind);
    }
    let Err(RouteError::AllProvidersFailed { attempts }) = call.await.unwrap() else {
        panic!("expected every provider failed");
    };
    let outcomes: Vec<_> = attempts.iter().map(|a| a.outcome.clone()).collect();
    assert_eq!(outcomes, kinds.map(AttemptOutcome::Transport));
}
