//! The idle timer: the longest gap with no bytes from a provider, from the request to its head
//! and between body bytes or stream events, ends the attempt (softly before a stream commits,
//! as an interruption after).

use super::*;

/// Feeds a head (status 200) for `attempt` at the harness's time.
fn head(h: &mut Harness, attempt: AttemptId) -> Vec<Action> {
    h.m.handle_input(
        h.now,
        Input::ResponseHead {
            attempt,
            status: 200,
            headers: http::HeaderMap::new(),
        },
    )
    .unwrap();
    h.actions()
}

/// Feeds one piece of `attempt`'s body at the harness's time.
fn body(h: &mut Harness, attempt: AttemptId, piece: &str) -> Vec<Action> {
    h.m.handle_input(
        h.now,
        Input::ResponseBody {
            attempt,
            chunk: Bytes::from(piece.to_owned()),
        },
    )
    .unwrap();
    h.actions()
}

fn start_stream_at(h: &mut Harness) -> AttemptId {
    h.m.handle_input(
        h.now,
        Input::Request {
            id: RequestId(7),
            request: stream_request(),
        },
    )
    .unwrap();
    sends(&h.actions())[0].0
}

fn records(actions: &[Action]) -> Vec<AttemptOutcome> {
    match outcome(actions) {
        Ok(r) => r.attempts.iter().map(|a| a.outcome.clone()).collect(),
        Err(e) => e.attempts().iter().map(|a| a.outcome.clone()).collect(),
    }
}

#[test]
fn a_provider_that_sends_nothing_times_out_at_the_default_limit() {
    let mut h = Harness::new("", 2);
    let a0 = sends(&h.start(1))[0].0;
    assert_eq!(
        h.m.poll_timeout(),
        Some(Time::ZERO + DEFAULT_IDLE_TIMEOUT),
        "a call with no deadline and no timeout set must still end"
    );
    assert!(h.advance(599_999).is_empty());
    let out = h.advance(1);
    assert_eq!(cancels(&out), [a0], "the stalled connection is dropped");
    let (a1, p) = sends(&out)[0];
    assert_eq!(p, 1, "an idle attempt before its head fails over");
    let done = h.respond(a1, 200, &[], OK_BODY);
    assert_eq!(
        records(&done),
        [
            AttemptOutcome::TimedOut,
            AttemptOutcome::Success { status: 200 }
        ]
    );
}

#[test]
fn a_provider_setting_wins_over_the_router_setting() {
    let providers = r#"{"providers":[
        {"name":"p0","kind":"openai","base_url":"https://p0.test/v1","idle_timeout_ms":500},
        {"name":"p1","kind":"openai","base_url":"https://p1.test/v1"}],"idle_timeout_ms":2000}"#;
    let mut h = Harness {
        m: RouterMachine::new(RouterConfig::from_json(providers.as_bytes()).unwrap(), 1).unwrap(),
        now: Time::ZERO,
    };
    let a0 = sends(&h.start(1))[0].0;
    assert!(h.advance(499).is_empty());
    let out = h.advance(1);
    assert_eq!(cancels(&out), [a0]);
    let a1 = sends(&out)[0].0;
    assert!(h.advance(1999).is_empty(), "p1 has the router's 2 s");
    let out = h.advance(1);
    assert_eq!(cancels(&out), [a1]);
    assert_eq!(
        records(&out),
        [AttemptOutcome::TimedOut, AttemptOutcome::TimedOut]
    );
}

#[test]
fn a_stall_after_the_head_or_mid_body_is_timed_out() {
    let mut h = Harness::new(r#","idle_timeout_ms":1000"#, 3);
    let a0 = sends(&h.start(1))[0].0;
    h.advance(900);
    assert!(head(&mut h, a0).is_empty());
    // The head was progress: the limit runs from it, not from the send.
    assert!(h.advance(999).is_empty());
    let out = h.advance(1);
    assert_eq!(cancels(&out), [a0], "stall after head");
    let a1 = sends(&out)[0].0;
    head(&mut h, a1);
    h.advance(500);
    body(&mut h, a1, &OK_BODY[..10]);
    assert!(h.advance(999).is_empty());
    let out = h.advance(1);
    assert_eq!(cancels(&out), [a1], "stall mid-body");
    let a2 = sends(&out)[0].0;
    let done = h.respond(a2, 200, &[], OK_BODY);
    assert_eq!(
        records(&done),
        [
            AttemptOutcome::TimedOut,
            AttemptOutcome::TimedOut,
            AttemptOutcome::Success { status: 200 }
        ]
    );
}

#[test]
fn a_byte_every_100_ms_is_never_idle() {
    let mut h = Harness::new(r#","idle_timeout_ms":1000"#, 2);
    let a0 = start_stream_at(&mut h);
    head(&mut h, a0);
    let timers = h.m.machine_stats().timers;
    let mut out = Vec::new();
    for (i, byte) in OPENAI_STREAM.as_bytes().chunks(1).enumerate() {
        out.extend(h.advance(100));
        out.extend(body(&mut h, a0, std::str::from_utf8(byte).unwrap()));
        if i < 5 {
            // Progress re-arms nothing: the queue holds as many timers as before.
            assert_eq!(h.m.machine_stats().timers, timers);
        }
    }
    h.m.handle_input(h.now, Input::ResponseEnd { attempt: a0 })
        .unwrap();
    out.extend(h.actions());
    assert!(sends(&out).is_empty(), "a steady stream never fails over");
    assert!(outcome(&out).is_ok(), "{out:?}");
    assert!(h.now > Time::from_millis(100_000), "it ran for minutes");
}

#[test]
fn a_stall_after_commit_interrupts_the_stream() {
    let mut h = Harness::new(r#","idle_timeout_ms":1000"#, 2);
    let a0 = start_stream_at(&mut h);
    let half = &OPENAI_STREAM[..OPENAI_STREAM.len() / 2];
    head(&mut h, a0);
    assert!(!delivered(&body(&mut h, a0, half)).is_empty());
    assert!(h.advance(999).is_empty());
    let out = h.advance(1);
    assert_eq!(cancels(&out), [a0]);
    assert!(
        sends(&out).is_empty(),
        "a committed stream never fails over"
    );
    match outcome(&out) {
        Err(RouteError::StreamInterrupted {
            provider, reason, ..
        }) => {
            assert_eq!(&**provider, "p0");
            assert!(reason.contains("1000 ms"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_idle_timer_is_forgotten_with_its_attempt() {
    let mut h = Harness::new(r#","idle_timeout_ms":1000"#, 1);
    let a0 = sends(&h.start(1))[0].0;
    assert!(outcome(&h.respond(a0, 200, &[], OK_BODY)).is_ok());
    assert_eq!(h.m.machine_stats().timers, 0);
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn idle_timeout_must_be_positive() {
    for (extra, field) in [
        (r#","idle_timeout_ms":0"#, "idle_timeout_ms"),
        (r#","idle_timeout_ms":-1"#, "idle_timeout_ms"),
    ] {
        let json = format!(
            r#"{{"providers":[{{"name":"p","kind":"openai","base_url":"https://p.test"}}]{extra}}}"#
        );
        let e = RouterConfig::from_json(json.as_bytes())
            .and_then(|c| c.validate())
            .unwrap_err();
        assert_eq!(e.field(), field);
    }
    let json = r#"{"providers":[{"name":"p","kind":"openai","base_url":"https://p.test","idle_timeout_ms":0}]}"#;
    let e = RouterConfig::from_json(json.as_bytes())
        .and_then(|c| c.validate())
        .unwrap_err();
    assert_eq!(e.field(), "providers[0].idle_timeout_ms");
}
