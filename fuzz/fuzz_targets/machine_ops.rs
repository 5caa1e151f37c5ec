//! The machine under an arbitrary driver: a fuzzer-chosen config (1-4 OpenAI/Anthropic providers,
//! sequential or hedged, timers) and an arbitrary sequence of inputs aimed at live attempts. After
//! every input the actions are drained and checked against a model of the driver:
//!
//! - exactly one `Complete` per request, nothing for it afterwards (no Send, Deliver or Complete);
//! - every `Send` is closed (an End/TransportError fed, or a `Cancel` action) at or before its
//!   request's `Complete`; a `Cancel` names an attempt that was open (or closed by this very input);
//! - no `Send` for a request after one of its attempts got a hard 4xx head (not 408/429);
//! - at most `hedge_k` (1 when sequential) attempts of a request open at once, each provider at most
//!   once per request, never more than `max_attempts`;
//! - late inputs for closed attempts and requests produce nothing;
//! - `attempts_in_flight()`/`requests_in_flight()` match the model; `poll_timeout()` is in the
//!   future; after `handle_timeout(now)` no request outlives its deadline; when everything is done
//!   no timer is left;
//! - outcomes are coherent: an `Ok` body is a chat completion (empty for a stream), deliveries are
//!   JSON chunks of stream requests, the attempt history lists every Send, `HardFailure` only after
//!   a hard head, `Cancelled` only after a caller cancel.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use f3dx_router_core::{
    Action, AttemptId, AttemptOutcome, ChatRequest, Input, InputError, RequestId, RouteError,
    RouterConfig, RouterMachine, Time, TransportErrorKind,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::collections::HashMap;

const OPENAI_BODY: &[u8] =
    include_bytes!("../../tests/fixtures/openai/responses/chat_text_stop.json");
const OPENAI_STREAM: &[u8] =
    include_bytes!("../../tests/fixtures/openai/streams/chat_finish_length_with_usage.sse");
const ANTHROPIC_STREAM: &[u8] =
    include_bytes!("../../tests/fixtures/anthropic/streams/text_basic.sse");
const ANTHROPIC_BODY: &[u8] = br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hi there"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":3}}"#;

const REQUESTS: [&str; 6] = [
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
    r#"{"model":"gpt-4o","messages":[{"role":"system","content":"terse"},{"role":"user","content":"hi"}],"max_tokens":16}"#,
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
    // Anthropic cannot express n = 2: an Unsupported record, no Send.
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"n":2}"#,
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"logprobs":true}"#,
];

const STATUSES: [u16; 20] = [
    200, 200, 200, 201, 204, 400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504, 529, 100,
    302,
];

