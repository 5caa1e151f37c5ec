//! f3dx-router-testkit: the deterministic simulator, OpenAI spec validation, and (as drivers land)
//! the mock provider server and the conformance suite every driver must pass.

pub mod rules;
pub mod sim;
pub mod spec;
