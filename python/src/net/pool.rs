//! Pools of connections (one per event loop; one per router for sync calls), and what keeps
//! them from piling up.
//!
//! A pooled connection is looked at when its origin is next asked for, which may be never: a
//! router dropped, a provider no longer called. So, as hyper-util's pool does, a pool that holds
//! anything is swept every [`IDLE_TIMEOUT`] (hyper-util's interval is its idle timeout too):
//! connections idle for longer, or closed by the provider meanwhile, are let go. And a dropped
//! router's connections, which nobody else can use (they are keyed by its TLS trust), are let
//! go at once on every loop ([`forget_trust`]).

use super::conn::{Conn, Origin};
use super::http2::Http2Pool;
use super::jobs::Jobs;
use crate::lock;
use crate::runtime::runtime;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Idle connections kept per host. One pool carries every concurrent call of its loop (or, for
/// sync calls, of every thread), so it must hold as many connections as calls in flight to one
/// host; past this, a burst's extra connections are closed when it ends.
const MAX_IDLE_PER_HOST: usize = 256;

/// How long a connection may sit idle in a pool. Providers close idle keep-alive connections
/// after a minute or so, and a request sent just as one does fails; hyper-util's pools (the
/// tokio driver's) use the same 90 s.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A pooled connection and when it was put back.
struct Idle {
    conn: Conn,
    since: Instant,
}

/// Where a pool's sweeps run: as a job of its event loop (whose sockets only its thread may
/// close while asyncio watches them), or on the extension's runtime (sync pools, whose sockets
/// any thread may close).
pub(crate) enum Home {
    Loop(Weak<Jobs>),
    Runtime,
}

/// Idle HTTP/1.1 keep-alive connections, by where they go, oldest first; and the shared HTTP/2
/// connections (a loop's only).
pub(crate) struct Pool {
    idle: Mutex<HashMap<Origin, Vec<Idle>>>,
    pub(crate) http2: Arc<Http2Pool>,
    home: Home,
    /// A sweep is scheduled. Locked around the decision to stop sweeping, so that a connection
    /// pooled meanwhile starts the next sweep.
    sweeping: Mutex<bool>,
}

impl Pool {
    pub(crate) fn new(home: Home) -> Self {
        Pool {
            idle: Mutex::default(),
            http2: Arc::default(),
            home,
            sweeping: Mutex::new(false),
        }
    }

    /// A pooled connection still open, most recently used first. Those idle for longer than
    /// [`IDLE_TIMEOUT`] are closed on the way.
    pub(crate) fn take(&self, origin: &Origin) -> Option<Conn> {
        let now = Instant::now();
        loop {
            let (newest, expired) = {
                let mut idle = lock(&self.idle);
                let conns = idle.get_mut(origin)?;
                let fresh = conns
                    .iter()
                    .position(|c| now.duration_since(c.since) < IDLE_TIMEOUT)
                    .unwrap_or(conns.len());
                let expired: Vec<Idle> = conns.drain(..fresh).collect();
                (conns.pop(), expired)
            };
            drop(expired); // closed outside the lock
            let mut conn = newest?.conn;
            if conn.reusable() {
                return Some(conn);
            }
        }
    }

    pub(crate) fn put(self: &Arc<Self>, origin: Origin, conn: Conn) {
        let since = Instant::now();
        {
            let mut idle = lock(&self.idle);
            let conns = idle.entry(origin).or_default();
            if conns.len() >= MAX_IDLE_PER_HOST {
                return;
            }
            conns.push(Idle { conn, since });
        }
        self.keep_swept();
    }

    /// Schedules sweeps until the pool is empty, unless they are scheduled already. Called
    /// whenever a connection is pooled or shared.
    pub(crate) fn keep_swept(self: &Arc<Self>) {
        let mut sweeping = lock(&self.sweeping);
        if *sweeping {
            return;
        }
        *sweeping = true;
        let sweeps = sweep_every(Arc::downgrade(self), IDLE_TIMEOUT);
        match &self.home {
            Home::Loop(jobs) => {
                if let Some(jobs) = jobs.upgrade() {
                    jobs.add_attempt(Box::pin(sweeps));
                }
            }
            Home::Runtime => {
                runtime().spawn(sweeps);
            }
        }
    }

    /// Lets go of connections idle for over [`IDLE_TIMEOUT`] or closed by their provider;
    /// false if nothing is pooled any more.
    fn sweep(&self) -> bool {
        let now = Instant::now();
        let mut gone = Vec::new();
        let any_idle = {
            let mut idle = lock(&self.idle);
            idle.retain(|_, conns| {
                for mut idle in std::mem::take(conns) {
                    if now.duration_since(idle.since) < IDLE_TIMEOUT && idle.conn.reusable() {
                        conns.push(idle);
                    } else {
                        gone.push(idle);
                    }
                }
                !conns.is_empty()
            });
            !idle.is_empty()
        };
        drop(gone); // closed outside the lock
        let any_shared = self.http2.sweep();
        any_idle || any_shared
    }

    /// Lets go of every connection made with `tls`: its router is gone, and no other can use
    /// them.
    pub(crate) fn forget(&self, tls: &Arc<rustls::ClientConfig>) {
        let gone: Vec<Vec<Idle>> = {
            let mut idle = lock(&self.idle);
            let keys: Vec<Origin> = idle.keys().filter(|o| o.trusts(tls)).cloned().collect();
            keys.iter().filter_map(|o| idle.remove(o)).collect()
        };
        drop(gone);
        self.http2.forget(tls);
    }

    /// Closes every idle connection and lets go of the shared ones (the loop or router is going
    /// away).
    pub(crate) fn clear(&self) {
        // Taken out, then closed outside the lock.
        let idle: Vec<Vec<Idle>> = lock(&self.idle).drain().map(|(_, conns)| conns).collect();
        drop(idle);
        self.http2.clear();
    }
}

/// Sweeps `pool` every `interval` until it is gone or empty (the next pooled connection
/// schedules sweeps again).
async fn sweep_every(pool: Weak<Pool>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let mut sweeping = lock(&pool.sweeping);
        if !pool.sweep() {
            *sweeping = false;
            return;
        }
    }
}

/// The pools of the live event loops, each with the jobs its sweeps and forgets run as.
static LOOP_POOLS: Mutex<Vec<(Weak<Pool>, Weak<Jobs>)>> = Mutex::new(Vec::new());

/// Records a loop's pool, so that a dropped router's connections can be let go there.
pub(crate) fn register_loop_pool(pool: &Arc<Pool>, jobs: &Arc<Jobs>) {
    let mut pools = lock(&LOOP_POOLS);
    pools.retain(|(pool, _)| pool.strong_count() > 0);
    pools.push((Arc::downgrade(pool), Arc::downgrade(jobs)));
}

/// A router whose loop connections were made with `tls` is gone: every loop lets go of them,
/// on its own thread (a job; the loop is woken for it), since only that thread may close a
/// socket asyncio watches.
pub(crate) fn forget_trust(tls: &Arc<rustls::ClientConfig>) {
    let pools: Vec<(Weak<Pool>, Arc<Jobs>)> = lock(&LOOP_POOLS)
        .iter()
        .filter_map(|(pool, jobs)| Some((pool.clone(), jobs.upgrade()?)))
        .collect();
    for (pool, jobs) in pools {
        let tls = tls.clone();
        jobs.add_attempt(Box::pin(async move {
            if let Some(pool) = pool.upgrade() {
                pool.forget(&tls);
            }
        }));
    }
}
