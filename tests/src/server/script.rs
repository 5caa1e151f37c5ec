//! What a scripted provider does with one request: the [`Step`] type and its streaming part,
//! [`StreamStep`].
//!
//! A step is plain data (serde both ways) so the same script can come from Rust, from a JSON file
//! given to the `f3dx-mock-provider` binary, or from a Python test through the control API.
//! Every field is optional; `Step::default()` is "200 with the route's normal success body".
//! Unknown fields are rejected, so a misspelt or misplaced field (for example `chunk_gap_ms` at
//! the top level instead of inside `stream`) fails loudly instead of being silently ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One scripted response. Fields apply in this order: `delay_ms`, then `reset` (nothing is sent),
/// then the head (`status`, `headers`), then `stall_after_headers_ms`, then the body: `stream`,
/// else `raw_body`, else `body`, else the route's default body for the status (a success body for
/// 2xx, the provider's error shape otherwise); `truncate_after_bytes` cuts a non-stream body short.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// HTTP status (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Extra response headers (for example `retry-after`); they replace the defaults of the same
    /// name, so `content-type` can be overridden too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A JSON body, serialized as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// A body sent verbatim (wins over `body`), for malformed JSON or non-JSON error pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
    /// Wait this long before sending anything (a slow provider; the hedging trigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Send the head, then wait this long before the first body byte (a first-token stall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_after_headers_ms: Option<u64>,
    /// Close the connection abruptly with no response at all (after `delay_ms`). On HTTP/1.1
    /// the TCP connection is closed with `SO_LINGER 0`, so the client sees a reset; on HTTP/2
    /// only the stream is reset (`RST_STREAM`), because other requests share the connection.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reset: bool,
    /// Send the head with the full `content-length`, then only this many body bytes, then close
    /// the connection (FIN on HTTP/1.1, so the bytes arrive; `RST_STREAM` on HTTP/2). Applies to
    /// non-stream bodies; use [`StreamStep::cut_after_events`] for streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate_after_bytes: Option<usize>,
    /// Answer as `text/event-stream`, whatever the request asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamStep>,
}

/// The streaming part of a [`Step`]. The stream is a list of pieces, each sent as its own write:
/// the lines of `events`, or the events of the `replay` file (split after each blank line, so the
/// pieces concatenate to the file byte for byte), or, when neither is given, the route's default
/// stream for the request (OpenAI chunks and `[DONE]`, or the Anthropic `text_basic` replay).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamStep {
    /// A file under `tests/fixtures` (or an absolute path), sent unchanged. Read once and cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
    /// Pieces sent verbatim, one write each (include the `data: ...\n\n` framing yourself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// Pause between two pieces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_gap_ms: Option<u64>,
    /// After this many pieces, send `error_event` and end the stream cleanly (a provider that
    /// reports an error mid-stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_after_events: Option<usize>,
    /// The raw error event, for example `data: {"error":{...}}\n\n` (OpenAI) or
    /// `event: error\ndata: {...}\n\n` (Anthropic). Default: the route's overloaded error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_event: Option<String>,
    /// After this many pieces, close the connection with no terminator (no `[DONE]`, no final
    /// chunk): an interrupted stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_after_events: Option<usize>,
    /// After this many pieces, shut the connection down gracefully and go on with the stream:
    /// on HTTP/2 a `GOAWAY` mid-stream (a provider's server restarting), on HTTP/1.1 the
    /// connection closes once the response is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goaway_after_events: Option<usize>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Step {
    /// 200 with the route's default success body (the same as `Step::default()`).
    pub fn ok() -> Step {
        Step::default()
    }

    /// Answer with `status` and, unless a body is set, the route's default body for it.
    pub fn status(status: u16) -> Step {
        Step {
            status: Some(status),
            ..Step::default()
        }
    }

    /// Close the connection without answering.
    pub fn reset() -> Step {
        Step {
            reset: true,
            ..Step::default()
        }
    }

    /// A 200 event stream (see [`StreamStep`]).
    pub fn streaming(stream: StreamStep) -> Step {
        Step {
            stream: Some(stream),
            ..Step::default()
        }
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Step {
        self.headers
            .insert(name.into().to_ascii_lowercase(), value.into());
        self
    }

    /// Sets `retry-after` (seconds or an HTTP-date, verbatim).
    #[must_use]
    pub fn retry_after(self, value: impl Into<String>) -> Step {
        self.header("retry-after", value)
    }

    /// Sets the status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Step {
        self.status = Some(status);
        self
    }

    /// Sets a JSON body.
    #[must_use]
    pub fn json(mut self, body: Value) -> Step {
        self.body = Some(body);
        self
    }

    /// Sets a verbatim body.
    #[must_use]
    pub fn raw(mut self, body: impl Into<String>) -> Step {
        self.raw_body = Some(body.into());
        self
    }

    /// Waits before the head.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Step {
        self.delay_ms = Some(millis(delay));
        self
    }

    /// Waits between the head and the body.
    #[must_use]
    pub fn stall_after_headers(mut self, stall: Duration) -> Step {
        self.stall_after_headers_ms = Some(millis(stall));
        self
    }

    /// Sends only the first `bytes` of the body, then closes.
    #[must_use]
    pub fn truncate_after(mut self, bytes: usize) -> Step {
        self.truncate_after_bytes = Some(bytes);
        self
    }

    /// Answers as an event stream.
    #[must_use]
    pub fn stream(mut self, stream: StreamStep) -> Step {
        self.stream = Some(stream);
        self
    }

    /// The status this step answers with.
    pub fn effective_status(&self) -> u16 {
        self.status.unwrap_or(200)
    }

    /// Whether this step is the plain default (no field set): served on the fast path.
    pub(crate) fn is_plain(&self) -> bool {
        *self == Step::default()
    }
}

