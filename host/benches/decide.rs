//! Criterion benchmarks of the engine, in-process (no HTTP, no store):
//! - `decision/five_builtins`: one full decision with the five built-in
//!   policies bound to everything (the `verdict serve` default);
//! - `sandbox/fresh_instance_call`: the bare cost of a fresh instance plus one
//!   `evaluate` call of a minimal policy (`policies/adversarial/misbehave` in
//!   `ok` mode: one promote vote, no work).
//!
//! - `policy/<name>`: each built-in alone on the same request.
//! - `sandbox/fresh_instance_call_python`, `…_js`: a fresh instance plus one
//!   `evaluate` of the Python (`sprt-canary`) and TypeScript
//!   (`change-approval`) examples, from `target/polyglot/` (`make polyglot`);
//!   skipped, with a note, when they have not been built.
//!
//! Run: `cargo bench -p verdict --bench decide`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use jiff::Timestamp;
use verdict::domain::{Binding, DecisionRequest, Mode, OnError, Selector};
use verdict::engine::{ActiveBinding, ActiveSet, Engine};

const MINIMAL: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../policies/dist/test/misbehave.wasm"
));

fn request() -> DecisionRequest {
    let baseline: Vec<f64> = (0..40).map(|i| 100.0 + (i % 7) as f64).collect();
    let canary: Vec<f64> = (0..40).map(|i| 101.0 + (i % 5) as f64).collect();
    let errors: Vec<f64> = (0..40).map(|i| 0.001 + 0.0001 * (i % 3) as f64).collect();
    serde_json::from_value(serde_json::json!({
        "deployment": {"service": "checkout", "environment": "production", "version": "v2",
                       "previous_version": "v1", "traffic_percent": 10.0},
        "change": {"files_changed": 4, "lines_added": 120, "lines_removed": 30,
                   "paths": ["src/cart.rs", "src/api/handlers.rs"], "ticket": "OPS-7"},
        "metrics": [
            {"name": "latency_p99_ms", "baseline": baseline, "canary": canary},
            {"name": "error_rate", "baseline": errors, "canary": errors},
            {"name": "burn_rate_1h", "value": 0.8}, {"name": "burn_rate_5m", "value": 0.9}
        ],
        "time": "2026-03-03T10:00:00Z"
    }))
    .expect("valid request")
}

fn benches(c: &mut Criterion) {
    let engine = Engine::new(None).expect("engine");
    verdict::builtin::install(&engine, Timestamp::now()).expect("built-ins");
    let now = Timestamp::now();
    let req = request();
    c.bench_function("decision/five_builtins", |b| {
        b.iter(|| black_box(engine.evaluate(req.clone(), now)))
    });

    // Each built-in alone on the same request: where a decision's time goes.
    let set = engine.snapshot();
    for b in &verdict::builtin::BUILTINS {
        let binding = Engine::matching(&set, &req)
            .into_iter()
            .find(|ab| ab.name == b.name)
            .expect("built-in bound");
        c.bench_function(&format!("policy/{}", b.name), |bench| {
            bench
                .iter(|| black_box(engine.evaluate_with(&set, &[binding], req.clone(), now, false)))
        });
    }

    let minimal = Arc::new(engine.compile("minimal", MINIMAL).expect("minimal policy"));
    let binding = Binding {
        policy: "minimal".into(),
        selector: Selector::default(),
        mode: Mode::Enforce,
        on_error: OnError::Hold,
        settings: serde_json::json!({"mode": "ok"}),
        limits: Default::default(),
    };
    let active = ActiveBinding::new("minimal", binding, minimal);
    let empty = ActiveSet::default();
    let small: DecisionRequest = serde_json::from_value(serde_json::json!({
        "deployment": {"service": "s", "environment": "e"}
    }))
    .unwrap();
    c.bench_function("sandbox/fresh_instance_call", |b| {
        b.iter(|| black_box(engine.evaluate_with(&empty, &[&active], small.clone(), now, false)))
    });

    // Interpreted policies: the examples, on inputs they decide.
    let polyglot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/polyglot");
    let cases = [
        (
            "python",
            "sprt-canary",
            serde_json::json!({
            "deployment": {"service": "s", "environment": "production"},
            "metrics": [{"name": "errors", "baseline": [10], "canary": [12]},
                        {"name": "requests", "baseline": [10000], "canary": [10000]}]}),
        ),
        (
            "js",
            "change-approval",
            serde_json::json!({
            "deployment": {"service": "s", "environment": "production"},
            "change": {"paths": ["db/migrations/1.sql", "src/a.ts", "main.tf"],
                       "labels": ["dba-approved"], "ticket": "OPS-1"}}),
        ),
    ];
    for (lang, name, input) in cases {
        let Ok(bytes) = std::fs::read(polyglot.join(format!("{name}.wasm"))) else {
            eprintln!("skipping sandbox/fresh_instance_call_{lang}: run `make polyglot` first");
            continue;
        };
        let started = std::time::Instant::now();
        let compiled = Arc::new(engine.compile(name, &bytes).expect("polyglot policy"));
        eprintln!(
            "{name}: {} bytes compiled in {:?}",
            bytes.len(),
            started.elapsed()
        );
        let binding = Binding {
            policy: name.into(),
            selector: Selector::default(),
            mode: Mode::Enforce,
            on_error: OnError::Hold,
            settings: serde_json::json!({}),
            limits: Default::default(),
        };
        let active = ActiveBinding::new(name, binding, compiled);
        let req: DecisionRequest = serde_json::from_value(input).unwrap();
        let probe = engine
            .evaluate_with(&empty, &[&active], req.clone(), now, false)
            .expect("decides");
        assert!(probe.policies[0].error.is_none(), "{:?}", probe.policies[0]);
        eprintln!(
            "{name}: fuel per evaluation {}, verdict {:?}",
            probe.policies[0].fuel_used, probe.policies[0].verdict
        );
        c.bench_function(&format!("sandbox/fresh_instance_call_{lang}"), |b| {
            b.iter(|| black_box(engine.evaluate_with(&empty, &[&active], req.clone(), now, false)))
        });
    }
}

criterion_group!(decide, benches);
criterion_main!(decide);
