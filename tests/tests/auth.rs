//! Bearer tokens with roles: tokens are configured by their sha256 only;
//! `decide` may decide, `read` may query, verify and replay, `admin` manages
//! policies, bindings and freezes; the health endpoints and `/metrics` are
//! open; no public listen without tokens. A clear token never reaches
//! anything the server stores, logs or answers.

use std::cell::RefCell;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use verdict_e2e::{assert_error, binary, call, failing_request, healthy_request, Options, Server};

const CI: &str = "ci-token";
const AUDITOR: &str = "auditor-token";
const OPS: &str = "ops-token";
/// A token holding `admin` alone (no `read`).
const PLATFORM: &str = "platform-admin-token";
const CLEAR_TOKENS: [&str; 4] = [CI, AUDITOR, OPS, PLATFORM];

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A server with tokens configured that keeps everything it answered (and
/// every CLI output), and logs at debug level into a buffer, so the test can
/// look for clear tokens in all of it.
struct Authed {
    s: Server,
    seen: RefCell<Vec<String>>,
}

impl Deref for Authed {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.s
    }
}

impl Authed {
    /// One HTTP call with raw bytes; the answer is remembered.
    fn send(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> (u16, Value) {
        let answer = call(&self.s.base, method, path, body, token, content_type);
        self.seen
            .borrow_mut()
            .push(format!("{method} {path} → {} {}", answer.0, answer.1));
        answer
    }

    /// The CLI against this server; (code, stdout, stderr), remembered.
    fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let out = self.s.cli_env(args, env);
        self.seen.borrow_mut().push(format!(
            "verdict {} → {} {}{}",
            args[0], out.0, out.1, out.2
        ));
        out
    }
}

fn start() -> Authed {
    let config = format!(
        r#"tokens = [
  {{ name = "ci", sha256 = "{}", roles = ["decide"] }},
  {{ name = "auditor", sha256 = "{}", roles = ["read"] }},
  {{ name = "ops", sha256 = "{}", roles = ["admin", "read"] }},
  {{ name = "platform", sha256 = "{}", roles = ["admin"] }},
]
"#,
        sha(CI),
        sha(AUDITOR),
        sha(OPS),
        sha(PLATFORM)
    );
    let s = Server::start_with(Options {
        config: Some(config),
        // Debug level for our own code and the HTTP stack: a token must not
        // leak at any level an operator might turn on.
        env: vec![(
            "RUST_LOG".into(),
            "debug,wasmtime=warn,cranelift=warn,sled=info".into(),
        )],
        capture_stderr: true,
        ..Options::default()
    });
    Authed {
        s,
        seen: RefCell::new(Vec::new()),
    }
}

fn as_(
    s: &Authed,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let bytes = body.map(|b| b.to_string().into_bytes());
    s.send(token, method, path, bytes.as_deref(), "application/json")
}

