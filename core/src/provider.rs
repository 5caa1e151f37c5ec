//! A configured provider, prepared once: its URL, auth and fixed headers are built at startup so
//! that sending costs a clone, not a parse.

use crate::codec::{self, EncodeError, StreamItem};
use crate::config::{ProviderConfig, ProviderKind};
use crate::request::ChatRequest;
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
#[derive(Debug)]
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

impl Provider {
    /// Prepares a validated provider config.
    pub(crate) fn new(config: ProviderConfig) -> Self {
        let (path, base) = match config.kind {
            ProviderKind::Openai => ("/chat/completions", config.base_url.as_str()),
            ProviderKind::Anthropic => ("/messages", config.base_url.as_str()),
            ProviderKind::Mock => ("/chat/completions", "http://mock.invalid"),
        };
        let uri = format!("{}{path}", base.trim_end_matches('/'))
            .parse()
            .expect("validated base_url plus a fixed path is a URI");
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
            headers.insert(
                HeaderName::try_from(name.as_str()).expect("validated header name"),
                HeaderValue::try_from(value.as_str()).expect("validated header value"),
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
    pub fn decode_response(&self, body: Bytes, created: u64) -> Result<Bytes, codec::DecodeError> {
        match self.kind {
            ProviderKind::Openai | ProviderKind::Mock => {
                codec::openai::check_response(&body).map(|()| body)
            }
            ProviderKind::Anthropic => {
                codec::anthropic::decode_response(&body, created).map(Bytes::from)
            }
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
