//! The `mock` provider kind: a pure, seeded model of an OpenAI-shape provider.
//!
//! The simulator, the conformance suite and the mock HTTP server all need a provider that is slow,
//! flaky or broken on demand, and that replays exactly from a seed. [`MockProvider::respond`] takes
//! the very `http::Request` the router would send to an OpenAI-compatible API and decides, with no
//! IO and no clock, what comes back and after how long: a real-looking `chat.completion` (or its
//! SSE stream), an OpenAI-shape error with `retry-after`, or a transport failure. The driver (or
//! the simulator) does the waiting.
//!
//! Determinism: a provider's random draws come from [`Rng`] streams forked from
//! `(seed, config.seed)`; latency, failures and response ids use separate streams, so changing the
//! latency model of a scenario does not reshuffle which calls fail.

use crate::http_date::format_http_date;
use crate::outcome::TransportErrorKind;
use crate::rng::Rng;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// How long the mock takes to answer. JSON: `{"kind":"fixed","ms":20}`,
/// `{"kind":"uniform","min_ms":5,"max_ms":50}`, `{"kind":"lognormal","median_ms":20,"sigma":0.5}`;
/// any of them may add a heavy tail: `"tail":{"probability":0.02,"min_ms":500,"max_ms":2000}`.
// No `deny_unknown_fields` here: serde does not support it together with `flatten` (it rejects
// every key, `kind` included). The flattened enum denies unknown keys instead.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LatencyModel {
    /// The body of the distribution.
    #[serde(flatten)]
    pub base: LatencyBase,
    /// With `probability`, the latency is drawn uniformly from `[min_ms, max_ms]` instead.
    #[serde(default)]
    pub tail: Option<LatencyTail>,
}

/// The body of a latency distribution.
// Unknown keys are denied here, not on `LatencyModel` (see there): a typo such as `"sigmaa"` or a
// misspelt `"tial"` is an error, not silently ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LatencyBase {
    /// Always `ms`: for tests that need exact timings.
    Fixed {
        /// The latency, milliseconds.
        ms: f64,
    },
    /// Uniform in `[min_ms, max_ms]`.
    Uniform {
        /// Lower bound, milliseconds.
        min_ms: f64,
        /// Upper bound, milliseconds.
        max_ms: f64,
    },
    /// `median_ms * exp(sigma * N(0, 1))`: the right-skewed shape real API latencies have.
    Lognormal {
        /// The median, milliseconds.
        median_ms: f64,
        /// Spread of the underlying normal (0 gives always the median).
        sigma: f64,
    },
}

/// A rare slow mode on top of the body of the distribution.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyTail {
    /// Chance in `[0, 1]` that a call is slow.
    pub probability: f64,
    /// Lower bound of a slow call, milliseconds.
    pub min_ms: f64,
    /// Upper bound of a slow call, milliseconds.
    pub max_ms: f64,
}

/// One scripted outcome. JSON: a status number (`200`, `429`), a transport failure name
/// (`"reset"`, `"refused"`, `"timeout"`), or `{"status":429,"retry_after":"2"}`.
///
/// A 2xx step is a normal answer; `{"status":200,"body":...}` returns that body verbatim instead
/// (to script an invalid 2xx body). Any other status returns an OpenAI-shape error body, or `body`
/// when given.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum MockStep {
    /// Answer with this status.
    Status(u16),
    /// Fail at the transport level.
    Transport(MockTransport),
    /// Answer with this status, optionally a `retry-after` header value and a body of one's own.
    Detailed {
        /// HTTP status, 100..=599.
        status: u16,
        /// Sent as the `retry-after` header, verbatim (seconds or an HTTP-date).
        #[serde(default)]
        retry_after: Option<String>,
        /// Sent as the JSON body instead of the default one.
        #[serde(default)]
        body: Option<serde_json::Value>,
    },
}

/// Transport failures a mock can script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MockTransport {
    /// The connection is reset mid-request.
    Reset,
    /// Nothing listens.
    Refused,
    /// The driver's timer fires.
    Timeout,
}

impl From<MockTransport> for TransportErrorKind {
    fn from(t: MockTransport) -> Self {
        match t {
            MockTransport::Reset => TransportErrorKind::Reset,
            MockTransport::Refused => TransportErrorKind::Refused,
            MockTransport::Timeout => TransportErrorKind::Timeout,
        }
    }
}

/// When the mock fails. `sequence`, if non-empty, is followed in order and repeats; otherwise each
/// call fails with `probability`, picking uniformly among `steps` (default `[503]`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureModel {
    /// A script, one step per call, cycled. Wins over `probability`.
    #[serde(default)]
    pub sequence: Vec<MockStep>,
    /// Chance in `[0, 1]` that a call fails.
    #[serde(default)]
    pub probability: f64,
    /// What a random failure is, picked uniformly (default `[503]`).
    #[serde(default)]
    pub steps: Vec<MockStep>,
}

/// A mock provider's behaviour (`providers[i].mock`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    /// How long each call takes (default: fixed 1 ms).
    #[serde(default = "default_latency")]
    pub latency: LatencyModel,
    /// When calls fail (default: never).
    #[serde(default)]
    pub failures: FailureModel,
    /// The assistant text of a successful answer (default: an echo of the last user message).
    #[serde(default)]
    pub reply: Option<String>,
    /// Extra seed mixed into this provider's stream of random draws.
    #[serde(default)]
    pub seed: u64,
}

