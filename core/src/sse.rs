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
