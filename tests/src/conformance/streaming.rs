//! Streams: every recorded stream of either shape end to end, failures before the commit
//! (invisible to the caller) and after it (a typed interruption), first-token timeouts, hedged
//! streams.

use super::*;
use crate::server::{Step, StreamStep, fixtures_dir, reply_text};
use std::collections::BTreeMap;

/// The recorded streams under `tests/fixtures/{dir}`, sorted.
fn recordings(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| {
            format!(
                "{dir}/{}",
                e.expect("dir entry").file_name().to_string_lossy()
            )
        })
        .filter(|n| n.ends_with(".sse"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no recordings in {dir}");
    names
}

/// The JSON payloads of a recording's `data:` lines (not `[DONE]`).
fn data_lines(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures_dir().join(path)).expect("fixture");
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{path}: {e}: {d}")))
        .collect()
}

/// What a stream says, whatever its pieces: per choice, the concatenated content, refusal,
/// each tool call's name and arguments, and the last finish reason.
type Digest = BTreeMap<String, String>;

fn push(digest: &mut Digest, key: String, piece: &str) {
    if !piece.is_empty() {
        digest.entry(key).or_default().push_str(piece);
    }
}

fn openai_digest(chunks: &[Value]) -> Digest {
    let mut d = Digest::new();
    for chunk in chunks {
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let i = choice["index"].as_u64().unwrap_or(0);
            let delta = &choice["delta"];
            push(
                &mut d,
                format!("{i}.content"),
                delta["content"].as_str().unwrap_or(""),
            );
            push(
                &mut d,
                format!("{i}.refusal"),
                delta["refusal"].as_str().unwrap_or(""),
            );
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let t = call["index"].as_u64().unwrap_or(0);
                let f = &call["function"];
                push(
                    &mut d,
                    format!("{i}.tool{t}.name"),
                    f["name"].as_str().unwrap_or(""),
                );
                push(
                    &mut d,
                    format!("{i}.tool{t}.args"),
                    f["arguments"].as_str().unwrap_or(""),
                );
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                d.insert(format!("{i}.finish"), reason.to_owned());
            }
        }
    }
    d
}

fn anthropic_digest(events: &[Value]) -> Digest {
    let mut d = Digest::new();
    let mut tools: BTreeMap<u64, usize> = BTreeMap::new();
    for event in events {
        let block = event["index"].as_u64().unwrap_or(0);
        match event["type"].as_str() {
            Some("content_block_start") if event["content_block"]["type"] == "tool_use" => {
                let t = tools.len();
                tools.insert(block, t);
                let name = event["content_block"]["name"].as_str().unwrap_or("");
                push(&mut d, format!("0.tool{t}.name"), name);
            }
            Some("content_block_delta") => {
                let delta = &event["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        push(
                            &mut d,
                            "0.content".into(),
                            delta["text"].as_str().unwrap_or(""),
                        );
                    }
                    Some("input_json_delta") => {
                        let t = tools[&block];
                        let json = delta["partial_json"].as_str().unwrap_or("");
                        push(&mut d, format!("0.tool{t}.args"), json);
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                let reason = match event["delta"]["stop_reason"].as_str() {
                    Some("max_tokens" | "model_context_window_exceeded") => "length",
                    Some("tool_use") => "tool_calls",
                    Some("refusal") => "content_filter",
                    _ => "stop",
                };
                d.insert("0.finish".into(), reason.to_owned());
            }
            _ => {}
        }
    }
    d
}

/// Every recorded OpenAI stream passes through: each chunk spec-valid, as many chunks as the
/// recording has, the same content, tool calls and finish reasons; the provider got
/// `stream: true`.
pub async fn openai_streams_pass_through<D: Driver>() {
    let server = MockServer::start().await;
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    for (i, name) in recordings("openai/streams").iter().enumerate() {
        server.script("a", vec![Step::streaming(StreamStep::replay(name))]);
        let result = d.stream(stream_request("replay"), None).await;
        let routed = match result.ended() {
            Ok(routed) => routed,
            Err(e) => panic!("{name}: {e:?}"),
        };
        assert_eq!(outcomes(&routed.attempts), vec![success("a")], "{name}");
        let chunks = result.json();
        let recorded = data_lines(name);
        assert_eq!(
            chunks.len(),
            recorded.len(),
            "{name}: every chunk passes through"
        );
        assert_eq!(openai_digest(&chunks), openai_digest(&recorded), "{name}");
        let a = server.received("a");
        assert_eq!(a.len(), i + 1);
        let sent = a[i].json.as_ref().expect("JSON");
        assert_eq!(sent["stream"], true, "{name}");
        assert_eq!(a[i].path, "/a/v1/chat/completions");
        assert_outcome(&server, "a", i, Outcome::Completed).await;
    }
    assert!(server.received("b").is_empty());
    settled(&d).await;
}

