//! Run a policy's `fixtures/*.json` natively, the way `verdict policy test`
//! runs them through the sandbox, so a fixture that no longer matches the code
//! fails a plain `cargo test` too. Compiled only off wasm.
//!
//! ```ignore
//! #[test]
//! fn fixtures_pass() {
//!     let n = verdict_sdk::testing::run_fixtures::<MyPolicy>(
//!         concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"),
//!     );
//!     assert!(n >= 8, "expected at least 8 fixtures, found {n}");
//! }
//! ```
//!
//! A fixture (the format of the host's `cli/fixtures.rs`):
//!
//! ```json
//! { "description": "…", "input": { <body of POST /v1/decisions> },
//!   "settings": { … }, "expect": "promote|hold|rollback|freeze|abstain|error",
//!   "reason_contains": "…" }
//! ```
//!
//! As in the host: unknown fields are refused; `input.time` is RFC 3339 and
//! defaults to [`DEFAULT_FIXTURE_TIME`]; a `null` sample reaches the policy as
//! NaN; the settings (default `{}`) go through `validate_settings` first, and
//! `expect: "error"` means they must be refused, with `reason_contains` in the
//! message; otherwise `reason_contains` must appear in one reason (or in the
//! abstention). Unlike the host, a fixture must also carry a `description`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::{Change, Deployment, Input, Metric, Outcome, Policy, Verdict};

/// The instant a fixture is decided at when its input carries no `time`
/// (the host's `DEFAULT_FIXTURE_TIME`).
pub const DEFAULT_FIXTURE_TIME: &str = "2026-01-01T00:00:00Z";

