//! The caller's OpenAI-shape chat request, checked once before anything is sent.

use bytes::Bytes;
use serde_json::{Map, Value};
use std::sync::Arc;

/// A parsed OpenAI `CreateChatCompletionRequest`. Cheap to clone (shared), so hedged legs and
/// fallbacks reuse one parse. Keeps the caller's bytes so an OpenAI provider with no model
/// override is sent them untouched.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    inner: Arc<Inner>,
    /// Whose request this is, for the validity classifier (`None`: the default tenant).
    tenant: Option<Arc<str>>,
}

/// Longest tenant name, in bytes.
pub const MAX_TENANT_BYTES: usize = 256;

#[derive(Debug)]
struct Inner {
    raw: Bytes,
    body: Map<String, Value>,
    model: Arc<str>,
    stream: bool,
    include_usage: bool,
    /// Whether `response_format` or `tools` ask for a checkable answer (read once here, so the
    /// machine pays nothing per request for requests that do not).
    wants_check: bool,
}

/// Why a request is not a chat request. Raised before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Not JSON at all.
    #[error("chat request is not valid JSON: {0}")]
    NotJson(String),
    /// A field is missing or has the wrong type or value.
    #[error("chat request field `{field}` {problem}")]
    Field {
        /// Path of the field, e.g. `messages[2].role`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn field(field: impl Into<String>, problem: impl Into<String>) -> RequestError {
    RequestError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

impl ChatRequest {
    /// Parses and checks a JSON body.
    pub fn from_json(raw: impl Into<Bytes>) -> Result<Self, RequestError> {
        let raw = raw.into();
        let value: Value =
            serde_json::from_slice(&raw).map_err(|e| RequestError::NotJson(e.to_string()))?;
        Self::build(value, Some(raw))
    }

    /// Checks an already parsed body (what the Python binding hands over).
    pub fn from_value(value: Value) -> Result<Self, RequestError> {
        Self::build(value, None)
    }

    fn build(value: Value, raw: Option<Bytes>) -> Result<Self, RequestError> {
        let Value::Object(body) = value else {
            return Err(field("<root>", "must be a JSON object"));
        };
        let model = match body.get("model") {
            Some(Value::String(m)) if !m.is_empty() => Arc::<str>::from(m.as_str()),
            Some(_) => return Err(field("model", "must be a non-empty string")),
            None => return Err(field("model", "is required")),
        };
        let messages = match body.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => m,
            Some(Value::Array(_)) => return Err(field("messages", "must not be empty")),
            Some(_) => return Err(field("messages", "must be an array of messages")),
            None => return Err(field("messages", "is required")),
        };
        for (i, message) in messages.iter().enumerate() {
            let role = message.get("role").and_then(Value::as_str);
            match role {
                Some(r) if ROLES.contains(&r) => {}
                Some(r) => {
                    return Err(field(
                        format!("messages[{i}].role"),
                        format!("is not a known role: {r:?}"),
                    ));
                }
                None => {
                    return Err(field(
                        format!("messages[{i}].role"),
                        "is required and must be a string",
                    ));
                }
            }
        }
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(field("stream", "must be a boolean")),
        };
        let wants_check = crate::validity::expect::wants_check(&body);
        if wants_check {
            crate::validity::expect::check_shape(&body)?;
        }
        let include_usage = body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let raw = match raw {
            Some(raw) => raw,
            None => Bytes::from(
                serde_json::to_vec(&body).map_err(|e| RequestError::NotJson(e.to_string()))?,
            ),
        };
        Ok(ChatRequest {
            inner: Arc::new(Inner {
                raw,
                body,
                model,
                stream,
                include_usage,
                wants_check,
            }),
            tenant: None,
        })
    }

    /// The same request on behalf of `tenant` (the validity classifier keeps tenants apart).
    /// An empty name or one longer than 256 bytes is an error.
    pub fn with_tenant(mut self, tenant: &str) -> Result<Self, RequestError> {
        if tenant.is_empty() || tenant.len() > MAX_TENANT_BYTES {
            return Err(field(
                "tenant",
                format!("must be a non-empty string of at most {MAX_TENANT_BYTES} bytes"),
            ));
        }
        self.tenant = Some(tenant.into());
        Ok(self)
    }

    /// The tenant, if one was named.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Whether the answer is to be validated (`response_format` other than text, or `tools`).
    pub(crate) fn wants_check(&self) -> bool {
        self.inner.wants_check
    }

    /// The classifier's key of this request: its tenant and requested model.
    pub(crate) fn class_key(&self) -> crate::validity::classifier::KeyRef<'_> {
        crate::validity::classifier::KeyRef {
            tenant: self.tenant.as_ref(),
            model: &self.inner.model,
        }
    }

    /// The parsed body.
    pub fn body(&self) -> &Map<String, Value> {
        &self.inner.body
    }

    /// The body exactly as the caller wrote it.
    pub fn raw(&self) -> &Bytes {
        &self.inner.raw
    }

    /// The requested model.
    pub fn model(&self) -> &str {
        &self.inner.model
    }

    /// Whether the caller asked for a stream.
    pub fn stream(&self) -> bool {
        self.inner.stream
    }

    /// Tokens a budget reserves for this request before the answer says what it used: the
    /// prompt's characters / 4 (text of every message, string or parts) plus `max_tokens` or
    /// `max_completion_tokens` when set. Walks the messages: only called when a provider has a
    /// `tpm` budget.
    pub fn estimated_tokens(&self) -> u64 {
        let body = &self.inner.body;
        let mut chars = 0usize;
        let text_len = |v: &Value| match v {
            Value::String(s) => s.chars().count(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .map(|t| t.chars().count())
                .sum(),
            _ => 0,
        };
        if let Some(Value::Array(messages)) = body.get("messages") {
            for message in messages {
                chars = chars.saturating_add(message.get("content").map_or(0, text_len));
            }
        }
        let completion = ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_u64))
            .unwrap_or(0);
        (chars as u64 / 4).saturating_add(completion)
    }

    /// Whether the caller asked for a final usage chunk (`stream_options.include_usage`).
    pub fn include_usage(&self) -> bool {
        self.inner.include_usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(json: &str) -> String {
        ChatRequest::from_json(json.to_owned())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn rejects_what_is_not_a_chat_request() {
        assert!(problem("nope").contains("not valid JSON"));
        assert!(problem("[]").contains("<root>"));
        assert!(
            problem(r#"{"messages":[{"role":"user","content":"hi"}]}"#)
                .contains("`model` is required")
        );
        assert!(problem(r#"{"model":"m","messages":[]}"#).contains("`messages` must not be empty"));
        assert!(problem(r#"{"model":"m","prompt":"hi"}"#).contains("`messages` is required"));
        assert!(
            problem(r#"{"model":"m","messages":[{"content":"hi"}]}"#).contains("messages[0].role")
        );
        assert!(problem(r#"{"model":"m","messages":[{"role":"wizard"}]}"#).contains("wizard"));
        assert!(
            problem(r#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#)
                .contains("`stream`")
        );
    }

    #[test]
    fn keeps_raw_bytes_and_reads_stream_flags() {
        let json = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#;
        let r = ChatRequest::from_json(json.to_owned()).unwrap();
        assert_eq!(r.raw().as_ref(), json.as_bytes());
        assert_eq!(r.model(), "gpt-4o");
        assert!(r.stream() && r.include_usage());
    }
}
