//! Behaviour of the machine on hand-written input sequences, one rule per test.

use super::*;
use crate::config::RouterConfig;

const OK_BODY: &str = include_str!("../../../tests/fixtures/openai/responses/chat_text_stop.json");

fn config(extra: &str, n: usize) -> RouterConfig {
    let providers: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"name":"p{i}","kind":"openai","base_url":"https://p{i}.test/v1","api_key":"sk-{i}"}}"#))
        .collect();
    let json = format!(r#"{{"providers":[{}]{extra}}}"#, providers.join(","));
    RouterConfig::from_json(json.as_bytes()).unwrap()
}

fn request() -> ChatRequest {
    ChatRequest::from_json(
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#.to_owned(),
    )
    .unwrap()
}

struct Harness {
    m: RouterMachine,
    now: Time,
}

impl Harness {
    fn new(extra: &str, n: usize) -> Self {
        Harness {
            m: RouterMachine::new(config(extra, n), 1).unwrap(),
            now: Time::ZERO,
        }
    }
    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.m.poll_action()).collect()
    }
    fn start(&mut self, id: u64) -> Vec<Action> {
        self.m
            .handle_input(
                self.now,
                Input::Request {
                    id: RequestId(id),
                    request: request(),
                },
            )
            .unwrap();
        self.actions()
    }
    fn respond(
        &mut self,
        attempt: AttemptId,
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Vec<Action> {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let m = &mut self.m;
        m.handle_input(
            self.now,
            Input::ResponseHead {
                attempt,
                status,
                headers: map,
            },
        )
        .unwrap();
        m.handle_input(
            self.now,
            Input::ResponseBody {
                attempt,
                chunk: Bytes::from(body.to_owned()),
            },
        )
        .unwrap();
        m.handle_input(self.now, Input::ResponseEnd { attempt })
            .unwrap();
        self.actions()
    }
    fn advance(&mut self, ms: u64) -> Vec<Action> {
        self.now = self.now + Duration::from_millis(ms);
        self.m.handle_timeout(self.now);
        self.actions()
    }
}

/// The actions of a fresh machine built from `config` given one `request`.
fn first_actions(config: &str, request: &str) -> Vec<Action> {
    let mut m = RouterMachine::new(RouterConfig::from_json(config.as_bytes()).unwrap(), 1).unwrap();
    let request = ChatRequest::from_json(request.to_owned()).unwrap();
    m.handle_input(
        Time::ZERO,
        Input::Request {
            id: RequestId(1),
            request,
        },
    )
    .unwrap();
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn sends(actions: &[Action]) -> Vec<(AttemptId, usize)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                attempt, provider, ..
            } => Some((*attempt, provider.0)),
            _ => None,
        })
        .collect()
}

fn cancels(actions: &[Action]) -> Vec<AttemptId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Cancel { attempt } => Some(*attempt),
            _ => None,
        })
        .collect()
}

fn outcome(actions: &[Action]) -> &Result<Routed, RouteError> {
    let completes: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Complete { outcome, .. } => Some(outcome),
            _ => None,
        })
        .collect();
    assert_eq!(completes.len(), 1, "exactly one Complete in {actions:?}");
    completes[0]
}

