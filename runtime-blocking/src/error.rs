//! The driver's own errors. Routing outcomes are core's [`RouteError`]; these only say why a
//! [`crate::Router`] could not be built, or why a call never reached the machine. None carries a
//! key: config errors come from core (which redacts), TLS and proxy errors name no URL.

use f3dx_router_core::{ConfigError, RequestError, RouteError};

/// Why [`crate::Router::new`] or [`crate::RouterBuilder::build`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterBuildError {
    /// The configuration is invalid, or an `api_key_env` variable is not set.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A root certificate given to [`crate::RouterBuilder::add_root_certificate_pem`] is unusable.
    #[error("invalid root certificate: {0}")]
    Certificate(String),
    /// The configured `proxy` is not a proxy URL ureq can use (the URL itself is not repeated:
    /// it may hold credentials).
    #[error("`proxy` is not a usable proxy URL")]
    Proxy,
}

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
