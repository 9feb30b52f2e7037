//! Telemetry end to end: OTLP export to a real receiver, `traceparent`
//! continuation, `GET /metrics` (checked by `promtool`), an unreachable or
//! silent collector (never slows a decision; a warning is logged), and the
//! JSON decision log line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{json, Value};
use verdict_e2e::pki::{self, TestCa};
use verdict_e2e::{failing_request, healthy_request, prometheus_tool, try_call, Options, Server};

/// The caller's trace: a deploy tool's span that Verdict must continue.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01")
}

/// POST a decision with extra headers; insists on 201.
#[track_caller]
fn decide_with(s: &Server, request: &Value, headers: &[(&str, &str)]) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut req = agent
        .post(format!("{}/v1/decisions", s.base))
        .header("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send(request.to_string().as_bytes()).expect("POST");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    assert_eq!(status, 201, "POST /v1/decisions: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Poll `f` until it yields, at most `secs` seconds.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "no {what} within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Everything the receiver got, decoded.
#[derive(Default)]
struct Received {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

/// A minimal OTLP/HTTP receiver (HTTP/1.1, protobuf bodies) on loopback.
struct Collector {
    endpoint: String,
    got: Arc<Mutex<Received>>,
}

impl Collector {
    fn start() -> Collector {
        Collector::start_tls(None)
    }

    /// Over HTTPS when given a TLS server config (the same receiver, each
    /// connection wrapped in rustls).
    fn start_tls(tls: Option<Arc<rustls::ServerConfig>>) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://{}", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Received::default()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let sink = sink.clone();
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    None => serve_otlp(conn, &sink),
                    Some(config) => {
                        let server = rustls::ServerConnection::new(config).unwrap();
                        serve_otlp(rustls::StreamOwned::new(server, conn), &sink)
                    }
                });
            }
        });
        Collector { endpoint, got }
    }

    fn spans(&self) -> Vec<(Vec<KeyValue>, Span)> {
        let got = self.got.lock().unwrap();
        let mut out = Vec::new();
        for req in &got.traces {
            for rs in &req.resource_spans {
                let resource = rs
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.clone())
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        out.push((resource.clone(), span.clone()));
                    }
                }
            }
        }
        out
    }

    /// The latest value of the `verdict.decisions` counter for these labels.
    fn decisions(&self, verdict: &str, environment: &str) -> Option<i64> {
        let got = self.got.lock().unwrap();
        let mut latest = None;
        for req in &got.metrics {
            for rm in &req.resource_metrics {
                for sm in &rm.scope_metrics {
                    for m in sm.metrics.iter().filter(|m| m.name == "verdict.decisions") {
                        let Some(metric::Data::Sum(sum)) = &m.data else {
                            panic!("verdict.decisions is not a sum: {m:?}")
                        };
                        assert!(sum.is_monotonic, "a counter is monotonic");
                        for p in &sum.data_points {
                            if str_attr(&p.attributes, "verdict") == Some(verdict.into())
                                && str_attr(&p.attributes, "environment")
                                    == Some(environment.into())
                            {
                                latest = match p.value {
                                    Some(number_data_point::Value::AsInt(v)) => Some(v),
                                    Some(number_data_point::Value::AsDouble(v)) => Some(v as i64),
                                    None => latest,
                                };
                            }
                        }
                    }
                }
            }
        }
        latest
    }
}

