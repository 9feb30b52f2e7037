//! The HTTP decision API as a deploy tool and an operator use
//! it: decide, fetch, query, replay, verify, freezes, bindings, policies.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use verdict_e2e::{
    assert_error, failing_request, healthy_request, policy_result as policy, Server,
};

const BUILTINS: [&str; 5] = [
    "canary-judge",
    "change-risk",
    "error-budget",
    "freeze-window",
    "thresholds",
];
const FUTURE: &str = "2099-01-01T00:00:00Z";

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn bindings_of(record: &Value) -> Vec<String> {
    let mut v: Vec<String> = record["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["binding"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn seqs(page: &Value) -> Vec<u64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["seq"].as_u64().unwrap())
        .collect()
}

/// A stricter thresholds ruleset: the healthy request's 0.12 % error rate fails it.
fn strict_settings() -> Value {
    json!({"rules": [{"metric": "error_rate", "max": 0.0005}]})
}

#[test]
fn decision_record_has_every_field_and_is_chained() {
    let s = Server::start();

    let first = s.decide(&healthy_request("api", "prod"));
    assert_eq!(first["id"], "dec-000000000001");
    assert_eq!(first["seq"], 1);
    assert_eq!(first["verdict"], "promote");
    let reasons = first["reasons"].as_array().expect("reasons is a list");
    assert!(!reasons.is_empty(), "a promote explains itself: {first}");
    for r in reasons {
        assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
    }

    // One result per built-in binding, each fully described.
    assert_eq!(bindings_of(&first), BUILTINS);
    for p in first["policies"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        assert!(BUILTINS.contains(&name), "{p}");
        let digest = p["digest"].as_str().unwrap();
        assert!(
            digest.strip_prefix("sha256:").is_some_and(is_hex64),
            "digest {digest}"
        );
        assert_eq!(p["mode"], "enforce");
        assert!(p["reasons"].is_array(), "{p}");
        assert!(p["duration_us"].is_u64(), "{p}");
        assert!(p["fuel_used"].as_u64().is_some_and(|f| f > 0), "{p}");
        assert!(
            p["error"].is_null() && p.get("error").is_some(),
            "no policy failed: {p}"
        );
        // Exactly one of a vote or an explicit abstention.
        let voted = p["verdict"].is_string();
        let abstained = p["abstained"].as_str().is_some_and(|a| !a.is_empty());
        assert!(voted != abstained, "verdict xor abstained: {p}");
    }
    // healthy_request: canary-judge and thresholds vote promote, the rest abstain.
    assert_eq!(policy(&first, "canary-judge")["verdict"], "promote");
    assert_eq!(policy(&first, "thresholds")["verdict"], "promote");
    for b in ["change-risk", "error-budget", "freeze-window"] {
        assert!(
            policy(&first, b)["abstained"].is_string(),
            "{b} abstains: {first}"
        );
    }

    // The exact input is stored, with the decision time filled in.
    let req = &first["request"];
    assert_eq!(req["deployment"]["service"], "api");
    assert_eq!(req["deployment"]["environment"], "prod");
    assert_eq!(req["deployment"]["version"], "v2");
    assert_eq!(req["deployment"]["previous_version"], "v1");
    assert_eq!(req["metrics"][0]["name"], "error_rate");
    assert_eq!(req["metrics"][0]["canary"].as_array().unwrap().len(), 20);
    assert!(
        req["time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "{req}"
    );
    assert!(
        first["decided_at"]
            .as_str()
            .is_some_and(|t| t.contains('T')),
        "{first}"
    );

    // Hash chain: genesis, then each record links to the previous one.
    assert_eq!(first["prev_hash"], "0".repeat(64));
    let h1 = first["hash"].as_str().unwrap();
    assert!(is_hex64(h1) && h1 != "0".repeat(64), "{h1}");

    let second = s.decide(&failing_request("api", "prod"));
    assert_eq!(second["seq"], 2);
    assert_eq!(second["id"], "dec-000000000002");
    assert_eq!(second["verdict"], "rollback");
    assert_eq!(second["prev_hash"], first["hash"]);
    assert_ne!(second["hash"], first["hash"]);
    let names_error_rate = second["reasons"].as_array().unwrap().iter().any(|r| {
        r["metric"] == "error_rate" || r["message"].as_str().unwrap_or("").contains("error_rate")
    });
    assert!(names_error_rate, "the rollback names error_rate: {second}");
    assert_eq!(policy(&second, "thresholds")["verdict"], "rollback");

    // GET returns exactly what POST answered.
    for d in [&first, &second] {
        let got = s.get_ok(&format!("/v1/decisions/{}", d["id"].as_str().unwrap()));
        assert_eq!(&got, d);
    }

    let report = s.get_ok("/v1/audit/verify");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checked"], 2);
    assert_eq!(report["head"], second["hash"]);
    assert!(report["broken"].is_null(), "{report}");
}

#[test]
fn audit_query_filters_and_pages_newest_first() {
    let s = Server::start();
    // seq: service/environment → verdict
    let plan = [
        ("a", "prod", true),     // 1 promote
        ("a", "prod", false),    // 2 rollback
        ("b", "prod", true),     // 3 promote
        ("a", "staging", true),  // 4 promote
        ("b", "staging", false), // 5 rollback
        ("a", "prod", true),     // 6 promote
        ("b", "prod", false),    // 7 rollback
    ];
    let mut all = Vec::new();
    for (svc, env, healthy) in plan {
        let req = if healthy {
            healthy_request(svc, env)
        } else {
            failing_request(svc, env)
        };
        all.push(s.decide(&req));
    }
    let q = |query: &str| s.get_ok(&format!("/v1/decisions?{query}"));

    let everything = q("");
    assert_eq!(seqs(&everything), [7, 6, 5, 4, 3, 2, 1]);
    assert!(everything["next_cursor"].is_null(), "{everything}");
    // Items are the stored records themselves.
    assert_eq!(everything["items"][0], all[6]);

    assert_eq!(seqs(&q("service=a")), [6, 4, 2, 1]);
    assert_eq!(seqs(&q("environment=staging")), [5, 4]);
    assert_eq!(seqs(&q("verdict=rollback")), [7, 5, 2]);
    assert_eq!(
        seqs(&q("verdict=promote&service=a&environment=prod")),
        [6, 1]
    );
    assert_eq!(seqs(&q("service=b&verdict=rollback")), [7, 5]);
    assert_eq!(seqs(&q("verdict=freeze")), Vec::<u64>::new());
    assert_eq!(seqs(&q("service=nobody")), Vec::<u64>::new());

    // since is inclusive, until exclusive, both on decided_at.
    let at = |i: usize| all[i]["decided_at"].as_str().unwrap().to_string();
    let window = |since: Option<&str>, until: Option<&str>| -> Vec<u64> {
        all.iter()
            .rev()
            .filter(|d| {
                let t = d["decided_at"].as_str().unwrap();
                // Same format and zone (UTC, `Z`): compare as instants via the server's own order.
                since.is_none_or(|s| ts(t) >= ts(s)) && until.is_none_or(|u| ts(t) < ts(u))
            })
            .map(|d| d["seq"].as_u64().unwrap())
            .collect()
    };
    let (since, until) = (at(2), at(5));
    let got = seqs(&q(&format!("since={since}&until={until}")));
    assert_eq!(got, window(Some(&since), Some(&until)));
    assert!(got.contains(&3) && !got.contains(&6), "{got:?}");
    assert_eq!(
        seqs(&q(&format!("since={since}"))),
        window(Some(&since), None)
    );
    assert_eq!(seqs(&q(&format!("until={until}&service=a"))), {
        let w = window(None, Some(&until));
        w.into_iter()
            .filter(|s| [1, 2, 4, 6].contains(s))
            .collect::<Vec<_>>()
    });
    assert_eq!(seqs(&q("since=2099-01-01T00:00:00Z")), Vec::<u64>::new());
    assert_eq!(seqs(&q("until=2000-01-01T00:00:00Z")), Vec::<u64>::new());

    // Paging with a cursor visits every record exactly once, newest first.
    for (filter, limit, expected) in [
        ("", 2, vec![7, 6, 5, 4, 3, 2, 1]),
        ("", 3, vec![7, 6, 5, 4, 3, 2, 1]),
        ("", 7, vec![7, 6, 5, 4, 3, 2, 1]),
        ("service=a&", 3, vec![6, 4, 2, 1]),
        ("verdict=rollback&", 1, vec![7, 5, 2]),
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut query = format!("{filter}limit={limit}");
            if let Some(c) = &cursor {
                query.push_str(&format!("&cursor={c}"));
            }
            let page = q(&query);
            let items = seqs(&page);
            assert!(items.len() <= limit, "{query}: {items:?}");
            seen.extend(items);
            pages += 1;
            assert!(pages <= 10, "paging does not end: {seen:?}");
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, expected, "filter `{filter}` limit {limit}");
        assert_eq!(
            pages,
            expected.len().div_ceil(limit),
            "filter `{filter}` limit {limit}"
        );
    }
}

/// RFC 3339 UTC timestamps as (date-time, fraction) so `…:05Z` and
/// `…:05.5Z` order correctly without a date library.
fn ts(t: &str) -> (String, u64) {
    let t = t.trim_end_matches('Z');
    let (secs, frac) = t.split_once('.').unwrap_or((t, "0"));
    let frac = format!("{frac:0<9}");
    (secs.to_string(), frac[..9].parse().unwrap())
}

#[test]
fn idempotency_key_returns_the_stored_decision() {
    let s = Server::start();
    let mut req = healthy_request("api", "prod");
    req["idempotency_key"] = json!("rollout-42/step-3");
    let first = s.decide(&req);
    assert_eq!(first["verdict"], "promote");
    assert_eq!(first["request"]["idempotency_key"], "rollout-42/step-3");

    let (status, again) = s.json("POST", "/v1/decisions", &req);
    assert_eq!(status, 200, "a repeat is not a new decision: {again}");
    assert_eq!(again, first);

    // Same key, different body: a conflict naming the key, neither the
    // stored decision nor a new one (tests/tests/trust.rs has the rest).
    let mut other = failing_request("api", "prod");
    other["idempotency_key"] = json!("rollout-42/step-3");
    let msg = assert_error(
        &s.json("POST", "/v1/decisions", &other),
        409,
        "idempotency_conflict",
    );
    assert!(msg.contains("`rollout-42/step-3`"), "{msg}");

    assert_eq!(seqs(&s.get_ok("/v1/decisions")), [1]);

    // Concurrent first use of a key: exactly one decision is stored.
    let mut req = failing_request("web", "prod");
    req["idempotency_key"] = json!("race");
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|_| scope.spawn(|| s.json("POST", "/v1/decisions", &req)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = answers.iter().filter(|(st, _)| *st == 201).count();
    assert_eq!(created, 1, "one 201, the rest 200: {answers:?}");
    for (st, body) in &answers {
        assert!(*st == 200 || *st == 201, "{st} {body}");
        assert_eq!(body["id"], "dec-000000000002", "{body}");
        assert_eq!(body["verdict"], "rollback");
    }
    assert_eq!(seqs(&s.get_ok("/v1/decisions")), [2, 1]);

    // A fresh request without a key is a new decision with the next seq.
    assert_eq!(s.decide(&healthy_request("api", "prod"))["seq"], 3);
    let report = s.get_ok("/v1/audit/verify");
    assert_eq!(
        (report["ok"].clone(), report["checked"].clone()),
        (json!(true), json!(3))
    );
}

#[test]
fn replay_as_recorded_is_unchanged_and_policy_changes_show_a_diff() {
    let s = Server::start();
    let d = s.decide(&healthy_request("replay-svc", "prod"));
    assert_eq!(d["verdict"], "promote");
    let id = d["id"].as_str().unwrap();
    let replay = |body: Value| -> Value {
        let (st, r) = s.json("POST", &format!("/v1/decisions/{id}/replay"), &body);
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["decision_id"], id);
        assert_eq!(r["original_verdict"], "promote");
        r
    };

    let r = replay(json!({"as_recorded": true}));
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["replayed_verdict"], "promote");
    assert_eq!(r["diff"], json!([]));
    // Same policies, same votes.
    for p in d["policies"].as_array().unwrap() {
        let b = p["binding"].as_str().unwrap();
        let rp = policy(&r["replayed"], b);
        assert_eq!(rp["digest"], p["digest"], "{b}");
        assert_eq!(rp["verdict"], p["verdict"], "{b}");
        assert_eq!(rp["abstained"], p["abstained"], "{b}");
    }
    // With the current (unchanged) bindings, also unchanged.
    assert_eq!(replay(json!({}))["changed"], false);

    // A new binding in scope: replay against current policies shows it.
    let (st, body) = s.json(
        "PUT",
        "/v1/bindings/strict-errors",
        &json!({"policy": "thresholds", "selector": {"service": "replay-svc"}, "settings": strict_settings()}),
    );
    assert_eq!(st, 200, "{body}");
    let r = replay(json!({}));
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["replayed_verdict"], "rollback");
    assert_eq!(
        r["diff"],
        json!([{"binding": "strict-errors", "after": "rollback"}]),
        "{r}"
    );
    // As recorded still reproduces the stored decision exactly.
    let r = replay(json!({"as_recorded": true}));
    assert_eq!(
        (r["changed"].clone(), r["replayed_verdict"].clone()),
        (json!(false), json!("promote"))
    );

    // Changing an existing binding's settings shows before → after.
    s.call("DELETE", "/v1/bindings/strict-errors", None);
    let (st, body) = s.json(
        "PUT",
        "/v1/bindings/thresholds",
        &json!({"policy": "thresholds", "settings": strict_settings()}),
    );
    assert_eq!(st, 200, "{body}");
    let r = replay(json!({}));
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["replayed_verdict"], "rollback");
    assert_eq!(
        r["diff"],
        json!([{"binding": "thresholds", "before": "promote", "after": "rollback"}]),
        "{r}"
    );

    // Replays are not stored.
    assert_eq!(seqs(&s.get_ok("/v1/decisions")), [1]);
    let (st, body) = s.json("POST", "/v1/decisions/dec-000000000077/replay", &json!({}));
    assert_error(&(st, body), 404, "not_found");
}

