//! What the tokio `Router` adds over a raw `reqwest` call to the same loopback server.
//!
//! Targets (issue): at most 10 µs median and 25 µs p99 added over a raw reqwest call, and a 429
//! that fails over costs one more upstream round trip plus at most 20 µs.
//!
//! One [`MockServer`] (recording off) and every client share one multi-threaded tokio runtime.
//! Every call is made from a spawned task (as an application's would be), one at a time.
//!
//! | scenario | what one iteration is |
//! |---|---|
//! | `raw` | a `reqwest::Client` configured like the router's POSTs the request JSON to `{base}/chat/completions` and reads the body |
//! | `raw_hedged_k2` | two raw calls to two providers at once, each in its own task (as the router does); the first to finish wins, the other task is aborted |
//! | `raw_429_then_200` | a raw call answered 429, then a raw call answered 200 (two round trips) |
//! | `router_one` | `Router` with one `openai` provider: parse the JSON, route, get the `chat.completion` |
//! | `router_hedged_k2` | `Router`, hedged k=2, delay 0, two providers on the same server |
//! | `router_429_failover` | `Router`, sequential: provider `fail` always answers 429 (no `Retry-After`, so it never cools down), then `ok` answers 200 |
//!
//! Criterion measures each scenario (medians, in `target/criterion/overhead/`); then a plain timed
//! loop (interleaved rounds, every latency recorded with `Instant`) prints p50/p99 per scenario,
//! what each router scenario adds over its raw baseline, and the ratios:
//!
//! ```text
//! cargo bench -p f3dx-router-tokio --bench overhead
//! F3DX_BENCH_SKIP_CRITERION=1 F3DX_BENCH_ITERS=50000 cargo bench -p f3dx-router-tokio --bench overhead
//! ```
//!
//! `F3DX_BENCH_SKIP_CRITERION=1` runs only the percentile table (for a profiler);
//! `F3DX_BENCH_ONLY=raw,router_one` runs only those scenarios' loops.

use bytes::Bytes;
use criterion::Criterion;
use f3dx_router_core::{ChatRequest, RouterConfig};
use f3dx_router_testkit::server::{MockServer, Step};
use f3dx_router_tokio::Router;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

const REQUEST: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello."}]}"#;
const KEY: &str = "sk-bench";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Raw,
    RawHedged,
    Raw429Then200,
    RouterOne,
    RouterHedged,
    Router429,
}

impl Scenario {
    const ALL: [Scenario; 6] = [
        Scenario::Raw,
        Scenario::RawHedged,
        Scenario::Raw429Then200,
        Scenario::RouterOne,
        Scenario::RouterHedged,
        Scenario::Router429,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Raw => "raw",
            Scenario::RawHedged => "raw_hedged_k2",
            Scenario::Raw429Then200 => "raw_429_then_200",
            Scenario::RouterOne => "router_one",
            Scenario::RouterHedged => "router_hedged_k2",
            Scenario::Router429 => "router_429_failover",
        }
    }
}

/// Everything an iteration needs; shared by the tasks that run the iterations.
struct Ctx {
    raw: reqwest::Client,
    body: Bytes,
    url_one: String,
    url_h1: String,
    url_h2: String,
    url_fail: String,
    url_ok: String,
    one: Router,
    hedged: Router,
    failover: Router,
}

/// A `reqwest::Client` built exactly as the router builds its own (`client.rs`): rustls with
/// ring and ALPN h2/http1.1 (unused on plain http: HTTP/1.1), 16 idle per host, no redirects,
/// no proxy, `TCP_NODELAY`.
fn raw_client() -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .pool_max_idle_per_host(16)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(f3dx_router_tokio::DEFAULT_CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .expect("raw client")
}

fn openai(name: &str, server: &MockServer) -> String {
    format!(
        r#"{{"name":"{name}","kind":"openai","base_url":"{}","api_key":"{KEY}","timeout_ms":30000}}"#,
        server.base_url(name)
    )
}

fn router(providers: &[String], extra: &str) -> Router {
    let json = format!(
        r#"{{"providers":[{}]{extra},"deadline_ms":60000}}"#,
        providers.join(",")
    );
    let config = RouterConfig::from_json(json.as_bytes()).expect("bench config is valid");
    Router::new(config).expect("router builds")
}

