//! Attempts sent by someone other than tokio: an event loop the caller drives (the Python
//! binding's asyncio loops) performs the HTTP exchange itself and reports what it saw.
//!
//! A router clone made with [`crate::Router::with_spawner`] hands each HTTP attempt of its calls
//! to an [`AttemptSpawner`] instead of spawning it on a tokio runtime. The spawner owns the
//! exchange; the [`AttemptSink`] it is given feeds the machine, so routing stays the machine's:
//! the spawner decides nothing but how bytes move.

use crate::attempt;
use crate::driver::Inner;
use bytes::Bytes;
use f3dx_router_core::{AttemptId, Input, TransportErrorKind};
use futures_util::Stream;
use http::HeaderMap;
use std::fmt;
use std::sync::Arc;

/// Starts HTTP attempts outside tokio.
pub trait AttemptSpawner: Send + Sync + 'static {
    /// Starts `attempt` and returns what cancels it.
    ///
    /// Called with the router's lock held, from whichever thread executed the machine's `Send`:
    /// it must only queue the attempt (never block, never call back into the router).
    fn spawn(&self, attempt: ExternalAttempt) -> Box<dyn AttemptAbort>;
}

/// Cancels one attempt started by an [`AttemptSpawner`].
pub trait AttemptAbort: Send {
    /// Stops the attempt and closes its connection (the provider sees the disconnect). Called
    /// with the router's lock held, from any thread: it must only signal, never block. After it,
    /// whatever the attempt's sink feeds is ignored.
    fn abort(&self);
}

/// One HTTP attempt to perform: the provider request the machine built, and where to report.
pub struct ExternalAttempt {
    /// The full request: absolute URI, method, headers (the provider's key among them) and body.
    pub request: http::Request<Bytes>,
    /// Where what happens goes.
    pub sink: AttemptSink,
}

impl fmt::Debug for ExternalAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the headers: they carry the provider's key.
        f.debug_struct("ExternalAttempt")
            .field("method", self.request.method())
            .field("uri", self.request.uri())
            .field("attempt", &self.sink.attempt)
            .finish_non_exhaustive()
    }
}

/// Reports one attempt's outcome to the machine: a transport failure, or a response (head, then
/// its body as it arrives). Dropped before the attempt's end was reported (its future dropped
/// mid-body, its loop closed), it reports a reset: the machine always hears an attempt end.
pub struct AttemptSink {
    inner: Arc<Inner>,
    attempt: AttemptId,
    /// The attempt's last input has been fed.
    reported: bool,
}

impl fmt::Debug for AttemptSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptSink")
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl AttemptSink {
    pub(crate) fn new(inner: Arc<Inner>, attempt: AttemptId) -> Self {
        AttemptSink {
            inner,
            attempt,
            reported: false,
        }
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
    pub async fn response<S, E>(
        mut self,
        status: u16,
        headers: HeaderMap,
        body: S,
        classify: impl Fn(&E) -> TransportErrorKind,
    ) -> bool
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let inner = self.inner.clone();
        attempt::feed_response(
            &inner,
            self.attempt,
            status,
            headers,
            body,
            classify,
            &mut self.reported,
        )
        .await
    }
}

impl Drop for AttemptSink {
    fn drop(&mut self) {
        if !self.reported {
            // The spawner gave up on the attempt without a word (its loop closed, its future
            // was dropped): the machine must still hear that it ended. Ignored after an abort.
            let attempt = self.attempt;
            let kind = TransportErrorKind::Reset;
            self.inner
                .feed(attempt, [Input::TransportError { attempt, kind }], true);
        }
    }
}
