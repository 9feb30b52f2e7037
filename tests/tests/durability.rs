//! Storage guarantees: a restart restores exactly the active
//! set; an acknowledged decision survives kill -9; tampering is detected.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use verdict_e2e::{failing_request, healthy_request, try_call, Options, Server};

fn restart(dir: std::path::PathBuf) -> Server {
    Server::start_with(Options {
        data_dir: Some(dir),
        ..Options::default()
    })
}

fn names(list: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[key].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn restart_restores_policies_bindings_freezes_and_the_chain() {
    let mut s = Server::start();
    let decisions: Vec<Value> = vec![
        s.decide(&healthy_request("api", "prod")),
        s.decide(&failing_request("api", "prod")),
        s.decide(&healthy_request("web", "staging")),
    ];
    let wasm = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/dist/thresholds.wasm"
    ))
    .unwrap();
    let (st, uploaded) = s.call_with(
        "PUT",
        "/v1/policies/my-thresholds",
        Some(&wasm),
        None,
        "application/wasm",
    );
    assert_eq!(st, 201, "{uploaded}");
    let binding = json!({
        "policy": "my-thresholds",
        "selector": {"service": "strict-svc"},
        "mode": "enforce",
        "on_error": "rollback",
        "settings": {"rules": [{"metric": "error_rate", "max": 0.0005}]},
        "limits": {"fuel": 500000000, "timeout_ms": 150},
    });
    let (st, body) = s.json("PUT", "/v1/bindings/strict", &binding);
    assert_eq!(st, 200, "{body}");
    let (st, freeze) = s.json(
        "POST",
        "/v1/freezes",
        &json!({"selector": {"service": "pay"}, "reason": "INC-9", "until": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(st, 201, "{freeze}");

    let policies = s.get_ok("/v1/policies");
    let bindings = s.get_ok("/v1/bindings");
    let freezes = s.get_ok("/v1/freezes");
    let head = s.get_ok("/v1/audit/verify");
    assert_eq!(head["checked"], 3);

    let status = s.terminate();
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    let (dir, _keep) = s.into_data_dir();

    let s = restart(dir);
    // Exactly the same active set.
    assert_eq!(s.get_ok("/v1/policies"), policies);
    assert_eq!(s.get_ok("/v1/bindings"), bindings);
    assert_eq!(s.get_ok("/v1/freezes"), freezes);
    assert_eq!(names(&policies, "name").len(), 6);
    assert_eq!(names(&bindings, "name").len(), 6);
    let r = s.get_ok("/readyz");
    assert_eq!(
        (r["policies"].clone(), r["bindings"].clone()),
        (json!(6), json!(6))
    );
    // Decisions are still there, byte for byte, and the chain verifies.
    for d in &decisions {
        assert_eq!(
            &s.get_ok(&format!("/v1/decisions/{}", d["id"].as_str().unwrap())),
            d
        );
    }
    assert_eq!(s.get_ok("/v1/audit/verify"), head);
    // The restored set is live: binding, freeze, uploaded policy all act.
    let strict = s.decide(&healthy_request("strict-svc", "prod"));
    assert_eq!(strict["seq"], 4, "the sequence continues");
    assert_eq!(
        strict["prev_hash"], decisions[2]["hash"],
        "the chain continues"
    );
    assert_eq!(strict["verdict"], "rollback", "{strict}");
    let p = verdict_e2e::policy_result(&strict, "strict");
    assert_eq!(p["digest"], uploaded["digest"]);
    assert_eq!(p["limits"]["fuel"], 500000000);
    let frozen = s.decide(&healthy_request("pay", "prod"));
    assert_eq!(frozen["verdict"], "freeze", "{frozen}");
    assert_eq!(frozen["freezes"], json!([freeze["id"].clone()]));
    assert_eq!(
        s.decide(&healthy_request("web", "prod"))["verdict"],
        "promote"
    );
    // Replay of a pre-restart decision against its recorded digests.
    let (st, r) = s.json(
        "POST",
        "/v1/decisions/dec-000000000002/replay",
        &json!({"as_recorded": true}),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["changed"].clone(), r["replayed_verdict"].clone()),
        (json!(false), json!("rollback"))
    );
    let report = s.get_ok("/v1/audit/verify");
    assert_eq!(
        (report["ok"].clone(), report["checked"].clone()),
        (json!(true), json!(6))
    );
}

#[test]
fn deleted_things_stay_deleted_after_restart() {
    let s = Server::start();
    let (st, f) = s.json(
        "POST",
        "/v1/freezes",
        &json!({"reason": "everything", "until": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(st, 201, "{f}");
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/v1/freezes/{}", f["id"].as_str().unwrap()),
            None
        )
        .0,
        200
    );
    assert_eq!(s.call("DELETE", "/v1/bindings/change-risk", None).0, 200);
    assert_eq!(s.call("DELETE", "/v1/policies/change-risk", None).0, 200);
    let (dir, _keep) = s.into_data_dir(); // kill -9: registry changes were already durable
    let s = restart(dir);
    assert_eq!(s.get_ok("/v1/freezes")["items"], json!([]));
    assert_eq!(
        names(&s.get_ok("/v1/policies"), "name"),
        [
            "canary-judge",
            "error-budget",
            "freeze-window",
            "thresholds"
        ]
    );
    assert_eq!(
        names(&s.get_ok("/v1/bindings"), "name"),
        [
            "canary-judge",
            "error-budget",
            "freeze-window",
            "thresholds"
        ]
    );
    let d = s.decide(&healthy_request("api", "prod"));
    assert_eq!(d["verdict"], "promote");
    assert_eq!(d["policies"].as_array().unwrap().len(), 4);
}

/// (id, verdict, hash) of every decision answered 201.
type Acks = Arc<Mutex<Vec<(String, String, String)>>>;

/// `threads` clients deciding in a loop until a transport error (the
/// server died) or `stop`. Returns the join handles.
fn hammer(
    base: &str,
    threads: usize,
    acks: &Acks,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<usize>> {
    (0..threads)
        .map(|t| {
            let (base, acks, stop) = (base.to_string(), acks.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let svc = format!("svc-{t}");
                    let req = if n % 3 == 2 {
                        failing_request(&svc, "prod")
                    } else {
                        healthy_request(&svc, "prod")
                    };
                    let body = req.to_string();
                    match try_call(
                        &base,
                        "POST",
                        "/v1/decisions",
                        Some(body.as_bytes()),
                        None,
                        "application/json",
                    ) {
                        Ok((201, d)) => {
                            let field = |k: &str| d[k].as_str().unwrap().to_string();
                            acks.lock().unwrap().push((
                                field("id"),
                                field("verdict"),
                                field("hash"),
                            ));
                            n += 1;
                        }
                        // Refused while shutting down (connection closed, 503): the
                        // client was not told it was stored.
                        Ok(_) | Err(_) => break,
                    }
                }
                n
            })
        })
        .collect()
}

/// Every acknowledged decision is fetchable, unchanged, and the chain holds
/// them. `exact`: nothing was stored without being acknowledged either (a
/// clean shutdown answers every decision it started).
fn check_acks(s: &Server, acks: &[(String, String, String)], exact: bool) {
    for (id, verdict, hash) in acks {
        let (st, d) = s.call("GET", &format!("/v1/decisions/{id}"), None);
        assert_eq!(st, 200, "acknowledged decision {id} lost: {d}");
        assert_eq!(d["verdict"], verdict.as_str(), "{id}");
        assert_eq!(d["hash"], hash.as_str(), "{id}");
    }
    let report = s.get_ok("/v1/audit/verify");
    assert_eq!(report["ok"], true, "{report}");
    let checked = report["checked"].as_u64().unwrap();
    assert!(
        checked >= acks.len() as u64,
        "verify checked {checked} < {} acknowledged",
        acks.len()
    );
    if exact {
        assert_eq!(
            checked,
            acks.len() as u64,
            "decisions stored but never answered"
        );
    }
    // Ids are unique: no seq was handed out twice.
    let mut ids: Vec<&String> = acks.iter().map(|a| &a.0).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), acks.len());
    // The chain continues after the last stored record.
    let next = s.decide(&healthy_request("after-crash", "prod"));
    assert_eq!(next["seq"], checked + 1);
    assert_eq!(next["prev_hash"], report["head"]);
}

