//! Deterministic simulation: the real [`RouterMachine`] driven by a virtual clock against seeded
//! [`MockProvider`]s, with the rules of DESIGN.md checked after every step.
//!
//! Time only jumps to the next event (a mock's answer, a request's arrival, or the machine's own
//! `poll_timeout`), so a minute of simulated traffic takes milliseconds, and one `u64` seed fixes
//! the whole run: the machine's seed, each provider's draws and the workload.

use crate::rules::RuleChecker;
use bytes::Bytes;
use f3dx_router_core::mock::{MockOutcome, MockProvider};
use f3dx_router_core::rng::Rng;
use f3dx_router_core::{
    Action, AttemptId, ChatRequest, Input, RequestId, RouteError, RouterConfig, RouterMachine, Time,
};
use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

/// Unix time the simulated clock starts at (used for mock `Date` headers).
const SIM_EPOCH_UNIX: u64 = 1_700_000_000;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The router, usually with `mock` providers.
    pub config: RouterConfig,
    /// How many requests arrive.
    pub requests: usize,
    /// Gap between arrivals.
    pub interarrival: Duration,
    /// Share of requests that ask for a stream.
    pub stream_share: f64,
    /// How far apart a streamed answer's pieces arrive.
    pub chunk_gap: Duration,
    /// Probability that the caller cancels a request some time after sending it.
    pub cancel_share: f64,
}

/// What happened in a run.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub seed: u64,
    pub requests: usize,
    pub succeeded: usize,
    /// Completion latency of every request, successful or not, sorted.
    pub latencies: Vec<Duration>,
    /// Attempts sent (not counting ones the codec refused).
    pub sends: usize,
    /// Hash of the full action trace; equal seeds must give equal hashes.
    pub trace_hash: u64,
    /// Errors by kind.
    pub errors: BTreeMap<&'static str, usize>,
}

impl SimReport {
    /// Share of requests that succeeded.
    pub fn success_rate(&self) -> f64 {
        self.succeeded as f64 / self.requests.max(1) as f64
    }

    /// The `q` quantile (0..=1) of request latency.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank =
            ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }

    /// Sends per request.
    pub fn attempts_per_request(&self) -> f64 {
        self.sends as f64 / self.requests.max(1) as f64
    }
}

/// Something scheduled on the virtual clock.
#[derive(Debug)]
enum Event {
    Arrive(usize),
    CallerCancel(RequestId),
    Feed(Input),
}

/// Runs `scenario` with `seed`; panics with the seed and the broken rule if any rule breaks.
pub fn run(scenario: &Scenario, seed: u64) -> SimReport {
    Sim::new(scenario, seed).run()
}

struct Sim<'a> {
    scenario: &'a Scenario,
    seed: u64,
    machine: RouterMachine,
    mocks: Vec<MockProvider>,
    rng: Rng,
    now: Time,
    queue: BTreeMap<(Time, u64), Event>,
    seq: u64,
    rules: RuleChecker,
    /// Arrival time of each request, for its latency.
    arrived: HashMap<RequestId, Time>,
    report: SimReport,
    hasher: DefaultHasher,
    /// `F3DX_SIM_TRACE=1` prints every input and action.
    verbose: bool,
}

impl<'a> Sim<'a> {
    fn new(scenario: &'a Scenario, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let machine = RouterMachine::new(scenario.config.clone(), rng.next_u64())
            .expect("scenario config is valid");
        let mocks = machine
            .mock_providers()
            .into_iter()
            .map(|mock| mock.expect("the simulator's providers are all of kind mock"))
            .collect();
        Sim {
            scenario,
            seed,
            machine,
            mocks,
            rng,
            now: Time::ZERO,
            queue: BTreeMap::new(),
            seq: 0,
            rules: RuleChecker::new(
                scenario
                    .config
                    .deadline_ms
                    .map(|ms| Duration::from_millis(ms as u64)),
                true,
            ),
            arrived: HashMap::new(),
            report: SimReport {
                seed,
                requests: scenario.requests,
                ..SimReport::default()
            },
            hasher: DefaultHasher::new(),
            verbose: std::env::var_os("F3DX_SIM_TRACE").is_some(),
        }
    }

    fn schedule(&mut self, at: Time, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    fn run(mut self) -> SimReport {
        let mut at = Time::ZERO;
        for i in 0..self.scenario.requests {
            self.schedule(at, Event::Arrive(i));
            at = at + self.scenario.interarrival;
        }
        loop {
            let next_event = self.queue.first_key_value().map(|(&(t, _), _)| t);
            let next_timer = self.machine.poll_timeout();
            let next = match (next_event, next_timer) {
                (None, None) => break,
                (Some(e), Some(t)) => e.min(t),
                (e, t) => e.or(t).expect("one is some"),
            };
            assert!(next >= self.now, "seed {}: time went backwards", self.seed);
            self.now = next;
            if next_timer == Some(next) {
                self.machine.handle_timeout(self.now);
                self.drain();
            }
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let event = entry.remove();
                self.on_event(event);
                self.drain();
            }
        }
        self.finish()
    }

