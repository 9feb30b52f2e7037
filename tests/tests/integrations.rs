//! The deploy-tool front doors against the real binary over real HTTP:
//! Argo Rollouts' web metric provider, Flagger webhooks, and the CI example
//! through `verdict decide`. The example files under `examples/` are sent
//! as they are, so the examples cannot rot.

use std::path::PathBuf;

use serde_json::{json, Value};
use verdict_e2e::{failing_request, healthy_request, Server};

const GATING: [&str; 5] = [
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
];

fn example(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(path)
}

fn read_example(path: &str) -> String {
    std::fs::read_to_string(example(path)).unwrap_or_else(|e| panic!("read examples/{path}: {e}"))
}

/// POST a body exactly as Argo's web provider does with `jsonBody`.
fn argo(s: &Server, body: &[u8]) -> Value {
    let (status, v) = s.call_with(
        "POST",
        "/v1/integrations/argo",
        Some(body),
        None,
        "application/json",
    );
    assert_eq!(status, 200, "Argo must always get 200: {v}");
    for k in ["verdict", "decision_id", "reasons", "retry_after_seconds"] {
        assert!(v.get(k).is_some(), "answer lacks `{k}`: {v}");
    }
    assert!(
        v["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_string),
        "{v}"
    );
    v
}

fn flagger(s: &Server, gate: &str, payload: &Value) -> (u16, String) {
    let (status, v) = s.json("POST", &format!("/v1/integrations/flagger/{gate}"), payload);
    let text = match v {
        Value::String(t) => t,
        other => other.to_string(),
    };
    (status, text)
}

/// The decision id a Flagger answer names: `… (decision dec-…)` or
/// `recorded decision dec-…: verdict`.
fn decision_id(text: &str) -> String {
    let start = text
        .find("dec-")
        .unwrap_or_else(|| panic!("no decision id in {text:?}"));
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

fn payload(name: &str, checksum: &str, metadata: Value) -> Value {
    json!({"name": name, "namespace": "test", "phase": "Progressing", "checksum": checksum, "metadata": metadata})
}

#[test]
fn argo_promotes_healthy_rolls_back_failing_and_records_args() {
    let s = Server::start();
    let mut healthy = healthy_request("checkout", "production");
    healthy["args"] = json!({"namespace": "shop", "canary-hash": "6d8f7c9b5"});
    let v = argo(&s, healthy.to_string().as_bytes());
    assert_eq!(v["verdict"], "promote", "{v}");
    assert_eq!(v["retry_after_seconds"], 0, "{v}");
    let id = v["decision_id"]
        .as_str()
        .expect("a decision id")
        .to_string();
    let (st, d) = s.call("GET", &format!("/v1/decisions/{id}"), None);
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["verdict"], "promote");
    assert_eq!(
        d["request"]["args"],
        json!({"namespace": "shop", "canary-hash": "6d8f7c9b5"})
    );

    let v = argo(
        &s,
        failing_request("checkout", "production")
            .to_string()
            .as_bytes(),
    );
    assert_eq!(v["verdict"], "rollback", "{v}");
    assert!(v["reasons"].to_string().contains("error_rate"), "{v}");
    let id = v["decision_id"].as_str().expect("a decision id");
    let (st, d) = s.call("GET", &format!("/v1/decisions/{id}"), None);
    assert_eq!((st, d["verdict"].as_str()), (200, Some("rollback")), "{d}");
    assert!(
        d["request"].get("args").is_none(),
        "no args, none recorded: {d}"
    );
}

#[test]
fn argo_answers_200_hold_for_every_error() {
    let s = Server::start();
    let cases: [&[u8]; 5] = [
        b"{not json",
        b"",
        br#"{"deployment": {"service": "a", "environment": "b"}, "metrcis": []}"#,
        br#"{"deployment": {"service": " ", "environment": "prod"}}"#,
        br#"{"deployment": {"service": "a", "environment": "b"}, "args": {"n": 1}}"#,
    ];
    for body in cases {
        let v = argo(&s, body);
        assert_eq!(v["verdict"], "hold", "{v}");
        assert!(v["decision_id"].is_null(), "{v}");
        assert_eq!(v["retry_after_seconds"], 30, "{v}");
        assert!(!v["reasons"][0].as_str().unwrap().is_empty(), "{v}");
    }
    // A body over max_body_bytes (1 MiB) is refused as a hold too.
    let huge = vec![b' '; 2 << 20];
    let v = argo(&s, &huge);
    assert_eq!(v["verdict"], "hold", "{v}");
    assert!(
        v["reasons"][0].as_str().unwrap().contains("larger than"),
        "{v}"
    );
    // Nothing was stored for them.
    let (_, page) = s.call("GET", "/v1/decisions", None);
    assert_eq!(page["items"].as_array().unwrap().len(), 0, "{page}");
}

#[test]
fn argo_example_request_replays_and_matches_the_template() {
    let s = Server::start();
    let body = read_example("argo-rollouts/request.json");
    let v = argo(&s, body.as_bytes());
    // No metrics (Argo cannot push them): change-risk votes on the change
    // context, the metric policies abstain.
    assert_eq!(v["verdict"], "promote", "{v}");
    let (_, d) = s.call(
        "GET",
        &format!("/v1/decisions/{}", v["decision_id"].as_str().unwrap()),
        None,
    );
    let req: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["request"]["args"], req["args"]);

    // The template sends this body and reads this answer.
    let template = read_example("argo-rollouts/analysis-template.yaml");
    for needle in [
        "/v1/integrations/argo",
        "jsonBody:",
        "method: POST",
        r#"successCondition: result.verdict == "promote""#,
        r#"failureCondition: result.verdict == "rollback""#,
        "inconclusiveLimit:",
        "interval:",
    ] {
        assert!(
            template.contains(needle),
            "analysis-template.yaml lacks {needle:?}"
        );
    }
    for section in ["deployment", "change", "args"] {
        for key in req[section].as_object().unwrap().keys() {
            assert!(
                template.contains(&format!("{key}:")),
                "template jsonBody lacks {section}.{key}"
            );
        }
    }
    assert!(read_example("argo-rollouts/rollout.yaml").contains("templateName: verdict"));
}

