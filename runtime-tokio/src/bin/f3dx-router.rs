//! `f3dx-router`: route one chat request from the command line, check a router config, or route
//! a batch and print what the router learned about each provider.
//!
//! ```text
//! f3dx-router chat --config router.json [--stream] [--stats] [--model M] "prompt"
//! f3dx-router check --config router.json
//! f3dx-router stats --config router.json [--requests N] [--model M]
//! ```
//!
//! Keys come from the environment variables the config names in `api_key_env`; they are never
//! printed. See `f3dx-router --help` for the exit codes.

use f3dx_router_core::{
    AttemptRecord, BreakerStats, ChatRequest, ConfigError, PolicyKind, ProviderKind, ProviderStats,
    RouteError, RouterConfig,
};
use f3dx_router_tokio::{Router, RouterBuildError};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
f3dx-router: route an OpenAI-shape chat request through the providers of a router config

USAGE:
    f3dx-router chat --config FILE [--stream] [--stats] [--model MODEL] PROMPT
    f3dx-router check --config FILE
    f3dx-router stats --config FILE [--requests N] [--model MODEL]
    f3dx-router --help | --version

COMMANDS:
    chat     Send PROMPT as one user message and print the answer text on stdout (with
             --stream, each content delta as it arrives). A one-line route summary (provider,
             every attempt with its outcome and latency) goes to stderr.
    check    Validate the config, check every api_key_env variable is set, and list the
             providers (never their keys).
    stats    Route N requests (default 200, 16 at a time; each a short user message) and print
             what the router then knows about each provider: attempts and how they ended,
             latency (peak EWMA, p50, p99), breaker, Retry-After cooldown, budget left. Made
             for `mock` providers: with real ones, every request is a billed call.

OPTIONS:
    -c, --config FILE    Router config (JSON; the same format as RouterConfig::from_json)
    -s, --stream         Stream the answer (\"stream\": true)
        --stats          After `chat`, print the provider stats table on stderr
    -n, --requests N     How many requests `stats` routes (default 200)
    -m, --model MODEL    The requested model (default: gpt-4o-mini); each provider's `model`
                         or `model_map` may rename it
    -h, --help           Print this help
    -V, --version        Print the version

    PROMPT may be `-` to read it from stdin. `--` ends the options.

EXIT CODES:
    0  success (for `stats`: the batch was routed, whatever each request's outcome)
    1  the request was routed and failed (the attempts are listed on stderr)
    2  usage error
    3  config error: file unreadable, invalid config (the field is named), or an
       api_key_env variable not set
";

const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// Requests `stats` routes by default, and how many at a time.
const DEFAULT_STATS_REQUESTS: usize = 200;
const STATS_CONCURRENCY: usize = 16;

/// Exit codes (see `USAGE`).
const EXIT_ROUTE: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CONFIG: u8 = 3;

#[derive(Debug)]
enum Command {
    Help,
    Version,
    Chat {
        config: PathBuf,
        stream: bool,
        stats: bool,
        model: String,
        prompt: String,
    },
    Check {
        config: PathBuf,
    },
    Stats {
        config: PathBuf,
        requests: usize,
        model: String,
    },
}

/// A failure to report on stderr, with its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: format!("{}\n\nRun `f3dx-router --help` for usage.", message.into()),
        }
    }

    fn config(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_CONFIG,
            message: message.into(),
        }
    }
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, Failure> {
    let mut args = args.into_iter();
    let Some(command) = args.next() else {
        return Err(Failure::usage(
            "error: a command is required (chat, check or stats)",
        ));
    };
    match command.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "-V" | "--version" => return Ok(Command::Version),
        "chat" | "check" | "stats" => {}
        other => {
            return Err(Failure::usage(format!(
                "error: unknown command {other:?} (expected chat, check or stats)"
            )));
        }
    }
    let chat = command == "chat";
    let batch = command == "stats";
    let mut config = None;
    let mut stream = false;
    let mut stats = false;
    let mut requests = DEFAULT_STATS_REQUESTS;
    let mut model = None;
    let mut positional = Vec::new();
    let mut options_done = false;
    while let Some(arg) = args.next() {
        if options_done || arg == "-" || !arg.starts_with('-') {
            positional.push(arg);
            continue;
        }
        // `--name=value` as well as `--name value`.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| Failure::usage(format!("error: {name} needs {what}")))
        };
        match name.as_str() {
            "--" => options_done = true,
            "-h" | "--help" => return Ok(Command::Help),
            "-c" | "--config" => config = Some(PathBuf::from(value("a file")?)),
            "-s" | "--stream" if chat && inline.is_none() => stream = true,
            "--stats" if chat && inline.is_none() => stats = true,
            "-n" | "--requests" if batch => {
                requests = value("a number")?
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        Failure::usage("error: --requests must be a whole number > 0")
                    })?;
            }
            "-m" | "--model" if chat || batch => {
                let m = value("a model name")?;
                if m.is_empty() {
                    return Err(Failure::usage("error: --model must not be empty"));
                }
                model = Some(m);
            }
            _ => {
                return Err(Failure::usage(format!(
                    "error: unknown option {arg:?} for `{command}`"
                )));
            }
        }
    }
    let Some(config) = config else {
        return Err(Failure::usage(format!(
            "error: `{command}` needs --config FILE"
        )));
    };
    if !chat {
        if let Some(extra) = positional.first() {
            return Err(Failure::usage(format!(
                "error: unexpected argument {extra:?} for `{command}`"
            )));
        }
        if batch {
            return Ok(Command::Stats {
                config,
                requests,
                model: model.unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
            });
        }
        return Ok(Command::Check { config });
    }
    let prompt = match positional.len() {
        0 => return Err(Failure::usage("error: `chat` needs a PROMPT")),
        1 => positional.pop().unwrap_or_default(),
        _ => {
            return Err(Failure::usage(format!(
                "error: `chat` takes one PROMPT, got {} arguments (quote the prompt)",
                positional.len()
            )));
        }
    };
    Ok(Command::Chat {
        config,
        stream,
        stats,
        model: model.unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
        prompt,
    })
}

