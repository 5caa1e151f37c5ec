//! The mock provider server as a process, for tests and benchmarks outside Rust.
//!
//! ```text
//! f3dx-mock-provider [--port N] [--tls-port N] [--script FILE] [--no-record]
//! ```
//!
//! Prints one JSON line to stdout once both listeners are up, then serves until killed, or until
//! its stdin is closed when stdin is a pipe (so a parent that dies takes the server with it; a
//! terminal or `/dev/null` stdin is ignored):
//!
//! ```text
//! {"http_url":"http://127.0.0.1:PORT","https_url":"https://localhost:PORT","ca_pem_path":"/tmp/...pem",...}
//! ```
//!
//! `--script FILE` is a JSON object `{provider: [steps]}` queued at start; the control API
//! (`/_control/...`, see `f3dx_router_testkit::server`) scripts and inspects it while it runs.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use f3dx_router_testkit::server::{MockServer, Step};

struct Args {
    port: u16,
    tls_port: u16,
    script: Option<PathBuf>,
    record: bool,
}

const USAGE: &str =
    "usage: f3dx-mock-provider [--port N] [--tls-port N] [--script FILE] [--no-record]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        tls_port: 0,
        script: None,
        record: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--port" => args.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--tls-port" => {
                args.tls_port = value()?.parse().map_err(|e| format!("--tls-port: {e}"))?;
            }
            "--script" => args.script = Some(PathBuf::from(value()?)),
            "--no-record" => args.record = false,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// Whether stdin is a pipe or socket a parent holds (closing it means "stop").
fn stdin_is_a_lifeline() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata("/dev/stdin")
            .map(|m| m.file_type().is_fifo() || m.file_type().is_socket())
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let script: std::collections::BTreeMap<String, Vec<Step>> = match &args.script {
        None => Default::default(),
        Some(path) => match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("--script {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let server = match MockServer::start_on(
        SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, args.tls_port)),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bind: {e}");
            return ExitCode::from(1);
        }
    };
    server.set_recording(args.record);
    for (provider, steps) in script {
        server.script(&provider, steps);
    }

    let ca_path = std::env::temp_dir().join(format!(
        "f3dx-mock-provider-{}-{}-ca.pem",
        std::process::id(),
        server.https_addr().port()
    ));
    if let Err(e) = std::fs::write(&ca_path, server.ca_pem()) {
        eprintln!("write {}: {e}", ca_path.display());
        return ExitCode::from(1);
    }
    let line = serde_json::json!({
        "http_url": server.http_url(),
        "https_url": server.https_url(),
        "ca_pem_path": ca_path,
        "http_port": server.http_addr().port(),
        "https_port": server.https_addr().port(),
        "pid": std::process::id(),
    });
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    if stdin_is_a_lifeline() {
        let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = [0u8; 1024];
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = eof_tx.send(());
        });
        let _ = eof_rx.await;
    } else {
        std::future::pending::<()>().await;
    }
    server.shutdown();
    let _ = std::fs::remove_file(&ca_path);
    ExitCode::SUCCESS
}
