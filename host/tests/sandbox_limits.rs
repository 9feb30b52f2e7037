//! Adversarial policies against the sandbox: every way a policy can misbehave
//! must end as a distinct, clearly worded policy error within its limit, cast
//! the binding's `on_error` verdict, and leave the host able to decide the
//! next request correctly.
//!
//! The hostile Rust components are built from `policies/adversarial/` with
//! `verdict policy build … -o policies/dist/test/<name>.wasm`; the rest are
//! written in WAT here. One `Engine` is shared by all tests: each engine
//! reserves pool address space and runs its own epoch ticker thread.

use std::sync::OnceLock;
use std::time::Instant;

use jiff::Timestamp;
use verdict::domain::{
    Binding, DecisionRequest, Evaluation, FailureKind, Limits, OnError, PolicyResult, Verdict,
};
use verdict::engine::{Engine, EngineError};

const MISBEHAVE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../policies/dist/test/misbehave.wasm"
));
const DESCRIBE_LOOP: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../policies/dist/test/describe-loop.wasm"
));

/// The binding every test uses to check the host still decides correctly.
const OK: &str = "ok-after";

fn now() -> Timestamp {
    "2025-06-02T10:00:00Z".parse().unwrap()
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine = Engine::new(None).expect("engine starts");
        engine
            .add_policy("misbehave", MISBEHAVE, now())
            .expect("the misbehave component loads (its describe is normal)");
        engine
            .put_binding(OK, binding(OK, "ok", Limits::default(), OnError::Hold))
            .expect("ok binding");
        engine
    })
}

/// Limits for the fuel and memory cases. The deadline is generous on
/// purpose: this is a shared 2-core machine, and a fuel or memory test must
/// not turn into a deadline failure because the thread was descheduled. The
/// deadline has its own test.
fn tight() -> Limits {
    Limits {
        fuel: 10_000_000,
        timeout_ms: 2_000,
        memory_bytes: 16 << 20,
        ..Limits::default()
    }
}

/// A binding of `misbehave` in `mode`, selecting only the service `service`,
/// so parallel tests on the shared engine never see each other's bindings.
/// Built from JSON, like an API body, so fields added later with defaults
/// do not break these tests.
fn binding(service: &str, mode: &str, limits: Limits, on_error: OnError) -> Binding {
    serde_json::from_value(serde_json::json!({
        "policy": "misbehave",
        "selector": { "service": service },
        "on_error": on_error,
        "settings": { "mode": mode },
        "limits": limits,
    }))
    .unwrap()
}

fn request(service: &str) -> DecisionRequest {
    serde_json::from_value(serde_json::json!({
        "deployment": { "service": service, "environment": "prod", "version": "1.2.3" },
    }))
    .unwrap()
}

fn decide(service: &str) -> Evaluation {
    let eval = engine()
        .evaluate(request(service), now())
        .expect("the host evaluates");
    assert_eq!(
        eval.policies.len(),
        1,
        "exactly one binding selects `{service}`"
    );
    eval
}

/// After any failure the same engine must still give a correct decision.
fn assert_host_fine() {
    let eval = decide(OK);
    let p = &eval.policies[0];
    assert_eq!(p.error, None, "{p:?}");
    assert_eq!(eval.verdict, Verdict::Promote, "{eval:?}");
    assert_eq!(p.reasons.len(), 1);
    assert_eq!(p.reasons[0].message, "all good");
    assert!(p.fuel_used > 0 && p.duration_us > 0, "{p:?}");
}

/// Bind `mode` under `limits`, decide once, check the common shape of a
/// policy failure, and return the policy's result for the specific checks.
fn fail(service: &str, mode: &str, limits: Limits, on_error: OnError) -> PolicyResult {
    engine()
        .put_binding(service, binding(service, mode, limits, on_error))
        .expect("binding accepted");
    let started = Instant::now();
    let eval = decide(service);
    let wall = started.elapsed();
    let p = eval.policies.into_iter().next().unwrap();
    // Not `{p:?}`: the point of some modes is a reason too big to print.
    let error = p.error.as_ref().unwrap_or_else(|| {
        panic!(
            "`{mode}` must fail, got verdict {:?}, abstained {}, {} reason(s)",
            p.verdict,
            p.abstained.is_some(),
            p.reasons.len()
        )
    });
    eprintln!(
        "{mode}: {} ({:?}) after {} µs, {} fuel (wall {wall:?})",
        error.message, error.kind, p.duration_us, p.fuel_used
    );
    assert_eq!(
        p.verdict,
        Some(on_error.verdict()),
        "a failed policy casts on_error"
    );
    assert_eq!(eval.verdict, on_error.verdict(), "{:?}", eval.reasons);
    assert!(
        p.reasons.is_empty(),
        "a failed policy gives no reasons of its own"
    );
    assert!(
        p.fuel_used > 0,
        "fuel is measured for a failed evaluation too"
    );
    assert!(
        p.duration_us > 0,
        "duration is measured for a failed evaluation too"
    );
    // No wall-clock bound: on a shared 2-core machine one would flake. A
    // limit that failed to fire shows as a missing or different error kind
    // (each caller checks its own), never as a slow pass.
    assert_host_fine();
    p
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let p = fail("fuel", "loop", tight(), OnError::Hold);
    let e = p.error.unwrap();
    assert_eq!(e.kind, FailureKind::Fuel);
    assert_eq!(e.message, "ran out of fuel after 10000000 units");
    assert_eq!(p.fuel_used, 10_000_000, "all the fuel was used");
}

