//! The retry/hedge throttle of gRPC's A6 (`retryThrottling`), so a router under an outage does
//! not multiply the provider's load.
//!
//! As A6 defines it: a token count starts at `max_tokens` and stays within `0..=max_tokens`; every
//! failed attempt takes 1, every successful one adds `token_ratio`; while the count is at or below
//! `max_tokens / 2`, no retry (failover) and no hedge is sent, and the first attempt of a request
//! always is. A6 counts as failures only what its retry policy would retry (here: soft failures and
//! timeouts, not a hard 4xx, which says the request was bad, not the provider).
//!
//! A6 supports three decimals of `token_ratio`; like grpc-core the count is kept in integer
//! thousandths of a token, so `0.1` is exactly 100 and ten successes exactly undo one failure.
//! The bounds are grpc-go's: `0 < max_tokens <= 1000`; `token_ratio` must be at least 0.001 (the
//! smallest three decimals can say) and at most 1.
//!
//! O(1), allocation-free.

use serde::Deserialize;

/// The config key `throttle` (off when absent). Both fields are required, as in A6.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// The bucket's size, a whole number of tokens in 1..=1000 (A6's `maxTokens`).
    pub max_tokens: u32,
    /// Tokens a success adds back, in 0.001..=1 with three decimals kept (A6's `tokenRatio`).
    pub token_ratio: f64,
}

impl ThrottleConfig {
    /// Checks the values; the error names the field (relative to `throttle`) and what is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(1..=1000).contains(&self.max_tokens) {
            return Err((
                "max_tokens".to_owned(),
                "must be between 1 and 1000".to_owned(),
            ));
        }
        if !(self.token_ratio <= 1.0 && milli(self.token_ratio) >= 1) {
            return Err((
                "token_ratio".to_owned(),
                "must be between 0.001 and 1".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Thousandths, truncated beyond three decimals as grpc-core parses `tokenRatio` (NaN is 0).
/// The small nudge keeps `0.001` (stored as 0.000999…) at 1.
fn milli(value: f64) -> u64 {
    (value * 1000.0 + 1e-9) as u64
}

/// One throttle (A6 keeps one per server name; the router keeps one for all its providers or
/// one per provider, as the machine chooses).
#[derive(Debug, Clone)]
pub struct Throttle {
    max_milli: u64,
    ratio_milli: u64,
    tokens_milli: u64,
}

impl Throttle {
    /// A full bucket. The config should have passed [`ThrottleConfig::validate`]; out-of-range
    /// values are clamped rather than panicking.
    pub fn new(config: &ThrottleConfig) -> Throttle {
        let max_milli = u64::from(config.max_tokens.clamp(1, 1000)) * 1000;
        Throttle {
            max_milli,
            ratio_milli: milli(config.token_ratio).clamp(1, 1000),
            tokens_milli: max_milli,
        }
    }

    /// A failed attempt (soft failure or timeout): one token less, not below 0.
    pub fn record_failure(&mut self) {
        self.tokens_milli = self.tokens_milli.saturating_sub(1000);
    }

    /// A successful attempt: `token_ratio` more, not above `max_tokens`.
    pub fn record_success(&mut self) {
        self.tokens_milli = (self.tokens_milli + self.ratio_milli).min(self.max_milli);
    }

    /// Whether a retry or a hedge may be sent now: the count is above `max_tokens / 2`.
    pub fn allows_retry(&self) -> bool {
        self.tokens_milli * 2 > self.max_milli
    }

    /// The token count, for stats.
    pub fn tokens(&self) -> f64 {
        self.tokens_milli as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(json: &str) -> Throttle {
        let config: ThrottleConfig = serde_json::from_str(json).unwrap();
        config.validate().unwrap();
        Throttle::new(&config)
    }

    /// grpc-core's `RetryThrottler` test: max 4, ratio 1 (threshold 2).
    #[test]
    fn grpc_core_basic_sequence() {
        let mut t = throttle(r#"{"max_tokens": 4, "token_ratio": 1}"#);
        assert!(t.allows_retry());
        t.record_failure(); // 3
        assert!(t.allows_retry());
        t.record_failure(); // 2: at the threshold, not above it
        assert!(!t.allows_retry());
        t.record_failure(); // 1
        t.record_failure(); // 0
        t.record_failure(); // stays 0
        assert_eq!(t.tokens(), 0.0);
        t.record_success(); // 1
        t.record_success(); // 2
        assert!(!t.allows_retry());
        t.record_success(); // 3
        assert!(t.allows_retry());
        t.record_success();
        t.record_success(); // capped at 4
        assert_eq!(t.tokens(), 4.0);
    }

    /// A6's example: max 10, ratio 0.1; ten successes exactly undo a failure, in thousandths.
    #[test]
    fn a6_example_is_exact() {
        let mut t = throttle(r#"{"max_tokens": 10, "token_ratio": 0.1}"#);
        for _ in 0..6 {
            t.record_failure();
        }
        assert_eq!(t.tokens(), 4.0);
        assert!(!t.allows_retry());
        // Ten successes of 0.1 bring it to exactly 5, the threshold: still throttled (summing
        // 0.1 in f64 ten times would give 4.999… or 5.000…1 depending on the order).
        for _ in 0..10 {
            t.record_success();
        }
        assert_eq!(t.tokens(), 5.0);
        assert!(!t.allows_retry());
        t.record_success();
        assert_eq!(t.tokens(), 5.1);
        assert!(t.allows_retry());
    }

    #[test]
    fn ratio_keeps_three_decimals() {
        let mut t = throttle(r#"{"max_tokens": 1, "token_ratio": 0.0019}"#);
        t.record_failure();
        t.record_success();
        assert_eq!(t.tokens(), 0.001);
        let t = throttle(r#"{"max_tokens": 1, "token_ratio": 0.001}"#);
        assert_eq!(t.ratio_milli, 1);
    }

    #[test]
    fn config_is_checked() {
        let err = |json: &str| {
            serde_json::from_str::<ThrottleConfig>(json)
                .unwrap()
                .validate()
                .unwrap_err()
                .0
        };
        for (json, field) in [
            (r#"{"max_tokens": 0, "token_ratio": 0.1}"#, "max_tokens"),
            (r#"{"max_tokens": 1001, "token_ratio": 0.1}"#, "max_tokens"),
            (r#"{"max_tokens": 10, "token_ratio": 0}"#, "token_ratio"),
            (
                r#"{"max_tokens": 10, "token_ratio": 0.0009}"#,
                "token_ratio",
            ),
            (r#"{"max_tokens": 10, "token_ratio": -1}"#, "token_ratio"),
            (r#"{"max_tokens": 10, "token_ratio": 1.5}"#, "token_ratio"),
        ] {
            assert_eq!(err(json), field, "{json}");
        }
        for bad in [
            r#"{"max_tokens": 10}"#,
            r#"{"token_ratio": 0.1}"#,
            r#"{"max_tokens": 10, "token_ratio": 0.1, "extra": 1}"#,
            r#"{"max_tokens": -1, "token_ratio": 0.1}"#,
            r#"{"max_tokens": 2.5, "token_ratio": 0.1}"#,
        ] {
            assert!(
                serde_json::from_str::<ThrottleConfig>(bad).is_err(),
                "{bad}"
            );
        }
        let nan = ThrottleConfig {
            max_tokens: 10,
            token_ratio: f64::NAN,
        };
        assert_eq!(nan.validate().unwrap_err().0, "token_ratio");
    }
}
