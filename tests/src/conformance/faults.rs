//! Fault injection: stalls (the idle limit, `idle_timeout_ms`), odd but legal HTTP, broken HTTP
//! and broken TLS. Each scenario asserts what the caller got and what the server saw. A stall
//! uses the scripted [`MockServer`]; a fault hyper's server will not commit uses the
//! [`RawServer`], which writes bytes as given.
//!
//! Every fault of provider `a` that is not a valid answer must fail over to `b` (a soft failure,
//! the connection dropped), and nothing may hang: the idle limit ends every stall.

use super::*;
use crate::server::raw::{self, RawOp, RawServer};
use crate::server::{Step, StreamStep, fixtures_dir, reply_text, split_events};

/// The idle limit of the stalling provider in these scenarios.
const IDLE_MS: u64 = 300;
/// A recorded `chat.completion`, as a raw server sends it.
const OK_BODY: &str = include_str!("../../fixtures/openai/responses/chat_text_stop.json");

/// `a` (at `a_url`, with the scenario's idle limit) then `b` (the mock server's), sequential.
fn a_then_b(a_url: String, server: &MockServer) -> RouterConfig {
    config(json!({"providers": [
        with(openai("a", a_url), json!({"idle_timeout_ms": IDLE_MS})),
        openai("b", server.base_url("b")),
    ]}))
}

/// The recorded OpenAI stream's bytes.
fn recorded_stream() -> Bytes {
    let path = fixtures_dir().join("openai/streams/chat_text_stop_with_usage.sse");
    Bytes::from(std::fs::read(path).expect("fixture"))
}

/// The caller was served by `b` after `a` failed as `first` says.
fn served_by_b_after(routed: &Routed, first: impl Fn(&AttemptOutcome) -> bool) {
    assert_eq!(completion_text(routed), reply_text("b"));
    let got = outcomes(&routed.attempts);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "a");
    assert!(first(&got[0].1), "a's outcome: {:?}", got[0].1);
    assert_eq!(got[1], success("b"));
}

fn is_transport(o: &AttemptOutcome) -> bool {
    matches!(o, AttemptOutcome::Transport(_))
}

/// A head, then nothing: the idle limit fails the attempt over and drops its connection.
pub async fn idle_stall_after_head_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::ok().stall_after_headers(SLOW)]);
    let d = D::build(a_then_b(server.base_url("a"), &server), None);
    let routed = d
        .call(request("stall after head"))
        .await
        .expect("served by b");
    served_by_b_after(&routed, |o| *o == AttemptOutcome::TimedOut);
    assert_disconnected(&server, "a", 0).await;
    settled(&d).await;
}

/// Half a body, then nothing.
pub async fn idle_stall_mid_body_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    let (first, second) = OK_BODY.split_at(OK_BODY.len() / 2);
    let pieces = StreamStep::events([first, second]).chunk_gap(SLOW);
    let step = Step::streaming(pieces).header("content-type", "application/json");
    server.script("a", vec![step]);
    let d = D::build(a_then_b(server.base_url("a"), &server), None);
    let routed = d
        .call(request("stall mid-body"))
        .await
        .expect("served by b");
    served_by_b_after(&routed, |o| *o == AttemptOutcome::TimedOut);
    assert_disconnected(&server, "a", 0).await;
    settled(&d).await;
}

/// A stream that delivered content, then stalls: a typed interruption naming the idle limit,
/// never a failover (the caller has seen `a`'s chunks).
pub async fn idle_stall_mid_stream_after_commit_is_interrupted<D: Driver>() {
    let server = MockServer::start().await;
    let events = split_events(recorded_stream());
    let head: String = events[..4]
        .iter()
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    let rest: String = events[4..]
        .iter()
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    let step = Step::streaming(StreamStep::events([head, rest]).chunk_gap(SLOW));
    server.script("a", vec![step]);
    let d = D::build(a_then_b(server.base_url("a"), &server), None);
    let result = d.stream(stream_request("stall mid-stream"), None).await;
    assert!(!result.chunks.is_empty(), "the caller saw a's first chunks");
    match result.ended() {
        Err(RouteError::StreamInterrupted {
            provider, reason, ..
        }) => {
            assert_eq!(&**provider, "a");
            assert!(reason.contains("idle_timeout_ms"), "{reason}");
        }
        other => panic!("expected StreamInterrupted, got {other:?}"),
    }
    assert_counts(&server, &[("a", 1), ("b", 0)]);
    assert_disconnected(&server, "a", 0).await;
    settled(&d).await;
}

