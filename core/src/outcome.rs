//! What a request ends with: [`Routed`] on success, [`RouteError`] otherwise, each with the full
//! attempt history so a caller never needs a second request to learn what happened.

use crate::ids::{AttemptId, ProviderId};
use bytes::Bytes;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A transport-level failure the driver observed. All are soft: the next provider is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// Nothing listened (connection refused).
    Refused,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// The driver's connect or read timer fired.
    Timeout,
    /// TLS handshake or certificate failure.
    Tls,
    /// The host name did not resolve.
    Dns,
    /// Anything else the HTTP client reported.
    Other,
}

impl TransportErrorKind {
    /// Every kind, for tests and fuzzers that pick one.
    pub const ALL: [TransportErrorKind; 6] = [
        TransportErrorKind::Refused,
        TransportErrorKind::Reset,
        TransportErrorKind::Timeout,
        TransportErrorKind::Tls,
        TransportErrorKind::Dns,
        TransportErrorKind::Other,
    ];
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportErrorKind::Refused => "connection refused",
            TransportErrorKind::Reset => "connection reset",
            TransportErrorKind::Timeout => "transport timeout",
            TransportErrorKind::Tls => "TLS failure",
            TransportErrorKind::Dns => "DNS failure",
            TransportErrorKind::Other => "transport error",
        })
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// 2xx with a valid body (or a committed stream): this attempt served the request.
    Success { status: u16 },
    /// A retryable status (408, 429, 5xx): soft.
    SoftStatus { status: u16 },
    /// Any other 4xx: hard, the request ended here.
    HardStatus { status: u16 },
    /// The driver reported a transport failure: soft.
    Transport(TransportErrorKind),
    /// The per-attempt timeout (or, for a stream, the time-to-first-token limit) expired: soft.
    TimedOut,
    /// A 2xx whose body was not a valid response of the provider's shape: soft.
    InvalidBody { status: u16, reason: String },
    /// The body grew past `max_response_bytes`: soft.
    BodyTooLarge { limit: usize },
    /// A stream failed before it committed (error event, cut connection): soft, invisible.
    StreamFailedBeforeCommit { reason: String },
    /// A committed stream broke after delivering part of the answer.
    StreamInterrupted { reason: String },
    /// The request could not be expressed in this provider's shape; nothing was sent.
    Unsupported { field: String },
    /// A 2xx answer that failed the request's schema, with `validity.on_invalid: "failover"`:
    /// soft (the provider answered; its breaker counts it healthy, the classifier does not).
    InvalidOutput {
        status: u16,
        /// Where the first validation failure is, e.g. `choices[0].message.content/name`.
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// Another leg won, the request ended, or the caller cancelled.
    Cancelled,
}

/// One line for people: the summary of `AllProvidersFailed` and the CLI's attempt lists.
impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptOutcome::Success { status } => write!(f, "ok {status}"),
            AttemptOutcome::SoftStatus { status } => {
                write!(f, "status {status} (soft, failed over)")
            }
            AttemptOutcome::HardStatus { status } => {
                write!(f, "status {status} (hard, not retried)")
            }
            AttemptOutcome::Transport(kind) => write!(f, "{kind}"),
            AttemptOutcome::TimedOut => f.write_str("timed out"),
            AttemptOutcome::InvalidBody { status, reason } => {
                write!(f, "invalid {status} body ({reason})")
            }
            AttemptOutcome::BodyTooLarge { limit } => write!(f, "body over {limit} bytes"),
            AttemptOutcome::StreamFailedBeforeCommit { reason } => {
                write!(f, "stream failed before its first token ({reason})")
            }
            AttemptOutcome::StreamInterrupted { reason } => {
                write!(f, "stream interrupted ({reason})")
            }
            AttemptOutcome::Unsupported { field } => write!(f, "cannot express `{field}`"),
            AttemptOutcome::InvalidOutput { path, message, .. } => {
                write!(f, "answer failed its schema at {path}: {message}")
            }
            AttemptOutcome::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl AttemptOutcome {
    /// The outcome as the bindings show an attempt (Python's `Attempt`, the JS driver's): its
    /// name, the status when there is one, and what more it says. One spelling for every
    /// binding; the detail is not yet scrubbed (a binding scrubs it with its config's secrets).
    pub fn parts(&self) -> (&'static str, Option<u16>, Option<String>) {
        match self {
            AttemptOutcome::Success { status } => ("success", Some(*status), None),
            AttemptOutcome::SoftStatus { status } => ("soft_status", Some(*status), None),
            AttemptOutcome::HardStatus { status } => ("hard_status", Some(*status), None),
            AttemptOutcome::Transport(kind) => ("transport_error", None, Some(kind.to_string())),
            AttemptOutcome::TimedOut => ("timed_out", None, None),
            AttemptOutcome::InvalidBody { status, reason } => {
                ("invalid_body", Some(*status), Some(reason.clone()))
            }
            AttemptOutcome::BodyTooLarge { limit } => (
                "body_too_large",
                None,
                Some(format!("body over {limit} bytes")),
            ),
            AttemptOutcome::StreamFailedBeforeCommit { reason } => {
                ("stream_failed_before_commit", None, Some(reason.clone()))
            }
            AttemptOutcome::StreamInterrupted { reason } => {
                ("stream_interrupted", None, Some(reason.clone()))
            }
            AttemptOutcome::Unsupported { field } => (
                "unsupported",
                None,
                Some(format!("cannot express `{field}`")),
            ),
            AttemptOutcome::InvalidOutput {
                status,
                path,
                message,
            } => (
                "invalid_output",
                Some(*status),
                Some(format!("at {path}: {message}")),
            ),
            AttemptOutcome::Cancelled => ("cancelled", None, None),
        }
    }

    /// Whether this outcome lets the machine try another provider.
    pub fn is_soft_failure(&self) -> bool {
        !matches!(
            self,
            AttemptOutcome::Success { .. }
                | AttemptOutcome::HardStatus { .. }
                | AttemptOutcome::StreamInterrupted { .. }
                | AttemptOutcome::Cancelled
        )
    }
}