fn default_latency() -> LatencyModel {
    LatencyModel {
        base: LatencyBase::Fixed { ms: 1.0 },
        tail: None,
    }
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            latency: default_latency(),
            failures: FailureModel::default(),
            reply: None,
            seed: 0,
        }
    }
}

/// What the mock does with one request: after `latency`, this `outcome`.
#[derive(Debug, Clone, PartialEq)]
pub struct MockReply {
    /// How long after the request the outcome happens (the whole body at once, for a stream too).
    pub latency: Duration,
    /// What happens.
    pub outcome: MockOutcome,
}

/// A mock answer.
#[derive(Debug, Clone, PartialEq)]
pub enum MockOutcome {
    /// An HTTP response: status, headers, body pieces (one for a plain response; SSE pieces,
    /// `data: ...\n\n` each, ending with `data: [DONE]`, for a stream).
    Response {
        /// HTTP status.
        status: u16,
        /// `content-type`, `date`, `x-request-id`, and `retry-after` when scripted.
        headers: http::HeaderMap,
        /// The body, in the pieces a driver would receive.
        body: Vec<Bytes>,
    },
    /// A transport failure.
    Transport(TransportErrorKind),
}

/// A seeded mock provider.
#[derive(Debug, Clone)]
pub struct MockProvider {
    config: MockConfig,
    /// Latency draws.
    rng: Rng,
    /// Failure coin and pick: separate from latency so the failure pattern does not depend on
    /// the latency model.
    failure_rng: Rng,
    /// `x-request-id` values.
    id_rng: Rng,
    calls: u64,
}

impl MockConfig {
    /// Checks the model's numbers; the error is `(field path under mock, message)`, e.g.
    /// `("latency.min_ms", "...")`, so a config error names the exact field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.latency.validate()?;
        let failures = &self.failures;
        probability(failures.probability, "failures.probability")?;
        for (list, name) in [(&failures.sequence, "sequence"), (&failures.steps, "steps")] {
            for (i, step) in list.iter().enumerate() {
                step.validate(&format!("failures.{name}[{i}]"))?;
            }
        }
        Ok(())
    }
}

impl LatencyModel {
    /// Draws one latency. Never panics: a non-finite or negative draw is clamped into
    /// `[0, Duration::MAX]` (`validate` keeps the parameters sane; `exp` can still overflow).
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        if let Some(tail) = &self.tail
            && rng.next_f64() < tail.probability
        {
            return millis(uniform(rng, tail.min_ms, tail.max_ms));
        }
        millis(match self.base {
            LatencyBase::Fixed { ms } => ms,
            LatencyBase::Uniform { min_ms, max_ms } => uniform(rng, min_ms, max_ms),
            LatencyBase::Lognormal { median_ms, sigma } => {
                median_ms * (sigma * rng.next_normal()).exp()
            }
        })
    }

    fn validate(&self) -> Result<(), (String, String)> {
        match self.base {
            LatencyBase::Fixed { ms } => non_negative(ms, "latency.ms")?,
            LatencyBase::Uniform { min_ms, max_ms } => range(min_ms, max_ms, "latency")?,
            LatencyBase::Lognormal { median_ms, sigma } => {
                non_negative(median_ms, "latency.median_ms")?;
                non_negative(sigma, "latency.sigma")?;
            }
        }
        if let Some(tail) = &self.tail {
            probability(tail.probability, "latency.tail.probability")?;
            range(tail.min_ms, tail.max_ms, "latency.tail")?;
        }
        Ok(())
    }
}

impl MockStep {
    fn validate(&self, at: &str) -> Result<(), (String, String)> {
        let (status, retry_after) = match self {
            MockStep::Status(status) => (*status, None),
            MockStep::Transport(_) => return Ok(()),
            MockStep::Detailed {
                status,
                retry_after,
                ..
            } => (*status, retry_after.as_deref()),
        };
        if !(100..=599).contains(&status) {
            return Err((
                format!("{at}.status"),
                format!("must be an HTTP status in 100..=599, got {status}"),
            ));
        }
        if retry_after.is_some_and(|v| http::HeaderValue::from_str(v).is_err()) {
            return Err((
                format!("{at}.retry_after"),
                "is not a valid header value".to_owned(),
            ));
        }
        Ok(())
    }
}

fn invalid(field: &str, message: String) -> Result<(), (String, String)> {
    Err((field.to_owned(), message))
}

fn non_negative(v: f64, field: &str) -> Result<(), (String, String)> {
    if !v.is_finite() || v < 0.0 {
        return invalid(field, format!("must be a finite number >= 0, got {v}"));
    }
    Ok(())
}

fn probability(p: f64, field: &str) -> Result<(), (String, String)> {
    if !(0.0..=1.0).contains(&p) {
        return invalid(field, format!("must be a probability in [0, 1], got {p}"));
    }
    Ok(())
}

fn range(min: f64, max: f64, prefix: &str) -> Result<(), (String, String)> {
    non_negative(min, &format!("{prefix}.min_ms"))?;
    non_negative(max, &format!("{prefix}.max_ms"))?;
    if min > max {
        return invalid(
            &format!("{prefix}.min_ms"),
            format!("must not exceed max_ms ({min} > {max})"),
        );
    }
    Ok(())
}

