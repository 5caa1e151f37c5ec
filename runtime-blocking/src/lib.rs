//! # f3dx-router-blocking
//!
//! The blocking driver of f3dx-router, for programs with no async runtime: a [`Router`] whose
//! calls block the calling thread, over one [`ureq`] agent (one connection pool, rustls with the
//! workspace's one crypto provider, ring).
//!
//! The driver decides nothing. The machine is hosted by [`f3dx_router_host`], as under every
//! driver; this crate is its transport (ureq on a bounded pool of worker threads) and its clock.
//! A call's own thread drives the machine's timers while it waits: it sleeps until its call
//! completes or the host's next due time, whichever is first (see `clock.rs`), so there is no
//! timer thread.
//!
//! ```
//! use f3dx_router_blocking::Router;
//! use f3dx_router_core::{ChatRequest, RouterConfig};
//!
//! let config = RouterConfig::from_json(br#"{"providers": [
//!     {"name": "m", "kind": "mock", "mock": {"latency": {"kind": "fixed", "ms": 2}}}]}"#)?;
//! let router = Router::new(config)?;
//! let request = ChatRequest::from_json(
//!     br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}]}"#.to_vec(),
//! )?;
//! let routed = router.chat_completions(request)?;
//! assert_eq!(&*routed.provider_name, "m");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Cancelled attempts
//! ureq has no per-request abort. Each connection the agent opens keeps ureq's own shutdown
//! handle, and the attempt using it can shut the socket down from another thread (`abort.rs`):
//! when the machine cancels an attempt (a hedge's loser, a deadline, a dropped call or stream),
//! its blocked read returns at once, the provider sees the disconnect, the connection is not
//! returned to the pool, and the attempt never delivers anything more. One cancelled while
//! queued for a worker is never sent. Should a cancel ever miss (a connection still being
//! made), the attempt is abandoned: it ends at its next read or by
//! [`RouterBuilder::read_timeout`] (600 s by default, as the official SDKs use), on a pool
//! capped at [`RouterBuilder::max_threads`] workers, so nothing piles up.
#![warn(missing_docs, missing_debug_implementations)]

mod abort;
mod attempt;
mod clock;
mod error;
mod stream;
mod workers;

pub use error::RouterBuildError;
pub use f3dx_router_core::{ChatRequest, ProviderStats, RouteError, Routed, RouterConfig};
pub use f3dx_router_host::RouterCallError;
pub use stream::ChunkIter;

use clock::Clock;
use f3dx_router_core::{RequestId, RouterMachine};
use f3dx_router_host::{Call, Host, Transport};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use workers::Workers;

/// Connect timeout per attempt unless the builder says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for any one read (the head, a body piece) unless the builder says otherwise:
/// the bound on how long an abandoned attempt can hold its thread.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(600);
/// Worker threads for attempts unless the builder says otherwise.
pub const DEFAULT_MAX_THREADS: usize = 64;
/// Idle connections kept per host.
const POOL_MAX_IDLE_PER_HOST: usize = 16;

