//! The [`RouterMachine`]: every routing decision, no IO.
//!
//! Methods are grouped by role, as in quinn-proto: `handle_*` take what happened, `poll_*` say
//! what to do next. After every `handle_*` call, drain [`RouterMachine::poll_action`] until it
//! returns `None`, then sleep until [`RouterMachine::poll_timeout`] (or the next input).

use crate::ConfigError;
use crate::body::BodyBuf;
use crate::codec::StreamItem;
use crate::config::ProviderKind;
use crate::config::{
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_RETRY_AFTER_CAP, PolicyKind, RouterConfig,
};
use crate::http_date::parse_http_date;
use crate::id_map::IdMap;
use crate::ids::{AttemptId, ProviderId, RequestId};
use crate::mock::MockProvider;
use crate::outcome::{AttemptOutcome, AttemptRecord, RouteError, Routed, TransportErrorKind};
use crate::provider::{Provider, StreamDecoder};
use crate::request::ChatRequest;
use crate::retry_after::{RetryAfter, parse_retry_after};
use crate::rng::Rng;
use crate::sse::{SseEvent, SseParser};
use crate::time::Time;
use bytes::Bytes;
use smallvec::SmallVec;
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

pub use events::{Action, Input, InputError};

/// Mixed into the seed for the mock providers' draws, so they differ from other uses of it.
const MOCK_SEED_STREAM: u64 = 0x6D6F_636B;

/// A timer the machine keeps. Ordered so `(Time, Timer)` pairs form the timer queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Deadline(RequestId),
    Hedge(RequestId),
    CooldownWake(RequestId),
    AttemptTimeout(AttemptId),
    FirstToken(AttemptId),
}

/// One request in flight.
#[derive(Debug)]
struct RequestState {
    request: ChatRequest,
    deadline_at: Option<Time>,
    /// Providers already attempted (or refused by the codec) for this request.
    tried: SmallVec<[bool; 8]>,
    /// Attempts in flight.
    live: SmallVec<[AttemptId; 4]>,
    /// Every attempt started, in order; in-flight ones are finalized when they end.
    records: Vec<AttemptRecord>,
    /// Legs allowed in flight now (hedged with a delay grows this one leg per delay).
    allowed: usize,
    /// The stream attempt that delivered first, if any.
    committed: Option<AttemptId>,
    /// A hard failure is reading its body; nothing more is sent.
    hard_failing: bool,
    timers: SmallVec<[(Time, Timer); 2]>,
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
}

#[derive(Debug)]
struct AttemptState {
    request: RequestId,
    provider: ProviderId,
    sent_at: Time,
    /// Index of this attempt's record in its request's `records`.
    record: usize,
    phase: Phase,
    body: BodyBuf,
    received: usize,
    timers: SmallVec<[(Time, Timer); 2]>,
}

