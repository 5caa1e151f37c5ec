//! [`ChunkStream`]: a streaming request's OpenAI chunks as a `futures` stream.

use bytes::Bytes;
use f3dx_router_core::{RequestId, RouteError, Routed};
use f3dx_router_host::{Call, Event};
use futures_util::Stream;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The chunks of one streaming request, each one OpenAI `chat.completion.chunk` JSON object.
///
/// The stream ends after the last chunk; an `Err` item is the last item. Once it has ended,
/// [`ChunkStream::routed`] tells which provider served it and every attempt made. Dropping the
/// stream before its end cancels the request and every attempt still in flight.
///
/// At most about [`f3dx_router_host::STREAM_BUFFER`] chunks are held while the caller does not
/// poll; then the attempt stops reading from the provider until the caller catches up.
pub struct ChunkStream {
    call: Call,
    routed: Option<Routed>,
}

impl ChunkStream {
    pub(crate) fn new(call: Call) -> Self {
        ChunkStream { call, routed: None }
    }

    /// The route taken, once the stream has ended successfully (`None` before, or on error: the
    /// error item carries the attempts then). For a request without `stream: true`, no chunk is
    /// delivered and the `chat.completion` is in [`Routed::body`].
    pub fn routed(&self) -> Option<&Routed> {
        self.routed.as_ref()
    }

    /// The id the router gave this request.
    pub fn request_id(&self) -> RequestId {
        self.call.id()
    }

    /// Whether the stream has ended (successfully or with its error item).
    pub fn is_finished(&self) -> bool {
        self.call.is_finished()
    }

    /// Chunks received and not yet read. For tests.
    #[doc(hidden)]
    pub fn held_chunks(&self) -> usize {
        self.call.buffered()
    }
}

impl Stream for ChunkStream {
    type Item = Result<Bytes, RouteError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(match std::task::ready!(self.call.poll_next(cx)) {
            Some(Event::Chunk(chunk)) => Some(Ok(chunk)),
            Some(Event::Done(Ok(routed))) => {
                self.routed = Some(routed);
                None
            }
            Some(Event::Done(Err(error))) => Some(Err(error)),
            None => None,
        })
    }
}

impl fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkStream")
            .field("request", &self.call.id())
            .field("done", &self.call.is_finished())
            .field("routed", &self.routed)
            .finish()
    }
}
