//! Domain types: what the API accepts, what the engine decides and what the
//! store keeps. These (not the WIT-generated types) are serialized everywhere;
//! the engine converts them at the sandbox boundary.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

/// Bounds on a decision request, so one request cannot occupy the engine
/// with megabytes of samples per policy.
pub const MAX_METRICS: usize = 256;
pub const MAX_SAMPLES_PER_SERIES: usize = 100_000;

/// The instants a request's `time` may name: the Unix epoch up to (not
/// including) the year 9999, so every range computed from it (a pull's
/// lookback) stays inside what the time library represents.
pub const EARLIEST_TIME: Timestamp = Timestamp::UNIX_EPOCH;
/// See [`EARLIEST_TIME`]: 9999-01-01T00:00:00Z.
pub const LATEST_TIME: Timestamp = Timestamp::constant(253_370_764_800, 0);

/// `s` as one URL query value or path segment: unreserved characters as
/// they are, every other byte `%XX`.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Longest service or environment name (a DNS label's limit, so Kubernetes
/// namespaces and Flagger canary names fit).
pub const MAX_NAME_LEN: usize = 63;

/// The one grammar of service and environment names, wherever they enter
/// (decision requests and the names the Argo and Flagger doors derive,
/// freeze and binding selectors, metric query selectors): 1 to 63
/// characters from `a-z`, `0-9`, `-`, `_` and `.`, starting and ending with a
/// letter or digit. There is exactly one spelling of a name, so a selector
/// on `production` cannot be dodged by `Production`, `production ` or a
/// zero-width space, and selectors compare names byte for byte.
pub fn valid_scope_name(name: &str) -> bool {
    let b = name.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || b"-_.".contains(c))
}

/// A service or environment name outside [`valid_scope_name`]'s grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid `{field}` `{}`: a name is 1 to 63 characters from a-z, 0-9, `-`, `_` and `.`, \
     starting and ending with a letter or digit",
    shown(.value)
)]
pub struct InvalidName {
    /// Where the name was given, e.g. `deployment.environment`.
    pub field: String,
    pub value: String,
}

/// Check `value` against the name grammar; `field` names it in the error.
pub fn check_scope_name(field: &str, value: &str) -> Result<(), InvalidName> {
    if valid_scope_name(value) {
        Ok(())
    } else {
        Err(InvalidName {
            field: field.to_string(),
            value: value.to_string(),
        })
    }
}

/// Client input as it may be shown in a message: invisible and control
/// characters escaped (a zero-width space shows as `\u{200b}`), and cut
/// after 64 characters.
pub fn shown(value: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = value
        .chars()
        .take(MAX)
        .flat_map(|c| {
            let visible = c.is_ascii_graphic() || c == ' ' || (!c.is_ascii() && !invisible(c));
            let escaped: Vec<char> = if visible {
                vec![c]
            } else {
                c.escape_unicode().collect()
            };
            escaped
        })
        .collect();
    if value.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

/// Control, format (zero-width, bidi) and separator characters beyond ASCII.
fn invisible(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

/// What the deploy tool should do next with this rollout step.
///
/// INVARIANT: the declaration order is the severity order used to combine
/// votes (freeze > rollback > hold > promote); `Ord` derives from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Promote,
    Hold,
    Rollback,
    Freeze,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Promote => "promote",
            Verdict::Hold => "hold",
            Verdict::Rollback => "rollback",
            Verdict::Freeze => "freeze",
        }
    }

    /// The CI exit code for this verdict (`verdict decide`).
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Promote => 0,
            Verdict::Hold => 10,
            Verdict::Rollback => 11,
            Verdict::Freeze => 12,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "promote" => Ok(Verdict::Promote),
            "hold" => Ok(Verdict::Hold),
            "rollback" => Ok(Verdict::Rollback),
            "freeze" => Ok(Verdict::Freeze),
            other => Err(format!(
                "unknown verdict `{other}`: expected promote, hold, rollback or freeze"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub service: String,
    pub environment: String,
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_percent: Option<f64>,
}

/// The change being rolled out. Every field is optional: a deploy tool that
/// knows nothing about the change sends `{}` (or nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Change {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub files_changed: u32,
    pub lines_added: u32,
    pub lines_removed: u32,
    pub paths: Vec<String>,
    pub labels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<String>,
}