/// Answer OTLP posts on one (keep-alive) connection until it closes.
fn serve_otlp<S: Read + Write>(conn: S, sink: &Mutex<Received>) {
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let status = {
            let mut got = sink.lock().unwrap();
            match path.as_str() {
                "/v1/traces" => ExportTraceServiceRequest::decode(body.as_slice())
                    .map(|r| got.traces.push(r))
                    .is_ok(),
                "/v1/metrics" => ExportMetricsServiceRequest::decode(body.as_slice())
                    .map(|r| got.metrics.push(r))
                    .is_ok(),
                _ => false,
            }
        };
        let head = if status { "200 OK" } else { "400 Bad Request" };
        let answer = format!(
            "HTTP/1.1 {head}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
        );
        let writer = reader.get_mut();
        if writer.write_all(answer.as_bytes()).is_err() || writer.flush().is_err() {
            return;
        }
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn str_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key)? {
        any_value::Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

fn otlp_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        // Export quickly so the test does not wait for the 5 s / 60 s defaults.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn decision_trace_continues_the_callers_trace_and_metrics_reach_the_collector() {
    let collector = Collector::start();
    let s = Server::start_with(Options {
        env: otlp_env(&collector.endpoint),
        ..Options::default()
    });
    // A shadow binding that runs out of fuel: a policy span with an error.
    let (st, body) = s.json("PUT", "/v1/bindings/starved", &starved_binding("checkout"));
    assert_eq!(st, 200, "{body}");
    let record = decide_with(
        &s,
        &healthy_request("checkout", "prod"),
        &[("traceparent", &traceparent())],
    );
    let id = record["id"].as_str().unwrap().to_string();

    let (resource, decision) = wait_for(30, "decision span", || {
        collector.spans().into_iter().find(|(_, sp)| {
            sp.name == "decision" && str_attr(&sp.attributes, "decision.id") == Some(id.clone())
        })
    });
    assert_eq!(
        str_attr(&resource, "service.name").as_deref(),
        Some("verdict")
    );
    assert_eq!(
        hex::encode(&decision.trace_id),
        TRACE_ID,
        "the caller's trace id"
    );
    let a = &decision.attributes;
    assert_eq!(str_attr(a, "service").as_deref(), Some("checkout"));
    assert_eq!(str_attr(a, "environment").as_deref(), Some("prod"));
    assert_eq!(
        str_attr(a, "verdict"),
        record["verdict"].as_str().map(String::from)
    );

    // decision ← request ← the caller's span.
    let request = wait_for(30, "request span", || {
        collector
            .spans()
            .into_iter()
            .map(|(_, sp)| sp)
            .find(|sp| sp.span_id == decision.parent_span_id)
    });
    assert_eq!(request.name, "POST /v1/decisions");
    assert_eq!(hex::encode(&request.trace_id), TRACE_ID);
    assert_eq!(hex::encode(&request.parent_span_id), PARENT_SPAN_ID);
    assert_eq!(
        str_attr(&request.attributes, "http.route").as_deref(),
        Some("/v1/decisions")
    );
    assert_eq!(
        int_attr(&request.attributes, "http.response.status_code"),
        Some(201),
        "{:?}",
        request.attributes
    );

    // One child span per policy evaluation, matching the stored record.
    let policies = record["policies"].as_array().unwrap();
    let children = wait_for(30, "policy spans", || {
        let c: Vec<Span> = collector
            .spans()
            .into_iter()
            .map(|(_, sp)| sp)
            .filter(|sp| sp.parent_span_id == decision.span_id && sp.name == "policy")
            .collect();
        (c.len() == policies.len()).then_some(c)
    });
    for p in policies {
        let binding = p["binding"].as_str().unwrap();
        let span = children
            .iter()
            .find(|sp| str_attr(&sp.attributes, "policy.binding").as_deref() == Some(binding))
            .unwrap_or_else(|| panic!("no policy span for binding `{binding}`"));
        let a = &span.attributes;
        assert_eq!(hex::encode(&span.trace_id), TRACE_ID);
        assert_eq!(
            str_attr(a, "policy.name"),
            p["name"].as_str().map(String::from)
        );
        assert_eq!(
            str_attr(a, "policy.digest"),
            p["digest"].as_str().map(String::from)
        );
        assert_eq!(
            int_attr(a, "policy.fuel_used"),
            p["fuel_used"].as_i64(),
            "fuel of `{binding}`"
        );
        let outcome = if p["error"].is_object() {
            "error"
        } else if p["abstained"].is_string() {
            "abstain"
        } else {
            "vote"
        };
        assert_eq!(
            str_attr(a, "policy.outcome").as_deref(),
            Some(outcome),
            "{p}"
        );
        assert_eq!(
            str_attr(a, "error.kind"),
            p["error"]["kind"].as_str().map(String::from),
            "{p}"
        );
        if outcome == "vote" {
            assert_eq!(
                str_attr(a, "policy.verdict"),
                p["verdict"].as_str().map(String::from)
            );
        }
    }

    let verdict = record["verdict"].as_str().unwrap();
    let starved = policies.iter().find(|p| p["binding"] == "starved").unwrap();
    assert_eq!(starved["error"]["kind"], "fuel", "{starved}");
    let count = wait_for(30, "verdict.decisions metric", || {
        collector.decisions(verdict, "prod")
    });
    assert_eq!(count, 1);
}