#[test]
fn ci_example_request_through_the_cli_exits_0() {
    let s = Server::start();
    let path = example("ci/request.json");
    let (code, out) = s.cli(&["decide", "--file", path.to_str().unwrap()]);
    assert_eq!(code, 0, "promote is exit 0: {out}");
    // The same request over HTTP is stored with its args.
    let body = read_example("ci/request.json");
    let (st, d) = s.call("POST", "/v1/decisions", Some(body.as_bytes()));
    assert_eq!((st, d["verdict"].as_str()), (201, Some("promote")), "{d}");
    assert_eq!(d["request"]["args"]["pipeline"], "ci-example");
    // A failing request is exit 11, an unreachable server exit 1.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, failing_request("checkout", "staging").to_string()).unwrap();
    let (code, out) = s.cli(&["decide", "--file", bad.to_str().unwrap()]);
    assert_eq!(code, 11, "{out}");
    for f in ["github-actions.yml", "gitlab-ci.yml", "verdict-gate.sh"] {
        let text = read_example(&format!("ci/{f}"));
        assert!(
            text.contains("verdict-gate.sh") || text.contains("verdict decide"),
            "{f}"
        );
    }
}

#[test]
fn flagger_without_evidence_holds_on_every_gating_hook() {
    let s = Server::start();
    // Flagger sends no metrics and here no change context: nothing votes.
    let p = payload("podinfo", "abc123", json!({}));
    for gate in GATING {
        let (st, text) = flagger(&s, gate, &p);
        assert_eq!(st, 403, "{gate}: {text}");
        assert!(text.starts_with("hold: "), "{gate}: {text}");
        assert!(text.contains("no enforcing policy voted"), "{gate}: {text}");
    }
    let (st, text) = flagger(&s, "rollback", &p);
    assert_eq!(st, 403, "{text}");
    assert!(text.starts_with("no rollback: hold"), "{text}");

    // Gating hooks are decided afresh on every call (Flagger asks again with
    // the same checksum while it waits): each call is its own decision.
    let (_, a) = flagger(&s, "confirm-promotion", &p);
    let (_, b) = flagger(&s, "confirm-promotion", &p);
    assert_ne!(decision_id(&a), decision_id(&b));
    let (st, d) = s.call("GET", &format!("/v1/decisions/{}", decision_id(&a)), None);
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["request"]["deployment"]["service"], "podinfo");
    assert_eq!(d["request"]["deployment"]["environment"], "test");
    assert_eq!(d["request"]["deployment"]["version"], "abc123");
    assert_eq!(d["request"]["args"]["flagger.gate"], "confirm-promotion");
    assert!(d["request"].get("idempotency_key").is_none(), "{d}");
}