/// Baseline (control) and canary (experiment) samples, or one value.
///
/// JSON has no NaN, so a missing sample is written `null`; it reaches the
/// policy as NaN (policies decide how to treat it) and is stored as `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, deserialize_with = "nullable_samples")]
    pub baseline: Vec<f64>,
    #[serde(default, deserialize_with = "nullable_samples")]
    pub canary: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Set when the host pulled this metric from a metric source rather
    /// than the caller pushing it: where it came from, the queries exactly
    /// as sent, and what went wrong. Policies do not see it; auditors do,
    /// and replay needs nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled: Option<Pulled>,
}

/// Provenance of a pulled metric: which source and queries produced it, so
/// an auditor can tell pulled evidence from pushed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pulled {
    /// The configured source's name.
    pub source: String,
    /// The queries as sent, templates expanded (`query_range` for the two
    /// series, an instant `query` for a value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_query: Option<String>,
    /// Range of the series queries; `end` is also the instant of a value query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Timestamp>,
    pub end: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_seconds: Option<u64>,
    /// A required metric that could not be pulled caps the verdict at hold.
    pub required: bool,
    /// Why the samples are missing or incomplete (source down, timeout, no
    /// data, bad template …). `None`: everything asked for arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<String>,
}

fn nullable_samples<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let raw: Vec<Option<f64>> = Vec::deserialize(d)?;
    Ok(raw.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

/// The question a deploy tool asks: body of `POST /v1/decisions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub deployment: Deployment,
    #[serde(default)]
    pub change: Change,
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// Decision time. A live decision is always made (and recorded) at the
    /// server's clock: a `time` sent with it must lie within the server's
    /// `max_clock_skew_ms` and is then replaced. A caller's own time is for
    /// `/v1/sources/preview` and policy fixtures; a stored decision
    /// replays at its recorded time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
    /// A repeated request with the same key returns the stored decision;
    /// the same key with a different request is a conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Free-form arguments from the deploy tool (e.g. Argo's `args`: hashes,
    /// namespace …), recorded with the decision. Policies do not see them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
}

/// The sha256 of a request's canonical JSON (see [`DecisionRequest::fingerprint`]).
pub type Fingerprint = [u8; 32];

impl DecisionRequest {
    /// The sha256 of the request's canonical JSON: the fields in declaration
    /// order, `args` sorted, numbers as serde_json writes them. Taken of the
    /// request as the caller sent it (before the server fills in `time` or
    /// pulls metrics) and stored with its idempotency key, so a key names one
    /// request and no other.
    pub fn fingerprint(&self) -> Fingerprint {
        // Serializing plain data (strings, numbers, maps with string keys)
        // cannot fail.
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(&canonical).into()
    }
}

/// One line of explanation: which policy said what, about which metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// The policy (binding) that gave the reason; `None` for host reasons
    /// such as a manual freeze or "no policy voted".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

impl Reason {
    pub fn host(message: impl Into<String>) -> Self {
        Reason {
            policy: None,
            message: message.into(),
            metric: None,
            observed: None,
            threshold: None,
        }
    }
}

/// Whether a binding's votes count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    /// Runs and is recorded, never affects the verdict.
    Shadow,
}

/// Per-evaluation sandbox limits. Every field has a default; a binding may
/// override any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wasm fuel (roughly one unit per instruction).
    pub fuel: u64,
    /// Wall-clock deadline, enforced by epoch interruption.
    pub timeout_ms: u64,
    /// Linear memory the policy may grow to.
    pub memory_bytes: u64,
    /// Most reasons one evaluation may return.
    pub max_reasons: u32,
    /// Longest reason message (bytes).
    pub max_reason_bytes: u32,
}

impl Limits {
    /// Hard ceilings no binding may exceed: they size the instance pool.
    pub const MAX_MEMORY_BYTES: u64 = 256 << 20;
    pub const MAX_TIMEOUT_MS: u64 = 10_000;
}

impl Limits {
    /// Defaults for a policy that carries an interpreter (Python,
    /// JavaScript: a component importing WASI). Its instance starts from a
    /// pre-initialised memory image of tens of MiB and runs bytecode, so
    /// the Rust defaults would refuse it before it decides anything.
    pub fn interpreter() -> Self {
        Limits {
            fuel: 20_000_000_000,
            timeout_ms: 2_000,
            memory_bytes: 192 << 20,
            ..Limits::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 1_000_000_000,
            timeout_ms: 200,
            memory_bytes: 64 << 20,
            max_reasons: 64,
            max_reason_bytes: 4096,
        }
    }
}

