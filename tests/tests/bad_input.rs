//! Hostile and careless input: every mistake gets the right status and a
//! JSON error body, nothing is stored, nothing escapes the data dir, and the
//! server keeps deciding correctly afterwards (no panic, no hang).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use verdict_e2e::{
    assert_argo_hold, assert_error, failing_request, healthy_request, misbehave_wasm, raw, Options,
    Server,
};

/// After the abuse: still up, still right, and nothing stored by the abuse
/// (`stored` decisions existed before).
#[track_caller]
fn still_decides(s: &Server, stored: u64) {
    let page = s.get_ok("/v1/decisions?limit=1000");
    assert_eq!(
        page["items"].as_array().unwrap().len() as u64,
        stored,
        "no stray records: {page}"
    );
    let ok = s.decide(&healthy_request("after", "prod"));
    assert_eq!(ok["verdict"], "promote", "{ok}");
    assert_eq!(ok["seq"], stored + 1);
    let bad = s.decide(&failing_request("after", "prod"));
    assert_eq!(bad["verdict"], "rollback", "{bad}");
    let report = s.get_ok("/v1/audit/verify");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checked"], stored + 2);
}

fn post(s: &Server, body: &str) -> (u16, Value) {
    s.call("POST", "/v1/decisions", Some(body.as_bytes()))
}

#[test]
fn malformed_and_invalid_decision_bodies() {
    let s = Server::start();

    // Not JSON at all, or broken JSON: 400 malformed_json.
    for body in [
        "",
        "{",
        "{\"deployment\":",
        "not json",
        "{\"deployment\": {\"service\": \"a\", \"environment\": \"b\"},}",
        "{\"deployment\": {\"service\": \"a\", \"environment\": \"b\"}, \"metrics\": [{\"name\": \"x\", \"canary\": [NaN]}]}",
        "{\"deployment\": {\"service\": \"a\", \"environment\": \"b\"}} trailing",
    ] {
        let msg = assert_error(&post(&s, body), 400, "malformed_json");
        assert!(msg.to_lowercase().contains("json"), "{body:?}: {msg}");
    }

    // Well-formed JSON of the wrong shape: 422, saying what is wrong.
    let base = || healthy_request("api", "prod");
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut v = base();
    v["metrics"] = json!("x");
    cases.push((v, "sequence"));
    let mut v = base();
    v["metrics"][0]["canary"] = json!(["fast", "slow"]);
    cases.push((v, "invalid type"));
    let mut v = base();
    v["deployment"]["service"] = json!(42);
    cases.push((v, "invalid type"));
    let mut v = base();
    v["metrcis"] = json!([]);
    cases.push((v, "metrcis"));
    let mut v = base();
    v["deployment"]["servce"] = json!("api");
    cases.push((v, "servce"));
    let mut v = base();
    v["metrics"][0]["baselin"] = json!([1.0]);
    cases.push((v, "baselin"));
    let mut v = base();
    v["change"] = json!({"files_changed": -3});
    cases.push((v, "files_changed"));
    cases.push((json!({"metrics": []}), "deployment"));
    cases.push((json!([]), "expected struct"));
    cases.push((json!(null), "invalid type"));
    let mut v = base();
    v["time"] = json!("yesterday");
    cases.push((v, "time"));
    for (body, needle) in &cases {
        let msg = assert_error(
            &s.json("POST", "/v1/decisions", body),
            422,
            "invalid_request",
        );
        // serde names the field for unknown/missing fields; for type errors it
        // names the expectation.
        if *needle != "files_changed" && *needle != "time" {
            assert!(
                msg.contains(needle),
                "{body}: `{msg}` should mention `{needle}`"
            );
        }
    }

    // Values serde accepts but the service refuses: 422 naming the field.
    let with = |path: &[&str], value: Value| {
        let mut v = base();
        let mut at = &mut v;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = value;
        v
    };
    for (body, needle) in [
        (with(&["deployment", "service"], json!("")), "service"),
        (with(&["deployment", "service"], json!("   ")), "service"),
        (
            with(&["deployment", "environment"], json!("")),
            "environment",
        ),
        (
            with(&["deployment", "traffic_percent"], json!(150.0)),
            "traffic_percent",
        ),
        (with(&["idempotency_key"], json!("")), "idempotency_key"),
        (
            with(&["idempotency_key"], json!("k".repeat(300))),
            "idempotency_key",
        ),
    ] {
        let msg = assert_error(
            &s.json("POST", "/v1/decisions", &body),
            422,
            "invalid_request",
        );
        assert!(msg.contains(needle), "`{msg}` should mention `{needle}`");
    }
    let too_many: Vec<Value> = (0..300)
        .map(|i| json!({"name": format!("m{i}"), "value": 1.0}))
        .collect();
    let msg = assert_error(
        &s.json(
            "POST",
            "/v1/decisions",
            &with(&["metrics"], json!(too_many)),
        ),
        422,
        "invalid_request",
    );
    assert!(msg.contains("metrics"), "{msg}");

    // A replay body of the wrong shape.
    let d = s.decide(&healthy_request("api", "prod"));
    let path = format!("/v1/decisions/{}/replay", d["id"].as_str().unwrap());
    assert_error(
        &s.call("POST", &path, Some(b"{oops")),
        400,
        "malformed_json",
    );
    let msg = assert_error(
        &s.json("POST", &path, &json!({"as_recorde": true})),
        422,
        "invalid_request",
    );
    assert!(msg.contains("as_recorde"), "{msg}");

    still_decides(&s, 1);
}

