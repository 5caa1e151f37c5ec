//! The rules of DESIGN.md as an observer: fed every input a driver gives the machine and every
//! action the machine emits, it says which rule broke, if any. The simulator, the property tests
//! and the fuzz target all check the machine through this one checker.
//!
//! Given the config ([`RuleChecker::watching`]) and the machine's stats before every step
//! ([`RuleChecker::before_step`]), it also checks the learning policies' rules: budgets
//! ([`budget`]), breakers ([`breaker`]) and weighted shares ([`weighted`]).

pub mod breaker;
pub mod budget;
pub mod weighted;

use crate::spec::OpenAiSpec;
use breaker::{BreakerWatch, SendKind};
use budget::ProviderBudget;
use f3dx_router_core::{
    Action, AttemptId, Input, PolicyKind, ProviderStats, RequestId, RouterConfig, RouterMachine,
    Time,
};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use weighted::WeightedShares;

/// What the checker knows of one request.
#[derive(Debug, Default)]
struct Watch {
    arrived: Time,
    completed: bool,
    stream: bool,
    /// Attempts sent and neither answered to the end nor cancelled.
    open: HashSet<AttemptId>,
    /// One of its attempts got a hard 4xx head: nothing more may be sent.
    hard_failed: bool,
    /// The `id` of the first delivered chunk: every later chunk must come from the same attempt.
    delivered_from: Option<String>,
    /// Its token estimate (prompt characters / 4 plus `max_tokens`), what a budget is charged;
    /// for a stream, what its usage chunks have corrected it to so far.
    tokens: u64,
    /// Providers it was sent to.
    tried: Vec<usize>,
}

/// A broken rule, with enough context to debug it.
pub type Violation = String;

/// Checks rules 1-5 of DESIGN.md (rule 6, determinism, is checked by comparing traces).
#[derive(Debug, Default)]
pub struct RuleChecker {
    watches: HashMap<RequestId, Watch>,
    owner: HashMap<AttemptId, RequestId>,
    /// Attempts whose head was fed; a second head for one is noise the machine ignores.
    headed: HashSet<AttemptId>,
    deadline: Option<Duration>,
    validate_spec: bool,
    /// Running totals, so checking after every step stays O(1) over a long simulation.
    open_attempts: usize,
    live_requests: usize,
    /// The provider of every attempt sent.
    provider_of: HashMap<AttemptId, usize>,
    /// Per provider, once [`RuleChecker::watching`] gave the config.
    budgets: Vec<ProviderBudget>,
    breakers: Vec<BreakerWatch>,
    weighted: Option<WeightedShares>,
}

