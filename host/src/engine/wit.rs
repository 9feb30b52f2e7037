//! The host's one binding of `wit/`, and the conversions between the
//! WIT-generated types and the domain types. Nothing outside the engine sees
//! a generated type.

use crate::domain;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
});

pub use self::verdict::policy::host::Level;
pub use self::verdict::policy::types as t;

/// Build the WIT input for one evaluation.
pub fn input(req: &domain::DecisionRequest, now_unix_ms: i64, settings: String) -> t::Input {
    let d = &req.deployment;
    let c = &req.change;
    t::Input {
        deployment: t::Deployment {
            service: d.service.clone(),
            environment: d.environment.clone(),
            version: d.version.clone(),
            previous_version: d.previous_version.clone(),
            region: d.region.clone(),
            stage: d.stage.clone(),
            traffic_percent: d.traffic_percent,
        },
        change: t::Change {
            commit: c.commit.clone(),
            author: c.author.clone(),
            title: c.title.clone(),
            files_changed: c.files_changed,
            lines_added: c.lines_added,
            lines_removed: c.lines_removed,
            paths: c.paths.clone(),
            labels: c.labels.clone(),
            ticket: c.ticket.clone(),
            risk: c.risk.clone(),
        },
        metrics: req
            .metrics
            .iter()
            .map(|m| t::Metric {
                name: m.name.clone(),
                unit: m.unit.clone(),
                baseline: m.baseline.clone(),
                canary: m.canary.clone(),
                value: m.value,
            })
            .collect(),
        now_unix_ms,
        settings,
    }
}

pub fn verdict(v: t::Verdict) -> domain::Verdict {
    match v {
        t::Verdict::Promote => domain::Verdict::Promote,
        t::Verdict::Hold => domain::Verdict::Hold,
        t::Verdict::Rollback => domain::Verdict::Rollback,
        t::Verdict::Freeze => domain::Verdict::Freeze,
    }
}

pub fn reason(policy: &str, r: t::Reason) -> domain::Reason {
    // JSON cannot carry NaN or infinities; a non-finite number would come
    // back from storage as `null` and break byte-exact replay, so it is
    // dropped here, once, at the boundary.
    let finite = |x: Option<f64>| x.filter(|v| v.is_finite());
    domain::Reason {
        policy: Some(policy.to_string()),
        message: r.message,
        metric: r.metric,
        observed: finite(r.observed),
        threshold: finite(r.threshold),
    }
}

pub fn level(l: Level) -> &'static str {
    match l {
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}