#[test]
fn oversized_bodies_are_413() {
    let s = Server::start();
    // Just over the 1 MiB default: a real request with a huge change title.
    let mut big = healthy_request("api", "prod");
    big["change"] = json!({"title": "x".repeat((1 << 20) + 1024)});
    let body = big.to_string();
    assert!(body.len() > 1 << 20);
    let msg = assert_error(
        &s.call("POST", "/v1/decisions", Some(body.as_bytes())),
        413,
        "too_large",
    );
    assert!(msg.contains("1048576"), "says the limit: {msg}");
    // Same for bindings and freezes (the same body limit applies).
    let padding = "y".repeat((1 << 20) + 1024);
    let binding = json!({"policy": "thresholds", "settings": {"pad": padding}}).to_string();
    assert_error(
        &s.call("PUT", "/v1/bindings/huge", Some(binding.as_bytes())),
        413,
        "too_large",
    );
    // Just under the limit is fine (and then a normal decision).
    let mut fits = healthy_request("api", "prod");
    fits["change"] = json!({"title": "x".repeat((1 << 20) - 4096)});
    let d = s.decide(&fits);
    assert_eq!(d["verdict"], "promote");
    // Every other JSON body has the same limit, and the 413 names it.
    let id = d["id"].as_str().unwrap();
    let replay = format!("/v1/decisions/{id}/replay");
    let over = pad(&json!({"as_recorded": true}), (1 << 20) + 1);
    for (method, path) in [
        ("POST", replay.as_str()),
        ("POST", "/v1/sources/preview"),
        ("POST", "/v1/integrations/flagger/confirm-rollout"),
        ("POST", "/v1/freezes"),
    ] {
        let msg = assert_error(&s.call(method, path, Some(&over)), 413, "too_large");
        assert!(
            msg.contains("1048576") && msg.contains("max_body_bytes"),
            "{method} {path}: {msg}"
        );
    }
    // Policy uploads have their own, larger limit (32 MiB by default, room
    // for a Python policy's ~18 MB): an 18 MiB upload gets past the body
    // limit to validation (422, not 413) …
    let (st, body) = s.put_policy("big", &vec![0u8; 18 << 20]);
    assert_eq!(
        (st, &body["error"]["code"]),
        (422, &json!("invalid_policy")),
        "{body}"
    );
    // … and one byte past 32 MiB is refused before it.
    let msg = assert_error(
        &s.put_policy("big", &vec![0u8; (32 << 20) + 1]),
        413,
        "too_large",
    );
    assert!(
        msg.contains("33554432") && msg.contains("max_policy_bytes"),
        "{msg}"
    );
    still_decides(&s, 1);
}