/// Which kind of failure a policy evaluation ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Fuel,
    Deadline,
    Memory,
    Trap,
    /// The policy returned `err(...)`.
    Err,
    /// Too many or too long reasons.
    Output,
    /// The component could not be instantiated.
    Instantiate,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Fuel => "fuel",
            FailureKind::Deadline => "deadline",
            FailureKind::Memory => "memory",
            FailureKind::Trap => "trap",
            FailureKind::Err => "err",
            FailureKind::Output => "output",
            FailureKind::Instantiate => "instantiate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyFailure {
    pub kind: FailureKind,
    pub message: String,
}

/// What one bound policy contributed to a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyResult {
    /// Binding name (a policy can be bound twice with different settings).
    pub binding: String,
    pub name: String,
    pub version: String,
    pub digest: String,
    pub mode: Mode,
    /// The vote that counts: the policy's own, or its binding's `on_error`
    /// verdict when it failed. `None` when it abstained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Why the policy abstained, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abstained: Option<String>,
    pub reasons: Vec<Reason>,
    /// Always present (`null` when the policy ran cleanly) so auditors and
    /// deploy tools can test it without knowing the optional fields.
    #[serde(default)]
    pub error: Option<PolicyFailure>,
    pub duration_us: u64,
    /// Exact for votes, abstentions, fuel exhaustion and memory failures. A
    /// lower bound when the deadline or a trap interrupted a loop: wasmtime 48
    /// keeps the running count in a register it does not save on interrupt.
    pub fuel_used: u64,
    pub limits: Limits,
    /// The binding's settings as evaluated, so a replay can reproduce the
    /// decision exactly.
    pub settings: serde_json::Value,
    /// Lines the policy logged through the host's `log` import.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
}

/// An evaluated decision before the store gives it a place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    pub policies: Vec<PolicyResult>,
    /// The exact input, with `time` filled in.
    pub request: DecisionRequest,
    /// Manual freezes that applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freezes: Vec<String>,
}

/// A stored decision: an evaluation plus its place in the hash chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub id: String,
    pub seq: u64,
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    pub policies: Vec<PolicyResult>,
    pub request: DecisionRequest,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freezes: Vec<String>,
    pub decided_at: Timestamp,
    pub prev_hash: String,
    /// Keep last: the store writes the body with `"hash":""` and puts the
    /// hash between the quotes at the end to answer an append.
    pub hash: String,
}

/// Which deployments a binding or freeze applies to; an absent field matches any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Selector {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl Selector {
    /// Both names, when given, follow the name grammar ([`valid_scope_name`]).
    pub fn validate(&self) -> Result<(), InvalidName> {
        if let Some(s) = &self.service {
            check_scope_name("selector.service", s)?;
        }
        if let Some(e) = &self.environment {
            check_scope_name("selector.environment", e)?;
        }
        Ok(())
    }

    /// Exact, byte-for-byte comparison: names follow one grammar, so there
    /// is nothing to normalize.
    pub fn matches(&self, d: &Deployment) -> bool {
        self.service.as_deref().is_none_or(|s| s == d.service)
            && self
                .environment
                .as_deref()
                .is_none_or(|e| e == d.environment)
    }
}

/// The verdict a failing policy casts. Promote is deliberately absent: a
/// broken policy must never wave a rollout through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Hold,
    Rollback,
    Freeze,
}

impl OnError {
    pub fn verdict(self) -> Verdict {
        match self {
            OnError::Hold => Verdict::Hold,
            OnError::Rollback => Verdict::Rollback,
            OnError::Freeze => Verdict::Freeze,
        }
    }
}

/// One policy applied to a selector: body of `PUT /v1/bindings/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// `name` (follows re-uploads) or `name@sha256:<hex>` (pinned).
    pub policy: String,
    #[serde(default)]
    pub selector: Selector,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub on_error: OnError,
    #[serde(default = "empty_object")]
    pub settings: serde_json::Value,
    #[serde(default)]
    pub limits: Limits,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// An operator's freeze of a scope until a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Freeze {
    pub id: String,
    #[serde(default)]
    pub selector: Selector,
    pub reason: String,
    pub until: Timestamp,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl Freeze {
    pub fn applies(&self, d: &Deployment, at: Timestamp) -> bool {
        at < self.until && self.selector.matches(d)
    }
}

