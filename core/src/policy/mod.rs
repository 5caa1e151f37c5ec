//! Which provider next: the one question the machine asks a policy.
//!
//! The machine works out who is *eligible* for a request (not yet tried for it, not cooling down
//! after a `Retry-After`, admitted by its budget and its breaker) and hands the policy that list
//! in config order; the policy picks one. Everything else (how many legs, when to hedge, what a
//! failure means) stays in the machine, so a policy is only an order over providers, and one
//! file says each order.

mod fastest;
mod weighted;

use crate::config::PolicyKind;
use crate::ids::ProviderId;
use crate::provider_state::ProviderState;
use crate::rng::Rng;
use crate::time::Time;

pub(crate) use fastest::Fastest;
pub(crate) use weighted::Weighted;

/// The providers a policy may choose from, in config order (inline up to 8 providers: choosing
/// allocates nothing on the hot path).
pub(crate) type Candidates = smallvec::SmallVec<[ProviderId; 8]>;

/// The order in which a request's providers are tried.
#[derive(Debug)]
pub(crate) enum Policy {
    /// Config order: `sequential` and `hedged`.
    InOrder,
    /// Smooth weighted round-robin by `weight`: `weighted`.
    Weighted(Weighted),
    /// Power of two choices over load-weighted latency: `fastest`.
    Fastest(Fastest),
}

impl Policy {
    /// The policy a config names; `weights` are the providers' in config order.
    pub(crate) fn new(kind: PolicyKind, weights: &[u32], rng: Rng) -> Self {
        match kind {
            PolicyKind::Sequential | PolicyKind::Hedged => Policy::InOrder,
            PolicyKind::Weighted => Policy::Weighted(Weighted::new(weights)),
            PolicyKind::Fastest => Policy::Fastest(Fastest::new(rng)),
        }
    }

    /// Picks one of `candidates` (never empty), reading the providers' state.
    pub(crate) fn choose(
        &mut self,
        now: Time,
        candidates: &[ProviderId],
        providers: &[ProviderState],
    ) -> ProviderId {
        debug_assert!(!candidates.is_empty());
        match self {
            Policy::InOrder => candidates[0],
            Policy::Weighted(w) => w.choose(candidates),
            Policy::Fastest(f) => f.choose(now, candidates, providers),
        }
    }
}
