//! Criterion benchmarks of the engine, in-process (no HTTP, no store):
//! - `decision/five_builtins`: one full decision with the five built-in
//!   policies bound to everything (the `verdict serve` default);
//! - `sandbox/fresh_instance_call`: the bare cost of a fresh instance plus one
//!   `evaluate` call of a minimal policy (`policies/adversarial/misbehave` in
//!   `ok` mode: one promote vote, no work).
//!
//! - `policy/<name>`: each built-in alone on the same request.
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
}

criterion_group!(decide, benches);
criterion_main!(decide);
