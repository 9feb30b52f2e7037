//! Engine behaviour with the real built-in components: every built-in's
//! fixtures pass against the copy embedded in the binary, bindings combine as
//! the engine documents (the most severe vote wins, abstentions never
//! promote), and hot reload never lets a bad upload replace a good policy.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use verdict::builtin::{default_binding, BUILTINS};
use verdict::cli::fixtures;
use verdict::domain::{Binding, DecisionRequest, FailureKind, Mode, OnError, Selector, Verdict};
use verdict::engine::{Engine, EngineError};

const MISBEHAVE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../policies/dist/test/misbehave.wasm"
));

/// One engine per test process: each reserves address space for its pool.
fn shared() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(None).expect("engine"))
}

fn request(json: serde_json::Value) -> DecisionRequest {
    serde_json::from_value(json).expect("valid request")
}

fn now() -> Timestamp {
    "2026-03-02T10:00:00Z".parse().unwrap()
}

fn misbehave(mode: &str, policy: &str) -> Binding {
    Binding {
        settings: serde_json::json!({ "mode": mode }),
        ..default_binding(policy)
    }
}

#[test]
fn embedded_builtins_pass_their_own_fixtures() {
    let engine = shared();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for b in &BUILTINS {
        let policy = Arc::new(
            engine
                .compile(b.name, b.component)
                .expect("built-in compiles"),
        );
        assert_eq!(policy.info.name, b.name, "describe() names the policy");
        let summary = fixtures::run_dir(engine, policy, &root.join(b.fixtures)).expect("fixtures");
        let failures: Vec<String> = summary
            .runs
            .iter()
            .filter_map(|r| {
                r.failure
                    .as_ref()
                    .map(|f| format!("{}: {f}", r.file.display()))
            })
            .collect();
        assert!(failures.is_empty(), "{}: {failures:#?}", b.name);
        assert!(summary.passed() >= 8, "{} has at least 8 fixtures", b.name);
    }
}

#[test]
fn combination_rules_with_real_components() {
    let engine = Engine::new(None).unwrap();
    let at = now();
    engine.add_policy("m", MISBEHAVE, at).unwrap();
    let req = request(serde_json::json!({"deployment": {"service": "api", "environment": "prod"}}));

    // No binding at all: hold, never promote.
    let e = engine
        .evaluate(req.clone(), at)
        .expect("the host evaluates");
    assert_eq!(e.verdict, Verdict::Hold);
    assert!(e.reasons[0].message.contains("no policy is bound"));

    // Only an abstention: hold, and the record says the policy abstained.
    engine
        .put_binding("quiet", misbehave("abstain", "m"))
        .unwrap();
    let e = engine
        .evaluate(req.clone(), at)
        .expect("the host evaluates");
    assert_eq!(e.verdict, Verdict::Hold);
    assert!(e.policies[0].abstained.is_some());
    assert!(
        e.reasons[0].message.contains("1 abstained"),
        "{:?}",
        e.reasons
    );

    // One enforcing promote: promote.
    engine.put_binding("yes", misbehave("ok", "m")).unwrap();
    assert_eq!(
        engine
            .evaluate(req.clone(), at)
            .expect("the host evaluates")
            .verdict,
        Verdict::Promote
    );

    // A shadow binding that errors is recorded but does not count.
    let shadow = Binding {
        mode: Mode::Shadow,
        on_error: OnError::Freeze,
        ..misbehave("err", "m")
    };
    engine.put_binding("shadowed", shadow).unwrap();
    let e = engine
        .evaluate(req.clone(), at)
        .expect("the host evaluates");
    assert_eq!(e.verdict, Verdict::Promote);
    let s = e.policies.iter().find(|p| p.binding == "shadowed").unwrap();
    assert_eq!(s.error.as_ref().unwrap().kind, FailureKind::Err);
    assert_eq!(s.verdict, Some(Verdict::Freeze));

    // An enforcing error votes its binding's on_error.
    let enforcing = Binding {
        on_error: OnError::Rollback,
        ..misbehave("err", "m")
    };
    engine.put_binding("broken", enforcing).unwrap();
    let e = engine
        .evaluate(req.clone(), at)
        .expect("the host evaluates");
    assert_eq!(e.verdict, Verdict::Rollback);
    assert!(e.reasons[0].message.contains("policy `"), "{:?}", e.reasons);

    // A selector that does not match leaves the binding out entirely.
    engine.remove_binding("broken").unwrap();
    let staging_only = Binding {
        selector: Selector {
            environment: Some("staging".into()),
            service: None,
        },
        ..misbehave("err", "m")
    };
    engine.put_binding("staging-only", staging_only).unwrap();
    let e = engine.evaluate(req, at).expect("the host evaluates");
    assert_eq!(e.verdict, Verdict::Promote);
    assert!(!e.policies.iter().any(|p| p.binding == "staging-only"));
}

