//! Deploy-tool front doors (the README's "Integrations" section): the same
//! decision as `POST /v1/decisions` (through [`App::decide`], so stored and
//! chained like any other), answered in the shape each tool understands.
//!
//! - `POST /v1/integrations/argo`: Argo Rollouts' `web` metric provider.
//!   Argo turns a non-2xx answer into a measurement *error* and aborts the
//!   rollout after a few of them, so this door answers **200 whatever
//!   happens** — errors included, as a `hold` with `decision_id: null` — and
//!   lets the AnalysisTemplate's `successCondition` / `failureCondition`
//!   decide: promote → Successful, rollback → Failed, hold/freeze →
//!   Inconclusive (the rollout pauses).
//! - `POST /v1/integrations/flagger/{gate}`: Flagger webhooks, one URL per
//!   hook type (the payload does not name it). Success is a status ≤ 202;
//!   a deliberate hold is a 403 with the reason as text, which Flagger shows
//!   in its events. The `rollback` gate is inverted: 200 = roll back now.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use warp::http::{header, StatusCode};
use warp::reply::Response;

use super::errors::{parse_json, ApiError};
use crate::domain::{Change, Decision, DecisionRequest, Deployment, Reason, Verdict};
use crate::service::App;

/// How long Argo should wait before asking again after a hold or freeze
/// (a hint; the AnalysisTemplate's `interval` is what Argo obeys).
pub const RETRY_AFTER_SECONDS: u64 = 30;

/// Every Flagger webhook type, as the last path segment.
pub const FLAGGER_GATES: [&str; 8] = [
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
    "post-rollout",
    "rollback",
    "event",
];

/// One reason as a line of text: `policy: message` (host reasons bare).
pub fn reason_text(r: &Reason) -> String {
    match &r.policy {
        Some(p) => format!("{p}: {}", r.message),
        None => r.message.clone(),
    }
}

// ---------------------------------------------------------------- Argo ----

/// The answer Argo's `web` provider reads (`result.verdict` …).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArgoAnswer {
    pub verdict: Verdict,
    pub decision_id: Option<String>,
    pub reasons: Vec<String>,
    pub retry_after_seconds: u64,
}

impl ArgoAnswer {
    fn from_decision(d: &Decision) -> ArgoAnswer {
        ArgoAnswer {
            verdict: d.verdict,
            decision_id: Some(d.id.clone()),
            reasons: d.reasons.iter().map(reason_text).collect(),
            retry_after_seconds: retry_after(d.verdict),
        }
    }

    /// Any failure: hold, so Argo pauses (Inconclusive) instead of aborting.
    pub fn error(message: impl Into<String>) -> ArgoAnswer {
        ArgoAnswer {
            verdict: Verdict::Hold,
            decision_id: None,
            reasons: vec![message.into()],
            retry_after_seconds: RETRY_AFTER_SECONDS,
        }
    }
}

fn retry_after(v: Verdict) -> u64 {
    match v {
        Verdict::Hold | Verdict::Freeze => RETRY_AFTER_SECONDS,
        Verdict::Promote | Verdict::Rollback => 0,
    }
}

/// POST /v1/integrations/argo. `body` is what the body filter produced: a
/// body it refused (too large, unreadable) arrives as the error. Always 200.
pub async fn argo(app: App, body: Result<Bytes, String>, timeout: Duration) -> Response {
    let answer = match body {
        Err(e) => ArgoAnswer::error(e),
        Ok(body) => match parse_json::<DecisionRequest>(&body) {
            Err(e) => ArgoAnswer::error(e.message),
            Ok(req) => match tokio::time::timeout(timeout, app.decide(req)).await {
                Ok(Ok(d)) => ArgoAnswer::from_decision(&d.decision),
                Ok(Err(e)) => ArgoAnswer::error(ApiError::from(e).message),
                Err(_) => ArgoAnswer::error(format!(
                    "no decision within {} ms; ask again",
                    timeout.as_millis()
                )),
            },
        },
    };
    warp::http::Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&answer).unwrap_or_default().into())
        .unwrap_or_default()
}

// ------------------------------------------------------------- Flagger ----

