//! Streams: decoding a provider's SSE into OpenAI chunks, holding them back until the attempt
//! commits at its first content, and the two ways a stream fails (invisibly before the commit,
//! as a typed interruption after it).

use super::*;

/// What a chunk with token counts holds (compact JSON, as providers and the translation write it).
const USAGE: &[u8] = b"\"usage\":{";

impl RouterMachine {
    /// Decodes parsed events; `ended` when the body is over (a stream that ends without its
    /// terminator is broken).
    pub(super) fn on_stream_events(
        &mut self,
        now: Time,
        attempt: AttemptId,
        events: &mut Vec<SseEvent>,
        ended: bool,
    ) {
        let limit = self.max_response_bytes;
        let mut items = std::mem::take(&mut self.scratch_items);
        let mut failure = None;
        if let Some(a) = self.attempts.get_mut(&attempt)
            && let Phase::Stream(stream) = &mut a.phase
        {
            for event in events.drain(..) {
                if event_len(&event) > limit {
                    failure = Some(AttemptOutcome::BodyTooLarge { limit });
                    break;
                }
                if let Err(e) = stream.decoder.on_event(&event, &mut items) {
                    failure = Some(AttemptOutcome::StreamFailedBeforeCommit { reason: e.0 });
                    break;
                }
            }
        }
        events.clear();
        for item in items.drain(..) {
            if !self.attempts.contains_key(&attempt) {
                break;
            }
            match item {
                StreamItem::Chunk { json, content } => {
                    self.stream_chunk(now, attempt, json, content)
                }
                StreamItem::Done => self.stream_done(now, attempt),
                StreamItem::Error { message } => {
                    let reason = format!("provider sent an error event: {message}");
                    failure = Some(AttemptOutcome::StreamFailedBeforeCommit { reason });
                    break;
                }
            }
        }
        self.scratch_items = items;
        if !self.attempts.contains_key(&attempt) {
            return;
        }
        if let Some(outcome) = failure {
            self.stream_failed(now, attempt, outcome, true);
        } else if ended {
            let reason = "connection closed before the stream finished".to_owned();
            self.stream_failed(
                now,
                attempt,
                AttemptOutcome::StreamFailedBeforeCommit { reason },
                false,
            );
        }
    }

    fn stream_chunk(&mut self, now: Time, attempt: AttemptId, json: Bytes, content: bool) {
        self.correct_tokens(attempt, &json);
        let Some(a) = self.attempts.get_mut(&attempt) else {
            return;
        };
        let Phase::Stream(stream) = &mut a.phase else {
            return;
        };
        if let Some(assembly) = &mut stream.assembly {
            assembly.push(&json);
        }
        let request = a.request;
        if self.requests.get(&request).and_then(|s| s.committed) == Some(attempt) {
            self.actions.push_back(Action::Deliver {
                id: request,
                chunk: json,
            });
        } else if content {
            let held = std::mem::take(&mut stream.held);
            self.commit(now, attempt);
            for chunk in held {
                self.actions
                    .push_back(Action::Deliver { id: request, chunk });
            }
            self.actions.push_back(Action::Deliver {
                id: request,
                chunk: json,
            });
        } else {
            stream.held_bytes = stream.held_bytes.saturating_add(json.len());
            stream.held.push(json);
            if stream.held_bytes > self.max_response_bytes {
                let limit = self.max_response_bytes;
                self.stream_failed(now, attempt, AttemptOutcome::BodyTooLarge { limit }, true);
            }
        }
    }

    /// A stream's usage chunk (OpenAI's last one with `stream_options.include_usage`, and the
    /// Anthropic translation's) corrects the token budget's estimate as a non-stream answer's
    /// `usage` does. The attempt then holds the reported count, so a second usage chunk
    /// corrects by the difference only. Only providers with a `tpm` look, and only into chunks
    /// that name a usage object.
    fn correct_tokens(&mut self, attempt: AttemptId, chunk: &[u8]) {
        let Some(a) = self.attempts.get_mut(&attempt) else {
            return;
        };
        let state = &mut self.state[a.provider.0];
        if !state.counts_tokens || !chunk.windows(USAGE.len()).any(|w| w == USAGE) {
            return;
        }
        if let Some(used) = crate::codec::openai::usage_total_tokens(chunk) {
            state.budget.correct(a.tokens, used);
            a.tokens = used;
        }
    }