/// A shadow binding for `service` with fuel enough to check its settings
/// but not to judge 20 samples: one policy error, the verdict unchanged.
fn starved_binding(service: &str) -> Value {
    json!({
        "policy": "canary-judge",
        "selector": {"service": service},
        "mode": "shadow",
        "limits": {"fuel": 5000},
    })
}

/// `GET /metrics` as text.
fn scrape(s: &Server) -> String {
    let (status, body) = s.call("GET", "/metrics", None);
    assert_eq!(status, 200, "{body}");
    match body {
        Value::String(text) => text,
        other => panic!("/metrics is not text: {other}"),
    }
}

#[test]
#[cfg_attr(
    verdict_skip_prometheus,
    ignore = "VERDICT_SKIP_PROMETHEUS is set: needs Debian's prometheus package"
)]
fn metrics_endpoint_serves_prometheus_text_that_promtool_accepts() {
    let s = Server::start();
    s.decide(&healthy_request("web", "prod"));
    s.decide(&healthy_request("web", "prod"));
    s.decide(&failing_request("web", "staging"));
    let (st, body) = s.json("PUT", "/v1/bindings/starved", &starved_binding("starved"));
    assert_eq!(st, 200, "{body}");
    s.decide(&healthy_request("starved", "prod"));
    let (st, _) = s.call("GET", "/no/such/route", None);
    assert_eq!(st, 404);

    let text = scrape(&s);
    for want in [
        "# TYPE verdict_decisions_total counter",
        r#"verdict_decisions_total{environment="prod",verdict="promote"} 3"#,
        r#"verdict_decisions_total{environment="staging",verdict="rollback"} 1"#,
        "# TYPE verdict_decision_duration_seconds histogram",
        r#"verdict_decision_duration_seconds_count{environment="prod",verdict="promote"} 3"#,
        "# TYPE verdict_policy_evaluation_duration_seconds histogram",
        r#"verdict_policy_evaluation_duration_seconds_count{outcome="vote",policy="thresholds"} 4"#,
        r#"verdict_policy_evaluation_duration_seconds_count{outcome="error",policy="canary-judge"} 1"#,
        "# TYPE verdict_policy_fuel histogram",
        r#"verdict_policy_fuel_bucket{policy="thresholds",le="+Inf"}"#,
        r#"verdict_policy_errors_total{kind="fuel",policy="canary-judge"} 1"#,
        "# TYPE verdict_store_flush_duration_seconds histogram",
        "verdict_store_flush_duration_seconds_count ",
        r#"verdict_http_requests_total{http_request_method="POST",http_response_status_code="201",http_route="/v1/decisions"} 4"#,
        r#"verdict_http_requests_total{http_request_method="GET",http_response_status_code="404",http_route="unmatched"} 1"#,
        "# TYPE verdict_http_request_duration_seconds histogram",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }

    let promtool = prometheus_tool("promtool");
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- input ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unreachable_collector_never_fails_a_decision() {
    // A port nothing listens on: bind, note it, close it.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut s = Server::start_with(Options {
        env: otlp_env(&format!("http://127.0.0.1:{closed}")),
        capture_stderr: true,
        ..Options::default()
    });
    let mut ids = Vec::new();
    for i in 0..20 {
        let env = if i % 2 == 0 { "prod" } else { "staging" };
        let record = decide_with(
            &s,
            &healthy_request("web", env),
            &[("traceparent", &traceparent())],
        );
        assert_eq!(record["verdict"], "promote", "{record}");
        ids.push(record["id"].as_str().unwrap().to_string());
    }
    // Let exports fail a few times (every 100–200 ms) while serving.
    std::thread::sleep(Duration::from_millis(600));
    for id in &ids {
        s.get_ok(&format!("/v1/decisions/{id}"));
    }
    assert!(
        scrape(&s).contains(r#"verdict_decisions_total{environment="prod",verdict="promote"} 10"#)
    );
    // The lost telemetry is not silent.
    wait_for(30, "warning about the failed export", || {
        export_failure(&s.stderr_lines())
    });
    // Shutdown flushes with a bounded wait; the harness allows 60 s.
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn telemetry_reaches_a_collector_over_https_and_a_wrong_ca_names_the_host() {
    let ca = TestCa::new("collector CA");
    let dir = tempfile::tempdir().unwrap();
    let leaf = ca.server(dir.path(), "collector");
    let collector = Collector::start_tls(Some(pki::server_config(&leaf)));
    assert!(collector.endpoint.starts_with("https://"));
    let with_ca = |ca_file: &std::path::Path| {
        let mut env = otlp_env(&collector.endpoint);
        env.push((
            "OTEL_EXPORTER_OTLP_CERTIFICATE".into(),
            ca_file.display().to_string(),
        ));
        env
    };

    // Trusting the collector's CA: spans and metrics arrive over TLS.
    let s = Server::start_with(Options {
        env: with_ca(&ca.file),
        ..Options::default()
    });
    let record = s.decide(&healthy_request("otlp-tls", "prod"));
    let id = record["id"].as_str().unwrap().to_string();
    wait_for(30, "decision span over https", || {
        collector.spans().into_iter().find(|(_, sp)| {
            sp.name == "decision" && str_attr(&sp.attributes, "decision.id") == Some(id.clone())
        })
    });
    wait_for(30, "decision counter over https", || {
        collector.decisions("promote", "prod")
    });
    drop(s);

    // Trusting another CA: nothing arrives, and the log says which host
    // refused and why.
    let other = TestCa::new("not the collector's CA");
    let spans_before = collector.spans().len();
    let s = Server::start_with(Options {
        env: with_ca(&other.file),
        capture_stderr: true,
        ..Options::default()
    });
    s.decide(&healthy_request("otlp-tls", "staging"));
    let host = collector
        .endpoint
        .trim_start_matches("https://")
        .to_string();
    let line = wait_for(30, "a TLS export failure naming the collector", || {
        s.stderr_lines().into_iter().find(|l| {
            l.contains(&format!("TLS with `{host}` failed"))
                && l.contains("not signed by a trusted CA")
        })
    });
    assert!(line.contains("OTLP"), "{line}");
    assert_eq!(
        collector.spans().len(),
        spans_before,
        "an untrusted collector receives nothing"
    );
}

/// The first warning that an OTLP export failed and its telemetry is lost
/// (the exporter's own words), if any.
fn export_failure(lines: &[String]) -> Option<String> {
    lines
        .iter()
        .find(|l| {
            l.contains(" WARN ")
                && l.contains("OTLP export")
                && l.contains("telemetry data will be lost")
        })
        .cloned()
}

/// A collector that accepts connections, reads what it is sent and never
/// answers; it counts the connections it holds.
struct SilentCollector {
    endpoint: String,
    connections: Arc<AtomicUsize>,
}

impl SilentCollector {
    fn start() -> SilentCollector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().map_while(Result::ok) {
                count.fetch_add(1, Ordering::SeqCst);
                // Read until the exporter gives up and closes; answer nothing.
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        });
        SilentCollector {
            endpoint,
            connections,
        }
    }
}

