//! The config key `validity`: what an invalid structured answer does, and the classifier's rule.

use serde::Deserialize;
use std::time::Duration;

/// What the machine does with an answer that fails its request's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// The caller gets the answer, marked invalid in its route (`valid: Some(false)`), and the
    /// failure is counted.
    #[default]
    Return,
    /// A soft failure: the next provider is tried. Not possible for a stream (it has been
    /// delivered by the time it can be checked): the stream is marked and counted.
    Failover,
}

/// `validity` (every field optional).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidityConfig {
    /// `"return"` (default) or `"failover"`.
    pub on_invalid: OnInvalid,
    /// Whether the classifier routes away from a provider whose answers stop validating for a
    /// (tenant, model) (default true). Off, answers are still validated, marked and counted.
    pub classify: bool,
    /// Outcomes kept per (provider, tenant, model) (default 50).
    pub window: u32,
    /// Outcomes needed before a key can be excluded (default 10).
    pub min_samples: u32,
    /// Failure rate above which a key is excluded, judged by the Wilson lower bound (default 0.2).
    pub threshold: f64,
    /// How long an excluded key waits before one request probes it (default 30 000 ms).
    pub probe_ms: i64,
    /// Consecutive valid probe answers that restore an excluded key (default 3).
    pub recovery: u32,
    /// (tenant, model) pairs tracked at most, least recently used evicted (default 10 000).
    pub max_keys: u32,
    /// Completed requests remembered for [`crate::Input::Feedback`], oldest forgotten first
    /// (default 10 000); feedback for a forgotten one is ignored and counted.
    pub feedback_ids: u32,
}

impl Default for ValidityConfig {
    fn default() -> Self {
        ValidityConfig {
            on_invalid: OnInvalid::Return,
            classify: true,
            window: 50,
            min_samples: 10,
            threshold: 0.2,
            probe_ms: 30_000,
            recovery: 3,
            max_keys: 10_000,
            feedback_ids: 10_000,
        }
    }
}

/// Largest `window`: a key's memory stays small.
pub const MAX_WINDOW: u32 = 10_000;
/// Largest `max_keys` and `feedback_ids`.
pub const MAX_TRACKED: u32 = 10_000_000;

impl ValidityConfig {
    /// Checks the values; the error names the field (relative to `validity`) and what is wrong,
    /// never echoing the value.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |field: &str, message: &str| Err((field.to_owned(), message.to_owned()));
        if !(1..=MAX_WINDOW).contains(&self.window) {
            return err("window", "must be between 1 and 10000");
        }
        if !(1..=self.window).contains(&self.min_samples) {
            return err("min_samples", "must be between 1 and `window`");
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return err(
                "threshold",
                "must be a failure rate between 0 and 1 (exclusive)",
            );
        }
        if self.probe_ms <= 0 {
            return err("probe_ms", "must be greater than 0");
        }
        if !(1..=self.window).contains(&self.recovery) {
            return err("recovery", "must be between 1 and `window`");
        }
        if !(1..=MAX_TRACKED).contains(&self.max_keys) {
            return err("max_keys", "must be between 1 and 10000000");
        }
        if self.feedback_ids > MAX_TRACKED {
            return err("feedback_ids", "must be at most 10000000");
        }
        Ok(())
    }

    /// `probe_ms` as a duration.
    pub fn probe_after(&self) -> Duration {
        Duration::from_millis(self.probe_ms.max(1) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(json: &str) -> String {
        let c: ValidityConfig = serde_json::from_str(json).unwrap();
        c.validate().unwrap_err().0
    }

    #[test]
    fn defaults_are_the_documented_ones_and_valid() {
        let c: ValidityConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, ValidityConfig::default());
        c.validate().unwrap();
        assert_eq!(c.on_invalid, OnInvalid::Return);
        let c: ValidityConfig = serde_json::from_str(r#"{"on_invalid":"failover"}"#).unwrap();
        assert_eq!(c.on_invalid, OnInvalid::Failover);
    }

    #[test]
    fn every_bad_value_names_its_field() {
        for (json, expected) in [
            (r#"{"window":0}"#, "window"),
            (r#"{"window":20000}"#, "window"),
            (r#"{"window":5,"min_samples":6}"#, "min_samples"),
            (r#"{"min_samples":0}"#, "min_samples"),
            (r#"{"threshold":0}"#, "threshold"),
            (r#"{"threshold":1.5}"#, "threshold"),
            (r#"{"probe_ms":0}"#, "probe_ms"),
            (r#"{"recovery":0}"#, "recovery"),
            (r#"{"max_keys":0}"#, "max_keys"),
            (r#"{"feedback_ids":20000000}"#, "feedback_ids"),
        ] {
            assert_eq!(field(json), expected, "{json}");
        }
    }
}