/// Every recorded Anthropic stream is translated: each chunk spec-valid, the same text, tool
/// calls (names and argument JSON) and finish reason; with `include_usage`, the last chunk
/// carries the usage.
pub async fn anthropic_streams_translate<D: Driver>() {
    let server = MockServer::start().await;
    let d = D::build(
        config(json!({"providers": [anthropic("c", server.base_url("c"))]})),
        None,
    );
    for (i, name) in recordings("anthropic/streams").iter().enumerate() {
        server.script("c", vec![Step::streaming(StreamStep::replay(name))]);
        let result = d.stream(stream_request("replay"), None).await;
        let routed = match result.ended() {
            Ok(routed) => routed,
            Err(e) => panic!("{name}: {e:?}"),
        };
        assert_eq!(outcomes(&routed.attempts), vec![success("c")], "{name}");
        let chunks = result.json();
        assert_eq!(
            openai_digest(&chunks),
            anthropic_digest(&data_lines(name)),
            "{name}"
        );
        let last = chunks.last().expect("chunks");
        assert!(
            last["usage"].is_object(),
            "{name}: the usage chunk ends it: {last}"
        );
        let ids: Vec<&str> = chunks.iter().filter_map(|c| c["id"].as_str()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] == w[1]),
            "{name}: one id: {ids:?}"
        );
        let c = server.received("c");
        assert_eq!(c[i].path, "/c/v1/messages");
        assert_eq!(c[i].json.as_ref().expect("JSON")["stream"], true);
    }
    settled(&d).await;
}

fn assert_only_from(result: &StreamResult, provider: &str) {
    let marker = format!("-{provider}-");
    for id in result.ids() {
        assert!(id.contains(&marker), "a chunk from another provider: {id}");
    }
}

/// A stream cut after its role chunk (before any content) fails over invisibly: the caller's
/// chunks are all the second provider's, the first's role chunk included.
pub async fn stream_cut_before_commit_fails_over_invisibly<D: Driver>() {
    let server = MockServer::start().await;
    server.script(
        "a",
        vec![Step::streaming(StreamStep::default_stream().cut_after(1))],
    );
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    let result = d.stream(stream_request("cut early"), None).await;
    let routed = result.ended().as_ref().expect("served by b");
    assert_eq!(&*routed.provider_name, "b");
    // The cut is seen as the connection breaking (a transport reset) or as the stream ending
    // without its terminator; either is a soft failure before the commit.
    assert!(
        matches!(
            routed.attempts[0].outcome,
            AttemptOutcome::StreamFailedBeforeCommit { .. }
                | AttemptOutcome::Transport(f3dx_router_core::TransportErrorKind::Reset)
        ),
        "{:?}",
        routed.attempts
    );
    assert_eq!(outcomes(&routed.attempts)[1], success("b"));
    assert_only_from(&result, "b");
    assert_eq!(result.text(), reply_text("b"));
    let roles = result
        .json()
        .iter()
        .filter(|c| c["choices"][0]["delta"]["role"].is_string())
        .count();
    assert_eq!(roles, 1, "one role chunk");
    assert_outcome(&server, "a", 0, Outcome::ServerClosed).await;
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    settled(&d).await;
}

