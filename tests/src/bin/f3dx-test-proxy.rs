//! The test kit's forward proxy as a process, for the Python tests.
//!
//! ```text
//! f3dx-test-proxy [--authorization "Basic dXNlcjpwYXNz"]
//! ```
//!
//! Prints `{"url": "http://127.0.0.1:PORT"}` once listening, then serves until its stdin closes.
//! `GET /_stats` (to the proxy itself) answers what passed through.

use f3dx_router_testkit::proxy::ForwardProxy;
use std::io::Read;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut authorization = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--authorization" => authorization = args.next(),
            other => {
                eprintln!("unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let proxy = ForwardProxy::start(authorization).await?;
    println!("{}", serde_json::json!({ "url": proxy.url() }));
    // A lifeline: the proxy exits when its parent closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    Ok(())
}
