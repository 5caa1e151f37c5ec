//! Validity: checking structured answers against the request's schema, and the classifier that
//! routes a (tenant, model) away from a provider whose answers stop validating.
//!
//! - [`expect`]: what `response_format` and `tools` ask for, compiled once ([`cache`]).
//! - [`check`]: a `chat.completion` body (or a stream's [`assembly`]) against it.
//! - [`window`]: one (provider, tenant, model) key's window, rule and state.
//! - [`classifier`]: every key, bounded, and the completed requests reports may name.
//!
//! The machine ties them in (`machine/validity.rs`); nothing here does IO or reads a clock.

pub(crate) mod assembly;
pub(crate) mod cache;
pub mod check;
pub(crate) mod classifier;
pub mod config;
pub mod expect;
pub(crate) mod window;

pub use check::Invalid;
pub use classifier::FeedbackResult;
pub use config::{OnInvalid, ValidityConfig};

use std::sync::Arc;
use std::time::Duration;

/// A key's state, as stats print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Routed to as usual.
    Ok,
    /// Skipped for this tenant and model until a probe is due.
    Excluded,
    /// A recovery probe may go, or recovery is under way.
    Probing,
}

impl KeyStatus {
    /// `"ok"`, `"excluded"` or `"probing"`.
    pub fn name(self) -> &'static str {
        match self {
            KeyStatus::Ok => "ok",
            KeyStatus::Excluded => "excluded",
            KeyStatus::Probing => "probing",
        }
    }
}

/// One (tenant, model) key of a provider, in [`crate::ProviderStats::validity`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ValidityStats {
    /// The tenant (`None`: requests that named none).
    pub tenant: Option<Arc<str>>,
    /// The model the caller requested (before `model_map`).
    pub model: Arc<str>,
    /// Share of valid answers in the window, if it holds any.
    pub pass_rate: Option<f64>,
    /// Outcomes in the window.
    pub samples: usize,
    /// Where the key stands.
    pub state: KeyStatus,
    /// How long it has been in that state.
    pub since: Duration,
}
