//! The testkit's conformance suite, run against the tokio driver: one test per scenario.

use f3dx_router_core::{ChatRequest, ProviderStats, RouteError, Routed, RouterConfig};
use f3dx_router_testkit::conformance::{Driver, StreamResult};
use f3dx_router_tokio::Router;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;

/// The tokio [`Router`] as a conformance [`Driver`].
#[derive(Debug)]
struct Tokio(Router);

impl Driver for Tokio {
    // reqwest's pool, as configured in `client.rs`.
    const MAX_IDLE_PER_HOST: usize = 16;

    fn build(config: RouterConfig, ca_pem: Option<&str>) -> Self {
        let mut builder = Router::builder(config);
        if let Some(pem) = ca_pem {
            builder = builder.add_root_certificate_pem(pem);
        }
        Tokio(builder.build().expect("the router builds"))
    }

    fn call(&self, request: ChatRequest) -> BoxFuture<'static, Result<Routed, RouteError>> {
        let router = self.0.clone();
        Box::pin(async move { router.chat_completions(request).await })
    }

    fn stream(
        &self,
        request: ChatRequest,
        take: Option<usize>,
    ) -> BoxFuture<'static, StreamResult> {
        let mut stream = self.0.chat_completions_stream(request);
        Box::pin(async move {
            let mut chunks = Vec::new();
            while take.is_none_or(|n| chunks.len() < n) {
                match stream.next().await {
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
            // `take` reached: the stream is dropped here, which cancels the request.
            drop(stream);
            StreamResult {
                chunks,
                outcome: None,
            }
        })
    }

    fn in_flight(&self) -> (usize, usize) {
        self.0.in_flight()
    }

    fn stats(&self) -> Vec<ProviderStats> {
        self.0.stats()
    }

    fn open_tasks(&self) -> usize {
        self.0.open_tasks()
    }

    fn report(&self, route_id: f3dx_router_core::RequestId, valid: bool) -> bool {
        self.0.report(route_id, valid)
    }
}

f3dx_router_testkit::conformance_suite!(Tokio);