#[test]
fn infinite_loop_hits_the_deadline_when_fuel_is_plentiful() {
    // Fuel is checked too, so it must be out of reach for the clock to win:
    // 10^15 units take hours at any plausible speed.
    let limits = Limits {
        fuel: 1_000_000_000_000_000,
        timeout_ms: 100,
        ..tight()
    };
    let p = fail("deadline", "loop", limits, OnError::Rollback);
    let e = p.error.unwrap();
    assert_eq!(e.kind, FailureKind::Deadline);
    assert_eq!(e.message, "exceeded 100 ms deadline");
    // Not early: the deadline is never shorter than promised (the ticker
    // only ever sleeps at least a tick). No upper bound: the machine is
    // shared, and the error kind already proves the deadline fired.
    assert!(
        p.duration_us >= 100_000,
        "stopped after only {} µs",
        p.duration_us
    );
    // `fuel_used` is only a lower bound for a deadline: wasmtime keeps a
    // function's fuel count in a local and does not store it before the
    // epoch interrupt, so a loop inside one function reports what it had
    // used before the loop (a few thousand units for ~10^9 executed).
    assert!(p.fuel_used > 0 && p.fuel_used < limits.fuel);
}

#[test]
fn memory_growth_bomb_hits_the_memory_limit() {
    let p = fail("memory", "memory-bomb", tight(), OnError::Freeze);
    let e = p.error.unwrap();
    assert_eq!(e.kind, FailureKind::Memory);
    assert!(
        e.message.starts_with("memory limit 16 MiB exceeded"),
        "{}",
        e.message
    );
}

#[test]
fn deep_recursion_traps() {
    let p = fail("recursion", "recursion", tight(), OnError::Hold);
    let e = p.error.unwrap();
    assert_eq!(e.kind, FailureKind::Trap);
    assert!(e.message.starts_with("trapped: "), "{}", e.message);
    assert!(e.message.contains("stack"), "{}", e.message);
}

#[test]
fn panic_traps() {
    let p = fail("trap", "trap", tight(), OnError::Rollback);
    let e = p.error.unwrap();
    assert_eq!(e.kind, FailureKind::Trap);
    assert!(e.message.starts_with("trapped: "), "{}", e.message);
    // panic=abort ends in `unreachable`.
    assert!(e.message.contains("unreachable"), "{}", e.message);
}

#[test]
fn err_result_is_a_policy_error() {
    let p = fail("err", "err", tight(), OnError::Hold);
    let e = p.error.unwrap();
    assert_eq!(e.kind, FailureKind::Err);
    assert_eq!(e.message, "returned error: deliberate failure");
}

/// Output cases allocate ~10 MiB and copy it out, which takes more than the
/// tight fuel and memory; the output limit is what they test.
fn roomy() -> Limits {
    Limits {
        timeout_ms: 2_000,
        ..Limits::default()
    }
}

#[test]
fn ten_mib_reason_is_an_output_error() {
    let p = fail("huge-reason", "huge-reason", roomy(), OnError::Hold);
    let e = p.error.unwrap();
    assert_eq!(e.kind, FailureKind::Output);
    assert_eq!(
        e.message,
        "returned a reason of 10485760 bytes, more than the limit of 4096"
    );
}

#[test]
fn ten_mib_metric_name_is_an_output_error() {
    // The reason's other string: bounded like the message, or a policy could
    // smuggle megabytes into every stored decision through it.
    let p = fail("huge-metric", "huge-metric", roomy(), OnError::Hold);
    let e = p.error.unwrap();
    assert_eq!(e.kind, FailureKind::Output);
    assert_eq!(
        e.message,
        "returned a metric name of 10485760 bytes, more than the limit of 4096"
    );
}

