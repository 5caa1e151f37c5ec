//! Incremental Server-Sent Events parser (WHATWG `text/event-stream`), fed arbitrary byte pieces.
//!
//! A streaming provider response reaches the machine as whatever pieces the transport happened to
//! read: a piece may end inside a line, inside a UTF-8 character, or between the `\r` and `\n` of a
//! CRLF. [`SseParser`] keeps only the unfinished line and the pending event between pieces, so the
//! events it emits never depend on where the stream was cut (the tests check every cut of every
//! recorded fixture).
//!
//! Rules followed (WHATWG HTML, "Interpreting an event stream"), with one deliberate difference:
//! - lines end in CRLF, LF or CR; one leading UTF-8 BOM of the stream is dropped;
//! - a line starting with `:` is a comment; otherwise `field: value`, one leading space of the value
//!   stripped, and a line without `:` is a field with an empty value;
//! - `data` lines are joined with `\n`, `event` names the event, `id`, `retry` and unknown fields
//!   are ignored (the router neither reconnects nor resumes a provider stream);
//! - a blank line dispatches the pending event if it had at least one `data` line, else it only
//!   forgets the pending name;
//! - difference: at end of stream [`SseParser::finish`] dispatches an event that lacked its final
//!   blank line instead of discarding it, because real Anthropic streams end exactly that way and
//!   the `message_stop` they carry matters.
//!
//! Bytes are decoded per completed line with lossy UTF-8 conversion, so invalid input yields
//! U+FFFD rather than a panic or an error. Data is not trimmed: providers pad JSON with spaces and
//! the JSON parser, not the framing, is the place that tolerates them.

