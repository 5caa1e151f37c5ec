//! The mock provider server over real loopback sockets: default bodies, every scripted
//! misbehaviour, recording, disconnect detection, TLS, HTTP/2, the control API and the binary.
//!
//! The clients here are deliberately tiny (hyper's connection-level client, or raw HTTP/1.1 over
//! a `TcpStream`) so the testkit does not depend on the driver's HTTP stack.

use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use f3dx_router_testkit::server::{MockServer, Outcome, Shape, Step, StreamStep, fixtures_dir};
use f3dx_router_testkit::spec::OpenAiSpec;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A whole response as a tiny client sees it.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A one-connection HTTP/1.1 client over hyper's connection API.
async fn h1(addr: std::net::SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn post(path: &str, body: &Value) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<Reply, BoxError> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// One request on a fresh connection.
async fn call(server: &MockServer, req: Request<Full<Bytes>>) -> Result<Reply, BoxError> {
    send(&mut h1(server.http_addr()).await, req).await
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn messages(model: &str) -> Value {
    json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
}

/// Raw HTTP/1.1: writes one request and reads until EOF or an error.
async fn raw(server: &MockServer, path: &str, body: &Value) -> (Vec<u8>, Option<std::io::Error>) {
    let mut stream = TcpStream::connect(server.http_addr()).await.unwrap();
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
}

fn split_head(raw: &[u8]) -> (String, &[u8]) {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    (
        String::from_utf8_lossy(&raw[..at]).to_lowercase(),
        &raw[at + 4..],
    )
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(path)).unwrap()
}

const OPENAI: &str = "/a/v1/chat/completions";
const ANTHROPIC: &str = "/b/v1/messages";
const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn default_openai_body_is_a_valid_completion() {
    let server = MockServer::start().await;
    let reply = call(&server, post(OPENAI, &chat("gpt-test")))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.headers["x-mock-provider"], "a");
    let body = reply.json();
    OpenAiSpec::get()
        .validate_response(&body)
        .unwrap_or_else(|e| panic!("{e:?}\n{body:#}"));
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from a.");
    assert_eq!(server.base_url("a"), format!("{}/a/v1", server.http_url()));
}

#[tokio::test]
async fn default_anthropic_body_is_a_message() {
    let server = MockServer::start().await;
    let reply = call(&server, post(ANTHROPIC, &messages("claude-test")))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert!(body["id"].as_str().unwrap().starts_with("msg_"), "{body}");
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-test");
    assert_eq!(body["content"][0]["type"], "text");
    assert_eq!(body["content"][0]["text"], "Hello from b.");
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["usage"]["input_tokens"].is_u64() && body["usage"]["output_tokens"].is_u64());
    assert_eq!(server.received("b")[0].shape, Shape::Anthropic);
}

#[tokio::test]
async fn default_streams_follow_the_route() {
    let server = MockServer::start().await;
    let mut req = chat("gpt-test");
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let reply = call(&server, post(OPENAI, &req)).await.unwrap();
    assert_eq!(reply.headers["content-type"], "text/event-stream");
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let mut content = String::new();
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap();
        OpenAiSpec::get()
            .validate_stream_chunk(&chunk)
            .unwrap_or_else(|e| panic!("{e:?}\n{chunk:#}"));
        if let Some(c) = chunk["choices"][0]["delta"]["content"].as_str() {
            content.push_str(c);
        }
    }
    assert_eq!(content, "Hello from a.");
    assert!(events[events.len() - 2].contains("\"usage\""));

    let mut req = messages("claude-test");
    req["stream"] = json!(true);
    let reply = call(&server, post(ANTHROPIC, &req)).await.unwrap();
    assert_eq!(reply.headers["content-type"], "text/event-stream");
    assert_eq!(reply.body, fixture("anthropic/streams/text_basic.sse"));
}