/// An in-stream error event before any content fails over invisibly.
pub async fn stream_error_before_commit_fails_over_invisibly<D: Driver>() {
    let server = MockServer::start().await;
    let error = "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n";
    server.script(
        "a",
        vec![Step::streaming(
            StreamStep::default_stream().error_after(1, error),
        )],
    );
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    let result = d.stream(stream_request("error early"), None).await;
    let routed = result.ended().as_ref().expect("served by b");
    assert_eq!(&*routed.provider_name, "b");
    assert!(
        matches!(
            routed.attempts[0].outcome,
            AttemptOutcome::StreamFailedBeforeCommit { .. }
        ),
        "{:?}",
        routed.attempts
    );
    assert_only_from(&result, "b");
    assert_eq!(result.text(), reply_text("b"));
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    settled(&d).await;
}

/// A streaming request answered 503 (a JSON error, no stream) fails over like a unary one.
pub async fn stream_status_before_commit_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::status(503)]);
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    let result = d.stream(stream_request("503"), None).await;
    let routed = result.ended().as_ref().expect("served by b");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            ("a".into(), AttemptOutcome::SoftStatus { status: 503 }),
            success("b")
        ]
    );
    assert_only_from(&result, "b");
    assert_eq!(result.text(), reply_text("b"));
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    settled(&d).await;
}

/// A stream whose head arrives but whose first token does not within `ttft_ms` (1 s, which the
/// healthy second provider must also meet on a loaded machine): soft, the
/// slow stream's connection is closed, the next provider streams.
pub async fn stream_first_token_timeout_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    server.script(
        "a",
        vec![Step::streaming(StreamStep::default_stream()).stall_after_headers(SLOW)],
    );
    let mut cfg = providers(&server, &["a", "b"]);
    cfg["ttft_ms"] = json!(1_000);
    let d = D::build(config(cfg), None);
    let start = Instant::now();
    let result = d.stream(stream_request("ttft"), None).await;
    assert!(start.elapsed() < SLOW);
    let routed = result.ended().as_ref().expect("served by b");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![("a".into(), AttemptOutcome::TimedOut), success("b")]
    );
    assert_only_from(&result, "b");
    assert_disconnected(&server, "a", 0).await;
    settled(&d).await;
}

fn assert_interrupted(result: &StreamResult, provider: &str) {
    match result.ended() {
        Err(RouteError::StreamInterrupted {
            provider: p,
            attempts,
            ..
        }) => {
            assert_eq!(&**p, provider);
            assert_eq!(attempts.len(), 1, "{attempts:?}");
            assert!(
                matches!(
                    attempts[0].outcome,
                    AttemptOutcome::StreamInterrupted { .. }
                ),
                "{attempts:?}"
            );
        }
        other => panic!("expected StreamInterrupted, got {other:?}"),
    }
}

/// A stream cut after it has delivered content: the caller gets what was delivered, all from
/// one provider, then `StreamInterrupted`; nothing is retried elsewhere.
pub async fn stream_cut_after_commit_is_interrupted<D: Driver>() {
    let server = MockServer::start().await;
    server.script(
        "a",
        vec![Step::streaming(StreamStep::default_stream().cut_after(3))],
    );
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    let result = d.stream(stream_request("cut late"), None).await;
    assert_interrupted(&result, "a");
    assert_only_from(&result, "a");
    assert_eq!(result.chunks.len(), 3);
    assert_eq!(result.text(), "Hello from");
    assert_outcome(&server, "a", 0, Outcome::ServerClosed).await;
    settled(&d).await;
    assert_counts(&server, &[("a", 1), ("b", 0)]);
}

/// An error event after content: `StreamInterrupted`, nothing retried elsewhere.
pub async fn stream_error_after_commit_is_interrupted<D: Driver>() {
    let server = MockServer::start().await;
    let error = "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n";
    server.script(
        "a",
        vec![Step::streaming(
            StreamStep::default_stream().error_after(2, error),
        )],
    );
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    let result = d.stream(stream_request("error late"), None).await;
    assert_interrupted(&result, "a");
    assert_only_from(&result, "a");
    assert_eq!(result.text(), "Hello");
    settled(&d).await;
    assert_counts(&server, &[("a", 1), ("b", 0)]);
}

