//! Whole-policy tests: settings JSON in, outcome out, as the host would call it.

use super::*;

fn input(env: &str, labels: &[&str], now: &str, settings: &str) -> Input {
    let ts: Timestamp = now.parse().unwrap();
    let mut i = Input::default();
    i.deployment.service = "checkout".into();
    i.deployment.environment = env.into();
    i.change.labels = labels.iter().map(|l| l.to_string()).collect();
    i.now_unix_ms = ts.as_millisecond();
    i.settings = settings.into();
    i
}

fn run(env: &str, labels: &[&str], now: &str, settings: &str) -> Outcome {
    FreezeWindow::evaluate(input(env, labels, now, settings)).unwrap()
}

fn verdict(o: &Outcome) -> Option<Verdict> {
    o.verdict()
}

const BERLIN_SUNDAY_NIGHT: &str = r#"{"windows":[{"name":"maintenance","timezone":"Europe/Berlin",
    "weekly":{"days":["sun"],"start":"01:30","end":"02:30"}}]}"#;

#[test]
fn spring_forward_freezes_until_the_pushed_end() {
    let o = run(
        "production",
        &[],
        "2026-03-29T00:45:00Z",
        BERLIN_SUNDAY_NIGHT,
    );
    assert_eq!(verdict(&o), Some(Verdict::Freeze));
    assert_eq!(
        o.messages(),
        "deny window `maintenance` (Europe/Berlin) is open until 2026-03-29 03:30 CEST"
    );
    // 03:15 CEST: the wall clock is past 02:30 but the window's real hour is not over.
    assert_eq!(
        verdict(&run(
            "production",
            &[],
            "2026-03-29T01:15:00Z",
            BERLIN_SUNDAY_NIGHT
        )),
        Some(Verdict::Freeze)
    );
    assert_eq!(
        verdict(&run(
            "production",
            &[],
            "2026-03-29T01:30:00Z",
            BERLIN_SUNDAY_NIGHT
        )),
        Some(Verdict::Promote)
    );
}

#[test]
fn fall_back_freezes_both_passes_of_the_repeated_hour() {
    let s = r#"{"windows":[{"name":"repeat","timezone":"Europe/Berlin",
        "weekly":{"days":["sun"],"start":"02:00","end":"03:00"}}]}"#;
    for now in ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"] {
        let o = run("production", &[], now, s);
        assert_eq!(verdict(&o), Some(Verdict::Freeze), "{now}");
        assert!(
            o.messages().contains("until 2026-10-25 03:00 CET"),
            "{}",
            o.messages()
        );
    }
    assert_eq!(
        verdict(&run("production", &[], "2026-10-25T02:00:00Z", s)),
        Some(Verdict::Promote)
    );
}

#[test]
fn exempt_label_passes_a_deny_window_and_says_so() {
    let o = run(
        "production",
        &["HotFix"],
        "2026-03-29T00:45:00Z",
        BERLIN_SUNDAY_NIGHT,
    );
    assert_eq!(verdict(&o), Some(Verdict::Promote));
    assert!(o
        .messages()
        .starts_with("label `hotfix` exempts this change: deny window `maintenance`"));
    let custom = r#"{"exempt_labels":["sev1"],"windows":[{"name":"all","cron":{"expr":"* * * * *","duration":"1m"}}]}"#;
    assert_eq!(
        verdict(&run(
            "production",
            &["hotfix"],
            "2026-03-29T00:45:00Z",
            custom
        )),
        Some(Verdict::Freeze)
    );
    assert_eq!(
        verdict(&run(
            "production",
            &["sev1"],
            "2026-03-29T00:45:00Z",
            custom
        )),
        Some(Verdict::Promote)
    );
}

const BUSINESS_HOURS: &str = r#"{"windows":[
    {"name":"business-hours","kind":"allow","timezone":"America/New_York",
     "weekly":{"days":["mon-thu"],"start":"09:00","end":"16:00"}},
    {"name":"quarter-close","timezone":"America/New_York",
     "dates":{"from":"2026-03-30T12:00","to":"2026-03-31T00:00"}}]}"#;

#[test]
fn allow_windows_permit_only_while_open() {
    // Monday 2026-03-30 10:00 EDT.
    let o = run("production", &[], "2026-03-30T14:00:00Z", BUSINESS_HOURS);
    assert_eq!(verdict(&o), Some(Verdict::Promote));
    assert_eq!(
        o.messages(),
        "inside allow window `business-hours` (America/New_York) until 2026-03-30 16:00 EDT; no deny window open (1 checked)"
    );
    // Friday 10:00 EDT: closed, and the reason says when it opens.
    let o = run("production", &[], "2026-03-27T14:00:00Z", BUSINESS_HOURS);
    assert_eq!(verdict(&o), Some(Verdict::Freeze));
    assert_eq!(
        o.messages(),
        "outside allow window `business-hours`; next opens 2026-03-30 09:00 EDT (America/New_York)"
    );
    // The break-glass label also opens the closed time outside allow windows.
    assert_eq!(
        verdict(&run(
            "production",
            &["emergency"],
            "2026-03-27T14:00:00Z",
            BUSINESS_HOURS
        )),
        Some(Verdict::Promote)
    );
}

