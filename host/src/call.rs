//! [`Call`]: the caller's end of one request. Dropping it before its end cancels the request.

use crate::host::Host;
use crate::slot::{Event, Slot};
use f3dx_router_core::{RequestId, RouteError, Routed};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

/// One request in flight, as its caller holds it: poll it for chunks and the outcome.
///
/// Polling takes only the call's own lock, never the router's. Dropping the call before its
/// `Done` feeds the machine a cancel: every attempt still in flight is aborted.
pub struct Call {
    host: Arc<Host>,
    id: RequestId,
    slot: Arc<Slot>,
    finished: bool,
}

impl Call {
    pub(crate) fn new(host: Arc<Host>, id: RequestId, slot: Arc<Slot>) -> Self {
        Call {
            host,
            id,
            slot,
            finished: false,
        }
    }

    /// The id the host gave this request.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Whether the outcome has been taken.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next chunk (streaming calls only) or the outcome; `None` once the outcome was taken.
    /// `Pending` keeps `cx`'s waker, which the next delivery wakes (from any thread).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let event = std::task::ready!(self.slot.poll_next(cx));
        if matches!(event, Event::Done(_)) {
            self.finished = true;
        }
        Poll::Ready(Some(event))
    }

    /// The outcome of a unary call (chunks, if any, are skipped).
    pub fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Result<Routed, RouteError>> {
        loop {
            match std::task::ready!(self.poll_next(cx)) {
                Some(Event::Chunk(_)) => {}
                Some(Event::Done(outcome)) => return Poll::Ready(outcome),
                // Polled again after its end: only a caller's bug.
                None => {
                    return Poll::Ready(Err(RouteError::Cancelled {
                        attempts: Vec::new(),
                    }));
                }
            }
        }
    }

    /// Chunks delivered and not yet read (at most about [`crate::STREAM_BUFFER`]).
    pub fn buffered(&self) -> usize {
        self.slot.buffered()
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            self.slot.close();
            self.host.cancel(self.id);
        }
    }
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("id", &self.id)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}
