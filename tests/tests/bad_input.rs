//! Hostile and careless input: every mistake gets the right status and a
//! JSON error body, nothing is stored, nothing escapes the data dir, and the
//! server keeps deciding correctly afterwards (no panic, no hang).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};
use verdict_e2e::{assert_error, failing_request, healthy_request, raw, Server};

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
    still_decides(&s, 1);
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

fn put_policy(s: &Server, name: &str, bytes: &[u8]) -> (u16, Value) {
    s.call_with(
        "PUT",
        &format!("/v1/policies/{name}"),
        Some(bytes),
        None,
        "application/wasm",
    )
}

#[test]
fn bad_policy_uploads_are_refused_and_never_replace_a_good_one() {
    let s = Server::start();
    let before = s.get_ok("/v1/policies/thresholds");

    assert_error(
        &put_policy(&s, "junk", b"this is not wasm"),
        422,
        "invalid_policy",
    );
    assert_error(&put_policy(&s, "junk", b""), 422, "invalid_policy");
    let msg = assert_error(
        &put_policy(&s, "junk", b"\0asm\x01\0\0\0"),
        422,
        "invalid_policy",
    );
    assert!(
        msg.contains("verdict policy build"),
        "tells how to make a component: {msg}"
    );
    let wasm = thresholds_wasm();
    assert_error(
        &put_policy(&s, "junk", &wasm[..wasm.len() / 2]),
        422,
        "invalid_policy",
    );
    // A valid component header with garbage after it.
    let mut header = wasm[..8].to_vec();
    header.extend_from_slice(&[0xff; 64]);
    assert_error(&put_policy(&s, "junk", &header), 422, "invalid_policy");
    assert_error(&s.call("GET", "/v1/policies/junk", None), 404, "not_found");

    // Garbage under the name of a live policy leaves the live one in place.
    assert_error(
        &put_policy(&s, "thresholds", b"\0asm\x01\0\0\0"),
        422,
        "invalid_policy",
    );
    assert_error(
        &put_policy(&s, "thresholds", &wasm[..1000]),
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
            let head = format!("{method} /v1/policies/{name} HTTP/1.1");
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
            &format!("PUT /v1/bindings/{name} HTTP/1.1"),
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
        let (st, body) = raw(&s.base, &format!("PUT {path} HTTP/1.1"), &wasm);
        assert!((400..500).contains(&st), "PUT {path}: {st} {body}");
        assert!(body["error"]["code"].is_string(), "PUT {path}: {body}");
    }

    // The longest valid name works (boundary).
    let longest = "a".repeat(64);
    let (st, body) = put_policy(&s, &longest, &wasm);
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