#[test]
fn a_collector_that_never_answers_does_not_slow_a_decision() {
    // Exports wait up to 20 s for an answer that never comes.
    const EXPORT_TIMEOUT_S: u64 = 20;
    let collector = SilentCollector::start();
    let mut env = otlp_env(&collector.endpoint);
    env.retain(|(k, _)| k != "OTEL_EXPORTER_OTLP_TIMEOUT");
    env.push((
        "OTEL_EXPORTER_OTLP_TIMEOUT".into(),
        (EXPORT_TIMEOUT_S * 1000).to_string(),
    ));
    let s = Server::start_with(Options {
        env,
        capture_stderr: true,
        ..Options::default()
    });
    // Each decision answers in well under the export timeout: one that
    // waited on an export would take all of it.
    let decide_in_time = |i: usize| {
        let environment = if i.is_multiple_of(2) {
            "prod"
        } else {
            "staging"
        };
        let body = healthy_request("web", environment).to_string();
        let t = Instant::now();
        let answer = try_call(
            &s.base,
            "POST",
            "/v1/decisions",
            Some(body.as_bytes()),
            None,
            "application/json",
        );
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(EXPORT_TIMEOUT_S / 2),
            "decision {i} took {took:?} with an export hanging (export timeout \
             {EXPORT_TIMEOUT_S} s): {answer:?}"
        );
        let (status, record) = answer.unwrap();
        assert_eq!(
            (status, &record["verdict"]),
            (201, &json!("promote")),
            "{record}"
        );
    };
    // The first decision gives the exporters something to send; once the
    // collector holds a connection, an export is hanging.
    let started = Instant::now();
    decide_in_time(0);
    wait_for(30, "export reaching the silent collector", || {
        (collector.connections.load(Ordering::SeqCst) > 0).then_some(())
    });
    // More decisions while exports hang.
    for i in 1..=10 {
        decide_in_time(i);
    }
    // When the export times out, the lost telemetry is logged.
    let line = wait_for(
        EXPORT_TIMEOUT_S * 3,
        "warning about the failed export",
        || export_failure(&s.stderr_lines()),
    );
    assert!(line.contains("deadline exceeded"), "{line}");
    assert!(
        started.elapsed() >= Duration::from_secs(EXPORT_TIMEOUT_S) - Duration::from_secs(1),
        "logged before the export timeout: {line}"
    );
}

