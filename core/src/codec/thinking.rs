//! Anthropic extended thinking in the OpenAI shape, both ways (as LiteLLM's users know it).
//!
//! - Request: OpenAI's `reasoning_effort` becomes `thinking: {"type": "enabled", "budget_tokens":
//!   N}` by [`BUDGETS`]; an explicit `thinking` object (Anthropic's own) is passed through
//!   instead. Anthropic requires `max_tokens` above the budget, so a limit at or below it (the
//!   caller's, or the provider's `default_max_tokens`) gets the budget added: the answer keeps the
//!   room it was given, the thinking has its budget on top. Sampling settings that extended
//!   thinking does not accept are refused by name rather than left for a 400.
//! - Response: `thinking` blocks become `message.reasoning_content` (their text, joined), and
//!   every `thinking` and `redacted_thinking` block is kept, signature and all, in
//!   `message.thinking_blocks`; a caller continuing a tool-use turn sends the assistant message
//!   back with `thinking_blocks`, and they become the turn's first content blocks again.
//! - Stream: `thinking_delta` becomes `delta.reasoning_content`; `signature_delta` becomes
//!   `delta.thinking_blocks: [{"type": "thinking", "thinking": "", "signature": ...}]` (the
//!   block's text is the `reasoning_content` streamed since the previous block, not repeated);
//!   a `redacted_thinking` block becomes `delta.thinking_blocks: [{"type": "redacted_thinking",
//!   "data": ...}]`. Nothing of a thinking block is dropped.

use crate::codec::{DecodeError, EncodeError};
use serde_json::{Map, Value, json};

/// `reasoning_effort` -> `budget_tokens`. `low`, `medium` and `high` are LiteLLM's budgets;
/// `minimal` is Anthropic's minimum budget (1,024); `xhigh` and `max` double on from `high`.
/// `none` sends no `thinking` at all.
pub const BUDGETS: [(&str, u64); 6] = [
    ("minimal", 1_024),
    ("low", 1_024),
    ("medium", 2_048),
    ("high", 4_096),
    ("xhigh", 8_192),
    ("max", 16_384),
];

