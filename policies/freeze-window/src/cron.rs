//! Five-field cron expressions (`minute hour day-of-month month day-of-week`),
//! parsed once into bit sets and matched against local (civil) dates and times.
//!
//! Supported, as in Vixie cron: `*`, single values, ranges `a-b`, steps `*/n`,
//! `a-b/n` and `a/n` (from `a` to the field's maximum), comma lists, month names
//! (`jan`..`dec`) and weekday names (`sun`..`sat`, 0 and 7 both Sunday), plus the
//! macros `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
//! `@hourly`. When both day-of-month and day-of-week are restricted a day matches
//! if either does — the classic cron rule that people's existing crontabs rely on.

use jiff::civil::Date;

/// A parsed cron expression. Each field is a bit set: bit `i` set means value `i` matches.
#[derive(Clone, Debug, PartialEq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    /// Sunday = bit 0 (cron numbering), Saturday = bit 6.
    days_of_week: u8,
    /// Whether the day-of-month / day-of-week field started with `*`: cron combines
    /// the two with OR only when both are restricted (Vixie's DOM_STAR/DOW_STAR).
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One field's legal range and, for months and weekdays, the names it accepts.
struct FieldKind {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Value of the first name (1 for `jan`, 0 for `sun`).
    names_start: u32,
}

const MINUTE: FieldKind = FieldKind {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    names_start: 0,
};
const HOUR: FieldKind = FieldKind {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    names_start: 0,
};
const DOM: FieldKind = FieldKind {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    names_start: 0,
};
const MONTH: FieldKind = FieldKind {
    name: "month",
    min: 1,
    max: 12,
    names: &MONTHS,
    names_start: 1,
};
// 7 is accepted as Sunday and folded onto 0 after parsing.
const DOW: FieldKind = FieldKind {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &WEEKDAYS,
    names_start: 0,
};

impl Cron {
    /// Parse an expression; the error names the offending field and value.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let expanded = match expr.trim().to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
            "@monthly" => "0 0 1 * *".to_string(),
            "@weekly" => "0 0 * * 0".to_string(),
            "@daily" | "@midnight" => "0 0 * * *".to_string(),
            "@hourly" => "0 * * * *".to_string(),
            other if other.starts_with('@') => return Err(format!("unknown macro `{other}`")),
            other => other.to_string(),
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            ));
        }
        let dow = parse_field(fields[4], &DOW)?;
        // Fold Sunday-as-7 onto Sunday-as-0.
        let dow = (dow & 0x7f) | ((dow >> 7) & 1);
        Ok(Cron {
            minutes: parse_field(fields[0], &MINUTE)?,
            hours: parse_field(fields[1], &HOUR)? as u32,
            days_of_month: parse_field(fields[2], &DOM)? as u32,
            months: parse_field(fields[3], &MONTH)? as u16,
            days_of_week: dow as u8,
            dom_star: fields[2].starts_with('*'),
            dow_star: fields[4].starts_with('*'),
        })
    }

    /// Whether the expression fires on this calendar day (month, day-of-month, weekday).
    pub fn matches_date(&self, date: Date) -> bool {
        if self.months & (1 << date.month() as u32) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << date.day() as u32) != 0;
        let dow = self.days_of_week & (1 << date.weekday().to_sunday_zero_offset() as u32) != 0;
        match (self.dom_star, self.dow_star) {
            (false, false) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The hours that match, in ascending order.
    pub fn hours(&self) -> impl DoubleEndedIterator<Item = i8> + '_ {
        (0..24).filter(move |h| self.hours & (1 << *h as u32) != 0)
    }

    /// The minutes that match, in ascending order.
    pub fn minutes(&self) -> impl DoubleEndedIterator<Item = i8> + '_ {
        (0..60).filter(move |m| self.minutes & (1u64 << *m as u32) != 0)
    }
}

/// Parse one comma-separated field into a bit set over its range.
fn parse_field(field: &str, kind: &FieldKind) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in field.split(',') {
        bits |= parse_item(item, kind)
            .map_err(|e| format!("bad {} field `{field}`: {e}", kind.name))?;
    }
    Ok(bits)
}

