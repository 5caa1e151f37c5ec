//! Which proxy a router's connections go through, decided once per router from its config and
//! (unless `trust_env` is false) the environment, as curl, httpx and the official SDKs read it.
//! Both transports ask [`Proxies::for_target`]: reqwest's through a custom proxy, the Python
//! binding's own before it connects. Core reads no environment; this is the one place that does.
//!
//! - `proxy` (config): every provider goes through it; the environment is not read.
//! - else `http_proxy` / `HTTP_PROXY` for `http://` providers, `https_proxy` / `HTTPS_PROXY` for
//!   `https://` ones, `all_proxy` / `ALL_PROXY` for both when those are unset; the lower-case
//!   name wins. `HTTP_PROXY` is ignored under CGI (`REQUEST_METHOD` set: "httpoxy"), as curl,
//!   urllib and reqwest do. A value without a scheme is `http://`.
//! - `no_proxy` / `NO_PROXY`: comma-separated hosts that go direct: `*` (all), a domain (itself
//!   and its subdomains; a leading `.` or `*.` is the same), an IP address, or an IP network
//!   (`10.0.0.0/8`).
//!
//! Only `http://` proxies are supported (requests to `https://` providers are tunnelled with
//! `CONNECT`, TLS end to end). Credentials in a proxy URL (`http://user:pass@proxy:3128`) are
//! sent as `Proxy-Authorization: Basic` and never printed: not in an error, nor in `Debug`.

use f3dx_router_core::ConfigError;
use http::HeaderValue;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// One forward proxy: where it listens, and the credentials to send it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    host: String,
    port: u16,
    authorization: Option<HeaderValue>,
    /// The URL as configured, credentials included: for reqwest only.
    url: String,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.authorization.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Proxy {
    /// Parses `http://[user[:password]@]host[:port][/]`. `None` for anything else: the caller
    /// names the setting, never the value (it may hold a password).
    fn parse(url: &str) -> Option<Proxy> {
        let rest = url.strip_prefix("http://")?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, rest),
        };
        let authority: http::uri::Authority = hostport.parse().ok()?;
        if authority.as_str().contains(['/', '?', '#']) || authority.host().is_empty() {
            return None;
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = match authority.port() {
            Some(port) => port.as_u16(),
            None if hostport.ends_with(':') => return None,
            None => 80,
        };
        let authorization = match userinfo {
            None => None,
            Some(userinfo) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let credentials =
                    format!("{}:{}", percent_decode(user)?, percent_decode(password)?);
                let mut value =
                    HeaderValue::try_from(format!("Basic {}", base64(credentials.as_bytes())))
                        .ok()?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Some(Proxy {
            host,
            port,
            authorization,
            url: url.to_owned(),
        })
    }

    /// The proxy's host name or IP address (an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port (80 when the URL names none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `Basic ...` for `Proxy-Authorization`, marked sensitive; `None` without credentials.
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }
}

/// The proxies of one router. The default goes direct everywhere.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    http: Option<Arc<Proxy>>,
    https: Option<Arc<Proxy>>,
    no_proxy: NoProxy,
}