#[test]
fn manual_freeze_applies_in_scope_until_it_expires() {
    let engine = Engine::new(None).unwrap();
    let at = Timestamp::now();
    engine.add_policy("m", MISBEHAVE, at).unwrap();
    engine.put_binding("yes", misbehave("ok", "m")).unwrap();
    let freeze = |id: &str, until: Timestamp| verdict::domain::Freeze {
        id: id.into(),
        selector: Selector {
            service: Some("api".into()),
            environment: None,
        },
        reason: "incident INC-9".into(),
        until,
        created_at: at,
        created_by: None,
    };
    engine
        .put_freeze(freeze("f1", at + jiff::SignedDuration::from_hours(1)))
        .unwrap();
    engine
        .put_freeze(freeze("expired", at - jiff::SignedDuration::from_hours(1)))
        .unwrap();
    let api = request(serde_json::json!({"deployment": {"service": "api", "environment": "prod"}}));
    let web = request(serde_json::json!({"deployment": {"service": "web", "environment": "prod"}}));
    let e = engine
        .evaluate(api.clone(), at)
        .expect("the host evaluates");
    assert_eq!(e.verdict, Verdict::Freeze);
    assert_eq!(e.freezes, vec!["f1".to_string()]);
    assert!(e.reasons[0].message.contains("incident INC-9"));
    assert_eq!(
        engine
            .evaluate(web, at)
            .expect("the host evaluates")
            .verdict,
        Verdict::Promote
    );
    engine.remove_freeze("f1").unwrap();
    assert_eq!(
        engine
            .evaluate(api, at)
            .expect("the host evaluates")
            .verdict,
        Verdict::Promote
    );
}

#[test]
fn bad_upload_never_replaces_a_good_policy_and_pins_hold() {
    let engine = Engine::new(None).unwrap();
    let at = now();
    let thresholds = BUILTINS.iter().find(|b| b.name == "thresholds").unwrap();
    let first = engine.add_policy("gate", MISBEHAVE, at).unwrap();
    engine
        // `{}` settings: accepted by both versions uploaded below.
        .put_binding("follows", default_binding("gate"))
        .unwrap();
    let pinned = format!("gate@{}", first.digest);
    engine
        .put_binding("pinned", misbehave("ok", &pinned))
        .unwrap();

    // Garbage and a core module are refused; the good version stays current.
    let err = engine
        .add_policy("gate", b"not wasm at all", at)
        .unwrap_err();
    assert!(matches!(err, EngineError::Rejected { .. }), "{err}");
    let err = engine
        .add_policy("gate", b"\0asm\x01\0\0\0", at)
        .unwrap_err();
    assert!(err.to_string().contains("verdict policy build"), "{err}");
    assert_eq!(
        engine.snapshot().policy("gate").unwrap().digest,
        first.digest
    );

    // A good re-upload swaps the name-following binding, not the pinned one.
    let second = engine.add_policy("gate", thresholds.component, at).unwrap();
    assert_ne!(second.digest, first.digest);
    let req = request(serde_json::json!({"deployment": {"service": "a", "environment": "b"}}));
    let e = engine.evaluate(req, at).expect("the host evaluates");
    let digest_of = |b: &str| {
        e.policies
            .iter()
            .find(|p| p.binding == b)
            .unwrap()
            .digest
            .clone()
    };
    assert_eq!(digest_of("follows"), second.digest);
    assert_eq!(digest_of("pinned"), first.digest);
}