/// Hedged streams: the first leg to commit wins. The other leg had sent its role chunk but no
/// content: none of it reaches the caller, and its connection is closed.
pub async fn hedged_stream_first_to_commit_wins<D: Driver>() {
    let server = MockServer::start().await;
    server.script(
        "a",
        vec![Step::streaming(
            StreamStep::default_stream().chunk_gap(SLOW),
        )],
    );
    // b starts after a short delay so a's request has surely arrived (and sent its role chunk)
    // before it is cancelled.
    server.script(
        "b",
        vec![Step::streaming(StreamStep::default_stream()).delay(HEAD_START)],
    );
    let mut cfg = providers(&server, &["a", "b"]);
    cfg["policy"] = json!("hedged");
    cfg["hedge_k"] = json!(2);
    cfg["hedge_delay_ms"] = json!(0);
    let d = D::build(config(cfg), None);
    let start = Instant::now();
    let result = d.stream(stream_request("race"), None).await;
    assert!(start.elapsed() < SLOW);
    let routed = result.ended().as_ref().expect("served");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![("a".into(), AttemptOutcome::Cancelled), success("b")]
    );
    assert_only_from(&result, "b");
    assert_eq!(result.text(), reply_text("b"));
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    assert_disconnected(&server, "a", 0).await;
    settled(&d).await;
}

/// An OpenAI-shape stream piece carrying `delta`, with `finish_reason` (JSON: `null` or a
/// string).
fn chunk_event(delta: Value, finish_reason: Value) -> String {
    let chunk = json!({
        "id": "chatcmpl-think", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "deepseek-reasoner",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    });
    format!("data: {chunk}\n\n")
}

