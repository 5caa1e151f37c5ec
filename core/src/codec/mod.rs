//! Provider wire shapes. Core owns every byte: it builds each provider's HTTP request and turns
//! each response and stream event into the OpenAI shape.

pub mod anthropic;
pub mod openai;
pub mod thinking;

use bytes::Bytes;

/// A request field the target shape cannot express. Never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request field `{field}` cannot be expressed for this provider: {reason}")]
pub struct EncodeError {
    /// The field, e.g. `n`.
    pub field: String,
    /// Why.
    pub reason: String,
}

/// A 2xx body (or stream event) that is not a valid message of the provider's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// What one provider stream event becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// One OpenAI `chat.completion.chunk` as JSON. `content` says whether it carries anything of
    /// the answer (text, reasoning, refusal, a tool call, a finish reason, usage): the attempt commits at its
    /// first such chunk; chunks before that (the role chunk) are held back until then.
    Chunk { json: Bytes, content: bool },
    /// The provider said the stream is complete (`[DONE]`, `message_stop`).
    Done,
    /// The provider reported an error inside the stream.
    Error { message: String },
}

/// `usage.total_tokens` of an OpenAI-shape answer, to correct a token budget's estimate. Only
/// read when a provider has a `tpm` budget (it scans the body once more).
pub(crate) fn usage_total_tokens(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Answer {
        usage: Option<Usage>,
    }
    #[derive(serde::Deserialize)]
    struct Usage {
        total_tokens: Option<u64>,
        prompt_tokens: Option<u64>,
        completion_tokens: Option<u64>,
    }
    let usage = serde_json::from_slice::<Answer>(body).ok()?.usage?;
    usage.total_tokens.or_else(|| {
        Some(
            usage
                .prompt_tokens?
                .saturating_add(usage.completion_tokens.unwrap_or(0)),
        )
    })
}
