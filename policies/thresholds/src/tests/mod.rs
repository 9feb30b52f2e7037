//! Native unit tests: one or more per rule of README.md.

use super::*;

mod config;

pub(super) fn input(metrics: Vec<Metric>) -> Input {
    Input {
        metrics,
        ..Default::default()
    }
}

pub(super) fn with(mut i: Input, settings: &str) -> Input {
    i.settings = settings.into();
    i
}

pub(super) fn run(i: Input) -> Outcome {
    Thresholds::evaluate(i).expect("valid settings")
}

pub(super) fn canary(name: &str, xs: &[f64]) -> Metric {
    Metric::samples(name, &[], xs)
}

#[track_caller]
pub(super) fn assert_vote(o: &Outcome, v: Verdict, needle: &str) {
    assert_eq!(o.verdict(), Some(v), "reasons: {}", o.messages());
    assert!(
        o.messages().contains(needle),
        "{needle:?} not in: {}",
        o.messages()
    );
}

pub(super) fn first_reason(o: &Outcome) -> Reason {
    match o {
        Outcome::Vote(d) => d.reasons[0].clone(),
        Outcome::Abstain(why) => panic!("abstained: {why}"),
    }
}

const FIVE_LOW: [f64; 5] = [0.001, 0.002, 0.0, 0.003, 0.001];

#[test]
fn abstains_when_no_configured_metric_is_present() {
    let o = run(input(vec![]));
    assert_eq!(o.verdict(), None);
    assert!(
        o.messages().contains("error_rate, latency_p99_ms"),
        "{}",
        o.messages()
    );
    let o = run(input(vec![Metric::value("burn_rate_1h", 3.0)]));
    assert_eq!(o.verdict(), None);
}

#[test]
fn default_error_rate_rule_passes_and_fails() {
    let o = run(input(vec![canary("error_rate", &FIVE_LOW)]));
    assert_vote(
        &o,
        Verdict::Promote,
        "error_rate: canary mean 0.0014 is at or below the maximum 0.01",
    );
    let o = run(input(vec![canary(
        "error_rate",
        &[0.02, 0.03, 0.02, 0.04, 0.02],
    )]));
    assert_vote(&o, Verdict::Rollback, "is above the maximum 0.01");
    let r = first_reason(&o);
    assert_eq!(r.metric.as_deref(), Some("error_rate"));
    assert!((r.observed.unwrap() - 0.026).abs() < 1e-12);
    assert_eq!(r.threshold, Some(0.01));
}

#[test]
fn default_rules_skip_metrics_the_request_lacks() {
    let o = run(input(vec![canary("error_rate", &FIVE_LOW)]));
    assert_vote(
        &o,
        Verdict::Promote,
        "latency_p99_ms: not in the request, skipped (allow_missing)",
    );
}

#[test]
fn configured_metric_absent_holds_unless_allowed() {
    let s = r#"{"rules":[{"metric":"error_rate","max":0.01},{"metric":"cpu","max":0.9}]}"#;
    let i = input(vec![canary("error_rate", &FIVE_LOW)]);
    assert_vote(&run(with(i.clone(), s)), Verdict::Hold, "cpu: no data");
    let s2 = r#"{"allow_missing":true,"rules":[{"metric":"error_rate","max":0.01},{"metric":"cpu","max":0.9}]}"#;
    assert_vote(
        &run(with(i.clone(), s2)),
        Verdict::Promote,
        "cpu: not in the request, skipped",
    );
    let s3 = r#"{"rules":[{"metric":"error_rate","max":0.01},{"metric":"cpu","max":0.9,"allow_missing":true}]}"#;
    assert_eq!(run(with(i.clone(), s3)).verdict(), Some(Verdict::Promote));
    // A per-rule false beats a top-level true.
    let s4 = r#"{"allow_missing":true,"rules":[{"metric":"error_rate","max":0.01},{"metric":"cpu","max":0.9,"allow_missing":false}]}"#;
    assert_eq!(run(with(i, s4)).verdict(), Some(Verdict::Hold));
}

#[test]
fn too_few_samples_hold_with_count_and_minimum() {
    let o = run(input(vec![canary("error_rate", &[0.0, 0.0, 0.0])]));
    assert_vote(
        &o,
        Verdict::Hold,
        "error_rate: 3 canary samples, need at least 5",
    );
    let r = first_reason(&o);
    assert_eq!((r.observed, r.threshold), (Some(3.0), Some(5.0)));
    // Present but empty (a metric source that returned nothing) is too few, not absent.
    let o = run(input(vec![canary("error_rate", &[])]));
    assert_vote(&o, Verdict::Hold, "0 canary samples, need at least 5");
}

#[test]
fn non_finite_samples_are_dropped_and_counted() {
    let xs = [
        f64::NAN,
        0.0,
        f64::INFINITY,
        0.0,
        0.0,
        0.0,
        f64::NEG_INFINITY,
    ];
    let o = run(input(vec![canary("error_rate", &xs)]));
    assert_vote(
        &o,
        Verdict::Hold,
        "4 usable canary samples (3 non-finite dropped)",
    );
    let o = run(input(vec![canary("error_rate", &[f64::NAN; 8])]));
    assert_eq!(o.verdict(), Some(Verdict::Hold));
    let mut xs = FIVE_LOW.to_vec();
    xs.push(f64::NAN);
    assert_eq!(
        run(input(vec![canary("error_rate", &xs)])).verdict(),
        Some(Verdict::Promote)
    );
}

