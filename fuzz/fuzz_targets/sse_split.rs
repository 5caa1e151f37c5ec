//! The SSE parser gives the same events however the stream is cut, never panics, and holds no
//! more than what it was fed (an unfinished line plus the pending event, with a lossy UTF-8
//! conversion that can triple invalid bytes).
#![no_main]

use arbitrary::Arbitrary;
use f3dx_router_core::sse::{SseEvent, SseParser};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Case {
    /// Cut points, taken modulo the stream's length.
    cuts: Vec<u16>,
    stream: Vec<u8>,
}

fn whole(stream: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    parser.push(stream, &mut out);
    parser.finish(&mut out);
    assert_eq!(parser.buffered_len(), 0, "finish must reset the parser");
    out
}

fn pieces<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    let mut fed = 0usize;
    for piece in pieces {
        parser.push(piece, &mut out);
        fed += piece.len();
        // Lossy UTF-8 turns one invalid byte into U+FFFD (3 bytes); joins add at most one `\n`
        // per `data` line, which is itself at least 5 bytes long.
        assert!(
            parser.buffered_len() <= 3 * fed,
            "buffered {} after {fed} bytes",
            parser.buffered_len()
        );
    }
    parser.finish(&mut out);
    assert_eq!(parser.buffered_len(), 0, "finish must reset the parser");
    out
}

fuzz_target!(|case: Case| {
    let stream = &case.stream[..];
    let expected = whole(stream);

    let mut cuts: Vec<usize> = case
        .cuts
        .iter()
        .map(|&c| usize::from(c) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut bounds = Vec::with_capacity(cuts.len() + 2);
    bounds.push(0);
    bounds.extend(cuts);
    bounds.push(stream.len());
    // Empty pieces (repeated cuts) are kept on purpose: they must not change anything.
    let split = pieces(bounds.windows(2).map(|w| &stream[w[0]..w[1]]));
    assert_eq!(split, expected, "events depend on the cuts {bounds:?}");

    // The worst case for CRLF and BOM handling: one byte at a time.
    if stream.len() <= 4096 {
        let bytewise = pieces(stream.chunks(1));
        assert_eq!(bytewise, expected, "events differ when fed byte by byte");
    }
});
