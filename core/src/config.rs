//! Router configuration: the same JSON a Rust user writes and a Python user passes as a dict.
//!
//! [`RouterConfig::from_json`] parses and validates in one step; every problem is a [`ConfigError`]
//! that names the field (`providers[1].base_url`), never a panic and never an API key.

pub use crate::hedge_delay::HedgeDelaySetting;
use crate::mock::MockConfig;
use crate::secret::ApiKey;
pub use crate::state::health::HealthConfig;
pub use crate::state::throttle::ThrottleConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Which wire shape a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// `POST {base_url}/chat/completions`, bearer auth, body passed through.
    Openai,
    /// `POST {base_url}/messages`, `x-api-key`, translated both ways.
    Anthropic,
    /// An in-process seeded model of a provider (see [`crate::mock`]); speaks the OpenAI shape.
    Mock,
}

/// How the machine spreads one request over the providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// One provider at a time, in order; fall through on a soft failure.
    #[default]
    Sequential,
    /// Up to `hedge_k` providers at once (or one more per `hedge_delay_ms`); first success wins.
    Hedged,
    /// One provider at a time, chosen by smooth weighted round-robin over `weight`.
    Weighted,
    /// One provider at a time, the faster of two random ones by load-weighted peak-EWMA latency.
    Fastest,
}

impl PolicyKind {
    /// The policy's name as the config writes it.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Sequential => "sequential",
            PolicyKind::Hedged => "hedged",
            PolicyKind::Weighted => "weighted",
            PolicyKind::Fastest => "fastest",
        }
    }
}

/// One upstream provider.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique name, reported in every attempt and error.
    pub name: String,
    /// Wire shape.
    pub kind: ProviderKind,
    /// `http://` or `https://` root, e.g. `https://api.openai.com/v1`. Unused by `mock`.
    #[serde(default)]
    pub base_url: String,
    /// The key; never printed.
    #[serde(default)]
    pub api_key: Option<ApiKey>,
    /// Name of an environment variable holding the key; drivers resolve it with
    /// [`RouterConfig::resolve_api_keys`] (core reads no environment).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Model sent to this provider whatever the request asked for.
    #[serde(default)]
    pub model: Option<String>,
    /// Request model -> this provider's model (wins over `model` for the names it lists), so a
    /// fallback from OpenAI to Anthropic can rename `gpt-4o` to `claude-sonnet-4-5`.
    #[serde(default)]
    pub model_map: BTreeMap<String, String>,
    /// Per-attempt timeout; its expiry is a soft failure of that attempt.
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    /// This provider's longest gap with no bytes (wins over the router's `idle_timeout_ms`).
    #[serde(default)]
    pub idle_timeout_ms: Option<i64>,
    /// Share of traffic under `weighted` (default 1); 0 means only as a last resort.
    #[serde(default = "one")]
    pub weight: u32,
    /// Budget: requests per minute this provider is sent at most.
    #[serde(default)]
    pub rpm: Option<i64>,
    /// Budget: tokens per minute (estimated before sending, corrected by the answer's usage).
    #[serde(default)]
    pub tpm: Option<i64>,
    /// Budget: how many requests may go at once before `rpm` paces them (default: a second's
    /// worth); tokens get the same share of `tpm`.
    #[serde(default)]
    pub burst: Option<i64>,
    /// Extra headers sent with every request to this provider.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `anthropic-version` header (Anthropic only).
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// `max_tokens` sent to Anthropic when the request sets none (Anthropic requires it).
    #[serde(default)]
    pub default_max_tokens: Option<u32>,
    /// The behaviour of a `mock` provider.
    #[serde(default)]
    pub mock: Option<MockConfig>,
}

fn one() -> u32 {
    1
}

/// Prints no secret: `base_url` without its password and query values, `headers` without
/// values (any of them may be a credential), `api_key` as `ApiKey(***)`.
impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: BTreeMap<&str, &str> =
            self.headers.keys().map(|k| (k.as_str(), "***")).collect();
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &crate::secret::redact_url(&self.base_url))
            .field("api_key", &self.api_key)
            .field("api_key_env", &self.api_key_env)
            .field("model", &self.model)
            .field("model_map", &self.model_map)
            .field("timeout_ms", &self.timeout_ms)
            .field("weight", &self.weight)
            .field("rpm", &self.rpm)
            .field("tpm", &self.tpm)
            .field("burst", &self.burst)
            .field("headers", &headers)
            .field("anthropic_version", &self.anthropic_version)
            .field("default_max_tokens", &self.default_max_tokens)
            .field("mock", &self.mock)
            .finish_non_exhaustive()
    }
}

