//! f3dx-router-testkit: the deterministic simulator and the rule checker, OpenAI spec validation,
//! the mock provider HTTP server (`server`, also the `f3dx-mock-provider` binary) and the
//! conformance suite every driver must pass.

pub mod conformance;
pub mod proxy;
pub mod rules;
pub mod server;
pub mod sim;
pub mod sim_validity;
pub mod spec;
