//! API keys: a type that can be used to build a header and can never be printed.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A provider API key. `Debug` and `Display` print `ApiKey(***)`, so a key never reaches an error
/// message, a log line, a `repr` or a panic message. The only way out is [`ApiKey::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for building the provider's auth header. Never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for ApiKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(ApiKey)
    }
}

/// A proxy URL as configured. It may carry credentials (`http://user:pass@proxy:3128`), so it
/// prints as `ProxyUrl(***)`; the driver that connects through it reads [`ProxyUrl::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl(String);

impl ProxyUrl {
    pub fn new(url: impl Into<String>) -> Self {
        ProxyUrl(url.into())
    }

    /// The URL itself. Never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `http://[user[:password]@]host[:port][/]`, with a host.
    pub(crate) fn is_http_url(&self) -> bool {
        let Some(rest) = self.0.strip_prefix("http://") else {
            return false;
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let hostport = rest.rsplit_once('@').map_or(rest, |(_, hostport)| hostport);
        hostport
            .parse::<http::uri::Authority>()
            .is_ok_and(|a| !a.host().is_empty() && !hostport.ends_with(':'))
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProxyUrl(***)")
    }
}

impl<'de> Deserialize<'de> for ProxyUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(ProxyUrl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_never_formats() {
        let key = ApiKey::new("sk-live-secret");
        assert!(!format!("{key:?} {key} {:?}", Some(&key)).contains("secret"));
        assert_eq!(key.expose(), "sk-live-secret");
    }

    #[test]
    fn proxy_url_never_formats_and_is_checked() {
        let url = ProxyUrl::new("http://user:hunter2@proxy:3128");
        assert!(!format!("{url:?} {:?}", Some(&url)).contains("hunter2"));
        assert!(url.is_http_url());
        for bad in [
            "socks5://proxy:1080",
            "http://",
            "http://user:pw@",
            "proxy:3128",
            "http://h:",
        ] {
            assert!(!ProxyUrl::new(bad).is_http_url(), "{bad}");
        }
    }
}
