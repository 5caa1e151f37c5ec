//! Route metadata: which provider served a request and every attempt made, with no second
//! request. `ChatCompletion.route`, `ChatCompletionStream.route` and every routing error's
//! `attempts` are built here from core's `Routed` / `AttemptRecord`.

use crate::errors::Secrets;
use f3dx_router_core::{AttemptRecord, Routed};
use pyo3::prelude::*;

/// One attempt: a provider, how it ended, and how long it took.
#[pyclass(frozen, get_all, module = "f3dx_router")]
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    /// The provider's configured name.
    provider: String,
    /// `success`, `soft_status`, `hard_status`, `transport_error`, `timed_out`, `invalid_body`,
    /// `body_too_large`, `stream_failed_before_commit`, `stream_interrupted`, `unsupported`,
    /// `invalid_output` (the answer failed its schema, `validity.on_invalid: "failover"`),
    /// `cancelled`.
    outcome: String,
    /// The HTTP status, when the provider answered one.
    status: Option<u16>,
    /// A human description of a failure (`connection reset`, `invalid 200 body (...)`).
    detail: Option<String>,
    /// From send to outcome, in milliseconds.
    latency_ms: f64,
}

impl Attempt {
    pub(crate) fn from_record(record: &AttemptRecord, secrets: &Secrets) -> Attempt {
        let (outcome, status, detail) = record.outcome.parts();
        Attempt {
            provider: record.provider_name.to_string(),
            outcome: outcome.to_owned(),
            status,
            detail: detail.map(|d| secrets.scrub(&d).into_owned()),
            latency_ms: record.latency.as_secs_f64() * 1000.0,
        }
    }
}

#[pymethods]
impl Attempt {
    fn __repr__(&self) -> String {
        let mut s = format!(
            "Attempt(provider='{}', outcome='{}'",
            self.provider, self.outcome
        );
        if let Some(status) = self.status {
            s.push_str(&format!(", status={status}"));
        }
        if let Some(detail) = &self.detail {
            s.push_str(&format!(", detail={detail:?}"));
        }
        s.push_str(&format!(", latency_ms={:.3})", self.latency_ms));
        s
    }
}

/// The route a served request took.
#[pyclass(frozen, get_all, module = "f3dx_router")]
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The request's id, what `Router.report` names.
    id: u64,
    /// Whether the answer passed its `response_format` / `tools` schemas (`None`: none asked).
    valid: Option<bool>,
    /// The provider that served the request.
    provider: String,
    /// Every attempt, in the order they were started (losing hedges and failovers included).
    attempts: Vec<Attempt>,
}

impl Route {
    /// The request's id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn from_routed(routed: &Routed, secrets: &Secrets) -> Route {
        Route {
            id: routed.id.0,
            valid: routed.valid,
            provider: routed.provider_name.to_string(),
            attempts: routed
                .attempts
                .iter()
                .map(|a| Attempt::from_record(a, secrets))
                .collect(),
        }
    }
}

#[pymethods]
impl Route {
    fn __repr__(&self) -> String {
        let attempts: Vec<String> = self.attempts.iter().map(Attempt::__repr__).collect();
        let valid = match self.valid {
            Some(true) => "True",
            Some(false) => "False",
            None => "None",
        };
        format!(
            "Route(provider='{}', id={}, valid={valid}, attempts=[{}])",
            self.provider,
            self.id,
            attempts.join(", ")
        )
    }
}
