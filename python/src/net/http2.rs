//! Shared HTTP/2 connections of one event loop: which connection an attempt's stream goes on,
//! and who opens the next one.
//!
//! A TLS provider that picks `h2` by ALPN gets connections shared by the loop's attempts to its
//! origin, up to [`MAX_STREAMS_PER_CONNECTION`] streams each; a connection's IO runs as a job of
//! the loop ([`JobExecutor`]). Once an origin is known to speak HTTP/2, an attempt that finds no
//! connection with room opens one and up to a connection's worth of others wait for it
//! ([`Http2Pool::stream`]) instead of each opening its own; the first connection to an origin
//! cannot be waited for, since nobody knows yet what the provider speaks.

use super::conn::Origin;
use super::jobs::Jobs;
use super::pool::IDLE_TIMEOUT;
use crate::lock;
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http2;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// The sending side of a shared HTTP/2 connection; clones send on the same connection.
pub(crate) type SharedSender = http2::SendRequest<Full<Bytes>>;

/// Streams a shared HTTP/2 connection carries at once before another is opened. A server
/// advertises its own limit (`SETTINGS_MAX_CONCURRENT_STREAMS`, 100 or more at the large
/// providers), which hyper's client does not expose; a stream past it would wait for a free one,
/// where a new connection does not make a call wait on others.
const MAX_STREAMS_PER_CONNECTION: usize = 100;

/// Runs the tasks hyper's HTTP/2 client spawns (the connection's IO, a request body's pipe) as
/// jobs of the event loop that opened the connection. Weak: the connection's job holds it.
#[derive(Clone)]
pub(crate) struct JobExecutor(pub(crate) Weak<Jobs>);

impl<F> hyper::rt::Executor<F> for JobExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, task: F) {
        // No jobs: the loop is gone, and the task (dropped here) with it.
        if let Some(jobs) = self.0.upgrade() {
            jobs.add_attempt(Box::pin(task));
        }
    }
}

/// One stream's hold on a shared HTTP/2 connection, counted against the connection's
/// [`MAX_STREAMS_PER_CONNECTION`] until dropped.
pub(crate) struct Lease {
    pub(crate) sender: SharedSender,
    _stream: Arc<()>,
}

/// A shared HTTP/2 connection, its streams in flight, and when it was last leased.
struct Shared {
    sender: SharedSender,
    /// One reference per stream in flight, plus this one.
    streams: Arc<()>,
    since: Instant,
}

impl Shared {
    fn in_flight(&self) -> usize {
        Arc::strong_count(&self.streams) - 1
    }

    /// Open, and carrying a stream or used within [`IDLE_TIMEOUT`].
    fn keep(&self, now: Instant) -> bool {
        !self.sender.is_closed()
            && (self.in_flight() > 0 || now.duration_since(self.since) < IDLE_TIMEOUT)
    }

    fn has_room(&self) -> bool {
        !self.sender.is_closed() && self.in_flight() < MAX_STREAMS_PER_CONNECTION
    }

    fn lease(&mut self, now: Instant) -> Lease {
        self.since = now;
        Lease {
            sender: self.sender.clone(),
            _stream: self.streams.clone(),
        }
    }
}

/// The HTTP/2 side of one origin: its connections, and those being opened. Present only for an
/// origin known to speak HTTP/2.
#[derive(Default)]
struct ToOrigin {
    open: Vec<Shared>,
    /// Connections being opened, each with the number of attempts waiting for it (never more
    /// than the rest of a connection's room).
    opening: Vec<(Arc<Opening>, usize)>,
}

/// A connection being opened: how its opening ended, once it has, and the wakers of the
/// attempts waiting for it.
#[derive(Default)]
struct Opening {
    state: Mutex<(Option<Ended>, Vec<Waker>)>,
}

/// How an opening ended, for those waiting for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Look again: the connection is shared (or its opener was cancelled, and one of the
    /// waiters opens the next).
    LookAgain,
    /// Connect on your own: the opening failed, or the provider did not pick HTTP/2. Waiting in
    /// turn would put one failed connect after another.
    ConnectAlone,
}

/// What an attempt to an origin does next.
enum Found {
    /// A stream of a connection with room.
    Stream(Lease),
    /// Wait for a connection being opened, then look again.
    Wait(Waiting),
    /// Open a connection; `Some` when others may wait for it (drop it once the new connection
    /// is shared, or the attempt failed).
    Connect(Option<OpeningGuard>),
}

/// The shared HTTP/2 connections of one event loop, by origin.
#[derive(Default)]
pub(crate) struct Http2Pool {
    origins: Mutex<HashMap<Origin, ToOrigin>>,
}

impl Http2Pool {
    /// A stream of a shared connection to `origin` with room, once one is (waiting for a
    /// connection another attempt is opening, if any); or else `Err` with the guard to drop once
    /// the caller's own connection is open (`Some` when others wait for it).
    pub(crate) async fn stream(
        self: &Arc<Self>,
        origin: &Origin,
    ) -> Result<Lease, Option<OpeningGuard>> {
        loop {
            match self.find(origin) {
                Found::Stream(lease) => return Ok(lease),
                Found::Connect(guard) => return Err(guard),
                Found::Wait(waiting) => {
                    if waiting.await == Ended::ConnectAlone {
                        return Err(None);
                    }
                }
            }
        }
    }