#[test]
fn ten_mib_abstention_is_an_output_error() {
    let p = fail("huge-abstain", "huge-abstain", roomy(), OnError::Rollback);
    let e = p.error.unwrap();
    assert_eq!(e.kind, FailureKind::Output);
    assert_eq!(
        e.message,
        "returned an abstention message of 10485760 bytes, more than the limit of 4096"
    );
}

#[test]
fn hundred_thousand_reasons_is_an_output_error() {
    let p = fail("many-reasons", "many-reasons", roomy(), OnError::Freeze);
    let e = p.error.unwrap();
    assert_eq!(e.kind, FailureKind::Output);
    assert_eq!(
        e.message,
        "returned 100000 reasons, more than the limit of 64"
    );
}

#[test]
fn log_flood_is_capped() {
    let service = "log-flood";
    engine()
        .put_binding(
            service,
            binding(service, "log-flood", tight(), OnError::Hold),
        )
        .unwrap();
    let eval = decide(service);
    let p = &eval.policies[0];
    assert_eq!(p.error, None, "{p:?}");
    assert_eq!(eval.verdict, Verdict::Promote);
    assert!(p.log.len() <= 33, "{} log lines kept", p.log.len());
    assert_eq!(p.log[0], "info: line 0");
    let last = p.log.last().unwrap();
    assert!(last.ends_with("more log lines dropped)"), "{last}");
    // 10 000 lines were logged; kept + dropped accounts for all of them.
    let dropped: usize = last
        .trim_start_matches('(')
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(p.log.len() - 1 + dropped, 10_000, "{last}");
    assert_host_fine();
}

#[test]
fn abstention_is_measured_and_not_a_vote() {
    let service = "abstain";
    engine()
        .put_binding(service, binding(service, "abstain", tight(), OnError::Hold))
        .unwrap();
    let eval = decide(service);
    let p = &eval.policies[0];
    assert_eq!(p.error, None);
    assert_eq!(p.verdict, None);
    assert_eq!(p.abstained.as_deref(), Some("nothing to judge"));
    assert!(p.fuel_used > 0 && p.duration_us > 0, "{p:?}");
    // No policy voted: hold, never promote.
    assert_eq!(eval.verdict, Verdict::Hold);
}

#[test]
fn unknown_mode_is_rejected_by_validate_settings() {
    let err = engine()
        .put_binding(
            "bad-mode",
            binding("bad-mode", "explode", tight(), OnError::Hold),
        )
        .unwrap_err();
    assert!(
        matches!(err, EngineError::InvalidSettings { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("unknown mode `explode`"), "{err}");
    assert!(engine().snapshot().bindings().all(|(n, _)| n != "bad-mode"));
}

#[test]
fn describe_that_loops_is_rejected_at_upload() {
    let started = Instant::now();
    let err = engine()
        .add_policy("describe-loop", DESCRIBE_LOOP, now())
        .unwrap_err();
    let text = err.to_string();
    eprintln!("describe-loop: {text} (after {:?})", started.elapsed());
    assert!(text.contains("`describe` failed"), "{text}");
    assert!(text.contains("fuel") || text.contains("deadline"), "{text}");
    assert!(engine().snapshot().policy("describe-loop").is_none());
    assert_host_fine();
}

#[test]
fn component_importing_an_interface_of_the_wrong_type_is_rejected() {
    let bytes = wat::parse_str(
        r#"(component
             (import "wasi:sockets/tcp@0.2.0" (instance
               (export "connect" (func (param "port" u16) (result u32)))))
           )"#,
    )
    .unwrap();
    let err = engine().compile("sockets", &bytes).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EngineError::Rejected { .. }), "{err:?}");
    assert!(text.contains("wasi:sockets/tcp@0.2.0"), "{text}");
    assert!(
        text.contains("verdict:policy/host"),
        "says what may be imported: {text}"
    );
    assert_host_fine();
}

