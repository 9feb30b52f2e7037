//! Policy-level tests: the exported functions on constructed inputs, the
//! fixtures run natively (the same files `verdict policy test` runs in the
//! sandbox), and inputs meant to break things.

use serde_json::{json, Value};
use verdict_sdk::*;

use crate::CanaryJudge;

fn eval(metrics: Vec<Metric>, settings: Value) -> Outcome {
    let input = Input {
        metrics,
        settings: settings.to_string(),
        ..Default::default()
    };
    CanaryJudge::evaluate(input).expect("valid settings")
}

/// 30 samples around `center`, deterministic, spread about ±`spread`.
fn series(center: f64, spread: f64, phase: usize) -> Vec<f64> {
    (0..30)
        .map(|i| center + spread * (((i * 7 + phase * 3) % 30) as f64 / 15.0 - 1.0))
        .collect()
}

fn latency(baseline: Vec<f64>, canary: Vec<f64>) -> Metric {
    Metric::samples("latency_p99_ms", &baseline, &canary)
}

#[test]
fn healthy_canary_promotes_with_score_reason() {
    let o = eval(
        vec![latency(series(180.0, 12.0, 0), series(180.0, 12.0, 1))],
        json!({}),
    );
    assert_eq!(o.verdict(), Some(Verdict::Promote), "{}", o.messages());
    assert!(
        o.messages().contains("score 100.0 meets pass threshold 95"),
        "{}",
        o.messages()
    );
}

#[test]
fn degraded_latency_rolls_back_with_metric_reason() {
    let o = eval(
        vec![latency(series(180.0, 12.0, 0), series(230.0, 12.0, 1))],
        json!({}),
    );
    assert_eq!(o.verdict(), Some(Verdict::Rollback), "{}", o.messages());
    let Outcome::Vote(d) = &o else { panic!() };
    let r = &d.reasons[0];
    assert_eq!(r.metric.as_deref(), Some("latency_p99_ms"));
    assert!(
        r.message
            .starts_with("latency_p99_ms high: canary mean 1.28x baseline"),
        "{}",
        r.message
    );
    assert!((r.observed.unwrap() - 230.0 / 180.0).abs() < 1e-3);
    assert_eq!(r.threshold, Some(1.0));
    assert_eq!(d.reasons.len(), 2);
}

#[test]
fn an_increase_of_a_decrease_metric_passes() {
    let m = Metric::samples("rps", &series(1000.0, 30.0, 0), &series(1300.0, 30.0, 1));
    let o = eval(
        vec![m],
        json!({"metrics": [{"name": "rps", "direction": "decrease"}]}),
    );
    assert_eq!(o.verdict(), Some(Verdict::Promote), "{}", o.messages());
}

#[test]
fn too_few_samples_hold_and_name_the_counts() {
    let o = eval(
        vec![latency(vec![180.0; 4], vec![400.0, 410.0, 420.0])],
        json!({}),
    );
    assert_eq!(o.verdict(), Some(Verdict::Hold));
    assert!(
        o.messages()
            .contains("latency_p99_ms: too few samples (baseline 4, canary 3; need 10 each)"),
        "{}",
        o.messages()
    );
}

#[test]
fn too_few_samples_never_promote_beside_a_passing_metric() {
    let ok = Metric::samples("cpu", &series(0.4, 0.05, 0), &series(0.4, 0.05, 1));
    let o = eval(vec![ok, latency(vec![180.0; 5], vec![181.0; 5])], json!({}));
    assert_eq!(o.verdict(), Some(Verdict::Hold), "{}", o.messages());
    assert!(o.messages().contains("too few samples"));
}

#[test]
fn abstains_without_configured_metrics() {
    let m = Metric::samples("queue_depth", &series(10.0, 2.0, 0), &series(10.0, 2.0, 1));
    let o = eval(
        vec![m.clone()],
        json!({"metrics": [{"name": "latency_p99_ms"}]}),
    );
    assert_eq!(o.verdict(), None);
    assert!(o
        .messages()
        .contains("none of the configured metrics (latency_p99_ms)"));
    // Unconfigured: a metric with a single value (a burn rate) is not ours either.
    let o = eval(vec![Metric::value("burn_rate_1h", 3.0)], json!({}));
    assert_eq!(o.verdict(), None);
    assert_eq!(eval(vec![], json!({})).verdict(), None);
}

