//! Validity's cost: checking a ~1 KB structured answer against a 5-property schema (target
//! at most 20 µs median; the schema is compiled once, outside the loop, as the machine's cache
//! does after a schema's first request), and a whole request through the machine with and
//! without `response_format` (what a schema adds per request: the cache look-up and the check).
//!
//! Run: `cargo bench -p f3dx-router-core --bench validity`.

use bytes::Bytes;
use criterion::Criterion;
use f3dx_router_core::validity::expect::Expectation;
use f3dx_router_core::{Action, ChatRequest, Input, RequestId, RouterConfig, RouterMachine, Time};
use serde_json::{Value, json};
use std::hint::black_box;

fn format() -> Value {
    json!({"type":"json_schema","json_schema":{"name":"ticket","strict":true,"schema":{
        "type":"object",
        "properties":{
            "title":{"type":"string"},
            "priority":{"type":"string","enum":["low","medium","high"]},
            "estimate_hours":{"type":"number","minimum":0},
            "tags":{"type":"array","items":{"type":"string"}},
            "summary":{"type":"string","maxLength":2000}
        },
        "required":["title","priority","estimate_hours","tags","summary"],
        "additionalProperties":false}}})
}

/// A `chat.completion` whose content fits the schema, about 1 KB.
fn answer() -> Vec<u8> {
    let content = json!({
        "title": "Checkout page times out for customers paying with saved cards",
        "priority": "high",
        "estimate_hours": 6.5,
        "tags": ["payments", "checkout", "timeout", "saved-cards", "regression"],
        "summary": "Since the release on Monday, customers who pay with a saved card see a spinner for thirty seconds and then a gateway timeout. New cards work. The payment service logs show the tokenisation call to the vault waiting on a connection pool that is exhausted under load; the pool size was lowered in the same release. Raise the pool back to its previous size, add a timeout shorter than the gateway's, and alert on pool exhaustion. Affects roughly four percent of checkouts during peak hours.",
    })
    .to_string();
    let body = json!({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o",
        "choices":[{"index":0,"message":{"role":"assistant","content":content,"refusal":null},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":80,"completion_tokens":190,"total_tokens":270}});
    serde_json::to_vec(&body).unwrap()
}

fn one_request(m: &mut RouterMachine, now: &mut u64, id: u64, request: &ChatRequest, body: &Bytes) {
    let mut tick = || {
        *now += 1_000;
        Time::from_nanos(*now)
    };
    let input = Input::Request {
        id: RequestId(id),
        request: request.clone(),
    };
    m.handle_input(tick(), input).unwrap();
    let mut attempt = None;
    while let Some(a) = m.poll_action() {
        if let Action::Send { attempt: x, .. } = a {
            attempt = Some(x);
        }
    }
    let attempt = attempt.expect("one send");
    let t = tick();
    m.handle_input(
        t,
        Input::ResponseHead {
            attempt,
            status: 200,
            headers: http::HeaderMap::new(),
        },
    )
    .unwrap();
    m.handle_input(
        t,
        Input::ResponseBody {
            attempt,
            chunk: body.clone(),
        },
    )
    .unwrap();
    m.handle_input(t, Input::ResponseEnd { attempt }).unwrap();
    while let Some(a) = m.poll_action() {
        black_box(a);
    }
}

fn main() {
    let body = answer();
    println!("answer: {} bytes", body.len());
    let format = format();
    let expectation = Expectation::compile(Some(&format), None).unwrap().unwrap();
    expectation.check_body(&body).unwrap();
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("validity");
    group.bench_function("check_1k_answer_5_properties", |b| {
        b.iter(|| expectation.check_body(black_box(&body)).is_ok())
    });
    let config = RouterConfig::from_json(
        br#"{"providers":[{"name":"a","kind":"openai","base_url":"https://a.test/v1","api_key":"sk"}]}"#,
    )
    .unwrap();
    let base = json!({"model":"gpt-4o","messages":[{"role":"user","content":"File a ticket for the checkout timeouts."}]});
    let mut with_schema = base.clone();
    with_schema["response_format"] = format.clone();
    let body = Bytes::from(body);
    for (name, request) in [
        ("machine_request_without_schema", base),
        ("machine_request_with_schema", with_schema),
    ] {
        let request = ChatRequest::from_value(request).unwrap();
        let mut m = RouterMachine::new(config.clone(), 1).unwrap();
        let (mut now, mut id) = (0u64, 0u64);
        group.bench_function(name, |b| {
            b.iter(|| {
                id += 1;
                one_request(&mut m, &mut now, id, &request, &body);
            })
        });
    }
    group.finish();
    c.final_summary();
}