/// Reads and validates a config; every error names the file and, for an invalid config, the
/// field (core's `ConfigError` does, and never echoes a key).
fn load_config(path: &Path) -> Result<RouterConfig, Failure> {
    let bytes = std::fs::read(path).map_err(|e| {
        Failure::config(format!(
            "error: cannot read config file {}: {e}",
            path.display()
        ))
    })?;
    RouterConfig::from_json(&bytes).map_err(|e| config_error(path, &e))
}

fn config_error(path: &Path, error: &ConfigError) -> Failure {
    Failure::config(format!("error: {}: {error}", path.display()))
}

fn kind_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Mock => "mock",
    }
}

fn check(path: &Path) -> Result<(), Failure> {
    let config = load_config(path)?;
    let mut out = std::io::stdout().lock();
    let policy = match config.policy {
        PolicyKind::Hedged => format!(
            "hedged (k={}, delay {})",
            config.effective_hedge_k(),
            config
                .hedge_delay_ms
                .unwrap_or(f3dx_router_core::config::HedgeDelaySetting::Fixed(0))
        ),
        other => other.name().to_owned(),
    };
    let _ = writeln!(out, "{}: valid", path.display());
    let _ = writeln!(out, "policy: {policy}");
    if let Some(ms) = config.deadline_ms {
        let _ = writeln!(out, "deadline: {ms} ms");
    }
    let _ = writeln!(
        out,
        "providers ({}, in preference order):",
        config.providers.len()
    );
    let mut missing = Vec::new();
    for (i, p) in config.providers.iter().enumerate() {
        let target = match p.kind {
            ProviderKind::Mock => "in-process".to_owned(),
            // Without a password or query values (a key may sit in `?key=`).
            _ => f3dx_router_core::secret::redact_url(&p.base_url),
        };
        // A key pasted into `api_key_env` is not printed as the variable's name.
        let shown = |var: &str| {
            if f3dx_router_core::secret::looks_like_variable_name(var) {
                var.to_owned()
            } else {
                "(a name that is not shown)".to_owned()
            }
        };
        let key = match (&p.api_key_env, &p.api_key) {
            (Some(var), _) if std::env::var_os(var).is_some() => {
                format!("key from ${} (set)", shown(var))
            }
            (Some(var), _) => {
                let var = shown(var);
                missing.push(format!("providers[{i}].api_key_env: ${var} is not set"));
                format!("key from ${var} (NOT SET)")
            }
            (None, Some(_)) => "key inline (api_key)".to_owned(),
            (None, None) if p.kind == ProviderKind::Mock => "no key needed".to_owned(),
            (None, None) => "no key".to_owned(),
        };
        let mut extra = String::new();
        if let Some(model) = &p.model {
            extra.push_str(&format!(", model {model}"));
        }
        if !p.model_map.is_empty() {
            let map: Vec<String> = p
                .model_map
                .iter()
                .map(|(from, to)| format!("{from}->{to}"))
                .collect();
            extra.push_str(&format!(", model_map {}", map.join(" ")));
        }
        if let Some(ms) = p.timeout_ms {
            extra.push_str(&format!(", timeout {ms} ms"));
        }
        let _ = writeln!(
            out,
            "  {}. {} ({}) {target}, {key}{extra}",
            i + 1,
            p.name,
            kind_name(p.kind)
        );
    }
    let _ = out.flush();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure::config(format!(
            "error: {}: {}",
            path.display(),
            missing.join("; ")
        )))
    }
}