impl Ctx {
    fn new(server: &MockServer) -> Ctx {
        server.set_recording(false);
        // No Retry-After: the router must not cool `fail` down, so every request tries it first.
        server.set_default("fail", Step::status(429));
        let url = |p: &str| format!("{}/chat/completions", server.base_url(p));
        Ctx {
            raw: raw_client(),
            body: Bytes::from_static(REQUEST.as_bytes()),
            url_one: url("one"),
            url_h1: url("h1"),
            url_h2: url("h2"),
            url_fail: url("fail"),
            url_ok: url("ok"),
            one: router(&[openai("one", server)], ""),
            hedged: router(
                &[openai("h1", server), openai("h2", server)],
                r#","policy":"hedged","hedge_k":2,"hedge_delay_ms":0"#,
            ),
            failover: router(&[openai("fail", server), openai("ok", server)], ""),
        }
    }

    /// One raw POST; returns the status after reading the whole body.
    async fn raw_call(&self, url: &str) -> u16 {
        let response = self
            .raw
            .post(url)
            .header(http::header::AUTHORIZATION, "Bearer sk-bench")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(self.body.clone())
            .send()
            .await
            .expect("raw call");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("raw body");
        black_box(body);
        status
    }

    async fn routed(&self, router: &Router) -> Arc<str> {
        let request = ChatRequest::from_json(self.body.clone()).expect("request parses");
        let routed = router.chat_completions(request).await.expect("routed");
        black_box(&routed.body);
        routed.provider_name
    }

    async fn run(self: &Arc<Self>, scenario: Scenario) {
        match scenario {
            Scenario::Raw => {
                assert_eq!(self.raw_call(&self.url_one).await, 200);
            }
            Scenario::RawHedged => {
                // The router's mechanics without the router: one task per leg, the first to
                // finish wins, the other is aborted (which drops its connection if still busy).
                let leg = |url: fn(&Ctx) -> &str| {
                    let ctx = self.clone();
                    tokio::spawn(async move { ctx.raw_call(url(&ctx)).await })
                };
                let a = leg(|c| &c.url_h1);
                let b = leg(|c| &c.url_h2);
                let status = match futures_util::future::select(a, b).await {
                    futures_util::future::Either::Left((s, other))
                    | futures_util::future::Either::Right((s, other)) => {
                        other.abort();
                        s.expect("raw leg")
                    }
                };
                assert_eq!(status, 200);
            }
            Scenario::Raw429Then200 => {
                assert_eq!(self.raw_call(&self.url_fail).await, 429);
                assert_eq!(self.raw_call(&self.url_ok).await, 200);
            }
            Scenario::RouterOne => {
                black_box(self.routed(&self.one).await);
            }
            Scenario::RouterHedged => {
                black_box(self.routed(&self.hedged).await);
            }
            Scenario::Router429 => {
                let provider = self.routed(&self.failover).await;
                debug_assert_eq!(&*provider, "ok");
                black_box(provider);
            }
        }
    }
}

/// Runs `iters` iterations of `scenario` one after another in one spawned task; returns each
/// iteration's latency in nanoseconds.
fn timed(rt: &Runtime, ctx: &Arc<Ctx>, scenario: Scenario, iters: usize) -> Vec<u64> {
    let ctx = ctx.clone();
    rt.block_on(rt.spawn(async move {
        let mut out = Vec::with_capacity(iters);
        for _ in 0..iters {
            let start = Instant::now();
            ctx.run(scenario).await;
            out.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        out
    }))
    .expect("bench task")
}

fn criterion_benches(c: &mut Criterion, rt: &Runtime, ctx: &Arc<Ctx>) {
    let mut group = c.benchmark_group("overhead");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    for scenario in Scenario::ALL {
        group.bench_function(scenario.name(), |b| {
            b.iter_custom(|iters| {
                let ctx = ctx.clone();
                rt.block_on(rt.spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        ctx.run(scenario).await;
                    }
                    start.elapsed()
                }))
                .expect("bench task")
            });
        });
    }
    group.finish();
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e3
}

struct Stats {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    mean: f64,
    conns_per_1k: f64,
}

