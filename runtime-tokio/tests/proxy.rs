//! The tokio driver through the test kit's real forward proxy: plain HTTP forwarded in absolute
//! form, TLS tunnelled with CONNECT, streams included, Basic credentials sent and never shown.
//! (How the environment is read is unit-tested in `proxy.rs` with an injected environment: a
//! test cannot set variables safely in a threaded process.)

use f3dx_router_core::{ChatRequest, RouteError, RouterConfig};
use f3dx_router_testkit::proxy::ForwardProxy;
use f3dx_router_testkit::server::MockServer;
use f3dx_router_tokio::Router;
use futures_util::StreamExt;
use serde_json::json;

fn request(stream: bool) -> ChatRequest {
    ChatRequest::from_value(json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }))
    .unwrap()
}

fn router(server: &MockServer, tls: bool, proxy: &str) -> Router {
    let base_url = if tls {
        server.https_base_url("a")
    } else {
        server.base_url("a")
    };
    let config = json!({
        "providers": [{"name": "a", "kind": "openai", "base_url": base_url, "api_key": "sk-test"}],
        "proxy": proxy,
    });
    let config = RouterConfig::from_json(config.to_string().as_bytes()).unwrap();
    Router::builder(config)
        .add_root_certificate_pem(&server.ca_pem())
        .build()
        .unwrap()
}

#[tokio::test]
async fn calls_and_streams_go_through_the_proxy_on_both_wires() {
    let server = MockServer::start().await;
    for tls in [false, true] {
        let proxy = ForwardProxy::start(None).await.unwrap();
        let router = router(&server, tls, &proxy.url());
        router.chat_completions(request(false)).await.unwrap();
        let mut stream = router.chat_completions_stream(request(true));
        let mut chunks = 0;
        while let Some(chunk) = stream.next().await {
            chunk.unwrap();
            chunks += 1;
        }
        assert!(chunks > 0);
        let stats = proxy.stats();
        let passed = if tls { stats.tunnels } else { stats.forwarded };
        assert!(passed >= 1, "tls {tls}: {stats:?}");
        let addr = if tls {
            server.https_addr()
        } else {
            server.http_addr()
        };
        assert!(
            stats
                .targets
                .iter()
                .all(|t| t.ends_with(&format!(":{}", addr.port())))
        );
    }
}

#[tokio::test]
async fn proxy_credentials_are_sent_and_never_shown() {
    let server = MockServer::start().await;
    // base64("user:s3cr3t-pw")
    let proxy = ForwardProxy::start(Some("Basic dXNlcjpzM2NyM3QtcHc=".to_owned()))
        .await
        .unwrap();
    let host = proxy.url().replace("http://", "");
    let good = router(&server, true, &format!("http://user:s3cr3t-pw@{host}"));
    good.chat_completions(request(false)).await.unwrap();
    assert_eq!(proxy.stats().tunnels, 1);

    let bad = router(&server, true, &format!("http://user:wr0ng-pw@{host}"));
    let error = bad.chat_completions(request(false)).await.unwrap_err();
    assert!(
        matches!(error, RouteError::AllProvidersFailed { .. }),
        "{error:?}"
    );
    let shown = format!("{error} {error:?} {bad:?}");
    assert!(
        !shown.contains("wr0ng") && !shown.contains("s3cr3t"),
        "{shown}"
    );
    assert_eq!(proxy.stats().refused, 1);
}