#[test]
fn freezes_apply_to_their_scope_until_deleted() {
    let s = Server::start();
    let reason = "INC-7: payments degraded, no deploys";
    let (st, f) = s.json(
        "POST",
        "/v1/freezes",
        &json!({"selector": {"service": "pay"}, "reason": reason, "until": FUTURE}),
    );
    assert_eq!(st, 201, "{f}");
    let id = f["id"].as_str().unwrap().to_string();
    assert!(!id.is_empty());
    assert_eq!(f["selector"], json!({"service": "pay"}));
    assert_eq!(f["reason"], reason);
    assert_eq!(f["until"], FUTURE);
    assert!(f["created_at"].is_string(), "{f}");

    let listed = s.get_ok("/v1/freezes");
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["id"], id.as_str());

    // In scope (any environment of `pay`): freeze, with the operator's reason.
    for env in ["prod", "staging"] {
        let d = s.decide(&healthy_request("pay", env));
        assert_eq!(d["verdict"], "freeze", "{d}");
        let says_why = d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["message"].as_str().unwrap_or("").contains(reason));
        assert!(says_why, "the freeze reason is in the decision: {d}");
        assert_eq!(d["freezes"], json!([id.clone()]), "{d}");
    }
    // A rollback in scope is frozen too (freeze outranks rollback).
    assert_eq!(
        s.decide(&failing_request("pay", "prod"))["verdict"],
        "freeze"
    );
    // Out of scope: unaffected.
    let d = s.decide(&healthy_request("web", "prod"));
    assert_eq!(d["verdict"], "promote", "{d}");
    assert!(d.get("freezes").is_none_or(|f| f == &json!([])), "{d}");

    // Environment-scoped freeze.
    let (st, g) = s.json(
        "POST",
        "/v1/freezes",
        &json!({"selector": {"environment": "prod"}, "reason": "quarter close", "until": FUTURE}),
    );
    assert_eq!(st, 201, "{g}");
    assert_eq!(
        s.decide(&healthy_request("web", "prod"))["verdict"],
        "freeze"
    );
    assert_eq!(
        s.decide(&healthy_request("web", "staging"))["verdict"],
        "promote"
    );

    // Lifting the freezes restores normal decisions.
    for fid in [id.as_str(), g["id"].as_str().unwrap()] {
        let (st, body) = s.call("DELETE", &format!("/v1/freezes/{fid}"), None);
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["id"], fid);
    }
    assert_eq!(s.get_ok("/v1/freezes")["items"], json!([]));
    assert_eq!(
        s.decide(&healthy_request("pay", "prod"))["verdict"],
        "promote"
    );
    assert_eq!(
        s.decide(&healthy_request("web", "prod"))["verdict"],
        "promote"
    );
    assert_error(
        &s.call("DELETE", &format!("/v1/freezes/{id}"), None),
        404,
        "not_found",
    );

    // A freeze that has already ended, or has no reason, is refused.
    let past = s.json(
        "POST",
        "/v1/freezes",
        &json!({"selector": {"service": "pay"}, "reason": "too late", "until": "2020-01-01T00:00:00Z"}),
    );
    let msg = assert_error(&past, 422, "invalid_request");
    assert!(msg.contains("past"), "{msg}");
    let blank = s.json(
        "POST",
        "/v1/freezes",
        &json!({"reason": "  ", "until": FUTURE}),
    );
    assert_error(&blank, 422, "invalid_request");
    assert_eq!(s.get_ok("/v1/freezes")["items"], json!([]));
    assert_eq!(
        s.decide(&healthy_request("pay", "prod"))["verdict"],
        "promote"
    );
}