#[test]
fn all_nan_samples_are_nodata_not_abstention() {
    let m = latency(vec![f64::NAN; 20], vec![f64::NAN; 20]);
    let o = eval(vec![m], json!({"metrics": [{"name": "latency_p99_ms"}]}));
    assert_eq!(o.verdict(), Some(Verdict::Hold), "{}", o.messages());
    assert!(o.messages().contains("no data"));
}

#[test]
fn nan_replace_counts_missing_as_zero() {
    let mut canary = vec![f64::NAN; 20];
    canary.extend([0.0; 10]);
    let m = Metric::samples("errors", &[0.0; 30], &canary);
    let cfg = |s: &str| json!({"metrics": [{"name": "errors", "nan_strategy": s}]});
    // replace: 30 zeros on both sides -> identical -> pass.
    assert_eq!(
        eval(vec![m.clone()], cfg("replace")).verdict(),
        Some(Verdict::Promote)
    );
    // remove: 10 canary samples left, still enough -> single value -> pass.
    assert_eq!(
        eval(vec![m], cfg("remove")).verdict(),
        Some(Verdict::Promote)
    );
}

#[test]
fn zero_baseline_errors_still_detect_a_rise() {
    let canary: Vec<f64> = (0..30).map(|i| (i % 4) as f64).collect();
    let o = eval(
        vec![Metric::samples("errors", &[0.0; 30], &canary)],
        json!({}),
    );
    assert_eq!(o.verdict(), Some(Verdict::Rollback), "{}", o.messages());
    assert!(
        o.messages().contains("vs a non-positive baseline"),
        "{}",
        o.messages()
    );
}

#[test]
fn critical_failure_zeroes_the_score() {
    let mut metrics: Vec<Metric> = (0..3)
        .map(|i| {
            Metric::samples(
                &format!("m{i}"),
                &series(50.0, 5.0, 0),
                &series(50.0, 5.0, 1),
            )
        })
        .collect();
    metrics.push(Metric::samples(
        "errors",
        &series(0.004, 0.001, 0),
        &series(0.009, 0.001, 1),
    ));
    let mut cfg: Vec<Value> = (0..3).map(|i| json!({"name": format!("m{i}")})).collect();
    cfg.push(json!({"name": "errors", "critical": true}));
    let o = eval(metrics.clone(), json!({"metrics": cfg.clone()}));
    assert_eq!(o.verdict(), Some(Verdict::Rollback));
    assert!(
        o.messages()
            .contains("score 0: critical metric errors failed"),
        "{}",
        o.messages()
    );
    // Not critical: 3 of 4 pass -> 75 -> marginal hold.
    cfg[3] = json!({"name": "errors"});
    let o = eval(metrics, json!({"metrics": cfg}));
    assert_eq!(o.verdict(), Some(Verdict::Hold), "{}", o.messages());
}

#[test]
fn group_weights_shape_the_score() {
    let bad = latency(series(180.0, 12.0, 0), series(240.0, 12.0, 1));
    let cpu = Metric::samples("cpu", &series(0.4, 0.05, 0), &series(0.4, 0.05, 1));
    let settings = |w: f64| {
        json!({"metrics": [{"name": "latency_p99_ms"}, {"name": "cpu", "group": "saturation"}],
               "group_weights": {"latency_p99_ms": w}})
    };
    let o = eval(vec![bad.clone(), cpu.clone()], settings(10.0));
    assert_eq!(o.verdict(), Some(Verdict::Hold), "{}", o.messages()); // 90
    assert!(o.messages().contains("score 90.0"));
    let o = eval(vec![bad, cpu], settings(50.0));
    assert_eq!(o.verdict(), Some(Verdict::Rollback), "{}", o.messages()); // 50
}