fn uniform(rng: &mut Rng, min: f64, max: f64) -> f64 {
    min + (max - min) * rng.next_f64()
}

fn millis(ms: f64) -> Duration {
    if ms.is_nan() || ms <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX)
}

impl MockProvider {
    /// A provider whose whole behaviour is fixed by `config` and `seed` (the router's seed, or the
    /// simulator's per-provider stream); `config.seed` is mixed in so two mocks with the same
    /// model under one router seed still differ when their configs say so.
    pub fn new(config: MockConfig, seed: u64) -> Self {
        let mut root = Rng::new(seed).fork(config.seed);
        MockProvider {
            rng: root.fork(1),
            failure_rng: root.fork(2),
            id_rng: root.fork(3),
            config,
            calls: 0,
        }
    }

    /// The model this provider follows.
    pub fn config(&self) -> &MockConfig {
        &self.config
    }

    /// How many requests it has answered.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Decides what happens to one request: after `latency`, `outcome`. `request` is the exact
    /// HTTP request the router would send an OpenAI-shape provider (POST .../chat/completions,
    /// JSON body). `now_unix` is used for the Date header and `created`.
    ///
    /// Every call draws the same kinds of numbers in the same order (latency, failure coin,
    /// failure pick, request id), whatever the outcome, so the same seed and the same request
    /// sequence give the same replies.
    pub fn respond(&mut self, request: &http::Request<Bytes>, now_unix: u64) -> MockReply {
        let call = self.calls;
        self.calls += 1;
        let latency = self.config.latency.sample(&mut self.rng);
        let coin = self.failure_rng.next_f64();
        let pick = self.failure_rng.next_u64();
        let request_id = format!("req_mock{:016x}", self.id_rng.next_u64());

        let failures = &self.config.failures;
        let step = if !failures.sequence.is_empty() {
            Some(failures.sequence[(call % failures.sequence.len() as u64) as usize].clone())
        } else if coin < failures.probability {
            let steps = &failures.steps;
            Some(if steps.is_empty() {
                MockStep::Status(503)
            } else {
                steps[(pick % steps.len() as u64) as usize].clone()
            })
        } else {
            None
        };

        let head = Head {
            now_unix,
            request_id,
        };
        let outcome = match step {
            None => self.answer(request, call, 200, &head),
            Some(MockStep::Transport(t)) => MockOutcome::Transport(t.into()),
            Some(MockStep::Status(status)) if (200..300).contains(&status) => {
                self.answer(request, call, status, &head)
            }
            Some(MockStep::Status(status)) => head.error(status, None, None, None),
            Some(MockStep::Detailed {
                status,
                retry_after,
                body: Some(body),
            }) => head.response(
                status,
                "application/json",
                retry_after.as_deref(),
                vec![to_bytes(&body)],
            ),
            Some(MockStep::Detailed {
                status,
                retry_after: None,
                body: None,
            }) if (200..300).contains(&status) => self.answer(request, call, status, &head),
            Some(MockStep::Detailed {
                status,
                retry_after,
                body: None,
            }) => head.error(status, retry_after.as_deref(), None, None),
        };
        MockReply { latency, outcome }
    }

    /// What a healthy OpenAI-compatible server answers to `request`: a completion, or the 4xx it
    /// would give a malformed request.
    fn answer(
        &self,
        request: &http::Request<Bytes>,
        call: u64,
        status: u16,
        head: &Head,
    ) -> MockOutcome {
        let chat = match ChatCall::parse(request) {
            Ok(chat) => chat,
            Err(reject) => {
                return head.error(
                    reject.status,
                    None,
                    Some(reject.param),
                    Some(reject.message),
                );
            }
        };
        let reply = self
            .config
            .reply
            .clone()
            .unwrap_or_else(|| format!("echo: {}", chat.last_user_text));
        let id = format!("chatcmpl-mock-{call}");
        let completion_tokens = word_count(&reply);
        let usage = json!({
            "prompt_tokens": chat.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": chat.prompt_tokens + completion_tokens,
        });
        if !chat.stream {
            let body = json!({
                "id": id,
                "object": "chat.completion",
                "created": head.now_unix,
                "model": chat.model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": reply, "refusal": null},
                    "logprobs": null,
                    "finish_reason": "stop",
                }],
                "usage": usage,
            });
            return head.response(status, "application/json", None, vec![to_bytes(&body)]);
        }

        let chunk = |choices: Value| {
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": head.now_unix,
                "model": chat.model,
                "choices": choices,
            })
        };
        let choice = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        let mut events = vec![chunk(choice(
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null,
        ))];
        events.extend(
            words(&reply)
                .into_iter()
                .map(|w| chunk(choice(json!({"content": w}), Value::Null))),
        );
        events.push(chunk(choice(json!({}), json!("stop"))));
        if chat.include_usage {
            let mut last = chunk(json!([]));
            last["usage"] = usage;
            events.push(last);
        }
        let mut body: Vec<Bytes> = events
            .iter()
            .map(|e| Bytes::from(format!("data: {e}\n\n")))
            .collect();
        body.push(Bytes::from_static(b"data: [DONE]\n\n"));
        head.response(status, "text/event-stream", None, body)
    }
}

