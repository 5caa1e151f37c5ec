//! `Retry-After` / `retry-after-ms` as the official SDKs read them.
//!
//! Both the OpenAI and the Anthropic Python SDKs (`_base_client.py::_parse_retry_after_header`)
//! read the headers the same way: `retry-after-ms` as a float of milliseconds; else `retry-after`
//! as a float of seconds; else `retry-after` as an HTTP-date minus the current time. The first
//! header that parses decides, even if its value is then rejected (a `retry-after-ms: 0` is not
//! rescued by a `retry-after: 5`). They differ only in what they do with a long wait: the
//! Anthropic SDK ignores anything above 60 s and backs off by itself; the OpenAI SDK refuses to
//! retry above 120 s. [`RetryAfter`] keeps those cases apart so a policy can choose.
//!
//! The machine has no clock, so an HTTP-date is compared with the response's own `Date` header
//! (`now_unix`), which is also what makes the answer independent of clock skew between us and the
//! provider.

use crate::http_date::parse_http_date;
use std::time::Duration;

/// What a 429/503 response says about when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// A plausible wait (0 < wait <= cap).
    Wait(Duration),
    /// Longer than the cap: the provider is out for a long time (the OpenAI SDK refuses to retry).
    /// Saturates at [`Duration::MAX`] for absurd values (`1e35`, `inf`).
    TooLong(Duration),
    /// Absent, zero, negative, garbage or a date in the past: the caller uses its default backoff.
    Unusable,
}

/// `retry-after-ms` first (float ms), then `retry-after` as (float) seconds, then as an HTTP-date
/// compared with `now_unix` (the response's Date header, in Unix seconds; when None a date is
/// Unusable).
///
/// Never panics and never overflows: numbers of any size are compared as `f64` before they become
/// a [`Duration`]. A header that is not visible ASCII counts as absent, as in the SDKs (httpx
/// would decode it, but no number or date survives that).
pub fn parse_retry_after(
    headers: &http::HeaderMap,
    now_unix: Option<u64>,
    cap: Duration,
) -> RetryAfter {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };

    if let Some(ms) = header("retry-after-ms").and_then(parse_float) {
        return classify(ms / 1000.0, cap);
    }
    let Some(value) = header("retry-after") else {
        return RetryAfter::Unusable;
    };
    if let Some(secs) = parse_float(value) {
        return classify(secs, cap);
    }
    match (parse_http_date(value), now_unix) {
        // Whole seconds either way; i128 so no pair of u64s can overflow.
        (Some(date), Some(now)) => classify((i128::from(date) - i128::from(now)) as f64, cap),
        _ => RetryAfter::Unusable,
    }
}

/// Python's `float()` on a stripped string, close enough: Rust's parser takes the same decimal,
/// exponent, `inf` and `nan` spellings (not Python's `_` digit separators, which no server sends).
fn parse_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

