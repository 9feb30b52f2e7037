//! Native unit tests: one or more per rule of README.md.

use super::*;

mod config;

pub(super) fn input(metrics: Vec<Metric>) -> Input {
    Input {
        metrics,
        ..Default::default()
    }
}

fn canary(mut i: Input, traffic: f64) -> Input {
    i.deployment.traffic_percent = Some(traffic);
    i.deployment.version = "v2".into();
    i
}

fn labelled(mut i: Input, label: &str) -> Input {
    i.change.labels.push(label.into());
    i
}

pub(super) fn with(mut i: Input, settings: &str) -> Input {
    i.settings = settings.into();
    i
}

fn run(i: Input) -> Outcome {
    ErrorBudget::evaluate(i).expect("valid settings")
}

fn burns(pairs: &[(&str, f64)]) -> Vec<Metric> {
    pairs
        .iter()
        .map(|(w, v)| Metric::value(&format!("burn_rate_{w}"), *v))
        .collect()
}

/// All four default pairs comfortably healthy.
pub(super) fn healthy() -> Vec<Metric> {
    burns(&[
        ("1h", 1.0),
        ("5m", 2.0),
        ("6h", 0.8),
        ("30m", 0.9),
        ("1d", 0.5),
        ("2h", 0.7),
        ("3d", 0.4),
    ])
}

fn replace(mut ms: Vec<Metric>, name: &str, v: f64) -> Vec<Metric> {
    ms.retain(|m| m.name != name);
    ms.push(Metric::value(name, v));
    ms
}

#[track_caller]
fn assert_vote(o: &Outcome, v: Verdict, needle: &str) {
    assert_eq!(o.verdict(), Some(v), "reasons: {}", o.messages());
    assert!(
        o.messages().contains(needle),
        "{needle:?} not in: {}",
        o.messages()
    );
}

#[test]
fn abstains_without_any_of_its_metrics() {
    let o = run(input(vec![]));
    assert_eq!(o.verdict(), None);
    assert!(o.messages().contains("burn_rate_1h"));
    let o = run(input(vec![Metric::samples(
        "latency_p99_ms",
        &[1.0],
        &[2.0],
    )]));
    assert_eq!(o.verdict(), None);
}

#[test]
fn healthy_windows_promote_and_list_burn_rates() {
    let o = run(input(healthy()));
    assert_vote(
        &o,
        Verdict::Promote,
        "page 1h/5m: burn rate 1 over 1h and 2 over 5m",
    );
    assert!(o.messages().contains("ticket 3d/6h"));
}

#[test]
fn page_pair_on_serving_canary_rolls_back() {
    let ms = replace(
        replace(healthy(), "burn_rate_1h", 15.2),
        "burn_rate_5m",
        20.0,
    );
    let o = run(canary(input(ms), 10.0));
    assert_vote(&o, Verdict::Rollback, "serves 10% of traffic, rolling back");
    // The deciding reason comes first and carries the numbers.
    let Outcome::Vote(d) = o else { unreachable!() };
    assert_eq!(d.reasons[0].metric.as_deref(), Some("burn_rate_1h"));
    assert_eq!(d.reasons[0].observed, Some(15.2));
    assert_eq!(d.reasons[0].threshold, Some(14.4));
}

#[test]
fn page_pair_without_canary_holds() {
    let ms = replace(
        replace(healthy(), "burn_rate_6h", 7.0),
        "burn_rate_30m",
        9.0,
    );
    let o = run(input(ms.clone()));
    assert_vote(
        &o,
        Verdict::Hold,
        "no canary of this change is serving traffic",
    );
    // Zero traffic is not serving either.
    assert_eq!(run(canary(input(ms), 0.0)).verdict(), Some(Verdict::Hold));
}

#[test]
fn canary_stage_counts_as_serving() {
    let ms = replace(
        replace(healthy(), "burn_rate_1h", 15.0),
        "burn_rate_5m",
        15.0,
    );
    let mut i = input(ms);
    i.deployment.stage = Some("Canary".into());
    assert_vote(&run(i), Verdict::Rollback, "is in stage Canary");
}

