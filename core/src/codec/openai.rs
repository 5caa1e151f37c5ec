//! OpenAI shape: the request body passes through (with the provider's model name), responses and
//! stream chunks pass through once checked to be what they claim to be.

use super::{DecodeError, StreamItem};
use crate::request::ChatRequest;
use crate::sse::SseEvent;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// The body to send: the caller's own bytes when the model is unchanged (no copy, no
/// re-serialization), otherwise the parsed body with `model` replaced.
pub fn encode_body(request: &ChatRequest, model: &str) -> Bytes {
    if model == request.model() {
        return request.raw().clone();
    }
    let mut body = request.body().clone();
    body.insert("model".to_owned(), Value::String(model.to_owned()));
    Bytes::from(serde_json::to_vec(&body).expect("a JSON map always serializes"))
}

/// Just enough of `CreateChatCompletionResponse` to know a 2xx body is one: borrowed, the rest
/// skipped, so checking a 1 KB body costs about as much as scanning it once.
#[derive(Deserialize)]
struct ResponseProbe<'a> {
    choices: Vec<ChoiceProbe>,
    #[serde(default)]
    error: Option<IgnoredAny>,
    /// Kept raw and read on its own, so an odd `usage` (floats, strings) never fails the check.
    #[serde(default, borrow)]
    usage: Option<&'a serde_json::value::RawValue>,
}

/// The token counts of an OpenAI `usage` object.
#[derive(Deserialize)]
struct UsageProbe {
    total_tokens: Option<u64>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl UsageProbe {
    /// `total_tokens`, else prompt plus completion; None when neither is a count.
    fn total(raw: &serde_json::value::RawValue) -> Option<u64> {
        let usage: UsageProbe = serde_json::from_str(raw.get()).ok()?;
        usage.total_tokens.or_else(|| {
            Some(
                usage
                    .prompt_tokens?
                    .saturating_add(usage.completion_tokens.unwrap_or(0)),
            )
        })
    }
}

#[derive(Deserialize)]
struct ChoiceProbe {
    #[allow(dead_code)]
    message: IgnoredAny,
}

/// `usage` in tokens of one OpenAI-shape JSON object: a stream's usage chunk, which corrects a
/// token budget as a whole answer's `usage` does.
pub(crate) fn usage_total_tokens(json: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct WithUsage<'a> {
        #[serde(default, borrow)]
        usage: Option<&'a serde_json::value::RawValue>,
    }
    serde_json::from_slice::<WithUsage>(json)
        .ok()?
        .usage
        .and_then(UsageProbe::total)
}

/// Checks that a 2xx body is a chat completion. Some OpenAI-compatible servers answer 200 with an
/// `{"error": ...}` body; that is not a success. Returns the answer's `usage` in tokens.
pub fn check_response(body: &[u8]) -> Result<Option<u64>, DecodeError> {
    let probe: ResponseProbe = serde_json::from_slice(body)
        .map_err(|e| DecodeError(format!("not an OpenAI chat completion: {e}")))?;
    if probe.error.is_some() {
        return Err(DecodeError("2xx body carries an `error` object".to_owned()));
    }
    if probe.choices.is_empty() {
        return Err(DecodeError("chat completion has no choices".to_owned()));
    }
    Ok(probe.usage.and_then(UsageProbe::total))
}

/// Chunk fields that decide whether it carries part of the answer.
#[derive(Deserialize)]
struct ChunkProbe<'a> {
    #[serde(default)]
    choices: Vec<ChunkChoiceProbe<'a>>,
    #[serde(default)]
    usage: Option<IgnoredAny>,
    #[serde(default, borrow)]
    error: Option<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct ChunkChoiceProbe<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaProbe<'a>>,
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct DeltaProbe<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    refusal: Option<std::borrow::Cow<'a, str>>,
    /// A reasoning model's thoughts: `reasoning_content` (DeepSeek, SGLang) or `reasoning`
    /// (vLLM, OpenRouter, gpt-oss). Content like any other: the caller sees the model thinking,
    /// and a provider that is thinking has met its first-token limit. Raw, so that a server
    /// that sends something other than a string here is passed through, not refused.
    #[serde(default, borrow)]
    reasoning_content: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    reasoning: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
}

/// Whether a raw JSON value is a string with at least one character.
fn non_empty_string(raw: &serde_json::value::RawValue) -> bool {
    let text = raw.get();
    text.starts_with('"') && text != "\"\""
}

/// OpenAI streams pass through chunk by chunk; the passthrough only classifies them.
#[derive(Debug, Default)]
pub struct StreamPassthrough;

