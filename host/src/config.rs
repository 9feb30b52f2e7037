//! Server configuration: defaults that work with zero config, a TOML file
//! (`--config`, `VERDICT_CONFIG`) and `VERDICT_*` environment overrides.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::source::{QueryConfig, SourceConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file `{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// A bearer token entry. Only the sha256 of the token is configured, never
/// the token itself (`echo -n "$TOKEN" | sha256sum`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds the token (shown in logs and on freezes they create).
    pub name: String,
    /// Hex sha256 of the token.
    pub sha256: String,
    pub roles: Vec<Role>,
}

/// A client certificate identity (`[[client_certs]]`, with `tls_client_ca`):
/// a certificate signed by the client CA whose subject common name, DNS
/// name or URI (e.g. a SPIFFE id) equals `subject` authenticates as `name`
/// with `roles`, like a token.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientCertConfig {
    pub subject: String,
    pub name: String,
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// POST decisions and the integrations.
    Decide,
    /// Audit queries, verify, replay, listing policies and bindings.
    Read,
    /// Policies, bindings, freezes.
    Admin,
}

/// Each evaluation slot reserves pool address space (GiBs per memory): a
/// bound far above any core count, far below what the address space holds.
pub const MAX_CONCURRENT_EVALUATIONS: u32 = 1024;

/// Below this a compile cannot even set up its engine.
pub const MIN_COMPILE_MEMORY_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where decisions, policies, bindings and freezes are stored: absent
    /// for the embedded store in `data_dir`, or a `postgres://…` URL so
    /// several replicas share one audit chain and one active set
    /// (`VERDICT_STORE`). `data_dir` still holds each replica's compiled
    /// artifact cache and, by default, its checkpoint key.
    pub store: Option<String>,
    /// Register the five built-in policies, bound to everything, when the
    /// store holds no policies yet (first start).
    pub builtin_policies: bool,
    pub tokens: Vec<TokenConfig>,
    /// Serve HTTPS with this PEM certificate chain (and `tls_key`); both
    /// files are re-read when they change.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Accept client certificates signed by this PEM CA (mTLS); mapped to
    /// names and roles by `client_certs`.
    pub tls_client_ca: Option<PathBuf>,
    /// Client certificate subjects that authenticate like tokens.
    pub client_certs: Vec<ClientCertConfig>,
    /// Largest decision request body.
    pub max_body_bytes: u64,
    /// Largest policy component upload. The default admits a Python
    /// (componentize-py, ~18 MB) or JavaScript (componentize-js, ~12 MB)
    /// policy, which carry their interpreter.
    pub max_policy_bytes: u64,
    /// Any request taking longer is answered 503 (evaluations are bounded by
    /// their own deadlines; this guards everything else).
    pub request_timeout_ms: u64,
    /// A request body not received within this is answered 408.
    pub body_timeout_ms: u64,
    /// Once the first byte of a request arrives, the whole head (request
    /// line and headers) must arrive within this, or the connection closes.
    pub header_read_timeout_ms: u64,
    /// A connection waiting this long for a request (after connecting, or
    /// after its last answer) is closed.
    pub idle_timeout_ms: u64,
    /// At most this many open connections (lowered to fit the open-files
    /// limit). At the cap the one waiting longest for a request is closed.
    pub max_connections: usize,
    /// On SIGTERM/SIGINT, requests in progress get this long to finish;
    /// then they are cut and the server exits.
    pub shutdown_timeout_ms: u64,
    /// Flush the store before acknowledging a decision. Only turn off to
    /// measure what durability costs. (The PostgreSQL store always answers
    /// after COMMIT; how durable that is, is the database's setting.)
    pub flush: bool,
    /// Policy evaluations that run at once; the rest queue, each for at most
    /// its request's `request_timeout_ms` (then 503 `overloaded`). Default:
    /// the number of cores, so a policy's wall-clock deadline measures its
    /// own work rather than CPU queueing. One policy may hold at most half
    /// of them (at least one).
    pub max_concurrent_evaluations: Option<u32>,
    /// Memory one policy compile may use, in bytes. `verdict serve` compiles
    /// each component in a child process limited to this much address space
    /// beyond its own start-up mappings; over it the upload is refused (422).
    pub compile_memory_bytes: u64,
    /// Wall-clock time one policy compile may take (also its CPU limit);
    /// over it the upload is refused (422).
    pub compile_timeout_ms: u64,
    /// Extra compile memory per MiB of component past the first: the limit
    /// for a component of S MiB is `compile_memory_bytes + (S − 1) × this`
    /// (a Rust policy, under 1 MiB, gets the base limits). Compiling
    /// an interpreter (Python, JavaScript) needs more than a Rust policy.
    pub compile_memory_bytes_per_mib: u64,
    /// Extra compile time per MiB of component past the first, likewise: an 18 MB Python
    /// policy takes 10–30 s of CPU to compile where a Rust one takes
    /// milliseconds. Uploads wait for their compile past
    /// `request_timeout_ms`, up to these limits.
    pub compile_timeout_ms_per_mib: u64,
    /// Where pulled metrics come from (`[[metric_sources]]`).
    pub metric_sources: Vec<SourceConfig>,
    /// What to pull for which deployments (`[[metric_queries]]`).
    pub metric_queries: Vec<QueryConfig>,
    /// A live decision is made at the server's clock; a `time` sent with it
    /// may differ from that clock by at most this much (and is then
    /// replaced), otherwise the request is refused.
    pub max_clock_skew_ms: u64,
    /// This audit log's name in its signed checkpoints (their first line).
    /// Make it unique per deployment, e.g. `verdict.example.com/prod`.
    pub audit_origin: String,
    /// The ed25519 key checkpoints are signed with: generated there on
    /// first start if absent. Default `<data_dir>/checkpoint.key`, beside
    /// the store and never in it.
    pub checkpoint_key: Option<PathBuf>,
    /// Sign a checkpoint once this many decisions were added since the last…
    pub checkpoint_every: u64,
    /// …or once this long has passed since it, if any decision was added.
    pub checkpoint_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./verdict-data"),
            store: None,
            builtin_policies: true,
            tokens: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            client_certs: Vec::new(),
            max_body_bytes: 1 << 20,
            max_policy_bytes: 32 << 20,
            request_timeout_ms: 30_000,
            body_timeout_ms: 30_000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 1024,
            shutdown_timeout_ms: 20_000,
            flush: true,
            max_concurrent_evaluations: None,
            compile_memory_bytes: 512 << 20,
            compile_timeout_ms: 20_000,
            compile_memory_bytes_per_mib: 32 << 20,
            compile_timeout_ms_per_mib: 4_000,
            metric_sources: Vec::new(),
            metric_queries: Vec::new(),
            max_clock_skew_ms: 60_000,
            audit_origin: "verdict".into(),
            checkpoint_key: None,
            checkpoint_every: 1000,
            checkpoint_interval_ms: 60_000,
        }
    }
}

