//! # f3dx-router-core
//!
//! The Sans-IO heart of f3dx-router: a [`RouterMachine`] that makes every routing decision and does
//! every byte of provider translation, with no IO, no clock and no runtime.
#![warn(missing_debug_implementations)]

pub mod codec;
pub mod config;
pub mod http_date;
pub mod ids;
pub mod machine;
pub mod mock;
pub mod outcome;
pub mod provider;
pub mod request;
pub mod retry_after;
pub mod rng;
pub mod secret;
pub mod sse;
pub mod time;

pub use config::{ConfigError, PolicyKind, ProviderConfig, ProviderKind, RouterConfig};
pub use ids::{AttemptId, ProviderId, RequestId};
pub use machine::{Action, Input, InputError, RouterMachine};
pub use outcome::{AttemptOutcome, AttemptRecord, RouteError, Routed, TransportErrorKind};
pub use request::{ChatRequest, RequestError};
pub use secret::ApiKey;
pub use time::Time;
