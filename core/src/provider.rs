//! A configured provider, prepared once: its URL, auth and fixed headers are built at startup so
//! that sending costs a clone, not a parse.

use crate::codec::{self, EncodeError, StreamItem};
use crate::config::{ProviderConfig, ProviderKind};
use crate::request::ChatRequest;
use crate::secret::is_sensitive_header;
use crate::sse::SseEvent;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use std::sync::Arc;
use std::time::Duration;

/// The `anthropic-version` sent when the config names none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` sent to Anthropic when neither the request nor the config sets one.
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u32 = 4096;

/// One provider, ready to encode requests for.
pub struct Provider {
    pub(crate) name: Arc<str>,
    pub(crate) kind: ProviderKind,
    pub(crate) timeout: Option<Duration>,
    /// Its own idle limit, if set (else the router's).
    pub(crate) idle_timeout: Option<Duration>,
    uri: Uri,
    headers: HeaderMap,
    config: ProviderConfig,
}

/// Prints no secret: the URI without its password and query values; credential headers are
/// sensitive, which `HeaderMap`'s `Debug` prints as `Sensitive`.
impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("timeout", &self.timeout)
            .field("uri", &crate::secret::redact_url(&self.uri.to_string()))
            .field("headers", &self.headers)
            .field("config", &self.config)
            .finish()
    }
}

impl Provider {
    /// Prepares a validated provider config.
    pub(crate) fn new(config: ProviderConfig) -> Self {
        let uri = endpoint_uri(config.kind, &config.base_url)
            .expect("validate built this very URI from this base_url");
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &config.api_key {
            let (name, value) = match config.kind {
                ProviderKind::Anthropic => (
                    HeaderName::from_static("x-api-key"),
                    key.expose().to_owned(),
                ),
                _ => (AUTHORIZATION, format!("Bearer {}", key.expose())),
            };
            let mut value =
                HeaderValue::try_from(value).expect("validated api_key is a header value");
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if config.kind == ProviderKind::Anthropic {
            let version = config
                .anthropic_version
                .as_deref()
                .unwrap_or(DEFAULT_ANTHROPIC_VERSION);
            headers.insert(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::try_from(version).expect("validated header value"),
            );
        }
        for (name, value) in &config.headers {
            let mut value = HeaderValue::try_from(value.as_str()).expect("validated header value");
            value.set_sensitive(is_sensitive_header(name));
            headers.insert(
                HeaderName::try_from(name.as_str()).expect("validated header name"),
                value,
            );
        }
        Provider {
            name: config.name.as_str().into(),
            kind: config.kind,
            timeout: config.timeout_ms.map(|ms| Duration::from_millis(ms as u64)),
            idle_timeout: config
                .idle_timeout_ms
                .map(|ms| Duration::from_millis(ms as u64)),
            uri,
            headers,
            config,
        }
    }

    /// The config this provider was built from.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// The model this provider is sent for `request`: the model map's entry, else the fixed
    /// override, else what the caller asked for.
    pub fn target_model<'a>(&'a self, request: &'a ChatRequest) -> &'a str {
        self.config
            .model_map
            .get(request.model())
            .or(self.config.model.as_ref())
            .map_or(request.model(), String::as_str)
    }

    /// The HTTP request for `request` in this provider's shape.
    pub fn encode(&self, request: &ChatRequest) -> Result<http::Request<Bytes>, EncodeError> {
        let model = self.target_model(request);
        let body = match self.kind {
            ProviderKind::Openai | ProviderKind::Mock => codec::openai::encode_body(request, model),
            ProviderKind::Anthropic => {
                let max_tokens = self
                    .config
                    .default_max_tokens
                    .unwrap_or(DEFAULT_ANTHROPIC_MAX_TOKENS);
                Bytes::from(codec::anthropic::encode_request(
                    request, model, max_tokens,
                )?)
            }
        };
        let mut http_request = http::Request::new(body);
        *http_request.method_mut() = Method::POST;
        *http_request.uri_mut() = self.uri.clone();
        *http_request.headers_mut() = self.headers.clone();
        if request.stream() {
            http_request.headers_mut().insert(
                http::header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            );
        }
        Ok(http_request)
    }

    /// Turns a 2xx body into an OpenAI `chat.completion`, or says why it is not one.
    pub fn decode_response(
        &self,
        body: Bytes,
        created: u64,
    ) -> Result<codec::Decoded, codec::DecodeError> {
        match self.kind {
            ProviderKind::Openai | ProviderKind::Mock => codec::openai::check_response(&body)
                .map(|total_tokens| codec::Decoded { body, total_tokens }),
            ProviderKind::Anthropic => codec::anthropic::decode_response(&body, created),
        }
    }

    /// A decoder for this provider's stream events.
    pub fn stream_decoder(&self, request: &ChatRequest, created: u64) -> StreamDecoder {
        match self.kind {
            ProviderKind::Openai | ProviderKind::Mock => {
                StreamDecoder::OpenAi(codec::openai::StreamPassthrough)
            }
            ProviderKind::Anthropic => StreamDecoder::Anthropic(Box::new(
                codec::anthropic::StreamTranslator::new(request.include_usage(), created),
            )),
        }
    }
}

/// The longest URI the `http` crate takes (`u16::MAX - 1` bytes).
const URI_LIMIT: usize = u16::MAX as usize - 1;

/// The URI a provider's requests go to: `base_url`'s path, then the endpoint's (`/chat/completions`
/// or `/messages`), then `base_url`'s query (Azure's `?api-version=`), which a server reads after
/// the whole path. `validate` calls it so that every config it accepts can be prepared; the error
/// says what is wrong without echoing the value.
pub(crate) fn endpoint_uri(kind: ProviderKind, base_url: &str) -> Result<Uri, &'static str> {
    let (endpoint, base) = match kind {
        ProviderKind::Openai => ("/chat/completions", base_url),
        ProviderKind::Anthropic => ("/messages", base_url),
        ProviderKind::Mock => ("/chat/completions", "http://mock.invalid"),
    };
    const NOT_A_URL: &str = "must be an http:// or https:// URL";
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(NOT_A_URL);
    }
    if base.contains('#') {
        return Err("must not have a fragment (`#...`)");
    }
    let (path, query) = base.split_once('?').unwrap_or((base, ""));
    let path = path.trim_end_matches('/');
    let mut joined = String::with_capacity(path.len() + endpoint.len() + query.len() + 1);
    joined.push_str(path);
    joined.push_str(endpoint);
    if !query.is_empty() {
        joined.push('?');
        joined.push_str(query);
    }
    if joined.len() > URI_LIMIT {
        return Err("is too long: with the endpoint path it must fit in 65534 bytes");
    }
    let uri: Uri = joined.parse().map_err(|_| NOT_A_URL)?;
    let authority = uri.authority().ok_or(NOT_A_URL)?;
    let host = authority.host();
    if host.is_empty() || host == "[]" {
        return Err("must name a host");
    }
    let host_port = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, host_port)| host_port);
    match host_port.strip_prefix(host) {
        Some("") => Ok(uri),
        Some(port)
            if port
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| p != 0) =>
        {
            Ok(uri)
        }
        _ => Err("has a port outside 1-65535"),
    }
}