fn enc_err(field: impl Into<String>, reason: impl Into<String>) -> EncodeError {
    EncodeError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The `thinking` object to send and the `max_tokens` to send with it, or `None` when the
/// request asks for no thinking. `max_tokens` is the limit the request would otherwise have.
pub(super) fn encode(
    body: &Map<String, Value>,
    max_tokens: u64,
) -> Result<Option<(Value, u64)>, EncodeError> {
    let present = |key: &str| body.get(key).filter(|v| !v.is_null());
    let thinking = match (present("reasoning_effort"), present("thinking")) {
        (Some(_), Some(_)) => {
            return Err(enc_err(
                "reasoning_effort",
                "set either `reasoning_effort` or `thinking`, not both",
            ));
        }
        (Some(effort), None) => {
            let effort = effort
                .as_str()
                .ok_or_else(|| enc_err("reasoning_effort", "must be a string"))?;
            if effort == "none" {
                return Ok(None);
            }
            let budget = BUDGETS
                .iter()
                .find(|(name, _)| *name == effort)
                .map(|(_, budget)| *budget)
                .ok_or_else(|| {
                    enc_err(
                        "reasoning_effort",
                        "must be one of none, minimal, low, medium, high, xhigh, max",
                    )
                })?;
            json!({ "type": "enabled", "budget_tokens": budget })
        }
        (None, Some(thinking)) => check_thinking_object(thinking)?,
        (None, None) => return Ok(None),
    };
    let budget = thinking.get("budget_tokens").and_then(Value::as_u64);
    if thinking["type"] != "disabled" {
        check_sampling(body)?;
    }
    let max_tokens = match budget {
        Some(budget) if max_tokens <= budget => budget.saturating_add(max_tokens),
        _ => max_tokens,
    };
    Ok(Some((thinking, max_tokens)))
}

/// Anthropic's own `thinking` object, passed through once it has a `type` (and, if it has a
/// budget, a positive integer one).
fn check_thinking_object(thinking: &Value) -> Result<Value, EncodeError> {
    let Some(object) = thinking.as_object() else {
        return Err(enc_err("thinking", "must be an object"));
    };
    if !object.get("type").is_some_and(Value::is_string) {
        return Err(enc_err(
            "thinking.type",
            "must be a string (`enabled`, `disabled`, ...)",
        ));
    }
    if let Some(budget) = object.get("budget_tokens")
        && budget.as_u64().is_none_or(|n| n == 0)
    {
        return Err(enc_err(
            "thinking.budget_tokens",
            "must be a positive integer",
        ));
    }
    if object["type"] == "enabled" && !object.contains_key("budget_tokens") {
        return Err(enc_err(
            "thinking.budget_tokens",
            "is required when thinking is enabled",
        ));
    }
    Ok(thinking.clone())
}

/// What Anthropic accepts alongside extended thinking: temperature 1 only, `top_p` from 0.95,
/// and no forced tool (`tool_choice` `auto` or `none`).
fn check_sampling(body: &Map<String, Value>) -> Result<(), EncodeError> {
    let present = |key: &str| body.get(key).filter(|v| !v.is_null());
    if let Some(t) = present("temperature")
        && t.as_f64() != Some(1.0)
    {
        return Err(enc_err(
            "temperature",
            "Anthropic extended thinking (reasoning_effort / thinking) takes only temperature 1",
        ));
    }
    if let Some(p) = present("top_p")
        && !p.as_f64().is_some_and(|p| (0.95..=1.0).contains(&p))
    {
        return Err(enc_err(
            "top_p",
            "Anthropic extended thinking (reasoning_effort / thinking) takes top_p from 0.95 to 1",
        ));
    }
    if let Some(choice) = present("tool_choice")
        && !matches!(choice.as_str(), Some("auto" | "none"))
    {
        return Err(enc_err(
            "tool_choice",
            "Anthropic extended thinking (reasoning_effort / thinking) cannot force a tool; use auto or none",
        ));
    }
    Ok(())
}

/// An assistant message's `thinking_blocks` (what [`decode_blocks`] gave the caller), as the
/// Anthropic blocks that open that turn's content.
pub(super) fn history_blocks(message: &Value, i: usize) -> Result<Vec<Value>, EncodeError> {
    let field = format!("messages[{i}].thinking_blocks");
    let Some(blocks) = message.get("thinking_blocks").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let blocks = blocks
        .as_array()
        .ok_or_else(|| enc_err(&field, "must be an array"))?;
    let mut out = Vec::with_capacity(blocks.len());
    for (j, block) in blocks.iter().enumerate() {
        let at = |key: &str| format!("{field}[{j}].{key}");
        let text = |key: &str| {
            block
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| enc_err(at(key), "must be a string"))
        };
        out.push(match block.get("type").and_then(Value::as_str) {
            Some("thinking") => json!({
                "type": "thinking",
                "thinking": text("thinking")?,
                "signature": text("signature")?,
            }),
            Some("redacted_thinking") => {
                json!({ "type": "redacted_thinking", "data": text("data")? })
            }
            _ => {
                return Err(enc_err(
                    at("type"),
                    "must be `thinking` or `redacted_thinking`",
                ));
            }
        });
    }
    Ok(out)
}

/// The thinking of a non-streamed answer, collected block by block.
#[derive(Debug, Default)]
pub(super) struct ResponseThinking {
    text: String,
    blocks: Vec<Value>,
}

