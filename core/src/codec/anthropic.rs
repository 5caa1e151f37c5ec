//! Anthropic Messages API <-> OpenAI chat completions.
// IMPLEMENTATION: helper task (see brief).
// TEMPORARY stubs until the codec lands.
use super::{DecodeError, EncodeError, StreamItem};
use crate::request::ChatRequest;
use crate::sse::SseEvent;
/// stub
pub fn encode_request(_r: &ChatRequest, _m: &str, _d: u32) -> Result<Vec<u8>, EncodeError> {
    Err(EncodeError {
        field: "x".into(),
        reason: "stub".into(),
    })
}
/// stub
pub fn decode_response(_b: &[u8], _c: u64) -> Result<Vec<u8>, DecodeError> {
    Err(DecodeError("stub".into()))
}
/// stub
#[derive(Debug)]
pub struct StreamTranslator;
impl StreamTranslator {
    /// stub
    pub fn new(_u: bool, _c: u64) -> Self {
        StreamTranslator
    }
    /// stub
    pub fn on_event(&mut self, _e: &SseEvent, _o: &mut Vec<StreamItem>) -> Result<(), DecodeError> {
        Ok(())
    }
}
