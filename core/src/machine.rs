//! The [`RouterMachine`]: every routing decision, no IO.
//!
//! # The contract (as quinn-proto states its own)
//!
//! - **Roles.** `handle_*` take what happened, `poll_*` say what to do next, and `stats` reads
//!   what the machine knows. Nothing else changes it.
//! - **Drain order.** After every `handle_*` call, drain [`RouterMachine::poll_action`] until it
//!   returns `None`, executing the actions in the order given (a `Cancel` may precede the
//!   `Complete` of the same request; a `Deliver` always precedes its request's `Complete`), then
//!   read [`RouterMachine::poll_timeout`] and sleep until then or the next input.
//! - **Time only moves forward.** Every `now` passed in must be at or after the previous one. A
//!   `now` that goes back is treated as the latest time seen (timers never fire early, nothing
//!   panics).
//! - **What changes `poll_timeout`.** Only `handle_*` calls: a request arms its deadline and hedge
//!   timers, an attempt its timeout, first-token and idle limits, a request waiting for a
//!   cooldown or a budget a wake timer; completing a request or ending an attempt forgets its
//!   timers at once. The idle timer is moved only when it fires (bytes that came since push it
//!   on), so `poll_timeout` may name a time at which nothing visible happens.
//!   [`RouterMachine::poll_timeout_reason`] says which timer is next.
//! - **Late and unknown inputs.** Inputs for attempts the machine has ended (cancelled, timed
//!   out, completed) and cancels for requests already complete are ignored, never a panic, and
//!   counted in [`MachineStats::ignored_inputs`]. The only error is misuse: a request id reused
//!   while still in flight.
//! - **Determinism.** Same seed, same inputs at the same times: same actions.

use crate::ConfigError;
use crate::body::BodyBuf;
use crate::codec::StreamItem;
use crate::config::ProviderKind;
use crate::config::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_RETRY_AFTER_CAP, HedgeDelaySetting,
    PolicyKind, RouterConfig,
};
use crate::http_date::parse_http_date;
use crate::id_map::IdMap;
use crate::ids::{AttemptId, ProviderId, RequestId};
use crate::mock::MockProvider;
use crate::outcome::{AttemptOutcome, AttemptRecord, RouteError, Routed, TransportErrorKind};
use crate::policy::Policy;
use crate::provider::{Provider, StreamDecoder};
use crate::provider_state::ProviderState;
use crate::request::ChatRequest;
use crate::rng::Rng;
use crate::scrub::Scrubber;
use crate::sse::{SseEvent, SseParser};
use crate::state::throttle::Throttle;
use crate::stats::{MachineStats, ProviderStats};
use crate::time::Time;
use crate::validity::assembly::Assembly;
use crate::validity::cache::ExpectationCache;
use crate::validity::classifier::Classifier;
use crate::validity::expect::Expectation;
use crate::validity::{FeedbackResult, OnInvalid};
use bytes::Bytes;
use smallvec::SmallVec;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

pub use events::{Action, Input, InputError};
pub use timers::Timer;
use timers::{OwnTimers, TimerQueue};

/// Mixed into the seed for the mock providers' draws, so they differ from other uses of it.
const MOCK_SEED_STREAM: u64 = 0x6D6F_636B;
/// Mixed into the seed for the policies' draws.
const POLICY_SEED_STREAM: u64 = 0x706F_6C69;

/// One request in flight.
#[derive(Debug)]
struct RequestState {
    request: ChatRequest,
    deadline_at: Option<Time>,
    /// Estimated tokens (prompt characters / 4 plus `max_tokens`), when a budget counts tokens.
    tokens: u64,
    /// Providers already attempted (or refused by the codec) for this request.
    tried: SmallVec<[bool; 8]>,
    /// Attempts in flight.
    live: SmallVec<[AttemptId; 4]>,
    /// Attempts sent (not the providers the codec refused): what `max_attempts` caps.
    sent: usize,
    /// Every attempt started, in order; in-flight ones are finalized when they end.
    records: Vec<AttemptRecord>,
    /// Legs allowed in flight now (hedged with a delay grows this one leg per delay).
    allowed: usize,
    /// The stream attempt that delivered first, if any.
    committed: Option<AttemptId>,
    /// A hard failure is reading its body; nothing more is sent.
    hard_failing: bool,
    timers: OwnTimers,
    /// What its answer must satisfy (`response_format`, `tools`), compiled.
    expect: Option<Arc<Expectation>>,
    /// The provider this request was sent as a validity recovery probe, if any.
    validity_probe: Option<ProviderId>,
}

