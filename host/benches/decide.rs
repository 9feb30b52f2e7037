//! Criterion benchmarks of the engine, in-process (no HTTP, no store):
//! - `peer/regorus_rvm_fresh_vm`: the side-by-side peer, regorus (Rego in
//!   Rust, no sandbox) deciding the same canary rule (`peer/canary.rego`) on
//!   the same request with a fresh VM per decision; only with
//!   `--features bench-peer`, so ratios come from one run;
//! - `policy/<name>`: each built-in alone, a fresh sandbox per evaluation, on
//!   the same request (2 series × 40 samples, 2 burn rates, a change);
//! - `decision/five_builtins`: one full decision with the five built-ins
//!   bound to everything (the `verdict serve` default);
//! - `decision/five_builtins_no_snapshot`: the same without pre-initialised
//!   snapshots (each policy's start-up and settings parse paid per
//!   evaluation, as a server does for a binding's first few evaluations);
//! - `policy/canary-judge_10x1000`: the canary judge on 10 metrics × 1,000
//!   samples per side;
//! - `sandbox/fresh_instance_call`: the bare cost of a fresh instance plus one
//!   `evaluate` call of a minimal policy (`policies/adversarial/misbehave` in
//!   `ok` mode: one promote vote, no work);
//! - `sandbox/fresh_instance_call_python`, `…_js` and
//!   `decision/python_and_js`: the Python (`sprt-canary`) and TypeScript
//!   (`change-approval`) examples, alone and in one decision, from
//!   `target/polyglot/` (`make polyglot`); skipped, with a note, when they
//!   have not been built.
//!
//! - `traced/…`: what telemetry adds, with the subscriber `verdict serve`
//!   installs (no OTLP export; its log line goes to stderr, so run with
//!   `2>/dev/null` or `2>file` as a server would): `traced/five_builtins` is
//!   `decision/five_builtins` with its policy spans and metrics, and
//!   `traced/decision_envelope` the decision's own span, counters and log
//!   line. They run last: the subscriber is process-wide.
//!
//! Every binding is evaluated from its pre-initialised snapshot
//! (`Engine::prepare_snapshots`), as a server's are once warm. Before the
//! benches it prints each built-in's fuel per phase (see `print_fuel`):
//! what the guest spends instantiating, parsing its settings and deciding,
//! with and without the snapshot.
//!
//! Run: `cargo bench -p verdict --features bench-peer --bench decide`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use jiff::Timestamp;
use verdict::domain::{Binding, Decision, DecisionRequest, Mode, OnError, Selector};
use verdict::engine::{ActiveBinding, ActiveSet, Engine};

mod common;
use common::{large_request, request};

const MINIMAL: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../policies/dist/test/misbehave.wasm"
));

fn binding(policy: &str, settings: serde_json::Value) -> Binding {
    Binding {
        policy: policy.into(),
        selector: Selector::default(),
        mode: Mode::Enforce,
        on_error: OnError::Hold,
        settings,
        limits: Default::default(),
    }
}

/// The peer: regorus's bytecode VM, a fresh VM per decision (program and
/// input prepared once, as Verdict's compiled component and request are).
#[cfg(feature = "bench-peer")]
fn peer(c: &mut Criterion) {
    use regorus::languages::rego::compiler::Compiler;
    use regorus::rvm::vm::RegoVM;

    let mut engine = regorus::Engine::new();
    engine
        .add_policy(
            "canary.rego".into(),
            include_str!("peer/canary.rego").into(),
        )
        .expect("rego parses");
    let entry: regorus::Rc<str> = "data.verdict.canary.decision".into();
    let compiled = engine.compile_with_entrypoint(&entry).expect("compiles");
    let program = Compiler::compile_from_policy(&compiled, &[entry.as_ref()]).expect("rvm program");
    let input = regorus::Value::from_json_str(&common::request_json().to_string()).expect("input");
    let decide = || {
        let mut vm = RegoVM::new();
        vm.load_program(program.clone());
        vm.set_input(input.clone());
        vm.execute().expect("decides")
    };
    eprintln!("peer: regorus decides {}", decide());
    c.bench_function("peer/regorus_rvm_fresh_vm", |b| {
        b.iter(|| black_box(decide()))
    });
}

#[cfg(not(feature = "bench-peer"))]
fn peer(_: &mut Criterion) {
    eprintln!("skipping peer/regorus_rvm_fresh_vm: run with `--features bench-peer`");
}

/// Each built-in's fuel on the bench request, per phase: `describe` and
/// `validate-settings` with the binding's settings (a fresh instance plus
/// the settings parse) against `evaluate` (a fresh instance, the settings
/// parse, lifting the input and the decision itself).
fn print_fuel(
    label: &str,
    engine: &Engine,
    set: &ActiveSet,
    req: &DecisionRequest,
    now: Timestamp,
) {
    for b in &verdict::builtin::BUILTINS {
        let ab = Engine::matching(set, req)
            .into_iter()
            .find(|ab| ab.name == b.name)
            .expect("built-in bound");
        let settings = ab.binding.settings.to_string();
        let validate = engine
            .runtime()
            .settings_fuel(&ab.policy, &settings, &ab.binding.limits)
            .expect("validates");
        let eval = engine
            .evaluate_with(set, &[ab], req.clone(), now, false)
            .expect("decides");
        let p = &eval.policies[0];
        eprintln!(
            "fuel {label:<12} {:<14} validate-settings {:>8}  evaluate {:>8}  ({:?}{})",
            b.name,
            validate,
            p.fuel_used,
            p.verdict,
            p.abstained
                .as_deref()
                .map(|a| format!(", abstained: {a}"))
                .unwrap_or_default()
        );
    }
}

