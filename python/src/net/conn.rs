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
use f3dx_router_tokio::proxy::{Proxies, Proxy};
use http::uri::Authority;
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use std::future::{Future, poll_fn};
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
    /// The proxy connections to it go through (`None`: direct).
    via: Option<Arc<Proxy>>,
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
    pub(crate) fn of(
        uri: &http::Uri,
        tls: &Arc<rustls::ClientConfig>,
        proxies: &Proxies,
    ) -> Option<Origin> {
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let authority = uri.authority()?.clone();
        let via = if proxies.is_direct() {
            None
        } else {
            proxies.for_target(https, authority.host()).cloned()
        };
        Some(Origin {
            tls: https.then(|| Trust(tls.clone())),
            authority,
            via,
        })
    }

    /// The proxy a plain-HTTP request to it is sent to in absolute form; `None` when it goes
    /// direct or through a tunnel (`https://`).
    pub(crate) fn forward_proxy(&self) -> Option<&Proxy> {
        self.via.as_deref().filter(|_| self.tls.is_none())
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

/// Opens a connection to `origin` (through its proxy, if any): resolve, TCP to each address
/// in turn (RFC 8305: the next starts 250 ms after the last, each with the whole `timeout`),
/// then `CONNECT` through a proxy to an `https://` origin, TLS and the HTTP handshake within
/// `timeout` again. HTTP/2 when the provider picks it by ALPN, HTTP/1.1 otherwise; whoever
/// passes a TLS configuration offering `h2` passes `http2`, which runs the shared connection's
/// IO (with pings, so that a peer gone silent is noticed).
pub(crate) async fn connect(
    origin: &Origin,
    watch: &Watch,
    timeout: Duration,
    http2: Option<&JobExecutor>,
) -> Result<Opened, TransportErrorKind> {
    // Timers made within the extension runtime's context (jobs are polled inside it) run there
    // and wake this job through its thread's queue.
    let (host, port) = match &origin.via {
        Some(proxy) => (proxy.host(), proxy.port()),
        None => (origin.host(), origin.port()),
    };
    let addrs = within(timeout, resolve(host, port)).await?;
    let socket = f3dx_router_tokio::connect_first(addrs, timeout, |addr| tcp(addr, watch))
        .await
        .map_err(|e| classify_error(&e))?;
    within(timeout, handshake(origin, socket, http2)).await
}

async fn within<T>(
    timeout: Duration,
    step: impl Future<Output = Result<T, TransportErrorKind>>,
) -> Result<T, TransportErrorKind> {
    tokio::time::timeout(timeout, step)
        .await
        .unwrap_or(Err(TransportErrorKind::Timeout))
}

async fn handshake(
    origin: &Origin,
    mut socket: Socket,
    http2: Option<&JobExecutor>,
) -> Result<Opened, TransportErrorKind> {
    let io = match &origin.tls {
        None => Io::Plain(socket),
        Some(Trust(config)) => {
            if let Some(proxy) = &origin.via {
                super::tunnel::open(&mut socket, &origin.authority, proxy).await?;
            }
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
            .timer(TokioTimer::new())
            .keep_alive_interval(f3dx_router_tokio::HTTP2_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(f3dx_router_tokio::HTTP2_KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|_| TransportErrorKind::Other)?;
        // The connection's IO, until the provider closes it, stops answering pings, or every
        // sender is gone.
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
    // A dead peer is noticed even on a connection that waits for a silent provider, as the
    // tokio driver's (reqwest's) are.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(f3dx_router_tokio::TCP_KEEPALIVE)
        .with_interval(f3dx_router_tokio::TCP_KEEPALIVE);
    #[cfg(target_os = "linux")]
    let keepalive = keepalive.with_retries(3);
    // Best effort: a kernel without these options still connects.
    let _ = socket.set_tcp_keepalive(&keepalive);
    #[cfg(target_os = "linux")]
    let _ = socket.set_tcp_user_timeout(Some(f3dx_router_tokio::TCP_USER_TIMEOUT));
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
