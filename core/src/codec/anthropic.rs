//! Anthropic Messages API <-> OpenAI chat completions.
//!
//! The router speaks the OpenAI shape to its caller whichever provider serves a request, so an
//! Anthropic provider needs a translation both ways:
//!
//! - [`encode_request`] turns an OpenAI chat request into a Messages body. Anything Anthropic cannot
//!   express (`n > 1`, logprobs, penalties, a seed, audio, ...) is an [`EncodeError`]
//!   naming the field, never silently dropped: a caller who asked for it would otherwise get an
//!   answer that quietly ignores it. Fields the codec does not know are rejected for the same reason.
//!   `response_format` `json_object` / `json_schema` is not sent: the machine validates the answer
//!   against it, whichever provider served it.
//! - [`decode_response`] turns a non-streamed Messages response into a `chat.completion`.
//! - [`StreamTranslator`] turns Messages stream events into `chat.completion.chunk`s.
//!
//! Every JSON this module produces carries the fields `CreateChatCompletionResponse` and
//! `CreateChatCompletionStreamResponse` of the OpenAI spec require.

use crate::codec::thinking::{self, ResponseThinking};
use crate::codec::{DecodeError, Decoded, EncodeError, StreamItem};
use crate::request::ChatRequest;
use crate::sse::SseEvent;
use bytes::Bytes;
use serde_json::{Map, Value, json};

fn enc_err(field: impl Into<String>, reason: impl Into<String>) -> EncodeError {
    EncodeError {
        field: field.into(),
        reason: reason.into(),
    }
}

fn dec_err(reason: impl Into<String>) -> DecodeError {
    DecodeError(reason.into())
}

// ---------------------------------------------------------------------------------------------
// Request: OpenAI -> Anthropic
// ---------------------------------------------------------------------------------------------

/// Builds the Anthropic Messages body (JSON bytes) for `request`, sending `model` (already mapped
/// by the caller) and `default_max_tokens` when the request sets neither `max_tokens` nor
/// `max_completion_tokens`: Anthropic requires `max_tokens`, OpenAI does not.
///
/// A field set to `null` counts as absent, as it does for OpenAI.
pub fn encode_request(
    request: &ChatRequest,
    model: &str,
    default_max_tokens: u32,
) -> Result<Vec<u8>, EncodeError> {
    let body = request.body();
    let mut out = Map::new();
    out.insert("model".into(), Value::from(model));

    // Fields with no Anthropic counterpart are checked first and one by one, so the error names
    // exactly the field the caller must drop.
    for (key, value) in body {
        if value.is_null() {
            continue;
        }
        check_top_level_field(key, value)?;
    }

    let (system, messages) = encode_messages(body.get("messages"))?;
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(messages));

    let max_tokens = match (
        present(body, "max_completion_tokens"),
        present(body, "max_tokens"),
    ) {
        (Some(v), _) => positive_int(v, "max_completion_tokens")?,
        (None, Some(v)) => positive_int(v, "max_tokens")?,
        (None, None) => u64::from(default_max_tokens),
    };
    let max_tokens = match thinking::encode(body, max_tokens)? {
        Some((thinking, max_tokens)) => {
            out.insert("thinking".into(), thinking);
            max_tokens
        }
        None => max_tokens,
    };
    out.insert("max_tokens".into(), Value::from(max_tokens));

    if let Some(stop) = present(body, "stop") {
        let sequences = encode_stop(stop)?;
        if !sequences.is_empty() {
            out.insert("stop_sequences".into(), Value::Array(sequences));
        }
    }

    if let Some(t) = present(body, "temperature") {
        let n = t
            .as_f64()
            .ok_or_else(|| enc_err("temperature", "must be a number"))?;
        if !(0.0..=1.0).contains(&n) {
            return Err(enc_err(
                "temperature",
                format!(
                    "Anthropic accepts 0 to 1, got {n}; OpenAI's 0 to 2 scale is not rescaled silently"
                ),
            ));
        }
        out.insert("temperature".into(), t.clone());
    }
    if let Some(p) = present(body, "top_p") {
        let n = p
            .as_f64()
            .ok_or_else(|| enc_err("top_p", "must be a number"))?;
        if !(0.0..=1.0).contains(&n) {
            return Err(enc_err(
                "top_p",
                format!("must be between 0 and 1, got {n}"),
            ));
        }
        out.insert("top_p".into(), p.clone());
    }
    if request.stream() {
        out.insert("stream".into(), Value::Bool(true));
    }

    // `safety_identifier` replaces the deprecated `user`; both identify the end user, which is
    // what Anthropic's `metadata.user_id` is for.
    let user_field = ["safety_identifier", "user"]
        .into_iter()
        .find(|k| present(body, k).is_some());
    if let Some(field) = user_field {
        let id = body[field]
            .as_str()
            .ok_or_else(|| enc_err(field, "must be a string"))?;
        if !id.is_empty() {
            out.insert("metadata".into(), json!({ "user_id": id }));
        }
    }

    let tools = match present(body, "tools") {
        Some(tools) => encode_tools(tools)?,
        None => Vec::new(),
    };
    let parallel = match present(body, "parallel_tool_calls") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(enc_err("parallel_tool_calls", "must be a boolean")),
    };
    let tool_choice =
        encode_tool_choice(present(body, "tool_choice"), !tools.is_empty(), parallel)?;
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = tool_choice {
        out.insert("tool_choice".into(), choice);
    }

    Ok(Value::Object(out).to_string().into_bytes())
}

