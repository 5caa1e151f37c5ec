//! Validity over real HTTP: answers checked against the request's schema, `on_invalid`, and
//! caller reports moving a tenant's traffic.

use super::*;
use crate::server::Step;
use f3dx_router_core::RequestId;

/// A request whose answer must be `{"name": string, "age": integer}`, for `tenant`.
fn person_request(tenant: &str) -> ChatRequest {
    ChatRequest::from_value(json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Who wrote the first program?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "strict": true, "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": false
        }}}
    }))
    .expect("a valid chat request")
    .with_tenant(tenant)
    .expect("a valid tenant")
}

/// A `chat.completion` whose content is `content`.
fn answer(content: &str) -> Step {
    Step::ok().json(json!({
        "id": "chatcmpl-v", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": null},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}
    }))
}

const VALID: &str = r#"{"name":"Ada Lovelace","age":36}"#;
const INVALID: &str = r#"{"name":"Ada Lovelace","age":"thirty-six"}"#;

fn with_validity(server: &MockServer, validity: Value) -> RouterConfig {
    let mut c = providers(server, &["a", "b"]);
    c["validity"] = validity;
    config(c)
}

/// `on_invalid: "failover"`: a's answer fails the schema, so b is asked; the caller gets b's
/// valid answer, the history names where a's failed, and the server saw both requests.
pub async fn invalid_answer_fails_over<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![answer(INVALID)]);
    server.script("b", vec![answer(VALID)]);
    let d = D::build(
        with_validity(&server, json!({"on_invalid": "failover"})),
        None,
    );
    let routed = d.call(person_request("acme")).await.expect("b serves");
    assert_eq!(&*routed.provider_name, "b");
    assert_eq!(routed.valid, Some(true));
    assert_eq!(
        completion(&routed)["choices"][0]["message"]["content"],
        VALID
    );
    let AttemptOutcome::InvalidOutput { path, message, .. } = &routed.attempts[0].outcome else {
        panic!("{:?}", routed.attempts);
    };
    assert_eq!(path, "choices[0].message.content/age");
    assert!(message.contains("integer"), "{message}");
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    settled(&d).await;
}

/// The default, `"return"`: the caller gets a's invalid answer, marked, and b is never asked.
pub async fn invalid_answer_is_returned_marked<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![answer(INVALID), answer(VALID)]);
    let d = D::build(with_validity(&server, json!({})), None);
    let routed = d.call(person_request("acme")).await.expect("a serves");
    assert_eq!((&*routed.provider_name, routed.valid), ("a", Some(false)));
    assert_eq!(
        completion(&routed)["choices"][0]["message"]["content"],
        INVALID
    );
    let routed = d.call(person_request("acme")).await.expect("a serves");
    assert_eq!(routed.valid, Some(true));
    let routed = d.call(request("no schema")).await.expect("a serves");
    assert_eq!(routed.valid, None);
    assert_counts(&server, &[("a", 3), ("b", 0)]);
    settled(&d).await;
}

/// Reports of invalid answers (the caller's own validation) flip a's key for one tenant: that
/// tenant's next request goes to b, another tenant's still to a. A report on an id the router
/// never completed is ignored and says so.
pub async fn reports_flip_a_key<D: Driver>() {
    let server = MockServer::start().await;
    let d = D::build(
        with_validity(&server, json!({"window": 5, "min_samples": 3})),
        None,
    );
    assert!(!d.report(RequestId(u64::MAX), false), "unknown id");
    for i in 0..3 {
        let routed = d
            .call(request(&format!("t1 {i}")).with_tenant("t1").unwrap())
            .await
            .expect("served");
        assert_eq!(&*routed.provider_name, "a");
        assert!(d.report(routed.id, false), "a known id");
    }
    let moved = d
        .call(request("t1 after").with_tenant("t1").unwrap())
        .await
        .expect("served");
    assert_eq!(&*moved.provider_name, "b", "t1 moved off a");
    let other = d
        .call(request("t2").with_tenant("t2").unwrap())
        .await
        .expect("served");
    assert_eq!(&*other.provider_name, "a", "t2 is unaffected");
    assert_counts(&server, &[("a", 4), ("b", 1)]);
    settled(&d).await;
}
