//! The validity scenario, simulated: three providers under `weighted` (equal weights), two
//! tenants sending structured requests (`response_format` with a 3-property schema), and one
//! provider, `p1`, answering tenant A's requests with schema-invalid JSON 40 % of the time from
//! t = 60 s to t = 180 s. The real [`RouterMachine`] routes; this file plays the providers on a
//! virtual clock (an answer 20..80 ms after its send, drawn from the seed), so a 240 s run takes
//! milliseconds and one seed fixes it. It has its own small loop rather than the general
//! simulator's because its providers answer by tenant and time, which mock providers cannot.
//!
//! [`run`] reports, per 10 s bucket, each tenant's requests, the share served by `p1`, and the
//! share of answers that were invalid (`route.valid == Some(false)`), with the classifier on or
//! off (`validity.classify`).

use f3dx_router_core::rng::Rng;
use f3dx_router_core::{
    Action, AttemptId, ChatRequest, Input, RequestId, RouterConfig, RouterMachine, Time,
};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The degraded provider.
pub const DEGRADED: usize = 1;
/// When p1 starts and stops failing tenant A.
pub const DEGRADED_FROM: Duration = Duration::from_secs(60);
pub const DEGRADED_UNTIL: Duration = Duration::from_secs(180);
/// Share of tenant A's answers from p1 that are invalid meanwhile.
pub const INVALID_SHARE: f64 = 0.4;
/// How long the run lasts, and each tenant's gap between requests (10 requests a second each).
pub const RUN: Duration = Duration::from_secs(240);
pub const GAP: Duration = Duration::from_millis(100);
/// Width of a report bucket.
pub const BUCKET: Duration = Duration::from_secs(10);
pub const TENANTS: [&str; 2] = ["A", "B"];

/// One tenant's traffic in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TenantBucket {
    pub requests: usize,
    pub on_degraded: usize,
    pub invalid: usize,
}

impl TenantBucket {
    /// Share of the bucket's requests served by the degraded provider.
    pub fn degraded_share(&self) -> f64 {
        self.on_degraded as f64 / self.requests.max(1) as f64
    }

    /// Share of the bucket's answers that failed their schema.
    pub fn invalid_rate(&self) -> f64 {
        self.invalid as f64 / self.requests.max(1) as f64
    }
}

/// Buckets in time order: `[tenant A, tenant B]` each.
pub type Buckets = Vec<[TenantBucket; 2]>;

fn config(classify: bool) -> RouterConfig {
    let providers: Vec<_> = (0..3)
        .map(|i| json!({"name": format!("p{i}"), "kind": "openai", "base_url": format!("https://p{i}.sim/v1"), "api_key": "sk-sim"}))
        .collect();
    let json =
        json!({"providers": providers, "policy": "weighted", "validity": {"classify": classify}});
    RouterConfig::from_json(json.to_string().as_bytes()).expect("the scenario's config")
}

fn request(tenant: &str) -> ChatRequest {
    ChatRequest::from_value(json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Extract the order."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "order", "strict": true, "schema": {
            "type": "object",
            "properties": {"item": {"type": "string"}, "quantity": {"type": "integer"}, "gift": {"type": "boolean"}},
            "required": ["item", "quantity", "gift"],
            "additionalProperties": false
        }}}
    }))
    .expect("a valid request")
    .with_tenant(tenant)
    .expect("a valid tenant")
}

fn answer(valid: bool) -> bytes::Bytes {
    let content = if valid {
        r#"{"item":"teapot","quantity":2,"gift":false}"#
    } else {
        r#"{"item":"teapot","quantity":"two"}"#
    };
    let body = json!({"id": "chatcmpl-sim", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]});
    bytes::Bytes::from(body.to_string())
}

#[derive(Debug)]
enum Event {
    Arrive { tenant: usize },
    Answer { attempt: AttemptId, valid: bool },
}

