//! Property tests: random configs and random input sequences (statuses, bodies, transport
//! errors, timings, cancels) against the machine, with every rule of DESIGN.md checked after
//! every step by the shared `RuleChecker`, and determinism checked by replaying.
//!
//! The configs include every learning policy (weighted, fastest, budgets, breakers, the throttle),
//! so the same checker also holds the machine to the budget invariant (no provider sent more than
//! its `rpm`/`tpm` admits, over every window), the breaker rule (an open provider gets no send but
//! the single probe, or the last resort when all are open) and, while nothing disturbs
//! eligibility, weighted shares; `weighted_shares_hold_for_any_weights` checks the shares alone.

use bytes::Bytes;
use f3dx_router_core::{
    Action, AttemptId, ChatRequest, Input, RequestId, RouterConfig, RouterMachine, Time,
    TransportErrorKind,
};
use f3dx_router_testkit::rules::RuleChecker;
use proptest::prelude::*;
use std::time::Duration;

const STATUSES: [u16; 12] = [200, 200, 201, 400, 401, 404, 408, 409, 429, 500, 503, 529];

fn bodies() -> Vec<Bytes> {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/");
    let read = |p: &str| Bytes::from(std::fs::read(format!("{fixtures}{p}")).unwrap());
    let openai_stream = read("openai/streams/chat_tool_calls_parallel_with_usage.sse");
    let anthropic_stream = read("anthropic/streams/tool_use.sse");
    vec![
        read("openai/responses/chat_text_stop.json"),
        Bytes::from_static(br#"{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#),
        openai_stream.slice(..openai_stream.len() / 3),
        openai_stream.slice(openai_stream.len() / 3..),
        anthropic_stream.slice(..anthropic_stream.len() / 2),
        anthropic_stream.slice(anthropic_stream.len() / 2..),
        Bytes::from_static(b"data: {\"error\":{\"message\":\"boom\"}}\n\n"),
        Bytes::from_static(b"<html>502 Bad Gateway</html>"),
        Bytes::new(),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Request {
        stream: bool,
        max_tokens: Option<u16>,
    },
    Head {
        send: usize,
        status: usize,
        retry_after: Option<u8>,
    },
    Body {
        send: usize,
        body: usize,
    },
    End {
        send: usize,
    },
    Transport {
        send: usize,
        kind: u8,
    },
    Cancel {
        request: usize,
    },
    Advance {
        ms: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (any::<bool>(), proptest::option::of(0u16..2000))
            .prop_map(|(stream, max_tokens)| Op::Request { stream, max_tokens }),
        4 => (any::<usize>(), 0..STATUSES.len(), proptest::option::of(0u8..5))
            .prop_map(|(send, status, retry_after)| Op::Head { send, status, retry_after }),
        4 => (any::<usize>(), 0..9usize).prop_map(|(send, body)| Op::Body { send, body }),
        3 => any::<usize>().prop_map(|send| Op::End { send }),
        1 => (any::<usize>(), 0u8..6).prop_map(|(send, kind)| Op::Transport { send, kind }),
        1 => any::<usize>().prop_map(|request| Op::Cancel { request }),
        3 => (0u16..3000).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// A provider's budget and weight: `rpm`, `tpm`, `burst`, `weight`.
fn budget() -> impl Strategy<Value = (Option<i64>, Option<i64>, Option<i64>, u32)> {
    (
        proptest::option::of(1i64..600),
        proptest::option::of(1i64..20_000),
        proptest::option::of(1i64..10),
        0u32..5,
    )
}

/// Top-level `health` and `throttle`, sometimes small enough to open and probe within a case.
fn learning() -> impl Strategy<Value = String> {
    (
        proptest::option::of((1u32..4, 1u32..8, 10u64..2000)),
        proptest::option::of((1u32..10, 1u32..1000)),
    )
        .prop_map(|(health, throttle)| {
            let mut extra = String::new();
            if let Some((consecutive, min_samples, open_ms)) = health {
                extra += &format!(
                    r#","health":{{"consecutive_failures":{consecutive},"window":8,"min_samples":{min_samples},"open_ms":{open_ms},"max_open_ms":{}}}"#,
                    open_ms * 4
                );
            }
            if let Some((max_tokens, milli)) = throttle {
                extra += &format!(
                    r#","throttle":{{"max_tokens":{max_tokens},"token_ratio":{}}}"#,
                    f64::from(milli) / 1000.0
                );
            }
            extra
        })
}

fn config() -> impl Strategy<Value = RouterConfig> {
    (
        proptest::collection::vec(
            (any::<bool>(), proptest::option::of(1i64..2000), budget()),
            1..5,
        ),
        0u8..4,
        0usize..4,
        proptest::option::of(0i64..500),
        proptest::option::of(1i64..5000),
        proptest::option::of(1i64..1000),
        proptest::option::of(1i64..5),
        learning(),
    )
        .prop_map(|(providers, policy, k, delay, deadline, ttft, max_attempts, learning)| {
            let n = providers.len();
            let list: Vec<String> = providers
                .iter()
                .enumerate()
                .map(|(i, (anthropic, timeout, (rpm, tpm, burst, weight)))| {
                    let kind = if *anthropic { "anthropic" } else { "openai" };
                    let mut extra = timeout.map(|t| format!(r#","timeout_ms":{t}"#)).unwrap_or_default();
                    for (key, value) in [("rpm", rpm), ("tpm", tpm), ("burst", burst)] {
                        if let Some(v) = value {
                            extra += &format!(r#","{key}":{v}"#);
                        }
                    }
                    format!(r#"{{"name":"p{i}","kind":"{kind}","base_url":"https://p{i}.test/v1","weight":{weight}{extra}}}"#)
                })
                .collect();
            let mut extra = learning;
            match policy {
                0 => {}
                1 => {
                    extra += &format!(r#","policy":"hedged","hedge_k":{}"#, 1 + k % n);
                    match delay {
                        Some(d) if d % 5 == 0 => extra += r#","hedge_delay_ms":"auto""#,
                        Some(d) => extra += &format!(r#","hedge_delay_ms":{d}"#),
                        None => {}
                    }
                }
                2 => extra += r#","policy":"weighted""#,
                _ => extra += r#","policy":"fastest""#,
            }
            for (name, value) in [("deadline_ms", deadline), ("ttft_ms", ttft), ("max_attempts", max_attempts)] {
                if let Some(v) = value {
                    extra += &format!(r#","{name}":{v}"#);
                }
            }
            RouterConfig::from_json(format!(r#"{{"providers":[{}]{extra}}}"#, list.join(",")).as_bytes()).unwrap()
        })
}

/// Runs `ops`, then answers every open attempt with a reset and lets every timer fire, checking
/// the rules throughout. Returns the action trace.
fn run(config: &RouterConfig, ops: &[Op]) -> Result<Vec<String>, TestCaseError> {
    let bodies = bodies();
    let deadline = config
        .deadline_ms
        .map(|ms| Duration::from_millis(ms as u64));
    let mut m = RouterMachine::new(config.clone(), 9).unwrap();
    let mut rules = RuleChecker::new(deadline, false).watching(config);
    let mut now = Time::ZERO;
    let mut sends: Vec<AttemptId> = Vec::new();
    let mut requests = 0u64;
    let mut trace = Vec::new();

    let mut step = |m: &mut RouterMachine,
                    rules: &mut RuleChecker,
                    now: Time,
                    input: Option<Input>,
                    sends: &mut Vec<AttemptId>|
     -> Result<(), TestCaseError> {
        rules.before_step(&m.stats(now));
        match input {
            Some(input) => {
                rules.before_input(now, &input);
                m.handle_input(now, input.clone())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                rules.after_input(&input);
            }
            None => {
                m.handle_timeout(now);
                // A timer left at or before `now` would make a driver's timer task spin.
                if let Some(at) = m.poll_timeout() {
                    prop_assert!(
                        at > now,
                        "poll_timeout {at:?} not after handle_timeout({now:?})"
                    );
                }
            }
        }
        while let Some(action) = m.poll_action() {
            rules.on_action(now, &action).map_err(TestCaseError::fail)?;
            if let Action::Send { attempt, .. } = &action {
                sends.push(*attempt);
            }
            trace.push(format!("{now:?} {action:?}"));
        }
        rules.after_drain(m).map_err(TestCaseError::fail)
    };

    for op in ops {
        let pick = |i: usize| (!sends.is_empty()).then(|| sends[i % sends.len()]);
        let input = match op.clone() {
            Op::Request { stream, max_tokens } => {
                requests += 1;
                let max_tokens = max_tokens
                    .map(|n| format!(r#","max_tokens":{n}"#))
                    .unwrap_or_default();
                let body = format!(
                    r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"q"}}],"stream":{stream},"stream_options":{{"include_usage":true}}{max_tokens}}}"#
                );
                Some(Input::Request {
                    id: RequestId(requests),
                    request: ChatRequest::from_json(body).unwrap(),
                })
            }
            Op::Head {
                send,
                status,
                retry_after,
            } => pick(send).map(|attempt| {
                let mut headers = http::HeaderMap::new();
                if let Some(s) = retry_after {
                    headers.insert("retry-after", s.to_string().parse().unwrap());
                }
                Input::ResponseHead {
                    attempt,
                    status: STATUSES[status],
                    headers,
                }
            }),
            Op::Body { send, body } => pick(send).map(|attempt| Input::ResponseBody {
                attempt,
                chunk: bodies[body].clone(),
            }),
            Op::End { send } => pick(send).map(|attempt| Input::ResponseEnd { attempt }),
            Op::Transport { send, kind } => pick(send).map(|attempt| Input::TransportError {
                attempt,
                kind: TransportErrorKind::ALL[kind as usize],
            }),
            Op::Cancel { request } => (requests > 0).then(|| Input::Cancel {
                id: RequestId(1 + request as u64 % requests),
            }),
            Op::Advance { ms } => {
                // As a driver does: wake at each timer on the way, then at the target.
                let target = now + Duration::from_millis(u64::from(ms));
                while let Some(at) = m.poll_timeout().filter(|&at| at < target) {
                    now = at.max(now);
                    step(&mut m, &mut rules, now, None, &mut sends)?;
                }
                now = target;
                None
            }
        };
        if input.is_some() || matches!(op, Op::Advance { .. }) {
            step(&mut m, &mut rules, now, input, &mut sends)?;
        }
    }
    // Quiesce: every attempt still open is reset, and time runs until no timer is left.
    for _ in 0..1000 {
        if m.attempts_in_flight() > 0 {
            let open: Vec<AttemptId> = sends.clone();
            for attempt in open {
                step(
                    &mut m,
                    &mut rules,
                    now,
                    Some(Input::TransportError {
                        attempt,
                        kind: TransportErrorKind::Reset,
                    }),
                    &mut sends,
                )?;
            }
        } else if let Some(at) = m.poll_timeout() {
            now = at;
            step(&mut m, &mut rules, now, None, &mut sends)?;
        } else {
            break;
        }
    }
    rules.at_quiescence(&m).map_err(TestCaseError::fail)?;
    Ok(trace)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rules_hold_for_any_inputs(config in config(), ops in proptest::collection::vec(op(), 0..80)) {
        run(&config, &ops)?;
    }

    #[test]
    fn same_inputs_same_actions(config in config(), ops in proptest::collection::vec(op(), 0..40)) {
        prop_assert_eq!(run(&config, &ops)?, run(&config, &ops)?);
    }
}

/// Weighted shares alone: any weights, every request answered 200 at once, and the checker's
/// weighted rule (fewer than `providers` picks off the exact share, at every prefix) holds; a
/// weight-0 provider is never picked while another has weight.
fn weighted_run(weights: &[u32], requests: u64) -> Result<Vec<u64>, TestCaseError> {
    let body = bodies()[0].clone();
    let list: Vec<String> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| format!(r#"{{"name":"p{i}","kind":"openai","base_url":"https://p{i}.test/v1","weight":{w}}}"#))
        .collect();
    let config = RouterConfig::from_json(
        format!(
            r#"{{"providers":[{}],"policy":"weighted"}}"#,
            list.join(",")
        )
        .as_bytes(),
    )
    .unwrap();
    let mut m = RouterMachine::new(config.clone(), 3).unwrap();
    let mut rules = RuleChecker::new(None, false).watching(&config);
    let mut counts = vec![0u64; weights.len()];
    let now = Time::ZERO;
    for id in 0..requests {
        let request = ChatRequest::from_json(
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"q"}]}"#.to_owned(),
        )
        .unwrap();
        let mut inputs = vec![Input::Request {
            id: RequestId(id),
            request,
        }];
        while let Some(input) = inputs.pop() {
            rules.before_step(&m.stats(now));
            rules.before_input(now, &input);
            m.handle_input(now, input.clone())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            rules.after_input(&input);
            while let Some(action) = m.poll_action() {
                rules.on_action(now, &action).map_err(TestCaseError::fail)?;
                if let Action::Send {
                    attempt, provider, ..
                } = action
                {
                    counts[provider.0] += 1;
                    inputs.push(Input::ResponseEnd { attempt });
                    inputs.push(Input::ResponseBody {
                        attempt,
                        chunk: body.clone(),
                    });
                    inputs.push(Input::ResponseHead {
                        attempt,
                        status: 200,
                        headers: http::HeaderMap::new(),
                    });
                }
            }
        }
    }
    prop_assert!(rules.judging_weighted_shares() || weights.iter().all(|&w| w == 0));
    Ok(counts)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn weighted_shares_hold_for_any_weights(
        weights in proptest::collection::vec(0u32..20, 1..6),
        requests in 1u64..300,
    ) {
        let counts = weighted_run(&weights, requests)?;
        if weights.iter().any(|&w| w > 0) {
            for (w, c) in weights.iter().zip(&counts) {
                prop_assert!(*w > 0 || *c == 0, "weight 0 picked: {:?} {:?}", weights, counts);
            }
        }
    }
}
