//! A non-blocking TCP stream for hyper ([`Socket`]): when a read or write would block, it records
//! the job's waker with whoever watches its fd ([`Watch`]), and that job is woken on the same
//! thread once the fd is ready.
//!
//! hyper polls its connection on every wake of the job that owns it, and each poll tries a read:
//! about eight reads per call would block. After one has, the socket knows the fd is not
//! readable until its watcher says otherwise, and answers the next polls without a syscall.

use super::asyncio::Reactor;
use super::poll;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Which readiness a job waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    Read,
    Write,
}

/// Who tells a socket's jobs that its fd is ready.
#[derive(Clone)]
pub(crate) enum Watch {
    /// The asyncio loop the socket's jobs run on.
    Asyncio(Arc<Reactor>),
    /// Whichever blocking [`poll::Driver`] polls the job at the time: a pooled connection may
    /// serve one thread's call, then another's.
    Poll,
}

/// A socket's stream and what is known of its readability, shared (weakly) with its watcher.
pub(crate) struct Watched {
    stream: TcpStream,
    /// False from a read that would block until the watcher reports the fd readable.
    readable: AtomicBool,
}

impl Watched {
    /// The watcher saw the fd readable (or closed, or in error): the next read tries again.
    pub(crate) fn set_readable(&self) {
        self.readable.store(true, Ordering::Release);
    }
}

impl AsFd for Watched {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// A non-blocking TCP stream whose readiness comes from its [`Watch`].
pub(crate) struct Socket {
    /// Shared only with watchers, which hold it weakly (asyncio's graveyard aside).
    watched: Option<Arc<Watched>>,
    watch: Watch,
}

/// Whether anybody waits on this poll: a check of an idle connection polls with a no-op waker.
fn waited_on(cx: &Context<'_>) -> bool {
    !cx.waker().will_wake(Waker::noop())
}

impl Socket {
    /// `stream` must be non-blocking.
    pub(crate) fn new(stream: TcpStream, watch: Watch) -> Self {
        Socket {
            watched: Some(Arc::new(Watched {
                stream,
                readable: AtomicBool::new(true),
            })),
            watch,
        }
    }

    fn watched(&self) -> io::Result<&Arc<Watched>> {
        self.watched
            .as_ref()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    fn stream(&self) -> io::Result<&TcpStream> {
        Ok(&self.watched()?.stream)
    }

    /// Has the job of `cx` woken once the fd is ready; nothing for a no-op waker.
    fn want(&self, readiness: Readiness, cx: &Context<'_>) -> io::Result<()> {
        if !waited_on(cx) {
            return Ok(());
        }
        let watched = self.watched()?;
        match &self.watch {
            Watch::Asyncio(reactor) => reactor.want(watched, readiness, cx.waker()),
            Watch::Poll => {
                poll::want(watched, readiness, cx.waker());
                Ok(())
            }
        }
    }

    /// Runs `op` until it stops being interrupted; a would-block waits for `readiness`.
    fn poll_io<T>(
        &self,
        cx: &mut Context<'_>,
        readiness: Readiness,
        mut op: impl FnMut(&TcpStream) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        loop {
            match op(self.stream()?) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if readiness == Readiness::Read {
                        self.watched()?.readable.store(false, Ordering::Release);
                    }
                    self.want(readiness, cx)?;
                    return Poll::Pending;
                }
                other => return Poll::Ready(other),
            }
        }
    }

    /// Ready once the socket is writable: how a non-blocking connect completes.
    pub(crate) fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A zero-length probe cannot tell; ask the kernel through the connect's own error.
        let stream = self.stream()?;
        match stream.peer_addr() {
            Ok(_) => Poll::Ready(Ok(())),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                if let Some(error) = stream.take_error()? {
                    return Poll::Ready(Err(error));
                }
                self.want(Readiness::Write, cx)?;
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let (Some(watched), Watch::Asyncio(reactor)) = (self.watched.take(), &self.watch) {
            reactor.bury(watched);
        }
        // Watched by a poll driver: closed now (its list holds the stream weakly).
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Known to block (and somebody waits): ask again without trying.
        if waited_on(cx) && !self.watched()?.readable.load(Ordering::Acquire) {
            self.want(Readiness::Read, cx)?;
            return Poll::Pending;
        }
        let n = match self.poll_io(cx, Readiness::Read, |mut s| {
            s.read(buf.initialize_unfilled())
        }) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, Readiness::Write, |mut s| s.write(data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, Readiness::Write, |mut s| s.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = self
            .stream()
            .and_then(|s| s.shutdown(std::net::Shutdown::Write));
        Poll::Ready(match result {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}