#[test]
fn reasons_stay_bounded_with_many_failing_metrics() {
    let metrics: Vec<Metric> = (0..100)
        .map(|i| {
            Metric::samples(
                &format!("m{i}"),
                &series(10.0, 1.0, 0),
                &series(20.0, 1.0, 1),
            )
        })
        .collect();
    let Outcome::Vote(d) = eval(metrics, json!({})) else {
        panic!()
    };
    assert_eq!(d.verdict, Verdict::Rollback);
    assert_eq!(d.reasons.len(), 16 + 2);
    assert!(d.reasons.iter().all(|r| r.message.len() < 200));
}

#[test]
fn hostile_inputs_never_panic() {
    let weird = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        -f64::MAX,
        0.0,
        -0.0,
        1e-310,
    ];
    let mut metrics = vec![
        Metric::samples("empty", &[], &[]),
        Metric::samples("weird", &weird.repeat(3), &weird.repeat(4)),
        Metric::samples("one_side", &series(1.0, 0.1, 0), &[]),
        Metric::samples(
            "huge",
            &vec![1.0; 30_000],
            &(0..30_000).map(|i| i as f64).collect::<Vec<_>>(),
        ),
        Metric::samples("negative", &series(-5.0, 1.0, 0), &series(-2.0, 1.0, 1)),
    ];
    metrics.push(metrics[1].clone()); // duplicate name
    for settings in [
        json!({}),
        json!({"min_samples": 1}),
        json!({"metrics": [{"name": "weird", "direction": "either"}, {"name": "huge", "outliers": {"strategy": "remove"}}]}),
    ] {
        let o = eval(metrics.clone(), settings);
        assert!(o.verdict().is_some());
    }
}

#[test]
fn validate_settings_rejects_bad_values_in_lowercase() {
    let bad = [
        (
            json!({"pass_threshold": 101}),
            "pass_threshold must be within 0..=100",
        ),
        (
            json!({"marginal_threshold": -1}),
            "marginal_threshold must be within 0..=100",
        ),
        (
            json!({"pass_threshold": 70, "marginal_threshold": 80}),
            "must not exceed pass_threshold",
        ),
        (
            json!({"confidence": 1.0}),
            "confidence must be between 0 and 1",
        ),
        (json!({"min_samples": 0}), "min_samples must be at least 1"),
        (
            json!({"metrics": [{"name": "a", "direction": "up"}]}),
            "unknown variant `up`",
        ),
        (
            json!({"metrics": [{"name": "a", "nan_strategy": "zero"}]}),
            "unknown variant `zero`",
        ),
        (
            json!({"metrics": [{"direction": "increase"}]}),
            "name must not be empty",
        ),
        (
            json!({"metrics": [{"name": "a"}, {"name": "a"}]}),
            "configured twice",
        ),
        (
            json!({"metrics": [{"name": "a", "effect_size": {"allowed_increase": 0.9}}]}),
            "must be at least 1",
        ),
        (
            json!({"metrics": [{"name": "a", "effect_size": {"allowed_decrease": 1.1}}]}),
            "within 0..=1",
        ),
        (
            json!({"metrics": [{"name": "a"}], "group_weights": {"b": 10}}),
            "no metric belongs to",
        ),
        (
            json!({"group_weights": {"a": 70, "b": 40}}),
            "sum to at most 100",
        ),
        (
            json!({"metrics": [{"name": "a", "critcal": true}]}),
            "unknown field `critcal`",
        ),
        (json!({"thresholds": {}}), "unknown field `thresholds`"),
        (json!([1, 2]), "invalid settings"),
    ];
    for (settings, want) in bad {
        let err = CanaryJudge::validate_settings(settings.to_string()).unwrap_err();
        assert!(err.contains(want), "{settings}: {err}");
        assert!(err.starts_with("invalid settings: "), "{err}");
        let input = Input {
            settings: settings.to_string(),
            ..Default::default()
        };
        assert!(CanaryJudge::evaluate(input).is_err());
    }
    assert!(CanaryJudge::validate_settings(String::new()).is_ok());
    assert!(CanaryJudge::validate_settings("{}".into()).is_ok());
}

