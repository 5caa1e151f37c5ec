//! The `mock` provider kind: a pure, seeded model of an OpenAI-shape provider.
// IMPLEMENTATION: helper task (see brief). Types fixed below.

use crate::outcome::TransportErrorKind;
use crate::rng::Rng;
use bytes::Bytes;
use serde::Deserialize;
use std::time::Duration;

/// How long the mock takes to answer. JSON: `{"kind":"fixed","ms":20}`,
/// `{"kind":"uniform","min_ms":5,"max_ms":50}`, `{"kind":"lognormal","median_ms":20,"sigma":0.5}`;
/// any of them may add a heavy tail: `"tail":{"probability":0.02,"min_ms":500,"max_ms":2000}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyModel {
    /// The body of the distribution.
    #[serde(flatten)]
    pub base: LatencyBase,
    /// With `probability`, the latency is drawn uniformly from `[min_ms, max_ms]` instead.
    #[serde(default)]
    pub tail: Option<LatencyTail>,
}

/// The body of a latency distribution.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LatencyBase {
    Fixed { ms: f64 },
    Uniform { min_ms: f64, max_ms: f64 },
    Lognormal { median_ms: f64, sigma: f64 },
}

/// A rare slow mode on top of the body of the distribution.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyTail {
    pub probability: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

/// One scripted outcome. JSON: a status number (`200`, `429`), a transport failure name
/// (`"reset"`, `"refused"`, `"timeout"`), or `{"status":429,"retry_after":"2"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum MockStep {
    Status(u16),
    Transport(MockTransport),
    Detailed {
        status: u16,
        #[serde(default)]
        retry_after: Option<String>,
        #[serde(default)]
        body: Option<serde_json::Value>,
    },
}

/// Transport failures a mock can script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MockTransport {
    Reset,
    Refused,
    Timeout,
}

/// When the mock fails. `sequence`, if non-empty, is followed in order and repeats; otherwise each
/// call fails with `probability`, picking uniformly among `steps` (default `[503]`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureModel {
    #[serde(default)]
    pub sequence: Vec<MockStep>,
    #[serde(default)]
    pub probability: f64,
    #[serde(default)]
    pub steps: Vec<MockStep>,
}

/// A mock provider's behaviour (`providers[i].mock`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    #[serde(default = "default_latency")]
    pub latency: LatencyModel,
    #[serde(default)]
    pub failures: FailureModel,
    /// The assistant text of a successful answer (default: an echo of the last user message).
    #[serde(default)]
    pub reply: Option<String>,
    /// Extra seed mixed into this provider's stream of random draws.
    #[serde(default)]
    pub seed: u64,
}

fn default_latency() -> LatencyModel {
    LatencyModel {
        base: LatencyBase::Fixed { ms: 1.0 },
        tail: None,
    }
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            latency: default_latency(),
            failures: FailureModel::default(),
            reply: None,
            seed: 0,
        }
    }
}

/// What the mock does with one request: after `latency`, this `outcome`.
#[derive(Debug, Clone, PartialEq)]
pub struct MockReply {
    pub latency: Duration,
    pub outcome: MockOutcome,
}

/// A mock answer.
#[derive(Debug, Clone, PartialEq)]
pub enum MockOutcome {
    /// An HTTP response: status, headers, body pieces (one for a plain response; SSE pieces,
    /// `data: ...\n\n` each, ending with `data: [DONE]`, for a stream).
    Response {
        status: u16,
        headers: http::HeaderMap,
        body: Vec<Bytes>,
    },
    /// A transport failure.
    Transport(TransportErrorKind),
}

/// A seeded mock provider.
#[derive(Debug, Clone)]
pub struct MockProvider {
    config: MockConfig,
    rng: Rng,
    calls: u64,
}

impl MockConfig {
    /// Checks the model's numbers; the error is `(field path under mock, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        Ok(())
    }
}