#[test]
fn shadow_binding_is_recorded_but_never_changes_the_verdict() {
    let s = Server::start();
    let binding = json!({
        "policy": "thresholds",
        "selector": {"service": "shadow-svc"},
        "mode": "shadow",
        "settings": strict_settings(),
    });
    let (st, body) = s.json("PUT", "/v1/bindings/strict-shadow", &binding);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["name"], "strict-shadow");
    assert_eq!(body["binding"]["mode"], "shadow");
    assert_eq!(body["binding"]["settings"], strict_settings());

    let got = s.get_ok("/v1/bindings/strict-shadow");
    assert_eq!(got["binding"]["policy"], "thresholds");
    assert_eq!(got["binding"]["selector"], json!({"service": "shadow-svc"}));
    let list = s.get_ok("/v1/bindings");
    let mut names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "canary-judge",
            "change-risk",
            "error-budget",
            "freeze-window",
            "strict-shadow",
            "thresholds"
        ]
    );

    let d = s.decide(&healthy_request("shadow-svc", "prod"));
    assert_eq!(d["verdict"], "promote", "shadow votes never count: {d}");
    let shadow = policy(&d, "strict-shadow");
    assert_eq!(shadow["mode"], "shadow");
    assert_eq!(shadow["name"], "thresholds");
    assert_eq!(
        shadow["verdict"], "rollback",
        "the shadow policy's own vote is recorded: {shadow}"
    );
    assert_eq!(shadow["settings"], strict_settings());

    // Out of the selector's scope the binding does not run at all.
    let other = s.decide(&healthy_request("other-svc", "prod"));
    assert_eq!(bindings_of(&other), BUILTINS);

    // The same binding enforcing does change the verdict…
    let mut enforcing = binding.clone();
    enforcing["mode"] = json!("enforce");
    assert_eq!(
        s.json("PUT", "/v1/bindings/strict-shadow", &enforcing).0,
        200
    );
    let d = s.decide(&healthy_request("shadow-svc", "prod"));
    assert_eq!(d["verdict"], "rollback", "{d}");
    assert_eq!(policy(&d, "strict-shadow")["mode"], "enforce");

    // …and deleting it restores the default.
    let (st, body) = s.call("DELETE", "/v1/bindings/strict-shadow", None);
    assert_eq!(st, 200, "{body}");
    assert_error(
        &s.call("GET", "/v1/bindings/strict-shadow", None),
        404,
        "not_found",
    );
    let d = s.decide(&healthy_request("shadow-svc", "prod"));
    assert_eq!(d["verdict"], "promote");
    assert_eq!(bindings_of(&d), BUILTINS);
}

