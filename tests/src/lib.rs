//! End-to-end test harness: start the real `verdict` binary on a loopback
//! port with a temporary data dir, talk to it over real HTTP, stop it with
//! real signals. The tests themselves live in `tests/tests/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod pki;
pub mod postgres;

/// Path of the `verdict` binary, built once per test process so the tests
/// always run the current sources (a test crate cannot depend on another
/// package's binary directly).
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "verdict", "--bin", "verdict"])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the verdict binary failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        target.join("debug").join("verdict")
    })
}

/// Options for one server process.
#[derive(Default)]
pub struct Options {
    /// Reuse this data dir (for restart tests); default: a fresh temp dir.
    pub data_dir: Option<PathBuf>,
    /// Contents of a `verdict.toml` to pass with `--config`.
    pub config: Option<String>,
    pub env: Vec<(String, String)>,
    /// Extra `verdict serve` arguments (e.g. `--log-format json`).
    pub args: Vec<String>,
    /// Keep the server's stderr (its logs) for [`Server::stderr_lines`]
    /// instead of passing it through.
    pub capture_stderr: bool,
    /// Start the server with this open-files limit (soft and hard, so it
    /// cannot raise it), through the shell's `ulimit -n`.
    pub open_files: Option<u64>,
    /// The server speaks HTTPS with a certificate from this CA (PEM): the
    /// harness's calls trust it.
    pub ca_pem: Option<String>,
}

/// A running `verdict serve` child process.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    /// Keeps the temporary data dir alive for the server's lifetime.
    _temp: Option<tempfile::TempDir>,
    pub token: Option<String>,
    /// Lines the server wrote to stderr so far, when captured.
    stderr: Option<Arc<Mutex<Vec<String>>>>,
    /// The CA the server's certificate is signed by (HTTPS servers).
    pub ca_pem: Option<String>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Server {
        let (data_dir, temp) = match opts.data_dir {
            Some(d) => (d, None),
            None => {
                let t = tempfile::tempdir().expect("temp dir");
                (t.path().join("data"), Some(t))
            }
        };
        std::fs::create_dir_all(&data_dir).unwrap();
        let mut cmd = match opts.open_files {
            None => Command::new(binary()),
            Some(n) => {
                // `exec` keeps the pid, so signals reach the server.
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(binary());
                c
            }
        };
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .env_remove("VERDICT_CONFIG")
            .env_remove("VERDICT_TOKENS")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(config) = &opts.config {
            let path = data_dir.with_extension("toml");
            std::fs::write(&path, config).unwrap();
            cmd.arg("--config").arg(path);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        cmd.args(&opts.args);
        if opts.capture_stderr {
            cmd.stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn verdict serve");
        let stderr = child.stderr.take().map(|err| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            // Drained continuously so the server never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
            lines
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("verdict listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(b) => b,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // Its stdout closed before it listened: say how it ended.
                let deadline = Instant::now() + Duration::from_secs(10);
                let status = loop {
                    match child.try_wait() {
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Ok(status) => break status,
                        Err(_) => break None,
                    }
                };
                let _ = child.kill();
                panic!("verdict serve ended before it listened: {status:?}");
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("verdict serve did not start within 120 s");
            }
        };
        Server {
            child: Some(child),
            base,
            data_dir,
            _temp: temp,
            token: None,
            stderr,
            ca_pem: opts.ca_pem,
        }
    }

    /// What the server logged so far (needs `Options::capture_stderr`).
    pub fn stderr_lines(&self) -> Vec<String> {
        let lines = self.stderr.as_ref().expect("start with capture_stderr");
        lines.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// kill -9: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("verdict serve did not exit within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Take the data dir (and its temp owner) so a new server can reuse it.
    pub fn into_data_dir(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        self.kill9();
        (self.data_dir.clone(), self._temp.take())
    }

    /// One HTTP call; returns status and JSON body (or the text as a string).
    pub fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Value) {
        self.call_with(
            method,
            path,
            body,
            self.token.as_deref(),
            "application/json",
        )
    }

    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&str>,
        content_type: &str,
    ) -> (u16, Value) {
        match &self.ca_pem {
            None => call(&self.base, method, path, body, token, content_type),
            Some(ca) => call_via(
                &pki::agent(ca, None),
                &self.base,
                method,
                path,
                body,
                token,
                content_type,
            )
            .unwrap_or_else(|e| panic!("{method} {}{path}: {e}", self.base)),
        }
    }

    pub fn json(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        self.call(method, path, Some(body.to_string().as_bytes()))
    }

    /// Run the CLI against this server; returns (exit code, stdout).
    pub fn cli(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(binary())
            .args(args)
            .env("VERDICT_SERVER", &self.base)
            .env_remove("VERDICT_TOKEN")
            .output()
            .expect("run verdict");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }
}