/// What `describe` told us about a stored policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyInfo {
    pub name: String,
    pub version: String,
    pub summary: String,
    pub metrics: Vec<String>,
    pub default_settings: serde_json::Value,
}

/// A registered policy as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyMeta {
    /// Registry name (the upload path), which bindings refer to.
    pub name: String,
    pub digest: String,
    pub version: String,
    pub size: u64,
    pub info: PolicyInfo,
    pub uploaded_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_order_is_severity() {
        assert!(Verdict::Freeze > Verdict::Rollback);
        assert!(Verdict::Rollback > Verdict::Hold);
        assert!(Verdict::Hold > Verdict::Promote);
    }

    #[test]
    fn null_samples_become_nan_and_serialize_back_to_null() {
        let m: Metric =
            serde_json::from_str(r#"{"name":"x","canary":[1.0,null],"baseline":[]}"#).unwrap();
        assert!(m.canary[1].is_nan());
        let back = serde_json::to_string(&m).unwrap();
        assert!(back.contains("[1.0,null]"), "{back}");
    }

    #[test]
    fn unknown_request_fields_are_rejected() {
        let err = serde_json::from_str::<DecisionRequest>(
            r#"{"deployment":{"service":"a","environment":"b"},"metrcis":[]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("metrcis"), "{err}");
    }

    #[test]
    fn selector_absent_fields_match_anything() {
        let d = Deployment {
            service: "api".into(),
            environment: "prod".into(),
            ..Default::default()
        };
        assert!(Selector::default().matches(&d));
        let only_staging = Selector {
            environment: Some("staging".into()),
            ..Default::default()
        };
        assert!(!only_staging.matches(&d));
    }

    #[test]
    fn names_have_one_spelling() {
        for ok in ["production", "prod-eu.1", "a", "svc_2", &"x".repeat(63)] {
            assert!(valid_scope_name(ok), "{ok}");
        }
        for bad in [
            "",
            "Production",
            "production ",
            " production",
            "production\u{200b}",
            "prod\nuction",
            "-prod",
            "prod.",
            "prod/eu",
            "prödúction",
            &"x".repeat(64),
        ] {
            assert!(!valid_scope_name(bad), "{bad:?}");
        }
        let e = check_scope_name("deployment.environment", "production\u{200b}\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `deployment.environment` `production\\u{200b}\\u{a}`: a name is 1 to 63 \
             characters from a-z, 0-9, `-`, `_` and `.`, starting and ending with a letter or digit"
        );
        assert_eq!(shown(&"y".repeat(100)), format!("{}…", "y".repeat(64)));
        let frozen = Selector {
            environment: Some("production".into()),
            ..Default::default()
        };
        assert!(frozen.validate().is_ok());
        let upper = Selector {
            service: Some("Checkout".into()),
            ..Default::default()
        };
        assert_eq!(upper.validate().unwrap_err().field, "selector.service");
    }

    #[test]
    fn a_fingerprint_is_of_the_request_as_sent() {
        let parse = |v: &str| serde_json::from_str::<DecisionRequest>(v).unwrap();
        let a = parse(
            r#"{"deployment": {"service": "a", "environment": "b"}, "args": {"y": "1", "x": "2"}}"#,
        );
        // Key order does not matter; every field does.
        let same = parse(
            r#"{"args": {"x": "2", "y": "1"}, "deployment": {"environment": "b", "service": "a"}}"#,
        );
        assert_eq!(a.fingerprint(), same.fingerprint());
        let mut timed = a.clone();
        timed.time = Some(Timestamp::UNIX_EPOCH);
        assert_ne!(a.fingerprint(), timed.fingerprint());
        let mut other = a.clone();
        other.deployment.version = "v2".into();
        assert_ne!(a.fingerprint(), other.fingerprint());
    }

    #[test]
    fn on_error_cannot_be_promote() {
        let err = serde_json::from_str::<OnError>(r#""promote""#).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }
}