    /// Where an attempt to `origin` sends. Connections that closed, or that carried nothing for
    /// longer than [`IDLE_TIMEOUT`], are let go on the way (their IO jobs end once their streams
    /// do).
    fn find(self: &Arc<Self>, origin: &Origin) -> Found {
        let now = Instant::now();
        let mut origins = lock(&self.origins);
        let Some(to) = origins.get_mut(origin) else {
            return Found::Connect(None);
        };
        let keep = |c: &Shared| c.keep(now);
        // Nothing to let go, nothing allocated: the common case, on every attempt.
        let gone: Vec<Shared> = if to.open.iter().all(keep) {
            Vec::new()
        } else {
            let (kept, gone) = std::mem::take(&mut to.open).into_iter().partition(keep);
            to.open = kept;
            gone
        };
        let found = if let Some(conn) = to.open.iter_mut().find(|c| c.has_room()) {
            Found::Stream(conn.lease(now))
        } else if let Some((opening, waiters)) = to
            .opening
            .iter_mut()
            // The attempt opening it takes a stream too.
            .find(|(_, waiters)| *waiters + 1 < MAX_STREAMS_PER_CONNECTION)
        {
            *waiters += 1;
            Found::Wait(Waiting(opening.clone()))
        } else {
            let opening = Arc::new(Opening::default());
            to.opening.push((opening.clone(), 0));
            Found::Connect(Some(OpeningGuard {
                pool: self.clone(),
                origin: origin.clone(),
                opening,
                ended: Ended::LookAgain,
            }))
        };
        drop(origins);
        drop(gone); // outside the lock
        found
    }

    /// A stream of the new HTTP/2 connection `sender` to `origin`, which is shared from now on.
    /// `opening` is the guard of the attempt that opened it for others to wait on: that one is
    /// always kept, since calls outgrew the connections there (even if some room came free during
    /// the handshake: discarding it would open another at the next overflow). Without one (the
    /// first attempts to an origin, which connect at once) it is kept only if no connection has
    /// room: the extra ones carry their one attempt, then close.
    pub(crate) fn share(
        &self,
        origin: Origin,
        sender: SharedSender,
        opening: Option<&mut OpeningGuard>,
    ) -> Lease {
        let now = Instant::now();
        let mut new = Shared {
            sender,
            streams: Arc::new(()),
            since: now,
        };
        let lease = new.lease(now);
        let awaited = opening.is_some();
        if let Some(guard) = opening {
            guard.ended = Ended::LookAgain;
        }
        let mut origins = lock(&self.origins);
        let to = origins.entry(origin).or_default();
        let extra = if !awaited && to.open.iter().any(Shared::has_room) {
            Some(new)
        } else {
            to.open.push(new);
            None
        };
        drop(origins);
        drop(extra); // outside the lock
        lease
    }

    /// Lets go of connections closed, or idle for longer than [`IDLE_TIMEOUT`]; false if none
    /// is left.
    pub(crate) fn sweep(&self) -> bool {
        let now = Instant::now();
        let mut gone = Vec::new();
        let any = {
            let mut origins = lock(&self.origins);
            for to in origins.values_mut() {
                let (kept, expired) = std::mem::take(&mut to.open)
                    .into_iter()
                    .partition(|c| c.keep(now));
                to.open = kept;
                gone.extend(expired);
            }
            origins.retain(|_, to| !to.open.is_empty() || !to.opening.is_empty());
            !origins.is_empty()
        };
        drop(gone); // outside the lock
        any
    }

    /// Lets go of every connection made with `tls` (its router is gone).
    pub(crate) fn forget(&self, tls: &Arc<rustls::ClientConfig>) {
        let gone: Vec<ToOrigin> = {
            let mut origins = lock(&self.origins);
            let keys: Vec<Origin> = origins.keys().filter(|o| o.trusts(tls)).cloned().collect();
            keys.iter().filter_map(|o| origins.remove(o)).collect()
        };
        drop(gone);
    }

    /// Lets go of every connection (the loop is going away).
    pub(crate) fn clear(&self) {
        // Taken out, then dropped outside the lock.
        let origins: Vec<ToOrigin> = lock(&self.origins).drain().map(|(_, to)| to).collect();
        drop(origins);
    }
}

/// An attempt opening a connection others wait for. Dropped once that connection is shared, or
/// when the attempt failed or was cancelled; those waiting then look again, or connect on their
/// own if the opening failed ([`OpeningGuard::give_up`]). An origin whose opening failed with no
/// connection open is forgotten (it may no longer speak HTTP/2).
pub(crate) struct OpeningGuard {
    pool: Arc<Http2Pool>,
    origin: Origin,
    opening: Arc<Opening>,
    /// What those waiting do: a cancelled opener (the default) or a shared connection lets them
    /// look again.
    ended: Ended,
}

impl OpeningGuard {
    /// The opening failed, or gave a connection that is not HTTP/2.
    pub(crate) fn give_up(&mut self) {
        self.ended = Ended::ConnectAlone;
    }
}

impl Drop for OpeningGuard {
    fn drop(&mut self) {
        {
            let mut origins = lock(&self.pool.origins);
            if let Some(to) = origins.get_mut(&self.origin) {
                to.opening.retain(|(o, _)| !Arc::ptr_eq(o, &self.opening));
                let failed = self.ended == Ended::ConnectAlone;
                if failed && to.open.is_empty() && to.opening.is_empty() {
                    origins.remove(&self.origin);
                }
            }
        }
        let wakers = {
            let mut state = lock(&self.opening.state);
            state.0 = Some(self.ended);
            std::mem::take(&mut state.1)
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

/// Resolves once the connection an attempt waits for is open, or its opening ended otherwise.
struct Waiting(Arc<Opening>);

impl Future for Waiting {
    type Output = Ended;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended> {
        let mut state = lock(&self.0.state);
        if let Some(ended) = state.0 {
            return Poll::Ready(ended);
        }
        if !state.1.iter().any(|w| w.will_wake(cx.waker())) {
            state.1.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
