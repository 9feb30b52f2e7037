//! Bearer tokens with roles (design.md §5 "Auth"): configured as sha256
//! hashes; decide / read / admin; health endpoints open; no public listen
//! without tokens.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use verdict_e2e::{assert_error, binary, call, failing_request, healthy_request, Options, Server};

const CI: &str = "ci-token";
const AUDITOR: &str = "auditor-token";
const OPS: &str = "ops-token";

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn start() -> Server {
    let config = format!(
        r#"tokens = [
  {{ name = "ci", sha256 = "{}", roles = ["decide"] }},
  {{ name = "auditor", sha256 = "{}", roles = ["read"] }},
  {{ name = "ops", sha256 = "{}", roles = ["admin", "read"] }},
]
"#,
        sha(CI),
        sha(AUDITOR),
        sha(OPS)
    );
    let s = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    // The clear tokens are nowhere in the config the server was given.
    let written = std::fs::read_to_string(s.data_dir.with_extension("toml")).unwrap();
    for t in [CI, AUDITOR, OPS] {
        assert!(!written.contains(t));
    }
    s
}

fn as_(
    s: &Server,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let bytes = body.map(|b| b.to_string().into_bytes());
    call(
        &s.base,
        method,
        path,
        bytes.as_deref(),
        token,
        "application/json",
    )
}

