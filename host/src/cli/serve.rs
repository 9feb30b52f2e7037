//! `verdict serve`: open the data dir, restore the active set, serve HTTP
//! (HTTPS with `--tls-cert`/`--tls-key`) until SIGTERM/SIGINT, finish
//! in-flight requests (within `shutdown_timeout_ms`), flush, exit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::engine::{Compiler, WorkerLimits};
use crate::http::listener::{self, Limits};
use crate::http::{self, Ctx};
use crate::service::{App, ServiceError};
use crate::telemetry::{self, LogFormat};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VERDICT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where decisions, policies and the compiled-artifact cache live.
    #[arg(long, env = "VERDICT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Store decisions in PostgreSQL (`postgres://user:password@host:port/db`)
    /// instead of the embedded store in the data dir: replicas sharing one
    /// database share one audit chain.
    #[arg(long, env = "VERDICT_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// TOML config file (see README); flags and env override it.
    #[arg(long, env = "VERDICT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Bearer tokens as `name:sha256hex:role+role,…` (adds to the config file's).
    #[arg(long, env = "VERDICT_TOKENS", hide_env_values = true)]
    pub tokens: Option<String>,
    /// The ed25519 key that signs audit checkpoints (default
    /// `<data_dir>/checkpoint.key`, generated if absent).
    #[arg(long, env = "VERDICT_CHECKPOINT_KEY")]
    pub checkpoint_key: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (re-read when it changes).
    #[arg(long, env = "VERDICT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, env = "VERDICT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Accept client certificates signed by this PEM CA (mapped to roles by
    /// `[[client_certs]]` in the config file).
    #[arg(long, env = "VERDICT_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, env = "VERDICT_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl ServeArgs {
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::read(self.config.as_deref())?;
        if let Some(l) = self.listen {
            config.listen = l;
        }
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        // An empty `VERDICT_STORE=` means "not set" (the embedded store),
        // as an unset variable does.
        if let Some(url) = self.store.as_ref().filter(|u| !u.is_empty()) {
            config.store = Some(url.clone());
        }
        if let Some(k) = &self.checkpoint_key {
            config.checkpoint_key = Some(k.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls_cert = Some(cert.clone());
            config.tls_key = Some(key.clone());
        }
        if let Some(ca) = &self.tls_client_ca {
            config.tls_client_ca = Some(ca.clone());
        }
        if let Some(t) = &self.tokens {
            config.tokens.extend(Config::tokens_from_env(t)?);
        }
        config.validate()?;
        Ok(config)
    }
}

/// How long shutdown waits for telemetry to reach the collector.
const TELEMETRY_FLUSH: Duration = Duration::from_secs(5);

/// How long the exit waits for blocking work still running (an evaluation
/// whose request was cut at the shutdown deadline ends at its own
/// deadline; the store is closed before this).
const BLOCKING_GRACE: Duration = Duration::from_secs(10);

pub fn log_format(s: &str) -> anyhow::Result<LogFormat> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => anyhow::bail!("unknown log format `{other}`: use `text` or `json`"),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let telemetry = telemetry::init(log_format(&args.log_format)?);
    let result = (|| {
        let config = args.config()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let result = runtime.block_on(serve(config));
        runtime.shutdown_timeout(BLOCKING_GRACE);
        result
    })();
    telemetry.shutdown(TELEMETRY_FLUSH);
    result
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let mut limits = Limits::new(&config);
    match listener::raise_open_files_limit() {
        Ok(files) => {
            if files.now > files.was {
                tracing::info!(
                    "raised the open-files limit from {} to {}",
                    files.was,
                    files.now
                );
            }
            if limits.fit_open_files(files.now) {
                tracing::warn!(
                    "`max_connections` lowered to {} to fit the open-files limit of {}",
                    limits.max_connections,
                    files.now
                );
            }
        }
        Err(e) => tracing::warn!("cannot read or raise the open-files limit: {e}"),
    }
    // Certificate problems are start-up errors, before anything listens.
    let tls = match config.tls_files() {
        None => None,
        Some(files) => Some(
            crate::tls::ServerTls::load(&files)
                .context("cannot set up HTTPS")?
                .config,
        ),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on `{}`", config.listen))?;
    let addr = listener.local_addr()?;
    let c = config.clone();
    // Uploads are compiled in a child process under limits: re-run this
    // very executable (through /proc, so a binary replaced on disk during
    // an upgrade still runs the same code as this server).
    let exe = match std::path::Path::new("/proc/self/exe") {
        p if p.exists() => p.to_path_buf(),
        _ => std::env::current_exe().context("cannot find the verdict executable")?,
    };
    let compiler = Compiler::Worker(WorkerLimits {
        exe,
        memory_bytes: config.compile_memory_bytes,
        timeout: Duration::from_millis(config.compile_timeout_ms),
        memory_bytes_per_mib: config.compile_memory_bytes_per_mib,
        timeout_per_mib: Duration::from_millis(config.compile_timeout_ms_per_mib),
    });
    let app = match tokio::task::spawn_blocking(move || App::open_with(&c, compiler)).await? {
        Ok(app) => app,
        // Not the data dir's fault: say only what to fix in the config
        // (or in the database the config names).
        Err(e @ (ServiceError::Config(_) | ServiceError::StoreOpen(_))) => return Err(e.into()),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot open data dir `{}`",
                config.data_dir.display()
            )))
        }
    };
    if !config.auth_configured() {
        tracing::warn!("no tokens configured: auth is off, so listening on loopback only");
    }
    let status = app.status();
    tracing::info!(
        policies = status.policies,
        bindings = status.bindings,
        data_dir = %config.data_dir.display(),
        "verdict listening on {scheme}://{addr}"
    );
    // The line tests and scripts wait for; stdout, unbuffered by println.
    println!("verdict listening on {scheme}://{addr}");
    // A failed store (disk full, I/O error) refuses every write until it is
    // reopened: stop taking requests and exit non-zero, so the supervisor
    // (systemd, Kubernetes) restarts verdict on a reopened store.
    let watched = app.clone();
    let shutdown = async move {
        tokio::select! {
            _ = shutdown_signal() => {}
            reason = watched.store_failed() => tracing::error!(
                %reason,
                "the store failed: shutting down so the supervisor restarts verdict"
            ),
        }
    };
    // With a shared store, changes other replicas make to the active set
    // are loaded as they are noticed.
    let follower = tokio::spawn({
        let app = app.clone();
        async move { app.follow_active_set().await }
    });
    // Checkpoints are signed alongside serving; the last one at close.
    let checkpoints = tokio::spawn({
        let app = app.clone();
        async move { app.run_checkpoints().await }
    });
    let report = http::serve(
        listener,
        Ctx::new(app.clone(), &config),
        limits,
        tls,
        shutdown,
    )
    .await;
    checkpoints.abort();
    follower.abort();
    if report.cut_heads > 0 {
        tracing::info!(
            "closed {} connection(s) with a half-sent request head",
            report.cut_heads
        );
    }
    if report.cut_requests > 0 {
        tracing::warn!(
            "shutdown deadline of {} ms passed: cut {} connection(s) with a request in progress",
            limits.shutdown_timeout.as_millis(),
            report.cut_requests
        );
    }
    if let Some(reason) = app.store_failure() {
        anyhow::bail!("the store failed ({reason}); restart verdict to reopen it");
    }
    app.close().await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight requests"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing in-flight requests"),
    }
}
