//! Naming a reqwest failure as one of core's [`TransportErrorKind`]s. This is a translation of
//! what happened, not a decision: every kind is a soft failure to the machine.

use f3dx_router_core::TransportErrorKind;
use std::error::Error as _;
use std::io;

/// The kind of a failure reported by `reqwest` while connecting, sending, or reading a body.
pub(crate) fn classify(error: &reqwest::Error) -> TransportErrorKind {
    if error.is_timeout() {
        return TransportErrorKind::Timeout;
    }
    if error.is_dns() {
        return TransportErrorKind::Dns;
    }
    if let Some(kind) = from_source_chain(error) {
        return kind;
    }
    if error.is_connect() {
        return TransportErrorKind::Refused;
    }
    if error.is_request() || error.is_body() || error.is_decode() {
        // Connected, then the connection broke while sending or reading.
        return TransportErrorKind::Reset;
    }
    TransportErrorKind::Other
}

/// Walks the source chain for a rustls error or an io error with a telling kind.
fn from_source_chain(error: &reqwest::Error) -> Option<TransportErrorKind> {
    let mut source = error.source();
    while let Some(err) = source {
        if err.is::<rustls::Error>() {
            return Some(TransportErrorKind::Tls);
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            // tokio-rustls wraps rustls errors in io errors; `io::Error::source` skips the
            // wrapped error itself, so look at it directly.
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return Some(TransportErrorKind::Tls);
            }
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return Some(TransportErrorKind::Refused),
                io::ErrorKind::TimedOut => return Some(TransportErrorKind::Timeout),
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::NotConnected => return Some(TransportErrorKind::Reset),
                _ => {}
            }
        }
        source = err.source();
    }
    None
}
