//! What a driver gives the host: a [`Transport`] that starts HTTP attempts, and a
//! [`TimerSource`] that tells the time and wakes the host when asked.

use crate::sink::AttemptSink;
use bytes::Bytes;
use f3dx_router_core::Time;
use std::fmt;

/// Starts HTTP attempts: the one thing a driver does with the network.
///
/// Every call carries the transport its attempts go through ([`crate::Host::submit`]), so a
/// driver may give each call its own (the tokio driver: the runtime the call was made on; the
/// Python binding: the thread that waits for it).
pub trait Transport: Send + Sync + 'static {
    /// Starts `attempt` and returns what cancels it.
    ///
    /// Called with the router's lock held, from whichever thread executed the machine's `Send`:
    /// it must only queue or spawn the attempt (never block). Reporting through the sink from
    /// inside `spawn` (an attempt that cannot even start) is allowed: it is fed once the
    /// actions being executed are done.
    fn spawn(&self, attempt: Attempt) -> Box<dyn AttemptAbort>;
}

/// Cancels one attempt started by a [`Transport`].
pub trait AttemptAbort: Send {
    /// Stops the attempt and, where the transport can, closes its connection (the provider sees
    /// the disconnect). Called with the router's lock held, from any thread: it must only signal,
    /// never block. After it, whatever the attempt's sink feeds is ignored.
    fn abort(&self);
}

/// One HTTP attempt to perform: the provider request the machine built, and where to report.
pub struct Attempt {
    /// The full request: absolute URI, method, headers (the provider's key among them) and body.
    pub request: http::Request<Bytes>,
    /// Where what happens goes.
    pub sink: AttemptSink,
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the headers: they carry the provider's key.
        f.debug_struct("Attempt")
            .field("method", self.request.method())
            .field("uri", self.request.uri())
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

/// The driver's clock and alarm.
///
/// The host never sleeps: when the machine's earliest deadline (or a mock provider's answer)
/// moves earlier, it asks [`TimerSource::wake_at`], and the driver calls
/// [`crate::Host::fire_timers`] once that time has come (a spurious or late call is harmless).
pub trait TimerSource: Send + Sync + 'static {
    /// Monotonic time since an epoch of the driver's choosing (the machine's clock).
    fn now(&self) -> Time;

    /// Something is due at `at`: make sure [`crate::Host::fire_timers`] is called then.
    /// Called with the router's lock held: it must only signal, never block.
    fn wake_at(&self, at: Time);
}

/// What an I/O error of this kind means for an attempt, the same for every transport; `None`
/// for kinds that say nothing about the connection (the transport looks further, or says
/// [`TransportErrorKind::Other`]).
pub fn io_error_kind(kind: std::io::ErrorKind) -> Option<f3dx_router_core::TransportErrorKind> {
    use f3dx_router_core::TransportErrorKind;
    use std::io::ErrorKind;
    match kind {
        ErrorKind::ConnectionRefused => Some(TransportErrorKind::Refused),
        ErrorKind::TimedOut => Some(TransportErrorKind::Timeout),
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof
        | ErrorKind::NotConnected => Some(TransportErrorKind::Reset),
        _ => None,
    }
}