/// A component committed under `policies/dist/` (`thresholds`,
/// `test/misbehave`, …): what the binary embeds, or a test policy built
/// beside them by `make policies`.
pub fn dist_wasm(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../policies/dist/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read `{path}`: {e}"))
}

/// The adversarial test policy (`policies/adversarial/misbehave`), whose
/// binding settings choose what it does (vote, loop, trap, …).
pub fn misbehave_wasm() -> Vec<u8> {
    dist_wasm("test/misbehave")
}

impl Server {
    /// Upload component `bytes` as policy `name`; returns status and body.
    pub fn put_policy(&self, name: &str, bytes: &[u8]) -> (u16, Value) {
        self.call_with(
            "PUT",
            &format!("/v1/policies/{name}"),
            Some(bytes),
            None,
            "application/wasm",
        )
    }

    /// POST a decision and insist it was stored (201); returns the record.
    #[track_caller]
    pub fn decide(&self, request: &Value) -> Value {
        let (status, body) = self.json("POST", "/v1/decisions", request);
        assert_eq!(status, 201, "POST /v1/decisions: {body}");
        body
    }

    /// GET that must answer 200; returns the body.
    #[track_caller]
    pub fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Run the CLI against this server with extra environment; returns
    /// (exit code, stdout, stderr) separately.
    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .env("VERDICT_SERVER", &self.base)
            .env_remove("VERDICT_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run verdict");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A plain HTTP call with ureq (no retries, status codes are not errors).
/// Panics on a transport error (connection refused, reset …).
pub fn call(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    token: Option<&str>,
    content_type: &str,
) -> (u16, Value) {
    try_call(base, method, path, body, token, content_type)
        .unwrap_or_else(|e| panic!("{method} {base}{path}: {e}"))
}

/// Like [`call`], but a transport error (e.g. the server was killed
/// mid-request) is an `Err` instead of a panic.
pub fn try_call(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    token: Option<&str>,
    content_type: &str,
) -> Result<(u16, Value), String> {
    // A policy upload is answered after its compile: tens of seconds for a
    // Python or JavaScript component on a busy machine.
    let timeout = if method == "PUT" && path.starts_with("/v1/policies/") {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(60)
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    call_via(&agent, base, method, path, body, token, content_type)
}

/// Like [`try_call`], through `agent` (e.g. [`pki::agent`] for HTTPS).
pub fn call_via(
    agent: &ureq::Agent,
    base: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    token: Option<&str>,
    content_type: &str,
) -> Result<(u16, Value), String> {
    let url = format!("{base}{path}");
    let auth = token.map(|t| format!("Bearer {t}"));
    macro_rules! send {
        ($req:expr) => {{
            let mut r = $req;
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r
        }};
    }
    let result = match method {
        "GET" => send!(agent.get(&url)).call(),
        "DELETE" => send!(agent.delete(&url)).call(),
        "PUT" => send!(agent.put(&url))
            .header("Content-Type", content_type)
            .send(body.unwrap_or_default()),
        _ => send!(agent.post(&url))
            .header("Content-Type", content_type)
            .send(body.unwrap_or_default()),
    };
    let mut resp = result.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, value))
}

