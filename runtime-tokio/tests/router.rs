//! End-to-end tests of the tokio driver over in-process `mock` providers (plus a closed loopback
//! port and a silent TCP sink for the transport paths). The HTTP conformance suite lives in the
//! testkit.

use f3dx_router_core::{AttemptOutcome, ChatRequest, RouteError, RouterConfig, TransportErrorKind};
use f3dx_router_tokio::{Router, RouterBuildError, RouterCallError};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn router(config: Value) -> Router {
    let config = RouterConfig::from_json(config.to_string().as_bytes()).expect("valid config");
    Router::new(config).expect("router builds")
}

fn mock(name: &str, mock: Value) -> Value {
    json!({"name": name, "kind": "mock", "mock": mock})
}

fn fixed(ms: u64) -> Value {
    json!({"kind": "fixed", "ms": ms})
}

fn request(stream: bool) -> ChatRequest {
    ChatRequest::from_value(json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "say hello"}],
        "stream": stream,
    }))
    .unwrap()
}

fn outcomes(attempts: &[f3dx_router_core::AttemptRecord]) -> Vec<(String, AttemptOutcome)> {
    attempts
        .iter()
        .map(|a| (a.provider_name.to_string(), a.outcome.clone()))
        .collect()
}

/// Waits until the router holds nothing in flight (attempt tasks are aborted asynchronously).
async fn settled(router: &Router) {
    let start = Instant::now();
    while router.in_flight() != (0, 0) || router.open_tasks() != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "router never settled: {:?} machine, {} tasks",
            router.in_flight(),
            router.open_tasks()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_success() {
    let r = router(
        json!({"providers": [mock("a", json!({"latency": fixed(1), "reply": "hi there"}))]}),
    );
    let routed = r.chat_completions(request(false)).await.unwrap();
    assert_eq!(&*routed.provider_name, "a");
    let body: Value = serde_json::from_slice(&routed.body).unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "hi there");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![("a".into(), AttemptOutcome::Success { status: 200 })]
    );
    settled(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_on_a_scripted_503() {
    let r = router(json!({"providers": [
        mock("a", json!({"latency": fixed(1), "failures": {"sequence": [503]}})),
        mock("b", json!({"latency": fixed(1)})),
    ]}));
    let routed = r.chat_completions(request(false)).await.unwrap();
    assert_eq!(&*routed.provider_name, "b");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            ("a".into(), AttemptOutcome::SoftStatus { status: 503 }),
            ("b".into(), AttemptOutcome::Success { status: 200 }),
        ]
    );
    settled(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_400_surfaces_and_goes_nowhere_else() {
    let r = router(json!({"providers": [
        mock("a", json!({"latency": fixed(1), "failures": {"sequence": [400]}})),
        mock("b", json!({"latency": fixed(1)})),
    ]}));
    let err = r.chat_completions(request(false)).await.unwrap_err();
    let RouteError::HardFailure {
        provider,
        status,
        body,
        attempts,
    } = &err
    else {
        panic!("expected a hard failure, got {err:?}");
    };
    assert_eq!((&**provider, *status), ("a", 400));
    assert!(serde_json::from_slice::<Value>(body).unwrap()["error"].is_object());
    assert_eq!(
        outcomes(attempts),
        vec![("a".into(), AttemptOutcome::HardStatus { status: 400 })]
    );
    settled(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedged_sends_both_at_once_and_the_first_wins() {
    let r = router(json!({
        "policy": "hedged", "hedge_k": 2, "hedge_delay_ms": 0,
        "providers": [mock("slow", json!({"latency": fixed(2_000)})), mock("fast", json!({"latency": fixed(5)}))],
    }));
    let start = Instant::now();
    let routed = r.chat_completions(request(false)).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(1_000));
    assert_eq!(&*routed.provider_name, "fast");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            ("slow".into(), AttemptOutcome::Cancelled),
            ("fast".into(), AttemptOutcome::Success { status: 200 }),
        ]
    );
    // The loser's task was aborted, not left sleeping.
    settled(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedge_delay_fires_the_second_leg_from_the_timer_task() {
    let r = router(json!({
        "policy": "hedged", "hedge_k": 2, "hedge_delay_ms": 30,
        "providers": [mock("slow", json!({"latency": fixed(2_000)})), mock("fast", json!({"latency": fixed(1)}))],
    }));
    let start = Instant::now();
    let routed = r.chat_completions(request(false)).await.unwrap();
    let took = start.elapsed();
    assert_eq!(&*routed.provider_name, "fast");
    assert!(took >= Duration::from_millis(30), "{took:?}");
    assert!(took < Duration::from_millis(1_000), "{took:?}");
    settled(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_fires_without_any_input() {
    let r = router(json!({
        "deadline_ms": 50,
        "providers": [mock("a", json!({"latency": fixed(5_000)}))],
    }));
    let start = Instant::now();
    let err = r.chat_completions(request(false)).await.unwrap_err();
    assert!(
        matches!(err, RouteError::DeadlineExceeded { .. }),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_millis(1_000));
    settled(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_attempt_timeout_fails_over() {
    let r = router(json!({"providers": [
        {"name": "a", "kind": "mock", "timeout_ms": 30, "mock": {"latency": fixed(5_000)}},
        mock("b", json!({"latency": fixed(1)})),
    ]}));
    let routed = r.chat_completions(request(false)).await.unwrap();
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            ("a".into(), AttemptOutcome::TimedOut),
            ("b".into(), AttemptOutcome::Success { status: 200 }),
        ]
    );
    settled(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_returns_chunks_then_the_route() {
    let r = router(json!({"providers": [
        mock("a", json!({"latency": fixed(1), "failures": {"sequence": [503]}})),
        mock("b", json!({"latency": fixed(1), "reply": "one two three"})),
    ]}));
    let mut stream = r.chat_completions_stream(request(true));
    assert!(stream.routed().is_none());
    let mut text = String::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        let chunk: Value = serde_json::from_slice(&chunk.unwrap()).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        if let Some(content) = chunk["choices"][0]["delta"]["content"].as_str() {
            text.push_str(content);
        }
        chunks += 1;
    }
    assert!(chunks >= 4, "{chunks} chunks");
    assert_eq!(
        text.split_whitespace().collect::<Vec<_>>(),
        ["one", "two", "three"]
    );
    assert!(stream.is_finished());
    let routed = stream.routed().expect("routed after the end");
    assert_eq!(&*routed.provider_name, "b");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            ("a".into(), AttemptOutcome::SoftStatus { status: 503 }),
            ("b".into(), AttemptOutcome::Success { status: 200 }),
        ]
    );
    assert!(stream.next().await.is_none());
    settled(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_stream_ends_with_its_error() {
    let r = router(
        json!({"providers": [mock("a", json!({"latency": fixed(1), "failures": {"sequence": [401]}}))]}),
    );
    let items: Vec<_> = r.chat_completions_stream(request(true)).collect().await;
    assert_eq!(items.len(), 1);
    assert!(matches!(
        items[0],
        Err(RouteError::HardFailure { status: 401, .. })
    ));
    settled(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_future_cancels_every_attempt() {
    let r = router(json!({
        "policy": "hedged", "hedge_k": 2, "hedge_delay_ms": 0,
        "providers": [mock("a", json!({"latency": fixed(60_000)})), mock("b", json!({"latency": fixed(60_000)}))],
    }));
    let call = tokio::time::timeout(
        Duration::from_millis(50),
        r.chat_completions(request(false)),
    );
    assert!(call.await.is_err(), "the call should still be pending");
    settled(&r).await;

    // The same for a stream dropped half-way (before any chunk).
    let stream = r.chat_completions_stream(request(true));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(r.in_flight(), (1, 2));
    assert_eq!(r.open_tasks(), 2);
    drop(stream);
    settled(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_requests_none_lost() {
    let r = router(json!({
        "policy": "hedged", "hedge_k": 2, "hedge_delay_ms": 2,
        "providers": [
            mock("flaky", json!({
                "latency": {"kind": "uniform", "min_ms": 0, "max_ms": 5},
                "failures": {"probability": 0.3, "steps": [503, 500, "reset"]},
            })),
            mock("steady", json!({"latency": {"kind": "uniform", "min_ms": 0, "max_ms": 5}})),
        ],
    }));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1_000 {
        let r = r.clone();
        tasks.spawn(async move {
            let stream = i % 4 == 0;
            if stream {
                let mut s = r.chat_completions_stream(request(true));
                let mut n = 0;
                while let Some(item) = s.next().await {
                    item.expect("stream chunk");
                    n += 1;
                }
                assert!(n > 0);
                s.routed().expect("routed").provider_name.clone()
            } else {
                r.chat_completions(request(false))
                    .await
                    .expect("served")
                    .provider_name
            }
        });
    }
    let mut served = 0;
    while let Some(result) = tasks.join_next().await {
        let provider = result.expect("no panic");
        assert!(["flaky", "steady"].contains(&&*provider));
        served += 1;
    }
    assert_eq!(served, 1_000);
    settled(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_a_transport_failure_then_the_mock_serves() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let r = router(json!({"providers": [
        {"name": "down", "kind": "openai", "base_url": format!("http://127.0.0.1:{port}/v1"), "api_key": "sk-test-closed"},
        mock("a", json!({"latency": fixed(1)})),
    ]}));
    let routed = r.chat_completions(request(false)).await.unwrap();
    assert_eq!(&*routed.provider_name, "a");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            (
                "down".into(),
                AttemptOutcome::Transport(TransportErrorKind::Refused)
            ),
            ("a".into(), AttemptOutcome::Success { status: 200 }),
        ]
    );
    settled(&r).await;
    // The stats say the same, per provider in config order, and clones share them.
    let stats = r.clone().stats();
    let names: Vec<&str> = stats.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["down", "a"]);
    let counts = |s: &f3dx_router_tokio::ProviderStats| {
        (s.requests, s.successes, s.soft_failures, s.in_flight)
    };
    assert_eq!(counts(&stats[0]), (1, 0, 1, 0));
    assert_eq!(counts(&stats[1]), (1, 1, 0, 0));
    assert!(stats[1].latency_ewma_ms.is_some());
    assert_eq!(stats[0].breaker, f3dx_router_tokio::BreakerStats::Closed);
    assert_eq!(stats[0].cooldown_until, None);
}

/// A TCP sink that reads the request and never answers: the attempt times out, the machine
/// cancels it, and the sink must see the connection close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_http_attempt_drops_its_connection() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut received = Vec::new();
        loop {
            let n = socket.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return received;
            }
            received.extend_from_slice(&buf[..n]);
        }
    });
    let r = router(json!({"providers": [
        {"name": "silent", "kind": "openai", "base_url": format!("http://127.0.0.1:{port}/v1"),
         "api_key": "sk-test-silent", "timeout_ms": 50},
        mock("a", json!({"latency": fixed(1)})),
    ]}));
    let routed = r.chat_completions(request(false)).await.unwrap();
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            ("silent".into(), AttemptOutcome::TimedOut),
            ("a".into(), AttemptOutcome::Success { status: 200 }),
        ]
    );
    let received = tokio::time::timeout(Duration::from_secs(5), sink)
        .await
        .expect("the sink saw the disconnect")
        .unwrap();
    let head = String::from_utf8_lossy(&received);
    assert!(
        head.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"),
        "{head}"
    );
    settled(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_that_are_not_chat_requests_are_typed_errors() {
    let r = router(json!({"providers": [mock("a", json!({}))]}));
    let err = r
        .chat_completions_json(json!({"model": "m", "messages": []}))
        .await
        .unwrap_err();
    assert!(matches!(err, RouterCallError::Request(_)), "{err:?}");
    let ok = r
        .chat_completions_json(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await
        .unwrap();
    assert_eq!(&*ok.provider_name, "a");
    assert_eq!(r.in_flight(), (0, 0));
}

#[test]
fn build_errors_are_typed() {
    let config = |extra: Value| {
        let mut p =
            json!({"name": "x", "kind": "openai", "base_url": "https://example.invalid/v1"});
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        RouterConfig::from_json(json!({"providers": [p]}).to_string().as_bytes()).unwrap()
    };
    let err =
        Router::new(config(json!({"api_key_env": "F3DX_TEST_SURELY_UNSET_VAR"}))).unwrap_err();
    assert!(matches!(err, RouterBuildError::Config(_)), "{err:?}");
    assert!(
        err.to_string().contains("F3DX_TEST_SURELY_UNSET_VAR"),
        "{err}"
    );

    let err = Router::builder(config(json!({})))
        .add_root_certificate_pem("not a certificate")
        .build()
        .unwrap_err();
    assert!(matches!(err, RouterBuildError::Certificate(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_never_reach_debug_or_error_output() {
    const KEY: &str = "sk-live-THIS-MUST-NOT-LEAK";
    // A key read from the environment: cargo sets CARGO_MANIFEST_DIR for test runs (and
    // `set_var` would need unsafe code, which the workspace forbids).
    const ENV_KEY: &str = env!("CARGO_MANIFEST_DIR");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = RouterConfig::from_json(
        json!({"providers": [
            {"name": "down", "kind": "openai", "base_url": format!("http://127.0.0.1:{port}/v1"), "api_key": KEY},
            {"name": "down2", "kind": "anthropic", "base_url": format!("http://127.0.0.1:{port}/v1"),
             "api_key_env": "CARGO_MANIFEST_DIR"},
        ]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let builder = Router::builder(config.clone());
    let r = Router::new(config.clone()).unwrap();
    let err = r.chat_completions(request(false)).await.unwrap_err();
    assert!(
        matches!(err, RouteError::AllProvidersFailed { .. }),
        "{err:?}"
    );
    let stream_items: Vec<_> = r.chat_completions_stream(request(true)).collect().await;
    let call_err = r
        .chat_completions_json(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await
        .unwrap_err();
    let printed = format!(
        "{config:?} {builder:?} {r:?} {err:?} {err} {stream_items:?} {call_err:?} {call_err}"
    );
    for key in [KEY, ENV_KEY, "MUST-NOT-LEAK"] {
        assert!(!printed.contains(key), "key leaked: {printed}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn works_on_a_current_thread_runtime() {
    let r = router(json!({
        "policy": "hedged", "hedge_k": 2, "hedge_delay_ms": 10, "deadline_ms": 5_000,
        "providers": [mock("slow", json!({"latency": fixed(1_000)})), mock("fast", json!({"latency": fixed(1)}))],
    }));
    let routed = r.chat_completions(request(false)).await.unwrap();
    assert_eq!(&*routed.provider_name, "fast");
    let chunks: Vec<_> = r.chat_completions_stream(request(true)).collect().await;
    assert!(chunks.iter().all(Result::is_ok) && !chunks.is_empty());
    settled(&r).await;
}

/// A TLS endpoint that completes the handshake, reads the request head and hangs up.
async fn tls_hang_up(
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
) -> (u16, tokio::task::JoinHandle<String>) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::AsyncReadExt;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let Ok(mut tls) = acceptor.accept(socket).await else {
            return "handshake failed".to_owned();
        };
        let mut buf = vec![0u8; 16 * 1024];
        let n = tls.read(&mut buf).await.unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_root_is_trusted_and_an_unknown_one_is_a_tls_failure() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let config = |port: u16| {
        RouterConfig::from_json(
            json!({"providers": [
                {"name": "tls", "kind": "openai", "base_url": format!("https://127.0.0.1:{port}/v1"), "api_key": "sk-tls"},
                mock("a", json!({"latency": fixed(1)})),
            ]})
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    };

    // Trusted: the handshake completes and the request arrives; the hang-up is a reset.
    let (port, server) = tls_hang_up(&cert).await;
    let r = Router::builder(config(port))
        .add_root_certificate_pem(&cert.cert.pem())
        .build()
        .unwrap();
    let routed = r.chat_completions(request(false)).await.unwrap();
    let seen = server.await.unwrap();
    assert!(
        seen.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"),
        "{seen}"
    );
    assert!(
        seen.to_ascii_lowercase()
            .contains("authorization: bearer sk-tls")
    );
    assert_eq!(
        outcomes(&routed.attempts)[0],
        (
            "tls".into(),
            AttemptOutcome::Transport(TransportErrorKind::Reset)
        )
    );

    // Not trusted: the certificate is refused.
    let (port, server) = tls_hang_up(&cert).await;
    let r = Router::new(config(port)).unwrap();
    let routed = r.chat_completions(request(false)).await.unwrap();
    assert_eq!(&*routed.provider_name, "a");
    assert_eq!(
        outcomes(&routed.attempts)[0],
        (
            "tls".into(),
            AttemptOutcome::Transport(TransportErrorKind::Tls)
        )
    );
    assert_eq!(server.await.unwrap(), "handshake failed");
    settled(&r).await;
}

/// A listener whose accept queue is full drops new SYNs: the connect timeout fires, and it is
/// reported as a transport timeout. (Linux drops SYNs on a full queue; other kernels may refuse.)
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_timeout_is_a_transport_timeout() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let _listener = socket.listen(0).unwrap();
    // Fill the accept queue; these are never accepted.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(100), connect).await {
            fillers.push(s);
        }
    }
    let config = RouterConfig::from_json(
        json!({"providers": [
            {"name": "full", "kind": "openai", "base_url": format!("http://127.0.0.1:{port}/v1")},
            mock("a", json!({"latency": fixed(1)})),
        ]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let r = Router::builder(config)
        .connect_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let routed = r.chat_completions(request(false)).await.unwrap();
    assert_eq!(
        outcomes(&routed.attempts)[0],
        (
            "full".into(),
            AttemptOutcome::Transport(TransportErrorKind::Timeout)
        )
    );
    settled(&r).await;
}

/// A router outlives the runtime it was first used on (one router shared by several tests):
/// its timer task is started again on the next runtime.
#[test]
fn a_router_outlives_its_first_runtime() {
    let r = router(json!({
        "policy": "hedged", "hedge_k": 2, "hedge_delay_ms": 20, "deadline_ms": 2_000,
        "providers": [mock("slow", json!({"latency": fixed(5_000)})), mock("fast", json!({"latency": fixed(1)}))],
    }));
    for _ in 0..2 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let routed = runtime
            .block_on(r.chat_completions(request(false)))
            .expect("the hedge timer fired");
        assert_eq!(&*routed.provider_name, "fast");
        runtime.block_on(settled(&r));
    }
}