/// `v` serialized and padded with trailing whitespace (still the same JSON)
/// to exactly `len` bytes.
fn pad(v: &Value, len: usize) -> Vec<u8> {
    let mut b = v.to_string().into_bytes();
    assert!(b.len() <= len, "{v} is already longer than {len} bytes");
    b.resize(len, b' ');
    b
}

const FLAGGER_PAYLOAD: &str = r#"{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "c1", "metadata": {}}"#;

#[test]
fn configured_body_limits_hold_to_the_byte_on_every_route() {
    let wasm = thresholds_wasm();
    let s = Server::start_with(Options {
        config: Some(format!(
            "max_body_bytes = 4096\nmax_policy_bytes = {}\n",
            wasm.len()
        )),
        ..Options::default()
    });
    let limit = 4096;
    let too_large = |answer: (u16, Value), what: &str| {
        let msg = assert_error(&answer, 413, "too_large");
        assert!(
            msg.contains("4096") && msg.contains("max_body_bytes"),
            "{what}: says the limit and the setting: {msg}"
        );
    };

    // Decisions: exactly the limit is decided, one byte more is refused.
    let request = healthy_request("api", "prod");
    let (st, d) = s.call("POST", "/v1/decisions", Some(&pad(&request, limit)));
    assert_eq!(st, 201, "{d}");
    assert_eq!(d["verdict"], "promote");
    too_large(
        s.call("POST", "/v1/decisions", Some(&pad(&request, limit + 1))),
        "decision",
    );

    // Replay.
    let replay = format!("/v1/decisions/{}/replay", d["id"].as_str().unwrap());
    let how = json!({"as_recorded": true});
    let (st, r) = s.call("POST", &replay, Some(&pad(&how, limit)));
    assert_eq!((st, &r["changed"]), (200, &json!(false)), "{r}");
    too_large(
        s.call("POST", &replay, Some(&pad(&how, limit + 1))),
        "replay",
    );

    // Preview (no metric sources configured: nothing to pull).
    let (st, p) = s.call("POST", "/v1/sources/preview", Some(&pad(&request, limit)));
    assert_eq!((st, &p), (200, &json!({"metrics": []})), "{p}");
    too_large(
        s.call(
            "POST",
            "/v1/sources/preview",
            Some(&pad(&request, limit + 1)),
        ),
        "preview",
    );

    // Flagger: decided at the limit (nothing to judge: a hold, 403), refused past it.
    let payload: Value = serde_json::from_str(FLAGGER_PAYLOAD).unwrap();
    let gate = "/v1/integrations/flagger/confirm-rollout";
    let (st, text) = s.call("POST", gate, Some(&pad(&payload, limit)));
    assert_eq!(st, 403, "{text}");
    assert!(
        text.as_str().is_some_and(|t| t.starts_with("hold")),
        "{text}"
    );
    too_large(
        s.call("POST", gate, Some(&pad(&payload, limit + 1))),
        "flagger",
    );

    // Argo: always 200; past the limit a hold that decides nothing.
    let argo = "/v1/integrations/argo";
    let (st, a) = s.call("POST", argo, Some(&pad(&request, limit)));
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["verdict"], "promote", "{a}");
    let (st, a) = s.call("POST", argo, Some(&pad(&request, limit + 1)));
    assert_eq!(st, 200, "{a}");
    assert_argo_hold(&a);
    assert!(
        a["reasons"][0].as_str().is_some_and(|m| m.contains("4096")),
        "{a}"
    );

    // Bindings and freezes.
    let binding = json!({"policy": "thresholds", "selector": {"service": "api"}});
    let (st, b) = s.call("PUT", "/v1/bindings/padded", Some(&pad(&binding, limit)));
    assert_eq!(st, 200, "{b}");
    too_large(
        s.call(
            "PUT",
            "/v1/bindings/padded",
            Some(&pad(&binding, limit + 1)),
        ),
        "binding",
    );
    let freeze =
        json!({"selector": {"service": "x"}, "reason": "r", "until": "2099-01-01T00:00:00Z"});
    too_large(
        s.call("POST", "/v1/freezes", Some(&pad(&freeze, limit + 1))),
        "freeze",
    );
    let (st, f) = s.call("POST", "/v1/freezes", Some(&pad(&freeze, limit)));
    assert_eq!(st, 201, "{f}");

    // Policies: `max_policy_bytes`, not `max_body_bytes` (the component is
    // far larger than 4096 bytes); exactly the limit uploads, one byte more
    // is refused before validation.
    let (st, body) = s.put_policy("exact", &wasm);
    assert_eq!(st, 201, "{body}");
    let mut longer = wasm.clone();
    longer.push(0);
    let msg = assert_error(&s.put_policy("longer", &longer), 413, "too_large");
    assert!(
        msg.contains(&wasm.len().to_string()) && msg.contains("max_policy_bytes"),
        "{msg}"
    );
    assert_error(
        &s.call("GET", "/v1/policies/longer", None),
        404,
        "not_found",
    );

    // Stored: the decision, the Flagger hold and the Argo promote.
    still_decides(&s, 3);
}

