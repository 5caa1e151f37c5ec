//! The one scrubber: cuts the secrets a router was configured with out of text that came back
//! from a provider (an error body that echoes the key, an error event quoting a header).
//!
//! Errors the router builds itself never contain a secret in the first place; this is for what a
//! provider (or a proxy) says. The machine scrubs every outcome it completes, so the Rust API, the
//! CLI and the Python binding all hand out scrubbed bodies and reasons; the binding also scrubs
//! its own messages with the same [`Scrubber`].
//!
//! Whole occurrences only: a secret is replaced where it is not part of a longer word, so the
//! placeholder keys local servers are given (`EMPTY` for vLLM, `none`, `ollama`) never mangle
//! `EMPTY_RESPONSE`, `nonexistent` or `NON-EMPTY`. A word character is an ASCII letter, digit, `_`
//! or `-` (the characters keys are made of); the check applies at an edge of the secret only where
//! the secret itself has a word character there.

use crate::config::RouterConfig;
use crate::outcome::{AttemptOutcome, AttemptRecord, RouteError, Routed};
use crate::secret::is_sensitive_header;
use bytes::Bytes;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// What a secret becomes.
pub const PLACEHOLDER: &str = "***";

/// The secrets of one configuration, longest first (so a key that contains another is cut whole).
#[derive(Clone, Default)]
pub struct Scrubber {
    secrets: Vec<Box<[u8]>>,
}

/// Never prints a secret, only how many there are.
impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scrubber({} secrets)", self.secrets.len())
    }
}

impl Scrubber {
    /// A scrubber for these secrets (empty ones are ignored).
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut secrets: Vec<Box<[u8]>> = secrets
            .into_iter()
            .filter(|s| !s.as_ref().is_empty())
            .map(|s| s.as_ref().as_bytes().into())
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Scrubber { secrets }
    }

    /// Every secret a parsed config holds: API keys, the values of sensitive `headers`, the
    /// password and sensitive query values of each `base_url`, the proxy's credentials.
    pub fn from_config(config: &RouterConfig) -> Self {
        let mut found = Vec::new();
        for p in &config.providers {
            if let Some(key) = &p.api_key {
                found.push(key.expose().to_owned());
            }
            for (name, value) in &p.headers {
                if is_sensitive_header(name) {
                    found.push(value.clone());
                }
            }
            url_secrets(&p.base_url, &mut found);
        }
        if let Some(proxy) = config.proxy_url() {
            url_secrets(proxy, &mut found);
        }
        Scrubber::new(found)
    }

    /// The same secrets from config JSON that may not be valid (so that even the error for an
    /// invalid config can be scrubbed), plus the keys that `api_key_env` names, read with
    /// `lookup`. Whatever is not where a config keeps a secret is ignored.
    pub fn from_config_json(json: &[u8], lookup: impl Fn(&str) -> Option<String>) -> Self {
        let Ok(config) = serde_json::from_slice::<Value>(json) else {
            return Scrubber::default();
        };
        let mut found = Vec::new();
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        for p in config["providers"].as_array().into_iter().flatten() {
            found.extend(text(p.get("api_key")));
            if let Some(var) = p.get("api_key_env").and_then(Value::as_str) {
                found.extend(lookup(var));
            }
            for (name, value) in p["headers"].as_object().into_iter().flatten() {
                if is_sensitive_header(name) {
                    found.extend(text(Some(value)));
                }
            }
            if let Some(url) = p.get("base_url").and_then(Value::as_str) {
                url_secrets(url, &mut found);
            }
        }
        if let Some(proxy) = config.get("proxy").and_then(Value::as_str) {
            url_secrets(proxy, &mut found);
        }
        Scrubber::new(found)
    }

    /// The secrets of `other` too.
    pub fn merged(mut self, other: &Scrubber) -> Self {
        self.secrets.extend(other.secrets.iter().cloned());
        self.secrets
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.secrets.dedup();
        self
    }

    /// Whether there is nothing to cut.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every whole occurrence of a secret replaced by [`PLACEHOLDER`]; borrowed when
    /// there was none.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.scrub_slice(text.as_bytes()) {
            // Only whole UTF-8 secrets were replaced by ASCII: still UTF-8.
            Some(bytes) => Cow::Owned(
                String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
            None => Cow::Borrowed(text),
        }
    }

    /// A body (any bytes, UTF-8 or not) with every whole occurrence of a secret replaced; the
    /// same `Bytes` when there was none.
    pub fn scrub_bytes(&self, body: Bytes) -> Bytes {
        match self.scrub_slice(&body) {
            Some(scrubbed) => Bytes::from(scrubbed),
            None => body,
        }
    }

    /// Scrubs what a request ended with: a hard failure's body, an interruption's reason and the
    /// reasons in every attempt record (provider text all of them).
    pub fn scrub_outcome(&self, outcome: &mut Result<Routed, RouteError>) {
        if self.is_empty() {
            return;
        }
        match outcome {
            Ok(routed) => self.scrub_records(&mut routed.attempts),
            Err(error) => {
                match error {
                    RouteError::HardFailure { body, .. } => {
                        *body = self.scrub_bytes(std::mem::take(body));
                    }
                    RouteError::StreamInterrupted { reason, .. } => self.scrub_string(reason),
                    _ => {}
                }
                self.scrub_records(error.attempts_mut());
            }
        }
    }

    fn scrub_records(&self, records: &mut [AttemptRecord]) {
        for record in records {
            match &mut record.outcome {
                AttemptOutcome::InvalidBody { reason, .. }
                | AttemptOutcome::StreamFailedBeforeCommit { reason }
                | AttemptOutcome::StreamInterrupted { reason } => self.scrub_string(reason),
                _ => {}
            }
        }
    }

    fn scrub_string(&self, text: &mut String) {
        if let Cow::Owned(scrubbed) = self.scrub(text) {
            *text = scrubbed;
        }
    }

    /// The scrubbed bytes, or None when no secret occurs whole.
    fn scrub_slice(&self, text: &[u8]) -> Option<Vec<u8>> {
        let mut current: Option<Vec<u8>> = None;
        for secret in &self.secrets {
            let haystack = current.as_deref().unwrap_or(text);
            if let Some(replaced) = replace_whole(haystack, secret) {
                current = Some(replaced);
            }
        }
        current
    }
}

