//! One task per attempt: perform the send, feed back what happened. Aborting the task (the
//! machine's `Cancel`) drops the request future or the body stream, and with it the connection.

use crate::driver::Inner;
use crate::sink::AttemptSink;
use crate::transport::classify;
use bytes::Bytes;
use f3dx_router_core::mock::{MockOutcome, MockReply};
use f3dx_router_core::{AttemptId, Input, TransportErrorKind};
use std::sync::Arc;

/// Sends `request` over HTTP and reports head, body pieces and end (or the transport error).
pub(crate) async fn http(
    sink: AttemptSink,
    client: reqwest::Client,
    request: http::Request<Bytes>,
) {
    let request = match reqwest::Request::try_from(request) {
        Ok(request) => request,
        Err(_) => {
            // Core built a request reqwest cannot express (not expected: URIs are validated).
            sink.fail(TransportErrorKind::Other);
            return;
        }
    };
    let mut response = match client.execute(request).await {
        Ok(response) => response,
        Err(e) => {
            sink.fail(classify(&e));
            return;
        }
    };
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    sink.response(status, headers, response.bytes_stream(), classify)
        .await;
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
