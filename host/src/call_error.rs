//! [`RouterCallError`]: why a call with a JSON body failed, the same for every driver.

use f3dx_router_core::{RequestError, RouteError};

/// Why a call with a JSON body failed: the body is not a chat request, or routing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterCallError {
    /// The body is not an OpenAI chat request; nothing was sent.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The request was routed and failed.
    #[error(transparent)]
    Route(#[from] RouteError),
}