#[test]
fn acknowledged_decisions_survive_kill_9_under_concurrent_load() {
    let mut s = Server::start();
    let acks: Acks = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers = hammer(&s.base, 8, &acks, &stop);
    // Let it run until a fair number of decisions is in flight and acknowledged.
    let started = std::time::Instant::now();
    while acks.lock().unwrap().len() < 40 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    let per_thread: Vec<usize> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let acks = acks.lock().unwrap().clone();
    assert!(
        acks.len() >= 40,
        "too few decisions before the kill: {per_thread:?}"
    );

    let (dir, _keep) = s.into_data_dir();
    let s = restart(dir);
    check_acks(&s, &acks, false);
}

#[test]
fn sigterm_under_load_finishes_in_flight_decisions_and_exits_cleanly() {
    let mut s = Server::start();
    let acks: Acks = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers = hammer(&s.base, 4, &acks, &stop);
    let started = std::time::Instant::now();
    while acks.lock().unwrap().len() < 20 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = s.terminate();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(
        status.success(),
        "clean exit on SIGTERM under load: {status:?}"
    );
    let acks = acks.lock().unwrap().clone();
    assert!(acks.len() >= 20);
    let (dir, _keep) = s.into_data_dir();
    let s = restart(dir);
    check_acks(&s, &acks, true);
}