/// Send `head` (request line and headers, without the blank line) and
/// `body` over a fresh TCP connection exactly as given — no URL
/// normalisation, so `..` and odd methods reach the server untouched.
/// Returns the status and the body (JSON if it parses, else a string).
pub fn raw(base: &str, head: &str, body: &[u8]) -> (u16, Value) {
    use std::io::Write;
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = Vec::new();
    req.extend_from_slice(head.trim_end().as_bytes());
    req.extend_from_slice(
        format!(
            "\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    req.extend_from_slice(body);
    s.write_all(&req).expect("write request");
    answer_of(&mut s, head)
}

/// Write `request` (bytes exactly as given: no `Host` added) over a fresh
/// TCP connection, read until the server closes it (or 60 s), and return
/// the status and the body (JSON if it parses, else a string).
pub fn exchange_exact(base: &str, request: &[u8]) -> (u16, Value) {
    use std::io::Write;
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // The server may answer (and close) before reading a body it refuses.
    let _ = s.write_all(request);
    answer_of(&mut s, "the request")
}

/// Read `s` to its end and parse it as one HTTP answer: the status and the
/// body (de-chunked; JSON if it parses, else a string).
fn answer_of(s: &mut std::net::TcpStream, what: &str) -> (u16, Value) {
    use std::io::Read;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in answer to `{what}`: {text:?}"));
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, value)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Assert that `answer` is an error with `status` and the JSON error body
/// `{"error": {"code": code, "message": <non-empty>}}`; returns the message.
#[track_caller]
pub fn assert_error(answer: &(u16, Value), status: u16, code: &str) -> String {
    let (got, body) = answer;
    assert_eq!(*got, status, "expected {status} {code}, got {got}: {body}");
    let err = &body["error"];
    assert_eq!(err["code"], code, "error code in {body}");
    let message = err["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error.message must be a string: {body}"));
    assert!(!message.is_empty(), "empty error message: {body}");
    message.to_string()
}

/// A tool from Debian's `prometheus` package (`prometheus`, `promtool`), on
/// PATH or in /usr/bin. A missing tool fails the test with how to install
/// it; there is no silent pass. To go without the package, build the tests
/// with `VERDICT_SKIP_PROMETHEUS=1`: every test that needs it carries
/// `#[cfg_attr(verdict_skip_prometheus, ignore = ...)]` (see `tests/build.rs`),
/// so libtest reports it as ignored and never reaches this.
#[track_caller]
pub fn prometheus_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "this test needs `{name}` from Debian's `prometheus` package: `apt-get install \
                 prometheus` (`make test` does it when run as root), or build the tests with \
                 VERDICT_SKIP_PROMETHEUS=1 to report the tests that need it as ignored"
            )
        })
}

/// The per-policy result for `binding` in a decision record (or in a
/// replay's `replayed`): anything with a `policies` array.
#[track_caller]
pub fn policy_result<'a>(record: &'a Value, binding: &str) -> &'a Value {
    record["policies"]
        .as_array()
        .unwrap_or_else(|| panic!("no `policies` array in {record}"))
        .iter()
        .find(|p| p["binding"] == binding)
        .unwrap_or_else(|| panic!("no policy result for binding `{binding}` in {record}"))
}

/// A request the built-ins promote: `thresholds` sees a healthy error rate,
/// `canary-judge` sees canary and baseline identical (a pass), the others
/// abstain (no burn rates, no windows configured, no change context).
pub fn healthy_request(service: &str, environment: &str) -> Value {
    let samples: Vec<f64> = (0..20).map(|i| 0.001 + 0.0001 * (i % 5) as f64).collect();
    serde_json::json!({
        "deployment": {"service": service, "environment": environment, "version": "v2", "previous_version": "v1"},
        "metrics": [
            {"name": "error_rate", "baseline": samples, "canary": samples},
        ]
    })
}

/// A request the built-in `thresholds` policy rolls back (error rate 5 %).
pub fn failing_request(service: &str, environment: &str) -> Value {
    serde_json::json!({
        "deployment": {"service": service, "environment": environment, "version": "v3"},
        "metrics": [
            {"name": "error_rate", "canary": [0.05, 0.06, 0.05, 0.04, 0.05, 0.06]}
        ]
    })
}

impl Server {
    /// Waits for the server to exit on its own (not asked to stop) and
    /// returns its status; panics if it is still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let c = self.child.as_mut().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "verdict serve still running {limit:?} after it should have exited"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Assert an Argo door answer is a hold that decided nothing (no
/// `decision_id`): how the door reports every refusal and error.
#[track_caller]
pub fn assert_argo_hold(answer: &Value) {
    assert_eq!(
        (&answer["verdict"], &answer["decision_id"]),
        (&Value::from("hold"), &Value::Null),
        "{answer}"
    );
}