#[test]
fn flagger_example_payload_promotes_and_the_rollback_gate_is_inverted() {
    let s = Server::start();
    let p: Value = serde_json::from_str(&read_example("flagger/payload.json")).unwrap();
    for gate in GATING {
        let (st, text) = flagger(&s, gate, &p);
        assert_eq!(st, 200, "{gate}: {text}");
        assert!(text.starts_with("promote"), "{gate}: {text}");
    }
    let (st, text) = flagger(&s, "rollback", &p);
    assert_eq!(st, 403, "{text}");
    assert!(text.starts_with("no rollback: promote"), "{text}");
    let (_, d) = s.call(
        "GET",
        &format!("/v1/decisions/{}", decision_id(&text)),
        None,
    );
    assert_eq!(d["request"]["deployment"]["environment"], "production");
    assert_eq!(d["request"]["change"]["ticket"], "OPS-1234");

    // The example Canary has a webhook of every type at its own URL.
    let canary = read_example("flagger/canary.yaml");
    for gate in GATING.iter().chain(&["rollback", "post-rollout", "event"]) {
        assert!(
            canary.contains(&format!("type: {gate}\n")),
            "canary.yaml lacks type {gate}"
        );
        assert!(
            canary.contains(&format!("/v1/integrations/flagger/{gate}\n")),
            "canary.yaml lacks the URL for {gate}"
        );
    }
}

