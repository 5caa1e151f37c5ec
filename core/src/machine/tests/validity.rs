//! Validity on hand-written input sequences: answers checked against their schemas, on_invalid,
//! the classifier per tenant and model, reports, and the recorded and documented answers.

use super::*;
use crate::validity::KeyStatus;
use serde_json::{Value, json};

const DOCS: &str =
    include_str!("../../../../tests/fixtures/openai/structured_outputs/docs_examples.json");
const PARALLEL_TOOLS: &str =
    include_str!("../../../../tests/fixtures/openai/responses/chat_parallel_tool_calls.json");

fn schema() -> Value {
    json!({"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":{
        "type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},
        "required":["name","age"],"additionalProperties":false}}})
}

fn structured(tenant: Option<&str>) -> ChatRequest {
    let r = ChatRequest::from_value(json!({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"response_format":schema()})).unwrap();
    match tenant {
        Some(t) => r.with_tenant(t).unwrap(),
        None => r,
    }
}

fn answer(content: &str) -> String {
    json!({"id":"c","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":content},"finish_reason":"stop"}]}).to_string()
}

const GOOD: &str = r#"{"name":"Ada","age":36}"#;
const BAD: &str = r#"{"name":"Ada","age":"36"}"#;

impl Harness {
    fn submit(&mut self, id: u64, request: ChatRequest) -> Vec<Action> {
        self.m
            .handle_input(
                self.now,
                Input::Request {
                    id: RequestId(id),
                    request,
                },
            )
            .unwrap();
        self.actions()
    }
}

/// Serves request `id` of `tenant` with `content` from whichever provider it is sent to;
/// returns that provider and the route.
fn serve(h: &mut Harness, id: u64, tenant: &str, content: &str) -> (usize, Routed) {
    let (attempt, p) = sends(&h.submit(id, structured(Some(tenant))))[0];
    let routed = outcome(&h.respond(attempt, 200, &[], &answer(content)))
        .clone()
        .unwrap();
    (p, routed)
}

