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

/// Walks the source chain for a rustls error or an io error with a telling kind; the innermost
/// telling error wins (a TLS failure wrapped in an io error of kind `Other` is a TLS failure).
///
/// `io::Error::source` skips the error an io error wraps (it returns the wrapped error's own
/// source), and the TLS connector nests them (`io(Other, io(InvalidData, rustls::Error))`), so
/// an io error is descended through `get_ref` as well.
fn from_source_chain(error: &reqwest::Error) -> Option<TransportErrorKind> {
    chain_kind(error.source())
}

/// The kind of any other client's failure (an [`crate::AttemptSpawner`]'s HTTP library), read
/// from the error and its source chain: a rustls error is `Tls`, an io error's kind names
/// refused, timed out or reset; anything else is `Other`.
pub fn classify_error(error: &(dyn std::error::Error + 'static)) -> TransportErrorKind {
    chain_kind(Some(error)).unwrap_or(TransportErrorKind::Other)
}

fn chain_kind(
    mut source: Option<&(dyn std::error::Error + 'static)>,
) -> Option<TransportErrorKind> {
    while let Some(err) = source {
        if err.is::<rustls::Error>() {
            return Some(TransportErrorKind::Tls);
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            let inner = io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static));
            if let Some(kind) = chain_kind(inner) {
                return Some(kind);
            }
            if let Some(kind) = f3dx_router_host::io_error_kind(io.kind()) {
                return Some(kind);
            }
        }
        source = err.source();
    }
    None
}