impl ResponseThinking {
    /// Takes `block` if it is a thinking block (`true`), else leaves it to the caller.
    pub(super) fn take(&mut self, block: &Value, what: &str) -> Result<bool, DecodeError> {
        let text = |key: &str| {
            block
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| DecodeError(format!("{what} has no string `{key}`")))
        };
        match block.get("type").and_then(Value::as_str) {
            Some("thinking") => {
                let thinking = text("thinking")?;
                self.text.push_str(thinking);
                self.blocks.push(json!({
                    "type": "thinking",
                    "thinking": thinking,
                    "signature": text("signature")?,
                }));
                Ok(true)
            }
            Some("redacted_thinking") => {
                self.blocks
                    .push(json!({ "type": "redacted_thinking", "data": text("data")? }));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Adds `reasoning_content` and `thinking_blocks` to the OpenAI message, if there was any
    /// thinking.
    pub(super) fn into_message(self, message: &mut Value) {
        if self.blocks.is_empty() {
            return;
        }
        if self.blocks.iter().any(|b| b["type"] == "thinking") {
            message["reasoning_content"] = Value::from(self.text);
        }
        message["thinking_blocks"] = Value::Array(self.blocks);
    }
}

/// The OpenAI delta for a thinking stream event: a `thinking_delta` or `signature_delta` (given
/// as the event's `delta`), or a `redacted_thinking` block's start (given as its
/// `content_block`). `Ok(None)`: not thinking, or nothing to say (an empty piece).
pub(super) fn stream_delta(part: &Value, what: &str) -> Result<Option<Value>, DecodeError> {
    let text = |key: &str| {
        part.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| DecodeError(format!("{what} has no string `{key}`")))
    };
    Ok(match part.get("type").and_then(Value::as_str) {
        Some("thinking_delta") => Some(text("thinking")?)
            .filter(|t| !t.is_empty())
            .map(|t| json!({ "reasoning_content": t })),
        // A thinking block's start carries its text so far (normally none).
        Some("thinking") => Some(text("thinking")?)
            .filter(|t| !t.is_empty())
            .map(|t| json!({ "reasoning_content": t })),
        Some("signature_delta") => Some(json!({ "thinking_blocks": [{
            "type": "thinking", "thinking": "", "signature": text("signature")?,
        }]})),
        Some("redacted_thinking") => Some(json!({ "thinking_blocks": [{
            "type": "redacted_thinking", "data": text("data")?,
        }]})),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use crate::codec::StreamItem;
    use crate::codec::anthropic::{StreamTranslator, decode_response, encode_request};
    use crate::request::ChatRequest;
    use crate::sse::{SseEvent, SseParser};
    use serde_json::{Value, json};

    fn encode(extra: Value) -> Result<Value, crate::codec::EncodeError> {
        let mut request = json!({
            "model": "gpt-4o",
            "messages": [{ "role": "user", "content": "27 * 453?" }],
        });
        request
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let request = ChatRequest::from_value(request).unwrap();
        encode_request(&request, "claude-sonnet-4-5", 4096)
            .map(|body| serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn reasoning_effort_becomes_a_thinking_budget_below_max_tokens() {
        for (effort, budget) in super::BUDGETS {
            let body = encode(json!({ "reasoning_effort": effort })).expect(effort);
            assert_eq!(
                body["thinking"],
                json!({ "type": "enabled", "budget_tokens": budget })
            );
            let max = body["max_tokens"].as_u64().unwrap();
            assert!(max > budget, "{effort}: max_tokens {max} <= {budget}");
            // The default 4096 is above every budget up to `medium` and kept there.
            if budget < 4096 {
                assert_eq!(max, 4096, "{effort}");
            } else {
                assert_eq!(max, budget + 4096, "{effort}");
            }
        }
        // A caller's limit at or below the budget gets the budget added, above it is kept.
        let body = encode(json!({ "reasoning_effort": "high", "max_completion_tokens": 1000 }));
        assert_eq!(body.unwrap()["max_tokens"], 5096);
        let body = encode(json!({ "reasoning_effort": "high", "max_tokens": 9000 }));
        assert_eq!(body.unwrap()["max_tokens"], 9000);
        // `none` and null ask for no thinking.
        for effort in [json!("none"), Value::Null] {
            let body = encode(json!({ "reasoning_effort": effort })).unwrap();
            assert!(body.get("thinking").is_none(), "{body}");
            assert_eq!(body["max_tokens"], 4096);
        }
    }

    #[test]
    fn an_explicit_thinking_object_passes_through() {
        let thinking = json!({ "type": "enabled", "budget_tokens": 10_000 });
        let body = encode(json!({ "thinking": thinking, "max_tokens": 16_000 })).unwrap();
        assert_eq!(body["thinking"], thinking);
        assert_eq!(body["max_tokens"], 16_000);
        let body = encode(json!({ "thinking": thinking })).unwrap();
        assert_eq!(body["max_tokens"], 14_096);
        let disabled = json!({ "type": "disabled" });
        let body = encode(json!({ "thinking": disabled, "temperature": 0.2 })).unwrap();
        assert_eq!(body["thinking"], disabled);
        assert_eq!(body["max_tokens"], 4096);
    }

    #[test]
    fn what_thinking_cannot_take_is_named() {
        for (extra, field) in [
            (json!({ "reasoning_effort": "extreme" }), "reasoning_effort"),
            (json!({ "reasoning_effort": 3 }), "reasoning_effort"),
            (
                json!({ "reasoning_effort": "low", "thinking": { "type": "disabled" } }),
                "reasoning_effort",
            ),
            (json!({ "thinking": "on" }), "thinking"),
            (json!({ "thinking": {} }), "thinking.type"),
            (
                json!({ "thinking": { "type": "enabled" } }),
                "thinking.budget_tokens",
            ),
            (
                json!({ "thinking": { "type": "enabled", "budget_tokens": -1 } }),
                "thinking.budget_tokens",
            ),
            (
                json!({ "reasoning_effort": "low", "temperature": 0.5 }),
                "temperature",
            ),
            (json!({ "reasoning_effort": "low", "top_p": 0.5 }), "top_p"),
            (
                json!({ "reasoning_effort": "low", "tool_choice": "required",
                        "tools": [{ "type": "function", "function": { "name": "f", "parameters": {} } }] }),
                "tool_choice",
            ),
        ] {
            let err = encode(extra.clone()).expect_err(&extra.to_string());
            assert_eq!(err.field, field, "{extra}");
        }
        // What thinking does accept.
        let ok = json!({ "reasoning_effort": "low", "temperature": 1, "top_p": 0.95, "tool_choice": "auto",
                         "tools": [{ "type": "function", "function": { "name": "f", "parameters": {} } }] });
        assert!(encode(ok).is_ok());
    }

    /// Anthropic's documented non-streamed answer with thinking (extended-thinking guide), plus
    /// a redacted block.
    fn thinking_response() -> Value {
        json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [
                { "type": "thinking", "thinking": "Let me analyze this step by step...",
                  "signature": "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL...." },
                { "type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP..." },
                { "type": "text", "text": "Based on my analysis..." }
            ],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": { "input_tokens": 10, "output_tokens": 300 },
        })
    }

    #[test]
    fn a_response_keeps_its_thinking() {
        let body = serde_json::to_vec(&thinking_response()).unwrap();
        let out: Value = serde_json::from_slice(&decode_response(&body, 0).unwrap().body).unwrap();
        let message = &out["choices"][0]["message"];
        assert_eq!(message["content"], "Based on my analysis...");
        assert_eq!(
            message["reasoning_content"],
            "Let me analyze this step by step..."
        );
        let content = &thinking_response()["content"];
        assert_eq!(message["thinking_blocks"], json!([content[0], content[1]]));
        // Without thinking, neither field appears.
        let mut plain = thinking_response();
        plain["content"] = json!([{ "type": "text", "text": "hi" }]);
        let body = serde_json::to_vec(&plain).unwrap();
        let out: Value = serde_json::from_slice(&decode_response(&body, 0).unwrap().body).unwrap();
        let message = out["choices"][0]["message"].as_object().unwrap();
        assert!(
            !message.contains_key("reasoning_content") && !message.contains_key("thinking_blocks")
        );
        // A thinking block without its signature is not a valid answer.
        let mut broken = thinking_response();
        broken["content"][0]
            .as_object_mut()
            .unwrap()
            .remove("signature");
        let body = serde_json::to_vec(&broken).unwrap();
        assert!(
            decode_response(&body, 0)
                .unwrap_err()
                .0
                .contains("signature")
        );
    }

    #[test]
    fn thinking_blocks_go_back_first_in_their_turn() {
        let content = &thinking_response()["content"];
        let body = encode(json!({
            "reasoning_effort": "low",
            "messages": [
                { "role": "user", "content": "weather?" },
                { "role": "assistant", "content": null,
                  "reasoning_content": "Let me analyze this step by step...",
                  "thinking_blocks": [content[0], content[1]],
                  "tool_calls": [{ "id": "toolu_1", "type": "function",
                                   "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } }] },
                { "role": "tool", "tool_call_id": "toolu_1", "content": "sunny" },
            ],
            "tools": [{ "type": "function", "function": { "name": "get_weather", "parameters": {} } }],
        }))
        .unwrap();
        let turn = &body["messages"][1];
        assert_eq!(turn["role"], "assistant");
        assert_eq!(turn["content"][0], content[0]);
        assert_eq!(turn["content"][1], content[1]);
        assert_eq!(turn["content"][2]["type"], "tool_use");
        let bad = encode(json!({ "messages": [
            { "role": "user", "content": "x" },
            { "role": "assistant", "content": "y", "thinking_blocks": [{ "type": "thinking", "thinking": "t" }] },
        ]}));
        assert_eq!(
            bad.unwrap_err().field,
            "messages[1].thinking_blocks[0].signature"
        );
    }

    /// Anthropic's documented thinking stream (extended-thinking guide, "Streaming thinking"),
    /// with a redacted block added.
    const THINKING_STREAM: &str = concat!(
        "event: message_start\n",
        r#"data: {"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 1}}}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me solve this step by step:\n\n1. First break down 27 * 453"}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "\n2. 453 = 400 + 50 + 3"}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."}}"#,
        "\n\nevent: content_block_stop\n",
        r#"data: {"type": "content_block_stop", "index": 0}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix..."}}"#,
        "\n\nevent: content_block_stop\n",
        r#"data: {"type": "content_block_stop", "index": 1}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "27 * 453 = 12,231"}}"#,
        "\n\nevent: content_block_stop\n",
        r#"data: {"type": "content_block_stop", "index": 2}"#,
        "\n\nevent: message_delta\n",
        r#"data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 120}}"#,
        "\n\nevent: message_stop\n",
        r#"data: {"type": "message_stop"}"#,
        "\n\n",
    );

    #[test]
    fn a_thinking_stream_becomes_reasoning_content_and_keeps_signatures() {
        let mut parser = SseParser::new();
        let mut events: Vec<SseEvent> = Vec::new();
        parser.push(THINKING_STREAM.as_bytes(), &mut events);
        parser.finish(&mut events);
        let mut t = StreamTranslator::new(true, 7);
        let mut items = Vec::new();
        for event in &events {
            t.on_event(event, &mut items).unwrap();
        }
        let chunks: Vec<(Value, bool)> = items
            .iter()
            .filter_map(|i| match i {
                StreamItem::Chunk { json, content } => {
                    Some((serde_json::from_slice(json).unwrap(), *content))
                }
                _ => None,
            })
            .collect();
        let deltas: Vec<&Value> = chunks
            .iter()
            .map(|(c, _)| &c["choices"][0]["delta"])
            .collect();
        // role, two thoughts, the signature, the redacted block, the text, the finish, usage.
        assert_eq!(chunks.len(), 8, "{deltas:?}");
        assert!(!chunks[0].1 && chunks[1..].iter().all(|(_, content)| *content));
        let thoughts: String = deltas
            .iter()
            .filter_map(|d| d["reasoning_content"].as_str())
            .collect();
        assert_eq!(
            thoughts,
            "Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3"
        );
        assert_eq!(
            deltas[3]["thinking_blocks"],
            json!([{ "type": "thinking", "thinking": "",
                     "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..." }])
        );
        assert_eq!(
            deltas[4]["thinking_blocks"],
            json!([{ "type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix..." }])
        );
        assert_eq!(deltas[5]["content"], "27 * 453 = 12,231");
        assert_eq!(items.last(), Some(&StreamItem::Done));
        // A signature delta without its signature is not a valid event.
        let bad = SseEvent {
            event: Some("content_block_delta".into()),
            data: r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta"}}"#
                .into(),
        };
        let mut t = StreamTranslator::new(false, 0);
        t.on_event(&events[0], &mut items).unwrap();
        assert!(
            t.on_event(&bad, &mut items)
                .unwrap_err()
                .0
                .contains("signature")
        );
    }
}
