//! One HTTP attempt as a job: take or open a connection, send the machine's request, feed the
//! response to the machine through the attempt's sink, and pool an HTTP/1.1 connection again if
//! the response was read to its end (an HTTP/2 one stays shared throughout).

use super::conn::{self, Conn, Connected, Driver, Opened, Origin};
use super::http2::{JobExecutor, Lease};
use super::pool::Pool;
use super::socket::Watch;
use bytes::Bytes;
use f3dx_router_core::TransportErrorKind;
use f3dx_router_tokio::proxy::{Proxies, Proxy};
use f3dx_router_tokio::{AttemptSink, ExternalAttempt};
use futures_util::Stream;
use http::header::{HOST, PROXY_AUTHORIZATION};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyDataStream, Full};
use hyper::body::Incoming;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// What an attempt needs from where it runs and from its router; one per spawner, shared by
/// its attempts.
pub(crate) struct Ends {
    pub(crate) watch: Watch,
    pub(crate) pool: Arc<Pool>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) connect_timeout: Duration,
    /// The router's proxies.
    pub(crate) proxies: Proxies,
    /// Runs a shared HTTP/2 connection's IO: on an event loop, whose `tls` offers `h2`.
    pub(crate) http2: Option<JobExecutor>,
}

pub(crate) async fn run(ends: Arc<Ends>, attempt: ExternalAttempt) {
    let ExternalAttempt { request, sink } = attempt;
    let Some(origin) = Origin::of(request.uri(), &ends.tls, &ends.proxies) else {
        // Not expected: core validates base URLs as http(s) with a host.
        sink.fail(TransportErrorKind::Other);
        return;
    };
    let connected = match lease(&ends, &origin).await {
        Ok(connected) => connected,
        Err(kind) => {
            sink.fail(kind);
            return;
        }
    };
    match connected {
        Connected::Own(conn) => over_http1(&ends.pool, origin, conn, request, sink).await,
        Connected::Shared(lease) => over_http2(lease, request, sink).await,
    }
}

/// A connection to `origin`: a stream of a shared HTTP/2 one with room (perhaps once another
/// attempt has opened it), an idle HTTP/1.1 one, or a new one (shared from now on if the
/// provider picked HTTP/2).
async fn lease(ends: &Ends, origin: &Origin) -> Result<Connected, TransportErrorKind> {
    // Only a loop's attempts (`http2`) over TLS can share a connection: others skip the lookup.
    let mut opening = None;
    if ends.http2.is_some() && origin.is_tls() {
        match ends.pool.http2.stream(origin).await {
            Ok(lease) => return Ok(Connected::Shared(lease)),
            Err(guard) => opening = guard,
        }
    }
    let opened = match ends.pool.take(origin) {
        Some(conn) => Ok(Opened::Http1(conn)),
        None => {
            conn::connect(
                origin,
                &ends.watch,
                ends.connect_timeout,
                ends.http2.as_ref(),
            )
            .await
        }
    };
    // Not cancelled: unless the new connection is shared below, those waiting for `opening`
    // connect on their own once it is dropped (on return).
    if let Some(guard) = &mut opening {
        guard.give_up();
    }
    opened.map(|opened| match opened {
        Opened::Http1(conn) => Connected::Own(conn),
        Opened::Http2(sender) => {
            let lease = ends
                .pool
                .http2
                .share(origin.clone(), sender, opening.as_mut());
            ends.pool.keep_swept();
            Connected::Shared(lease)
        }
    })
}

/// The attempt on a connection of its own, pooled again if the response was read to its end.
async fn over_http1(
    pool: &Arc<Pool>,
    origin: Origin,
    mut conn: Conn,
    request: Request<Bytes>,
    sink: AttemptSink,
) {
    let Some(request) = http1_form(request, origin.forward_proxy()) else {
        sink.fail(TransportErrorKind::Other);
        return;
    };
    let head = {
        let Conn { sender, driver } = &mut conn;
        let mut response = std::pin::pin!(sender.send_request(request));
        poll_fn(|cx| {
            driver.poll(cx);
            response.as_mut().poll(cx)
        })
        .await
    };
    let response = match head {
        Ok(response) => response,
        Err(e) => {
            sink.fail(hyper_kind(&e));
            return;
        }
    };
    if origin.forward_proxy().is_some()
        && response.status() == StatusCode::PROXY_AUTHENTICATION_REQUIRED
    {
        // The proxy's answer, not the provider's: refused on the way, as a tunnel's would be.
        sink.fail(TransportErrorKind::Refused);
        return;
    }
    let (parts, body) = response.into_parts();
    let body = Driven {
        driver: &mut conn.driver,
        body: BodyDataStream::new(body),
    };
    let complete = sink
        .response(parts.status.as_u16(), parts.headers, body, hyper_kind)
        .await;
    if complete && conn.reusable() {
        pool.put(origin, conn);
    }
}

/// The attempt as one stream of a shared HTTP/2 connection, whose IO runs as its own job:
/// dropping the attempt resets the stream and leaves the connection to the others. The lease
/// counts the stream against the connection's limit until the attempt ends.
async fn over_http2(mut lease: Lease, request: Request<Bytes>, sink: AttemptSink) {
    if let Err(e) = poll_fn(|cx| lease.sender.poll_ready(cx)).await {
        sink.fail(hyper_kind(&e));
        return;
    }
    match lease.sender.send_request(request.map(Full::new)).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            sink.response(
                parts.status.as_u16(),
                parts.headers,
                BodyDataStream::new(body),
                hyper_kind,
            )
            .await;
        }
        Err(e) => sink.fail(hyper_kind(&e)),
    }
}

/// The request as hyper's HTTP/1 client sends it: `Host` header, and an origin-form target, or
/// through a forward proxy the absolute URI and the proxy's credentials (marked sensitive).
fn http1_form(request: Request<Bytes>, proxy: Option<&Proxy>) -> Option<Request<Full<Bytes>>> {
    let (mut parts, body) = request.into_parts();
    let authority = parts.uri.authority()?.clone();
    if !parts.headers.contains_key(HOST) {
        parts
            .headers
            .insert(HOST, HeaderValue::from_str(authority.as_str()).ok()?);
    }
    match proxy {
        Some(proxy) => {
            if let Some(auth) = proxy.authorization() {
                parts.headers.insert(PROXY_AUTHORIZATION, auth.clone());
            }
        }
        None => {
            let path = parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            parts.uri = http::Uri::from(path);
        }
    }
    Some(Request::from_parts(parts, Full::new(body)))
}

/// What a hyper failure means to the machine: a connection that closed or broke mid-exchange is
/// a reset; otherwise the io error inside it, if any, names it.
fn hyper_kind(error: &hyper::Error) -> TransportErrorKind {
    if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
        return TransportErrorKind::Reset;
    }
    match f3dx_router_tokio::classify_error(error) {
        // A reply hyper could not parse is garbage, not a broken connection.
        TransportErrorKind::Other if !error.is_parse() => TransportErrorKind::Reset,
        kind => kind,
    }
}

/// A response body that drives its connection's IO as it is read.
struct Driven<'a> {
    driver: &'a mut Driver,
    body: BodyDataStream<Incoming>,
}

impl Stream for Driven<'_> {
    type Item = Result<Bytes, hyper::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.driver.poll(cx);
        Pin::new(&mut this.body).poll_next(cx)
    }
}
