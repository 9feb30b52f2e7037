//! The settings document and its validation into compiled [`Window`]s.
//!
//! Windows are parsed one at a time from JSON values so that every error, even a
//! misspelt field, names the window it is about.

use crate::cron::Cron;
use crate::local::{parse_duration, parse_hhmm, parse_local_datetime, parse_zone};
use crate::window::{Kind, Schedule, Selector, Window};
use jiff::civil::Time;
use serde::{Deserialize, Serialize};

/// Enough for any real change calendar, and a bound on the work one evaluation does.
pub const MAX_WINDOWS: usize = 64;

#[derive(Serialize, Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Each entry is a [`WindowSpec`]; kept as raw JSON so errors can name the window.
    pub windows: Vec<serde_json::Value>,
    /// A change carrying one of these labels passes any window (break-glass).
    pub exempt_labels: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            windows: Vec::new(),
            exempt_labels: vec!["hotfix".into(), "emergency".into()],
        }
    }
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct WindowSpec {
    pub name: String,
    pub kind: KindSpec,
    pub timezone: String,
    pub weekly: Option<WeeklySpec>,
    pub cron: Option<CronSpec>,
    pub dates: Option<DatesSpec>,
    pub selector: Option<SelectorSpec>,
}

impl Default for WindowSpec {
    fn default() -> Self {
        WindowSpec {
            name: String::new(),
            kind: KindSpec::Deny,
            timezone: "UTC".into(),
            weekly: None,
            cron: None,
            dates: None,
            selector: None,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum KindSpec {
    Deny,
    Allow,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WeeklySpec {
    /// `mon`..`sun` (or full names, or ranges like `mon-fri`); empty = every day.
    pub days: Vec<String>,
    pub start: String,
    pub end: String,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CronSpec {
    pub expr: String,
    pub duration: String,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DatesSpec {
    pub from: String,
    pub to: String,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SelectorSpec {
    pub environments: Vec<String>,
    pub services: Vec<String>,
}

/// Validated settings, ready to evaluate.
#[derive(Debug)]
pub struct Compiled {
    pub windows: Vec<Window>,
    pub exempt_labels: Vec<String>,
}

/// Parse and validate a settings document.
pub fn compile(settings: &str) -> Result<Compiled, String> {
    let raw: Settings = verdict_sdk::parse_settings(settings)?;
    if raw.windows.len() > MAX_WINDOWS {
        return Err(format!(
            "too many windows: {} (at most {MAX_WINDOWS})",
            raw.windows.len()
        ));
    }
    let mut windows: Vec<Window> = Vec::with_capacity(raw.windows.len());
    for (i, value) in raw.windows.into_iter().enumerate() {
        let label = match value.get("name").and_then(|n| n.as_str()) {
            Some(name) if !name.is_empty() => format!("window `{name}`"),
            _ => format!("window #{}", i + 1),
        };
        let window = compile_window(value).map_err(|e| format!("{label}: {e}"))?;
        if windows.iter().any(|w| w.name == window.name) {
            return Err(format!("{label}: name used twice"));
        }
        windows.push(window);
    }
    Ok(Compiled {
        windows,
        exempt_labels: raw.exempt_labels,
    })
}

fn compile_window(value: serde_json::Value) -> Result<Window, String> {
    let spec: WindowSpec = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if spec.name.trim().is_empty() {
        return Err("`name` is required".into());
    }
    let tz = parse_zone(&spec.timezone)?;
    let schedule = match (spec.weekly, spec.cron, spec.dates) {
        (Some(w), None, None) => weekly(w)?,
        (None, Some(c), None) => {
            let cron = Cron::parse(&c.expr).map_err(|e| format!("bad cron `{}`: {e}", c.expr))?;
            Schedule::Cron {
                cron,
                duration: parse_duration(&c.duration)?,
            }
        }
        (None, None, Some(d)) => {
            let (from, to) = (parse_local_datetime(&d.from)?, parse_local_datetime(&d.to)?);
            if to <= from {
                return Err(format!(
                    "dates: `to` {} is not after `from` {}",
                    d.to, d.from
                ));
            }
            Schedule::Dates { from, to }
        }
        _ => return Err("give exactly one of `weekly`, `cron` or `dates`".into()),
    };
    let selector = spec.selector.unwrap_or_default();
    Ok(Window {
        name: spec.name,
        kind: match spec.kind {
            KindSpec::Deny => Kind::Deny,
            KindSpec::Allow => Kind::Allow,
        },
        zone_name: spec.timezone,
        tz,
        schedule,
        selector: Selector {
            environments: selector.environments,
            services: selector.services,
        },
    })
}

fn weekly(w: WeeklySpec) -> Result<Schedule, String> {
    let mut days = 0u8;
    for d in &w.days {
        days |= parse_days(d)?;
    }
    if w.days.is_empty() {
        days = 0x7f;
    }
    let start = parse_hhmm(&w.start, false)?.unwrap_or(Time::midnight());
    let end = parse_hhmm(&w.end, true)?;
    // `24:00`, or an end at or before the start, means the window crosses midnight.
    let end_next_day = end.is_none_or(|e| e <= start);
    Ok(Schedule::Weekly {
        days,
        start,
        end: end.unwrap_or(Time::midnight()),
        end_next_day,
    })
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A day (`mon`, `Monday`) or a range of days (`mon-fri`, `fri-mon` wraps) as bits, Monday = bit 0.
fn parse_days(text: &str) -> Result<u8, String> {
    let one = |t: &str| -> Result<usize, String> {
        let t = t.trim().to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .position(|n| t.len() >= 3 && (t == *n || full_day_name(n) == t))
            .ok_or_else(|| format!("bad day `{text}`: use mon, tue, wed, thu, fri, sat or sun"))
    };
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (one(a)?, one(b)?),
        None => {
            let a = one(text)?;
            (a, a)
        }
    };
    let mut bits = 0u8;
    let mut i = a;
    loop {
        bits |= 1 << i;
        if i == b {
            return Ok(bits);
        }
        i = (i + 1) % 7;
    }
}

fn full_day_name(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(settings: &str) -> String {
        compile(settings).unwrap_err()
    }

    #[test]
    fn defaults_have_no_windows_and_break_glass_labels() {
        let c = compile("{}").unwrap();
        assert!(c.windows.is_empty());
        assert_eq!(c.exempt_labels, vec!["hotfix", "emergency"]);
        assert!(compile("").is_ok());
    }

    #[test]
    fn days_and_ranges() {
        assert_eq!(parse_days("mon").unwrap(), 1);
        assert_eq!(parse_days("Sunday").unwrap(), 1 << 6);
        assert_eq!(parse_days("mon-fri").unwrap(), 0b001_1111);
        assert_eq!(parse_days("fri-mon").unwrap(), 0b111_0001);
        assert!(parse_days("mo").is_err());
        assert!(parse_days("funday").unwrap_err().contains("funday"));
    }

    #[test]
    fn weekly_end_at_or_before_start_crosses_midnight() {
        let c = compile(
            r#"{"windows":[{"name":"n","weekly":{"start":"22:00","end":"06:00"}},
            {"name":"d","weekly":{"days":["sat"],"start":"00:00","end":"24:00"}}]}"#,
        )
        .unwrap();
        for w in &c.windows {
            assert!(matches!(
                w.schedule,
                Schedule::Weekly {
                    end_next_day: true,
                    ..
                }
            ));
        }
    }

    #[test]
    fn errors_name_the_window_and_the_value() {
        let cases = [
            (
                r#"{"windows":[{"name":"x","timezone":"Mars/Olympus","weekly":{"start":"09:00","end":"17:00"}}]}"#,
                "window `x`: unknown time zone `Mars/Olympus`",
            ),
            (
                r#"{"windows":[{"name":"x","weekly":{"start":"9am","end":"17:00"}}]}"#,
                "window `x`: bad time `9am`",
            ),
            (
                r#"{"windows":[{"name":"x","weekly":{"start":"09:00","end":"17:00","days":["xyz"]}}]}"#,
                "bad day `xyz`",
            ),
            (
                r#"{"windows":[{"name":"x","cron":{"expr":"0 25 * * *","duration":"1h"}}]}"#,
                "window `x`: bad cron `0 25 * * *`",
            ),
            (
                r#"{"windows":[{"name":"x","cron":{"expr":"0 1 * * *","duration":"8d"}}]}"#,
                "window `x`: bad duration `8d`",
            ),
            (
                r#"{"windows":[{"name":"x","cron":{"expr":"0 1 * * *","duration":"2w"}}]}"#,
                "bad duration `2w`",
            ),
            (
                r#"{"windows":[{"name":"x","dates":{"from":"2026-12-20T00:00Z","to":"2027-01-03T00:00"}}]}"#,
                "bad local date-time `2026-12-20T00:00Z`",
            ),
            (
                r#"{"windows":[{"name":"x","dates":{"from":"2027-01-03T00:00","to":"2026-12-20T00:00"}}]}"#,
                "not after",
            ),
            (r#"{"windows":[{"name":"x"}]}"#, "exactly one of"),
            (
                r#"{"windows":[{"name":"x","weekly":{"start":"09:00","end":"17:00"},"dates":{"from":"2026-01-01","to":"2026-01-02"}}]}"#,
                "exactly one of",
            ),
            (
                r#"{"windows":[{"weekly":{"start":"09:00","end":"17:00"}}]}"#,
                "window #1: `name` is required",
            ),
            (
                r#"{"windows":[{"name":"x","kind":"block","weekly":{"start":"09:00","end":"17:00"}}]}"#,
                "window `x`: unknown variant `block`",
            ),
            (
                r#"{"windows":[{"name":"x","timezon":"UTC"}]}"#,
                "window `x`: unknown field `timezon`",
            ),
            (
                r#"{"windows":[{"name":"x","cron":{"expr":"@daily","duration":"1h"}},{"name":"x","cron":{"expr":"@daily","duration":"1h"}}]}"#,
                "name used twice",
            ),
            (r#"{"windowz":[]}"#, "unknown field `windowz`"),
        ];
        for (settings, needle) in cases {
            let e = err(settings);
            assert!(e.contains(needle), "{settings}\n  gave: {e}");
        }
    }
}