/// The body's value for `key`, treating an explicit `null` as absent.
fn present<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|v| !v.is_null())
}

fn positive_int(v: &Value, field: &str) -> Result<u64, EncodeError> {
    match v.as_u64() {
        Some(n) if n > 0 => Ok(n),
        _ => Err(enc_err(field, "must be a positive integer")),
    }
}

/// Accepts the fields the codec translates or may safely ignore; rejects everything else with
/// the reason Anthropic cannot honour it.
fn check_top_level_field(key: &str, value: &Value) -> Result<(), EncodeError> {
    let unsupported = |reason: &str| Err(enc_err(key, reason));
    match key {
        // Translated in `encode_request`.
        "model"
        | "messages"
        | "max_tokens"
        | "max_completion_tokens"
        | "stop"
        | "temperature"
        | "top_p"
        | "stream"
        | "tools"
        | "tool_choice"
        | "parallel_tool_calls"
        | "user"
        | "safety_identifier"
        | "reasoning_effort"
        | "thinking" => Ok(()),
        // Harmless: they tune OpenAI's own storage, billing tier or prompt cache, not the answer.
        "stream_options"
        | "store"
        | "metadata"
        | "service_tier"
        | "prompt_cache_key"
        | "prompt_cache_retention" => Ok(()),
        "n" => match value.as_u64() {
            Some(1) => Ok(()),
            _ => unsupported("Anthropic returns exactly one choice; only n = 1 is possible"),
        },
        "logprobs" => match value {
            Value::Bool(false) => Ok(()),
            _ => unsupported("Anthropic does not return log probabilities"),
        },
        "top_logprobs" => unsupported("Anthropic does not return log probabilities"),
        "response_format" => match value.get("type").and_then(Value::as_str) {
            // Structured output is enforced by the machine's validation of the answer
            // (`crate::validity`), so it is not lost on the way to Anthropic.
            Some("text" | "json_object" | "json_schema") => Ok(()),
            Some(other) => Err(enc_err(
                key,
                format!(
                    "type `{other}` (JSON mode / structured output) is not supported by the Anthropic codec"
                ),
            )),
            None => unsupported("must be an object with a `type`"),
        },
        "audio" => unsupported("Anthropic has no audio output"),
        "modalities" => {
            let text_only = value
                .as_array()
                .is_some_and(|m| m.iter().all(|x| x.as_str() == Some("text")));
            if text_only {
                Ok(())
            } else {
                unsupported("Anthropic produces text only")
            }
        }
        "prediction" => unsupported("Anthropic has no predicted outputs"),
        "logit_bias" => match value {
            Value::Object(m) if m.is_empty() => Ok(()),
            _ => unsupported("Anthropic has no logit bias"),
        },
        "presence_penalty" | "frequency_penalty" => {
            if value.as_f64() == Some(0.0) {
                Ok(())
            } else {
                unsupported("Anthropic has no presence or frequency penalty; only 0 is possible")
            }
        }
        "seed" => unsupported("Anthropic has no sampling seed, so determinism cannot be requested"),
        "functions" | "function_call" => {
            unsupported("deprecated by OpenAI and not translated; use `tools`/`tool_choice`")
        }
        "verbosity" => unsupported("Anthropic has no verbosity setting"),
        "web_search_options" => {
            unsupported("OpenAI's built-in web search is not available through Anthropic")
        }
        _ => unsupported(
            "not a field the Anthropic codec knows; refusing rather than dropping it silently",
        ),
    }
}