/// Runs the scenario for `seed`, with the classifier on or off.
pub fn run(seed: u64, classify: bool) -> Buckets {
    let mut machine = RouterMachine::new(config(classify), seed).expect("the machine builds");
    let mut rng = Rng::new(seed);
    let requests = [request(TENANTS[0]), request(TENANTS[1])];
    let mut events: BTreeMap<(Time, u64), Event> = BTreeMap::new();
    let mut seq = 0u64;
    let mut schedule = |events: &mut BTreeMap<(Time, u64), Event>, at: Time, e: Event| {
        seq += 1;
        events.insert((at, seq), e);
    };
    // Tenant B starts half a gap after A so arrivals interleave.
    schedule(&mut events, Time::ZERO, Event::Arrive { tenant: 0 });
    schedule(
        &mut events,
        Time::ZERO + GAP / 2,
        Event::Arrive { tenant: 1 },
    );
    let mut tenant_of: HashMap<RequestId, (usize, Time)> = HashMap::new();
    let mut buckets: Buckets =
        vec![[TenantBucket::default(); 2]; (RUN.as_secs() / BUCKET.as_secs()) as usize];
    let mut next_id = 0u64;
    while let Some(((now, _), event)) = events.pop_first() {
        match event {
            Event::Arrive { tenant } => {
                let id = RequestId(next_id);
                next_id += 1;
                tenant_of.insert(id, (tenant, now));
                machine
                    .handle_input(
                        now,
                        Input::Request {
                            id,
                            request: requests[tenant].clone(),
                        },
                    )
                    .expect("fresh ids");
                let next = now + GAP;
                if next - Time::ZERO < RUN {
                    schedule(&mut events, next, Event::Arrive { tenant });
                }
            }
            Event::Answer { attempt, valid } => {
                let inputs = [
                    Input::ResponseHead {
                        attempt,
                        status: 200,
                        headers: http::HeaderMap::new(),
                    },
                    Input::ResponseBody {
                        attempt,
                        chunk: answer(valid),
                    },
                    Input::ResponseEnd { attempt },
                ];
                for input in inputs {
                    machine.handle_input(now, input).expect("no misuse");
                }
            }
        }
        while let Some(action) = machine.poll_action() {
            match action {
                Action::Send {
                    id,
                    attempt,
                    provider,
                    ..
                } => {
                    let t = now - Time::ZERO;
                    let degraded = provider.0 == DEGRADED
                        && tenant_of.get(&id).is_some_and(|(tenant, _)| *tenant == 0)
                        && (DEGRADED_FROM..DEGRADED_UNTIL).contains(&t);
                    let valid = !(degraded && rng.next_f64() < INVALID_SHARE);
                    let latency = Duration::from_millis(20 + rng.below(61));
                    schedule(&mut events, now + latency, Event::Answer { attempt, valid });
                }
                Action::Complete { id, outcome } => {
                    let (tenant, arrived) = tenant_of.remove(&id).expect("a request of the run");
                    let routed = outcome.expect("every answer is served (on_invalid: return)");
                    // Bucketed by the time the request arrived.
                    let last = buckets.len() - 1;
                    let index = ((arrived - Time::ZERO).as_secs() / BUCKET.as_secs()) as usize;
                    let b = &mut buckets[index.min(last)][tenant];
                    b.requests += 1;
                    b.on_degraded += usize::from(routed.provider.0 == DEGRADED);
                    b.invalid += usize::from(routed.valid == Some(false));
                }
                _ => {}
            }
        }
    }
    buckets
}

/// The README's table: one row per bucket, the classifier off then on.
pub fn table(seed: u64) -> String {
    let (off, on) = (run(seed, false), run(seed, true));
    let mut out = format!(
        "seed {seed}: tenant A on p1 / A invalid / B on p1, classifier off | on\n\n| t (s) | A on p1 (off) | A invalid (off) | A on p1 (on) | A invalid (on) | B on p1 (on) |\n|---|---|---|---|---|---|\n"
    );
    let pct = |x: f64| format!("{:.1} %", 100.0 * x);
    for (i, (f, n)) in off.iter().zip(&on).enumerate() {
        let t = i as u64 * BUCKET.as_secs();
        out.push_str(&format!(
            "| {t}-{} | {} | {} | {} | {} | {} |\n",
            t + BUCKET.as_secs(),
            pct(f[0].degraded_share()),
            pct(f[0].invalid_rate()),
            pct(n[0].degraded_share()),
            pct(n[0].invalid_rate()),
            pct(n[1].degraded_share()),
        ));
    }
    out
}
