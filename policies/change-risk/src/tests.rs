//! Whole-policy tests: settings JSON in, outcome out, as the host would call it.

use super::*;

/// Tuesday 2026-03-24 11:00 UTC: working hours under the default off_hours.
const WORK_HOURS: &str = "2026-03-24T11:00:00Z";

fn change(files: u32, added: u32, removed: u32, paths: &[&str], ticket: Option<&str>) -> Change {
    Change {
        commit: Some("abc123".into()),
        files_changed: files,
        lines_added: added,
        lines_removed: removed,
        paths: paths.iter().map(|p| p.to_string()).collect(),
        ticket: ticket.map(String::from),
        ..Change::default()
    }
}

fn run_at(ch: Change, env: &str, now: &str, settings: &str) -> Outcome {
    let ts: jiff::Timestamp = now.parse().unwrap();
    let mut i = Input::default();
    i.deployment.service = "checkout".into();
    i.deployment.environment = env.into();
    i.change = ch;
    i.now_unix_ms = ts.as_millisecond();
    i.settings = settings.into();
    ChangeRisk::evaluate(i).unwrap()
}

fn run(ch: Change) -> Outcome {
    run_at(ch, "production", WORK_HOURS, "{}")
}

fn reasons(o: &Outcome) -> Vec<Reason> {
    match o {
        Outcome::Vote(d) => d.reasons.clone(),
        Outcome::Abstain(_) => vec![],
    }
}

#[test]
fn small_ticketed_change_promotes_with_a_summary() {
    let o = run(change(
        3,
        40,
        2,
        &["src/a.rs", "src/b.rs", "README.md"],
        Some("OPS-1"),
    ));
    assert_eq!(o.verdict(), Some(Verdict::Promote));
    assert_eq!(
        o.messages(),
        "risk score 0 below hold score 3: 3 files, 42 lines, no risky path"
    );
    assert_eq!(reasons(&o)[0].observed, Some(0.0));
}

#[test]
fn big_diff_alone_promotes_but_says_why_it_scored() {
    let o = run(change(12, 1500, 340, &[], Some("OPS-1")));
    assert_eq!(o.verdict(), Some(Verdict::Promote));
    assert_eq!(
        o.messages(),
        "risk score 2 below hold score 3: 1840 lines changed exceeds 1000"
    );
}

#[test]
fn big_risky_change_holds_with_one_reason_per_trigger() {
    let o = run(change(
        60,
        1500,
        340,
        &["db/migrations/0042.sql", "src/auth/login.rs", "src/x.rs"],
        Some("OPS-1"),
    ));
    assert_eq!(o.verdict(), Some(Verdict::Hold));
    let r = reasons(&o);
    let msgs: Vec<&str> = r.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(
        msgs,
        vec![
            "risk score 6 reaches hold score 3",
            "60 files changed exceeds 50 (+2)",
            "1840 lines changed exceeds 1000 (+2)",
            "touches risky path `db/migrations/0042.sql` (matches `**/migrations/**`) and 1 more (+2)",
        ]
    );
    assert_eq!(
        (r[2].metric.as_deref(), r[2].observed, r[2].threshold),
        (Some("lines_changed"), Some(1840.0), Some(1000.0))
    );
    assert_eq!((r[0].observed, r[0].threshold), (Some(6.0), Some(3.0)));
}

#[test]
fn missing_ticket_holds_only_where_required() {
    let ch = || change(1, 5, 0, &["src/a.rs"], None);
    let o = run(ch());
    assert_eq!(o.verdict(), Some(Verdict::Hold));
    assert!(o
        .messages()
        .contains("no ticket for a `production` deployment (+3)"));
    assert_eq!(
        run_at(ch(), "staging", WORK_HOURS, "{}").verdict(),
        Some(Verdict::Promote)
    );
    let blank = change(1, 5, 0, &["src/a.rs"], Some("  "));
    assert_eq!(run(blank).verdict(), Some(Verdict::Hold));
}

