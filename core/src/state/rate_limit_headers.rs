//! The providers' own rate-limit headers, read into "N left, resets in D" per dimension.
//!
//! - OpenAI (and the many OpenAI-shape providers that copy it, Groq among them):
//!   `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, where a reset is a relative Go-style
//!   duration (`6m0s`, `1s`, `20ms`, `1h2m3.5s`, `0.5s`).
//! - Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`,
//!   where a reset is an absolute RFC 3339 time (`2026-02-25T20:02:37Z`). The machine has no clock,
//!   so it is turned into a duration against the response's own `Date` (`response_unix`), which
//!   also makes it immune to clock skew between us and the provider. Without a `Date` the
//!   Anthropic limits are dropped (there is nothing to measure the reset against).
//!
//! Anthropic limits input and output tokens separately besides their total, while the router
//! estimates one number per request (prompt plus `max_tokens`); so its token limit is the
//! **strictest** of the three: the one with the fewest tokens left (on a tie, the later reset),
//! with that one's reset. That can hold back a request the provider would have taken (an output
//! budget compared with input plus output), never the other way round.
//!
//! A dimension is learned only when both its `remaining` and its `reset` parse. A header of these
//! families whose value does not parse is ignored and counted in [`LearnedLimits::unparsable`]
//! (the stats show it), never an error: a provider's odd header must not fail a good response.
//! Numbers too large for a `u64` saturate, durations saturate at `u64::MAX` nanoseconds.
//!
//! One pass over the headers, matching names by prefix: no hashing, no allocation.

use crate::http_date::{days_from_civil, days_in_month};
use std::time::Duration;

/// One dimension's "remaining until reset".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests or tokens left in the provider's current window.
    pub remaining: u64,
    /// The provider's full allowance (`*-limit`), when it sent one.
    pub limit: Option<u64>,
    /// How long until the window resets, from the response.
    pub reset: Duration,
}

/// What one response's headers say about the provider's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LearnedLimits {
    /// The requests dimension, when both its remaining and reset parsed.
    pub requests: Option<Limit>,
    /// The tokens dimension (for Anthropic the strictest of tokens, input and output tokens).
    pub tokens: Option<Limit>,
    /// Rate-limit headers present but unparsable (saturating).
    pub unparsable: u32,
}

impl LearnedLimits {
    /// Reads the OpenAI and Anthropic rate-limit headers of a response whose `Date` header said
    /// `response_unix` (Unix seconds; see [`crate::http_date::parse_http_date`]). When a header
    /// repeats, the last value that parses wins; when both families are present (no provider does
    /// that), the stricter of each dimension wins.
    pub fn from_headers(headers: &http::HeaderMap, response_unix: Option<u64>) -> LearnedLimits {
        let mut slots = [Slot::default(); SLOTS];
        let mut unparsable = 0u32;
        for (name, value) in headers {
            let Some((slot, field)) = classify(name.as_str()) else {
                continue;
            };
            let parsed = std::str::from_utf8(value.as_bytes())
                .ok()
                .map(str::trim)
                .and_then(|v| slots[slot].set(field, v, slot >= ANTHROPIC_REQUESTS));
            if parsed.is_none() {
                unparsable = unparsable.saturating_add(1);
            }
        }
        let limit = |slot: usize| slots[slot].limit(response_unix);
        let anthropic_tokens = [
            ANTHROPIC_TOKENS,
            ANTHROPIC_INPUT_TOKENS,
            ANTHROPIC_OUTPUT_TOKENS,
        ]
        .into_iter()
        .map(limit)
        .fold(None, stricter);
        LearnedLimits {
            requests: stricter(limit(OPENAI_REQUESTS), limit(ANTHROPIC_REQUESTS)),
            tokens: stricter(limit(OPENAI_TOKENS), anthropic_tokens),
            unparsable,
        }
    }
}

