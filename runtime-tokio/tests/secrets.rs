//! Secrets and URLs as a deployment writes them, through the tokio driver over loopback HTTP
//! against the mock provider: a `base_url` query string is sent after the endpoint path (Azure's
//! `?api-version=`), configured credential headers reach the provider, and what the provider
//! echoes back of them comes out of the Rust API as `***` (whole occurrences only).

use f3dx_router_core::{ChatRequest, RouteError, RouterConfig};
use f3dx_router_testkit::server::{MockServer, Step, reply_text};
use f3dx_router_tokio::Router;
use serde_json::{Value, json};

fn router(config: Value) -> Router {
    Router::new(RouterConfig::from_json(config.to_string().as_bytes()).expect("valid config"))
        .expect("router builds")
}

fn request() -> ChatRequest {
    ChatRequest::from_value(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .unwrap()
}

#[tokio::test]
async fn the_base_url_query_follows_the_endpoint_path() {
    let server = MockServer::start().await;
    let base_url = format!("{}?api-version=2024-10-21", server.base_url("a"));
    let r = router(json!({"providers": [
        {"name": "a", "kind": "openai", "base_url": base_url, "api_key": "k"}]}));
    let routed = r.chat_completions(request()).await.expect("served");
    let body: Value = serde_json::from_slice(&routed.body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], reply_text("a"));
    let seen = server.received("a");
    assert_eq!(
        seen[0].path,
        "/a/v1/chat/completions?api-version=2024-10-21"
    );
}

#[tokio::test]
async fn a_hard_failure_body_comes_back_without_the_secrets_it_echoes() {
    let server = MockServer::start().await;
    let echo = json!({"error": {"message":
        "key EMPTY, api-key az-SECRET-1 and cookie c-SECRET-2 rejected; EMPTY_RESPONSE"}});
    server.script("a", vec![Step::status(401).json(echo)]);
    let r = router(json!({"providers": [
        {"name": "a", "kind": "openai", "base_url": server.base_url("a"), "api_key": "EMPTY",
         "headers": {"api-key": "az-SECRET-1", "Cookie": "c-SECRET-2"}}]}));
    let error = r.chat_completions(request()).await.expect_err("a 401");
    let RouteError::HardFailure { status, body, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*status, 401);
    let body = std::str::from_utf8(body).unwrap();
    assert!(
        body.contains("key ***, api-key *** and cookie *** rejected; EMPTY_RESPONSE"),
        "{body}"
    );
    assert!(!format!("{error} {error:?} {r:?}").contains("SECRET"));
    let seen = &server.received("a")[0].headers;
    assert_eq!(seen["api-key"], "az-SECRET-1");
    assert_eq!(seen["cookie"], "c-SECRET-2");
    assert_eq!(seen["authorization"], "Bearer EMPTY");
}