impl Proxies {
    /// The config's `proxy` for every provider; else, when `trust_env`, the environment's as
    /// `env` reads it (`std::env::var`, in [`Proxies::from_env`]). A value that is not an
    /// `http://` URL is a [`ConfigError`] naming the field or the variable, never the value.
    pub fn resolve(
        proxy: Option<&str>,
        trust_env: bool,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Proxies, ConfigError> {
        if let Some(url) = proxy {
            let proxy = Arc::new(Proxy::parse(url).ok_or_else(|| invalid("proxy"))?);
            return Ok(Proxies {
                http: Some(proxy.clone()),
                https: Some(proxy),
                no_proxy: NoProxy::default(),
            });
        }
        if !trust_env {
            return Ok(Proxies::default());
        }
        // Lower case first; an empty value counts as unset.
        let var = |name: &str| -> Option<(String, String)> {
            [name.to_ascii_lowercase(), name.to_owned()]
                .into_iter()
                .filter(|n| !(n == "HTTP_PROXY" && env("REQUEST_METHOD").is_some()))
                .find_map(|n| Some(env(&n).filter(|v| !v.trim().is_empty())?).map(|v| (n, v)))
        };
        let from = |name: &str| -> Result<Option<Arc<Proxy>>, ConfigError> {
            let Some((name, value)) = var(name).or_else(|| var("ALL_PROXY")) else {
                return Ok(None);
            };
            let value = value.trim();
            let url = if value.contains("://") {
                value.to_owned()
            } else {
                format!("http://{value}")
            };
            let proxy = Proxy::parse(&url).ok_or_else(|| invalid(&name))?;
            Ok(Some(Arc::new(proxy)))
        };
        Ok(Proxies {
            http: from("HTTP_PROXY")?,
            https: from("HTTPS_PROXY")?,
            no_proxy: NoProxy::parse(&var("NO_PROXY").map(|(_, v)| v).unwrap_or_default()),
        })
    }

    /// [`Proxies::resolve`] with the process environment.
    pub fn from_env(proxy: Option<&str>, trust_env: bool) -> Result<Proxies, ConfigError> {
        Self::resolve(proxy, trust_env, |name| std::env::var(name).ok())
    }

    /// Whether every provider goes direct (nothing to look up per connection).
    pub fn is_direct(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy a connection to `host` (a name or an IP address, IPv6 with or without
    /// brackets) over `https` or plain HTTP goes through; `None` to go direct.
    pub fn for_target(&self, https: bool, host: &str) -> Option<&Arc<Proxy>> {
        let proxy = if https { &self.https } else { &self.http };
        let proxy = proxy.as_ref()?;
        (!self.no_proxy.bypasses(host)).then_some(proxy)
    }

    /// The same decisions as a reqwest proxy (which takes the credentials from the URL and
    /// sends them as `Proxy-Authorization`); `None` to go direct everywhere.
    pub(crate) fn reqwest_proxy(&self) -> Option<reqwest::Proxy> {
        if self.is_direct() {
            return None;
        }
        let proxies = self.clone();
        Some(reqwest::Proxy::custom(move |url| {
            let proxy = proxies.for_target(url.scheme() == "https", url.host_str()?)?;
            Some(proxy.url.clone())
        }))
    }
}

fn invalid(field: &str) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        // The value is not echoed: it may hold a password.
        message: "must be an http:// proxy URL (http://[user:password@]host[:port])".to_owned(),
    }
}

/// Hosts that go direct (`NO_PROXY`).
#[derive(Debug, Clone, Default)]
struct NoProxy {
    all: bool,
    domains: Vec<String>,
    networks: Vec<(IpAddr, u8)>,
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                no_proxy.all = true;
                continue;
            }
            let bare = entry.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>() {
                no_proxy
                    .networks
                    .push((ip, if ip.is_ipv4() { 32 } else { 128 }));
            } else if let Some((ip, bits)) = entry.split_once('/')
                && let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>())
            {
                no_proxy.networks.push((ip, bits));
            } else {
                let domain = entry.trim_start_matches('*').trim_start_matches('.');
                no_proxy.domains.push(domain.to_ascii_lowercase());
            }
        }
        no_proxy
    }

    fn bypasses(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self
                .networks
                .iter()
                .any(|&(net, bits)| in_network(ip, net, bits));
        }
        let host = host.trim_end_matches('.');
        self.domains.iter().any(|d| {
            host.len() >= d.len()
                && host[host.len() - d.len()..].eq_ignore_ascii_case(d)
                && (host.len() == d.len() || host.as_bytes()[host.len() - d.len() - 1] == b'.')
        })
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn target(p: &Proxies, https: bool, host: &str) -> Option<(String, u16)> {
        p.for_target(https, host)
            .map(|p| (p.host().to_owned(), p.port()))
    }

    #[test]
    fn the_environment_is_read_as_curl_and_httpx_read_it() {
        let p = Proxies::resolve(
            None,
            true,
            env(&[
                ("HTTP_PROXY", "http://upper:1"),
                ("http_proxy", "lower:2"),
                ("ALL_PROXY", "http://all:3"),
                ("NO_PROXY", "internal.example, .corp,10.0.0.0/8,::1"),
            ]),
        )
        .unwrap();
        assert_eq!(
            target(&p, false, "api.openai.com"),
            Some(("lower".into(), 2))
        );
        assert_eq!(target(&p, true, "api.openai.com"), Some(("all".into(), 3)));
        for direct in [
            "internal.example",
            "a.internal.example",
            "x.corp",
            "10.1.2.3",
            "[::1]",
        ] {
            assert_eq!(target(&p, true, direct), None, "{direct}");
        }
        assert!(target(&p, true, "notinternal.example").is_some());
        assert!(target(&p, true, "11.0.0.1").is_some());
    }

    #[test]
    fn explicit_proxy_wins_and_trust_env_false_ignores_the_environment() {
        let vars = env(&[("HTTPS_PROXY", "http://env:1"), ("NO_PROXY", "*")]);
        let p = Proxies::resolve(Some("http://explicit:8080"), true, &vars).unwrap();
        assert_eq!(target(&p, true, "h"), Some(("explicit".into(), 8080)));
        assert!(Proxies::resolve(None, false, &vars).unwrap().is_direct());
        let all = Proxies::resolve(None, true, &vars).unwrap();
        assert_eq!(target(&all, true, "h"), None);
    }

    #[test]
    fn httpoxy_an_upper_case_http_proxy_is_ignored_under_cgi() {
        let p = Proxies::resolve(
            None,
            true,
            env(&[("HTTP_PROXY", "http://evil:1"), ("REQUEST_METHOD", "GET")]),
        )
        .unwrap();
        assert!(p.is_direct());
    }

    #[test]
    fn credentials_become_basic_auth_and_are_never_printed() {
        let p =
            Proxies::resolve(Some("http://us%3Aer:p%40ss@proxy:3128/"), true, env(&[])).unwrap();
        let proxy = p.for_target(true, "h").unwrap();
        // base64("us:er:p@ss")
        assert_eq!(proxy.authorization().unwrap(), "Basic dXM6ZXI6cEBzcw==");
        assert!(proxy.authorization().unwrap().is_sensitive());
        let printed = format!("{p:?}");
        assert!(
            !printed.contains("p%40ss") && !printed.contains("dXM6"),
            "{printed}"
        );
    }

    #[test]
    fn a_bad_value_names_its_source_never_the_value() {
        let e = Proxies::resolve(Some("socks5://u:secret@h:1"), true, env(&[])).unwrap_err();
        assert_eq!(e.field(), "proxy");
        assert!(!e.to_string().contains("secret"));
        let e = Proxies::resolve(None, true, env(&[("https_proxy", "socks5://u:secret@h:1")]))
            .unwrap_err();
        assert_eq!(e.field(), "https_proxy");
        assert!(!e.to_string().contains("secret"));
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