const RETRY_AFTER: [(&str, &str); 10] = [
    ("retry-after", "1"),
    ("retry-after", "0"),
    ("retry-after", "2.5"),
    ("retry-after", "120"),
    ("retry-after", "100000"),
    ("retry-after-ms", "500"),
    ("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ("retry-after", "garbage"),
    ("retry-after-ms", "1e40"),
    ("retry-after", "Wed, 21 Oct 2015 07:29:00 GMT"),
];

#[derive(Arbitrary, Debug)]
struct Config {
    providers: u8,
    anthropic: [bool; 4],
    hedged: bool,
    hedge_k: u8,
    hedge_delay_ms: Option<u16>,
    deadline_ms: Option<u16>,
    timeouts_ms: [Option<u16>; 4],
    ttft_ms: Option<u16>,
    max_attempts: Option<u8>,
    max_response_bytes: Option<u16>,
    retry_after_cap_ms: Option<u16>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Request {
        id: u8,
        template: u8,
    },
    Head {
        send: u8,
        status: u8,
        retry_after: Option<u8>,
        date: bool,
    },
    Body {
        send: u8,
        bytes: Vec<u8>,
    },
    ValidBody {
        send: u8,
        split: Option<u16>,
    },
    End {
        send: u8,
    },
    /// Head, a valid body and End in one op: a whole answer, so success paths are reached often.
    Respond {
        send: u8,
        status: u8,
        split: Option<u16>,
    },
    TransportError {
        send: u8,
        kind: u8,
    },
    Cancel {
        id: u8,
    },
    Advance {
        ms: u16,
    },
    JumpToTimer,
}

#[derive(Arbitrary, Debug)]
struct Case {
    config: Config,
    ops: Vec<Op>,
}

/// What the model knows of one request (one generation of a caller id).
#[derive(Debug)]
struct Req {
    id: RequestId,
    stream: bool,
    started: Time,
    hard: bool,
    cancelled: bool,
    delivered: bool,
    sends: usize,
    providers: Vec<usize>,
}

#[derive(Debug)]
struct Send {
    attempt: AttemptId,
    req: usize,
    provider: usize,
    open: bool,
    head_seen: bool,
    /// The op that closed it by feeding End/TransportError (a Cancel in that op's drain is fine).
    closed_by_input_at: Option<usize>,
}

struct Harness {
    m: RouterMachine,
    now_ms: u64,
    n: usize,
    anthropic: Vec<bool>,
    hedge_k: usize,
    max_attempts: usize,
    deadline_ms: Option<u64>,
    reqs: Vec<Req>,
    live: HashMap<RequestId, usize>,
    sends: Vec<Send>,
    by_attempt: HashMap<AttemptId, usize>,
    op: usize,
}

fn build(config: &Config) -> Option<Harness> {
    let n = 1 + usize::from(config.providers % 4);
    let providers: Vec<Value> = (0..n)
        .map(|i| {
            let kind = if config.anthropic[i] {
                "anthropic"
            } else {
                "openai"
            };
            let mut p = json!({
                "name": format!("p{i}"),
                "kind": kind,
                "base_url": format!("https://p{i}.test/v1"),
                "api_key": format!("sk-{i}"),
            });
            if let Some(t) = config.timeouts_ms[i] {
                p["timeout_ms"] = json!(1 + u64::from(t));
            }
            p
        })
        .collect();
    let mut c = json!({ "providers": providers });
    let mut hedge_k = 1;
    if config.hedged {
        hedge_k = 1 + usize::from(config.hedge_k) % n;
        c["policy"] = json!("hedged");
        c["hedge_k"] = json!(hedge_k);
        if let Some(d) = config.hedge_delay_ms {
            c["hedge_delay_ms"] = json!(d);
        }
    }
    let deadline_ms = config.deadline_ms.map(|d| 1 + u64::from(d));
    if let Some(d) = deadline_ms {
        c["deadline_ms"] = json!(d);
    }
    if let Some(t) = config.ttft_ms {
        c["ttft_ms"] = json!(1 + u64::from(t));
    }
    let mut max_attempts = n;
    if let Some(a) = config.max_attempts {
        max_attempts = 1 + usize::from(a % 8);
        c["max_attempts"] = json!(max_attempts);
    }
    if let Some(b) = config.max_response_bytes {
        c["max_response_bytes"] = json!(1 + u64::from(b));
    }
    if let Some(cap) = config.retry_after_cap_ms {
        c["retry_after_cap_ms"] = json!(1 + u64::from(cap));
    }
    let config_json = serde_json::to_vec(&c).expect("serializes");
    let router_config = RouterConfig::from_json(&config_json).expect("generated config is valid");
    Some(Harness {
        m: RouterMachine::new(router_config, 42).expect("valid config builds"),
        now_ms: 0,
        n,
        anthropic: config.anthropic[..n].to_vec(),
        hedge_k,
        max_attempts,
        deadline_ms,
        reqs: Vec::new(),
        live: HashMap::new(),
        sends: Vec::new(),
        by_attempt: HashMap::new(),
        op: 0,
    })
}

fn is_hard(status: u16) -> bool {
    (400..=499).contains(&status) && status != 408 && status != 429
}

impl Harness {
    fn now(&self) -> Time {
        Time::from_millis(self.now_ms)
    }

    fn feed(&mut self, input: Input) -> Result<(), InputError> {
        let now = self.now();
        self.m.handle_input(now, input)
    }

    fn pick_send(&self, send: u8) -> Option<usize> {
        (!self.sends.is_empty()).then(|| usize::from(send) % self.sends.len())
    }

    fn open_count(&self, req: usize) -> usize {
        self.sends.iter().filter(|s| s.open && s.req == req).count()
    }

    /// Drains and checks every action; `expect_none` for inputs the machine must ignore.
    fn drain(&mut self, expect_none: bool) {
        while let Some(action) = self.m.poll_action() {
            assert!(!expect_none, "an ignored input produced {action:?}");
            match action {
                Action::Send {
                    id,
                    attempt,
                    provider,
                    request,
                } => {
                    let &req = self
                        .live
                        .get(&id)
                        .unwrap_or_else(|| panic!("Send for {id:?}, which is not in flight"));
                    let r = &mut self.reqs[req];
                    assert!(!r.hard, "Send for {id:?} after a hard 4xx head");
                    assert!(!r.delivered, "Send for {id:?} after it delivered");
                    assert!(provider.0 < self.n, "unknown provider {provider:?}");
                    assert!(
                        !r.providers.contains(&provider.0),
                        "provider {provider:?} sent twice for {id:?}"
                    );
                    assert!(
                        !self.by_attempt.contains_key(&attempt),
                        "attempt id {attempt:?} reused"
                    );
                    if let Some(last) = self.sends.last() {
                        assert!(attempt.0 > last.attempt.0, "attempt ids not monotonic");
                    }
                    assert_eq!(request.method(), http::Method::POST);
                    r.sends += 1;
                    r.providers.push(provider.0);
                    assert!(r.sends <= self.max_attempts, "more than max_attempts sends");
                    self.by_attempt.insert(attempt, self.sends.len());
                    self.sends.push(Send {
                        attempt,
                        req,
                        provider: provider.0,
                        open: true,
                        head_seen: false,
                        closed_by_input_at: None,
                    });
                    assert!(
                        self.open_count(req) <= self.hedge_k,
                        "more than {} attempts open for {id:?}",
                        self.hedge_k
                    );
                }
                Action::Cancel { attempt } => {
                    let &s = self
                        .by_attempt
                        .get(&attempt)
                        .unwrap_or_else(|| panic!("Cancel for unknown {attempt:?}"));
                    let send = &mut self.sends[s];
                    assert!(
                        send.open || send.closed_by_input_at == Some(self.op),
                        "Cancel for {attempt:?}, closed long before"
                    );
                    send.open = false;
                }
                Action::Deliver { id, chunk } => {
                    let &req = self
                        .live
                        .get(&id)
                        .unwrap_or_else(|| panic!("Deliver for {id:?}, which is not in flight"));
                    let r = &mut self.reqs[req];
                    assert!(r.stream, "Deliver for non-stream {id:?}");
                    r.delivered = true;
                    let v: Value = serde_json::from_slice(&chunk)
                        .unwrap_or_else(|e| panic!("delivered chunk is not JSON ({e}): {chunk:?}"));
                    assert!(v.is_object(), "delivered chunk is not an object: {v}");
                }
                Action::Complete { id, outcome } => {
                    let req = self
                        .live
                        .remove(&id)
                        .unwrap_or_else(|| panic!("Complete for {id:?}, which is not in flight"));
                    let open = self.open_count(req);
                    assert_eq!(open, 0, "{id:?} completed with {open} attempts open");
                    let r = &self.reqs[req];
                    let records = match &outcome {
                        Ok(routed) => {
                            if r.stream {
                                assert!(routed.body.is_empty(), "stream Ok with a body");
                            } else {
                                let v: Value =
                                    serde_json::from_slice(&routed.body).expect("Ok body is JSON");
                                assert!(
                                    v["choices"][0]["message"].is_object(),
                                    "Ok body is no chat completion: {v}"
                                );
                            }
                            assert!(!r.hard, "Ok after a hard head");
                            &routed.attempts
                        }
                        Err(e) => {
                            match e {
                                RouteError::HardFailure { .. } => {
                                    assert!(r.hard, "HardFailure without a hard head")
                                }
                                RouteError::Cancelled { .. } => {
                                    assert!(r.cancelled, "Cancelled without a caller cancel")
                                }
                                RouteError::DeadlineExceeded { .. } => {
                                    assert!(self.deadline_ms.is_some(), "deadline without one")
                                }
                                _ => {}
                            }
                            e.attempts()
                        }
                    };
                    let sent = records
                        .iter()
                        .filter(|a| !matches!(a.outcome, AttemptOutcome::Unsupported { .. }))
                        .count();
                    assert_eq!(sent, r.sends, "attempt history {records:?} vs sends");
                }
                other => panic!("unexpected action {other:?}"),
            }
        }
        self.check_counts();
    }

    fn check_counts(&self) {
        let open = self.sends.iter().filter(|s| s.open).count();
        assert_eq!(self.m.attempts_in_flight(), open, "attempts_in_flight");
        assert_eq!(
            self.m.requests_in_flight(),
            self.live.len(),
            "requests_in_flight"
        );
        if let Some(at) = self.m.poll_timeout() {
            assert!(
                at > self.now(),
                "poll_timeout {at:?} not after now {:?}",
                self.now()
            );
        }
        if let Some(deadline) = self.deadline_ms {
            for &req in self.live.values() {
                let end = self.reqs[req].started.as_nanos() / 1_000_000 + deadline;
                let at = self
                    .m
                    .poll_timeout()
                    .expect("a request with a deadline keeps a timer");
                assert!(at <= Time::from_millis(end), "timer later than a deadline");
            }
        }
        for (i, r) in self.reqs.iter().enumerate() {
            if r.delivered && self.live.get(&r.id) == Some(&i) {
                assert!(
                    self.open_count(i) <= 1,
                    "a delivering request has other legs"
                );
            }
        }
    }

    /// After `handle_timeout(now)`: every request whose deadline passed is over.
    fn check_deadlines(&self) {
        if let Some(deadline) = self.deadline_ms {
            for &req in self.live.values() {
                let start = self.reqs[req].started.as_nanos() / 1_000_000;
                assert!(
                    start + deadline > self.now_ms,
                    "request outlived its deadline"
                );
            }
        }
    }

    fn valid_body(&self, s: usize) -> &'static [u8] {
        let send = &self.sends[s];
        match (self.anthropic[send.provider], self.reqs[send.req].stream) {
            (false, false) => OPENAI_BODY,
            (false, true) => OPENAI_STREAM,
            (true, false) => ANTHROPIC_BODY,
            (true, true) => ANTHROPIC_STREAM,
        }
    }

    fn close_by_input(&mut self, s: usize) {
        let op = self.op;
        let send = &mut self.sends[s];
        if send.open {
            send.open = false;
            send.closed_by_input_at = Some(op);
        }
    }

    fn step(&mut self, op: &Op) {
        self.op += 1;
        match *op {
            Op::Request { id, template } => {
                let id = RequestId(u64::from(id % 6));
                let raw = REQUESTS[usize::from(template) % REQUESTS.len()];
                let request = ChatRequest::from_json(raw).expect("template is valid");
                let stream = request.stream();
                let in_flight = self.live.contains_key(&id);
                let result = self.feed(Input::Request { id, request });
                if in_flight {
                    assert_eq!(result, Err(InputError::DuplicateRequest(id)));
                    self.drain(true);
                } else {
                    assert_eq!(result, Ok(()));
                    self.live.insert(id, self.reqs.len());
                    self.reqs.push(Req {
                        id,
                        stream,
                        started: self.now(),
                        hard: false,
                        cancelled: false,
                        delivered: false,
                        sends: 0,
                        providers: Vec::new(),
                    });
                    self.drain(false);
                }
            }
            Op::Head {
                send,
                status,
                retry_after,
                date,
            } => {
                let Some(s) = self.pick_send(send) else {
                    return;
                };
                let status = STATUSES[usize::from(status) % STATUSES.len()];
                let mut headers = http::HeaderMap::new();
                if let Some(r) = retry_after {
                    let (name, value) = RETRY_AFTER[usize::from(r) % RETRY_AFTER.len()];
                    headers.insert(name, http::HeaderValue::from_static(value));
                }
                if date {
                    headers.insert(
                        http::header::DATE,
                        http::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
                    );
                }
                let (attempt, open, head_seen) = {
                    let x = &self.sends[s];
                    (x.attempt, x.open, x.head_seen)
                };
                self.feed(Input::ResponseHead {
                    attempt,
                    status,
                    headers,
                })
                .expect("no misuse");
                if open && !head_seen {
                    self.sends[s].head_seen = true;
                    if is_hard(status) {
                        let req = self.sends[s].req;
                        self.reqs[req].hard = true;
                    }
                }
                self.drain(!open);
            }
            Op::Body { send, ref bytes } => {
                let Some(s) = self.pick_send(send) else {
                    return;
                };
                let (attempt, open) = (self.sends[s].attempt, self.sends[s].open);
                let chunk = Bytes::copy_from_slice(bytes);
                self.feed(Input::ResponseBody { attempt, chunk })
                    .expect("no misuse");
                self.drain(!open);
            }
            Op::ValidBody { send, split } => {
                let Some(s) = self.pick_send(send) else {
                    return;
                };
                let attempt = self.sends[s].attempt;
                let body = self.valid_body(s);
                let at = split.map_or(body.len(), |x| usize::from(x) % (body.len() + 1));
                for piece in [&body[..at], &body[at..]] {
                    if piece.is_empty() {
                        continue;
                    }
                    let chunk = Bytes::from_static(piece);
                    self.feed(Input::ResponseBody { attempt, chunk })
                        .expect("no misuse");
                    // The first piece may end the attempt (a stream's terminator): the second
                    // is then a late input.
                    let still_open = self.sends[s].open;
                    self.drain(!still_open);
                }
            }
            Op::End { send } => {
                let Some(s) = self.pick_send(send) else {
                    return;
                };
                let (attempt, open) = (self.sends[s].attempt, self.sends[s].open);
                self.close_by_input(s);
                self.feed(Input::ResponseEnd { attempt })
                    .expect("no misuse");
                self.drain(!open);
            }
            Op::TransportError { send, kind } => {
                let Some(s) = self.pick_send(send) else {
                    return;
                };
                let (attempt, open) = (self.sends[s].attempt, self.sends[s].open);
                self.close_by_input(s);
                let kind =
                    TransportErrorKind::ALL[usize::from(kind) % TransportErrorKind::ALL.len()];
                self.feed(Input::TransportError { attempt, kind })
                    .expect("no misuse");
                self.drain(!open);
            }
            Op::Respond {
                send,
                status,
                split,
            } => {
                self.step(&Op::Head {
                    send,
                    status,
                    retry_after: None,
                    date: true,
                });
                self.step(&Op::ValidBody { send, split });
                self.step(&Op::End { send });
            }
            Op::Cancel { id } => {
                let id = RequestId(u64::from(id % 6));
                let live = self.live.get(&id).copied();
                if let Some(req) = live {
                    self.reqs[req].cancelled = true;
                }
                self.feed(Input::Cancel { id }).expect("no misuse");
                self.drain(live.is_none());
                assert!(
                    !self.live.contains_key(&id),
                    "Cancel did not complete {id:?}"
                );
            }
            Op::Advance { ms } => {
                self.now_ms += u64::from(ms);
                self.m.handle_timeout(self.now());
                self.drain(false);
                self.check_deadlines();
            }
            Op::JumpToTimer => {
                if let Some(at) = self.m.poll_timeout() {
                    self.now_ms = at.as_nanos().div_ceil(1_000_000);
                    self.m.handle_timeout(self.now());
                    self.drain(false);
                    self.check_deadlines();
                }
            }
        }
    }

    /// The caller gives up on everything left: each completes at once, and nothing is left over.
    fn finish(&mut self) {
        let mut ids: Vec<RequestId> = self.live.keys().copied().collect();
        ids.sort();
        for id in ids {
            self.step(&Op::Cancel { id: id.0 as u8 });
        }
        assert_eq!(self.m.attempts_in_flight(), 0);
        assert_eq!(self.m.requests_in_flight(), 0);
        assert_eq!(
            self.m.poll_timeout(),
            None,
            "timers left after every request ended"
        );
    }
}

fuzz_target!(|case: Case| {
    let Some(mut h) = build(&case.config) else {
        return;
    };
    for op in case.ops.iter().take(256) {
        h.step(op);
    }
    h.finish();
});
