//! Evaluations for the store's tests, shaped like the engine's output.

use crate::domain::{
    Change, DecisionRequest, Deployment, Evaluation, Limits, Metric, Mode, PolicyResult, Reason,
    Verdict,
};

/// An evaluation as the engine would hand it over: one policy, one
/// reason, one metric.
pub(super) fn eval(service: &str, environment: &str, verdict: Verdict) -> Evaluation {
    let reason = Reason {
        policy: Some("error-rate".into()),
        message: format!("{service} error rate 0.5% under 1%"),
        metric: Some("error_rate".into()),
        observed: Some(0.005),
        threshold: Some(0.01),
    };
    Evaluation {
        verdict,
        reasons: vec![reason.clone()],
        policies: vec![PolicyResult {
            binding: "error-rate".into(),
            name: "error-rate".into(),
            version: "1.0.0".into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
            mode: Mode::Enforce,
            verdict: Some(verdict),
            abstained: None,
            reasons: vec![reason],
            error: None,
            duration_us: 120,
            fuel_used: 4096,
            limits: Limits::default(),
            settings: serde_json::json!({"max_error_rate": 0.01}),
            log: Vec::new(),
        }],
        request: DecisionRequest {
            deployment: Deployment {
                service: service.into(),
                environment: environment.into(),
                version: "v2".into(),
                ..Default::default()
            },
            change: Change::default(),
            metrics: vec![Metric {
                name: "error_rate".into(),
                unit: None,
                baseline: vec![0.004],
                canary: vec![0.005],
                value: None,
                pulled: None,
            }],
            time: Some("2025-01-02T03:04:05Z".parse().unwrap()),
            idempotency_key: None,
            args: Default::default(),
        },
        freezes: Vec::new(),
    }
}

pub(super) fn keyed(key: &str, verdict: Verdict) -> Evaluation {
    let mut e = eval("api", "prod", verdict);
    e.request.idempotency_key = Some(key.into());
    e
}
