//! `fastest`: power of two choices over each provider's load-weighted latency.
//!
//! As Finagle's and tower's `PeakEwma` balancers do: a provider's cost is its peak-EWMA latency
//! (which jumps up at once on a slow answer and decays back with a half-life) times its attempts
//! in flight plus one. Two distinct candidates are drawn at random and the cheaper one wins:
//! traffic leaves a provider that browns out within a few answers, yet a slightly slower provider
//! still gets some (the herd does not stampede onto one "best"). A provider with no latency seen
//! yet is tried first, so every provider gets measured. A failover asks again without the tried.

use crate::ids::ProviderId;
use crate::provider_state::ProviderState;
use crate::rng::Rng;
use crate::time::Time;

/// The random draws of the two choices (seeded from the machine's seed: deterministic).
#[derive(Debug)]
pub(crate) struct Fastest {
    rng: Rng,
}

impl Fastest {
    pub(crate) fn new(rng: Rng) -> Self {
        Fastest { rng }
    }

    pub(crate) fn choose(
        &mut self,
        now: Time,
        candidates: &[ProviderId],
        providers: &[ProviderState],
    ) -> ProviderId {
        if let Some(&unseen) = candidates
            .iter()
            .find(|p| providers[p.0].load_cost(now).is_none())
        {
            return unseen;
        }
        if candidates.len() == 1 {
            return candidates[0];
        }
        let n = candidates.len() as u64;
        let first = self.rng.below(n) as usize;
        // A second draw among the others: shift past the first so the two always differ.
        let second = (first + 1 + self.rng.below(n - 1) as usize) % candidates.len();
        let (a, b) = (candidates[first], candidates[second]);
        let cost = |p: ProviderId| providers[p.0].load_cost(now).unwrap_or(0.0);
        if cost(b) < cost(a) { b } else { a }
    }
}