fn chat(path: &Path, stream: bool, stats: bool, model: &str, prompt: &str) -> Result<(), Failure> {
    let config = load_config(path)?;
    let prompt = if prompt == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| Failure::usage(format!("error: reading the prompt from stdin: {e}")))?;
        text
    } else {
        prompt.to_owned()
    };
    let request = ChatRequest::from_value(json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": stream,
    }))
    .map_err(|e| Failure::usage(format!("error: {e}")))?;
    let (router, runtime) = start(path, config)?;
    let started = Instant::now();
    let outcome = runtime.block_on(async {
        if stream {
            stream_chat(&router, request).await
        } else {
            let routed = router.chat_completions(request).await?;
            print_completion(&routed.body);
            Ok(routed)
        }
    });
    let elapsed = started.elapsed();
    if stats {
        eprint!("{}", stats_table(&router.stats()));
    }
    match outcome {
        Ok(routed) => {
            eprintln!(
                "routed via {} in {}; attempts: {}",
                routed.provider_name,
                ms(elapsed),
                attempts_line(&routed.attempts)
            );
            Ok(())
        }
        Err(error) => Err(route_failure(&error, elapsed)),
    }
}

/// The router for `config` and a runtime to drive it.
fn start(path: &Path, config: RouterConfig) -> Result<(Router, tokio::runtime::Runtime), Failure> {
    let router = Router::new(config).map_err(|e| match e {
        RouterBuildError::Config(e) => config_error(path, &e),
        other => Failure {
            code: EXIT_CONFIG,
            message: format!("error: {other}"),
        },
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            code: EXIT_ROUTE,
            message: format!("error: cannot start the async runtime: {e}"),
        })?;
    Ok((router, runtime))
}

/// Routes `requests` requests, [`STATS_CONCURRENCY`] at a time, then prints the stats table on
/// stdout and a one-line summary of the outcomes on stderr.
fn stats(path: &Path, requests: usize, model: &str) -> Result<(), Failure> {
    let config = load_config(path)?;
    let (router, runtime) = start(path, config)?;
    let started = Instant::now();
    let served = runtime.block_on(async {
        futures_util::stream::iter(0..requests)
            .map(|i| {
                let router = router.clone();
                let request = ChatRequest::from_value(json!({
                    "model": model,
                    "messages": [{"role": "user", "content": format!("request {i}")}],
                }));
                async move {
                    match request {
                        Ok(request) => router.chat_completions(request).await.is_ok(),
                        Err(_) => false,
                    }
                }
            })
            .buffer_unordered(STATS_CONCURRENCY)
            .filter(|ok| std::future::ready(*ok))
            .count()
            .await
    });
    print!("{}", stats_table(&router.stats()));
    let _ = std::io::stdout().flush();
    eprintln!(
        "{requests} requests in {}: {served} served, {} failed",
        ms(started.elapsed()),
        requests - served
    );
    Ok(())
}