/// The whole router.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Providers in preference order.
    pub providers: Vec<ProviderConfig>,
    /// Routing policy.
    #[serde(default)]
    pub policy: PolicyKind,
    /// Hedged: how many providers may be in flight at once (default 2, at most the providers).
    #[serde(default)]
    pub hedge_k: Option<i64>,
    /// Hedged: 0 fires all K legs at once; otherwise the next leg fires only if no answer came
    /// within this delay ("The Tail at Scale"); `"auto"` or `{"quantile": q}` learns it from the
    /// first leg's provider's latency to first byte.
    #[serde(default)]
    pub hedge_delay_ms: Option<HedgeDelaySetting>,
    /// Whole-request deadline; on expiry the request completes with a deadline error.
    #[serde(default)]
    pub deadline_ms: Option<i64>,
    /// Streams: an attempt that has not committed within this long is a soft failure.
    #[serde(default)]
    pub ttft_ms: Option<i64>,
    /// The longest gap with no bytes from a provider (from the request to the response head,
    /// between body bytes or stream events) before its attempt is given up: soft before a stream
    /// commits, an interruption after. Default [`DEFAULT_IDLE_TIMEOUT`].
    #[serde(default)]
    pub idle_timeout_ms: Option<i64>,
    /// Cap on attempts per request (default: one per provider).
    #[serde(default)]
    pub max_attempts: Option<i64>,
    /// Largest response body accepted from a provider; more is a soft failure of that attempt.
    #[serde(default)]
    pub max_response_bytes: Option<i64>,
    /// `Retry-After` longer than this is implausible: the provider is cooled down for this cap
    /// instead (the OpenAI SDK refuses to wait more than 120 s).
    #[serde(default)]
    pub retry_after_cap_ms: Option<i64>,
    /// The circuit breaker of every provider (on by default, with [`HealthConfig`]'s defaults).
    #[serde(default)]
    pub health: HealthConfig,
    /// gRPC A6 retry throttling of failovers and hedges (off unless set).
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
    /// `fastest`: half-life of the latency estimate's decay (default 2 s, the latency module's).
    #[serde(default)]
    pub latency_half_life_ms: Option<i64>,
    /// Proxies (drivers resolve them; core reads no environment): `proxy`, an `http://` URL
    /// (credentials allowed, never printed) every provider goes through; without it and with
    /// `trust_env` (the default), the environment's `HTTP(S)_PROXY`, `ALL_PROXY`, `NO_PROXY`.
    #[serde(default)]
    pub proxy: Option<crate::secret::ProxyUrl>,
    /// Whether drivers read proxies from the environment (default true).
    #[serde(default = "yes")]
    pub trust_env: bool,
    /// Structured-output validation and the validity classifier.
    #[serde(default)]
    pub validity: crate::validity::ValidityConfig,
}

fn yes() -> bool {
    true
}

/// What was wrong with a configuration. Always names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The JSON did not have the expected shape.
    #[error("invalid router config at `{field}`: {message}")]
    Parse {
        /// Path of the offending field, e.g. `providers[0].kind`.
        field: String,
        /// What serde expected (string values are redacted).
        message: String,
    },
    /// A field had a value the router cannot use.
    #[error("invalid router config at `{field}`: {message}")]
    Invalid {
        /// Path of the offending field.
        field: String,
        /// Why the value is rejected.
        message: String,
    },
}

impl ConfigError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The path of the field at fault.
    pub fn field(&self) -> &str {
        match self {
            ConfigError::Parse { field, .. } | ConfigError::Invalid { field, .. } => field,
        }
    }
}

/// Default cap on a provider's response body: 32 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 << 20;
/// Default idle limit: 600 s, the read timeout of the official OpenAI and Anthropic SDKs.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default cap on a plausible `Retry-After`: the OpenAI SDK's 120 s.
pub const DEFAULT_RETRY_AFTER_CAP: Duration = Duration::from_secs(120);

