//! What a scenario does to its providers and its traffic over time: fault windows (a provider
//! failing every call, or answering ten times slower, for a while; every provider down for a
//! total outage) and bursts of extra requests.
//!
//! A fault applies to the calls *sent* inside its window. The mock is still asked for its reply
//! first, so its random draws, and so the rest of the run, do not depend on the faults.

use bytes::Bytes;
use f3dx_router_core::mock::{MockOutcome, MockReply};
use std::time::Duration;

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    /// Every call fails with a 503.
    Fail,
    /// Every call takes this many times as long.
    Slow(u32),
}

/// A provider misbehaving for calls sent in `[from, until)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    pub provider: usize,
    pub from: Duration,
    pub until: Duration,
    pub kind: FaultKind,
}

impl Fault {
    /// Every one of `providers` failing from start to end: a total outage.
    pub fn outage(providers: usize) -> Vec<Fault> {
        (0..providers)
            .map(|provider| Fault {
                provider,
                from: Duration::ZERO,
                until: Duration::MAX,
                kind: FaultKind::Fail,
            })
            .collect()
    }
}

/// Extra requests arriving `interarrival` apart from `at` on, on top of the steady traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    pub at: Duration,
    pub requests: usize,
    pub interarrival: Duration,
}

/// The body of an injected 503 (OpenAI's error shape).
const FAULT_BODY: &[u8] =
    br#"{"error":{"message":"injected fault","type":"server_error","param":null,"code":null}}"#;

/// Applies the faults of `provider` at send time `at` to the mock's `reply`.
pub(crate) fn apply(faults: &[Fault], provider: usize, at: Duration, reply: &mut MockReply) {
    for fault in faults
        .iter()
        .filter(|f| f.provider == provider && f.from <= at && at < f.until)
    {
        match fault.kind {
            FaultKind::Slow(factor) => reply.latency = reply.latency.saturating_mul(factor),
            FaultKind::Fail => {
                let mut headers = http::HeaderMap::new();
                headers.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                reply.outcome = MockOutcome::Response {
                    status: 503,
                    headers,
                    body: vec![Bytes::from_static(FAULT_BODY)],
                };
            }
        }
    }
}
