//! Fuel the canary judge spends, from the plain component and from its
//! pre-initialised snapshot, with the built-in's default binding, on the
//! benchmark's two requests (`benches/decide.rs`: 2 series × 40 samples, and
//! 10 metrics × 1,000 samples per side whose samples take 23 distinct values
//! per metric and side) and on a "smooth" variant of the large one whose
//! samples are all distinct. Fuel is deterministic, so unlike a timing it can
//! be compared across machines and runs (the fastest of a few timed runs is
//! printed beside it as a hint).
//!
//! A measurement, not a test: `cargo bench -p verdict --bench judge_fuel`.
//! `JUDGE_WASM=<component>` measures another build of the judge instead of
//! the embedded built-in; `JUDGE_ANSWERS=<file>` writes each answer
//! (verdict, reasons, log), on the three requests and on every fixture of
//! `policies/canary-judge/fixtures`, as JSON: to compare two builds' outputs.

use std::sync::Arc;

use jiff::Timestamp;
use verdict::builtin::{default_binding, BUILTINS};
use verdict::cli::fixtures::{Fixture, DEFAULT_FIXTURE_TIME};
use verdict::domain::PolicyResult;
use verdict::engine::{ActiveBinding, ActiveSet, Engine};

mod common;
use common::{large_request, request as small_request, smooth_request};

fn answer(r: &PolicyResult) -> serde_json::Value {
    serde_json::json!({
        "verdict": r.verdict,
        "abstained": r.abstained,
        "reasons": r.reasons,
        "error": r.error,
        "log": r.log,
    })
}

/// Evaluations timed per request and mode.
const TIMED: usize = 15;

fn main() {
    let bytes = match std::env::var("JUDGE_WASM") {
        Ok(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        Err(_) => BUILTINS
            .iter()
            .find(|b| b.name == "canary-judge")
            .expect("built-in")
            .component
            .to_vec(),
    };
    let engine = Engine::new(None).expect("engine");
    let policy = Arc::new(engine.compile("canary-judge", &bytes).expect("compiles"));
    let binding = default_binding("canary-judge");
    let active = ActiveBinding::new("canary-judge", binding.clone(), policy.clone());
    let now: Timestamp = "2026-03-03T10:00:00Z".parse().unwrap();
    let mut answers = serde_json::Map::new();
    for snapshot in [false, true] {
        if snapshot {
            let built = engine
                .runtime()
                .prepare(&policy, &binding.settings.to_string(), &binding.limits)
                .expect("snapshot");
            assert!(built, "the judge exports `preinit`");
        }
        let requests = [
            ("2x40", small_request()),
            ("10x1000", large_request()),
            ("smooth", smooth_request()),
        ];
        for (label, req) in requests {
            let eval = engine
                .evaluate_with(&ActiveSet::default(), &[&active], req.clone(), now, false)
                .expect("decides");
            let p = &eval.policies[0];
            assert!(p.error.is_none(), "{:?}", p.error);
            // The fastest of a few runs, as the sandbox timed them: only a
            // hint (a busy machine, a debug build of the host around the
            // guest code Cranelift compiles the same either way).
            let fastest = (0..TIMED)
                .map(|_| {
                    let eval = engine
                        .evaluate_with(&ActiveSet::default(), &[&active], req.clone(), now, false)
                        .expect("decides");
                    eval.policies[0].duration_us
                })
                .min()
                .unwrap_or(p.duration_us);
            let mode = if snapshot { "snapshot" } else { "plain" };
            eprintln!(
                "canary-judge {label:<8} {mode:<9} fuel {:>11}  {fastest:>6} µs  {:?}",
                p.fuel_used, p.verdict
            );
            answers.insert(format!("{label} {mode}"), answer(p));
        }
    }
    if let Ok(path) = std::env::var("JUDGE_ANSWERS") {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../policies/canary-judge/fixtures");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        let fixture_time: Timestamp = DEFAULT_FIXTURE_TIME.parse().unwrap();
        for path in paths {
            let f: Fixture =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let binding = verdict::domain::Binding {
                settings: f
                    .settings
                    .clone()
                    .unwrap_or_else(|| binding.settings.clone()),
                limits: f.limits.unwrap_or_default(),
                ..binding.clone()
            };
            let active = ActiveBinding::new("canary-judge", binding, policy.clone());
            let eval = engine
                .evaluate_with(
                    &ActiveSet::default(),
                    &[&active],
                    f.input,
                    fixture_time,
                    false,
                )
                .expect("decides");
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            answers.insert(name, answer(&eval.policies[0]));
        }
        let text = serde_json::to_string_pretty(&answers).unwrap();
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}