impl RouterConfig {
    /// Parses and validates a JSON configuration.
    pub fn from_json(json: &[u8]) -> Result<Self, ConfigError> {
        // serde would accept a struct written as an array; a config is always an object.
        if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ConfigError::Parse {
                field: "<root>".to_owned(),
                message: "the router config must be a JSON object".to_owned(),
            });
        }
        let mut de = serde_json::Deserializer::from_slice(json);
        let config: RouterConfig =
            serde_path_to_error::deserialize(&mut de).map_err(|err| ConfigError::Parse {
                field: field_path(&err.path().to_string()),
                message: redact_serde_message(&strip_position(&err.inner().to_string())),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every rule a config must keep. [`crate::RouterMachine::new`] calls it too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.providers.is_empty() {
            return Err(ConfigError::invalid(
                "providers",
                "at least one provider is required",
            ));
        }
        for (i, p) in self.providers.iter().enumerate() {
            let at = |f: &str| format!("providers[{i}].{f}");
            if p.name.trim().is_empty() {
                return Err(ConfigError::invalid(at("name"), "must not be empty"));
            }
            if self.providers[..i].iter().any(|q| q.name == p.name) {
                return Err(ConfigError::invalid(
                    at("name"),
                    format!("duplicate provider name {:?}", p.name),
                ));
            }
            if p.kind != ProviderKind::Mock {
                // The URI the provider is sent, built as `Provider` builds it. The value is not
                // echoed: a key pasted into the wrong field must not leak.
                crate::provider::endpoint_uri(p.kind, &p.base_url)
                    .map_err(|message| ConfigError::invalid(at("base_url"), message))?;
            }
            for (value, field) in [
                (p.timeout_ms, "timeout_ms"),
                (p.idle_timeout_ms, "idle_timeout_ms"),
            ] {
                non_negative(value, &at(field))?;
                if value == Some(0) {
                    return Err(ConfigError::invalid(at(field), "must be greater than 0"));
                }
            }
            for (value, field) in [(p.rpm, "rpm"), (p.tpm, "tpm"), (p.burst, "burst")] {
                if value.is_some_and(|v| v <= 0) {
                    return Err(ConfigError::invalid(at(field), "must be at least 1"));
                }
            }
            for (name, value) in &p.headers {
                let Ok(parsed) = http::HeaderName::try_from(name.as_str()) else {
                    return Err(ConfigError::invalid(
                        at("headers"),
                        // Not echoed: an invalid name may be a pasted `Bearer <key>`.
                        "a header name is not a valid HTTP header name",
                    ));
                };
                if FRAMING_HEADERS.contains(&parsed.as_str()) {
                    return Err(ConfigError::invalid(
                        at("headers"),
                        format!(
                            "may not set `{}`: the HTTP client frames every request itself",
                            parsed.as_str()
                        ),
                    ));
                }
                if http::HeaderValue::try_from(value.as_str()).is_err() {
                    return Err(ConfigError::invalid(
                        at("headers"),
                        format!("invalid value for header {name:?}"),
                    ));
                }
            }
            if p.api_key
                .as_ref()
                .is_some_and(|k| http::HeaderValue::try_from(k.expose()).is_err())
            {
                return Err(ConfigError::invalid(
                    at("api_key"),
                    "contains characters not allowed in a header",
                ));
            }
            if p.mock.is_some() && p.kind != ProviderKind::Mock {
                return Err(ConfigError::invalid(
                    at("mock"),
                    "only a provider of kind \"mock\" takes a mock model",
                ));
            }
            if let Some(mock) = &p.mock {
                mock.validate().map_err(|(field, message)| {
                    ConfigError::invalid(at(&format!("mock.{field}")), message)
                })?;
            }
        }
        let n = self.providers.len() as i64;
        if let Some(k) = self.hedge_k
            && !(1..=n).contains(&k)
        {
            return Err(ConfigError::invalid(
                "hedge_k",
                format!("must be between 1 and the number of providers ({n}), got {k}"),
            ));
        }
        if let Some(delay) = &self.hedge_delay_ms {
            delay
                .validate()
                .map_err(|message| ConfigError::invalid("hedge_delay_ms", message))?;
        }
        self.health
            .validate()
            .map_err(|(field, message)| ConfigError::invalid(format!("health.{field}"), message))?;
        if let Some(throttle) = &self.throttle {
            throttle.validate().map_err(|(field, message)| {
                ConfigError::invalid(format!("throttle.{field}"), message)
            })?;
        }
        self.validity.validate().map_err(|(field, message)| {
            ConfigError::invalid(format!("validity.{field}"), message)
        })?;
        if let Some(proxy) = &self.proxy
            && !proxy.is_http_url()
        {
            return Err(ConfigError::invalid(
                "proxy",
                // Not echoed: it may hold a password.
                "must be an http:// proxy URL (http://[user:password@]host[:port])",
            ));
        }
        for (value, field) in [
            (self.latency_half_life_ms, "latency_half_life_ms"),
            (self.deadline_ms, "deadline_ms"),
            (self.ttft_ms, "ttft_ms"),
            (self.idle_timeout_ms, "idle_timeout_ms"),
            (self.max_attempts, "max_attempts"),
            (self.max_response_bytes, "max_response_bytes"),
            (self.retry_after_cap_ms, "retry_after_cap_ms"),
        ] {
            non_negative(value, field)?;
            if value == Some(0) {
                return Err(ConfigError::invalid(field, "must be greater than 0"));
            }
        }
        Ok(())
    }

    /// Fills `api_key` from `api_key_env` with the driver's `lookup` (usually `std::env::var`).
    /// A named variable that is unset is an error naming the provider and the variable.
    pub fn resolve_api_keys(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for (i, p) in self.providers.iter_mut().enumerate() {
            if let Some(var) = &p.api_key_env {
                let key = lookup(var).ok_or_else(|| {
                    let message = if crate::secret::looks_like_variable_name(var) {
                        format!("environment variable {var:?} is not set")
                    } else {
                        // A key pasted here instead of `api_key` must not come back in the error.
                        "the environment variable it names is not set (the name is not shown: \
                         it does not look like a variable name and may be a key)"
                            .to_owned()
                    };
                    ConfigError::invalid(format!("providers[{i}].api_key_env"), message)
                })?;
                p.api_key = Some(ApiKey::new(key));
            }
        }
        self.validate()
    }

    /// The configured `proxy`, for the driver that resolves proxies.
    pub fn proxy_url(&self) -> Option<&str> {
        self.proxy.as_ref().map(crate::secret::ProxyUrl::expose)
    }

    /// Legs in flight at once under the hedged policy.
    pub fn effective_hedge_k(&self) -> usize {
        match self.policy {
            PolicyKind::Sequential | PolicyKind::Weighted | PolicyKind::Fastest => 1,
            PolicyKind::Hedged => self
                .hedge_k
                .map_or(2.min(self.providers.len()), |k| k as usize),
        }
    }

    /// Attempts allowed per request.
    pub fn effective_max_attempts(&self) -> usize {
        self.max_attempts
            .map_or(self.providers.len(), |m| m as usize)
    }
}

