//! A policy runs as itself and nothing else: a pin names a version of its
//! own policy.

use serde_json::json;
use verdict_e2e::{assert_error, failing_request, Options, Server};

fn digest_of(s: &Server, policy: &str) -> String {
    s.get_ok(&format!("/v1/policies/{policy}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn restart(dir: std::path::PathBuf) -> Server {
    Server::start_with(Options {
        data_dir: Some(dir),
        ..Options::default()
    })
}

#[test]
fn a_pin_to_another_policys_digest_is_refused() {
    let s = Server::start();
    let risk = digest_of(&s, "change-risk");
    let thresholds = digest_of(&s, "thresholds");
    let forged = format!("thresholds@{risk}");

    // As a binding: refused, naming both policies, and nothing is bound.
    let answer = s.json(
        "PUT",
        "/v1/bindings/sneaky",
        &json!({"policy": forged, "selector": {"service": "api"}}),
    );
    let message = assert_error(&answer, 422, "pin_mismatch");
    assert!(
        message.contains("`thresholds`") && message.contains("`change-risk`"),
        "{message}"
    );
    assert!(message.contains(&forged), "{message}");
    assert_eq!(s.call("GET", "/v1/bindings/sneaky", None).0, 404);

    // As a replay reference: refused the same way.
    let d = s.decide(&failing_request("api", "prod"));
    let path = format!("/v1/decisions/{}/replay", d["id"].as_str().unwrap());
    let answer = s.json("POST", &path, &json!({"policies": [forged]}));
    assert_error(&answer, 422, "pin_mismatch");

    // A pin to the name's own digest is fine.
    let (st, body) = s.json(
        "PUT",
        "/v1/bindings/pinned",
        &json!({"policy": format!("thresholds@{thresholds}"), "selector": {"service": "api"}}),
    );
    assert_eq!(st, 200, "{body}");

    // The check holds after a restart (the history of names is persisted).
    let (dir, _keep) = s.into_data_dir();
    let s = restart(dir);
    let answer = s.json(
        "PUT",
        "/v1/bindings/sneaky",
        &json!({"policy": forged, "selector": {"service": "api"}}),
    );
    assert_error(&answer, 422, "pin_mismatch");
    assert_eq!(
        s.get_ok("/v1/bindings/pinned")["binding"]["policy"],
        format!("thresholds@{thresholds}")
    );
}
