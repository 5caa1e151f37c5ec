//! A request's life: starting it, choosing and starting attempts until the policy's allowance is
//! in flight, waiting out cooldowns and budgets, timers, and its one `Complete`.

use super::*;
use crate::policy::Candidates;
use crate::provider_state::Ineligible;

/// Who may take a request's next attempt now, and when someone else may.
struct Eligible {
    candidates: Candidates,
    /// Whether each candidate would be its provider's breaker probe.
    probes: SmallVec<[bool; 8]>,
    /// The earliest a cooling-down or out-of-budget untried provider can take it.
    wake: Option<Time>,
    /// The one candidate is the validity recovery probe of the request's tenant and model.
    validity_probe: bool,
}

impl RouterMachine {
    pub(super) fn start_request(
        &mut self,
        now: Time,
        id: RequestId,
        request: ChatRequest,
    ) -> Result<(), InputError> {
        if self.requests.contains_key(&id) {
            return Err(InputError::DuplicateRequest(id));
        }
        let allowed = match self.hedge_delay {
            HedgeDelay::Immediate => self.hedge_k,
            _ => 1,
        };
        let expect = match self.expectation_of(&request) {
            Ok(expect) => expect,
            Err(error) => {
                self.actions.push_back(Action::Complete {
                    id,
                    outcome: Err(error),
                });
                return Ok(());
            }
        };
        let tokens = if self.counts_tokens {
            request.estimated_tokens()
        } else {
            0
        };
        let mut state = RequestState {
            request,
            deadline_at: self.deadline.map(|d| now + d),
            tokens,
            tried: smallvec::smallvec![false; self.providers.len()],
            live: SmallVec::new(),
            sent: 0,
            records: Vec::with_capacity(self.max_attempts.min(4)),
            allowed,
            committed: None,
            hard_failing: false,
            timers: OwnTimers::new(),
            expect,
            validity_probe: None,
        };
        if let Some(at) = state.deadline_at {
            self.timers.arm(&mut state.timers, at, Timer::Deadline(id));
        }
        self.requests.insert(id, state);
        self.fill(now, id);
        if allowed < self.hedge_k {
            self.arm_hedge(now, id);
        }
        Ok(())
    }

    /// Arms the timer of the request's next hedge leg, if it is still in flight.
    fn arm_hedge(&mut self, now: Time, id: RequestId) {
        let Some(state) = self.requests.get_mut(&id) else {
            return;
        };
        let delay = match self.hedge_delay {
            HedgeDelay::Immediate => return,
            HedgeDelay::Fixed(delay) => delay,
            HedgeDelay::Learned { quantile, min, max } => state
                .live
                .first()
                .and_then(|a| self.attempts.get(a))
                .and_then(|a| self.state[a.provider.0].ttfb.quantile(quantile))
                .map_or(max, |d| d.clamp(min, max)),
        };
        self.timers
            .arm(&mut state.timers, now + delay, Timer::Hedge(id));
    }

    /// Who may take the request's next attempt: untried providers the cooldowns, budgets and
    /// breakers admit; when every one left is held back by an open breaker, the one whose breaker
    /// opened longest ago (trying something beats failing without trying). One merely cooling
    /// down or out of budget is not open: it comes back by itself, so the request waits for it
    /// rather than going to a provider its breaker has shut.
    fn eligible(&self, now: Time, state: &RequestState) -> Eligible {
        let mut e = Eligible {
            candidates: Candidates::new(),
            probes: SmallVec::new(),
            wake: None,
            validity_probe: false,
        };
        let mut longest_open: Option<(Time, ProviderId)> = None;
        for (i, provider) in self.state.iter().enumerate() {
            if state.tried[i] {
                continue;
            }
            match provider.admits(now, state.tokens) {
                Ok(probe) => {
                    e.candidates.push(ProviderId(i));
                    e.probes.push(probe);
                }
                Err(Ineligible::Until(at)) => e.wake = Some(e.wake.map_or(at, |w| w.min(at))),
                Err(Ineligible::Open) => {
                    let opened = provider.breaker.opened_at().unwrap_or(Time::ZERO);
                    if longest_open.is_none_or(|(t, _)| opened < t) {
                        longest_open = Some((opened, ProviderId(i)));
                    }
                }
            }
        }
        e.validity_probe = self.skip_invalid(now, state, &mut e.candidates, &mut e.probes);
        if e.candidates.is_empty()
            && e.wake.is_none()
            && let Some((_, p)) = longest_open
        {
            e.candidates.push(p);
            e.probes.push(false);
        }
        e
    }

