//! Connections for jobs: resolve, connect, TLS, hyper's client handshake.
//!
//! An HTTP/1.1 connection is owned by the one attempt using it, which polls hyper's connection
//! future together with its request: dropping the attempt (a cancel) drops the socket, and the
//! provider sees the disconnect. Idle ones ([`super::pool`]) are not polled; one taken from the
//! pool is polled once first, which notices a connection the provider closed meanwhile.
//!
//! An HTTP/2 connection (a TLS provider that picks `h2` by ALPN, on an event loop only) is shared
//! by the attempts to its origin ([`super::http2`]): a cancelled attempt resets its own stream
//! only. A hedge's loser then costs the provider a `RST_STREAM` instead of costing the next call
//! a new TCP and TLS handshake.

use super::http2::{JobExecutor, Lease, SharedSender};
use super::socket::{Socket, Watch};
use bytes::Bytes;
use f3dx_router_core::TransportErrorKind;
use f3dx_router_tokio::classify_error;
use http::uri::Authority;
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;

/// A connection's byte stream: plain TCP, or TLS over it.
pub(crate) enum Io {
    Plain(Socket),
    Tls(Box<TlsStream<Socket>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, b),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type Connection = http1::Connection<TokioIo<Io>, Full<Bytes>>;

/// One HTTP/1.1 connection: the sender for requests and the future that does its IO.
pub(crate) struct Conn {
    pub(crate) sender: http1::SendRequest<Full<Bytes>>,
    pub(crate) driver: Driver,
}

/// hyper's connection future, polled by whoever uses the connection.
pub(crate) struct Driver {
    io: Pin<Box<Connection>>,
    /// The future has finished (the connection closed, cleanly or not).
    closed: bool,
}

impl Driver {
    /// Drives the connection's IO; true once it has closed.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed && self.io.as_mut().poll(cx).is_ready() {
            self.closed = true;
        }
        self.closed
    }
}

impl Conn {
    /// Whether another request may be sent on it. Polls its IO once, with nobody to wake: an
    /// idle connection is only looked at again when it is taken from the pool or swept.
    pub(crate) fn reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        !self.driver.poll(&mut cx) && self.sender.is_ready()
    }
}

/// A new connection: HTTP/1.1, or HTTP/2 (to be shared).
pub(crate) enum Opened {
    Http1(Conn),
    Http2(SharedSender),
}

/// A connection for one attempt: HTTP/1.1 of its own, or a stream of a shared HTTP/2 one.
pub(crate) enum Connected {
    Own(Conn),
    Shared(Lease),
}

/// Where a connection goes: its authority, and for TLS the trust it is made with. Built per
/// attempt from the request's URI without allocating (an `Authority` shares the URI's bytes).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    tls: Option<Trust>,
    authority: Authority,
}

/// A TLS configuration, compared by identity. Held (not just its address) so that the address
/// cannot be reused by another router's configuration while connections made with it are
/// pooled.
#[derive(Clone)]
struct Trust(Arc<rustls::ClientConfig>);

impl PartialEq for Trust {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Trust {}

impl std::hash::Hash for Trust {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).hash(state);
    }
}

impl Origin {
    /// The origin of `uri`; `None` for a URI the router never builds (no host, another scheme).
    pub(crate) fn of(uri: &http::Uri, tls: &Arc<rustls::ClientConfig>) -> Option<Origin> {
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        Some(Origin {
            tls: https.then(|| Trust(tls.clone())),
            authority: uri.authority()?.clone(),
        })
    }

    /// Made with the TLS configuration `tls`.
    pub(crate) fn trusts(&self, tls: &Arc<rustls::ClientConfig>) -> bool {
        self.tls.as_ref().is_some_and(|t| Arc::ptr_eq(&t.0, tls))
    }

    /// Over TLS: the only kind that can speak HTTP/2 here (chosen by ALPN).
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The host, without an IPv6 literal's brackets.
    fn host(&self) -> &str {
        self.authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
    }

    fn port(&self) -> u16 {
        let default = if self.tls.is_some() { 443 } else { 80 };
        self.authority.port_u16().unwrap_or(default)
    }
}

/// Opens a connection to `origin`: resolve, TCP, TLS, the HTTP handshake, all within `timeout`.
/// HTTP/2 when the provider picks it by ALPN, HTTP/1.1 otherwise; whoever passes a TLS
/// configuration offering `h2` passes `http2`, which runs the shared connection's IO.
pub(crate) async fn connect(
    origin: &Origin,
    watch: &Watch,
    timeout: Duration,
    http2: Option<&JobExecutor>,
) -> Result<Opened, TransportErrorKind> {
    // Made within the extension runtime's context (jobs are polled inside it), so its timer
    // runs there and wakes this job through its thread's queue.
    match tokio::time::timeout(timeout, open(origin, watch, http2)).await {
        Ok(result) => result,
        Err(_) => Err(TransportErrorKind::Timeout),
    }
}

async fn open(
    origin: &Origin,
    watch: &Watch,
    http2: Option<&JobExecutor>,
) -> Result<Opened, TransportErrorKind> {
    let addrs = resolve(origin.host(), origin.port()).await?;
    let mut last = TransportErrorKind::Refused;
    let mut socket = None;
    for addr in addrs {
        match tcp(addr, watch).await {
            Ok(s) => {
                socket = Some(s);
                break;
            }
            Err(e) => last = classify_error(&e),
        }
    }
    let socket = socket.ok_or(last)?;
    let io = match &origin.tls {
        None => Io::Plain(socket),
        Some(Trust(config)) => {
            let name = ServerName::try_from(origin.host().to_owned())
                .map_err(|_| TransportErrorKind::Tls)?;
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, socket)
                .await
                .map_err(|e| match classify_error(&e) {
                    TransportErrorKind::Other => TransportErrorKind::Tls,
                    kind => kind,
                })?;
            Io::Tls(Box::new(tls))
        }
    };
    let h2 = matches!(&io, Io::Tls(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2"));
    if let (true, Some(executor)) = (h2, http2) {
        let (sender, connection) = http2::Builder::new(executor.clone())
            .handshake(TokioIo::new(io))
            .await
            .map_err(|_| TransportErrorKind::Other)?;
        // The connection's IO, until the provider closes it or every sender is gone.
        hyper::rt::Executor::execute(executor, async move {
            let _ = connection.await;
        });
        return Ok(Opened::Http2(sender));
    }
    let (sender, io) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|_| TransportErrorKind::Other)?;
    Ok(Opened::Http1(Conn {
        sender,
        driver: Driver {
            io: Box::pin(io),
            closed: false,
        },
    }))
}

/// The addresses of `host`: an IP literal as is, a name through the runtime's resolver (on its
/// blocking pool, so a loop never waits on DNS).
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, TransportErrorKind> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup = tokio::net::lookup_host((host.to_owned(), port));
    let addrs: Vec<SocketAddr> = tokio::spawn(lookup)
        .await
        .map_err(|_| TransportErrorKind::Other)?
        .map_err(|_| TransportErrorKind::Dns)?
        .collect();
    if addrs.is_empty() {
        return Err(TransportErrorKind::Dns);
    }
    Ok(addrs)
}

/// A non-blocking TCP connect, completed when the socket is reported writable.
async fn tcp(addr: SocketAddr, watch: &Watch) -> io::Result<Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    let socket = Socket::new(TcpStream::from(socket), watch.clone());
    poll_fn(|cx| socket.poll_writable(cx)).await?;
    Ok(socket)
}