impl Config {
    /// Where the checkpoint signing key lives.
    pub fn checkpoint_key_path(&self) -> PathBuf {
        self.checkpoint_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("checkpoint.key"))
    }

    /// Load `path` (if any) over the defaults; validate.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let config = Config::read(path)?;
        config.validate()?;
        Ok(config)
    }

    /// Read `path` (if any) over the defaults, without validating: flags
    /// and environment still apply (a file may name `tls_client_ca` with
    /// the certificate given by `--tls-cert`), then the whole is validated.
    pub fn read(path: Option<&Path>) -> Result<Config, ConfigError> {
        let config = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
        };
        Ok(config)
    }

    /// Tokens from `VERDICT_TOKENS`: `name:sha256hex:role+role,…`.
    pub fn tokens_from_env(spec: &str) -> Result<Vec<TokenConfig>, ConfigError> {
        spec.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|entry| {
                let parts: Vec<&str> = entry.trim().split(':').collect();
                let [name, sha, roles] = parts[..] else {
                    return Err(ConfigError::Invalid(format!(
                        "VERDICT_TOKENS entry `{entry}` must be `name:sha256:role+role`"
                    )));
                };
                let roles = roles
                    .split('+')
                    .map(|r| match r {
                        "decide" => Ok(Role::Decide),
                        "read" => Ok(Role::Read),
                        "admin" => Ok(Role::Admin),
                        other => Err(ConfigError::Invalid(format!(
                            "unknown role `{other}` in VERDICT_TOKENS: use decide, read or admin"
                        ))),
                    })
                    .collect::<Result<_, _>>()?;
                Ok(TokenConfig {
                    name: name.to_string(),
                    sha256: sha.to_ascii_lowercase(),
                    roles,
                })
            })
            .collect()
    }

    /// Whether any credential is configured (tokens or client
    /// certificates): without one, auth is off and only loopback is served.
    pub fn auth_configured(&self) -> bool {
        !self.tokens.is_empty() || !self.client_certs.is_empty()
    }

    /// The server's TLS files, when HTTPS is configured.
    pub fn tls_files(&self) -> Option<crate::tls::ServerFiles> {
        Some(crate::tls::ServerFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.store {
            // The URL may hold a password: never repeat it.
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::Invalid(
                    "`store` (VERDICT_STORE) must be a `postgres://user:password@host:port/database` \
                     URL; leave it out for the embedded store in `data_dir`"
                        .into(),
                ));
            }
        }
        for t in &self.tokens {
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::Invalid(format!(
                    "token `{}`: `sha256` must be 64 hex digits (the hash of the token, not the token)",
                    t.name
                )));
            }
            if t.roles.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "token `{}` has no roles",
                    t.name
                )));
            }
        }
        for c in &self.client_certs {
            if c.subject.trim().is_empty() || c.roles.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "client certificate `{}` needs a `subject` and at least one role",
                    c.name
                )));
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "`tls_cert` and `tls_key` go together: set both to serve HTTPS".into(),
                ))
            }
            _ => {}
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return Err(ConfigError::Invalid(
                "`tls_client_ca` needs HTTPS: set `tls_cert` and `tls_key`".into(),
            ));
        }
        if !self.client_certs.is_empty() && self.tls_client_ca.is_none() {
            return Err(ConfigError::Invalid(
                "`client_certs` needs `tls_client_ca` (the CA that signs them)".into(),
            ));
        }
        if !self.auth_configured() && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "refusing to listen on `{}` without auth: configure tokens (or client \
                 certificates), or listen on loopback",
                self.listen
            )));
        }
        let positive = [
            ("max_body_bytes", self.max_body_bytes),
            ("max_policy_bytes", self.max_policy_bytes),
            ("request_timeout_ms", self.request_timeout_ms),
            ("body_timeout_ms", self.body_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("max_connections", self.max_connections as u64),
            ("shutdown_timeout_ms", self.shutdown_timeout_ms),
            ("checkpoint_every", self.checkpoint_every),
            ("checkpoint_interval_ms", self.checkpoint_interval_ms),
        ];
        // The origin is the note's first line, and a signature line names it.
        if self.audit_origin.is_empty()
            || self.audit_origin.len() > 255
            || self
                .audit_origin
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '+')
        {
            return Err(ConfigError::Invalid(format!(
                "`audit_origin` `{}` must be 1 to 255 characters without spaces or `+` \
                 (e.g. verdict.example.com/prod)",
                self.audit_origin.escape_debug()
            )));
        }
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("`{name}` must be positive")));
        }
        if self.compile_memory_bytes < MIN_COMPILE_MEMORY_BYTES || self.compile_timeout_ms == 0 {
            return Err(ConfigError::Invalid(format!(
                "`compile_memory_bytes` must be at least {MIN_COMPILE_MEMORY_BYTES} and \
                 `compile_timeout_ms` positive"
            )));
        }
        if let Some(n) = self.max_concurrent_evaluations {
            if n == 0 || n > MAX_CONCURRENT_EVALUATIONS {
                return Err(ConfigError::Invalid(format!(
                    "`max_concurrent_evaluations` must be between 1 and \
                     {MAX_CONCURRENT_EVALUATIONS}, got {n}"
                )));
            }
        }
        // Metric sources and queries are checked where they are built,
        // once, when the service opens (`Sources::new`).
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_tokens_means_loopback_only() {
        let mut c = Config::default();
        assert!(c.validate().is_ok());
        c.listen = "0.0.0.0:8080".parse().unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("without auth"), "{err}");
    }

    #[test]
    fn tls_settings_go_together() {
        let with = |f: &dyn Fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().map_err(|e| e.to_string())
        };
        let err = with(&|c| c.tls_cert = Some("c.pem".into())).unwrap_err();
        assert!(
            err.contains("`tls_cert` and `tls_key` go together"),
            "{err}"
        );
        let err = with(&|c| c.tls_client_ca = Some("ca.pem".into())).unwrap_err();
        assert!(err.contains("`tls_client_ca` needs HTTPS"), "{err}");
        let cert = ClientCertConfig {
            subject: "argo".into(),
            name: "argo".into(),
            roles: vec![Role::Decide],
        };
        let err = with(&|c| c.client_certs.push(cert.clone())).unwrap_err();
        assert!(
            err.contains("`client_certs` needs `tls_client_ca`"),
            "{err}"
        );
        let mtls = |c: &mut Config| {
            c.tls_cert = Some("c.pem".into());
            c.tls_key = Some("k.pem".into());
            c.tls_client_ca = Some("ca.pem".into());
            c.listen = "0.0.0.0:8443".parse().unwrap();
        };
        let err = with(&mtls).unwrap_err();
        assert!(err.contains("without auth"), "TLS alone is not auth: {err}");
        with(&|c| {
            mtls(c);
            c.client_certs.push(cert.clone());
        })
        .expect("client certificates are auth: a public listen is allowed");
        let err = with(&|c| {
            mtls(c);
            c.client_certs.push(ClientCertConfig {
                roles: vec![],
                ..cert.clone()
            });
        })
        .unwrap_err();
        assert!(err.contains("at least one role"), "{err}");
    }

    #[test]
    fn limits_must_be_positive() {
        for setting in ["body_timeout_ms", "idle_timeout_ms", "max_connections"] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("verdict.toml");
            std::fs::write(&p, format!("{setting} = 0\n")).unwrap();
            let err = Config::load(Some(&p)).unwrap_err().to_string();
            assert_eq!(err, format!("invalid config: `{setting}` must be positive"));
        }
    }

    #[test]
    fn token_hash_must_be_hex() {
        let mut c = Config::default();
        c.tokens.push(TokenConfig {
            name: "ci".into(),
            sha256: "s3cret".into(),
            roles: vec![Role::Decide],
        });
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("64 hex digits"));
    }

    #[test]
    fn compile_limits_must_leave_room_to_compile() {
        let c = Config {
            compile_memory_bytes: 4096,
            ..Config::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("`compile_memory_bytes`"), "{err}");
        let c = Config {
            compile_timeout_ms: 0,
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn concurrent_evaluations_are_bounded() {
        let mut c = Config {
            max_concurrent_evaluations: Some(0),
            ..Config::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("`max_concurrent_evaluations`"), "{err}");
        c.max_concurrent_evaluations = Some(MAX_CONCURRENT_EVALUATIONS + 1);
        assert!(c.validate().is_err());
        c.max_concurrent_evaluations = Some(4);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn env_tokens_parse() {
        let hash = "a".repeat(64);
        let t =
            Config::tokens_from_env(&format!("ci:{hash}:decide+read, ops:{hash}:admin")).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].roles, vec![Role::Decide, Role::Read]);
        assert_eq!(t[1].name, "ops");
        assert!(Config::tokens_from_env("ci:abc").is_err());
        assert!(Config::tokens_from_env(&format!("ci:{hash}:root")).is_err());
    }

    #[test]
    fn toml_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("verdict.toml");
        std::fs::write(
            &p,
            "listen = \"127.0.0.1:9999\"\nbuiltin_policies = false\n",
        )
        .unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert!(!c.builtin_policies);
        assert_eq!(c.max_clock_skew_ms, 60_000);
        std::fs::write(&p, "max_clock_skew_ms = 5000\n").unwrap();
        assert_eq!(Config::load(Some(&p)).unwrap().max_clock_skew_ms, 5000);
        std::fs::write(&p, "lisen = 1").unwrap();
        let err = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn metric_sources_parse_at_load_and_are_checked_when_built() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("verdict.toml");
        let source =
            "[[metric_sources]]\nname = \"prom\"\ntype = \"prometheus\"\nurl = \"http://p:9090\"\n";
        std::fs::write(
            &p,
            format!(
                "{source}[[metric_queries]]\nmetric = \"m\"\nsource = \"prom\"\nvalue = \"up\"\n"
            ),
        )
        .unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.metric_queries[0].lookback, "10m");
        assert!(c.metric_queries[0].required);
        std::fs::write(
            &p,
            format!(
                "{source}[[metric_queries]]\nmetric = \"m\"\nsource = \"thanos\"\nvalue = \"up\"\n"
            ),
        )
        .unwrap();
        // Parsed at load; checked when built, once, as the service opens.
        let c = Config::load(Some(&p)).unwrap();
        let err = crate::source::Sources::new(&c.metric_sources, &c.metric_queries).unwrap_err();
        assert!(
            err.contains("metric query `m`: unknown source `thanos`"),
            "{err}"
        );
        std::fs::write(&p, source.replace("prometheus\"", "graphite\"")).unwrap();
        let err = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(err.contains("graphite"), "{err}");
    }
}