/// Flagger's webhook payload (`CanaryWebhookPayload`). Unknown fields are
/// tolerated: Flagger may add some.
#[derive(Debug, Clone, Deserialize)]
pub struct FlaggerPayload {
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub checksum: String,
    /// Absent, `null` (older Flagger versions) or a string map.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub metadata: BTreeMap<String, String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// Whether a gate only informs (recorded once, always answered 200).
fn informational(gate: &str) -> bool {
    matches!(gate, "post-rollout" | "event")
}

/// Build the decision request a Flagger call stands for.
///
/// service = `metadata.service` or `name`; environment =
/// `metadata.environment` or `namespace`; version = `metadata.version` or
/// `checksum`. `metadata.previous_version`, `region` and `stage` fill the
/// deployment; `commit`, `author`, `title`, `ticket`, `risk` and `labels`
/// (comma-separated) fill the change, so change-aware policies can vote
/// although Flagger sends no metrics. Everything Flagger sent is recorded in
/// `args` (`flagger.*` plus the metadata).
pub fn flagger_request(gate: &str, p: &FlaggerPayload) -> DecisionRequest {
    let m = &p.metadata;
    let get = |k: &str| {
        m.get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let deployment = Deployment {
        service: get("service").unwrap_or_else(|| p.name.clone()),
        environment: get("environment").unwrap_or_else(|| p.namespace.clone()),
        version: get("version").unwrap_or_else(|| p.checksum.clone()),
        previous_version: get("previous_version"),
        region: get("region"),
        stage: get("stage"),
        traffic_percent: None,
    };
    let change = Change {
        commit: get("commit"),
        author: get("author"),
        title: get("title"),
        ticket: get("ticket"),
        risk: get("risk"),
        labels: get("labels")
            .map(|l| {
                l.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        ..Default::default()
    };
    let mut args = m.clone();
    args.insert("flagger.gate".into(), gate.into());
    args.insert("flagger.name".into(), p.name.clone());
    args.insert("flagger.namespace".into(), p.namespace.clone());
    args.insert("flagger.phase".into(), p.phase.clone());
    args.insert("flagger.checksum".into(), p.checksum.clone());
    // Idempotency: Flagger calls a gating hook again and again for the same
    // checksum while it waits for a promote. A key per checksum would freeze
    // the first answer (say, a hold) forever, so gating hooks
    // (confirm-*, pre-rollout, rollout, rollback) are decided fresh on every
    // call. Only the informational hooks (post-rollout, event), an audit
    // feed, get a key — gate, canary, checksum and a digest of the rest of
    // the payload — so a redelivered notification is recorded once while
    // distinct events for one checksum are each recorded.
    let idempotency_key = informational(gate).then(|| {
        let mut h = Sha256::new();
        for part in [gate, &p.namespace, &p.name, &p.checksum, &p.phase] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for (k, v) in m {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([0]);
        }
        let digest = hex::encode(h.finalize());
        let key = format!(
            "flagger:{gate}:{}/{}:{}:{}",
            p.namespace,
            p.name,
            p.checksum,
            &digest[..16]
        );
        if key.len() <= 256 {
            key
        } else {
            format!("flagger:{gate}:{digest}")
        }
    });
    DecisionRequest {
        deployment,
        change,
        metrics: Vec::new(),
        time: None,
        idempotency_key,
        args,
    }
}

/// Longest reason text in a Flagger answer: Flagger turns it into a
/// Kubernetes event, whose message is capped at 1 KiB. The full reasons are
/// in the stored decision the text names.
pub const MAX_REASON_TEXT: usize = 800;

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// The status and text Flagger gets for a decision at `gate`.
pub fn flagger_answer(
    gate: &str,
    verdict: Verdict,
    reasons: &[Reason],
    id: &str,
) -> (StatusCode, String) {
    let why = reasons
        .iter()
        .map(reason_text)
        .collect::<Vec<_>>()
        .join("; ");
    let why = truncate(why, MAX_REASON_TEXT);
    let with_why = |head: String| {
        if why.is_empty() {
            format!("{head} (decision {id})")
        } else {
            format!("{head}: {why} (decision {id})")
        }
    };
    if informational(gate) {
        return (StatusCode::OK, format!("recorded decision {id}: {verdict}"));
    }
    if gate == "rollback" {
        return match verdict {
            Verdict::Rollback => (StatusCode::OK, with_why("rollback".into())),
            other => (
                StatusCode::FORBIDDEN,
                with_why(format!("no rollback: {other}")),
            ),
        };
    }
    match verdict {
        Verdict::Promote => (StatusCode::OK, format!("promote (decision {id})")),
        other => (StatusCode::FORBIDDEN, with_why(other.to_string())),
    }
}

/// POST /v1/integrations/flagger/{gate}
pub async fn flagger(app: App, gate: String, body: Bytes) -> Result<Response, ApiError> {
    if !FLAGGER_GATES.contains(&gate.as_str()) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "unknown Flagger gate `{gate}`: use one of {}",
                FLAGGER_GATES.join(", ")
            ),
        ));
    }
    let payload: FlaggerPayload = parse_json(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_payload",
            format!(
                "not a Flagger webhook payload {{name, namespace, phase, checksum, metadata}}: {}",
                e.message
            ),
        )
    })?;
    let req = flagger_request(&gate, &payload);
    // Errors (invalid request, store failure) keep their JSON error status:
    // a gating hook then waits or counts a failed check, and an
    // informational hook shows Flagger that nothing was recorded.
    let d = app.decide(req).await?.decision;
    let (status, text) = flagger_answer(&gate, d.verdict, &d.reasons, &d.id);
    Ok(warp::http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("x-verdict-decision-id", d.id.as_str())
        .header("x-verdict-verdict", d.verdict.as_str())
        .body(text.into())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(metadata: &[(&str, &str)]) -> FlaggerPayload {
        FlaggerPayload {
            name: "podinfo".into(),
            namespace: "test".into(),
            phase: "Progressing".into(),
            checksum: "6d8f7c9b".into(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn flagger_fields_default_to_name_namespace_checksum() {
        let r = flagger_request("confirm-promotion", &payload(&[]));
        assert_eq!(r.deployment.service, "podinfo");
        assert_eq!(r.deployment.environment, "test");
        assert_eq!(r.deployment.version, "6d8f7c9b");
        assert_eq!(r.args["flagger.gate"], "confirm-promotion");
        assert_eq!(r.change, Change::default());
    }

    #[test]
    fn flagger_metadata_overrides_and_fills_the_change() {
        let r = flagger_request(
            "rollout",
            &payload(&[
                ("service", "checkout"),
                ("environment", "production"),
                ("version", "v2"),
                ("ticket", "OPS-1"),
                ("labels", "a, b,,"),
            ]),
        );
        assert_eq!(r.deployment.service, "checkout");
        assert_eq!(r.deployment.environment, "production");
        assert_eq!(r.deployment.version, "v2");
        assert_eq!(r.change.ticket.as_deref(), Some("OPS-1"));
        assert_eq!(r.change.labels, vec!["a", "b"]);
        assert_eq!(r.args["ticket"], "OPS-1");
    }

    #[test]
    fn only_informational_gates_get_an_idempotency_key() {
        for gate in FLAGGER_GATES {
            let r = flagger_request(gate, &payload(&[]));
            assert_eq!(r.idempotency_key.is_some(), informational(gate), "{gate}");
        }
        let a = flagger_request("event", &payload(&[("eventMessage", "a")]));
        let b = flagger_request("event", &payload(&[("eventMessage", "b")]));
        assert_ne!(a.idempotency_key, b.idempotency_key);
        let long = "x".repeat(300);
        let mut p = payload(&[]);
        p.name = long;
        let k = flagger_request("post-rollout", &p).idempotency_key.unwrap();
        assert!(k.len() <= 256, "{k}");
    }

    #[test]
    fn flagger_payload_tolerates_unknown_fields_and_null_metadata() {
        let p: FlaggerPayload = serde_json::from_str(
            r#"{"name":"a","namespace":"b","phase":"Progressing","metadata":null,"future":1}"#,
        )
        .unwrap();
        assert!(p.metadata.is_empty() && p.checksum.is_empty());
        assert!(serde_json::from_str::<FlaggerPayload>(r#"{"namespace":"b"}"#).is_err());
    }

    #[test]
    fn flagger_status_mapping() {
        let r = [Reason::host("why")];
        let s = |gate, v| flagger_answer(gate, v, &r, "dec-1");
        assert_eq!(s("confirm-promotion", Verdict::Promote).0, StatusCode::OK);
        for v in [Verdict::Hold, Verdict::Rollback, Verdict::Freeze] {
            let (st, text) = s("confirm-rollout", v);
            assert_eq!(st, StatusCode::FORBIDDEN);
            assert!(
                text.starts_with(v.as_str()) && text.contains("why"),
                "{text}"
            );
        }
        assert_eq!(s("rollback", Verdict::Rollback).0, StatusCode::OK);
        for v in [Verdict::Promote, Verdict::Hold, Verdict::Freeze] {
            let (st, text) = s("rollback", v);
            assert_eq!(st, StatusCode::FORBIDDEN);
            assert!(text.starts_with(&format!("no rollback: {v}")), "{text}");
        }
        for gate in ["post-rollout", "event"] {
            for v in [
                Verdict::Promote,
                Verdict::Hold,
                Verdict::Rollback,
                Verdict::Freeze,
            ] {
                assert_eq!(s(gate, v).0, StatusCode::OK);
            }
        }
    }

    #[test]
    fn long_reasons_are_cut_but_the_decision_id_stays() {
        let r: Vec<Reason> = (0..100)
            .map(|i| Reason::host(format!("reason ünïcode {i}")))
            .collect();
        let (_, text) = flagger_answer("confirm-rollout", Verdict::Hold, &r, "dec-9");
        assert!(text.len() < MAX_REASON_TEXT + 64, "{}", text.len());
        assert!(text.ends_with("… (decision dec-9)"), "{text}");
    }

    #[test]
    fn argo_errors_are_holds_without_an_id() {
        let a = ArgoAnswer::error("boom");
        assert_eq!(a.verdict, Verdict::Hold);
        assert_eq!(a.decision_id, None);
        assert_eq!(a.retry_after_seconds, RETRY_AFTER_SECONDS);
        let v = serde_json::to_value(&a).unwrap();
        assert!(v["decision_id"].is_null(), "{v}");
        assert_eq!(v["verdict"], "hold");
    }
}
