//! [`ChunkIter`]: a streaming request's OpenAI chunks as an `Iterator`, read on the caller's
//! thread.

use crate::clock::Clock;
use bytes::Bytes;
use f3dx_router_core::{RequestId, RouteError, Routed};
use f3dx_router_host::{Call, Event, Host};
use std::fmt;
use std::sync::Arc;

/// The chunks of one streaming request, each one OpenAI `chat.completion.chunk` JSON object.
///
/// `next` blocks until the next chunk (firing the router's timers while it waits); an `Err`
/// item is the last item. Once it has ended, [`ChunkIter::routed`] tells which provider served
/// it. Dropping it before its end cancels the request. While the caller does not read, at most
/// about [`f3dx_router_host::STREAM_BUFFER`] chunks are held and the attempt stops reading from
/// the provider; the request's timers then fire when a caller (this one or another) waits next.
pub struct ChunkIter {
    call: Call,
    host: Arc<Host>,
    clock: Arc<Clock>,
    routed: Option<Routed>,
}

impl ChunkIter {
    pub(crate) fn new(call: Call, host: Arc<Host>, clock: Arc<Clock>) -> Self {
        ChunkIter {
            call,
            host,
            clock,
            routed: None,
        }
    }

    /// The route taken, once the stream has ended successfully.
    pub fn routed(&self) -> Option<&Routed> {
        self.routed.as_ref()
    }

    /// The id the router gave this request.
    pub fn request_id(&self) -> RequestId {
        self.call.id()
    }
}

impl Iterator for ChunkIter {
    type Item = Result<Bytes, RouteError>;

    fn next(&mut self) -> Option<Self::Item> {
        let call = &mut self.call;
        match self.clock.wait(&self.host, |cx| call.poll_next(cx)) {
            Some(Event::Chunk(chunk)) => Some(Ok(chunk)),
            Some(Event::Done(Ok(routed))) => {
                self.routed = Some(routed);
                None
            }
            Some(Event::Done(Err(error))) => Some(Err(error)),
            None => None,
        }
    }
}

impl fmt::Debug for ChunkIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkIter")
            .field("request", &self.call.id())
            .field("done", &self.call.is_finished())
            .finish_non_exhaustive()
    }
}