#[tokio::test]
async fn scripted_statuses_then_default() {
    let server = MockServer::start().await;
    server.script(
        "a",
        vec![
            Step::status(429).retry_after("2"),
            Step::status(503),
            Step::status(400).json(json!({"error": {"message": "mine"}})),
        ],
    );
    assert_eq!(server.pending_steps("a"), 3);
    let mut conn = h1(server.http_addr()).await;
    let r = send(&mut conn, post(OPENAI, &chat("m"))).await.unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "2");
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    let r = send(&mut conn, post(OPENAI, &chat("m"))).await.unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["type"], "server_error");
    let r = send(&mut conn, post(OPENAI, &chat("m"))).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json(), json!({"error": {"message": "mine"}}));
    let r = send(&mut conn, post(OPENAI, &chat("m"))).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(server.pending_steps("a"), 0);

    // Anthropic errors use the Anthropic shape.
    server.script("b", vec![Step::status(529)]);
    let r = call(&server, post(ANTHROPIC, &messages("m")))
        .await
        .unwrap();
    assert_eq!(r.status, 529);
    assert_eq!(r.json()["error"]["type"], "overloaded_error");

    let rec = server.received("a");
    assert_eq!(rec.len(), 4);
    assert_eq!(rec[0].step.status, Some(429));
    assert!(rec[0].scripted && !rec[3].scripted);
    assert!(rec.iter().all(|r| r.outcome == Outcome::Completed));
    assert_eq!(server.request_count(), 5);
    // Four requests on one keep-alive connection, one on another.
    assert_eq!(server.connection_count(), 2);
}

#[tokio::test]
async fn set_default_replaces_the_success_answer() {
    let server = MockServer::start().await;
    server.set_default("a", Step::status(500));
    server.script("a", vec![Step::ok()]);
    assert_eq!(
        call(&server, post(OPENAI, &chat("m")))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        call(&server, post(OPENAI, &chat("m")))
            .await
            .unwrap()
            .status,
        500
    );
    assert_eq!(
        call(&server, post(OPENAI, &chat("m")))
            .await
            .unwrap()
            .status,
        500
    );
}

#[tokio::test]
async fn delay_holds_the_head_and_stall_holds_the_body() {
    let server = MockServer::start().await;
    server.script(
        "a",
        vec![
            Step::ok().delay(Duration::from_millis(150)),
            Step::ok().stall_after_headers(Duration::from_millis(300)),
        ],
    );
    let start = Instant::now();
    let r = call(&server, post(OPENAI, &chat("m"))).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(150));

    let mut conn = h1(server.http_addr()).await;
    let start = Instant::now();
    let resp = conn.send_request(post(OPENAI, &chat("m"))).await.unwrap();
    let head_at = start.elapsed();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        head_at < Duration::from_millis(250),
        "head after {head_at:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
    OpenAiSpec::get()
        .validate_response(&serde_json::from_slice(&body).unwrap())
        .unwrap();
}

#[tokio::test]
async fn reset_closes_the_connection_without_an_answer() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::reset(), Step::reset()]);
    let err = call(&server, post(OPENAI, &chat("m"))).await.unwrap_err();
    assert!(!err.to_string().is_empty());
    let (bytes, err) = raw(&server, OPENAI, &chat("m")).await;
    assert!(bytes.is_empty(), "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(
        err.map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionReset)
    );
    let rec = server.received("a");
    assert_eq!(rec[0].outcome, Outcome::ServerClosed);
    assert!(!rec[1].client_disconnected);
    // The next request is served normally.
    assert_eq!(
        call(&server, post(OPENAI, &chat("m")))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn truncated_body_announces_the_full_length() {
    let server = MockServer::start().await;
    let body = json!({"id": "x", "padding": "0123456789".repeat(10)});
    let full_len = body.to_string().len();
    server.script(
        "a",
        vec![
            Step::ok().json(body.clone()).truncate_after(20),
            Step::ok().json(body).truncate_after(20),
        ],
    );
    let (bytes, err) = raw(&server, OPENAI, &chat("m")).await;
    assert!(err.is_none(), "{err:?}");
    let (head, rest) = split_head(&bytes);
    assert!(
        head.contains(&format!("content-length: {full_len}")),
        "{head}"
    );
    assert_eq!(rest.len(), 20);
    assert!(call(&server, post(OPENAI, &chat("m"))).await.is_err());
    assert_eq!(server.received("a")[0].outcome, Outcome::ServerClosed);
}

#[tokio::test]
async fn malformed_body_is_sent_verbatim() {
    let server = MockServer::start().await;
    server.script(
        "a",
        vec![
            Step::ok()
                .raw("{\"id\": \"chatcmpl-1\", \"choices\": [")
                .header("content-type", "application/json; charset=utf-8"),
        ],
    );
    let r = call(&server, post(OPENAI, &chat("m"))).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "{\"id\": \"chatcmpl-1\", \"choices\": [");
    assert_eq!(r.headers["content-type"], "application/json; charset=utf-8");
}

