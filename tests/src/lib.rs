//! f3dx-router-testkit: the deterministic simulator, spec validation, and (later) the mock
//! provider server and the conformance suite every driver must pass.

pub mod sim;
