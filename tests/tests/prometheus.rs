//! Pulled metrics (`[[metric_sources]]` and `[[metric_queries]]`: Verdict
//! queries Prometheus for the samples Argo and Flagger cannot push) against a
//! real Prometheus: Debian's
//! `prometheus` package, serving a TSDB built by `promtool tsdb
//! create-blocks-from openmetrics` from deterministic series. Verdict runs
//! with `examples/prometheus/verdict.toml` (only the URL changed) and is asked
//! through the Argo and Flagger doors with the example requests: the healthy
//! service is promoted, the degraded one rolled back. A source that is down
//! or silent must hold, never promote, and never hang.
//!
//! `.ci/run` (through `make test`) installs the package. Without it the
//! tests that need it fail with instructions. Built with
//! `VERDICT_SKIP_PROMETHEUS=1` (see `tests/build.rs`) they are reported as
//! ignored, never as passed; CI refuses that switch.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use verdict_e2e::pki::{self, TestCa};
use verdict_e2e::{call_via, policy_result as policy, prometheus_tool, try_call, Options, Server};

fn example(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/prometheus")
        .join(path)
}

fn read_example(path: &str) -> String {
    std::fs::read_to_string(example(path))
        .unwrap_or_else(|e| panic!("read examples/prometheus/{path}: {e}"))
}

/// Both tools; a missing one fails the test with how to install it.
fn tools() -> (PathBuf, PathBuf) {
    (prometheus_tool("prometheus"), prometheus_tool("promtool"))
}