/// The parts of a response every answer shares.
struct Head {
    now_unix: u64,
    request_id: String,
}

impl Head {
    fn response(
        &self,
        status: u16,
        content_type: &'static str,
        retry_after: Option<&str>,
        body: Vec<Bytes>,
    ) -> MockOutcome {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        // Both values are ASCII by construction; `validate` checked `retry_after`, and an
        // unchecked invalid one is dropped rather than panicking.
        if let Ok(date) = http::HeaderValue::from_str(&format_http_date(self.now_unix)) {
            headers.insert(http::header::DATE, date);
        }
        if let Ok(id) = http::HeaderValue::from_str(&self.request_id) {
            headers.insert("x-request-id", id);
        }
        if let Some(Ok(v)) = retry_after.map(http::HeaderValue::from_str) {
            headers.insert(http::header::RETRY_AFTER, v);
        }
        MockOutcome::Response {
            status,
            headers,
            body,
        }
    }

    /// An OpenAI-shape error: `{"error":{"message","type","param","code"}}`, typed as OpenAI types
    /// that status.
    fn error(
        &self,
        status: u16,
        retry_after: Option<&str>,
        param: Option<&str>,
        message: Option<String>,
    ) -> MockOutcome {
        let (kind, code, default_message) = match status {
            429 => (
                "requests",
                Some("rate_limit_exceeded"),
                "Rate limit reached for requests (mock provider).",
            ),
            503 => (
                "server_error",
                None,
                "The engine is currently overloaded, please try again later",
            ),
            500.. => (
                "server_error",
                None,
                "The server had an error while processing your request. Sorry about that!",
            ),
            _ => (
                "invalid_request_error",
                None,
                "The mock provider was scripted to reject this request.",
            ),
        };
        let body = json!({
            "error": {
                "message": message.unwrap_or_else(|| default_message.to_owned()),
                "type": kind,
                "param": param,
                "code": code,
            }
        });
        self.response(
            status,
            "application/json",
            retry_after,
            vec![to_bytes(&body)],
        )
    }
}

fn to_bytes(value: &Value) -> Bytes {
    Bytes::from(value.to_string())
}

/// A request as far as the mock cares.
struct ChatCall {
    model: String,
    stream: bool,
    include_usage: bool,
    last_user_text: String,
    prompt_tokens: u64,
}

/// Why a real server would turn a request away (messages modelled on OpenAI's).
struct Reject {
    status: u16,
    param: &'static str,
    message: String,
}

impl ChatCall {
    fn parse(request: &http::Request<Bytes>) -> Result<Self, Reject> {
        let path = request.uri().path();
        if request.method() != http::Method::POST || !path.ends_with("/chat/completions") {
            return Err(Reject {
                status: 404,
                param: "url",
                message: format!("Invalid URL ({} {path})", request.method()),
            });
        }
        let bad = |param, message: &str| Reject {
            status: 400,
            param,
            message: message.to_owned(),
        };
        let body: Value = serde_json::from_slice(request.body()).map_err(|_| {
            bad(
                "body",
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)",
            )
        })?;
        let model = match body.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            _ => return Err(bad("model", "you must provide a model parameter")),
        };
        let messages = match body.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => m,
            Some(Value::Array(_)) => {
                return Err(bad(
                    "messages",
                    "Invalid 'messages': empty array. Expected an array with minimum length 1.",
                ));
            }
            _ => return Err(bad("messages", "Missing required parameter: 'messages'.")),
        };
        let last_user_text = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(message_text)
            .unwrap_or_default();
        // About four tokens of framing per message plus one per word: close to what tiktoken says
        // for short English messages, and all a router needs from usage.
        let prompt_tokens = messages
            .iter()
            .map(|m| 4 + word_count(&message_text(m)))
            .sum::<u64>();
        Ok(ChatCall {
            model,
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            last_user_text,
            prompt_tokens,
        })
    }
}