/// The routing state machine. See the crate docs for the run loop.
#[derive(Debug)]
pub struct RouterMachine {
    providers: Vec<Provider>,
    /// Until when each provider is cooling down after a `Retry-After`.
    cooldown_until: Vec<Option<Time>>,
    policy: PolicyKind,
    hedge_k: usize,
    hedge_delay: Option<Duration>,
    deadline: Option<Duration>,
    first_token_limit: Option<Duration>,
    max_attempts: usize,
    max_response_bytes: usize,
    retry_after_cap: Duration,
    requests: IdMap<RequestId, RequestState>,
    attempts: IdMap<AttemptId, AttemptState>,
    timers: BTreeSet<(Time, Timer)>,
    actions: VecDeque<Action>,
    next_attempt: u64,
    /// Everything random derives from this: mock replies now, weighted policies later.
    seed: u64,
    /// Unix time at the driver's `Time::ZERO`, if the driver told us: the fallback for `created`
    /// and for `Retry-After` dates when a response carries no `Date` header.
    unix_at_zero: Option<Duration>,
    /// Scratch buffers reused across inputs so decoding a stream allocates nothing per event.
    scratch_events: Vec<SseEvent>,
    scratch_items: Vec<StreamItem>,
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
        let hedge_delay = match config.policy {
            PolicyKind::Hedged => ms(config.hedge_delay_ms).filter(|d| !d.is_zero()),
            PolicyKind::Sequential => None,
        };
        let n = config.providers.len();
        Ok(RouterMachine {
            policy: config.policy,
            hedge_k,
            hedge_delay,
            deadline: ms(config.deadline_ms),
            first_token_limit: ms(config.ttft_ms),
            max_attempts,
            max_response_bytes: config
                .max_response_bytes
                .map_or(DEFAULT_MAX_RESPONSE_BYTES, |b| b as usize),
            retry_after_cap: ms(config.retry_after_cap_ms).unwrap_or(DEFAULT_RETRY_AFTER_CAP),
            providers: config.providers.into_iter().map(Provider::new).collect(),
            cooldown_until: vec![None; n],
            requests: IdMap::default(),
            attempts: IdMap::default(),
            timers: BTreeSet::new(),
            actions: VecDeque::new(),
            next_attempt: 0,
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

    // ---- inputs ------------------------------------------------------------------------------

    /// Feeds one event. Inputs for attempts the machine has already closed are ignored.
    ///
    /// Timers already due at `now` fire first, so a driver that is late to call
    /// [`RouterMachine::handle_timeout`] still sees a deadline win over a response that arrived
    /// after it.
    pub fn handle_input(&mut self, now: Time, input: Input) -> Result<(), InputError> {
        if self.poll_timeout().is_some_and(|at| at <= now) {
            self.handle_timeout(now);
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
            Input::Cancel { id } => {
                if self.requests.contains_key(&id) {
                    self.complete(
                        now,
                        id,
                        Err(RouteError::Cancelled {
                            attempts: Vec::new(),
                        }),
                    );
                }
            }
        }
        Ok(())
    }

    /// Fires every timer due at `now`. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(&(at, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            self.forget_timer(at, timer);
            self.fire(now, timer);
        }
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
        self.timers.first().map(|&(at, _)| at)
    }

    // ---- request lifecycle -------------------------------------------------------------------

    fn start_request(
        &mut self,
        now: Time,
        id: RequestId,
        request: ChatRequest,
    ) -> Result<(), InputError> {
        let key = id;
        if self.requests.contains_key(&key) {
            return Err(InputError::DuplicateRequest(id));
        }
        let allowed = match (self.policy, self.hedge_delay) {
            (PolicyKind::Hedged, None) => self.hedge_k,
            _ => 1,
        };
        let mut state = RequestState {
            request,
            deadline_at: self.deadline.map(|d| now + d),
            tried: smallvec::smallvec![false; self.providers.len()],
            live: SmallVec::new(),
            records: Vec::with_capacity(self.max_attempts.min(4)),
            allowed,
            committed: None,
            hard_failing: false,
            timers: SmallVec::new(),
        };
        if let Some(at) = state.deadline_at {
            self.timers.insert((at, Timer::Deadline(id)));
            state.timers.push((at, Timer::Deadline(id)));
        }
        if let Some(delay) = self.hedge_delay
            && self.hedge_k > 1
        {
            let at = now + delay;
            self.timers.insert((at, Timer::Hedge(id)));
            state.timers.push((at, Timer::Hedge(id)));
        }
        self.requests.insert(key, state);
        self.fill(now, id);
        Ok(())
    }

