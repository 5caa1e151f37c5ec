//! A provider that speaks raw bytes on TCP, for the faults hyper's server will not commit: a
//! garbage status line, a 2 MB header, a close-delimited body, a chunked body cut inside a chunk,
//! informational (1xx) heads, a TLS handshake that never completes or is reset.
//!
//! Each accepted connection runs the next script of [`RawOp`]s (the last script repeats once the
//! list is used up) and records what it saw ([`RawSeen`]): the request head, and whether the
//! client went away. A script that ends without closing holds the connection open until the
//! client closes it (bounded by [`HOLD_LIMIT`]), so a scenario can assert that the router let
//! go of a stalled connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The longest a connection is held open waiting for the client to close it.
pub const HOLD_LIMIT: Duration = Duration::from_secs(20);
/// The largest request head (and body) read.
const MAX_REQUEST: usize = 1 << 20;

/// One step of a raw connection's script.
#[derive(Debug, Clone)]
pub enum RawOp {
    /// Read one HTTP/1.1 request: its head, then `content-length` bytes of body.
    ReadRequest,
    /// Read whatever arrives first (a TLS ClientHello).
    ReadAny,
    /// Write these bytes (one write).
    Write(Bytes),
    /// Pause.
    Sleep(Duration),
    /// Close the connection (FIN).
    Close,
    /// Close it with `SO_LINGER 0` (RST).
    Reset,
}

impl RawOp {
    /// Writes `text` verbatim.
    pub fn text(text: impl Into<String>) -> RawOp {
        RawOp::Write(Bytes::from(text.into()))
    }
}

/// What one connection saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawSeen {
    /// The request head as text, once read.
    pub request: Option<String>,
    /// Whether any bytes arrived (a ClientHello, a request).
    pub received: bool,
    /// Whether the client closed (or reset) the connection before the script closed it.
    pub client_closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    scripts: Mutex<VecDeque<Vec<RawOp>>>,
    seen: Mutex<Vec<RawSeen>>,
    changed: Notify,
}

impl Shared {
    fn update(&self, index: usize, change: impl FnOnce(&mut RawSeen)) {
        change(&mut self.seen.lock().unwrap_or_else(PoisonError::into_inner)[index]);
        self.changed.notify_waiters();
    }
}

/// A raw provider on an ephemeral loopback port; stops accepting when dropped.
#[derive(Debug)]
pub struct RawServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl RawServer {
    /// Listens on `127.0.0.1:0`; connection `i` runs `scripts[i]` (the last one for the rest).
    /// Must be called on a tokio runtime.
    pub async fn start(scripts: Vec<Vec<RawOp>>) -> RawServer {
        assert!(!scripts.is_empty(), "a raw server needs a script");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            scripts: Mutex::new(scripts.into()),
            ..Shared::default()
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        RawServer {
            addr,
            shared,
            accept,
        }
    }

    /// `http://127.0.0.1:port/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `https://127.0.0.1:port/v1` (for the TLS faults: nothing here speaks TLS).
    pub fn https_base_url(&self) -> String {
        format!("https://{}/v1", self.addr)
    }

    /// What each connection saw so far, in accept order.
    pub fn seen(&self) -> Vec<RawSeen> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until connection `index` saw the client close; false if it did not within `limit`.
    pub async fn wait_client_closed(&self, index: usize, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            let notified = self.shared.changed.notified();
            if self.seen().get(index).is_some_and(|s| s.client_closed) {
                return true;
            }
            let left = limit.saturating_sub(start.elapsed());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                return self.seen().get(index).is_some_and(|s| s.client_closed);
            }
        }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let script = {
            let mut scripts = shared
                .scripts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if scripts.len() > 1 {
                scripts.pop_front().unwrap_or_default()
            } else {
                scripts.front().cloned().unwrap_or_default()
            }
        };
        let index = {
            let mut seen = shared.seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.push(RawSeen::default());
            seen.len() - 1
        };
        tokio::spawn(run(stream, script, shared.clone(), index));
    }
}

/// Runs one connection's script; at its end, holds the connection until the client closes it.
async fn run(mut stream: TcpStream, script: Vec<RawOp>, shared: Arc<Shared>, index: usize) {
    let _ = stream.set_nodelay(true);
    for op in script {
        let alive = match op {
            RawOp::ReadRequest => match read_request(&mut stream).await {
                Some(head) => {
                    shared.update(index, |s| {
                        s.received = true;
                        s.request = Some(head);
                    });
                    true
                }
                None => false,
            },
            RawOp::ReadAny => {
                let mut buf = [0u8; 4096];
                let got = matches!(stream.read(&mut buf).await, Ok(n) if n > 0);
                if got {
                    shared.update(index, |s| s.received = true);
                }
                got
            }
            RawOp::Write(bytes) => stream.write_all(&bytes).await.is_ok(),
            RawOp::Sleep(d) => {
                tokio::time::sleep(d).await;
                true
            }
            RawOp::Close => {
                let _ = stream.shutdown().await;
                return;
            }
            RawOp::Reset => {
                let _ = stream.set_zero_linger();
                return;
            }
        };
        if !alive {
            shared.update(index, |s| s.client_closed = true);
            return;
        }
    }
    // Held open: the client must be the one to let go.
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(HOLD_LIMIT, async {
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await
    .is_ok();
    if closed {
        shared.update(index, |s| s.client_closed = true);
    }
}

/// Reads a request head and its `content-length` body; the head as text, or `None` if the
/// client closed first.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut data = Vec::with_capacity(4096);
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if data.len() > MAX_REQUEST {
            return None;
        }
        match stream.read(&mut buf).await {
            Ok(n) if n > 0 => data.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    while data.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(n) if n > 0 => data.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    Some(head)
}

/// An HTTP/1.1 response head: `status_line` (e.g. `HTTP/1.1 200 OK`), then `headers`.
pub fn head(status_line: &str, headers: &[(&str, &str)]) -> String {
    let mut out = format!("{status_line}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out
}
