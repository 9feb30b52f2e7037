//! A compiled window: its schedule in its own time zone, and the two questions the
//! policy asks of it — does it cover this instant (and until when), and when does
//! it next open.
//!
//! # Local times and DST
//! Every local time in a window (weekly start/end, cron start, one-off from/to) is
//! turned into an instant with the "compatible" rule of RFC 5545 and Temporal
//! (jiff's default): a time that does not exist because clocks spring forward is
//! pushed forward by the length of the gap (02:30 → 03:30 CEST), and a time that
//! happens twice because clocks fall back means its first occurrence (02:30 CEST,
//! not 02:30 CET). A window is then the half-open interval `[start, end)` between
//! those instants, and a cron window's duration is elapsed real time. So a window
//! never fires twice and never silently disappears: a 01:30–02:30 Berlin window on
//! 2026-03-29 runs 01:30 CET → 03:30 CEST (one real hour); a 02:00–03:00 window on
//! 2026-10-25 runs 02:00 CEST → 03:00 CET and covers the repeated hour (two real
//! hours). Only a window that lies entirely inside a skipped hour is empty.

use crate::cron::Cron;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use verdict_sdk::Deployment;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// Deployments are frozen while the window is open.
    Deny,
    /// Deployments may go out only while some allow window is open.
    Allow,
}

/// Which deployments a window applies to; an empty list means "any".
#[derive(Clone, Debug, Default)]
pub struct Selector {
    pub environments: Vec<String>,
    pub services: Vec<String>,
}

impl Selector {
    pub fn matches(&self, d: &Deployment) -> bool {
        let any_or = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        any_or(&self.environments, &d.environment) && any_or(&self.services, &d.service)
    }
}

#[derive(Clone, Debug)]
pub enum Schedule {
    /// Every listed weekday from `start` to `end`; `end_next_day` when the window
    /// crosses midnight (end before or equal to start, or end `24:00`).
    Weekly {
        days: u8,
        start: Time,
        end: Time,
        end_next_day: bool,
    },
    /// Opens at every cron match, stays open for `duration` (≤ 7 days).
    Cron {
        cron: Cron,
        duration: SignedDuration,
    },
    /// Once, from one local date-time to another.
    Dates { from: DateTime, to: DateTime },
}

#[derive(Clone, Debug)]
pub struct Window {
    pub name: String,
    pub kind: Kind,
    /// The zone's name as configured, for messages.
    pub zone_name: String,
    pub tz: TimeZone,
    pub schedule: Schedule,
    pub selector: Selector,
}

/// How far ahead `next_start` looks: a week and a day covers every weekly window.
const LOOKAHEAD_DAYS: usize = 9;

impl Window {
    /// If the window covers `now`, the instant it closes (exclusive).
    pub fn active_until(&self, now: Timestamp) -> Option<Timestamp> {
        let today = self.tz.to_datetime(now).date();
        match &self.schedule {
            Schedule::Weekly { .. } => {
                // An occurrence lasts at most a day plus a DST gap, so it started
                // today, yesterday or (across a skipped day) the day before.
                days_back(today, 3)
                    .filter_map(|d| self.weekly_occurrence(d))
                    .filter(|(s, e)| *s <= now && now < *e)
                    .map(|(_, e)| e)
                    .max()
            }
            Schedule::Dates { from, to } => {
                let (s, e) = (self.resolve(*from)?, self.resolve(*to)?);
                (s <= now && now < e).then_some(e)
            }
            Schedule::Cron { cron, duration } => self.cron_active_until(cron, *duration, now),
        }
    }