/// One attempt in a request's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The machine's id for it.
    pub attempt: AttemptId,
    /// Which provider.
    pub provider: ProviderId,
    /// The provider's configured name.
    pub provider_name: Arc<str>,
    /// From send to outcome.
    pub latency: Duration,
    /// How it ended.
    pub outcome: AttemptOutcome,
}

/// A served request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The request's id (what a report on it names: [`crate::Input::Feedback`]).
    pub id: crate::ids::RequestId,
    /// Whether the answer passed the request's `response_format` / `tools` schemas: `None`
    /// when the request asked for nothing checkable.
    pub valid: Option<bool>,
    /// The provider that served it.
    pub provider: ProviderId,
    /// Its name.
    pub provider_name: Arc<str>,
    /// The OpenAI-shape `chat.completion` JSON; empty for a stream (its chunks were delivered).
    pub body: Bytes,
    /// Every attempt, in the order they were started.
    pub attempts: Vec<AttemptRecord>,
}

/// Why a request failed. Every variant carries the attempts made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// A provider answered a non-retryable 4xx; the payload went nowhere else.
    #[error("provider {provider:?} rejected the request with status {status}")]
    HardFailure {
        provider: Arc<str>,
        status: u16,
        body: Bytes,
        attempts: Vec<AttemptRecord>,
    },
    /// Every provider that could be tried failed softly.
    #[error("all providers failed: {}", summarize(attempts))]
    AllProvidersFailed { attempts: Vec<AttemptRecord> },
    /// The request deadline passed.
    #[error("request deadline of {deadline:?} exceeded after {} attempt(s)", attempts.len())]
    DeadlineExceeded {
        deadline: Duration,
        attempts: Vec<AttemptRecord>,
    },
    /// Every provider is cooling down after a 429/503 and the earliest is free too late.
    #[error("all providers are rate limited; the earliest is free in {retry_after:?}")]
    RateLimited {
        retry_after: Duration,
        attempts: Vec<AttemptRecord>,
    },
    /// A committed stream broke; the chunks already delivered are all there is.
    #[error("stream from provider {provider:?} was interrupted after it started: {reason}")]
    StreamInterrupted {
        provider: Arc<str>,
        reason: String,
        attempts: Vec<AttemptRecord>,
    },
    /// No provider could express the request in its shape (e.g. `n > 1` on Anthropic).
    #[error("provider {provider:?} cannot express request field `{field}`")]
    Unsupported {
        provider: Arc<str>,
        field: String,
        attempts: Vec<AttemptRecord>,
    },
    /// The request cannot be sent as written (a schema in `response_format` or `tools` that
    /// does not compile); nothing was sent.
    #[error("invalid request at `{field}`: {message}")]
    InvalidRequest {
        field: String,
        message: String,
        attempts: Vec<AttemptRecord>,
    },
    /// The caller cancelled.
    #[error("request cancelled by the caller")]
    Cancelled { attempts: Vec<AttemptRecord> },
    /// A bug in the router: a panic while this request was being handled. The request is failed
    /// and the router keeps serving every other one.
    #[error("internal router error: {reason}")]
    Internal {
        reason: &'static str,
        attempts: Vec<AttemptRecord>,
    },
}

/// Every variant's `attempts` field, by shared or mutable reference.
macro_rules! attempts_of {
    ($error:expr) => {
        match $error {
            RouteError::HardFailure { attempts, .. }
            | RouteError::AllProvidersFailed { attempts }
            | RouteError::DeadlineExceeded { attempts, .. }
            | RouteError::RateLimited { attempts, .. }
            | RouteError::StreamInterrupted { attempts, .. }
            | RouteError::Unsupported { attempts, .. }
            | RouteError::InvalidRequest { attempts, .. }
            | RouteError::Cancelled { attempts }
            | RouteError::Internal { attempts, .. } => attempts,
        }
    };
}

impl RouteError {
    /// The attempts made before the failure.
    pub fn attempts(&self) -> &[AttemptRecord] {
        attempts_of!(self)
    }

    /// The attempt history, for the machine to fill in when the request completes.
    pub fn attempts_mut(&mut self) -> &mut Vec<AttemptRecord> {
        attempts_of!(self)
    }
}

fn summarize(attempts: &[AttemptRecord]) -> String {
    if attempts.is_empty() {
        return "no attempt could be made".to_owned();
    }
    attempts
        .iter()
        .map(|a| format!("{} {} after {:?}", a.provider_name, a.outcome, a.latency))
        .collect::<Vec<_>>()
        .join("; ")
}
