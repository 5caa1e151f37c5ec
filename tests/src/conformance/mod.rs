//! The conformance suite every driver must pass, written once against the small [`Driver`] trait.
//!
//! Each scenario is a `pub async fn name<D: Driver>()` that starts its own
//! [`MockServer`](crate::server::MockServer), scripts it, builds the driver with providers pointing
//! at it, makes calls, and asserts both sides: what the caller got (outcome, body, chunks, the
//! attempt history) and what the server saw (requests, paths, headers, bodies, disconnects).
//!
//! A driver's test file implements [`Driver`] and invokes [`conformance_suite!`](crate::conformance_suite),
//! which expands to one `#[test]` per scenario, each on its own two-worker tokio runtime (the mock
//! server needs one; a blocking driver implements the trait with `spawn_blocking`):
//!
//! ```ignore
//! struct MyDriver(my_driver::Router);
//! impl f3dx_router_testkit::conformance::Driver for MyDriver { /* ... */ }
//! f3dx_router_testkit::conformance_suite!(MyDriver);
//! ```
//!
//! Scenarios are grouped by topic: [`failure_model`], [`faults`] (stalls and the idle limit,
//! odd and broken HTTP and TLS), [`hedging`], [`limits`] (Retry-After, deadlines, concurrency,
//! cancellation, secrets, TLS), [`translation`], [`streaming`], [`learning`] (weighted shares,
//! budgets, the breaker) and [`validity`] (schemas, `on_invalid`, reports).

pub mod failure_model;
pub mod faults;
pub mod hedging;
pub mod learning;
pub mod limits;
pub mod streaming;
pub mod translation;
pub mod validity;

#[cfg(test)]
mod listed;

pub use failure_model::*;
pub use faults::*;
pub use hedging::*;
pub use learning::*;
pub use limits::*;
pub use streaming::*;
pub use translation::*;
pub use validity::*;

use crate::server::{MockServer, Outcome, Recorded};
use crate::spec::OpenAiSpec;
use bytes::Bytes;
use f3dx_router_core::{
    AttemptOutcome, AttemptRecord, ChatRequest, ProviderStats, RouteError, Routed, RouterConfig,
};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::fmt;
use std::time::{Duration, Instant};

/// What the suite needs from a driver. Nothing here names a runtime: a blocking driver implements
/// the futures with `spawn_blocking` (the suite itself runs on a tokio runtime).
pub trait Driver: fmt::Debug + Send + Sync + Sized + 'static {
    /// Idle connections the driver's pool keeps per host: after a burst, the server may see at
    /// most this many connections still open.
    const MAX_IDLE_PER_HOST: usize;

    /// Whether dropping a call's future or a stream cancels the request (and closes its
    /// connections). A driver that can only abandon a call says `false`, and the cancellation
    /// scenarios check only that the caller is released.
    const CANCELS_ON_DROP: bool = true;

    /// Builds a router for `config`, trusting `ca_pem` (the mock server's test CA) in addition to
    /// the usual roots when given. Panics if the driver refuses the config (a suite bug).
    fn build(config: RouterConfig, ca_pem: Option<&str>) -> Self;

    /// One unary call. Dropping the future before it resolves cancels the request.
    fn call(&self, request: ChatRequest) -> BoxFuture<'static, Result<Routed, RouteError>>;

    /// A streaming call, collected: every chunk the caller received, then the final outcome
    /// (`Ok` with the route once the stream ended, or its error item). With `take: Some(n)` the
    /// stream is dropped after `n` chunks (cancelling the request) and `outcome` is `None`, unless
    /// it ended before that.
    fn stream(&self, request: ChatRequest, take: Option<usize>)
    -> BoxFuture<'static, StreamResult>;

    /// `(requests, attempts)` the driver's machine holds in flight.
    fn in_flight(&self) -> (usize, usize);

    /// The driver's `stats()`: what its machine knows about each provider, in config order.
    fn stats(&self) -> Vec<ProviderStats>;
    /// Reports the caller's own validation of the answer of the request `route_id` names
    /// ([`Routed::id`]); `false` when the router does not know it.
    fn report(&self, route_id: f3dx_router_core::RequestId, valid: bool) -> bool;

    /// Attempt tasks (or threads, or futures) the driver still holds; 0 if it keeps none apart
    /// from the machine's attempts.
    fn open_tasks(&self) -> usize {
        0
    }
}

/// What a streaming call gave its caller.
#[derive(Debug)]
pub struct StreamResult {
    /// Each chunk as received (one OpenAI `chat.completion.chunk` JSON object each).
    pub chunks: Vec<Bytes>,
    /// How the stream ended; `None` when the caller dropped it first (`take`).
    pub outcome: Option<Result<Routed, RouteError>>,
}