#[test]
fn sequential_success_passes_the_body_through() {
    let mut h = Harness::new("", 3);
    let a = h.start(1);
    let s = sends(&a);
    assert_eq!(s.len(), 1);
    let Action::Send { request, .. } = &a[0] else {
        panic!()
    };
    assert_eq!(request.uri(), "https://p0.test/v1/chat/completions");
    assert_eq!(request.headers()["authorization"], "Bearer sk-0");
    let done = h.respond(s[0].0, 200, &[], OK_BODY);
    let routed = outcome(&done).as_ref().unwrap();
    assert_eq!(routed.body, OK_BODY.as_bytes());
    assert_eq!(&*routed.provider_name, "p0");
    assert_eq!(routed.attempts.len(), 1);
    assert_eq!(h.m.requests_in_flight() + h.m.attempts_in_flight(), 0);
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn soft_failures_fall_through_in_order() {
    for status in [408, 429, 500, 502, 503, 504, 529] {
        let mut h = Harness::new("", 3);
        let first = sends(&h.start(1));
        let second = sends(&h.respond(first[0].0, status, &[], "{}"));
        assert_eq!(
            second.iter().map(|s| s.1).collect::<Vec<_>>(),
            vec![1],
            "status {status}"
        );
        let done = h.respond(second[0].0, 200, &[], OK_BODY);
        let routed = outcome(&done).as_ref().unwrap();
        assert_eq!(routed.provider.0, 1);
        assert_eq!(
            routed.attempts[0].outcome,
            AttemptOutcome::SoftStatus { status }
        );
    }
}

#[test]
fn hard_failure_surfaces_at_once_and_is_never_resent() {
    for status in [400, 401, 403, 404, 422] {
        let mut h = Harness::new("", 3);
        let first = sends(&h.start(1));
        let done = h.respond(first[0].0, status, &[], r#"{"error":{"message":"bad"}}"#);
        assert!(sends(&done).is_empty());
        match outcome(&done) {
            Err(RouteError::HardFailure {
                provider,
                status: s,
                body,
                attempts,
            }) => {
                assert_eq!((&**provider, *s), ("p0", status));
                assert!(body.starts_with(b"{\"error\""));
                assert_eq!(attempts.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn all_soft_failures_list_every_attempt() {
    let mut h = Harness::new("", 3);
    let mut attempt = sends(&h.start(1))[0].0;
    let mut last = Vec::new();
    for _ in 0..3 {
        last = h.respond(attempt, 503, &[], "");
        if let Some(s) = sends(&last).first() {
            attempt = s.0;
        }
    }
    let Err(RouteError::AllProvidersFailed { attempts }) = outcome(&last) else {
        panic!()
    };
    let names: Vec<_> = attempts.iter().map(|a| &*a.provider_name).collect();
    assert_eq!(names, ["p0", "p1", "p2"]);
    assert!(
        outcome(&last)
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("p2 status 503")
    );
}

#[test]
fn transport_errors_and_invalid_bodies_are_soft() {
    let mut h = Harness::new("", 3);
    let a0 = sends(&h.start(1))[0].0;
    h.m.handle_input(
        h.now,
        Input::TransportError {
            attempt: a0,
            kind: TransportErrorKind::Refused,
        },
    )
    .unwrap();
    let a1 = sends(&h.actions())[0].0;
    let next = h.respond(a1, 200, &[], "<html>oops</html>");
    let a2 = sends(&next)[0];
    assert_eq!(a2.1, 2);
    let done = h.respond(a2.0, 200, &[], OK_BODY);
    let routed = outcome(&done).as_ref().unwrap();
    assert_eq!(
        routed.attempts[0].outcome,
        AttemptOutcome::Transport(TransportErrorKind::Refused)
    );
    assert!(matches!(
        routed.attempts[1].outcome,
        AttemptOutcome::InvalidBody { status: 200, .. }
    ));
}

#[test]
fn hedged_fires_k_legs_and_the_first_success_cancels_the_rest() {
    let mut h = Harness::new(r#","policy":"hedged","hedge_k":2"#, 3);
    let legs = sends(&h.start(1));
    assert_eq!(legs.iter().map(|s| s.1).collect::<Vec<_>>(), vec![0, 1]);
    let done = h.respond(legs[1].0, 200, &[], OK_BODY);
    assert_eq!(cancels(&done), vec![legs[0].0]);
    let routed = outcome(&done).as_ref().unwrap();
    assert_eq!(routed.provider.0, 1);
    assert_eq!(routed.attempts[0].outcome, AttemptOutcome::Cancelled);
    // A late answer from the loser is ignored.
    assert!(h.respond(legs[0].0, 200, &[], OK_BODY).is_empty());
}

#[test]
fn hedged_soft_failure_starts_the_next_untried_provider() {
    let mut h = Harness::new(r#","policy":"hedged","hedge_k":2"#, 3);
    let legs = sends(&h.start(1));
    let next = sends(&h.respond(legs[0].0, 500, &[], ""));
    assert_eq!(next.iter().map(|s| s.1).collect::<Vec<_>>(), vec![2]);
}

#[test]
fn delayed_hedge_fires_only_without_an_answer() {
    let mut h = Harness::new(r#","policy":"hedged","hedge_k":2,"hedge_delay_ms":50"#, 3);
    let legs = sends(&h.start(1));
    assert_eq!(legs.len(), 1);
    assert_eq!(h.m.poll_timeout(), Some(Time::from_millis(50)));
    assert!(h.advance(49).is_empty());
    let hedge = sends(&h.advance(1));
    assert_eq!(hedge.iter().map(|s| s.1).collect::<Vec<_>>(), vec![1]);
    // A fast answer means no hedge at all.
    let mut h = Harness::new(r#","policy":"hedged","hedge_k":2,"hedge_delay_ms":50"#, 3);
    let legs = sends(&h.start(1));
    outcome(&h.respond(legs[0].0, 200, &[], OK_BODY));
    assert!(h.advance(100).is_empty());
}

#[test]
fn per_attempt_timeout_is_soft_and_the_deadline_ends_everything() {
    let json = r#"{"providers":[
        {"name":"slow","kind":"openai","base_url":"https://a.test","timeout_ms":100},
        {"name":"b","kind":"openai","base_url":"https://b.test"}],"deadline_ms":250}"#;
    let mut h = Harness {
        m: RouterMachine::new(RouterConfig::from_json(json.as_bytes()).unwrap(), 1).unwrap(),
        now: Time::ZERO,
    };
    let a0 = sends(&h.start(1))[0].0;
    let after = h.advance(100);
    assert_eq!(cancels(&after), vec![a0]);
    let a1 = sends(&after)[0].0;
    let end = h.advance(150);
    assert_eq!(cancels(&end), vec![a1]);
    match outcome(&end) {
        Err(RouteError::DeadlineExceeded { deadline, attempts }) => {
            assert_eq!(*deadline, Duration::from_millis(250));
            assert_eq!(attempts[0].outcome, AttemptOutcome::TimedOut);
            assert_eq!(attempts[1].outcome, AttemptOutcome::Cancelled);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn body_over_the_limit_is_soft() {
    let mut h = Harness::new(r#","max_response_bytes":100"#, 2);
    let a0 = sends(&h.start(1))[0].0;
    let next = h.respond(a0, 200, &[], OK_BODY);
    assert_eq!(cancels(&next), vec![a0]);
    assert_eq!(sends(&next)[0].1, 1);
}

#[test]
fn caller_cancel_completes_once_and_closes_attempts() {
    let mut h = Harness::new(r#","policy":"hedged","hedge_k":2"#, 2);
    let legs = sends(&h.start(1));
    h.m.handle_input(h.now, Input::Cancel { id: RequestId(1) })
        .unwrap();
    let a = h.actions();
    assert_eq!(cancels(&a), vec![legs[0].0, legs[1].0]);
    assert!(matches!(outcome(&a), Err(RouteError::Cancelled { .. })));
    h.m.handle_input(h.now, Input::Cancel { id: RequestId(1) })
        .unwrap();
    assert!(h.actions().is_empty());
}

#[test]
fn duplicate_request_ids_are_misuse() {
    let mut h = Harness::new("", 1);
    h.start(1);
    let err = h.m.handle_input(
        h.now,
        Input::Request {
            id: RequestId(1),
            request: request(),
        },
    );
    assert_eq!(err, Err(InputError::DuplicateRequest(RequestId(1))));
}

#[test]
fn max_attempts_caps_the_fallthrough() {
    let mut h = Harness::new(r#","max_attempts":2"#, 3);
    let a0 = sends(&h.start(1))[0].0;
    let a1 = sends(&h.respond(a0, 503, &[], ""))[0].0;
    let done = h.respond(a1, 503, &[], "");
    assert!(sends(&done).is_empty());
    assert!(
        matches!(outcome(&done), Err(RouteError::AllProvidersFailed { attempts }) if attempts.len() == 2)
    );
}

#[test]
fn model_map_renames_the_model_for_a_provider() {
    let json = r#"{"providers":[{"name":"a","kind":"openai","base_url":"https://a.test","model_map":{"gpt-4o":"llama-3.3-70b"}}]}"#;
    let mut h = Harness {
        m: RouterMachine::new(RouterConfig::from_json(json.as_bytes()).unwrap(), 1).unwrap(),
        now: Time::ZERO,
    };
    let a = h.start(1);
    let Action::Send { request, .. } = &a[0] else {
        panic!()
    };
    let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(body["model"], "llama-3.3-70b");
}

// ---- streaming ---------------------------------------------------------------------------------

const OPENAI_STREAM: &str =
    include_str!("../../../tests/fixtures/openai/streams/chat_text_stop_with_usage.sse");
const ANTHROPIC_STREAM: &str =
    include_str!("../../../tests/fixtures/anthropic/streams/text_basic.sse");

fn stream_request() -> ChatRequest {
    ChatRequest::from_json(
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#
            .to_owned(),
    )
    .unwrap()
}

fn mixed_config(extra: &str) -> RouterConfig {
    let json = format!(
        r#"{{"providers":[
        {{"name":"oa","kind":"openai","base_url":"https://oa.test/v1"}},
        {{"name":"an","kind":"anthropic","base_url":"https://an.test/v1","api_key":"sk-ant","model":"claude-sonnet-4-5"}}]{extra}}}"#
    );
    RouterConfig::from_json(json.as_bytes()).unwrap()
}

fn start_stream(m: &mut RouterMachine) -> Vec<Action> {
    m.handle_input(
        Time::ZERO,
        Input::Request {
            id: RequestId(7),
            request: stream_request(),
        },
    )
    .unwrap();
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn feed(
    m: &mut RouterMachine,
    attempt: AttemptId,
    status: u16,
    pieces: &[&str],
    end: bool,
) -> Vec<Action> {
    let now = Time::ZERO;
    m.handle_input(
        now,
        Input::ResponseHead {
            attempt,
            status,
            headers: http::HeaderMap::new(),
        },
    )
    .unwrap();
    for piece in pieces {
        m.handle_input(
            now,
            Input::ResponseBody {
                attempt,
                chunk: Bytes::from(piece.to_string()),
            },
        )
        .unwrap();
    }
    if end {
        m.handle_input(now, Input::ResponseEnd { attempt }).unwrap();
    }
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn delivered(actions: &[Action]) -> Vec<serde_json::Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver { chunk, .. } => Some(serde_json::from_slice(chunk).unwrap()),
            _ => None,
        })
        .collect()
}

fn text_of(chunks: &[serde_json::Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

#[test]
fn openai_stream_passes_through_every_chunk() {
    let mut m = RouterMachine::new(mixed_config(""), 1).unwrap();
    let a = sends(&start_stream(&mut m))[0].0;
    // Split the recording at odd places: the events must not change.
    let (x, y) = OPENAI_STREAM.split_at(333);
    let out = feed(&mut m, a, 200, &[x, y], true);
    let chunks = delivered(&out);
    let expected = OPENAI_STREAM
        .lines()
        .filter(|l| l.starts_with("data: {"))
        .count();
    assert_eq!(chunks.len(), expected);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.last().unwrap()["usage"]["total_tokens"].is_number());
    assert!(outcome(&out).is_ok());
}

#[test]
fn anthropic_stream_is_translated_after_failover() {
    let mut m = RouterMachine::new(mixed_config(""), 1).unwrap();
    let a0 = sends(&start_stream(&mut m))[0].0;
    let next = feed(&mut m, a0, 529, &[], false);
    let (a1, provider) = sends(&next)[0];
    assert_eq!(provider, 1);
    let Action::Send { request, .. } = next
        .iter()
        .find(|a| matches!(a, Action::Send { .. }))
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(request.uri(), "https://an.test/v1/messages");
    assert_eq!(request.headers()["x-api-key"], "sk-ant");
    let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(body["model"], "claude-sonnet-4-5");
    let out = feed(&mut m, a1, 200, &[ANTHROPIC_STREAM], true);
    let chunks = delivered(&out);
    assert_eq!(text_of(&chunks), "Hello there!");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let routed = outcome(&out).as_ref().unwrap();
    assert_eq!(&*routed.provider_name, "an");
    assert_eq!(
        routed.attempts[0].outcome,
        AttemptOutcome::SoftStatus { status: 529 }
    );
}

#[test]
fn stream_error_before_commit_fails_over_invisibly() {
    let mut m = RouterMachine::new(mixed_config(""), 1).unwrap();
    let a0 = sends(&start_stream(&mut m))[0].0;
    let role = "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
    let error =
        "data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n";
    let out = feed(&mut m, a0, 200, &[role, error], false);
    assert!(
        delivered(&out).is_empty(),
        "nothing of the failed attempt reaches the caller"
    );
    assert_eq!(cancels(&out), vec![a0]);
    let a1 = sends(&out)[0].0;
    let out = feed(&mut m, a1, 200, &[ANTHROPIC_STREAM], true);
    assert_eq!(text_of(&delivered(&out)), "Hello there!");
}

#[test]
fn stream_cut_after_commit_is_a_typed_interruption() {
    let mut m = RouterMachine::new(mixed_config(""), 1).unwrap();
    let a0 = sends(&start_stream(&mut m))[0].0;
    let half = &OPENAI_STREAM[..OPENAI_STREAM.len() / 2];
    let out = feed(&mut m, a0, 200, &[half], true);
    assert!(!delivered(&out).is_empty());
    assert!(
        sends(&out).is_empty(),
        "a committed stream never fails over"
    );
    match outcome(&out) {
        Err(RouteError::StreamInterrupted { provider, .. }) => assert_eq!(&**provider, "oa"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hedged_streams_first_to_commit_wins() {
    let mut m = RouterMachine::new(mixed_config(r#","policy":"hedged","hedge_k":2"#), 1).unwrap();
    let legs = sends(&start_stream(&mut m));
    assert_eq!(legs.len(), 2);
    // The Anthropic leg commits first; the OpenAI leg is cancelled and its bytes never delivered.
    let out = feed(&mut m, legs[1].0, 200, &[ANTHROPIC_STREAM], false);
    assert_eq!(cancels(&out), vec![legs[0].0]);
    assert!(feed(&mut m, legs[0].0, 200, &[OPENAI_STREAM], true).is_empty());
    let out: Vec<Action> = {
        m.handle_input(Time::ZERO, Input::ResponseEnd { attempt: legs[1].0 })
            .unwrap();
        std::iter::from_fn(|| m.poll_action()).collect()
    };
    assert!(outcome(&out).is_ok());
}

#[test]
fn anthropic_nonstream_response_is_translated_and_unsupported_fields_are_typed() {
    let out = first_actions(
        r#"{"providers":[{"name":"an","kind":"anthropic","base_url":"https://an.test/v1","model":"claude"}]}"#,
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"n":3}"#,
    );
    assert!(
        sends(&out).is_empty(),
        "nothing is sent for a request the provider cannot express"
    );
    match outcome(&out) {
        Err(RouteError::Unsupported {
            provider, field, ..
        }) => assert_eq!((&**provider, field.as_str()), ("an", "n")),
        other => panic!("{other:?}"),
    }
}

// ---- Retry-After cooldowns ---------------------------------------------------------------------

#[test]
fn retry_after_cools_a_provider_down_for_later_requests() {
    let mut h = Harness::new("", 2);
    let a0 = sends(&h.start(1))[0].0;
    let a1 = sends(&h.respond(a0, 429, &[("retry-after", "2")], ""))[0];
    outcome(&h.respond(a1.0, 200, &[], OK_BODY));
    // The next request skips p0 without sending to it...
    h.now = Time::from_millis(1999);
    assert_eq!(sends(&h.start(2))[0].1, 1);
    // ...until the cooldown is over.
    h.now = Time::from_millis(2000);
    assert_eq!(sends(&h.start(3))[0].1, 0);
}

#[test]
fn retry_after_ms_and_http_dates_are_read() {
    let mut h = Harness::new("", 2);
    let a0 = sends(&h.start(1))[0].0;
    let date = [
        ("date", "Fri, 29 Sep 2023 16:26:37 GMT"),
        ("retry-after", "Fri, 29 Sep 2023 16:26:47 GMT"),
    ];
    let a1 = sends(&h.respond(a0, 503, &date, ""))[0];
    let done = h.respond(a1.0, 429, &[("retry-after-ms", "1500")], "");
    assert!(matches!(
        outcome(&done),
        Err(RouteError::AllProvidersFailed { .. })
    ));
    // p0 cools for 10 s (the date is read against the response's own Date), p1 for 1.5 s: a new
    // request waits for p1 rather than failing.
    let waiting = h.start(2);
    assert!(waiting.is_empty());
    assert_eq!(h.m.poll_timeout(), Some(Time::from_millis(1500)));
    assert_eq!(sends(&h.advance(1500))[0].1, 1);
}

#[test]
fn every_provider_cooling_past_the_deadline_is_a_typed_rate_limit() {
    let mut h = Harness::new(r#","deadline_ms":1000"#, 2);
    let a0 = sends(&h.start(1))[0].0;
    let a1 = sends(&h.respond(a0, 429, &[("retry-after", "5")], ""))[0].0;
    outcome(&h.respond(a1, 429, &[("retry-after", "3")], ""));
    h.now = Time::from_millis(10);
    let a = h.start(2);
    assert!(sends(&a).is_empty(), "nothing is sent to cooling providers");
    match outcome(&a) {
        Err(RouteError::RateLimited {
            retry_after,
            attempts,
        }) => {
            assert_eq!(*retry_after, Duration::from_millis(2990));
            assert!(attempts.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cooldown_that_fits_the_deadline_is_waited_out() {
    let mut h = Harness::new(r#","deadline_ms":5000"#, 1);
    let a0 = sends(&h.start(1))[0].0;
    outcome(&h.respond(a0, 429, &[("retry-after", "1")], ""));
    let a = h.start(2);
    assert!(a.is_empty(), "waits for the provider instead of failing");
    let resumed = h.advance(1000);
    assert_eq!(sends(&resumed)[0].1, 0);
}

#[test]
fn implausible_retry_after_values_follow_the_sdks() {
    // Garbage, zero and negative are ignored (no cooldown); longer than the cap cools for the cap.
    for (value, cooled_ms) in [
        ("soon", None),
        ("0", None),
        ("-10", None),
        ("99999999999999999999", Some(120_000)),
    ] {
        let mut h = Harness::new("", 2);
        let a0 = sends(&h.start(1))[0].0;
        let a1 = sends(&h.respond(a0, 429, &[("retry-after", value)], ""))[0].0;
        outcome(&h.respond(a1, 200, &[], OK_BODY));
        let first_choice = sends(&h.start(2))[0].1;
        assert_eq!(
            first_choice == 1,
            cooled_ms.is_some(),
            "retry-after {value:?}"
        );
        if let Some(ms) = cooled_ms {
            h.now = Time::from_millis(ms);
            assert_eq!(sends(&h.start(3))[0].1, 0);
        }
    }
}

#[test]
fn max_attempts_counts_attempts_sent_not_providers_the_codec_refused() {
    // Anthropic cannot express `n: 2`; with one attempt allowed, that attempt goes to openai.
    let out = first_actions(
        r#"{"providers":[
        {"name":"an","kind":"anthropic","base_url":"https://an.test/v1","model":"claude"},
        {"name":"oa","kind":"openai","base_url":"https://oa.test/v1"}],"max_attempts":1}"#,
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"n":2}"#,
    );
    assert_eq!(sends(&out).iter().map(|s| s.1).collect::<Vec<_>>(), [1]);
}

#[test]
fn a_send_prints_no_key_from_the_base_url_query() {
    let json = r#"{"providers":[{"name":"g","kind":"openai","base_url":"https://g.test/v1?key=sk-query-secret","api_key":"sk-header-secret"}]}"#;
    let mut h = Harness {
        m: RouterMachine::new(RouterConfig::from_json(json.as_bytes()).unwrap(), 1).unwrap(),
        now: Time::ZERO,
    };
    let actions = h.start(1);
    let printed = format!("{actions:?}");
    assert!(printed.contains("Send"), "{printed}");
    assert!(printed.contains("g.test"), "the host is shown: {printed}");
    assert!(!printed.contains("sk-query-secret"), "{printed}");
    assert!(!printed.contains("sk-header-secret"), "{printed}");
}

mod idle;
mod learning;
mod reasoning;
mod validity;
