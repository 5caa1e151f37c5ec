//! The driver's own errors. Routing outcomes are core's `RouteError`; these only say why a
//! [`crate::Router`] could not be built (why a JSON call failed is the host's
//! [`RouterCallError`](f3dx_router_host::RouterCallError), shared by every driver). None carries a
//! key: config errors come from core (which redacts), TLS and proxy errors name no URL.

use f3dx_router_core::ConfigError;

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