fn encode_stop(stop: &Value) -> Result<Vec<Value>, EncodeError> {
    let list: Vec<(&str, String)> = match stop {
        Value::String(s) => vec![(s.as_str(), "stop".to_owned())],
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let field = format!("stop[{i}]");
                s.as_str()
                    .map(|s| (s, field.clone()))
                    .ok_or_else(|| enc_err(field, "must be a string"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(enc_err("stop", "must be a string or an array of strings")),
    };
    list.into_iter()
        .map(|(s, field)| {
            // Anthropic rejects whitespace-only stop sequences; say so before sending.
            if s.trim().is_empty() {
                Err(enc_err(
                    field,
                    "Anthropic requires each stop sequence to contain non-whitespace",
                ))
            } else {
                Ok(Value::from(s))
            }
        })
        .collect()
}

fn encode_tools(tools: &Value) -> Result<Vec<Value>, EncodeError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| enc_err("tools", "must be an array"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => {
                return Err(enc_err(
                    format!("tools[{i}].type"),
                    format!("`{other}` tools cannot be expressed; only `function` tools translate"),
                ));
            }
            None => return Err(enc_err(format!("tools[{i}].type"), "is required")),
        }
        let function = tool
            .get("function")
            .filter(|f| f.is_object())
            .ok_or_else(|| enc_err(format!("tools[{i}].function"), "must be an object"))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| enc_err(format!("tools[{i}].function.name"), "must be a string"))?;
        let mut t = Map::new();
        t.insert("name".into(), Value::from(name));
        if let Some(d) = function.get("description").filter(|d| !d.is_null()) {
            let d = d.as_str().ok_or_else(|| {
                enc_err(
                    format!("tools[{i}].function.description"),
                    "must be a string",
                )
            })?;
            t.insert("description".into(), Value::from(d));
        }
        // Anthropic requires a schema; OpenAI's absent `parameters` means "no arguments".
        let schema = match function.get("parameters").filter(|p| !p.is_null()) {
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => {
                return Err(enc_err(
                    format!("tools[{i}].function.parameters"),
                    "must be a JSON Schema object",
                ));
            }
            None => json!({ "type": "object", "properties": {} }),
        };
        t.insert("input_schema".into(), schema);
        out.push(Value::Object(t));
    }
    Ok(out)
}

fn encode_tool_choice(
    choice: Option<&Value>,
    has_tools: bool,
    parallel: bool,
) -> Result<Option<Value>, EncodeError> {
    let mut out = match choice {
        None => json!({ "type": "auto" }),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({ "type": "auto" }),
            "required" => json!({ "type": "any" }),
            "none" => json!({ "type": "none" }),
            other => return Err(enc_err("tool_choice", format!("unknown mode `{other}`"))),
        },
        Some(Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| enc_err("tool_choice.function.name", "must be a string"))?;
                json!({ "type": "tool", "name": name })
            }
            Some(other) => {
                return Err(enc_err(
                    "tool_choice",
                    format!("type `{other}` cannot be expressed; use a mode or a named function"),
                ));
            }
            None => return Err(enc_err("tool_choice.type", "is required")),
        },
        Some(_) => return Err(enc_err("tool_choice", "must be a string or an object")),
    };
    let kind = out["type"].as_str().unwrap_or_default().to_owned();
    if !has_tools {
        // With no tools, "auto" and "none" mean the same thing as saying nothing.
        return match kind.as_str() {
            "auto" | "none" => Ok(None),
            _ => Err(enc_err(
                "tool_choice",
                "forces a tool call but the request has no tools",
            )),
        };
    }
    if !parallel && kind != "none" {
        out["disable_parallel_tool_use"] = Value::Bool(true);
    }
    // The default (auto, parallel allowed) need not be sent.
    if choice.is_none() && parallel {
        return Ok(None);
    }
    Ok(Some(out))
}

/// One Anthropic turn being built; consecutive same-role messages merge into it.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

