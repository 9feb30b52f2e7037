//! Window schedules across DST transitions, midnight and calendar edges.

use super::*;
use jiff::civil::{date, time};

fn window(zone: &str, schedule: Schedule) -> Window {
    Window {
        name: "w".into(),
        kind: Kind::Deny,
        zone_name: zone.into(),
        tz: TimeZone::get(zone).unwrap(),
        schedule,
        selector: Selector::default(),
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn until(w: &Window, now: &str) -> Option<String> {
    w.active_until(ts(now)).map(|t| t.to_string())
}

const SUNDAY: u8 = 1 << 6;

#[test]
fn spring_forward_window_is_pushed_past_the_gap() {
    // Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z).
    let w = window(
        "Europe/Berlin",
        Schedule::Weekly {
            days: SUNDAY,
            start: time(1, 30, 0, 0),
            end: time(2, 30, 0, 0),
            end_next_day: false,
        },
    );
    assert_eq!(until(&w, "2026-03-29T00:15:00Z"), None); // 01:15 CET
    assert_eq!(
        until(&w, "2026-03-29T00:30:00Z").as_deref(),
        Some("2026-03-29T01:30:00Z")
    );
    assert_eq!(
        until(&w, "2026-03-29T01:15:00Z").as_deref(),
        Some("2026-03-29T01:30:00Z")
    ); // 03:15 CEST
    assert_eq!(until(&w, "2026-03-29T01:30:00Z"), None); // 03:30 CEST
}

#[test]
fn fall_back_window_covers_the_repeated_hour() {
    // Berlin 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00Z).
    let w = window(
        "Europe/Berlin",
        Schedule::Weekly {
            days: SUNDAY,
            start: time(2, 0, 0, 0),
            end: time(3, 0, 0, 0),
            end_next_day: false,
        },
    );
    assert_eq!(until(&w, "2026-10-24T23:59:00Z"), None); // 01:59 CEST
    assert_eq!(
        until(&w, "2026-10-25T00:30:00Z").as_deref(),
        Some("2026-10-25T02:00:00Z")
    ); // 02:30 CEST
    assert_eq!(
        until(&w, "2026-10-25T01:30:00Z").as_deref(),
        Some("2026-10-25T02:00:00Z")
    ); // 02:30 CET
    assert_eq!(until(&w, "2026-10-25T02:00:00Z"), None); // 03:00 CET
}

#[test]
fn window_ending_in_the_repeated_hour_ends_at_its_first_occurrence() {
    let w = window(
        "Europe/Berlin",
        Schedule::Weekly {
            days: SUNDAY,
            start: time(1, 0, 0, 0),
            end: time(2, 30, 0, 0),
            end_next_day: false,
        },
    );
    assert!(w.active_until(ts("2026-10-25T00:15:00Z")).is_some()); // 02:15 CEST
    assert_eq!(until(&w, "2026-10-25T01:15:00Z"), None); // 02:15 CET, second pass
}

#[test]
fn span_midnight_belongs_to_the_start_day() {
    // Fridays 22:00 → Saturday 06:00, New York.
    let w = window(
        "America/New_York",
        Schedule::Weekly {
            days: 1 << 4,
            start: time(22, 0, 0, 0),
            end: time(6, 0, 0, 0),
            end_next_day: true,
        },
    );
    assert!(w.active_until(ts("2026-03-28T09:00:00Z")).is_some()); // Sat 05:00 EDT
    assert_eq!(until(&w, "2026-03-28T10:00:00Z"), None); // Sat 06:00 EDT
    assert_eq!(until(&w, "2026-03-29T03:00:00Z"), None); // Sat 23:00: Saturday is not listed
    assert_eq!(
        w.next_start(ts("2026-03-28T10:00:00Z"))
            .map(|t| t.to_string())
            .as_deref(),
        Some("2026-04-04T02:00:00Z")
    );
}

#[test]
fn cron_window_with_duration_across_dst() {
    // Every Saturday 20:00 for 10h, Berlin: on 2026-03-28 the 10 real hours end at 07:00 CEST.
    let w = window(
        "Europe/Berlin",
        Schedule::Cron {
            cron: Cron::parse("0 20 * * sat").unwrap(),
            duration: SignedDuration::from_hours(10),
        },
    );
    assert_eq!(
        until(&w, "2026-03-29T04:59:00Z").as_deref(),
        Some("2026-03-29T05:00:00Z")
    );
    assert_eq!(until(&w, "2026-03-29T05:00:00Z"), None);
    assert_eq!(until(&w, "2026-03-28T18:59:00Z"), None);
    // A 7-day cron window is found from its last minute.
    let w = window(
        "UTC",
        Schedule::Cron {
            cron: Cron::parse("0 0 1 * *").unwrap(),
            duration: SignedDuration::from_hours(168),
        },
    );
    assert_eq!(
        until(&w, "2026-05-07T23:59:00Z").as_deref(),
        Some("2026-05-08T00:00:00Z")
    );
    assert_eq!(until(&w, "2026-05-08T00:00:00Z"), None);
    assert_eq!(
        w.next_start(ts("2026-05-08T00:00:00Z"))
            .map(|t| t.to_string()),
        None // next 1st is beyond the lookahead
    );
}

#[test]
fn cron_start_in_the_gap_moves_forward() {
    let w = window(
        "Europe/Berlin",
        Schedule::Cron {
            cron: Cron::parse("30 2 * * *").unwrap(),
            duration: SignedDuration::from_mins(30),
        },
    );
    // 02:30 does not exist on 2026-03-29: the window runs 03:30–04:00 CEST.
    assert_eq!(
        until(&w, "2026-03-29T01:45:00Z").as_deref(),
        Some("2026-03-29T02:00:00Z")
    );
    assert_eq!(until(&w, "2026-03-29T00:45:00Z"), None);
}

#[test]
fn one_off_dates() {
    let w = window(
        "Europe/Berlin",
        Schedule::Dates {
            from: date(2026, 12, 20).at(0, 0, 0, 0),
            to: date(2027, 1, 3).at(0, 0, 0, 0),
        },
    );
    assert_eq!(until(&w, "2026-12-19T22:59:59Z"), None);
    assert_eq!(
        until(&w, "2026-12-19T23:00:00Z").as_deref(),
        Some("2027-01-02T23:00:00Z")
    );
    assert_eq!(
        w.next_start(ts("2026-12-01T00:00:00Z"))
            .map(|t| t.to_string())
            .as_deref(),
        Some("2026-12-19T23:00:00Z")
    );
}

#[test]
fn calendar_edges_do_not_panic() {
    let w = window(
        "Pacific/Kiritimati",
        Schedule::Cron {
            cron: Cron::parse("* * * * *").unwrap(),
            duration: SignedDuration::from_hours(168),
        },
    );
    for t in [Timestamp::MIN, Timestamp::MAX] {
        let _ = w.active_until(t);
        let _ = w.next_start(t);
    }
}

#[test]
fn fast_path_agrees_with_resolving_every_match() {
    let cron = Cron::parse("*/7 1-23/2 * * *").unwrap();
    let w = |zone: &str| {
        window(
            zone,
            Schedule::Cron {
                cron: cron.clone(),
                duration: SignedDuration::from_hours(1),
            },
        )
    };
    let berlin = w("Europe/Berlin");
    assert!(berlin.uniform_day(date(2026, 3, 28)).is_some());
    assert!(berlin.uniform_day(date(2026, 3, 29)).is_none());
    let cases = [
        ("Europe/Berlin", date(2026, 3, 27)),
        ("Europe/Berlin", date(2026, 10, 23)),
        ("America/Havana", date(2026, 3, 6)), // transitions at midnight
        ("Australia/Lord_Howe", date(2026, 4, 3)), // 30-minute DST
        ("Pacific/Apia", date(2011, 12, 28)), // 2011-12-30 never happened
    ];
    for (zone, from) in cases {
        let w = w(zone);
        let days: Vec<Date> = days_forward(from, 5).collect();
        for d in &days {
            let all = w.resolve_all(&cron, *d);
            // Instants every 97 minutes across the five days and a margin.
            let first = w.tz.to_timestamp(from.at(0, 0, 0, 0)).unwrap();
            for k in -10..(6 * 24 * 60 / 97) {
                let now = first
                    .checked_add(SignedDuration::from_mins(97 * k))
                    .unwrap();
                let last = all.iter().copied().filter(|s| *s <= now).max();
                let next = all.iter().copied().filter(|s| *s > now).min();
                assert_eq!(w.last_start_on(&cron, *d, now), last, "{zone} {d} {now}");
                assert_eq!(w.first_start_on(&cron, *d, now), next, "{zone} {d} {now}");
            }
        }
    }
}