#[test]
fn bindings_are_validated_before_they_take_effect() {
    let engine = Engine::new(None).unwrap();
    let at = now();
    let thresholds = BUILTINS.iter().find(|b| b.name == "thresholds").unwrap();
    engine
        .add_policy("thresholds", thresholds.component, at)
        .unwrap();
    let bad_settings = Binding {
        settings: serde_json::json!({"rules": "not a list"}),
        ..default_binding("thresholds")
    };
    let err = engine.put_binding("t", bad_settings).unwrap_err();
    assert!(matches!(err, EngineError::InvalidSettings { .. }), "{err}");
    let err = engine
        .put_binding("t", default_binding("nope"))
        .unwrap_err();
    assert!(matches!(err, EngineError::UnknownPolicy(_)), "{err}");
    let mut zero_fuel = default_binding("thresholds");
    zero_fuel.limits.fuel = 0;
    assert!(matches!(
        engine.put_binding("t", zero_fuel).unwrap_err(),
        EngineError::InvalidBinding(..)
    ));
    assert!(matches!(
        engine
            .put_binding("Bad Name", default_binding("thresholds"))
            .unwrap_err(),
        EngineError::InvalidName(_)
    ));
    assert_eq!(engine.snapshot().bindings().count(), 0);
    // Deleting a bound policy is refused with the binding's name.
    engine
        .put_binding("t", default_binding("thresholds"))
        .unwrap();
    let err = engine.remove_policy("thresholds").unwrap_err();
    assert!(err.to_string().contains("`t`"), "{err}");
}

#[test]
fn evaluation_is_deterministic_for_replay() {
    let set_engine = Engine::new(None).unwrap();
    verdict::builtin::install(&set_engine, now()).unwrap();
    let req = request(serde_json::json!({
        "deployment": {"service": "checkout", "environment": "production", "version": "v2"},
        "metrics": [{"name": "latency_p99_ms",
                     "baseline": (0..30).map(|i| 100.0 + (i % 7) as f64).collect::<Vec<_>>(),
                     "canary": (0..30).map(|i| 130.0 + (i % 5) as f64).collect::<Vec<_>>()}],
        "time": "2026-03-02T10:00:00Z"
    }));
    let a = set_engine
        .evaluate(req.clone(), now())
        .expect("the host evaluates");
    let b = set_engine.evaluate(req, now()).expect("the host evaluates");
    assert_eq!(a.verdict, Verdict::Rollback, "{:?}", a.reasons);
    assert_eq!(a.verdict, b.verdict);
    assert_eq!(a.reasons, b.reasons);
    let fuel = |e: &verdict::domain::Evaluation| {
        e.policies.iter().map(|p| p.fuel_used).collect::<Vec<_>>()
    };
    assert_eq!(fuel(&a), fuel(&b), "fuel is deterministic");
}

#[test]
fn an_upload_that_refuses_existing_binding_settings_is_rejected() {
    let engine = Engine::new(None).unwrap();
    let at = now();
    let component = |n: &str| BUILTINS.iter().find(|b| b.name == n).unwrap().component;
    let first = engine
        .add_policy("gate", component("thresholds"), at)
        .unwrap();
    let with_rules = Binding {
        settings: serde_json::json!({"rules": [{"metric": "error_rate", "max": 0.01}]}),
        ..default_binding("gate")
    };
    engine.put_binding("gate", with_rules).unwrap();
    // canary-judge does not know `rules`: replacing the policy would turn the
    // binding into a permanent error, so the upload is refused instead.
    let err = engine
        .add_policy("gate", component("canary-judge"), at)
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidSettings { .. }), "{err}");
    assert!(err.to_string().contains("binding `gate`"), "{err}");
    assert_eq!(
        engine.snapshot().policy("gate").unwrap().digest,
        first.digest
    );
}

#[test]
fn a_cancelled_evaluation_stops_before_the_next_policy() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use verdict::engine::{ActiveBinding, ActiveSet, Freezes};
    let engine = shared();
    let policy = Arc::new(engine.compile("misbehave", MISBEHAVE).unwrap());
    let bindings: Vec<ActiveBinding> = (0..3)
        .map(|i| {
            ActiveBinding::new(
                &format!("b{i}"),
                misbehave("ok", "misbehave"),
                policy.clone(),
            )
        })
        .collect();
    let refs: Vec<&ActiveBinding> = bindings.iter().collect();
    let req = request(serde_json::json!({"deployment": {"service": "s", "environment": "e"}}));
    let set = ActiveSet::default();
    let flag = AtomicBool::new(false);
    let deadline = engine.runtime().default_deadline();
    let done = engine
        .evaluate_unless(
            &set,
            &refs,
            req.clone(),
            now(),
            Freezes::Ignore,
            deadline,
            &flag,
        )
        .expect("no host failure")
        .expect("not cancelled");
    assert_eq!(done.policies.len(), 3);
    flag.store(true, Ordering::Relaxed);
    assert!(engine
        .evaluate_unless(&set, &refs, req, now(), Freezes::Ignore, deadline, &flag)
        .expect("no host failure")
        .is_none());
}
