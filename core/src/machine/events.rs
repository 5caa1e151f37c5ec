//! What goes in and out of the machine: one `Input` enum in, one `Action` enum out (as in str0m).

use crate::ids::{AttemptId, ProviderId, RequestId};
use crate::outcome::{RouteError, Routed, TransportErrorKind};
use crate::request::ChatRequest;
use bytes::Bytes;

/// Something that happened, fed to [`RouterMachine::handle_input`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Input {
    /// The caller wants `request` routed. `id` must not be in flight already.
    Request { id: RequestId, request: ChatRequest },
    /// An attempt's response status and headers arrived.
    ResponseHead {
        attempt: AttemptId,
        status: u16,
        headers: http::HeaderMap,
    },
    /// A piece of an attempt's body: the whole body, or any slice of a stream.
    ResponseBody { attempt: AttemptId, chunk: Bytes },
    /// An attempt's body ended cleanly.
    ResponseEnd { attempt: AttemptId },
    /// An attempt failed below HTTP.
    TransportError {
        attempt: AttemptId,
        kind: TransportErrorKind,
    },
    /// The caller gave up on a request.
    Cancel { id: RequestId },
    /// The caller's own validation of a completed request's answer (pydantic, an evaluator):
    /// recorded in the validity classifier by the time the answer came. An id the machine no
    /// longer remembers is ignored and counted ([`crate::MachineStats::ignored_feedback`]);
    /// [`crate::RouterMachine::feedback`] says which happened.
    Feedback { id: RequestId, valid: bool },
}

/// Something the driver must do, from [`RouterMachine::poll_action`].
#[non_exhaustive]
pub enum Action {
    /// Send `request` to `provider` and report back under `attempt`.
    Send {
        id: RequestId,
        attempt: AttemptId,
        provider: ProviderId,
        request: http::Request<Bytes>,
    },
    /// Drop the attempt's connection; later inputs for it are ignored.
    Cancel { attempt: AttemptId },
    /// One OpenAI `chat.completion.chunk` (JSON) for a streaming request.
    Deliver { id: RequestId, chunk: Bytes },
    /// The request is over. Exactly once per request; nothing for it follows.
    Complete {
        id: RequestId,
        outcome: Result<Routed, RouteError>,
    },
}

/// A `Send` prints its request's method, URL (query values and credentials cut: a key may sit
/// in `base_url`'s query), header names and body length; header values never (a configured
/// credential is marked sensitive, others may be secrets too), nor the body (the caller's).
impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Send {
                id,
                attempt,
                provider,
                request,
            } => f
                .debug_struct("Send")
                .field("id", id)
                .field("attempt", attempt)
                .field("provider", provider)
                .field("method", request.method())
                .field(
                    "uri",
                    &crate::secret::redact_url(&request.uri().to_string()),
                )
                .field("headers", &request.headers().keys().collect::<Vec<_>>())
                .field("body_bytes", &request.body().len())
                .finish(),
            Action::Cancel { attempt } => {
                f.debug_struct("Cancel").field("attempt", attempt).finish()
            }
            Action::Deliver { id, chunk } => f
                .debug_struct("Deliver")
                .field("id", id)
                .field("chunk", chunk)
                .finish(),
            Action::Complete { id, outcome } => f
                .debug_struct("Complete")
                .field("id", id)
                .field("outcome", outcome)
                .finish(),
        }
    }
}

/// Misuse of the machine by its driver (never a provider's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A `Request` reused the id of a request still in flight.
    #[error("{0} is already in flight")]
    DuplicateRequest(RequestId),
}
