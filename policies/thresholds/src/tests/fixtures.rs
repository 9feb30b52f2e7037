//! Runs every `fixtures/*.json` natively, so `cargo test` checks the fixtures
//! before `verdict policy test` runs them through the real sandbox. Only the
//! fields these policies read are mapped; time is not used by them.

use serde_json::Value;
use verdict_sdk::{Input, Metric, Outcome, Verdict};

fn num(v: &Value) -> f64 {
    // JSON has no NaN: the host reads a null sample as NaN, and so do we.
    v.as_f64().unwrap_or(f64::NAN)
}

fn samples(m: &Value, key: &str) -> Vec<f64> {
    m[key]
        .as_array()
        .map(|xs| xs.iter().map(num).collect())
        .unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|xs| {
            xs.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn to_input(f: &Value) -> Input {
    let i = &f["input"];
    let d = &i["deployment"];
    let mut input = Input::default();
    input.deployment.service = d["service"].as_str().unwrap_or_default().into();
    input.deployment.environment = d["environment"].as_str().unwrap_or_default().into();
    input.deployment.version = d["version"].as_str().unwrap_or_default().into();
    input.deployment.stage = d["stage"].as_str().map(String::from);
    input.deployment.traffic_percent = d["traffic_percent"].as_f64();
    input.change.labels = strings(&i["change"]["labels"]);
    input.change.paths = strings(&i["change"]["paths"]);
    input.metrics = i["metrics"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| Metric {
                    name: m["name"].as_str().unwrap_or_default().into(),
                    unit: m["unit"].as_str().map(String::from),
                    baseline: samples(m, "baseline"),
                    canary: samples(m, "canary"),
                    value: m["value"].as_f64(),
                })
                .collect()
        })
        .unwrap_or_default();
    input.settings = match &f["settings"] {
        Value::Null => "{}".into(),
        s => s.to_string(),
    };
    input
}

fn verdict_name(o: &Outcome) -> &'static str {
    match o.verdict() {
        None => "abstain",
        Some(Verdict::Promote) => "promote",
        Some(Verdict::Hold) => "hold",
        Some(Verdict::Rollback) => "rollback",
        Some(Verdict::Freeze) => "freeze",
    }
}

/// Run every fixture through `evaluate`; panics listing all failures.
pub fn run_all(evaluate: fn(Input) -> Result<Outcome, String>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 8,
        "at least 8 fixtures, found {}",
        paths.len()
    );
    let mut failures = Vec::new();
    for p in &paths {
        let f: Value =
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).expect("fixture JSON");
        for key in ["description", "input", "expect"] {
            assert!(!f[key].is_null(), "{}: missing {key}", p.display());
        }
        let name = p.file_name().unwrap().to_string_lossy();
        match evaluate(to_input(&f)) {
            Err(e) => failures.push(format!("{name}: error {e}")),
            Ok(o) => {
                let got = verdict_name(&o);
                let want = f["expect"].as_str().unwrap_or_default();
                let needle = f["reason_contains"].as_str().unwrap_or_default();
                if got != want || !o.messages().contains(needle) {
                    failures.push(format!(
                        "{name}: want {want} ({needle:?}), got {got}: {}",
                        o.messages()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