/// The limit with less left; on a tie, the one that lasts longer.
fn stricter(a: Option<Limit>, b: Option<Limit>) -> Option<Limit> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if (b.remaining, a.reset) < (a.remaining, b.reset) {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

const OPENAI_REQUESTS: usize = 0;
const OPENAI_TOKENS: usize = 1;
const ANTHROPIC_REQUESTS: usize = 2;
const ANTHROPIC_TOKENS: usize = 3;
const ANTHROPIC_INPUT_TOKENS: usize = 4;
const ANTHROPIC_OUTPUT_TOKENS: usize = 5;
const SLOTS: usize = 6;

#[derive(Debug, Clone, Copy)]
enum Field {
    Limit,
    Remaining,
    Reset,
}

/// Which slot and field a header name fills, if it is one of ours.
fn classify(name: &str) -> Option<(usize, Field)> {
    if let Some(rest) = name.strip_prefix("x-ratelimit-") {
        let (field, dimension) = rest.split_once('-')?;
        let slot = match dimension {
            "requests" => OPENAI_REQUESTS,
            "tokens" => OPENAI_TOKENS,
            _ => return None,
        };
        Some((slot, field_named(field)?))
    } else if let Some(rest) = name.strip_prefix("anthropic-ratelimit-") {
        let (dimension, field) = rest.rsplit_once('-')?;
        let slot = match dimension {
            "requests" => ANTHROPIC_REQUESTS,
            "tokens" => ANTHROPIC_TOKENS,
            "input-tokens" => ANTHROPIC_INPUT_TOKENS,
            "output-tokens" => ANTHROPIC_OUTPUT_TOKENS,
            _ => return None,
        };
        Some((slot, field_named(field)?))
    } else {
        None
    }
}

fn field_named(field: &str) -> Option<Field> {
    match field {
        "limit" => Some(Field::Limit),
        "remaining" => Some(Field::Remaining),
        "reset" => Some(Field::Reset),
        _ => None,
    }
}

/// A reset as sent: relative (OpenAI) or absolute Unix time (Anthropic).
#[derive(Debug, Clone, Copy)]
enum Reset {
    After(Duration),
    At { secs: u64, nanos: u32 },
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<Reset>,
}

impl Slot {
    /// Parses and stores one field; None if the value does not parse.
    fn set(&mut self, field: Field, value: &str, absolute_reset: bool) -> Option<()> {
        match field {
            Field::Limit => self.limit = Some(parse_count(value)?),
            Field::Remaining => self.remaining = Some(parse_count(value)?),
            Field::Reset if absolute_reset => {
                let (secs, nanos) = parse_rfc3339(value)?;
                self.reset = Some(Reset::At { secs, nanos });
            }
            Field::Reset => self.reset = Some(Reset::After(parse_go_duration(value)?)),
        }
        Some(())
    }

    fn limit(&self, response_unix: Option<u64>) -> Option<Limit> {
        let reset = match self.reset? {
            Reset::After(d) => d,
            Reset::At { secs, nanos } => {
                let now = response_unix?;
                if secs < now {
                    Duration::ZERO
                } else {
                    Duration::new(secs - now, nanos)
                }
            }
        };
        Some(Limit {
            remaining: self.remaining?,
            limit: self.limit,
            reset,
        })
    }
}

/// A count: ASCII digits only, saturating at `u64::MAX`.
fn parse_count(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// A Go `time.Duration` string as Go's `ParseDuration` reads it: `0`, or one or more
/// `<decimal><unit>` with units `ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h` (`1h2m3.5s`, `.5s`,
/// `6m0s`). An optional `+` is accepted; a negative duration is not a reset. Fractions are exact
/// to the nanosecond (truncated below); the total saturates at `u64::MAX` ns.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s.as_bytes();
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix(b".") {
            Some(after) => {
                let frac_len = after.iter().take_while(|b| b.is_ascii_digit()).count();
                after.split_at(frac_len)
            }
            None => (&after[..0], after),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_len = after
            .iter()
            .take_while(|b| !b.is_ascii_digit() && **b != b'.')
            .count();
        let (unit, after) = after.split_at(unit_len);
        let unit_ns: u128 = match unit {
            b"ns" => 1,
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000, // us, µs (micro sign), μs (mu)
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole = int.iter().fold(0u128, |n, d| {
            n.saturating_mul(10).saturating_add(u128::from(d - b'0'))
        });
        // 19 fraction digits are more than any unit has nanoseconds; the rest cannot matter.
        let frac = &frac[..frac.len().min(19)];
        let frac_value = frac
            .iter()
            .fold(0u128, |n, d| n * 10 + u128::from(d - b'0'));
        let frac_ns = frac_value * unit_ns / 10u128.pow(frac.len() as u32);
        total = total
            .saturating_add(whole.saturating_mul(unit_ns))
            .saturating_add(frac_ns);
        rest = after;
    }
    Some(Duration::from_nanos(
        u64::try_from(total).unwrap_or(u64::MAX),
    ))
}

/// An RFC 3339 date-time (`2026-02-25T20:02:37Z`, `2026-02-25T20:02:37.123456+01:00`) as Unix
/// seconds and nanoseconds. `T` may be `t` or a space and `Z` may be `z` (RFC 3339 §5.6 allows
/// both); fractions beyond nanoseconds are truncated; a leap second (`:60`) counts as the next
/// second, as in [`crate::http_date`]. None for anything else or for a time before 1970.
pub fn parse_rfc3339(s: &str) -> Option<(u64, u32)> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = i64::from(digits(&b[..4])?);
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if let Some(after) = rest.strip_prefix(b".") {
        let len = after.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        for (i, d) in after[..len].iter().enumerate().take(9) {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &after[len..];
    }
    let offset_secs: i64 = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = i64::from(h * 3600 + m * 60);
            if *sign == b'+' { offset } else { -offset }
        }
        _ => return None,
    };
    let local =
        days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let secs = u64::try_from(local - offset_secs).ok()?;
    Some((secs, nanos))
}

