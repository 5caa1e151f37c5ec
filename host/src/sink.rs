//! How an attempt reports to the machine: a transport failure, or a response fed as it arrives.
//! Every HTTP attempt of every driver reports through one.

use crate::host::Host;
use crate::slot::Slot;
use bytes::Bytes;
use f3dx_router_core::{AttemptId, Input, TransportErrorKind};
use futures_util::{FutureExt, Stream, StreamExt};
use http::HeaderMap;
use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// Inputs fed under one lock at most; bounds the time the lock is held on a fast stream.
const MAX_BATCH: usize = 32;

/// Reports one attempt's outcome to the machine: a transport failure, or a response (head, then
/// its body as it arrives, then its end). Dropped before the attempt's end was reported (its
/// future dropped mid-body, its thread gone), it reports a reset: the machine always hears an
/// attempt end.
///
/// Two ways to report a response: push it piece by piece ([`AttemptSink::head`],
/// [`AttemptSink::body`], [`AttemptSink::end`], for a blocking reader), or hand over the body as
/// a `Stream` ([`AttemptSink::response`], for an async one). A streaming caller that does not
/// read holds at most [`crate::STREAM_BUFFER`] chunks: then [`AttemptSink::poll_room`] is pending
/// and the attempt should stop reading (`response` does).
pub struct AttemptSink {
    host: Arc<Host>,
    attempt: AttemptId,
    /// Where the attempt's request delivers, for room in a stream's buffer.
    slot: Arc<Slot>,
    /// The attempt's last input has been fed.
    reported: bool,
    /// Set by the host when the machine cancels the attempt: nothing more need be fed.
    cancelled: Arc<AtomicBool>,
}

impl fmt::Debug for AttemptSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptSink")
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl AttemptSink {
    /// A sink, and the flag the host sets when it cancels the attempt.
    pub(crate) fn new(
        host: Arc<Host>,
        attempt: AttemptId,
        slot: Arc<Slot>,
    ) -> (Self, Arc<AtomicBool>) {
        let cancelled = Arc::new(AtomicBool::new(false));
        let sink = AttemptSink {
            host,
            attempt,
            slot,
            reported: false,
            cancelled: cancelled.clone(),
        };
        (sink, cancelled)
    }

    /// The machine's id of this attempt.
    pub fn attempt(&self) -> AttemptId {
        self.attempt
    }

    /// Whether the machine still wants this attempt (false once it cancelled it).
    pub fn is_open(&self) -> bool {
        !self.cancelled.load(Ordering::Acquire)
    }

    /// The attempt failed (before or during its response).
    pub fn fail(mut self, kind: TransportErrorKind) {
        self.reported = true;
        let attempt = self.attempt;
        self.host
            .feed(attempt, [Input::TransportError { attempt, kind }], true);
    }

    /// The response head arrived. Returns whether the attempt is still open.
    pub fn head(&mut self, status: u16, headers: HeaderMap) -> bool {
        let attempt = self.attempt;
        let input = Input::ResponseHead {
            attempt,
            status,
            headers,
        };
        self.host.feed(attempt, [input], false)
    }

    /// A piece of the body arrived. Returns whether the attempt is still open (stop reading if
    /// not).
    pub fn body(&mut self, chunk: Bytes) -> bool {
        let attempt = self.attempt;
        self.host
            .feed(attempt, [Input::ResponseBody { attempt, chunk }], false)
    }

    /// The body was read to its end.
    pub fn end(mut self) {
        self.reported = true;
        let attempt = self.attempt;
        self.host
            .feed(attempt, [Input::ResponseEnd { attempt }], true);
    }

    /// Ready when the caller's stream buffer has room for more chunks; pending while a caller
    /// that does not read holds [`crate::STREAM_BUFFER`] of them (read no more from the provider
    /// until then: that is the backpressure to the socket).
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.slot.poll_room(cx)
    }

    /// Feeds a response: its head, then every body piece as `body` yields it, then its end (or
    /// the transport error `classify` names). Returns true when the body was read to its end;
    /// false when it broke or the machine closed the attempt first (stop reading then).
    ///
    /// Whatever is already available is fed under one lock: a small response whose head, body
    /// and end arrive together costs one lock, not three. Between batches it waits for room in
    /// a streaming caller's buffer.
    pub async fn response<S, E>(
        mut self,
        status: u16,
        headers: HeaderMap,
        mut body: S,
        classify: impl Fn(&E) -> TransportErrorKind,
    ) -> bool
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let attempt = self.attempt;
        let mut batch = Vec::with_capacity(4);
        batch.push(Input::ResponseHead {
            attempt,
            status,
            headers,
        });
        loop {
            let mut last = false;
            let mut complete = false;
            while batch.len() < MAX_BATCH {
                let item = if batch.is_empty() {
                    body.next().await
                } else {
                    match body.next().now_or_never() {
                        Some(item) => item,
                        None => break,
                    }
                };
                match item {
                    Some(Ok(chunk)) => batch.push(Input::ResponseBody { attempt, chunk }),
                    Some(Err(e)) => {
                        let kind = classify(&e);
                        batch.push(Input::TransportError { attempt, kind });
                        last = true;
                        break;
                    }
                    None => {
                        batch.push(Input::ResponseEnd { attempt });
                        last = true;
                        complete = true;
                        break;
                    }
                }
            }
            // Marked before feeding: a panic inside the feed must not make `Drop` feed again.
            self.reported |= last;
            let open = self.host.feed(attempt, batch.drain(..), last);
            if !open {
                return complete;
            }
            poll_fn(|cx| self.slot.poll_room(cx)).await;
        }
    }
}

impl Drop for AttemptSink {
    fn drop(&mut self) {
        // A cancelled attempt is closed in the machine already: feeding it would only take the
        // router's lock (once per hedge loser) for an input the machine ignores.
        if !self.reported && self.is_open() {
            // The attempt was given up without a word (its task or future dropped, its thread
            // gone): the machine must still hear that it ended.
            let attempt = self.attempt;
            let kind = TransportErrorKind::Reset;
            self.host
                .feed(attempt, [Input::TransportError { attempt, kind }], true);
        }
    }
}
