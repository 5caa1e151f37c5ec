//! The machine's side of validity: compiling a request's expectation before anything is sent,
//! checking answers, skipping the providers the classifier excludes for a request's tenant and
//! model (and sending their recovery probes), recording outcomes, and callers' reports.

use super::*;
use crate::policy::Candidates;
use crate::validity::check::Invalid;
use crate::validity::window::Admission;

impl RouterMachine {
    /// A caller's report on the answer of a completed request (its own validation): recorded in
    /// the window of the provider that served it, at the time the answer came. An id the
    /// machine no longer remembers (never completed, failed, or older than the last
    /// `validity.feedback_ids` completions) is ignored and counted.
    pub fn feedback(&mut self, now: Time, id: RequestId, valid: bool) -> FeedbackResult {
        let now = self.advance(now);
        self.classifier.feedback(now, id, valid)
    }

    /// What the request's answer must satisfy, compiled once per distinct schema. A schema that
    /// does not compile fails the request before anything is sent.
    pub(super) fn expectation_of(
        &mut self,
        request: &ChatRequest,
    ) -> Result<Option<Arc<Expectation>>, RouteError> {
        if !request.wants_check() {
            return Ok(None);
        }
        let body = request.body();
        self.expectations
            .get(body.get("response_format"), body.get("tools"))
            .map_err(|e| RouteError::InvalidRequest {
                field: e.field,
                message: e.message,
                attempts: Vec::new(),
            })
    }

    /// Checks a decoded `chat.completion` of `request`: `None` when it asked for nothing.
    pub(super) fn check_answer(
        &self,
        request: RequestId,
        body: &[u8],
    ) -> Option<Result<(), Invalid>> {
        let expect = self.requests.get(&request)?.expect.as_ref()?;
        Some(expect.check_body(body))
    }

    /// A new stream's assembly, when its request's answer is validated.
    pub(super) fn assembly_for(&self, request: RequestId) -> Option<Box<Assembly>> {
        self.requests
            .get(&request)?
            .expect
            .as_ref()
            .map(|_| Box::default())
    }

    /// Checks a finished stream's assembled answer: `None` when nothing is checked.
    pub(super) fn check_stream(
        &self,
        request: RequestId,
        assembly: Option<&Assembly>,
    ) -> Option<bool> {
        let expect = self.requests.get(&request)?.expect.as_ref()?;
        Some(assembly.is_some_and(|a| a.check(expect).is_ok()))
    }

    /// Whether a failed check fails the attempt over (else the answer is returned, marked).
    pub(super) fn fails_over_invalid(&self) -> bool {
        self.on_invalid == OnInvalid::Failover
    }

    /// An invalid answer under `on_invalid: "failover"`: counted against its key, then the next
    /// provider is tried.
    pub(super) fn fail_invalid(
        &mut self,
        now: Time,
        attempt: AttemptId,
        status: u16,
        invalid: Invalid,
    ) {
        if let Some(a) = self.attempts.get(&attempt)
            && let Some(state) = self.requests.get(&a.request)
        {
            let probe = state.validity_probe == Some(a.provider);
            self.classifier.record(
                now,
                now,
                state.request.class_key(),
                a.provider,
                false,
                probe,
            );
        }
        let outcome = AttemptOutcome::InvalidOutput {
            status,
            path: invalid.path,
            message: invalid.message,
        };
        self.soft_fail(now, attempt, outcome, false);
    }

    /// A request was served: its answer's validity is recorded, and it is remembered for a
    /// report about it.
    pub(super) fn served(&mut self, now: Time, state: &RequestState, routed: &Routed) {
        let key = state.request.class_key();
        let probe = state.validity_probe == Some(routed.provider);
        if let Some(valid) = routed.valid {
            self.classifier
                .record(now, now, key, routed.provider, valid, probe);
        }
        self.classifier
            .remember(routed.id, key, routed.provider, now, routed.valid, probe);
    }

    /// Drops the candidates the classifier excludes for the request's tenant and model. A
    /// provider whose recovery probe is due takes the request alone (returns `true`: it is the
    /// probe). When every candidate is excluded, the one with the best pass rate stays.
    pub(super) fn skip_invalid(
        &self,
        now: Time,
        state: &RequestState,
        candidates: &mut Candidates,
        probes: &mut SmallVec<[bool; 8]>,
    ) -> bool {
        if !self.classifier.any_out() {
            return false;
        }
        let key = state.request.class_key();
        let mut best: Option<(f64, usize)> = None;
        let mut kept = 0;
        for i in 0..candidates.len() {
            match self.classifier.admission(now, key, candidates[i]) {
                Admission::Yes => {
                    candidates[kept] = candidates[i];
                    probes[kept] = probes[i];
                    kept += 1;
                }
                Admission::Probe => {
                    let (p, breaker_probe) = (candidates[i], probes[i]);
                    candidates.clear();
                    probes.clear();
                    candidates.push(p);
                    probes.push(breaker_probe);
                    return true;
                }
                Admission::Excluded { pass_rate } => {
                    if best.is_none_or(|(rate, _)| pass_rate > rate) {
                        best = Some((pass_rate, i));
                    }
                }
            }
        }
        if kept == 0
            && let Some((_, i)) = best
        {
            candidates.swap(0, i);
            probes.swap(0, i);
            kept = 1;
        }
        candidates.truncate(kept);
        probes.truncate(kept);
        false
    }
}