/// A run of ASCII digits only.
fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_date::parse_http_date;
    use http::{HeaderMap, HeaderName, HeaderValue};
    use serde_json::Value;

    fn fixture(path: &str) -> Value {
        let path = format!(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/{}"),
            path
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn header_map(headers: &Value) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers.as_object().unwrap() {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value.as_str().unwrap()).unwrap(),
            );
        }
        map
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// The live Anthropic 200 (`recorded/nonstream_200_with_ratelimit_headers_tool_use.json`). The
    /// recording kept no `Date`; 20:02:31 is what its own numbers imply: 49 of 50 requests left
    /// with a full refill at :32 is one request's refill (1.2 s at 50 per minute) after the answer.
    #[test]
    fn recorded_anthropic_200() {
        let exchanges =
            fixture("anthropic/recorded/nonstream_200_with_ratelimit_headers_tool_use.json");
        let map = header_map(&exchanges[0]["response"]["headers"]);
        let date = parse_http_date("Wed, 25 Feb 2026 20:02:31 GMT").unwrap();
        let limits = LearnedLimits::from_headers(&map, Some(date));
        assert_eq!(limits.unparsable, 0);
        assert_eq!(
            limits.requests,
            Some(Limit {
                remaining: 49,
                limit: Some(50),
                reset: Duration::from_secs(1)
            })
        );
        // tokens 36000 (reset :36), input 28000 (:37), output 8000 (:36): output is strictest.
        assert_eq!(
            limits.tokens,
            Some(Limit {
                remaining: 8000,
                limit: Some(8000),
                reset: Duration::from_secs(5)
            })
        );
        // No Date: nothing to measure an absolute reset against, so nothing is learned.
        assert_eq!(
            LearnedLimits::from_headers(&map, None),
            LearnedLimits::default()
        );
        // A Date after the resets: the windows are over already.
        let late = LearnedLimits::from_headers(&map, Some(date + 3600));
        assert_eq!(late.requests.unwrap().reset, Duration::ZERO);
        // The second exchange of the recording carries no rate-limit headers.
        let second = header_map(&exchanges[1]["response"]["headers"]);
        assert_eq!(
            LearnedLimits::from_headers(&second, Some(date)),
            LearnedLimits::default()
        );
    }

    /// The same recorded header set as assembled in `errors/anthropic_errors.json`.
    #[test]
    fn recorded_anthropic_headers_in_the_error_table() {
        let table = fixture("errors/anthropic_errors.json");
        let example = table["examples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "200_ratelimit_headers_recorded")
            .unwrap();
        let date = parse_http_date("Wed, 25 Feb 2026 20:02:30 GMT").unwrap();
        let limits = LearnedLimits::from_headers(&header_map(&example["headers"]), Some(date));
        assert_eq!(limits.requests.unwrap().reset, Duration::from_secs(2));
        assert_eq!(limits.tokens.unwrap().remaining, 8000);
        assert_eq!(limits.tokens.unwrap().reset, Duration::from_secs(6));
    }

    #[test]
    fn recorded_openai_headers() {
        let table = fixture("errors/openai_errors.json");
        let map = header_map(&table["ratelimit_headers"]["example"]);
        let limits = LearnedLimits::from_headers(&map, None);
        assert_eq!(
            limits,
            LearnedLimits {
                requests: Some(Limit {
                    remaining: 4999,
                    limit: Some(5000),
                    reset: Duration::from_millis(12)
                }),
                tokens: Some(Limit {
                    remaining: 159_976,
                    limit: Some(160_000),
                    reset: Duration::from_millis(9)
                }),
                unparsable: 0,
            }
        );
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        for (s, d) in [
            ("6m0s", Duration::from_secs(360)),
            ("6m30s", Duration::from_secs(390)),
            ("1s", Duration::from_secs(1)),
            ("20ms", ms(20)),
            ("0.5s", ms(500)),
            (".5s", ms(500)),
            ("5.s", Duration::from_secs(5)),
            ("1h2m3.5s", ms(3_723_500)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("+1s", Duration::from_secs(1)),
            ("1.000000001s", Duration::new(1, 1)),
            ("1.0000000019s", Duration::new(1, 1)),
            ("2us", Duration::from_micros(2)),
            ("2µs", Duration::from_micros(2)),
            ("2μs", Duration::from_micros(2)),
            ("7ns", Duration::from_nanos(7)),
            ("1.5h", Duration::from_secs(5400)),
            ("99999999999999999999999h", Duration::from_nanos(u64::MAX)),
            (
                "1.99999999999999999999999999999999ns",
                Duration::from_nanos(1),
            ),
        ] {
            assert_eq!(parse_go_duration(s), Some(d), "{s:?}");
        }
        for s in [
            "", "1", "-1s", "s", ".s", "1x", "1 s", "1s ", "1..5s", "1sm", "P1D", "1d", "+",
        ] {
            assert_eq!(parse_go_duration(s), None, "{s:?}");
        }
    }

    #[test]
    fn rfc3339_times() {
        let base = 1_772_049_757; // 2026-02-25T20:02:37Z
        assert_eq!(parse_rfc3339("2026-02-25T20:02:37Z"), Some((base, 0)));
        assert_eq!(parse_rfc3339("2026-02-25t20:02:37z"), Some((base, 0)));
        assert_eq!(parse_rfc3339("2026-02-25 20:02:37Z"), Some((base, 0)));
        assert_eq!(
            parse_rfc3339("2026-02-25T20:02:37.5Z"),
            Some((base, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2026-02-25T20:02:37.123456789123Z"),
            Some((base, 123_456_789))
        );
        assert_eq!(parse_rfc3339("2026-02-25T21:02:37+01:00"), Some((base, 0)));
        assert_eq!(parse_rfc3339("2026-02-25T15:32:37-04:30"), Some((base, 0)));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            Some((1_483_228_800, 0))
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some((1_709_164_800, 0))
        );
        for s in [
            "",
            "2026-02-25",
            "2026-02-25T20:02:37",
            "2026-02-25T20:02:37.Z",
            "2026-02-25T20:02:37+0100",
            "2026-02-25T20:02:37+24:00",
            "2026-02-30T20:02:37Z",
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-25T24:00:00Z",
            "2026-02-25T20:60:00Z",
            "2026-02-25T20:02:61Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:30:00+01:00",
            "+026-02-25T20:02:37Z",
            "2026-02-25T20:02:37Z ",
            "2026-02-25X20:02:37Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s:?}");
        }
    }

    #[test]
    fn bad_values_are_counted_and_ignored() {
        let map = headers(&[
            ("x-ratelimit-remaining-requests", "lots"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-remaining-tokens", "100"),
            ("x-ratelimit-reset-tokens", "soon"),
            ("x-ratelimit-limit-tokens", "-5"),
            ("x-ratelimit-unknown-requests", "1"), // not ours: neither parsed nor counted
            ("anthropic-ratelimit-requests-remaining", "3"),
            ("anthropic-ratelimit-requests-reset", "tomorrow"),
            ("x-ratelimit-remaining-tokens", ""),
        ]);
        let limits = LearnedLimits::from_headers(&map, Some(0));
        assert_eq!(limits.requests, None);
        assert_eq!(limits.tokens, None);
        assert_eq!(limits.unparsable, 5);
        // Non-UTF-8 bytes are a bad value too.
        let mut map = HeaderMap::new();
        map.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_bytes(b"4\xff").unwrap(),
        );
        assert_eq!(LearnedLimits::from_headers(&map, None).unparsable, 1);
    }

    #[test]
    fn absurd_numbers_saturate() {
        let map = headers(&[
            (
                "x-ratelimit-remaining-requests",
                "999999999999999999999999999999",
            ),
            ("x-ratelimit-reset-requests", "99999999999999999999h"),
            (
                "anthropic-ratelimit-tokens-remaining",
                "18446744073709551616",
            ),
            ("anthropic-ratelimit-tokens-reset", "9999-12-31T23:59:59Z"),
        ]);
        let limits = LearnedLimits::from_headers(&map, Some(0));
        assert_eq!(limits.unparsable, 0);
        let requests = limits.requests.unwrap();
        assert_eq!(requests.remaining, u64::MAX);
        assert_eq!(requests.reset, Duration::from_nanos(u64::MAX));
        let tokens = limits.tokens.unwrap();
        assert_eq!(tokens.remaining, u64::MAX);
        assert_eq!(tokens.reset, Duration::from_secs(253_402_300_799));
    }

    #[test]
    fn a_dimension_needs_both_remaining_and_reset() {
        let map = headers(&[
            ("x-ratelimit-remaining-requests", "5"),
            ("x-ratelimit-reset-tokens", "1s"),
        ]);
        assert_eq!(
            LearnedLimits::from_headers(&map, None),
            LearnedLimits::default()
        );
        // Whitespace around a value is fine; a repeated header's last parsable value wins.
        let map = headers(&[
            ("x-ratelimit-remaining-requests", " 5 "),
            ("x-ratelimit-remaining-requests", "4"),
            ("x-ratelimit-reset-requests", "1s"),
        ]);
        assert_eq!(
            LearnedLimits::from_headers(&map, None)
                .requests
                .unwrap()
                .remaining,
            4
        );
    }

    #[test]
    fn strictest_token_limit_ties_take_the_later_reset() {
        let map = headers(&[
            ("anthropic-ratelimit-input-tokens-remaining", "10"),
            (
                "anthropic-ratelimit-input-tokens-reset",
                "1970-01-01T00:00:05Z",
            ),
            ("anthropic-ratelimit-output-tokens-remaining", "10"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "1970-01-01T00:00:09Z",
            ),
            ("anthropic-ratelimit-tokens-remaining", "11"),
            ("anthropic-ratelimit-tokens-reset", "1970-01-01T00:01:00Z"),
        ]);
        let tokens = LearnedLimits::from_headers(&map, Some(0)).tokens.unwrap();
        assert_eq!(
            (tokens.remaining, tokens.reset),
            (10, Duration::from_secs(9))
        );
    }
}