/// What an attempt is waiting for.
#[derive(Debug)]
enum Phase {
    Head,
    /// A 2xx plain body being collected.
    Body {
        status: u16,
        created: u64,
    },
    /// A 2xx stream being decoded.
    Stream(Box<StreamState>),
    /// A hard-failure body being collected for the error.
    HardBody {
        status: u16,
    },
}

#[derive(Debug)]
struct StreamState {
    status: u16,
    parser: SseParser,
    decoder: StreamDecoder,
    /// Chunks before commit (the role chunk), delivered when the attempt commits.
    held: Vec<Bytes>,
    /// Their length in all, bounded by `max_response_bytes`.
    held_bytes: usize,
    /// The answer put back together, when the request's answer is validated.
    assembly: Option<Box<Assembly>>,
}

#[derive(Debug)]
struct AttemptState {
    request: RequestId,
    provider: ProviderId,
    sent_at: Time,
    /// Index of this attempt's record in its request's `records`.
    record: usize,
    /// Tokens taken from the provider's budget for it.
    tokens: u64,
    /// Whether it is its provider's half-open breaker probe.
    probe: bool,
    /// How long its head took to come.
    first_byte: Option<Duration>,
    phase: Phase,
    body: BodyBuf,
    received: usize,
    /// When its provider last sent bytes (or, before any, when it was sent): the idle limit
    /// runs from here.
    last_byte: Time,
    /// Its idle limit.
    idle: Duration,
    timers: OwnTimers,
}

/// How the next hedge leg's delay is found.
#[derive(Debug, Clone, Copy)]
enum HedgeDelay {
    /// All legs at once.
    Immediate,
    Fixed(Duration),
    /// A quantile of the first leg's provider's latency to first byte.
    Learned {
        quantile: f64,
        min: Duration,
        max: Duration,
    },
}

/// The routing state machine. See the crate docs for the run loop and the module docs for the
/// contract.
#[derive(Debug)]
pub struct RouterMachine {
    providers: Vec<Provider>,
    /// Cooldown, breaker, budget and latency of each provider, indexed like `providers`.
    state: Vec<ProviderState>,
    /// Whether any provider's budget counts tokens (else requests skip the estimate).
    counts_tokens: bool,
    policy: Policy,
    throttle: Option<Throttle>,
    hedge_k: usize,
    hedge_delay: HedgeDelay,
    deadline: Option<Duration>,
    first_token_limit: Option<Duration>,
    /// The idle limit of providers that set none.
    idle_timeout: Duration,
    max_attempts: usize,
    max_response_bytes: usize,
    retry_after_cap: Duration,
    requests: IdMap<RequestId, RequestState>,
    attempts: IdMap<AttemptId, AttemptState>,
    timers: TimerQueue,
    actions: VecDeque<Action>,
    next_attempt: u64,
    /// The latest `now` seen: time never goes back.
    latest: Time,
    ignored_inputs: u64,
    /// Everything random derives from this: mock replies and the policies' draws.
    seed: u64,
    /// Unix time at the driver's `Time::ZERO`, if the driver told us: the fallback for `created`
    /// and for `Retry-After` dates when a response carries no `Date` header.
    unix_at_zero: Option<Duration>,
    /// Cuts the configured secrets out of what providers send back, in every outcome.
    scrubber: Scrubber,
    /// Scratch buffers reused across inputs so decoding a stream allocates nothing per event.
    scratch_events: Vec<SseEvent>,
    scratch_items: Vec<StreamItem>,
    /// Compiled `response_format` / `tools` schemas.
    expectations: ExpectationCache,
    /// The validity classifier and the requests reports may name.
    classifier: Classifier,
    on_invalid: OnInvalid,
}

fn ms(value: Option<i64>) -> Option<Duration> {
    value.map(|v| Duration::from_millis(v.max(0) as u64))
}

impl RouterMachine {
    // ---- construction and introspection ------------------------------------------------------