    /// Starts attempts until the policy's allowance is in flight, or ends the request when
    /// nothing is in flight and nothing more can be tried.
    pub(super) fn fill(&mut self, now: Time, id: RequestId) {
        let mut wake = None;
        loop {
            let Some(state) = self.requests.get(&id) else {
                return;
            };
            if state.hard_failing || state.committed.is_some() || state.live.len() >= state.allowed
            {
                return;
            }
            if state.sent >= self.max_attempts {
                break;
            }
            // gRPC A6: while recent failures have drained the throttle, only first attempts go.
            if state.sent > 0 && self.throttle.as_ref().is_some_and(|t| !t.allows_retry()) {
                break;
            }
            let eligible = self.eligible(now, state);
            wake = eligible.wake;
            if eligible.candidates.is_empty() {
                break;
            }
            let provider = self.policy.choose(now, &eligible.candidates, &self.state);
            let probe = eligible
                .candidates
                .iter()
                .position(|&p| p == provider)
                .is_some_and(|i| eligible.probes[i]);
            if eligible.validity_probe {
                self.classifier
                    .probe_sent(now, state.request.class_key(), provider);
                if let Some(state) = self.requests.get_mut(&id) {
                    state.validity_probe = Some(provider);
                }
            }
            self.start_attempt(now, id, provider, probe);
        }
        let Some(state) = self.requests.get(&id) else {
            return;
        };
        if !state.live.is_empty() || state.hard_failing || state.committed.is_some() {
            return;
        }
        // Nothing in flight and nothing startable: wait for a provider to come back, or fail.
        let wake = wake.filter(|_| state.sent < self.max_attempts);
        match wake {
            Some(until) if state.deadline_at.is_none_or(|d| until <= d) => {
                if !state
                    .timers
                    .iter()
                    .any(|(_, t)| matches!(t, Timer::Wake(_)))
                {
                    self.arm_request_timer(id, until, Timer::Wake(id));
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

    fn start_attempt(&mut self, now: Time, id: RequestId, provider: ProviderId, probe: bool) {
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
        state.sent += 1;
        let tokens = state.tokens;
        let mut timers = OwnTimers::new();
        let idle = p.idle_timeout.unwrap_or(self.idle_timeout);
        self.timers
            .arm(&mut timers, now + idle, Timer::Idle(attempt));
        if let Some(timeout) = p.timeout {
            self.timers
                .arm(&mut timers, now + timeout, Timer::AttemptTimeout(attempt));
        }
        if state.request.stream()
            && let Some(limit) = self.first_token_limit
        {
            self.timers
                .arm(&mut timers, now + limit, Timer::FirstToken(attempt));
        }
        let record = state.records.len() - 1;
        self.state[provider.0].sent(now, tokens, probe);
        self.attempts.insert(
            attempt,
            AttemptState {
                request: id,
                provider,
                sent_at: now,
                record,
                tokens,
                probe,
                first_byte: None,
                phase: Phase::Head,
                body: BodyBuf::default(),
                received: 0,
                last_byte: now,
                idle,
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
    /// `cancel`), records it in its provider's state, then lets the request go on.
    pub(super) fn end_attempt(
        &mut self,
        now: Time,
        attempt: AttemptId,
        outcome: AttemptOutcome,
        cancel: bool,
    ) {
        let Some(a) = self.attempts.remove(&attempt) else {
            return;
        };
        self.timers.forget_all(&a.timers);
        if cancel {
            self.actions.push_back(Action::Cancel { attempt });
        }
        let elapsed = now - a.sent_at;
        self.state[a.provider.0].ended(now, &outcome, a.first_byte, elapsed, a.probe);
        if let Some(throttle) = &mut self.throttle {
            match &outcome {
                AttemptOutcome::Success { .. } => throttle.record_success(),
                o if o.is_soft_failure() => throttle.record_failure(),
                _ => {}
            }
        }
        let Some(state) = self.requests.get_mut(&a.request) else {
            return;
        };
        state.live.retain(|x| *x != attempt);
        let record = &mut state.records[a.record];
        record.latency = elapsed;
        record.outcome = outcome;
    }

    /// A soft failure: close the attempt, then try the next provider.
    pub(super) fn soft_fail(
        &mut self,
        now: Time,
        attempt: AttemptId,
        outcome: AttemptOutcome,
        cancel: bool,
    ) {
        let Some(request) = self.attempts.get(&attempt).map(|a| a.request) else {
            return;
        };
        self.end_attempt(now, attempt, outcome, cancel);
        self.fill(now, request);
    }

    /// Ends the request: cancels every attempt still open, fills in the attempt history, and
    /// emits its one `Complete`.
    pub(super) fn complete(
        &mut self,
        now: Time,
        id: RequestId,
        mut outcome: Result<Routed, RouteError>,
    ) {
        let Some(live) = self.requests.get(&id).map(|s| s.live.clone()) else {
            return;
        };
        for attempt in live {
            self.end_attempt(now, attempt, AttemptOutcome::Cancelled, true);
        }
        let state = self.requests.remove(&id).expect("present above");
        self.timers.forget_all(&state.timers);
        if let Ok(routed) = &mut outcome {
            routed.id = id;
            self.served(now, &state, routed);
        }
        let records = state.records;
        match &mut outcome {
            Ok(routed) => routed.attempts = records,
            Err(e) => *e.attempts_mut() = records,
        }
        self.scrubber.scrub_outcome(&mut outcome);
        self.actions.push_back(Action::Complete { id, outcome });
    }

    fn arm_request_timer(&mut self, id: RequestId, at: Time, timer: Timer) {
        if let Some(state) = self.requests.get_mut(&id) {
            self.timers.arm(&mut state.timers, at, timer);
        }
    }

    pub(super) fn fire(&mut self, now: Time, timer: Timer) {
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
                let more = state.allowed < self.hedge_k;
                self.fill(now, id);
                if more {
                    self.arm_hedge(now, id);
                }
            }
            Timer::Wake(id) => self.fill(now, id),
            Timer::AttemptTimeout(attempt) => self.timed_out(now, attempt, || {
                "per-attempt timeout expired mid-stream".to_owned()
            }),
            Timer::Idle(attempt) => self.idle_timer(now, attempt),
            Timer::FirstToken(attempt) => {
                if !self.is_committed(attempt) {
                    self.timed_out(now, attempt, String::new);
                }
            }
        }
    }

    /// A per-attempt limit ran out: soft, unless the attempt is a committed stream (then the
    /// stream is broken, for the reason `mid_stream` gives) or a hard failure reading its body
    /// (then it ends with what it has).
    pub(super) fn timed_out(
        &mut self,
        now: Time,
        attempt: AttemptId,
        mid_stream: impl FnOnce() -> String,
    ) {
        let Some(a) = self.attempts.get(&attempt) else {
            return;
        };
        match &a.phase {
            Phase::HardBody { .. } => self.finish_hard_failure(now, attempt),
            Phase::Stream(_) if self.is_committed(attempt) => {
                self.interrupt_stream(now, attempt, mid_stream())
            }
            _ => self.soft_fail(now, attempt, AttemptOutcome::TimedOut, true),
        }
    }

    pub(super) fn is_committed(&self, attempt: AttemptId) -> bool {
        self.attempts.get(&attempt).is_some_and(|a| {
            self.requests
                .get(&a.request)
                .is_some_and(|s| s.committed == Some(attempt))
        })
    }
}