/// Splits the OpenAI messages into Anthropic's top-level `system` and alternating turns.
fn encode_messages(messages: Option<&Value>) -> Result<(Option<Value>, Vec<Value>), EncodeError> {
    let messages = messages
        .and_then(Value::as_array)
        .ok_or_else(|| enc_err("messages", "must be an array"))?;
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();

    for (i, message) in messages.iter().enumerate() {
        let at = |rest: &str| format!("messages[{i}]{rest}");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let content = message.get("content").filter(|c| !c.is_null());
        let (turn_role, blocks) = match role {
            "system" | "developer" => {
                for text in text_pieces(content, &at(".content"))? {
                    if !text.is_empty() {
                        system.push(text);
                    }
                }
                continue;
            }
            "user" => ("user", user_blocks(content, &at(".content"))?),
            "assistant" => ("assistant", assistant_blocks(message, content, i)?),
            "tool" => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| enc_err(at(".tool_call_id"), "must be a string"))?;
                let mut block = json!({ "type": "tool_result", "tool_use_id": id });
                match content {
                    None => {}
                    Some(Value::String(s)) if s.is_empty() => {}
                    Some(Value::String(s)) => block["content"] = Value::from(s.as_str()),
                    Some(_) => {
                        let parts = text_pieces(content, &at(".content"))?
                            .into_iter()
                            .filter(|t| !t.is_empty())
                            .map(|t| json!({ "type": "text", "text": t }))
                            .collect::<Vec<_>>();
                        if !parts.is_empty() {
                            block["content"] = Value::Array(parts);
                        }
                    }
                }
                ("user", vec![block])
            }
            "function" => {
                return Err(enc_err(
                    at(".role"),
                    "deprecated `function` messages carry no call id to answer; use `tool`",
                ));
            }
            other => return Err(enc_err(at(".role"), format!("unknown role `{other}`"))),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            // Anthropic requires alternating roles: merge rather than send two in a row.
            Some(last) if last.role == turn_role => last.blocks.extend(blocks),
            _ => turns.push(Turn {
                role: turn_role,
                blocks,
            }),
        }
    }

    if turns.is_empty() {
        return Err(enc_err(
            "messages",
            "has no user or assistant content to send",
        ));
    }
    let messages = turns
        .into_iter()
        .map(|mut turn| {
            // Anthropic wants a user turn's tool results before anything else in it.
            if turn.role == "user" {
                turn.blocks.sort_by_key(|b| b["type"] != "tool_result");
            }
            json!({ "role": turn.role, "content": turn.blocks })
        })
        .collect();
    let system = match system.len() {
        0 => None,
        1 => system.pop().map(Value::from),
        _ => Some(Value::Array(
            system
                .into_iter()
                .map(|t| json!({ "type": "text", "text": t }))
                .collect(),
        )),
    };
    Ok((system, messages))
}

/// The text of a message whose content may only be text: a string or `text` parts.
fn text_pieces(content: Option<&Value>, field: &str) -> Result<Vec<String>, EncodeError> {
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| match part.get("type").and_then(Value::as_str) {
                Some("text") => part
                    .get("text")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| enc_err(format!("{field}[{j}].text"), "must be a string")),
                Some(other) => Err(enc_err(
                    format!("{field}[{j}].type"),
                    format!("`{other}` parts are not allowed here; only text"),
                )),
                None => Err(enc_err(format!("{field}[{j}].type"), "is required")),
            })
            .collect(),
        Some(_) => Err(enc_err(
            field,
            "must be a string or an array of content parts",
        )),
    }
}

fn text_block(text: &str) -> Option<Value> {
    // Anthropic rejects empty text blocks; an empty string says nothing anyway.
    (!text.is_empty()).then(|| json!({ "type": "text", "text": text }))
}

fn user_blocks(content: Option<&Value>, field: &str) -> Result<Vec<Value>, EncodeError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(text_block(s).into_iter().collect()),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(enc_err(
                field,
                "must be a string or an array of content parts",
            ));
        }
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = |rest: &str| format!("{field}[{j}]{rest}");
        match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = part
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| enc_err(at(".text"), "must be a string"))?;
                blocks.extend(text_block(text));
            }
            Some("image_url") => {
                let url = part
                    .get("image_url")
                    .and_then(|i| i.get("url"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| enc_err(at(".image_url.url"), "must be a string"))?;
                blocks.push(image_block(url, &at(".image_url.url"))?);
            }
            Some(other) => {
                return Err(enc_err(
                    at(".type"),
                    format!("`{other}` parts are not supported by the Anthropic codec"),
                ));
            }
            None => return Err(enc_err(at(".type"), "is required")),
        }
    }
    Ok(blocks)
}