    fn on_event(&mut self, event: Event) {
        if self.verbose {
            println!("{:>12?} <- {event:?}", self.now - Time::ZERO);
        }
        let input = match event {
            Event::Arrive(i) => {
                let id = RequestId(i as u64);
                let stream = self.rng.next_f64() < self.scenario.stream_share;
                let body = format!(
                    r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"question {i}"}}],"stream":{stream}{}}}"#,
                    if stream {
                        r#","stream_options":{"include_usage":true}"#
                    } else {
                        ""
                    }
                );
                let request = ChatRequest::from_json(body).expect("simulated request is valid");
                self.arrived.insert(id, self.now);
                if self.rng.next_f64() < self.scenario.cancel_share {
                    let after = Duration::from_micros(self.rng.below(200_000));
                    self.schedule(self.now + after, Event::CallerCancel(id));
                }
                Input::Request { id, request }
            }
            Event::CallerCancel(id) => Input::Cancel { id },
            Event::Feed(input) => input,
        };
        self.rules.before_input(self.now, &input);
        self.machine
            .handle_input(self.now, input.clone())
            .expect("the simulator never misuses the machine");
        self.rules.after_input(&input);
    }

    /// Executes every action and checks the rules after each.
    fn drain(&mut self) {
        while let Some(action) = self.machine.poll_action() {
            self.trace(&action);
            if let Err(violation) = self.rules.on_action(self.now, &action) {
                panic!("seed {}: {violation}", self.seed);
            }
            match action {
                Action::Send {
                    attempt,
                    provider,
                    request,
                    ..
                } => {
                    self.report.sends += 1;
                    self.answer(attempt, provider.0, &request);
                }
                Action::Complete { id, outcome } => {
                    self.report.latencies.push(self.now - self.arrived[&id]);
                    match outcome {
                        Ok(_) => self.report.succeeded += 1,
                        Err(e) => *self.report.errors.entry(error_kind(&e)).or_default() += 1,
                    }
                }
                _ => {}
            }
        }
        if let Err(violation) = self.rules.after_drain(&self.machine) {
            panic!("seed {}: {violation}", self.seed);
        }
    }

    /// Asks the provider's mock what it does and schedules the inputs the driver would feed.
    fn answer(&mut self, attempt: AttemptId, provider: usize, request: &http::Request<Bytes>) {
        let unix = SIM_EPOCH_UNIX + self.now.as_nanos() / 1_000_000_000;
        let reply = self.mocks[provider].respond(request, unix);
        let at = self.now + reply.latency;
        match reply.outcome {
            MockOutcome::Transport(kind) => {
                self.schedule(at, Event::Feed(Input::TransportError { attempt, kind }))
            }
            MockOutcome::Response {
                status,
                headers,
                body,
            } => {
                self.schedule(
                    at,
                    Event::Feed(Input::ResponseHead {
                        attempt,
                        status,
                        headers,
                    }),
                );
                let mut t = at;
                for chunk in body {
                    self.schedule(t, Event::Feed(Input::ResponseBody { attempt, chunk }));
                    t = t + self.scenario.chunk_gap;
                }
                self.schedule(t, Event::Feed(Input::ResponseEnd { attempt }));
            }
        }
    }

    fn trace(&mut self, action: &Action) {
        if self.verbose {
            println!("{:>12?} -> {action:?}", self.now - Time::ZERO);
        }
        self.now.hash(&mut self.hasher);
        match action {
            Action::Send {
                id,
                attempt,
                provider,
                request,
            } => (0u8, id.0, attempt.0, provider.0, request.body().as_ref()).hash(&mut self.hasher),
            Action::Cancel { attempt } => (1u8, attempt.0).hash(&mut self.hasher),
            Action::Deliver { id, chunk } => (2u8, id.0, chunk.as_ref()).hash(&mut self.hasher),
            Action::Complete { id, outcome } => {
                (3u8, id.0, format!("{outcome:?}")).hash(&mut self.hasher)
            }
            other => format!("{other:?}").hash(&mut self.hasher),
        }
    }

    fn finish(mut self) -> SimReport {
        if let Err(violation) = self.rules.at_quiescence(&self.machine) {
            panic!("seed {}: {violation}", self.seed);
        }
        self.report.latencies.sort();
        self.report.trace_hash = self.hasher.finish();
        self.report
    }
}