#[test]
fn json_logs_carry_one_decision_line_with_ids_and_verdict() {
    let mut s = Server::start_with(Options {
        args: vec!["--log-format".into(), "json".into()],
        env: vec![("RUST_LOG".into(), "info".into())],
        capture_stderr: true,
        ..Options::default()
    });
    let record = decide_with(
        &s,
        &failing_request("payments", "prod"),
        &[("traceparent", &traceparent())],
    );
    let id = record["id"].as_str().unwrap();
    // Count only once the request is long done: first give any work it left
    // behind (a late duplicate line) time to log, then shut down cleanly,
    // which finishes in-flight work; its last line comes after any line the
    // request could still cause.
    std::thread::sleep(Duration::from_secs(2));
    assert!(s.terminate().success());
    let logged: Vec<Value> = wait_for(30, "the shutdown log line", || {
        let lines: Vec<Value> = s
            .stderr_lines()
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
            })
            .collect();
        lines
            .iter()
            .any(|v| v["message"] == "shut down cleanly")
            .then_some(lines)
    });
    let lines: Vec<&Value> = logged
        .iter()
        .filter(|v| v["message"] == "decision")
        .collect();
    assert_eq!(lines.len(), 1, "one line per decision: {lines:?}");
    assert_eq!(lines[0]["decision_id"], id, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["trace_id"], TRACE_ID);
    assert_eq!(line["verdict"], "rollback");
    assert_eq!(line["verdict"], record["verdict"]);
    assert_eq!(line["service"], "payments");
    assert_eq!(line["environment"], "prod");
    assert!(line["timestamp"].is_string(), "{line}");
}

#[test]
fn names_with_newlines_or_nul_cannot_forge_text_log_lines() {
    let s = Server::start_with(Options {
        env: vec![("RUST_LOG".into(), "info".into())],
        capture_stderr: true,
        ..Options::default()
    });
    let forged = "2030-01-01T00:00:00.000000Z ERROR verdict: audit chain broken at seq 1";
    let mut request = healthy_request("checkout", "prod");
    request["deployment"]["service"] = json!(format!("checkout\n{forged}"));
    request["deployment"]["environment"] = json!("prod\0\r\n");
    let (status, body) = s.json("POST", "/v1/decisions", &request);
    // Whether such a name is stored (201) or refused (422), no log line
    // may start with what it carries.
    assert!(status == 201 || status == 422, "{status}: {body}");
    if status == 201 {
        let id = body["id"].as_str().unwrap().to_string();
        let line = wait_for(10, "decision log line", || {
            s.stderr_lines()
                .into_iter()
                .find(|l| l.contains(&format!("decision_id={id}")))
        });
        assert!(
            line.contains(&format!(r"service=checkout\n{forged}")),
            "{line}"
        );
        assert!(line.contains(r"environment=prod\u{0}\r\n"), "{line}");
    }
    let lines = s.stderr_lines();
    assert!(
        !lines.iter().any(|l| l.starts_with("2030-01-01")),
        "a forged line: {lines:#?}"
    );
}