impl StreamStep {
    /// The route's default stream (use with the modifiers below).
    pub fn default_stream() -> StreamStep {
        StreamStep::default()
    }

    /// Replays a fixture file (relative to `tests/fixtures`, or absolute).
    pub fn replay(path: impl Into<String>) -> StreamStep {
        StreamStep {
            replay: Some(path.into()),
            ..StreamStep::default()
        }
    }

    /// Sends these pieces verbatim.
    pub fn events<I, S>(events: I) -> StreamStep
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        StreamStep {
            events: Some(events.into_iter().map(Into::into).collect()),
            ..StreamStep::default()
        }
    }

    /// Pauses between pieces.
    #[must_use]
    pub fn chunk_gap(mut self, gap: Duration) -> StreamStep {
        self.chunk_gap_ms = Some(millis(gap));
        self
    }

    /// Sends `events` pieces, then `error_event`, then ends the stream.
    #[must_use]
    pub fn error_after(mut self, events: usize, error_event: impl Into<String>) -> StreamStep {
        self.error_after_events = Some(events);
        self.error_event = Some(error_event.into());
        self
    }

    /// Sends `events` pieces, then closes the connection.
    #[must_use]
    pub fn cut_after(mut self, events: usize) -> StreamStep {
        self.cut_after_events = Some(events);
        self
    }

    /// Sends `events` pieces, then a graceful shutdown of the connection (HTTP/2 `GOAWAY`), then
    /// the rest.
    #[must_use]
    pub fn goaway_after(mut self, events: usize) -> StreamStep {
        self.goaway_after_events = Some(events);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip_and_builder_agree() {
        let built = Step::status(429)
            .retry_after("2")
            .delay(Duration::from_millis(5));
        let parsed: Step = serde_json::from_value(
            json!({"status": 429, "headers": {"retry-after": "2"}, "delay_ms": 5}),
        )
        .unwrap();
        assert_eq!(built, parsed);
        let back: Step = serde_json::from_str(&serde_json::to_string(&built).unwrap()).unwrap();
        assert_eq!(back, built);
    }

    #[test]
    fn misplaced_fields_are_rejected() {
        let err = serde_json::from_value::<Step>(json!({"chunk_gap_ms": 5})).unwrap_err();
        assert!(err.to_string().contains("chunk_gap_ms"), "{err}");
    }

    #[test]
    fn default_is_plain() {
        assert!(Step::ok().is_plain());
        assert!(
            serde_json::from_value::<Step>(json!({}))
                .unwrap()
                .is_plain()
        );
        assert!(!Step::status(500).is_plain());
    }
}