    /// Starts attempts until the policy's allowance is in flight, or ends the request when
    /// nothing is in flight and nothing more can be tried.
    fn fill(&mut self, now: Time, id: RequestId) {
        loop {
            let Some(state) = self.requests.get(&id) else {
                return;
            };
            if state.hard_failing || state.committed.is_some() || state.live.len() >= state.allowed
            {
                return;
            }
            if state.records.len() >= self.max_attempts {
                break;
            }
            let candidate = (0..self.providers.len())
                .find(|&p| !state.tried[p] && !self.cooling(p, now))
                .map(ProviderId);
            let Some(provider) = candidate else { break };
            self.start_attempt(now, id, provider);
        }
        let Some(state) = self.requests.get(&id) else {
            return;
        };
        if !state.live.is_empty() || state.hard_failing || state.committed.is_some() {
            return;
        }
        // Nothing in flight and nothing startable: wait out a cooldown, or fail.
        let earliest_cooldown = if state.records.len() < self.max_attempts {
            (0..self.providers.len())
                .filter(|&p| !state.tried[p])
                .filter_map(|p| self.cooldown_until[p].filter(|&until| until > now))
                .min()
        } else {
            None
        };
        match earliest_cooldown {
            Some(until) if state.deadline_at.is_none_or(|d| until <= d) => {
                if !state
                    .timers
                    .iter()
                    .any(|(_, t)| matches!(t, Timer::CooldownWake(_)))
                {
                    self.arm_request_timer(id, until, Timer::CooldownWake(id));
                }
            }
            Some(until) => {
                let retry_after = until - now;
                self.complete(
                    now,
                    id,
                    Err(RouteError::RateLimited {
                        retry_after,
                        attempts: Vec::new(),
                    }),
                );
            }
            None => {
                let outcome = self.exhausted_error(id);
                self.complete(now, id, Err(outcome));
            }
        }
    }

    fn cooling(&self, provider: usize, now: Time) -> bool {
        self.cooldown_until[provider].is_some_and(|until| until > now)
    }

    /// The error for a request whose providers are all spent: `Unsupported` when no provider
    /// could even express it, otherwise every attempt's failure.
    fn exhausted_error(&self, id: RequestId) -> RouteError {
        let state = &self.requests[&id];
        let first_unsupported = state.records.iter().find_map(|r| match &r.outcome {
            AttemptOutcome::Unsupported { field } => Some((r.provider_name.clone(), field.clone())),
            _ => None,
        });
        let all_unsupported = state
            .records
            .iter()
            .all(|r| matches!(r.outcome, AttemptOutcome::Unsupported { .. }));
        match first_unsupported {
            Some((provider, field)) if all_unsupported => RouteError::Unsupported {
                provider,
                field,
                attempts: Vec::new(),
            },
            _ => RouteError::AllProvidersFailed {
                attempts: Vec::new(),
            },
        }
    }

    fn start_attempt(&mut self, now: Time, id: RequestId, provider: ProviderId) {
        let p = &self.providers[provider.0];
        let state = self.requests.get_mut(&id).expect("caller checked");
        state.tried[provider.0] = true;
        let attempt = AttemptId(self.next_attempt);
        self.next_attempt += 1;
        let record = AttemptRecord {
            attempt,
            provider,
            provider_name: p.name.clone(),
            latency: Duration::ZERO,
            outcome: AttemptOutcome::Cancelled,
        };
        let http_request = match p.encode(&state.request) {
            Ok(r) => r,
            Err(e) => {
                state.records.push(AttemptRecord {
                    outcome: AttemptOutcome::Unsupported { field: e.field },
                    ..record
                });
                return;
            }
        };
        state.records.push(record);
        state.live.push(attempt);
        let mut timers = SmallVec::new();
        if let Some(timeout) = p.timeout {
            timers.push((now + timeout, Timer::AttemptTimeout(attempt)));
        }
        if state.request.stream()
            && let Some(limit) = self.first_token_limit
        {
            timers.push((now + limit, Timer::FirstToken(attempt)));
        }
        for &t in &timers {
            self.timers.insert(t);
        }
        let record = state.records.len() - 1;
        self.attempts.insert(
            attempt,
            AttemptState {
                request: id,
                provider,
                sent_at: now,
                record,
                phase: Phase::Head,
                body: BodyBuf::default(),
                received: 0,
                timers,
            },
        );
        self.actions.push_back(Action::Send {
            id,
            attempt,
            provider,
            request: http_request,
        });
    }

