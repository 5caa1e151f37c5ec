//! Per-call latency of the tokio [`Router`] against real HTTP providers (the Python bench's Rust
//! baseline, `python/bench/run.py`):
//!
//! ```text
//! cargo run --release -p f3dx-router-tokio --example latency -- \
//!     --base-url http://127.0.0.1:PORT/a/v1 [--base-url ...] [--requests 2000] \
//!     [--concurrency 1] [--warmup 200] [--policy sequential|hedged] [--hedge-k 2] \
//!     [--raw] [--current-thread] [--samples]
//! ```
//!
//! Each `--base-url` is one OpenAI-shape provider, in preference order. `concurrency` tasks share
//! one router; each call parses the same request bytes into a `ChatRequest` (as a caller holding
//! JSON would) and awaits `chat_completions`, timed with an `Instant` around both. Prints one JSON
//! line: `{"requests", "concurrency", "errors", "p50_us", "p99_us", "mean_us", "calls_per_s",
//! "cpu_us_per_call"}`; the last is the CPU time of every thread of the process over the measured
//! calls, divided by their number (Linux: `/proc/self/task/*/schedstat`; `null` elsewhere).
//! `--samples` adds `"samples_ns"`, every call's latency in call order (the bench's paired
//! rounds pool them with other clients' samples).
//!
//! `--raw` measures the transport floor instead: no router, one `reqwest` client built like the
//! router's (HTTP/1.1 keep-alive, `TCP_NODELAY`) POSTs the same bytes to the first base URL's
//! `/chat/completions` and reads the whole body.
//!
//! The loop runs on a multi-thread runtime (tokio's default workers), or with `--current-thread`
//! on one current-thread runtime: every hop on one thread, as the Python binding's sync calls run.

use f3dx_router_core::{ChatRequest, RouterConfig};
use f3dx_router_tokio::Router;
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BODY: &[u8] = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;

struct Args {
    base_urls: Vec<String>,
    requests: usize,
    concurrency: usize,
    warmup: usize,
    policy: String,
    hedge_k: usize,
    raw: bool,
    current_thread: bool,
    samples: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        base_urls: Vec::new(),
        requests: 2000,
        concurrency: 1,
        warmup: 200,
        policy: "sequential".to_owned(),
        hedge_k: 2,
        raw: false,
        current_thread: false,
        samples: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(name) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{name}: {e}"));
        match name.as_str() {
            "--base-url" => args.base_urls.push(value()?),
            "--requests" => args.requests = number(value()?)?,
            "--concurrency" => args.concurrency = number(value()?)?.max(1),
            "--warmup" => args.warmup = number(value()?)?,
            "--policy" => args.policy = value()?,
            "--hedge-k" => args.hedge_k = number(value()?)?,
            "--raw" => args.raw = true,
            "--current-thread" => args.current_thread = true,
            "--samples" => args.samples = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.base_urls.is_empty() {
        return Err("at least one --base-url".to_owned());
    }
    Ok(args)
}

/// What one call goes through: the router, or (`--raw`) a bare reqwest client.
#[derive(Clone)]
enum Target {
    Router(Router),
    Raw(reqwest::Client, Arc<str>),
}

impl Target {
    async fn call(&self) -> bool {
        match self {
            Target::Router(router) => {
                let request = ChatRequest::from_json(BODY).expect("valid request");
                router.chat_completions(request).await.is_ok()
            }
            Target::Raw(client, url) => {
                let sent = client
                    .post(&**url)
                    .header("content-type", "application/json")
                    .header("authorization", "Bearer sk-bench")
                    .body(BODY)
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status().is_success() => resp.bytes().await.is_ok(),
                    _ => false,
                }
            }
        }
    }
}

/// Runs `total` calls over `concurrency` tasks; returns each call's latency and the wall time.
async fn run(
    router: &Target,
    total: usize,
    concurrency: usize,
) -> (Vec<Duration>, usize, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for _ in 0..concurrency {
        let (router, next) = (router.clone(), next.clone());
        tasks.spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0;
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let ok = router.call().await;
                samples.push(t.elapsed());
                errors += usize::from(!ok);
            }
            (samples, errors)
        });
    }
    let mut samples = Vec::with_capacity(total);
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        let (s, e) = done.expect("worker task");
        samples.extend(s);
        errors += e;
    }
    (samples, errors, start.elapsed())
}

/// CPU time so far of every live thread of this process (the first field of each thread's
/// `schedstat`, in ns), or `None` where there is no procfs.
fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

fn percentile_us(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // The same index rule as the Python bench: floor(q * n), clamped.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = ((q * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e6
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = if args.current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = builder.enable_all().build().expect("tokio runtime");
    runtime.block_on(measure(args))
}

async fn measure(args: Args) -> ExitCode {
    let providers: Vec<_> = args
        .base_urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            json!({"name": format!("p{i}"), "kind": "openai", "base_url": url, "api_key": "sk-bench"})
        })
        .collect();
    let mut config = json!({"providers": providers, "policy": args.policy});
    if args.policy == "hedged" {
        config["hedge_k"] = json!(args.hedge_k);
    }
    let config = match RouterConfig::from_json(config.to_string().as_bytes()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("config: {e}");
            return ExitCode::from(2);
        }
    };
    let router = if args.raw {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .expect("client");
        let url = format!("{}/chat/completions", args.base_urls[0]);
        Target::Raw(client, url.into())
    } else {
        Target::Router(Router::new(config).expect("router"))
    };

    run(&router, args.warmup, args.concurrency).await;
    let cpu_before = process_cpu();
    let (mut samples, errors, wall) = run(&router, args.requests, args.concurrency).await;
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let in_order: Option<Vec<u128>> = args
        .samples
        .then(|| samples.iter().map(Duration::as_nanos).collect());
    samples.sort_unstable();
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64;
    let mut line = json!({
        "requests": samples.len(),
        "concurrency": args.concurrency,
        "errors": errors,
        "p50_us": percentile_us(&samples, 0.50),
        "p99_us": percentile_us(&samples, 0.99),
        "mean_us": mean * 1e6,
        "calls_per_s": samples.len() as f64 / wall.as_secs_f64(),
        "cpu_us_per_call": cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / samples.len() as f64),
    });
    if let Some(in_order) = in_order {
        line["samples_ns"] = json!(in_order);
    }
    println!("{line}");
    ExitCode::SUCCESS
}
