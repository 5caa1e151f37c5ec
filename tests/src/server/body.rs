//! The response body: either a whole buffer (the fast, default path) or a short program of
//! writes, pauses and closes that a scripted step compiled into.
//!
//! Misbehaviour lives in the body because that is where it happens on the wire: a stall after
//! the head, a gap between SSE events, a body cut short, a stream that stops without its
//! terminator. The body also carries the recording [`Guard`], so dropping it before the end (the
//! client went away) marks the request `ClientDisconnected`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use super::conn::{ConnCtl, Kill};
use super::record::Guard;

/// The error a body yields to make hyper reset an HTTP/2 stream.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One instruction of a scripted body.
#[derive(Debug)]
pub(crate) enum Op {
    /// Send these bytes as one frame (one write).
    Data(Bytes),
    /// Pause.
    Sleep(Duration),
    /// Wait until what was sent so far has been flushed to the socket (bounded, see below).
    WaitFlush,
    /// Close on purpose: the connection (HTTP/1.1, FIN) or the stream (HTTP/2, `RST_STREAM`).
    Close,
    /// Ask the connection to shut down gracefully (HTTP/2: `GOAWAY`; streams in flight go on).
    GoAway,
}

/// How long [`Op::WaitFlush`] waits at most. On HTTP/1.1 the flush comes right away; on HTTP/2
/// the data travels through the connection task and the flush may be missed, so this bounds it.
const FLUSH_FALLBACK: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Script {
    ops: VecDeque<Op>,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Waiting for a flush newer than this count.
    flush_after: Option<u64>,
    /// Flush count when the last data frame was handed over.
    last_data_mark: u64,
    ctl: Arc<ConnCtl>,
    http2: bool,
    closed: bool,
    started: bool,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Script(Box<Script>),
}

/// The body of every response the server sends.
#[derive(Debug)]
pub(crate) struct MockBody {
    kind: Kind,
    guard: Guard,
}

impl MockBody {
    /// A whole body, sent at once with its exact length.
    pub fn full(bytes: Bytes, guard: Guard) -> MockBody {
        MockBody {
            kind: Kind::Full(Some(bytes)),
            guard,
        }
    }

    /// A body of unknown length (chunked on HTTP/1.1) that runs `ops`.
    pub fn script(ops: VecDeque<Op>, ctl: Arc<ConnCtl>, http2: bool, guard: Guard) -> MockBody {
        MockBody {
            kind: Kind::Script(Box::new(Script {
                ops,
                sleep: None,
                flush_after: None,
                last_data_mark: 0,
                ctl,
                http2,
                closed: false,
                started: false,
            })),
            guard,
        }
    }

    fn all_sent(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Script(s) => {
                !s.closed && s.ops.is_empty() && s.sleep.is_none() && s.flush_after.is_none()
            }
        }
    }
}

impl Drop for MockBody {
    fn drop(&mut self) {
        // hyper may drop a body whose length it knows without polling it to the end.
        if self.all_sent() {
            self.guard.complete();
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let script = match &mut this.kind {
            Kind::Full(bytes) => {
                return match bytes.take() {
                    Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                    None => {
                        this.guard.complete();
                        Poll::Ready(None)
                    }
                };
            }
            Kind::Script(s) => s,
        };
        if script.closed {
            return Poll::Pending;
        }
        if !script.started {
            // The head is in hyper's buffer now: a flush after this point carries it.
            script.started = true;
            script.last_data_mark = script.ctl.flushes();
        }
        loop {
            if let Some(sleep) = &mut script.sleep {
                if sleep.as_mut().poll(cx).is_pending() {
                    if script.flush_after.is_none() {
                        return Poll::Pending;
                    }
                } else {
                    script.sleep = None;
                    // A fallback timer firing ends a flush wait too.
                    script.flush_after = None;
                }
            }
            if let Some(mark) = script.flush_after {
                script.ctl.on_flush(cx);
                if script.ctl.flushes() > mark {
                    script.flush_after = None;
                    script.sleep = None;
                } else {
                    return Poll::Pending;
                }
            }
            match script.ops.pop_front() {
                None => {
                    this.guard.complete();
                    return Poll::Ready(None);
                }
                Some(Op::Data(b)) => {
                    script.last_data_mark = script.ctl.flushes();
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                Some(Op::Sleep(d)) => script.sleep = Some(Box::pin(tokio::time::sleep(d))),
                Some(Op::WaitFlush) => {
                    script.flush_after = Some(script.last_data_mark);
                    script.sleep = Some(Box::pin(tokio::time::sleep(FLUSH_FALLBACK)));
                }
                Some(Op::GoAway) => script.ctl.go_away(),
                Some(Op::Close) => {
                    script.closed = true;
                    this.guard.server_closed();
                    if script.http2 {
                        return Poll::Ready(Some(Err("scripted close".into())));
                    }
                    // The connection task drops the connection, and this body with it.
                    script.ctl.kill(Kill::Graceful);
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Script(_) => SizeHint::default(),
        }
    }
}
