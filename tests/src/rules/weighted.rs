//! The weighted rule: under `policy: "weighted"`, while every provider has been eligible for every
//! choice (nothing has failed, been cancelled or failed over, and no budget is configured), each
//! provider's sends stay within fewer than `providers` picks of its exact share by weight (smooth
//! weighted round-robin keeps every prefix that close; a weight-0 provider gets nothing). Once
//! anything disturbs eligibility the rule stops judging, since a skipped provider's share is
//! rightly lower.

/// Sends per provider against the weights.
#[derive(Debug, Clone)]
pub struct WeightedShares {
    weights: Vec<u64>,
    total: u64,
    counts: Vec<u64>,
    picks: u64,
    disturbed: bool,
}

impl WeightedShares {
    /// The rule for providers of `weights`; `judged` false turns it off (budgets configured).
    pub fn new(weights: Vec<u64>, judged: bool) -> Self {
        let total = weights.iter().sum();
        WeightedShares {
            counts: vec![0; weights.len()],
            weights,
            total,
            picks: 0,
            disturbed: !judged || total == 0,
        }
    }

    /// Something made some provider ineligible, or will: stop judging.
    pub fn disturb(&mut self) {
        self.disturbed = true;
    }

    /// Whether the rule still judges.
    pub fn judging(&self) -> bool {
        !self.disturbed
    }

    /// A first attempt went to `provider`.
    pub fn sent(&mut self, provider: usize) -> Result<(), String> {
        if self.disturbed {
            return Ok(());
        }
        self.picks += 1;
        self.counts[provider] += 1;
        let bound = self.weights.len() as u64 * self.total;
        for (i, (&count, &weight)) in self.counts.iter().zip(&self.weights).enumerate() {
            let off = (count * self.total).abs_diff(self.picks * weight);
            if off >= bound {
                return Err(format!(
                    "weighted: provider {i} (weight {weight} of {}) has {count} of {} sends",
                    self.total, self.picks
                ));
            }
        }
        Ok(())
    }
}
