//! Connecting to a host with several addresses as RFC 8305 ("Happy Eyeballs v2") does, for a
//! transport that connects itself (the Python binding's; reqwest's connector already does this).
//! Addresses alternate between families, starting with the resolver's first; each attempt has
//! the whole connect timeout to itself, and the next starts [`ATTEMPT_DELAY`] after the last
//! one began, or at once when it fails. The first to connect wins; the others are dropped.

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// RFC 8305's recommended "Connection Attempt Delay".
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// The first connection `connect` makes to any of `addrs`, each attempt bounded by `timeout`
/// (a timeout is an `io::ErrorKind::TimedOut` error); the last error if none connects.
pub async fn connect_first<T, F, Fut>(
    addrs: Vec<SocketAddr>,
    timeout: Duration,
    connect: F,
) -> io::Result<T>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let mut pending = interleave(addrs).into_iter();
    let attempt = |addr| {
        let connecting = connect(addr);
        async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result,
                Err(_) => Err(io::Error::from(io::ErrorKind::TimedOut)),
            }
        }
    };
    let mut racing = FuturesUnordered::new();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    let Some(first) = pending.next() else {
        return Err(last);
    };
    racing.push(attempt(first));
    let next_start = tokio::time::sleep(ATTEMPT_DELAY);
    tokio::pin!(next_start);
    loop {
        let more = pending.len() > 0;
        tokio::select! {
            Some(result) = racing.next() => match result {
                Ok(connection) => return Ok(connection),
                Err(e) => {
                    last = e;
                    if let Some(addr) = pending.next() {
                        racing.push(attempt(addr));
                        next_start.as_mut().reset(tokio::time::Instant::now() + ATTEMPT_DELAY);
                    } else if racing.is_empty() {
                        return Err(last);
                    }
                }
            },
            () = &mut next_start, if more => {
                if let Some(addr) = pending.next() {
                    racing.push(attempt(addr));
                }
                next_start.as_mut().reset(tokio::time::Instant::now() + ATTEMPT_DELAY);
            }
        }
    }
}

/// `addrs` alternating between IPv6 and IPv4, starting with the family of the first.
fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return addrs;
    };
    let first_v6 = first.is_ipv6();
    let (mut preferred, mut other): (Vec<_>, Vec<_>) =
        addrs.into_iter().partition(|a| a.is_ipv6() == first_v6);
    preferred.reverse();
    other.reverse();
    let mut out = Vec::with_capacity(preferred.len() + other.len());
    while let Some(addr) = preferred.pop() {
        out.push(addr);
        out.extend(other.pop());
    }
    out.extend(other.into_iter().rev());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::pending;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn families_alternate_from_the_first() {
        let got = interleave(vec![
            addr("[::1]:1"),
            addr("[::2]:1"),
            addr("[::3]:1"),
            addr("10.0.0.1:1"),
        ]);
        let want = ["[::1]:1", "10.0.0.1:1", "[::2]:1", "[::3]:1"].map(addr);
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_dead_first_address_does_not_hold_the_connection() {
        // The first address never answers (a blackholed IPv6 route); the second does at once.
        let dead = addr("[::1]:9");
        let alive = addr("127.0.0.1:9");
        let connect = |a: SocketAddr| async move {
            if a == dead {
                pending::<()>().await;
            }
            Ok(a)
        };
        let got = tokio::time::timeout(
            Duration::from_secs(5),
            connect_first(vec![dead, alive], Duration::from_secs(30), connect),
        )
        .await
        .expect("the second address was not tried while the first hung");
        assert_eq!(got.unwrap(), alive);
    }

    #[tokio::test]
    async fn each_address_has_the_whole_timeout_and_the_last_error_is_returned() {
        let connect = |a: SocketAddr| async move {
            if a.port() == 1 {
                pending::<()>().await;
            }
            Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionRefused))
        };
        let timeout = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let got = connect_first(
            vec![addr("127.0.0.1:1"), addr("127.0.0.2:1")],
            timeout,
            connect,
        )
        .await
        .unwrap_err();
        assert_eq!(got.kind(), io::ErrorKind::TimedOut);
        // The second started 250 ms after the first and had its own 300 ms.
        assert!(started.elapsed() >= ATTEMPT_DELAY + timeout);
    }
}