#[test]
fn return_marks_the_invalid_answer_and_failover_moves_on() {
    let mut h = Harness::new("", 2);
    let (a, _) = sends(&h.submit(1, structured(None)))[0];
    let routed = outcome(&h.respond(a, 200, &[], &answer(BAD)))
        .clone()
        .unwrap();
    assert_eq!((routed.valid, routed.id), (Some(false), RequestId(1)));
    assert_eq!(routed.attempts.len(), 1);
    let (a, _) = sends(&h.start(2))[0];
    let routed = outcome(&h.respond(a, 200, &[], OK_BODY)).clone().unwrap();
    assert_eq!(routed.valid, None, "nothing to check");

    let mut h = Harness::new(r#","validity":{"on_invalid":"failover"}"#, 2);
    let (a0, p0) = sends(&h.submit(1, structured(None)))[0];
    let (a1, p1) = sends(&h.respond(a0, 200, &[], &answer(BAD)))[0];
    assert_eq!((p0, p1), (0, 1));
    let routed = outcome(&h.respond(a1, 200, &[], &answer(GOOD)))
        .clone()
        .unwrap();
    assert_eq!((routed.provider, routed.valid), (ProviderId(1), Some(true)));
    assert!(matches!(
        &routed.attempts[0].outcome,
        AttemptOutcome::InvalidOutput { path, .. } if path == "choices[0].message.content/age"
    ));
    // The breaker does not count it: p0 answered.
    assert_eq!(
        h.m.stats(h.now)[0].breaker,
        crate::stats::BreakerStats::Closed
    );

    let (a0, _) = sends(&h.submit(2, structured(None)))[0];
    let (a1, _) = sends(&h.respond(a0, 200, &[], &answer(BAD)))[0];
    let err = outcome(&h.respond(a1, 200, &[], &answer("not json")))
        .clone()
        .unwrap_err();
    let RouteError::AllProvidersFailed { attempts } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(attempts.len(), 2);
    let text = err.to_string();
    assert!(
        text.contains("content/age") && text.contains("is not JSON"),
        "{text}"
    );
}

#[test]
fn a_schema_that_does_not_compile_fails_before_sending_and_compiles_once() {
    let mut h = Harness::new("", 1);
    let bad = ChatRequest::from_value(json!({"model":"m","messages":[{"role":"user","content":"hi"}],
        "response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"strnig"}}}})).unwrap();
    let out = h.submit(1, bad);
    assert!(sends(&out).is_empty());
    assert!(
        matches!(outcome(&out), Err(RouteError::InvalidRequest { field, .. }) if field == "response_format.json_schema.schema")
    );
    for id in 2..5 {
        serve(&mut h, id, "t", GOOD);
    }
    assert_eq!(h.m.machine_stats().schemas_compiled, 1);
    assert!(ChatRequest::from_value(json!({"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":"json"})).is_err());
    assert!(structured(None).with_tenant(&"x".repeat(257)).is_err());
}

#[test]
fn the_classifier_excludes_per_tenant_probes_and_recovers() {
    let mut h = Harness::new(
        r#","validity":{"window":20,"min_samples":10,"probe_ms":1000,"recovery":2}"#,
        2,
    );
    // Tenant A's answers from p0 fail; B's do not.
    let mut id = 0;
    let mut excluded_after = None;
    for i in 0..30 {
        id += 1;
        let (p, _) = serve(&mut h, id, "a", BAD);
        if p == 1 {
            excluded_after = Some(i);
            break;
        }
        id += 1;
        assert_eq!(serve(&mut h, id, "b", GOOD).0, 0);
    }
    let after = excluded_after.expect("A moved off p0");
    assert!(after >= 10, "not before min_samples ({after})");
    let stats = &h.m.stats(h.now)[0].validity;
    let a = stats
        .iter()
        .find(|s| s.tenant.as_deref() == Some("a"))
        .unwrap();
    assert_eq!(a.state, KeyStatus::Excluded);
    let b = stats
        .iter()
        .find(|s| s.tenant.as_deref() == Some("b"))
        .unwrap();
    assert_eq!((b.state, b.pass_rate), (KeyStatus::Ok, Some(1.0)));
    id += 1;
    assert_eq!(serve(&mut h, id, "b", GOOD).0, 0, "B still goes to p0");
    // After probe_ms one request of A probes p0; two valid probes restore it.
    h.advance(1000);
    for expected in [0, 0, 0] {
        id += 1;
        assert_eq!(serve(&mut h, id, "a", GOOD).0, expected);
    }
    assert_eq!(h.m.stats(h.now)[0].validity[0].state, KeyStatus::Ok);
}

#[test]
fn when_every_provider_is_excluded_the_best_pass_rate_serves() {
    let mut h = Harness::new(
        r#","policy":"weighted","validity":{"window":10,"min_samples":10}"#,
        2,
    );
    let (mut id, mut p1_answers) = (0, 0);
    for _ in 0..40 {
        id += 1;
        // p0 fails every answer, p1 every other one.
        let (attempt, p) = sends(&h.submit(id, structured(Some("a"))))[0];
        p1_answers += usize::from(p == 1);
        let bad = p == 0 || p1_answers % 2 == 0;
        outcome(&h.respond(attempt, 200, &[], &answer(if bad { BAD } else { GOOD })));
    }
    let stats = h.m.stats(h.now);
    assert!(
        stats
            .iter()
            .all(|s| s.validity[0].state == KeyStatus::Excluded),
        "{stats:?}"
    );
    id += 1;
    assert_eq!(sends(&h.submit(id, structured(Some("a"))))[0].1, 1);
}

#[test]
fn reports_flip_a_key_and_unknown_ids_are_ignored() {
    let mut h = Harness::new(r#","validity":{"min_samples":5}"#, 2);
    assert_eq!(
        h.m.feedback(h.now, RequestId(99), false),
        FeedbackResult::Unknown
    );
    h.m.handle_input(
        h.now,
        Input::Feedback {
            id: RequestId(98),
            valid: false,
        },
    )
    .unwrap();
    assert_eq!(h.m.machine_stats().ignored_feedback, 2);
    // Requests without a schema: the caller validates and reports.
    for id in 0..5 {
        let (a, p) = sends(&h.start(id))[0];
        assert_eq!(p, 0);
        assert!(outcome(&h.respond(a, 200, &[], OK_BODY)).is_ok());
        assert_eq!(
            h.m.feedback(h.now, RequestId(id), false),
            FeedbackResult::Applied
        );
    }
    assert_eq!(h.m.stats(h.now)[0].validity[0].state, KeyStatus::Excluded);
    assert_eq!(
        sends(&h.start(10))[0].1,
        1,
        "the default tenant moved off p0"
    );
}

#[test]
fn streams_are_checked_on_the_assembled_answer() {
    let mut m = RouterMachine::new(mixed_config(""), 1).unwrap();
    let request = ChatRequest::from_value(json!({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"response_format":schema()})).unwrap();
    let run = |m: &mut RouterMachine, id: u64, pieces: &[&str]| {
        m.handle_input(
            Time::ZERO,
            Input::Request {
                id: RequestId(id),
                request: request.clone(),
            },
        )
        .unwrap();
        let out: Vec<Action> = std::iter::from_fn(|| m.poll_action()).collect();
        let (attempt, _) = sends(&out)[0];
        let mut body = String::new();
        for p in pieces {
            let chunk = json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":p},"finish_reason":null}]});
            body.push_str(&format!("data: {chunk}\n\n"));
        }
        body.push_str("data: [DONE]\n\n");
        let out = feed(m, attempt, 200, &[&body], true);
        outcome(&out).clone().unwrap().valid
    };
    assert_eq!(
        run(&mut m, 1, &[r#"{"name":"#, r#""Ada","age":36}"#]),
        Some(true)
    );
    assert_eq!(
        run(&mut m, 2, &[r#"{"name":"#, r#""Ada","age":"#]),
        Some(false)
    );
}

#[test]
fn the_documented_structured_outputs_validate_and_their_breakages_are_located() {
    let cases: Vec<Value> = serde_json::from_str(DOCS).unwrap();
    assert!(cases.len() >= 4);
    let mut h = Harness::new("", 1);
    let mut id = 0;
    for case in &cases {
        let request = ChatRequest::from_value(json!({"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"response_format":case["response_format"]})).unwrap();
        let mut run = |content: &str| {
            id += 1;
            let (a, _) = sends(&h.submit(id, request.clone()))[0];
            let out = h.respond(a, 200, &[], &answer(content));
            outcome(&out).clone().unwrap()
        };
        assert_eq!(
            run(case["valid"].as_str().unwrap()).valid,
            Some(true),
            "{}",
            case["name"]
        );
        for bad in case["invalid"].as_array().unwrap() {
            assert_eq!(
                run(bad["content"].as_str().unwrap()).valid,
                Some(false),
                "{bad}"
            );
        }
        // The located failure: checked directly on the expectation.
        let e = crate::validity::expect::Expectation::compile(Some(&case["response_format"]), None)
            .unwrap()
            .unwrap();
        for bad in case["invalid"].as_array().unwrap() {
            let err = e
                .check_body(answer(bad["content"].as_str().unwrap()).as_bytes())
                .unwrap_err();
            let expected = format!(
                "choices[0].message.content{}",
                bad["path"].as_str().unwrap()
            );
            assert_eq!(err.path, expected, "{}: {err}", case["name"]);
        }
    }
}

#[test]
fn recorded_tool_calls_validate_against_their_tools() {
    // The tools of openai-python's `test_parse_multiple_pydantic_tools` (the recording's request).
    let tools = json!([
        {"type":"function","function":{"name":"GetWeatherArgs","strict":true,"parameters":{"type":"object","properties":{"city":{"type":"string"},"country":{"type":"string"},"units":{"type":"string","enum":["c","f"],"default":"c"}},"required":["city","country","units"],"additionalProperties":false}}},
        {"type":"function","function":{"name":"get_stock_price","strict":true,"parameters":{"type":"object","properties":{"ticker":{"type":"string"},"exchange":{"type":"string"}},"required":["ticker","exchange"],"additionalProperties":false}}}
    ]);
    let e = crate::validity::expect::Expectation::compile(None, Some(&tools))
        .unwrap()
        .unwrap();
    e.check_body(PARALLEL_TOOLS.as_bytes()).unwrap();
    let broken = PARALLEL_TOOLS.replace(r#"\"units\": \"c\""#, r#"\"units\": \"kelvin\""#);
    let err = e.check_body(broken.as_bytes()).unwrap_err();
    assert_eq!(
        err.path,
        "choices[0].message.tool_calls[0].function.arguments/units"
    );
    // The recorded Anthropic exchange: its answer, translated, against its request's tools.
    let recorded: Value = serde_json::from_str(include_str!(
        "../../../../tests/fixtures/anthropic/recorded/nonstream_200_with_ratelimit_headers_tool_use.json"
    ))
    .unwrap();
    let exchange = &recorded[0];
    let tools: Vec<Value> = exchange["request"]["body"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!({"type":"function","function":{"name":t["name"],"parameters":t["input_schema"]}}))
        .collect();
    let e = crate::validity::expect::Expectation::compile(None, Some(&Value::Array(tools)))
        .unwrap()
        .unwrap();
    let body = serde_json::to_vec(&exchange["response"]["body"]).unwrap();
    let translated = crate::codec::anthropic::decode_response(&body, 1).unwrap();
    e.check_body(&translated.body).unwrap();
}
