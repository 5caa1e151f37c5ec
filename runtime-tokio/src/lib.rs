//! # f3dx-router-tokio
//!
//! The tokio driver of f3dx-router: a [`Router`] that runs core's
//! [`RouterMachine`](f3dx_router_core::RouterMachine) over one `reqwest` client.
//!
//! The driver decides nothing. It feeds the machine what happened (a request, a response head,
//! body pieces, the end, a transport error, a cancel, the time) and executes what the machine
//! says (send, cancel, deliver a chunk, complete). Which provider, when to hedge or fail over,
//! what counts as a failure and every timeout are the machine's.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use f3dx_router_core::RouterConfig;
//! use f3dx_router_tokio::Router;
//!
//! let config = RouterConfig::from_json(br#"{
//!     "providers": [
//!         {"name": "openai", "kind": "openai", "base_url": "https://api.openai.com/v1",
//!          "api_key_env": "OPENAI_API_KEY"},
//!         {"name": "claude", "kind": "anthropic", "base_url": "https://api.anthropic.com/v1",
//!          "api_key_env": "ANTHROPIC_API_KEY", "model_map": {"gpt-4o": "claude-sonnet-4-5"}}
//!     ]
//! }"#)?;
//! let router = Router::new(config)?;
//! let routed = router
//!     .chat_completions_json(serde_json::json!({
//!         "model": "gpt-4o",
//!         "messages": [{"role": "user", "content": "hi"}],
//!     }))
//!     .await?;
//! println!("{} answered: {}", routed.provider_name, String::from_utf8_lossy(&routed.body));
//! # Ok(()) }
//! ```
//!
//! Providers of kind `mock` run in-process (no network): their seeded model of latency and
//! failures is played by the router's timer, which feeds the scripted answer when it is due.
//!
//! The machine, its lock, the calls in flight and the timers are hosted by
//! [`f3dx_router_host`], shared with every other driver; this crate is its tokio transport
//! (`reqwest`) and its timer source. An event loop that does its own IO can send a router's
//! HTTP attempts itself: a clone made with [`Router::with_spawner`] hands each one to an
//! [`AttemptSpawner`] (the host's transport trait), which reports what happened through the
//! attempt's [`AttemptSink`] (the Python binding's asyncio loops and sync callers do this).
#![warn(missing_docs, missing_debug_implementations)]

mod attempt;
mod client;
mod error;
mod eyeballs;
pub mod proxy;
mod stream;
mod timer;
mod transport;

pub use client::{
    HTTP2_KEEPALIVE_INTERVAL, HTTP2_KEEPALIVE_TIMEOUT, TCP_KEEPALIVE, TCP_USER_TIMEOUT,
};
pub use error::RouterBuildError;
pub use eyeballs::{ATTEMPT_DELAY, connect_first};
pub use f3dx_router_core::{
    BreakerStats, ChatRequest, ProviderStats, RouteError, Routed, RouterConfig,
};
pub use f3dx_router_host::RouterCallError;
/// The host's transport seam under the names this crate's API has always used:
/// [`Router::with_spawner`] takes an [`AttemptSpawner`].
pub use f3dx_router_host::{
    Attempt as ExternalAttempt, AttemptAbort, AttemptSink, Transport as AttemptSpawner,
};
pub use stream::ChunkStream;
pub use transport::classify_error;

use client::ClientSettings;
use f3dx_router_core::RouterMachine;
use f3dx_router_host::{Call, Host};
use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use timer::TokioTimers;