/// One fixture file, parsed.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub description: Option<String>,
    /// The request as the policy sees it, settings included.
    pub input: Input,
    pub expect: String,
    pub reason_contains: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureDoc {
    #[serde(default)]
    description: Option<String>,
    input: RequestDoc,
    #[serde(default)]
    settings: Option<Value>,
    expect: String,
    #[serde(default)]
    reason_contains: Option<String>,
    /// Sandbox limits: meaningful only to the host, accepted and ignored here.
    #[serde(default)]
    #[allow(dead_code)]
    limits: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RequestDoc {
    deployment: DeploymentDoc,
    #[serde(default)]
    change: ChangeDoc,
    #[serde(default)]
    metrics: Vec<MetricDoc>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    args: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentDoc {
    service: String,
    environment: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    previous_version: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    traffic_percent: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ChangeDoc {
    commit: Option<String>,
    author: Option<String>,
    title: Option<String>,
    files_changed: u32,
    lines_added: u32,
    lines_removed: u32,
    paths: Vec<String>,
    labels: Vec<String>,
    ticket: Option<String>,
    risk: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricDoc {
    name: String,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    baseline: Vec<Option<f64>>,
    #[serde(default)]
    canary: Vec<Option<f64>>,
    #[serde(default)]
    value: Option<f64>,
}

/// Milliseconds since the Unix epoch of an RFC 3339 time, parsed as the host
/// parses `input.time`.
pub fn unix_ms(time: &str) -> Result<i64, String> {
    time.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| format!("bad time `{time}`: {e}"))
}

impl Fixture {
    /// Parse a fixture document.
    pub fn from_value(doc: &Value) -> Result<Fixture, String> {
        let f = FixtureDoc::deserialize(doc).map_err(|e| format!("not a valid fixture: {e}"))?;
        let RequestDoc {
            deployment: d,
            change: c,
            metrics,
            time,
            ..
        } = f.input;
        let now_unix_ms = unix_ms(time.as_deref().unwrap_or(DEFAULT_FIXTURE_TIME))?;
        // JSON has no NaN: the host reads a null sample as NaN, and so do we.
        let samples = |xs: Vec<Option<f64>>| -> Vec<f64> {
            xs.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect()
        };
        let input = Input {
            deployment: Deployment {
                service: d.service,
                environment: d.environment,
                version: d.version,
                previous_version: d.previous_version,
                region: d.region,
                stage: d.stage,
                traffic_percent: d.traffic_percent,
            },
            change: Change {
                commit: c.commit,
                author: c.author,
                title: c.title,
                files_changed: c.files_changed,
                lines_added: c.lines_added,
                lines_removed: c.lines_removed,
                paths: c.paths,
                labels: c.labels,
                ticket: c.ticket,
                risk: c.risk,
            },
            metrics: metrics
                .into_iter()
                .map(|m| Metric {
                    name: m.name,
                    unit: m.unit,
                    baseline: samples(m.baseline),
                    canary: samples(m.canary),
                    value: m.value,
                })
                .collect(),
            now_unix_ms,
            settings: f
                .settings
                .map_or_else(|| "{}".to_string(), |v| v.to_string()),
        };
        Ok(Fixture {
            description: f.description,
            input,
            expect: f.expect,
            reason_contains: f.reason_contains,
        })
    }

    /// Read and parse a fixture file.
    pub fn read(path: &Path) -> Result<Fixture, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        let doc: Value =
            serde_json::from_str(&text).map_err(|e| format!("not a valid fixture: {e}"))?;
        Fixture::from_value(&doc)
    }

    /// Run this fixture against `P`: `Ok` with what was decided and why,
    /// `Err` with the mismatch and the policy's reasons.
    pub fn check<P: Policy>(&self) -> Result<String, String> {
        if self
            .description
            .as_deref()
            .is_none_or(|d| d.trim().is_empty())
        {
            return Err("missing description".into());
        }
        let settings_check = P::validate_settings(self.input.settings.clone());
        if self.expect == "error" {
            return match settings_check {
                Err(msg) => self
                    .match_reason(std::slice::from_ref(&msg))
                    .map(|()| format!("error: {msg}")),
                Ok(()) => {
                    Err("expected the settings to be rejected, but they were accepted".into())
                }
            };
        }
        settings_check.map_err(|msg| format!("settings rejected: {msg}"))?;
        let outcome = P::evaluate(self.input.clone())
            .map_err(|e| format!("expected {}, got error: {e}", self.expect))?;
        let got = verdict_name(&outcome);
        if got != self.expect {
            return Err(format!(
                "expected {}, got {got}: {}",
                self.expect,
                outcome.messages()
            ));
        }
        let messages: Vec<String> = match &outcome {
            Outcome::Abstain(why) => vec![why.clone()],
            Outcome::Vote(d) => d.reasons.iter().map(|r| r.message.clone()).collect(),
        };
        self.match_reason(&messages)?;
        Ok(format!("{got}: {}", outcome.messages()))
    }

    fn match_reason(&self, messages: &[String]) -> Result<(), String> {
        match &self.reason_contains {
            Some(want) if !messages.iter().any(|m| m.contains(want.as_str())) => Err(format!(
                "no reason contains `{want}`; reasons were: {}",
                messages.join(" | ")
            )),
            _ => Ok(()),
        }
    }
}

/// The fixture's `input` as the policy receives it (settings and time
/// included), e.g. to recompute a statistic on fixture data.
pub fn fixture_input(doc: &Value) -> Result<Input, String> {
    Fixture::from_value(doc).map(|f| f.input)
}

/// The word a fixture's `expect` uses for an outcome.
pub fn verdict_name(o: &Outcome) -> &'static str {
    match o.verdict() {
        None => "abstain",
        Some(Verdict::Promote) => "promote",
        Some(Verdict::Hold) => "hold",
        Some(Verdict::Rollback) => "rollback",
        Some(Verdict::Freeze) => "freeze",
    }
}

/// The `*.json` files in `dir`, sorted by name.
pub fn fixture_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read fixtures dir {}: {e}", dir.display()))
        .map(|e| e.expect("fixtures dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Run every fixture in `dir` against `P`: the number of fixtures, and one
/// line per failure (`file: what went wrong`).
pub fn check_fixtures<P: Policy>(dir: impl AsRef<Path>) -> (usize, Vec<String>) {
    let files = fixture_files(dir.as_ref());
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        match Fixture::read(file).and_then(|f| f.check::<P>()) {
            // Visible with `cargo test -- --nocapture`: what each fixture decided and why.
            Ok(summary) => println!("{name}: {summary}"),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    (files.len(), failures)
}

/// Run every fixture in `dir` against `P` and panic listing all failures (or
/// if there are none); returns how many fixtures passed.
pub fn run_fixtures<P: Policy>(dir: impl AsRef<Path>) -> usize {
    let dir = dir.as_ref();
    let (total, failures) = check_fixtures::<P>(dir);
    assert!(total > 0, "no fixture files (*.json) in {}", dir.display());
    assert!(
        failures.is_empty(),
        "{} of {total} fixtures in {} failed:\n{}",
        failures.len(),
        dir.display(),
        failures.join("\n")
    );
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn time_is_rfc3339_with_the_host_default() {
        assert_eq!(unix_ms(DEFAULT_FIXTURE_TIME), Ok(1_767_225_600_000));
        assert_eq!(unix_ms("2026-03-02T10:00:00Z"), Ok(1_772_445_600_000));
        assert_eq!(unix_ms("2026-03-02T11:00:00+01:00"), Ok(1_772_445_600_000));
        assert_eq!(unix_ms("2026-03-02T10:00:00.250Z"), Ok(1_772_445_600_250));
        assert!(unix_ms("2026-03-02 tomorrow").is_err());
        let f = Fixture::from_value(&json!({
            "input": {"deployment": {"service": "a", "environment": "prod"}},
            "expect": "abstain"
        }))
        .unwrap();
        assert_eq!(f.input.now_unix_ms, 1_767_225_600_000);
        assert_eq!(f.input.settings, "{}");
    }

    #[test]
    fn fixture_maps_every_field_and_null_samples_to_nan() {
        let f = Fixture::from_value(&json!({
            "description": "d",
            "input": {
                "deployment": {"service": "api", "environment": "prod", "version": "v2",
                    "previous_version": "v1", "region": "eu", "stage": "canary",
                    "traffic_percent": 5.0},
                "change": {"commit": "abc", "files_changed": 3, "lines_added": 10,
                    "lines_removed": 2, "paths": ["a.rs"], "labels": ["hotfix"],
                    "ticket": "T-1", "risk": "high"},
                "metrics": [{"name": "m", "unit": "ms", "baseline": [1.0, null],
                    "canary": [2.0], "value": 0.5}],
                "time": "2026-03-02T10:00:00Z",
                "args": {"k": "v"}
            },
            "settings": {"x": 1},
            "expect": "hold",
            "reason_contains": "why"
        }))
        .unwrap();
        let i = &f.input;
        assert_eq!(i.deployment.service, "api");
        assert_eq!(i.deployment.previous_version.as_deref(), Some("v1"));
        assert_eq!(i.deployment.traffic_percent, Some(5.0));
        assert_eq!(i.change.files_changed, 3);
        assert_eq!(i.change.labels, ["hotfix"]);
        assert_eq!(i.change.risk.as_deref(), Some("high"));
        let m = i.metric("m").unwrap();
        assert_eq!(m.baseline[0], 1.0);
        assert!(m.baseline[1].is_nan());
        assert_eq!(m.value, Some(0.5));
        assert_eq!(i.now_unix_ms, 1_772_445_600_000);
        assert_eq!(i.settings, r#"{"x":1}"#);
        assert_eq!(f.expect, "hold");
        assert_eq!(f.reason_contains.as_deref(), Some("why"));
    }

    /// Rolls back whenever it is asked, for a known reason: the runner
    /// must notice when a fixture expects anything else.
    struct AlwaysRollback;

    impl Policy for AlwaysRollback {
        fn describe() -> crate::Info {
            crate::Info::new("always-rollback", "0.0.0", "test double")
        }
        fn validate_settings(settings: String) -> Result<(), String> {
            if settings.contains("bad") {
                return Err("setting `bad` is not allowed".into());
            }
            Ok(())
        }
        fn evaluate(_: Input) -> Result<Outcome, String> {
            Ok(Outcome::rollback(vec![crate::Reason::new(
                "error_rate 5% over 1%",
            )]))
        }
    }

    fn fixture(expect: &str, reason_contains: Option<&str>, settings: Value) -> Fixture {
        let mut doc = json!({
            "description": "d",
            "input": {"deployment": {"service": "a", "environment": "prod"}},
            "settings": settings,
            "expect": expect,
        });
        if let Some(r) = reason_contains {
            doc["reason_contains"] = json!(r);
        }
        Fixture::from_value(&doc).unwrap()
    }

    #[test]
    fn a_matching_fixture_passes() {
        let f = fixture("rollback", Some("over 1%"), json!({}));
        assert_eq!(
            f.check::<AlwaysRollback>(),
            Ok("rollback: error_rate 5% over 1%".into())
        );
        let f = fixture("error", Some("`bad`"), json!({"bad": 1}));
        assert!(f.check::<AlwaysRollback>().is_ok());
    }

    #[test]
    fn a_wrong_expect_is_rejected() {
        let err = fixture("promote", None, json!({}))
            .check::<AlwaysRollback>()
            .unwrap_err();
        assert_eq!(err, "expected promote, got rollback: error_rate 5% over 1%");
        let err = fixture("error", None, json!({}))
            .check::<AlwaysRollback>()
            .unwrap_err();
        assert_eq!(
            err,
            "expected the settings to be rejected, but they were accepted"
        );
    }

    #[test]
    fn a_missing_reason_is_rejected() {
        let err = fixture("rollback", Some("latency"), json!({}))
            .check::<AlwaysRollback>()
            .unwrap_err();
        assert_eq!(
            err,
            "no reason contains `latency`; reasons were: error_rate 5% over 1%"
        );
        let err = fixture("error", Some("worse"), json!({"bad": 1}))
            .check::<AlwaysRollback>()
            .unwrap_err();
        assert!(err.starts_with("no reason contains `worse`"), "{err}");
    }

    #[test]
    fn a_fixture_without_description_is_rejected() {
        let mut f = fixture("rollback", None, json!({}));
        f.description = None;
        assert_eq!(
            f.check::<AlwaysRollback>().unwrap_err(),
            "missing description"
        );
    }

    /// The directory runner counts and reports every failing file, and
    /// `run_fixtures` panics naming them.
    #[test]
    fn the_directory_runner_reports_each_failure_and_panics() {
        let dir = std::env::temp_dir().join(format!("verdict-sdk-fixtures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, expect: &str, reason: Option<&str>| {
            let mut doc = json!({
                "description": name,
                "input": {"deployment": {"service": "a", "environment": "prod"}},
                "expect": expect,
            });
            if let Some(r) = reason {
                doc["reason_contains"] = json!(r);
            }
            std::fs::write(dir.join(name), doc.to_string()).unwrap();
        };
        write("a-good.json", "rollback", Some("error_rate"));
        write("b-wrong-expect.json", "hold", None);
        write("c-wrong-reason.json", "rollback", Some("latency"));
        let (total, failures) = check_fixtures::<AlwaysRollback>(&dir);
        assert_eq!(total, 3);
        assert_eq!(
            failures,
            [
                "b-wrong-expect.json: expected hold, got rollback: error_rate 5% over 1%",
                "c-wrong-reason.json: no reason contains `latency`; reasons were: error_rate 5% over 1%",
            ]
        );
        let panic = std::panic::catch_unwind(|| run_fixtures::<AlwaysRollback>(&dir)).unwrap_err();
        let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(text.starts_with("2 of 3 fixtures in "), "{text}");
        assert!(
            text.contains("b-wrong-expect.json") && text.contains("c-wrong-reason.json"),
            "{text}"
        );
    }

    #[test]
    fn typos_and_missing_fields_are_refused_as_in_the_host() {
        let bad = [
            json!({"input": {"deployment": {"service": "a", "environment": "p"}}, "expected": "hold"}),
            json!({"input": {"deployment": {"service": "a", "environment": "p", "team": "x"}}, "expect": "hold"}),
            json!({"input": {"deployment": {"service": "a"}}, "expect": "hold"}),
            json!({"input": {"deployment": {"service": "a", "environment": "p"}, "time": "soon"}, "expect": "hold"}),
            json!({"expect": "hold"}),
        ];
        for doc in bad {
            assert!(Fixture::from_value(&doc).is_err(), "{doc}");
        }
    }
}