#[test]
fn declared_risk_and_risk_labels() {
    let mut ch = change(1, 5, 0, &["src/a.rs"], Some("OPS-1"));
    ch.risk = Some("High".into());
    let o = run(ch);
    assert_eq!(o.verdict(), Some(Verdict::Hold));
    assert!(o.messages().contains("declared risk `High` (+3)"));
    let mut ch = change(1, 5, 0, &["src/a.rs"], Some("OPS-1"));
    ch.labels = vec!["breaking-change".into()];
    assert!(run(ch).messages().contains("labelled `breaking-change`"));
    let mut ch = change(1, 5, 0, &["src/a.rs"], Some("OPS-1"));
    ch.risk = Some("low".into());
    assert_eq!(run(ch).verdict(), Some(Verdict::Promote));
}

#[test]
fn off_hours_tip_a_risky_change() {
    let ch = || change(2, 10, 0, &["infra/main.tf"], Some("OPS-1"));
    assert_eq!(run(ch()).verdict(), Some(Verdict::Promote)); // risky path alone: 2
    let o = run_at(ch(), "production", "2026-03-28T12:00:00Z", "{}"); // Saturday
    assert_eq!(o.verdict(), Some(Verdict::Hold));
    assert!(o
        .messages()
        .contains("deploying on a weekend (Sat 12:00 UTC, UTC) (+1)"));
    let off = r#"{"off_hours":null}"#;
    assert_eq!(
        run_at(ch(), "production", "2026-03-28T12:00:00Z", off).verdict(),
        Some(Verdict::Promote)
    );
}

#[test]
fn exempt_label_promotes_and_lists_what_was_waived() {
    let mut ch = change(60, 1500, 340, &["db/migrations/0042.sql"], None);
    ch.labels = vec!["Risk-Accepted".into()];
    let o = run(ch);
    assert_eq!(o.verdict(), Some(Verdict::Promote));
    assert!(o
        .messages()
        .starts_with("label `risk-accepted` exempts this change: risk score 9 would hold"));
}

#[test]
fn zero_points_turn_a_trigger_off_and_hold_score_is_configurable() {
    let ch = || change(1, 5, 0, &["src/a.rs"], None);
    assert_eq!(
        run_at(
            ch(),
            "production",
            WORK_HOURS,
            r#"{"points":{"missing_ticket":0}}"#
        )
        .verdict(),
        Some(Verdict::Promote)
    );
    assert_eq!(
        run_at(ch(), "production", WORK_HOURS, r#"{"hold_score":4}"#).verdict(),
        Some(Verdict::Promote)
    );
}

#[test]
fn empty_change_context_abstains() {
    let o = run(Change::default());
    assert_eq!(o.verdict(), None);
    assert!(o.messages().starts_with("no change context"));
    // Any one field is enough context to judge (here: production without a ticket).
    let ch = Change {
        commit: Some("abc".into()),
        ..Change::default()
    };
    assert_eq!(run(ch).verdict(), Some(Verdict::Hold));
}

#[test]
fn extreme_inputs_do_not_panic() {
    let mut ch = change(u32::MAX, u32::MAX, u32::MAX, &[], Some("OPS-1"));
    ch.paths = (0..2000)
        .map(|i| format!("{}/f{i}", "d/".repeat(50)))
        .collect();
    let o = run_at(
        ch,
        "production",
        WORK_HOURS,
        r#"{"points":{"files":4294967295,"lines":4294967295}}"#,
    );
    assert_eq!(o.verdict(), Some(Verdict::Hold));
    let i = Input {
        change: change(1, 1, 1, &[], None),
        now_unix_ms: i64::MIN,
        ..Input::default()
    };
    assert!(ChangeRisk::evaluate(i).is_ok());
}

#[test]
fn invalid_settings_are_errors_and_defaults_are_described() {
    let i = Input {
        settings: r#"{"max_lines":"lots"}"#.into(),
        ..Input::default()
    };
    assert!(ChangeRisk::evaluate(i)
        .unwrap_err()
        .starts_with("invalid settings"));
    let info = ChangeRisk::describe();
    assert!(info.default_settings.contains(r#""hold_score":3"#));
    assert!(ChangeRisk::validate_settings(info.default_settings).is_ok());
}
