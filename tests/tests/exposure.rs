//! What a web page can make a zero-config (no tokens, loopback) server do:
//! nothing. Requests are written byte for byte, as a browser would send
//! them (simple cross-origin POSTs, DNS-rebound `Host`s), and the store is
//! checked to hold nothing afterwards.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use verdict_e2e::{assert_error, exchange_exact, healthy_request, Options, Server};

/// A request with exactly these headers (no `Host` unless given).
fn send(
    s: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    exchange_exact(&s.base, req.as_bytes())
}

fn freeze() -> String {
    json!({"selector": {"environment": "production"}, "reason": "pwned", "until": "2030-01-01T00:00:00Z"})
        .to_string()
}

fn nothing_created(s: &Server) {
    assert_eq!(s.get_ok("/v1/freezes")["items"], json!([]));
    assert_eq!(s.get_ok("/v1/decisions")["items"], json!([]));
}

#[test]
fn a_web_page_cannot_create_a_freeze_or_a_decision() {
    let s = Server::start();
    let local = ("Host", "localhost:8080");
    // A page's `fetch`/form POST without preflight: text/plain, form
    // encoding, or no type at all. Refused before the body is read.
    for ctype in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        // A page on localhost itself (no `Origin` on a same-origin
        // request): the type refuses it.
        let mut headers = vec![local];
        headers.extend(ctype.map(|c| ("Content-Type", c)));
        let msg = assert_error(
            &send(&s, "POST", "/v1/freezes", &headers, &freeze()),
            415,
            "unsupported_media_type",
        );
        assert!(msg.contains("`Content-Type: application/json`"), "{msg}");
        assert_error(
            &send(
                &s,
                "POST",
                "/v1/decisions",
                &headers,
                &healthy_request("api", "prod").to_string(),
            ),
            415,
            "unsupported_media_type",
        );
        // A page elsewhere: its `Origin` refuses it first.
        headers.push(("Origin", "http://evil.example"));
        assert_error(
            &send(&s, "POST", "/v1/freezes", &headers, &freeze()),
            403,
            "foreign_origin",
        );
    }
    // DNS rebinding: the page's own name resolves to 127.0.0.1, so the
    // browser sends that name as `Host` (and may send any type it likes).
    for host in ["evil.example", "evil.example:8080", "10.0.0.7:8080"] {
        let msg = assert_error(
            &send(
                &s,
                "POST",
                "/v1/freezes",
                &[("Host", host), ("Content-Type", "application/json")],
                &freeze(),
            ),
            421,
            "misdirected",
        );
        assert!(msg.contains(&format!("`{host}`")), "{msg}");
        // Reads too: a rebound page could read the answers.
        assert_error(
            &send(&s, "GET", "/v1/decisions", &[("Host", host)], ""),
            421,
            "misdirected",
        );
        assert_error(
            &send(&s, "GET", "/metrics", &[("Host", host)], ""),
            421,
            "misdirected",
        );
    }
    assert_error(
        &send(
            &s,
            "POST",
            "/v1/freezes",
            &[("Content-Type", "application/json")],
            &freeze(),
        ),
        421,
        "misdirected",
    );
    // A cross-origin request with a JSON type (were a preflight ever let
    // through) or a DELETE: the foreign `Origin` is refused.
    for origin in [
        "http://evil.example",
        "null",
        "http://localhost.evil.example",
    ] {
        let msg = assert_error(
            &send(
                &s,
                "POST",
                "/v1/freezes",
                &[
                    local,
                    ("Origin", origin),
                    ("Content-Type", "application/json"),
                ],
                &freeze(),
            ),
            403,
            "foreign_origin",
        );
        assert!(msg.contains(&format!("`{origin}`")), "{msg}");
    }
    // The Argo door answers 200 whatever happens: a hold that decided nothing.
    let (st, a) = send(
        &s,
        "POST",
        "/v1/integrations/argo",
        &[local, ("Content-Type", "text/plain")],
        &healthy_request("api", "prod").to_string(),
    );
    assert_eq!(st, 200, "{a}");
    assert_eq!(
        (&a["verdict"], &a["decision_id"]),
        (&json!("hold"), &Value::Null)
    );
    assert!(
        a["reasons"][0]
            .as_str()
            .unwrap()
            .contains("`Content-Type: application/json`"),
        "{a}"
    );
    // A policy upload must say it is one.
    assert_error(
        &send(
            &s,
            "PUT",
            "/v1/policies/evil",
            &[local, ("Content-Type", "application/x-www-form-urlencoded")],
            "\0asm",
        ),
        415,
        "unsupported_media_type",
    );
    nothing_created(&s);

    // What a local client sends still works: loopback names, JSON.
    for host in ["localhost", "127.0.0.1:1", "[::1]:8080"] {
        let (st, f) = send(
            &s,
            "POST",
            "/v1/freezes",
            &[
                ("Host", host),
                ("Origin", "http://localhost:3000"),
                ("Content-Type", "application/json; charset=utf-8"),
            ],
            &freeze(),
        );
        assert_eq!(st, 201, "Host {host}: {f}");
    }
}

#[test]
fn probes_answer_whatever_the_host() {
    let s = Server::start();
    for path in ["/healthz", "/readyz"] {
        let (st, body) = send(&s, "GET", path, &[("Host", "10.1.2.3:8080")], "");
        assert_eq!(st, 200, "{path}: {body}");
        let (st, body) = send(&s, "GET", path, &[], "");
        assert_eq!(st, 200, "{path} without a Host: {body}");
    }
}

#[test]
fn with_tokens_any_host_and_origin_is_served_but_only_json_is_read() {
    let token = "ci-token";
    let sha = hex::encode(Sha256::digest(token.as_bytes()));
    let s = Server::start_with(Options {
        config: Some(format!(
            "tokens = [{{ name = \"ci\", sha256 = \"{sha}\", roles = [\"decide\", \"read\"] }}]\n"
        )),
        ..Options::default()
    });
    let bearer = format!("Bearer {token}");
    let pod = ("Host", "10.1.2.3:8080");
    let body = healthy_request("api", "prod").to_string();
    let (st, d) = send(
        &s,
        "POST",
        "/v1/decisions",
        &[
            pod,
            ("Origin", "https://dashboard.example"),
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    assert_eq!(st, 201, "{d}");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (st, b) = send(&s, "GET", path, &[pod], "");
        assert_eq!(st, 200, "{path}: {b}");
    }
    assert_error(
        &send(
            &s,
            "POST",
            "/v1/decisions",
            &[
                pod,
                ("Authorization", &bearer),
                ("Content-Type", "text/plain"),
            ],
            &body,
        ),
        415,
        "unsupported_media_type",
    );
}