impl StreamResult {
    /// The chunks parsed, each validated against the OpenAI spec.
    pub fn json(&self) -> Vec<Value> {
        self.chunks
            .iter()
            .map(|c| {
                let v: Value = serde_json::from_slice(c).unwrap_or_else(|e| {
                    panic!("chunk is not JSON ({e}): {}", String::from_utf8_lossy(c))
                });
                if let Err(errors) = OpenAiSpec::get().validate_stream_chunk(&v) {
                    panic!("chunk breaks the OpenAI spec: {errors:?}\n{v}");
                }
                v
            })
            .collect()
    }

    /// The concatenated `delta.content` of choice 0.
    pub fn text(&self) -> String {
        self.json()
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }

    /// The `id` of every chunk.
    pub fn ids(&self) -> Vec<String> {
        self.json()
            .iter()
            .map(|c| c["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The outcome, which must be there (the stream was read to its end).
    pub fn ended(&self) -> &Result<Routed, RouteError> {
        self.outcome
            .as_ref()
            .expect("the stream was read to its end")
    }
}

/// Runs one scenario on a fresh two-worker runtime with an overall limit (a hung scenario fails
/// by name instead of hanging the suite). Used by [`conformance_suite!`](crate::conformance_suite).
pub fn run<F: std::future::Future<Output = ()>>(name: &str, scenario: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        if tokio::time::timeout(SCENARIO_LIMIT, scenario)
            .await
            .is_err()
        {
            panic!("conformance scenario {name} did not finish within {SCENARIO_LIMIT:?}");
        }
    });
}

/// Expands to one `#[test]` per conformance scenario for the driver type `$driver`, named as the
/// scenario is.
#[macro_export]
macro_rules! conformance_suite {
    ($driver:ty) => {
        $crate::conformance_suite!(@scenarios $driver;
            success_200,
            soft_statuses_fail_over,
            hard_statuses_go_nowhere_else,
            connection_refused_fails_over,
            reset_fails_over,
            attempt_timeout_fails_over_and_closes_the_connection,
            body_stall_timeout_fails_over,
            malformed_json_2xx_fails_over,
            error_object_in_2xx_fails_over,
            truncated_body_fails_over,
            oversized_body_fails_over,
            all_providers_failed_lists_every_attempt,
            sequential_order,
            hedged_delay_zero_both_receive_loser_disconnected,
            delayed_hedge_not_fired_when_first_is_fast,
            delayed_hedge_fires_when_first_is_slow,
            hedged_soft_failure_starts_the_next_untried,
            hedged_hard_failure_cancels_the_other_leg,
            retry_after_cools_the_provider,
            request_deadline_cancels_every_attempt,
            thousand_concurrent_requests,
            dropping_the_future_cancels,
            dropping_the_stream_cancels,
            api_key_never_printed,
            tls_with_the_test_ca,
            tls_without_the_ca_fails_over,
            anthropic_request_translation,
            anthropic_hard_error_carries_the_body,
            openai_model_map_and_extra_headers,
            openai_streams_pass_through,
            anthropic_streams_translate,
            stream_cut_before_commit_fails_over_invisibly,
            stream_error_before_commit_fails_over_invisibly,
            stream_status_before_commit_fails_over,
            stream_first_token_timeout_fails_over,
            stream_cut_after_commit_is_interrupted,
            stream_error_after_commit_is_interrupted,
            hedged_stream_first_to_commit_wins,
            weighted_shares_over_200_calls,
            rpm_holds_against_a_burst,
            out_of_budget_everywhere_is_rate_limited,
            learned_budget_stops_sends_before_the_429,
            breaker_opens_after_503s_and_probes,
            reasoning_chunks_commit_the_stream,
            long_stream_passes_a_small_max_response_bytes,
            one_stream_event_over_max_response_bytes_is_refused,
            anthropic_extended_thinking_both_ways,
            invalid_answer_fails_over,
            invalid_answer_is_returned_marked,
            reports_flip_a_key,
            idle_stall_after_head_fails_over,
            idle_stall_mid_body_fails_over,
            idle_stall_mid_stream_after_commit_is_interrupted,
            a_byte_every_100_ms_is_not_idle,
            close_delimited_body_is_read_to_the_close,
            huge_response_header_fails_over,
            garbage_status_line_fails_over,
            truncated_chunked_body_fails_over,
            tls_handshake_that_never_completes_fails_over,
            tls_reset_during_the_handshake_fails_over,
            informational_heads_before_the_answer_are_skipped,
            goaway_mid_stream_finishes_the_stream,
        );
    };
    (@scenarios $driver:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::run(
                    stringify!($name),
                    $crate::conformance::$name::<$driver>(),
                );
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the scenarios.

/// The key every HTTP provider of the suite is configured with. It must reach the server and
/// never appear in anything the caller can print.
pub const KEY: &str = "sk-conformance-SECRET";
/// How long a scenario waits for something that should happen within milliseconds.
pub const WAIT: Duration = Duration::from_secs(5);
/// A delay that must never be waited out: a response slower than this is always cancelled.
pub const SLOW: Duration = Duration::from_secs(4);
/// How long a hedged leg that must lose (or fail) waits before answering, so that the other
/// leg's request has reached the server before it is cancelled: legs are sent at the same
/// instant, but on a loaded machine one connection may be made well after the other.
pub const HEAD_START: Duration = Duration::from_millis(200);
/// The limit on one whole scenario.
pub const SCENARIO_LIMIT: Duration = Duration::from_secs(60);

/// Parses a config written as JSON.
pub fn config(v: Value) -> RouterConfig {
    RouterConfig::from_json(v.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("invalid suite config ({e}): {v}"))
}

/// An OpenAI-shape provider named `name` at `base_url`, with [`KEY`].
pub fn openai(name: &str, base_url: String) -> Value {
    json!({"name": name, "kind": "openai", "base_url": base_url, "api_key": KEY})
}

/// An Anthropic-shape provider named `name` at `base_url`, with [`KEY`].
pub fn anthropic(name: &str, base_url: String) -> Value {
    json!({"name": name, "kind": "anthropic", "base_url": base_url, "api_key": KEY})
}

/// `provider` with the fields of `extra` added.
pub fn with(mut provider: Value, extra: Value) -> Value {
    if let (Some(p), Value::Object(extra)) = (provider.as_object_mut(), extra) {
        p.extend(extra);
    }
    provider
}

/// OpenAI providers named `names`, all on `server`, sequential.
pub fn providers(server: &MockServer, names: &[&str]) -> Value {
    json!({"providers": names.iter().map(|n| openai(n, server.base_url(n))).collect::<Vec<_>>()})
}

/// A chat request whose one user message is `text`.
pub fn request(text: &str) -> ChatRequest {
    ChatRequest::from_value(json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": text}],
    }))
    .expect("a valid chat request")
}

/// A streaming chat request (`stream: true`, usage asked for) whose user message is `text`.
pub fn stream_request(text: &str) -> ChatRequest {
    ChatRequest::from_value(json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": text}],
        "stream": true,
        "stream_options": {"include_usage": true},
    }))
    .expect("a valid chat request")
}

