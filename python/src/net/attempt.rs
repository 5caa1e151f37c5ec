//! One HTTP attempt as a job: take or open a connection, send the machine's request,
//! feed the response to the machine through the attempt's sink, and pool the connection again if
//! the response was read to its end.

use super::conn::{self, Conn, Driver, Origin, Pool};
use super::socket::Watch;
use bytes::Bytes;
use f3dx_router_core::TransportErrorKind;
use f3dx_router_tokio::ExternalAttempt;
use futures_util::Stream;
use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request};
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
}

pub(crate) async fn run(ends: Arc<Ends>, attempt: ExternalAttempt) {
    let ExternalAttempt { request, sink } = attempt;
    let Some(origin) = Origin::of(request.uri(), &ends.tls) else {
        // Not expected: core validates base URLs as http(s) with a host.
        sink.fail(TransportErrorKind::Other);
        return;
    };
    let request = match origin_form(request) {
        Some(request) => request,
        None => {
            sink.fail(TransportErrorKind::Other);
            return;
        }
    };
    let mut conn = match ends.pool.take(&origin) {
        Some(conn) => conn,
        None => match conn::connect(&origin, &ends.watch, ends.connect_timeout).await {
            Ok(conn) => conn,
            Err(kind) => {
                sink.fail(kind);
                return;
            }
        },
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
    let (parts, body) = response.into_parts();
    let body = Driven {
        driver: &mut conn.driver,
        body: BodyDataStream::new(body),
    };
    let complete = sink
        .response(parts.status.as_u16(), parts.headers, body, hyper_kind)
        .await;
    if complete && conn.reusable() {
        ends.pool.put(origin, conn);
    }
}

/// The request as hyper's HTTP/1 client sends it: origin-form target, `Host` header.
fn origin_form(request: Request<Bytes>) -> Option<Request<Full<Bytes>>> {
    let (mut parts, body) = request.into_parts();
    let authority = parts.uri.authority()?.clone();
    if !parts.headers.contains_key(HOST) {
        parts
            .headers
            .insert(HOST, HeaderValue::from_str(authority.as_str()).ok()?);
    }
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = http::Uri::from(path);
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