#[test]
fn core_module_is_rejected_with_a_pointer_to_policy_build() {
    let bytes = wat::parse_str(r#"(module (func (export "evaluate")))"#).unwrap();
    let text = engine().compile("core", &bytes).unwrap_err().to_string();
    assert!(text.contains("core wasm module"), "{text}");
    assert!(text.contains("verdict policy build"), "{text}");
}

#[test]
fn garbage_bytes_are_rejected() {
    let text = engine()
        .compile("garbage", b"#!/bin/sh\nrm -rf /\n")
        .unwrap_err()
        .to_string();
    assert!(text.contains("not a WebAssembly component"), "{text}");

    // A component header followed by junk gets past the header check and
    // must fail in the compiler, not crash it.
    let mut truncated = wat::parse_str("(component)").unwrap();
    truncated.extend_from_slice(&[0xff; 64]);
    let text = engine()
        .compile("truncated", &truncated)
        .unwrap_err()
        .to_string();
    assert!(text.contains("failed to compile"), "{text}");
    assert_host_fine();
}

#[test]
fn a_rejected_upload_never_replaces_a_good_policy() {
    let engine = engine();
    let before = engine
        .snapshot()
        .policy("misbehave")
        .unwrap()
        .digest
        .clone();
    assert!(engine
        .add_policy("misbehave", DESCRIBE_LOOP, now())
        .is_err());
    assert!(engine.add_policy("misbehave", b"garbage", now()).is_err());
    assert_eq!(
        engine.snapshot().policy("misbehave").unwrap().digest,
        before
    );
    assert_host_fine();
}

#[test]
fn many_failures_in_a_row_do_not_exhaust_the_pool() {
    // Small limits keep 200 failures cheap; memory bombs and loops both end
    // by trap, so a leaked instance or pool slot would show up as a hang or
    // an instantiation failure long before the end.
    let small = Limits {
        fuel: 1_000_000,
        memory_bytes: 4 << 20,
        ..tight()
    };
    let engine = engine();
    engine
        .put_binding(
            "pool-bomb",
            binding("pool-bomb", "memory-bomb", small, OnError::Hold),
        )
        .unwrap();
    engine
        .put_binding(
            "pool-loop",
            binding("pool-loop", "loop", small, OnError::Hold),
        )
        .unwrap();
    let started = Instant::now();
    // Four threads at once also exercise the slot semaphore under contention.
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..50 {
                    let (service, kind) = if (i + t) % 2 == 0 {
                        ("pool-bomb", FailureKind::Memory)
                    } else {
                        ("pool-loop", FailureKind::Fuel)
                    };
                    let eval = decide(service);
                    let e = eval.policies[0].error.as_ref().expect("fails");
                    assert_eq!(e.kind, kind, "{}", e.message);
                    assert_eq!(eval.verdict, Verdict::Hold);
                }
            });
        }
    });
    eprintln!("200 failures in {:?}", started.elapsed());
    assert_host_fine();
}

#[test]
fn component_importing_wasi_http_is_refused_at_upload_naming_the_import() {
    // Refused before it is compiled: the message names the import and why.
    let bytes = wat::parse_str(
        r#"(component
             (import "wasi:io/poll@0.2.0" (instance))
             (import "wasi:http/outgoing-handler@0.2.0" (instance)))"#,
    )
    .unwrap();
    let err = engine().compile("http", &bytes).unwrap_err();
    assert!(matches!(err, EngineError::Rejected { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("`wasi:http/outgoing-handler@0.2.0`")
            && text.contains("outgoing HTTP is not available"),
        "{text}"
    );
    assert_host_fine();
}

#[test]
fn no_state_survives_from_one_evaluation_to_the_next() {
    // `remember` counts its evaluations in a static and marks every page of
    // a 2 MiB region, then answers promote only if it found neither count
    // nor marks. The host resets a freed instance's memory in place where
    // it can (the pages the guest wrote, copied back from the image) and
    // unmaps the rest; either way the next instance must start from the
    // component's initial state. Checked from the plain component and from
    // a pre-initialised snapshot (whose image holds the parsed settings),
    // on two threads at once so instances reuse each other's pool slots.
    let engine = engine();
    let plain = Limits {
        fuel: 50_000_000,
        memory_bytes: 32 << 20,
        ..tight()
    };
    // Other limits, so the snapshot (keyed by them) serves only this one.
    let snap = Limits {
        fuel: plain.fuel + 1,
        ..plain
    };
    for (service, limits) in [("remember", plain), ("remember-snap", snap)] {
        engine
            .put_binding(service, binding(service, "remember", limits, OnError::Hold))
            .unwrap();
    }
    let set = engine.snapshot();
    let req = request("remember-snap");
    let b = Engine::matching(&set, &req)[0];
    let prepared = engine
        .runtime()
        .prepare(&b.policy, r#"{"mode":"remember"}"#, &snap)
        .expect("the snapshot builds");
    assert!(prepared, "misbehave exports `preinit`");
    std::thread::scope(|s| {
        for t in 0..2 {
            s.spawn(move || {
                for i in 0..40 {
                    let service = if (i + t) % 2 == 0 {
                        "remember"
                    } else {
                        "remember-snap"
                    };
                    let eval = decide(service);
                    let p = &eval.policies[0];
                    assert_eq!(p.error, None, "{service}, evaluation {i}: {p:?}");
                    assert_eq!(
                        p.reasons[0].message,
                        "fresh instance: nothing left by an earlier evaluation"
                    );
                    assert_eq!(eval.verdict, Verdict::Promote);
                }
            });
        }
    });
    assert_host_fine();
}