#[tokio::test]
async fn stream_replay_is_byte_exact() {
    let server = MockServer::start().await;
    for path in [
        "openai/streams/chat_text_stop_with_usage.sse",
        "openai/streams/chat_tool_calls_parallel_with_usage.sse",
        "anthropic/streams/tool_use.sse",
    ] {
        server.script("a", vec![Step::streaming(StreamStep::replay(path))]);
        let r = call(&server, post(OPENAI, &chat("m"))).await.unwrap();
        assert_eq!(r.headers["content-type"], "text/event-stream");
        assert_eq!(r.body, fixture(path), "{path}");
    }
    // With gaps between events, same bytes, slower.
    let path = "anthropic/streams/text_basic.sse";
    server.script(
        "b",
        vec![Step::streaming(
            StreamStep::replay(path).chunk_gap(Duration::from_millis(10)),
        )],
    );
    let start = Instant::now();
    let r = call(&server, post(ANTHROPIC, &messages("m")))
        .await
        .unwrap();
    assert_eq!(r.body, fixture(path));
    assert!(start.elapsed() >= Duration::from_millis(80));
}

#[tokio::test]
async fn events_arrive_as_separate_writes() {
    let server = MockServer::start().await;
    server.script(
        "a",
        vec![Step::streaming(
            StreamStep::events(["data: 1\n\n", "data: 2\n\n", "data: [DONE]\n\n"])
                .chunk_gap(Duration::from_millis(50)),
        )],
    );
    let mut conn = h1(server.http_addr()).await;
    let resp = conn.send_request(post(OPENAI, &chat("m"))).await.unwrap();
    let mut body = resp.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            frames.push(data);
        }
    }
    assert_eq!(frames, ["data: 1\n\n", "data: 2\n\n", "data: [DONE]\n\n"]);
}

#[tokio::test]
async fn error_mid_stream_then_a_clean_end() {
    let server = MockServer::start().await;
    let error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    server.script(
        "b",
        vec![Step::streaming(
            StreamStep::replay("anthropic/streams/text_basic.sse").error_after(3, error),
        )],
    );
    let r = call(&server, post(ANTHROPIC, &messages("m")))
        .await
        .unwrap();
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert_eq!(text.matches("\n\n").count(), 4, "{text}");
    assert!(text.ends_with(error));
    assert!(text.starts_with("event: message_start"));
    assert_eq!(server.received("b")[0].outcome, Outcome::Completed);
}

