//! HTTP done by the asyncio loop's own thread, for awaited calls.
//!
//! An awaited call polled by the loop thread ([`crate::bridge`]) would otherwise send through
//! the extension runtime's pool, whose connections are served by tokio's worker threads: every
//! call then crosses threads twice (to a worker and back), which costs more than the loopback
//! round trip itself. Here the call's router clone hands its HTTP attempts to the loop
//! ([`LoopSpawner`]), and the loop thread connects, writes and reads with asyncio telling it
//! when a socket is ready. Routing is unchanged: the machine, its lock and its timers are the
//! router's, shared with every other call.
//!
//! - [`jobs`]: the futures the loop thread polls, and their wakers.
//! - [`socket`]: non-blocking sockets watched through `add_reader` / `add_writer`.
//! - [`conn`]: connect, TLS, HTTP/1.1, and the loop's pool of idle connections.
//! - [`attempt`]: one attempt, from the machine's request to its sink.

mod attempt;
mod conn;
pub(crate) mod jobs;
pub(crate) mod socket;

use f3dx_router_tokio::{AttemptAbort, AttemptSpawner, ExternalAttempt};
use jobs::Jobs;
use socket::Reactor;
use std::sync::Arc;
use std::time::Duration;

/// What one event loop's thread does its HTTP with.
pub(crate) struct LoopIo {
    pub(crate) jobs: Arc<Jobs>,
    pub(crate) reactor: Arc<Reactor>,
    pool: Arc<conn::Pool>,
}

impl LoopIo {
    pub(crate) fn new(jobs: Jobs) -> Self {
        LoopIo {
            jobs: Arc::new(jobs),
            reactor: Arc::default(),
            pool: Arc::default(),
        }
    }

    /// A spawner sending on this loop with a router's TLS trust and connect timeout.
    pub(crate) fn spawner(
        &self,
        tls: Arc<rustls::ClientConfig>,
        connect_timeout: Duration,
    ) -> Arc<dyn AttemptSpawner> {
        Arc::new(LoopSpawner {
            jobs: self.jobs.clone(),
            reactor: self.reactor.clone(),
            pool: self.pool.clone(),
            tls,
            connect_timeout,
        })
    }

    /// Drops every job and idle connection (the loop is going away).
    pub(crate) fn clear(&self) {
        self.jobs.clear();
        drop(self.pool.clear());
    }
}

/// Starts a router's attempts as jobs of one loop.
struct LoopSpawner {
    jobs: Arc<Jobs>,
    reactor: Arc<Reactor>,
    pool: Arc<conn::Pool>,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
}

impl AttemptSpawner for LoopSpawner {
    fn spawn(&self, attempt: ExternalAttempt) -> Box<dyn AttemptAbort> {
        let ends = attempt::Ends {
            reactor: self.reactor.clone(),
            pool: self.pool.clone(),
            tls: self.tls.clone(),
            connect_timeout: self.connect_timeout,
        };
        let id = self.jobs.add_attempt(Box::pin(attempt::run(ends, attempt)));
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