/// Per-attempt stream decoding state, by provider shape.
#[derive(Debug)]
pub enum StreamDecoder {
    OpenAi(codec::openai::StreamPassthrough),
    Anthropic(Box<codec::anthropic::StreamTranslator>),
}

impl StreamDecoder {
    /// Decodes one SSE event into OpenAI stream items.
    pub fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), codec::DecodeError> {
        match self {
            StreamDecoder::OpenAi(d) => d.on_event(event, out),
            StreamDecoder::Anthropic(d) => d.on_event(event, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RouterConfig;

    fn provider(base_url: &str, headers: &str) -> Provider {
        let json = format!(
            r#"{{"providers":[{{"name":"a","kind":"openai","base_url":{base_url:?},"api_key":"sk-1","headers":{headers}}}]}}"#
        );
        let config = RouterConfig::from_json(json.as_bytes()).expect("valid config");
        Provider::new(config.providers.into_iter().next().expect("one provider"))
    }

    fn request() -> ChatRequest {
        ChatRequest::from_json(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
            .expect("valid request")
    }

    #[test]
    fn the_query_of_base_url_comes_after_the_endpoint_path() {
        let azure = "https://x.openai.azure.com/openai/deployments/gpt4o?api-version=2024-10-21";
        let sent = provider(azure, "{}").encode(&request()).unwrap();
        assert_eq!(
            sent.uri().to_string(),
            "https://x.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21"
        );
        let sent = provider("https://x.test/v1/", "{}")
            .encode(&request())
            .unwrap();
        assert_eq!(sent.uri().to_string(), "https://x.test/v1/chat/completions");
    }

    #[test]
    fn credential_headers_are_sensitive_and_never_printed() {
        let p = provider(
            "https://x.test/v1?key=qk-secret",
            r#"{"api-key":"az-secret","Cookie":"c-secret","OpenAI-Organization":"org-1"}"#,
        );
        let sent = p.encode(&request()).unwrap();
        let headers = sent.headers();
        assert!(headers["api-key"].is_sensitive());
        assert!(headers["cookie"].is_sensitive());
        assert!(headers["authorization"].is_sensitive());
        assert!(!headers["openai-organization"].is_sensitive());
        let debug = format!("{p:?} {sent:?}");
        for secret in ["az-secret", "c-secret", "sk-1"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        // The machine (and so the Python router's repr) prints its providers.
        assert!(!format!("{p:?}").contains("qk-secret"), "{p:?}");
    }
}
