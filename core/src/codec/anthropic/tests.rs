use super::*;

// ----- helpers ------------------------------------------------------------------------------

fn fixture(rel: &str) -> String {
    let path = format!("{}/../tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Test-only SSE splitter (the real parser lives in `crate::sse`): events are separated by
/// blank lines; `event:` names them, `data:` lines are joined with `\n`.
fn split_sse(text: &str) -> Vec<SseEvent> {
    let text = text.replace("\r\n", "\n");
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let mut event = SseEvent::default();
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event.event = Some(value.to_owned()),
                "data" => data.push(value),
                _ => {}
            }
        }
        if !data.is_empty() {
            event.data = data.join("\n");
            events.push(event);
        }
    }
    events
}

struct Translated {
    items: Vec<StreamItem>,
    chunks: Vec<Value>,
}

impl Translated {
    fn text(&self) -> String {
        self.chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect()
    }
    fn finish_reasons(&self) -> Vec<&str> {
        self.chunks
            .iter()
            .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
            .collect()
    }
    fn tool_deltas(&self) -> Vec<&Value> {
        self.chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
            .flatten()
            .collect()
    }
    fn arguments(&self, k: u64) -> String {
        self.tool_deltas()
            .into_iter()
            .filter(|t| t["index"] == k)
            .filter_map(|t| t["function"]["arguments"].as_str())
            .collect()
    }
    fn usage_chunks(&self) -> Vec<&Value> {
        self.chunks
            .iter()
            .filter(|c| c.get("usage").is_some())
            .collect()
    }
}

fn translate(events: &[SseEvent], include_usage: bool) -> Translated {
    let mut t = StreamTranslator::new(include_usage, 1_700_000_000);
    let mut items = Vec::new();
    for e in events {
        t.on_event(e, &mut items)
            .unwrap_or_else(|err| panic!("{e:?}: {err}"));
    }
    let chunks = items
        .iter()
        .filter_map(|i| match i {
            StreamItem::Chunk { json, .. } => Some(serde_json::from_slice::<Value>(json).unwrap()),
            _ => None,
        })
        .collect::<Vec<_>>();
    chunks.iter().for_each(check_chunk);
    Translated { items, chunks }
}

fn translate_fixture(name: &str, include_usage: bool) -> Translated {
    translate(
        &split_sse(&fixture(&format!("anthropic/streams/{name}"))),
        include_usage,
    )
}

const FINISH: [&str; 5] = [
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "function_call",
];

/// The required fields of `CreateChatCompletionStreamResponse` (OpenAI spec).
fn check_chunk(c: &Value) {
    assert!(c["id"].is_string(), "{c}");
    assert_eq!(c["object"], "chat.completion.chunk", "{c}");
    assert!(c["created"].is_u64(), "{c}");
    assert!(c["model"].is_string(), "{c}");
    let choices = c["choices"].as_array().expect("choices");
    if choices.is_empty() {
        let u = &c["usage"];
        for k in ["prompt_tokens", "completion_tokens", "total_tokens"] {
            assert!(u[k].is_u64(), "{c}");
        }
    }
    for choice in choices {
        assert_eq!(choice["index"], 0, "{c}");
        assert!(choice["delta"].is_object(), "{c}");
        let f = choice
            .get("finish_reason")
            .expect("finish_reason is required");
        assert!(f.is_null() || FINISH.contains(&f.as_str().unwrap()), "{c}");
        assert!(choice["logprobs"].is_null(), "{c}");
        for tc in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(tc["index"].is_u64(), "{c}");
        }
    }
}

/// The required fields of `CreateChatCompletionResponse` (OpenAI spec).
fn check_response(r: &Value) {
    assert!(r["id"].is_string());
    assert_eq!(r["object"], "chat.completion");
    assert!(r["created"].is_u64());
    assert!(r["model"].is_string());
    for choice in r["choices"].as_array().expect("choices") {
        assert!(choice["index"].is_u64());
        assert!(FINISH.contains(&choice["finish_reason"].as_str().unwrap()));
        assert!(choice.get("logprobs").is_some_and(Value::is_null));
        let m = &choice["message"];
        assert_eq!(m["role"], "assistant");
        assert!(
            m.get("content")
                .is_some_and(|c| c.is_null() || c.is_string())
        );
        assert!(m.get("refusal").is_some_and(Value::is_null));
        for tc in m["tool_calls"].as_array().into_iter().flatten() {
            assert!(tc["id"].is_string() && tc["type"] == "function");
            assert!(tc["function"]["name"].is_string() && tc["function"]["arguments"].is_string());
        }
    }
    let u = &r["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"]
            .as_u64()
            .unwrap()
            .saturating_add(u["completion_tokens"].as_u64().unwrap())
    );
}

