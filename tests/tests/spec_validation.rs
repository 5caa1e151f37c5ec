//! The spec validator against real OpenAI recordings, and proof that it can say no.
//!
//! Every later test that checks router output leans on `OpenAiSpec`; if it accepted
//! everything, those tests would prove nothing. So this file pins both directions: every live
//! recording validates, and each kind of broken body is rejected with a pointer to the field.

use std::fs;
use std::path::{Path, PathBuf};

use f3dx_router_testkit::spec::OpenAiSpec;
use serde_json::{Value, json};

fn fixtures(sub: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/openai")
        .join(sub);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .{ext} fixtures in {}", dir.display());
    files
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The JSON payload of every `data: ` line except the `[DONE]` sentinel. The recordings hold
/// one JSON object per `data:` line, so this simple reading is enough here.
fn sse_chunks(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| data.trim() != "[DONE]")
        .map(|data| {
            serde_json::from_str(data).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

fn recorded_response() -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/openai/responses");
    read_json(&dir.join("chat_text_stop.json"))
}

fn recorded_chunk() -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/openai/streams");
    sse_chunks(&dir.join("chat_text_stop_with_usage.sse")).swap_remove(0)
}

/// Asserts rejection and that some error names `path`, so the test proves the validator
/// failed for the intended reason, not for an unrelated one.
#[track_caller]
fn assert_rejected(result: Result<(), Vec<String>>, path: &str) {
    let errors = result.expect_err("the spec validator accepted an invalid value");
    assert!(
        errors.iter().any(|e| e.starts_with(&format!("{path}: "))),
        "expected an error at {path:?}, got {errors:#?}"
    );
}

#[test]
fn every_recorded_response_validates() {
    let spec = OpenAiSpec::get();
    for path in fixtures("responses", "json") {
        let body = read_json(&path);
        if let Err(errors) = spec.validate_response(&body) {
            panic!("{}: {errors:#?}", path.display());
        }
    }
}

#[test]
fn every_recorded_stream_chunk_validates() {
    let spec = OpenAiSpec::get();
    for path in fixtures("streams", "sse") {
        let chunks = sse_chunks(&path);
        assert!(chunks.len() > 1, "{}: too few chunks", path.display());
        for (i, chunk) in chunks.iter().enumerate() {
            if let Err(errors) = spec.validate_stream_chunk(chunk) {
                panic!("{} chunk {i}: {errors:#?}", path.display());
            }
        }
    }
}

/// The recordings exercise `null` where the spec says `nullable: true` (`finish_reason` in
/// every chunk but the last, `usage` in the final chunk's siblings). Pin that directly, so a
/// regression in the loader's `nullable` rewrite shows up here by name.
#[test]
fn nullable_fields_accept_null() {
    let spec = OpenAiSpec::get();
    let mut chunk = recorded_chunk();
    chunk["choices"][0]["finish_reason"] = Value::Null;
    chunk["choices"][0]["logprobs"] = Value::Null;
    chunk["usage"] = Value::Null;
    spec.validate_stream_chunk(&chunk).unwrap();
}

#[test]
fn response_missing_choices_is_rejected() {
    let mut body = recorded_response();
    body.as_object_mut().unwrap().remove("choices");
    assert_rejected(OpenAiSpec::get().validate_response(&body), "");
}

#[test]
fn chunk_with_response_object_type_is_rejected() {
    let mut chunk = recorded_chunk();
    chunk["object"] = json!("chat.completion");
    assert_rejected(OpenAiSpec::get().validate_stream_chunk(&chunk), "/object");
}

#[test]
fn response_with_chunk_object_type_is_rejected() {
    let mut body = recorded_response();
    body["object"] = json!("chat.completion.chunk");
    assert_rejected(OpenAiSpec::get().validate_response(&body), "/object");
}

#[test]
fn choice_missing_finish_reason_is_rejected() {
    let mut body = recorded_response();
    body["choices"][0]
        .as_object_mut()
        .unwrap()
        .remove("finish_reason");
    assert_rejected(OpenAiSpec::get().validate_response(&body), "/choices/0");

    // In a stream, `finish_reason` may be null but must be present.
    let mut chunk = recorded_chunk();
    chunk["choices"][0]
        .as_object_mut()
        .unwrap()
        .remove("finish_reason");
    assert_rejected(
        OpenAiSpec::get().validate_stream_chunk(&chunk),
        "/choices/0",
    );
}

#[test]
fn unknown_finish_reason_is_rejected() {
    let mut body = recorded_response();
    body["choices"][0]["finish_reason"] = json!("end_turn"); // Anthropic's, must be translated
    assert_rejected(
        OpenAiSpec::get().validate_response(&body),
        "/choices/0/finish_reason",
    );

    let mut chunk = recorded_chunk();
    chunk["choices"][0]["finish_reason"] = json!("max_tokens");
    assert_rejected(
        OpenAiSpec::get().validate_stream_chunk(&chunk),
        "/choices/0/finish_reason",
    );
}

#[test]
fn message_with_user_role_is_rejected() {
    let mut body = recorded_response();
    body["choices"][0]["message"]["role"] = json!("user");
    assert_rejected(
        OpenAiSpec::get().validate_response(&body),
        "/choices/0/message/role",
    );
}

#[test]
fn wrong_types_are_rejected() {
    let spec = OpenAiSpec::get();

    let mut body = recorded_response();
    body["created"] = json!("1741570283"); // a string, not an integer
    assert_rejected(spec.validate_response(&body), "/created");

    let mut body = recorded_response();
    body["usage"]["total_tokens"] = json!(-0.5);
    assert_rejected(spec.validate_response(&body), "/usage/total_tokens");

    let mut chunk = recorded_chunk();
    chunk["choices"] = json!({});
    assert_rejected(spec.validate_stream_chunk(&chunk), "/choices");
}

#[test]
fn tool_call_without_function_is_rejected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/openai/responses");
    let mut body = read_json(&dir.join("chat_parallel_tool_calls.json"));
    let call = &mut body["choices"][0]["message"]["tool_calls"][0];
    call.as_object_mut().unwrap().remove("function");
    assert!(OpenAiSpec::get().validate_response(&body).is_err());
}