    /// Ends an attempt with `outcome`, closing it (and telling the driver to drop it when
    /// `cancel`), then lets the request go on.
    fn end_attempt(
        &mut self,
        now: Time,
        attempt: AttemptId,
        outcome: AttemptOutcome,
        cancel: bool,
    ) {
        let Some(a) = self.attempts.remove(&attempt) else {
            return;
        };
        for t in &a.timers {
            self.timers.remove(t);
        }
        if cancel {
            self.actions.push_back(Action::Cancel { attempt });
        }
        let Some(state) = self.requests.get_mut(&a.request) else {
            return;
        };
        state.live.retain(|x| *x != attempt);
        let record = &mut state.records[a.record];
        record.latency = now - a.sent_at;
        record.outcome = outcome;
    }

    /// A soft failure: close the attempt, then try the next provider.
    fn soft_fail(&mut self, now: Time, attempt: AttemptId, outcome: AttemptOutcome, cancel: bool) {
        let Some(request) = self.attempts.get(&attempt).map(|a| a.request) else {
            return;
        };
        self.end_attempt(now, attempt, outcome, cancel);
        self.fill(now, request);
    }

    /// Ends the request: cancels every attempt still open, fills in the attempt history, and
    /// emits its one `Complete`.
    fn complete(&mut self, now: Time, id: RequestId, mut outcome: Result<Routed, RouteError>) {
        let Some(live) = self.requests.get(&id).map(|s| s.live.clone()) else {
            return;
        };
        for attempt in live {
            self.end_attempt(now, attempt, AttemptOutcome::Cancelled, true);
        }
        let state = self.requests.remove(&id).expect("present above");
        for t in &state.timers {
            self.timers.remove(t);
        }
        let records = state.records;
        match &mut outcome {
            Ok(routed) => routed.attempts = records,
            Err(e) => *e.attempts_mut() = records,
        }
        self.actions.push_back(Action::Complete { id, outcome });
    }

    fn arm_request_timer(&mut self, id: RequestId, at: Time, timer: Timer) {
        if let Some(state) = self.requests.get_mut(&id) {
            state.timers.push((at, timer));
            self.timers.insert((at, timer));
        }
    }

    /// Drops a fired timer from its owner's list so completion does not try to remove it again.
    fn forget_timer(&mut self, at: Time, timer: Timer) {
        let list = match timer {
            Timer::Deadline(id) | Timer::Hedge(id) | Timer::CooldownWake(id) => {
                self.requests.get_mut(&id).map(|s| &mut s.timers)
            }
            Timer::AttemptTimeout(a) | Timer::FirstToken(a) => {
                self.attempts.get_mut(&a).map(|s| &mut s.timers)
            }
        };
        if let Some(list) = list {
            list.retain(|t| *t != (at, timer));
        }
    }

    fn fire(&mut self, now: Time, timer: Timer) {
        match timer {
            Timer::Deadline(id) => {
                let deadline = self.deadline.unwrap_or_default();
                self.complete(
                    now,
                    id,
                    Err(RouteError::DeadlineExceeded {
                        deadline,
                        attempts: Vec::new(),
                    }),
                );
            }
            Timer::Hedge(id) => {
                let Some(state) = self.requests.get_mut(&id) else {
                    return;
                };
                state.allowed = (state.allowed + 1).min(self.hedge_k);
                if state.allowed < self.hedge_k
                    && let Some(delay) = self.hedge_delay
                {
                    self.arm_request_timer(id, now + delay, Timer::Hedge(id));
                }
                self.fill(now, id);
            }
            Timer::CooldownWake(id) => self.fill(now, id),
            Timer::AttemptTimeout(attempt) => self.timed_out(now, attempt),
            Timer::FirstToken(attempt) => {
                if !self.is_committed(attempt) {
                    self.timed_out(now, attempt);
                }
            }
        }
    }

