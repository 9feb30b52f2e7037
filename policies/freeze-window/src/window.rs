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
                let mut found_on: Option<Date> = None;
                for d in days_forward(start, LOOKAHEAD_DAYS + 1) {
                    // Starts are in civil order except around a gap, so one more
                    // day after the first hit settles the minimum.
                    if found_on.is_some_and(|f| d > f.tomorrow().unwrap_or(f)) {
                        break;
                    }
                    if let Some(s) = self.first_start_on(cron, d, now) {
                        if best.is_none_or(|b| s < b) {
                            best = Some(s);
                        }
                        found_on.get_or_insert(d);
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
            if let Some(s) = self.last_start_on(cron, d, now) {
                if latest.is_none_or(|l| s > l) {
                    latest = Some(s);
                }
                found_on.get_or_insert(d);
            }
        }
        latest
            .and_then(|m| m.checked_add(duration).ok())
            .filter(|end| now < *end)
    }

    /// The latest cron start on local day `d` that is not after `now`.
    ///
    /// Resolving a local time through the zone costs a transition lookup, and a
    /// busy expression (`* * * * *`) has 1440 matches a day; so on the usual day,
    /// with one offset throughout, starts are midnight plus seconds, in order, and
    /// the search stops at the first hit. Only a day with a transition resolves
    /// every match.
    fn last_start_on(&self, cron: &Cron, d: Date, now: Timestamp) -> Option<Timestamp> {
        if !cron.matches_date(d) {
            return None;
        }
        match self.uniform_day(d) {
            Some(midnight) if midnight > now => None,
            Some(midnight) => cron
                .hours()
                .rev()
                // Skip whole hours that start after `now`.
                .filter(|h| after_midnight(midnight, *h, 0).is_some_and(|t| t <= now))
                .flat_map(|h| cron.minutes().rev().map(move |m| (h, m)))
                .filter_map(|(h, m)| after_midnight(midnight, h, m))
                .find(|s| *s <= now),
            None => self
                .resolve_all(cron, d)
                .into_iter()
                .filter(|s| *s <= now)
                .max(),
        }
    }

    /// The earliest cron start on local day `d` after `now` (see [`Self::last_start_on`]).
    fn first_start_on(&self, cron: &Cron, d: Date, now: Timestamp) -> Option<Timestamp> {
        if !cron.matches_date(d) {
            return None;
        }
        match self.uniform_day(d) {
            Some(midnight) if after_midnight(midnight, 24, 0).is_none_or(|end| end <= now) => None,
            Some(midnight) => cron
                .hours()
                // Skip whole hours that end by `now`.
                .filter(|h| after_midnight(midnight, *h, 59).is_some_and(|t| t > now))
                .flat_map(|h| cron.minutes().map(move |m| (h, m)))
                .filter_map(|(h, m)| after_midnight(midnight, h, m))
                .find(|s| *s > now),
            None => self
                .resolve_all(cron, d)
                .into_iter()
                .filter(|s| *s > now)
                .min(),
        }
    }

    /// Every cron match on local day `d`, each resolved through the zone.
    fn resolve_all(&self, cron: &Cron, d: Date) -> Vec<Timestamp> {
        cron.hours()
            .flat_map(|h| cron.minutes().map(move |m| (h, m)))
            .filter_map(|(h, m)| self.resolve(d.to_datetime(Time::new(h, m, 0, 0).ok()?)))
            .collect()
    }

    /// Local midnight of `d` as an instant, if `d` is exactly 24 hours long with
    /// no offset change from its midnight to the next.
    fn uniform_day(&self, d: Date) -> Option<Timestamp> {
        let midnight = self.resolve(d.to_datetime(Time::midnight()))?;
        let next = self.resolve(d.tomorrow().ok()?.to_datetime(Time::midnight()))?;
        let exact = self.tz.to_datetime(midnight) == d.to_datetime(Time::midnight());
        let day_long = next.as_second().checked_sub(midnight.as_second()) == Some(86_400);
        let no_transition = self
            .tz
            .following(midnight)
            .next()
            .is_none_or(|t| t.timestamp() >= next);
        (exact && day_long && no_transition).then_some(midnight)
    }
}

/// `h:m` on a day with one offset throughout, from its midnight.
fn after_midnight(midnight: Timestamp, h: i8, m: i8) -> Option<Timestamp> {
    let secs = i64::from(h) * 3600 + i64::from(m) * 60;
    midnight.checked_add(SignedDuration::from_secs(secs)).ok()
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
mod tests;