/// One list item: `*`, `v`, `a-b`, each optionally followed by `/step`.
fn parse_item(item: &str, kind: &FieldKind) -> Result<u64, String> {
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => {
            let step: u32 = step.parse().map_err(|_| format!("bad step `{step}`"))?;
            if step == 0 || step > kind.max {
                return Err(format!("step {step} out of range 1-{}", kind.max));
            }
            (base, Some(step))
        }
        None => (item, None),
    };
    let (lo, hi) = if base == "*" {
        (kind.min, kind.max)
    } else if let Some((a, b)) = base.split_once('-') {
        let (lo, hi) = (parse_value(a, kind)?, parse_value(b, kind)?);
        if lo > hi {
            return Err(format!("range `{base}` runs backwards"));
        }
        (lo, hi)
    } else {
        let v = parse_value(base, kind)?;
        // `a/n` means every n-th value from a to the end of the range.
        (v, if step.is_some() { kind.max } else { v })
    };
    let step = step.unwrap_or(1);
    let mut bits = 0u64;
    let mut v = lo;
    while v <= hi {
        bits |= 1 << v;
        v += step;
    }
    Ok(bits)
}

fn parse_value(text: &str, kind: &FieldKind) -> Result<u32, String> {
    if let Some(i) = kind.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(kind.names_start + i as u32);
    }
    let v: u32 = text.parse().map_err(|_| format!("bad value `{text}`"))?;
    if v < kind.min || v > kind.max {
        return Err(format!("value {v} out of range {}-{}", kind.min, kind.max));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn fires(expr: &str, d: Date, h: i8, m: i8) -> bool {
        let c = Cron::parse(expr).unwrap();
        c.matches_date(d) && c.hours().any(|x| x == h) && c.minutes().any(|x| x == m)
    }

    #[test]
    fn stars_ranges_lists_and_steps() {
        let c = Cron::parse("*/15 9-17 * * mon-fri").unwrap();
        assert_eq!(c.minutes().collect::<Vec<_>>(), vec![0, 15, 30, 45]);
        assert_eq!(c.hours().collect::<Vec<_>>(), (9..=17).collect::<Vec<_>>());
        assert!(c.matches_date(date(2026, 3, 27))); // Friday
        assert!(!c.matches_date(date(2026, 3, 28))); // Saturday
        let c = Cron::parse("5,10 0-6/3 * * *").unwrap();
        assert_eq!(c.minutes().collect::<Vec<_>>(), vec![5, 10]);
        assert_eq!(c.hours().collect::<Vec<_>>(), vec![0, 3, 6]);
        let c = Cron::parse("50/5 * * * *").unwrap();
        assert_eq!(c.minutes().collect::<Vec<_>>(), vec![50, 55]);
    }

    #[test]
    fn names_and_sunday_as_seven() {
        assert!(fires("0 0 * DEC sun", date(2026, 12, 20), 0, 0));
        assert!(fires("0 0 * * 7", date(2026, 12, 20), 0, 0));
        assert!(fires("0 0 * * 5-7", date(2026, 12, 20), 0, 0));
        assert!(!fires("0 0 * nov sun", date(2026, 12, 20), 0, 0));
    }

    #[test]
    fn dom_and_dow_combine_with_or_when_both_restricted() {
        // 13th of the month or any Friday.
        let c = Cron::parse("0 0 13 * fri").unwrap();
        assert!(c.matches_date(date(2026, 3, 13)));
        assert!(c.matches_date(date(2026, 3, 20))); // a Friday
        assert!(!c.matches_date(date(2026, 3, 21)));
        // With `*` in day-of-week only the day of month counts.
        let c = Cron::parse("0 0 13 * *").unwrap();
        assert!(!c.matches_date(date(2026, 3, 20)));
    }

    #[test]
    fn macros() {
        assert_eq!(
            Cron::parse("@daily").unwrap(),
            Cron::parse("0 0 * * *").unwrap()
        );
        assert!(Cron::parse("@fortnightly").is_err());
    }

    #[test]
    fn rejects_bad_expressions_naming_the_field() {
        for (expr, needle) in [
            ("61 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day-of-month"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day-of-week"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
            ("* * * * funday", "funday"),
            ("* * * *", "5 fields"),
            ("", "5 fields"),
            ("1-2-3 * * * *", "minute"),
        ] {
            let err = Cron::parse(expr).unwrap_err();
            assert!(err.contains(needle), "{expr}: {err}");
        }
    }

    #[test]
    fn arbitrary_text_never_panics() {
        // A deterministic generator over the characters cron syntax is made of.
        let alphabet: Vec<char> = "0123456789*/-, @abcdefjmnorstuwy\u{e9}".chars().collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let len = (seed % 24) as usize;
            let text: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            if let Ok(c) = Cron::parse(&text) {
                let _ = c.matches_date(date(2026, 2, 28));
            }
            let _ = crate::local::parse_duration(&text);
            let _ = crate::local::parse_local_datetime(&text);
            let _ = crate::local::parse_hhmm(&text, true);
        }
    }
}