/// Send `head` (request line and headers, without the blank line; `Host`
/// and `Connection: close` are added) and then `body` exactly as given on a
/// fresh connection, which stays open, and read the answer (at most 60 s).
/// Returns the status and the body (JSON if it parses, else a string).
fn exchange(base: &str, head: &str, body: &[u8]) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{}\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        head.trim_end()
    )
    .into_bytes();
    req.extend_from_slice(body);
    // The server may answer (and stop reading) before the body is all in.
    let _ = s.write_all(&req);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        // Complete once the headers and `Content-Length` bytes are in.
        let text = String::from_utf8_lossy(&out);
        if let Some((headers, rest)) = text.split_once("\r\n\r\n") {
            let len = headers.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            if len.is_some_and(|n| rest.len() >= n) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in answer to `{head}`: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let value = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    (status, value)
}

/// `body` in chunked transfer encoding, `size`-byte chunks.
fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn chunked_bodies_count_against_the_cap() {
    let s = Server::start_with(Options {
        config: Some("max_body_bytes = 4096\n".into()),
        ..Options::default()
    });
    let request = healthy_request("api", "prod");
    let head = "POST /v1/decisions HTTP/1.1\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked";
    // No Content-Length: only counting the bytes as they arrive can refuse it.
    let (st, d) = exchange(&s.base, head, &chunked(&pad(&request, 4096), 1000));
    assert_eq!(st, 201, "chunked, exactly at the limit: {d}");
    assert_eq!(d["verdict"], "promote", "{d}");
    let msg = assert_error(
        &exchange(&s.base, head, &chunked(&pad(&request, 4097), 1000)),
        413,
        "too_large",
    );
    assert!(msg.contains("4096"), "{msg}");
    // Far past the cap, in small chunks.
    let huge = vec![b' '; 64 << 10];
    assert_error(
        &exchange(&s.base, head, &chunked(&huge, 512)),
        413,
        "too_large",
    );
    // The same on a policy upload against `max_policy_bytes` (32 MiB).
    let policy_head = "PUT /v1/policies/chunky HTTP/1.1\r\nContent-Type: application/wasm\r\n\
                       Transfer-Encoding: chunked";
    let msg = assert_error(
        &exchange(
            &s.base,
            policy_head,
            &chunked(&vec![0u8; (32 << 20) + 1], 1 << 20),
        ),
        413,
        "too_large",
    );
    assert!(msg.contains("max_policy_bytes"), "{msg}");
    still_decides(&s, 1);
}

/// A server whose request and body timeouts are 3 s.
fn impatient_server() -> Server {
    Server::start_with(Options {
        config: Some("request_timeout_ms = 3000\nbody_timeout_ms = 3000\n".into()),
        ..Options::default()
    })
}

