//! The CLI's HTTP client commands: `decide`, `audit`, `replay`,
//! `policy push|list`. They talk to a running server (`--server`,
//! `VERDICT_SERVER`) with an optional bearer token (`VERDICT_TOKEN`).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use crate::domain::{Decision, DecisionRequest, Deployment, Metric, Verdict};

#[derive(Debug, clap::Args, Clone)]
pub struct Server {
    /// Base URL of the Verdict server.
    #[arg(
        long,
        env = "VERDICT_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Bearer token (sent as `Authorization: Bearer …`).
    #[arg(long, env = "VERDICT_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// For an https:// server: a PEM bundle of CAs to trust instead of the
    /// system's (a private CA).
    #[arg(long, env = "VERDICT_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
}

/// The answer of one API call: status and parsed JSON body.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Server {
    fn agent(&self, timeout: Duration) -> anyhow::Result<ureq::Agent> {
        let tls = crate::tls::ClientTls {
            ca_file: self.ca_file.clone(),
            system_roots: None,
        }
        .ureq_config(&self.server)?;
        Ok(ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .tls_config(tls)
            .build()
            .into())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.trim_end_matches('/'))
    }

    /// Send a request; `Err` only for transport problems.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<Answer> {
        let url = self.url(path);
        // A policy upload is answered once the server has compiled it: tens
        // of seconds for a Python or JavaScript component.
        let timeout = if method == "PUT" && path.starts_with("/v1/policies/") {
            Duration::from_secs(600)
        } else {
            Duration::from_secs(60)
        };
        let agent = self.agent(timeout)?;
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("GET", _) => with_auth(agent.get(&url), &auth).call(),
            ("DELETE", _) => with_auth(agent.delete(&url), &auth).call(),
            (m, body) => {
                let (ctype, bytes) = body.unwrap_or(("application/json", b"{}".to_vec()));
                let req = if m == "PUT" {
                    agent.put(&url)
                } else {
                    agent.post(&url)
                };
                with_auth(req, &auth)
                    .header("Content-Type", ctype)
                    .send(&bytes[..])
            }
        };
        let mut resp = result.map_err(|e| {
            anyhow!(
                "cannot reach the Verdict server at {url}: {}",
                crate::tls::explain(&url, &e)
            )
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .context("cannot read the server's answer")?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    /// Like [`Server::call`], but a non-2xx answer is an error carrying the
    /// server's own message.
    pub fn ok(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<Value> {
        let a = self.call(method, path, body)?;
        if (200..300).contains(&a.status) {
            return Ok(a.body);
        }
        let msg = a.body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| a.body.to_string());
        bail!("server answered {}: {msg}", a.status)
    }
}

fn with_auth<B>(req: ureq::RequestBuilder<B>, auth: &Option<String>) -> ureq::RequestBuilder<B> {
    match auth {
        Some(a) => req.header("Authorization", a),
        None => req,
    }
}

#[derive(Debug, clap::Args)]
pub struct DecideArgs {
    /// A request body as JSON (the shape of POST /v1/decisions); `-` for stdin.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long)]
    pub environment: Option<String>,
    #[arg(long = "deploy-version")]
    pub version: Option<String>,
    /// A single-valued metric, `name=value` (repeatable), e.g. `burn_rate_1h=0.4`.
    #[arg(long = "value")]
    pub values: Vec<String>,
    /// A change label (repeatable), e.g. `hotfix`.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Print the stored decision as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// `verdict decide`: returns the verdict (the caller maps it to the exit code).
pub fn decide(server: &Server, args: DecideArgs) -> anyhow::Result<Verdict> {
    let req = build_request(&args)?;
    let body = serde_json::to_vec(&req)?;
    let v = server.ok("POST", "/v1/decisions", Some(("application/json", body)))?;
    let decision: Decision =
        serde_json::from_value(v.clone()).context("unexpected answer from the server")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_decision(&decision);
    }
    Ok(decision.verdict)
}

/// `verdict pull`: what the metric sources would add to this request.
/// Returns whether every pulled metric arrived complete.
pub fn pull(server: &Server, args: DecideArgs) -> anyhow::Result<bool> {
    let req = build_request(&args)?;
    let body = serde_json::to_vec(&req)?;
    let v = server.ok(
        "POST",
        "/v1/sources/preview",
        Some(("application/json", body)),
    )?;
    let metrics: Vec<Metric> = serde_json::from_value(v["metrics"].clone())
        .context("unexpected answer from the server")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if metrics.is_empty() {
        println!(
            "nothing to pull: no metric query matches this deployment, or every metric was pushed"
        );
    }
    let mut complete = true;
    for m in &metrics {
        let p = m.pulled.as_ref();
        let diagnostic = p.and_then(|p| p.diagnostic.as_deref());
        complete &= diagnostic.is_none();
        if args.json {
            continue;
        }
        let got = match m.value {
            Some(v) => format!("= {v}"),
            None => format!(
                "baseline {} samples, canary {} samples",
                m.baseline.len(),
                m.canary.len()
            ),
        };
        let source = p.map(|p| p.source.as_str()).unwrap_or("?");
        match diagnostic {
            None => println!("ok    {} {got} (from {source})", m.name),
            Some(d) => println!("GAP   {} {got} (from {source}): {d}", m.name),
        }
    }
    Ok(complete)
}

fn build_request(args: &DecideArgs) -> anyhow::Result<DecisionRequest> {
    let mut req = match &args.file {
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read `{}`", path.display()))?
            };
            serde_json::from_str::<DecisionRequest>(&text)
                .with_context(|| format!("`{}` is not a decision request", path.display()))?
        }
        None => DecisionRequest {
            deployment: Deployment {
                service: args
                    .service
                    .clone()
                    .ok_or_else(|| anyhow!("pass --file or --service"))?,
                environment: args
                    .environment
                    .clone()
                    .ok_or_else(|| anyhow!("pass --environment with --service"))?,
                version: args.version.clone().unwrap_or_default(),
                ..Default::default()
            },
            change: Default::default(),
            metrics: Vec::new(),
            time: None,
            idempotency_key: None,
            args: Default::default(),
        },
    };
    for v in &args.values {
        let (name, value) = v
            .split_once('=')
            .ok_or_else(|| anyhow!("--value `{v}` must be `name=number`"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| anyhow!("--value `{v}`: `{value}` is not a number"))?;
        req.metrics.push(Metric {
            name: name.to_string(),
            unit: None,
            baseline: Vec::new(),
            canary: Vec::new(),
            value: Some(value),
            pulled: None,
        });
    }
    req.change.labels.extend(args.labels.iter().cloned());
    Ok(req)
}

