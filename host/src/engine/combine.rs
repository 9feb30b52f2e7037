//! How the outcomes of many policies become one verdict: a manual freeze in
//! scope overrides every vote; otherwise freeze > rollback > hold > promote;
//! a failed policy votes its binding's `on_error`; shadow policies never
//! count; abstentions are recorded but do not vote; promote needs at least
//! one enforcing promote and nothing else; no vote at all is a hold, never a
//! promote.

use crate::domain::{Freeze, Metric, Mode, PolicyResult, Reason, Verdict};

/// Combine the policies' results (and any manual freezes in scope).
pub fn combine(results: &[PolicyResult], freezes: &[&Freeze]) -> (Verdict, Vec<Reason>) {
    if !freezes.is_empty() {
        let reasons = freezes
            .iter()
            .map(|f| {
                Reason::host(format!(
                    "{} until {}: {}",
                    freeze_reason_prefix(&f.id),
                    f.until,
                    f.reason
                ))
            })
            .collect();
        return (Verdict::Freeze, reasons);
    }

    let voting: Vec<(&PolicyResult, Verdict)> = results
        .iter()
        .filter(|r| r.mode == Mode::Enforce)
        .filter_map(|r| r.verdict.map(|v| (r, v)))
        .collect();

    let Some(verdict) = voting.iter().map(|(_, v)| *v).max() else {
        return (Verdict::Hold, vec![Reason::host(no_vote_reason(results))]);
    };

    let mut reasons = Vec::new();
    for (r, _) in voting.iter().filter(|(_, v)| *v == verdict) {
        if let Some(err) = &r.error {
            reasons.push(Reason {
                policy: Some(r.binding.clone()),
                message: format!(
                    "policy `{}` failed ({}): {}; its binding votes {verdict} on error",
                    r.name,
                    err.kind.as_str(),
                    err.message
                ),
                metric: None,
                observed: None,
                threshold: None,
            });
        } else if r.reasons.is_empty() {
            reasons.push(Reason {
                policy: Some(r.binding.clone()),
                message: format!("policy `{}` voted {verdict}", r.name),
                metric: None,
                observed: None,
                threshold: None,
            });
        } else {
            reasons.extend(r.reasons.iter().cloned());
        }
    }
    (verdict, reasons)
}

/// How a manual freeze's reason starts; [`recorded_freeze`] finds it again.
fn freeze_reason_prefix(id: &str) -> String {
    format!("manual freeze `{id}`")
}

/// The verdict and reasons of a decision recorded under the manual freezes
/// `ids`, taken from its recorded `reasons` (the freeze itself may have been
/// lifted or deleted since): a replay as recorded reproduces the freeze.
pub fn recorded_freeze(ids: &[String], recorded: &[Reason]) -> (Verdict, Vec<Reason>) {
    let reasons = ids
        .iter()
        .map(|id| {
            let prefix = freeze_reason_prefix(id);
            recorded
                .iter()
                .find(|r| r.policy.is_none() && r.message.starts_with(&prefix))
                .cloned()
                .unwrap_or_else(|| Reason::host(format!("{prefix} (as recorded)")))
        })
        .collect();
    (Verdict::Freeze, reasons)
}

/// Pulled metrics that did not (fully) arrive: each gap becomes a host
/// reason, listed first; a gap in a *required* metric turns a
/// promote into a hold, because "the source was down" must never read as
/// "the canary is fine". Only the stored input is consulted, so a replay
/// reaches the same verdict without the source.
pub fn missing_evidence(metrics: &[Metric], verdict: &mut Verdict, reasons: &mut Vec<Reason>) {
    let gaps: Vec<(&Metric, bool, &str)> = metrics
        .iter()
        .filter_map(|m| {
            let p = m.pulled.as_ref()?;
            Some((m, p.required, p.diagnostic.as_deref()?))
        })
        .collect();
    if gaps.is_empty() {
        return;
    }
    let capped = *verdict == Verdict::Promote && gaps.iter().any(|(_, required, _)| *required);
    if capped {
        *verdict = Verdict::Hold;
    }
    let mut host: Vec<Reason> = gaps
        .iter()
        .map(|(m, required, diagnostic)| {
            let source = &m.pulled.as_ref().expect("filtered above").source;
            let consequence = match (required, capped) {
                (true, true) => "; it is required, so this cannot promote",
                (true, false) => "; it is required",
                (false, _) => "",
            };
            Reason {
                policy: None,
                message: format!(
                    "metric `{}` from source `{source}`: {diagnostic}{consequence}",
                    m.name
                ),
                metric: Some(m.name.clone()),
                observed: None,
                threshold: None,
            }
        })
        .collect();
    host.append(reasons);
    *reasons = host;
}

