//! `verdict policy test`: run fixture files through the real sandbox, like
//! `opa test`. A fixture is a JSON file:
//!
//! ```json
//! { "description": "…", "input": { <body of POST /v1/decisions> },
//!   "settings": { … }, "expect": "promote|hold|rollback|freeze|abstain|error",
//!   "reason_contains": "…" }
//! ```
//!
//! `expect: "error"` means the policy must refuse the settings, or accept
//! them and then fail the evaluation (return an error, trap, or exceed a
//! limit); `reason_contains` must then appear in the error message.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use serde::Deserialize;

use crate::domain::{Binding, DecisionRequest, Limits, Mode, OnError, PolicyResult, Selector};
use crate::engine::{ActiveBinding, ActiveSet, CompiledPolicy, Engine};

/// The instant a fixture is decided at when its input carries no `time`,
/// fixed so fixtures never depend on the day they run.
pub const DEFAULT_FIXTURE_TIME: &str = "2026-01-01T00:00:00Z";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    #[serde(default)]
    pub description: Option<String>,
    pub input: DecisionRequest,
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
    pub expect: String,
    #[serde(default)]
    pub reason_contains: Option<String>,
    #[serde(default)]
    pub limits: Option<Limits>,
}

/// The result of one fixture: `None` if it passed, else what went wrong.
pub struct FixtureRun {
    pub file: PathBuf,
    pub failure: Option<String>,
}

pub struct Summary {
    pub runs: Vec<FixtureRun>,
}

impl Summary {
    pub fn passed(&self) -> usize {
        self.runs.iter().filter(|r| r.failure.is_none()).count()
    }
    pub fn failed(&self) -> usize {
        self.runs.len() - self.passed()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read `{path}`: {message}")]
    Read { path: PathBuf, message: String },
    #[error("no fixture files (*.json) in `{0}`")]
    Empty(PathBuf),
}

/// Run every `*.json` fixture in `dir` (sorted by name) against `policy`.
pub fn run_dir(
    engine: &Engine,
    policy: Arc<CompiledPolicy>,
    dir: &Path,
) -> Result<Summary, FixtureError> {
    let read_err = |path: &Path, e: &dyn std::fmt::Display| FixtureError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| read_err(dir, &e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(FixtureError::Empty(dir.to_path_buf()));
    }
    let mut runs = Vec::new();
    for file in files {
        let failure = match std::fs::read_to_string(&file) {
            Err(e) => Some(format!("cannot read: {e}")),
            Ok(text) => match serde_json::from_str::<Fixture>(&text) {
                Err(e) => Some(format!("not a valid fixture: {e}")),
                Ok(fixture) => check(engine, &policy, &fixture).err(),
            },
        };
        runs.push(FixtureRun { file, failure });
    }
    Ok(Summary { runs })
}

/// Run one fixture; `Err` describes the mismatch, with the policy's reasons.
pub fn check(engine: &Engine, policy: &Arc<CompiledPolicy>, f: &Fixture) -> Result<(), String> {
    let binding = Binding {
        policy: policy.info.name.clone(),
        selector: Selector::default(),
        mode: Mode::Enforce,
        on_error: OnError::Hold,
        settings: f
            .settings
            .clone()
            .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
        limits: f.limits.unwrap_or_else(|| policy.default_limits()),
    };
    let settings_check = engine
        .runtime()
        .validate_settings(policy, &binding.settings.to_string(), &binding.limits)
        .map_err(|e| format!("host error: {e}"))?;
    match (settings_check, f.expect == "error") {
        (Err(msg), true) => return match_reason(f, std::slice::from_ref(&msg)),
        (Err(msg), false) => return Err(format!("settings rejected: {msg}")),
        (Ok(()), _) => {}
    }

    let active = ActiveBinding::new(&policy.info.name, binding, policy.clone());
    let now: Timestamp = DEFAULT_FIXTURE_TIME.parse().expect("constant timestamp");
    let eval = engine
        .evaluate_with(
            &ActiveSet::default(),
            &[&active],
            f.input.clone(),
            now,
            false,
        )
        .map_err(|e| format!("host error: {e}"))?;
    let result = &eval.policies[0];
    let got = describe_outcome(result);
    if let (Some(e), "error") = (&result.error, f.expect.as_str()) {
        return match_reason(f, std::slice::from_ref(&e.message))
            .map_err(|m| format!("{m}{}", explain(result)));
    }
    if got != f.expect {
        return Err(format!(
            "expected {}, got {got}{}",
            f.expect,
            explain(result)
        ));
    }
    let messages: Vec<String> = match &result.abstained {
        Some(why) => vec![why.clone()],
        None => result.reasons.iter().map(|r| r.message.clone()).collect(),
    };
    match_reason(f, &messages).map_err(|e| format!("{e}{}", explain(result)))
}

fn describe_outcome(r: &PolicyResult) -> String {
    if r.error.is_some() {
        "error".into()
    } else if r.abstained.is_some() {
        "abstain".into()
    } else {
        r.verdict.map(|v| v.to_string()).unwrap_or_default()
    }
}

fn match_reason(f: &Fixture, messages: &[String]) -> Result<(), String> {
    match &f.reason_contains {
        Some(want) if !messages.iter().any(|m| m.contains(want.as_str())) => Err(format!(
            "no reason contains `{want}`; reasons were: {}",
            messages.join(" | ")
        )),
        _ => Ok(()),
    }
}

/// The policy's own words, indented under a failure line.
fn explain(r: &PolicyResult) -> String {
    let mut s = String::new();
    if let Some(e) = &r.error {
        let _ = write!(s, "\n        error ({}): {}", e.kind.as_str(), e.message);
    }
    if let Some(why) = &r.abstained {
        let _ = write!(s, "\n        abstained: {why}");
    }
    for reason in &r.reasons {
        let _ = write!(s, "\n        - {}", reason.message);
    }
    for line in &r.log {
        let _ = write!(s, "\n        log {line}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_format_parses_with_defaults() {
        let f: Fixture = serde_json::from_str(
            r#"{"input": {"deployment": {"service": "a", "environment": "prod"}}, "expect": "abstain"}"#,
        )
        .unwrap();
        assert_eq!(f.expect, "abstain");
        assert!(f.settings.is_none());
        assert!(f.input.metrics.is_empty());
    }

    #[test]
    fn fixture_with_a_typo_is_refused() {
        let err = serde_json::from_str::<Fixture>(
            r#"{"input": {"deployment": {"service": "a", "environment": "p"}}, "expected": "hold"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
    }
}