#[test]
fn single_value_is_one_canary_sample() {
    let o = run(input(vec![Metric::value("error_rate", 0.002)]));
    assert_vote(&o, Verdict::Hold, "1 canary sample, need at least 5");
    let s = r#"{"rules":[{"metric":"error_rate","max":0.01,"min_samples":1}]}"#;
    let o = run(with(input(vec![Metric::value("error_rate", 0.05)]), s));
    assert_vote(
        &o,
        Verdict::Rollback,
        "canary mean 0.05 is above the maximum 0.01",
    );
    let o = run(with(input(vec![Metric::value("error_rate", f64::NAN)]), s));
    assert_vote(
        &o,
        Verdict::Hold,
        "0 usable canary samples (1 non-finite dropped)",
    );
}

#[test]
fn ratio_rule_compares_canary_with_baseline() {
    let base = [100.0, 100.0, 100.0, 100.0, 100.0];
    let m = |c: f64| Metric::samples("latency_p99_ms", &base, &[c; 5]);
    assert_vote(
        &run(input(vec![m(130.0)])),
        Verdict::Rollback,
        "canary/baseline mean ratio 1.3 (130 / 100)",
    );
    // Exactly at the maximum passes (inclusive bounds).
    assert_vote(
        &run(input(vec![m(120.0)])),
        Verdict::Promote,
        "ratio 1.2 (120 / 100) is at or below",
    );
    let o = run(input(vec![Metric::samples(
        "latency_p99_ms",
        &[100.0; 3],
        &[100.0; 5],
    )]));
    assert_vote(&o, Verdict::Hold, "3 baseline samples, need at least 5");
}

#[test]
fn ratio_with_zero_baseline() {
    let s = r#"{"rules":[{"metric":"errors","on":"ratio","max":1.5}]}"#;
    let o = run(with(
        input(vec![Metric::samples("errors", &[0.0; 5], &[0.0; 5])]),
        s,
    ));
    assert_vote(&o, Verdict::Promote, "ratio 1 (0 / 0, baseline is 0)");
    let o = run(with(
        input(vec![Metric::samples("errors", &[0.0; 5], &[1.0; 5])]),
        s,
    ));
    assert_vote(
        &o,
        Verdict::Rollback,
        "ratio inf (1 / 0, baseline is 0) is above the maximum 1.5",
    );
    // Infinity has no JSON form: left out of the structured field.
    assert_eq!(first_reason(&o).observed, None);
    let o = run(with(
        input(vec![Metric::samples("errors", &[-1.0; 5], &[1.0; 5])]),
        s,
    ));
    assert_vote(&o, Verdict::Hold, "undefined for negative values");
}

#[test]
fn statistics_and_sides() {
    let xs = [1.0, 2.0, 3.0, 4.0, 10.0];
    let cases = [
        ("p50", "max", 3.0, Verdict::Promote),
        ("p90", "max", 7.5, Verdict::Rollback),
        ("p95", "max", 8.7, Verdict::Rollback),
        ("p99", "max", 9.7, Verdict::Rollback),
        ("p99", "max", 9.76, Verdict::Promote),
        ("max", "max", 9.0, Verdict::Rollback),
        ("last", "max", 10.0, Verdict::Promote),
        ("min", "min", 1.0, Verdict::Promote),
        ("min", "min", 1.5, Verdict::Rollback),
        ("mean", "min", 4.0, Verdict::Promote),
    ];
    for (stat, bound, at, want) in cases {
        let s = format!(r#"{{"rules":[{{"metric":"m","stat":"{stat}","{bound}":{at}}}]}}"#);
        let o = run(with(input(vec![canary("m", &xs)]), &s));
        assert_eq!(o.verdict(), Some(want), "{s}: {}", o.messages());
    }
    let s = r#"{"rules":[{"metric":"m","on":"baseline","stat":"max","max":5}]}"#;
    let o = run(with(input(vec![Metric::samples("m", &xs, &[0.0; 5])]), s));
    assert_vote(
        &o,
        Verdict::Rollback,
        "baseline max 10 is above the maximum 5",
    );
}

#[test]
fn min_bound_and_on_fail_hold() {
    let s = r#"{"rules":[{"metric":"success_rate","min":0.99,"on_fail":"hold"}]}"#;
    let o = run(with(input(vec![canary("success_rate", &[0.98; 5])]), s));
    assert_vote(
        &o,
        Verdict::Hold,
        "canary mean 0.98 is below the minimum 0.99",
    );
    let o = run(with(input(vec![canary("success_rate", &[0.99; 5])]), s));
    assert_vote(&o, Verdict::Promote, "at or above the minimum 0.99");
    let s = r#"{"rules":[{"metric":"cpu","min":0.1,"max":0.8}]}"#;
    assert_vote(
        &run(with(input(vec![canary("cpu", &[0.8; 5])]), s)),
        Verdict::Promote,
        "within [0.1, 0.8]",
    );
}

#[test]
fn most_severe_rule_decides_and_comes_first() {
    let s = r#"{"rules":[{"metric":"a","max":1},{"metric":"b","max":1,"on_fail":"hold"},{"metric":"c","max":1}]}"#;
    let ms = vec![
        canary("a", &[0.0; 5]),
        canary("b", &[2.0; 5]),
        canary("c", &[2.0; 5]),
    ];
    let o = run(with(input(ms), s));
    assert_eq!(o.verdict(), Some(Verdict::Rollback));
    assert_eq!(first_reason(&o).metric.as_deref(), Some("c"));
    let Outcome::Vote(d) = o else { unreachable!() };
    assert_eq!(d.reasons.len(), 3);
}

#[test]
fn fixtures_pass() {
    // Each fixture through the SDK's native runner (as `verdict policy test` does in the sandbox).
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let n = verdict_sdk::testing::run_fixtures::<Thresholds>(dir);
    assert!(n >= 8, "at least 8 fixtures, found {n}");
}