#[test]
fn on_page_hold_holds_even_on_canary() {
    let ms = replace(
        replace(healthy(), "burn_rate_1h", 15.0),
        "burn_rate_5m",
        15.0,
    );
    let o = run(with(canary(input(ms), 50.0), r#"{"on_page":"hold"}"#));
    assert_vote(&o, Verdict::Hold, "on_page is hold");
}

#[test]
fn one_window_over_threshold_does_not_fire() {
    let ms = replace(healthy(), "burn_rate_1h", 30.0);
    assert_vote(
        &run(canary(input(ms), 10.0)),
        Verdict::Promote,
        "not both above 14.4",
    );
}

#[test]
fn exactly_at_threshold_does_not_fire() {
    let ms = replace(
        replace(healthy(), "burn_rate_1h", 14.4),
        "burn_rate_5m",
        14.4,
    );
    assert_eq!(
        run(canary(input(ms), 10.0)).verdict(),
        Some(Verdict::Promote)
    );
    let ms = replace(replace(healthy(), "burn_rate_3d", 1.0), "burn_rate_6h", 1.0);
    assert_eq!(run(input(ms)).verdict(), Some(Verdict::Promote));
}

#[test]
fn ticket_pair_holds() {
    let ms = replace(replace(healthy(), "burn_rate_1d", 3.5), "burn_rate_2h", 4.0);
    assert_vote(&run(canary(input(ms), 10.0)), Verdict::Hold, "ticket 1d/2h");
}

#[test]
fn ticket_pair_does_not_hold_a_fix() {
    let ms = replace(replace(healthy(), "burn_rate_1d", 3.5), "burn_rate_2h", 4.0);
    let o = run(labelled(input(ms), "Hotfix"));
    assert_vote(
        &o,
        Verdict::Promote,
        "labelled hotfix, fix exemption applied",
    );
}

#[test]
fn missing_partner_window_holds_and_names_it() {
    let mut ms = healthy();
    ms.retain(|m| m.name != "burn_rate_5m");
    assert_vote(&run(input(ms)), Verdict::Hold, "burn_rate_5m is missing");
    let mut ms = healthy();
    ms.retain(|m| m.name != "burn_rate_1d");
    assert_vote(&run(input(ms)), Verdict::Hold, "burn_rate_1d is missing");
}

#[test]
fn wholly_missing_pair_is_noted_or_held() {
    let ms = burns(&[("1h", 1.0), ("5m", 1.0)]);
    assert_vote(
        &run(input(ms.clone())),
        Verdict::Promote,
        "ticket 1d/2h: no data",
    );
    let o = run(with(input(ms), r#"{"require_all_pairs":true}"#));
    assert_vote(&o, Verdict::Hold, "require_all_pairs is set");
}

#[test]
fn unusable_values_hold() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0] {
        let ms = replace(healthy(), "burn_rate_5m", bad);
        assert_vote(
            &run(input(ms)),
            Verdict::Hold,
            "burn_rate_5m is not a usable burn rate",
        );
    }
    let mut ms = healthy();
    ms.push(Metric::samples("burn_rate_5m", &[], &[]));
    ms.retain(|m| !(m.name == "burn_rate_5m" && m.value.is_some()));
    assert_vote(&run(input(ms)), Verdict::Hold, "burn_rate_5m has no value");
}

#[test]
fn series_without_value_uses_latest_canary_sample() {
    let mut ms = replace(healthy(), "burn_rate_1h", 20.0);
    ms.retain(|m| m.name != "burn_rate_5m");
    ms.push(Metric::samples("burn_rate_5m", &[], &[1.0, 30.0]));
    assert_eq!(
        run(canary(input(ms), 5.0)).verdict(),
        Some(Verdict::Rollback)
    );
}

#[test]
fn budget_exhausted_freezes() {
    let ms = replace(healthy(), "error_budget_remaining", 0.0);
    assert_vote(&run(input(ms)), Verdict::Freeze, "error budget exhausted");
    let ms = vec![Metric::value("error_budget_remaining", -0.2)];
    assert_vote(
        &run(input(ms)),
        Verdict::Freeze,
        "only changes labelled hotfix, fix, revert, rollback",
    );
    let ms = vec![Metric::value("error_budget_remaining", -0.2)];
    let o = run(with(labelled(input(ms), "hotfix"), r#"{"fix_labels":[]}"#));
    assert_vote(
        &o,
        Verdict::Freeze,
        "no change may deploy (no fix_labels configured)",
    );
}

#[test]
fn budget_exhausted_lets_fixes_through() {
    let ms = replace(healthy(), "error_budget_remaining", -0.1);
    let o = run(labelled(input(ms), "revert"));
    assert_vote(
        &o,
        Verdict::Promote,
        "labelled revert: fix exemption applied",
    );
}

#[test]
fn fix_exemption_does_not_override_a_page() {
    let ms = replace(
        replace(healthy(), "burn_rate_1h", 20.0),
        "burn_rate_5m",
        20.0,
    );
    let ms = replace(ms, "error_budget_remaining", 0.0);
    let o = run(canary(labelled(input(ms), "hotfix"), 5.0));
    assert_vote(&o, Verdict::Rollback, "fix exemption applied");
}

#[test]
fn budget_threshold_is_configurable_and_checked() {
    let ms = vec![Metric::value("error_budget_remaining", 0.05)];
    assert_vote(
        &run(input(ms.clone())),
        Verdict::Promote,
        "error budget remaining 5%",
    );
    let o = run(with(input(ms), r#"{"exhausted_at":0.1}"#));
    assert_eq!(o.verdict(), Some(Verdict::Freeze));
    for bad in [f64::NAN, 1.5] {
        let ms = vec![Metric::value("error_budget_remaining", bad)];
        assert_vote(
            &run(input(ms)),
            Verdict::Hold,
            "not a usable budget fraction",
        );
    }
}

#[test]
fn error_ratios_convert_with_slo() {
    let ms = vec![
        Metric::value("error_ratio_1h", 0.02),
        Metric::value("error_ratio_5m", 0.03),
    ];
    let o = run(canary(with(input(ms.clone()), r#"{"slo":0.999}"#), 10.0));
    assert_vote(&o, Verdict::Rollback, "error ratio 0.02 at slo 0.999");
    // Without an slo the ratio cannot be read: hold, and say what is needed.
    assert_vote(&run(input(ms)), Verdict::Hold, "needs the slo setting");
    let ms = vec![
        Metric::value("error_ratio_1h", 1.5),
        Metric::value("error_ratio_5m", 0.0),
    ];
    let o = run(with(input(ms), r#"{"slo":0.99}"#));
    assert_vote(&o, Verdict::Hold, "not an error ratio in [0, 1]");
}

#[test]
fn burn_rate_wins_over_error_ratio() {
    let ms = vec![
        Metric::value("burn_rate_1h", 1.0),
        Metric::value("error_ratio_1h", 0.5),
        Metric::value("burn_rate_5m", 1.0),
    ];
    let o = run(canary(with(input(ms), r#"{"slo":0.999}"#), 10.0));
    assert_vote(&o, Verdict::Promote, "burn rate 1 over 1h and 1 over 5m");
}

#[test]
fn missing_name_mentions_error_ratio_when_slo_set() {
    let ms = vec![Metric::value("error_ratio_1h", 0.0)];
    let o = run(with(input(ms), r#"{"slo":0.99}"#));
    assert_vote(
        &o,
        Verdict::Hold,
        "burn_rate_5m (or error_ratio_5m) is missing",
    );
}

#[test]
fn metric_names_follow_template_and_overrides() {
    let s = r#"{"alerts":[{"severity":"page","long":"1h","short":"5m","burn_rate":14.4}],
        "burn_rate_metric":"slo:burn_rate:{window}","burn_rate_overrides":{"5m":"fast_burn"}}"#;
    let ms = vec![
        Metric::value("slo:burn_rate:1h", 20.0),
        Metric::value("fast_burn", 20.0),
    ];
    assert_eq!(
        run(canary(with(input(ms), s), 1.0)).verdict(),
        Some(Verdict::Rollback)
    );
}

#[test]
fn no_panics_on_hostile_values() {
    let weird = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        1e308,
        -1e308,
        5e-324,
        2.0,
    ];
    let names: Vec<String> = crate::Settings::default().metric_names();
    for s in [
        "{}",
        r#"{"slo":0.999999999}"#,
        r#"{"slo":1e-300,"require_all_pairs":true}"#,
    ] {
        for (i, a) in weird.iter().enumerate() {
            for traffic in [None, Some(f64::NAN), Some(-5.0), Some(*a)] {
                let ms: Vec<Metric> = names
                    .iter()
                    .enumerate()
                    .map(|(j, n)| Metric::value(n, weird[(i + j) % weird.len()]))
                    .collect();
                let mut inp = with(input(ms), s);
                inp.deployment.traffic_percent = traffic;
                let _ = run(inp);
            }
        }
    }
}

#[test]
fn fixtures_pass() {
    // Each fixture through the SDK's native runner (as `verdict policy test` does in the sandbox).
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let n = verdict_sdk::testing::run_fixtures::<ErrorBudget>(dir);
    assert!(n >= 8, "at least 8 fixtures, found {n}");
}
