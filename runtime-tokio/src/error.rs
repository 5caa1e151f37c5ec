//! The driver's own errors. Routing outcomes are core's `RouteError`; these only say why a
//! [`crate::Router`] could not be built (why a JSON call failed is the host's
//! [`RouterCallError`](f3dx_router_host::RouterCallError), shared by every driver).
//!
//! None of them can carry an API key: config errors come from core (which redacts), TLS and
//! client errors are stringified without URLs.

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
    /// The TLS configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The HTTP client could not be built.
    #[error("HTTP client could not be built: {0}")]
    Client(String),
}
