//! Attempts sent by someone other than tokio: an event loop the caller drives (the Python
//! binding's asyncio loops, and its sync callers' `poll(2)` loops) performs the HTTP exchange
//! itself and reports what it saw.
//!
//! A router clone made with [`crate::Router::with_spawner`] hands each HTTP attempt of its calls
//! to an [`AttemptSpawner`] instead of spawning it on a tokio runtime. The spawner owns the
//! exchange; the [`AttemptSink`] it is given feeds the machine, so routing stays the machine's:
//! the spawner decides nothing but how bytes move.

use crate::sink::AttemptSink;
use bytes::Bytes;
use std::fmt;

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
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}
