//! `hedge_delay_ms`: a fixed delay, or one learned from the providers' latency.
//!
//! `"auto"` (or `{"quantile": q}`) sets the delay before the next hedge leg to the `q` quantile
//! (default 0.95) of the first leg's provider's observed latency to first byte, kept between
//! `min_ms` and `max_ms`: the hand-tuned p95 of "The Tail at Scale", with no tuning. Until a
//! provider has enough samples for an estimate, the next leg waits `max_ms`.

use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::Value;
use std::time::Duration;

/// Default quantile of `"auto"`.
pub const DEFAULT_HEDGE_QUANTILE: f64 = 0.95;
/// Default floor of a learned delay: hedging sooner than this only doubles the load.
pub const DEFAULT_HEDGE_MIN: Duration = Duration::from_millis(1);
/// Default cap of a learned delay, also the delay before there is an estimate.
pub const DEFAULT_HEDGE_MAX: Duration = Duration::from_secs(2);

/// What the config says the hedge delay is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelaySetting {
    /// Milliseconds; 0 fires all legs at once.
    Fixed(i64),
    /// The `quantile` of the provider's latency to first byte, within `[min, max]`.
    Learned {
        /// In (0, 1).
        quantile: f64,
        /// Floor.
        min: Duration,
        /// Cap, and the delay while there is no estimate.
        max: Duration,
    },
}

const SHAPE: &str = r#"must be milliseconds, "auto", or {"quantile": q, "min_ms": n, "max_ms": n}"#;

impl<'de> Deserialize<'de> for HedgeDelaySetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The value is never echoed: a key pasted into the wrong field must not come back.
        let learned = |quantile, min, max| HedgeDelaySetting::Learned { quantile, min, max };
        match Value::deserialize(deserializer)? {
            Value::Number(n) => n
                .as_i64()
                .map(HedgeDelaySetting::Fixed)
                .ok_or_else(|| D::Error::custom("must be a whole number of milliseconds")),
            Value::String(s) if s == "auto" => Ok(learned(
                DEFAULT_HEDGE_QUANTILE,
                DEFAULT_HEDGE_MIN,
                DEFAULT_HEDGE_MAX,
            )),
            Value::Object(map) => {
                let mut setting = (DEFAULT_HEDGE_QUANTILE, DEFAULT_HEDGE_MIN, DEFAULT_HEDGE_MAX);
                for (key, value) in &map {
                    let millis = || {
                        value
                            .as_u64()
                            .map(Duration::from_millis)
                            .ok_or_else(|| D::Error::custom(format!("`{key}` {SHAPE}")))
                    };
                    match key.as_str() {
                        "quantile" => {
                            setting.0 = value.as_f64().ok_or_else(|| {
                                D::Error::custom("`quantile` must be a number in (0, 1)")
                            })?
                        }
                        "min_ms" => setting.1 = millis()?,
                        "max_ms" => setting.2 = millis()?,
                        _ => return Err(D::Error::custom(SHAPE)),
                    }
                }
                Ok(learned(setting.0, setting.1, setting.2))
            }
            _ => Err(D::Error::custom(SHAPE)),
        }
    }
}

impl std::fmt::Display for HedgeDelaySetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            HedgeDelaySetting::Fixed(ms) => write!(f, "{ms} ms"),
            HedgeDelaySetting::Learned { quantile, min, max } => write!(
                f,
                "auto: p{} of latency to first byte, {}..{} ms",
                quantile * 100.0,
                min.as_millis(),
                max.as_millis()
            ),
        }
    }
}

impl HedgeDelaySetting {
    /// Checks the numbers; the message is for the `hedge_delay_ms` field.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match *self {
            HedgeDelaySetting::Fixed(ms) if ms < 0 => {
                Err(format!("must not be negative, got {ms}"))
            }
            HedgeDelaySetting::Learned { quantile, .. } if !(quantile > 0.0 && quantile < 1.0) => {
                Err(format!("quantile must be in (0, 1), got {quantile}"))
            }
            HedgeDelaySetting::Learned { min, max, .. } if min > max || max.is_zero() => {
                Err("needs 0 < max_ms and min_ms <= max_ms".to_owned())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<HedgeDelaySetting, String> {
        let setting: HedgeDelaySetting = serde_json::from_str(json).map_err(|e| e.to_string())?;
        setting.validate().map(|()| setting)
    }

    #[test]
    fn milliseconds_auto_and_quantiles() {
        assert_eq!(parse("150"), Ok(HedgeDelaySetting::Fixed(150)));
        assert_eq!(
            parse(r#""auto""#),
            Ok(HedgeDelaySetting::Learned {
                quantile: 0.95,
                min: DEFAULT_HEDGE_MIN,
                max: DEFAULT_HEDGE_MAX
            })
        );
        assert_eq!(
            parse(r#"{"quantile":0.9,"max_ms":500}"#),
            Ok(HedgeDelaySetting::Learned {
                quantile: 0.9,
                min: DEFAULT_HEDGE_MIN,
                max: Duration::from_millis(500)
            })
        );
    }

    #[test]
    fn anything_else_is_refused_without_echoing_it() {
        for bad in [
            r#""sk-live-123""#,
            "1.5",
            "true",
            r#"{"q":1}"#,
            "-3",
            r#"{"quantile":1.0}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains("sk-live"), "{e}");
        }
        assert!(parse(r#"{"min_ms":50,"max_ms":10}"#).is_err());
    }
}
