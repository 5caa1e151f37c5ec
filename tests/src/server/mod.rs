//! The mock provider HTTP server: real HTTP on loopback for driver tests and benchmarks.
//!
//! The simulator tests the machine without IO; this server tests everything a driver does with
//! real sockets: connection pools, HTTP/1.1 and HTTP/2, TLS, timeouts, cancellation, and the
//! ways a provider's wire misbehaves (resets, stalls, truncated bodies, streams cut short).
//!
//! One server hosts any number of named providers, addressed by a path prefix:
//! `POST /{provider}/v1/chat/completions` speaks OpenAI, `POST /{provider}/v1/messages` speaks
//! Anthropic, so a router provider `a` gets `base_url = {http_url}/a/v1`
//! ([`MockServer::base_url`]). Each provider answers from a queue of scripted [`Step`]s, then
//! from its default step (200 with a valid body in the route's shape; a valid stream when the
//! request has `"stream": true`). Every request is [`Recorded`], including whether the client
//! went away before the response ended.
//!
//! The same plain listener serves a JSON control API for the `f3dx-mock-provider` binary (Python
//! tests, benchmark scripts); see the Control API section below.
//!
//! # Control API
//!
//! | request | body | effect |
//! |---|---|---|
//! | `POST /_control/{provider}/script` | a step or an array of steps | appended to the queue |
//! | `POST /_control/{provider}/default` | one step | the provider's default |
//! | `GET /_control/{provider}/received` | | JSON array of [`Recorded`] |
//! | `POST /_control/script` | `{provider: [steps]}` | appended, for several providers |
//! | `POST /_control/reset` | | forget all scripts, defaults, recordings, the request count |
//! | `POST /_control/recording` | `{"enabled": bool}` | turn recording on or off (benchmarks) |
//! | `GET /_control/stats` | | `{"requests", "open_connections", "connections"}` |
//! | `GET /_control/health` | | `{"ok": true}` |
//!
//! # Cost
//!
//! The default path reads no file, takes one short lock (never across an await), parses the
//! request JSON once, and sends one preformatted buffer.

mod body;
mod conn;
mod control;
pub mod raw;
mod record;
mod script;
mod shapes;
mod tls;

pub use raw::{RawOp, RawSeen, RawServer};
pub use record::{Outcome, Recorded};
pub use script::{Step, StreamStep};
pub use shapes::{ANTHROPIC_DEFAULT_STREAM, Shape, fixtures_dir, reply_text, split_events};
pub use tls::{TestCa, certs_from_pem};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use body::{BoxError, MockBody, Op};
use conn::{ConnCounters, ConnCtl, CountedIo, Kill};
use record::{Entry, Guard};
use shapes::Peek;

/// A step compiled for serving: headers parsed, bodies serialized, replay files loaded.
#[derive(Debug)]
struct Prepared {
    step: Step,
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// `raw_body`, else `body` serialized.
    body: Option<Bytes>,
    /// The pieces of `stream.replay` / `stream.events`; `None`: the route's default stream.
    pieces: Option<Arc<[Bytes]>>,
    plain: bool,
}

