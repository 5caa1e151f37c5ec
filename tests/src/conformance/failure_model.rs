//! Every row of the failure model, one provider misbehaviour at a time, and sequential order.

use super::*;
use crate::server::{Step, reply_text};
use f3dx_router_core::TransportErrorKind;

/// 200: the caller gets the provider's completion (spec-valid) and the provider got the request
/// as sent, with bearer auth and the configured extra headers; nobody else was asked.
pub async fn success_200<D: Driver>() {
    let server = MockServer::start().await;
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    let sent = json!({
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello a"}],
        "temperature": 0.25,
        "max_tokens": 7,
    });
    let routed = d
        .call(ChatRequest::from_value(sent.clone()).unwrap())
        .await
        .expect("served");
    assert_eq!(&*routed.provider_name, "a");
    assert_eq!(outcomes(&routed.attempts), vec![success("a")]);
    let body = completion(&routed);
    assert_eq!(body["choices"][0]["message"]["content"], reply_text("a"));
    assert_eq!(body["model"], "gpt-4o");

    let rec = server.received("a");
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].method, "POST");
    assert_eq!(rec[0].path, "/a/v1/chat/completions");
    assert_eq!(rec[0].headers["authorization"], format!("Bearer {KEY}"));
    assert!(
        rec[0].headers["content-type"].starts_with("application/json"),
        "{:?}",
        rec[0].headers
    );
    assert_eq!(rec[0].json.as_ref(), Some(&sent), "the body passes through");
    assert_outcome(&server, "a", 0, Outcome::Completed).await;
    assert!(server.received("b").is_empty());
    settled(&d).await;
}

/// 408, 429, 500, 502, 503 and 529 are soft: the next provider serves, both were asked once.
pub async fn soft_statuses_fail_over<D: Driver>() {
    let server = MockServer::start().await;
    for (i, status) in [408u16, 429, 500, 502, 503, 529].into_iter().enumerate() {
        server.script("a", vec![Step::status(status)]);
        let d = D::build(config(providers(&server, &["a", "b"])), None);
        let routed = d
            .call(request(&format!("soft {status}")))
            .await
            .unwrap_or_else(|e| panic!("{status} should fail over: {e:?}"));
        assert_eq!(&*routed.provider_name, "b", "{status}");
        assert_eq!(
            outcomes(&routed.attempts),
            vec![
                ("a".into(), AttemptOutcome::SoftStatus { status }),
                success("b")
            ],
            "{status}"
        );
        assert_eq!(completion_text(&routed), reply_text("b"));
        assert_counts(&server, &[("a", i + 1), ("b", i + 1)]);
        let a = server.received("a");
        let b = server.received("b");
        assert_eq!(a[i].step.status, Some(status));
        assert_eq!(user_text(&a[i]), format!("soft {status}"));
        assert_eq!(
            user_text(&b[i]),
            format!("soft {status}"),
            "the same payload"
        );
        settled(&d).await;
    }
}

/// 400, 401, 403, 404 and 422 are hard: the caller gets the provider, status and body; the
/// payload went nowhere else.
pub async fn hard_statuses_go_nowhere_else<D: Driver>() {
    let server = MockServer::start().await;
    for (i, status) in [400u16, 401, 403, 404, 422].into_iter().enumerate() {
        let error = json!({"error": {
            "message": format!("conformance {status}"),
            "type": "invalid_request_error", "param": null, "code": null,
        }});
        server.script("a", vec![Step::status(status).json(error.clone())]);
        let d = D::build(config(providers(&server, &["a", "b"])), None);
        let err = d.call(request("hard")).await.unwrap_err();
        let RouteError::HardFailure {
            provider,
            status: got,
            body,
            attempts,
        } = &err
        else {
            panic!("{status}: expected a hard failure, got {err:?}");
        };
        assert_eq!((&**provider, *got), ("a", status));
        assert_eq!(
            serde_json::from_slice::<Value>(body).ok(),
            Some(error),
            "{status}: the provider's body, as sent"
        );
        assert_eq!(
            outcomes(attempts),
            vec![("a".into(), AttemptOutcome::HardStatus { status })]
        );
        settled(&d).await;
        assert_eq!(server.received("a").len(), i + 1);
        assert!(
            server.received("b").is_empty(),
            "{status}: a hard failure reached b"
        );
    }
}

