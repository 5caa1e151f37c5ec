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

/// Whether a header's value is a credential: the auth headers providers use (`authorization`,
/// Azure's `api-key`, `x-api-key`, `x-goog-api-key`), cookies, and any name that contains `key`,
/// `token`, `secret`, `auth`, `password` or `credential`. Such a value is marked sensitive on the
/// wire (`HeaderValue::set_sensitive`: never printed by `Debug`, never HPACK-indexed) and cut out
/// of what a provider sends back.
pub fn is_sensitive_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(name.as_str(), "cookie" | "set-cookie")
        || ["key", "token", "secret", "auth", "password", "credential"]
            .iter()
            .any(|word| name.contains(word))
}

/// A URL fit to print: a password (or lone user) becomes `***@`, every query value `***`
/// (`?api-version=***&key=***`), so a key pasted into `base_url` is not shown by `Debug`; what is
/// not a URL at all prints as `***`.
pub fn redact_url(url: &str) -> String {
    let (head, query) = url
        .split_once('?')
        .map_or((url, None), |(h, q)| (h, Some(q)));
    let mut out = String::with_capacity(url.len());
    let Some((scheme, rest)) = head.split_once("://") else {
        return "***".to_owned();
    };
    out.push_str(scheme);
    out.push_str("://");
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((_, host)) => {
            out.push_str("***@");
            out.push_str(host);
            out.push_str(&rest[authority_end..]);
        }
        None => out.push_str(rest),
    }
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) => {
                    out.push_str(name);
                    out.push_str("=***");
                }
                None => out.push_str("***"),
            }
        }
    }
    out
}

/// `OPENAI_API_KEY`-style: upper-case letters, digits and `_`, not starting with a digit. Keys
/// are not written like that, so such a name (an `api_key_env`) can be shown; anything else may
/// be a key pasted into the wrong field and is not.
pub fn looks_like_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_header_names() {
        for name in [
            "Authorization",
            "api-key",
            "x-api-key",
            "X-Goog-Api-Key",
            "cookie",
            "x-auth-token",
            "x-client-secret",
            "Proxy-Authorization",
        ] {
            assert!(is_sensitive_header(name), "{name}");
        }
        for name in [
            "openai-organization",
            "x-request-id",
            "http-referer",
            "accept",
        ] {
            assert!(!is_sensitive_header(name), "{name}");
        }
    }

    #[test]
    fn urls_print_without_credentials_or_query_values() {
        assert_eq!(
            redact_url("https://u:pw@x.test/v1?api-version=2024&key=sk-1&flag"),
            "https://***@x.test/v1?api-version=***&key=***&***"
        );
        assert_eq!(redact_url("https://x.test/v1"), "https://x.test/v1");
        // Not a URL at all (a key pasted into the field): nothing of it is shown.
        assert_eq!(redact_url("sk-pasted"), "***");
    }

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
