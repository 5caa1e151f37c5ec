//! [`ChunkStream`]: a streaming request's OpenAI chunks as a `futures` stream.

use crate::driver::{CancelOnDrop, StreamEvent};
use bytes::Bytes;
use f3dx_router_core::{RequestId, RouteError, Routed};
use futures_util::Stream;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// The chunks of one streaming request, each one OpenAI `chat.completion.chunk` JSON object.
///
/// The stream ends after the last chunk; an `Err` item is the last item. Once it has ended,
/// [`ChunkStream::routed`] tells which provider served it and every attempt made. Dropping the
/// stream before its end cancels the request and every attempt still in flight.
///
/// Chunks are buffered without bound while the caller does not poll; the machine's
/// `max_response_bytes` bounds how much one attempt can deliver.
pub struct ChunkStream {
    rx: mpsc::UnboundedReceiver<StreamEvent>,
    guard: CancelOnDrop,
    routed: Option<Routed>,
    done: bool,
}

impl ChunkStream {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<StreamEvent>, guard: CancelOnDrop) -> Self {
        ChunkStream {
            rx,
            guard,
            routed: None,
            done: false,
        }
    }

    /// The route taken, once the stream has ended successfully (`None` before, or on error: the
    /// error item carries the attempts then). For a request without `stream: true`, no chunk is
    /// delivered and the `chat.completion` is in [`Routed::body`].
    pub fn routed(&self) -> Option<&Routed> {
        self.routed.as_ref()
    }

    /// The id the router gave this request.
    pub fn request_id(&self) -> RequestId {
        self.guard.id
    }

    /// Whether the stream has ended (successfully or with its error item).
    pub fn is_finished(&self) -> bool {
        self.done
    }
}

impl Stream for ChunkStream {
    type Item = Result<Bytes, RouteError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let event = std::task::ready!(self.rx.poll_recv(cx));
        let item = match event {
            Some(StreamEvent::Chunk(chunk)) => return Poll::Ready(Some(Ok(chunk))),
            Some(StreamEvent::Done(Ok(routed))) => {
                self.routed = Some(routed);
                None
            }
            Some(StreamEvent::Done(Err(error))) => Some(Err(error)),
            // The waiter was dropped without a completion: only if the machine broke rule 1.
            None => Some(Err(RouteError::Cancelled {
                attempts: Vec::new(),
            })),
        };
        self.done = true;
        self.guard.armed = false;
        Poll::Ready(item)
    }
}

impl fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkStream")
            .field("request", &self.guard.id)
            .field("done", &self.done)
            .field("routed", &self.routed)
            .finish()
    }
}