#[test]
fn describe_exposes_defaults_that_validate() {
    let info = CanaryJudge::describe();
    assert_eq!(info.name, "canary-judge");
    let defaults: Value = serde_json::from_str(&info.default_settings).unwrap();
    assert_eq!(defaults["confidence"], 0.98);
    assert_eq!(defaults["pass_threshold"], 95.0);
    assert_eq!(defaults["marginal_threshold"], 75.0);
    assert_eq!(defaults["min_samples"], 10);
    CanaryJudge::validate_settings(info.default_settings).unwrap();
}

/// Build an Input from a fixture (the body of POST /v1/decisions, with its
/// settings): JSON null samples arrive as NaN, as the host delivers them.
fn fixture_input(doc: &Value) -> Input {
    verdict_sdk::testing::fixture_input(doc).unwrap()
}

#[test]
fn fixtures_pass_natively() {
    // What each fixture decided and why is visible with `cargo test -- --nocapture`.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let n = verdict_sdk::testing::run_fixtures::<CanaryJudge>(&dir);
    assert!(n >= 10, "expected at least 10 fixtures");
}

/// The statistics on fixture data match scipy's full-precision numbers
/// (`scripts/reference.py`; the fixture descriptions carry them rounded).
#[test]
fn fixture_statistics_match_scipy() {
    let cases = [
        // (fixture, metric, U, p, estimate, lower, upper)
        (
            "02-degraded-latency-rollback",
            "latency_p99_ms",
            1597.0,
            1.794601126773344e-14,
            48.95,
            42.400000000000006,
            55.80000000000001,
        ),
        (
            "03-ties-heavy-small-shift-promote",
            "db_query_ms",
            1203.0,
            7.471614492626047e-05,
            1.0,
            1.0,
            2.0,
        ),
        (
            "07-throughput-drop-rollback",
            "requests_per_second",
            0.0,
            2.999100614022856e-11,
            -194.0,
            -219.0,
            -171.0,
        ),
        (
            "08-critical-metric-rollback",
            "error_rate",
            896.0,
            4.493235842921813e-11,
            0.0028200000000000005,
            0.00221,
            0.0034000000000000002,
        ),
        (
            "11-nan-replace-error-count-rollback",
            "http_5xx_count",
            783.0,
            2.3081408314143703e-07,
            2.0,
            1.0,
            2.0,
        ),
        (
            "12-nan-remove-gaps-promote",
            "latency_p99_ms",
            424.5,
            0.11311941085864165,
            7.400000000000006,
            -3.299999999999983,
            15.599999999999994,
        ),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for (file, metric, u, p, est, lo, hi) in cases {
        let doc: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{file}.json"))).unwrap(),
        )
        .unwrap();
        let input = fixture_input(&doc);
        let m = input.metric(metric).unwrap();
        // Clean as the policy does: fixture 11 replaces NaN with 0, the others drop it.
        let fix = |v: &[f64]| -> Vec<f64> {
            v.iter()
                .filter_map(|&s| {
                    if s.is_nan() {
                        (file.starts_with("11")).then_some(0.0)
                    } else {
                        Some(s)
                    }
                })
                .collect()
        };
        let mw =
            crate::mannwhitney::mann_whitney(&fix(&m.canary), &fix(&m.baseline), 0.98).unwrap();
        assert_eq!(mw.u, u, "{file}");
        assert!(
            (mw.p_value - p).abs() <= 1e-9 * p,
            "{file}: p {} want {p}",
            mw.p_value
        );
        for (got, want) in [(mw.estimate, est), (mw.lower, lo), (mw.upper, hi)] {
            assert!(
                (got - want).abs() <= 1e-12 * want.abs().max(1e-3),
                "{file}: {mw:?}"
            );
        }
    }
}