#[test]
fn a_stalled_body_is_408_on_every_route_that_reads_one() {
    let s = impatient_server();
    // Each client declares 1000 bytes, sends 100 and stalls (the connection
    // stays open). All at once: each waits out the same 3 s.
    let stall = |head: &str| {
        let ctype = if head.contains("/v1/policies/") {
            "application/wasm"
        } else {
            "application/json"
        };
        let head = format!("{head}\r\nContent-Type: {ctype}\r\nContent-Length: 1000");
        exchange(&s.base, &head, &[b' '; 100])
    };
    let routes = [
        "POST /v1/decisions HTTP/1.1",
        "POST /v1/decisions/dec-000000000001/replay HTTP/1.1",
        "POST /v1/sources/preview HTTP/1.1",
        "POST /v1/integrations/flagger/confirm-rollout HTTP/1.1",
        "PUT /v1/policies/slow HTTP/1.1",
        "PUT /v1/bindings/slow HTTP/1.1",
        "POST /v1/freezes HTTP/1.1",
    ];
    let (answers, argo) = std::thread::scope(|scope| {
        let handles: Vec<_> = routes
            .iter()
            .map(|r| scope.spawn(move || stall(r)))
            .collect();
        let argo = scope.spawn(|| stall("POST /v1/integrations/argo HTTP/1.1"));
        let answers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (answers, argo.join().unwrap())
    });
    for (route, answer) in routes.iter().zip(&answers) {
        let msg = assert_error(answer, 408, "body_timeout");
        assert!(msg.contains("3000 ms"), "{route}: {msg}");
    }
    // Argo answers 200 whatever happens: a hold that decided nothing.
    let (st, a) = argo;
    assert_eq!(st, 200, "{a}");
    assert_argo_hold(&a);
    assert!(
        a["reasons"][0]
            .as_str()
            .is_some_and(|m| m.contains("not received")),
        "{a}"
    );
    still_decides(&s, 0);
}

#[test]
fn a_decision_past_the_request_timeout_is_503() {
    let s = impatient_server();
    let (st, body) = s.put_policy("misbehave", &misbehave_wasm());
    assert_eq!(st, 201, "{body}");
    // A policy that loops, with fuel and a deadline (10 s, the most a
    // binding may have) that outlast the 3 s request timeout.
    let (st, body) = s.json(
        "PUT",
        "/v1/bindings/slow",
        &json!({
            "policy": "misbehave",
            "selector": {"service": "slow"},
            "settings": {"mode": "loop"},
            "limits": {"fuel": 1_000_000_000_000_000_000u64, "timeout_ms": 10_000},
        }),
    );
    assert_eq!(st, 200, "{body}");
    let msg = assert_error(
        &s.json("POST", "/v1/decisions", &healthy_request("slow", "prod")),
        503,
        "timeout",
    );
    assert!(msg.contains("3000 ms"), "{msg}");
    // Nothing stored for it, and other deployments are decided meanwhile.
    still_decides(&s, 0);
}

