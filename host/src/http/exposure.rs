//! Who may reach a server that has no tokens.
//!
//! Without tokens there is no auth, and the server listens on loopback
//! only. Loopback is not out of reach of a browser on the same machine,
//! though: any web page can make it send requests there, and a page whose
//! DNS name is made to resolve to 127.0.0.1 (DNS rebinding) can even read
//! the answers. So, in that mode only:
//!
//! - the `Host` must name loopback (`localhost`, `127.0.0.1`, `[::1]`, any
//!   port): a rebound name is refused with 421;
//! - an `Origin` header, present only on a browser's cross-origin and
//!   non-GET requests, must be a loopback origin: a page elsewhere is
//!   refused with 403.
//!
//! `/healthz` and `/readyz` are exempt (they carry nothing worth taking,
//! and a sidecar or exec probe may address the pod by IP). JSON and policy
//! routes also require their `Content-Type`, in every mode (see
//! `http.rs`): a browser cannot send `application/json` or
//! `application/wasm` to another origin without a CORS preflight, which
//! this server never grants.
//!
//! With tokens, every route needs a bearer token, which a browser never
//! attaches on its own, and the server may listen beyond loopback, where
//! probes and proxies address it by pod IP or service name: no `Host` or
//! `Origin` check applies.

use std::net::IpAddr;

use warp::host::Authority;

use super::errors::{shown, RequestError};

/// Check a request's `Host` (from the header or an absolute URI) and
/// `Origin` for a server without tokens.
pub fn check_loopback(host: Option<&Authority>, origin: Option<&str>) -> Result<(), RequestError> {
    let host = host.ok_or(RequestError::NoHost)?;
    if !is_loopback_name(host.host()) {
        return Err(RequestError::ForeignHost(shown(host.as_str())));
    }
    if let Some(origin) = origin {
        if !is_loopback_origin(origin) {
            return Err(RequestError::ForeignOrigin(shown(origin)));
        }
    }
    Ok(())
}

/// `localhost` or a loopback address (`127.0.0.0/8`, `::1`, IPv6 in
/// brackets as in a URL).
fn is_loopback_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let ip = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ip.parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// `http://` or `https://` and a loopback host, any port (`null`, the
/// origin of sandboxed frames and local files, is not loopback).
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    rest.parse::<Authority>()
        .is_ok_and(|a| a.as_str() == rest && is_loopback_name(a.host()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Authority {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_hosts_any_port() {
        for h in [
            "localhost",
            "LocalHost:8080",
            "localhost.:1",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.1.2.3:9",
            "[::1]",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(check_loopback(Some(&host(h)), None).is_ok(), "{h}");
        }
    }

    #[test]
    fn other_hosts_are_refused() {
        for h in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.5:8080",
            "0.0.0.0",
            "[::]:8080",
            "[fe80::1]",
        ] {
            let err = check_loopback(Some(&host(h)), None).unwrap_err();
            assert!(matches!(err, RequestError::ForeignHost(_)), "{h}: {err}");
            assert!(err.to_string().contains(&format!("`{h}`")), "{err}");
        }
        assert!(matches!(
            check_loopback(None, None),
            Err(RequestError::NoHost)
        ));
    }

    #[test]
    fn only_loopback_origins() {
        let h = host("localhost:8080");
        for o in [
            "http://localhost:8080",
            "http://127.0.0.1",
            "https://[::1]:3000",
        ] {
            assert!(check_loopback(Some(&h), Some(o)).is_ok(), "{o}");
        }
        for o in [
            "http://evil.example",
            "https://evil.example:8080",
            "null",
            "file://",
            "http://localhost.evil.example",
            "http://localhost@evil.example",
            "http://evil.example/localhost",
            "",
        ] {
            let err = check_loopback(Some(&h), Some(o)).unwrap_err();
            assert!(matches!(err, RequestError::ForeignOrigin(_)), "{o}: {err}");
        }
    }
}