#[tokio::test]
async fn default_error_event_is_in_the_route_shape() {
    let server = MockServer::start().await;
    server.script(
        "a",
        vec![Step::streaming(StreamStep {
            error_after_events: Some(1),
            ..StreamStep::default()
        })],
    );
    let r = call(&server, post(OPENAI, &chat("m"))).await.unwrap();
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(events.len(), 2, "{text}");
    let err: Value = serde_json::from_str(events[1].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(err["error"]["type"], "server_error");
}

#[tokio::test]
async fn cut_mid_stream_closes_without_terminator() {
    let server = MockServer::start().await;
    let path = "openai/streams/chat_text_stop_with_usage.sse";
    server.script(
        "a",
        vec![
            Step::streaming(StreamStep::replay(path).cut_after(2)),
            Step::streaming(StreamStep::replay(path).cut_after(2)),
        ],
    );
    // hyper's client reports the unterminated chunked body as an error.
    let mut conn = h1(server.http_addr()).await;
    let resp = conn.send_request(post(OPENAI, &chat("m"))).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.into_body().collect().await.is_err());

    let (bytes, _) = raw(&server, OPENAI, &chat("m")).await;
    let (head, body) = split_head(&bytes);
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let body = String::from_utf8_lossy(body);
    let pieces = f3dx_router_testkit::server::split_events(Bytes::from(fixture(path)));
    assert!(body.contains(std::str::from_utf8(&pieces[1]).unwrap()));
    assert!(!body.contains(std::str::from_utf8(&pieces[2]).unwrap()));
    assert!(
        !body.contains("\r\n0\r\n\r\n"),
        "no chunked terminator: {body}"
    );
    assert_eq!(server.received("a")[1].outcome, Outcome::ServerClosed);
}

