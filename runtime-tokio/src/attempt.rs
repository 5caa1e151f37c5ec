//! One task per attempt: perform the send, feed back what happened. Aborting the task (the
//! machine's `Cancel`) drops the request future or the body stream, and with it the connection.

use crate::driver::Inner;
use crate::transport::classify;
use bytes::Bytes;
use f3dx_router_core::mock::{MockOutcome, MockReply};
use f3dx_router_core::{AttemptId, Input, TransportErrorKind};
use futures_util::{FutureExt, Stream, StreamExt};
use std::sync::Arc;

/// Inputs fed under one lock at most; bounds the time the lock is held on a fast stream.
const MAX_BATCH: usize = 32;

/// Sends `request` over HTTP and feeds head, body pieces and end (or the transport error).
pub(crate) async fn http(
    inner: Arc<Inner>,
    client: reqwest::Client,
    attempt: AttemptId,
    request: http::Request<Bytes>,
) {
    let request = match reqwest::Request::try_from(request) {
        Ok(request) => request,
        Err(_) => {
            // Core built a request reqwest cannot express (not expected: URIs are validated).
            let kind = TransportErrorKind::Other;
            inner.feed(attempt, [Input::TransportError { attempt, kind }], true);
            return;
        }
    };
    let mut response = match client.execute(request).await {
        Ok(response) => response,
        Err(e) => {
            let kind = classify(&e);
            inner.feed(attempt, [Input::TransportError { attempt, kind }], true);
            return;
        }
    };
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    let mut ended = false;
    feed_response(
        &inner,
        attempt,
        status,
        headers,
        response.bytes_stream(),
        classify,
        &mut ended,
    )
    .await;
}

/// Feeds a response's head, its body pieces as they arrive, and its end (or the transport error
/// `classify` names). Sets `ended` once the attempt's last input is fed. Returns true when the
/// body was read to its end; false when it broke or the machine closed the attempt first.
///
/// Whatever is already available is fed under one lock: a small response whose head, body and
/// end arrive together costs one lock, not three.
pub(crate) async fn feed_response<S, E>(
    inner: &Arc<Inner>,
    attempt: AttemptId,
    status: u16,
    headers: http::HeaderMap,
    mut body: S,
    classify: impl Fn(&E) -> TransportErrorKind,
    ended: &mut bool,
) -> bool
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut batch = Vec::with_capacity(4);
    batch.push(Input::ResponseHead {
        attempt,
        status,
        headers,
    });
    loop {
        let mut last = false;
        let mut complete = false;
        while batch.len() < MAX_BATCH {
            let item = if batch.is_empty() {
                body.next().await
            } else {
                match body.next().now_or_never() {
                    Some(item) => item,
                    None => break,
                }
            };
            match item {
                Some(Ok(chunk)) => batch.push(Input::ResponseBody { attempt, chunk }),
                Some(Err(e)) => {
                    let kind = classify(&e);
                    batch.push(Input::TransportError { attempt, kind });
                    last = true;
                    break;
                }
                None => {
                    batch.push(Input::ResponseEnd { attempt });
                    last = true;
                    complete = true;
                    break;
                }
            }
        }
        let open = inner.feed(attempt, batch.drain(..), last);
        *ended |= last;
        if !open {
            return complete;
        }
    }
}

/// Plays a mock provider's reply: wait its latency, then feed it whole.
pub(crate) async fn mock(inner: Arc<Inner>, attempt: AttemptId, reply: MockReply) {
    if !reply.latency.is_zero() {
        tokio::time::sleep(reply.latency).await;
    }
    match reply.outcome {
        MockOutcome::Response {
            status,
            headers,
            body,
        } => {
            let inputs = std::iter::once(Input::ResponseHead {
                attempt,
                status,
                headers,
            })
            .chain(
                body.into_iter()
                    .map(|chunk| Input::ResponseBody { attempt, chunk }),
            )
            .chain(std::iter::once(Input::ResponseEnd { attempt }));
            inner.feed(attempt, inputs, true);
        }
        MockOutcome::Transport(kind) => {
            inner.feed(attempt, [Input::TransportError { attempt, kind }], true);
        }
    }
}
