//! `Retry-After` / `retry-after-ms` as the official SDKs read them.
// IMPLEMENTATION: helper task (see brief).