/// Nothing listening: a transport failure (refused), and the next provider serves.
pub async fn connection_refused_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    let down = format!("http://127.0.0.1:{}/v1", closed_port());
    let d = D::build(
        config(json!({"providers": [openai("down", down), openai("b", server.base_url("b"))]})),
        None,
    );
    let routed = d.call(request("refused")).await.expect("served");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            (
                "down".into(),
                AttemptOutcome::Transport(TransportErrorKind::Refused)
            ),
            success("b")
        ]
    );
    assert_eq!(completion_text(&routed), reply_text("b"));
    assert_counts(&server, &[("b", 1)]);
    settled(&d).await;
}

/// The connection is reset without an answer: a transport failure (reset), the next serves.
pub async fn reset_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::reset()]);
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    let routed = d.call(request("reset")).await.expect("served");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            (
                "a".into(),
                AttemptOutcome::Transport(TransportErrorKind::Reset)
            ),
            success("b")
        ]
    );
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    assert_outcome(&server, "a", 0, Outcome::ServerClosed).await;
    assert_outcome(&server, "b", 0, Outcome::Completed).await;
    settled(&d).await;
}

/// The per-attempt timeout fires while the provider has not answered: the attempt fails softly,
/// its connection is closed (the server sees the disconnect), the next provider serves.
pub async fn attempt_timeout_fails_over_and_closes_the_connection<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::ok().delay(SLOW)]);
    let d = D::build(
        config(json!({"providers": [
            with(openai("a", server.base_url("a")), json!({"timeout_ms": 200})),
            openai("b", server.base_url("b")),
        ]})),
        None,
    );
    let start = Instant::now();
    let routed = d.call(request("slow")).await.expect("served");
    assert!(start.elapsed() < SLOW, "{:?}", start.elapsed());
    assert_eq!(
        outcomes(&routed.attempts),
        vec![("a".into(), AttemptOutcome::TimedOut), success("b")]
    );
    assert!(routed.attempts[0].latency >= Duration::from_millis(200));
    assert_disconnected(&server, "a", 0).await;
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    settled(&d).await;
}

/// The head arrives, then the body stalls past the per-attempt timeout: the same soft failure.
pub async fn body_stall_timeout_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::ok().stall_after_headers(SLOW)]);
    let d = D::build(
        config(json!({"providers": [
            with(openai("a", server.base_url("a")), json!({"timeout_ms": 200})),
            openai("b", server.base_url("b")),
        ]})),
        None,
    );
    let routed = d.call(request("stall")).await.expect("served");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![("a".into(), AttemptOutcome::TimedOut), success("b")]
    );
    assert_disconnected(&server, "a", 0).await;
    settled(&d).await;
}

fn assert_invalid_body_then_b(routed: &Routed) {
    assert_eq!(&*routed.provider_name, "b");
    assert_eq!(routed.attempts.len(), 2);
    assert!(
        matches!(
            routed.attempts[0].outcome,
            AttemptOutcome::InvalidBody { status: 200, .. }
        ),
        "{:?}",
        routed.attempts[0].outcome
    );
    assert_eq!(outcomes(&routed.attempts)[1], success("b"));
    assert_eq!(completion_text(routed), reply_text("b"));
}

/// A 200 whose body is not JSON is soft.
pub async fn malformed_json_2xx_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::ok().raw(r#"{"choices": [{"message": "#)]);
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    let routed = d.call(request("malformed")).await.expect("served");
    assert_invalid_body_then_b(&routed);
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    settled(&d).await;
}

/// A 200 carrying an `error` object (some OpenAI-compatible servers do this) is soft.
pub async fn error_object_in_2xx_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    server.script(
        "a",
        vec![Step::ok().json(json!({"error": {"message": "overloaded", "type": "server_error"}}))],
    );
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    let routed = d.call(request("error in 200")).await.expect("served");
    assert_invalid_body_then_b(&routed);
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    settled(&d).await;
}