/// An OpenAI image URL as an Anthropic image block: inline data stays inline, links stay links.
fn image_block(url: &str, field: &str) -> Result<Value, EncodeError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| enc_err(field, "data URL has no `,` before its data"))?;
        let meta = meta
            .strip_suffix(";base64")
            .ok_or_else(|| enc_err(field, "only base64 data URLs can be sent to Anthropic"))?;
        let media_type = meta.split(';').next().unwrap_or_default();
        if media_type.is_empty() {
            return Err(enc_err(field, "data URL has no media type"));
        }
        return Ok(json!({
            "type": "image",
            "source": { "type": "base64", "media_type": media_type, "data": data },
        }));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
    }
    Err(enc_err(field, "must be a data: URL or an http(s) URL"))
}

fn assistant_blocks(
    message: &Value,
    content: Option<&Value>,
    i: usize,
) -> Result<Vec<Value>, EncodeError> {
    let field = format!("messages[{i}].content");
    // Thinking the caller was given comes back first, as Anthropic requires.
    let mut blocks = thinking::history_blocks(message, i)?;
    match content {
        None => {}
        Some(Value::String(s)) => blocks.extend(text_block(s)),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                // A refusal the model gave earlier is, to Anthropic, just what it said.
                let key = match part.get("type").and_then(Value::as_str) {
                    Some("text") => "text",
                    Some("refusal") => "refusal",
                    Some(other) => {
                        return Err(enc_err(
                            format!("{field}[{j}].type"),
                            format!("`{other}` parts are not allowed in assistant messages"),
                        ));
                    }
                    None => return Err(enc_err(format!("{field}[{j}].type"), "is required")),
                };
                let text = part
                    .get(key)
                    .and_then(Value::as_str)
                    .ok_or_else(|| enc_err(format!("{field}[{j}].{key}"), "must be a string"))?;
                blocks.extend(text_block(text));
            }
        }
        Some(_) => {
            return Err(enc_err(
                field,
                "must be a string, an array of content parts or null",
            ));
        }
    }
    for key in ["function_call", "audio"] {
        if message.get(key).is_some_and(|v| !v.is_null()) {
            return Err(enc_err(
                format!("messages[{i}].{key}"),
                "cannot be expressed for Anthropic",
            ));
        }
    }
    let Some(calls) = message.get("tool_calls").filter(|v| !v.is_null()) else {
        return Ok(blocks);
    };
    let calls = calls
        .as_array()
        .ok_or_else(|| enc_err(format!("messages[{i}].tool_calls"), "must be an array"))?;
    for (j, call) in calls.iter().enumerate() {
        let at = |rest: &str| format!("messages[{i}].tool_calls[{j}]{rest}");
        match call.get("type").and_then(Value::as_str) {
            Some("function") => {}
            _ => return Err(enc_err(at(".type"), "only `function` tool calls translate")),
        }
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| enc_err(at(".id"), "must be a string"))?;
        let function = call.get("function");
        let name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| enc_err(at(".function.name"), "must be a string"))?;
        let arguments = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .ok_or_else(|| enc_err(at(".function.arguments"), "must be a string"))?;
        // Anthropic takes the arguments as a JSON object, not a string.
        let input = if arguments.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str::<Value>(arguments).map_err(|e| {
                enc_err(at(".function.arguments"), format!("is not valid JSON: {e}"))
            })?
        };
        if !input.is_object() {
            return Err(enc_err(at(".function.arguments"), "must be a JSON object"));
        }
        blocks.push(json!({ "type": "tool_use", "id": id, "name": name, "input": input }));
    }
    Ok(blocks)
}

// ---------------------------------------------------------------------------------------------
// Response: Anthropic -> OpenAI
// ---------------------------------------------------------------------------------------------

/// Maps Anthropic's `stop_reason` onto OpenAI's `finish_reason`, which is required and closed.
/// Reasons unknown to this codec become `stop`, the one that claims nothing more.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, and anything new.
        _ => "stop",
    }
}

