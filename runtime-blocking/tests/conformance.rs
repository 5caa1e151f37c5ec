//! The testkit's conformance suite, run against the blocking driver: one test per scenario.
//! Each call runs on tokio's blocking pool (the suite itself is async); dropping a call's
//! future cancels it through its `Canceller`, as a program would from another thread.

use f3dx_router_blocking::{Canceller, Router};
use f3dx_router_core::{ChatRequest, ProviderStats, RouteError, Routed, RouterConfig};
use f3dx_router_testkit::conformance::{Driver, StreamResult};
use futures_util::future::BoxFuture;

/// The blocking [`Router`] as a conformance [`Driver`].
#[derive(Debug)]
struct Blocking(Router);

/// Cancels its call when dropped before `disarm` (the future was dropped mid-call).
struct CancelOnDrop(Option<Canceller>);

impl CancelOnDrop {
    /// The call ended: nothing to cancel.
    fn disarm(&mut self) {
        self.0.take();
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(canceller) = self.0.take() {
            canceller.cancel();
        }
    }
}

impl Driver for Blocking {
    // ureq's pool, as configured in `lib.rs`.
    const MAX_IDLE_PER_HOST: usize = 16;

    fn build(config: RouterConfig, ca_pem: Option<&str>) -> Self {
        let mut builder = Router::builder(config);
        if let Some(pem) = ca_pem {
            builder = builder.add_root_certificate_pem(pem);
        }
        Blocking(builder.build().expect("the router builds"))
    }

    fn call(&self, request: ChatRequest) -> BoxFuture<'static, Result<Routed, RouteError>> {
        let pending = self.0.start(request);
        let mut guard = CancelOnDrop(Some(pending.canceller()));
        let waiting = tokio::task::spawn_blocking(move || pending.wait());
        Box::pin(async move {
            let outcome = waiting.await.expect("the blocking call does not panic");
            guard.disarm();
            outcome
        })
    }

    fn stream(
        &self,
        request: ChatRequest,
        take: Option<usize>,
    ) -> BoxFuture<'static, StreamResult> {
        let mut stream = self.0.chat_completions_stream(request);
        let reading = tokio::task::spawn_blocking(move || {
            let mut chunks = Vec::new();
            while take.is_none_or(|n| chunks.len() < n) {
                match stream.next() {
                    Some(Ok(chunk)) => chunks.push(chunk),
                    Some(Err(error)) => {
                        return StreamResult {
                            chunks,
                            outcome: Some(Err(error)),
                        };
                    }
                    None => {
                        let routed = stream.routed().cloned().expect("routed after the end");
                        return StreamResult {
                            chunks,
                            outcome: Some(Ok(routed)),
                        };
                    }
                }
            }
            // `take` reached: the iterator is dropped here, which cancels the request.
            drop(stream);
            StreamResult {
                chunks,
                outcome: None,
            }
        });
        Box::pin(async move { reading.await.expect("the blocking stream does not panic") })
    }

    fn in_flight(&self) -> (usize, usize) {
        self.0.in_flight()
    }

    fn stats(&self) -> Vec<ProviderStats> {
        self.0.stats()
    }

    fn report(&self, route_id: f3dx_router_core::RequestId, valid: bool) -> bool {
        self.0.report(route_id, valid)
    }

    fn open_tasks(&self) -> usize {
        self.0.open_tasks()
    }
}

f3dx_router_testkit::conformance_suite!(Blocking);
