//! Retry-After cooldowns, deadlines, a thousand concurrent requests, cancellation by drop,
//! secrets kept out of every printout, and TLS.

use super::*;
use crate::server::{Step, StreamStep, reply_text};
use f3dx_router_core::TransportErrorKind;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A 429 with `retry-after: 2` cools its provider: the next request does not reach it at all
/// and is served by the next provider.
pub async fn retry_after_cools_the_provider<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::status(429).retry_after("2")]);
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    let routed = d.call(request("first")).await.expect("served");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            ("a".into(), AttemptOutcome::SoftStatus { status: 429 }),
            success("b")
        ]
    );
    let routed = d.call(request("second")).await.expect("served");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![success("b")],
        "a is cooling down: not even attempted"
    );
    assert_counts(&server, &[("a", 1), ("b", 2)]);
    assert_eq!(user_text(&server.received("b")[1]), "second");
    settled(&d).await;
}

/// The request deadline passes while every leg is waiting: `DeadlineExceeded`, and every
/// provider sees its connection closed.
pub async fn request_deadline_cancels_every_attempt<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::ok().delay(SLOW)]);
    server.script("b", vec![Step::ok().delay(SLOW)]);
    let mut cfg = providers(&server, &["a", "b"]);
    cfg["policy"] = json!("hedged");
    cfg["hedge_k"] = json!(2);
    cfg["hedge_delay_ms"] = json!(0);
    cfg["deadline_ms"] = json!(300);
    let d = D::build(config(cfg), None);
    let start = Instant::now();
    let err = d.call(request("deadline")).await.unwrap_err();
    let took = start.elapsed();
    let RouteError::DeadlineExceeded { deadline, attempts } = &err else {
        panic!("expected DeadlineExceeded, got {err:?}");
    };
    assert_eq!(*deadline, Duration::from_millis(300));
    assert!(
        took >= Duration::from_millis(290) && took < SLOW,
        "deadline fired after {took:?}"
    );
    assert_eq!(
        outcomes(attempts),
        vec![
            ("a".into(), AttemptOutcome::Cancelled),
            ("b".into(), AttemptOutcome::Cancelled)
        ]
    );
    assert_disconnected(&server, "a", 0).await;
    assert_disconnected(&server, "b", 0).await;
    settled(&d).await;
}

/// 1,000 concurrent requests over two providers, the first failing 100 of them: every request
/// is answered exactly once, the server's counts add up request by request, nothing is left in
/// flight and the pool keeps no more connections open than it may.
pub async fn thousand_concurrent_requests<D: Driver>() {
    const N: usize = 1_000;
    const FAILED: usize = 100;
    let server = MockServer::start().await;
    server.script("a", vec![Step::status(503); FAILED]);
    let mut cfg = providers(&server, &["a", "b"]);
    // 100 failures in a row would open a's breaker (and send the rest to b): this scenario
    // counts requests, so the breaker is set to judge over more than it sees.
    cfg["health"] = json!({"consecutive_failures": 1000, "failure_rate": 1.0, "window": 1024, "min_samples": 1024});
    let d = Arc::new(D::build(config(cfg), None));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let call = d.call(request(&format!("req-{i}")));
        tasks.spawn(async move { (i, call.await) });
    }
    let mut served_by: BTreeMap<usize, String> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, outcome) = joined.expect("no panic");
        let routed = outcome.unwrap_or_else(|e| panic!("req-{i} failed: {e:?}"));
        let text = completion_text(&routed);
        assert_eq!(text, reply_text(&routed.provider_name));
        assert!(
            served_by
                .insert(i, routed.provider_name.to_string())
                .is_none(),
            "req-{i} answered twice"
        );
    }
    assert_eq!(served_by.len(), N);

    let a = server.received("a");
    let b = server.received("b");
    assert_eq!((a.len(), b.len()), (N, FAILED), "requests received");
    let at_a: Vec<String> = a.iter().map(user_text).collect();
    assert_eq!(
        at_a.iter().collect::<BTreeSet<_>>().len(),
        N,
        "a saw each request once"
    );
    let failed_at_a: BTreeSet<String> = a
        .iter()
        .filter(|r| r.step.status == Some(503))
        .map(user_text)
        .collect();
    let at_b: BTreeSet<String> = b.iter().map(user_text).collect();
    assert_eq!(failed_at_a.len(), FAILED);
    assert_eq!(at_b, failed_at_a, "exactly the requests a failed went to b");
    for (i, provider) in &served_by {
        let expected = if failed_at_a.contains(&format!("req-{i}")) {
            "b"
        } else {
            "a"
        };
        assert_eq!(provider, expected, "req-{i}");
    }
    settled(&*d).await;
    assert!(
        server
            .wait_for_open_connections(D::MAX_IDLE_PER_HOST, WAIT)
            .await,
        "{} connections still open; the pool keeps at most {}",
        server.open_connections(),
        D::MAX_IDLE_PER_HOST
    );
}

