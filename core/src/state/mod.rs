//! TEMP scratch (lead): replaced by the state helper's mod.rs on merge.
pub mod budget;
pub mod health;
pub mod latency;
pub mod rate_limit_headers;
pub mod throttle;