fn benches(c: &mut Criterion) {
    peer(c);

    let plain = Engine::new(None).expect("engine");
    verdict::builtin::install(&plain, Timestamp::now()).expect("built-ins");
    let engine = Engine::new(None).expect("engine");
    verdict::builtin::install(&engine, Timestamp::now()).expect("built-ins");
    for (binding, prepared) in engine.prepare_snapshots() {
        match prepared {
            Ok(true) => {}
            Ok(false) => eprintln!("{binding}: no `preinit`, evaluated without a snapshot"),
            Err(e) => panic!("{binding}: snapshot failed: {e}"),
        }
    }
    let now = Timestamp::now();
    let req = request();
    let set = engine.snapshot();
    print_fuel("no snapshot", &plain, &plain.snapshot(), &req, now);
    print_fuel("snapshot", &engine, &set, &req, now);

    // Each built-in alone on the same request: where a decision's time goes.
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
    c.bench_function("decision/five_builtins", |b| {
        b.iter(|| black_box(engine.evaluate(req.clone(), now)))
    });
    c.bench_function("decision/five_builtins_no_snapshot", |b| {
        b.iter(|| black_box(plain.evaluate(req.clone(), now)))
    });

    let judge = Engine::matching(&set, &req)
        .into_iter()
        .find(|ab| ab.name == "canary-judge")
        .expect("canary-judge bound");
    let large = large_request();
    let probe = engine
        .evaluate_with(&set, &[judge], large.clone(), now, false)
        .expect("decides");
    let p = &probe.policies[0];
    assert!(p.error.is_none(), "{:?}", p.error);
    eprintln!(
        "canary-judge 10x1000: fuel {}, verdict {:?}",
        p.fuel_used, p.verdict
    );
    c.bench_function("policy/canary-judge_10x1000", |b| {
        b.iter(|| black_box(engine.evaluate_with(&set, &[judge], large.clone(), now, false)))
    });

    let minimal = Arc::new(engine.compile("minimal", MINIMAL).expect("minimal policy"));
    engine
        .runtime()
        .prepare(&minimal, r#"{"mode":"ok"}"#, &Default::default())
        .expect("minimal policy snapshot");
    let active = ActiveBinding::new(
        "minimal",
        binding("minimal", serde_json::json!({"mode": "ok"})),
        minimal,
    );
    let empty = ActiveSet::default();
    let small: DecisionRequest = serde_json::from_value(serde_json::json!({
        "deployment": {"service": "s", "environment": "e"}
    }))
    .unwrap();
    c.bench_function("sandbox/fresh_instance_call", |b| {
        b.iter(|| black_box(engine.evaluate_with(&empty, &[&active], small.clone(), now, false)))
    });

    polyglot(c, &engine, now);
}

/// Interpreted policies: the examples, on inputs they decide, alone and
/// together in one decision.
fn polyglot(c: &mut Criterion, engine: &Engine, now: Timestamp) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/polyglot");
    let empty = ActiveSet::default();
    let cases = [("python", "sprt-canary"), ("js", "change-approval")];
    let req: DecisionRequest = serde_json::from_value(serde_json::json!({
        "deployment": {"service": "s", "environment": "production"},
        "metrics": [{"name": "errors", "baseline": [10], "canary": [12]},
                    {"name": "requests", "baseline": [10000], "canary": [10000]}],
        "change": {"paths": ["db/migrations/1.sql", "src/a.ts", "main.tf"],
                   "labels": ["dba-approved"], "ticket": "OPS-1"}}))
    .unwrap();
    let mut both = Vec::new();
    for (lang, name) in cases {
        let Ok(bytes) = std::fs::read(dir.join(format!("{name}.wasm"))) else {
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
        let active = ActiveBinding::new(name, binding(name, serde_json::json!({})), compiled);
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
        both.push(active);
    }
    if both.len() == 2 {
        let bindings: Vec<&ActiveBinding> = both.iter().collect();
        c.bench_function("decision/python_and_js", |b| {
            b.iter(|| black_box(engine.evaluate_with(&empty, &bindings, req.clone(), now, false)))
        });
    }
}

/// Telemetry's share: the same decision under the server's subscriber.
fn traced(c: &mut Criterion) {
    let engine = Engine::new(None).expect("engine");
    verdict::builtin::install(&engine, Timestamp::now()).expect("built-ins");
    for (binding, prepared) in engine.prepare_snapshots() {
        prepared.unwrap_or_else(|e| panic!("{binding}: snapshot failed: {e}"));
    }
    let now = Timestamp::now();
    let req = request();
    let _telemetry = verdict::telemetry::init(verdict::telemetry::LogFormat::Text);
    c.bench_function("traced/five_builtins", |b| {
        b.iter(|| black_box(engine.evaluate(req.clone(), now)))
    });
    let eval = engine.evaluate(req.clone(), now).expect("evaluation");
    let decision = Decision {
        id: "d-00000000000000000001".into(),
        seq: 1,
        verdict: eval.verdict,
        reasons: eval.reasons,
        policies: eval.policies,
        request: eval.request,
        freezes: eval.freezes,
        decided_at: now,
        prev_hash: "0".repeat(64),
        hash: "1".repeat(64),
    };
    c.bench_function("traced/decision_envelope", |b| {
        b.iter(|| {
            let span = verdict::telemetry::decision_span(&req);
            let started = std::time::Instant::now();
            let decided: Result<_, &String> = Ok((&decision, true));
            verdict::telemetry::decided(&span, started, decided);
        })
    });
}

criterion_group!(decide, benches);
criterion_group!(telemetry, traced);
criterion_main!(decide, telemetry);