pub fn print_decision(d: &Decision) {
    println!("verdict: {}  ({}, seq {})", d.verdict, d.id, d.seq);
    for r in &d.reasons {
        match &r.policy {
            Some(p) => println!("  - [{p}] {}", r.message),
            None => println!("  - {}", r.message),
        }
    }
    let summary: Vec<String> = d
        .policies
        .iter()
        .map(|p| {
            let what = match (&p.error, p.verdict, &p.abstained) {
                (Some(e), _, _) => format!("error ({})", e.kind.as_str()),
                (None, Some(v), _) => v.to_string(),
                _ => "abstained".into(),
            };
            let shadow = if p.mode == crate::domain::Mode::Shadow {
                " [shadow]"
            } else {
                ""
            };
            format!("{} {what}{shadow}", p.binding)
        })
        .collect();
    println!("policies: {}", summary.join(" · "));
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List stored decisions, newest first.
    Query {
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        environment: Option<String>,
        #[arg(long)]
        verdict: Option<String>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Walk the hash chain; exit 1 if a link is broken. With
    /// `--checkpoint`, also prove that the chain still holds exactly the
    /// prefix a signed checkpoint saved earlier describes (which a rewrite
    /// with recomputed hashes, or a cut tail, cannot fake).
    Verify {
        /// A signed checkpoint saved earlier from `GET /v1/audit/checkpoint`.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The verifier key (`name+keyid+base64`, from `GET /v1/audit/key`
        /// when the checkpoint was saved), or a file holding it. Without it
        /// the key is asked of the server being checked, which only proves
        /// that the server's current key signed the checkpoint.
        #[arg(long, requires = "checkpoint")]
        key: Option<String>,
        /// Verify a file written by `verdict audit export` instead of asking
        /// the server: offline, each record re-hashed from its content.
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// Every decision as JSON lines, oldest first. With `--out FILE`, the
    /// server's latest signed checkpoint is written beside it as
    /// `FILE.checkpoint` (taken before the records, so the export covers
    /// it), for `verdict audit verify --export FILE --checkpoint …`.
    Export {
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

use crate::domain::percent_encode as encode;

pub fn audit(server: &Server, cmd: AuditCommand) -> anyhow::Result<bool> {
    match cmd {
        AuditCommand::Query {
            service,
            environment,
            verdict,
            since,
            until,
            limit,
            json,
        } => {
            let mut q = vec![format!("limit={limit}")];
            for (k, v) in [
                ("service", service),
                ("environment", environment),
                ("verdict", verdict),
                ("since", since),
                ("until", until),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", encode(&v)));
                }
            }
            let page = server.ok("GET", &format!("/v1/decisions?{}", q.join("&")), None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(true);
            }
            for item in page["items"].as_array().into_iter().flatten() {
                let d: Decision = serde_json::from_value(item.clone())?;
                println!(
                    "{}  {}  {:<8}  {}/{}  {}",
                    d.id,
                    d.decided_at,
                    d.verdict.as_str(),
                    d.request.deployment.service,
                    d.request.deployment.environment,
                    d.reasons.first().map(|r| r.message.as_str()).unwrap_or("")
                );
            }
            Ok(true)
        }
        AuditCommand::Verify {
            checkpoint,
            key,
            export,
        } => {
            let exported = export.as_deref().map(read_export).transpose()?;
            let mut report = match &exported {
                Some(decisions) => {
                    serde_json::to_value(crate::store::verify_exported(decisions.iter().cloned())?)?
                }
                None => server.ok("GET", "/v1/audit/verify", None)?,
            };
            let mut ok = report["ok"] == Value::Bool(true);
            if let Some(path) = checkpoint {
                let chain = Chain {
                    server,
                    exported: exported.as_deref(),
                    report: &report,
                };
                let proof = match chain.check_checkpoint(&path, key.as_deref()) {
                    Ok(cp) => {
                        serde_json::json!({"ok": true, "origin": cp.origin, "size": cp.size, "hash": cp.hash})
                    }
                    Err(problem) => {
                        ok = false;
                        serde_json::json!({"ok": false, "problem": format!("{problem:#}")})
                    }
                };
                report["checkpoint"] = proof;
            }
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ok)
        }
        AuditCommand::Export { out } => {
            if let Some(p) = &out {
                let note = server.ok("GET", "/v1/audit/checkpoint", None)?;
                let path = checkpoint_beside(p);
                std::fs::write(&path, note.as_str().unwrap_or_default())
                    .with_context(|| format!("cannot write `{}`", path.display()))?;
            }
            let mut w: Box<dyn std::io::Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("cannot create `{}`", p.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            // Newest-first pages, reversed at the end: export is oldest first.
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = "/v1/decisions?limit=1000".to_string();
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={}", encode(c)));
                }
                let page = server.ok("GET", &path, None)?;
                all.extend(page["items"].as_array().cloned().unwrap_or_default());
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
            for item in all.iter().rev() {
                writeln!(w, "{}", serde_json::to_string(item)?)?;
            }
            w.flush()?;
            Ok(true)
        }
    }
}

/// `FILE.checkpoint` beside an export `FILE`.
fn checkpoint_beside(export: &std::path::Path) -> PathBuf {
    let mut name = export.as_os_str().to_owned();
    name.push(".checkpoint");
    PathBuf::from(name)
}

/// The decisions of an export file, oldest first.
fn read_export(path: &std::path::Path) -> anyhow::Result<Vec<Decision>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the export `{}`", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| {
                format!(
                    "`{}` line {}: not an exported decision",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

/// The chain a checkpoint is checked against: a server's, or an export's.
struct Chain<'a> {
    server: &'a Server,
    /// Set when verifying an export offline.
    exported: Option<&'a [Decision]>,
    /// Its `verify` report.
    report: &'a Value,
}

impl Chain<'_> {
    /// The checkpoint at `path`, verified with `key` (or the server's key),
    /// if the chain still holds exactly its prefix: at least `size`
    /// records verify, and record `size` has the checkpoint's hash (each
    /// hash covers the one before it, so the whole prefix is the same).
    /// The error names the first difference.
    fn check_checkpoint(
        &self,
        path: &std::path::Path,
        key: Option<&str>,
    ) -> anyhow::Result<crate::checkpoint::Checkpoint> {
        let note = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the checkpoint `{}`", path.display()))?;
        let key = match key {
            Some(k) if std::path::Path::new(k).is_file() => std::fs::read_to_string(k)
                .with_context(|| format!("cannot read the verifier key `{k}`"))?,
            Some(k) => k.to_string(),
            None if self.exported.is_some() => {
                bail!("verifying an export offline needs the verifier key: pass --key")
            }
            None => {
                eprintln!(
                    "warning: no --key: using the key the server reports, which proves only \
                     that the server's current key signed this checkpoint"
                );
                self.server
                    .ok("GET", "/v1/audit/key", None)?
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            }
        };
        let verifier: crate::checkpoint::CheckpointVerifier = key.trim().parse()?;
        let cp = verifier.verify(&note)?;
        if cp.size == 0 {
            return Ok(cp);
        }
        let report = self.report;
        let checked = report["checked"].as_u64().unwrap_or(0);
        if checked < cp.size {
            if report["ok"] == Value::Bool(true) {
                bail!(
                    "the chain has {checked} records but the checkpoint covers {}: records \
                     were removed from its end",
                    cp.size
                );
            }
            bail!(
                "the chain is broken at record {} ({}), inside the {} records the checkpoint \
                 covers",
                report["broken"]["seq"],
                report["broken"]["problem"].as_str().unwrap_or("?"),
                cp.size
            );
        }
        let id = format!("dec-{:012}", cp.size);
        let hash = match self.exported {
            Some(decisions) => decisions[(cp.size - 1) as usize].hash.clone(),
            None => self
                .server
                .ok("GET", &format!("/v1/decisions/{id}"), None)?["hash"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        if hash != cp.hash {
            bail!(
                "record {} ({id}) has hash `{hash}`, but the checkpoint says `{}`: the chain \
                 was rewritten up to there (records changed and re-hashed, or removed and the \
                 rest re-chained)",
                cp.size,
                cp.hash
            );
        }
        Ok(cp)
    }
}

/// `verdict replay <id>`.
pub fn replay(server: &Server, id: &str, as_recorded: bool) -> anyhow::Result<bool> {
    let body = serde_json::to_vec(&serde_json::json!({"as_recorded": as_recorded}))?;
    let report = server.ok(
        "POST",
        &format!("/v1/decisions/{}/replay", encode(id)),
        Some(("application/json", body)),
    )?;
    println!(
        "{}: recorded {}, replayed {}{}",
        id,
        report["original_verdict"].as_str().unwrap_or("?"),
        report["replayed_verdict"].as_str().unwrap_or("?"),
        if report["changed"] == Value::Bool(true) {
            " (changed)"
        } else {
            " (unchanged)"
        }
    );
    for d in report["diff"].as_array().into_iter().flatten() {
        println!(
            "  {}: {} -> {}",
            d["binding"].as_str().unwrap_or("?"),
            d["before"].as_str().unwrap_or("(none)"),
            d["after"].as_str().unwrap_or("(none)")
        );
    }
    Ok(report["changed"] != Value::Bool(true))
}

/// `verdict policy push <name> <component>`.
pub fn push(server: &Server, name: &str, component: &std::path::Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(component)
        .with_context(|| format!("cannot read `{}`", component.display()))?;
    eprintln!(
        "uploading {} ({:.1} MB); the server validates and compiles it before answering \
         (a Python or JavaScript policy takes tens of seconds)",
        component.display(),
        bytes.len() as f64 / 1e6
    );
    let v = server.ok(
        "PUT",
        &format!("/v1/policies/{}", encode(name)),
        Some(("application/wasm", bytes)),
    )?;
    println!(
        "pushed {} {} ({} bytes) {}",
        v["name"].as_str().unwrap_or(name),
        v["version"].as_str().unwrap_or(""),
        v["size"],
        v["digest"].as_str().unwrap_or("")
    );
    Ok(())
}

/// `verdict policy list`.
pub fn list(server: &Server) -> anyhow::Result<()> {
    let v = server.ok("GET", "/v1/policies", None)?;
    for p in v["items"].as_array().into_iter().flatten() {
        println!(
            "{:<16} {:<8} {}  {}",
            p["name"].as_str().unwrap_or(""),
            p["version"].as_str().unwrap_or(""),
            p["digest"].as_str().unwrap_or(""),
            p["info"]["summary"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
