//! A request's outcome as the JSON text the JS driver turns into its result or its `Error`:
//! `{"ok": true, "provider", "attempts", "body"}` or
//! `{"ok": false, "name", "message", "attempts", ...the error's fields}`.
//!
//! The names are the Python package's exception names; every message and text field passes
//! through [`Secrets::scrub`] (a provider may echo a key in its error body).

use f3dx_router_core::{AttemptRecord, RouteError, Routed, RouterConfig};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// The configured API keys, cut out of every text that leaves the module.
#[derive(Debug)]
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    pub(crate) fn of(config: &RouterConfig) -> Secrets {
        let mut keys: Vec<String> = config
            .providers
            .iter()
            .filter_map(|p| p.api_key.as_ref())
            .map(|k| k.expose().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        // Longest first, so a key that contains another is cut whole.
        keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
        keys.dedup();
        Secrets(keys)
    }

    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for key in &self.0 {
            if out.contains(key.as_str()) {
                out = out.replace(key.as_str(), "***");
            }
        }
        out
    }
}

/// One attempt as JS sees it (the Python package's `Attempt`, in camelCase).
fn attempt(record: &AttemptRecord, secrets: &Secrets) -> Value {
    let (outcome, status, detail) = record.outcome.parts();
    json!({
        "provider": &*record.provider_name,
        "outcome": outcome,
        "status": status,
        "detail": detail.map(|d| secrets.scrub(&d)),
        "latencyMs": record.latency.as_secs_f64() * 1000.0,
    })
}

fn attempts(records: &[AttemptRecord], secrets: &Secrets) -> Value {
    Value::Array(records.iter().map(|r| attempt(r, secrets)).collect())
}

/// The outcome of a request, as JSON text.
pub(crate) fn outcome_json(outcome: &Result<Routed, RouteError>, secrets: &Secrets) -> String {
    match outcome {
        Ok(routed) => routed_json(routed, secrets),
        Err(error) => error_json(error, secrets).to_string(),
    }
}

fn routed_json(routed: &Routed, secrets: &Secrets) -> String {
    // The body is the machine's own serialization: embedded as it is, parsed once, by JS.
    let body = std::str::from_utf8(&routed.body)
        .ok()
        .filter(|b| !b.is_empty())
        .and_then(|b| RawValue::from_string(b.to_owned()).ok());
    json!({
        "ok": true,
        "provider": &*routed.provider_name,
        "attempts": attempts(&routed.attempts, secrets),
        "body": body,
    })
    .to_string()
}

/// A routing failure: the Python exception's name, message and fields.
pub(crate) fn error_json(error: &RouteError, secrets: &Secrets) -> Value {
    let mut fields = Map::new();
    let mut put = |k: &str, v: Value| {
        fields.insert(k.to_owned(), v);
    };
    let name = match error {
        RouteError::HardFailure {
            provider,
            status,
            body,
            ..
        } => {
            put("provider", json!(&**provider));
            put("status", json!(status));
            put("body", json!(secrets.scrub(&String::from_utf8_lossy(body))));
            "HardFailureError"
        }
        RouteError::AllProvidersFailed { .. } => "AllProvidersFailedError",
        RouteError::DeadlineExceeded { deadline, .. } => {
            put("deadlineMs", json!(deadline.as_secs_f64() * 1000.0));
            "DeadlineExceededError"
        }
        RouteError::RateLimited { retry_after, .. } => {
            put("retryAfterMs", json!(retry_after.as_secs_f64() * 1000.0));
            "RateLimitedError"
        }
        RouteError::StreamInterrupted {
            provider, reason, ..
        } => {
            put("provider", json!(&**provider));
            put("reason", json!(secrets.scrub(reason)));
            "StreamInterruptedError"
        }
        RouteError::Unsupported {
            provider, field, ..
        } => {
            put("provider", json!(&**provider));
            put("field", json!(field));
            "UnsupportedError"
        }
        RouteError::Cancelled { .. } => "CancelledError",
        RouteError::Internal { .. } => "InternalError",
        // A variant a newer core adds: the base name.
        _ => "RouterError",
    };
    fields.insert("ok".to_owned(), json!(false));
    fields.insert("name".to_owned(), json!(name));
    fields.insert(
        "message".to_owned(),
        json!(secrets.scrub(&error.to_string())),
    );
    fields.insert("attempts".to_owned(), attempts(error.attempts(), secrets));
    Value::Object(fields)
}

/// An error raised before routing (bad config, bad request): `{"ok": false, "name", "message",
/// "field"}`. Config errors never echo a value (core's `ConfigError` names the field only).
pub(crate) fn input_error_json(name: &str, message: &str, field: Option<&str>) -> String {
    json!({"ok": false, "name": name, "message": message, "field": field}).to_string()
}