/// A router for blocking callers. Cheap to clone (clones share the machine, the agent and the
/// worker threads); `Send + Sync`, so threads can share one.
#[derive(Clone)]
pub struct Router {
    host: Arc<Host>,
    clock: Arc<Clock>,
    transport: Arc<attempt::Ureq>,
    providers: Arc<[String]>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: the config (and any key) stays out of every Debug output.
        f.debug_struct("Router")
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Router`] with transport settings beyond the config.
#[derive(Debug, Clone)]
pub struct RouterBuilder {
    config: RouterConfig,
    roots_pem: Vec<String>,
    connect_timeout: Duration,
    read_timeout: Duration,
    max_threads: usize,
    seed: u64,
}

impl RouterBuilder {
    /// Trusts the PEM certificates in `pem`. ureq takes either the web PKI's roots or a list of
    /// its own, so once any is given only the given roots are trusted (a private CA's setup).
    pub fn add_root_certificate_pem(mut self, pem: &str) -> Self {
        self.roots_pem.push(pem.to_owned());
        self
    }

    /// Connect timeout per attempt (TCP and TLS). Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest wait for one read from a provider. Default [`DEFAULT_READ_TIMEOUT`]. The
    /// machine's own timeouts (`timeout_ms`, `deadline_ms`, ...) end calls sooner; this only
    /// bounds how long an abandoned attempt holds its worker thread.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Worker threads for attempts at most. Default [`DEFAULT_MAX_THREADS`].
    pub fn max_threads(mut self, threads: usize) -> Self {
        self.max_threads = threads;
        self
    }

    /// Seed of the machine's random choices.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Resolves `api_key_env`, builds the agent and the machine.
    pub fn build(self) -> Result<Router, RouterBuildError> {
        let providers: Arc<[String]> = self
            .config
            .providers
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
            .into();
        let mut config = self.config;
        config.resolve_api_keys(|var| std::env::var(var).ok())?;
        let agent = agent(
            &config,
            &self.roots_pem,
            self.connect_timeout,
            self.read_timeout,
        )?;
        let machine = RouterMachine::new(config, self.seed)?;
        let clock = Arc::new(Clock::new());
        let unix_at_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let host = Host::new(machine, clock.clone(), unix_at_epoch);
        let transport = Arc::new(attempt::Ureq {
            agent,
            workers: Workers::new(self.max_threads),
        });
        Ok(Router {
            host,
            clock,
            transport,
            providers,
        })
    }
}

/// The one agent: statuses are answers (the machine classifies them), redirects are not
/// followed (a 3xx is the provider's answer), proxies as the config says.
fn agent(
    config: &RouterConfig,
    roots_pem: &[String],
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<ureq::Agent, RouterBuildError> {
    use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
    let mut tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()));
    if !roots_pem.is_empty() {
        let mut roots = Vec::new();
        for pem in roots_pem {
            let before = roots.len();
            for item in ureq::tls::parse_pem(pem.as_bytes()) {
                match item.map_err(|e| RouterBuildError::Certificate(e.to_string()))? {
                    ureq::tls::PemItem::Certificate(cert) => roots.push(cert),
                    _ => continue,
                }
            }
            if roots.len() == before {
                return Err(RouterBuildError::Certificate(
                    "no PEM certificate found in the given text".to_owned(),
                ));
            }
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&roots));
    }
    let proxy = match (config.proxy_url(), config.trust_env) {
        (Some(url), _) => Some(ureq::Proxy::new(url).map_err(|_| RouterBuildError::Proxy)?),
        (None, true) => ureq::Proxy::try_from_env(),
        (None, false) => None,
    };
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(concat!("f3dx-router/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls.build())
        .proxy(proxy)
        .timeout_connect(Some(connect_timeout))
        .timeout_per_read(Some(read_timeout))
        .max_idle_connections_per_host(POOL_MAX_IDLE_PER_HOST)
        .build();
    Ok(ureq::Agent::with_parts(
        config,
        abort::Tracking::default(),
        ureq::unversioned::resolver::DefaultResolver::default(),
    ))
}

impl Router {
    /// A router for `config` with the default transport settings.
    pub fn new(config: RouterConfig) -> Result<Self, RouterBuildError> {
        Self::builder(config).build()
    }

    /// A builder for transport settings (extra roots, timeouts, threads, seed).
    pub fn builder(config: RouterConfig) -> RouterBuilder {
        RouterBuilder {
            config,
            roots_pem: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_threads: DEFAULT_MAX_THREADS,
            seed: 0,
        }
    }

    /// Routes one request, blocking until its outcome.
    pub fn chat_completions(&self, request: ChatRequest) -> Result<Routed, RouteError> {
        self.start(request).wait()
    }

    /// Starts routing one request without blocking: [`PendingCall::wait`] for its outcome, or
    /// cancel it from any thread through [`PendingCall::canceller`].
    pub fn start(&self, request: ChatRequest) -> PendingCall {
        PendingCall {
            call: self.host.submit(request, false, self.transport()),
            host: self.host.clone(),
            clock: self.clock.clone(),
        }
    }

    /// [`Router::chat_completions`] for a JSON body.
    pub fn chat_completions_json(
        &self,
        body: serde_json::Value,
    ) -> Result<Routed, RouterCallError> {
        let request = ChatRequest::from_value(body)?;
        Ok(self.chat_completions(request)?)
    }

    /// Routes a streaming request; the chunks come from the returned iterator.
    pub fn chat_completions_stream(&self, request: ChatRequest) -> ChunkIter {
        let call = self.host.submit(request, true, self.transport());
        ChunkIter::new(call, self.host.clone(), self.clock.clone())
    }

    /// What the router knows about each provider now, in config order: counts, latency,
    /// breaker, cooldown and budget (see [`ProviderStats`]); clones share it.
    pub fn stats(&self) -> Vec<ProviderStats> {
        self.host.stats()
    }

    /// Reports the caller's own validation of the answer `route_id` names ([`Routed::id`]) to
    /// the validity classifier; `false` when the router no longer remembers that request.
    pub fn report(&self, route_id: RequestId, valid: bool) -> bool {
        self.host.report(route_id, valid)
    }

    /// Requests and attempts the host holds. For tests.
    #[doc(hidden)]
    pub fn open_tasks(&self) -> usize {
        self.host.in_flight().2
    }

    /// The providers' names, in config order.
    pub fn provider_names(&self) -> &[String] {
        &self.providers
    }

    /// `(requests, attempts)` the machine holds in flight. For tests.
    #[doc(hidden)]
    pub fn in_flight(&self) -> (usize, usize) {
        let (requests, attempts, _) = self.host.in_flight();
        (requests, attempts)
    }

    /// Worker threads alive (busy, abandoned or idle). For tests.
    #[doc(hidden)]
    pub fn threads(&self) -> usize {
        self.transport.workers.threads()
    }

    fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }
}

/// A request started with [`Router::start`]. Dropping it before [`PendingCall::wait`] returns
/// cancels the request.
#[derive(Debug)]
pub struct PendingCall {
    call: Call,
    host: Arc<Host>,
    clock: Arc<Clock>,
}

impl PendingCall {
    /// Blocks until the outcome (a [`Canceller`] used meanwhile makes it `Cancelled`).
    pub fn wait(mut self) -> Result<Routed, RouteError> {
        let call = &mut self.call;
        self.clock.wait(&self.host, |cx| call.poll_outcome(cx))
    }

    /// A handle that cancels this request from any thread.
    pub fn canceller(&self) -> Canceller {
        Canceller {
            host: self.host.clone(),
            id: self.call.id(),
        }
    }
}

/// Cancels one request from any thread: its waiting caller gets `RouteError::Cancelled` and
/// every attempt in flight is aborted. Cancelling a request that has ended does nothing.
#[derive(Debug, Clone)]
pub struct Canceller {
    host: Arc<Host>,
    id: RequestId,
}

impl Canceller {
    /// Cancels the request.
    pub fn cancel(&self) {
        self.host.cancel_call(self.id);
    }
}