impl Prepared {
    fn new(step: Step) -> Result<Prepared, String> {
        let status = StatusCode::from_u16(step.effective_status())
            .map_err(|_| format!("invalid status {}", step.effective_status()))?;
        let headers = step
            .headers
            .iter()
            .map(|(k, v)| {
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| format!("invalid header name {k:?}"))?;
                let value = HeaderValue::from_str(v)
                    .map_err(|_| format!("invalid value for header {k}: {v:?}"))?;
                Ok((name, value))
            })
            .collect::<Result<_, String>>()?;
        let body = match (&step.raw_body, &step.body) {
            (Some(raw), _) => Some(Bytes::from(raw.clone())),
            (None, Some(v)) => Some(Bytes::from(
                serde_json::to_vec(v).expect("a Value serializes"),
            )),
            (None, None) => None,
        };
        let pieces = match &step.stream {
            None => None,
            Some(s) => match (&s.replay, &s.events) {
                (Some(_), Some(_)) => {
                    return Err("stream: give `replay` or `events`, not both".into());
                }
                (Some(path), None) => Some(shapes::load_replay(path)?),
                (None, Some(events)) => {
                    Some(events.iter().map(|e| Bytes::from(e.clone())).collect())
                }
                (None, None) => None,
            },
        };
        Ok(Prepared {
            plain: step.is_plain(),
            step,
            status,
            headers,
            body,
            pieces,
        })
    }

    /// The shared plain default step.
    fn plain() -> Arc<Prepared> {
        static PLAIN: OnceLock<Arc<Prepared>> = OnceLock::new();
        PLAIN
            .get_or_init(|| Arc::new(Prepared::new(Step::default()).expect("the default is valid")))
            .clone()
    }
}

#[derive(Debug, Default)]
struct ProviderState {
    queue: VecDeque<Arc<Prepared>>,
    default: Option<Arc<Prepared>>,
    received: Vec<Arc<Entry>>,
    /// Requests seen since the last reset (ids of default bodies), recorded or not.
    count: usize,
}

/// State shared by the listeners, the connections and the [`MockServer`] handle.
#[derive(Debug)]
struct Inner {
    started: Instant,
    providers: Mutex<HashMap<String, ProviderState>>,
    changed: Arc<Notify>,
    requests: AtomicU64,
    recording: AtomicBool,
    conns: Arc<ConnCounters>,
    builder: auto::Builder<TokioExecutor>,
}

impl Inner {
    fn providers(&self) -> MutexGuard<'_, HashMap<String, ProviderState>> {
        // A panicking test thread must not take every later request down with it.
        self.providers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn script(&self, provider: &str, steps: Vec<Step>) -> Result<usize, String> {
        let prepared = steps
            .into_iter()
            .map(|s| Prepared::new(s).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let mut providers = self.providers();
        let p = providers.entry(provider.to_owned()).or_default();
        p.queue.extend(prepared);
        Ok(p.queue.len())
    }

    fn set_default(&self, provider: &str, step: Step) -> Result<(), String> {
        let prepared = Arc::new(Prepared::new(step)?);
        self.providers()
            .entry(provider.to_owned())
            .or_default()
            .default = Some(prepared);
        Ok(())
    }

    fn received(&self, provider: &str) -> Vec<Recorded> {
        let entries: Vec<Arc<Entry>> = self
            .providers()
            .get(provider)
            .map(|p| p.received.clone())
            .unwrap_or_default();
        entries.iter().map(|e| e.snapshot()).collect()
    }

    fn entry(&self, provider: &str, index: usize) -> Option<Arc<Entry>> {
        self.providers()
            .get(provider)
            .and_then(|p| p.received.get(index).cloned())
    }

    fn reset(&self) {
        self.providers().clear();
        self.requests.store(0, Ordering::Release);
        self.changed.notify_waiters();
    }

    fn stats(&self) -> Value {
        serde_json::json!({
            "requests": self.requests.load(Ordering::Acquire),
            "open_connections": self.conns.open.load(Ordering::Acquire),
            "connections": self.conns.total.load(Ordering::Acquire),
        })
    }
}

/// A running mock provider server (plain HTTP and HTTPS listeners on loopback).
///
/// Dropping it (or [`MockServer::shutdown`]) stops both listeners and closes every connection.
/// Start it inside a tokio runtime with [`MockServer::start`], or with its own runtime thread
/// with [`MockServer::start_blocking`] (drivers that are not tokio).
#[derive(Debug)]
pub struct MockServer {
    inner: Arc<Inner>,
    http_addr: SocketAddr,
    https_addr: SocketAddr,
    ca: Arc<TestCa>,
    shutdown: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl MockServer {
    /// Starts on `127.0.0.1:0` (HTTP) and another `127.0.0.1:0` (HTTPS, fresh test CA).
    ///
    /// # Panics
    /// If loopback ports cannot be bound, or outside a tokio runtime.
    pub async fn start() -> MockServer {
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        MockServer::start_on(any, any)
            .await
            .expect("bind the mock server on loopback")
    }

    /// Starts on the given addresses (port 0: any free port).
    pub async fn start_on(http: SocketAddr, https: SocketAddr) -> io::Result<MockServer> {
        let plain = TcpListener::bind(http).await?;
        let secure = TcpListener::bind(https).await?;
        let ca = Arc::new(TestCa::generate());
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(1024);
        let inner = Arc::new(Inner {
            started: Instant::now(),
            providers: Mutex::default(),
            changed: Arc::new(Notify::new()),
            requests: AtomicU64::new(0),
            recording: AtomicBool::new(true),
            conns: Arc::default(),
            builder,
        });
        let (shutdown, stop) = watch::channel(false);
        let server = MockServer {
            http_addr: plain.local_addr()?,
            https_addr: secure.local_addr()?,
            inner: inner.clone(),
            ca: ca.clone(),
            shutdown,
            runtime: None,
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config());
        tokio::spawn(accept_loop(plain, inner.clone(), None, stop.clone()));
        tokio::spawn(accept_loop(secure, inner, Some(acceptor), stop));
        Ok(server)
    }

    /// Starts on its own small multi-threaded runtime, for callers without one (blocking and
    /// non-tokio drivers). Callable from anywhere, including inside another runtime.
    pub fn start_blocking() -> MockServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("f3dx-mock-provider")
            .enable_all()
            .build()
            .expect("a tokio runtime");
        // block_on refuses to run inside another runtime's thread; a fresh thread has none.
        let (runtime, mut server) = std::thread::spawn(move || {
            let server = runtime.block_on(MockServer::start());
            (runtime, server)
        })
        .join()
        .expect("mock server start");
        server.runtime = Some(runtime);
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// `https://localhost:PORT` (the certificate is for `localhost` and `127.0.0.1`).
    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.https_addr.port())
    }