#[test]
fn flagger_freeze_answers_403_with_the_freeze_reason() {
    let s = Server::start();
    let (st, f) = s.json(
        "POST",
        "/v1/freezes",
        &json!({"selector": {"service": "podinfo"}, "reason": "incident INC-77", "until": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(st, 201, "{f}");
    let p: Value = serde_json::from_str(&read_example("flagger/payload.json")).unwrap();
    for gate in GATING {
        let (st, text) = flagger(&s, gate, &p);
        assert_eq!(st, 403, "{gate}: {text}");
        assert!(
            text.starts_with("freeze: ") && text.contains("incident INC-77"),
            "{gate}: {text}"
        );
    }
    let (st, text) = flagger(&s, "rollback", &p);
    assert_eq!(st, 403, "{text}");
    assert!(text.starts_with("no rollback: freeze"), "{text}");
}

#[test]
fn flagger_events_and_post_rollout_are_recorded_once_each() {
    let s = Server::start();
    let event = |msg: &str| {
        payload(
            "audited",
            "c0ffee",
            json!({"eventMessage": msg, "eventType": "Normal", "timestamp": "1700000000000"}),
        )
    };
    let (st, first) = flagger(&s, "event", &event("New revision detected"));
    assert_eq!(st, 200, "{first}");
    assert!(first.starts_with("recorded decision dec-"), "{first}");
    // Redelivery of the same event: the same stored decision.
    let (st, again) = flagger(&s, "event", &event("New revision detected"));
    assert_eq!(st, 200, "{again}");
    assert_eq!(decision_id(&first), decision_id(&again));
    // Another event for the same checksum is recorded too.
    let (_, other) = flagger(&s, "event", &event("Advance audited.test canary weight 10"));
    assert_ne!(decision_id(&first), decision_id(&other));
    let mut done = payload("audited", "c0ffee", json!({}));
    done["phase"] = json!("Succeeded");
    let (st, post) = flagger(&s, "post-rollout", &done);
    assert_eq!(st, 200, "{post}");
    let (_, post2) = flagger(&s, "post-rollout", &done);
    assert_eq!(decision_id(&post), decision_id(&post2));

    let (st, page) = s.call("GET", "/v1/decisions?service=audited", None);
    assert_eq!(st, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{page}");
    let gates: Vec<&str> = items
        .iter()
        .map(|d| d["request"]["args"]["flagger.gate"].as_str().unwrap())
        .collect();
    assert_eq!(
        gates.iter().filter(|g| **g == "event").count(),
        2,
        "{gates:?}"
    );
    assert!(gates.contains(&"post-rollout"), "{gates:?}");
    assert!(
        items
            .iter()
            .all(|d| d["request"]["idempotency_key"].is_string()),
        "{page}"
    );
}

#[test]
fn flagger_unknown_gate_is_404_and_a_bad_payload_400() {
    let s = Server::start();
    let (st, v) = s.json(
        "POST",
        "/v1/integrations/flagger/confirm-everything",
        &payload("a", "b", json!({})),
    );
    assert_eq!(st, 404, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    for gate in GATING.iter().chain(&["rollback", "post-rollout", "event"]) {
        assert!(msg.contains(gate), "{msg}");
    }
    for body in [
        &b"{nope"[..],
        br#"{"namespace": "x"}"#,
        br#"{"name": "a", "namespace": "b", "metadata": {"n": 1}}"#,
    ] {
        let (st, v) = s.call(
            "POST",
            "/v1/integrations/flagger/confirm-rollout",
            Some(body),
        );
        assert_eq!(st, 400, "{v}");
        assert_eq!(v["error"]["code"], "malformed_payload", "{v}");
    }
    // Unknown fields are tolerated (Flagger may add some).
    let mut p = payload("podinfo", "abc", json!(null));
    p["retries"] = json!(3);
    let (st, text) = flagger(&s, "event", &p);
    assert_eq!(st, 200, "{text}");
}

fn sha256_hex(s: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn integrations_need_the_decide_role() {
    let tokens = format!(
        "argo:{}:decide,auditor:{}:read",
        sha256_hex("argo-secret"),
        sha256_hex("auditor-secret")
    );
    let s = Server::start_with(verdict_e2e::Options {
        env: vec![("VERDICT_TOKENS".into(), tokens)],
        ..Default::default()
    });
    let body = read_example("argo-rollouts/request.json");
    let p = read_example("flagger/payload.json");
    let path = "/v1/integrations/flagger/confirm-promotion";
    let ct = "application/json";
    // The decide token works on both doors.
    let (st, v) = s.call_with(
        "POST",
        "/v1/integrations/argo",
        Some(body.as_bytes()),
        Some("argo-secret"),
        ct,
    );
    assert_eq!((st, v["verdict"].as_str()), (200, Some("promote")), "{v}");
    let (st, v) = s.call_with("POST", path, Some(p.as_bytes()), Some("argo-secret"), ct);
    assert_eq!(st, 200, "{v}");
    // Auth failures stay auth errors, also for Argo: a misconfigured token
    // must be loud, not a silent hold.
    for (token, status) in [
        (None, 401),
        (Some("wrong"), 401),
        (Some("auditor-secret"), 403),
    ] {
        let (st, v) = s.call_with(
            "POST",
            "/v1/integrations/argo",
            Some(body.as_bytes()),
            token,
            ct,
        );
        assert_eq!(st, status, "argo with {token:?}: {v}");
        let (st, v) = s.call_with("POST", path, Some(p.as_bytes()), token, ct);
        assert_eq!(st, status, "flagger with {token:?}: {v}");
    }
}
