//! Incremental Server-Sent Events parser (WHATWG `text/event-stream`), fed arbitrary byte pieces.
// IMPLEMENTATION: helper task (see brief). Interface fixed below.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` name, if the event had one.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// TEMPORARY stub until the parser lands.
#[derive(Debug, Default)]
pub struct SseParser;
impl SseParser {
    /// New parser.
    pub fn new() -> Self {
        SseParser
    }
    /// Feed bytes.
    pub fn push(&mut self, _chunk: &[u8], _out: &mut Vec<SseEvent>) {}
    /// End of stream.
    pub fn finish(&mut self, _out: &mut Vec<SseEvent>) {}
    /// Buffered bytes.
    pub fn buffered_len(&self) -> usize {
        0
    }
}
