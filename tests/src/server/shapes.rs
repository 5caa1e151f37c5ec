//! What a healthy provider's bodies look like: the default success bodies, streams and error
//! bodies of the two wire shapes the server speaks, and the cached fixture files it replays.
//!
//! Defaults are built from a cheap peek at the request (model, `stream`, `include_usage`) with no
//! file IO, because the benchmark measures the router against this server and the default path is
//! on every request. Fixture files are read once per process and shared.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The Anthropic stream served by default, the fixture `anthropic/streams/text_basic.sse`
/// (embedded, so the default path never touches the disk).
pub const ANTHROPIC_DEFAULT_STREAM: &[u8] =
    include_bytes!("../../fixtures/anthropic/streams/text_basic.sse");

/// Which provider API a route speaks, chosen by the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// `POST /{provider}/v1/chat/completions`.
    #[serde(rename = "openai")]
    OpenAi,
    /// `POST /{provider}/v1/messages`.
    Anthropic,
}

/// The few request fields the defaults depend on.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Peek {
    pub model: Option<String>,
    pub stream: bool,
    pub include_usage: bool,
}

impl Peek {
    /// Reads the fields from an already parsed body.
    pub fn from_value(v: &Value) -> Peek {
        Peek {
            model: v.get("model").and_then(Value::as_str).map(str::to_owned),
            stream: v.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: v
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }

    /// Reads the fields from raw bytes without building a `Value` (recording off).
    pub fn from_bytes(body: &[u8]) -> Peek {
        #[derive(Deserialize)]
        struct Raw {
            model: Option<String>,
            stream: Option<bool>,
            stream_options: Option<StreamOptions>,
        }
        #[derive(Deserialize)]
        struct StreamOptions {
            include_usage: Option<bool>,
        }
        match serde_json::from_slice::<Raw>(body) {
            Ok(raw) => Peek {
                model: raw.model,
                stream: raw.stream.unwrap_or(false),
                include_usage: raw
                    .stream_options
                    .and_then(|s| s.include_usage)
                    .unwrap_or(false),
            },
            Err(_) => Peek::default(),
        }
    }

    fn model(&self) -> &str {
        self.model.as_deref().unwrap_or("mock-model")
    }
}

/// A JSON string literal (quoted and escaped).
fn lit(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The assistant text of a default answer. It names the provider, so a test can tell from the
/// content alone which provider served a routed request.
pub fn reply_text(provider: &str) -> String {
    format!("Hello from {provider}.")
}

const PROMPT_TOKENS: u64 = 10;

fn word_pieces(text: &str) -> Vec<&str> {
    // Split before each space so the pieces concatenate back to the text.
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == ' ' && i > start {
            out.push(&text[start..i]);
            start = i;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// A valid OpenAI `chat.completion` for request number `n` of `provider`.
pub(crate) fn openai_completion(provider: &str, n: usize, peek: &Peek) -> Bytes {
    let text = reply_text(provider);
    let completion_tokens = word_pieces(&text).len() as u64;
    Bytes::from(format!(
        concat!(
            r#"{{"id":{id},"object":"chat.completion","created":{created},"model":{model},"#,
            r#""choices":[{{"index":0,"message":{{"role":"assistant","content":{text},"refusal":null}},"#,
            r#""logprobs":null,"finish_reason":"stop"}}],"#,
            r#""usage":{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{t}}}}}"#
        ),
        id = lit(&format!("chatcmpl-mock-{provider}-{n}")),
        created = unix_now(),
        model = lit(peek.model()),
        text = lit(&text),
        p = PROMPT_TOKENS,
        c = completion_tokens,
        t = PROMPT_TOKENS + completion_tokens,
    ))
}

/// A valid OpenAI chat-completion stream: a role chunk, one chunk per word, a `stop` chunk, a
/// usage chunk when `stream_options.include_usage` was set, and `data: [DONE]`.
pub(crate) fn openai_stream(provider: &str, n: usize, peek: &Peek) -> Vec<Bytes> {
    let text = reply_text(provider);
    let words = word_pieces(&text);
    let head = format!(
        r#"{{"id":{id},"object":"chat.completion.chunk","created":{created},"model":{model},"#,
        id = lit(&format!("chatcmpl-mock-{provider}-{n}")),
        created = unix_now(),
        model = lit(peek.model()),
    );
    let chunk = |delta: &str, finish: &str| {
        Bytes::from(
            format!(
                r#"data: {head}"choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]}}"#
            ) + "\n\n",
        )
    };
    let mut out = Vec::with_capacity(words.len() + 4);
    out.push(chunk(
        r#"{"role":"assistant","content":"","refusal":null}"#,
        "null",
    ));
    for w in &words {
        out.push(chunk(&format!(r#"{{"content":{}}}"#, lit(w)), "null"));
    }
    out.push(chunk("{}", r#""stop""#));
    if peek.include_usage {
        let c = words.len() as u64;
        out.push(Bytes::from(format!(
            r#"data: {head}"choices":[],"usage":{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{t}}}}}"#,
            p = PROMPT_TOKENS,
            t = PROMPT_TOKENS + c,
        ) + "\n\n"));
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

/// A valid Anthropic `message` for request number `n` of `provider`.
pub(crate) fn anthropic_message(provider: &str, n: usize, peek: &Peek) -> Bytes {
    let text = reply_text(provider);
    Bytes::from(format!(
        concat!(
            r#"{{"id":{id},"type":"message","role":"assistant","model":{model},"#,
            r#""content":[{{"type":"text","text":{text}}}],"stop_reason":"end_turn","stop_sequence":null,"#,
            r#""usage":{{"input_tokens":{p},"output_tokens":{c}}}}}"#
        ),
        id = lit(&format!("msg_mock_{provider}_{n}")),
        model = lit(peek.model()),
        text = lit(&text),
        p = PROMPT_TOKENS,
        c = word_pieces(&text).len(),
    ))
}

/// The default stream for a route: OpenAI chunks, or the Anthropic fixture split into events.
pub(crate) fn default_stream(shape: Shape, provider: &str, n: usize, peek: &Peek) -> Arc<[Bytes]> {
    match shape {
        Shape::OpenAi => openai_stream(provider, n, peek).into(),
        Shape::Anthropic => {
            static PIECES: OnceLock<Arc<[Bytes]>> = OnceLock::new();
            PIECES
                .get_or_init(|| split_events(Bytes::from_static(ANTHROPIC_DEFAULT_STREAM)).into())
                .clone()
        }
    }
}

/// The provider's error body for a status, as its real API words it.
pub(crate) fn error_body(shape: Shape, status: u16) -> Bytes {
    let (openai_type, openai_code, anthropic_type, message) = match status {
        400 => (
            "invalid_request_error",
            "null",
            "invalid_request_error",
            "Invalid request (mock).",
        ),
        401 => (
            "invalid_request_error",
            r#""invalid_api_key""#,
            "authentication_error",
            "Invalid API key (mock).",
        ),
        403 => (
            "invalid_request_error",
            "null",
            "permission_error",
            "Permission denied (mock).",
        ),
        404 => (
            "invalid_request_error",
            r#""model_not_found""#,
            "not_found_error",
            "Not found (mock).",
        ),
        408 => (
            "timeout",
            "null",
            "timeout_error",
            "Request timed out (mock).",
        ),
        413 => (
            "invalid_request_error",
            "null",
            "request_too_large",
            "Request too large (mock).",
        ),
        429 => (
            "requests",
            r#""rate_limit_exceeded""#,
            "rate_limit_error",
            "Rate limit reached (mock).",
        ),
        529 => (
            "server_error",
            "null",
            "overloaded_error",
            "Overloaded (mock).",
        ),
        503 => (
            "server_error",
            "null",
            "overloaded_error",
            "The server is overloaded (mock).",
        ),
        _ => (
            "server_error",
            "null",
            "api_error",
            "The server had an error (mock).",
        ),
    };
    Bytes::from(match shape {
        Shape::OpenAi => format!(
            r#"{{"error":{{"message":"{message}","type":"{openai_type}","param":null,"code":{openai_code}}}}}"#
        ),
        Shape::Anthropic => format!(
            r#"{{"type":"error","error":{{"type":"{anthropic_type}","message":"{message}"}}}}"#
        ),
    })
}

/// The error event sent mid-stream when a step asks for one without spelling it out.
pub(crate) fn default_error_event(shape: Shape) -> &'static str {
    match shape {
        Shape::OpenAi => concat!(
            r#"data: {"error":{"message":"The server had an error while processing your request.","#,
            r#""type":"server_error","param":null,"code":null}}"#,
            "\n\n"
        ),
        Shape::Anthropic => concat!(
            "event: error\n",
            r#"data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            "\n\n"
        ),
    }
}

/// Splits an SSE byte stream into events, each ending after its blank line (`\n\n` or
/// `\r\n\r\n`); a trailing partial event is the last piece. The pieces concatenate to the input.
pub fn split_events(all: Bytes) -> Vec<Bytes> {
    let b = &all[..];
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let end = if b[i] == b'\n' && b.get(i + 1) == Some(&b'\n') {
            Some(i + 2)
        } else if b[i] == b'\n' && b.get(i + 1..i + 3) == Some(b"\r\n") {
            Some(i + 3)
        } else {
            None
        };
        match end {
            Some(e) => {
                out.push(all.slice(start..e));
                start = e;
                i = e;
            }
            None => i += 1,
        }
    }
    if start < b.len() {
        out.push(all.slice(start..));
    }
    out
}

/// Where `replay` paths are resolved: `$F3DX_MOCK_FIXTURES`, else this crate's `fixtures/`.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("F3DX_MOCK_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"))
}

/// Reads a fixture once per process and returns its events (see [`split_events`]).
pub(crate) fn load_replay(path: &str) -> Result<Arc<[Bytes]>, String> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<[Bytes]>>>> = OnceLock::new();
    let full = {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            fixtures_dir().join(p)
        }
    };
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().expect("fixture cache").get(&full) {
        return Ok(hit.clone());
    }
    let bytes = std::fs::read(&full).map_err(|e| format!("replay {}: {e}", full.display()))?;
    let pieces: Arc<[Bytes]> = split_events(Bytes::from(bytes)).into();
    cache
        .lock()
        .expect("fixture cache")
        .insert(full, pieces.clone());
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_lossless() {
        for input in [
            &b"data: a\n\ndata: b\n\n"[..],
            b"event: x\r\ndata: y\r\n\r\ndata: z",
            b"",
            b"no terminator",
            ANTHROPIC_DEFAULT_STREAM,
        ] {
            let pieces = split_events(Bytes::copy_from_slice(input));
            assert_eq!(pieces.concat(), input);
        }
        assert_eq!(
            split_events(Bytes::from_static(b"data: a\n\ndata: b\n\n")).len(),
            2
        );
    }

    #[test]
    fn defaults_are_json() {
        let peek = Peek {
            model: Some("m\"x".into()),
            stream: true,
            include_usage: true,
        };
        let v: Value = serde_json::from_slice(&openai_completion("p", 1, &peek)).unwrap();
        assert_eq!(v["model"], "m\"x");
        let v: Value = serde_json::from_slice(&anthropic_message("p", 1, &peek)).unwrap();
        assert_eq!(v["content"][0]["text"], "Hello from p.");
        for piece in openai_stream("p", 1, &peek) {
            let s = std::str::from_utf8(&piece).unwrap();
            let data = s.strip_prefix("data: ").unwrap().trim_end();
            if data != "[DONE]" {
                serde_json::from_str::<Value>(data).unwrap();
            }
        }
        for shape in [Shape::OpenAi, Shape::Anthropic] {
            for status in [400, 401, 429, 500, 529, 418] {
                serde_json::from_slice::<Value>(&error_body(shape, status)).unwrap();
            }
        }
    }
}