/// One sample every 30 s over the last hour, for namespace `store`:
/// - `shop`: canary v2 behaves like baseline v1 (same level, other phase);
/// - `cart`: canary v2 has 2.5x the latency and 12x the errors, and the
///   service burns its budget fast.
///
/// The wobble is a sine, not randomness: the same series every run.
fn series_openmetrics(now: u64) -> String {
    struct Family {
        name: &'static str,
        help: &'static str,
        /// (service, version or "" for none, level, wobble)
        series: [(&'static str, &'static str, f64, f64); 4],
    }
    let families = [
        Family {
            name: "service:request_latency_p99_ms:1m",
            help: "p99 request latency per version (recording rule)",
            series: [
                ("shop", "v1", 120.0, 6.0),
                ("shop", "v2", 120.0, 6.0),
                ("cart", "v1", 120.0, 6.0),
                ("cart", "v2", 300.0, 6.0),
            ],
        },
        Family {
            name: "service:request_error_ratio:1m",
            help: "ratio of failed requests per version (recording rule)",
            series: [
                ("shop", "v1", 0.004, 0.001),
                ("shop", "v2", 0.004, 0.001),
                ("cart", "v1", 0.004, 0.001),
                ("cart", "v2", 0.05, 0.005),
            ],
        },
        Family {
            name: "service:burn_rate:1h",
            help: "error budget burn rate over 1h",
            series: [
                ("shop", "", 0.4, 0.05),
                ("cart", "", 20.0, 1.0),
                ("idle", "", 0.0, 0.0),
                ("idle2", "", 0.0, 0.0),
            ],
        },
        Family {
            name: "service:burn_rate:5m",
            help: "error budget burn rate over 5m",
            series: [
                ("shop", "", 0.6, 0.05),
                ("cart", "", 25.0, 1.0),
                ("idle", "", 0.0, 0.0),
                ("idle2", "", 0.0, 0.0),
            ],
        },
    ];
    let mut out = String::new();
    for f in &families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for (k, (service, version, level, wobble)) in f.series.iter().enumerate() {
            let version = if version.is_empty() {
                String::new()
            } else {
                format!(",version=\"{version}\"")
            };
            for i in 0..120u64 {
                let t = now - 3600 + i * 30;
                let v = level + wobble * ((i as f64) * 1.7 + k as f64).sin();
                let _ = writeln!(
                    out,
                    "{}{{namespace=\"store\",service=\"{service}\"{version}}} {v:.6} {t}",
                    f.name
                );
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// A Prometheus child process on loopback over a backfilled TSDB.
struct Prometheus {
    child: Child,
    url: String,
    /// Over HTTPS: the CA its certificate is signed by.
    ca_pem: Option<String>,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(prometheus: &Path, promtool: &Path) -> Prometheus {
        Prometheus::start_tls(prometheus, promtool, None)
    }

    /// Over HTTPS (`--web.config.file` with `tls_server_config`) when a CA
    /// is given: it signs a loopback certificate for Prometheus.
    fn start_tls(prometheus: &Path, promtool: &Path, ca: Option<&TestCa>) -> Prometheus {
        // The series end at `now`, and a decision pulls the 10 minutes before
        // its own time, with Prometheus reading a sample at most 5 minutes
        // old: a decision more than ~4.5 minutes after `now` would miss
        // samples. The first build of the verdict binary can take longer than
        // that, so it happens here, before the clock is read; what remains
        // (promtool, Prometheus and Verdict starting) takes seconds.
        verdict_e2e::binary();
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let input = dir.path().join("series.om");
        std::fs::write(&input, series_openmetrics(now)).unwrap();
        let tsdb = dir.path().join("tsdb");
        let out = Command::new(promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
            .arg(&input)
            .arg(&tsdb)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool create-blocks-from openmetrics failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = dir.path().join("prometheus.yml");
        // No scrape jobs: the backfilled blocks are the only data.
        std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let mut cmd = Command::new(prometheus);
        if let Some(ca) = ca {
            let leaf = ca.server(dir.path(), "prometheus");
            let web = dir.path().join("web.yml");
            std::fs::write(
                &web,
                format!(
                    "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                    leaf.cert_file.display(),
                    leaf.key_file.display()
                ),
            )
            .unwrap();
            cmd.arg(format!("--web.config.file={}", web.display()));
        }
        let child = cmd
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Backfilled blocks older than the retention would be dropped.
            .arg("--storage.tsdb.retention.time=10y")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let scheme = if ca.is_some() { "https" } else { "http" };
        let p = Prometheus {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
            ca_pem: ca.map(|c| c.pem.clone()),
            _dir: dir,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let ready = match &self.ca_pem {
                None => try_call(&self.url, "GET", "/-/ready", None, None, "text/plain"),
                Some(ca) => call_via(
                    &pki::agent(ca, None),
                    &self.url,
                    "GET",
                    "/-/ready",
                    None,
                    None,
                    "text/plain",
                ),
            };
            if let Ok((200, _)) = ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log =
            std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default();
        panic!("prometheus not ready within 60 s; its log:\n{log}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example config with the source pointed at `url`.
fn example_config(url: &str) -> String {
    let text = read_example("verdict.toml");
    let from = "url = \"http://127.0.0.1:9090\"";
    assert!(
        text.contains(from),
        "examples/prometheus/verdict.toml changed its url line"
    );
    text.replace(from, &format!("url = \"{url}\""))
}

fn argo(s: &Server, file: &str) -> Value {
    let body = read_example(file);
    let (status, v) = s.call("POST", "/v1/integrations/argo", Some(body.as_bytes()));
    assert_eq!(status, 200, "{v}");
    v
}

fn flagger(s: &Server, gate: &str, file: &str) -> (u16, String) {
    let body = read_example(file);
    let (status, v) = s.call(
        "POST",
        &format!("/v1/integrations/flagger/{gate}"),
        Some(body.as_bytes()),
    );
    (
        status,
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()),
    )
}

fn pulled<'a>(decision: &'a Value, metric: &str) -> &'a Value {
    decision["request"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == metric)
        .unwrap_or_else(|| panic!("no `{metric}` in the stored input: {decision}"))
}

#[test]
#[cfg_attr(
    verdict_skip_prometheus,
    ignore = "VERDICT_SKIP_PROMETHEUS is set: needs Debian's prometheus package"
)]
fn argo_and_flagger_decide_on_real_prometheus_series() {
    let (prometheus, promtool) = tools();
    let prom = Prometheus::start(&prometheus, &promtool);
    let s = Server::start_with(Options {
        config: Some(example_config(&prom.url)),
        ..Default::default()
    });

    // Argo, healthy canary: promoted on pulled evidence.
    let shop = argo(&s, "requests/argo-shop.json");
    assert_eq!(shop["verdict"], "promote", "{shop}");
    let id = shop["decision_id"].as_str().unwrap().to_string();
    let stored = s.get_ok(&format!("/v1/decisions/{id}"));
    let latency = pulled(&stored, "latency_p99_ms");
    let p = &latency["pulled"];
    assert_eq!(p["source"], "prometheus");
    assert!(p.get("diagnostic").is_none(), "{latency}");
    assert_eq!(
        p["baseline_query"],
        r#"service:request_latency_p99_ms:1m{namespace="store",service="shop",version="v1"}"#
    );
    assert_eq!(p["step_seconds"], 30);
    // 10 minutes at 30 s: 21 points per side (both ends included).
    assert_eq!(
        latency["baseline"].as_array().unwrap().len(),
        21,
        "{latency}"
    );
    assert_eq!(latency["canary"].as_array().unwrap().len(), 21);
    let burn = pulled(&stored, "burn_rate_1h");
    assert!(
        (burn["value"].as_f64().unwrap() - 0.4).abs() <= 0.05,
        "{burn}"
    );
    assert_eq!(
        burn["pulled"]["value_query"],
        r#"max(service:burn_rate:1h{namespace="store",service="shop"})"#
    );
    // Every metric policy voted on the pulled samples.
    for name in ["canary-judge", "thresholds", "error-budget"] {
        let p = policy(&stored, name);
        assert_eq!(p["verdict"], "promote", "{name}: {p}");
    }

    assert_eq!(pull_count(&s, "ok"), 4.0, "four queries, all complete");

    // Argo, degraded canary: rolled back, with the metric named.
    let cart = argo(&s, "requests/argo-cart.json");
    assert_eq!(cart["verdict"], "rollback", "{cart}");
    let reasons = cart["reasons"].to_string();
    assert!(
        reasons.contains("latency_p99_ms") || reasons.contains("error_rate"),
        "{reasons}"
    );

    // Flagger: confirm-promotion proceeds for shop, is held (403) for cart;
    // the inverted rollback gate says "roll back now" (200) for cart only.
    let (status, text) = flagger(&s, "confirm-promotion", "requests/flagger-shop.json");
    assert_eq!(status, 200, "{text}");
    let (status, text) = flagger(&s, "confirm-promotion", "requests/flagger-cart.json");
    assert_eq!(status, 403, "{text}");
    assert!(text.starts_with("rollback"), "{text}");
    let (status, text) = flagger(&s, "rollback", "requests/flagger-cart.json");
    assert_eq!(status, 200, "{text}");
    let (status, text) = flagger(&s, "rollback", "requests/flagger-shop.json");
    assert_eq!(status, 403, "{text}");

    // Preview: what a request would pull, nothing decided or stored.
    let before = s.get_ok("/v1/decisions?limit=1000")["items"]
        .as_array()
        .unwrap()
        .len();
    let body = read_example("requests/argo-cart.json");
    let (status, preview) = s.call("POST", "/v1/sources/preview", Some(body.as_bytes()));
    assert_eq!(status, 200, "{preview}");
    let names: Vec<&str> = preview["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "latency_p99_ms",
            "error_rate",
            "burn_rate_1h",
            "burn_rate_5m"
        ]
    );
    assert_eq!(
        preview["metrics"][0]["canary"].as_array().unwrap().len(),
        21
    );
    assert!(
        preview["metrics"][0]["pulled"]["canary_query"]
            .as_str()
            .unwrap()
            .contains(r#"service="cart",version="v2""#),
        "{preview}"
    );
    // The same from the command line.
    let file = example("requests/argo-cart.json");
    let (code, out) = s.cli(&["pull", "--file", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "ok    latency_p99_ms baseline 21 samples, canary 21 samples (from prometheus)"
        ),
        "{out}"
    );
    assert!(out.contains("ok    burn_rate_1h = "), "{out}");
    let after = s.get_ok("/v1/decisions?limit=1000")["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "a preview stores nothing");

    // The stored input is the whole story: with Prometheus gone, the
    // decision replays as recorded, unchanged.
    drop(prom);
    let (status, replay) = s.json(
        "POST",
        &format!("/v1/decisions/{id}/replay"),
        &json!({"as_recorded": true}),
    );
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["replayed_verdict"], "promote", "{replay}");
    assert_eq!(replay["changed"], false, "{replay}");
}

/// `verdict_metric_pulls_total` for source `prometheus` and `outcome` on /metrics.
fn pull_count(s: &Server, outcome: &str) -> f64 {
    let (status, body) = s.call("GET", "/metrics", None);
    assert_eq!(status, 200);
    let text = body.as_str().expect("text exposition");
    text.lines()
        .filter(|l| l.starts_with("verdict_metric_pulls_total{"))
        .filter(|l| {
            l.contains("source=\"prometheus\"") && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// The example's source at `url` with its two series queries only. (The
/// burn-rate values are left out: error-budget holds by itself on a burn
/// rate without a value, which would hide whether the host's cap works.)
fn series_config(url: &str, timeout_ms: u64) -> String {
    let full =
        example_config(url).replace("timeout_ms = 3000", &format!("timeout_ms = {timeout_ms}"));
    let cut = full.find("# Burn rates").expect("example layout");
    full[..cut].to_string()
}

/// A request every policy but the metric ones would promote: a small,
/// ticketed change (change-risk votes promote) and no pushed metrics.
fn small_change(service: &str) -> Value {
    json!({
        "deployment": {"service": service, "environment": "production", "version": "v2",
                       "previous_version": "v1"},
        "change": {"files_changed": 2, "lines_added": 10, "lines_removed": 3,
                   "ticket": "OPS-9", "commit": "abc123"},
        "args": {"namespace": "store"}
    })
}

/// Held, the gap explained first, every pulled metric empty with a diagnostic.
fn assert_held_for_missing_metrics(d: &Value, cause: &str) {
    assert_eq!(d["verdict"], "hold", "{d}");
    let first = d["reasons"][0]["message"].as_str().unwrap();
    assert!(
        first.contains("from source `prometheus`") && first.contains(cause),
        "{first}"
    );
    for m in d["request"]["metrics"].as_array().unwrap() {
        assert!(m["pulled"]["diagnostic"].is_string(), "{m}");
        assert!(m["canary"].as_array().is_none_or(Vec::is_empty), "{m}");
    }
}

/// The silent source's `timeout_ms` (the example's own).
const SILENT_TIMEOUT_MS: u64 = 3000;

#[test]
fn a_down_or_silent_source_holds_with_a_diagnostic() {
    // Down: nothing listens on the port.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = format!("http://127.0.0.1:{closed}");
    let s = Server::start_with(Options {
        config: Some(series_config(&down, 2000)),
        ..Default::default()
    });
    let d = s.decide(&small_change("shop"));
    assert_held_for_missing_metrics(&d, "cannot reach");
    assert_eq!(pull_count(&s, "gap"), 2.0);
    let (code, out) = s.cli(&["pull", "--service", "shop", "--environment", "production"]);
    assert_eq!(code, 1, "a gap fails `verdict pull`: {out}");
    assert!(out.contains("GAP   latency_p99_ms"), "{out}");
    // Without namespace and previous_version the templates cannot be
    // filled: both are named.
    assert!(
        out.contains(
            "uses {{namespace}} and {{previous_version}}, which this request does not carry"
        ),
        "{out}"
    );
    // The policies' own evidence rules hold: no samples is not a pass.
    let thresholds = policy(&d, "thresholds");
    assert_eq!(thresholds["verdict"], "hold", "{thresholds}");
    assert!(thresholds["reasons"]
        .to_string()
        .contains("not enough evidence"));
    drop(s);

    // Silent: accepts connections (the kernel's backlog), never answers.
    // The timeout bounds the wait, and the answer is the same hold.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let s = Server::start_with(Options {
        config: Some(series_config(&url, SILENT_TIMEOUT_MS)),
        ..Default::default()
    });
    let started = Instant::now();
    let d = s.decide(&small_change("shop"));
    let elapsed = started.elapsed();
    assert_held_for_missing_metrics(&d, &format!("within {SILENT_TIMEOUT_MS} ms"));
    assert_eq!(pull_count(&s, "gap"), 2.0);
    // Four calls (two metrics, baseline and canary each), each waiting out
    // the full timeout T: run concurrently they take T. One metric after
    // the other, or baseline then canary, would take at least 2T, and all
    // four in a row 4T. The bound sits at 1.8T (T = 3 s: 2.4 s of slack for
    // the rest of the decision on a busy machine); a timeout never fires
    // early, so whether it is under 2T depends on nothing but concurrency.
    let timeout = Duration::from_millis(SILENT_TIMEOUT_MS);
    assert!(
        elapsed >= timeout,
        "the decision took {elapsed:?}, less than the source timeout {timeout:?}"
    );
    assert!(
        elapsed < timeout.mul_f64(1.8),
        "the decision took {elapsed:?} with four calls to a silent source each timing out \
         after {timeout:?}: the pulls did not run concurrently"
    );

    // Pushed samples win: nothing is pulled for a metric the caller sent.
    let mut req = small_change("shop");
    let samples: Vec<f64> = (0..20).map(|i| 100.0 + (i % 3) as f64).collect();
    req["metrics"] = json!([{"name": "latency_p99_ms", "baseline": samples, "canary": samples}]);
    let d = s.decide(&req);
    let latency = pulled(&d, "latency_p99_ms");
    assert!(latency.get("pulled").is_none(), "{latency}");
    drop(silent);
}

#[test]
fn a_required_metric_no_policy_checks_still_blocks_a_promote() {
    // `apdex` is read by no built-in, so every policy but change-risk
    // abstains and change-risk promotes the small change: only the host's
    // rule stands between a dead source and a promote.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = |required: bool| {
        format!(
            "[[metric_sources]]\nname = \"prometheus\"\ntype = \"prometheus\"\n\
             url = \"http://127.0.0.1:{closed}\"\n\n[[metric_queries]]\nmetric = \"apdex\"\n\
             source = \"prometheus\"\nvalue = 'apdex{{service=\"{{{{service}}}}\"}}'\n\
             required = {required}\n"
        )
    };
    let s = Server::start_with(Options {
        config: Some(config(true)),
        ..Default::default()
    });
    let d = s.decide(&small_change("shop"));
    assert_held_for_missing_metrics(&d, "cannot reach");
    assert_eq!(policy(&d, "change-risk")["verdict"], "promote", "{d}");
    let first = d["reasons"][0]["message"].as_str().unwrap();
    assert!(
        first.ends_with("it is required, so this cannot promote"),
        "{first}"
    );
    // Replay reaches the same verdict from the stored input alone.
    let id = d["id"].as_str().unwrap();
    let (_, replay) = s.json("POST", &format!("/v1/decisions/{id}/replay"), &json!({}));
    assert_eq!(replay["replayed_verdict"], "hold", "{replay}");
    drop(s);

    // Optional (`required = false`): the gap is reported, the promote stands.
    let s = Server::start_with(Options {
        config: Some(config(false)),
        ..Default::default()
    });
    let d = s.decide(&small_change("shop"));
    assert_eq!(d["verdict"], "promote", "{d}");
    assert!(
        d["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach"),
        "{d}"
    );
}

#[test]
#[cfg_attr(
    verdict_skip_prometheus,
    ignore = "VERDICT_SKIP_PROMETHEUS is set: needs Debian's prometheus package"
)]
fn a_query_that_prometheus_rejects_is_a_hold_naming_the_error() {
    let (prometheus, promtool) = tools();
    let prom = Prometheus::start(&prometheus, &promtool);
    let config = format!(
        "[[metric_sources]]\nname = \"prometheus\"\ntype = \"prometheus\"\nurl = \"{}\"\n\n\
         [[metric_queries]]\nmetric = \"error_rate\"\nsource = \"prometheus\"\n\
         baseline = 'rate(oops[1m'\ncanary = 'service:request_error_ratio:1m{{service=\"{{{{service}}}}\"}}'\n\n\
         [[metric_queries]]\nmetric = \"burn_rate_1h\"\nsource = \"prometheus\"\n\
         value = 'service:burn_rate:1h'\n",
        prom.url
    );
    let s = Server::start_with(Options {
        config: Some(config),
        ..Default::default()
    });
    let d = s.decide(&small_change("shop"));
    assert_eq!(d["verdict"], "hold", "{d}");
    let e = pulled(&d, "error_rate");
    let diag = e["pulled"]["diagnostic"].as_str().unwrap();
    assert!(
        diag.starts_with("baseline: the query failed: bad_data"),
        "{diag}"
    );
    // The canary side still arrived: one series per version of shop.
    assert!(!e["canary"].as_array().unwrap().is_empty(), "{e}");
    let b = pulled(&d, "burn_rate_1h");
    let diag = b["pulled"]["diagnostic"].as_str().unwrap();
    assert!(
        diag.contains("4 series where one number was expected"),
        "{diag}"
    );
}

/// The example config pointed at `url`, trusting the CA in `ca_file`.
fn https_config(url: &str, ca_file: &Path) -> String {
    let text = example_config(url);
    let line = format!("url = \"{url}\"");
    text.replacen(
        &line,
        &format!("{line}\ntls = {{ ca_file = \"{}\" }}", ca_file.display()),
        1,
    )
}

#[test]
#[cfg_attr(
    verdict_skip_prometheus,
    ignore = "VERDICT_SKIP_PROMETHEUS is set: needs Debian's prometheus package"
)]
fn a_prometheus_over_https_is_a_metric_source_and_a_wrong_ca_names_the_host() {
    let (prometheus, promtool) = tools();
    let ca = TestCa::new("prometheus CA");
    let prom = Prometheus::start_tls(&prometheus, &promtool, Some(&ca));
    assert!(prom.url.starts_with("https://"), "{}", prom.url);

    // Trusting the CA: the pulled series decide, as over plain HTTP.
    let s = Server::start_with(Options {
        config: Some(https_config(&prom.url, &ca.file)),
        ..Default::default()
    });
    let shop = argo(&s, "requests/argo-shop.json");
    assert_eq!(shop["verdict"], "promote", "{shop}");
    let id = shop["decision_id"].as_str().unwrap();
    let stored = s.get_ok(&format!("/v1/decisions/{id}"));
    let latency = pulled(&stored, "latency_p99_ms");
    assert!(latency["pulled"].get("diagnostic").is_none(), "{latency}");
    assert_eq!(latency["canary"].as_array().unwrap().len(), 21);
    assert_eq!(
        pull_count(&s, "ok"),
        4.0,
        "four queries over https, all complete"
    );
    drop(s);

    // Trusting another CA: held, and the diagnostic says which host and why.
    let other = TestCa::new("not prometheus's CA");
    let s = Server::start_with(Options {
        config: Some(https_config(&prom.url, &other.file)),
        ..Default::default()
    });
    let d = s.decide(&small_change("shop"));
    assert_held_for_missing_metrics(&d, "cannot reach");
    let host = prom.url.trim_start_matches("https://");
    let diagnostic = d["request"]["metrics"][0]["pulled"]["diagnostic"].to_string();
    assert!(
        diagnostic.contains(&format!("TLS with `{host}` failed"))
            && diagnostic.contains("not signed by a trusted CA"),
        "{diagnostic}"
    );
}