/// Dropping a unary call while the provider delays: the provider sees the disconnect and the
/// driver holds nothing afterwards.
pub async fn dropping_the_future_cancels<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::ok().delay(SLOW)]);
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    let mut call = d.call(request("dropped"));
    tokio::select! {
        outcome = &mut call => panic!("the call ended before the provider answered: {outcome:?}"),
        arrived = server.wait_for_requests("a", 1, WAIT) => assert!(arrived, "a never got the request"),
    }
    assert_eq!(d.in_flight(), (1, 1));
    drop(call);
    if D::CANCELS_ON_DROP {
        assert_disconnected(&server, "a", 0).await;
    }
    settled(&d).await;
    assert_counts(&server, &[("a", 1), ("b", 0)]);
}

/// Dropping a stream half-way: the provider sees the disconnect, the caller got only the
/// chunks it read, and the driver holds nothing afterwards.
pub async fn dropping_the_stream_cancels<D: Driver>() {
    let server = MockServer::start().await;
    server.script(
        "a",
        vec![Step::streaming(
            StreamStep::default_stream().chunk_gap(Duration::from_millis(150)),
        )],
    );
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    let result = d.stream(stream_request("dropped stream"), Some(2)).await;
    assert!(result.outcome.is_none(), "{:?}", result.outcome);
    assert_eq!(result.chunks.len(), 2);
    assert_eq!(result.json()[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(
        result.ids().iter().all(|id| id.contains("-a-")),
        "{:?}",
        result.ids()
    );
    if D::CANCELS_ON_DROP {
        assert_disconnected(&server, "a", 0).await;
    }
    settled(&d).await;
    assert_counts(&server, &[("a", 1), ("b", 0)]);
}

/// The API key reaches the provider (and only the provider): no error, route, driver or stream
/// outcome the caller can print contains it.
pub async fn api_key_never_printed<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::status(401)]);
    server.script("b", vec![Step::status(500), Step::status(500)]);
    let down = format!("http://127.0.0.1:{}/v1", closed_port());
    let d = D::build(
        config(json!({"providers": [
            openai("a", server.base_url("a")),
            anthropic("b", server.base_url("b")),
            openai("c", down),
        ]})),
        None,
    );
    let hard = d.call(request("hard")).await.unwrap_err();
    assert!(
        matches!(hard, RouteError::HardFailure { status: 401, .. }),
        "{hard:?}"
    );
    // a is fine now; make it fail softly so b and c are tried too.
    server.script("a", vec![Step::status(500), Step::status(500)]);
    let all = d.call(request("all")).await.unwrap_err();
    assert!(
        matches!(all, RouteError::AllProvidersFailed { .. }),
        "{all:?}"
    );
    let stream = d.stream(stream_request("stream"), None).await;
    assert!(
        matches!(stream.ended(), Err(RouteError::AllProvidersFailed { .. })),
        "{stream:?}"
    );
    server.script("a", vec![Step::ok()]);
    let ok = d.call(request("ok")).await.expect("served");

    let printed = format!(
        "{hard} {hard:?} {all} {all:?} {stream:?} {ok:?} {d:?} {:?}",
        config(json!({"providers": [openai("a", server.base_url("a"))]}))
    );
    assert!(!printed.contains(KEY), "the key leaked: {printed}");
    assert!(!printed.contains("SECRET"), "the key leaked: {printed}");

    let a = server.received("a");
    assert!(
        a.iter()
            .all(|r| r.headers["authorization"] == format!("Bearer {KEY}"))
    );
    let b = server.received("b");
    assert_eq!(b.len(), 2);
    assert!(b.iter().all(|r| r.headers["x-api-key"] == KEY));
    settled(&d).await;
}

/// An HTTPS provider whose certificate chains to the test CA the driver was given.
pub async fn tls_with_the_test_ca<D: Driver>() {
    let server = MockServer::start().await;
    let d = D::build(
        config(json!({"providers": [openai("a", server.https_base_url("a"))]})),
        Some(&server.ca_pem()),
    );
    let routed = d.call(request("over tls")).await.expect("served");
    assert_eq!(outcomes(&routed.attempts), vec![success("a")]);
    assert_eq!(completion_text(&routed), reply_text("a"));
    let a = server.received("a");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].headers["authorization"], format!("Bearer {KEY}"));
    assert_eq!(user_text(&a[0]), "over tls");
    // And a stream over the same connection pool.
    let stream = d.stream(stream_request("tls stream"), None).await;
    assert!(stream.ended().is_ok(), "{stream:?}");
    assert_eq!(stream.text(), reply_text("a"));
    settled(&d).await;
}

/// An HTTPS provider whose CA the driver does not trust: a TLS transport failure (soft), the
/// request never reaches that provider, the next serves.
pub async fn tls_without_the_ca_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    let d = D::build(
        config(json!({"providers": [
            openai("a", server.https_base_url("a")),
            openai("b", server.base_url("b")),
        ]})),
        None,
    );
    let routed = d.call(request("untrusted")).await.expect("served");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            (
                "a".into(),
                AttemptOutcome::Transport(TransportErrorKind::Tls)
            ),
            success("b")
        ]
    );
    assert_counts(&server, &[("a", 0), ("b", 1)]);
    settled(&d).await;
}