/// Headers the HTTP client writes from the request itself; a configured value would contradict
/// the body it frames (or is refused outright on HTTP/2, where connection headers are illegal).
const FRAMING_HEADERS: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
];

fn non_negative(value: Option<i64>, field: &str) -> Result<(), ConfigError> {
    match value {
        Some(v) if v < 0 => Err(ConfigError::invalid(
            field,
            format!("must not be negative, got {v}"),
        )),
        _ => Ok(()),
    }
}

/// `providers[0].kind` from serde_path_to_error's `providers[0].kind` (and `.` for the root).
fn field_path(path: &str) -> String {
    if path == "." || path.is_empty() {
        "<root>".to_owned()
    } else {
        path.to_owned()
    }
}

/// serde_json ends its messages with "at line 1 column 108", which means nothing to a caller who
/// passed a dict; the field path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) if message[at..].contains(" column ") => message[..at].to_owned(),
        _ => message.to_owned(),
    }
}

/// serde quotes the offending value (`invalid type: string "sk-..."`, `unknown variant
/// `sk-...``, `character `x``); a key pasted into the wrong field must not come back in an error,
/// so every quoted value is cut out (the expected names that follow stay).
fn redact_serde_message(message: &str) -> String {
    const MARKERS: [&str; 4] = ["string \"", "unknown variant `", "character `", "integer `"];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some((start, marker)) = MARKERS
        .iter()
        .filter_map(|m| rest.find(m).map(|at| (at, *m)))
        .min()
    {
        // Keep the label ("string", "unknown variant"), drop the quote and the value.
        out.push_str(&rest[..start + marker.len() - 2]);
        let value = &rest[start + marker.len()..];
        let end = if marker.ends_with('"') {
            closing_quote(value)
        } else if marker.starts_with("unknown variant") {
            // The variant is printed raw: it ends at the last "`, expected" (or "`, there are
            // no variants"), whatever backticks it holds itself.
            value
                .rfind("`, expected")
                .or_else(|| value.rfind("`, there are no variants"))
        } else {
            value.find('`')
        };
        rest = end.map_or("", |end| &value[end + 1..]);
    }
    out.push_str(rest);
    out
}