/// A reasoning model thinks aloud: 15 reasoning chunks (`reasoning_content` as DeepSeek and
/// SGLang send it, `reasoning` as vLLM and OpenRouter do) 100 ms apart, under `ttft_ms: 1000`.
/// The first thought commits the attempt, so the provider is not failed over while it streams,
/// and the caller gets every thought, then the answer.
pub async fn reasoning_chunks_commit_the_stream<D: Driver>() {
    for field in ["reasoning_content", "reasoning"] {
        let server = MockServer::start().await;
        let mut events = vec![chunk_event(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        for i in 0..15 {
            events.push(chunk_event(
                json!({ field: format!("step {i}. ") }),
                Value::Null,
            ));
        }
        events.push(chunk_event(json!({"content": "42"}), Value::Null));
        events.push(chunk_event(json!({}), json!("stop")));
        events.push("data: [DONE]\n\n".to_owned());
        server.script(
            "a",
            vec![Step::streaming(
                StreamStep::events(events).chunk_gap(Duration::from_millis(100)),
            )],
        );
        let mut cfg = providers(&server, &["a", "b"]);
        cfg["ttft_ms"] = json!(1_000);
        let d = D::build(config(cfg), None);
        let result = d.stream(stream_request("think"), None).await;
        let routed = match result.ended() {
            Ok(routed) => routed,
            Err(e) => panic!("{field}: {e:?}"),
        };
        assert_eq!(outcomes(&routed.attempts), vec![success("a")], "{field}");
        let chunks = result.json();
        let thoughts: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"][field].as_str())
            .collect();
        let want: String = (0..15).map(|i| format!("step {i}. ")).collect();
        assert_eq!(thoughts, want, "{field}");
        assert_eq!(result.text(), "42", "{field}");
        assert_eq!(chunks.len(), 18, "{field}: every chunk passes through");
        assert_counts(&server, &[("a", 1), ("b", 0)]);
        settled(&d).await;
    }
}

/// `max_response_bytes` bounds what the router holds, not what it passes through: a stream of
/// 200 chunks (about 30 KB) is served whole under `max_response_bytes: 4096`.
pub async fn long_stream_passes_a_small_max_response_bytes<D: Driver>() {
    let server = MockServer::start().await;
    let mut events = vec![chunk_event(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    events.extend(
        (0..200).map(|i| chunk_event(json!({ "content": format!("w{i:03} ") }), Value::Null)),
    );
    events.push(chunk_event(json!({}), json!("stop")));
    events.push("data: [DONE]\n\n".to_owned());
    let total: usize = events.iter().map(String::len).sum();
    assert!(total > 20_000, "{total} bytes");
    server.script("a", vec![Step::streaming(StreamStep::events(events))]);
    let mut cfg = providers(&server, &["a", "b"]);
    cfg["max_response_bytes"] = json!(4096);
    let d = D::build(config(cfg), None);
    let result = d.stream(stream_request("long"), None).await;
    let routed = match result.ended() {
        Ok(routed) => routed,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(outcomes(&routed.attempts), vec![success("a")]);
    assert_eq!(result.chunks.len(), 202);
    let want: String = (0..200).map(|i| format!("w{i:03} ")).collect();
    assert_eq!(result.text(), want);
    assert_counts(&server, &[("a", 1), ("b", 0)]);
    settled(&d).await;
}

/// One 100 KB event under `max_response_bytes: 4096` is refused: before the commit the next
/// provider serves the stream; after it the caller has what came before, then
/// `StreamInterrupted`.
pub async fn one_stream_event_over_max_response_bytes_is_refused<D: Driver>() {
    let role = chunk_event(json!({"role": "assistant", "content": ""}), Value::Null);
    let big = chunk_event(json!({"content": "x".repeat(100_000)}), Value::Null);
    let hello = chunk_event(json!({"content": "Hello"}), Value::Null);
    let done = "data: [DONE]\n\n".to_owned();
    for committed in [false, true] {
        let server = MockServer::start().await;
        let events = if committed {
            vec![role.clone(), hello.clone(), big.clone(), done.clone()]
        } else {
            vec![role.clone(), big.clone(), done.clone()]
        };
        server.script("a", vec![Step::streaming(StreamStep::events(events))]);
        let mut cfg = providers(&server, &["a", "b"]);
        cfg["max_response_bytes"] = json!(4096);
        let d = D::build(config(cfg), None);
        let result = d.stream(stream_request("big event"), None).await;
        if committed {
            assert_interrupted(&result, "a");
            assert_eq!(result.text(), "Hello");
            assert_counts(&server, &[("a", 1), ("b", 0)]);
        } else {
            let routed = result.ended().as_ref().expect("served by b");
            assert_eq!(
                outcomes(&routed.attempts),
                vec![
                    ("a".into(), AttemptOutcome::BodyTooLarge { limit: 4096 }),
                    success("b")
                ]
            );
            assert_only_from(&result, "b");
            assert_eq!(result.text(), reply_text("b"));
            assert_counts(&server, &[("a", 1), ("b", 1)]);
        }
        settled(&d).await;
    }
}

/// An Anthropic stream piece: `event: {type}` and its data.
fn anthropic_event(data: Value) -> String {
    format!(
        "event: {}\ndata: {data}\n\n",
        data["type"].as_str().unwrap_or("")
    )
}

/// Anthropic extended thinking, as its documentation shows it (no recording has thinking):
/// `reasoning_effort` reaches the provider as a thinking budget under `max_tokens`; streamed,
/// 12 thoughts 100 ms apart under `ttft_ms: 1000` commit the attempt and arrive as
/// `reasoning_content`, the signature and a redacted block as `thinking_blocks`; not streamed,
/// the message carries both; sent back in an assistant turn, the blocks open that turn. Every
/// chunk and the completion are checked against the OpenAI spec.
pub async fn anthropic_extended_thinking_both_ways<D: Driver>() {
    let server = MockServer::start().await;
    let signature = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds";
    let redacted = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP";
    let mut events = vec![
        anthropic_event(json!({"type": "message_start", "message": {
            "id": "msg_think", "type": "message", "role": "assistant", "content": [],
            "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1}}})),
        anthropic_event(json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "thinking", "thinking": ""}})),
    ];
    for i in 0..12 {
        events.push(anthropic_event(
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "thinking_delta", "thinking": format!("step {i}. ")}}),
        ));
    }
    events.extend([
        anthropic_event(json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "signature_delta", "signature": signature}})),
        anthropic_event(json!({"type": "content_block_stop", "index": 0})),
        anthropic_event(json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "redacted_thinking", "data": redacted}})),
        anthropic_event(json!({"type": "content_block_stop", "index": 1})),
        anthropic_event(json!({"type": "content_block_start", "index": 2,
            "content_block": {"type": "text", "text": ""}})),
        anthropic_event(json!({"type": "content_block_delta", "index": 2,
            "delta": {"type": "text_delta", "text": "27 * 453 = 12,231"}})),
        anthropic_event(json!({"type": "content_block_stop", "index": 2})),
        anthropic_event(json!({"type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": 120}})),
        anthropic_event(json!({"type": "message_stop"})),
    ]);
    let thinking_block =
        json!({"type": "thinking", "thinking": "I multiply.", "signature": signature});
    let redacted_block = json!({"type": "redacted_thinking", "data": redacted});
    let answer = json!({
        "id": "msg_think2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [thinking_block, redacted_block, {"type": "text", "text": "12,231"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 50},
    });
    server.script(
        "c",
        vec![
            Step::streaming(StreamStep::events(events).chunk_gap(Duration::from_millis(100))),
            Step::ok().json(answer),
            Step::ok(),
        ],
    );
    let mut cfg = json!({"providers": [anthropic("c", server.base_url("c")), openai("b", server.base_url("b"))]});
    cfg["ttft_ms"] = json!(1_000);
    let d = D::build(config(cfg), None);

    // Streamed, reasoning_effort medium: a 2,048-token budget under the default 4,096.
    let request = ChatRequest::from_value(json!({
        "model": "gpt-4o", "messages": [{"role": "user", "content": "27 * 453?"}],
        "stream": true, "stream_options": {"include_usage": true}, "reasoning_effort": "medium",
    }))
    .unwrap();
    let result = d.stream(request, None).await;
    let routed = match result.ended() {
        Ok(routed) => routed,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(outcomes(&routed.attempts), vec![success("c")]);
    let chunks = result.json();
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    let thoughts: String = deltas
        .iter()
        .filter_map(|d| d["reasoning_content"].as_str())
        .collect();
    assert_eq!(
        thoughts,
        (0..12).map(|i| format!("step {i}. ")).collect::<String>()
    );
    let blocks: Vec<&Value> = deltas
        .iter()
        .filter_map(|d| d.get("thinking_blocks"))
        .collect();
    assert_eq!(
        blocks,
        [
            &json!([{"type": "thinking", "thinking": "", "signature": signature}]),
            &json!([redacted_block]),
        ]
    );
    assert_eq!(result.text(), "27 * 453 = 12,231");
    let sent = server.received("c")[0].json.clone().expect("JSON");
    assert_eq!(
        sent["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(sent["max_tokens"], 4096);

    // Not streamed, reasoning_effort high with a limit below its budget: the budget is added.
    let request = ChatRequest::from_value(json!({
        "model": "gpt-4o", "messages": [{"role": "user", "content": "27 * 453?"}],
        "reasoning_effort": "high", "max_completion_tokens": 1000,
    }))
    .unwrap();
    let routed = d.call(request).await.expect("served");
    let body = completion(&routed);
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], "12,231");
    assert_eq!(message["reasoning_content"], "I multiply.");
    assert_eq!(
        message["thinking_blocks"],
        json!([thinking_block, redacted_block])
    );
    let sent = server.received("c")[1].json.clone().expect("JSON");
    assert_eq!(
        sent["thinking"],
        json!({"type": "enabled", "budget_tokens": 4096})
    );
    assert_eq!(sent["max_tokens"], 5096);

    // The conversation continues: the assistant turn goes back with its thinking first.
    let mut turn = message.clone();
    turn["tool_calls"] = json!([{"id": "toolu_1", "type": "function",
        "function": {"name": "calc", "arguments": "{\"x\":1}"}}]);
    let request = ChatRequest::from_value(json!({
        "model": "gpt-4o", "reasoning_effort": "high",
        "messages": [{"role": "user", "content": "27 * 453?"}, turn,
                     {"role": "tool", "tool_call_id": "toolu_1", "content": "12231"}],
        "tools": [{"type": "function", "function": {"name": "calc", "parameters": {}}}],
    }))
    .unwrap();
    d.call(request).await.expect("served");
    let sent = server.received("c")[2].json.clone().expect("JSON");
    let content = &sent["messages"][1]["content"];
    assert_eq!(content[0], thinking_block);
    assert_eq!(content[1], redacted_block);
    assert_eq!(content[2]["type"], "text");
    assert_eq!(content[3]["type"], "tool_use");
    assert_counts(&server, &[("c", 3), ("b", 0)]);
    settled(&d).await;
}