#[test]
fn invalid_bindings_are_refused_with_the_reason() {
    let s = Server::start();
    let put = |name: &str, body: Value| s.json("PUT", &format!("/v1/bindings/{name}"), &body);

    // Settings the policy's own validate-settings rejects.
    let msg = assert_error(
        &put(
            "x",
            json!({"policy": "thresholds", "settings": {"rules": "nope"}}),
        ),
        422,
        "invalid_binding",
    );
    assert!(
        msg.contains("thresholds") && msg.contains("settings"),
        "{msg}"
    );
    assert!(
        msg.contains("nope") || msg.contains("rules"),
        "names the bad value: {msg}"
    );
    let msg = assert_error(
        &put(
            "x",
            json!({"policy": "thresholds", "settings": {"rulez": []}}),
        ),
        422,
        "invalid_binding",
    );
    assert!(msg.contains("rulez"), "names the unknown setting: {msg}");
    let msg = assert_error(
        &put(
            "x",
            json!({"policy": "canary-judge", "settings": {"pass_threshold": 70, "marginal_threshold": 80}}),
        ),
        422,
        "invalid_binding",
    );
    assert!(msg.contains("marginal_threshold"), "{msg}");
    assert_error(
        &put("x", json!({"policy": "thresholds", "settings": [1, 2]})),
        422,
        "invalid_binding",
    );

    // A failing policy may never wave a rollout through.
    let msg = assert_error(
        &put("x", json!({"policy": "thresholds", "on_error": "promote"})),
        422,
        "invalid_request",
    );
    assert!(msg.contains("promote"), "{msg}");
    assert_error(
        &put("x", json!({"policy": "thresholds", "mode": "audit"})),
        422,
        "invalid_request",
    );
    assert_error(
        &put("x", json!({"policy": "thresholds", "selectr": {}})),
        422,
        "invalid_request",
    );

    // Unknown policy (by name or pinned digest).
    let msg = assert_error(
        &put("x", json!({"policy": "no-such-policy"})),
        404,
        "not_found",
    );
    assert!(msg.contains("no-such-policy"), "{msg}");
    let pinned = format!("thresholds@sha256:{}", "ab".repeat(32));
    assert_error(&put("x", json!({"policy": pinned})), 404, "not_found");

    // Bad binding name.
    assert_error(
        &put("Bad-Name", json!({"policy": "thresholds"})),
        400,
        "invalid_name",
    );

    // Nothing was stored or activated.
    assert_error(&s.call("GET", "/v1/bindings/x", None), 404, "not_found");
    assert_eq!(
        s.get_ok("/v1/bindings")["items"].as_array().unwrap().len(),
        5
    );
    assert_eq!(
        s.decide(&healthy_request("api", "prod"))["verdict"],
        "promote"
    );
}

