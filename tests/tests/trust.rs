//! A gate that cannot be talked past: what a caller holding only a `decide`
//! token sends must not move the decision time, reuse another request's
//! decision, forge evidence, dodge a scope, widen a query or keep the
//! server busy after it gave up.

use std::io::Write;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use verdict_e2e::{
    assert_argo_hold, assert_error, healthy_request, misbehave_wasm, Options, Server,
};

/// A metric source nobody listens on (connections are refused at once) and
/// queries no policy reads: pulls fail fast, with a diagnostic that still
/// records the range and the expanded query.
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

fn ago(d: SignedDuration) -> Timestamp {
    Timestamp::now().checked_sub(d).unwrap()
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

fn ts(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
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

/// Deny-window calendar open all of today and tomorrow (UTC), so a window
/// is open now whatever the hour, and closed 60 days ago (a different
/// weekday).
fn deny_today() -> Value {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    // 1970-01-01 was a Thursday.
    let today = (Timestamp::now().as_second().div_euclid(86_400) + 3).rem_euclid(7) as usize;
    json!({
        "policy": "freeze-window",
        "settings": {"windows": [{
            "name": "release-freeze",
            "kind": "deny",
            "weekly": {"days": [DAYS[today], DAYS[(today + 1) % 7]], "start": "00:00", "end": "00:00"}
        }]}
    })
}

// ------------------------------------------------------------ finding 2 ----

#[test]
fn a_live_decision_is_made_at_the_server_clock() {
    let s = with_sources();
    let (st, b) = s.json("PUT", "/v1/bindings/calendar", &deny_today());
    assert_eq!(st, 200, "{b}");

    // Now: the deny window is open.
    let d = s.decide(&healthy_request("checkout", "production"));
    assert_eq!(d["verdict"], "freeze", "{d}");

    // The same request 60 days back would fall outside the window: refused.
    let mut backdated = healthy_request("checkout", "production");
    backdated["time"] = json!(ago(days(60)).to_string());
    let msg = assert_error(
        &s.json("POST", "/v1/decisions", &backdated),
        422,
        "clock_skew",
    );
    assert!(
        msg.contains("server clock") && msg.contains("max_clock_skew_ms") && msg.contains("replay"),
        "{msg}"
    );
    // So is a time in the future, and one far outside the calendar.
    let mut ahead = healthy_request("checkout", "production");
    ahead["time"] = json!(Timestamp::now().checked_add(days(3)).unwrap().to_string());
    assert_error(&s.json("POST", "/v1/decisions", &ahead), 422, "clock_skew");

    // Every door: Argo answers hold (never a decision), the CLI exits 1.
    let (st, a) = s.json("POST", "/v1/integrations/argo", &backdated);
    assert_eq!(st, 200, "{a}");
    assert_argo_hold(&a);
    assert!(
        a["reasons"][0].as_str().unwrap().contains("server clock"),
        "{a}"
    );
    let file = s.data_dir.with_extension("backdated.json");
    std::fs::write(&file, backdated.to_string()).unwrap();
    let (code, out) = s.cli(&["decide", "--file", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("server clock"), "{out}");

    // A time within the skew is accepted, but the server's clock decides
    // and is recorded, and the pulled ranges end there too.
    let sent = ago(SignedDuration::from_secs(45));
    let mut close = healthy_request("checkout", "production");
    close["time"] = json!(sent.to_string());
    let before = Timestamp::now();
    let d = s.decide(&close);
    assert_eq!(d["verdict"], "freeze", "{d}");
    let used = ts(&d["request"]["time"]);
    assert!(
        used >= before && used > sent,
        "recorded {used}, sent {sent}: {d}"
    );
    let series = pulled(&d["request"]["metrics"], "unread_series");
    assert_eq!(ts(&series["end"]), used, "{series}");
    assert_eq!(
        ts(&pulled(&d["request"]["metrics"], "unread_value")["end"]),
        used
    );

    // A caller's time is for preview (and replay, and fixtures): honoured there.
    let (st, p) = s.json("POST", "/v1/sources/preview", &backdated);
    assert_eq!(st, 200, "{p}");
    let series = pulled(&p["metrics"], "unread_series");
    assert_eq!(series["end"], backdated["time"], "{series}");
    // Nothing refused was stored: the two decisions above only.
    assert_eq!(
        s.get_ok("/v1/decisions")["items"].as_array().unwrap().len(),
        2
    );
}

// ------------------------------------------------------------ finding 3 ----

#[test]
fn an_idempotency_key_names_one_request() {
    let s = Server::start();
    let mut a = healthy_request("checkout", "production");
    a["idempotency_key"] = json!("deploy-1");
    let first = s.decide(&a);
    // The same request again: its decision, 200.
    let (st, again) = s.json("POST", "/v1/decisions", &a);
    assert_eq!((st, &again["id"]), (200, &first["id"]), "{again}");

    // Another deployment's request under the key: 409, never its record.
    let mut b = healthy_request("payments", "production");
    b["idempotency_key"] = json!("deploy-1");
    let answer = s.json("POST", "/v1/decisions", &b);
    let msg = assert_error(&answer, 409, "idempotency_conflict");
    assert!(msg.contains("`deploy-1`"), "{msg}");
    assert!(
        answer.1.get("id").is_none() && !answer.1.to_string().contains("dec-"),
        "{}",
        answer.1
    );
    // A change anywhere in the request counts.
    let mut c = a.clone();
    c["change"] = json!({"ticket": "OPS-9"});
    assert_error(
        &s.json("POST", "/v1/decisions", &c),
        409,
        "idempotency_conflict",
    );
    // The Argo door: a hold without a decision id, not the stored verdict.
    let (st, r) = s.json("POST", "/v1/integrations/argo", &b);
    assert_eq!(st, 200);
    assert_argo_hold(&r);
    assert!(
        r["reasons"][0].as_str().unwrap().contains("deploy-1"),
        "{r}"
    );

    // The fingerprint is stored with the key: the same after a restart.
    let (dir, _keep) = s.into_data_dir();
    let s = Server::start_with(Options {
        data_dir: Some(dir),
        ..Default::default()
    });
    assert_error(
        &s.json("POST", "/v1/decisions", &b),
        409,
        "idempotency_conflict",
    );
    let (st, again) = s.json("POST", "/v1/decisions", &a);
    assert_eq!((st, &again["id"]), (200, &first["id"]), "{again}");
    assert_eq!(
        s.get_ok("/v1/decisions")["items"].as_array().unwrap().len(),
        1
    );
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
    assert_argo_hold(&a);
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
    assert_argo_hold(&a);
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

    // Valid but made-up environments: at most 100 distinct label values,
    // the rest counted as `_other`; `prod`, seen first, keeps its own.
    for i in 0..120 {
        s.decide(&healthy_request("api", &format!("env-{i}")));
    }
    let (_, text) = s.call("GET", "/metrics", None);
    let text = text.as_str().unwrap().to_string();
    let environments: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("verdict_decisions_total{"))
        .filter_map(|l| l.split(r#"environment=""#).nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(environments.len(), 101, "{environments:?}");
    assert!(environments.contains("prod"), "{environments:?}");
    assert!(environments.contains("_other"), "{environments:?}");
    assert!(!environments.contains("env-119"), "{environments:?}");
}

// ------------------------------------------------------------ finding 7 ----

#[test]
fn replay_names_a_bounded_set_of_policies_once_each() {
    let s = Server::start();
    let d = s.decide(&healthy_request("api", "prod"));
    let path = format!("/v1/decisions/{}/replay", d["id"].as_str().unwrap());
    let thousand: Vec<&str> = vec!["thresholds"; 1000];
    let msg = assert_error(
        &s.json("POST", &path, &json!({"policies": thousand})),
        422,
        "invalid_request",
    );
    assert!(msg.contains("1000") && msg.contains("64"), "{msg}");
    let digest = s.get_ok("/v1/policies/thresholds")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let pinned = format!("thresholds@{digest}");
    let (st, r) = s.json(
        "POST",
        &path,
        &json!({"policies": ["thresholds", pinned, "thresholds", "canary-judge"]}),
    );
    assert_eq!(st, 200, "{r}");
    let ran: Vec<&str> = r["replayed"]["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["binding"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["thresholds", "canary-judge"], "{r}");
}

/// Evaluations of `policy` so far, from `/metrics`.
fn evaluations(s: &Server, policy: &str) -> u64 {
    let (_, text) = s.call("GET", "/metrics", None);
    let label = format!("policy=\"{policy}\"");
    text.as_str()
        .unwrap()
        .lines()
        .filter(|l| {
            l.starts_with("verdict_policy_evaluation_duration_seconds_count{") && l.contains(&label)
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn a_replay_stops_when_its_client_goes_away() {
    let s = Server::start();
    let d = s.decide(&healthy_request("slow-replay", "prod"));
    let id = d["id"].as_str().unwrap().to_string();
    let (st, body) = s.put_policy("misbehave", &misbehave_wasm());
    assert_eq!(st, 201, "{body}");
    // Eight shadow policies that each spin to a 1 s deadline: 8 s of work
    // for a replay of the decision (current bindings).
    for i in 0..8 {
        let b = json!({"policy": "misbehave", "selector": {"service": "slow-replay"},
                       "mode": "shadow", "settings": {"mode": "loop"},
                       "limits": {"timeout_ms": 1000, "fuel": 1_000_000_000_000_000u64}});
        let (st, r) = s.json("PUT", &format!("/v1/bindings/spin-{i}"), &b);
        assert_eq!(st, 200, "{r}");
    }
    assert_eq!(evaluations(&s, "misbehave"), 0);

    // Ask for the replay, then hang up.
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    let body = b"{}";
    write!(
        conn,
        "POST /v1/decisions/{id}/replay HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.write_all(body).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(conn);
    let gone = Instant::now();

    // The policy running when the client left finishes (its deadline is
    // 1 s); no other starts.
    std::thread::sleep(Duration::from_secs(4));
    let after = evaluations(&s, "misbehave");
    assert!(
        after <= 2,
        "{after} evaluations in the {:?} after the client left",
        gone.elapsed()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        evaluations(&s, "misbehave"),
        after,
        "the replay kept running"
    );
}

// ----------------------------------------------------------- finding 12 ----

#[test]
fn times_outside_the_calendar_are_refused_up_front() {
    let s = with_sources();
    // The first: a lookback of 10 minutes reaches before the earliest
    // instant the time library represents (a panic in jiff, before).
    for time in [
        "-009999-01-02T02:05:00Z",
        "-009999-06-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "9999-06-01T00:00:00Z",
    ] {
        let mut req = healthy_request("checkout", "production");
        req["time"] = json!(time);
        req["args"] = json!({"canary-hash": "v2", "stable-hash": "v1"});
        for path in ["/v1/sources/preview", "/v1/decisions"] {
            let msg = assert_error(&s.json("POST", path, &req), 422, "invalid_request");
            assert!(
                msg.contains("`time`") && msg.contains("out of range"),
                "{path}: {msg}"
            );
        }
    }
    // The earliest accepted instant previews (its range reaches back before
    // 1970, which is fine).
    let mut req = healthy_request("checkout", "production");
    req["time"] = json!("1970-01-01T00:00:00Z");
    req["args"] = json!({"canary-hash": "v2", "stable-hash": "v1"});
    let (st, p) = s.json("POST", "/v1/sources/preview", &req);
    assert_eq!(st, 200, "{p}");
    assert_eq!(
        pulled(&p["metrics"], "unread_series")["start"],
        "1969-12-31T23:50:00Z"
    );
}
