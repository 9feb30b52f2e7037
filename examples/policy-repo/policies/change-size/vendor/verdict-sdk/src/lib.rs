//! # verdict-sdk
//!
//! Write a Verdict deployment policy in Rust. This crate is the only guest-side
//! binding of the WIT contract in `wit/`: a policy implements [`Policy`] and
//! exports it with one macro line.
//!
//! ```ignore
//! use verdict_sdk::*;
//!
//! struct MyPolicy;
//!
//! impl Policy for MyPolicy {
//!     fn describe() -> Info { Info::new("my-policy", "0.1.0", "what it decides") }
//!     fn validate_settings(settings: String) -> Result<(), String> {
//!         parse_settings::<MySettings>(&settings).map(|_| ())
//!     }
//!     fn evaluate(input: Input) -> Result<Outcome, String> {
//!         Ok(Outcome::promote(vec![Reason::new("all good")]))
//!     }
//! }
//!
//! verdict_sdk::export!(MyPolicy);
//! ```
//!
//! # Layout
//! - this file: the generated binding (re-exported), constructors and lookups
//!   on the WIT types, settings parsing.
//! - [`log`]: the host's log sink; a no-op off wasm so policy logic can be
//!   unit-tested with a plain `cargo test`.
//! - [`stats`]: numeric helpers policies share (mean, quantiles, normal CDF).
//! - [`output`]: readable numbers and reasons capped within the host's limits.
//! - [`prepared`]: settings parsed once per binding (pre-initialisation).
//! - `testing` (native only): runs a policy's `fixtures/*.json` with `cargo test`.

/// The generated binding of `wit/` (a module of its own: wit-bindgen's exported
/// macro may not live at the crate root beside its own re-export).
///
/// The world is `preinit-policy`: the `policy` world plus the `preinit`
/// export [`export!`] implements for every policy (see [`prepared`]).
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "preinit-policy",
        pub_export_macro: true,
        export_macro_name: "__export_bindings",
        default_bindings_module: "verdict_sdk::bindings",
    });
}

pub mod log;
pub mod output;
pub mod prepared;
pub mod stats;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use bindings::verdict::policy::types::{Change, Decision, Deployment, Metric, Reason, Verdict};
pub use bindings::{Info, Input, Outcome};
pub use prepared::prepared;

/// The trait a policy implements: the `policy` world's exports.
pub trait Policy {
    fn describe() -> Info;
    /// Called when a binding is created, so bad settings are rejected up
    /// front. Also what `preinit` runs: parse the settings through
    /// [`prepared`] here and in `evaluate`, and evaluations of a
    /// pre-initialised binding start with them parsed.
    fn validate_settings(settings: String) -> Result<(), String>;
    fn evaluate(input: Input) -> Result<Outcome, String>;
}

/// Export a [`Policy`] as the component's `policy` world, plus `preinit`.
///
/// `preinit(settings)` runs the policy's `validate_settings` on the
/// binding's settings and ignores the answer (the host validated them when
/// the binding was made): whatever that call leaves in memory (settings
/// kept by [`prepared`], a warm allocator) is in the snapshot the host takes
/// of the instance afterwards, which every evaluation of the binding then
/// starts from.
#[macro_export]
macro_rules! export {
    ($policy:ty) => {
        const _: () = {
            struct VerdictExport;

            impl $crate::bindings::Guest for VerdictExport {
                fn describe() -> $crate::Info {
                    <$policy as $crate::Policy>::describe()
                }
                fn validate_settings(
                    settings: ::std::string::String,
                ) -> Result<(), ::std::string::String> {
                    <$policy as $crate::Policy>::validate_settings(settings)
                }
                fn evaluate(
                    input: $crate::Input,
                ) -> Result<$crate::Outcome, ::std::string::String> {
                    <$policy as $crate::Policy>::evaluate(input)
                }
                fn preinit(settings: ::std::string::String) {
                    let _ = <$policy as $crate::Policy>::validate_settings(settings);
                }
            }

    $crate::bindings::__export_bindings!(VerdictExport with_types_in $crate::bindings);
        };
    };
}

/// Parse the binding's settings JSON into the policy's settings type.
///
/// An empty document is read as `{}` so `#[serde(default)]` settings need no
/// configuration. The error is worded for the operator who wrote the settings.
pub fn parse_settings<T: serde::de::DeserializeOwned>(settings: &str) -> Result<T, String> {
    let doc = if settings.trim().is_empty() {
        "{}"
    } else {
        settings
    };
    serde_json::from_str(doc).map_err(|e| format!("invalid settings: {e}"))
}

