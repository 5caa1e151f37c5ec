//! The Anthropic codec on arbitrary bytes: `decode_response` never panics and whatever it accepts
//! becomes a `chat.completion` with `choices[0].message`; the stream translator, fed whatever the
//! SSE parser makes of the same bytes, never panics and emits only JSON chunks.
#![no_main]

use f3dx_router_core::codec::StreamItem;
use f3dx_router_core::codec::anthropic::{StreamTranslator, decode_response};
use f3dx_router_core::sse::SseParser;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check_response(data: &[u8]) {
    if let Ok(out) = decode_response(data, 1_700_000_000) {
        let json: Value =
            serde_json::from_slice(&out.body).expect("decode_response output is JSON");
        let message = &json["choices"][0]["message"];
        assert!(message.is_object(), "no choices[0].message in {json}");
        assert_eq!(json["object"], "chat.completion");
    }
}

fn check_stream(data: &[u8], include_usage: bool) {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    // Two pieces, so the parser's carry-over is on the path too.
    let (a, b) = data.split_at(data.len() / 2);
    parser.push(a, &mut events);
    parser.push(b, &mut events);
    parser.finish(&mut events);

    let mut translator = StreamTranslator::new(include_usage, 1_700_000_000);
    let mut items = Vec::new();
    for event in &events {
        // A decode error fails the attempt in the machine; here the translator must simply go on
        // without panicking.
        let _ = translator.on_event(event, &mut items);
    }
    for item in items {
        if let StreamItem::Chunk { json, .. } = item {
            let chunk: Value = serde_json::from_slice(&json).expect("stream chunk is JSON");
            assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_response(data);
    check_stream(data, data.first().is_some_and(|b| b & 1 == 1));
});
