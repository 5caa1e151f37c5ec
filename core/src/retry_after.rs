//! `Retry-After` / `retry-after-ms` as the official SDKs read them.
// IMPLEMENTATION: helper task (see brief).
// TEMPORARY stub.
use std::time::Duration;
/// stub
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// stub
    Wait(Duration),
    /// stub
    TooLong(Duration),
    /// stub
    Unusable,
}
/// stub
pub fn parse_retry_after(_h: &http::HeaderMap, _n: Option<u64>, _c: Duration) -> RetryAfter {
    RetryAfter::Unusable
}
