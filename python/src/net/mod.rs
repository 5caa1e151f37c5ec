//! HTTP done by the thread that waits for the call: the asyncio loop's own thread for awaited
//! calls, the calling thread for sync calls and sync streams.
//!
//! A call whose attempts go through the extension runtime's pool has them served by tokio's
//! worker threads: every call then crosses threads twice (to a worker and back), which costs
//! more than the loopback round trip itself. Here the call's router clone hands its HTTP
//! attempts to the waiting thread ([`Spawner`]), which connects, writes and reads itself, told
//! when a socket is ready by asyncio or by `poll(2)`. Routing is unchanged: the machine, its lock
//! and its timers are the router's, shared with every other call.
//!
//! - [`jobs`]: the futures a thread polls, and their wakers.
//! - [`socket`]: non-blocking sockets, and who watches them ([`socket::Watch`]).
//! - [`asyncio`]: readiness through the loop's `add_reader` / `add_writer`.
//! - [`poll`]: the blocking driver of sync calls and streams.
//! - [`conn`]: connect, TLS, HTTP/1.1 and (on a loop) HTTP/2.
//! - [`pool`]: pools of idle connections, swept, and let go with their router.
//! - [`tunnel`]: `CONNECT` through a proxy.
//! - [`http2`]: a loop's shared HTTP/2 connections, and who opens the next one.
//! - [`attempt`]: one attempt, from the machine's request to its sink.

pub(crate) mod asyncio;
mod attempt;
mod conn;
mod http2;
pub(crate) mod jobs;
pub(crate) mod poll;
mod pool;
pub(crate) mod socket;
mod tunnel;

use f3dx_router_tokio::proxy::Proxies;
use f3dx_router_tokio::{AttemptAbort, AttemptSpawner, ExternalAttempt, Router};
use jobs::Jobs;
use socket::Watch;
use std::sync::Arc;
use std::time::Duration;

/// What one event loop's thread does its HTTP with.
pub(crate) struct LoopIo {
    pub(crate) jobs: Arc<Jobs>,
    pub(crate) reactor: Arc<asyncio::Reactor>,
    pool: Arc<pool::Pool>,
}

impl LoopIo {
    pub(crate) fn new(jobs: Jobs) -> Self {
        let jobs = Arc::new(jobs);
        let pool = Arc::new(pool::Pool::new(pool::Home::Loop(Arc::downgrade(&jobs))));
        pool::register_loop_pool(&pool, &jobs);
        LoopIo {
            jobs,
            reactor: Arc::default(),
            pool,
        }
    }

    /// A spawner sending on this loop with a router's TLS trust, connect timeout and proxies.
    pub(crate) fn spawner(
        &self,
        tls: Arc<rustls::ClientConfig>,
        router: &Router,
    ) -> Arc<dyn AttemptSpawner> {
        Arc::new(Spawner {
            jobs: self.jobs.clone(),
            ends: Arc::new(attempt::Ends {
                watch: Watch::Asyncio(self.reactor.clone()),
                pool: self.pool.clone(),
                tls,
                connect_timeout: router.connect_timeout(),
                proxies: router.proxies().clone(),
                http2: Some(http2::JobExecutor(Arc::downgrade(&self.jobs))),
            }),
        })
    }

    /// Drops every job and idle connection (the loop is going away).
    pub(crate) fn clear(&self) {
        self.reactor.close();
        self.jobs.clear();
        self.pool.clear();
    }
}

/// What the sync calls of one router send with: one pool of idle connections for every thread,
/// the router's TLS trust and connect timeout.
pub(crate) struct SyncNet {
    pool: Arc<pool::Pool>,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    proxies: Proxies,
}

impl SyncNet {
    pub(crate) fn new(tls: Arc<rustls::ClientConfig>, router: &Router) -> Self {
        SyncNet {
            pool: Arc::new(pool::Pool::new(pool::Home::Runtime)),
            tls,
            connect_timeout: router.connect_timeout(),
            proxies: router.proxies().clone(),
        }
    }

    /// A spawner whose attempts are jobs of `driver`.
    pub(crate) fn spawner(&self, driver: &poll::Driver) -> Arc<dyn AttemptSpawner> {
        Arc::new(Spawner {
            jobs: driver.jobs().clone(),
            ends: Arc::new(attempt::Ends {
                watch: Watch::Poll,
                pool: self.pool.clone(),
                tls: self.tls.clone(),
                connect_timeout: self.connect_timeout,
                proxies: self.proxies.clone(),
                http2: None,
            }),
        })
    }
}

/// A router whose loop connections were made with `tls` (its `spawner` TLS) is gone: every
/// loop lets go of them. Its sync connections go with its [`SyncNet`].
pub(crate) fn forget_loop_connections(tls: &Arc<rustls::ClientConfig>) {
    pool::forget_trust(tls);
}

/// Starts a router's attempts as jobs of one thread.
struct Spawner {
    jobs: Arc<Jobs>,
    ends: Arc<attempt::Ends>,
}

impl AttemptSpawner for Spawner {
    fn spawn(&self, attempt: ExternalAttempt) -> Box<dyn AttemptAbort> {
        let run = attempt::run(self.ends.clone(), attempt);
        let id = self.jobs.add_attempt(Box::pin(run));
        Box::new(JobAbort {
            jobs: self.jobs.clone(),
            id,
        })
    }
}

struct JobAbort {
    jobs: Arc<Jobs>,
    id: u64,
}

impl AttemptAbort for JobAbort {
    fn abort(&self) {
        self.jobs.abort(self.id);
    }
}
