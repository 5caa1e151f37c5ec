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

mod request;
mod stream;

pub use request::encode_request;
pub use stream::StreamTranslator;

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

#[cfg(test)]
mod tests;
