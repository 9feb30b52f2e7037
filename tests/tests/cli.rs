//! The `verdict` CLI against a real server: exit codes for CI
//! gates, JSON output, audit verify/export, replay, policy list/push.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use verdict_e2e::{binary, failing_request, healthy_request, Server};

/// A request canary-judge holds for too little evidence (3 + 3 samples of
/// a metric only it reads); the other built-ins abstain.
fn too_few_samples(service: &str) -> Value {
    json!({
        "deployment": {"service": service, "environment": "prod", "version": "v2"},
        "metrics": [{"name": "latency_ms", "baseline": [100.0, 101.0, 102.0], "canary": [100.0, 101.0, 102.0]}]
    })
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p
}

#[test]
fn decide_exit_codes_follow_the_verdict() {
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let (st, f) = s.json(
        "POST",
        "/v1/freezes",
        &json!({"selector": {"service": "frozen"}, "reason": "release freeze", "until": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(st, 201, "{f}");

    for (name, req, code, verdict) in [
        ("promote.json", healthy_request("api", "prod"), 0, "promote"),
        ("hold.json", too_few_samples("api"), 10, "hold"),
        (
            "rollback.json",
            failing_request("api", "prod"),
            11,
            "rollback",
        ),
        (
            "freeze.json",
            healthy_request("frozen", "prod"),
            12,
            "freeze",
        ),
    ] {
        let file = write(tmp.path(), name, &req);
        let (got, out, err) = s.cli_env(&["decide", "--file", file.to_str().unwrap()], &[]);
        assert_eq!(got, code, "{name}: {out}{err}");
        assert!(
            out.starts_with(&format!("verdict: {verdict}")),
            "{name}: {out}"
        );
        // The summary says why.
        match verdict {
            "hold" => assert!(out.contains("too few samples"), "{out}"),
            "rollback" => assert!(out.contains("error_rate"), "{out}"),
            "freeze" => assert!(out.contains("release freeze"), "{out}"),
            _ => assert!(out.contains("thresholds promote"), "{out}"),
        }
    }

    // --json prints exactly the stored record.
    let file = write(tmp.path(), "again.json", &failing_request("web", "prod"));
    let (code, out, err) = s.cli_env(&["decide", "--json", "--file", file.to_str().unwrap()], &[]);
    assert_eq!(code, 11, "{out}{err}");
    let printed: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("--json output is JSON ({e}): {out}"));
    assert_eq!(printed["verdict"], "rollback");
    assert_eq!(printed["seq"], 5);
    let stored = s.get_ok(&format!(
        "/v1/decisions/{}",
        printed["id"].as_str().unwrap()
    ));
    assert_eq!(printed, stored);

    // The request from stdin, and from flags.
    let out = std::process::Command::new(binary())
        .args(["decide", "--file", "-"])
        .env("VERDICT_SERVER", &s.base)
        .stdin(std::fs::File::open(tmp.path().join("promote.json")).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // One pushed value is one sample, below thresholds' default minimum of 5: hold.
    let (code, out, err) = s.cli_env(
        &[
            "decide",
            "--service",
            "api",
            "--environment",
            "prod",
            "--value",
            "error_rate=0.5",
        ],
        &[],
    );
    assert_eq!(code, 10, "{out}{err}");
    assert!(out.contains("error_rate"), "{out}");

    assert_eq!(
        s.get_ok("/v1/decisions?limit=1000")["items"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
}

#[test]
fn decide_errors_exit_1_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "req.json", &healthy_request("api", "prod"));
    let file = file.to_str().unwrap();

    // Nothing listening on the port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = std::process::Command::new(binary())
        .args([
            "decide",
            "--file",
            file,
            "--server",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env_remove("VERDICT_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot reach the Verdict server"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "no verdict printed when there is none"
    );

    let s = Server::start();
    // Not a request.
    let bad = write(tmp.path(), "bad.json", &json!({"deploy": {}}));
    let (code, out, err) = s.cli_env(&["decide", "--file", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("not a decision request"), "{err}");
    // A missing file.
    let (code, _, err) = s.cli_env(&["decide", "--file", "/nonexistent/req.json"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/req.json"), "{err}");
    // The server refuses it: its status and message are shown.
    let empty = write(tmp.path(), "empty.json", &healthy_request("", "prod"));
    let (code, out, err) = s.cli_env(&["decide", "--file", empty.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("422") && err.contains("`deployment.service`") && err.contains("1 to 63"),
        "{err}"
    );
    assert_eq!(s.get_ok("/v1/decisions")["items"], json!([]));
}

#[test]
fn audit_verify_export_and_replay() {
    let s = Server::start();
    let d = [
        s.decide(&healthy_request("api", "prod")),
        s.decide(&failing_request("api", "prod")),
        s.decide(&too_few_samples("web")),
    ];
    assert_eq!(
        d.iter()
            .map(|d| d["verdict"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["promote", "rollback", "hold"]
    );

    let (code, out, err) = s.cli_env(&["audit", "verify"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["checked"], 3);
    assert_eq!(report["head"], d[2]["hash"]);

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("audit.jsonl");
    let (code, out, err) = s.cli_env(&["audit", "export", "-o", file.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "one line per decision: {text}");
    for (line, expected) in lines.iter().zip(&d) {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(&v, expected, "oldest first, exactly as stored");
    }
    // To stdout as well.
    let (code, out, _) = s.cli_env(&["audit", "export"], &[]);
    assert_eq!(code, 0);
    assert_eq!(out, text);

    let (code, out, err) = s.cli_env(
        &[
            "audit",
            "query",
            "--service",
            "api",
            "--verdict",
            "rollback",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains(d[1]["id"].as_str().unwrap()) && out.contains("rollback"),
        "{out}"
    );

    // Replay exactly as recorded: unchanged, exit 0.
    for rec in &d {
        let id = rec["id"].as_str().unwrap();
        let (code, out, err) = s.cli_env(&["replay", id, "--as-recorded"], &[]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("(unchanged)"), "{out}");
        assert!(
            out.contains(&format!(
                "recorded {v}, replayed {v}",
                v = rec["verdict"].as_str().unwrap()
            )),
            "{out}"
        );
    }
    // Against a changed policy set: the diff is shown and the exit is 1.
    let (st, body) = s.json(
        "PUT",
        "/v1/bindings/thresholds",
        &json!({"policy": "thresholds", "settings": {"rules": [{"metric": "error_rate", "max": 0.0005}]}}),
    );
    assert_eq!(st, 200, "{body}");
    let (code, out, err) = s.cli_env(&["replay", d[0]["id"].as_str().unwrap()], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("(changed)") && out.contains("thresholds: promote -> rollback"),
        "{out}"
    );
    let (code, _, err) = s.cli_env(&["replay", "dec-000000000099"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
    // Replays stored nothing.
    assert_eq!(s.get_ok("/v1/audit/verify")["checked"], 3);
}

#[test]
fn policy_list_and_push() {
    let s = Server::start();
    let (code, out, err) = s.cli_env(&["policy", "list"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        [
            "canary-judge",
            "change-risk",
            "error-budget",
            "freeze-window",
            "thresholds"
        ],
        "{out}"
    );
    for line in out.lines() {
        assert!(line.contains("sha256:"), "{line}");
    }

    let wasm = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/dist/thresholds.wasm"
    );
    let (code, out, err) = s.cli_env(&["policy", "push", "my-thresholds", wasm], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("pushed my-thresholds"), "{out}");
    let (code, out, _) = s.cli_env(&["policy", "list"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.lines().any(|l| l.starts_with("my-thresholds ")),
        "{out}"
    );

    // A core module is refused with the server's explanation.
    let tmp = tempfile::tempdir().unwrap();
    let core = tmp.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let (code, out, err) = s.cli_env(&["policy", "push", "core", core.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("422") && err.contains("verdict policy build"),
        "{err}"
    );
}

/// A metric source that cannot be set up stops the start, says it is the
/// configuration (not the data dir) and what to fix, and never opens the
/// data dir.
#[test]
fn a_bad_metric_source_stops_the_start_before_the_data_dir_is_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let config = tmp.path().join("verdict.toml");
    std::fs::write(
        &config,
        r#"
[[metric_sources]]
name = "prom"
type = "prometheus"
url = "http://127.0.0.1:9"
bearer_token_file = "/nonexistent/verdict-token"
"#,
    )
    .unwrap();
    let out = std::process::Command::new(binary())
        .args(["serve", "--config"])
        .arg(&config)
        .env("VERDICT_DATA_DIR", &data_dir)
        .env("VERDICT_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("invalid configuration"), "{err}");
    assert!(err.contains("bearer_token_file"), "{err}");
    assert!(!err.contains("cannot open data dir"), "{err}");
    assert!(!data_dir.join("store").exists(), "the store was opened");
}
