//! The ureq transport: each attempt runs on a worker thread (see [`crate::workers`]), sending
//! through the router's one `ureq::Agent` (one connection pool for every call).
//!
//! A cancel closes the attempt's sink (the host does) and shuts down its socket (`abort.rs`):
//! the blocked read returns, the thread stops, the response is dropped and its connection with
//! it; one cancelled before a worker took it is never sent.

use crate::abort::AbortSlot;
use crate::clock::Unpark;
use crate::workers::Workers;
use bytes::Bytes;
use f3dx_router_core::TransportErrorKind;
use f3dx_router_host::{Attempt, AttemptAbort, AttemptSink, Transport, io_error_kind};
use std::io::Read;
use std::sync::Arc;
use std::task::{Context, Waker};

/// Bytes read from a response body at a time.
const READ_CHUNK: usize = 16 * 1024;

/// The router's HTTP: its agent and its worker threads.
pub(crate) struct Ureq {
    pub(crate) agent: ureq::Agent,
    pub(crate) workers: Arc<Workers>,
}

impl Transport for Ureq {
    fn spawn(&self, attempt: Attempt) -> Box<dyn AttemptAbort> {
        let agent = self.agent.clone();
        let Attempt { request, sink } = attempt;
        let slot = Arc::new(AbortSlot::default());
        let abort = SocketAbort(slot.clone());
        self.workers.run(Box::new(move |on_worker| {
            if on_worker {
                slot.enter(|| http(&agent, sink, request));
            } else {
                sink.fail(TransportErrorKind::Other);
            }
        }));
        Box::new(abort)
    }
}

/// A cancel shuts down the socket the attempt is using (the host has closed its sink first, so
/// nothing more is reported).
struct SocketAbort(Arc<AbortSlot>);

impl AttemptAbort for SocketAbort {
    fn abort(&self) {
        self.0.abort();
    }
}

/// Sends `request` and reports head, body pieces and end (or the transport error), stopping as
/// soon as the sink is closed.
fn http(agent: &ureq::Agent, mut sink: AttemptSink, request: http::Request<Bytes>) {
    if !sink.is_open() {
        return; // cancelled while queued: never sent
    }
    let (parts, body) = request.into_parts();
    let request = http::Request::from_parts(parts, &body[..]);
    let response = match agent.run(request) {
        Ok(response) => response,
        Err(e) => return sink.fail(classify(&e)),
    };
    let (head, body) = response.into_parts();
    if !sink.head(head.status.as_u16(), head.headers) {
        return;
    }
    let mut reader = body.into_reader();
    let mut buf = vec![0; READ_CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return sink.end(),
            Ok(n) => {
                if !sink.body(Bytes::copy_from_slice(&buf[..n])) {
                    return;
                }
                wait_for_room(&sink);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return sink.fail(classify_io(&e)),
        }
    }
}

/// Holds the attempt while its stream's caller has not read what it already has (backpressure
/// to the socket, as the async drivers get from `poll_room`).
fn wait_for_room(sink: &AttemptSink) {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    while sink.is_open() && sink.poll_room(&mut cx).is_pending() {
        std::thread::park();
    }
}

/// What a ureq error means for the attempt.
fn classify(error: &ureq::Error) -> TransportErrorKind {
    match error {
        ureq::Error::Timeout(_) => TransportErrorKind::Timeout,
        ureq::Error::HostNotFound => TransportErrorKind::Dns,
        ureq::Error::ConnectionFailed => TransportErrorKind::Refused,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => TransportErrorKind::Tls,
        ureq::Error::Io(e) => classify_io(e),
        ureq::Error::Protocol(_) => TransportErrorKind::Reset,
        _ => TransportErrorKind::Other,
    }
}

/// An io error: ureq wraps its own errors (a read timeout) inside, rustls its TLS failures.
fn classify_io(error: &std::io::Error) -> TransportErrorKind {
    if let Some(inner) = error.get_ref() {
        if let Some(inner) = inner.downcast_ref::<ureq::Error>() {
            return classify(inner);
        }
        if inner.is::<rustls::Error>() {
            return TransportErrorKind::Tls;
        }
    }
    io_error_kind(error.kind()).unwrap_or(TransportErrorKind::Other)
}
