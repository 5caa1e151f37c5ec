//! The `f3dx-router` binary, run as a process: `chat` (plain, `--stream`, `--stats`), `check`,
//! `stats`, and its
//! errors (usage, missing or invalid config, unset key variable, a failed route), over in-process
//! `mock` providers, plus runs against the mock provider HTTP server on loopback.

use f3dx_router_testkit::server::{MockServer, Step, reply_text};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_f3dx-router");

/// Writes `config` to a fresh file under the temp dir.
fn config_file(config: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "f3dx-router-cli-{}-{}.json",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, config).expect("write the config");
    path
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run f3dx-router")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mock_config() -> PathBuf {
    config_file(
        &json!({"providers": [
            {"name": "flaky", "kind": "mock",
             "mock": {"latency": {"kind": "fixed", "ms": 1}, "failures": {"sequence": [503]}}},
            {"name": "steady", "kind": "mock",
             "mock": {"latency": {"kind": "fixed", "ms": 1}, "reply": "the answer is 42"}},
        ]})
        .to_string(),
    )
}

#[test]
fn help_prints_usage_and_succeeds() {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("f3dx-router chat --config FILE"), "{text}");
    assert!(text.contains("EXIT CODES"), "{text}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["chat", "hello"][..],
        &["chat", "--config"][..],
        &["chat", "--config", "x.json"][..],
        &["check", "--config", "x.json", "extra"][..],
        &["chat", "--config", "x.json", "--bogus", "hi"][..],
    ] {
        let out = run(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("error:"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn chat_prints_the_answer_and_a_route_summary() {
    let config = mock_config();
    let out = run(
        &["chat", "--config", config.to_str().unwrap(), "what?"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "the answer is 42\n");
    let err = stderr(&out);
    assert!(err.contains("routed via steady"), "{err}");
    assert!(
        err.contains("flaky status 503 (soft, failed over)"),
        "{err}"
    );
    assert!(err.contains("steady ok 200"), "{err}");
    assert_eq!(err.lines().count(), 1, "one summary line: {err}");
}

/// `(name, requests, ok, soft, breaker)` of each row of a stats table.
fn stats_rows(table: &str) -> Vec<(String, u64, u64, u64, String)> {
    let mut lines = table.lines();
    let header = lines.next().expect("a header");
    assert!(header.starts_with("provider requests"), "{table}");
    lines
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let n = |i: usize| f[i].parse::<u64>().unwrap_or_else(|_| panic!("{line}"));
            (f[0].to_owned(), n(1), n(2), n(3), f[10].to_owned())
        })
        .collect()
}

#[test]
fn stats_routes_a_batch_and_prints_what_the_router_learned() {
    let config = mock_config();
    let out = run(
        &[
            "stats",
            "--config",
            config.to_str().unwrap(),
            "--requests",
            "40",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // flaky fails every call: five 503s in a row open its breaker (requests already sent to it
    // when the fifth failed, up to one per concurrent request, still fail), steady serves all 40.
    let rows = stats_rows(&stdout(&out));
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (name, requests, ok, soft, breaker) = &rows[0];
    assert_eq!((name.as_str(), *ok, breaker.as_str()), ("flaky", 0, "open"));
    assert!(
        *soft == *requests && (5..=20).contains(requests),
        "{rows:?}"
    );
    assert_eq!(
        rows[1],
        ("steady".to_owned(), 40, 40, 0, "closed".to_owned())
    );
    let err = stderr(&out);
    assert!(
        err.contains("40 requests in") && err.contains("40 served, 0 failed"),
        "{err}"
    );
}

/// The README's `stats` example: `down` fails every call and its breaker opens; `big` and
/// `small` serve everything, `big` no more than its `rpm`/`burst` admit.
#[test]
fn the_learning_example_config_runs_with_stats() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/learning.json");
    let out = run(&["stats", "--config", example], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = stats_rows(&stdout(&out));
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["big", "small", "down"]);
    assert_eq!(rows[0].2 + rows[1].2, 200, "{rows:?}");
    assert!(rows[0].1 >= 100, "big's burst is 100: {rows:?}");
    assert_eq!((rows[2].2, rows[2].4.as_str()), (0, "open"), "{rows:?}");
}

#[test]
fn chat_with_stats_prints_the_table_on_stderr() {
    let config = mock_config();
    let out = run(
        &["chat", "--stats", "-c", config.to_str().unwrap(), "what?"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "the answer is 42\n");
    let err = stderr(&out);
    let table: String = err.lines().take(3).map(|l| format!("{l}\n")).collect();
    assert_eq!(
        stats_rows(&table),
        [
            ("flaky".to_owned(), 1, 0, 1, "closed".to_owned()),
            ("steady".to_owned(), 1, 1, 0, "closed".to_owned()),
        ]
    );
    assert!(
        err.lines()
            .nth(3)
            .is_some_and(|l| l.starts_with("routed via steady")),
        "{err}"
    );
}

#[test]
fn stats_needs_a_positive_request_count() {
    let config = mock_config();
    for bad in ["0", "-3", "many"] {
        let out = run(&["stats", "-c", config.to_str().unwrap(), "-n", bad], &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--requests"), "{}", stderr(&out));
    }
}

#[test]
fn chat_streams_the_content_deltas() {
    let config = mock_config();
    let out = run(
        &[
            "chat",
            "--config",
            config.to_str().unwrap(),
            "--stream",
            "--model",
            "gpt-4o",
            "what?",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "the answer is 42\n");
    assert!(
        stderr(&out).contains("routed via steady"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn chat_reads_the_prompt_from_stdin() {
    use std::io::Write;
    let config = config_file(&json!({"providers": [{"name": "echo", "kind": "mock"}]}).to_string());
    let mut child = Command::new(BIN)
        .args(["chat", "-c", config.to_str().unwrap(), "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo me please")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The default mock reply echoes the last user message.
    assert!(stdout(&out).contains("echo me please"), "{}", stdout(&out));
}

#[test]
fn a_failed_route_exits_1_and_lists_the_attempts() {
    let config = config_file(
        &json!({"providers": [
            {"name": "a", "kind": "mock", "mock": {"failures": {"sequence": [503]}}},
            {"name": "b", "kind": "mock", "mock": {"failures": {"sequence": ["reset"]}}},
        ]})
        .to_string(),
    );
    let out = run(&["chat", "--config", config.to_str().unwrap(), "hi"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(err.contains("all providers failed"), "{err}");
    assert!(err.contains("1. a status 503 (soft, failed over)"), "{err}");
    assert!(err.contains("2. b connection reset"), "{err}");
}

#[test]
fn check_lists_providers_without_keys() {
    let config = config_file(
        &json!({"providers": [
            {"name": "openai", "kind": "openai", "base_url": "https://api.openai.com/v1",
             "api_key_env": "F3DX_CLI_CHECK_KEY", "timeout_ms": 20000},
            {"name": "inline", "kind": "openai", "base_url": "http://127.0.0.1:9/v1",
             "api_key": "sk-inline-secret"},
            {"name": "local", "kind": "mock"},
        ], "policy": "hedged", "hedge_k": 2, "hedge_delay_ms": 150})
        .to_string(),
    );
    let out = run(
        &["check", "--config", config.to_str().unwrap()],
        &[("F3DX_CLI_CHECK_KEY", "sk-env-secret")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("valid"), "{text}");
    assert!(text.contains("hedged (k=2, delay 150 ms)"), "{text}");
    assert!(
        text.contains(
            "1. openai (openai) https://api.openai.com/v1, key from $F3DX_CLI_CHECK_KEY (set)"
        ),
        "{text}"
    );
    assert!(text.contains("2. inline (openai)"), "{text}");
    assert!(text.contains("3. local (mock) in-process"), "{text}");
    let all = text + &stderr(&out);
    assert!(!all.contains("sk-env-secret") && !all.contains("sk-inline-secret"));
}

#[test]
fn the_example_config_checks_and_names_unset_keys() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/router.json");
    let out = run(
        &["check", "--config", example],
        &[("OPENAI_API_KEY", "sk-x"), ("ANTHROPIC_API_KEY", "sk-y")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut cmd = Command::new(BIN);
    cmd.args(["check", "--config", example])
        .env("OPENAI_API_KEY", "sk-x")
        .env_remove("ANTHROPIC_API_KEY");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("(NOT SET)"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("providers[1].api_key_env: $ANTHROPIC_API_KEY is not set"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_config_file_exits_3() {
    for command in ["chat", "check"] {
        let out = run(
            &[command, "--config", "/nonexistent/f3dx/router.json", "hi"]
                [..if command == "chat" { 4 } else { 3 }],
            &[],
        );
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("cannot read config file /nonexistent/f3dx/router.json"),
            "{err}"
        );
    }
}

#[test]
fn an_invalid_config_exits_3_and_names_the_field() {
    let cases = [
        (
            json!({"providers": [{"name": "a", "kind": "openai", "base_url": "ftp://x"}]}),
            "providers[0].base_url",
        ),
        (
            json!({"providers": [{"name": "a", "kind": "mock"}], "hedge_k": 3}),
            "hedge_k",
        ),
        (
            json!({"providers": [{"name": "a", "kind": "mock", "timeout": 5}]}),
            "timeout",
        ),
        (json!({"providers": []}), "providers"),
    ];
    for (config, field) in cases {
        let path = config_file(&config.to_string());
        for args in [
            vec!["check", "--config", path.to_str().unwrap()],
            vec!["chat", "--config", path.to_str().unwrap(), "hi"],
        ] {
            let out = run(&args, &[]);
            assert_eq!(out.status.code(), Some(3), "{config}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains(&format!("`{field}`")), "{field}: {err}");
            assert!(err.contains(path.to_str().unwrap()), "{err}");
        }
    }
    let path = config_file("{not json");
    let out = run(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn an_unset_api_key_env_variable_exits_3_naming_it() {
    let config = config_file(
        &json!({"providers": [
            {"name": "openai", "kind": "openai", "base_url": "https://api.openai.com/v1",
             "api_key_env": "F3DX_CLI_SURELY_UNSET_KEY"},
        ]})
        .to_string(),
    );
    let mut cmd = Command::new(BIN);
    cmd.args(["chat", "--config", config.to_str().unwrap(), "hi"])
        .env_remove("F3DX_CLI_SURELY_UNSET_KEY");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("providers[0].api_key_env"), "{err}");
    assert!(err.contains("F3DX_CLI_SURELY_UNSET_KEY"), "{err}");
    assert!(err.contains("is not set"), "{err}");
}

#[test]
fn chat_over_loopback_http_with_a_key_from_the_environment() {
    let server = MockServer::start_blocking();
    // `a` answers 429 once (no Retry-After), `b` answers with the server's default body.
    server.script("a", vec![Step::status(429)]);
    let config = config_file(
        &json!({"providers": [
            {"name": "a", "kind": "openai", "base_url": server.base_url("a"),
             "api_key_env": "F3DX_CLI_TEST_KEY"},
            {"name": "b", "kind": "openai", "base_url": server.base_url("b"),
             "api_key_env": "F3DX_CLI_TEST_KEY"},
        ]})
        .to_string(),
    );
    let key = [("F3DX_CLI_TEST_KEY", "sk-cli-test")];
    let out = run(
        &["chat", "--config", config.to_str().unwrap(), "hello"],
        &key,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim_end(), reply_text("b"));
    let err = stderr(&out);
    assert!(err.contains("routed via b"), "{err}");
    assert!(err.contains("a status 429 (soft, failed over)"), "{err}");

    let out = run(
        &[
            "chat",
            "--config",
            config.to_str().unwrap(),
            "--stream",
            "hello",
        ],
        &key,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // `a` has no script left: it serves the stream.
    assert_eq!(stdout(&out).trim_end(), reply_text("a"));
    assert!(stderr(&out).contains("routed via a"), "{}", stderr(&out));

    let received = server.received("a");
    assert_eq!(received.len(), 2);
    for r in &received {
        assert_eq!(
            r.headers.get("authorization").map(String::as_str),
            Some("Bearer sk-cli-test")
        );
        let body: &Value = r.json.as_ref().expect("a JSON body");
        assert_eq!(body["messages"][0]["content"], "hello");
    }
    assert_eq!(received[1].json.as_ref().unwrap()["stream"], true);
}

#[test]
fn a_hard_failure_body_is_printed_without_the_secrets_it_echoes() {
    let server = MockServer::start_blocking();
    let echo = json!({"error": {"message":
        "Incorrect API key provided: sk-cli-SECRET-1; api-key az-cli-SECRET-2; EMPTY_RESPONSE"}});
    server.script("a", vec![Step::status(401).json(echo)]);
    let config = config_file(
        &json!({"providers": [
            {"name": "a", "kind": "openai", "base_url": server.base_url("a"),
             "api_key_env": "F3DX_CLI_SECRET_KEY", "headers": {"api-key": "az-cli-SECRET-2"}},
        ]})
        .to_string(),
    );
    let out = run(
        &["chat", "--config", config.to_str().unwrap(), "hello"],
        &[("F3DX_CLI_SECRET_KEY", "sk-cli-SECRET-1")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("provider said: ")
            && err.contains("provided: ***; api-key ***; EMPTY_RESPONSE"),
        "{err}"
    );
    assert!(!err.contains("SECRET"), "{err}");
}

#[test]
fn check_prints_no_url_credentials_and_no_key_pasted_as_a_variable_name() {
    let config = config_file(
        &json!({"providers": [
            {"name": "gemini", "kind": "openai",
             "base_url": "https://u:pw-SECRET@x.test/v1?api-version=1&key=qk-SECRET",
             "api_key_env": "sk-pasted-SECRET"},
        ]})
        .to_string(),
    );
    let out = run(&["check", "--config", config.to_str().unwrap()], &[]);
    let all = stdout(&out) + &stderr(&out);
    assert!(
        all.contains("https://***@x.test/v1?api-version=***&key=***"),
        "{all}"
    );
    assert!(!all.contains("SECRET"), "{all}");
}