/// Every regular file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                out.push((path, bytes));
            }
        }
    }
    out
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Stop the server (so its store is flushed), then look for every clear
/// token in everything it answered, everything it logged and every file in
/// its data dir. `stored` is text the test made the server store, and
/// `logged` text it made it log: finding them proves each search can see
/// what is there.
#[track_caller]
fn assert_no_clear_token_leaked(mut a: Authed, stored: &str, logged: &str) {
    let status = a.s.terminate();
    assert!(status.success(), "exit status {status:?}");
    let answers = a.seen.borrow().join("\n");
    let logs = a.s.stderr_lines().join("\n");
    let files = files_under(&a.s.data_dir);
    assert!(
        files.iter().any(|(_, bytes)| holds(bytes, stored)),
        "`{stored}` is in no file under {}: the scan cannot see what the store holds",
        a.s.data_dir.display()
    );
    assert!(
        logs.contains(logged),
        "`{logged}` is not in the logs:\n{logs}"
    );
    for token in CLEAR_TOKENS {
        assert!(
            !answers.contains(token),
            "an answer holds `{token}`:\n{answers}"
        );
        assert!(!logs.contains(token), "the logs hold `{token}`:\n{logs}");
        for (path, bytes) in &files {
            assert!(!holds(bytes, token), "{} holds `{token}`", path.display());
        }
    }
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
    // Basic auth carries a token as its password (Flagger's webhook URL):
    // `ci:ci-token` is the `ci` token, which may not read.
    let answer = verdict_e2e::raw(
        &s.base,
        "GET /v1/decisions HTTP/1.1\r\nAuthorization: Basic Y2k6Y2ktdG9rZW4=",
        b"",
    );
    s.seen
        .borrow_mut()
        .push(format!("{} {}", answer.0, answer.1));
    assert_error(&answer, 403, "forbidden");
    for header in [
        // `ci:nope`: a Basic password that is no token.
        "Basic Y2k6bm9wZQ==",
        "ci-token",
        "Bearer",
        "Token ci-token",
    ] {
        let answer = verdict_e2e::raw(
            &s.base,
            &format!("GET /v1/decisions HTTP/1.1\r\nAuthorization: {header}"),
            b"",
        );
        s.seen
            .borrow_mut()
            .push(format!("{} {}", answer.0, answer.1));
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
        let answer = s.send(
            Some(t),
            "PUT",
            "/v1/policies/mine",
            Some(&wasm),
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
    let (st, body) = s.send(
        Some(OPS),
        "PUT",
        "/v1/policies/mine",
        Some(&wasm),
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
    let (code, out, err) = s.cli(&["decide", "--file", file], &[("VERDICT_TOKEN", CI)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("promote"), "{out}");
    let (code, out, err) = s.cli(&["decide", "--file", file], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("401"), "{err}");
    let (code, out, err) = s.cli(&["audit", "verify"], &[("VERDICT_TOKEN", CI)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("403"), "{err}");
    let (code, out, err) = s.cli(&["audit", "verify", "--token", AUDITOR], &[]);
    assert_eq!(code, 0, "{out}{err}");

    // After all that, no clear token is in any answer, any log line or any
    // stored byte. The decision's service is stored; its id is logged.
    let id = id.to_string();
    assert_no_clear_token_leaked(s, "auth-svc", &id);
}

/// `GET /metrics` is open like the probes: scrapers rarely carry tokens, so
/// it answers without one (and ignores a wrong one) while every API route
/// insists on its role.
#[test]
fn metrics_stay_open_with_tokens_configured() {
    let s = start();
    // Something to count first.
    let (st, d) = as_(
        &s,
        Some(CI),
        "POST",
        "/v1/decisions",
        Some(&healthy_request("open", "prod")),
    );
    assert_eq!(st, 201, "{d}");
    assert_error(
        &as_(&s, None, "GET", "/v1/decisions", None),
        401,
        "unauthorized",
    );
    for token in [None, Some("wrong-token"), Some(AUDITOR)] {
        let (st, body) = as_(&s, token, "GET", "/metrics", None);
        assert_eq!(st, 200, "/metrics with {token:?}: {body}");
        let text = body.as_str().unwrap_or_else(|| panic!("not text: {body}"));
        assert!(
            text.contains(r#"verdict_decisions_total{environment="prod",verdict="promote"} 1"#),
            "{text}"
        );
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(as_(&s, None, "GET", path, None).0, 200, "{path}");
    }
}

/// What a token holding only `admin` may do. Roles do not imply each other:
/// `admin` manages policies, bindings and freezes (writes), and every read
/// (decisions, replay, verify, and even listing the policies, bindings and
/// freezes it manages) needs `read`; deciding needs `decide`. Least
/// privilege: an automation that rotates bindings learns nothing about the
/// audit trail. Operators give a person `["admin", "read"]`.
#[test]
fn an_admin_only_token_manages_but_reads_and_decides_nothing() {
    let s = start();
    let (st, d) = as_(
        &s,
        Some(CI),
        "POST",
        "/v1/decisions",
        Some(&healthy_request("adm", "prod")),
    );
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    let wasm = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/dist/thresholds.wasm"
    ))
    .unwrap();

    // May not read anything: 403 naming the missing role.
    let rec = json!({"as_recorded": true});
    let reads: Vec<(&str, String, Option<&Value>)> = vec![
        ("GET", "/v1/decisions".into(), None),
        ("GET", format!("/v1/decisions/{id}"), None),
        ("POST", format!("/v1/decisions/{id}/replay"), Some(&rec)),
        ("GET", "/v1/audit/verify".into(), None),
        ("GET", "/v1/policies".into(), None),
        ("GET", "/v1/policies/thresholds".into(), None),
        ("GET", "/v1/bindings".into(), None),
        ("GET", "/v1/bindings/thresholds".into(), None),
        ("GET", "/v1/freezes".into(), None),
    ];
    for (m, p, b) in &reads {
        let msg = assert_error(&as_(&s, Some(PLATFORM), m, p, *b), 403, "forbidden");
        assert!(
            msg.contains("`platform`") && msg.contains("`read`"),
            "{m} {p}: {msg}"
        );
    }
    // May not decide, through any door.
    let healthy = healthy_request("adm", "prod");
    let flagger =
        json!({"name": "adm", "namespace": "prod", "phase": "Progressing", "checksum": "c1"});
    for (p, b) in [
        ("/v1/decisions", &healthy),
        ("/v1/sources/preview", &healthy),
        ("/v1/integrations/argo", &healthy),
        ("/v1/integrations/flagger/confirm-promotion", &flagger),
    ] {
        let msg = assert_error(
            &as_(&s, Some(PLATFORM), "POST", p, Some(b)),
            403,
            "forbidden",
        );
        assert!(msg.contains("`decide`"), "{p}: {msg}");
    }

    // May manage: upload a policy, bind it, freeze, then undo all three.
    let (st, body) = s.send(
        Some(PLATFORM),
        "PUT",
        "/v1/policies/mine",
        Some(&wasm),
        "application/wasm",
    );
    assert_eq!(st, 201, "{body}");
    let binding = json!({"policy": "mine", "selector": {"service": "adm"}, "mode": "shadow"});
    let (st, body) = as_(
        &s,
        Some(PLATFORM),
        "PUT",
        "/v1/bindings/adm-shadow",
        Some(&binding),
    );
    assert_eq!(st, 200, "{body}");
    let freeze = json!({"selector": {"service": "adm"}, "reason": "platform drill", "until": "2099-01-01T00:00:00Z"});
    let (st, f) = as_(&s, Some(PLATFORM), "POST", "/v1/freezes", Some(&freeze));
    assert_eq!(st, 201, "{f}");
    assert_eq!(f["created_by"], "platform", "{f}");
    // The writes took effect (seen with a read token).
    let (_, b) = as_(&s, Some(AUDITOR), "GET", "/v1/bindings/adm-shadow", None);
    assert_eq!(b["binding"]["policy"], "mine", "{b}");
    let (st, d) = as_(&s, Some(CI), "POST", "/v1/decisions", Some(&healthy));
    assert_eq!((st, &d["verdict"]), (201, &json!("freeze")), "{d}");
    assert!(
        d["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["binding"] == "adm-shadow"),
        "{d}"
    );

    let fid = f["id"].as_str().unwrap();
    for path in [
        format!("/v1/freezes/{fid}"),
        "/v1/bindings/adm-shadow".to_string(),
        "/v1/policies/mine".to_string(),
    ] {
        let (st, body) = as_(&s, Some(PLATFORM), "DELETE", &path, None);
        assert_eq!(st, 200, "DELETE {path}: {body}");
    }
    let (_, freezes) = as_(&s, Some(AUDITOR), "GET", "/v1/freezes", None);
    assert_eq!(freezes["items"], json!([]), "{freezes}");
    let (_, policies) = as_(&s, Some(AUDITOR), "GET", "/v1/policies", None);
    assert_eq!(policies["items"].as_array().unwrap().len(), 5, "{policies}");
    let id = id.to_string();
    assert_no_clear_token_leaked(s, "platform drill", &id);
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

/// POST `payload` to the Flagger door the way Flagger is configured to:
/// credentials in the webhook URL (`http://user:token@host/…`), which an
/// HTTP client (Go's, curl) sends as `Authorization: Basic`. curl stands in
/// for Go's client here. Returns (status, body text).
fn flagger_with_url_credentials(
    base: &str,
    userinfo: &str,
    gate: &str,
    payload: &str,
) -> (u16, String) {
    let url = base.replacen("://", &format!("://{userinfo}@"), 1);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-w", "\n%{http_code}"])
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            payload,
        ])
        .arg(format!("{url}/v1/integrations/flagger/{gate}"))
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_string())
}

#[test]
fn flagger_authenticates_with_the_token_as_basic_auth_password() {
    let s = start();
    let payload = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/flagger/payload.json"),
    )
    .unwrap();
    // The example Canary carries its token this way.
    let canary = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/flagger/canary.yaml"),
    )
    .unwrap();
    assert!(
        canary.contains("url: https://flagger:TOKEN@verdict.verdict.svc:8443/v1/integrations/flagger/confirm-rollout\n"),
        "examples/flagger/canary.yaml shows the token in the webhook URL"
    );
    // Accepted: any user name, the `decide` token as the password.
    let (st, text) =
        flagger_with_url_credentials(&s.base, &format!("flagger:{CI}"), "event", &payload);
    assert_eq!(st, 200, "{text}");
    assert!(text.starts_with("recorded decision "), "{text}");
    let id = text["recorded decision ".len()..]
        .split(':')
        .next()
        .unwrap()
        .to_string();
    s.seen.borrow_mut().push(text.clone());
    let (st, d) = as_(
        &s,
        Some(AUDITOR),
        "GET",
        &format!("/v1/decisions/{id}"),
        None,
    );
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["request"]["deployment"]["service"], "podinfo", "{d}");

    // Refused: a wrong password, an empty one, no credentials at all, and
    // a known token without the `decide` role.
    for (userinfo, status) in [
        ("flagger:not-a-token".to_string(), 401),
        ("flagger:".to_string(), 401),
        (format!("flagger:{AUDITOR}"), 403),
    ] {
        let (st, text) =
            flagger_with_url_credentials(&s.base, &userinfo, "confirm-rollout", &payload);
        assert_eq!(st, status, "{userinfo}: {text}");
        s.seen.borrow_mut().push(text);
    }
    let (st, body) = s.send(
        None,
        "POST",
        "/v1/integrations/flagger/confirm-rollout",
        Some(payload.as_bytes()),
        "application/json",
    );
    assert_eq!(st, 401, "{body}");
    assert!(
        body.to_string().contains("Basic"),
        "the 401 names both forms: {body}"
    );
    // The Basic password goes through the same hashed lookup and is never
    // logged, answered or stored, at debug level either.
    assert_no_clear_token_leaked(s, "podinfo", &id);
}