/// The body stops short of its content-length and the connection closes: soft.
pub async fn truncated_body_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::ok().truncate_after(40)]);
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    let routed = d.call(request("truncated")).await.expect("served");
    assert_eq!(&*routed.provider_name, "b");
    let first = &routed.attempts[0].outcome;
    assert!(
        first.is_soft_failure() && !matches!(first, AttemptOutcome::TimedOut),
        "a truncated body is a soft failure seen at once: {first:?}"
    );
    assert_eq!(outcomes(&routed.attempts)[1], success("b"));
    assert_outcome(&server, "a", 0, Outcome::ServerClosed).await;
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    settled(&d).await;
}

/// A body over `max_response_bytes` is soft.
pub async fn oversized_body_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    let big = json!({
        "id": "chatcmpl-big", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x".repeat(20_000), "refusal": null},
                     "logprobs": null, "finish_reason": "stop"}],
    });
    server.script("a", vec![Step::ok().json(big)]);
    let mut cfg = providers(&server, &["a", "b"]);
    cfg["max_response_bytes"] = json!(4096);
    let d = D::build(config(cfg), None);
    let routed = d.call(request("big")).await.expect("served");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            ("a".into(), AttemptOutcome::BodyTooLarge { limit: 4096 }),
            success("b")
        ]
    );
    assert_eq!(completion_text(&routed), reply_text("b"));
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    assert!(
        server.wait_for_outcome("a", 0, WAIT).await.is_some(),
        "the oversized exchange ended"
    );
    settled(&d).await;
}

/// Every provider fails softly: `AllProvidersFailed` lists each attempt in order.
pub async fn all_providers_failed_lists_every_attempt<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::status(500)]);
    server.script("b", vec![Step::status(503)]);
    let down = format!("http://127.0.0.1:{}/v1", closed_port());
    let d = D::build(
        config(json!({"providers": [
            openai("a", server.base_url("a")), openai("b", server.base_url("b")), openai("c", down),
        ]})),
        None,
    );
    let err = d.call(request("all fail")).await.unwrap_err();
    let RouteError::AllProvidersFailed { attempts } = &err else {
        panic!("expected AllProvidersFailed, got {err:?}");
    };
    assert_eq!(
        outcomes(attempts),
        vec![
            ("a".into(), AttemptOutcome::SoftStatus { status: 500 }),
            ("b".into(), AttemptOutcome::SoftStatus { status: 503 }),
            (
                "c".into(),
                AttemptOutcome::Transport(TransportErrorKind::Refused)
            ),
        ]
    );
    let shown = err.to_string();
    for name in ["a status 500", "b status 503", "c connection refused"] {
        assert!(shown.contains(name), "{shown}");
    }
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    settled(&d).await;
}

/// Sequential: providers in order, each failing one way, the third serves; a later request
/// starts at the first again.
pub async fn sequential_order<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::status(500)]);
    server.script("b", vec![Step::reset()]);
    let d = D::build(config(providers(&server, &["a", "b", "c"])), None);
    let routed = d.call(request("first")).await.expect("served");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            ("a".into(), AttemptOutcome::SoftStatus { status: 500 }),
            (
                "b".into(),
                AttemptOutcome::Transport(TransportErrorKind::Reset)
            ),
            success("c"),
        ]
    );
    assert_eq!(completion_text(&routed), reply_text("c"));
    let (a, b, c) = (
        server.received("a"),
        server.received("b"),
        server.received("c"),
    );
    assert!(
        a[0].received_at_ms <= b[0].received_at_ms && b[0].received_at_ms <= c[0].received_at_ms
    );
    assert_eq!(
        routed
            .attempts
            .iter()
            .map(|x| x.attempt)
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] < w[1])
            .count(),
        2,
        "attempt ids increase"
    );

    let routed = d.call(request("second")).await.expect("served");
    assert_eq!(outcomes(&routed.attempts), vec![success("a")]);
    assert_counts(&server, &[("a", 2), ("b", 1), ("c", 1)]);
    assert_eq!(user_text(&server.received("a")[1]), "second");
    settled(&d).await;
}
