//! The policies that learn, on hand-written input sequences: weighted shares, the breaker,
//! budgets (configured and learned from headers), the retry throttle, and what stats say.

use super::*;
use crate::stats::BreakerStats;

fn provider_counts(h: &mut Harness, requests: u64, n: usize) -> Vec<usize> {
    let mut counts = vec![0; n];
    for id in 0..requests {
        let (attempt, p) = sends(&h.start(id))[0];
        counts[p] += 1;
        assert!(outcome(&h.respond(attempt, 200, &[], OK_BODY)).is_ok());
    }
    counts
}

fn weighted(weights: &[u32], extra: &str) -> Harness {
    let providers: Vec<String> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| format!(r#"{{"name":"p{i}","kind":"openai","base_url":"https://p{i}.test/v1","weight":{w}}}"#))
        .collect();
    let json = format!(
        r#"{{"providers":[{}],"policy":"weighted"{extra}}}"#,
        providers.join(",")
    );
    Harness {
        m: RouterMachine::new(RouterConfig::from_json(json.as_bytes()).unwrap(), 1).unwrap(),
        now: Time::ZERO,
    }
}

#[test]
fn weighted_shares_follow_the_weights() {
    let mut h = weighted(&[5, 3, 2], "");
    assert_eq!(provider_counts(&mut h, 1000, 3), [500, 300, 200]);
    let stats = h.m.stats(h.now);
    assert_eq!(stats[0].requests, 500);
    assert_eq!(stats[2].successes, 200);
}

#[test]
fn weighted_falls_through_by_the_rotation_and_weight_zero_is_a_last_resort() {
    let mut h = weighted(&[1, 1, 0], "");
    let (a0, p0) = sends(&h.start(1))[0];
    assert_eq!(p0, 0);
    let (a1, p1) = sends(&h.respond(a0, 503, &[], ""))[0];
    assert_eq!(
        p1, 1,
        "the next by rotation, never the weight-0 one while another is left"
    );
    let (a2, p2) = sends(&h.respond(a1, 503, &[], ""))[0];
    assert_eq!(p2, 2, "weight 0 is tried when nothing else is left");
    assert!(outcome(&h.respond(a2, 200, &[], OK_BODY)).is_ok());
}

fn breaker_harness() -> Harness {
    Harness::new(
        r#","health":{"consecutive_failures":3,"open_ms":1000,"max_open_ms":4000}"#,
        2,
    )
}

/// Fails a request on p0 (503), serves it on p1.
fn fail_on_p0(h: &mut Harness, id: u64) {
    let (a0, p) = sends(&h.start(id))[0];
    assert_eq!(p, 0);
    let (a1, p) = sends(&h.respond(a0, 503, &[], ""))[0];
    assert_eq!(p, 1);
    assert!(outcome(&h.respond(a1, 200, &[], OK_BODY)).is_ok());
}

#[test]
fn the_breaker_opens_skips_then_lets_exactly_one_probe_through() {
    let mut h = breaker_harness();
    for id in 0..3 {
        fail_on_p0(&mut h, id);
    }
    assert!(matches!(
        h.m.stats(h.now)[0].breaker,
        BreakerStats::Open { .. }
    ));
    // Open: p0 is skipped without sending.
    let (a, p) = sends(&h.start(10))[0];
    assert_eq!(p, 1);
    outcome(&h.respond(a, 200, &[], OK_BODY));
    // After open_ms one request is the probe; a second one meanwhile skips p0.
    h.now = Time::from_millis(1000);
    let (probe, p) = sends(&h.start(11))[0];
    assert_eq!(p, 0, "the probe");
    let (other, p) = sends(&h.start(12))[0];
    assert_eq!(p, 1, "only one probe at a time");
    outcome(&h.respond(other, 200, &[], OK_BODY));
    // The probe fails: open again, for twice as long.
    let (a, _) = sends(&h.respond(probe, 503, &[], ""))[0];
    outcome(&h.respond(a, 200, &[], OK_BODY));
    match h.m.stats(h.now)[0].breaker {
        BreakerStats::Open { for_ } => assert_eq!(for_, Duration::from_millis(2000)),
        other => panic!("{other:?}"),
    }
    h.now = Time::from_millis(2999);
    assert_eq!(sends(&h.start(13))[0].1, 1);
    h.now = Time::from_millis(3000);
    let (probe, p) = sends(&h.start(14))[0];
    assert_eq!(p, 0);
    // A probe that succeeds closes the breaker.
    outcome(&h.respond(probe, 200, &[], OK_BODY));
    assert_eq!(h.m.stats(h.now)[0].breaker, BreakerStats::Closed);
    assert_eq!(sends(&h.start(15))[0].1, 0);
}

#[test]
fn hard_failures_do_not_open_the_breaker() {
    let mut h = breaker_harness();
    for id in 0..5 {
        let (a, _) = sends(&h.start(id))[0];
        assert!(outcome(&h.respond(a, 400, &[], "{}")).is_err());
    }
    assert_eq!(h.m.stats(h.now)[0].breaker, BreakerStats::Closed);
    assert_eq!(h.m.stats(h.now)[0].hard_failures, 5);
}

#[test]
fn when_every_breaker_is_open_the_longest_open_is_tried() {
    let mut h = Harness::new(r#","health":{"consecutive_failures":1,"open_ms":60000}"#, 2);
    let (a0, _) = sends(&h.start(1))[0];
    h.now = Time::from_millis(10);
    let (a1, _) = sends(&h.respond(a0, 503, &[], ""))[0];
    h.now = Time::from_millis(20);
    assert!(outcome(&h.respond(a1, 503, &[], "")).is_err());
    // Both open; p0 opened first.
    let (a, p) = sends(&h.start(2))[0];
    assert_eq!(p, 0);
    assert!(outcome(&h.respond(a, 200, &[], OK_BODY)).is_ok());
}

#[test]
fn the_all_open_fallback_waits_for_a_provider_that_comes_back_by_itself() {
    let mut h = Harness::new(r#","health":{"consecutive_failures":2,"open_ms":60000}"#, 2);
    for id in 1..=2 {
        let (a0, p) = sends(&h.start(id))[0];
        assert_eq!(p, 0);
        let (a1, p) = sends(&h.respond(a0, 503, &[], ""))[0];
        assert_eq!(p, 1);
        if id == 1 {
            assert!(outcome(&h.respond(a1, 200, &[], OK_BODY)).is_ok());
        } else {
            // p1 is only cooling down (one failure: its breaker stays closed).
            assert!(outcome(&h.respond(a1, 429, &[("retry-after", "2")], "")).is_err());
        }
    }
    let stats = h.m.stats(h.now);
    assert!(matches!(stats[0].breaker, BreakerStats::Open { .. }));
    assert_eq!(stats[1].breaker, BreakerStats::Closed);
    // Not every provider is open: p1 comes back in 2 s, so the request waits for it rather than
    // being sent to the open p0.
    assert!(sends(&h.start(3)).is_empty(), "nothing goes to the open p0");
    assert!(matches!(
        h.m.poll_timeout_reason(),
        Some((at, Timer::Wake(RequestId(3)))) if at == h.now + Duration::from_secs(2)
    ));
    let (a, p) = sends(&h.advance(2000))[0];
    assert_eq!(p, 1);
    assert!(outcome(&h.respond(a, 200, &[], OK_BODY)).is_ok());
}

#[test]
fn a_budget_skips_a_spent_provider_without_sending() {
    let mut h = Harness::new("", 2);
    let json = r#"{"providers":[
        {"name":"p0","kind":"openai","base_url":"https://p0.test/v1","rpm":60,"burst":2},
        {"name":"p1","kind":"openai","base_url":"https://p1.test/v1"}]}"#;
    h.m = RouterMachine::new(RouterConfig::from_json(json.as_bytes()).unwrap(), 1).unwrap();
    let picks: Vec<usize> = (0..3).map(|id| sends(&h.start(id))[0].1).collect();
    assert_eq!(picks, [0, 0, 1]);
    let budget = h.m.stats(h.now)[0].budget;
    assert_eq!(budget.requests_remaining, Some(0));
    // One request's worth comes back after a second (60 per minute).
    h.now = Time::from_millis(1000);
    assert_eq!(sends(&h.start(9))[0].1, 0);
}

fn single_budget(extra: &str) -> Harness {
    let json = format!(
        r#"{{"providers":[{{"name":"p0","kind":"openai","base_url":"https://p0.test/v1","rpm":60,"burst":1}}]{extra}}}"#
    );
    Harness {
        m: RouterMachine::new(RouterConfig::from_json(json.as_bytes()).unwrap(), 1).unwrap(),
        now: Time::ZERO,
    }
}

#[test]
fn out_of_budget_waits_for_the_admission_within_the_deadline() {
    let mut h = single_budget(r#","deadline_ms":5000"#);
    let (a, _) = sends(&h.start(1))[0];
    outcome(&h.respond(a, 200, &[], OK_BODY));
    assert!(sends(&h.start(2)).is_empty(), "waits: nothing sent");
    assert!(
        matches!(h.m.poll_timeout_reason(), Some((at, Timer::Wake(RequestId(2)))) if at == Time::from_millis(1000))
    );
    let (a, _) = sends(&h.advance(1000))[0];
    assert!(outcome(&h.respond(a, 200, &[], OK_BODY)).is_ok());
}

#[test]
fn out_of_budget_past_the_deadline_is_rate_limited_with_when() {
    let mut h = single_budget(r#","deadline_ms":300"#);
    let (a, _) = sends(&h.start(1))[0];
    outcome(&h.respond(a, 200, &[], OK_BODY));
    match outcome(&h.start(2)) {
        Err(RouteError::RateLimited { retry_after, .. }) => {
            assert_eq!(*retry_after, Duration::from_millis(1000))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn openai_rate_limit_headers_stop_sends_before_the_429() {
    let mut h = Harness::new("", 2);
    let (a, _) = sends(&h.start(1))[0];
    let headers = [
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "2s"),
        ("x-ratelimit-remaining-tokens", "90000"),
        ("x-ratelimit-reset-tokens", "6m0s"),
    ];
    outcome(&h.respond(a, 200, &headers, OK_BODY));
    assert!(h.m.stats(h.now)[0].budget.learned);
    assert_eq!(sends(&h.start(2))[0].1, 1, "p0 said it has nothing left");
    h.now = Time::from_millis(2000);
    assert_eq!(sends(&h.start(3))[0].1, 0, "until its reset");
}

#[test]
fn unparsable_rate_limit_headers_are_ignored_and_counted() {
    let mut h = Harness::new("", 1);
    let (a, _) = sends(&h.start(1))[0];
    let headers = [
        ("x-ratelimit-remaining-requests", "lots"),
        ("x-ratelimit-reset-requests", "soon"),
    ];
    assert!(outcome(&h.respond(a, 200, &headers, OK_BODY)).is_ok());
    assert_eq!(sends(&h.start(2))[0].1, 0);
    assert!(h.m.stats(h.now)[0].unparsable_headers >= 1);
}

#[test]
fn the_throttle_stops_failovers_once_failures_drain_it() {
    let mut h = Harness::new(r#","throttle":{"max_tokens":4,"token_ratio":0.5}"#, 2);
    // Each failed attempt costs the bucket a token (A6); at 2, half of 4, failovers stop.
    let (a0, _) = sends(&h.start(1))[0];
    let (a1, p) = sends(&h.respond(a0, 503, &[], ""))[0];
    assert_eq!(p, 1, "4 - 1 = 3 tokens: still above half");
    outcome(&h.respond(a1, 503, &[], ""));
    let (a0, _) = sends(&h.start(5))[0];
    let done = h.respond(a0, 503, &[], "");
    assert!(sends(&done).is_empty(), "no failover while throttled");
    assert!(
        matches!(outcome(&done), Err(RouteError::AllProvidersFailed { attempts }) if attempts.len() == 1)
    );
}

#[test]
fn late_inputs_are_counted_not_dropped_silently() {
    let mut h = Harness::new(r#","policy":"hedged","hedge_k":2,"hedge_delay_ms":0"#, 2);
    let s = sends(&h.start(1));
    outcome(&h.respond(s[0].0, 200, &[], OK_BODY));
    // The loser was cancelled; its late answer is ignored and counted.
    h.respond(s[1].0, 200, &[], OK_BODY);
    assert_eq!(h.m.machine_stats().ignored_inputs, 3);
    assert_eq!(h.m.machine_stats().timers, 0);
}

/// Serves request `id` after `ms` of latency on whichever provider it was sent to.
fn serve_after(h: &mut Harness, id: u64, latency_ms: impl Fn(usize) -> u64) -> usize {
    let (a, p) = sends(&h.start(id))[0];
    h.now = h.now + Duration::from_millis(latency_ms(p));
    assert!(outcome(&h.respond(a, 200, &[], OK_BODY)).is_ok());
    p
}

#[test]
fn fastest_tries_the_unseen_then_prefers_the_faster() {
    let mut h = Harness::new(r#","policy":"fastest""#, 3);
    let latency = |p: usize| [100, 10, 100][p];
    let first: Vec<usize> = (0..3).map(|id| serve_after(&mut h, id, latency)).collect();
    assert_eq!(first, [0, 1, 2], "every unseen provider is tried first");
    let mut counts = [0usize; 3];
    for id in 3..303 {
        counts[serve_after(&mut h, id, latency)] += 1;
    }
    // Two of three random pairs hold the fast provider, and it wins each of them.
    assert!(
        counts[1] >= 180 && counts[1] > counts[0] + counts[2],
        "{counts:?}"
    );
}

#[test]
fn auto_hedge_delay_is_the_providers_p95_to_first_byte() {
    let mut h = Harness::new(
        r#","policy":"hedged","hedge_k":2,"hedge_delay_ms":"auto""#,
        2,
    );
    // No estimate yet: the next leg waits the cap (2 s by default).
    h.start(1);
    assert!(
        matches!(h.m.poll_timeout_reason(), Some((at, Timer::Hedge(_))) if at == h.now + Duration::from_secs(2))
    );
    h.m.handle_input(h.now, Input::Cancel { id: RequestId(1) })
        .unwrap();
    h.actions();
    for id in 2..60 {
        serve_after(&mut h, id, |_| 40);
    }
    h.start(100);
    let (at, timer) = h.m.poll_timeout_reason().unwrap();
    assert!(matches!(timer, Timer::Hedge(RequestId(100))));
    let delay = at - h.now;
    assert!(
        delay >= Duration::from_millis(38) && delay <= Duration::from_millis(42),
        "{delay:?}"
    );
}

#[test]
fn a_token_budget_is_corrected_by_the_usage_the_answer_reports() {
    // tpm 60,000: a burst of 1,000 tokens. "hi" is estimated at 0 tokens, so what is left after
    // one answer is what its usage said it cost.
    let openai = r#"{"choices":[{"message":{}}],"usage":{"prompt_tokens":880,"completion_tokens":20,"total_tokens":900}}"#;
    let anthropic = r#"{"type":"message","id":"msg_1","model":"claude","role":"assistant",
        "content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn",
        "usage":{"input_tokens":600,"cache_read_input_tokens":200,"output_tokens":100}}"#;
    for (kind, body) in [("openai", openai), ("anthropic", anthropic)] {
        let json = format!(
            r#"{{"providers":[{{"name":"p0","kind":"{kind}","base_url":"https://p0.test/v1","tpm":60000}}]}}"#
        );
        let mut h = Harness {
            m: RouterMachine::new(RouterConfig::from_json(json.as_bytes()).unwrap(), 1).unwrap(),
            now: Time::ZERO,
        };
        let (a, _) = sends(&h.start(1))[0];
        assert!(outcome(&h.respond(a, 200, &[], body)).is_ok(), "{kind}");
        let left = h.m.stats(h.now)[0].budget.tokens_remaining;
        assert_eq!(left, Some(100), "{kind}: 900 of 1000 used");
    }
}

const OPENAI_TPM: &str =
    r#"{"name":"p0","kind":"openai","base_url":"https://p0.test/v1","tpm":60000}"#;

/// Streams a `max_tokens: 900` request through `provider` (tpm 60,000: a burst of 1,000 tokens)
/// and returns the tokens its budget has left after the stream ended.
fn tokens_left_after_stream(provider: &str, sse: &str) -> Option<u64> {
    let json = format!(r#"{{"providers":[{provider}]}}"#);
    let mut m = RouterMachine::new(RouterConfig::from_json(json.as_bytes()).unwrap(), 1).unwrap();
    let request = ChatRequest::from_json(
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":900,"stream":true,"stream_options":{"include_usage":true}}"#
            .to_owned(),
    )
    .unwrap();
    m.handle_input(
        Time::ZERO,
        Input::Request {
            id: RequestId(1),
            request,
        },
    )
    .unwrap();
    let actions: Vec<Action> = std::iter::from_fn(|| m.poll_action()).collect();
    let a = sends(&actions)[0].0;
    assert!(outcome(&feed(&mut m, a, 200, &[sse], true)).is_ok());
    m.stats(Time::ZERO)[0].budget.tokens_remaining
}

#[test]
fn a_streams_final_usage_corrects_the_token_budget() {
    // Estimated 900 (max_tokens) + 0 (two characters / 4): 100 of the 1,000 left at send.
    let without_usage: String = OPENAI_STREAM
        .split("\n\n")
        .filter(|event| !event.contains("\"usage\":{"))
        .map(|event| format!("{event}\n\n"))
        .collect();
    assert_eq!(
        tokens_left_after_stream(OPENAI_TPM, &without_usage),
        Some(100)
    );
    // The recording's usage chunk says 44 tokens: the other 856 come back.
    assert!(OPENAI_STREAM.contains(r#""total_tokens":44"#));
    assert_eq!(
        tokens_left_after_stream(OPENAI_TPM, OPENAI_STREAM),
        Some(956)
    );
    // An Anthropic stream's usage (11 in, 6 out in the recording) comes in its translation's
    // final chunk.
    let anthropic = r#"{"name":"an","kind":"anthropic","base_url":"https://an.test/v1","api_key":"sk-ant","tpm":60000}"#;
    assert_eq!(
        tokens_left_after_stream(anthropic, ANTHROPIC_STREAM),
        Some(983)
    );
}