/// Token counts as OpenAI reports them: prompt tokens include those read from or written to
/// Anthropic's prompt cache, since OpenAI's `prompt_tokens` counts the whole prompt.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    input: u64,
    cache_creation: u64,
    cache_read: u64,
    output: u64,
}

impl Usage {
    /// Overwrites the counts present in an Anthropic `usage` object (they are cumulative).
    fn update(&mut self, usage: Option<&Value>) {
        let Some(usage) = usage else { return };
        let read = |k: &str| usage.get(k).and_then(Value::as_u64);
        if let Some(n) = read("input_tokens") {
            self.input = n;
        }
        if let Some(n) = read("cache_creation_input_tokens") {
            self.cache_creation = n;
        }
        if let Some(n) = read("cache_read_input_tokens") {
            self.cache_read = n;
        }
        if let Some(n) = read("output_tokens") {
            self.output = n;
        }
    }

    /// Every token the answer counted: prompt (with cache reads and writes) plus output.
    fn total(self) -> u64 {
        self.input
            .saturating_add(self.cache_creation)
            .saturating_add(self.cache_read)
            .saturating_add(self.output)
    }

    /// Sums saturate: a provider's numbers are not trusted to be small, and a wrap would
    /// report a huge usage as a tiny one (or panic in a debug build).
    fn to_openai(self) -> Value {
        let prompt = self
            .input
            .saturating_add(self.cache_creation)
            .saturating_add(self.cache_read);
        let mut usage = json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output,
            "total_tokens": prompt.saturating_add(self.output),
        });
        if self.cache_read > 0 {
            usage["prompt_tokens_details"] = json!({ "cached_tokens": self.cache_read });
        }
        usage
    }
}

fn required_str<'a>(v: &'a Value, key: &str, what: &str) -> Result<&'a str, DecodeError> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| dec_err(format!("{what} has no string `{key}`")))
}

/// Translates a 2xx Anthropic Messages response body into an OpenAI `chat.completion` JSON.
/// `created` is Unix seconds (the caller takes it from the response's Date header; 0 if unknown),
/// because Anthropic's body carries no timestamp and core reads no clock.
///
/// Text blocks are joined into `content`; `tool_use` blocks become `tool_calls`; thinking becomes
/// `reasoning_content` and `thinking_blocks` (see [`thinking`]). Blocks with no OpenAI
/// counterpart that do not change what the caller must act on (server-side tool use and its
/// results, which Anthropic already folded into the text) are skipped.
pub fn decode_response(body: &[u8], created: u64) -> Result<Decoded, DecodeError> {
    let msg: Value = serde_json::from_slice(body)
        .map_err(|e| dec_err(format!("Anthropic response is not JSON: {e}")))?;
    match msg.get("type").and_then(Value::as_str) {
        Some("message") => {}
        Some(other) => {
            return Err(dec_err(format!(
                "Anthropic response has type `{other}`, expected `message`"
            )));
        }
        None => {
            return Err(dec_err(
                "Anthropic response has no `type`; not a Messages response",
            ));
        }
    }
    let id = required_str(&msg, "id", "Anthropic response")?;
    let model = required_str(&msg, "model", "Anthropic response")?;
    let blocks = msg
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| dec_err("Anthropic response has no `content` array"))?;

    let mut text = String::new();
    let mut has_text = false;
    let mut tool_calls = Vec::new();
    let mut thinking = ResponseThinking::default();
    for (k, block) in blocks.iter().enumerate() {
        let what = format!("Anthropic response content[{k}]");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                text.push_str(required_str(block, "text", &what)?);
                has_text = true;
            }
            Some("tool_use") => {
                let input = block
                    .get("input")
                    .ok_or_else(|| dec_err(format!("{what} (tool_use) has no `input`")))?;
                tool_calls.push(json!({
                    "id": required_str(block, "id", &what)?,
                    "type": "function",
                    "function": {
                        "name": required_str(block, "name", &what)?,
                        "arguments": input.to_string(),
                    },
                }));
            }
            Some(_) if thinking.take(block, &what)? => {}
            Some(_) => {}
            None => return Err(dec_err(format!("{what} has no `type`"))),
        }
    }

    let mut message = json!({
        "role": "assistant",
        "content": if has_text { Value::from(text) } else { Value::Null },
        "refusal": null,
    });
    thinking.into_message(&mut message);
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let mut usage = Usage::default();
    usage.update(msg.get("usage"));
    let out = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(msg.get("stop_reason").and_then(Value::as_str)),
        }],
        "usage": usage.to_openai(),
    });
    Ok(Decoded {
        body: Bytes::from(out.to_string()),
        total_tokens: msg.get("usage").map(|_| usage.total()),
    })
}