    /// The plain listener's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The TLS listener's address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// `{http_url}/{provider}/v1`: the base URL a router provider of that name uses.
    pub fn base_url(&self, provider: &str) -> String {
        format!("{}/{provider}/v1", self.http_url())
    }

    /// `{https_url}/{provider}/v1`.
    pub fn https_base_url(&self, provider: &str) -> String {
        format!("{}/{provider}/v1", self.https_url())
    }

    /// The test CA certificate (PEM) that signed the HTTPS listener's certificate.
    pub fn ca_pem(&self) -> String {
        self.ca.pem().to_owned()
    }

    /// The test CA, with ready-made rustls client and server configs.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// Appends steps to `provider`'s queue; each request takes the next one.
    ///
    /// # Panics
    /// If a step is invalid (bad header, unreadable replay file): a test bug, reported at once.
    pub fn script(&self, provider: &str, steps: Vec<Step>) {
        if let Err(e) = self.inner.script(provider, steps) {
            panic!("mock server script for {provider:?}: {e}");
        }
    }

    /// Sets what `provider` answers once its queue is empty.
    ///
    /// # Panics
    /// If the step is invalid.
    pub fn set_default(&self, provider: &str, step: Step) {
        if let Err(e) = self.inner.set_default(provider, step) {
            panic!("mock server default for {provider:?}: {e}");
        }
    }

    /// Steps still queued for `provider`.
    pub fn pending_steps(&self, provider: &str) -> usize {
        self.inner
            .providers()
            .get(provider)
            .map_or(0, |p| p.queue.len())
    }

    /// What `provider` received so far, in arrival order.
    pub fn received(&self, provider: &str) -> Vec<Recorded> {
        self.inner.received(provider)
    }