    /// Builds a machine; `seed` fixes everything random it will ever do.
    pub fn new(config: RouterConfig, seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        let hedge_k = config.effective_hedge_k();
        let max_attempts = config.effective_max_attempts();
        let hedge_delay = match (config.policy, config.hedge_delay_ms) {
            (PolicyKind::Hedged, Some(HedgeDelaySetting::Fixed(ms))) if ms > 0 => {
                HedgeDelay::Fixed(Duration::from_millis(ms as u64))
            }
            (PolicyKind::Hedged, Some(HedgeDelaySetting::Learned { quantile, min, max })) => {
                HedgeDelay::Learned { quantile, min, max }
            }
            _ => HedgeDelay::Immediate,
        };
        let half_life =
            ms(config.latency_half_life_ms).unwrap_or(crate::state::latency::DEFAULT_HALF_LIFE);
        let state: Vec<ProviderState> = config
            .providers
            .iter()
            .map(|p| ProviderState::new(p, &config.health, half_life))
            .collect();
        let weights: Vec<u32> = config.providers.iter().map(|p| p.weight).collect();
        let mut rng = Rng::new(seed ^ POLICY_SEED_STREAM);
        let classifier = Classifier::new(&config.validity, config.providers.len());
        Ok(RouterMachine {
            expectations: ExpectationCache::default(),
            classifier,
            on_invalid: config.validity.on_invalid,
            counts_tokens: state.iter().any(|s| s.counts_tokens),
            state,
            policy: Policy::new(config.policy, &weights, rng.fork(0)),
            throttle: config.throttle.as_ref().map(Throttle::new),
            hedge_k,
            hedge_delay,
            deadline: ms(config.deadline_ms),
            first_token_limit: ms(config.ttft_ms),
            idle_timeout: ms(config.idle_timeout_ms).unwrap_or(DEFAULT_IDLE_TIMEOUT),
            max_attempts,
            max_response_bytes: config
                .max_response_bytes
                .map_or(DEFAULT_MAX_RESPONSE_BYTES, |b| b as usize),
            retry_after_cap: ms(config.retry_after_cap_ms).unwrap_or(DEFAULT_RETRY_AFTER_CAP),
            scrubber: Scrubber::from_config(&config),
            providers: config.providers.into_iter().map(Provider::new).collect(),
            requests: IdMap::default(),
            attempts: IdMap::default(),
            timers: TimerQueue::default(),
            actions: VecDeque::new(),
            next_attempt: 0,
            latest: Time::ZERO,
            ignored_inputs: 0,
            seed,
            unix_at_zero: None,
            scratch_events: Vec::new(),
            scratch_items: Vec::new(),
        })
    }

    /// Tells the machine the Unix time of the driver's `Time::ZERO` (read once from the wall
    /// clock by the driver), so translated responses get a real `created` even when a provider
    /// sends no `Date` header. The machine itself still reads no clock.
    pub fn set_unix_time_at_zero(&mut self, unix: Duration) {
        self.unix_at_zero = Some(unix);
    }