// ---------------------------------------------------------------------------------------------
// Stream: Anthropic events -> OpenAI chunks
// ---------------------------------------------------------------------------------------------

/// Turns Anthropic stream events into OpenAI `chat.completion.chunk`s, one event at a time, so a
/// driver can forward each piece as it arrives. Holds what later chunks need from earlier events:
/// the message id and model (sent once, in `message_start`), which Anthropic content blocks are
/// tool calls and their OpenAI `index`, and the token counts for the final usage chunk.
#[derive(Debug)]
pub struct StreamTranslator {
    include_usage: bool,
    created: u64,
    /// From `message_start`; `None` until then.
    id: Option<String>,
    model: String,
    /// (Anthropic block index, OpenAI tool call index) for each client tool block so far.
    tool_blocks: Vec<(u64, usize)>,
    usage: Usage,
    finished: bool,
    done: bool,
}

impl StreamTranslator {
    /// `include_usage` is the caller's `stream_options.include_usage`: whether to end with a
    /// usage-only chunk as OpenAI does. `created` is Unix seconds for every chunk (from the
    /// response's Date header; 0 if unknown).
    pub fn new(include_usage: bool, created: u64) -> Self {
        Self {
            include_usage,
            created,
            id: None,
            model: String::new(),
            tool_blocks: Vec::new(),
            usage: Usage::default(),
            finished: false,
            done: false,
        }
    }