use std::mem;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` name, if the event had one.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// The UTF-8 byte order mark, dropped once at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Incremental `text/event-stream` parser: push byte pieces as they arrive, take completed events.
///
/// It is a plain value with no IO, so the machine owns one per streaming attempt and the same bytes
/// always give the same events. Memory held between pieces is the unfinished line plus the pending
/// event; [`SseParser::buffered_len`] reports it so the caller can cap a provider that never sends
/// a line break.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current line that have no terminator yet (at stream start: a BOM prefix).
    line: Vec<u8>,
    /// The pending event's `data` lines, joined with `\n`.
    data: String,
    /// Whether the pending event has seen a `data` line (`data:` alone still makes an event).
    has_data: bool,
    /// The pending event's name.
    event: Option<String>,
    /// The previous piece ended with `\r`: a `\n` opening the next piece belongs to that CRLF.
    pending_cr: bool,
    /// The BOM check is done (the stream's first bytes have been seen or ruled out as a BOM).
    past_start: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next piece of bytes (split anywhere, even inside a UTF-8 char or between \r and \n);
    /// appends every completed event to `out`.
    ///
    /// Events go into a caller-owned vector so a driver loop can reuse one allocation for all pieces.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        if self.past_start {
            self.scan(chunk, out);
            return;
        }
        // Stream start: hold bytes in `line` until they are a whole BOM or cannot become one.
        let take = (BOM.len() - self.line.len()).min(chunk.len());
        self.line.extend_from_slice(&chunk[..take]);
        let rest = &chunk[take..];
        if self.line.as_slice() == BOM {
            self.line.clear();
        } else if BOM.starts_with(&self.line) {
            return; // still a proper BOM prefix, and `chunk` is used up
        } else {
            // Not a BOM: the held bytes are ordinary content and may hold line ends.
            let held = mem::take(&mut self.line);
            self.past_start = true;
            self.scan(&held, out);
        }
        self.past_start = true;
        self.scan(rest, out);
    }

    /// End of stream: dispatches a final event that lacked its terminating blank line (real Anthropic
    /// recordings end that way) and resets.
    ///
    /// After this the parser is back at the start of a new stream (a BOM would be dropped again).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            let line = mem::take(&mut self.line);
            self.process_line(&line, out);
        }
        self.dispatch(out);
        *self = Self::default();
    }

    /// Bytes currently buffered (an incomplete line plus the pending event's data), so the caller can
    /// bound memory.
    ///
    /// The pending event's name is counted too; everything the parser holds is counted.
    #[must_use]
    pub fn buffered_len(&self) -> usize {
        self.line.len() + self.data.len() + self.event.as_ref().map_or(0, String::len)
    }

    /// Split `chunk` into lines, completing the held partial line first.
    fn scan(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) {
        if chunk.is_empty() {
            return; // an empty piece must not clear `pending_cr`
        }
        if mem::take(&mut self.pending_cr) && chunk[0] == b'\n' {
            chunk = &chunk[1..];
        }
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, terminator, rest) = (&chunk[..pos], chunk[pos], &chunk[pos + 1..]);
            if self.line.is_empty() {
                self.process_line(head, out);
            } else {
                // Take the buffer out to borrow it alongside `self`, then put it back to keep capacity.
                let mut line = mem::take(&mut self.line);
                line.extend_from_slice(head);
                self.process_line(&line, out);
                line.clear();
                self.line = line;
            }
            chunk = rest;
            if terminator == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
        }
        self.line.extend_from_slice(chunk);
    }

    /// Apply one complete line (without its terminator).
    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return, // comment
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.has_data = true;
                self.data.push_str(&String::from_utf8_lossy(value));
            }
            b"event" => {
                // WHATWG: an empty event type means the default ("message"), i.e. no name.
                self.event =
                    (!value.is_empty()).then(|| String::from_utf8_lossy(value).into_owned());
            }
            _ => {} // id, retry and unknown fields: nothing the router uses
        }
    }

    /// Blank line: emit the pending event if it had data, and start a new one either way.
    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if mem::take(&mut self.has_data) {
            // Copy out and clear, so the data buffer keeps its capacity for the next event.
            out.push(SseEvent {
                event,
                data: self.data.clone(),
            });
            self.data.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OPENAI: &[(&str, &[u8])] = &[
        (
            "chat_finish_length_with_usage",
            include_bytes!("../../tests/fixtures/openai/streams/chat_finish_length_with_usage.sse"),
        ),
        (
            "chat_multiple_choices_n3_with_usage",
            include_bytes!(
                "../../tests/fixtures/openai/streams/chat_multiple_choices_n3_with_usage.sse"
            ),
        ),
        (
            "chat_refusal_with_usage",
            include_bytes!("../../tests/fixtures/openai/streams/chat_refusal_with_usage.sse"),
        ),
        (
            "chat_text_stop_with_usage",
            include_bytes!("../../tests/fixtures/openai/streams/chat_text_stop_with_usage.sse"),
        ),
        (
            "chat_tool_call_single_with_usage",
            include_bytes!(
                "../../tests/fixtures/openai/streams/chat_tool_call_single_with_usage.sse"
            ),
        ),
        (
            "chat_tool_calls_parallel_with_usage",
            include_bytes!(
                "../../tests/fixtures/openai/streams/chat_tool_calls_parallel_with_usage.sse"
            ),
        ),
    ];

    const ANTHROPIC: &[(&str, &[u8])] = &[
        (
            "refusal",
            include_bytes!("../../tests/fixtures/anthropic/streams/refusal.sse"),
        ),
        (
            "text_basic",
            include_bytes!("../../tests/fixtures/anthropic/streams/text_basic.sse"),
        ),
        (
            "tool_use",
            include_bytes!("../../tests/fixtures/anthropic/streams/tool_use.sse"),
        ),
        (
            "tool_use_truncated_max_tokens_padded",
            include_bytes!(
                "../../tests/fixtures/anthropic/streams/tool_use_truncated_max_tokens_padded.sse"
            ),
        ),
    ];

    fn fixtures() -> impl Iterator<Item = &'static (&'static str, &'static [u8])> {
        OPENAI.iter().chain(ANTHROPIC)
    }

    fn parse_pieces<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for piece in pieces {
            parser.push(piece, &mut out);
        }
        parser.finish(&mut out);
        assert_eq!(parser.buffered_len(), 0, "finish must reset");
        out
    }

    fn parse(input: &[u8]) -> Vec<SseEvent> {
        parse_pieces([input])
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    fn data(d: &str) -> SseEvent {
        ev(None, d)
    }

    /// Independent whole-input model of the same rules, written for clarity, not speed.
    fn reference(input: &[u8]) -> Vec<SseEvent> {
        let input = input.strip_prefix(BOM).unwrap_or(input);
        let mut lines: Vec<&[u8]> = Vec::new();
        let (mut start, mut i) = (0, 0);
        while i < input.len() {
            match input[i] {
                b'\r' if input.get(i + 1) == Some(&b'\n') => {
                    lines.push(&input[start..i]);
                    i += 2;
                    start = i;
                }
                b'\r' | b'\n' => {
                    lines.push(&input[start..i]);
                    i += 1;
                    start = i;
                }
                _ => i += 1,
            }
        }
        if start < input.len() {
            lines.push(&input[start..]);
        }
        lines.push(b""); // finish() dispatches as if a blank line followed
        let (mut out, mut name, mut data): (Vec<SseEvent>, Option<String>, Option<String>) =
            (Vec::new(), None, None);
        for line in lines {
            let text = String::from_utf8_lossy(line);
            if text.is_empty() {
                if let Some(d) = data.take() {
                    out.push(SseEvent {
                        event: name.take(),
                        data: d,
                    });
                }
                name = None;
            } else if !text.starts_with(':') {
                // Lossy decoding never turns bytes into ':' or ' ', so splitting the text is safe.
                let (field, value) = text.split_once(':').unwrap_or((&text, ""));
                let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                match field {
                    "data" => match &mut data {
                        Some(d) => {
                            d.push('\n');
                            d.push_str(&value);
                        }
                        None => data = Some(value),
                    },
                    "event" => name = (!value.is_empty()).then_some(value),
                    _ => {}
                }
            }
        }
        out
    }

    fn data_lines(input: &[u8]) -> usize {
        input
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"data:"))
            .count()
    }

    // ---- fixtures -------------------------------------------------------------------------------

    #[test]
    fn sse_fixtures_every_single_split_matches_whole() {
        for (name, bytes) in fixtures() {
            let whole = parse(bytes);
            assert!(!whole.is_empty(), "{name}");
            for at in 0..=bytes.len() {
                let (a, b) = bytes.split_at(at);
                assert_eq!(parse_pieces([a, b]), whole, "{name} split at {at}");
            }
        }
    }

    #[test]
    fn sse_fixtures_byte_by_byte_matches_whole() {
        for (name, bytes) in fixtures() {
            let whole = parse(bytes);
            assert_eq!(parse_pieces(bytes.chunks(1)), whole, "{name}");
            assert_eq!(parse(bytes), reference(bytes), "{name} vs reference");
        }
    }

    #[test]
    fn sse_fixtures_same_events_with_crlf_and_cr_line_ends() {
        for (name, bytes) in fixtures() {
            let whole = parse(bytes);
            // The recordings escape newlines inside JSON, so every raw LF is a line end.
            let crlf: Vec<u8> = bytes
                .iter()
                .flat_map(|&b| {
                    if b == b'\n' {
                        vec![b'\r', b'\n']
                    } else {
                        vec![b]
                    }
                })
                .collect();
            let cr: Vec<u8> = bytes
                .iter()
                .map(|&b| if b == b'\n' { b'\r' } else { b })
                .collect();
            for variant in [&crlf, &cr] {
                assert_eq!(parse(variant), whole, "{name}");
                assert_eq!(
                    parse_pieces(variant.chunks(1)),
                    whole,
                    "{name} byte by byte"
                );
            }
            // Every cut of the CRLF form, including each one between a CR and its LF.
            for at in 0..=crlf.len() {
                let (a, b) = crlf.split_at(at);
                assert_eq!(parse_pieces([a, b]), whole, "{name} crlf split at {at}");
            }
        }
    }

    #[test]
    fn sse_openai_fixtures_are_chunks_then_usage_then_done() {
        for (name, bytes) in OPENAI {
            let events = parse(bytes);
            assert_eq!(events.len(), data_lines(bytes), "{name}");
            let (done, chunks) = events.split_last().unwrap();
            assert_eq!(*done, data("[DONE]"), "{name}");
            for e in chunks {
                assert_eq!(e.event, None, "{name}");
                let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
                assert_eq!(v["object"], "chat.completion.chunk", "{name}");
            }
            let usage: serde_json::Value =
                serde_json::from_str(&chunks.last().unwrap().data).unwrap();
            assert_eq!(usage["choices"], serde_json::json!([]), "{name}");
            assert!(usage["usage"]["total_tokens"].is_u64(), "{name}");
        }
    }

    #[test]
    fn sse_anthropic_fixtures_have_named_events_matching_their_type() {
        let expected = [
            ("refusal", 5, false),
            ("text_basic", 9, true),
            ("tool_use", 15, true),
            ("tool_use_truncated_max_tokens_padded", 16, true),
        ];
        for ((name, bytes), (want_name, count, has_ping)) in ANTHROPIC.iter().zip(expected) {
            assert_eq!(*name, want_name);
            let events = parse(bytes);
            assert_eq!(events.len(), count, "{name}");
            assert_eq!(events.len(), data_lines(bytes), "{name}");
            for e in &events {
                let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
                assert_eq!(e.event.as_deref(), v["type"].as_str(), "{name}");
            }
            let names: Vec<_> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
            assert_eq!(names.first(), Some(&"message_start"), "{name}");
            assert_eq!(names.last(), Some(&"message_stop"), "{name}");
            assert_eq!(names.contains(&"ping"), has_ping, "{name}");
        }
    }

    #[test]
    fn sse_anthropic_fixtures_without_final_blank_line_yield_last_event_on_finish() {
        for (name, bytes) in ANTHROPIC {
            assert!(
                !bytes.ends_with(b"\n\n"),
                "{name}: recordings end without a blank line"
            );
            let mut parser = SseParser::new();
            let mut out = Vec::new();
            parser.push(bytes, &mut out);
            let before = out.len();
            assert!(parser.buffered_len() > 0, "{name}");
            parser.finish(&mut out);
            assert_eq!(out.len(), before + 1, "{name}");
            assert_eq!(
                out.last().unwrap().event.as_deref(),
                Some("message_stop"),
                "{name}"
            );
        }
    }

    #[test]
    fn sse_padded_fixture_keeps_padding_untrimmed() {
        let (_, bytes) = ANTHROPIC[3];
        let events = parse(bytes);
        // The padding sits inside the JSON, before its closing brace; it must reach the consumer.
        let padded = events.iter().filter(|e| e.data.contains("}  ")).count();
        assert!(padded >= 10, "{padded} padded events");
        assert_eq!(events.last().unwrap().data, r#"{"type":"message_stop" }"#);
        let delta = events
            .iter()
            .find(|e| e.data.ends_with("\"text\":\"I\"}       }"))
            .unwrap();
        assert_eq!(delta.event.as_deref(), Some("content_block_delta"));
        let stop: serde_json::Value = serde_json::from_str(&events[14].data).unwrap();
        assert_eq!(stop["delta"]["stop_reason"], "max_tokens");
    }

    // ---- rules ----------------------------------------------------------------------------------

    #[test]
    fn sse_line_ends_crlf_lf_and_cr() {
        let want = vec![ev(Some("a"), "1\n2"), data("3")];
        assert_eq!(
            parse(b"event: a\r\ndata: 1\r\ndata: 2\r\n\r\ndata: 3\r\n\r\n"),
            want
        );
        assert_eq!(parse(b"event: a\rdata: 1\rdata: 2\r\rdata: 3\r\r"), want);
        assert_eq!(parse(b"event: a\ndata: 1\rdata: 2\r\n\ndata: 3\n\r"), want);
    }

    #[test]
    fn sse_cr_at_chunk_end_then_lf_is_one_line_end() {
        // Were the CR and LF two line ends, the blank line between them would split this event.
        let want = vec![data("a\nb")];
        assert_eq!(parse_pieces([&b"data: a\r"[..], b"\ndata: b\n\n"]), want);
        assert_eq!(
            parse_pieces([&b"data: a\r"[..], b"", b"", b"\ndata: b\n\n"]),
            want
        );
        // A CR alone at the end of a piece is still a line end, and a CR-only blank line dispatches.
        assert_eq!(
            parse_pieces([&b"data: a\r"[..], b"\r", b"data: b\r"]),
            vec![data("a"), data("b")]
        );
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.push(b"data: a\r", &mut out);
        parser.push(b"\r", &mut out);
        assert_eq!(
            out,
            vec![data("a")],
            "dispatched without waiting for a possible LF"
        );
    }

    #[test]
    fn sse_comments_are_ignored() {
        assert_eq!(
            parse(b": hello\ndata: x\n:\n: ping\n\n:only a comment\n\n"),
            vec![data("x")]
        );
    }

    #[test]
    fn sse_value_loses_exactly_one_leading_space() {
        assert_eq!(
            parse(b"data:x\n\ndata:  two\n\ndata: trail  \n\n"),
            vec![data("x"), data(" two"), data("trail  ")]
        );
    }

    #[test]
    fn sse_multi_line_data_joins_with_newline() {
        assert_eq!(parse(b"data: {\ndata:\ndata: }\n\n"), vec![data("{\n\n}")]);
    }

    #[test]
    fn sse_empty_data_line_still_makes_an_event() {
        assert_eq!(parse(b"data\n\ndata:\n\n"), vec![data(""), data("")]);
    }

    #[test]
    fn sse_event_without_data_is_not_dispatched_and_its_name_is_dropped() {
        assert_eq!(
            parse(b"event: ping\n\ndata: x\n\nevent: a\nid: 1\nretry: 5\n\nevent: b\ndata: y\n\n"),
            vec![data("x"), ev(Some("b"), "y")]
        );
        assert_eq!(parse(b"event: lonely\n"), vec![]);
    }

    #[test]
    fn sse_event_name_last_wins_and_empty_means_none() {
        assert_eq!(
            parse(b"event: a\nevent: b\ndata: 1\n\nevent: a\nevent:\ndata: 2\n\n"),
            vec![ev(Some("b"), "1"), data("2")]
        );
    }

    #[test]
    fn sse_id_retry_and_unknown_fields_are_ignored() {
        assert_eq!(
            parse(b"id: 7\nretry: 100\nfoo: bar\nDATA: no\ndata : no\ndata: yes\n\n"),
            vec![data("yes")]
        );
    }

    #[test]
    fn sse_leading_bom_is_stripped_once_even_when_split() {
        let input = b"\xEF\xBB\xBFdata: x\n\n\xEF\xBB\xBFdata: y\n\n";
        let want = vec![data("x")]; // the second BOM makes an unknown field name
        assert_eq!(parse(input), want);
        assert_eq!(parse_pieces(input.chunks(1)), want);
        assert_eq!(parse_pieces([&input[..2], &input[2..]]), want);
        // Short streams that are only a BOM prefix, or a prefix followed by line ends.
        assert_eq!(parse(b"\xEF\xBB"), vec![]);
        assert_eq!(parse(b"\xEF\n\ndata: z\n\n"), vec![data("z")]);
        assert_eq!(
            parse_pieces([&b"\xEF"[..], b"\xBB\xBF", b"data: z"]),
            vec![data("z")]
        );
    }

    #[test]
    fn sse_finish_resets_for_a_new_stream() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.push(b"event: a\ndata: 1\r", &mut out);
        parser.finish(&mut out);
        parser.push(b"\n\xEF\xBB\xBFdata: 2", &mut out);
        parser.finish(&mut out);
        // The new stream starts with LF (a blank line, not the tail of the old CRLF), then a BOM.
        assert_eq!(out, vec![ev(Some("a"), "1")]);
        parser.push(b"\xEF\xBB\xBFdata: 3", &mut out);
        parser.finish(&mut out);
        assert_eq!(out, vec![ev(Some("a"), "1"), data("3")]);
    }

    #[test]
    fn sse_invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(
            parse(b"event: \xFF\ndata: a\xC3\ndata: \x80b\n\n"),
            vec![ev(Some("\u{FFFD}"), "a\u{FFFD}\n\u{FFFD}b")]
        );
    }

    #[test]
    fn sse_utf8_char_split_across_pieces_is_kept_whole() {
        let input = "data: h\u{e9}llo \u{1F600}\n\n".as_bytes();
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(
                parse_pieces([a, b]),
                vec![data("h\u{e9}llo \u{1F600}")],
                "split at {at}"
            );
        }
    }

    #[test]
    fn sse_buffered_len_counts_partial_line_and_pending_event() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        assert_eq!(parser.buffered_len(), 0);
        parser.push(b"event: ab\ndata: 1234\ndata: 5", &mut out);
        // name "ab" + data "1234" + partial line "data: 5"
        assert_eq!(parser.buffered_len(), 2 + 4 + 7);
        parser.push(b"\n\n", &mut out);
        assert_eq!(parser.buffered_len(), 0);
        assert_eq!(out, vec![ev(Some("ab"), "1234\n5")]);
    }

    #[test]
    fn sse_matches_reference_model_on_edge_cases() {
        let cases: &[&[u8]] = &[
            b"",
            b"\r\n\r\n",
            b"\r\r\n\n",
            b"data",
            b"data:",
            b"::\ndata::x\n\n",
            b"\xEF\xBB\xBF\r\ndata: a\r",
            b"data: a\n\rdata: b",
        ];
        for &case in cases {
            assert_eq!(
                parse(case),
                reference(case),
                "{:?}",
                String::from_utf8_lossy(case)
            );
            assert_eq!(parse_pieces(case.chunks(1)), reference(case));
        }
    }

    // ---- properties -----------------------------------------------------------------------------

    /// Byte soup biased towards the bytes that matter to the grammar.
    fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            Just(&b"data"[..]),
            Just(&b"event"[..]),
            Just(&b"id"[..]),
            Just(&b":"[..]),
            Just(&b" "[..]),
            Just(&b"\r"[..]),
            Just(&b"\n"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"x"[..]),
            Just(BOM),
            Just(&b"\xEF"[..]),
            Just(&b"\xFF"[..]),
            Just("\u{e9}".as_bytes()),
        ];
        prop_oneof![
            prop::collection::vec(token, 0..48).prop_map(|t| t.concat()),
            prop::collection::vec(any::<u8>(), 0..96),
        ]
    }

    fn split_at_points(input: &[u8], mut points: Vec<usize>) -> Vec<&[u8]> {
        points.iter_mut().for_each(|p| *p %= input.len() + 1);
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for p in points {
            pieces.push(&input[start..p]);
            start = p;
        }
        pieces.push(&input[start..]);
        pieces
    }

    proptest! {
        #[test]
        fn sse_prop_random_splits_are_invariant(
            input in sse_bytes(),
            points in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let whole = parse(&input);
            prop_assert_eq!(&whole, &reference(&input));
            prop_assert_eq!(&parse_pieces(split_at_points(&input, points)), &whole);
            prop_assert_eq!(&parse_pieces(input.chunks(1)), &whole);
        }
    }
}
