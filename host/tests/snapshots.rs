//! Pre-initialised snapshots (`engine/snapshot.rs`) change nothing but the
//! cost: every built-in's fixtures decided from a snapshot give the very
//! result (verdict, reasons, abstention, error) they give from the plain
//! component, evaluation after evaluation (no state survives from one
//! evaluation to the next).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use verdict::builtin::{default_binding, BUILTINS};
use verdict::cli::fixtures::{Fixture, DEFAULT_FIXTURE_TIME};
use verdict::domain::{Limits, PolicyResult};
use verdict::engine::{ActiveBinding, ActiveSet, Engine};

/// What a decision keeps of a policy's answer (fuel and time aside: the
/// snapshot's point is to spend less of them).
fn answer(r: &PolicyResult) -> serde_json::Value {
    serde_json::json!({
        "verdict": r.verdict,
        "abstained": r.abstained,
        "reasons": r.reasons,
        "error": r.error,
        "log": r.log,
    })
}

/// Snapshot keys (settings, limits) tried per built-in: each costs two
/// compiles, so a few, not one per fixture.
const GROUPS_PER_POLICY: usize = 2;

#[test]
fn every_builtin_decides_its_fixtures_the_same_from_its_snapshot() {
    let engine = Engine::new(None).expect("engine");
    let now: Timestamp = DEFAULT_FIXTURE_TIME.parse().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for b in &BUILTINS {
        let policy = Arc::new(engine.compile(b.name, b.component).expect("compiles"));
        let mut paths: Vec<_> = std::fs::read_dir(root.join(b.fixtures))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        // Fixtures grouped by the snapshot key they decide under.
        let mut groups: Vec<((String, Limits), Vec<(PathBuf, Fixture)>)> = Vec::new();
        for path in paths {
            let f: Fixture =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let settings = f
                .settings
                .clone()
                .unwrap_or_else(|| default_binding(b.name).settings);
            let key = (settings.to_string(), f.limits.unwrap_or_default());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, fs)) => fs.push((path, f)),
                None => groups.push((key, vec![(path, f)])),
            }
        }
        for ((settings, limits), fixtures) in groups.iter().take(GROUPS_PER_POLICY) {
            let binding = verdict::domain::Binding {
                settings: serde_json::from_str(settings).unwrap(),
                limits: *limits,
                ..default_binding(b.name)
            };
            let active = ActiveBinding::new(b.name, binding, policy.clone());
            let decide = |f: &Fixture| {
                let eval = engine
                    .evaluate_with(
                        &ActiveSet::default(),
                        &[&active],
                        f.input.clone(),
                        now,
                        false,
                    )
                    .unwrap();
                answer(&eval.policies[0])
            };
            let plain: Vec<_> = fixtures.iter().map(|(_, f)| decide(f)).collect();
            let built = engine
                .runtime()
                .prepare(&policy, settings, limits)
                .unwrap_or_else(|e| panic!("{}: no snapshot: {e}", b.name));
            assert!(built, "{}: the SDK exports `preinit`", b.name);
            // Twice over: the second round shows no evaluation saw another's state.
            for round in 0..2 {
                for ((path, f), expected) in fixtures.iter().zip(&plain) {
                    assert_eq!(
                        &decide(f),
                        expected,
                        "{} round {round}: {}",
                        b.name,
                        path.display()
                    );
                }
            }
        }
    }
}
