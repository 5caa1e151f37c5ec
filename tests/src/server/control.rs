//! The JSON control API on the plain listener, so tests in other languages (pytest) and the
//! benchmark script can script and inspect the `f3dx-mock-provider` binary over HTTP. The routes
//! are listed in the [module docs](super).

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::{Inner, Reply, Step, json_response};

/// A step or a list of them (`POST /_control/{provider}/script` takes either).
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Step>),
    One(Box<Step>),
}

#[derive(Deserialize)]
struct Recording {
    enabled: bool,
}

/// A control failure: status and message, sent as `{"error": message}`.
type Failure = (StatusCode, String);

fn bad_request(e: impl std::fmt::Display) -> Failure {
    (StatusCode::BAD_REQUEST, e.to_string())
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid JSON: {e}")))
}

/// Serves `/_control/{rest}`.
pub(crate) async fn handle(inner: &Inner, req: Request<Incoming>, rest: &str) -> Reply {
    let method = req.method().clone();
    let result = match req.into_body().collect().await {
        Ok(body) => route(inner, &method, rest, &body.to_bytes()),
        Err(e) => Err(bad_request(e)),
    };
    match result {
        Ok(body) => json_response(StatusCode::OK, body),
        Err((status, message)) => {
            json_response(status, Bytes::from(json!({ "error": message }).to_string()))
        }
    }
}

fn route(inner: &Inner, method: &Method, rest: &str, body: &[u8]) -> Result<Bytes, Failure> {
    let value = match (method, rest) {
        (&Method::GET, "health") => json!({"ok": true}),
        (&Method::GET, "stats") => inner.stats(),
        (&Method::POST, "reset") => {
            inner.reset();
            json!({"ok": true})
        }
        (&Method::POST, "recording") => {
            let r: Recording = parse(body)?;
            inner
                .recording
                .store(r.enabled, std::sync::atomic::Ordering::Release);
            json!({"enabled": r.enabled})
        }
        (&Method::POST, "script") => {
            let all: BTreeMap<String, Vec<Step>> = parse(body)?;
            let mut queued = serde_json::Map::new();
            for (provider, steps) in all {
                let n = inner.script(&provider, steps).map_err(bad_request)?;
                queued.insert(provider, json!(n));
            }
            json!({ "queued": queued })
        }
        _ => match rest.rsplit_once('/') {
            Some((provider, "script")) if method == Method::POST => {
                let steps = match parse::<OneOrMany>(body)? {
                    OneOrMany::Many(v) => v,
                    OneOrMany::One(s) => vec![*s],
                };
                let n = inner.script(provider, steps).map_err(bad_request)?;
                json!({ "queued": n })
            }
            Some((provider, "default")) if method == Method::POST => {
                inner
                    .set_default(provider, parse(body)?)
                    .map_err(bad_request)?;
                json!({"ok": true})
            }
            Some((provider, "received")) if method == Method::GET => {
                let received = inner.received(provider);
                return Ok(Bytes::from(
                    serde_json::to_vec(&received).expect("records serialize"),
                ));
            }
            _ => {
                return Err((
                    StatusCode::NOT_FOUND,
                    format!("no control route {method} /_control/{rest}"),
                ));
            }
        },
    };
    Ok(Bytes::from(value.to_string()))
}