#[test]
fn tampering_with_a_stored_record_is_detected() {
    let s = Server::start();
    let d1 = s.decide(&healthy_request("api", "prod"));
    let d2 = s.decide(&failing_request("api", "prod"));
    let d3 = s.decide(&healthy_request("api", "prod"));
    assert_eq!(s.get_ok("/v1/audit/verify")["ok"], true);
    let (dir, _keep) = s.into_data_dir();

    // An attacker with disk access turns seq 2's rollback into a promote,
    // editing the stored bytes and leaving the stored hash alone.
    {
        let store = verdict::store::Store::open(&dir.join("store"))
            .expect("open the stopped server's store");
        store
            .tamper_for_tests(2, |record| {
                record.replace(
                    r#""seq":2,"verdict":"rollback""#,
                    r#""seq":2,"verdict":"promote""#,
                )
            })
            .unwrap();
    }

    let s = restart(dir.clone());
    let report = s.get_ok("/v1/audit/verify");
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["checked"], 1, "only seq 1 checks out: {report}");
    assert_eq!(report["head"], d1["hash"], "{report}");
    let broken = &report["broken"];
    assert_eq!(broken["seq"], 2, "{report}");
    assert_eq!(broken["id"], d2["id"], "{report}");
    assert!(
        broken["problem"]
            .as_str()
            .is_some_and(|p| p.starts_with("hash mismatch: stored `")),
        "{report}"
    );
    // The edit is really on disk: the record serves as tampered.
    assert_eq!(
        s.get_ok("/v1/decisions/dec-000000000002")["verdict"],
        "promote"
    );
    // The CLI agrees, with a non-zero exit.
    let (code, out) = s.cli(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"ok\": false"), "{out}");
    // The untouched records are still served as stored.
    assert_eq!(
        s.get_ok(&format!("/v1/decisions/{}", d3["id"].as_str().unwrap())),
        d3
    );
}

#[test]
fn a_rewritten_record_with_a_recomputed_hash_breaks_the_next_link() {
    let s = Server::start();
    let d1 = s.decide(&healthy_request("api", "prod"));
    let d2 = s.decide(&failing_request("api", "prod"));
    let d3 = s.decide(&healthy_request("api", "prod"));
    let (dir, _keep) = s.into_data_dir();
    {
        let store = verdict::store::Store::open(&dir.join("store")).unwrap();
        let prev = d1["hash"].as_str().unwrap().to_string();
        store
            .tamper_for_tests(2, |record| {
                // Turn the rollback into a promote and re-hash the record the
                // way the chain does: sha256(prev_hash || canonical body).
                record.replace(
                    r#""seq":2,"verdict":"rollback""#,
                    r#""seq":2,"verdict":"promote""#,
                );
                let mut h = Sha256::new();
                h.update(prev.as_bytes());
                h.update(record.body.as_bytes());
                record.hash = hex::encode(h.finalize());
            })
            .unwrap();
    }
    let s = restart(dir);
    // The forged record serves as forged…
    let forged = s.get_ok("/v1/decisions/dec-000000000002");
    assert_eq!(forged["verdict"], "promote");
    assert_ne!(forged["hash"], d2["hash"]);
    // …but the next record still points at the original hash.
    let report = s.get_ok("/v1/audit/verify");
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["checked"], 2, "{report}");
    assert_eq!(report["broken"]["seq"], 3, "{report}");
    assert_eq!(report["broken"]["id"], d3["id"], "{report}");
}

