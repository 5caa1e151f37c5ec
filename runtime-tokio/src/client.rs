//! The one `reqwest::Client` a router sends everything through: rustls with the ring provider,
//! webpki roots (plus any private CA a test adds), HTTP/2 offered by ALPN, no redirects, the
//! router's proxies ([`crate::proxy`]), TCP keepalive and HTTP/2 pings so a dead peer is noticed.

use crate::error::RouterBuildError;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;
use std::time::Duration;

/// TCP keepalive on every connection (both transports): the first probe after this long idle,
/// then one every as long, three unanswered probes and the connection is dead. reqwest's
/// defaults, set here so the Python transport's match.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
/// Linux's `TCP_USER_TIMEOUT`: data left unacknowledged this long ends the connection
/// (reqwest's default).
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 pings on a connection (idle or not), and how long one may go unanswered before the
/// connection is closed: a peer that stopped answering is noticed within both.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// See [`HTTP2_KEEPALIVE_INTERVAL`].
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Idle connections kept per host.
pub(crate) const POOL_MAX_IDLE_PER_HOST: usize = 16;

/// What every pool of a router is built from, kept so [`crate::Router::with_own_pool`] can build
/// another one like the first.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    /// PEM text of roots trusted besides the webpki ones.
    pub(crate) extra_roots_pem: Vec<String>,
    pub(crate) connect_timeout: Duration,
    /// Resolved at build from the config and (unless `trust_env` is false) the environment.
    pub(crate) proxies: crate::proxy::Proxies,
}

/// rustls over the ring provider, trusting the webpki roots and `settings`' extra ones; no ALPN.
pub(crate) fn tls_config(
    settings: &ClientSettings,
) -> Result<rustls::ClientConfig, RouterBuildError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in &settings.extra_roots_pem {
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| RouterBuildError::Certificate(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| RouterBuildError::Certificate(e.to_string()))?;
            found += 1;
        }
        if found == 0 {
            return Err(RouterBuildError::Certificate(
                "no PEM certificate found in the given text".to_owned(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RouterBuildError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

pub(crate) fn build_client(settings: &ClientSettings) -> Result<reqwest::Client, RouterBuildError> {
    let mut tls = tls_config(settings)?;
    // reqwest takes a preconfigured rustls config as it is: ALPN must be set here.
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true)
        .tcp_keepalive(TCP_KEEPALIVE)
        .tcp_keepalive_interval(TCP_KEEPALIVE)
        .tcp_keepalive_retries(3)
        .http2_keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
        .http2_keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT)
        .http2_keep_alive_while_idle(true);
    #[cfg(target_os = "linux")]
    let builder = builder.tcp_user_timeout(TCP_USER_TIMEOUT);
    // Never reqwest's own reading of the environment: the router's proxies, or none.
    match settings.proxies.reqwest_proxy() {
        Some(proxy) => builder.proxy(proxy),
        None => builder.no_proxy(),
    }
    .build()
    .map_err(|e| RouterBuildError::Client(e.without_url().to_string()))
}