    /// Forgets all scripts, defaults and recordings, and zeroes the request count.
    pub fn reset(&self) {
        self.inner.reset();
    }

    /// Turns recording on (the default) or off; a benchmark turns it off so memory stays flat.
    pub fn set_recording(&self, enabled: bool) {
        self.inner.recording.store(enabled, Ordering::Release);
    }

    /// Provider requests served since start (or the last reset), recorded or not.
    pub fn request_count(&self) -> u64 {
        self.inner.requests.load(Ordering::Acquire)
    }

    /// Connections accepted since start, both listeners.
    pub fn connection_count(&self) -> u64 {
        self.inner.conns.total.load(Ordering::Acquire)
    }

    /// Connections open right now, both listeners: a driver that leaks connections shows here.
    pub fn open_connections(&self) -> usize {
        self.inner.conns.open.load(Ordering::Acquire)
    }

    /// Waits until `provider` has received at least `count` requests; false on timeout.
    pub async fn wait_for_requests(&self, provider: &str, count: usize, timeout: Duration) -> bool {
        record::wait_until(&self.inner.changed, timeout, || {
            self.inner
                .providers()
                .get(provider)
                .is_some_and(|p| p.received.len() >= count)
        })
        .await
    }

    /// Waits until request `index` of `provider` ends in any way; `None` on timeout.
    pub async fn wait_for_outcome(
        &self,
        provider: &str,
        index: usize,
        timeout: Duration,
    ) -> Option<Outcome> {
        let mut last = Outcome::Pending;
        record::wait_until(&self.inner.changed, timeout, || {
            last = self
                .inner
                .entry(provider, index)
                .map_or(Outcome::Pending, |e| e.outcome());
            last != Outcome::Pending
        })
        .await;
        (last != Outcome::Pending).then_some(last)
    }

    /// Waits until the client of request `index` of `provider` has gone away before the response
    /// ended (a cancelled hedge loser, a client timeout). False on timeout or another outcome.
    pub async fn wait_for_disconnect(
        &self,
        provider: &str,
        index: usize,
        timeout: Duration,
    ) -> bool {
        self.wait_for_outcome(provider, index, timeout).await == Some(Outcome::ClientDisconnected)
    }

    /// Waits until at most `count` connections are open (a pool closed what it should).
    pub async fn wait_for_open_connections(&self, count: usize, timeout: Duration) -> bool {
        record::wait_until(&self.inner.changed, timeout, || {
            self.open_connections() <= count
        })
        .await
    }

    /// Stops the listeners and closes every open connection. Idempotent; also done on drop.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shutdown();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    inner: Arc<Inner>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(
                    stream,
                    inner.clone(),
                    tls.clone(),
                    stop.clone(),
                ));
            }
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    inner: Arc<Inner>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let ctl = Arc::new(ConnCtl::default());
    let io = CountedIo::new(stream, ctl.clone(), inner.conns.clone());
    match tls {
        None => run_connection(TokioIo::new(io), inner, ctl, stop).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(io));
            if let Ok(Ok(tls_stream)) = handshake.await {
                run_connection(TokioIo::new(tls_stream), inner, ctl, stop).await;
            }
        }
    }
}