#[test]
fn a_deleted_policy_still_replays_as_recorded_after_restart() {
    let s = Server::start();
    let wasm = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/dist/thresholds.wasm"
    ))
    .unwrap();
    let (st, meta) = s.call_with(
        "PUT",
        "/v1/policies/gone-soon",
        Some(&wasm),
        None,
        "application/wasm",
    );
    assert_eq!(st, 201, "{meta}");
    let (st, body) = s.json(
        "PUT",
        "/v1/bindings/gone-soon",
        &json!({"policy": "gone-soon", "settings": {"rules": [{"metric": "error_rate", "max": 0.0005}]}}),
    );
    assert_eq!(st, 200, "{body}");
    let d = s.decide(&healthy_request("api", "prod"));
    assert_eq!(d["verdict"], "rollback", "{d}");
    assert_eq!(s.call("DELETE", "/v1/bindings/gone-soon", None).0, 200);
    assert_eq!(s.call("DELETE", "/v1/policies/gone-soon", None).0, 200);
    let (dir, _keep) = s.into_data_dir();

    let s = restart(dir);
    assert_eq!(s.call("GET", "/v1/policies/gone-soon", None).0, 404);
    let path = format!("/v1/decisions/{}/replay", d["id"].as_str().unwrap());
    // As recorded: the stored component bytes (by digest) reproduce it.
    let (st, r) = s.json("POST", &path, &json!({"as_recorded": true}));
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["changed"].clone(), r["replayed_verdict"].clone()),
        (json!(false), json!("rollback")),
        "{r}"
    );
    let p = verdict_e2e::policy_result(&r["replayed"], "gone-soon");
    assert_eq!(p["digest"], meta["digest"]);
    // Against the current set the binding is gone: the diff says so.
    let (st, r) = s.json("POST", &path, &json!({}));
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["replayed_verdict"], "promote");
    assert_eq!(
        r["diff"],
        json!([{"binding": "gone-soon", "before": "rollback"}]),
        "{r}"
    );
}

#[test]
fn a_pinned_binding_keeps_its_version_across_reupload_and_restart() {
    let dist = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/dist/");
    let thresholds = std::fs::read(format!("{dist}thresholds.wasm")).unwrap();
    let canary = std::fs::read(format!("{dist}canary-judge.wasm")).unwrap();
    let s = Server::start();
    let put = |bytes: &[u8]| {
        let (st, meta) = s.call_with(
            "PUT",
            "/v1/policies/flip",
            Some(bytes),
            None,
            "application/wasm",
        );
        assert_eq!(st, 201, "{meta}");
        meta["digest"].as_str().unwrap().to_string()
    };
    let v1 = put(&thresholds);
    let (st, body) = s.json(
        "PUT",
        "/v1/bindings/pinned",
        &json!({
            "policy": format!("flip@{v1}"),
            "selector": {"service": "flip-svc"},
            "settings": {"rules": [{"metric": "error_rate", "max": 0.0005}]},
        }),
    );
    assert_eq!(st, 200, "{body}");
    // The name moves on to another component; the pin does not.
    let v2 = put(&canary);
    assert_ne!(v1, v2);
    let check = |s: &Server| {
        assert_eq!(s.get_ok("/v1/policies/flip")["digest"], v2.as_str());
        let d = s.decide(&healthy_request("flip-svc", "prod"));
        assert_eq!(d["verdict"], "rollback", "{d}");
        let p = verdict_e2e::policy_result(&d, "pinned");
        assert_eq!(p["digest"], v1.as_str(), "{p}");
        assert!(p.get("error").is_none_or(Value::is_null), "{p}");
    };
    check(&s);
    let (dir, _keep) = s.into_data_dir();
    let s = restart(dir);
    check(&s);
    assert_eq!(
        s.get_ok("/v1/bindings/pinned")["binding"]["policy"],
        format!("flip@{v1}")
    );
}