fn percentile_table(rt: &Runtime, ctx: &Arc<Ctx>, server: &MockServer, iters: usize) {
    // Many short interleaved rounds: on a small machine the runtime drifts between scheduling
    // modes (every hop on one worker vs ping-pong between two, a 2x difference) that persist
    // for a while; short rounds give every scenario the same mix of modes.
    let rounds: usize = std::env::var("F3DX_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let only = std::env::var("F3DX_BENCH_ONLY").ok();
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|o| o == s.name()))
        })
        .collect();
    let per_round = iters.div_ceil(rounds);
    // Warm up every path (pools full, code hot) before anything is recorded.
    for &s in &scenarios {
        timed(rt, ctx, s, 2_000);
    }
    let mut samples: Vec<Vec<u64>> = vec![Vec::with_capacity(per_round * rounds); scenarios.len()];
    let mut conns = vec![0u64; scenarios.len()];
    // Interleaved rounds, so drift (frequency, neighbours) spreads over every scenario alike.
    for _ in 0..rounds {
        for (i, &s) in scenarios.iter().enumerate() {
            let before = server.connection_count();
            samples[i].extend(timed(rt, ctx, s, per_round));
            conns[i] += server.connection_count() - before;
        }
    }
    let stats: Vec<Stats> = samples
        .iter_mut()
        .zip(&conns)
        .map(|(v, &c)| {
            v.sort_unstable();
            Stats {
                p50: percentile(v, 0.50),
                p90: percentile(v, 0.90),
                p99: percentile(v, 0.99),
                p999: percentile(v, 0.999),
                mean: v.iter().sum::<u64>() as f64 / v.len() as f64 / 1e3,
                conns_per_1k: c as f64 * 1000.0 / v.len() as f64,
            }
        })
        .collect();
    let get = |s: Scenario| scenarios.iter().position(|&x| x == s).map(|i| &stats[i]);

    println!();
    println!(
        "overhead: {} iterations per scenario ({rounds} interleaved rounds), latencies in µs",
        per_round * rounds
    );
    println!(
        "| scenario | p50 | p90 | p99 | p99.9 | mean | new conns / 1k req | baseline | added p50 | added p99 | ratio p50 | ratio p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    for (i, &s) in scenarios.iter().enumerate() {
        let st = &stats[i];
        let baseline = match s {
            Scenario::RouterOne | Scenario::RawHedged | Scenario::Raw429Then200 => {
                Some(Scenario::Raw)
            }
            Scenario::RouterHedged => Some(Scenario::RawHedged),
            Scenario::Router429 => Some(Scenario::Raw429Then200),
            Scenario::Raw => None,
        };
        let cols = match baseline.and_then(|b| get(b).map(|st| (b, st))) {
            Some((b, base)) => format!(
                "{} | {:+.1} | {:+.1} | {:.2} | {:.2}",
                b.name(),
                st.p50 - base.p50,
                st.p99 - base.p99,
                st.p50 / base.p50,
                st.p99 / base.p99
            ),
            None => "- | - | - | - | -".to_owned(),
        };
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {cols} |",
            s.name(),
            st.p50,
            st.p90,
            st.p99,
            st.p999,
            st.mean,
            st.conns_per_1k
        );
    }
    if let (Some(raw), Some(one)) = (get(Scenario::Raw), get(Scenario::RouterOne)) {
        let (a50, a99) = (one.p50 - raw.p50, one.p99 - raw.p99);
        println!();
        println!(
            "router_one vs raw: +{a50:.1} µs p50 (target <= 10: {}), +{a99:.1} µs p99 (target <= 25: {})",
            verdict(a50 <= 10.0),
            verdict(a99 <= 25.0)
        );
        if let Some(hedged) = get(Scenario::RouterHedged) {
            println!(
                "router_hedged_k2 vs raw: +{:.1} µs p50, +{:.1} µs p99",
                hedged.p50 - raw.p50,
                hedged.p99 - raw.p99
            );
        }
        if let Some(r429) = get(Scenario::Router429) {
            // One more upstream round trip = a raw call; the failover may add 20 µs to that.
            let limit = 2.0 * raw.p50 + 20.0;
            println!(
                "router_429_failover p50 {:.1} µs vs 2 x raw p50 + 20 µs = {limit:.1} µs: {}",
                r429.p50,
                verdict(r429.p50 <= limit)
            );
        }
    }
    if let (Some(two), Some(r429)) = (get(Scenario::Raw429Then200), get(Scenario::Router429)) {
        let cost = r429.p50 - two.p50;
        println!(
            "failover cost = router_429_failover - raw_429_then_200: {cost:+.1} µs p50, {:+.1} µs p99 (target <= 20 µs: {})",
            r429.p99 - two.p99,
            verdict(cost <= 20.0)
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let server = rt.block_on(MockServer::start());
    let ctx = Arc::new(rt.block_on(async { Ctx::new(&server) }));

    // The scenarios do what they say before anything is timed.
    rt.block_on(async {
        assert_eq!(&*ctx.routed(&ctx.failover).await, "ok");
        assert_eq!(ctx.raw_call(&ctx.url_fail).await, 429);
    });

    let skip = std::env::var_os("F3DX_BENCH_SKIP_CRITERION").is_some();
    if !skip {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c, &rt, &ctx);
        c.final_summary();
    }

    let iters = std::env::var("F3DX_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    percentile_table(&rt, &ctx, &server, iters);
}
