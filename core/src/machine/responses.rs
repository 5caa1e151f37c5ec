//! Responses: a head decides success, soft or hard failure; bodies are collected or streamed;
//! what a provider says about its own limits (`Retry-After`, rate-limit headers) is learned.

use super::*;
use crate::retry_after::{RetryAfter, parse_retry_after};
use crate::state::rate_limit_headers::LearnedLimits;

impl RouterMachine {
    pub(super) fn on_head(
        &mut self,
        now: Time,
        attempt: AttemptId,
        status: u16,
        headers: &http::HeaderMap,
    ) {
        let Some(a) = self.attempts.get(&attempt) else {
            return;
        };
        if !matches!(a.phase, Phase::Head) {
            return;
        }
        let (request_id, provider) = (a.request, a.provider);
        let latency = now - a.sent_at;
        self.state[provider.0].first_byte(latency);
        if let Some(a) = self.attempts.get_mut(&attempt) {
            a.first_byte = Some(latency);
            a.last_byte = now;
        }
        self.learn_limits(now, provider, headers);
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
                        held_bytes: 0,
                        assembly: self.assembly_for(request_id),
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

    /// Lowers a provider's budget by what its rate-limit headers say is left (one pass over the
    /// headers). Only Anthropic's resets are absolute times, so only they need the response's
    /// date.
    fn learn_limits(&mut self, now: Time, provider: ProviderId, headers: &http::HeaderMap) {
        if headers.is_empty() {
            return;
        }
        let kind = self.providers[provider.0].kind;
        let unix = match kind {
            ProviderKind::Anthropic => self.response_unix(now, headers),
            ProviderKind::Openai | ProviderKind::Mock => None,
        };
        let limits = LearnedLimits::from_headers(headers, unix);
        self.state[provider.0].learn(now, &limits);
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
        let slot = &mut self.state[provider.0].cooldown_until;
        if slot.is_none_or(|current| current < until) {
            *slot = Some(until);
        }
    }

    pub(super) fn on_body(&mut self, now: Time, attempt: AttemptId, chunk: Bytes) {
        let limit = self.max_response_bytes;
        let Some(a) = self.attempts.get_mut(&attempt) else {
            return;
        };
        a.last_byte = now;
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
            // A stream is bounded by what it makes the machine hold (one line or event, the
            // chunks held before the commit), not by its length: it passes through.
            Phase::Stream(stream) => {
                let mut events = std::mem::take(&mut self.scratch_events);
                stream.parser.push(&chunk, &mut events);
                let pending = stream.parser.buffered_len();
                self.on_stream_events(now, attempt, &mut events, false);
                self.scratch_events = events;
                if pending > limit && self.attempts.contains_key(&attempt) {
                    let outcome = AttemptOutcome::BodyTooLarge { limit };
                    self.stream_failed(now, attempt, outcome, true);
                }
            }
        }
    }

    pub(super) fn on_end(&mut self, now: Time, attempt: AttemptId) {
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
                    Ok(crate::codec::Decoded { body, total_tokens }) => {
                        let request = a.request;
                        let valid = match self.check_answer(request, &body) {
                            Some(Err(invalid)) if self.fails_over_invalid() => {
                                self.fail_invalid(now, attempt, status, invalid);
                                return;
                            }
                            checked => checked.map(|c| c.is_ok()),
                        };
                        let Some(a) = self.attempts.get(&attempt) else {
                            return;
                        };
                        let provider = &self.providers[a.provider.0];
                        let state = &mut self.state[a.provider.0];
                        if state.counts_tokens
                            && let Some(used) = total_tokens
                        {
                            state.budget.correct(a.tokens, used);
                        }
                        let (provider_id, provider_name) = (a.provider, provider.name.clone());
                        self.end_attempt(now, attempt, AttemptOutcome::Success { status }, false);
                        let routed = Routed {
                            id: request,
                            valid,
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

    pub(super) fn on_transport_error(
        &mut self,
        now: Time,
        attempt: AttemptId,
        kind: TransportErrorKind,
    ) {
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

    pub(super) fn finish_hard_failure(&mut self, now: Time, attempt: AttemptId) {
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