/// Connect timeout used when the builder sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An LLM-provider router. Cheap to clone (one `Arc`); every clone routes through the same
/// machine, connection pool and provider state (cooldowns, mock models).
///
/// Calls must be made from within a tokio runtime (multi-threaded or current-thread); a call's
/// attempts run on the runtime it was made on. Clones share one connection pool, which must only
/// be used from one runtime at a time while that runtime keeps running: a router used from
/// several runtimes gives each its own pool with [`Router::with_own_pool`].
#[derive(Clone)]
pub struct Router {
    host: Arc<Host>,
    timers: Arc<TokioTimers>,
    /// How this clone sends HTTP attempts: its connection pool, or an external spawner.
    transport: Transport,
    settings: Arc<ClientSettings>,
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

/// Builds a [`Router`] with non-default transport settings.
#[derive(Debug, Clone)]
pub struct RouterBuilder {
    config: RouterConfig,
    settings: ClientSettings,
    seed: u64,
}

impl RouterBuilder {
    /// Trusts the certificates in `pem` as roots, in addition to the webpki roots (for a test
    /// server with a private CA). Checked at [`RouterBuilder::build`].
    pub fn add_root_certificate_pem(mut self, pem: &str) -> Self {
        self.settings.extra_roots_pem.push(pem.to_owned());
        self
    }

    /// How long to wait for a TCP (and TLS) connection; default [`DEFAULT_CONNECT_TIMEOUT`].
    /// Its expiry is reported to the machine as a transport timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// The seed of everything random: the machine's and the mock providers' draws (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The configured provider names, in preference order.
    pub fn provider_names(&self) -> Vec<String> {
        self.config
            .providers
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    /// Resolves `api_key_env` variables, validates the config and builds the HTTP client.
    ///
    /// Within a tokio runtime, the router's timer task (deadlines, timeouts, delayed hedges)
    /// starts on it now; otherwise on the runtime of the first call.
    pub fn build(self) -> Result<Router, RouterBuildError> {
        let providers: Arc<[String]> = self.provider_names().into();
        let mut config = self.config;
        config.resolve_api_keys(|var| std::env::var(var).ok())?;
        let mut settings = self.settings;
        settings.proxies = proxy::Proxies::from_env(config.proxy_url(), config.trust_env)?;
        let machine = RouterMachine::new(config, self.seed)?;
        let pool = client::build_client(&settings)?;
        let timers = Arc::new(TokioTimers::new());
        let unix_at_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let host = Host::new(machine, timers.clone(), unix_at_epoch);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            timers.follow(&runtime, &host);
        }
        Ok(Router {
            host,
            timers,
            transport: Transport::Pool(pool),
            settings: Arc::new(settings),
            providers,
        })
    }
}

impl Router {
    /// A router with default transport settings. `api_key_env` variables are read now.
    pub fn new(config: RouterConfig) -> Result<Self, RouterBuildError> {
        Self::builder(config).build()
    }

    /// A builder, for a private root CA, a connect timeout or a seed.
    pub fn builder(config: RouterConfig) -> RouterBuilder {
        RouterBuilder {
            config,
            settings: ClientSettings {
                extra_roots_pem: Vec::new(),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                proxies: proxy::Proxies::default(),
            },
            seed: 0,
        }
    }

    /// A clone that routes through the same machine (policies, cooldowns, mock models) but
    /// sends through a connection pool of its own, for calls made on another runtime.
    ///
    /// A pooled connection is served by a task on the runtime that opened it. A pool shared
    /// with a current-thread runtime that only runs while its thread waits on a call (one per
    /// blocking thread, say) would hand other runtimes connections nobody polls; each such
    /// runtime gets its own pool instead, and its calls' attempts never leave its thread.
    pub fn with_own_pool(&self) -> Result<Router, RouterBuildError> {
        Ok(Router {
            transport: Transport::Pool(client::build_client(&self.settings)?),
            ..self.clone()
        })
    }

    /// A clone that routes through the same machine but hands every HTTP attempt of its calls
    /// to `spawner` (see [`AttemptSpawner`]), for an event loop that does its own IO. Mock
    /// providers are still played by the router's timer.
    pub fn with_spawner(&self, spawner: Arc<dyn AttemptSpawner>) -> Router {
        Router {
            transport: Transport::External(spawner),
            ..self.clone()
        }
    }

    /// The TLS configuration of this router's trust for an [`AttemptSpawner`]'s own connections,
    /// offering by ALPN HTTP/1.1 only, or HTTP/2 first when `http2` (for a spawner that can keep
    /// a shared connection's IO running between its attempts).
    pub fn spawner_tls_config(
        &self,
        http2: bool,
    ) -> Result<rustls::ClientConfig, RouterBuildError> {
        let mut tls = client::tls_config(&self.settings)?;
        tls.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(tls)
    }

