//! The metric source and query settings of `verdict.toml`
//! (`[[metric_sources]]`, `[[metric_queries]]`): their schema and defaults.
//! They are checked, and made ready to pull, by [`super::Sources::new`].

use serde::Deserialize;

use crate::domain::Selector;

/// A configured source (`[[metric_sources]]` in verdict.toml).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// Base URL, e.g. `http://prometheus.monitoring:9090` (path prefixes
    /// such as `/prometheus` are kept).
    pub url: String,
    /// Per HTTP call, connect to last byte. A decision waits at most this
    /// long for its pulled metrics (queries run concurrently).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra headers on every call, e.g. `{ "X-Scope-OrgID" = "team-a" }`
    /// for a Mimir or Cortex tenant. Not for secrets: the config file is
    /// not a secret store; use `bearer_token_file`.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// A file holding a bearer token (a Kubernetes projected token, a
    /// mounted secret). Read on every call, so a rotated token needs no
    /// restart; checked to be readable at startup.
    #[serde(default)]
    pub bearer_token_file: Option<std::path::PathBuf>,
    /// For an `https://` URL: which CAs to trust (`ca_file`,
    /// `system_roots`); the system's by default.
    #[serde(default)]
    pub tls: crate::tls::ClientTls,
}

fn default_timeout_ms() -> u64 {
    3_000
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Prometheus,
}

/// A named query (`[[metric_queries]]` in verdict.toml): either a pair of
/// series (`baseline` and `canary`, each a `query_range`) or one `value`
/// (an instant `query` at the decision time).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// The metric name the policies see.
    pub metric: String,
    /// Which `[[metric_sources]]` entry to ask.
    pub source: String,
    #[serde(default)]
    pub unit: Option<String>,
    /// Which deployments this query serves; absent fields match any.
    #[serde(default)]
    pub selector: Selector,
    #[serde(default)]
    pub baseline: Option<String>,
    #[serde(default)]
    pub canary: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    /// How far back the series start from the decision time (`10m`, `1h`,
    /// `90s`). A request may override it with the arg `lookback`.
    #[serde(default = "default_lookback")]
    pub lookback: String,
    /// Resolution of the series (`30s`): one sample per step.
    #[serde(default = "default_step")]
    pub step: String,
    /// When true (the default), a decision whose metric could not be pulled
    /// is at most a hold. False: the gap is only reported.
    #[serde(default = "yes")]
    pub required: bool,
}

fn default_lookback() -> String {
    "10m".into()
}

fn default_step() -> String {
    "30s".into()
}

fn yes() -> bool {
    true
}
