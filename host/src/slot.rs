//! Where a call's outcome waits for its caller: the chunks delivered and not yet read, then the
//! completion, and the wakers of whoever waits on either side.
//!
//! Written to with the router's lock held (it is the target of `Deliver` and `Complete`), read
//! by the caller with only this slot's lock: the caller never takes the router's lock to read.
//! Lock order: the router's lock, then a slot's; never the other way.

use bytes::Bytes;
use f3dx_router_core::{RouteError, Routed};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Chunks a stream holds unread before its attempt stops reading from the provider: memory is
/// bounded by this many chunks (each bounded by the machine's `max_response_bytes`), and the
/// provider is slowed down by the socket's own flow control.
pub const STREAM_BUFFER: usize = 64;

/// What a caller receives, in order: chunks (streams only), then exactly one `Done`.
#[derive(Debug)]
pub enum Event {
    /// One OpenAI `chat.completion.chunk` JSON object.
    Chunk(Bytes),
    /// The request's outcome. Nothing follows it.
    Done(Result<Routed, RouteError>),
}

#[derive(Debug, Default)]
struct State {
    chunks: VecDeque<Bytes>,
    done: Option<Result<Routed, RouteError>>,
    /// The caller, waiting for a chunk or the end.
    reader: Option<Waker>,
    /// Attempts waiting for room in a full stream buffer.
    writers: Vec<Waker>,
    /// The caller is gone: nothing is kept, nothing need wait for room.
    closed: bool,
}

#[derive(Debug)]
pub(crate) struct Slot {
    /// Whether chunks are kept (a unary call of a `stream: true` request discards them).
    stream: bool,
    state: Mutex<State>,
}

impl Slot {
    pub(crate) fn new(stream: bool) -> Self {
        Slot {
            stream,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing here can panic while the lock is held; a poisoned slot is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn push_chunk(&self, chunk: Bytes) {
        if !self.stream {
            return;
        }
        let reader = {
            let mut s = self.state();
            if s.closed {
                return;
            }
            s.chunks.push_back(chunk);
            s.reader.take()
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }

    pub(crate) fn complete(&self, outcome: Result<Routed, RouteError>) {
        let reader = {
            let mut s = self.state();
            if s.closed {
                return;
            }
            s.done = Some(outcome);
            s.reader.take()
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }

    /// The next event, or `Pending` with `cx`'s waker kept for the next push.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Event> {
        let (event, writers) = {
            let mut s = self.state();
            if let Some(chunk) = s.chunks.pop_front() {
                let writers = if s.chunks.len() < STREAM_BUFFER {
                    std::mem::take(&mut s.writers)
                } else {
                    Vec::new()
                };
                (Event::Chunk(chunk), writers)
            } else if let Some(done) = s.done.take() {
                s.closed = true;
                (Event::Done(done), std::mem::take(&mut s.writers))
            } else {
                if !s.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.reader = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
        };
        for writer in writers {
            writer.wake();
        }
        Poll::Ready(event)
    }

    /// The caller has gone: drop what is held, release any attempt waiting for room.
    pub(crate) fn close(&self) {
        let writers = {
            let mut s = self.state();
            s.closed = true;
            s.chunks.clear();
            s.done = None;
            s.reader = None;
            std::mem::take(&mut s.writers)
        };
        for writer in writers {
            writer.wake();
        }
    }

    /// Chunks held unread.
    pub(crate) fn buffered(&self) -> usize {
        self.state().chunks.len()
    }

    /// Ready when the stream buffer has room for more (always, once the caller is gone).
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state();
        if s.closed || s.chunks.len() < STREAM_BUFFER {
            return Poll::Ready(());
        }
        if !s.writers.iter().any(|w| w.will_wake(cx.waker())) {
            s.writers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
