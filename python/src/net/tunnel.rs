//! A `CONNECT` tunnel through a forward proxy, for an `https://` provider: TLS then runs inside
//! it, end to end with the provider. The proxy's credentials go as `Proxy-Authorization`; they
//! never reach an error (a refusal is reported as its kind only).

use super::socket::Socket;
use f3dx_router_core::TransportErrorKind;
use f3dx_router_tokio::proxy::Proxy;
use http::uri::Authority;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest response head a proxy may answer `CONNECT` with.
const MAX_HEAD: usize = 8 * 1024;

/// Asks `proxy` (which `socket` is connected to) for a tunnel to `target`. A proxy that refuses
/// (407, 403, 502...) is `Refused`; one that breaks the exchange, a reset.
pub(crate) async fn open(
    socket: &mut Socket,
    target: &Authority,
    proxy: &Proxy,
) -> Result<(), TransportErrorKind> {
    let port = target.port_u16().unwrap_or(443);
    let host = target.host();
    let mut head =
        format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n").into_bytes();
    if let Some(auth) = proxy.authorization() {
        head.extend_from_slice(b"Proxy-Authorization: ");
        head.extend_from_slice(auth.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let broken = |_| TransportErrorKind::Reset;
    socket.write_all(&head).await.map_err(broken)?;
    // The provider speaks only after our TLS hello: nothing can follow the head yet, so reading
    // in chunks cannot swallow the tunnel's first bytes.
    let mut response = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    while !response.ends_with(b"\r\n\r\n") {
        let n = socket.read(&mut buf).await.map_err(broken)?;
        if n == 0 || response.len() + n > MAX_HEAD {
            return Err(TransportErrorKind::Reset);
        }
        response.extend_from_slice(&buf[..n]);
    }
    // `HTTP/1.1 200 Connection established`
    let status = response
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|code| std::str::from_utf8(code).ok()?.parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(()),
        Some(_) => Err(TransportErrorKind::Refused),
        None => Err(TransportErrorKind::Other),
    }
}
