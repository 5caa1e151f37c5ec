//! Streams as reasoning models send them: reasoning deltas are content (they commit the attempt
//! and reach the caller at once), and `max_response_bytes` bounds what the machine buffers, not
//! the length of a stream it passes through.

use super::*;

/// An OpenAI-shape chunk whose delta is `delta` (JSON text).
fn chunk(delta: &str) -> String {
    format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":null}}]}}\n\n"
    )
}

const ROLE: &str = r#"{"role":"assistant","content":""}"#;

/// Feeds the response head of `attempt` at `now`.
fn head(m: &mut RouterMachine, now: Time, attempt: AttemptId) -> Vec<Action> {
    let headers = http::HeaderMap::new();
    m.handle_input(
        now,
        Input::ResponseHead {
            attempt,
            status: 200,
            headers,
        },
    )
    .unwrap();
    std::iter::from_fn(|| m.poll_action()).collect()
}

/// Fires due timers at `now`, then feeds `piece`.
fn piece_at(m: &mut RouterMachine, now: Time, attempt: AttemptId, piece: &str) -> Vec<Action> {
    m.handle_timeout(now);
    let chunk = Bytes::from(piece.to_owned());
    m.handle_input(now, Input::ResponseBody { attempt, chunk })
        .unwrap();
    std::iter::from_fn(|| m.poll_action()).collect()
}

