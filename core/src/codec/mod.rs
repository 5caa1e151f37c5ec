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

/// A 2xx body as an OpenAI `chat.completion`, with the tokens its `usage` reports (total, or
/// prompt plus completion), read in the same pass that checks or translates it: a token budget
/// corrects its estimate from this without scanning the body again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The OpenAI-shape body.
    pub body: Bytes,
    /// `usage` in tokens, when the provider reported it.
    pub total_tokens: Option<u64>,
}
