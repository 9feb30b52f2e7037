//! Runs every `fixtures/*.json` natively through the policy's exports, the way
//! `verdict policy test` runs them through the sandbox, so a fixture that no
//! longer matches the code fails `cargo test` too.
//!
//! Fixture shape: `{description, input: {deployment, change?, metrics?, time?},
//! settings?, expect, reason_contains?}`; `time` is RFC 3339 (default
//! 2026-01-01T00:00:00Z, as in the host). `expect: "error"` means the settings
//! must be refused, with `reason_contains` in the error message.

use serde_json::Value;
use std::path::Path;
use verdict_sdk::*;

type Evaluate = fn(Input) -> Result<Outcome, String>;

#[test]
fn fixtures_pass() {
    run_dir(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")),
        change_risk::ChangeRisk::evaluate,
    );
}

fn run_dir(dir: &Path, evaluate: Evaluate) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    assert!(
        files.len() >= 8,
        "expected at least 8 fixtures in {}",
        dir.display()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| run_one(f, evaluate).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

fn run_one(file: &Path, evaluate: Evaluate) -> Result<(), String> {
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap())
        .map_err(|e| format!("{name}: {e}"))?;
    let input = to_input(&doc).map_err(|e| format!("{name}: {e}"))?;
    let expect = doc["expect"].as_str().unwrap_or("");
    let outcome = match (evaluate(input), expect) {
        (Err(e), "error") => return check_reason(&name, &doc, &e),
        (Err(e), _) => return Err(format!("{name}: evaluate returned error: {e}")),
        (Ok(o), "error") => return Err(format!("{name}: expected an error, got {}", o.messages())),
        (Ok(o), _) => o,
    };
    let got = match outcome.verdict() {
        None => "abstain",
        Some(Verdict::Promote) => "promote",
        Some(Verdict::Hold) => "hold",
        Some(Verdict::Rollback) => "rollback",
        Some(Verdict::Freeze) => "freeze",
    };
    let messages = outcome.messages();
    if got != expect {
        return Err(format!("{name}: expected {expect}, got {got}: {messages}"));
    }
    check_reason(&name, &doc, &messages)
}

fn check_reason(name: &str, doc: &Value, messages: &str) -> Result<(), String> {
    match doc["reason_contains"].as_str() {
        Some(needle) if !messages.contains(needle) => {
            Err(format!("{name}: no reason contains `{needle}`: {messages}"))
        }
        _ => Ok(()),
    }
}

fn to_input(doc: &Value) -> Result<Input, String> {
    let i = &doc["input"];
    let s = |v: &Value| v.as_str().map(String::from);
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(&s).collect())
            .unwrap_or_default()
    };
    let nums = |v: &Value| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let n = |v: &Value| v.as_u64().unwrap_or(0) as u32;
    let (d, c) = (&i["deployment"], &i["change"]);
    let now_unix_ms = match i["time"].as_str() {
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .map_err(|e| format!("bad time `{t}`: {e}"))?
            .as_millisecond(),
        None => 1_767_225_600_000, // 2026-01-01T00:00:00Z
    };
    Ok(Input {
        deployment: Deployment {
            service: s(&d["service"]).unwrap_or_default(),
            environment: s(&d["environment"]).unwrap_or_default(),
            version: s(&d["version"]).unwrap_or_default(),
            previous_version: s(&d["previous_version"]),
            region: s(&d["region"]),
            stage: s(&d["stage"]),
            traffic_percent: d["traffic_percent"].as_f64(),
        },
        change: Change {
            commit: s(&c["commit"]),
            author: s(&c["author"]),
            title: s(&c["title"]),
            files_changed: n(&c["files_changed"]),
            lines_added: n(&c["lines_added"]),
            lines_removed: n(&c["lines_removed"]),
            paths: list(&c["paths"]),
            labels: list(&c["labels"]),
            ticket: s(&c["ticket"]),
            risk: s(&c["risk"]),
        },
        metrics: i["metrics"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .map(|m| Metric {
                        name: s(&m["name"]).unwrap_or_default(),
                        unit: s(&m["unit"]),
                        baseline: nums(&m["baseline"]),
                        canary: nums(&m["canary"]),
                        value: m["value"].as_f64(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        now_unix_ms,
        settings: doc.get("settings").map_or("{}".into(), |v| v.to_string()),
    })
}