fn is_hard(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

impl RuleChecker {
    /// A checker for a machine whose requests have `deadline`. With `validate_spec`, every
    /// delivered chunk and response body is also checked against the OpenAI spec.
    pub fn new(deadline: Option<Duration>, validate_spec: bool) -> Self {
        RuleChecker {
            deadline,
            validate_spec,
            ..RuleChecker::default()
        }
    }

    /// Also checks the rules of `config`'s learning policies: its providers' budgets, their
    /// breakers (fed by [`RuleChecker::before_step`]) and, under `weighted`, the shares.
    pub fn watching(mut self, config: &RouterConfig) -> Self {
        self.budgets = config.providers.iter().map(ProviderBudget::of).collect();
        self.breakers = vec![BreakerWatch::default(); config.providers.len()];
        let budgeted = config
            .providers
            .iter()
            .any(|p| p.rpm.is_some() || p.tpm.is_some());
        self.weighted = (config.policy == PolicyKind::Weighted).then(|| {
            WeightedShares::new(
                config
                    .providers
                    .iter()
                    .map(|p| u64::from(p.weight))
                    .collect(),
                !budgeted,
            )
        });
        self
    }

    /// Call before every `handle_*` with the machine's stats at that `now`.
    pub fn before_step(&mut self, stats: &[ProviderStats]) {
        for (watch, stats) in self.breakers.iter_mut().zip(stats) {
            watch.snapshot(stats);
        }
    }

    /// Whether the weighted-shares rule is still judging (nothing has disturbed eligibility).
    pub fn judging_weighted_shares(&self) -> bool {
        self.weighted.as_ref().is_some_and(WeightedShares::judging)
    }

    fn disturb_weighted(&mut self) {
        if let Some(w) = &mut self.weighted {
            w.disturb();
        }
    }

    /// An attempt was answered (`ended` false) or closed: its provider's breaker may have moved.
    fn touched(&mut self, attempt: AttemptId, ended: bool) {
        if let Some(watch) = self
            .provider_of
            .get(&attempt)
            .and_then(|&p| self.breakers.get_mut(p))
        {
            watch.touched(attempt, ended);
        }
    }

    /// The budget and breaker rules for a send of request `id` to `provider`.
    fn check_send(
        &mut self,
        now: Time,
        id: RequestId,
        attempt: AttemptId,
        provider: usize,
    ) -> Result<(), Violation> {
        let w = &self.watches[&id];
        if let Some(budget) = self.budgets.get_mut(provider) {
            budget
                .send(now, w.tokens)
                .map_err(|e| format!("budget of provider {provider}: {e}"))?;
        }
        let Some(watch) = self.breakers.get_mut(provider) else {
            return Ok(());
        };
        if watch.sent(attempt) == SendKind::IntoOpen {
            // The last resort: only when every provider the request has left is open.
            if let Some(q) = (0..self.breakers.len())
                .find(|&q| q != provider && !w.tried.contains(&q) && self.breakers[q].admits())
            {
                return Err(format!(
                    "breaker: {id} sent to provider {provider}, whose breaker is open, while \
                     provider {q} (untried) admitted sends"
                ));
            }
        }
        Ok(())
    }

    /// Call before feeding `input` to the machine at `now`.
    pub fn before_input(&mut self, now: Time, input: &Input) {
        match input {
            Input::Request { id, request } => {
                self.live_requests += 1;
                self.watches.insert(
                    *id,
                    Watch {
                        arrived: now,
                        stream: request.stream(),
                        tokens: request.estimated_tokens(),
                        ..Watch::default()
                    },
                );
            }
            Input::TransportError { .. } => self.disturb_weighted(),
            Input::ResponseHead {
                attempt, status, ..
            } => {
                if !(200..300).contains(status) {
                    self.disturb_weighted();
                }
                self.touched(*attempt, false);
                let first_head = self.headed.insert(*attempt);
                if first_head
                    && is_hard(*status)
                    && let Some(w) = self.watch_of(*attempt)
                    && w.open.contains(attempt)
                {
                    w.hard_failed = true;
                }
            }
            _ => {}
        }
    }

    /// Call after feeding `input`: an end or a transport error closes the attempt.
    pub fn after_input(&mut self, input: &Input) {
        if let Input::ResponseEnd { attempt } | Input::TransportError { attempt, .. } = input {
            self.touched(*attempt, true);
            if let Some(w) = self.watch_of(*attempt)
                && w.open.remove(attempt)
            {
                self.open_attempts -= 1;
            }
        }
    }

    fn watch_of(&mut self, attempt: AttemptId) -> Option<&mut Watch> {
        let owner = self.owner.get(&attempt)?;
        self.watches.get_mut(owner)
    }

    /// Rule 1: a request must be known and not yet complete for anything to happen to it.
    fn live_watch(&mut self, id: RequestId, what: &str) -> Result<&mut Watch, Violation> {
        let w = self
            .watches
            .get_mut(&id)
            .ok_or_else(|| format!("{what} for unknown {id}"))?;
        if w.completed {
            return Err(format!("rule 1: {what} for {id} after its Complete"));
        }
        Ok(w)
    }

    /// Call for every action the machine emits, in order.
    pub fn on_action(&mut self, now: Time, action: &Action) -> Result<(), Violation> {
        let deadline = self.deadline;
        let validate_spec = self.validate_spec;
        match action {
            Action::Send {
                id,
                attempt,
                provider,
                ..
            } => {
                let w = self.live_watch(*id, "Send")?;
                let first = w.tried.is_empty();
                w.tried.push(provider.0);
                self.provider_of.insert(*attempt, provider.0);
                self.check_send(now, *id, *attempt, provider.0)?;
                if let Some(shares) = &mut self.weighted {
                    if !first {
                        shares.disturb();
                    }
                    shares.sent(provider.0)?;
                }
                let w = self.watches.get_mut(id).expect("checked live above");
                if w.hard_failed {
                    return Err(format!("rule 3: {id} re-sent after a hard failure"));
                }
                if let Some(deadline) = deadline
                    && now >= w.arrived + deadline
                {
                    return Err(format!(
                        "rule 4: {id} sent an attempt at or past its deadline"
                    ));
                }
                w.open.insert(*attempt);
                self.open_attempts += 1;
                self.owner.insert(*attempt, *id);
            }
            Action::Cancel { attempt } => {
                self.touched(*attempt, true);
                self.disturb_weighted();
                let w = self
                    .watch_of(*attempt)
                    .ok_or_else(|| format!("Cancel of unknown {attempt}"))?;
                if w.open.remove(attempt) {
                    self.open_attempts -= 1;
                }
            }
            Action::Deliver { id, chunk } => {
                let w = self.live_watch(*id, "Deliver")?;
                if !w.stream {
                    return Err(format!("{id} got a chunk but did not ask for a stream"));
                }
                let chunk: serde_json::Value = serde_json::from_slice(chunk)
                    .map_err(|e| format!("delivered chunk is not JSON: {e}"))?;
                let from = chunk["id"].as_str().unwrap_or_default().to_owned();
                match &w.delivered_from {
                    None => w.delivered_from = Some(from),
                    Some(first) if *first != from => {
                        return Err(format!(
                            "rule 5: {id} delivered chunks from two attempts ({first}, {from})"
                        ));
                    }
                    Some(_) => {}
                }
                if validate_spec
                    && let Err(errors) = OpenAiSpec::get().validate_stream_chunk(&chunk)
                {
                    return Err(format!("chunk breaks the OpenAI spec: {errors:?}\n{chunk}"));
                }
                self.stream_corrected(*id, &chunk);
            }
            Action::Complete { id, outcome } => {
                self.live_watch(*id, "Complete")?;
                if outcome.is_err() {
                    self.disturb_weighted();
                }
                self.corrected(*id, outcome);
                self.live_requests -= 1;
                let w = self.watches.get_mut(id).expect("checked live above");
                w.completed = true;
                if !w.open.is_empty() {
                    return Err(format!(
                        "rule 2: {id} completed with attempts open: {:?}",
                        w.open
                    ));
                }
                if let Some(deadline) = deadline
                    && now > w.arrived + deadline
                {
                    return Err(format!("rule 4: {id} outlived its deadline"));
                }
                if let Ok(routed) = outcome
                    && validate_spec
                    && !routed.body.is_empty()
                {
                    let body: serde_json::Value = serde_json::from_slice(&routed.body)
                        .map_err(|e| format!("response is not JSON: {e}"))?;
                    if let Err(errors) = OpenAiSpec::get().validate_response(&body) {
                        return Err(format!(
                            "response breaks the OpenAI spec: {errors:?}\n{body}"
                        ));
                    }
                }
            }
            other => return Err(format!("unexpected action {other:?}")),
        }
        Ok(())
    }

    /// A non-streamed success's `usage` corrects its provider's token budget (downwards: a refund).
    fn corrected(
        &mut self,
        id: RequestId,
        outcome: &Result<f3dx_router_core::Routed, f3dx_router_core::RouteError>,
    ) {
        let (Ok(routed), Some(w)) = (outcome, self.watches.get(&id)) else {
            return;
        };
        if w.stream {
            return;
        }
        let Some(budget) = self.budgets.get_mut(routed.provider.0) else {
            return;
        };
        let used = serde_json::from_slice::<serde_json::Value>(&routed.body)
            .ok()
            .and_then(|body| usage_tokens(&body));
        if let Some(used) = used {
            budget.corrected(w.tokens, used);
        }
    }

    /// A delivered stream chunk with `usage` corrects its provider's token budget as the
    /// machine does (by the difference from the last correction). Usage chunks are content, so
    /// they are delivered from the committed attempt, by then the request's only open one.
    fn stream_corrected(&mut self, id: RequestId, chunk: &serde_json::Value) {
        let Some(used) = usage_tokens(chunk) else {
            return;
        };
        let Some(w) = self.watches.get_mut(&id) else {
            return;
        };
        let Some(provider) = w
            .open
            .iter()
            .next()
            .filter(|_| w.open.len() == 1)
            .and_then(|a| self.provider_of.get(a))
        else {
            return;
        };
        if let Some(budget) = self.budgets.get_mut(*provider) {
            budget.corrected(w.tokens, used);
            w.tokens = used;
        }
    }

    /// Call after draining: the machine and the checker must agree on what is open.
    pub fn after_drain(&self, machine: &RouterMachine) -> Result<(), Violation> {
        if self.open_attempts != machine.attempts_in_flight() {
            return Err(format!(
                "the checker sees {} open attempts, the machine {}",
                self.open_attempts,
                machine.attempts_in_flight()
            ));
        }
        if self.live_requests != machine.requests_in_flight() {
            return Err(format!(
                "the checker sees {} live requests, the machine {}",
                self.live_requests,
                machine.requests_in_flight()
            ));
        }
        Ok(())
    }

    /// Call when no more inputs will come and every timer has fired: every request completed.
    pub fn at_quiescence(&self, machine: &RouterMachine) -> Result<(), Violation> {
        if let Some((id, _)) = self.watches.iter().find(|(_, w)| !w.completed) {
            return Err(format!("rule 1: {id} never completed"));
        }
        if machine.poll_timeout().is_some() {
            return Err("timers left behind after every request completed".to_owned());
        }
        self.after_drain(machine)
    }
}

/// `usage` in tokens of an OpenAI-shape answer or chunk: `total_tokens`, else prompt plus
/// completion (as the machine reads it).
fn usage_tokens(json: &serde_json::Value) -> Option<u64> {
    let usage = json.get("usage")?;
    let count = |k: &str| usage.get(k).and_then(serde_json::Value::as_u64);
    count("total_tokens").or_else(|| {
        Some(count("prompt_tokens")?.saturating_add(count("completion_tokens").unwrap_or(0)))
    })
}