#[test]
fn tokens_and_roles_are_enforced() {
    let s = start();

    // Health endpoints need no token.
    assert_eq!(as_(&s, None, "GET", "/healthz", None).0, 200);
    let (st, ready) = as_(&s, None, "GET", "/readyz", None);
    assert_eq!((st, ready["ready"].clone()), (200, json!(true)));

    // No token, a wrong token, a malformed header: 401.
    let healthy = healthy_request("api", "prod");
    let hash_as_token = sha(CI);
    for token in [
        None,
        Some("wrong-token"),
        Some(""),
        Some(hash_as_token.as_str()),
    ] {
        let answer = as_(&s, token, "POST", "/v1/decisions", Some(&healthy));
        assert_error(&answer, 401, "unauthorized");
        assert_error(
            &as_(&s, token, "GET", "/v1/decisions", None),
            401,
            "unauthorized",
        );
        assert_error(
            &as_(
                &s,
                token,
                "PUT",
                "/v1/bindings/x",
                Some(&json!({"policy": "thresholds"})),
            ),
            401,
            "unauthorized",
        );
    }
    for header in [
        "Basic Y2k6Y2ktdG9rZW4=",
        "ci-token",
        "Bearer",
        "Token ci-token",
    ] {
        let answer = verdict_e2e::raw(
            &s.base,
            &format!("GET /v1/decisions HTTP/1.1\r\nAuthorization: {header}"),
            b"",
        );
        assert_error(&answer, 401, "unauthorized");
    }

    // decide: may decide, nothing else.
    let d = {
        let (st, d) = as_(&s, Some(CI), "POST", "/v1/decisions", Some(&healthy));
        assert_eq!(st, 201, "{d}");
        assert_eq!(d["verdict"], "promote");
        d
    };
    let id = d["id"].as_str().unwrap();
    let dpath = format!("/v1/decisions/{id}");
    let replay = format!("/v1/decisions/{id}/replay");
    let rec = json!({"as_recorded": true});
    let binding =
        json!({"policy": "thresholds", "selector": {"service": "auth-svc"}, "mode": "shadow"});
    let freeze = json!({"selector": {"service": "auth-svc"}, "reason": "auth test", "until": "2099-01-01T00:00:00Z"});
    let wasm = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/dist/thresholds.wasm"
    ))
    .unwrap();

    let reads: Vec<(&str, String, Option<&Value>)> = vec![
        ("GET", "/v1/decisions".into(), None),
        ("GET", dpath.clone(), None),
        ("POST", replay.clone(), Some(&rec)),
        ("GET", "/v1/audit/verify".into(), None),
        ("GET", "/v1/policies".into(), None),
        ("GET", "/v1/policies/thresholds".into(), None),
        ("GET", "/v1/bindings".into(), None),
        ("GET", "/v1/bindings/thresholds".into(), None),
        ("GET", "/v1/freezes".into(), None),
    ];
    for (m, p, b) in &reads {
        let msg = assert_error(&as_(&s, Some(CI), m, p, *b), 403, "forbidden");
        assert!(msg.contains("read"), "names the missing role: {msg}");
        // read (auditor, ops) may.
        for t in [AUDITOR, OPS] {
            let (st, body) = as_(&s, Some(t), m, p, *b);
            assert_eq!(st, 200, "{m} {p} as {t}: {body}");
        }
    }

    // read: may not decide (or preview a pull, which queries the sources)
    // or administer.
    for t in [AUDITOR, OPS] {
        for path in ["/v1/decisions", "/v1/sources/preview"] {
            let msg = assert_error(
                &as_(&s, Some(t), "POST", path, Some(&healthy)),
                403,
                "forbidden",
            );
            assert!(msg.contains("decide"), "{path}: {msg}");
        }
    }
    let (st, body) = as_(&s, Some(CI), "POST", "/v1/sources/preview", Some(&healthy));
    assert_eq!(
        (st, &body["metrics"]),
        (200, &json!([])),
        "no sources configured: {body}"
    );
    let admin: Vec<(&str, &str, Option<&Value>)> = vec![
        ("PUT", "/v1/bindings/auth-shadow", Some(&binding)),
        ("DELETE", "/v1/bindings/thresholds", None),
        ("POST", "/v1/freezes", Some(&freeze)),
        ("DELETE", "/v1/freezes/frz-anything", None),
        ("DELETE", "/v1/policies/error-budget", None),
    ];
    for (m, p, b) in &admin {
        for t in [CI, AUDITOR] {
            let msg = assert_error(&as_(&s, Some(t), m, p, *b), 403, "forbidden");
            assert!(msg.contains("admin"), "{m} {p} as {t}: {msg}");
        }
    }
    for t in [CI, AUDITOR] {
        let answer = call(
            &s.base,
            "PUT",
            "/v1/policies/mine",
            Some(&wasm),
            Some(t),
            "application/wasm",
        );
        assert_error(&answer, 403, "forbidden");
    }
    // Nothing changed through the forbidden calls.
    let (_, bindings) = as_(&s, Some(OPS), "GET", "/v1/bindings", None);
    assert_eq!(bindings["items"].as_array().unwrap().len(), 5);
    let (_, policies) = as_(&s, Some(OPS), "GET", "/v1/policies", None);
    assert_eq!(policies["items"].as_array().unwrap().len(), 5);

    // admin: policies, bindings, freezes.
    let (st, body) = call(
        &s.base,
        "PUT",
        "/v1/policies/mine",
        Some(&wasm),
        Some(OPS),
        "application/wasm",
    );
    assert_eq!(st, 201, "{body}");
    let (st, body) = as_(
        &s,
        Some(OPS),
        "PUT",
        "/v1/bindings/auth-shadow",
        Some(&binding),
    );
    assert_eq!(st, 200, "{body}");
    let (st, f) = as_(&s, Some(OPS), "POST", "/v1/freezes", Some(&freeze));
    assert_eq!(st, 201, "{f}");
    assert_eq!(
        f["created_by"], "ops",
        "the freeze records who made it: {f}"
    );
    let (st, d) = as_(
        &s,
        Some(CI),
        "POST",
        "/v1/decisions",
        Some(&failing_request("auth-svc", "prod")),
    );
    assert_eq!((st, d["verdict"].clone()), (201, json!("freeze")), "{d}");
    let (st, body) = as_(
        &s,
        Some(OPS),
        "DELETE",
        &format!("/v1/freezes/{}", f["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(st, 200, "{body}");

    // The decide token also works through the CLI, and a missing token fails it.
    let req = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(req.path(), healthy.to_string()).unwrap();
    let file = req.path().to_str().unwrap();
    let (code, out, err) = s.cli_env(&["decide", "--file", file], &[("VERDICT_TOKEN", CI)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("promote"), "{out}");
    let (code, out, err) = s.cli_env(&["decide", "--file", file], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("401"), "{err}");
    let (code, out, err) = s.cli_env(&["audit", "verify"], &[("VERDICT_TOKEN", CI)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("403"), "{err}");
    let (code, out, err) = s.cli_env(&["audit", "verify", "--token", AUDITOR], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn serve_refuses_a_public_listen_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary())
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("VERDICT_CONFIG")
        .env_remove("VERDICT_TOKENS")
        .env_remove("VERDICT_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`verdict serve --listen 0.0.0.0:0` without tokens kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "{text}");
    assert!(text.contains("without auth"), "{text}");
    assert!(!text.contains("verdict listening on"), "{text}");

    // With a token it does start on the public address (env form of tokens).
    let mut child = Command::new(binary())
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("VERDICT_CONFIG")
        .env("VERDICT_TOKENS", format!("ci:{}:decide", sha(CI)))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(120));
    // Reachable (through loopback) and enforcing auth; answers collected
    // before asserting so the child is always killed.
    let answers = line
        .as_ref()
        .ok()
        .and_then(|l| l.strip_prefix("verdict listening on http://"))
        .map(|addr| {
            let port = addr.rsplit(':').next().unwrap().to_string();
            let base = format!("http://127.0.0.1:{port}");
            let body = healthy_request("api", "prod").to_string();
            let post = |token| {
                verdict_e2e::try_call(
                    &base,
                    "POST",
                    "/v1/decisions",
                    Some(body.as_bytes()),
                    token,
                    "application/json",
                )
            };
            (addr.to_string(), post(None), post(Some(CI)))
        });
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("serve with tokens starts");
    let (addr, anonymous, with_token) =
        answers.unwrap_or_else(|| panic!("unexpected first line {line}"));
    assert!(addr.starts_with("0.0.0.0:"), "{line}");
    assert_error(&anonymous.unwrap(), 401, "unauthorized");
    let (st, d) = with_token.unwrap();
    assert_eq!((st, d["verdict"].clone()), (201, json!("promote")), "{d}");
}