    /// Translates one event, appending what it becomes to `out` (often nothing). Events after
    /// `message_stop` are ignored. A known event whose data is not the JSON it should be, or a
    /// content event before `message_start`, is a [`DecodeError`].
    pub fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), DecodeError> {
        if self.done {
            return Ok(());
        }
        let parsed: Option<Value> = serde_json::from_str(&event.data).ok();
        let name = match (&event.event, &parsed) {
            (Some(name), _) => name.clone(),
            (None, Some(v)) => v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            (None, None) => return Ok(()),
        };
        const KNOWN: [&str; 7] = [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
            "error",
        ];
        if !KNOWN.contains(&name.as_str()) {
            // `ping` and event types added after this codec was written.
            return Ok(());
        }
        let data = match parsed {
            Some(v @ Value::Object(_)) => v,
            _ => {
                return Err(dec_err(format!(
                    "Anthropic `{name}` event data is not a JSON object: {:?}",
                    event.data
                )));
            }
        };
        if name == "error" {
            let error = data.get("error");
            let kind = error
                .and_then(|e| e.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("error");
            let message = error
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("(no message)");
            out.push(StreamItem::Error {
                message: format!("{kind}: {message}"),
            });
            return Ok(());
        }
        if name == "message_start" {
            let message = data
                .get("message")
                .ok_or_else(|| dec_err("Anthropic `message_start` has no `message`"))?;
            self.id =
                Some(required_str(message, "id", "Anthropic `message_start` message")?.to_owned());
            self.model =
                required_str(message, "model", "Anthropic `message_start` message")?.to_owned();
            self.usage.update(message.get("usage"));
            let chunk = self.chunk(json!({ "role": "assistant", "content": "" }), None);
            out.push(StreamItem::Chunk {
                json: chunk,
                content: false,
            });
            return Ok(());
        }
        if self.id.is_none() {
            return Err(dec_err(format!(
                "Anthropic `{name}` event arrived before `message_start`"
            )));
        }
        match name.as_str() {
            "content_block_start" => self.on_block_start(&data, out),
            "content_block_delta" => self.on_block_delta(&data, out),
            "message_delta" => {
                let stop_reason = data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                self.usage.update(data.get("usage"));
                let chunk = self.chunk(json!({}), Some(finish_reason(stop_reason)));
                out.push(StreamItem::Chunk {
                    json: chunk,
                    content: true,
                });
                self.finished = true;
                Ok(())
            }
            "message_stop" => {
                if !self.finished {
                    // A stream that ends without `message_delta` still owes the caller a finish.
                    let chunk = self.chunk(json!({}), Some("stop"));
                    out.push(StreamItem::Chunk {
                        json: chunk,
                        content: true,
                    });
                    self.finished = true;
                }
                if self.include_usage {
                    let chunk = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": self.usage.to_openai(),
                    });
                    out.push(StreamItem::Chunk {
                        json: Bytes::from(chunk.to_string()),
                        content: true,
                    });
                }
                out.push(StreamItem::Done);
                self.done = true;
                Ok(())
            }
            // content_block_stop: OpenAI has no counterpart.
            _ => Ok(()),
        }
    }

    fn on_block_start(
        &mut self,
        data: &Value,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), DecodeError> {
        let what = "Anthropic `content_block_start`";
        let index = data
            .get("index")
            .and_then(Value::as_u64)
            .ok_or_else(|| dec_err(format!("{what} has no integer `index`")))?;
        let block = data
            .get("content_block")
            .ok_or_else(|| dec_err(format!("{what} has no `content_block`")))?;
        if block.get("type").and_then(Value::as_str) != Some("tool_use") {
            // Text arrives in deltas, server tools have no OpenAI counterpart; a thinking block
            // may start with text, a redacted one is whole at its start.
            if let Some(delta) = thinking::stream_delta(block, what)? {
                let chunk = self.chunk(delta, None);
                out.push(StreamItem::Chunk {
                    json: chunk,
                    content: true,
                });
            }
            return Ok(());
        }
        let id = required_str(block, "id", what)?;
        let name = required_str(block, "name", what)?;
        // Anthropic starts with `input: {}` and streams the JSON in deltas; only a non-empty
        // starting input is worth sending as the first piece of the arguments.
        let arguments = match block.get("input") {
            Some(Value::Object(m)) if !m.is_empty() => Value::Object(m.clone()).to_string(),
            _ => String::new(),
        };
        let k = self.tool_blocks.len();
        self.tool_blocks.push((index, k));
        let delta = json!({ "tool_calls": [{
            "index": k,
            "id": id,
            "type": "function",
            "function": { "name": name, "arguments": arguments },
        }]});
        let chunk = self.chunk(delta, None);
        out.push(StreamItem::Chunk {
            json: chunk,
            content: true,
        });
        Ok(())
    }

    fn on_block_delta(
        &mut self,
        data: &Value,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), DecodeError> {
        let what = "Anthropic `content_block_delta`";
        let index = data
            .get("index")
            .and_then(Value::as_u64)
            .ok_or_else(|| dec_err(format!("{what} has no integer `index`")))?;
        let delta = data
            .get("delta")
            .ok_or_else(|| dec_err(format!("{what} has no `delta`")))?;
        let delta = match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => {
                let text = required_str(delta, "text", what)?;
                if text.is_empty() {
                    return Ok(());
                }
                json!({ "content": text })
            }
            Some("input_json_delta") => {
                let partial = required_str(delta, "partial_json", what)?;
                // Server-side tool blocks stream input too; only client tool calls are the caller's.
                let Some(&(_, k)) = self.tool_blocks.iter().find(|(i, _)| *i == index) else {
                    return Ok(());
                };
                if partial.is_empty() {
                    return Ok(());
                }
                json!({ "tool_calls": [{ "index": k, "function": { "arguments": partial } }] })
            }
            // thinking_delta and signature_delta; citations_delta and anything new: nothing.
            _ => match thinking::stream_delta(delta, what)? {
                Some(delta) => delta,
                None => return Ok(()),
            },
        };
        let chunk = self.chunk(delta, None);
        out.push(StreamItem::Chunk {
            json: chunk,
            content: true,
        });
        Ok(())
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        Bytes::from(chunk.to_string())
    }
}

#[cfg(test)]
mod tests {
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
                StreamItem::Chunk { json, .. } => {
                    Some(serde_json::from_slice::<Value>(json).unwrap())
                }
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
                assert!(
                    tc["function"]["name"].is_string() && tc["function"]["arguments"].is_string()
                );
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
        assert!(
            bad(r#"{"type":"error","error":{"type":"x","message":"y"}}"#).contains("type `error`")
        );
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
            err_field(
                json!({ "model": "m", "messages": [{ "role": "system", "content": "only" }] })
            ),
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
        let function_role = json!({ "model": "m", "messages": [{ "role": "function", "name": "f", "content": "x" }] });
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
}
