//! HTTPS end to end, with a CA made in the test: the server over TLS (its
//! certificate rotated while connections are open), the TLS handshake under
//! the header timeout, client certificates mapped to roles (and refused
//! when they are not trusted or not listed), and the CLI trusting a CA
//! bundle — or saying which host failed and why when it trusts the wrong one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use verdict_e2e::pki::{self, Connection, TestCa};
use verdict_e2e::{call_via, healthy_request, try_call, Options, Server};

/// A server on HTTPS with a certificate from `ca` written to
/// `dir/tls.crt` and `dir/tls.key`; returns it and that certificate.
fn https_server(ca: &TestCa, dir: &Path, config: Option<String>) -> (Server, pki::Leaf) {
    let leaf = ca.server(dir, "tls");
    let s = Server::start_with(Options {
        args: vec![
            "--tls-cert".into(),
            leaf.cert_file.display().to_string(),
            "--tls-key".into(),
            leaf.key_file.display().to_string(),
        ],
        config,
        ca_pem: Some(ca.pem.clone()),
        ..Options::default()
    });
    assert!(
        s.base.starts_with("https://127.0.0.1:"),
        "the start-up line says https: {}",
        s.base
    );
    (s, leaf)
}

#[test]
fn https_decides_and_a_rotated_certificate_reaches_new_connections_only() {
    let ca = TestCa::new("verdict test CA");
    let dir = tempfile::tempdir().unwrap();
    let (s, served) = https_server(&ca, dir.path(), None);

    let d = s.decide(&healthy_request("tls-svc", "production"));
    assert_eq!(d["verdict"], "promote", "{d}");
    // The HTTPS port does not speak plain HTTP.
    let plain = s.base.replace("https://", "http://");
    assert!(
        !matches!(
            try_call(&plain, "GET", "/healthz", None, None, "application/json"),
            Ok((200, _))
        ),
        "plain HTTP must not be answered on the HTTPS port"
    );

    let mut kept = Connection::open(&s.base, &ca.pem).unwrap();
    let before = kept.server_cert();
    assert_eq!(before, served.der());
    assert_eq!(kept.get("/healthz").unwrap().0, 200);

    // Rotate: new key and certificate renamed over the served files, as
    // cert-manager and secret volumes do.
    let rotated = ca.server(dir.path(), "tls");
    let fresh = Connection::open(&s.base, &ca.pem).unwrap();
    assert_eq!(
        fresh.server_cert(),
        rotated.der(),
        "a new connection gets the new certificate"
    );
    assert_ne!(rotated.der(), before);
    // The connection opened before the rotation goes on, on its session.
    assert_eq!(
        kept.get("/healthz").unwrap(),
        (200, r#"{"status":"ok"}"#.into())
    );
    assert_eq!(kept.server_cert(), before);
    let d = s.decide(&healthy_request("tls-svc", "production"));
    assert_eq!(d["verdict"], "promote", "{d}");

    // A broken rotation (a key that does not match) keeps the last good pair.
    let other = ca.server(dir.path(), "other");
    pki::replace_file(&dir.path().join("tls.key"), other.key_pem.as_bytes());
    let after = Connection::open(&s.base, &ca.pem).unwrap();
    assert_eq!(after.server_cert(), rotated.der());
}

#[test]
fn the_tls_handshake_must_finish_within_the_header_timeout() {
    let ca = TestCa::new("verdict test CA");
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = https_server(
        &ca,
        dir.path(),
        Some("header_read_timeout_ms = 500\nidle_timeout_ms = 60000\n".into()),
    );
    let addr = s.base.trim_start_matches("https://").to_string();
    // Silent after connecting, and stalled in the middle of a ClientHello
    // (a record header announcing 512 bytes, then nothing).
    for sent in [&b""[..], &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01][..]] {
        let mut tcp = TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        tcp.write_all(sent).unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 64];
        let closed = matches!(tcp.read(&mut buf), Ok(0) | Err(_));
        let took = start.elapsed();
        assert!(closed, "the server must close the connection");
        assert!(
            took < Duration::from_secs(5),
            "closed after {took:?}: the handshake is bounded by header_read_timeout_ms, not the idle timeout"
        );
    }
    // The server still serves.
    assert_eq!(s.get_ok("/healthz")["status"], "ok");
}

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

const ARGO_ID: &str = "spiffe://cluster.local/ns/argo-rollouts/sa/argo-rollouts";

