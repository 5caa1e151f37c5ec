//! How an attempt reports to the machine: a transport failure, or a response fed as it arrives.
//! Every HTTP attempt reports through one, whoever sends it: the tokio driver's own tasks
//! ([`crate::attempt`]) and an [`crate::AttemptSpawner`]'s.

use crate::driver::Inner;
use bytes::Bytes;
use f3dx_router_core::{AttemptId, Input, TransportErrorKind};
use futures_util::{FutureExt, Stream, StreamExt};
use http::HeaderMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Inputs fed under one lock at most; bounds the time the lock is held on a fast stream.
const MAX_BATCH: usize = 32;

/// Reports one attempt's outcome to the machine: a transport failure, or a response (head, then
/// its body as it arrives). Dropped before the attempt's end was reported (its future dropped
/// mid-body, its loop closed), it reports a reset: the machine always hears an attempt end.
pub struct AttemptSink {
    inner: Arc<Inner>,
    attempt: AttemptId,
    /// The attempt's last input has been fed.
    reported: bool,
    /// Set by the driver when the machine cancels the attempt: nothing more need be fed.
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
    /// A sink, and the flag the driver sets when it cancels the attempt.
    pub(crate) fn new(inner: Arc<Inner>, attempt: AttemptId) -> (Self, Arc<AtomicBool>) {
        let cancelled = Arc::new(AtomicBool::new(false));
        let sink = AttemptSink {
            inner,
            attempt,
            reported: false,
            cancelled: cancelled.clone(),
        };
        (sink, cancelled)
    }

    /// The attempt failed before a response head arrived.
    pub fn fail(mut self, kind: TransportErrorKind) {
        self.reported = true;
        let attempt = self.attempt;
        self.inner
            .feed(attempt, [Input::TransportError { attempt, kind }], true);
    }

    /// Feeds a response: its head, then every body piece as `body` yields it, then its end (or
    /// the transport error `classify` names). Returns true when the body was read to its end;
    /// false when it broke or the machine closed the attempt first (stop reading then).
    ///
    /// Whatever is already available is fed under one lock: a small response whose head, body
    /// and end arrive together costs one lock, not three.
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
            let open = self.inner.feed(attempt, batch.drain(..), last);
            self.reported |= last;
            if !open {
                return complete;
            }
        }
    }
}

impl Drop for AttemptSink {
    fn drop(&mut self) {
        // A cancelled attempt is closed in the machine already: feeding it would only take the
        // router's lock (once per hedge loser) for an input the machine ignores.
        if !self.reported && !self.cancelled.load(Ordering::Acquire) {
            // The attempt was given up without a word (its task or future dropped, its loop
            // closed): the machine must still hear that it ended.
            let attempt = self.attempt;
            let kind = TransportErrorKind::Reset;
            self.inner
                .feed(attempt, [Input::TransportError { attempt, kind }], true);
        }
    }
}
