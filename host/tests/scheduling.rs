//! Evaluation slots under contention: a slow policy holds at most half the
//! slots, and a caller that cannot be served by its deadline gets a host
//! error (overloaded), never a policy failure recorded as a vote.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use verdict::domain::{Binding, DecisionRequest, Verdict};
use verdict::engine::{Engine, HostError, RuntimeOptions};

const MISBEHAVE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../policies/dist/test/misbehave.wasm"
));

fn now() -> Timestamp {
    "2025-06-02T10:00:00Z".parse().unwrap()
}

fn binding(service: &str, mode: &str, timeout_ms: u64) -> Binding {
    serde_json::from_value(serde_json::json!({
        "policy": "misbehave",
        "selector": { "service": service },
        "settings": { "mode": mode },
        "limits": { "fuel": 1_000_000_000_000_000u64, "timeout_ms": timeout_ms },
    }))
    .unwrap()
}

fn request(service: &str) -> DecisionRequest {
    serde_json::from_value(serde_json::json!({
        "deployment": { "service": service, "environment": "prod", "version": "1" },
    }))
    .unwrap()
}

#[test]
fn a_looping_policy_holds_half_the_slots_and_a_waiter_past_its_deadline_is_overloaded() {
    let engine = Engine::with_options(
        None,
        RuntimeOptions {
            max_concurrent: 2,
            ..RuntimeOptions::default()
        },
    )
    .unwrap();
    engine.add_policy("misbehave", MISBEHAVE, now()).unwrap();
    engine
        .put_binding("loop", binding("slow", "loop", 5_000))
        .unwrap();
    let risk = &verdict::builtin::BUILTINS[3];
    assert_eq!(risk.name, "change-risk");
    engine.add_policy(risk.name, risk.component, now()).unwrap();
    let mut other = verdict::builtin::default_binding(risk.name);
    other.selector.service = Some("fast".into());
    engine.put_binding("other", other).unwrap();

    // Two decisions for `slow` at once, each with half a second to spare
    // beyond its policy's own 5 s deadline: one gets a slot and loops, the
    // other may not take the second slot (a policy holds at most half) and
    // is refused when its time to start runs out: the host's failure, not
    // the policy's, so no vote and no record.
    let (a, b) = std::thread::scope(|s| {
        let slow = || {
            let deadline = Instant::now() + Duration::from_millis(5_500);
            engine.evaluate_until(request("slow"), now(), deadline)
        };
        let a = s.spawn(slow);
        let b = s.spawn(slow);
        // The refused one answers first; meanwhile the loop still runs, and
        // the second slot serves another policy at once.
        while !a.is_finished() && !b.is_finished() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let fast = engine
            .evaluate_until(
                request("fast"),
                now(),
                Instant::now() + Duration::from_secs(1),
            )
            .expect("a free slot serves another policy while the loop runs");
        assert!(fast.policies[0].error.is_none(), "{fast:?}");
        (a.join().unwrap(), b.join().unwrap())
    });
    let (ran, refused) = if a.is_ok() { (a, b) } else { (b, a) };
    match refused {
        Err(HostError::Overloaded { policy, waited_ms }) => {
            assert_eq!(policy, "misbehave");
            assert!(
                waited_ms < 5_000,
                "refused once its start-by time passed: {waited_ms}"
            );
        }
        other => panic!("expected overloaded, got {other:?}"),
    }
    let ran = ran.expect("one of them ran");
    let p = &ran.policies[0];
    assert_eq!(
        p.error.as_ref().map(|e| e.kind.as_str()),
        Some("deadline"),
        "{p:?}"
    );
    assert_eq!(ran.verdict, Verdict::Hold, "the loop's on_error vote");
}
