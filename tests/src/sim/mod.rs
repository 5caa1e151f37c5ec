//! Deterministic simulation: the real [`RouterMachine`] driven by a virtual clock against seeded
//! [`MockProvider`]s, with the rules of DESIGN.md checked after every step.
//!
//! Time only jumps to the next event (a mock's answer, a request's arrival, or the machine's own
//! `poll_timeout`), so a minute of simulated traffic takes milliseconds, and one `u64` seed fixes
//! the whole run: the machine's seed, each provider's draws and the workload.

mod faults;
mod random;
mod report;
pub mod scenarios;

pub use faults::{Burst, Fault, FaultKind};
pub use random::random_scenario;
pub use report::{BreakerChange, SendRecord, SimReport, TABLE_HEADER, format_row};

use crate::rules::RuleChecker;
use bytes::Bytes;
use f3dx_router_core::mock::{MockOutcome, MockProvider};
use f3dx_router_core::rng::Rng;
use f3dx_router_core::{
    Action, AttemptId, ChatRequest, Input, ProviderStats, RequestId, RouteError, RouterConfig,
    RouterMachine, Time,
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
    /// Extra arrivals on top of the steady `requests`.
    pub bursts: Vec<Burst>,
    /// Providers misbehaving for a while.
    pub faults: Vec<Fault>,
    /// `max_tokens` on every request (what a token budget charges besides the prompt).
    pub max_tokens: Option<u32>,
}

impl Scenario {
    /// `requests` plain requests `interarrival` apart, nothing else going on.
    pub fn steady(config: RouterConfig, requests: usize, interarrival: Duration) -> Self {
        Scenario {
            config,
            requests,
            interarrival,
            stream_share: 0.0,
            chunk_gap: Duration::ZERO,
            cancel_share: 0.0,
            bursts: Vec::new(),
            faults: Vec::new(),
            max_tokens: None,
        }
    }

    /// Every request, steady and burst.
    pub fn total_requests(&self) -> usize {
        self.requests + self.bursts.iter().map(|b| b.requests).sum::<usize>()
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
    /// Requests in flight that have sent their first attempt.
    first_send: std::collections::HashSet<RequestId>,
    report: SimReport,
    hasher: DefaultHasher,
    /// `F3DX_SIM_TRACE=1` prints every input and action.
    verbose: bool,
    /// The machine's stats before the current step (what the breaker log and rule read).
    before: Vec<ProviderStats>,
    /// Each provider's breaker at the last look, for the log.
    last_breaker: Vec<&'static str>,
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
            )
            .watching(&scenario.config),
            arrived: HashMap::new(),
            first_send: Default::default(),
            report: SimReport {
                seed,
                requests: scenario.total_requests(),
                served: vec![0; scenario.config.providers.len()],
                ..SimReport::default()
            },
            hasher: DefaultHasher::new(),
            verbose: std::env::var_os("F3DX_SIM_TRACE").is_some(),
            before: Vec::new(),
            last_breaker: Vec::new(),
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
        let mut next_id = self.scenario.requests;
        for burst in &self.scenario.bursts {
            let mut at = Time::ZERO + burst.at;
            for _ in 0..burst.requests {
                self.schedule(at, Event::Arrive(next_id));
                next_id += 1;
                at = at + burst.interarrival;
            }
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
                self.before_step();
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
                let max_tokens = self
                    .scenario
                    .max_tokens
                    .map(|n| format!(r#","max_tokens":{n}"#))
                    .unwrap_or_default();
                let body = format!(
                    r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"question {i}"}}],"stream":{stream}{}{max_tokens}}}"#,
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
        self.before_step();
        self.rules.before_input(self.now, &input);
        self.machine
            .handle_input(self.now, input.clone())
            .expect("the simulator never misuses the machine");
        self.rules.after_input(&input);
    }

    /// Reads the machine's stats before a step: the rule checker's breaker snapshot, and the
    /// breaker log.
    fn before_step(&mut self) {
        let stats = self.machine.stats(self.now);
        self.rules.before_step(&stats);
        self.log_breakers(&stats);
        self.before = stats;
    }

    /// Records every provider whose breaker reads differently from the last look.
    fn log_breakers(&mut self, stats: &[ProviderStats]) {
        self.last_breaker.resize(stats.len(), "closed");
        for (provider, s) in stats.iter().enumerate() {
            if self.last_breaker[provider] != s.breaker.name() {
                self.last_breaker[provider] = s.breaker.name();
                self.report.breaker_changes.push(BreakerChange {
                    at: self.now - Time::ZERO,
                    provider,
                    state: s.breaker,
                });
            }
        }
    }

    /// Executes every action and checks the rules after each.
    fn drain(&mut self) {
        while let Some(action) = self.machine.poll_action() {
            self.trace(&action);
            if let Err(violation) = self.rules.on_action(self.now, &action) {
                panic!(
                    "seed {}: {violation}\nproviders before this step: {:#?}",
                    self.seed, self.before
                );
            }
            match action {
                Action::Send {
                    id,
                    attempt,
                    provider,
                    request,
                } => {
                    self.report.sends += 1;
                    self.report.sent.push(SendRecord {
                        at: self.now - Time::ZERO,
                        provider: provider.0,
                        first: self.first_send.insert(id),
                        breaker: self.before[provider.0].breaker,
                    });
                    self.answer(attempt, provider.0, &request);
                }
                Action::Complete { id, outcome } => {
                    self.report.latencies.push(self.now - self.arrived[&id]);
                    self.first_send.remove(&id);
                    match outcome {
                        Ok(routed) => {
                            self.report.succeeded += 1;
                            self.report.served[routed.provider.0] += 1;
                        }
                        Err(e) => *self.report.errors.entry(error_kind(&e)).or_default() += 1,
                    }
                }
                _ => {}
            }
        }
        if let Err(violation) = self.rules.after_drain(&self.machine) {
            panic!("seed {}: {violation}", self.seed);
        }
        let stats = self.machine.stats(self.now);
        self.log_breakers(&stats);
    }

    /// Asks the provider's mock what it does and schedules the inputs the driver would feed.
    fn answer(&mut self, attempt: AttemptId, provider: usize, request: &http::Request<Bytes>) {
        let unix = SIM_EPOCH_UNIX + self.now.as_nanos() / 1_000_000_000;
        let mut reply = self.mocks[provider].respond(request, unix);
        faults::apply(
            &self.scenario.faults,
            provider,
            self.now - Time::ZERO,
            &mut reply,
        );
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
