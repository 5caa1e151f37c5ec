//! A real forward proxy on loopback, for the drivers' proxy tests: absolute-form requests
//! (`POST http://host:port/path`) are forwarded to their origin, one upstream connection each,
//! and `CONNECT host:port` is tunnelled byte for byte (TLS inside stays end to end). It counts
//! what passed through and, given the `Proxy-Authorization` value it expects, refuses anything
//! else with 407. Also the `f3dx-test-proxy` binary, whose `GET /_stats` (origin-form, to the
//! proxy itself) answers [`ProxyStats`] as JSON.

use bytes::Bytes;
use http::header::{HOST, PROXY_AUTHORIZATION};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

type Body = BoxBody<Bytes, hyper::Error>;

/// What went through the proxy since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub connections: u64,
    /// Absolute-form requests forwarded.
    pub forwarded: u64,
    /// `CONNECT` tunnels opened.
    pub tunnels: u64,
    /// Requests refused with 407 (missing or wrong credentials).
    pub refused: u64,
    /// The `host:port` of every forwarded request and tunnel, in order.
    pub targets: Vec<String>,
}

/// A running proxy; it stops when dropped.
pub struct ForwardProxy {
    addr: SocketAddr,
    stats: Arc<Mutex<ProxyStats>>,
    task: tokio::task::JoinHandle<()>,
}

impl ForwardProxy {
    /// Listens on an ephemeral loopback port, on the current runtime. With `authorization`
    /// (the whole `Proxy-Authorization` value, e.g. `Basic dXNlcjpwYXNz`), requests without it
    /// are refused.
    pub async fn start(authorization: Option<String>) -> std::io::Result<ForwardProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Mutex::new(ProxyStats::default()));
        let shared = Arc::new(Shared {
            stats: stats.clone(),
            authorization,
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.count(|s| s.connections += 1);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| serve(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(ForwardProxy { addr, stats, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> ProxyStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    stats: Arc<Mutex<ProxyStats>>,
    authorization: Option<String>,
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut ProxyStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
    *response.status_mut() = status;
    response
}

async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, hyper::Error> {
    // Origin-form: a request to the proxy itself.
    if req.uri().authority().is_none() && req.method() != Method::CONNECT {
        let stats = shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        return Ok(match req.uri().path() {
            "/_stats" => text(
                StatusCode::OK,
                serde_json::to_vec(&stats).unwrap_or_default(),
            ),
            _ => text(StatusCode::BAD_REQUEST, "not a proxy request"),
        });
    }
    if let Some(expected) = &shared.authorization {
        let given = req.headers().get(PROXY_AUTHORIZATION);
        if given.is_none_or(|v| v.as_bytes() != expected.as_bytes()) {
            shared.count(|s| s.refused += 1);
            let mut response = text(StatusCode::PROXY_AUTHENTICATION_REQUIRED, "");
            response.headers_mut().insert(
                "proxy-authenticate",
                http::HeaderValue::from_static("Basic realm=\"test\""),
            );
            return Ok(response);
        }
    }
    let Some(target) = req.uri().authority().map(|a| a.to_string()) else {
        return Ok(text(StatusCode::BAD_REQUEST, "no target"));
    };
    if req.method() == Method::CONNECT {
        let Ok(upstream) = TcpStream::connect(&target).await else {
            return Ok(text(StatusCode::BAD_GATEWAY, ""));
        };
        shared.count(|s| {
            s.tunnels += 1;
            s.targets.push(target);
        });
        tokio::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(req).await {
                let mut client = TokioIo::new(upgraded);
                let mut upstream = upstream;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
        return Ok(text(StatusCode::OK, ""));
    }
    forward(&shared, target, req).await
}

/// An absolute-form request, sent in origin form over a new connection to its origin.
async fn forward(
    shared: &Shared,
    target: String,
    req: Request<Incoming>,
) -> Result<Response<Body>, hyper::Error> {
    let Ok(upstream) = TcpStream::connect(&target).await else {
        return Ok(text(StatusCode::BAD_GATEWAY, ""));
    };
    let Ok((mut sender, conn)) =
        hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await
    else {
        return Ok(text(StatusCode::BAD_GATEWAY, ""));
    };
    tokio::spawn(conn);
    shared.count(|s| {
        s.forwarded += 1;
        s.targets.push(target.clone());
    });
    let (mut parts, body) = req.into_parts();
    parts.headers.remove(PROXY_AUTHORIZATION);
    if let Ok(host) = http::HeaderValue::from_str(&target) {
        parts.headers.entry(HOST).or_insert(host);
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = path.parse().unwrap_or_default();
    let response = sender
        .send_request(Request::from_parts(parts, body))
        .await?;
    Ok(response.map(BodyExt::boxed))
}
