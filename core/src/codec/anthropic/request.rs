//! OpenAI request -> Anthropic Messages request.

use super::*;

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
