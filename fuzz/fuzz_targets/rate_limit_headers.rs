//! The header parsers a provider's answer feeds: `Retry-After` / `retry-after-ms`, the HTTP-date,
//! and the OpenAI / Anthropic rate-limit families (Go durations, RFC 3339 resets). On any header
//! values they never panic or overflow (this target is built with overflow checks), and what they
//! return keeps its promises:
//!
//! - `Wait(d)` is `0 < d <= cap`, `TooLong(d)` is `d > cap` (or a wait too long to hold);
//! - an HTTP-date that parses formats back to the same second, and that form parses again;
//! - an RFC 3339 time has fewer than 10^9 nanoseconds;
//! - `LearnedLimits` counts no more unparsable headers than it was given, and a learned
//!   `remaining`/`limit` is what one of its headers said.
#![no_main]

use arbitrary::Arbitrary;
use f3dx_router_core::http_date::{format_http_date, parse_http_date};
use f3dx_router_core::retry_after::{RetryAfter, parse_retry_after};
use f3dx_router_core::state::LearnedLimits;
use f3dx_router_core::state::rate_limit_headers::{parse_go_duration, parse_rfc3339};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

/// Names the parsers read, so most headers reach a parser; `Other` covers every other name.
const NAMES: [&str; 22] = [
    "retry-after",
    "retry-after-ms",
    "date",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-remaining",
    "anthropic-ratelimit-output-tokens-reset",
    "x-ratelimit-reset-",
    "anthropic-ratelimit--reset",
    "x-ratelimit-",
];

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Case {
    headers: Vec<(Name, Vec<u8>)>,
    now_unix: Option<u64>,
    cap_ms: u64,
    /// Checked directly as well: the same text through each parser.
    text: String,
}

fn header_map(case: &Case) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in &case.headers {
        let name = match name {
            Name::Known(i) => HeaderName::from_static(NAMES[usize::from(*i) % NAMES.len()]),
            Name::Other(s) => match HeaderName::try_from(s.as_str()) {
                Ok(name) => name,
                Err(_) => continue,
            },
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            map.append(name, value);
        }
    }
    map
}

fn check_retry_after(headers: &HeaderMap, now_unix: Option<u64>, cap: Duration) {
    match parse_retry_after(headers, now_unix, cap) {
        RetryAfter::Wait(d) => assert!(!d.is_zero() && d <= cap, "Wait({d:?}) with cap {cap:?}"),
        RetryAfter::TooLong(d) => assert!(d >= cap, "TooLong({d:?}) with cap {cap:?}"),
        RetryAfter::Unusable => {}
    }
}

fn check_text(text: &str) {
    if let Some(secs) = parse_http_date(text) {
        let formatted = format_http_date(secs);
        assert_eq!(
            parse_http_date(&formatted),
            Some(secs),
            "{text:?} -> {formatted}"
        );
    }
    if let Some((_, nanos)) = parse_rfc3339(text) {
        assert!(nanos < 1_000_000_000, "{text:?} -> {nanos} ns");
    }
    let _ = parse_go_duration(text);
}

fn check_limits(headers: &HeaderMap, now_unix: Option<u64>) {
    let learned = LearnedLimits::from_headers(headers, now_unix);
    assert!(learned.unparsable as usize <= headers.len());
    let said = |n: u64| {
        headers
            .values()
            .any(|v| v.to_str().is_ok_and(|s| s.trim().parse::<u64>().ok() == Some(n)))
            // A count too large for a u64 saturates.
            || n == u64::MAX
    };
    for limit in [learned.requests, learned.tokens].into_iter().flatten() {
        assert!(
            said(limit.remaining),
            "remaining {} from {headers:?}",
            limit.remaining
        );
        if let Some(n) = limit.limit {
            assert!(said(n), "limit {n} from {headers:?}");
        }
    }
}

fuzz_target!(|case: Case| {
    let headers = header_map(&case);
    let cap = Duration::from_millis(case.cap_ms);
    check_retry_after(&headers, case.now_unix, cap);
    check_limits(&headers, case.now_unix);
    check_text(&case.text);
    for value in headers.values() {
        if let Ok(text) = value.to_str() {
            check_text(text);
        }
    }
});