/// A stream whose first 30 bytes come one every 100 ms (3 s in all, ten times the idle limit)
/// is slow but steady: never idle, served whole by `a`.
pub async fn a_byte_every_100_ms_is_not_idle<D: Driver>() {
    let server = MockServer::start().await;
    let all = recorded_stream();
    let mut pieces: Vec<String> = all[..30]
        .iter()
        .map(|b| char::from(*b).to_string())
        .collect();
    pieces.push(String::from_utf8_lossy(&all[30..]).into_owned());
    let step = Step::streaming(StreamStep::events(pieces).chunk_gap(Duration::from_millis(100)));
    server.script("a", vec![step]);
    let d = D::build(a_then_b(server.base_url("a"), &server), None);
    let result = d.stream(stream_request("trickle"), None).await;
    let routed = result.ended().as_ref().expect("served by a");
    assert_eq!(outcomes(&routed.attempts), vec![success("a")]);
    assert!(!result.text().is_empty());
    assert_counts(&server, &[("a", 1), ("b", 0)]);
    assert_outcome(&server, "a", 0, crate::server::Outcome::Completed).await;
    settled(&d).await;
}

/// No `content-length`, `connection: close`: the body is everything until the close.
pub async fn close_delimited_body_is_read_to_the_close<D: Driver>() {
    let server = MockServer::start().await;
    let headers = [
        ("content-type", "application/json"),
        ("connection", "close"),
    ];
    let raw = RawServer::start(vec![vec![
        RawOp::ReadRequest,
        RawOp::text(raw::head("HTTP/1.1 200 OK", &headers) + OK_BODY),
        RawOp::Close,
    ]])
    .await;
    let d = D::build(a_then_b(raw.base_url(), &server), None);
    let routed = d
        .call(request("close-delimited"))
        .await
        .expect("served by a");
    assert_eq!(outcomes(&routed.attempts), vec![success("a")]);
    let recorded: Value = serde_json::from_str(OK_BODY).expect("fixture is JSON");
    assert_eq!(
        completion(&routed)["choices"][0]["message"]["content"],
        recorded["choices"][0]["message"]["content"]
    );
    let seen = raw.seen();
    assert_eq!(seen.len(), 1);
    let request_head = seen[0].request.as_deref().expect("the request was read");
    assert!(
        request_head.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"),
        "{request_head}"
    );
    assert_counts(&server, &[("b", 0)]);
    settled(&d).await;
}

/// A 2 MB response header is refused (no client buffers that much for a head): fail over.
pub async fn huge_response_header_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    let big = "a".repeat(2 << 20);
    let headers = [
        ("content-type", "application/json"),
        ("x-big", big.as_str()),
    ];
    let raw = RawServer::start(vec![vec![
        RawOp::ReadRequest,
        RawOp::text(raw::head("HTTP/1.1 200 OK", &headers)),
    ]])
    .await;
    let d = D::build(a_then_b(raw.base_url(), &server), None);
    let routed = d.call(request("huge header")).await.expect("served by b");
    served_by_b_after(&routed, is_transport);
    assert!(
        raw.wait_client_closed(0, WAIT).await,
        "a's connection dropped"
    );
    settled(&d).await;
}

/// A status line that is not HTTP: a transport failure, fail over.
pub async fn garbage_status_line_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    let raw = RawServer::start(vec![vec![
        RawOp::ReadRequest,
        RawOp::text("220 smtp.example ESMTP ready\r\n\r\n"),
    ]])
    .await;
    let d = D::build(a_then_b(raw.base_url(), &server), None);
    let routed = d.call(request("garbage")).await.expect("served by b");
    served_by_b_after(&routed, is_transport);
    assert!(
        raw.wait_client_closed(0, WAIT).await,
        "a's connection dropped"
    );
    settled(&d).await;
}

/// A chunked body closed inside a chunk (and before the last chunk): fail over.
pub async fn truncated_chunked_body_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    let headers = [
        ("content-type", "application/json"),
        ("transfer-encoding", "chunked"),
    ];
    let raw = RawServer::start(vec![vec![
        RawOp::ReadRequest,
        RawOp::text(raw::head("HTTP/1.1 200 OK", &headers) + "100\r\n{\"id\":\"chatcmpl-"),
        RawOp::Close,
    ]])
    .await;
    let d = D::build(a_then_b(raw.base_url(), &server), None);
    let routed = d
        .call(request("truncated chunked"))
        .await
        .expect("served by b");
    served_by_b_after(&routed, is_transport);
    assert!(raw.seen()[0].request.is_some(), "a saw the request");
    settled(&d).await;
}