/// 15 reasoning chunks 100 ms apart under `ttft_ms: 1000`: the first one commits, so the
/// first-token limit never fails over a provider that is streaming its thoughts; each is
/// delivered as it arrives.
#[test]
fn reasoning_deltas_commit_and_are_delivered_at_once() {
    for field in ["reasoning_content", "reasoning"] {
        let mut m = RouterMachine::new(mixed_config(r#","ttft_ms":1000"#), 1).unwrap();
        let a0 = sends(&start_stream(&mut m))[0].0;
        assert!(head(&mut m, Time::ZERO, a0).is_empty());
        let first = piece_at(&mut m, Time::ZERO, a0, &chunk(ROLE));
        assert!(
            delivered(&first).is_empty(),
            "the role chunk waits for content"
        );
        for i in 1..=15 {
            let now = Time::from_millis(100 * i);
            let thought = chunk(&format!(r#"{{"{field}":"step {i}. "}}"#));
            let out = piece_at(&mut m, now, a0, &thought);
            assert!(
                sends(&out).is_empty() && cancels(&out).is_empty(),
                "{field}: {out:?}"
            );
            let chunks = delivered(&out);
            // The first thought brings the held role chunk with it.
            assert_eq!(chunks.len(), if i == 1 { 2 } else { 1 }, "{field} {i}");
            let last = &chunks[chunks.len() - 1]["choices"][0]["delta"][field];
            assert_eq!(last, &format!("step {i}. "), "{field} {i}");
        }
        let now = Time::from_millis(1_600);
        let answer = chunk(r#"{"content":"42"}"#);
        let end = chunk(r#"{}"#).replace("null}]", "\"stop\"}]") + "data: [DONE]\n\n";
        let out = piece_at(&mut m, now, a0, &(answer + &end));
        assert_eq!(text_of(&delivered(&out)), "42");
        let routed = outcome(&out)
            .as_ref()
            .expect("served by the reasoning provider");
        assert_eq!(&*routed.provider_name, "oa");
        assert_eq!(routed.attempts.len(), 1);
    }
}

/// An empty reasoning delta (some servers open with one) is not content: it is held like the
/// role chunk, and the first-token limit still applies.
#[test]
fn empty_reasoning_deltas_do_not_commit() {
    let mut m = RouterMachine::new(mixed_config(r#","ttft_ms":1000"#), 1).unwrap();
    let a0 = sends(&start_stream(&mut m))[0].0;
    head(&mut m, Time::ZERO, a0);
    let empty = chunk(ROLE) + &chunk(r#"{"reasoning_content":"","reasoning":null}"#);
    assert!(delivered(&piece_at(&mut m, Time::ZERO, a0, &empty)).is_empty());
    m.handle_timeout(Time::from_millis(1_000));
    let out: Vec<Action> = std::iter::from_fn(|| m.poll_action()).collect();
    assert_eq!(
        cancels(&out),
        vec![a0],
        "the first-token limit fails it over"
    );
    assert_eq!(sends(&out)[0].1, 1);
}

// ---- max_response_bytes on streams ------------------------------------------------------------

const LIMIT: &str = r#","max_response_bytes":4096"#;

/// A stream of 200 content chunks, about 20 KB in all, whatever pieces it arrives in.
fn long_stream() -> String {
    let mut s = chunk(ROLE);
    for i in 0..200 {
        s += &chunk(&format!(r#"{{"content":"w{i:03} "}}"#));
    }
    s + &chunk(r#"{}"#).replace("null}]", "\"stop\"}]") + "data: [DONE]\n\n"
}

/// The limit bounds what the machine holds, not what passes through: a 20 KB stream passes
/// `max_response_bytes: 4096` whole, in one piece or in many.
#[test]
fn a_long_stream_passes_a_small_buffer_limit() {
    let stream = long_stream();
    assert!(stream.len() > 5 * 4096, "{}", stream.len());
    let by_bytes: Vec<&str> = stream
        .as_bytes()
        .chunks(1000)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    for pieces in [vec![stream.as_str()], by_bytes] {
        let mut m = RouterMachine::new(mixed_config(LIMIT), 1).unwrap();
        let a0 = sends(&start_stream(&mut m))[0].0;
        let out = feed(&mut m, a0, 200, &pieces, false);
        let chunks = delivered(&out);
        assert_eq!(chunks.len(), 202, "every chunk delivered");
        assert_eq!(text_of(&chunks).len(), 200 * 5);
        let routed = outcome(&out).as_ref().expect("the whole stream served");
        assert_eq!(routed.attempts.len(), 1);
    }
}

/// One event larger than the limit is refused: before the commit a soft failure (the next
/// provider is tried), after it a typed interruption. It is refused whether it arrives whole or
/// in pieces (then as soon as the pending line outgrows the limit).
#[test]
fn one_event_over_the_limit_is_refused() {
    let big = chunk(&format!(r#"{{"content":"{}"}}"#, "x".repeat(100_000)));
    let in_pieces: Vec<&str> = big
        .as_bytes()
        .chunks(1000)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    for pieces in [vec![big.as_str()], in_pieces] {
        // Before the commit.
        let mut m = RouterMachine::new(mixed_config(LIMIT), 1).unwrap();
        let a0 = sends(&start_stream(&mut m))[0].0;
        let mut all = vec![ROLE_PIECE.as_str()];
        all.extend(&pieces);
        let out = feed(&mut m, a0, 200, &all, false);
        assert!(delivered(&out).is_empty());
        assert_eq!(cancels(&out), vec![a0]);
        let (a1, provider) = sends(&out)[0];
        assert_eq!(provider, 1);
        let out = feed(&mut m, a1, 200, &[ANTHROPIC_STREAM], true);
        let routed = outcome(&out).as_ref().expect("served by the next provider");
        assert_eq!(
            routed.attempts[0].outcome,
            AttemptOutcome::BodyTooLarge { limit: 4096 }
        );
        // After the commit: what came before is delivered, then the interruption.
        let mut m = RouterMachine::new(mixed_config(LIMIT), 1).unwrap();
        let a0 = sends(&start_stream(&mut m))[0].0;
        let hello = chunk(r#"{"content":"Hello"}"#);
        let mut all = vec![ROLE_PIECE.as_str(), hello.as_str()];
        all.extend(&pieces);
        let out = feed(&mut m, a0, 200, &all, false);
        assert_eq!(text_of(&delivered(&out)), "Hello");
        assert!(
            sends(&out).is_empty(),
            "a committed stream never fails over"
        );
        match outcome(&out) {
            Err(RouteError::StreamInterrupted { reason, .. }) => {
                assert!(reason.contains("4096"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}

static ROLE_PIECE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| chunk(ROLE));

/// Chunks held before the commit (a provider that sends role chunks and never content) are
/// bounded too.
#[test]
fn what_is_held_before_the_commit_is_bounded() {
    let mut m = RouterMachine::new(mixed_config(LIMIT), 1).unwrap();
    let a0 = sends(&start_stream(&mut m))[0].0;
    let empties = chunk(r#"{"content":""}"#).repeat(100);
    let out = feed(&mut m, a0, 200, &[ROLE_PIECE.as_str(), &empties], false);
    assert!(delivered(&out).is_empty());
    assert_eq!(cancels(&out), vec![a0]);
    assert_eq!(sends(&out)[0].1, 1);
}