fn decode(body: &Value) -> Value {
    let out = decode_response(body.to_string().as_bytes(), 1_772_049_756).unwrap();
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        out.total_tokens,
        v.get("usage").map(|u| u["total_tokens"].as_u64().unwrap()),
        "the decoded total is the translated usage's"
    );
    check_response(&v);
    v
}

fn encode(request: Value) -> Result<Value, EncodeError> {
    let request = ChatRequest::from_value(request).unwrap();
    encode_request(&request, "claude-test", 4096).map(|b| serde_json::from_slice(&b).unwrap())
}

fn encode_ok(request: Value) -> Value {
    encode(request).unwrap_or_else(|e| panic!("{e}"))
}

fn err_field(request: Value) -> String {
    encode(request).expect_err("should not encode").field
}

fn with(extra: Value) -> Value {
    let mut r = json!({ "model": "gpt-4o", "messages": [{ "role": "user", "content": "hi" }] });
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

fn recorded_200() -> Vec<Value> {
    let v: Value = serde_json::from_str(&fixture(
        "anthropic/recorded/nonstream_200_with_ratelimit_headers_tool_use.json",
    ))
    .unwrap();
    v.as_array().unwrap().clone()
}

// ----- non-streamed response ------------------------------------------------------------------

#[test]
fn recorded_200_tool_use_response_decodes() {
    let exchanges = recorded_200();
    assert_eq!(exchanges.len(), 2, "the recording holds two exchanges");

    let first = decode(&exchanges[0]["response"]["body"]);
    assert_eq!(first["id"], "msg_01LAwUK3MeXUxoNW5ZgnPpGy");
    assert_eq!(first["model"], "claude-opus-4-5-20251101");
    assert_eq!(first["created"], 1_772_049_756);
    let choice = &first["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(
        choice["message"]["content"],
        "I'll check the weather for all three cities in Celsius simultaneously."
    );
    // The server_tool_use (code execution) block has no OpenAI counterpart and is skipped;
    // only the client tool call is the caller's to answer.
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["id"], "toolu_011MDRpaZRMRRjtFkJizD6nS");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        args,
        json!({ "location": "San Francisco, CA", "units": "c" })
    );
    assert_eq!(
        first["usage"],
        json!({ "prompt_tokens": 3182, "completion_tokens": 237, "total_tokens": 3419 })
    );

    let second = decode(&exchanges[1]["response"]["body"]);
    let message = &second["choices"][0]["message"];
    assert!(
        message["content"].is_null(),
        "no text blocks -> null content"
    );
    assert_eq!(
        message["tool_calls"][0]["id"],
        "toolu_01RXQDRjwv5Un7n98xFahjo8"
    );
    assert_eq!(second["usage"]["total_tokens"], 0);
}

#[test]
fn response_finish_reasons_and_cache_usage() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ] {
        let body = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{ "type": "thinking", "thinking": "hmm", "signature": "s" },
                        { "type": "text", "text": "a" }, { "type": "text", "text": "b" }],
            "stop_reason": stop, "stop_sequence": null,
            "usage": { "input_tokens": 10, "cache_creation_input_tokens": 5,
                       "cache_read_input_tokens": 20, "output_tokens": 7 },
        });
        let r = decode(&body);
        assert_eq!(r["choices"][0]["finish_reason"], finish, "{stop}");
        assert_eq!(r["choices"][0]["message"]["content"], "ab");
        assert!(r["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(r["usage"]["prompt_tokens"], 35);
        assert_eq!(r["usage"]["completion_tokens"], 7);
        assert_eq!(r["usage"]["total_tokens"], 42);
        assert_eq!(r["usage"]["prompt_tokens_details"]["cached_tokens"], 20);
    }
}

