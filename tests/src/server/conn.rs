//! One accepted connection: counted while open, closable on purpose by a scripted step, and
//! watched for flushes so a step can close it right after its last bytes went out.
//!
//! hyper owns the socket once it serves a connection, so a step cannot reach it to misbehave.
//! [`ConnCtl`] is the back channel: the request handler (or the response body) asks for a
//! graceful close or a reset, the connection task drops hyper's connection, and [`CountedIo`]'s
//! `Drop` sets `SO_LINGER 0` first when a reset was asked for, so the client sees an RST.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// How a step wants its connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kill {
    /// FIN: bytes already written still arrive (truncated bodies, cut streams).
    Graceful = 1,
    /// RST via `SO_LINGER 0`: the client sees "connection reset".
    Reset = 2,
}

/// Shared between a connection task, its IO and the requests it serves.
#[derive(Debug, Default)]
pub(crate) struct ConnCtl {
    kill: Notify,
    go_away: Notify,
    mode: AtomicU8,
    flushes: AtomicU64,
    flush_waker: AtomicWaker,
}

impl ConnCtl {
    /// Asks the connection task to drop the connection now.
    pub fn kill(&self, how: Kill) {
        self.mode.fetch_max(how as u8, Ordering::AcqRel);
        self.kill.notify_one();
    }

    /// Resolves once [`ConnCtl::kill`] was called.
    pub async fn killed(&self) {
        self.kill.notified().await;
    }

    /// Asks the connection task for a graceful shutdown (HTTP/2: `GOAWAY`, streams in flight
    /// finish, new requests go to another connection).
    pub fn go_away(&self) {
        self.go_away.notify_one();
    }

    /// Resolves once [`ConnCtl::go_away`] was called.
    pub async fn going_away(&self) {
        self.go_away.notified().await;
    }

    fn reset_requested(&self) -> bool {
        self.mode.load(Ordering::Acquire) == Kill::Reset as u8
    }

    /// How many flushes of the socket completed so far.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Acquire)
    }

    /// Wakes `cx` on the next completed flush.
    pub fn on_flush(&self, cx: &Context<'_>) {
        self.flush_waker.register(cx.waker());
    }
}

/// Counters the whole server shares.
#[derive(Debug, Default)]
pub(crate) struct ConnCounters {
    pub open: AtomicUsize,
    pub total: AtomicU64,
}

/// The TCP stream under hyper (and under TLS, for the HTTPS listener).
#[derive(Debug)]
pub(crate) struct CountedIo {
    stream: TcpStream,
    ctl: Arc<ConnCtl>,
    counters: Arc<ConnCounters>,
}

impl CountedIo {
    pub fn new(stream: TcpStream, ctl: Arc<ConnCtl>, counters: Arc<ConnCounters>) -> CountedIo {
        counters.open.fetch_add(1, Ordering::AcqRel);
        counters.total.fetch_add(1, Ordering::AcqRel);
        CountedIo {
            stream,
            ctl,
            counters,
        }
    }
}

impl Drop for CountedIo {
    fn drop(&mut self) {
        if self.ctl.reset_requested() {
            // Zero linger: close() discards unsent data and sends RST, without blocking.
            let _ = self.stream.set_zero_linger();
        }
        self.counters.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AsyncRead for CountedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.stream).poll_flush(cx);
        if let Poll::Ready(Ok(())) = r {
            // Everything hyper buffered has been written to the kernel by now.
            self.ctl.flushes.fetch_add(1, Ordering::AcqRel);
            self.ctl.flush_waker.wake();
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
