//! Replay (`POST /v1/decisions/{id}/replay`, `verdict replay`): against
//! named policies, as recorded under a manual freeze, and as recorded after
//! the binding's settings changed. Nothing a replay does is stored.

use serde_json::{json, Value};
use verdict_e2e::{
    assert_error, failing_request, healthy_request, misbehave_wasm, policy_result, Server,
};

const FUTURE: &str = "2099-01-01T00:00:00Z";

/// Upload a component; returns its digest.
#[track_caller]
fn put_policy(s: &Server, name: &str, bytes: &[u8]) -> String {
    let (st, body) = s.put_policy(name, bytes);
    assert_eq!(st, 201, "PUT /v1/policies/{name}: {body}");
    body["digest"].as_str().unwrap().to_string()
}

/// Replay that must answer 200; returns the report.
#[track_caller]
fn replay(s: &Server, id: &str, how: &Value) -> Value {
    let (st, r) = s.json("POST", &format!("/v1/decisions/{id}/replay"), how);
    assert_eq!(st, 200, "replay {id} with {how}: {r}");
    assert_eq!(r["decision_id"], id, "{r}");
    r
}

/// (binding, name, digest) of each replayed policy, in order.
fn replayed_policies(r: &Value) -> Vec<(String, String, String)> {
    r["replayed"]["policies"]
        .as_array()
        .unwrap_or_else(|| panic!("no replayed policies in {r}"))
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
            (s("binding"), s("name"), s("digest"))
        })
        .collect()
}