/// Where a Debug-escaped string (`a\"b"`) ends: its first quote not escaped by a backslash.
fn closing_quote(escaped: &str) -> Option<usize> {
    let mut backslash = false;
    for (i, c) in escaped.char_indices() {
        match c {
            '"' if !backslash => return Some(i),
            '\\' => backslash = !backslash,
            _ => backslash = false,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> ConfigError {
        RouterConfig::from_json(json.as_bytes()).expect_err(json)
    }

    const P: &str = r#"{"name":"a","kind":"openai","base_url":"https://x.test/v1"}"#;

    #[test]
    fn every_invalid_config_names_its_field() {
        assert_eq!(err(r#"{"providers":[]}"#).field(), "providers");
        assert_eq!(
            err(&format!(r#"{{"providers":[{P},{P}]}}"#)).field(),
            "providers[1].name"
        );
        assert_eq!(
            err(&format!(
                r#"{{"providers":[{P}],"policy":"hedged","hedge_k":0}}"#
            ))
            .field(),
            "hedge_k"
        );
        assert_eq!(
            err(&format!(
                r#"{{"providers":[{P}],"policy":"hedged","hedge_k":2}}"#
            ))
            .field(),
            "hedge_k"
        );
        assert_eq!(
            err(r#"{"providers":[{"name":"a","kind":"gemini","base_url":"https://x"}]}"#).field(),
            "providers[0].kind"
        );
        assert_eq!(
            err(r#"{"providers":[{"name":"a","kind":"openai","base_url":"ftp://x"}]}"#).field(),
            "providers[0].base_url"
        );
        assert_eq!(
            err(r#"{"providers":[{"name":"a","kind":"openai","base_url":"https://x","timeout_ms":-5}]}"#).field(),
            "providers[0].timeout_ms"
        );
        assert_eq!(
            err(&format!(r#"{{"providers":[{P}],"deadline_ms":-1}}"#)).field(),
            "deadline_ms"
        );
        assert_eq!(
            err(&format!(r#"{{"providers":[{P}],"polcy":"hedged"}}"#)).field(),
            "polcy"
        );
        assert_eq!(err(r#"[1]"#).field(), "<root>");
    }

    #[test]
    fn a_key_in_the_wrong_field_is_not_echoed() {
        let e = err(
            r#"{"providers":[{"name":"a","kind":"openai","base_url":"https://x","weight":"sk-secret"}]}"#,
        );
        assert_eq!(e.field(), "providers[0].weight");
        assert!(!e.to_string().contains("sk-secret"), "{e}");
        let e = err(r#"{"providers":[{"name":"a","kind":"openai","base_url":"sk-live-secret"}]}"#);
        assert_eq!(e.field(), "providers[0].base_url");
        assert!(!e.to_string().contains("sk-live"), "{e}");
        let e = err(&format!(r#"{{"providers":[{P}],"hedge_k":true}}"#));
        assert!(!e.to_string().contains("line 1"), "{e}");
        // An unknown enum name (a policy, a kind) is a value too.
        let e = err(&format!(
            r#"{{"providers":[{P}],"policy":"sk-live-secret"}}"#
        ));
        assert_eq!(e.field(), "policy");
        assert!(!e.to_string().contains("sk-live"), "{e}");
        assert!(
            e.to_string().contains("`weighted`"),
            "the choices stay: {e}"
        );
        let e =
            err(r#"{"providers":[{"name":"a","kind":"sk-live-secret","base_url":"https://x"}]}"#);
        assert!(!e.to_string().contains("sk-live"), "{e}");
    }

    #[test]
    fn an_unknown_kind_or_policy_is_not_echoed() {
        let e =
            err(r#"{"providers":[{"name":"a","kind":"sk-live-secret","base_url":"https://x"}]}"#);
        assert_eq!(e.field(), "providers[0].kind");
        let text = e.to_string();
        assert!(!text.contains("sk-live"), "{text}");
        assert!(
            text.contains("`openai`"),
            "still says what is expected: {text}"
        );
        let e = err(&format!(
            r#"{{"providers":[{P}],"policy":"sk-live-secret"}}"#
        ));
        assert_eq!(e.field(), "policy");
        assert!(!e.to_string().contains("sk-live"), "{e}");
        // A character or a number in the wrong place is a value too.
        let e = err(&format!(
            r#"{{"providers":[{P}],"trust_env":"sk-live-secret"}}"#
        ));
        assert!(!e.to_string().contains("sk-live"), "{e}");
        // serde Debug-escapes a string value: an escaped quote inside it does not end the cut.
        let e = err(
            r#"{"providers":[{"name":"a","kind":"openai","base_url":"https://x","weight":"a\"sk-live-secret"}]}"#,
        );
        assert!(!e.to_string().contains("sk-live"), "{e}");
    }

    #[test]
    fn a_header_name_or_variable_that_holds_a_key_is_not_echoed() {
        let e = err(
            r#"{"providers":[{"name":"a","kind":"openai","base_url":"https://x","headers":{"Bearer sk-live-secret":"v"}}]}"#,
        );
        assert_eq!(e.field(), "providers[0].headers");
        assert!(!e.to_string().contains("sk-live"), "{e}");
        let json = r#"{"providers":[{"name":"a","kind":"openai","base_url":"https://x","api_key_env":"sk-live-secret"}]}"#;
        let mut c = RouterConfig::from_json(json.as_bytes()).unwrap();
        let e = c.resolve_api_keys(|_| None).unwrap_err();
        assert_eq!(e.field(), "providers[0].api_key_env");
        assert!(!e.to_string().contains("sk-live"), "{e}");
    }

    #[test]
    fn base_urls_a_driver_cannot_use_name_the_field() {
        let with_base = |url: &str| {
            format!(r#"{{"providers":[{P},{{"name":"b","kind":"anthropic","base_url":{url:?}}}]}}"#)
        };
        // Parses alone (65,530 bytes); with `/messages` it is past the 65,534 the URI type takes.
        let long = format!("https://x.test/{}", "a".repeat(65_515));
        for bad in [
            "https://x.test:99999/v1",
            "https://x.test:0/v1",
            "https://x.test:/v1",
            "https://:443/v1",
            "https:///v1",
            "https://x.test/v1#frag",
            long.as_str(),
        ] {
            let e = err(&with_base(bad));
            assert_eq!(e.field(), "providers[1].base_url", "{bad}");
        }
        // What fits, and keeps its query after the endpoint path, is accepted.
        for good in [
            "https://x.openai.azure.com/openai/deployments/gpt4o?api-version=2024-10-21",
            "http://[::1]:8080/v1/",
            "https://u:p@x.test:443",
        ] {
            RouterConfig::from_json(with_base(good).as_bytes()).expect(good);
        }
    }

    #[test]
    fn configured_headers_cannot_override_framing() {
        for name in [
            "Content-Length",
            "transfer-encoding",
            "Host",
            "connection",
            "upgrade",
        ] {
            let e = err(&format!(
                r#"{{"providers":[{{"name":"a","kind":"openai","base_url":"https://x","headers":{{"{name}":"1"}}}}]}}"#
            ));
            assert_eq!(e.field(), "providers[0].headers", "{name}");
            assert!(e.to_string().contains(&name.to_ascii_lowercase()), "{e}");
        }
    }

    #[test]
    fn debug_prints_no_header_value_and_no_url_secret() {
        let json = r#"{"providers":[{"name":"a","kind":"openai",
            "base_url":"https://user:hunter2@x.test/v1?api-version=1&key=qk-secret",
            "api_key":"sk-secret","headers":{"x-goog-api-key":"gk-secret","OpenAI-Organization":"org-1"}}]}"#;
        let c = RouterConfig::from_json(json.as_bytes()).unwrap();
        let debug = format!("{c:?} {:?}", c.providers[0]);
        for secret in ["hunter2", "qk-secret", "sk-secret", "gk-secret", "org-1"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("x.test/v1"), "{debug}");
        assert!(debug.contains("x-goog-api-key"), "{debug}");
    }

    #[test]
    fn env_keys_resolve_or_name_the_variable() {
        let json = r#"{"providers":[{"name":"a","kind":"openai","base_url":"https://x","api_key_env":"K"}]}"#;
        let mut c = RouterConfig::from_json(json.as_bytes()).unwrap();
        let e = c.clone().resolve_api_keys(|_| None).unwrap_err();
        assert!(e.to_string().contains("\"K\""));
        c.resolve_api_keys(|v| (v == "K").then(|| "sk-1".to_owned()))
            .unwrap();
        assert_eq!(c.providers[0].api_key.as_ref().unwrap().expose(), "sk-1");
    }

    #[test]
    fn defaults() {
        let c = RouterConfig::from_json(
            format!(
                r#"{{"providers":[{P},{P2}],"policy":"hedged"}}"#,
                P2 = P.replace("\"a\"", "\"b\"")
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(c.effective_hedge_k(), 2);
        assert_eq!(c.effective_max_attempts(), 2);
        assert_eq!(c.providers[0].weight, 1);
    }
}
