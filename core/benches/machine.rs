//! The machine's own work for one request, from `Input::Request` to `Action::Complete`, on a 2xx
//! with 4 providers and every policy feature on (budgets `rpm`/`tpm`, the breaker, the retry
//! throttle; target: at most 1 µs median for sequential, weighted and fastest, 1.2 µs for hedged
//! k=2 with a tiny body, at most 5 µs with an OpenAI passthrough of a ~1 KB response), plus
//! allocations per request and a stats snapshot (target 2 µs).
//!
//! One machine is built outside the timed loop and reused; the `ChatRequest` is parsed once and
//! cloned (an `Arc`) per iteration; the driver's clock is a counter that moves 1 µs per input.
//! Dropping the actions is timed too: a driver drops them after acting on them.
//!
//! Run: `cargo bench -p f3dx-router-core --bench machine` (medians land in
//! `target/criterion/<group>/<name>/new/estimates.json`). The allocation report is printed first.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion};
use f3dx_router_core::{
    Action, AttemptId, ChatRequest, Input, RequestId, RouterConfig, RouterMachine, Time,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::hint::black_box;

/// Counts every allocation. The workspace forbids `unsafe`, so the `GlobalAlloc` wrapper comes
/// from `stats_alloc` (atomic counters around `System`) instead of being written here.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The smallest body `openai::check_response` accepts: the machine's work without translation.
const TINY_BODY: &[u8] = br#"{"choices":[{"message":{}}]}"#;
/// A recorded OpenAI `chat.completion` (two parallel tool calls), 1147 bytes.
const OPENAI_1K: &[u8] =
    include_bytes!("../../tests/fixtures/openai/responses/chat_parallel_tool_calls.json");
const REQUEST: &str = r#"{"model":"gpt-4o","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"What is the weather in Edinburgh and the AAPL price?"}]}"#;
/// A recorded OpenAI stream: 34 events, 8.7 KB, each fed as its own body piece.
const OPENAI_STREAM: &str =
    include_str!("../../tests/fixtures/openai/streams/chat_text_stop_with_usage.sse");
const STREAM_REQUEST: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#;

#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// Sequential, one Send, 200 with the tiny body.
    Sequential,
    /// Hedged k=2 with no delay: two Sends, the first answers 200, the second is cancelled.
    Hedged,
    /// Sequential, 200 with the ~1 KB recorded OpenAI response passed through.
    Sequential1k,
    /// Sequential: the first provider answers 429 (no Retry-After), the second 200 (tiny body).
    Failover429,
    /// Weighted round-robin (weights 4/3/2/1), one Send, 200 with the tiny body.
    Weighted,
    /// Power of two choices over latency, one Send, 200 with the tiny body.
    Fastest,
    /// Sequential, a streamed answer: the recorded OpenAI stream, one body piece per event (what
    /// a per-chunk cost, such as the idle timer's progress, shows up in).
    Stream34,
}

impl Scenario {
    const ALL: [Scenario; 7] = [
        Scenario::Sequential,
        Scenario::Hedged,
        Scenario::Sequential1k,
        Scenario::Failover429,
        Scenario::Weighted,
        Scenario::Fastest,
        Scenario::Stream34,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Sequential => "sequential",
            Scenario::Hedged => "hedged_k2",
            Scenario::Sequential1k => "sequential_openai_1k",
            Scenario::Failover429 => "failover_429_then_200",
            Scenario::Weighted => "weighted",
            Scenario::Fastest => "fastest",
            Scenario::Stream34 => "stream_34_events",
        }
    }
}

fn config(scenario: Scenario) -> RouterConfig {
    let providers: Vec<String> = (0..4)
        .map(|i| {
            format!(
                r#"{{"name":"p{i}","kind":"openai","base_url":"https://p{i}.test/v1","api_key":"sk-test-{i}","timeout_ms":30000,"weight":{w},"rpm":1000000000,"tpm":1000000000000}}"#,
                w = 4 - i
            )
        })
        .collect();
    let policy = match scenario {
        Scenario::Hedged => r#","policy":"hedged","hedge_k":2,"hedge_delay_ms":0"#,
        Scenario::Weighted => r#","policy":"weighted""#,
        Scenario::Fastest => r#","policy":"fastest""#,
        _ => "",
    };
    let json = format!(
        r#"{{"providers":[{}]{policy},"deadline_ms":60000,"throttle":{{"max_tokens":100,"token_ratio":1}}}}"#,
        providers.join(",")
    );
    RouterConfig::from_json(json.as_bytes()).expect("bench config is valid")
}

/// One machine and everything a request needs, reused across iterations.
struct Bench {
    scenario: Scenario,
    m: RouterMachine,
    request: ChatRequest,
    body: Bytes,
    /// The stream's events, for `Stream34`.
    events: Vec<Bytes>,
    now: u64,
    next_id: u64,
    /// Attempts sent by the last drain (capacity kept across iterations).
    sends: Vec<AttemptId>,
}

impl Bench {
    fn new(scenario: Scenario) -> Self {
        let body = match scenario {
            Scenario::Sequential1k => Bytes::from_static(OPENAI_1K),
            _ => Bytes::from_static(TINY_BODY),
        };
        Bench {
            scenario,
            m: RouterMachine::new(config(scenario), 7).expect("machine"),
            request: ChatRequest::from_json(match scenario {
                Scenario::Stream34 => STREAM_REQUEST,
                _ => REQUEST,
            })
            .expect("bench request is valid"),
            body,
            events: OPENAI_STREAM
                .split_inclusive("\n\n")
                .map(|e| Bytes::from_static(e.as_bytes()))
                .collect(),
            now: 0,
            next_id: 0,
            sends: Vec::with_capacity(4),
        }
    }