async fn run_connection<I>(
    io: I,
    inner: Arc<Inner>,
    ctl: Arc<ConnCtl>,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = {
        let inner = inner.clone();
        let ctl = ctl.clone();
        service_fn(move |req| handle(inner.clone(), ctl.clone(), req))
    };
    let mut connection = std::pin::pin!(inner.builder.serve_connection(io, service));
    // Dropping the connection future drops the socket: that is how a step closes it.
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = ctl.killed() => return,
        _ = stop.wait_for(|s| *s) => return,
        _ = ctl.going_away() => connection.as_mut().graceful_shutdown(),
    }
    // Going away: the streams in flight finish (or a step kills the connection).
    tokio::select! {
        _ = connection => {}
        _ = ctl.killed() => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

type Reply = Response<MockBody>;

fn json_response(status: StatusCode, body: Bytes) -> Reply {
    let mut r = Response::new(MockBody::full(body, Guard::none()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn handle(
    inner: Arc<Inner>,
    ctl: Arc<ConnCtl>,
    req: Request<Incoming>,
) -> Result<Reply, BoxError> {
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/_control/") {
        let rest = rest.to_owned();
        return Ok(control::handle(&inner, req, &rest).await);
    }
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let provider = segments.next().unwrap_or_default();
    let rest = segments.next().unwrap_or_default();
    let shape = if rest.ends_with("chat/completions") {
        Shape::OpenAi
    } else if rest.ends_with("messages") {
        Shape::Anthropic
    } else {
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            Bytes::from(format!(
                r#"{{"error":{{"message":"mock server: no route for {}; use /{{provider}}/v1/chat/completions or /{{provider}}/v1/messages","type":"not_found"}}}}"#,
                req.uri().path().replace('"', "'")
            )),
        ));
    };
    if provider.is_empty() {
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"{}"),
        ));
    }
    let provider = provider.to_owned();
    serve_provider(inner, ctl, req, provider, shape).await
}