    /// This attempt is the one the caller will see: every other leg is cancelled.
    fn commit(&mut self, now: Time, attempt: AttemptId) {
        let Some(a) = self.attempts.get_mut(&attempt) else {
            return;
        };
        let request = a.request;
        // The first-token limit no longer applies.
        self.timers
            .forget(&mut a.timers, |t| matches!(t, Timer::FirstToken(_)));
        let Some(state) = self.requests.get_mut(&request) else {
            return;
        };
        state.committed = Some(attempt);
        let others: SmallVec<[AttemptId; 4]> = state
            .live
            .iter()
            .copied()
            .filter(|x| *x != attempt)
            .collect();
        for other in others {
            self.end_attempt(now, other, AttemptOutcome::Cancelled, true);
        }
    }

    fn stream_done(&mut self, now: Time, attempt: AttemptId) {
        if !self.is_committed(attempt) {
            // A stream with no content at all (an empty answer) commits at its end.
            let held = match self.attempts.get_mut(&attempt).map(|a| &mut a.phase) {
                Some(Phase::Stream(stream)) => std::mem::take(&mut stream.held),
                _ => return,
            };
            self.commit(now, attempt);
            let request = self.attempts[&attempt].request;
            for chunk in held {
                self.actions
                    .push_back(Action::Deliver { id: request, chunk });
            }
        }
        let Some(a) = self.attempts.get_mut(&attempt) else {
            return;
        };
        let Phase::Stream(stream) = &mut a.phase else {
            return;
        };
        let (request, status, provider) = (a.request, stream.status, a.provider);
        // Too late to fail over (it was delivered): checked, marked and counted.
        let assembly = stream.assembly.take();
        let valid = self.check_stream(request, assembly.as_deref());
        // The terminator may arrive before the connection's end: drop the connection.
        self.end_attempt(now, attempt, AttemptOutcome::Success { status }, true);
        let routed = Routed {
            id: request,
            valid,
            provider,
            provider_name: self.providers[provider.0].name.clone(),
            body: Bytes::new(),
            attempts: Vec::new(),
        };
        self.complete(now, request, Ok(routed));
    }

    /// A stream attempt failed: invisible failover before commit, a typed interruption after.
    pub(super) fn stream_failed(
        &mut self,
        now: Time,
        attempt: AttemptId,
        outcome: AttemptOutcome,
        cancel: bool,
    ) {
        if self.is_committed(attempt) {
            let reason = match &outcome {
                AttemptOutcome::StreamFailedBeforeCommit { reason } => reason.clone(),
                AttemptOutcome::Transport(kind) => kind.to_string(),
                AttemptOutcome::BodyTooLarge { limit } => {
                    format!("a stream event exceeded max_response_bytes ({limit} bytes)")
                }
                other => format!("{other:?}"),
            };
            self.interrupt_stream(now, attempt, reason);
        } else {
            self.soft_fail(now, attempt, outcome, cancel);
        }
    }

    pub(super) fn interrupt_stream(&mut self, now: Time, attempt: AttemptId, reason: String) {
        let Some(a) = self.attempts.get(&attempt) else {
            return;
        };
        let (request, provider) = (a.request, self.providers[a.provider.0].name.clone());
        let outcome = AttemptOutcome::StreamInterrupted {
            reason: reason.clone(),
        };
        self.end_attempt(now, attempt, outcome, true);
        self.complete(
            now,
            request,
            Err(RouteError::StreamInterrupted {
                provider,
                reason,
                attempts: Vec::new(),
            }),
        );
    }
}

/// What one event makes the machine hold: its data and its name.
fn event_len(event: &SseEvent) -> usize {
    event.data.len() + event.event.as_ref().map_or(0, String::len)
}