impl StreamPassthrough {
    /// Classifies one SSE event: `[DONE]`, an in-stream `{"error": ...}`, or a chunk.
    pub fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), DecodeError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            out.push(StreamItem::Done);
            return Ok(());
        }
        if event.event.as_deref() == Some("error") {
            out.push(StreamItem::Error {
                message: data.to_owned(),
            });
            return Ok(());
        }
        let probe: ChunkProbe<'_> = serde_json::from_str(data)
            .map_err(|e| DecodeError(format!("stream chunk is not JSON: {e}")))?;
        if let Some(error) = probe.error {
            out.push(StreamItem::Error {
                message: error.get().to_owned(),
            });
            return Ok(());
        }
        let content = probe.usage.is_some()
            || probe.choices.iter().any(|c| {
                c.finish_reason.is_some()
                    || c.delta.as_ref().is_some_and(|d| {
                        d.content.as_deref().is_some_and(|s| !s.is_empty())
                            || d.refusal.as_deref().is_some_and(|s| !s.is_empty())
                            || d.reasoning_content.is_some_and(non_empty_string)
                            || d.reasoning.is_some_and(non_empty_string)
                            || d.tool_calls.is_some()
                            || d.function_call.is_some()
                    })
            });
        out.push(StreamItem::Chunk {
            json: Bytes::copy_from_slice(data.as_bytes()),
            content,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: data.to_owned(),
        }
    }

    #[test]
    fn passthrough_keeps_bytes_unless_the_model_changes() {
        let raw = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
        let req = ChatRequest::from_json(raw.to_owned()).unwrap();
        assert_eq!(encode_body(&req, "gpt-4o").as_ref(), raw.as_bytes());
        let swapped: Value = serde_json::from_slice(&encode_body(&req, "llama-3")).unwrap();
        assert_eq!(swapped["model"], "llama-3");
        assert_eq!(swapped["messages"][0]["content"], "hi");
    }

    #[test]
    fn response_check_rejects_what_is_not_a_completion() {
        let fixture = include_str!("../../../tests/fixtures/openai/responses/chat_text_stop.json");
        assert_eq!(check_response(fixture.as_bytes()), Ok(Some(51)));
        let odd_usage = br#"{"choices":[{"message":{}}],"usage":{"total_tokens":"many"}}"#;
        assert_eq!(check_response(odd_usage), Ok(None));
        assert!(check_response(b"<html>bad gateway</html>").is_err());
        assert!(
            check_response(br#"{"error":{"message":"x"},"choices":[{"message":{}}]}"#).is_err()
        );
        assert!(check_response(br#"{"choices":[]}"#).is_err());
        assert!(check_response(br#"{"id":"x"}"#).is_err());
    }

    #[test]
    fn chunks_are_classified() {
        let mut out = Vec::new();
        let mut p = StreamPassthrough;
        p.on_event(&ev(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#), &mut out).unwrap();
        p.on_event(
            &ev(r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#),
            &mut out,
        )
        .unwrap();
        p.on_event(&ev(r#"{"error":{"message":"overloaded"}}"#), &mut out)
            .unwrap();
        p.on_event(&ev("[DONE]"), &mut out).unwrap();
        assert!(matches!(out[0], StreamItem::Chunk { content: false, .. }));
        assert!(matches!(out[1], StreamItem::Chunk { content: true, .. }));
        assert!(matches!(&out[2], StreamItem::Error { message } if message.contains("overloaded")));
        assert_eq!(out[3], StreamItem::Done);
        assert!(p.on_event(&ev("{not json"), &mut out).is_err());
    }

    #[test]
    fn reasoning_deltas_are_content() {
        let mut p = StreamPassthrough;
        let cases = [
            (r#"{"reasoning_content":"Let me think"}"#, true),
            (r#"{"reasoning":"Let me think"}"#, true),
            (r#"{"role":"assistant","reasoning_content":""}"#, false),
            (r#"{"reasoning":null,"content":null}"#, false),
            (r#"{"reasoning":{"effort":"low"}}"#, false),
        ];
        for (delta, content) in cases {
            let data =
                format!(r#"{{"choices":[{{"index":0,"delta":{delta},"finish_reason":null}}]}}"#);
            let mut out = Vec::new();
            p.on_event(&ev(&data), &mut out).unwrap();
            assert!(
                matches!(out[0], StreamItem::Chunk { content: c, .. } if c == content),
                "{delta}"
            );
        }
    }
}