#[test]
fn client_certificates_authenticate_like_tokens_and_others_are_refused() {
    let server_ca = TestCa::new("server CA");
    let mesh_ca = TestCa::new("mesh CA");
    let rogue_ca = TestCa::new("rogue CA");
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"tls_client_ca = "{}"
tokens = [{{ name = "ci", sha256 = "{}", roles = ["decide"] }}]

[[client_certs]]
subject = "{ARGO_ID}"
name = "argo"
roles = ["decide"]

[[client_certs]]
subject = "audit-runner"
name = "auditor"
roles = ["read"]
"#,
        mesh_ca.file.display(),
        sha("ci-token")
    );
    let (s, _) = https_server(&server_ca, dir.path(), Some(config));
    let argo = mesh_ca.client(dir.path(), "argo", "argo-rollouts", Some(ARGO_ID));
    let auditor = mesh_ca.client(dir.path(), "auditor", "audit-runner", None);
    let stranger = mesh_ca.client(dir.path(), "stranger", "stranger", None);
    let rogue = rogue_ca.client(dir.path(), "rogue", "audit-runner", Some(ARGO_ID));
    let body = healthy_request("mtls-svc", "production").to_string();
    let as_ = |leaf: Option<&pki::Leaf>, token: Option<&str>, method: &str, path: &str| {
        let agent = pki::agent(&server_ca.pem, leaf);
        let body = (method == "POST").then_some(body.as_bytes());
        call_via(
            &agent,
            &s.base,
            method,
            path,
            body,
            token,
            "application/json",
        )
    };

    // Accepted: the listed URI SAN decides, the listed CN reads; no header.
    let (st, d) = as_(Some(&argo), None, "POST", "/v1/decisions").unwrap();
    assert_eq!(st, 201, "{d}");
    let (st, list) = as_(Some(&auditor), None, "GET", "/v1/decisions").unwrap();
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["items"][0]["id"], d["id"], "{list}");
    // Roles hold as for tokens.
    let (st, e) = as_(Some(&argo), None, "GET", "/v1/decisions").unwrap();
    assert_eq!(st, 403, "{e}");
    let (st, e) = as_(Some(&auditor), None, "POST", "/v1/decisions").unwrap();
    assert_eq!(st, 403, "{e}");

    // A trusted but unlisted certificate is not a credential.
    let (st, e) = as_(Some(&stranger), None, "POST", "/v1/decisions").unwrap();
    assert_eq!(st, 401, "{e}");
    assert!(e.to_string().contains("client_certs"), "{e}");
    // A certificate from another CA fails the handshake, whatever it names.
    let refused = as_(Some(&rogue), None, "POST", "/v1/decisions");
    assert!(
        refused.is_err(),
        "an untrusted client certificate: {refused:?}"
    );

    // Without a certificate, a token works as on any server; nothing else.
    let (st, d) = as_(None, Some("ci-token"), "POST", "/v1/decisions").unwrap();
    assert_eq!(st, 201, "{d}");
    let (st, e) = as_(None, None, "POST", "/v1/decisions").unwrap();
    assert_eq!(st, 401, "{e}");
    // A header, when sent, is what counts, even with a listed certificate.
    let (st, e) = as_(Some(&argo), Some("wrong"), "POST", "/v1/decisions").unwrap();
    assert_eq!(st, 401, "{e}");
}

#[test]
fn the_cli_trusts_a_ca_file_and_names_the_host_when_the_ca_is_wrong() {
    let ca = TestCa::new("verdict test CA");
    let wrong = TestCa::new("some other CA");
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = https_server(&ca, dir.path(), None);
    let request = dir.path().join("request.json");
    std::fs::write(&request, healthy_request("cli-tls", "staging").to_string()).unwrap();
    let file = request.to_str().unwrap();

    let ca_file = ca.file.to_str().unwrap();
    let (code, out, err) = s.cli_env(&["decide", "--file", file], &[("VERDICT_CA_FILE", ca_file)]);
    assert_eq!(code, 0, "promote over https: {out}{err}");

    let wrong_file = wrong.file.to_str().unwrap();
    let (code, out, err) = s.cli_env(
        &["decide", "--file", file],
        &[("VERDICT_CA_FILE", wrong_file)],
    );
    assert_eq!(code, 1, "{out}{err}");
    let host = s.base.trim_start_matches("https://");
    assert!(
        err.contains(&format!("TLS with `{host}` failed"))
            && err.contains("not signed by a trusted CA"),
        "the error names the host and why: {err}"
    );
    let stored: Value = s.get_ok("/v1/decisions");
    assert_eq!(
        stored["items"].as_array().map(Vec::len),
        Some(1),
        "only the trusted call reached the server: {stored}"
    );
}

#[test]
fn handshaking_connections_yield_to_the_cap_and_to_shutdown() {
    let ca = TestCa::new("verdict test CA");
    let dir = tempfile::tempdir().unwrap();
    // Two connections at most; timeouts far beyond the test.
    let (mut s, _) = https_server(
        &ca,
        dir.path(),
        Some(
            "max_connections = 2\nheader_read_timeout_ms = 60000\nidle_timeout_ms = 60000\n".into(),
        ),
    );
    let addr = s.base.trim_start_matches("https://").to_string();
    // Two connections that never finish their handshake fill the cap…
    let stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut t = TcpStream::connect(&addr).unwrap();
            t.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
            t
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // …and a real client still gets through: the longest-waiting one is
    // closed to make room, as for a half-sent request head.
    let start = Instant::now();
    let mut conn = Connection::open(&s.base, &ca.pem).expect("a slot is made");
    assert_eq!(conn.get("/healthz").unwrap().0, 200);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    drop(conn);

    // At shutdown, a connection still in its handshake is closed at once:
    // the server exits well before the 60 s timeouts.
    let start = Instant::now();
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "shutdown waited on a handshake: {:?}",
        start.elapsed()
    );
    drop(stalled);
}