/// A TLS server that reads the ClientHello and never answers: the idle limit ends the attempt
/// (no connect timeout need be set), fail over.
pub async fn tls_handshake_that_never_completes_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    let raw = RawServer::start(vec![vec![RawOp::ReadAny]]).await;
    let d = D::build(a_then_b(raw.https_base_url(), &server), None);
    let routed = d.call(request("tls stall")).await.expect("served by b");
    served_by_b_after(&routed, |o| {
        *o == AttemptOutcome::TimedOut
            || *o == AttemptOutcome::Transport(f3dx_router_core::TransportErrorKind::Timeout)
    });
    assert!(raw.seen()[0].received, "a ClientHello arrived");
    assert!(
        raw.wait_client_closed(0, WAIT).await,
        "a's connection dropped"
    );
    settled(&d).await;
}

/// A TLS server that resets the connection after the ClientHello: fail over.
pub async fn tls_reset_during_the_handshake_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    let raw = RawServer::start(vec![vec![RawOp::ReadAny, RawOp::Reset]]).await;
    let d = D::build(a_then_b(raw.https_base_url(), &server), None);
    let routed = d.call(request("tls reset")).await.expect("served by b");
    served_by_b_after(&routed, is_transport);
    assert!(raw.seen()[0].received, "a ClientHello arrived");
    settled(&d).await;
}

/// `100 Continue` and `103 Early Hints` before the answer are skipped: `a` serves it.
pub async fn informational_heads_before_the_answer_are_skipped<D: Driver>() {
    let server = MockServer::start().await;
    let length = OK_BODY.len().to_string();
    let answer = raw::head(
        "HTTP/1.1 200 OK",
        &[
            ("content-type", "application/json"),
            ("content-length", length.as_str()),
        ],
    );
    let hints = raw::head(
        "HTTP/1.1 103 Early Hints",
        &[("link", "</style.css>; rel=preload")],
    );
    let raw = RawServer::start(vec![vec![
        RawOp::ReadRequest,
        RawOp::text(raw::head("HTTP/1.1 100 Continue", &[]) + &hints + &answer + OK_BODY),
    ]])
    .await;
    let d = D::build(a_then_b(raw.base_url(), &server), None);
    let routed = d.call(request("1xx")).await.expect("served by a");
    assert_eq!(outcomes(&routed.attempts), vec![success("a")]);
    completion(&routed);
    assert_counts(&server, &[("b", 0)]);
    assert_eq!(raw.seen().len(), 1);
    settled(&d).await;
}

/// A server that sends `GOAWAY` mid-stream (a graceful shutdown, as a provider's server being
/// redeployed does) over HTTP/2 (over HTTP/1.1, the driver that does not speak it: a close once
/// the response is done): the stream in flight finishes whole, and the next request goes on a
/// new connection.
pub async fn goaway_mid_stream_finishes_the_stream<D: Driver>() {
    let server = MockServer::start().await;
    let events: Vec<String> = split_events(recorded_stream())
        .iter()
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    let count = events.len();
    let pieces = StreamStep::events(events)
        .goaway_after(3)
        .chunk_gap(Duration::from_millis(10));
    server.script("a", vec![Step::streaming(pieces)]);
    let cfg = config(json!({"providers": [openai("a", server.https_base_url("a"))]}));
    let d = D::build(cfg, Some(&server.ca_pem()));
    let result = d.stream(stream_request("goaway"), None).await;
    let routed = result.ended().as_ref().expect("the stream finished");
    assert_eq!(outcomes(&routed.attempts), vec![success("a")]);
    // Every data line but `[DONE]` is a chunk the caller gets.
    assert_eq!(result.json().len(), count - 1);
    assert_outcome(&server, "a", 0, crate::server::Outcome::Completed).await;
    let next = d.call(request("after goaway")).await.expect("served by a");
    assert_eq!(outcomes(&next.attempts), vec![success("a")]);
    let versions: Vec<String> = server
        .received("a")
        .iter()
        .map(|r| r.version.clone())
        .collect();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(
        server.connection_count(),
        2,
        "the connection that went away is not used again ({versions:?})"
    );
    settled(&d).await;
}
