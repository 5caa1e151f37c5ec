//! The breaker rule: a provider whose breaker is open receives no send, except the single
//! half-open probe, and the last-resort try when every provider the request has left is open.
//!
//! The checker reads each provider's breaker from the machine's own stats before every step (a
//! snapshot at `now`, so an open time that ran out already reads half-open) and follows the step's
//! actions: the first send to a half-open provider is its probe, and until that attempt ends no
//! other send may go there. An attempt of a provider ending (or being answered) inside a step may
//! change that provider's breaker, so until the next snapshot the checker no longer judges it:
//! the rule never cries wolf, and what it checks it checks exactly.

use f3dx_router_core::{AttemptId, BreakerStats, ProviderStats};

/// What the checker knows of one provider's breaker in the current step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// Not snapshotted yet, or changed by an outcome inside the step.
    Unknown,
    Closed,
    Open,
    HalfOpen,
}

/// One provider's breaker as the checker follows it.
#[derive(Debug, Clone)]
pub struct BreakerWatch {
    known: Known,
    /// The half-open probe in flight, if any.
    probe: Option<AttemptId>,
    /// Attempts in flight that were sent while the breaker was not judged: any of them may be a
    /// probe, so a half-open breaker is not judged while there are any.
    unjudged: Vec<AttemptId>,
}

impl Default for BreakerWatch {
    fn default() -> Self {
        BreakerWatch {
            known: Known::Unknown,
            probe: None,
            unjudged: Vec::new(),
        }
    }
}

/// How a send to a provider reads against its breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// Closed, or not judged this step.
    Allowed,
    /// The half-open probe.
    Probe,
    /// Open (or half-open with its probe out): allowed only as the last resort.
    IntoOpen,
}

impl BreakerWatch {
    /// The machine's stats before a step.
    pub fn snapshot(&mut self, stats: &ProviderStats) {
        self.known = match stats.breaker {
            BreakerStats::Closed => Known::Closed,
            BreakerStats::Open { .. } => Known::Open,
            BreakerStats::HalfOpen if self.probe.is_none() && !self.unjudged.is_empty() => {
                Known::Unknown
            }
            BreakerStats::HalfOpen => Known::HalfOpen,
        };
    }

    /// Whether a send now would have to be the last resort (breaker open or probe out).
    pub fn blocks(&self) -> bool {
        match self.known {
            Known::Open => true,
            Known::HalfOpen => self.probe.is_some(),
            Known::Closed | Known::Unknown => false,
        }
    }

    /// Whether the checker knows this provider's breaker admits a send now.
    pub fn admits(&self) -> bool {
        match self.known {
            Known::Closed => true,
            Known::HalfOpen => self.probe.is_none(),
            Known::Open | Known::Unknown => false,
        }
    }

    /// `attempt` was sent to this provider.
    pub fn sent(&mut self, attempt: AttemptId) -> SendKind {
        if self.blocks() {
            SendKind::IntoOpen
        } else if self.known == Known::HalfOpen {
            self.probe = Some(attempt);
            SendKind::Probe
        } else {
            if self.known == Known::Unknown {
                self.unjudged.push(attempt);
            }
            SendKind::Allowed
        }
    }

    /// One of this provider's attempts was answered or ended: its breaker may have moved.
    pub fn touched(&mut self, attempt: AttemptId, ended: bool) {
        self.known = Known::Unknown;
        if ended {
            if self.probe == Some(attempt) {
                self.probe = None;
            }
            self.unjudged.retain(|&a| a != attempt);
        }
    }
}
