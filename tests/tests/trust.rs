//! A gate that cannot be talked past: what a caller holding only a `decide`
//! token sends must not forge evidence, dodge a scope or widen a
//! query.

use serde_json::{json, Value};
use verdict_e2e::{assert_error, healthy_request, Options, Server};

/// A metric source nobody listens on (connections are refused at once) and
/// queries no policy reads: pulls fail fast, with a diagnostic that still
/// records the expanded query.
const SOURCES: &str = r#"
[[metric_sources]]
name = "nowhere"
type = "prometheus"
url = "http://127.0.0.1:1"
timeout_ms = 500

[[metric_queries]]
metric = "unread_series"
source = "nowhere"
baseline = 'x{service="{{service}}",hash=~"{{stable-hash}}"}'
canary = 'x{service="{{service}}",hash=~"{{canary-hash}}"}'
required = false

[[metric_queries]]
metric = "unread_value"
source = "nowhere"
value = 'y{service="{{service}}"}'
required = false
"#;

fn with_sources() -> Server {
    Server::start_with(Options {
        config: Some(SOURCES.into()),
        ..Default::default()
    })
}

/// The `pulled` object of metric `name` in a list of metrics.
#[track_caller]
fn pulled<'a>(metrics: &'a Value, name: &str) -> &'a Value {
    let m = metrics
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no metric `{name}` in {metrics}"));
    assert!(m["pulled"].is_object(), "`{name}` was not pulled: {m}");
    &m["pulled"]
}

// ------------------------------------------------------------ finding 4 ----

#[test]
fn pulled_provenance_is_written_by_the_server_only() {
    let s = with_sources();
    let mut forged = healthy_request("checkout", "production");
    forged["metrics"] = json!([{
        "name": "unread_value", "value": 0.0,
        "pulled": {"source": "nowhere", "value_query": "y", "end": "2026-01-01T00:00:00Z", "required": true}
    }]);
    for path in ["/v1/decisions", "/v1/sources/preview"] {
        let msg = assert_error(&s.json("POST", path, &forged), 422, "invalid_request");
        assert!(
            msg.contains("`pulled`") && msg.contains("unread_value"),
            "{path}: {msg}"
        );
    }
    let (_, a) = s.json("POST", "/v1/integrations/argo", &forged);
    assert_eq!(
        (&a["verdict"], &a["decision_id"]),
        (&json!("hold"), &Value::Null),
        "{a}"
    );
    assert!(s.get_ok("/v1/decisions")["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_scope_cannot_be_dodged_by_spelling() {
    let s = Server::start();
    let freeze = json!({"selector": {"environment": "production"}, "reason": "incident INC-42",
                        "until": "2099-01-01T00:00:00Z"});
    let (st, f) = s.json("POST", "/v1/freezes", &freeze);
    assert_eq!(st, 201, "{f}");
    let d = s.decide(&healthy_request("checkout", "production"));
    assert_eq!(d["verdict"], "freeze", "{d}");

    for env in [
        "Production",
        "production ",
        "production\u{200b}",
        " production",
        "prod\nuction",
    ] {
        let msg = assert_error(
            &s.json("POST", "/v1/decisions", &healthy_request("checkout", env)),
            422,
            "invalid_request",
        );
        assert!(msg.contains("`deployment.environment`"), "{env:?}: {msg}");
        assert!(
            !msg.contains('\u{200b}') && !msg.contains('\n'),
            "escaped: {msg}"
        );
    }
    let msg = assert_error(
        &s.json(
            "POST",
            "/v1/decisions",
            &healthy_request("Checkout", "production"),
        ),
        422,
        "invalid_request",
    );
    assert!(
        msg.contains("`deployment.service`") && msg.contains("`Checkout`"),
        "{msg}"
    );
    // The Argo door refuses with a hold, and so do the names Flagger derives.
    let (_, a) = s.json(
        "POST",
        "/v1/integrations/argo",
        &healthy_request("checkout", "Production"),
    );
    assert_eq!(
        (&a["verdict"], &a["decision_id"]),
        (&json!("hold"), &Value::Null),
        "{a}"
    );
    let payload = json!({"name": "PodInfo", "namespace": "production", "phase": "Progressing",
                         "checksum": "c1", "metadata": {}});
    let msg = assert_error(
        &s.json("POST", "/v1/integrations/flagger/confirm-rollout", &payload),
        422,
        "invalid_request",
    );
    assert!(msg.contains("`PodInfo`"), "{msg}");
    let payload = json!({"name": "podinfo", "namespace": "test", "phase": "Progressing",
                         "checksum": "c1", "metadata": {"environment": "Production"}});
    assert_error(
        &s.json("POST", "/v1/integrations/flagger/confirm-rollout", &payload),
        422,
        "invalid_request",
    );

    // Selectors follow the same grammar.
    let mut upper = freeze.clone();
    upper["selector"] = json!({"environment": "Production"});
    let msg = assert_error(
        &s.json("POST", "/v1/freezes", &upper),
        422,
        "invalid_request",
    );
    assert!(msg.contains("`selector.environment`"), "{msg}");
    let binding = json!({"policy": "thresholds", "selector": {"service": "checkout "}});
    let msg = assert_error(
        &s.json("PUT", "/v1/bindings/spaced", &binding),
        422,
        "invalid_request",
    );
    assert!(msg.contains("`selector.service`"), "{msg}");
    assert_error(
        &s.call("GET", "/v1/bindings/spaced", None),
        404,
        "not_found",
    );
    // Only the one real decision was stored.
    assert_eq!(
        s.get_ok("/v1/decisions")["items"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn placeholder_values_cannot_widen_a_regex_matcher() {
    let s = with_sources();
    let mut req = healthy_request("checkout", "production");
    req["args"] = json!({"canary-hash": ".+", "stable-hash": "v1.2"});
    let (st, p) = s.json("POST", "/v1/sources/preview", &req);
    assert_eq!(st, 200, "{p}");
    let series = pulled(&p["metrics"], "unread_series");
    // In the PromQL string `\\.` is the regex `\.`: a literal dot.
    assert_eq!(
        series["canary_query"], r#"x{service="checkout",hash=~"\\.\\+"}"#,
        "{series}"
    );
    assert_eq!(
        series["baseline_query"], r#"x{service="checkout",hash=~"v1\\.2"}"#,
        "{series}"
    );
}

// ------------------------------------------------------------ finding 8 ----

#[test]
fn client_names_cannot_bloat_the_metric_labels() {
    let s = Server::start();
    let huge = "e".repeat(100_000);
    for i in 0..3 {
        let env = format!("{huge}{i}");
        assert_error(
            &s.json("POST", "/v1/decisions", &healthy_request("api", &env)),
            422,
            "invalid_request",
        );
    }
    s.decide(&healthy_request("api", "prod"));
    let (st, text) = s.call("GET", "/metrics", None);
    assert_eq!(st, 200);
    let text = text.as_str().unwrap().to_string();
    assert!(text.contains(r#"environment="prod""#), "{text}");
    assert!(
        !text.contains(&"e".repeat(64)),
        "a client name became a label"
    );
    assert!(text.len() < 64 * 1024, "/metrics is {} bytes", text.len());
}