    /// The first instant after `now` at which the window opens, looking at most
    /// [`LOOKAHEAD_DAYS`] ahead for recurring windows.
    pub fn next_start(&self, now: Timestamp) -> Option<Timestamp> {
        let today = self.tz.to_datetime(now).date();
        let start = today.yesterday().unwrap_or(today);
        match &self.schedule {
            Schedule::Weekly { .. } => days_forward(start, LOOKAHEAD_DAYS + 1)
                .filter_map(|d| self.weekly_occurrence(d))
                .map(|(s, _)| s)
                .filter(|s| *s > now)
                .min(),
            Schedule::Dates { from, .. } => self.resolve(*from).filter(|s| *s > now),
            Schedule::Cron { cron, .. } => {
                let mut best: Option<Timestamp> = None;
                for d in days_forward(start, LOOKAHEAD_DAYS + 1) {
                    // Starts are in civil order except around a gap, so one more
                    // day after the first hit settles the minimum.
                    if best
                        .is_some_and(|b| self.tz.to_datetime(b).date() < d.yesterday().unwrap_or(d))
                    {
                        break;
                    }
                    for s in self.cron_starts_on(cron, d) {
                        if s > now && best.is_none_or(|b| s < b) {
                            best = Some(s);
                        }
                    }
                }
                best
            }
        }
    }

    /// A local time as an instant, by the compatible rule (see the module doc).
    fn resolve(&self, dt: DateTime) -> Option<Timestamp> {
        self.tz.to_timestamp(dt).ok()
    }

    /// The weekly occurrence that starts on local day `d`, if `d` is a listed day.
    fn weekly_occurrence(&self, d: Date) -> Option<(Timestamp, Timestamp)> {
        let Schedule::Weekly {
            days,
            start,
            end,
            end_next_day,
        } = &self.schedule
        else {
            return None;
        };
        if days & (1 << d.weekday().to_monday_zero_offset()) == 0 {
            return None;
        }
        let end_day = if *end_next_day { d.tomorrow().ok()? } else { d };
        Some((
            self.resolve(d.to_datetime(*start))?,
            self.resolve(end_day.to_datetime(*end))?,
        ))
    }

    /// Instants of the cron matches on local day `d`.
    fn cron_starts_on<'a>(
        &'a self,
        cron: &'a Cron,
        d: Date,
    ) -> impl Iterator<Item = Timestamp> + 'a {
        let on_day = cron.matches_date(d);
        cron.hours()
            .filter(move |_| on_day)
            .flat_map(move |h| cron.minutes().map(move |m| (h, m)))
            .filter_map(move |(h, m)| self.resolve(d.to_datetime(Time::new(h, m, 0, 0).ok()?)))
    }

    /// If the latest cron match `m <= now` has `now < m + duration`, its end.
    /// (All occurrences last the same, so no earlier match can reach further.)
    /// The backward search covers the duration (at most 7 days) plus slack for
    /// offsets that change in between, and stops one day after the first match:
    /// local times resolve in civil order except inside a DST gap, which is
    /// shorter than a day.
    fn cron_active_until(
        &self,
        cron: &Cron,
        duration: SignedDuration,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let today = self.tz.to_datetime(now).date();
        let span_days = (duration.as_secs() / 86_400) as usize + 2;
        let first = today.tomorrow().unwrap_or(today);
        let mut latest: Option<Timestamp> = None;
        let mut found_on: Option<Date> = None;
        for d in days_back(first, span_days + 2) {
            if found_on.is_some_and(|f| d < f.yesterday().unwrap_or(f)) {
                break;
            }
            for s in self.cron_starts_on(cron, d) {
                if s <= now && latest.is_none_or(|l| s > l) {
                    latest = Some(s);
                    found_on.get_or_insert(d);
                }
            }
        }
        latest
            .and_then(|m| m.checked_add(duration).ok())
            .filter(|end| now < *end)
    }
}

/// `from`, the day before, … (`count` days in all, fewer at the calendar's edge).
fn days_back(from: Date, count: usize) -> impl Iterator<Item = Date> {
    std::iter::successors(Some(from), |d| d.yesterday().ok()).take(count)
}

/// `from`, the day after, … (`count` days in all, fewer at the calendar's edge).
fn days_forward(from: Date, count: usize) -> impl Iterator<Item = Date> {
    std::iter::successors(Some(from), |d| d.tomorrow().ok()).take(count)
}

#[cfg(test)]
mod tests {
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
}