    /// The response's time in Unix seconds: its `Date` header, else the driver's wall clock.
    fn response_unix(&self, now: Time, headers: &http::HeaderMap) -> Option<u64> {
        headers
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date)
            .or_else(|| self.unix_now(now))
    }

    /// Unix seconds at `now`, if the driver gave the wall clock.
    fn unix_now(&self, now: Time) -> Option<u64> {
        self.unix_at_zero
            .map(|zero| (zero + (now - Time::ZERO)).as_secs())
    }

    /// The in-process models of the `mock` providers (`None` for the others), each seeded from the
    /// machine's seed and its position, so every driver and the simulator draw the same replies
    /// for the same seed.
    pub fn mock_providers(&self) -> Vec<Option<MockProvider>> {
        let mut rng = Rng::new(self.seed ^ MOCK_SEED_STREAM);
        self.providers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let seed = rng.fork(i as u64).next_u64();
                (p.kind == ProviderKind::Mock)
                    .then(|| MockProvider::new(p.config().mock.clone().unwrap_or_default(), seed))
            })
            .collect()
    }

    /// The configured providers, indexed by [`ProviderId`].
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// Requests in flight.
    pub fn requests_in_flight(&self) -> usize {
        self.requests.len()
    }

    /// Attempts in flight (sent and neither ended nor cancelled).
    pub fn attempts_in_flight(&self) -> usize {
        self.attempts.len()
    }

    /// What the machine knows of each provider at `now`, in config order.
    pub fn stats(&self, now: Time) -> Vec<ProviderStats> {
        let now = now.max(self.latest);
        self.state
            .iter()
            .zip(&self.providers)
            .enumerate()
            .map(|(i, (s, p))| {
                let mut stats = s.snapshot(now, &p.name);
                stats.validity = self.classifier.snapshot(now, ProviderId(i));
                stats
            })
            .collect()
    }

    /// Counters of the machine itself.
    pub fn machine_stats(&self) -> MachineStats {
        MachineStats {
            ignored_inputs: self.ignored_inputs,
            requests_in_flight: self.requests.len(),
            attempts_in_flight: self.attempts.len(),
            timers: self.timers.len(),
            ignored_feedback: self.classifier.ignored_feedback,
            schemas_compiled: self.expectations.compiled(),
        }
    }

    // ---- inputs ------------------------------------------------------------------------------

    /// Feeds one event. Inputs for attempts the machine has already closed are ignored (and
    /// counted).
    ///
    /// Timers already due at `now` fire first, so a driver that is late to call
    /// [`RouterMachine::handle_timeout`] still sees a deadline win over a response that arrived
    /// after it.
    pub fn handle_input(&mut self, now: Time, input: Input) -> Result<(), InputError> {
        let now = self.advance(now);
        if self.poll_timeout().is_some_and(|at| at <= now) {
            self.handle_timeout(now);
        }
        let known = match &input {
            Input::Request { .. } | Input::Feedback { .. } => true,
            Input::Cancel { id } => self.requests.contains_key(id),
            Input::ResponseHead { attempt, .. }
            | Input::ResponseBody { attempt, .. }
            | Input::ResponseEnd { attempt }
            | Input::TransportError { attempt, .. } => self.attempts.contains_key(attempt),
        };
        if !known {
            self.ignored_inputs += 1;
            return Ok(());
        }
        match input {
            Input::Request { id, request } => return self.start_request(now, id, request),
            Input::ResponseHead {
                attempt,
                status,
                headers,
            } => self.on_head(now, attempt, status, &headers),
            Input::ResponseBody { attempt, chunk } => self.on_body(now, attempt, chunk),
            Input::ResponseEnd { attempt } => self.on_end(now, attempt),
            Input::TransportError { attempt, kind } => self.on_transport_error(now, attempt, kind),
            Input::Feedback { id, valid } => {
                self.feedback(now, id, valid);
            }
            Input::Cancel { id } => self.complete(
                now,
                id,
                Err(RouteError::Cancelled {
                    attempts: Vec::new(),
                }),
            ),
        }
        Ok(())
    }

    /// Fires every timer due at `now`. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Time) {
        let now = self.advance(now);
        while let Some(entry) = self.timers.pop_due(now) {
            let own = match entry.1 {
                Timer::Deadline(id) | Timer::Hedge(id) | Timer::Wake(id) => {
                    self.requests.get_mut(&id).map(|s| &mut s.timers)
                }
                Timer::AttemptTimeout(a) | Timer::FirstToken(a) | Timer::Idle(a) => {
                    self.attempts.get_mut(&a).map(|s| &mut s.timers)
                }
            };
            if let Some(own) = own {
                TimerQueue::fired(own, entry);
            }
            self.fire(now, entry.1);
        }
    }

    /// Time never goes back: an earlier `now` is taken as the latest seen.
    fn advance(&mut self, now: Time) -> Time {
        self.latest = self.latest.max(now);
        self.latest
    }

    // ---- outputs -----------------------------------------------------------------------------

    /// The next thing to do. Drain until `None` after every `handle_*` call.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`RouterMachine::handle_timeout`] must next be called, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.next().map(|(at, _)| at)
    }

    /// When [`RouterMachine::handle_timeout`] must next be called, and which timer that is (for
    /// a driver's tracing).
    #[must_use]
    pub fn poll_timeout_reason(&self) -> Option<(Time, Timer)> {
        self.timers.next()
    }
}

mod events;
mod idle;
mod requests;
mod responses;
mod streams;
#[cfg(test)]
mod tests;
mod timers;
mod validity;
