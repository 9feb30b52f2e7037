//! Parsing and printing of the local times that settings are written in.
//!
//! The parsers are strict and hand-written (not jiff's lenient ones) so that a
//! value with an offset or a `Z` — which would silently mean something other than
//! "local time in the window's zone" — is rejected instead of reinterpreted.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Longest cron window: bounds the backward search for the start that covers `now`.
pub const MAX_DURATION_MINUTES: i64 = 7 * 24 * 60;

/// A wall-clock time of day, `HH:MM`. `24:00` is accepted only where `allow_24` says
/// so (a window end) and comes back as `None`, meaning midnight of the next day.
pub fn parse_hhmm(text: &str, allow_24: bool) -> Result<Option<Time>, String> {
    let bad = || format!("bad time `{text}`: expected HH:MM (00:00-23:59)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i8 = parse_digits(h).ok_or_else(bad)?;
    let m: i8 = parse_digits(m).ok_or_else(bad)?;
    if allow_24 && h == 24 && m == 0 {
        return Ok(None);
    }
    Time::new(h, m, 0, 0).map(Some).map_err(|_| bad())
}

/// A local date and time, `YYYY-MM-DDTHH:MM[:SS]` (a space may replace `T`), or a
/// bare date `YYYY-MM-DD` meaning its midnight. No offset: the zone gives it meaning.
pub fn parse_local_datetime(text: &str) -> Result<DateTime, String> {
    let bad = || format!("bad local date-time `{text}`: expected YYYY-MM-DDTHH:MM, no offset");
    // ASCII only, so the byte slicing below always lands on character boundaries.
    if !text.is_ascii() {
        return Err(bad());
    }
    let (d, t) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let parts: Vec<&str> = d.split('-').collect();
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return Err(bad());
    }
    let (y, mo, da) = (
        parse_digits::<i16>(parts[0]).ok_or_else(bad)?,
        parse_digits::<i8>(parts[1]).ok_or_else(bad)?,
        parse_digits::<i8>(parts[2]).ok_or_else(bad)?,
    );
    let date = Date::new(y, mo, da).map_err(|_| bad())?;
    let time = match t {
        None => Time::midnight(),
        Some(t) => {
            let (hm, s) = match t.len() {
                5 => (t, 0),
                8 if t.as_bytes()[5] == b':' => {
                    (&t[..5], parse_digits::<i8>(&t[6..]).ok_or_else(bad)?)
                }
                _ => return Err(bad()),
            };
            let hm = parse_hhmm(hm, false).map_err(|_| bad())?.ok_or_else(bad)?;
            Time::new(hm.hour(), hm.minute(), s, 0).map_err(|_| bad())?
        }
    };
    Ok(date.to_datetime(time))
}

/// A positive duration written as number-unit pairs with units `d`, `h`, `m`
/// (`90m`, `2h`, `3d`, `1h30m`), at most seven days.
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let bad = |why: &str| format!("bad duration `{text}`: {why}");
    let mut minutes: i64 = 0;
    let mut number = String::new();
    let mut saw_unit = false;
    for c in text.trim().chars() {
        match c {
            '0'..='9' => number.push(c),
            'd' | 'h' | 'm' => {
                let n: i64 = number
                    .parse()
                    .map_err(|_| bad("expected a number before each unit"))?;
                let per = match c {
                    'd' => 24 * 60,
                    'h' => 60,
                    _ => 1,
                };
                minutes = n
                    .checked_mul(per)
                    .and_then(|v| v.checked_add(minutes))
                    .ok_or_else(|| bad("too long"))?;
                number.clear();
                saw_unit = true;
            }
            _ => return Err(bad("use units d, h and m, e.g. `2h` or `1h30m`")),
        }
    }
    if !number.is_empty() || !saw_unit {
        return Err(bad("every number needs a unit (d, h or m)"));
    }
    if minutes == 0 {
        return Err(bad("must be longer than zero"));
    }
    if minutes > MAX_DURATION_MINUTES {
        return Err(bad("longer than the 7d maximum"));
    }
    Ok(SignedDuration::from_mins(minutes))
}

/// Look up an IANA zone in the bundled database.
pub fn parse_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| format!("unknown time zone `{name}`"))
}

/// `2027-01-03 00:00 CET`: how an instant reads on a wall clock in `tz`.
pub fn format_local(ts: Timestamp, tz: &TimeZone) -> String {
    let dt = tz.to_datetime(ts);
    let info = tz.to_offset_info(ts);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} {}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        info.abbreviation()
    )
}

/// Digits only (no sign, no spaces), parsed into a small integer.
fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    #[test]
    fn times_of_day() {
        assert_eq!(parse_hhmm("08:30", false).unwrap(), Some(time(8, 30, 0, 0)));
        assert_eq!(parse_hhmm("8:05", false).unwrap(), Some(time(8, 5, 0, 0)));
        assert_eq!(parse_hhmm("24:00", true).unwrap(), None);
        for bad in [
            "24:00", "12:60", "1230", "12:3", "-1:00", "ab:cd", "", "12:00:00", "+1:00",
        ] {
            assert!(parse_hhmm(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_datetimes() {
        assert_eq!(
            parse_local_datetime("2026-12-20T00:00").unwrap(),
            date(2026, 12, 20).at(0, 0, 0, 0)
        );
        assert_eq!(
            parse_local_datetime("2026-12-20 17:45:30").unwrap(),
            date(2026, 12, 20).at(17, 45, 30, 0)
        );
        assert_eq!(
            parse_local_datetime("2027-01-03").unwrap(),
            date(2027, 1, 3).at(0, 0, 0, 0)
        );
        for bad in [
            "2026-12-20T00:00Z",
            "2026-12-20T00:00+01:00",
            "2026-02-30T00:00",
            "26-12-20",
            "2026-12-20T25:00",
            "tomorrow",
            "",
        ] {
            assert!(parse_local_datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h").unwrap(), SignedDuration::from_hours(2));
        assert_eq!(
            parse_duration("90m").unwrap(),
            SignedDuration::from_mins(90)
        );
        assert_eq!(
            parse_duration("1h30m").unwrap(),
            SignedDuration::from_mins(90)
        );
        assert_eq!(
            parse_duration("7d").unwrap(),
            SignedDuration::from_hours(168)
        );
        for bad in [
            "8d",
            "0m",
            "2",
            "h",
            "2w",
            "-1h",
            "",
            "99999999999999999999d",
            "1.5h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zones_and_formatting() {
        let berlin = parse_zone("Europe/Berlin").unwrap();
        let ts: Timestamp = "2026-07-01T10:00:00Z".parse().unwrap();
        assert_eq!(format_local(ts, &berlin), "2026-07-01 12:00 CEST");
        assert!(parse_zone("Europe/Berln")
            .unwrap_err()
            .contains("Europe/Berln"));
    }
}
