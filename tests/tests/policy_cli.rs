//! The policy author's commands as an author runs them: `verdict policy
//! new`, `policy build` and `policy test`, with their exit codes. The
//! fixture runner must fail (exit 1, naming the file and why) on a fixture
//! that expects the wrong verdict or a reason the policy never gave. (The
//! scaffolds of all three languages are built, tested and pushed from the
//! binary alone in `authoring.rs`.)

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use verdict_e2e::binary;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `verdict args…` in `cwd`; returns (exit code, stdout + stderr).
fn verdict(args: &[&str], cwd: &Path) -> (i32, String) {
    let out = Command::new(binary())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run verdict");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn write_fixture(dir: &Path, name: &str, doc: serde_json::Value) {
    std::fs::write(dir.join(name), serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

/// A request the `thresholds` built-in rolls back under `max: 0.01`.
fn high_error_rate() -> serde_json::Value {
    json!({
        "deployment": {"service": "checkout", "environment": "production", "version": "v2"},
        "metrics": [{"name": "error_rate", "canary": [0.05, 0.06, 0.05, 0.04, 0.05, 0.06]}]
    })
}

#[test]
fn policy_test_fails_on_a_wrong_expect_or_a_missing_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let component = repo().join("policies/dist/thresholds.wasm");
    let component = component.to_str().unwrap();
    let fixtures = tmp.path().join("fixtures");
    std::fs::create_dir(&fixtures).unwrap();
    let settings = json!({"rules": [{"metric": "error_rate", "max": 0.01}]});
    write_fixture(
        &fixtures,
        "a-right.json",
        json!({"description": "right", "input": high_error_rate(), "settings": settings,
               "expect": "rollback", "reason_contains": "error_rate"}),
    );
    let fx = fixtures.to_str().unwrap();
    let (code, out) = verdict(&["policy", "test", component, fx], tmp.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok    a-right.json"), "{out}");
    assert!(out.ends_with("1 passed, 0 failed\n"), "{out}");

    write_fixture(
        &fixtures,
        "b-wrong-expect.json",
        json!({"description": "wrong", "input": high_error_rate(), "settings": settings,
               "expect": "promote"}),
    );
    write_fixture(
        &fixtures,
        "c-missing-reason.json",
        json!({"description": "wrong reason", "input": high_error_rate(), "settings": settings,
               "expect": "rollback", "reason_contains": "latency_p99"}),
    );
    write_fixture(
        &fixtures,
        "d-settings-not-refused.json",
        json!({"description": "valid settings", "input": high_error_rate(), "settings": settings,
               "expect": "error"}),
    );
    let (code, out) = verdict(&["policy", "test", component, fx], tmp.path());
    assert_eq!(code, 1, "a failing fixture must fail the command: {out}");
    assert!(out.contains("ok    a-right.json"), "{out}");
    assert!(
        out.contains("FAIL  b-wrong-expect.json: expected promote, got rollback"),
        "{out}"
    );
    assert!(
        out.contains(
            "FAIL  c-missing-reason.json: no reason contains `latency_p99`; reasons were: "
        ),
        "{out}"
    );
    assert!(
        out.contains(
            // Accepted settings and a vote: neither a refusal nor a failure.
            "FAIL  d-settings-not-refused.json: expected error, got rollback"
        ),
        "{out}"
    );
    assert!(out.ends_with("1 passed, 3 failed\n"), "{out}");

    // Not a fixture at all: a failure too, never a silent skip.
    std::fs::write(fixtures.join("e-broken.json"), "{ not json").unwrap();
    let (code, out) = verdict(&["policy", "test", component, fx], tmp.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  e-broken.json: not a valid fixture: "),
        "{out}"
    );

    // An empty directory is an error, not "0 passed".
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, out) = verdict(
        &["policy", "test", component, empty.to_str().unwrap()],
        tmp.path(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no fixture files (*.json) in"), "{out}");
}

#[test]
fn policy_new_refuses_bad_names_and_existing_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out) = verdict(&["policy", "new", "Bad Name"], tmp.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("invalid policy name `Bad Name`"), "{out}");
    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    let (code, out) = verdict(&["policy", "new", "taken"], tmp.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("`taken` already exists"), "{out}");
    let (code, out) = verdict(&["policy", "build", "taken"], tmp.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`taken` is not a policy project: expected Cargo.toml (Rust), pyproject.toml (Python) or package.json"),
        "{out}"
    );
}