fn error_kind(e: &RouteError) -> &'static str {
    match e {
        RouteError::HardFailure { .. } => "hard_failure",
        RouteError::AllProvidersFailed { .. } => "all_failed",
        RouteError::DeadlineExceeded { .. } => "deadline",
        RouteError::RateLimited { .. } => "rate_limited",
        RouteError::StreamInterrupted { .. } => "stream_interrupted",
        RouteError::Unsupported { .. } => "unsupported",
        RouteError::Cancelled { .. } => "cancelled",
        _ => "other",
    }
}

/// A random but valid scenario for `seed`: 1-5 mock providers with random latency and failure
/// models, a random policy, deadline and workload.
pub fn random_scenario(seed: u64) -> Scenario {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let n = 1 + rng.below(5) as usize;
    let providers: Vec<String> = (0..n)
        .map(|i| {
            let latency = match rng.below(3) {
                0 => format!(r#"{{"kind":"fixed","ms":{}}}"#, 1 + rng.below(100)),
                1 => format!(r#"{{"kind":"uniform","min_ms":1,"max_ms":{}}}"#, 2 + rng.below(200)),
                _ => format!(
                    r#"{{"kind":"lognormal","median_ms":{},"sigma":0.8,"tail":{{"probability":0.05,"min_ms":300,"max_ms":3000}}}}"#,
                    5 + rng.below(50)
                ),
            };
            let steps = [
                "429",
                r#"{"status":429,"retry_after":"1"}"#,
                r#"{"status":503,"retry_after":"2"}"#,
                "500",
                "502",
                "408",
                "400",
                "401",
                "\"reset\"",
                "\"refused\"",
                "\"timeout\"",
                "200",
            ];
            let picked: Vec<&str> = (0..1 + rng.below(4)).map(|_| steps[rng.below(steps.len() as u64) as usize]).collect();
            let failures = if rng.below(2) == 0 {
                format!(r#"{{"sequence":[{}]}}"#, picked.join(","))
            } else {
                format!(r#"{{"probability":{:.2},"steps":[{}]}}"#, rng.next_f64() * 0.6, picked.join(","))
            };
            let timeout = if rng.below(2) == 0 {
                format!(r#","timeout_ms":{}"#, 20 + rng.below(500))
            } else {
                String::new()
            };
            format!(
                r#"{{"name":"m{i}","kind":"mock"{timeout},"mock":{{"latency":{latency},"failures":{failures}}}}}"#
            )
        })
        .collect();
    let mut extra = String::new();
    if rng.below(2) == 0 {
        extra += &format!(
            r#","policy":"hedged","hedge_k":{}"#,
            1 + rng.below(n as u64)
        );
        if rng.below(2) == 0 {
            extra += &format!(r#","hedge_delay_ms":{}"#, rng.below(100));
        }
    }
    if rng.below(2) == 0 {
        extra += &format!(r#","deadline_ms":{}"#, 50 + rng.below(3000));
    }
    if rng.below(3) == 0 {
        extra += &format!(r#","ttft_ms":{}"#, 10 + rng.below(500));
    }
    if rng.below(4) == 0 {
        extra += &format!(r#","max_attempts":{}"#, 1 + rng.below(n as u64));
    }
    let json = format!(r#"{{"providers":[{}]{extra}}}"#, providers.join(","));
    let config = RouterConfig::from_json(json.as_bytes())
        .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{json}"));
    Scenario {
        config,
        requests: 10 + rng.below(30) as usize,
        interarrival: Duration::from_micros(rng.below(50_000)),
        stream_share: [0.0, 0.5, 1.0][rng.below(3) as usize],
        chunk_gap: Duration::from_micros(rng.below(20_000)),
        cancel_share: [0.0, 0.1][rng.below(2) as usize],
    }
}

/// The seed to run: `F3DX_SIM_SEED` if set (to replay a failure), else a fresh one.
pub fn seed_from_env() -> u64 {
    match std::env::var("F3DX_SIM_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("F3DX_SIM_SEED must be a u64, got {s:?}")),
        Err(_) => {
            let mut h = DefaultHasher::new();
            std::time::SystemTime::now().hash(&mut h);
            std::process::id().hash(&mut h);
            h.finish()
        }
    }
}

/// One line per policy run, for tables.
pub fn format_row(name: &str, r: &SimReport) -> String {
    format!(
        "| {name:<34} | {:>7.2}% | {:>8.1} | {:>8.1} | {:>9.1} | {:>8.3} |",
        r.success_rate() * 100.0,
        r.quantile(0.5).as_secs_f64() * 1e3,
        r.quantile(0.99).as_secs_f64() * 1e3,
        r.quantile(0.999).as_secs_f64() * 1e3,
        r.attempts_per_request()
    )
}

/// The table header matching [`format_row`].
pub const TABLE_HEADER: &str = "| policy                             | success  | p50 (ms) | p99 (ms) | p99.9 (ms) | sends/req |\n|---|---:|---:|---:|---:|---:|";