#[test]
fn token_counts_saturate_instead_of_wrapping() {
    let body = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{ "type": "text", "text": "a" }], "stop_reason": "end_turn",
        "usage": { "input_tokens": u64::MAX, "cache_creation_input_tokens": 5,
                   "cache_read_input_tokens": 7, "output_tokens": u64::MAX },
    });
    let r = decode(&body);
    assert_eq!(r["usage"]["prompt_tokens"], u64::MAX);
    assert_eq!(r["usage"]["completion_tokens"], u64::MAX);
    assert_eq!(r["usage"]["total_tokens"], u64::MAX);
}

#[test]
fn invalid_response_bodies_are_decode_errors() {
    let bad = |body: &str| decode_response(body.as_bytes(), 0).unwrap_err().0;
    assert!(bad("<html>").contains("not JSON"));
    assert!(bad(r#"{"type":"error","error":{"type":"x","message":"y"}}"#).contains("type `error`"));
    assert!(bad(r#"{"id":"m","model":"c","content":[]}"#).contains("no `type`"));
    assert!(bad(r#"{"type":"message","id":"m","model":"c"}"#).contains("`content` array"));
    assert!(bad(r#"{"type":"message","model":"c","content":[]}"#).contains("`id`"));
    assert!(
        bad(r#"{"type":"message","id":"m","model":"c","content":[{"text":"x"}]}"#)
            .contains("content[0]")
    );
    assert!(
        bad(r#"{"type":"message","id":"m","model":"c","content":[{"type":"text"}]}"#)
            .contains("`text`")
    );
    assert!(
        bad(r#"{"type":"message","id":"m","model":"c","content":[{"type":"tool_use","id":"t","name":"n"}]}"#)
            .contains("`input`")
    );
}

// ----- streams --------------------------------------------------------------------------------

#[test]
fn text_basic_stream() {
    let t = translate_fixture("text_basic.sse", false);
    assert_eq!(t.text(), "Hello there!");
    assert_eq!(t.finish_reasons(), ["stop"]);
    let StreamItem::Chunk { json, content } = &t.items[0] else {
        panic!()
    };
    assert!(!content, "the role chunk carries nothing of the answer");
    let first: Value = serde_json::from_slice(json).unwrap();
    assert_eq!(
        first["choices"][0]["delta"],
        json!({ "role": "assistant", "content": "" })
    );
    assert_eq!(first["id"], "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK");
    assert_eq!(first["model"], "claude-3-opus-latest");
    assert!(
        t.items[1..t.items.len() - 1]
            .iter()
            .all(|i| matches!(i, StreamItem::Chunk { content: true, .. }))
    );
    assert_eq!(t.items.last(), Some(&StreamItem::Done));
    assert!(
        t.usage_chunks().is_empty(),
        "no usage chunk unless asked for"
    );
    // Every chunk of one stream shares id, model and created.
    assert!(
        t.chunks
            .iter()
            .all(|c| c["id"] == first["id"] && c["created"] == 1_700_000_000)
    );
}

#[test]
fn tool_use_stream_reassembles_the_call() {
    let t = translate_fixture("tool_use.sse", true);
    assert_eq!(t.text(), "I'll check the current weather in Paris for you.");
    let starts: Vec<_> = t
        .tool_deltas()
        .into_iter()
        .filter(|d| d.get("id").is_some())
        .collect();
    assert_eq!(starts.len(), 1);
    // OpenAI index 0, although Anthropic's block index is 1.
    assert_eq!(starts[0]["index"], 0);
    assert_eq!(starts[0]["id"], "toolu_01NRLabsLyVHZPKxbKvkfSMn");
    assert_eq!(starts[0]["type"], "function");
    assert_eq!(starts[0]["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(&t.arguments(0)).unwrap();
    assert_eq!(args, json!({ "location": "Paris" }));
    assert_eq!(t.finish_reasons(), ["tool_calls"]);
    let usage = t.usage_chunks();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["choices"], json!([]));
    assert_eq!(
        usage[0]["usage"],
        json!({ "prompt_tokens": 377, "completion_tokens": 65, "total_tokens": 442 })
    );
    // The usage chunk comes last, just before Done.
    let n = t.items.len();
    assert_eq!(t.items[n - 1], StreamItem::Done);
    let StreamItem::Chunk {
        json,
        content: true,
    } = &t.items[n - 2]
    else {
        panic!()
    };
    assert_eq!(
        serde_json::from_slice::<Value>(json).unwrap()["usage"],
        usage[0]["usage"]
    );
}

#[test]
fn truncated_padded_stream_finishes_with_length() {
    let raw = fixture("anthropic/streams/tool_use_truncated_max_tokens_padded.sse");
    let events = split_sse(&raw);
    assert!(
        events.iter().any(|e| e.data.contains("}    ")),
        "fixture pads its data"
    );
    let t = translate(&events, true);
    assert_eq!(t.finish_reasons(), ["length"]);
    assert!(
        t.text()
            .starts_with("I'll create a comprehensive tax guide")
    );
    assert!(t.text().ends_with("Let me do that for you now."));
    // The arguments are what Anthropic sent, cut off mid-JSON: passed on, not repaired.
    let partials: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|v| v["delta"]["partial_json"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(t.arguments(0), partials);
    assert!(t.arguments(0).ends_with("\n\"Filing taxes"));
    assert!(serde_json::from_str::<Value>(&t.arguments(0)).is_err());
    assert_eq!(t.usage_chunks()[0]["usage"]["completion_tokens"], 124);
    assert_eq!(t.usage_chunks()[0]["usage"]["prompt_tokens"], 450);
    assert_eq!(t.items.last(), Some(&StreamItem::Done));
}

#[test]
fn refusal_stream_finishes_with_content_filter() {
    let t = translate_fixture("refusal.sse", false);
    assert_eq!(t.finish_reasons(), ["content_filter"]);
    assert_eq!(t.text(), "");
    assert_eq!(t.chunks.len(), 2, "role chunk and finish chunk only");
    assert_eq!(t.items.last(), Some(&StreamItem::Done));
}

#[test]
fn all_stream_fixtures_translate_with_and_without_usage() {
    for name in [
        "text_basic.sse",
        "tool_use.sse",
        "refusal.sse",
        "tool_use_truncated_max_tokens_padded.sse",
    ] {
        let without = translate_fixture(name, false);
        let with = translate_fixture(name, true);
        assert!(without.usage_chunks().is_empty(), "{name}");
        assert_eq!(with.usage_chunks().len(), 1, "{name}");
        assert_eq!(with.chunks.len(), without.chunks.len() + 1, "{name}");
        assert_eq!(with.finish_reasons().len(), 1, "{name}");
    }
}

#[test]
fn error_event_becomes_stream_error() {
    // `fixtures/errors/anthropic_errors.json`, example `stream_error_event_overloaded`.
    let sse = "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n";
    let mut events = split_sse(&fixture("anthropic/streams/text_basic.sse"));
    events.truncate(4); // message_start, block start, ping, one delta
    events.extend(split_sse(sse));
    let mut t = StreamTranslator::new(true, 0);
    let mut out = Vec::new();
    for e in &events {
        t.on_event(e, &mut out).unwrap();
    }
    let Some(StreamItem::Error { message }) = out.last() else {
        panic!("{out:?}")
    };
    assert!(
        message.contains("overloaded_error") && message.contains("Overloaded"),
        "{message}"
    );
    // An error before anything else (e.g. first event) is still an error item.
    let mut out = Vec::new();
    StreamTranslator::new(false, 0)
        .on_event(&split_sse(sse)[0], &mut out)
        .unwrap();
    assert!(matches!(&out[..], [StreamItem::Error { .. }]));
}

#[test]
fn stream_event_edge_cases() {
    let ev = |name: Option<&str>, data: &str| SseEvent {
        event: name.map(str::to_owned),
        data: data.to_owned(),
    };
    let start = ev(
        Some("message_start"),
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"usage":{"input_tokens":3,"output_tokens":1}}}"#,
    );
    let mut t = StreamTranslator::new(false, 0);
    let mut out = Vec::new();
    // Content before message_start has no id or model to carry.
    let early = ev(
        Some("content_block_delta"),
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
    );
    assert!(
        t.on_event(&early, &mut out)
            .unwrap_err()
            .0
            .contains("before `message_start`")
    );
    t.on_event(&start, &mut out).unwrap();
    assert_eq!(out.len(), 1);
    // ping, unknown events and non-JSON data in them: nothing.
    t.on_event(&ev(Some("ping"), "not json"), &mut out).unwrap();
    t.on_event(&ev(Some("future_event"), "{}"), &mut out)
        .unwrap();
    t.on_event(&ev(None, ""), &mut out).unwrap();
    assert_eq!(out.len(), 1);
    // Malformed JSON in a known event.
    let err = t
        .on_event(&ev(Some("content_block_delta"), "{\"type\":"), &mut out)
        .unwrap_err();
    assert!(err.0.contains("content_block_delta"), "{err}");
    // No event name: the JSON `type` decides.
    t.on_event(&ev(None, r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}  "#), &mut out)
        .unwrap();
    assert_eq!(out.len(), 2);
    // Citation and server-tool deltas have no OpenAI counterpart.
    t.on_event(&ev(None, r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"type":"char_location","cited_text":"x"}}}"#), &mut out)
        .unwrap();
    t.on_event(&ev(None, r#"{"type":"content_block_start","index":1,"content_block":{"type":"server_tool_use","id":"srv","name":"web_search","input":{}}}"#), &mut out)
        .unwrap();
    t.on_event(&ev(None, r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"q\""}}"#), &mut out)
        .unwrap();
    assert_eq!(out.len(), 2);
    // Two client tool calls get OpenAI indexes 0 and 1, whatever their block indexes.
    for (block, id) in [(2, "t_a"), (3, "t_b")] {
        let data = format!(
            r#"{{"type":"content_block_start","index":{block},"content_block":{{"type":"tool_use","id":"{id}","name":"f","input":{{}}}}}}"#
        );
        t.on_event(&ev(None, &data), &mut out).unwrap();
    }
    t.on_event(&ev(None, r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#), &mut out)
        .unwrap();
    let chunks: Vec<Value> = out[2..]
        .iter()
        .map(|i| match i {
            StreamItem::Chunk {
                json,
                content: true,
            } => serde_json::from_slice(json).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    chunks.iter().for_each(check_chunk);
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["tool_calls"][0]["index"],
        0
    );
    assert_eq!(
        chunks[1]["choices"][0]["delta"]["tool_calls"][0]["index"],
        1
    );
    assert_eq!(
        chunks[2]["choices"][0]["delta"]["tool_calls"][0],
        json!({ "index": 1, "function": { "arguments": "{}" } })
    );
    // message_stop without message_delta still finishes; nothing after Done.
    t.on_event(
        &ev(Some("message_stop"), r#"{"type":"message_stop"}"#),
        &mut out,
    )
    .unwrap();
    let n = out.len();
    assert_eq!(out[n - 1], StreamItem::Done);
    let StreamItem::Chunk { json, .. } = &out[n - 2] else {
        panic!()
    };
    assert_eq!(
        serde_json::from_slice::<Value>(json).unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    t.on_event(&start, &mut out).unwrap();
    assert_eq!(out.len(), n);
}

// ----- requests -------------------------------------------------------------------------------

/// The OpenAI request a caller would write for the recorded Anthropic requests.
fn weather_tool() -> Value {
    let recorded = &recorded_200()[0]["request"]["body"]["tools"][0];
    json!({ "type": "function", "function": {
        "name": recorded["name"],
        "description": recorded["description"],
        "parameters": recorded["input_schema"],
    }})
}

#[test]
fn encodes_the_recorded_first_request() {
    let recorded = &recorded_200()[0]["request"]["body"];
    let out = encode_ok(json!({
        "model": "gpt-4o",
        "max_tokens": 1024,
        "messages": [{ "role": "user", "content": "What is the weather in SF, NY, and London in Celsius?" }],
        "tools": [weather_tool()],
    }));
    assert_eq!(out["max_tokens"], recorded["max_tokens"]);
    assert_eq!(
        out["model"], "claude-test",
        "the caller's mapped model is sent"
    );
    assert_eq!(out["messages"][0]["role"], "user");
    assert_eq!(
        out["messages"][0]["content"],
        json!([{ "type": "text", "text": recorded["messages"][0]["content"] }])
    );
    let mut expected_tool = recorded["tools"][0].clone();
    expected_tool
        .as_object_mut()
        .unwrap()
        .remove("allowed_callers"); // Anthropic-only
    assert_eq!(out["tools"], json!([expected_tool]));
    assert!(out.get("tool_choice").is_none(), "the default is not sent");
    assert!(out.get("system").is_none() && out.get("stream").is_none());
}

#[test]
fn encodes_the_recorded_tool_result_turn() {
    // The second recorded request answers a client tool call with a tool result.
    let recorded = &recorded_200()[1]["request"]["body"]["messages"];
    let call = &recorded[1]["content"][2];
    let result = &recorded[2]["content"][0];
    let out = encode_ok(json!({
        "model": "gpt-4o",
        "messages": [
            { "role": "user", "content": recorded[0]["content"] },
            { "role": "assistant", "content": recorded[1]["content"][0]["text"], "tool_calls": [{
                "id": call["id"], "type": "function",
                "function": { "name": call["name"], "arguments": call["input"].to_string() },
            }]},
            { "role": "tool", "tool_call_id": result["tool_use_id"], "content": result["content"] },
        ],
        "tools": [weather_tool()],
    }));
    let messages = out["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"][0], recorded[1]["content"][0]);
    assert_eq!(
        messages[1]["content"][1],
        json!({ "type": "tool_use", "id": call["id"], "name": call["name"], "input": call["input"] })
    );
    assert_eq!(messages[2], recorded[2]);
}

#[test]
fn system_and_developer_messages_become_system() {
    let out = encode_ok(json!({ "model": "m", "messages": [
        { "role": "system", "content": "Be brief." },
        { "role": "user", "content": "hi" },
    ]}));
    assert_eq!(out["system"], "Be brief.");
    assert_eq!(out["messages"].as_array().unwrap().len(), 1);

    let out = encode_ok(json!({ "model": "m", "messages": [
        { "role": "system", "content": "One." },
        { "role": "developer", "content": [{ "type": "text", "text": "Two." }, { "type": "text", "text": "Three." }] },
        { "role": "user", "content": "hi" },
    ]}));
    assert_eq!(
        out["system"],
        json!([{ "type": "text", "text": "One." }, { "type": "text", "text": "Two." }, { "type": "text", "text": "Three." }])
    );
    let bad = json!({ "model": "m", "messages": [
        { "role": "system", "content": [{ "type": "image_url", "image_url": { "url": "https://x/y.png" } }] },
        { "role": "user", "content": "hi" },
    ]});
    assert_eq!(err_field(bad), "messages[0].content[0].type");
    assert_eq!(
        err_field(json!({ "model": "m", "messages": [{ "role": "system", "content": "only" }] })),
        "messages"
    );
}

#[test]
fn consecutive_turns_merge_and_tool_results_come_first() {
    let out = encode_ok(json!({ "model": "m", "messages": [
        { "role": "user", "content": "a" },
        { "role": "user", "content": [{ "type": "text", "text": "b" }] },
        { "role": "assistant", "content": null, "tool_calls": [
            { "id": "c1", "type": "function", "function": { "name": "f", "arguments": "{\"x\":1}" } },
            { "id": "c2", "type": "function", "function": { "name": "g", "arguments": "" } },
        ]},
        { "role": "tool", "tool_call_id": "c1", "content": "one" },
        { "role": "tool", "tool_call_id": "c2", "content": [{ "type": "text", "text": "two" }] },
        { "role": "user", "content": "thanks" },
        { "role": "assistant", "content": "ok" },
        { "role": "assistant", "content": [{ "type": "text", "text": "more" }, { "type": "refusal", "refusal": "no" }] },
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            { "role": "user", "content": [{ "type": "text", "text": "a" }, { "type": "text", "text": "b" }] },
            { "role": "assistant", "content": [
                { "type": "tool_use", "id": "c1", "name": "f", "input": { "x": 1 } },
                { "type": "tool_use", "id": "c2", "name": "g", "input": {} },
            ]},
            { "role": "user", "content": [
                { "type": "tool_result", "tool_use_id": "c1", "content": "one" },
                { "type": "tool_result", "tool_use_id": "c2", "content": [{ "type": "text", "text": "two" }] },
                { "type": "text", "text": "thanks" },
            ]},
            { "role": "assistant", "content": [
                { "type": "text", "text": "ok" }, { "type": "text", "text": "more" }, { "type": "text", "text": "no" },
            ]},
        ])
    );
}

#[test]
fn tool_call_arguments_must_be_a_json_object() {
    let call = |args: &str| {
        json!({ "model": "m", "messages": [
            { "role": "user", "content": "hi" },
            { "role": "assistant", "tool_calls": [
                { "id": "ok", "type": "function", "function": { "name": "f", "arguments": "{}" } },
                { "id": "c", "type": "function", "function": { "name": "f", "arguments": args } },
            ]},
        ]})
    };
    assert_eq!(
        err_field(call("{\"x\":")),
        "messages[1].tool_calls[1].function.arguments"
    );
    assert_eq!(
        err_field(call("[1]")),
        "messages[1].tool_calls[1].function.arguments"
    );
    let missing_id = json!({ "model": "m", "messages": [{ "role": "tool", "content": "x" }] });
    assert_eq!(err_field(missing_id), "messages[0].tool_call_id");
    let function_role =
        json!({ "model": "m", "messages": [{ "role": "function", "name": "f", "content": "x" }] });
    assert_eq!(err_field(function_role), "messages[0].role");
}

#[test]
fn images_translate_to_base64_or_url_sources() {
    let out = encode_ok(
        json!({ "model": "m", "messages": [{ "role": "user", "content": [
            { "type": "text", "text": "What is this?" },
            { "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high" } },
            { "type": "image_url", "image_url": { "url": "https://example.com/cat.jpg" } },
        ]}]}),
    );
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            { "type": "text", "text": "What is this?" },
            { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo=" } },
            { "type": "image", "source": { "type": "url", "url": "https://example.com/cat.jpg" } },
        ])
    );
    let image = |url: &str| {
        json!({ "model": "m", "messages": [{ "role": "user", "content": [
            { "type": "image_url", "image_url": { "url": url } },
        ]}]})
    };
    assert_eq!(
        err_field(image("ftp://x/y.png")),
        "messages[0].content[0].image_url.url"
    );
    assert_eq!(
        err_field(image("data:image/png,rawbytes")),
        "messages[0].content[0].image_url.url"
    );
    let audio = json!({ "model": "m", "messages": [{ "role": "user", "content": [
        { "type": "input_audio", "input_audio": { "data": "AAAA", "format": "wav" } },
    ]}]});
    assert_eq!(err_field(audio), "messages[0].content[0].type");
}

#[test]
fn tools_and_tool_choice() {
    let tools = json!([weather_tool(), { "type": "function", "function": { "name": "now" } }]);
    let out = encode_ok(with(json!({ "tools": tools })));
    assert_eq!(
        out["tools"][1],
        json!({ "name": "now", "input_schema": { "type": "object", "properties": {} } })
    );
    for (choice, expected) in [
        (json!("auto"), json!({ "type": "auto" })),
        (json!("required"), json!({ "type": "any" })),
        (json!("none"), json!({ "type": "none" })),
        (
            json!({ "type": "function", "function": { "name": "now" } }),
            json!({ "type": "tool", "name": "now" }),
        ),
    ] {
        let out = encode_ok(with(json!({ "tools": tools, "tool_choice": choice })));
        assert_eq!(out["tool_choice"], expected, "{choice}");
    }
    let out = encode_ok(with(
        json!({ "tools": tools, "tool_choice": "required", "parallel_tool_calls": false }),
    ));
    assert_eq!(
        out["tool_choice"],
        json!({ "type": "any", "disable_parallel_tool_use": true })
    );
    let out = encode_ok(with(
        json!({ "tools": tools, "parallel_tool_calls": false }),
    ));
    assert_eq!(
        out["tool_choice"],
        json!({ "type": "auto", "disable_parallel_tool_use": true })
    );
    let out = encode_ok(with(json!({ "tools": tools, "parallel_tool_calls": true })));
    assert!(out.get("tool_choice").is_none());
    let out = encode_ok(with(json!({ "tool_choice": "none" })));
    assert!(out.get("tool_choice").is_none() && out.get("tools").is_none());

    assert_eq!(
        err_field(with(json!({ "tool_choice": "required" }))),
        "tool_choice"
    );
    assert_eq!(
        err_field(with(
            json!({ "tools": [{ "type": "custom", "custom": { "name": "x" } }] })
        )),
        "tools[0].type"
    );
    let allowed =
        json!({ "type": "allowed_tools", "allowed_tools": { "mode": "auto", "tools": [] } });
    assert_eq!(
        err_field(with(json!({ "tools": tools, "tool_choice": allowed }))),
        "tool_choice"
    );
}

#[test]
fn sampling_limits_stream_and_user() {
    let out = encode_ok(with(json!({})));
    assert_eq!(
        out["max_tokens"], 4096,
        "default when the request sets none"
    );
    assert_eq!(
        encode_ok(with(json!({ "max_tokens": 100 })))["max_tokens"],
        100
    );
    assert_eq!(
        encode_ok(with(
            json!({ "max_completion_tokens": 200, "max_tokens": 100 })
        ))["max_tokens"],
        200
    );
    assert_eq!(
        encode_ok(with(json!({ "max_tokens": null })))["max_tokens"],
        4096
    );
    assert_eq!(err_field(with(json!({ "max_tokens": 0 }))), "max_tokens");

    assert_eq!(
        encode_ok(with(json!({ "stop": "END" })))["stop_sequences"],
        json!(["END"])
    );
    assert_eq!(
        encode_ok(with(json!({ "stop": ["a", "b"] })))["stop_sequences"],
        json!(["a", "b"])
    );
    assert!(
        encode_ok(with(json!({ "stop": [] })))
            .get("stop_sequences")
            .is_none()
    );
    assert_eq!(err_field(with(json!({ "stop": ["a", "\n"] }))), "stop[1]");

    let out = encode_ok(with(json!({ "temperature": 0.5, "top_p": 0.9 })));
    assert_eq!(
        (out["temperature"].as_f64(), out["top_p"].as_f64()),
        (Some(0.5), Some(0.9))
    );
    assert_eq!(
        err_field(with(json!({ "temperature": 1.5 }))),
        "temperature"
    );
    assert_eq!(
        err_field(with(json!({ "temperature": -0.1 }))),
        "temperature"
    );

    let out = encode_ok(with(
        json!({ "stream": true, "stream_options": { "include_usage": true } }),
    ));
    assert_eq!(out["stream"], true);
    assert!(out.get("stream_options").is_none());
    assert!(
        encode_ok(with(json!({ "stream": false })))
            .get("stream")
            .is_none()
    );

    assert_eq!(
        encode_ok(with(json!({ "user": "u-42" })))["metadata"],
        json!({ "user_id": "u-42" })
    );
    let out = encode_ok(with(json!({ "user": "old", "safety_identifier": "new" })));
    assert_eq!(out["metadata"]["user_id"], "new");
}

#[test]
fn harmless_fields_are_accepted() {
    let out = encode_ok(with(json!({
        "store": false, "service_tier": "auto", "n": 1, "parallel_tool_calls": true,
        "metadata": { "tag": "x" }, "logprobs": false, "logit_bias": {}, "presence_penalty": 0,
        "frequency_penalty": 0.0, "response_format": { "type": "text" }, "modalities": ["text"],
        "seed": null, "top_logprobs": null, "prompt_cache_key": "k",
    })));
    assert!(
        out.get("metadata").is_none(),
        "OpenAI metadata is not Anthropic's"
    );
}

#[test]
fn every_inexpressible_field_is_named() {
    for (field, value) in [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("audio", json!({ "voice": "alloy", "format": "wav" })),
        ("modalities", json!(["text", "audio"])),
        ("prediction", json!({ "type": "content", "content": "x" })),
        ("logit_bias", json!({ "50256": -100 })),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(-1)),
        ("seed", json!(7)),
        ("functions", json!([{ "name": "f" }])),
        ("verbosity", json!("low")),
        ("web_search_options", json!({})),
        ("made_up_field", json!(true)),
    ] {
        let err = encode(with(json!({ field: value }))).expect_err(field);
        assert_eq!(err.field, field);
        assert!(!err.reason.is_empty());
    }
    // Structured output is the machine's to validate: accepted, not sent.
    let out = encode_ok(with(json!({
        "response_format": { "type": "json_schema", "json_schema": { "name": "x", "schema": {} } }
    })));
    assert!(out.get("response_format").is_none());
    let err = encode(with(json!({ "seed": 1 }))).unwrap_err();
    assert!(
        err.to_string().contains("`seed`") && err.reason.contains("seed"),
        "{err}"
    );
}