#[test]
fn deny_beats_allow() {
    // Monday 13:00 EDT: inside business hours but inside the one-off quarter-close freeze.
    let o = run("production", &[], "2026-03-30T17:00:00Z", BUSINESS_HOURS);
    assert_eq!(verdict(&o), Some(Verdict::Freeze));
    assert_eq!(
        o.messages(),
        "deny window `quarter-close` (America/New_York) is open until 2026-03-31 00:00 EDT"
    );
}

#[test]
fn selectors_scope_windows_and_abstain_when_none_apply() {
    let s = r#"{"windows":[{"name":"prod-nights","selector":{"environments":["production"]},
        "weekly":{"start":"22:00","end":"06:00"}}]}"#;
    assert_eq!(
        verdict(&run("production", &[], "2026-03-27T23:00:00Z", s)),
        Some(Verdict::Freeze)
    );
    let o = run("staging", &[], "2026-03-27T23:00:00Z", s);
    assert_eq!(verdict(&o), None);
    assert_eq!(
        o.messages(),
        "no window applies to service `checkout` in environment `staging`"
    );
    let o = run("production", &[], "2026-03-27T23:00:00Z", "{}");
    assert_eq!(o.messages(), "no freeze windows configured");
    assert_eq!(verdict(&o), None);
}

#[test]
fn span_midnight_weekly_window() {
    let s = r#"{"windows":[{"name":"nightly","timezone":"Asia/Tokyo",
        "weekly":{"days":["fri"],"start":"23:00","end":"01:00"}}]}"#;
    // Saturday 00:30 JST still belongs to Friday's window.
    let o = run("production", &[], "2026-03-27T15:30:00Z", s);
    assert_eq!(verdict(&o), Some(Verdict::Freeze));
    assert!(o.messages().ends_with("until 2026-03-28 01:00 JST"));
    // Saturday 23:30 JST: Saturday is not listed.
    assert_eq!(
        verdict(&run("production", &[], "2026-03-28T14:30:00Z", s)),
        Some(Verdict::Promote)
    );
}

#[test]
fn cron_window_reports_its_end() {
    let s = r#"{"windows":[{"name":"release-train","timezone":"Europe/London",
        "cron":{"expr":"0 16 * * FRI","duration":"2d16h"}}]}"#;
    // Sunday 2026-03-29 12:00 BST (the day clocks went forward): opened Friday 16:00 GMT.
    let o = run("production", &[], "2026-03-29T11:00:00Z", s);
    assert_eq!(verdict(&o), Some(Verdict::Freeze));
    assert!(
        o.messages().ends_with("until 2026-03-30 09:00 BST"),
        "{}",
        o.messages()
    );
}

#[test]
fn many_open_windows_are_capped() {
    let windows: Vec<String> = (0..6)
        .map(|i| format!(r#"{{"name":"w{i}","cron":{{"expr":"* * * * *","duration":"5m"}}}}"#))
        .collect();
    let s = format!(r#"{{"windows":[{}]}}"#, windows.join(","));
    let o = run("production", &[], "2026-01-01T00:00:00Z", &s);
    let Outcome::Vote(d) = &o else { panic!() };
    assert_eq!(d.reasons.len(), MAX_REASONS);
    assert_eq!(d.reasons[2].message, "and 4 more windows");
}

#[test]
fn invalid_settings_are_the_only_error() {
    let mut i = input(
        "production",
        &[],
        "2026-01-01T00:00:00Z",
        r#"{"windows":[{"name":"x","timezone":"Nowhere/Land","weekly":{"start":"00:00","end":"01:00"}}]}"#,
    );
    assert_eq!(
        FreezeWindow::evaluate(i.clone()).unwrap_err(),
        "window `x`: unknown time zone `Nowhere/Land`"
    );
    assert!(FreezeWindow::validate_settings(i.settings.clone()).is_err());
    // An absurd clock is held, not errored and not silently passed.
    i.settings = BERLIN_SUNDAY_NIGHT.into();
    for ms in [i64::MIN, i64::MAX] {
        i.now_unix_ms = ms;
        assert_eq!(
            verdict(&FreezeWindow::evaluate(i.clone()).unwrap()),
            Some(Verdict::Hold)
        );
    }
}

#[test]
fn describe_exposes_parseable_defaults() {
    let info = FreezeWindow::describe();
    assert_eq!(info.name, "freeze-window");
    assert_eq!(
        info.default_settings,
        r#"{"windows":[],"exempt_labels":["hotfix","emergency"]}"#
    );
    assert!(FreezeWindow::validate_settings(info.default_settings).is_ok());
}

#[test]
fn a_full_calendar_of_busy_cron_windows() {
    // The most work validate-settings lets one evaluation do: every window a
    // 7-day cron window matching every minute, in a zone with DST.
    let windows: Vec<String> = (0..settings::MAX_WINDOWS)
        .map(|i| {
            format!(
                r#"{{"name":"w{i}","timezone":"Europe/Berlin","cron":{{"expr":"* * * * *","duration":"7d"}}}}"#
            )
        })
        .collect();
    let s = format!(r#"{{"windows":[{}]}}"#, windows.join(","));
    let o = run("production", &[], "2026-03-29T01:15:00Z", &s);
    assert_eq!(verdict(&o), Some(Verdict::Freeze));
    assert!(
        o.messages().contains("until 2026-04-05 03:15 CEST"),
        "{}",
        o.messages()
    );
}
