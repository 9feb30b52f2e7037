//! Whether the decision time falls outside working hours, in the team's zone.
//!
//! The check reads the local wall clock at the decision instant, so DST needs no
//! special handling: 19:00 is off hours whether it is CET or CEST.

use crate::settings::OffHours;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

#[derive(Debug, Clone)]
pub struct OffHoursRule {
    zone_name: String,
    tz: TimeZone,
    start: Time,
    end: Time,
    weekends: bool,
}

impl OffHoursRule {
    pub fn new(o: &OffHours) -> Result<Self, String> {
        let tz = TimeZone::get(&o.timezone)
            .map_err(|_| format!("unknown time zone `{}`", o.timezone))?;
        Ok(OffHoursRule {
            zone_name: o.timezone.clone(),
            tz,
            start: parse_hhmm(&o.start)?,
            end: parse_hhmm(&o.end)?,
            weekends: o.weekends,
        })
    }

    /// `Some(description)` when `now_ms` is off hours; `None` in working hours, or
    /// when the time is outside the calendar jiff supports (no evidence either way).
    pub fn check(&self, now_ms: i64) -> Option<String> {
        let now = Timestamp::from_millisecond(now_ms).ok()?;
        let local = self.tz.to_datetime(now);
        let abbrev = self.tz.to_offset_info(now).abbreviation().to_string();
        let day = day_name(local.weekday());
        let clock = format!("{day} {:02}:{:02} {abbrev}", local.hour(), local.minute());
        if self.weekends && matches!(local.weekday(), Weekday::Saturday | Weekday::Sunday) {
            return Some(format!(
                "deploying on a weekend ({clock}, {})",
                self.zone_name
            ));
        }
        let t = local.time();
        // start == end: no time-of-day off hours, only weekends (if enabled).
        let off = if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            self.start != self.end && (t >= self.start || t < self.end)
        };
        off.then(|| {
            format!(
                "deploying off hours ({clock}, off {:02}:{:02}-{:02}:{:02} {})",
                self.start.hour(),
                self.start.minute(),
                self.end.hour(),
                self.end.minute(),
                self.zone_name
            )
        })
    }
}

fn parse_hhmm(text: &str) -> Result<Time, String> {
    let bad = || format!("bad time `{text}`: expected HH:MM (00:00-23:59)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let digits =
        |s: &str, lens: &[usize]| lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h, &[1, 2]) || !digits(m, &[2]) {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "Mon",
        Weekday::Tuesday => "Tue",
        Weekday::Wednesday => "Wed",
        Weekday::Thursday => "Thu",
        Weekday::Friday => "Fri",
        Weekday::Saturday => "Sat",
        Weekday::Sunday => "Sun",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(zone: &str, start: &str, end: &str, weekends: bool) -> OffHoursRule {
        OffHoursRule::new(&OffHours {
            timezone: zone.into(),
            start: start.into(),
            end: end.into(),
            weekends,
        })
        .unwrap()
    }

    fn at(r: &OffHoursRule, now: &str) -> Option<String> {
        let ts: Timestamp = now.parse().unwrap();
        r.check(ts.as_millisecond())
    }

    #[test]
    fn evenings_nights_and_weekends() {
        let r = rule("Europe/Berlin", "18:00", "08:00", true);
        // Tuesday 2026-03-24.
        assert_eq!(at(&r, "2026-03-24T10:00:00Z"), None); // 11:00 CET
        assert_eq!(
            at(&r, "2026-03-24T18:30:00Z").as_deref(),
            Some("deploying off hours (Tue 19:30 CET, off 18:00-08:00 Europe/Berlin)")
        );
        assert!(at(&r, "2026-03-24T06:59:00Z").is_some()); // 07:59 CET
        assert_eq!(at(&r, "2026-03-24T07:00:00Z"), None); // 08:00 CET
                                                          // Summer time: 17:30Z is 19:30 CEST.
        assert!(at(&r, "2026-07-07T17:30:00Z").is_some());
        assert_eq!(
            at(&r, "2026-03-28T12:00:00Z").as_deref(),
            Some("deploying on a weekend (Sat 13:00 CET, Europe/Berlin)")
        );
        let r = rule("UTC", "18:00", "08:00", false);
        assert_eq!(at(&r, "2026-03-28T12:00:00Z"), None);
    }

    #[test]
    fn day_shift_and_equal_bounds() {
        // A night team: off hours are the day.
        let r = rule("UTC", "09:00", "17:00", false);
        assert!(at(&r, "2026-03-24T12:00:00Z").is_some());
        assert_eq!(at(&r, "2026-03-24T20:00:00Z"), None);
        let r = rule("UTC", "00:00", "00:00", false);
        assert_eq!(at(&r, "2026-03-24T20:00:00Z"), None);
        assert_eq!(r.check(i64::MAX), None);
    }

    #[test]
    fn bad_times() {
        for t in ["6pm", "24:00", "12:5", "123:00", "", ":30", "-1:00"] {
            assert!(parse_hhmm(t).is_err(), "{t}");
        }
    }
}
