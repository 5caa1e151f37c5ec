//! # f3dx-router-core
//!
//! The Sans-IO heart of f3dx-router: a [`RouterMachine`] that makes every routing decision and does
//! every byte of provider translation, with no IO, no clock and no runtime. The tokio, async-std
//! and blocking drivers, the simulator and a wasm gateway all drive the same machine, so they all
//! route the same way.
//!
//! # The run loop
//!
//! A driver feeds what happened ([`Input`]) with the time it happened, executes what the machine
//! asks for ([`Action`]), and sleeps until the next input or [`RouterMachine::poll_timeout`].
//! Here is a complete driver, with an in-process [`mock::MockProvider`] standing in for HTTP:
//!
//! ```
//! use f3dx_router_core::mock::{MockOutcome, MockProvider};
//! use f3dx_router_core::*;
//!
//! let config = RouterConfig::from_json(br#"{"providers":[{"name":"m","kind":"mock"}]}"#)?;
//! let mut machine = RouterMachine::new(config, 42)?;
//! let mut provider = MockProvider::new(Default::default(), 7);
//! let request = ChatRequest::from_json(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#)?;
//! let mut now = Time::ZERO;
//! let mut inputs = vec![Input::Request { id: RequestId(1), request }];
//! loop {
//!     for input in inputs.drain(..) {
//!         machine.handle_input(now, input)?;
//!     }
//!     while let Some(action) = machine.poll_action() {
//!         match action {
//!             Action::Send { attempt, request, .. } => match provider.respond(&request, 1_700_000_000).outcome {
//!                 MockOutcome::Response { status, headers, body } => {
//!                     inputs.push(Input::ResponseHead { attempt, status, headers });
//!                     inputs.extend(body.into_iter().map(|chunk| Input::ResponseBody { attempt, chunk }));
//!                     inputs.push(Input::ResponseEnd { attempt });
//!                 }
//!                 MockOutcome::Transport(kind) => inputs.push(Input::TransportError { attempt, kind }),
//!             },
//!             Action::Complete { outcome, .. } => {
//!                 let routed = outcome?;
//!                 assert_eq!(&*routed.provider_name, "m");
//!                 return Ok(());
//!             }
//!             _ => {} // Cancel: drop the connection; Deliver: hand a stream chunk to the caller.
//!         }
//!     }
//!     if inputs.is_empty() {
//!         now = machine.poll_timeout().unwrap_or(now); // a real driver sleeps until then
//!         machine.handle_timeout(now);
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_debug_implementations)]

mod body;
pub mod codec;
pub mod config;
mod hedge_delay;
pub mod http_date;
pub mod id_map;
pub mod ids;
pub mod machine;
pub mod mock;
pub mod outcome;
mod policy;
pub mod provider;
mod provider_state;
pub mod request;
pub mod retry_after;
pub mod rng;
pub mod scrub;
pub mod secret;
pub mod sse;
pub mod state;
pub mod stats;
pub mod time;
pub mod validity;

pub use config::{ConfigError, PolicyKind, ProviderConfig, ProviderKind, RouterConfig};
pub use ids::{AttemptId, ProviderId, RequestId};
pub use machine::{Action, Input, InputError, RouterMachine, Timer};
pub use outcome::{AttemptOutcome, AttemptRecord, RouteError, Routed, TransportErrorKind};
pub use request::{ChatRequest, RequestError};
pub use secret::ApiKey;
pub use stats::{BreakerStats, MachineStats, ProviderStats};
pub use time::Time;
pub use validity::{FeedbackResult, KeyStatus, OnInvalid, ValidityConfig, ValidityStats};