    /// The per-attempt timer fired: soft, unless the attempt is a committed stream (then the
    /// stream is broken) or a hard failure reading its body (then it ends with what it has).
    fn timed_out(&mut self, now: Time, attempt: AttemptId) {
        let Some(a) = self.attempts.get(&attempt) else {
            return;
        };
        match &a.phase {
            Phase::HardBody { .. } => self.finish_hard_failure(now, attempt),
            Phase::Stream(_) if self.is_committed(attempt) => self.interrupt_stream(
                now,
                attempt,
                "per-attempt timeout expired mid-stream".to_owned(),
            ),
            _ => self.soft_fail(now, attempt, AttemptOutcome::TimedOut, true),
        }
    }

    fn is_committed(&self, attempt: AttemptId) -> bool {
        self.attempts.get(&attempt).is_some_and(|a| {
            self.requests
                .get(&a.request)
                .is_some_and(|s| s.committed == Some(attempt))
        })
    }

    // ---- responses ---------------------------------------------------------------------------

    fn on_head(&mut self, now: Time, attempt: AttemptId, status: u16, headers: &http::HeaderMap) {
        let Some(a) = self.attempts.get(&attempt) else {
            return;
        };
        if !matches!(a.phase, Phase::Head) {
            return;
        }
        let (request_id, provider) = (a.request, a.provider);
        match status {
            200..=299 => {
                let Some(state) = self.requests.get(&request_id) else {
                    return;
                };
                // Only a translated answer needs `created`; a passthrough carries its own.
                let created = match self.providers[provider.0].kind {
                    ProviderKind::Anthropic => self.response_unix(now, headers).unwrap_or(0),
                    ProviderKind::Openai | ProviderKind::Mock => 0,
                };
                let phase = if state.request.stream() {
                    let decoder =
                        self.providers[provider.0].stream_decoder(&state.request, created);
                    Phase::Stream(Box::new(StreamState {
                        status,
                        parser: SseParser::new(),
                        decoder,
                        held: Vec::new(),
                    }))
                } else {
                    Phase::Body { status, created }
                };
                if let Some(a) = self.attempts.get_mut(&attempt) {
                    a.phase = phase;
                }
            }
            408 | 429 | 500..=599 | 100..=199 | 300..=399 => {
                if status == 429 || status == 503 {
                    let date = self.response_unix(now, headers);
                    self.cool_down(now, provider, headers, date);
                }
                self.soft_fail(now, attempt, AttemptOutcome::SoftStatus { status }, true);
            }
            _ => {
                // Hard: nothing more is sent for this payload; other legs stop now, and the
                // request completes once the error body has been read.
                let live: SmallVec<[AttemptId; 4]> = match self.requests.get_mut(&request_id) {
                    Some(state) => {
                        state.hard_failing = true;
                        state
                            .live
                            .iter()
                            .copied()
                            .filter(|x| *x != attempt)
                            .collect()
                    }
                    None => return,
                };
                for other in live {
                    self.end_attempt(now, other, AttemptOutcome::Cancelled, true);
                }
                if let Some(a) = self.attempts.get_mut(&attempt) {
                    a.phase = Phase::HardBody { status };
                }
            }
        }
    }

    /// Applies a `Retry-After` to a provider: later requests skip it until then.
    fn cool_down(
        &mut self,
        now: Time,
        provider: ProviderId,
        headers: &http::HeaderMap,
        date: Option<u64>,
    ) {
        let wait = match parse_retry_after(headers, date, self.retry_after_cap) {
            RetryAfter::Wait(d) => d,
            RetryAfter::TooLong(_) => self.retry_after_cap,
            RetryAfter::Unusable => return,
        };
        let until = now + wait;
        let slot = &mut self.cooldown_until[provider.0];
        if slot.is_none_or(|current| current < until) {
            *slot = Some(until);
        }
    }