#[test]
fn uploaded_policy_is_listed_bound_and_protected_while_in_use() {
    let s = Server::start();
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/dist/thresholds.wasm"
    ))
    .unwrap();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));

    let (st, meta) = s.call_with(
        "PUT",
        "/v1/policies/my-thresholds",
        Some(&bytes),
        None,
        "application/wasm",
    );
    assert_eq!(st, 201, "{meta}");
    assert_eq!(meta["name"], "my-thresholds");
    assert_eq!(meta["digest"], digest.as_str());
    assert_eq!(meta["version"], "0.1.0");
    assert_eq!(meta["size"], bytes.len() as u64);

    let list = s.get_ok("/v1/policies");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 6, "{list}");
    let mine = items
        .iter()
        .find(|p| p["name"] == "my-thresholds")
        .expect("listed");
    assert_eq!(mine["digest"], digest.as_str());
    for b in BUILTINS {
        assert!(items.iter().any(|p| p["name"] == b), "{b} listed");
    }
    let one = s.get_ok("/v1/policies/my-thresholds");
    assert_eq!(
        (one["name"].clone(), one["digest"].clone()),
        (json!("my-thresholds"), json!(digest))
    );
    assert_eq!(one["info"]["name"], "thresholds", "describe() ran: {one}");

    // Bind it (by name, and pinned by digest) and decide with it.
    let (st, body) = s.json(
        "PUT",
        "/v1/bindings/mine",
        &json!({"policy": "my-thresholds", "selector": {"service": "mine-svc"}, "settings": strict_settings()}),
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = s.json(
        "PUT",
        "/v1/bindings/mine-pinned",
        &json!({"policy": format!("my-thresholds@{digest}"), "selector": {"service": "mine-svc"}, "mode": "shadow"}),
    );
    assert_eq!(st, 200, "{body}");
    let d = s.decide(&healthy_request("mine-svc", "prod"));
    assert_eq!(d["verdict"], "rollback", "{d}");
    // The digest identifies the exact component that decided. (`name` is the
    // component's self-declared describe() name, not the registry name.)
    assert_eq!(policy(&d, "mine")["digest"], digest.as_str());
    assert_eq!(policy(&d, "mine")["verdict"], "rollback");
    assert_eq!(policy(&d, "mine-pinned")["verdict"], "promote");

    // A bound policy cannot be deleted.
    let msg = assert_error(
        &s.call("DELETE", "/v1/policies/my-thresholds", None),
        409,
        "policy_in_use",
    );
    assert!(msg.contains("mine"), "names the binding: {msg}");
    assert_error(
        &s.call("DELETE", "/v1/policies/thresholds", None),
        409,
        "policy_in_use",
    );

    // Unbound, it can.
    for b in ["mine", "mine-pinned"] {
        assert_eq!(s.call("DELETE", &format!("/v1/bindings/{b}"), None).0, 200);
    }
    let (st, body) = s.call("DELETE", "/v1/policies/my-thresholds", None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["name"], "my-thresholds");
    assert_error(
        &s.call("GET", "/v1/policies/my-thresholds", None),
        404,
        "not_found",
    );
    assert_error(
        &s.call("DELETE", "/v1/policies/my-thresholds", None),
        404,
        "not_found",
    );
    assert_eq!(
        s.get_ok("/v1/policies")["items"].as_array().unwrap().len(),
        5
    );
    assert_eq!(
        s.decide(&healthy_request("mine-svc", "prod"))["verdict"],
        "promote"
    );
}

#[test]
fn health_and_readiness() {
    let s = Server::start();
    let h = s.get_ok("/healthz");
    assert_eq!(h["status"], "ok");
    let r = s.get_ok("/readyz");
    assert_eq!(r["ready"], true, "{r}");
    assert_eq!(r["policies"], 5);
    assert_eq!(r["bindings"], 5);
    // Load balancers that probe with HEAD get the status without a body.
    for path in ["/healthz", "/readyz"] {
        let (status, _) = verdict_e2e::raw(
            &s.base,
            &format!("HEAD {path} HTTP/1.1\r\nHost: verdict\r\nConnection: close"),
            b"",
        );
        assert_eq!(status, 200, "HEAD {path}");
    }
}

#[test]
fn a_request_no_policy_votes_on_is_hold_never_promote() {
    let s = Server::start();
    let d = s.decide(&json!({"deployment": {"service": "api", "environment": "prod"}}));
    assert_eq!(d["verdict"], "hold", "{d}");
    assert!(
        !d["reasons"].as_array().unwrap().is_empty(),
        "says why: {d}"
    );
    for p in d["policies"].as_array().unwrap() {
        assert!(p["abstained"].is_string(), "{p}");
    }
}