/// `haystack` with every whole occurrence of `secret` replaced, or None if there is none.
fn replace_whole(haystack: &[u8], secret: &[u8]) -> Option<Vec<u8>> {
    let check_before = secret.first().is_some_and(|&b| is_word(b));
    let check_after = secret.last().is_some_and(|&b| is_word(b));
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    for at in memchr::memmem::find_iter(haystack, secret) {
        if at < copied {
            continue; // overlaps the previous replacement
        }
        let end = at + secret.len();
        let joined_before = check_before && at > 0 && is_word(haystack[at - 1]);
        let joined_after = check_after && end < haystack.len() && is_word(haystack[end]);
        let whole = !joined_before && !joined_after;
        if whole {
            let out = out.get_or_insert_with(|| Vec::with_capacity(haystack.len()));
            out.extend_from_slice(&haystack[copied..at]);
            out.extend_from_slice(PLACEHOLDER.as_bytes());
            copied = end;
        }
    }
    let mut out = out?;
    out.extend_from_slice(&haystack[copied..]);
    Some(out)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// The secrets a URL carries: its userinfo password (or a lone user, which some proxies take as
/// a token) and the values of query parameters with a sensitive name (`?key=`, `?api-key=`,
/// `?sig=`).
fn url_secrets(url: &str, found: &mut Vec<String>) {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    if let Some((userinfo, _)) = after_scheme[..authority_end].rsplit_once('@') {
        match userinfo.split_once(':') {
            Some((_, password)) => found.push(password.to_owned()),
            None => found.push(userinfo.to_owned()),
        }
    }
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    for pair in query.split('&') {
        if let Some((name, value)) = pair.split_once('=')
            && is_sensitive_query_param(name)
        {
            found.push(value.to_owned());
        }
    }
}

/// A query parameter that carries a credential (Gemini's `key`, Azure's `api-key`, a SAS `sig`).
fn is_sensitive_query_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    is_sensitive_header(&name) || matches!(name.as_str(), "sig" | "signature" | "code")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_occurrences_only() {
        let s = Scrubber::new(["EMPTY", "none"]);
        assert_eq!(
            s.scrub("EMPTY_RESPONSE from NON-EMPTY nonexistent none-such EMPTYish"),
            "EMPTY_RESPONSE from NON-EMPTY nonexistent none-such EMPTYish"
        );
        assert_eq!(
            s.scrub(r#"{"error":"bad key EMPTY","auth":"Bearer none."}"#),
            r#"{"error":"bad key ***","auth":"Bearer ***."}"#
        );
        assert!(matches!(s.scrub("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn longest_first_and_edges_that_are_not_word_characters() {
        let s = Scrubber::new(["sk-abc", "sk-abc-def", "+pad=="]);
        assert_eq!(
            s.scrub("sk-abc-def sk-abc sk-abcd x+pad==y"),
            "*** *** sk-abcd x***y"
        );
        assert_eq!(Scrubber::new([""; 3]).scrub("a"), "a");
        assert_eq!(format!("{s:?}"), "Scrubber(3 secrets)");
    }

    #[test]
    fn bodies_that_are_not_utf8() {
        let s = Scrubber::new(["sk-live-1"]);
        let body = Bytes::from_static(b"\xff\xfe key sk-live-1 \xff");
        assert_eq!(&s.scrub_bytes(body)[..], b"\xff\xfe key *** \xff");
        let clean = Bytes::from_static(b"fine");
        assert_eq!(s.scrub_bytes(clean.clone()).as_ptr(), clean.as_ptr());
    }

    #[test]
    fn every_place_a_config_keeps_a_secret() {
        let json = br#"{"providers":[{"name":"a","kind":"openai",
            "base_url":"https://u:hunter2@x.test/v1?api-version=1&key=qk-123",
            "api_key":"sk-1","api_key_env":"VAR",
            "headers":{"X-Goog-Api-Key":"gk-1","Cookie":"c=1","OpenAI-Organization":"org-1"}}],
            "proxy":"http://pu:ppw@proxy:3128"}"#;
        let s = Scrubber::from_config_json(json, |v| (v == "VAR").then(|| "ek-1".to_owned()));
        let text = "sk-1 ek-1 gk-1 c=1 hunter2 qk-123 ppw org-1 1";
        assert_eq!(s.scrub(text), "*** *** *** *** *** *** *** org-1 1");
        let parsed = RouterConfig::from_json(&json[..]).map(|c| Scrubber::from_config(&c));
        let parsed = parsed.expect("valid").merged(&Scrubber::new(["ek-1"]));
        assert_eq!(parsed.scrub(text), s.scrub(text));
        assert!(Scrubber::from_config_json(b"not json", |_| None).is_empty());
    }

    /// What a provider echoes back is scrubbed by the machine itself, so every driver and the CLI
    /// hand out the scrubbed text.
    mod machine {
        use crate::{
            Action, AttemptId, AttemptOutcome, ChatRequest, Input, RequestId, RouteError,
            RouterConfig, RouterMachine, Time,
        };
        use bytes::Bytes;

        const CONFIG: &str = r#"{"providers":[
            {"name":"a","kind":"openai","base_url":"https://a.test/v1","api_key":"sk-live-1"},
            {"name":"b","kind":"openai","base_url":"https://b.test/v1","api_key":"EMPTY",
             "headers":{"x-goog-api-key":"gk-live-2"}}]}"#;

        fn run(request: &str, answers: &[(u16, &str)]) -> Result<crate::Routed, RouteError> {
            let config = RouterConfig::from_json(CONFIG.as_bytes()).unwrap();
            let mut m = RouterMachine::new(config, 1).unwrap();
            let request = ChatRequest::from_json(request.to_owned()).unwrap();
            let id = RequestId(1);
            m.handle_input(Time::ZERO, Input::Request { id, request })
                .unwrap();
            let mut answers = answers.iter();
            loop {
                let mut send = None;
                while let Some(action) = m.poll_action() {
                    match action {
                        Action::Send { attempt, .. } => send = Some(attempt),
                        Action::Complete { outcome, .. } => return outcome,
                        _ => {}
                    }
                }
                let attempt: AttemptId = send.expect("a Send or a Complete");
                let (status, body) = answers.next().expect("an answer per attempt");
                let head = Input::ResponseHead {
                    attempt,
                    status: *status,
                    headers: http::HeaderMap::new(),
                };
                m.handle_input(Time::ZERO, head).unwrap();
                let chunk = Bytes::from(body.to_string());
                m.handle_input(Time::ZERO, Input::ResponseBody { attempt, chunk })
                    .unwrap();
                m.handle_input(Time::ZERO, Input::ResponseEnd { attempt })
                    .unwrap();
            }
        }

        #[test]
        fn a_hard_failure_body_that_echoes_the_key() {
            let body =
                r#"{"error":{"message":"Incorrect API key provided: sk-live-1. EMPTY_KEY"}}"#;
            let request = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
            let Err(RouteError::HardFailure { body, .. }) = run(request, &[(401, body)]) else {
                panic!("a hard failure");
            };
            assert_eq!(
                std::str::from_utf8(&body).unwrap(),
                r#"{"error":{"message":"Incorrect API key provided: ***. EMPTY_KEY"}}"#
            );
        }

        #[test]
        fn stream_error_events_that_quote_a_header_or_a_short_key() {
            let request =
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
            let a = "data: {\"error\":{\"message\":\"key sk-live-1 over quota\"}}\n\n";
            let b = "data: {\"error\":{\"message\":\"gk-live-2 and EMPTY are not keys\"}}\n\n";
            let Err(error) = run(request, &[(200, a), (200, b)]) else {
                panic!("every stream failed");
            };
            let text = format!("{error} {error:?}");
            for secret in ["sk-live-1", "gk-live-2", "EMPTY "] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            let reasons: Vec<_> = error
                .attempts()
                .iter()
                .map(|a| match &a.outcome {
                    AttemptOutcome::StreamFailedBeforeCommit { reason } => reason.as_str(),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert!(reasons[0].contains("key *** over quota"), "{reasons:?}");
            assert!(
                reasons[1].contains("*** and *** are not keys"),
                "{reasons:?}"
            );
        }
    }
}