#[tokio::test]
async fn records_method_path_headers_and_body() {
    let server = MockServer::start().await;
    let req = Request::post("/a/v1/chat/completions?x=1")
        .header("host", "localhost")
        .header("Authorization", "Bearer sk-test")
        .header("x-custom", "one")
        .body(Full::new(Bytes::from(chat("m").to_string())))
        .unwrap();
    call(&server, req).await.unwrap();
    let bad = Request::post(OPENAI)
        .header("host", "localhost")
        .body(Full::new(Bytes::from_static(b"not json")))
        .unwrap();
    call(&server, bad).await.unwrap();
    let rec = server.received("a");
    assert_eq!(rec.len(), 2);
    assert_eq!(rec[0].method, "POST");
    assert_eq!(rec[0].path, "/a/v1/chat/completions?x=1");
    assert_eq!(rec[0].version, "HTTP/1.1");
    assert_eq!(rec[0].headers["authorization"], "Bearer sk-test");
    assert_eq!(rec[0].headers["x-custom"], "one");
    assert_eq!(rec[0].json.as_ref().unwrap(), &chat("m"));
    assert_eq!(rec[0].body, chat("m").to_string());
    assert_eq!(rec[1].body, "not json");
    assert!(rec[1].json.is_none());
    assert_eq!(rec[1].index, 1);
    assert!(rec[0].received_at_ms <= rec[1].received_at_ms);
    // Unknown routes are 404 and not recorded.
    let r = call(&server, post("/a/v1/embeddings", &json!({})))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(server.received("a").len(), 2);

    server.reset();
    assert!(server.received("a").is_empty());
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn client_disconnect_is_detected_in_a_delay_and_in_a_stall() {
    let server = MockServer::start().await;
    server.script(
        "a",
        vec![
            Step::ok().delay(Duration::from_secs(10)),
            Step::ok().stall_after_headers(Duration::from_secs(10)),
            Step::streaming(StreamStep::default_stream().chunk_gap(Duration::from_secs(10))),
        ],
    );
    for index in 0..3 {
        let mut conn = h1(server.http_addr()).await;
        let pending = tokio::spawn(async move {
            let resp = conn.send_request(post(OPENAI, &chat("m"))).await?;
            resp.into_body().collect().await.map(|_| ())
        });
        assert!(server.wait_for_requests("a", index + 1, SECOND).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(server.received("a")[index].outcome, Outcome::Pending);
        pending.abort(); // drops the connection: the hedged loser's fate
        assert!(
            server.wait_for_disconnect("a", index, 2 * SECOND).await,
            "step {index}: {:?}",
            server.received("a")[index]
        );
        assert!(server.received("a")[index].client_disconnected);
    }
    assert!(server.wait_for_open_connections(0, 2 * SECOND).await);
}

#[tokio::test]
async fn connections_are_counted_and_released() {
    let server = MockServer::start().await;
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut c = h1(server.http_addr()).await;
        send(&mut c, post(OPENAI, &chat("m"))).await.unwrap();
        conns.push(c);
    }
    assert_eq!(server.open_connections(), 3);
    drop(conns);
    assert!(
        server.wait_for_open_connections(0, 2 * SECOND).await,
        "{}",
        server.open_connections()
    );
    assert_eq!(server.connection_count(), 3);
}

fn tls_connector(server: &MockServer, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    // A client that knows only the CA's PEM, as the binary's users do.
    let mut roots = rustls::RootCertStore::empty();
    for cert in f3dx_router_testkit::server::certs_from_pem(&server.ca_pem()) {
        roots.add(cert).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn https_with_the_generated_ca_over_http1_and_http2() {
    let server = MockServer::start().await;
    assert!(server.https_url().starts_with("https://localhost:"));
    assert!(server.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    for (name, alpn) in [("localhost", &b"http/1.1"[..]), ("127.0.0.1", &b"h2"[..])] {
        let tcp = TcpStream::connect(server.https_addr()).await.unwrap();
        let tls = tls_connector(&server, &[alpn])
            .connect(name.to_owned().try_into().unwrap(), tcp)
            .await
            .unwrap_or_else(|e| panic!("TLS to {name}: {e}"));
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
        let io = TokioIo::new(tls);
        let body = if alpn == b"h2" {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let req = Request::post(format!("{}{OPENAI}", server.https_url()))
                .body(Full::new(Bytes::from(chat("m").to_string())))
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.version(), http::Version::HTTP_2);
            resp.into_body().collect().await.unwrap().to_bytes()
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let resp = sender.send_request(post(OPENAI, &chat("m"))).await.unwrap();
            resp.into_body().collect().await.unwrap().to_bytes()
        };
        let body: Value = serde_json::from_slice(&body).unwrap();
        OpenAiSpec::get().validate_response(&body).unwrap();
    }
    // An untrusted client is refused.
    let tcp = TcpStream::connect(server.https_addr()).await.unwrap();
    let other = MockServer::start().await;
    assert!(
        tls_connector(&other, &[])
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .is_err()
    );
    assert_eq!(server.received("a")[1].version, "HTTP/2.0");
}

#[tokio::test]
async fn http2_prior_knowledge_and_a_stream_reset_spares_the_connection() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::reset(), Step::ok()]);
    let tcp = TcpStream::connect(server.http_addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let uri = format!("{}{OPENAI}", server.http_url());
    let req = |uri: &str| {
        Request::post(uri)
            .body(Full::new(Bytes::from(chat("m").to_string())))
            .unwrap()
    };
    assert!(sender.send_request(req(&uri)).await.is_err());
    let resp = sender.send_request(req(&uri)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test]
async fn http2_cancelled_stream_is_a_disconnect_and_the_connection_lives_on() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::ok().delay(Duration::from_secs(10))]);
    let tcp = TcpStream::connect(server.http_addr()).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let uri = format!("{}{OPENAI}", server.http_url());
    let req = move || {
        Request::post(uri.as_str())
            .body(Full::new(Bytes::from(chat("m").to_string())))
            .unwrap()
    };
    let mut loser = sender.clone();
    let slow = tokio::spawn({
        let req = req();
        async move { loser.send_request(req).await.map(|_| ()) }
    });
    assert!(server.wait_for_requests("a", 1, SECOND).await);
    slow.abort(); // RST_STREAM for that request only
    assert!(server.wait_for_disconnect("a", 0, 2 * SECOND).await);
    let mut winner = sender;
    assert_eq!(winner.send_request(req()).await.unwrap().status(), 200);
    assert_eq!(server.open_connections(), 1);
}