    fn on_body(&mut self, now: Time, attempt: AttemptId, chunk: Bytes) {
        let limit = self.max_response_bytes;
        let Some(a) = self.attempts.get_mut(&attempt) else {
            return;
        };
        a.received = a.received.saturating_add(chunk.len());
        let over = a.received > limit;
        match &mut a.phase {
            Phase::Head => {}
            Phase::Body { .. } if over => {
                self.soft_fail(now, attempt, AttemptOutcome::BodyTooLarge { limit }, true);
            }
            Phase::Body { .. } => a.body.push(chunk),
            Phase::HardBody { .. } => {
                let room = limit.saturating_sub(a.body.len());
                a.body.push(chunk.slice(..chunk.len().min(room)));
                if over {
                    self.finish_hard_failure(now, attempt);
                }
            }
            Phase::Stream(_) if over => {
                self.stream_failed(now, attempt, AttemptOutcome::BodyTooLarge { limit }, true);
            }
            Phase::Stream(stream) => {
                let mut events = std::mem::take(&mut self.scratch_events);
                stream.parser.push(&chunk, &mut events);
                self.on_stream_events(now, attempt, &mut events, false);
                self.scratch_events = events;
            }
        }
    }

    fn on_end(&mut self, now: Time, attempt: AttemptId) {
        let Some(a) = self.attempts.get_mut(&attempt) else {
            return;
        };
        match &mut a.phase {
            Phase::Head => {
                // An end with no head is a driver bug or a cut connection; treat as a reset.
                self.on_transport_error(now, attempt, TransportErrorKind::Reset);
            }
            Phase::Body { status, created } => {
                let (status, created) = (*status, *created);
                let body = a.body.take();
                let provider = &self.providers[a.provider.0];
                match provider.decode_response(body, created) {
                    Ok(body) => {
                        let request = a.request;
                        let (provider_id, provider_name) = (a.provider, provider.name.clone());
                        self.end_attempt(now, attempt, AttemptOutcome::Success { status }, false);
                        let routed = Routed {
                            provider: provider_id,
                            provider_name,
                            body,
                            attempts: Vec::new(),
                        };
                        self.complete(now, request, Ok(routed));
                    }
                    Err(e) => {
                        let outcome = AttemptOutcome::InvalidBody {
                            status,
                            reason: e.0,
                        };
                        self.soft_fail(now, attempt, outcome, false);
                    }
                }
            }
            Phase::HardBody { .. } => self.finish_hard_failure(now, attempt),
            Phase::Stream(stream) => {
                let mut events = std::mem::take(&mut self.scratch_events);
                stream.parser.finish(&mut events);
                self.on_stream_events(now, attempt, &mut events, true);
                self.scratch_events = events;
            }
        }
    }

    fn on_transport_error(&mut self, now: Time, attempt: AttemptId, kind: TransportErrorKind) {
        let Some(a) = self.attempts.get(&attempt) else {
            return;
        };
        match a.phase {
            Phase::HardBody { .. } => self.finish_hard_failure(now, attempt),
            Phase::Stream(_) => {
                self.stream_failed(now, attempt, AttemptOutcome::Transport(kind), false)
            }
            Phase::Head | Phase::Body { .. } => {
                self.soft_fail(now, attempt, AttemptOutcome::Transport(kind), false)
            }
        }
    }

    fn finish_hard_failure(&mut self, now: Time, attempt: AttemptId) {
        let Some(a) = self.attempts.get_mut(&attempt) else {
            return;
        };
        let Phase::HardBody { status } = a.phase else {
            return;
        };
        let body = a.body.take();
        let (request, provider) = (a.request, self.providers[a.provider.0].name.clone());
        // The connection may still be open (limit or timer hit): tell the driver to drop it.
        self.end_attempt(now, attempt, AttemptOutcome::HardStatus { status }, true);
        self.complete(
            now,
            request,
            Err(RouteError::HardFailure {
                provider,
                status,
                body,
                attempts: Vec::new(),
            }),
        );
    }
}

mod events;
mod streams;
#[cfg(test)]
mod tests;