#[track_caller]
fn stored(s: &Server) -> usize {
    s.get_ok("/v1/decisions?limit=1000")["items"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn replay_against_named_policies_runs_exactly_those() {
    let s = Server::start();
    let misbehave = put_policy(&s, "misbehave", &misbehave_wasm());
    let thresholds = s.get_ok("/v1/policies/thresholds")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // Recorded: the built-in `thresholds` rolls back a 5 % error rate.
    let d = s.decide(&failing_request("named", "prod"));
    assert_eq!(d["verdict"], "rollback", "{d}");
    let id = d["id"].as_str().unwrap();
    let recorded = d["policies"].as_array().unwrap().len();
    assert!(recorded >= 2, "the built-ins ran: {d}");

    // One named policy: only it runs, with its default settings, and its
    // vote is the verdict (misbehave's default mode promotes "all good").
    let r = replay(&s, id, &json!({"policies": ["misbehave"]}));
    assert_eq!(
        replayed_policies(&r),
        [("misbehave".into(), "misbehave".into(), misbehave.clone())],
        "{r}"
    );
    let p = policy_result(&r["replayed"], "misbehave");
    assert_eq!(p["verdict"], "promote", "{p}");
    assert_eq!(p["settings"], json!({}), "default settings: {p}");
    assert_eq!(p["mode"], "enforce", "{p}");
    assert_eq!(r["replayed_verdict"], "promote", "{r}");
    assert_eq!(r["original_verdict"], "rollback");
    assert_eq!(r["changed"], true, "{r}");
    assert!(
        r["replayed"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["message"] == "all good"),
        "the reasons are misbehave's: {r}"
    );
    // The diff: every recorded binding is gone, misbehave is new.
    let diff = r["diff"].as_array().unwrap();
    assert_eq!(diff.len(), recorded + 1, "{r}");
    assert!(
        diff.contains(&json!({"binding": "thresholds", "before": "rollback"})),
        "{r}"
    );
    assert!(
        diff.contains(&json!({"binding": "misbehave", "after": "promote"})),
        "{r}"
    );

    // Two named policies, one pinned by digest: both run, in the order
    // named, and the pinned one is that exact component.
    let pinned = format!("thresholds@{thresholds}");
    let r = replay(&s, id, &json!({"policies": [pinned, "misbehave"]}));
    assert_eq!(
        replayed_policies(&r),
        [
            ("thresholds".into(), "thresholds".into(), thresholds.clone()),
            ("misbehave".into(), "misbehave".into(), misbehave.clone()),
        ],
        "{r}"
    );
    assert_eq!(r["replayed_verdict"], "rollback", "{r}");
    assert_eq!(
        policy_result(&r["replayed"], "thresholds")["verdict"],
        "rollback"
    );
    // thresholds voted as recorded, so only the others show in the diff.
    let diff = r["diff"].as_array().unwrap();
    assert!(!diff.iter().any(|x| x["binding"] == "thresholds"), "{r}");
    assert_eq!(diff.len(), recorded, "{r}");

    // A name follows the current version; a pin keeps the old one. A new
    // version of `thresholds` (here: misbehave's component, which accepts
    // the built-in binding's empty settings) now answers under the name.
    let new_version = put_policy(&s, "thresholds", &misbehave_wasm());
    assert_eq!(new_version, misbehave);
    let r = replay(&s, id, &json!({"policies": ["thresholds"]}));
    assert_eq!(
        replayed_policies(&r),
        [("misbehave".into(), "misbehave".into(), misbehave.clone())],
        "the current version of the name: {r}"
    );
    assert_eq!(r["replayed_verdict"], "promote", "{r}");
    let r = replay(
        &s,
        id,
        &json!({"policies": [format!("thresholds@{thresholds}")]}),
    );
    assert_eq!(
        replayed_policies(&r),
        [("thresholds".into(), "thresholds".into(), thresholds.clone())],
        "the pinned old version: {r}"
    );
    assert_eq!(r["replayed_verdict"], "rollback", "{r}");

    // Unknown names and digests are 404s; nothing was stored by any replay.
    for bad in [
        json!({"policies": ["nope"]}),
        json!({"policies": [format!("thresholds@sha256:{}", "0".repeat(64))]}),
    ] {
        assert_error(
            &s.json("POST", &format!("/v1/decisions/{id}/replay"), &bad),
            404,
            "not_found",
        );
    }
    assert_eq!(stored(&s), 1);
}

#[test]
fn a_decision_made_during_a_manual_freeze_replays_as_recorded_unchanged() {
    let s = Server::start();
    let reason = "INC-9: no deploys during the incident";
    let (st, f) = s.json(
        "POST",
        "/v1/freezes",
        &json!({"selector": {"service": "frozen"}, "reason": reason, "until": FUTURE}),
    );
    assert_eq!(st, 201, "{f}");
    let freeze = f["id"].as_str().unwrap().to_string();

    // Healthy input, but the freeze decides.
    let d = s.decide(&healthy_request("frozen", "prod"));
    assert_eq!(d["verdict"], "freeze", "{d}");
    assert_eq!(d["freezes"], json!([freeze]), "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    // A decision on another service before any freeze reached it.
    let thawed = s.decide(&healthy_request("thawed", "prod"));
    assert_eq!(thawed["verdict"], "promote", "{thawed}");
    let thawed = thawed["id"].as_str().unwrap().to_string();

    let as_recorded = json!({"as_recorded": true});
    let unchanged_freeze = |r: &Value| {
        assert_eq!(
            (
                r["original_verdict"].clone(),
                r["replayed_verdict"].clone(),
                r["changed"].clone()
            ),
            (json!("freeze"), json!("freeze"), json!(false)),
            "a freeze is part of the recorded evidence: {r}"
        );
        assert_eq!(r["diff"], json!([]), "{r}");
        assert_eq!(r["replayed"]["freezes"], json!([freeze]), "{r}");
        assert_eq!(r["replayed"]["reasons"], d["reasons"], "{r}");
    };
    let cli_unchanged = |id: &str, verdict: &str| {
        let (code, out, err) = s.cli_env(&["replay", id, "--as-recorded"], &[]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains(&format!(
                "recorded {verdict}, replayed {verdict} (unchanged)"
            )),
            "{out}"
        );
    };

    // While the freeze is still in force …
    let r = replay(&s, &id, &as_recorded);
    unchanged_freeze(&r);
    assert!(
        r["replayed"]["reasons"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&freeze) && m.contains(reason)),
        "{r}"
    );
    // The policies themselves ran and voted as recorded.
    for p in d["policies"].as_array().unwrap() {
        let b = p["binding"].as_str().unwrap();
        assert_eq!(
            policy_result(&r["replayed"], b)["verdict"],
            p["verdict"],
            "{b}"
        );
    }
    cli_unchanged(&id, "freeze");

    // … and after it was lifted: the record, not today's freeze table.
    let (st, body) = s.call("DELETE", &format!("/v1/freezes/{freeze}"), None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        s.decide(&healthy_request("frozen", "prod"))["verdict"],
        "promote"
    );
    unchanged_freeze(&replay(&s, &id, &as_recorded));
    cli_unchanged(&id, "freeze");

    // Today's freezes do not reach back into a decision made without one.
    let (st, f) = s.json(
        "POST",
        "/v1/freezes",
        &json!({"selector": {"service": "thawed"}, "reason": "later", "until": FUTURE}),
    );
    assert_eq!(st, 201, "{f}");
    let r = replay(&s, &thawed, &as_recorded);
    assert_eq!(
        (r["replayed_verdict"].clone(), r["changed"].clone()),
        (json!("promote"), json!(false)),
        "{r}"
    );
    assert_eq!(r["replayed"]["freezes"], Value::Null, "{r}");
    cli_unchanged(&thawed, "promote");

    // Against the current policies (no `as_recorded`) a replay answers what
    // the policies say, which no freeze affects: they still promote, the
    // verdict differs from the recorded freeze, and no policy changed.
    let r = replay(&s, &id, &json!({}));
    assert_eq!(
        (r["replayed_verdict"].clone(), r["changed"].clone()),
        (json!("promote"), json!(true)),
        "{r}"
    );
    assert_eq!(r["diff"], json!([]), "{r}");
    let (code, out, err) = s.cli_env(&["replay", &id], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("recorded freeze, replayed promote (changed)"),
        "{out}"
    );

    assert_eq!(stored(&s), 3, "replays store nothing");
}

#[test]
fn recorded_settings_beat_changed_current_settings() {
    let s = Server::start();
    // A lenient `thresholds` binding: a 5 % error rate passes under 10 %.
    // (Not the defaults, which roll it back: a replay that fell back to
    // default settings would fail here too.)
    let lenient = json!({"rules": [{"metric": "error_rate", "max": 0.1}]});
    let (st, body) = s.json(
        "PUT",
        "/v1/bindings/thresholds",
        &json!({"policy": "thresholds", "settings": lenient}),
    );
    assert_eq!(st, 200, "{body}");
    let d = s.decide(&failing_request("settings", "prod"));
    assert_eq!(d["verdict"], "promote", "{d}");
    assert_eq!(policy_result(&d, "thresholds")["settings"], lenient);
    let id = d["id"].as_str().unwrap();

    // The binding now has the default (strict) settings.
    let (st, body) = s.json(
        "PUT",
        "/v1/bindings/thresholds",
        &json!({"policy": "thresholds", "settings": {}}),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        s.get_ok("/v1/bindings/thresholds")["binding"]["settings"],
        json!({})
    );
    assert_eq!(
        s.decide(&failing_request("settings", "prod"))["verdict"],
        "rollback",
        "the current settings roll it back"
    );

    // As recorded: the recorded settings, the recorded verdict.
    let r = replay(&s, id, &json!({"as_recorded": true}));
    assert_eq!(
        (r["replayed_verdict"].clone(), r["changed"].clone()),
        (json!("promote"), json!(false)),
        "{r}"
    );
    assert_eq!(r["diff"], json!([]), "{r}");
    let p = policy_result(&r["replayed"], "thresholds");
    assert_eq!(p["settings"], lenient, "{p}");
    assert_eq!(p["verdict"], "promote", "{p}");
    let (code, out, err) = s.cli_env(&["replay", id, "--as-recorded"], &[]);
    assert_eq!(code, 0, "{out}{err}");

    // Against the current binding: its settings, and the diff says so.
    let r = replay(&s, id, &json!({}));
    assert_eq!(
        (r["replayed_verdict"].clone(), r["changed"].clone()),
        (json!("rollback"), json!(true)),
        "{r}"
    );
    assert_eq!(
        r["diff"],
        json!([{"binding": "thresholds", "before": "promote", "after": "rollback"}]),
        "{r}"
    );
    assert_eq!(
        policy_result(&r["replayed"], "thresholds")["settings"],
        json!({})
    );
    let (code, out, err) = s.cli_env(&["replay", id], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(stored(&s), 2, "replays store nothing");
}
