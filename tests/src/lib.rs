//! f3dx-router-testkit: the deterministic simulator, OpenAI spec validation, the mock provider
//! HTTP server (`server`, also the `f3dx-mock-provider` binary) and (as drivers land) the
//! conformance suite every driver must pass.

pub mod server;
pub mod sim;
pub mod spec;