/// `(provider, outcome)` of each attempt, in order.
pub fn outcomes(attempts: &[AttemptRecord]) -> Vec<(String, AttemptOutcome)> {
    attempts
        .iter()
        .map(|a| (a.provider_name.to_string(), a.outcome.clone()))
        .collect()
}

/// `(provider, Success { 200 })`.
pub fn success(provider: &str) -> (String, AttemptOutcome) {
    (provider.to_owned(), AttemptOutcome::Success { status: 200 })
}

/// The routed `chat.completion`, validated against the OpenAI spec.
pub fn completion(routed: &Routed) -> Value {
    let body: Value = serde_json::from_slice(&routed.body).unwrap_or_else(|e| {
        panic!(
            "routed body is not JSON ({e}): {}",
            String::from_utf8_lossy(&routed.body)
        )
    });
    if let Err(errors) = OpenAiSpec::get().validate_response(&body) {
        panic!("routed body breaks the OpenAI spec: {errors:?}\n{body}");
    }
    body
}

/// The assistant text of the routed completion.
pub fn completion_text(routed: &Routed) -> String {
    completion(routed)["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The last user message's text of a recorded OpenAI-shape request.
pub fn user_text(rec: &Recorded) -> String {
    let json = rec.json.as_ref().expect("the request body was JSON");
    let last = json["messages"]
        .as_array()
        .and_then(|m| m.last())
        .expect("messages");
    match &last["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<String>(),
        other => panic!("unexpected content {other}"),
    }
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    port
}

/// Waits until the driver holds nothing in flight (cancelled attempts may end asynchronously).
pub async fn settled<D: Driver>(driver: &D) {
    let start = Instant::now();
    while driver.in_flight() != (0, 0) || driver.open_tasks() != 0 {
        assert!(
            start.elapsed() < WAIT,
            "the driver never settled: {:?} in flight, {} open tasks",
            driver.in_flight(),
            driver.open_tasks()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Asserts that request `index` of `provider` ended with the client going away.
pub async fn assert_disconnected(server: &MockServer, provider: &str, index: usize) {
    let outcome = server.wait_for_outcome(provider, index, WAIT).await;
    assert_eq!(
        outcome,
        Some(Outcome::ClientDisconnected),
        "{provider}[{index}] should have seen the client disconnect"
    );
}

/// Asserts that request `index` of `provider` ended as `expected`.
pub async fn assert_outcome(server: &MockServer, provider: &str, index: usize, expected: Outcome) {
    let outcome = server.wait_for_outcome(provider, index, WAIT).await;
    assert_eq!(outcome, Some(expected), "{provider}[{index}] outcome");
}

/// Asserts how many requests each provider received.
pub fn assert_counts(server: &MockServer, expected: &[(&str, usize)]) {
    let got: Vec<(&str, usize)> = expected
        .iter()
        .map(|(p, _)| (*p, server.received(p).len()))
        .collect();
    assert_eq!(got, expected, "requests received per provider");
}