/// The SDKs' `0 < wait <= cap` test, in seconds.
fn classify(secs: f64, cap: Duration) -> RetryAfter {
    // NaN fails every comparison, as in Python: unusable.
    if secs.is_nan() || secs <= 0.0 {
        return RetryAfter::Unusable;
    }
    // `try_from_secs_f64` fails only above Duration::MAX; such a wait is longer than any cap.
    let wait = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
    if secs > cap.as_secs_f64() || wait > cap {
        RetryAfter::TooLong(wait)
    } else {
        // A positive wait below 1 ns rounds to zero; the provider still said "come back now".
        RetryAfter::Wait(wait.max(Duration::from_nanos(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};
    use serde_json::Value;

    fn fixture(name: &str) -> Value {
        let path = format!(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/errors/{}"),
            name
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// The time both SDK test suites freeze (`time.time` patched to it): Fri, 29 Sep 2023 16:26:37 GMT.
    const SDK_NOW: u64 = 1_696_004_797;

    #[test]
    fn anthropic_sdk_table() {
        let table = fixture("anthropic_errors.json");
        let table = &table["retry_after_parsing_table_sdk"];
        let source = table["source"].as_str().unwrap();
        assert!(
            source.contains(&SDK_NOW.to_string()),
            "the fixture's clock moved: {source}"
        );
        let rows = table["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 13);
        let cap = Duration::from_secs(60); // the Anthropic SDK's cap
        for row in rows {
            let value = row[0].as_str().unwrap();
            let expected = row[1].as_f64().unwrap();
            let got = parse_retry_after(&headers(&[("retry-after", value)]), Some(SDK_NOW), cap);
            if expected == 0.5 {
                // 0.5 is the SDK's "ignored, fall back to exponential backoff".
                assert!(
                    matches!(got, RetryAfter::Unusable | RetryAfter::TooLong(_)),
                    "{value:?} -> {got:?}"
                );
            } else {
                assert_eq!(
                    got,
                    RetryAfter::Wait(Duration::from_secs_f64(expected)),
                    "{value:?}"
                );
            }
        }
    }

    /// The OpenAI table's HTTP-date rows only make sense against a fixed clock, and its source
    /// (`openai-python` `tests/test_client.py::test_retry_after_max_delay`) patches `time.time` the
    /// same way the Anthropic suite does: with `now` = 1696004797 (16:26:37), `16:28:37` is exactly
    /// 120 s away (retried) and `16:28:38` is 121 s (not retried). No other `now` separates the
    /// two rows at a 120 s cap, so the table pins it.
    #[test]
    fn openai_sdk_max_retry_after_table() {
        let rules = fixture("openai_errors.json");
        let rows = rules["retry_rules_openai_python"]["max_retry_after_table"]
            .as_array()
            .unwrap();
        assert_eq!(rows.len(), 6);
        let cap = Duration::from_secs(120); // openai-python refuses to retry above this
        for row in rows {
            let pairs: Vec<(&str, &str)> = row[0]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                .collect();
            let retried = row[1].as_bool().unwrap();
            let got = parse_retry_after(&headers(&pairs), Some(SDK_NOW), cap);
            if retried {
                assert!(matches!(got, RetryAfter::Wait(_)), "{pairs:?} -> {got:?}");
            } else {
                assert!(
                    matches!(got, RetryAfter::TooLong(_)),
                    "{pairs:?} -> {got:?}"
                );
            }
        }
    }

    #[test]
    fn ms_header_wins_and_is_milliseconds() {
        let cap = Duration::from_secs(60);
        let h = headers(&[("retry-after-ms", "1500.5"), ("retry-after", "30")]);
        assert_eq!(
            parse_retry_after(&h, None, cap),
            RetryAfter::Wait(Duration::from_micros(1_500_500))
        );
        // A garbage ms header falls through to retry-after.
        let h = headers(&[("retry-after-ms", "soon"), ("retry-after", "30")]);
        assert_eq!(
            parse_retry_after(&h, None, cap),
            RetryAfter::Wait(Duration::from_secs(30))
        );
        // A parsed but zero ms header decides (as in the SDKs).
        let h = headers(&[("retry-after-ms", "0"), ("retry-after", "30")]);
        assert_eq!(parse_retry_after(&h, None, cap), RetryAfter::Unusable);
    }

    #[test]
    fn dates_need_the_response_date() {
        let cap = Duration::from_secs(60);
        let h = headers(&[("retry-after", "Fri, 29 Sep 2023 16:26:57 GMT")]);
        assert_eq!(parse_retry_after(&h, None, cap), RetryAfter::Unusable);
        assert_eq!(
            parse_retry_after(&h, Some(SDK_NOW), cap),
            RetryAfter::Wait(Duration::from_secs(20))
        );
        assert_eq!(
            parse_retry_after(&h, Some(0), cap),
            RetryAfter::TooLong(Duration::from_secs(SDK_NOW + 20))
        );
        assert_eq!(
            parse_retry_after(&h, Some(u64::MAX), cap),
            RetryAfter::Unusable
        );
    }

    #[test]
    fn absurd_values_neither_panic_nor_overflow() {
        let cap = Duration::from_secs(60);
        for value in [
            "99999999999999999999999999999999999",
            "1e308",
            "inf",
            "Infinity",
            "1e400",
        ] {
            for name in ["retry-after", "retry-after-ms"] {
                let got = parse_retry_after(&headers(&[(name, value)]), Some(SDK_NOW), cap);
                assert!(
                    matches!(got, RetryAfter::TooLong(_)),
                    "{name}: {value} -> {got:?}"
                );
            }
        }
        for value in [
            "nan", "-inf", "-1e400", "-0", "1e-400", "", "  ", "1_000", "0x10", "20s",
        ] {
            let got = parse_retry_after(&headers(&[("retry-after", value)]), Some(SDK_NOW), cap);
            assert_eq!(got, RetryAfter::Unusable, "{value:?}");
        }
        assert_eq!(
            parse_retry_after(&HeaderMap::new(), Some(SDK_NOW), cap),
            RetryAfter::Unusable
        );
        // A tiny positive wait is still a wait, never Wait(0).
        let got = parse_retry_after(&headers(&[("retry-after", "1e-12")]), None, cap);
        assert_eq!(got, RetryAfter::Wait(Duration::from_nanos(1)));
        // Non-ASCII bytes are not a value.
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_bytes(b"2\xff").unwrap());
        assert_eq!(parse_retry_after(&h, None, cap), RetryAfter::Unusable);
        // Whitespace around a number is fine (Python's float strips it).
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", " 7 ")]), None, cap),
            RetryAfter::Wait(Duration::from_secs(7))
        );
    }

    #[test]
    fn cap_edges() {
        let cap = Duration::from_secs(120);
        let at = |v: &str| parse_retry_after(&headers(&[("retry-after", v)]), None, cap);
        assert_eq!(at("120"), RetryAfter::Wait(Duration::from_secs(120)));
        assert_eq!(
            at("120.000001"),
            RetryAfter::TooLong(Duration::from_micros(120_000_001))
        );
        assert_eq!(at("0.001"), RetryAfter::Wait(Duration::from_millis(1)));
    }
}