#[tokio::test]
async fn control_api_round_trip() {
    let server = MockServer::start().await;
    let mut c = h1(server.http_addr()).await;
    let r = send(&mut c, get("/_control/health")).await.unwrap();
    assert_eq!(r.json(), json!({"ok": true}));
    let steps = json!([{"status": 429, "headers": {"Retry-After": "1"}}, {"stream": {"events": ["data: x\n\n"]}}]);
    let r = send(&mut c, post("/_control/p/script", &steps))
        .await
        .unwrap();
    assert_eq!(r.json(), json!({"queued": 2}));
    let r = send(&mut c, post("/_control/p/default", &json!({"status": 503})))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = send(&mut c, post("/_control/p/script", &json!({"bogus": 1})))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("invalid JSON"));
    let r = send(
        &mut c,
        post(
            "/_control/p/script",
            &json!([{"stream": {"replay": "no/such.sse"}}]),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);

    let path = "/p/v1/chat/completions";
    let r = send(&mut c, post(path, &chat("m"))).await.unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(
        send(&mut c, post(path, &chat("m"))).await.unwrap().body,
        "data: x\n\n"
    );
    assert_eq!(
        send(&mut c, post(path, &chat("m"))).await.unwrap().status,
        503
    );

    let r = send(&mut c, get("/_control/p/received")).await.unwrap();
    let rec = r.json();
    assert_eq!(rec.as_array().unwrap().len(), 3);
    assert_eq!(rec[0]["step"]["status"], 429);
    assert_eq!(rec[0]["json"], chat("m"));
    assert_eq!(rec[0]["body"], chat("m").to_string());
    assert_eq!(rec[0]["client_disconnected"], false);
    assert_eq!(rec[0]["outcome"], "completed");
    // The JSON form reads back into the Rust type.
    let typed: Vec<f3dx_router_testkit::server::Recorded> = serde_json::from_value(rec).unwrap();
    assert_eq!(typed, server.received("p"));

    let r = send(
        &mut c,
        post("/_control/script", &json!({"q": [{"status": 500}]})),
    )
    .await
    .unwrap();
    assert_eq!(r.json(), json!({"queued": {"q": 1}}));
    let stats = send(&mut c, get("/_control/stats")).await.unwrap().json();
    assert_eq!(stats["requests"], 3);
    assert_eq!(stats["open_connections"], 1);
    assert_eq!(
        send(&mut c, post("/_control/reset", &json!({})))
            .await
            .unwrap()
            .status,
        200
    );
    assert!(server.received("p").is_empty());
    assert_eq!(server.pending_steps("q"), 0);
    let r = send(
        &mut c,
        post("/_control/recording", &json!({"enabled": false})),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        send(&mut c, post(path, &chat("m"))).await.unwrap().status,
        200
    );
    assert!(server.received("p").is_empty());
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn start_blocking_runs_on_its_own_runtime() {
    let server = MockServer::start_blocking();
    let r = call(&server, post(OPENAI, &chat("m"))).await.unwrap();
    assert_eq!(r.status, 200);
    drop(server); // inside a runtime: must not panic
}

#[test]
fn the_binary_prints_its_addresses_and_stops_when_stdin_closes() {
    let dir = std::env::temp_dir().join(format!("f3dx-mock-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("script.json");
    std::fs::write(&script, json!({"a": [{"status": 418}]}).to_string()).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_f3dx-mock-provider"))
        .arg("--script")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap();
    let http_url = info["http_url"].as_str().unwrap();
    assert!(http_url.starts_with("http://127.0.0.1:"));
    assert!(
        info["https_url"]
            .as_str()
            .unwrap()
            .starts_with("https://localhost:")
    );
    let ca = std::fs::read_to_string(info["ca_pem_path"].as_str().unwrap()).unwrap();
    assert!(ca.contains("BEGIN CERTIFICATE"));

    // A raw HTTP/1.1 exchange against the scripted provider.
    let addr = http_url.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    let body = chat("m").to_string();
    write!(
        tcp,
        "POST /a/v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut tcp, &mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 418"), "{reply}");

    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the binary did not exit after stdin closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