    /// The proxies this router's connections go through (config and environment, read at
    /// build), for an [`AttemptSpawner`].
    pub fn proxies(&self) -> &proxy::Proxies {
        &self.settings.proxies
    }

    /// How long a connection may take to open (TCP and TLS), for an [`AttemptSpawner`].
    pub fn connect_timeout(&self) -> Duration {
        self.settings.connect_timeout
    }

    /// Routes one chat completion and returns the OpenAI-shape `chat.completion` with its route.
    ///
    /// Dropping the future cancels the request and every attempt in flight. A `stream: true`
    /// request belongs with [`Router::chat_completions_stream`]: here its chunks are discarded
    /// and [`Routed::body`] is empty.
    pub async fn chat_completions(&self, request: ChatRequest) -> Result<Routed, RouteError> {
        let mut call = self.submit(request, false);
        poll_fn(|cx| call.poll_outcome(cx)).await
    }

    /// [`Router::chat_completions`] for a JSON body: a body that is not a chat request is a
    /// typed error and nothing is sent.
    pub async fn chat_completions_json(
        &self,
        body: serde_json::Value,
    ) -> Result<Routed, RouterCallError> {
        let request = ChatRequest::from_value(body)?;
        Ok(self.chat_completions(request).await?)
    }

    /// Routes a streaming chat completion (`"stream": true`): the request starts now, and the
    /// returned stream yields each OpenAI `chat.completion.chunk` as the committed provider
    /// sends it. See [`ChunkStream`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn chat_completions_stream(&self, request: ChatRequest) -> ChunkStream {
        ChunkStream::new(self.submit(request, true))
    }

    /// Hands a request to the host, its attempts to be sent through this clone's transport on
    /// the current runtime, which the timer task follows.
    ///
    /// Panics outside a tokio runtime (before anything is locked).
    fn submit(&self, request: ChatRequest, stream: bool) -> Call {
        let runtime = tokio::runtime::Handle::try_current()
            .expect("f3dx-router: requests must be made from within a tokio runtime");
        self.timers.follow(&runtime, &self.host);
        let transport: Arc<dyn AttemptSpawner> = match &self.transport {
            Transport::Pool(client) => Arc::new(attempt::Pool {
                runtime,
                client: client.clone(),
            }),
            Transport::External(spawner) => spawner.clone(),
        };
        self.host.submit(request, stream, transport)
    }

    /// Reports the caller's own validation of a completed request's answer (`route_id` is its
    /// [`Routed::id`]) to the validity classifier: an invalid report counts against the
    /// provider that served it for that request's tenant and model. `false` when the router no
    /// longer remembers the id (unknown, failed, or older than `validity.feedback_ids`
    /// completions): the report is ignored.
    pub fn report(&self, route_id: f3dx_router_core::RequestId, valid: bool) -> bool {
        self.host.report(route_id, valid)
    }

    /// The configured provider names, in preference order.
    pub fn provider_names(&self) -> &[String] {
        &self.providers
    }

    /// What the router knows about each provider now, in config order: counts, latency, breaker,
    /// cooldown and budget (see [`ProviderStats`]). Taken under the machine's lock, so it is one
    /// consistent moment; clones share it (they share the machine).
    pub fn stats(&self) -> Vec<ProviderStats> {
        self.host.stats()
    }

    /// `(requests, attempts)` the machine holds in flight. For tests.
    #[doc(hidden)]
    pub fn in_flight(&self) -> (usize, usize) {
        let (requests, attempts, _) = self.host.in_flight();
        (requests, attempts)
    }

    /// Attempt tasks the driver holds (sent, neither ended nor cancelled). For tests.
    #[doc(hidden)]
    pub fn open_tasks(&self) -> usize {
        self.host.in_flight().2
    }
}

/// How a router clone sends HTTP attempts.
#[derive(Clone)]
enum Transport {
    /// As tokio tasks on the call's runtime, through this pool.
    Pool(reqwest::Client),
    /// Handed to whoever drives this spawner (an event loop outside tokio).
    External(Arc<dyn AttemptSpawner>),
}