/// A message's text: `content` as a string, or its `text` parts joined.
fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn word_count(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Splits text the way OpenAI streams it: each piece is a word with the whitespace before it
/// (`"echo:"`, `" hello"`, `" world"`), so the pieces concatenate back to exactly `text`.
fn words(text: &str) -> Vec<&str> {
    // Whitespace at either end stays with the first or last word.
    let last_word_end = text.trim_end().len();
    let mut pieces = Vec::new();
    let (mut start, mut prev_is_space) = (0, true);
    for (i, c) in text.char_indices() {
        let is_space = c.is_whitespace();
        if is_space && !prev_is_space && i < last_word_end {
            pieces.push(&text[start..i]);
            start = i;
        }
        prev_is_space = is_space;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> MockConfig {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn request(body: Value) -> http::Request<Bytes> {
        http::Request::post("https://mock.invalid/v1/chat/completions")
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_string()))
            .unwrap()
    }

    fn hello(stream: bool, include_usage: bool) -> http::Request<Bytes> {
        let mut body = json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "first answer"},
                {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}]},
            ],
        });
        if stream {
            body["stream"] = json!(true);
        }
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        request(body)
    }

    const NOW: u64 = 1_696_004_797;

    fn response(reply: &MockReply) -> (u16, &http::HeaderMap, &[Bytes]) {
        match &reply.outcome {
            MockOutcome::Response {
                status,
                headers,
                body,
            } => (*status, headers, body),
            other => panic!("expected a response, got {other:?}"),
        }
    }

    fn json_body(reply: &MockReply) -> Value {
        let (_, _, body) = response(reply);
        assert_eq!(body.len(), 1);
        serde_json::from_slice(&body[0]).unwrap()
    }

    fn status_of(reply: &MockReply) -> Option<u16> {
        match &reply.outcome {
            MockOutcome::Response { status, .. } => Some(*status),
            MockOutcome::Transport(_) => None,
        }
    }

    const EXAMPLE: &str = r#"{"latency":{"kind":"lognormal","median_ms":20,"sigma":0.5,"tail":{"probability":0.01,"min_ms":500,"max_ms":2000}},"failures":{"sequence":[429,{"status":503,"retry_after":"1"},"reset",200]}}"#;

    #[test]
    fn parses_the_documented_configs() {
        let c = config(EXAMPLE);
        assert_eq!(
            c.latency,
            LatencyModel {
                base: LatencyBase::Lognormal {
                    median_ms: 20.0,
                    sigma: 0.5
                },
                tail: Some(LatencyTail {
                    probability: 0.01,
                    min_ms: 500.0,
                    max_ms: 2000.0
                }),
            }
        );
        assert_eq!(
            c.failures.sequence,
            vec![
                MockStep::Status(429),
                MockStep::Detailed {
                    status: 503,
                    retry_after: Some("1".into()),
                    body: None
                },
                MockStep::Transport(MockTransport::Reset),
                MockStep::Status(200),
            ]
        );
        assert_eq!(c.validate(), Ok(()));

        assert_eq!(
            config(r#"{"latency":{"kind":"fixed","ms":20}}"#)
                .latency
                .base,
            LatencyBase::Fixed { ms: 20.0 }
        );
        assert_eq!(
            config(r#"{"latency":{"kind":"uniform","min_ms":5,"max_ms":50}}"#)
                .latency
                .base,
            LatencyBase::Uniform {
                min_ms: 5.0,
                max_ms: 50.0
            }
        );
        let c = config(
            r#"{"failures":{"probability":0.2,"steps":[429,"timeout",{"status":200,"body":{"nope":1}}]},"reply":"hi","seed":7}"#,
        );
        assert_eq!(c.failures.steps.len(), 3);
        assert_eq!(c.reply.as_deref(), Some("hi"));
        assert_eq!(c.seed, 7);
        assert_eq!(config("{}"), MockConfig::default());
        // Inside a router config.
        let router = crate::RouterConfig::from_json(
            format!(r#"{{"providers":[{{"name":"m","kind":"mock","mock":{EXAMPLE}}}]}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(router.providers[0].mock.as_ref(), Some(&config(EXAMPLE)));

        for bad in [
            r#"{"latncy":{"kind":"fixed","ms":1}}"#,
            r#"{"latency":{"kind":"gamma","ms":1}}"#,
            r#"{"latency":{"kind":"lognormal","median_ms":20,"sigmaa":0.5}}"#,
            r#"{"latency":{"kind":"fixed","ms":1,"extra":1}}"#,
            r#"{"latency":{"kind":"fixed","ms":1,"tail":{"probability":0.1,"min_ms":1}}}"#,
            r#"{"failures":{"sequence":["explode"]}}"#,
            r#"{"failures":{"sequence":[70000]}}"#,
            r#"{"failures":{"probabilty":0.1}}"#,
            r#"{"latency":{"kind":"fixed","ms":1,"tial":{"probability":0.1,"min_ms":1,"max_ms":2}}}"#,
        ] {
            assert!(serde_json::from_str::<MockConfig>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validate_names_the_field() {
        let field = |json: &str| config(json).validate().expect_err(json).0;
        assert_eq!(
            field(r#"{"latency":{"kind":"fixed","ms":-1}}"#),
            "latency.ms"
        );
        assert_eq!(
            field(r#"{"latency":{"kind":"uniform","min_ms":50,"max_ms":5}}"#),
            "latency.min_ms"
        );
        assert_eq!(
            field(r#"{"latency":{"kind":"uniform","min_ms":5,"max_ms":-5}}"#),
            "latency.max_ms"
        );
        assert_eq!(
            field(r#"{"latency":{"kind":"lognormal","median_ms":-20,"sigma":0.5}}"#),
            "latency.median_ms"
        );
        assert_eq!(
            field(r#"{"latency":{"kind":"lognormal","median_ms":20,"sigma":-0.5}}"#),
            "latency.sigma"
        );
        assert_eq!(
            field(
                r#"{"latency":{"kind":"fixed","ms":1,"tail":{"probability":1.5,"min_ms":1,"max_ms":2}}}"#
            ),
            "latency.tail.probability"
        );
        assert_eq!(
            field(
                r#"{"latency":{"kind":"fixed","ms":1,"tail":{"probability":0.5,"min_ms":3,"max_ms":2}}}"#
            ),
            "latency.tail.min_ms"
        );
        assert_eq!(
            field(r#"{"failures":{"probability":-0.1}}"#),
            "failures.probability"
        );
        assert_eq!(
            field(r#"{"failures":{"probability":1.01}}"#),
            "failures.probability"
        );
        assert_eq!(
            field(r#"{"failures":{"sequence":[200,99]}}"#),
            "failures.sequence[1].status"
        );
        assert_eq!(
            field(r#"{"failures":{"steps":[{"status":600}]}}"#),
            "failures.steps[0].status"
        );
        assert_eq!(
            field(r#"{"failures":{"steps":[{"status":429,"retry_after":"1\n"}]}}"#),
            "failures.steps[0].retry_after"
        );

        // JSON has no NaN; build those directly.
        let mut c = MockConfig::default();
        c.latency.base = LatencyBase::Fixed { ms: f64::NAN };
        assert_eq!(c.validate().unwrap_err().0, "latency.ms");
        c.latency.base = LatencyBase::Lognormal {
            median_ms: 1.0,
            sigma: f64::INFINITY,
        };
        assert_eq!(c.validate().unwrap_err().0, "latency.sigma");
        c = MockConfig::default();
        c.failures.probability = f64::NAN;
        assert_eq!(c.validate().unwrap_err().0, "failures.probability");
    }

    #[test]
    fn same_seed_same_replies_and_seeds_matter() {
        let c = config(
            r#"{"latency":{"kind":"lognormal","median_ms":20,"sigma":0.5},"failures":{"probability":0.3,"steps":[429,503,"reset"]}}"#,
        );
        let run = |seed: u64, c: &MockConfig| {
            let mut p = MockProvider::new(c.clone(), seed);
            (0..200)
                .map(|i| p.respond(&hello(i % 2 == 0, i % 3 == 0), NOW + i))
                .collect::<Vec<_>>()
        };
        let a = run(42, &c);
        assert_eq!(a, run(42, &c));
        assert_ne!(a, run(43, &c));
        let mut c7 = c.clone();
        c7.seed = 7;
        assert_ne!(a, run(42, &c7));
    }

    #[test]
    fn failure_pattern_does_not_depend_on_the_latency_model() {
        let slow = config(
            r#"{"latency":{"kind":"lognormal","median_ms":20,"sigma":1,"tail":{"probability":0.5,"min_ms":1,"max_ms":9}},"failures":{"probability":0.5}}"#,
        );
        let fast = config(r#"{"failures":{"probability":0.5}}"#);
        let statuses = |c: MockConfig| {
            let mut p = MockProvider::new(c, 1);
            (0..100)
                .map(|_| status_of(&p.respond(&hello(false, false), NOW)))
                .collect::<Vec<_>>()
        };
        assert_eq!(statuses(slow), statuses(fast));
    }

    #[test]
    fn sequence_cycles_in_order() {
        let mut p = MockProvider::new(config(EXAMPLE), 0);
        for round in 0..3 {
            let r = p.respond(&hello(false, false), NOW);
            assert_eq!(status_of(&r), Some(429), "round {round}");
            let body = json_body(&r);
            assert_eq!(body["error"]["type"], "requests");
            assert_eq!(body["error"]["code"], "rate_limit_exceeded");
            assert!(response(&r).1.get("retry-after").is_none());

            let r = p.respond(&hello(false, false), NOW);
            assert_eq!(status_of(&r), Some(503));
            assert_eq!(response(&r).1["retry-after"], "1");
            let body = json_body(&r);
            assert_eq!(body["error"]["type"], "server_error");
            assert_eq!(body["error"]["code"], Value::Null);
            assert_eq!(body["error"]["param"], Value::Null);

            let r = p.respond(&hello(false, false), NOW);
            assert_eq!(r.outcome, MockOutcome::Transport(TransportErrorKind::Reset));

            let r = p.respond(&hello(false, false), NOW);
            assert_eq!(status_of(&r), Some(200));
            assert_eq!(json_body(&r)["object"], "chat.completion");
        }
        assert_eq!(p.calls(), 12);
    }

    #[test]
    fn scripted_statuses_bodies_and_transports() {
        let c = config(
            r#"{"failures":{"sequence":[400,500,{"status":200,"body":{"not":"a completion"}},{"status":502,"body":{"error":"custom"}},"refused","timeout",{"status":201}]}}"#,
        );
        let mut p = MockProvider::new(c, 0);
        let mut next = || p.respond(&hello(false, false), NOW);
        let r = next();
        assert_eq!(status_of(&r), Some(400));
        assert_eq!(json_body(&r)["error"]["type"], "invalid_request_error");
        let r = next();
        assert_eq!(status_of(&r), Some(500));
        assert_eq!(json_body(&r)["error"]["type"], "server_error");
        let r = next();
        assert_eq!(
            (status_of(&r), json_body(&r)),
            (Some(200), json!({"not": "a completion"}))
        );
        let r = next();
        assert_eq!(
            (status_of(&r), json_body(&r)),
            (Some(502), json!({"error": "custom"}))
        );
        assert_eq!(
            next().outcome,
            MockOutcome::Transport(TransportErrorKind::Refused)
        );
        assert_eq!(
            next().outcome,
            MockOutcome::Transport(TransportErrorKind::Timeout)
        );
        let r = next();
        assert_eq!(status_of(&r), Some(201));
        assert_eq!(json_body(&r)["object"], "chat.completion");
    }

    #[test]
    fn failure_probability_matches_the_observed_rate() {
        let c = config(r#"{"failures":{"probability":0.2,"steps":[429,"reset"]}}"#);
        let mut p = MockProvider::new(c, 9);
        let (mut rate_limited, mut reset, mut ok) = (0, 0, 0);
        for _ in 0..10_000 {
            match status_of(&p.respond(&hello(false, false), NOW)) {
                Some(429) => rate_limited += 1,
                None => reset += 1,
                Some(200) => ok += 1,
                other => panic!("{other:?}"),
            }
        }
        // Expected 1000 / 1000 / 8000, sd ~ 30 and 40.
        assert!((850..1150).contains(&rate_limited), "{rate_limited}");
        assert!((850..1150).contains(&reset), "{reset}");
        assert!((7800..8200).contains(&ok), "{ok}");

        // The default failure is a 503.
        let mut p = MockProvider::new(config(r#"{"failures":{"probability":1}}"#), 0);
        assert_eq!(status_of(&p.respond(&hello(false, false), NOW)), Some(503));
        let mut p = MockProvider::new(config(r#"{"failures":{"probability":0}}"#), 0);
        assert!((0..1000).all(|_| status_of(&p.respond(&hello(false, false), NOW)) == Some(200)));
    }

    fn draws(model: &str, n: usize) -> Vec<f64> {
        let model: LatencyModel = serde_json::from_str(model).unwrap();
        let mut rng = Rng::new(2024);
        let mut v: Vec<f64> = (0..n)
            .map(|_| model.sample(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    #[test]
    fn lognormal_median_and_spread() {
        let v = draws(r#"{"kind":"lognormal","median_ms":20,"sigma":0.5}"#, 10_000);
        let median = v[5_000];
        assert!((19.0..21.0).contains(&median), "median {median}");
        // exp(0.5 * 1.2816) = 1.898: the 90th percentile sits near 38 ms.
        let p90 = v[9_000];
        assert!((35.0..41.0).contains(&p90), "p90 {p90}");
        assert!(v[0] > 0.0);

        let v = draws(r#"{"kind":"lognormal","median_ms":20,"sigma":0}"#, 100);
        assert!(v.iter().all(|&x| (x - 20.0).abs() < 1e-6));
    }

    #[test]
    fn fixed_uniform_and_tail() {
        assert!(
            draws(r#"{"kind":"fixed","ms":20}"#, 100)
                .iter()
                .all(|&x| (x - 20.0).abs() < 1e-6)
        );
        let v = draws(r#"{"kind":"uniform","min_ms":5,"max_ms":50}"#, 10_000);
        assert!(v[0] >= 5.0 && v[9_999] <= 50.0);
        assert!((26.0..29.5).contains(&v[5_000]), "{}", v[5_000]);

        let v = draws(
            r#"{"kind":"fixed","ms":1,"tail":{"probability":0.1,"min_ms":500,"max_ms":2000}}"#,
            10_000,
        );
        let slow: Vec<f64> = v.iter().copied().filter(|&x| x > 1.5).collect();
        assert!((880..1120).contains(&slow.len()), "{}", slow.len());
        assert!(slow.iter().all(|&x| (500.0..=2000.0).contains(&x)));
    }

    #[test]
    fn sampling_never_panics_on_extreme_parameters() {
        let mut rng = Rng::new(1);
        for base in [
            LatencyBase::Lognormal {
                median_ms: 1e300,
                sigma: 50.0,
            },
            LatencyBase::Fixed { ms: f64::INFINITY },
            LatencyBase::Fixed { ms: -5.0 },
            LatencyBase::Fixed { ms: f64::NAN },
        ] {
            let model = LatencyModel { base, tail: None };
            for _ in 0..100 {
                model.sample(&mut rng);
            }
        }
    }

    #[test]
    fn completion_body_is_a_valid_chat_completion() {
        let mut p = MockProvider::new(MockConfig::default(), 0);
        let r = p.respond(&hello(false, false), NOW);
        let (status, headers, _) = response(&r);
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["date"], "Fri, 29 Sep 2023 16:26:37 GMT");
        assert!(
            headers["x-request-id"]
                .to_str()
                .unwrap()
                .starts_with("req_")
        );
        assert_eq!(r.latency, Duration::from_millis(1));
        let body = json_body(&r);
        assert_eq!(body["id"], "chatcmpl-mock-0");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["created"], NOW);
        assert_eq!(body["model"], "gpt-4o-mini");
        let choice = &body["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(choice["logprobs"], Value::Null);
        assert_eq!(
            choice["message"],
            json!({"role": "assistant", "content": "echo: hello world", "refusal": null})
        );
        let usage = &body["usage"];
        assert_eq!(usage["completion_tokens"], 3);
        assert_eq!(usage["prompt_tokens"], 4 * 4 + 2 + 2 + 2 + 2);
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(
                usage["prompt_tokens"].as_u64().unwrap()
                    + usage["completion_tokens"].as_u64().unwrap()
            )
        );

        let mut p = MockProvider::new(config(r#"{"reply":"fixed text"}"#), 0);
        assert_eq!(
            json_body(&p.respond(&hello(false, false), NOW))["choices"][0]["message"]["content"],
            "fixed text"
        );
        // The second call has the next id.
        assert_eq!(
            json_body(&p.respond(&hello(false, false), NOW))["id"],
            "chatcmpl-mock-1"
        );
    }

    /// Splits SSE pieces into their `data:` payloads, checking each piece is one whole event.
    fn sse_data(body: &[Bytes]) -> Vec<String> {
        body.iter()
            .map(|piece| {
                let text = std::str::from_utf8(piece).unwrap();
                let data = text
                    .strip_prefix("data: ")
                    .and_then(|t| t.strip_suffix("\n\n"));
                let data = data.unwrap_or_else(|| panic!("not one SSE event: {text:?}"));
                assert!(!data.contains('\n'), "{text:?}");
                data.to_owned()
            })
            .collect()
    }

    fn check_chunk(chunk: &Value, id: &str) {
        assert_eq!(chunk["id"], id);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["created"], NOW);
        assert_eq!(chunk["model"], "gpt-4o-mini");
        for choice in chunk["choices"].as_array().unwrap() {
            assert_eq!(choice["index"], 0);
            assert!(choice["delta"].is_object());
            assert!(
                choice.get("finish_reason").is_some(),
                "finish_reason is required: {chunk}"
            );
            assert_eq!(choice["logprobs"], Value::Null);
        }
    }

    #[test]
    fn stream_is_sse_chunks_then_done() {
        for include_usage in [false, true] {
            let mut p = MockProvider::new(
                config(r#"{"reply":"  Hello there,  general\tKenobi! "}"#),
                0,
            );
            let r = p.respond(&hello(true, include_usage), NOW);
            let (status, headers, body) = response(&r);
            assert_eq!(status, 200);
            assert_eq!(headers["content-type"], "text/event-stream");
            let data = sse_data(body);
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
            assert_eq!(data.iter().filter(|d| *d == "[DONE]").count(), 1);
            let chunks: Vec<Value> = data[..data.len() - 1]
                .iter()
                .map(|d| serde_json::from_str(d).unwrap())
                .collect();
            for chunk in &chunks {
                check_chunk(chunk, "chatcmpl-mock-0");
            }
            assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
            let text: String = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect::<String>();
            assert_eq!(text, "  Hello there,  general\tKenobi! ");
            let content_chunks = chunks
                .iter()
                .filter(|c| c["choices"][0]["delta"]["content"].is_string())
                .count();
            assert_eq!(content_chunks, 1 + 4, "role chunk + one per word");
            let finish: Vec<&Value> = chunks
                .iter()
                .filter(|c| c["choices"][0]["finish_reason"].is_string())
                .collect();
            assert_eq!(finish.len(), 1);
            assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
            assert_eq!(finish[0]["choices"][0]["delta"], json!({}));
            let last = chunks.last().unwrap();
            if include_usage {
                assert_eq!(last["choices"], json!([]));
                assert_eq!(last["usage"]["completion_tokens"], 4);
                assert_eq!(chunks.len(), 1 + 4 + 1 + 1);
            } else {
                assert_eq!(last["choices"][0]["finish_reason"], "stop");
                assert!(chunks.iter().all(|c| c.get("usage").is_none()));
                assert_eq!(chunks.len(), 1 + 4 + 1);
            }
        }
    }

    #[test]
    fn words_keep_their_leading_space() {
        assert_eq!(words("echo: hello world"), ["echo:", " hello", " world"]);
        assert_eq!(words(" a  b "), [" a", "  b "]);
        assert_eq!(words("one"), ["one"]);
        assert_eq!(words("   "), ["   "]);
        assert!(words("").is_empty());
        assert_eq!(words("é ü"), ["é", " ü"]);
    }

    #[test]
    fn malformed_requests_get_what_a_real_server_says() {
        let mut p = MockProvider::new(MockConfig::default(), 0);
        let raw = |body: &'static str| {
            http::Request::post("http://mock/v1/chat/completions")
                .body(Bytes::from_static(body.as_bytes()))
                .unwrap()
        };
        for (req, status, param) in [
            (raw("not json"), 400, "body"),
            (raw(r#"{"model":"m"}"#), 400, "messages"),
            (raw(r#"{"model":"m","messages":[]}"#), 400, "messages"),
            (
                raw(r#"{"messages":[{"role":"user","content":"hi"}]}"#),
                400,
                "model",
            ),
            (
                http::Request::post("http://mock/v1/embeddings")
                    .body(Bytes::from_static(b"{}"))
                    .unwrap(),
                404,
                "url",
            ),
            (
                http::Request::get("http://mock/v1/chat/completions")
                    .body(Bytes::new())
                    .unwrap(),
                404,
                "url",
            ),
        ] {
            let r = p.respond(&req, NOW);
            assert_eq!(status_of(&r), Some(status), "{req:?}");
            let body = json_body(&r);
            assert_eq!(body["error"]["type"], "invalid_request_error");
            assert_eq!(body["error"]["param"], param);
            assert!(body["error"]["message"].is_string());
            assert_eq!(body["error"]["code"], Value::Null);
        }
        // No user message: an empty echo, still a valid answer.
        let r = p.respond(
            &request(json!({"model":"m","messages":[{"role":"system","content":"x"}]})),
            NOW,
        );
        assert_eq!(json_body(&r)["choices"][0]["message"]["content"], "echo: ");
    }
}