impl Info {
    /// Info with no metrics and `{}` default settings; chain the `with_*` calls for the rest.
    pub fn new(name: &str, version: &str, summary: &str) -> Self {
        Info {
            name: name.into(),
            version: version.into(),
            summary: summary.into(),
            metrics: Vec::new(),
            default_settings: "{}".into(),
        }
    }

    pub fn with_metrics(mut self, metrics: &[&str]) -> Self {
        self.metrics = metrics.iter().map(|m| m.to_string()).collect();
        self
    }

    /// Default settings, serialized from the policy's settings type.
    pub fn with_default_settings<T: serde::Serialize>(mut self, defaults: &T) -> Self {
        self.default_settings = serde_json::to_string(defaults).unwrap_or_else(|_| "{}".into());
        self
    }
}

impl Input {
    /// The metric called `name`, if the request carries it.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// Whether any label of the change equals `label` (ASCII case-insensitive).
    pub fn has_label(&self, label: &str) -> bool {
        self.change
            .labels
            .iter()
            .any(|l| l.eq_ignore_ascii_case(label))
    }
}

impl Default for Deployment {
    fn default() -> Self {
        Deployment {
            service: String::new(),
            environment: String::new(),
            version: String::new(),
            previous_version: None,
            region: None,
            stage: None,
            traffic_percent: None,
        }
    }
}

impl Default for Change {
    fn default() -> Self {
        Change {
            commit: None,
            author: None,
            title: None,
            files_changed: 0,
            lines_added: 0,
            lines_removed: 0,
            paths: Vec::new(),
            labels: Vec::new(),
            ticket: None,
            risk: None,
        }
    }
}

impl Default for Input {
    fn default() -> Self {
        Input {
            deployment: Deployment::default(),
            change: Change::default(),
            metrics: Vec::new(),
            now_unix_ms: 0,
            settings: "{}".into(),
        }
    }
}

impl Metric {
    /// A metric with baseline and canary samples (for tests and fixtures).
    pub fn samples(name: &str, baseline: &[f64], canary: &[f64]) -> Self {
        Metric {
            name: name.into(),
            unit: None,
            baseline: baseline.to_vec(),
            canary: canary.to_vec(),
            value: None,
        }
    }

    /// A metric with a single value, e.g. a burn rate.
    pub fn value(name: &str, value: f64) -> Self {
        Metric {
            name: name.into(),
            unit: None,
            baseline: Vec::new(),
            canary: Vec::new(),
            value: Some(value),
        }
    }
}

impl Reason {
    pub fn new(message: impl Into<String>) -> Self {
        Reason {
            message: message.into(),
            metric: None,
            observed: None,
            threshold: None,
        }
    }

    /// Attach the metric, the observed value and the threshold it was compared with.
    pub fn on_metric(mut self, metric: &str, observed: f64, threshold: Option<f64>) -> Self {
        self.metric = Some(metric.into());
        self.observed = Some(observed);
        self.threshold = threshold;
        self
    }
}

impl Outcome {
    pub fn vote(verdict: Verdict, reasons: Vec<Reason>) -> Self {
        Outcome::Vote(Decision { verdict, reasons })
    }

    pub fn promote(reasons: Vec<Reason>) -> Self {
        Self::vote(Verdict::Promote, reasons)
    }

    pub fn hold(reasons: Vec<Reason>) -> Self {
        Self::vote(Verdict::Hold, reasons)
    }

    pub fn rollback(reasons: Vec<Reason>) -> Self {
        Self::vote(Verdict::Rollback, reasons)
    }

    pub fn freeze(reasons: Vec<Reason>) -> Self {
        Self::vote(Verdict::Freeze, reasons)
    }

    /// Explicit abstention: the request carries none of this policy's inputs.
    pub fn abstain(why: impl Into<String>) -> Self {
        Outcome::Abstain(why.into())
    }

    /// The verdict voted, or `None` for an abstention (handy in unit tests).
    pub fn verdict(&self) -> Option<Verdict> {
        match self {
            Outcome::Vote(d) => Some(d.verdict),
            Outcome::Abstain(_) => None,
        }
    }

    /// All reason messages joined with `; ` (handy in unit tests).
    pub fn messages(&self) -> String {
        match self {
            Outcome::Vote(d) => d
                .reasons
                .iter()
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            Outcome::Abstain(why) => why.clone(),
        }
    }
}

impl Verdict {
    /// Severity order used when a policy combines its own sub-results:
    /// freeze > rollback > hold > promote (the host combines policies the same way).
    pub fn severity(self) -> u8 {
        match self {
            Verdict::Promote => 0,
            Verdict::Hold => 1,
            Verdict::Rollback => 2,
            Verdict::Freeze => 3,
        }
    }

    /// The more severe of two verdicts.
    pub fn max(self, other: Verdict) -> Verdict {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}
