//! The deploy-tool front doors against the real binary over real HTTP:
//! Argo Rollouts' web metric provider, Flagger webhooks, and the CI example
//! through `verdict decide`. The example files under `examples/` are sent
//! as they are, so the examples cannot rot.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use verdict_e2e::{assert_error, failing_request, healthy_request, policy_result, Server};

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

/// The exact text Flagger must get for stored decision `d` at a gate whose
/// answer starts with `head` (`hold`, `no rollback: promote` …): the
/// decision's reasons as `policy: message` (host reasons bare), joined by
/// `; `, then the decision id.
fn flagger_text(head: &str, d: &Value) -> String {
    let why: Vec<String> = d["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("no reasons in {d}"))
        .iter()
        .map(|r| {
            let message = r["message"].as_str().unwrap();
            match r["policy"].as_str() {
                Some(p) => format!("{p}: {message}"),
                None => message.to_string(),
            }
        })
        .collect();
    let id = d["id"].as_str().unwrap();
    if why.is_empty() {
        format!("{head} (decision {id})")
    } else {
        format!("{head}: {} (decision {id})", why.join("; "))
    }
}

/// Flagger's answer must be exactly [`flagger_text`] for the decision it
/// names; returns that decision.
#[track_caller]
fn assert_flagger_text(s: &Server, head: &str, text: &str) -> Value {
    let d = s.get_ok(&format!("/v1/decisions/{}", decision_id(text)));
    assert_eq!(text, flagger_text(head, &d), "{d}");
    d
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
    assert_eq!(v["retry_after_seconds"], 0, "{v}");
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

/// An Argo error answer: 200 (checked by [`argo`]), hold, no decision id,
/// ask again in 30 s, and `reason` as the one reason.
#[track_caller]
fn assert_argo_error(v: &Value, reason: &str) {
    assert_eq!(v["verdict"], "hold", "{v}");
    assert!(v["decision_id"].is_null(), "{v}");
    assert_eq!(v["retry_after_seconds"], 30, "{v}");
    let reasons = v["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{v}");
    assert!(
        reasons[0].as_str().unwrap().contains(reason),
        "reason should contain {reason:?}: {v}"
    );
}

#[test]
fn argo_answers_200_hold_when_the_decision_times_out() {
    // A metric source that accepts connections and never answers, with a
    // per-call timeout (30 s) far past the request timeout (0.5 s): the
    // decision cannot finish in time.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = format!(
        "request_timeout_ms = 500\n\n\
         [[metric_sources]]\nname = \"silent\"\ntype = \"prometheus\"\n\
         url = \"http://{}\"\ntimeout_ms = 30000\n\n\
         [[metric_queries]]\nmetric = \"apdex\"\nsource = \"silent\"\n\
         value = 'apdex{{service=\"{{{{service}}}}\"}}'\n",
        silent.local_addr().unwrap()
    );
    let s = Server::start_with(verdict_e2e::Options {
        config: Some(config),
        ..Default::default()
    });
    let started = Instant::now();
    let v = argo(
        &s,
        healthy_request("slow", "production").to_string().as_bytes(),
    );
    let took = started.elapsed();
    assert_argo_error(&v, "no decision within 500 ms; ask again");
    // Answered at the request timeout, not when the source gives up.
    assert!(took < Duration::from_secs(20), "answered after {took:?}");
    // The API door answers the same timeout as a 503.
    let answer = s.json(
        "POST",
        "/v1/decisions",
        &healthy_request("slow", "production"),
    );
    assert_error(&answer, 503, "timeout");
    drop(silent);
}

#[test]
fn argo_answers_200_hold_on_a_store_error() {
    // A decision with an idempotency key, then one more (so the damaged
    // record is not the newest one).
    let s = Server::start();
    let mut keyed = healthy_request("keyed", "production");
    keyed["idempotency_key"] = json!("argo-keyed-1");
    let v = argo(&s, keyed.to_string().as_bytes());
    assert_eq!(v["verdict"], "promote", "{v}");
    let seq: u64 = v["decision_id"].as_str().unwrap()["dec-".len()..]
        .parse()
        .unwrap();
    s.decide(&healthy_request("other", "production"));
    let (dir, _temp) = {
        let mut s = s;
        assert!(s.terminate().success());
        s.into_data_dir()
    };
    // The disk loses that record (its index entries stay), as a damaged
    // disk or a careless hand in the data dir would.
    {
        let store = verdict::store::Store::open(&dir.join("store")).unwrap();
        assert!(store.delete_record_for_tests(seq).unwrap());
    }
    let s = Server::start_with(verdict_e2e::Options {
        data_dir: Some(dir.clone()),
        ..Default::default()
    });
    // The key now names a record that does not exist: the store refuses the
    // append. Argo still gets a 200 hold, without a decision id.
    let v = argo(&s, keyed.to_string().as_bytes());
    assert_argo_error(&v, "does not exist");
    assert!(v["reasons"][0].as_str().unwrap().contains("corrupt"), "{v}");
    // The API door reports the same failure as a 500 store error.
    let answer = s.json("POST", "/v1/decisions", &keyed);
    let message = assert_error(&answer, 500, "store");
    assert!(message.contains("argo-keyed-1"), "{message}");
    // Nothing was stored for either call: the chain still ends at 2.
    let (st, body) = s.call("GET", "/v1/decisions/dec-000000000003", None);
    assert_eq!(st, 404, "{body}");
    s.get_ok("/v1/decisions/dec-000000000002");
}

#[test]
fn argo_asks_again_in_30_s_after_a_real_hold_or_freeze() {
    let s = Server::start();
    // A real hold: a stored decision no policy voted on.
    let v = argo(
        &s,
        json!({"deployment": {"service": "idle", "environment": "production"}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(v["verdict"], "hold", "{v}");
    assert_eq!(v["retry_after_seconds"], 30, "{v}");
    let id = v["decision_id"].as_str().expect("a stored hold has an id");
    let d = s.get_ok(&format!("/v1/decisions/{id}"));
    assert_eq!(d["verdict"], "hold", "{d}");
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .contains("no enforcing policy voted"),
        "{v}"
    );

    // A real freeze: a manual freeze in scope of a request that would promote.
    let (st, f) = s.json(
        "POST",
        "/v1/freezes",
        &json!({"selector": {"service": "frozen"}, "reason": "incident INC-88", "until": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(st, 201, "{f}");
    let v = argo(
        &s,
        healthy_request("frozen", "production")
            .to_string()
            .as_bytes(),
    );
    assert_eq!(v["verdict"], "freeze", "{v}");
    assert_eq!(v["retry_after_seconds"], 30, "{v}");
    assert!(v["reasons"].to_string().contains("incident INC-88"), "{v}");
    let id = v["decision_id"]
        .as_str()
        .expect("a stored freeze has an id");
    assert_eq!(
        s.get_ok(&format!("/v1/decisions/{id}"))["verdict"],
        "freeze"
    );

    // Promote and rollback are final: no retry hint.
    let v = argo(
        &s,
        healthy_request("free", "production").to_string().as_bytes(),
    );
    assert_eq!(
        (&v["verdict"], &v["retry_after_seconds"]),
        (&json!("promote"), &json!(0)),
        "{v}"
    );
    let v = argo(
        &s,
        failing_request("free", "production").to_string().as_bytes(),
    );
    assert_eq!(
        (&v["verdict"], &v["retry_after_seconds"]),
        (&json!("rollback"), &json!(0)),
        "{v}"
    );
}

#[test]
fn argo_example_request_replays_and_matches_the_template() {
    let s = Server::start();
    let body = read_example("argo-rollouts/request.json");
    let v = argo(&s, body.as_bytes());
    // No metrics (Argo cannot push them): change-risk votes on the change
    // context, the other built-ins abstain.
    assert_eq!(v["verdict"], "promote", "{v}");
    assert_eq!(v["retry_after_seconds"], 0, "{v}");
    let id = v["decision_id"].as_str().expect("a decision id");
    let d = s.get_ok(&format!("/v1/decisions/{id}"));
    let req: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["request"]["args"], req["args"]);
    assert_eq!(d["request"]["deployment"], req["deployment"]);
    assert_eq!(
        policy_result(&d, "change-risk")["verdict"],
        "promote",
        "{d}"
    );
    for b in [
        "canary-judge",
        "error-budget",
        "freeze-window",
        "thresholds",
    ] {
        assert!(policy_result(&d, b)["abstained"].is_string(), "{b}: {d}");
    }

    // The stored decision replays to the same answer: with the digests and
    // settings it recorded, and with the current bindings.
    for how in [json!({"as_recorded": true}), json!({})] {
        let (st, r) = s.json("POST", &format!("/v1/decisions/{id}/replay"), &how);
        assert_eq!(st, 200, "replay {how}: {r}");
        assert_eq!(r["decision_id"], id, "{r}");
        assert_eq!(r["original_verdict"], "promote", "{r}");
        assert_eq!(r["replayed_verdict"], "promote", "replay {how}: {r}");
        assert_eq!(r["changed"], false, "replay {how}: {r}");
        assert_eq!(r["diff"], json!([]), "replay {how}: {r}");
        assert_eq!(
            policy_result(&r["replayed"], "change-risk")["verdict"],
            "promote",
            "{r}"
        );
    }

    // The template, read structurally.
    let template = yaml::parse(&read_example("argo-rollouts/analysis-template.yaml"));
    assert_eq!(template["kind"], "AnalysisTemplate", "{template}");
    let metrics = template["spec"]["metrics"]
        .as_array()
        .expect("spec.metrics");
    assert_eq!(metrics.len(), 1, "{template}");
    let metric = &metrics[0];
    let web = &metric["provider"]["web"];
    assert_eq!(web["method"], "POST", "{web}");
    assert!(
        web["url"]
            .as_str()
            .unwrap()
            .ends_with("/v1/integrations/argo"),
        "{web}"
    );
    assert_eq!(
        web["jsonPath"], "{$}",
        "the whole answer is `result`: {web}"
    );
    assert_eq!(
        web["headers"],
        json!([{"key": "Authorization", "value": "Bearer {{args.verdict-token}}"}])
    );
    for key in ["interval", "count", "inconclusiveLimit"] {
        assert!(
            metric[key].is_string(),
            "the metric lacks `{key}`: {metric}"
        );
    }
    assert_eq!(metric["failureLimit"], "0", "one rollback aborts: {metric}");

    // The conditions, evaluated as Argo would on real answers: promote is
    // Successful, rollback Failed, hold (also an error) Inconclusive.
    let success = metric["successCondition"].as_str().unwrap();
    let failure = metric["failureCondition"].as_str().unwrap();
    let rollback = argo(
        &s,
        failing_request("checkout", "production")
            .to_string()
            .as_bytes(),
    );
    let hold = argo(&s, b"{not json");
    for (answer, succeeds, fails) in [
        (&v, true, false),
        (&rollback, false, true),
        (&hold, false, false),
    ] {
        assert_eq!(
            condition_holds(success, answer),
            succeeds,
            "{success} on {answer}"
        );
        assert_eq!(
            condition_holds(failure, answer),
            fails,
            "{failure} on {answer}"
        );
    }

    // jsonBody is request.json with each value an `{{args.*}}` placeholder:
    // the same keys at every level, and one value per arg.
    let declared: Vec<&Value> = template["spec"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let arg = |name: &str| {
        declared
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("`{{{{args.{name}}}}}` is not a declared arg"))
    };
    let mut values = BTreeMap::new();
    bind_placeholders(&web["jsonBody"], &req, &mut values, "jsonBody");
    for (name, value) in &values {
        // An arg with a default must default to the example's value.
        if let Some(default) = arg(name)["value"].as_str() {
            assert_eq!(default, value, "args.{name}");
        }
    }
    arg("verdict-token");

    // The Rollout passes every arg the template needs, with the example's
    // values where it sets them literally.
    let rollout = yaml::parse(&read_example("argo-rollouts/rollout.yaml"));
    let steps = rollout["spec"]["strategy"]["canary"]["steps"]
        .as_array()
        .unwrap();
    let analyses: Vec<&Value> = steps
        .iter()
        .filter(|s| s.get("analysis").is_some())
        .collect();
    assert!(!analyses.is_empty(), "no analysis step in rollout.yaml");
    for step in analyses {
        let a = &step["analysis"];
        assert_eq!(a["templates"], json!([{"templateName": "verdict"}]), "{a}");
        assert_eq!(template["metadata"]["name"], "verdict");
        let passed = a["args"].as_array().unwrap();
        for decl in &declared {
            let name = decl["name"].as_str().unwrap();
            let given = passed.iter().find(|p| p["name"] == name);
            if decl.get("value").is_none() && decl.get("valueFrom").is_none() {
                assert!(given.is_some(), "the Rollout does not pass `{name}`: {a}");
            }
            let Some(given) = given else { continue };
            match (given["value"].as_str(), &given["valueFrom"]) {
                (Some(literal), _) => assert_eq!(
                    Some(literal),
                    values.get(name).map(String::as_str),
                    "args.{name}"
                ),
                (None, from) if name == "namespace" => {
                    assert_eq!(from["fieldRef"]["fieldPath"], "metadata.namespace");
                    assert_eq!(
                        rollout["metadata"]["namespace"].as_str(),
                        values.get(name).map(String::as_str)
                    );
                }
                (None, from) => {
                    let hash = match name {
                        "canary-hash" => "Latest",
                        "stable-hash" => "Stable",
                        other => panic!("unexpected valueFrom for `{other}`: {from}"),
                    };
                    assert_eq!(from["podTemplateHashValue"], hash, "{name}");
                }
            }
        }
    }
}

/// Argo's condition `result.<field> == "<value>"` on an answer.
fn condition_holds(condition: &str, result: &Value) -> bool {
    let (lhs, rhs) = condition
        .split_once(" == ")
        .unwrap_or_else(|| panic!("not `result.field == \"value\"`: {condition}"));
    let field = lhs
        .trim()
        .strip_prefix("result.")
        .unwrap_or_else(|| panic!("not about `result`: {condition}"));
    let want: String = serde_json::from_str(rhs.trim())
        .unwrap_or_else(|e| panic!("not a string literal in {condition}: {e}"));
    result[field] == want.as_str()
}

/// Match a template (`{{args.name}}` placeholders) against the example it
/// stands for: same keys at every level, each placeholder exactly one value
/// (collected in `values`), any literal equal.
fn bind_placeholders(
    template: &Value,
    example: &Value,
    values: &mut BTreeMap<String, String>,
    at: &str,
) {
    match (template, example) {
        (Value::Object(t), Value::Object(e)) => {
            let mut tk: Vec<&String> = t.keys().collect();
            let mut ek: Vec<&String> = e.keys().collect();
            tk.sort();
            ek.sort();
            assert_eq!(tk, ek, "keys of {at}: template vs request.json");
            for (k, tv) in t {
                bind_placeholders(tv, &e[k], values, &format!("{at}.{k}"));
            }
        }
        (Value::String(t), Value::String(e)) if t.contains("{{") => {
            let name = t
                .strip_prefix("{{args.")
                .and_then(|r| r.strip_suffix("}}"))
                .filter(|n| !n.contains('}'))
                .unwrap_or_else(|| panic!("{at}: {t:?} is not one `{{{{args.*}}}}`"));
            if let Some(before) = values.insert(name.to_string(), e.clone()) {
                assert_eq!(&before, e, "{at}: args.{name} stands for two values");
            }
        }
        _ => assert_eq!(template, example, "{at}"),
    }
}

/// A reader for the block-style YAML the examples use (maps, lists, `#`
/// comments, quoted or plain scalars, `&anchor` / `*alias`), enough to
/// check them structurally. Every scalar is a string; anything it does not
/// understand fails the test.
mod yaml {
    use std::collections::HashMap;

    use serde_json::{Map, Value};

    struct Line {
        indent: usize,
        text: String,
        no: usize,
    }

    struct Parser {
        lines: Vec<Line>,
        at: usize,
        anchors: HashMap<String, Value>,
    }

    pub fn parse(src: &str) -> Value {
        let mut lines = Vec::new();
        for (i, raw) in src.lines().enumerate() {
            let text = strip_comment(raw);
            let text = text.trim_end();
            if text.trim().is_empty() {
                continue;
            }
            let mut indent = text.len() - text.trim_start().len();
            let mut rest = text.trim_start();
            // `- key: value` is a list item opening a map: split it so the
            // map's first key sits at the column of the others.
            while let Some(after) =
                rest.strip_prefix("- ")
                    .or(if rest == "-" { Some("") } else { None })
            {
                lines.push(Line {
                    indent,
                    text: "-".into(),
                    no: i + 1,
                });
                let trimmed = after.trim_start();
                indent += rest.len() - trimmed.len();
                rest = trimmed;
                if rest.is_empty() {
                    break;
                }
            }
            if !rest.is_empty() {
                lines.push(Line {
                    indent,
                    text: rest.to_string(),
                    no: i + 1,
                });
            }
        }
        let mut p = Parser {
            lines,
            at: 0,
            anchors: HashMap::new(),
        };
        let indent = p.lines.first().map_or(0, |l| l.indent);
        let v = p.block(indent);
        if let Some(l) = p.lines.get(p.at) {
            panic!("YAML line {} not understood: {:?}", l.no, l.text);
        }
        v
    }

    fn strip_comment(line: &str) -> String {
        let mut quote = None;
        let mut after_space = true;
        for (i, c) in line.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '#') if after_space => return line[..i].to_string(),
                _ => {}
            }
            after_space = c.is_whitespace();
        }
        line.to_string()
    }

    /// `key: value` or `key:`; keys are plain words.
    fn key_value(text: &str) -> Option<(&str, &str)> {
        let (k, v) = match text.split_once(": ") {
            Some((k, v)) => (k, v.trim()),
            None => (text.strip_suffix(':')?, ""),
        };
        let plain = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        plain.then_some((k, v))
    }

    fn scalar(text: &str) -> Value {
        let t = text.trim();
        for q in ['"', '\''] {
            if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
                return Value::String(t[1..t.len() - 1].to_string());
            }
        }
        Value::String(t.to_string())
    }

    impl Parser {
        fn line(&self) -> Option<&Line> {
            self.lines.get(self.at)
        }

        fn block(&mut self, indent: usize) -> Value {
            let first = self.line().expect("a block");
            if first.text == "-" {
                let mut items = Vec::new();
                while self
                    .line()
                    .is_some_and(|l| l.indent == indent && l.text == "-")
                {
                    let no = self.line().unwrap().no;
                    self.at += 1;
                    match self.line() {
                        Some(l) if l.indent > indent => {
                            let inner = l.indent;
                            items.push(self.block(inner));
                        }
                        _ => panic!("YAML line {no}: empty list item"),
                    }
                }
                Value::Array(items)
            } else if key_value(&first.text).is_some() {
                let mut map = Map::new();
                while let Some(l) = self.line().filter(|l| l.indent == indent) {
                    let no = l.no;
                    let (k, v) = key_value(&l.text)
                        .unwrap_or_else(|| panic!("YAML line {no}: expected `key: value`"));
                    let (k, v) = (k.to_string(), v.to_string());
                    self.at += 1;
                    let value = if let Some(name) = v.strip_prefix('*') {
                        self.anchors
                            .get(name)
                            .unwrap_or_else(|| panic!("YAML line {no}: unknown alias {name}"))
                            .clone()
                    } else if v.is_empty() || v.starts_with('&') {
                        let value = match self.line() {
                            Some(n)
                                if n.indent > indent || (n.indent == indent && n.text == "-") =>
                            {
                                let inner = n.indent;
                                self.block(inner)
                            }
                            _ => Value::Null,
                        };
                        if let Some(name) = v.strip_prefix('&') {
                            self.anchors.insert(name.to_string(), value.clone());
                        }
                        value
                    } else {
                        scalar(&v)
                    };
                    assert!(
                        map.insert(k.clone(), value).is_none(),
                        "YAML line {no}: duplicate key `{k}`"
                    );
                }
                Value::Object(map)
            } else {
                let v = scalar(&first.text);
                self.at += 1;
                v
            }
        }
    }
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
        assert!(text.contains("no enforcing policy voted"), "{gate}: {text}");
        assert_flagger_text(&s, "hold", &text);
    }
    let (st, text) = flagger(&s, "rollback", &p);
    assert_eq!(st, 403, "{text}");
    let d = assert_flagger_text(&s, "no rollback: hold", &text);
    assert!(text.contains("no enforcing policy voted"), "{text}");
    assert_eq!(d["request"]["args"]["flagger.gate"], "rollback", "{d}");

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
        let d = s.get_ok(&format!("/v1/decisions/{}", decision_id(&text)));
        assert_eq!(
            text,
            format!("promote (decision {})", d["id"].as_str().unwrap())
        );
    }
    // The rollback gate: not a rollback, so 403, saying what the verdict
    // was and why.
    let (st, text) = flagger(&s, "rollback", &p);
    assert_eq!(st, 403, "{text}");
    let d = assert_flagger_text(&s, "no rollback: promote", &text);
    assert!(
        text.contains("change-risk: "),
        "the promoting vote is named: {text}"
    );
    assert_eq!(d["verdict"], "promote", "{d}");
    assert_eq!(d["request"]["args"]["flagger.gate"], "rollback", "{d}");
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
        assert!(text.contains("incident INC-77"), "{gate}: {text}");
        assert_flagger_text(&s, "freeze", &text);
    }
    let (st, text) = flagger(&s, "rollback", &p);
    assert_eq!(st, 403, "{text}");
    assert!(text.contains("incident INC-77"), "{text}");
    assert_flagger_text(&s, "no rollback: freeze", &text);
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