#[test]
fn unknown_ids_routes_and_methods() {
    let s = Server::start();
    assert_error(
        &s.call("GET", "/v1/decisions/dec-000000000099", None),
        404,
        "not_found",
    );
    assert_error(
        &s.call("GET", "/v1/decisions/nonsense", None),
        404,
        "not_found",
    );
    assert_error(
        &s.call("GET", "/v1/decisions/dec-0000000000001", None),
        404,
        "not_found",
    );
    assert_error(
        &s.json("POST", "/v1/decisions/dec-000000000099/replay", &json!({})),
        404,
        "not_found",
    );
    assert_error(&s.call("GET", "/v1/policies/nope", None), 404, "not_found");
    assert_error(
        &s.call("DELETE", "/v1/policies/nope", None),
        404,
        "not_found",
    );
    assert_error(&s.call("GET", "/v1/bindings/nope", None), 404, "not_found");
    assert_error(
        &s.call("DELETE", "/v1/bindings/nope", None),
        404,
        "not_found",
    );
    assert_error(
        &s.call("DELETE", "/v1/freezes/frz-nope", None),
        404,
        "not_found",
    );

    // A path served by some route, with a method it does not take: 405.
    assert_error(
        &s.call("DELETE", "/v1/decisions", None),
        405,
        "method_not_allowed",
    );
    assert_error(
        &s.call("PUT", "/v1/decisions", Some(b"{}")),
        405,
        "method_not_allowed",
    );
    assert_error(
        &s.call("POST", "/v1/policies/thresholds", Some(b"x")),
        405,
        "method_not_allowed",
    );
    assert_error(
        &raw(&s.base, "PATCH /v1/decisions HTTP/1.1", b"{}"),
        405,
        "method_not_allowed",
    );

    // A path no route serves: 404 whatever the method.
    let unrouted: Vec<(String, (u16, Value))> = [
        ("GET", "/nope"),
        ("GET", "/v1/nope"),
        ("GET", "/v2/decisions"),
        ("POST", "/v1/decision"),
        ("DELETE", "/v1"),
        ("GET", "/v1/decisions/dec-000000000001/extra/segments"),
    ]
    .into_iter()
    .map(|(method, path)| {
        (
            format!("{method} {path}"),
            s.call(method, path, Some(b"{}")),
        )
    })
    .collect();
    still_decides(&s, 0);
    let wrong: Vec<String> = unrouted
        .iter()
        .filter(|(_, (st, body))| *st != 404 || body["error"]["code"] != "not_found")
        .map(|(req, (st, body))| format!("{req} -> {st} {body}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "unrouted paths must be 404 not_found:\n{}",
        wrong.join("\n")
    );
    for (_, answer) in &unrouted {
        assert_error(answer, 404, "not_found");
    }
}

#[test]
fn bad_query_parameters_are_400() {
    let s = Server::start();
    s.decide(&healthy_request("api", "prod"));
    for (query, code, needle) in [
        ("cursor=garbage", "bad_cursor", "cursor"),
        ("cursor=", "bad_cursor", "cursor"),
        ("since=yesterday", "invalid_query", "since"),
        ("until=2026-13-45", "invalid_query", "until"),
        ("since=1700000000", "invalid_query", "since"),
        ("verdict=maybe", "invalid_query", "maybe"),
        ("limit=-1", "invalid_query", "limit"),
        ("limit=ten", "invalid_query", "limit"),
        ("servce=api", "invalid_query", "servce"),
        ("service=api&colour=blue", "invalid_query", "colour"),
        ("service=api&service=web", "invalid_query", "more than once"),
    ] {
        let answer = s.call("GET", &format!("/v1/decisions?{query}"), None);
        let msg = assert_error(&answer, 400, code);
        assert!(
            msg.contains(needle),
            "{query}: `{msg}` should mention `{needle}`"
        );
    }
    // The valid forms of the same parameters work.
    let page =
        s.get_ok("/v1/decisions?service=api&verdict=promote&since=2000-01-01T00:00:00Z&limit=10");
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    still_decides(&s, 1);
}

fn thresholds_wasm() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/dist/thresholds.wasm"
    ))
    .unwrap()
}