    fn tick(&mut self) -> Time {
        self.now += 1_000;
        Time::from_nanos(self.now)
    }

    fn input(&mut self, input: Input) {
        let now = self.tick();
        self.m.handle_input(now, input).expect("no driver misuse");
    }

    /// Drains every action, remembering Sends; returns whether the request completed with Ok.
    fn drain(&mut self) -> bool {
        self.sends.clear();
        let mut ok = false;
        while let Some(action) = self.m.poll_action() {
            match action {
                Action::Send { attempt, .. } => self.sends.push(attempt),
                Action::Complete { outcome, .. } => ok = black_box(outcome).is_ok(),
                other => drop(black_box(other)),
            }
        }
        ok
    }

    fn answer(&mut self, attempt: AttemptId, status: u16) {
        self.input(Input::ResponseHead {
            attempt,
            status,
            headers: http::HeaderMap::new(),
        });
    }

    /// One request from `Input::Request` to its `Complete`.
    fn one_request(&mut self) {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let request = self.request.clone();
        self.input(Input::Request { id, request });
        self.drain();
        let mut attempt = self.sends[0];
        if let Scenario::Failover429 = self.scenario {
            self.answer(attempt, 429);
            self.drain();
            attempt = self.sends[0];
        }
        self.answer(attempt, 200);
        let mut ok = false;
        if let Scenario::Stream34 = self.scenario {
            // Each event is drained as a driver would (its chunk delivered) before the next.
            for i in 0..self.events.len() {
                let chunk = self.events[i].clone();
                self.input(Input::ResponseBody { attempt, chunk });
                ok |= self.drain();
            }
        } else {
            let chunk = self.body.clone();
            self.input(Input::ResponseBody { attempt, chunk });
        }
        self.input(Input::ResponseEnd { attempt });
        ok |= self.drain();
        assert!(
            ok && self.m.attempts_in_flight() == 0,
            "request did not complete"
        );
    }
}

fn report_allocations() {
    for scenario in Scenario::ALL {
        let mut bench = Bench::new(scenario);
        // Warm up so maps, queues and scratch buffers have their steady-state capacity (the
        // validity feedback table holds the last 10,000 completions: fill it).
        for _ in 0..10_064 {
            bench.one_request();
        }
        let region = Region::new(GLOBAL);
        bench.one_request();
        let stats = region.change();
        println!(
            "{:<24} allocations per request: {} (bytes {}), reallocations {} (bytes {}), frees {}",
            scenario.name(),
            stats.allocations,
            stats.bytes_allocated,
            stats.reallocations,
            stats.bytes_reallocated,
            stats.deallocations,
        );
    }
}

/// Allocations of the pieces, to attribute the per-request counts above.
fn report_part_allocations() {
    let m = RouterMachine::new(config(Scenario::Sequential), 7).expect("machine");
    let provider = &m.providers()[0];
    let request = ChatRequest::from_json(REQUEST).expect("valid");
    let count = |name: &str, f: &mut dyn FnMut()| {
        f();
        let region = Region::new(GLOBAL);
        f();
        let stats = region.change();
        println!(
            "{name:<24} allocations: {} (bytes {})",
            stats.allocations, stats.bytes_allocated
        );
    };
    count("part/provider_encode", &mut || {
        black_box(provider.encode(&request).expect("encodes"));
    });
    for (name, body) in [
        ("part/decode_tiny", TINY_BODY),
        ("part/decode_openai_1k", OPENAI_1K),
    ] {
        count(name, &mut || {
            black_box(provider.decode_response(Bytes::from_static(body), 0)).expect("decodes");
        });
    }
    println!(
        "size_of: Action {} B, Input {} B, http::Request<Bytes> {} B",
        std::mem::size_of::<Action>(),
        std::mem::size_of::<Input>(),
        std::mem::size_of::<http::Request<Bytes>>(),
    );
}

fn bench_requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    for scenario in Scenario::ALL {
        let mut bench = Bench::new(scenario);
        group.bench_function(BenchmarkId::from_parameter(scenario.name()), |b| {
            b.iter(|| bench.one_request());
        });
    }
    group.finish();
}

/// Pieces of a request, to attribute the totals above without a profiler.
fn bench_parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("part");
    let m = RouterMachine::new(config(Scenario::Sequential), 7).expect("machine");
    let provider = &m.providers()[0];
    let request = ChatRequest::from_json(REQUEST).expect("valid");
    group.bench_function("provider_encode_openai", |b| {
        b.iter(|| black_box(provider.encode(black_box(&request))))
    });
    for (name, body) in [("tiny", TINY_BODY), ("openai_1k", OPENAI_1K)] {
        let body = Bytes::from_static(body);
        group.bench_function(BenchmarkId::new("decode_response", name), |b| {
            b.iter(|| black_box(provider.decode_response(black_box(body.clone()), 0)))
        });
    }
    let mut warm = Bench::new(Scenario::Fastest);
    for _ in 0..64 {
        warm.one_request();
    }
    group.bench_function("stats_snapshot_4_providers", |b| {
        b.iter(|| black_box(warm.m.stats(black_box(Time::from_millis(5)))))
    });
    group.bench_function("copy_1k_into_bytesmut", |b| {
        b.iter(|| {
            let mut buf = bytes::BytesMut::new();
            buf.extend_from_slice(black_box(OPENAI_1K));
            black_box(buf.freeze())
        })
    });
    group.finish();
}

fn main() {
    report_allocations();
    report_part_allocations();
    let mut c = Criterion::default().configure_from_args();
    bench_requests(&mut c);
    bench_parts(&mut c);
    c.final_summary();
}
