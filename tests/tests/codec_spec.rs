//! Every response and chunk the machine returns, from either provider shape, validates against the
//! official OpenAI spec (`CreateChatCompletionResponse` / `CreateChatCompletionStreamResponse`).
//! Inputs are the real recordings in `tests/fixtures/`, fed through the real machine.

use bytes::Bytes;
use f3dx_router_core::{Action, ChatRequest, Input, RequestId, RouterConfig, RouterMachine, Time};
use f3dx_router_testkit::spec::OpenAiSpec;
use serde_json::Value;
use std::path::PathBuf;

fn fixture(path: &str) -> Vec<u8> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn fixtures_in(dir: &str) -> Vec<String> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(dir);
    let mut names: Vec<String> = std::fs::read_dir(full)
        .unwrap()
        .map(|e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    names.sort();
    names
}

/// Routes one request to a single provider of `kind` answering `status` + `body`, and returns
/// the delivered chunks and the completed body.
fn route(
    kind: &str,
    stream: bool,
    include_usage: bool,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (Vec<Value>, Option<Value>) {
    let json = format!(
        r#"{{"providers":[{{"name":"p","kind":"{kind}","base_url":"https://p.test/v1","model":"m"}}]}}"#
    );
    let mut m = RouterMachine::new(RouterConfig::from_json(json.as_bytes()).unwrap(), 0).unwrap();
    m.set_unix_time_at_zero(std::time::Duration::from_secs(1_764_000_000));
    let request = ChatRequest::from_json(format!(
        r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"hi"}}],"stream":{stream},"stream_options":{{"include_usage":{include_usage}}}}}"#
    ))
    .unwrap();
    let now = Time::ZERO;
    m.handle_input(
        now,
        Input::Request {
            id: RequestId(1),
            request,
        },
    )
    .unwrap();
    let Some(Action::Send { attempt, .. }) = m.poll_action() else {
        panic!("no send")
    };
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    m.handle_input(
        now,
        Input::ResponseHead {
            attempt,
            status,
            headers: map,
        },
    )
    .unwrap();
    // Feed in small pieces, as a network would.
    for piece in body.chunks(97) {
        m.handle_input(
            now,
            Input::ResponseBody {
                attempt,
                chunk: Bytes::copy_from_slice(piece),
            },
        )
        .unwrap();
    }
    m.handle_input(now, Input::ResponseEnd { attempt }).unwrap();
    let mut chunks = Vec::new();
    let mut completed = None;
    while let Some(action) = m.poll_action() {
        match action {
            Action::Deliver { chunk, .. } => chunks.push(serde_json::from_slice(&chunk).unwrap()),
            Action::Complete { outcome, .. } => {
                let routed = outcome.unwrap_or_else(|e| panic!("{e}"));
                completed = Some(routed.body);
            }
            _ => {}
        }
    }
    let completed = completed.expect("completed");
    let body = (!completed.is_empty()).then(|| serde_json::from_slice(&completed).unwrap());
    (chunks, body)
}

fn assert_chunks_valid(name: &str, chunks: &[Value]) {
    assert!(!chunks.is_empty(), "{name}: no chunks");
    for chunk in chunks {
        if let Err(e) = OpenAiSpec::get().validate_stream_chunk(chunk) {
            panic!("{name}: chunk breaks the spec: {e:?}\n{chunk}");
        }
    }
}

#[test]
fn translated_anthropic_streams_validate() {
    for name in fixtures_in("anthropic/streams") {
        for usage in [false, true] {
            let (chunks, _) = route("anthropic", true, usage, 200, &[], &fixture(&name));
            assert_chunks_valid(&name, &chunks);
            let has_usage = chunks
                .last()
                .unwrap()
                .get("usage")
                .is_some_and(|u| !u.is_null());
            assert_eq!(has_usage, usage, "{name}: usage chunk only when asked for");
        }
    }
}

#[test]
fn passed_through_openai_streams_validate() {
    for name in fixtures_in("openai/streams") {
        let (chunks, _) = route("openai", true, true, 200, &[], &fixture(&name));
        assert_chunks_valid(&name, &chunks);
        let recorded = String::from_utf8(fixture(&name)).unwrap();
        let expected = recorded
            .lines()
            .filter(|l| l.starts_with("data: {"))
            .count();
        assert_eq!(chunks.len(), expected, "{name}: every chunk passes through");
    }
}

#[test]
fn translated_anthropic_responses_validate() {
    let recorded: Value = serde_json::from_slice(&fixture(
        "anthropic/recorded/nonstream_200_with_ratelimit_headers_tool_use.json",
    ))
    .unwrap();
    for exchange in recorded.as_array().unwrap() {
        let response = &exchange["response"];
        let headers: Vec<(String, String)> = response["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = serde_json::to_vec(&response["body"]).unwrap();
        let (_, body) = route("anthropic", false, false, 200, &headers, &body);
        let body = body.unwrap();
        if let Err(e) = OpenAiSpec::get().validate_response(&body) {
            panic!("translated response breaks the spec: {e:?}\n{body}");
        }
        assert!(
            body["created"].as_u64().unwrap() > 1_600_000_000,
            "created comes from the Date header or the driver's wall clock"
        );
    }
}

#[test]
fn passed_through_openai_responses_validate() {
    for name in fixtures_in("openai/responses") {
        let (_, body) = route("openai", false, false, 200, &[], &fixture(&name));
        let body = body.unwrap();
        assert_eq!(
            body,
            serde_json::from_slice::<Value>(&fixture(&name)).unwrap(),
            "{name}: untouched"
        );
        OpenAiSpec::get()
            .validate_response(&body)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
}