#[test]
fn bad_policy_uploads_are_refused_and_never_replace_a_good_one() {
    let s = Server::start();
    let before = s.get_ok("/v1/policies/thresholds");

    assert_error(
        &s.put_policy("junk", b"this is not wasm"),
        422,
        "invalid_policy",
    );
    assert_error(&s.put_policy("junk", b""), 422, "invalid_policy");
    let msg = assert_error(
        &s.put_policy("junk", b"\0asm\x01\0\0\0"),
        422,
        "invalid_policy",
    );
    assert!(
        msg.contains("verdict policy build"),
        "tells how to make a component: {msg}"
    );
    let wasm = thresholds_wasm();
    assert_error(
        &s.put_policy("junk", &wasm[..wasm.len() / 2]),
        422,
        "invalid_policy",
    );
    // A valid component header with garbage after it.
    let mut header = wasm[..8].to_vec();
    header.extend_from_slice(&[0xff; 64]);
    assert_error(&s.put_policy("junk", &header), 422, "invalid_policy");
    assert_error(&s.call("GET", "/v1/policies/junk", None), 404, "not_found");

    // Garbage under the name of a live policy leaves the live one in place.
    assert_error(
        &s.put_policy("thresholds", b"\0asm\x01\0\0\0"),
        422,
        "invalid_policy",
    );
    assert_error(
        &s.put_policy("thresholds", &wasm[..1000]),
        422,
        "invalid_policy",
    );
    assert_eq!(s.get_ok("/v1/policies/thresholds"), before);
    assert_eq!(
        s.get_ok("/v1/policies")["items"].as_array().unwrap().len(),
        5
    );
    still_decides(&s, 0);
}

/// Every file and directory under `dir`, relative.
fn tree(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn names_with_path_tricks_are_refused_and_nothing_escapes_the_data_dir() {
    let s = Server::start();
    let outside = s.data_dir.parent().unwrap().to_path_buf();
    let outside_before: BTreeSet<String> = std::fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().display().to_string())
        .collect();
    let wasm = thresholds_wasm();

    // One path segment that the router passes on as a name: 400 invalid_name.
    let long = "a".repeat(65);
    for name in [
        "..",
        ".",
        "%2e%2e%2fetc",
        "..%2f..%2fetc%2fpasswd",
        "Thresholds",
        "UPPER",
        long.as_str(),
        "-dash",
        "a%00b",
        "a%2fb",
        "sp%20ace",
    ] {
        for (method, body) in [("PUT", &wasm[..]), ("GET", &[][..]), ("DELETE", &[][..])] {
            let head =
                format!("{method} /v1/policies/{name} HTTP/1.1\r\nContent-Type: application/wasm");
            let answer = raw(&s.base, &head, body);
            if method == "PUT" {
                assert_error(&answer, 400, "invalid_name");
            } else {
                // Reading or deleting an invalid name finds nothing.
                let (st, _) = &answer;
                assert!(*st == 400 || *st == 404, "{head}: {answer:?}");
                assert!(answer.1["error"]["code"].is_string(), "{head}: {answer:?}");
            }
        }
        let binding = json!({"policy": "thresholds"}).to_string();
        let answer = raw(
            &s.base,
            &format!("PUT /v1/bindings/{name} HTTP/1.1\r\nContent-Type: application/json"),
            binding.as_bytes(),
        );
        assert_error(&answer, 400, "invalid_name");
    }
    // Several segments: no route matches; never a success.
    for path in [
        "/v1/policies/../../etc/x",
        "/v1/policies/a/../../b",
        "/v1/policies//etc/passwd",
        "/v1/bindings/../../x",
    ] {
        let (st, body) = raw(
            &s.base,
            &format!("PUT {path} HTTP/1.1\r\nContent-Type: application/wasm"),
            &wasm,
        );
        assert!((400..500).contains(&st), "PUT {path}: {st} {body}");
        assert!(body["error"]["code"].is_string(), "PUT {path}: {body}");
    }

    // The longest valid name works (boundary).
    let longest = "a".repeat(64);
    let (st, body) = s.put_policy(&longest, &wasm);
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["name"], longest.as_str());

    // Nothing new appeared beside the data dir, and nothing inside it is named
    // after the tricks.
    let outside_after: BTreeSet<String> = std::fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().display().to_string())
        .collect();
    assert_eq!(outside_before, outside_after);
    for p in tree(&s.data_dir) {
        for bad in ["etc", "passwd", "%2e", "Thresholds", "UPPER"] {
            assert!(!p.contains(bad), "unexpected file `{p}` in the data dir");
        }
    }
    let names: Vec<String> = s.get_ok("/v1/policies")["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names.contains(&longest));
    still_decides(&s, 0);
}