fn no_vote_reason(results: &[PolicyResult]) -> String {
    if results.is_empty() {
        return "no policy is bound to this deployment, so nothing can vote to promote".into();
    }
    let shadow = results.iter().filter(|r| r.mode == Mode::Shadow).count();
    let abstained = results
        .iter()
        .filter(|r| r.mode == Mode::Enforce && r.abstained.is_some())
        .count();
    format!(
        "no enforcing policy voted ({abstained} abstained, {shadow} in shadow mode): \
         the request carries none of their inputs"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FailureKind, Limits, PolicyFailure, Selector};

    fn result(name: &str, mode: Mode, verdict: Option<Verdict>) -> PolicyResult {
        PolicyResult {
            binding: name.into(),
            name: name.into(),
            version: "1".into(),
            digest: "sha256:00".into(),
            mode,
            verdict,
            abstained: if verdict.is_none() {
                Some("no inputs".into())
            } else {
                None
            },
            reasons: verdict
                .map(|v| vec![Reason::host(format!("{name} says {v}"))])
                .unwrap_or_default(),
            error: None,
            duration_us: 1,
            fuel_used: 1,
            limits: Limits::default(),
            settings: serde_json::json!({}),
            log: vec![],
        }
    }

    use Mode::{Enforce, Shadow};
    use Verdict::*;

    #[test]
    fn most_severe_vote_wins() {
        let rs = [
            result("a", Enforce, Some(Promote)),
            result("b", Enforce, Some(Rollback)),
            result("c", Enforce, Some(Hold)),
        ];
        let (v, reasons) = combine(&rs, &[]);
        assert_eq!(v, Rollback);
        assert_eq!(reasons.len(), 1);
        assert_eq!(reasons[0].message, "b says rollback");
    }

    #[test]
    fn freeze_beats_rollback() {
        let rs = [
            result("a", Enforce, Some(Rollback)),
            result("b", Enforce, Some(Freeze)),
        ];
        assert_eq!(combine(&rs, &[]).0, Freeze);
    }

    #[test]
    fn a_recorded_freeze_reproduces_the_freeze_reasons() {
        let f = crate::domain::Freeze {
            id: "frz-0123456789ab".into(),
            selector: Selector::default(),
            reason: "INC-1".into(),
            until: "2030-01-01T00:00:00Z".parse().unwrap(),
            created_at: "2020-01-01T00:00:00Z".parse().unwrap(),
            created_by: None,
        };
        let rs = [result("a", Enforce, Some(Promote))];
        let (v, live) = combine(&rs, &[&f]);
        assert_eq!(v, Freeze);
        // Recorded after an evidence-gap reason, as `missing_evidence` puts it.
        let mut recorded = vec![Reason::host("metric `m` from source `p`: no data")];
        recorded.extend(live.iter().cloned());
        let (v, again) = recorded_freeze(std::slice::from_ref(&f.id), &recorded);
        assert_eq!((v, &again), (Freeze, &live));
        // A record without the freeze's reason still replays as a freeze.
        let (v, bare) = recorded_freeze(std::slice::from_ref(&f.id), &[]);
        assert_eq!(v, Freeze);
        assert!(bare[0].message.contains("frz-0123456789ab"), "{bare:?}");
    }

    #[test]
    fn promote_needs_all_enforcing_votes_promote() {
        let rs = [
            result("a", Enforce, Some(Promote)),
            result("b", Enforce, Some(Promote)),
        ];
        let (v, reasons) = combine(&rs, &[]);
        assert_eq!(v, Promote);
        assert_eq!(reasons.len(), 2);
    }

    #[test]
    fn shadow_votes_never_count() {
        let rs = [
            result("a", Enforce, Some(Promote)),
            result("s", Shadow, Some(Rollback)),
        ];
        assert_eq!(combine(&rs, &[]).0, Promote);
    }

    #[test]
    fn only_shadow_and_abstentions_hold() {
        let rs = [
            result("a", Enforce, None),
            result("s", Shadow, Some(Promote)),
        ];
        let (v, reasons) = combine(&rs, &[]);
        assert_eq!(v, Hold);
        assert!(
            reasons[0].message.contains("1 abstained, 1 in shadow mode"),
            "{}",
            reasons[0].message
        );
    }

    #[test]
    fn no_policy_bound_holds() {
        let (v, reasons) = combine(&[], &[]);
        assert_eq!(v, Hold);
        assert!(reasons[0].message.contains("no policy is bound"));
    }

    #[test]
    fn abstention_does_not_block_promote() {
        let rs = [
            result("a", Enforce, Some(Promote)),
            result("b", Enforce, None),
        ];
        assert_eq!(combine(&rs, &[]).0, Promote);
    }

    #[test]
    fn failed_policy_votes_on_error_and_says_why() {
        let mut failed = result("bad", Enforce, Some(Rollback));
        failed.reasons.clear();
        failed.error = Some(PolicyFailure {
            kind: FailureKind::Fuel,
            message: "ran out of fuel after 10 units".into(),
        });
        let rs = [result("a", Enforce, Some(Promote)), failed];
        let (v, reasons) = combine(&rs, &[]);
        assert_eq!(v, Rollback);
        assert_eq!(
            reasons[0].message,
            "policy `bad` failed (fuel): ran out of fuel after 10 units; its binding votes rollback on error"
        );
    }

    #[test]
    fn manual_freeze_overrides_everything() {
        let f = crate::domain::Freeze {
            id: "f1".into(),
            selector: Selector::default(),
            reason: "black friday".into(),
            until: "2030-01-01T00:00:00Z".parse().unwrap(),
            created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            created_by: None,
        };
        let rs = [result("a", Enforce, Some(Promote))];
        let (v, reasons) = combine(&rs, &[&f]);
        assert_eq!(v, Freeze);
        assert!(reasons[0].message.contains("black friday"));
        assert!(reasons[0].message.contains("`f1`"));
    }

    fn pulled(name: &str, required: bool, diagnostic: Option<&str>) -> Metric {
        Metric {
            name: name.into(),
            unit: None,
            baseline: Vec::new(),
            canary: Vec::new(),
            value: None,
            pulled: Some(crate::domain::Pulled {
                source: "prom".into(),
                baseline_query: None,
                canary_query: None,
                value_query: None,
                start: None,
                end: "2026-01-01T00:00:00Z".parse().unwrap(),
                step_seconds: None,
                required,
                diagnostic: diagnostic.map(str::to_string),
            }),
        }
    }

    #[test]
    fn a_missing_required_metric_turns_promote_into_hold() {
        let metrics = [
            pulled("latency", true, Some("cannot reach http://prom: refused")),
            pulled("errors", true, None),
        ];
        let (mut v, mut reasons) = (Promote, vec![Reason::host("all good")]);
        missing_evidence(&metrics, &mut v, &mut reasons);
        assert_eq!(v, Hold);
        assert_eq!(reasons.len(), 2);
        assert_eq!(reasons[0].metric.as_deref(), Some("latency"));
        assert_eq!(
            reasons[0].message,
            "metric `latency` from source `prom`: cannot reach http://prom: refused; \
             it is required, so this cannot promote"
        );
        assert_eq!(reasons[1].message, "all good");
    }

    #[test]
    fn optional_gaps_and_complete_pulls_only_explain() {
        let (mut v, mut reasons) = (Promote, vec![]);
        missing_evidence(&[pulled("x", false, Some("no data"))], &mut v, &mut reasons);
        assert_eq!(v, Promote);
        assert_eq!(reasons[0].message, "metric `x` from source `prom`: no data");

        let (mut v, mut reasons) = (Promote, vec![]);
        missing_evidence(&[pulled("x", true, None)], &mut v, &mut reasons);
        assert_eq!((v, reasons.len()), (Promote, 0));

        // Worse verdicts stand; the gap is still reported.
        let (mut v, mut reasons) = (Rollback, vec![]);
        missing_evidence(&[pulled("x", true, Some("timeout"))], &mut v, &mut reasons);
        assert_eq!(v, Rollback);
        assert!(reasons[0].message.ends_with("timeout; it is required"));
    }
}
