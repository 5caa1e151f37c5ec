//! What reaches a provider of each shape (path, auth, version header, translated body, model
//! mapping) and what comes back to the caller (always the OpenAI shape).

use super::*;
use crate::server::{Step, reply_text};

/// An OpenAI-shape request to an Anthropic provider: `/v1/messages`, `x-api-key`,
/// `anthropic-version`, the system prompt lifted out, `max_tokens` defaulted, the model mapped;
/// the caller gets a spec-valid `chat.completion`.
pub async fn anthropic_request_translation<D: Driver>() {
    let server = MockServer::start().await;
    let d = D::build(
        config(
            json!({"providers": [with(anthropic("c", server.base_url("c")), json!({
                "model_map": {"gpt-4o": "claude-sonnet-4-5"},
                "default_max_tokens": 321,
            }))]}),
        ),
        None,
    );
    let request = ChatRequest::from_value(json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hi there"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "and again"},
        ],
        "temperature": 0.5,
        "stop": ["END"],
    }))
    .unwrap();
    let routed = d.call(request).await.expect("served");
    assert_eq!(outcomes(&routed.attempts), vec![success("c")]);
    let body = completion(&routed);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], reply_text("c"));
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 10);

    let rec = server.received("c");
    assert_eq!(rec.len(), 1);
    let rec = &rec[0];
    assert_eq!(rec.path, "/c/v1/messages");
    assert_eq!(rec.headers["x-api-key"], KEY);
    assert_eq!(rec.headers["anthropic-version"], "2023-06-01");
    assert!(
        !rec.headers.contains_key("authorization"),
        "no bearer header to Anthropic"
    );
    let sent = rec.json.as_ref().expect("JSON body");
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(sent["max_tokens"], 321);
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    let system = match &sent["system"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
        other => panic!("system: {other}"),
    };
    assert_eq!(system, "You are terse.");
    let messages = sent["messages"].as_array().expect("messages");
    let turns: Vec<(&str, String)> = messages
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
                other => panic!("content: {other}"),
            };
            (m["role"].as_str().unwrap_or_default(), text)
        })
        .collect();
    assert_eq!(
        turns,
        vec![
            ("user", "hi there".to_owned()),
            ("assistant", "hello".to_owned()),
            ("user", "and again".to_owned()),
        ]
    );
    assert!(sent.get("stream").is_none_or(|s| s == false));
    settled(&d).await;
}

/// An Anthropic 400 is hard: the caller gets the provider's error body; nobody else is asked.
pub async fn anthropic_hard_error_carries_the_body<D: Driver>() {
    let server = MockServer::start().await;
    let error = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "conformance: max_tokens too large"}});
    server.script("c", vec![Step::status(400).json(error.clone())]);
    let d = D::build(
        config(json!({"providers": [
            anthropic("c", server.base_url("c")),
            openai("b", server.base_url("b")),
        ]})),
        None,
    );
    let err = d.call(request("too much")).await.unwrap_err();
    let RouteError::HardFailure {
        provider,
        status,
        body,
        ..
    } = &err
    else {
        panic!("expected a hard failure, got {err:?}");
    };
    assert_eq!((&**provider, *status), ("c", 400));
    assert_eq!(serde_json::from_slice::<Value>(body).ok(), Some(error));
    settled(&d).await;
    assert_counts(&server, &[("c", 1), ("b", 0)]);
}

/// OpenAI providers: `model_map` renames the requested model, `model` overrides it, extra
/// headers are sent, every other field passes through untouched.
pub async fn openai_model_map_and_extra_headers<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::ok(), Step::status(500)]);
    let d = D::build(
        config(json!({"providers": [
            with(openai("a", server.base_url("a")), json!({
                "model_map": {"gpt-4o": "gpt-4o-2024-08-06"},
                "headers": {"x-conformance": "one", "openai-organization": "org-test"},
            })),
            with(openai("b", server.base_url("b")), json!({"model": "fixed-model"})),
        ]})),
        None,
    );
    let sent = json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "map me"}],
        "top_p": 0.9,
        "seed": 7,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    });
    let routed = d
        .call(ChatRequest::from_value(sent.clone()).unwrap())
        .await
        .expect("served");
    assert_eq!(outcomes(&routed.attempts), vec![success("a")]);
    let a = server.received("a");
    let mut expected = sent.clone();
    expected["model"] = json!("gpt-4o-2024-08-06");
    assert_eq!(a[0].json.as_ref(), Some(&expected));
    assert_eq!(a[0].headers["x-conformance"], "one");
    assert_eq!(a[0].headers["openai-organization"], "org-test");

    let routed = d
        .call(ChatRequest::from_value(sent.clone()).unwrap())
        .await
        .expect("served");
    assert_eq!(&*routed.provider_name, "b");
    let b = server.received("b");
    expected["model"] = json!("fixed-model");
    assert_eq!(b[0].json.as_ref(), Some(&expected));
    assert!(
        !b[0].headers.contains_key("x-conformance"),
        "headers are per provider"
    );
    settled(&d).await;
}