/// One line per provider, in config order, under a header: what `Router::stats` says.
fn stats_table(stats: &[ProviderStats]) -> String {
    let width = stats.iter().map(|s| s.name.len()).max().unwrap_or(0).max(8);
    let mut out = format!(
        "{:<width$} {:>8} {:>8} {:>6} {:>6} {:>8} {:>6} {:>8} {:>8} {:>8}  {:<14} {:<10} budget\n",
        "provider",
        "requests",
        "ok",
        "soft",
        "hard",
        "timeouts",
        "flight",
        "ewma ms",
        "p50 ms",
        "p99 ms",
        "breaker",
        "cooldown"
    );
    let latency = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    let seconds = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    for s in stats {
        let breaker = match s.breaker {
            BreakerStats::Open { for_ } => format!("open {}", seconds(for_)),
            other => other.name().to_owned(),
        };
        let cooldown = s.cooldown_until.map_or("-".to_owned(), seconds);
        let b = &s.budget;
        let mut budget: Vec<String> = Vec::new();
        if let Some(n) = b.requests_remaining {
            budget.push(format!("{n} requests"));
        }
        if let Some(n) = b.tokens_remaining {
            budget.push(format!("{n} tokens"));
        }
        if let Some(d) = b.resets_in {
            budget.push(format!("full in {}", seconds(d)));
        }
        if b.learned {
            budget.push("learned".to_owned());
        }
        let budget = if budget.is_empty() {
            "-".to_owned()
        } else {
            budget.join(", ")
        };
        out.push_str(&format!(
            "{:<width$} {:>8} {:>8} {:>6} {:>6} {:>8} {:>6} {:>8} {:>8} {:>8}  {breaker:<14} {cooldown:<10} {budget}\n",
            s.name,
            s.requests,
            s.successes,
            s.soft_failures,
            s.hard_failures,
            s.timeouts,
            s.in_flight,
            latency(s.latency_ewma_ms),
            latency(s.latency_p50_ms),
            latency(s.latency_p99_ms),
        ));
    }
    out
}

/// Prints each content delta as it arrives; returns the route once the stream has ended.
async fn stream_chat(
    router: &Router,
    request: ChatRequest,
) -> Result<f3dx_router_core::Routed, RouteError> {
    let mut chunks = router.chat_completions_stream(request);
    let mut out = std::io::stdout();
    let mut printed_any = false;
    let mut ended_with_newline = true;
    while let Some(item) = chunks.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(error) => {
                if printed_any && !ended_with_newline {
                    let _ = writeln!(out);
                }
                return Err(error);
            }
        };
        let Ok(value) = serde_json::from_slice::<Value>(&chunk) else {
            continue;
        };
        if let Some(text) = value
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
            && !text.is_empty()
        {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            printed_any = true;
            ended_with_newline = text.ends_with('\n');
        }
    }
    if !ended_with_newline {
        let _ = writeln!(out);
    }
    let _ = out.flush();
    // A stream that ended without an error item has its route.
    chunks.routed().cloned().ok_or(RouteError::Cancelled {
        attempts: Vec::new(),
    })
}

/// Prints the answer text of a `chat.completion`; a message without text (tool calls, say) is
/// printed as its JSON.
fn print_completion(body: &[u8]) {
    let mut out = std::io::stdout().lock();
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match value.pointer("/choices/0/message") {
        Some(message) => match message.get("content").and_then(Value::as_str) {
            Some(text) => {
                let _ = out.write_all(text.as_bytes());
                if !text.ends_with('\n') {
                    let _ = writeln!(out);
                }
            }
            None => {
                let _ = writeln!(out, "{message}");
            }
        },
        None => {
            let _ = out.write_all(body);
            let _ = writeln!(out);
        }
    }
    let _ = out.flush();
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn attempts_line(attempts: &[AttemptRecord]) -> String {
    if attempts.is_empty() {
        return "none".to_owned();
    }
    attempts
        .iter()
        .map(|a| format!("{} {} in {}", a.provider_name, a.outcome, ms(a.latency)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn route_failure(error: &RouteError, elapsed: Duration) -> Failure {
    let mut message = format!("error: {error} ({} total)", ms(elapsed));
    if let RouteError::HardFailure { body, .. } = error
        && !body.is_empty()
    {
        let text = String::from_utf8_lossy(body);
        let text: String = text.chars().take(600).collect();
        message.push_str(&format!("\nprovider said: {}", text.trim_end()));
    }
    let attempts = error.attempts();
    if attempts.is_empty() {
        message.push_str("\nattempts: none");
    } else {
        message.push_str("\nattempts:");
        for (i, a) in attempts.iter().enumerate() {
            message.push_str(&format!(
                "\n  {}. {} {} in {}",
                i + 1,
                a.provider_name,
                a.outcome,
                ms(a.latency)
            ));
        }
    }
    Failure {
        code: EXIT_ROUTE,
        message,
    }
}

fn main() -> ExitCode {
    let result = parse_args(std::env::args().skip(1)).and_then(|command| match command {
        Command::Help => {
            print!("{USAGE}");
            Ok(())
        }
        Command::Version => {
            println!("f3dx-router {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Check { config } => check(&config),
        Command::Chat {
            config,
            stream,
            stats,
            model,
            prompt,
        } => chat(&config, stream, stats, &model, &prompt),
        Command::Stats {
            config,
            requests,
            model,
        } => stats(&config, requests, &model),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