fn header_map(headers: &http::HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

async fn serve_provider(
    inner: Arc<Inner>,
    ctl: Arc<ConnCtl>,
    req: Request<Incoming>,
    provider: String,
    shape: Shape,
) -> Result<Reply, BoxError> {
    let (parts, body) = req.into_parts();
    let http2 = parts.version == Version::HTTP_2;
    let body = body.collect().await?.to_bytes();
    let recording = inner.recording.load(Ordering::Acquire);
    let json: Option<Value> = if recording {
        serde_json::from_slice(&body).ok()
    } else {
        None
    };
    let peek = match &json {
        Some(v) => Peek::from_value(v),
        None if recording => Peek::default(),
        None => Peek::from_bytes(&body),
    };
    // Everything for the record is built before the lock is taken.
    let mut record = recording.then(|| Recorded {
        index: 0,
        provider: provider.clone(),
        shape,
        method: parts.method.as_str().to_owned(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        version: format!("{:?}", parts.version),
        headers: header_map(&parts.headers),
        body: body.clone(),
        json,
        step: Step::default(),
        scripted: false,
        received_at_ms: inner.started.elapsed().as_secs_f64() * 1e3,
        outcome: Outcome::Pending,
        client_disconnected: false,
    });

    let (prepared, n, entry) = {
        let mut providers = inner.providers();
        let p = providers.entry(provider.clone()).or_default();
        let n = p.count;
        p.count += 1;
        let (prepared, scripted) = match p.queue.pop_front() {
            Some(s) => (s, true),
            None => (p.default.clone().unwrap_or_else(Prepared::plain), false),
        };
        let entry = record.take().map(|mut r| {
            r.index = p.received.len();
            r.scripted = scripted;
            if !prepared.plain {
                r.step = prepared.step.clone();
            }
            let entry = Arc::new(Entry::new(r, inner.changed.clone()));
            p.received.push(entry.clone());
            entry
        });
        (prepared, n, entry)
    };
    inner.requests.fetch_add(1, Ordering::AcqRel);
    let mut guard = match entry {
        Some(e) => {
            inner.changed.notify_waiters();
            Guard::new(e)
        }
        None => Guard::none(),
    };
    let step = &prepared.step;

    if let Some(ms) = step.delay_ms.filter(|ms| *ms > 0) {
        // If the client goes away meanwhile, hyper drops this future and the guard records it.
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if step.reset {
        guard.server_closed();
        if http2 {
            // hyper answers a failed service with RST_STREAM; other streams carry on.
            return Err("scripted reset".into());
        }
        ctl.kill(Kill::Reset);
        std::future::pending::<Infallible>().await;
    }

    let status = prepared.status;
    let stream_pieces: Option<Arc<[Bytes]>> = match &step.stream {
        Some(_) => Some(
            prepared
                .pieces
                .clone()
                .unwrap_or_else(|| shapes::default_stream(shape, &provider, n, &peek)),
        ),
        None if prepared.body.is_none() && status.is_success() && peek.stream => {
            Some(shapes::default_stream(shape, &provider, n, &peek))
        }
        None => None,
    };

    let mut response = Response::new(MockBody::full(Bytes::new(), Guard::none()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(if stream_pieces.is_some() {
            "text/event-stream"
        } else {
            "application/json"
        }),
    );
    if let Ok(v) = HeaderValue::from_str(&provider) {
        headers.insert(HeaderName::from_static("x-mock-provider"), v);
    }
    let request_id_name = match shape {
        Shape::OpenAi => HeaderName::from_static("x-request-id"),
        Shape::Anthropic => HeaderName::from_static("request-id"),
    };
    if let Ok(v) = HeaderValue::from_str(&format!("req_mock_{provider}_{n}")) {
        headers.insert(request_id_name, v);
    }
    for (name, value) in &prepared.headers {
        headers.insert(name.clone(), value.clone());
    }

    let stall = step
        .stall_after_headers_ms
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis);
    let body = if let Some(pieces) = stream_pieces {
        let s = step.stream.clone().unwrap_or_default();
        let mut ops = VecDeque::with_capacity(pieces.len() * 2 + 3);
        if let Some(d) = stall {
            ops.push_back(Op::Sleep(d));
        }
        let gap = s
            .chunk_gap_ms
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        let error_at = s
            .error_after_events
            .filter(|e| s.cut_after_events.is_none_or(|c| *e <= c));
        let cut_at = s.cut_after_events.filter(|_| error_at.is_none());
        let limit = error_at.or(cut_at).unwrap_or(usize::MAX);
        for (i, piece) in pieces.iter().take(limit).enumerate() {
            if i > 0
                && let Some(g) = gap
            {
                ops.push_back(Op::Sleep(g));
            }
            ops.push_back(Op::Data(piece.clone()));
            if s.goaway_after_events == Some(i + 1) {
                ops.push_back(Op::GoAway);
            }
        }
        if error_at.is_some() {
            if let Some(g) = gap {
                ops.push_back(Op::Sleep(g));
            }
            let event = s
                .error_event
                .clone()
                .unwrap_or_else(|| shapes::default_error_event(shape).to_owned());
            ops.push_back(Op::Data(Bytes::from(event)));
        } else if cut_at.is_some() {
            ops.push_back(Op::WaitFlush);
            ops.push_back(Op::Close);
        }
        MockBody::script(ops, ctl, http2, guard)
    } else {
        let bytes = match &prepared.body {
            Some(b) => b.clone(),
            None if status.is_success() => match shape {
                Shape::OpenAi => shapes::openai_completion(&provider, n, &peek),
                Shape::Anthropic => shapes::anthropic_message(&provider, n, &peek),
            },
            None => shapes::error_body(shape, status.as_u16()),
        };
        match (
            stall,
            step.truncate_after_bytes.filter(|t| *t < bytes.len()),
        ) {
            (None, None) => MockBody::full(bytes, guard),
            (stall, truncate) => {
                let mut ops = VecDeque::with_capacity(4);
                if let Some(d) = stall {
                    ops.push_back(Op::Sleep(d));
                }
                if let Some(t) = truncate {
                    response
                        .headers_mut()
                        .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                    if t > 0 {
                        ops.push_back(Op::Data(bytes.slice(..t)));
                    }
                    ops.push_back(Op::WaitFlush);
                    ops.push_back(Op::Close);
                } else {
                    response
                        .headers_mut()
                        .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                    ops.push_back(Op::Data(bytes));
                }
                MockBody::script(ops, ctl, http2, guard)
            }
        }
    };
    *response.body_mut() = body;
    Ok(response)
}
