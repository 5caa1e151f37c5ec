//! A non-blocking TCP stream for hyper ([`Socket`]): when a read or write would block, it records
//! the job's waker with whoever watches its fd ([`Watch`]), and that job is woken on the same
//! thread once the fd is ready.

use super::asyncio::Reactor;
use super::poll;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
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

/// A non-blocking TCP stream whose readiness comes from its [`Watch`].
pub(crate) struct Socket {
    /// Shared only with a poll driver's list of sockets to wait on, which holds it weakly.
    stream: Option<Arc<TcpStream>>,
    fd: RawFd,
    watch: Watch,
}

impl Socket {
    /// `stream` must be non-blocking.
    pub(crate) fn new(stream: TcpStream, watch: Watch) -> Self {
        Socket {
            fd: stream.as_raw_fd(),
            stream: Some(Arc::new(stream)),
            watch,
        }
    }

    fn stream(&self) -> io::Result<&Arc<TcpStream>> {
        self.stream
            .as_ref()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// Has the job of `waker` woken once the fd is ready. A no-op waker (a check of an idle
    /// connection, which nobody waits on) asks for nothing.
    fn want(&self, readiness: Readiness, waker: &Waker) -> io::Result<()> {
        if waker.will_wake(Waker::noop()) {
            return Ok(());
        }
        match &self.watch {
            Watch::Asyncio(reactor) => reactor.want(self.fd, readiness, waker),
            Watch::Poll => poll::want(self.stream()?, readiness, waker),
        }
        Ok(())
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
                    self.want(readiness, cx.waker())?;
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
                self.want(Readiness::Write, cx.waker())?;
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let (Some(stream), Watch::Asyncio(reactor)) = (self.stream.take(), &self.watch) {
            reactor.bury(stream);
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
