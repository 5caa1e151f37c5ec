//! The tokio transport: one task per attempt, on the runtime its call was made on, sending
//! through the router clone's `reqwest` pool. Aborting the task (the machine's `Cancel`) drops
//! the request future or the body stream, and with it the connection.

use crate::transport::classify;
use bytes::Bytes;
use f3dx_router_core::TransportErrorKind;
use f3dx_router_host::{Attempt, AttemptAbort, AttemptSink, Transport};
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

/// Where a call's attempts run: the runtime the call was made on, through the pool of the router
/// clone it was made with.
///
/// Not wherever the `Send` happens to be executed: it can come out of another request's input
/// or out of the timer task, and an attempt spawned on a current-thread runtime other than its
/// caller's would sit unpolled until that runtime's thread next blocks on it. Likewise a pooled
/// connection is served by a task on the runtime that opened it, so a pool is only ever used
/// from one runtime (see [`crate::Router::with_own_pool`]).
pub(crate) struct Pool {
    pub(crate) runtime: Handle,
    pub(crate) client: reqwest::Client,
}

impl Transport for Pool {
    fn spawn(&self, attempt: Attempt) -> Box<dyn AttemptAbort> {
        let Attempt { request, sink } = attempt;
        let task = self.runtime.spawn(http(sink, self.client.clone(), request));
        Box::new(TaskAbort(task.abort_handle()))
    }
}

struct TaskAbort(AbortHandle);

impl AttemptAbort for TaskAbort {
    fn abort(&self) {
        self.0.abort();
    }
}

/// Sends `request` over HTTP and reports head, body pieces and end (or the transport error).
async fn http(sink: AttemptSink, client: reqwest::Client, request: http::Request<Bytes>) {
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
