//! The settings document, its defaults and its validation.

use crate::glob::Glob;
use crate::offhours::OffHoursRule;
use serde::{Deserialize, Serialize};

/// Bounds that keep one evaluation's work small whatever the settings say.
const MAX_PATTERNS: usize = 256;
const MAX_PATTERN_LEN: usize = 512;

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// More files than this is a trigger (`files_changed`, or the number of paths if larger).
    pub max_files: u32,
    /// More added + removed lines than this is a trigger.
    pub max_lines: u32,
    /// Globs of paths whose change is risky in itself (see `glob.rs` for the syntax).
    pub risky_paths: Vec<String>,
    /// Environments where a change without a ticket is a trigger.
    pub require_ticket_for: Vec<String>,
    /// Deploying outside working hours is a trigger; `null` turns the check off.
    pub off_hours: Option<OffHours>,
    /// Values of the change's `risk` field that are a trigger (case-insensitive).
    pub risk_levels: Vec<String>,
    /// Change labels that are a trigger (case-insensitive).
    pub risk_labels: Vec<String>,
    /// Labels that let a change through whatever its score: a human accepted the risk.
    pub exempt_labels: Vec<String>,
    /// Hold when the summed points reach this.
    pub hold_score: u32,
    /// Points each trigger adds.
    pub points: Points,
}

impl Default for Settings {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Settings {
            max_files: 50,
            max_lines: 1000,
            risky_paths: s(&[
                "**/migrations/**",
                "**/*.sql",
                "**/auth/**",
                "**/security/**",
                "**/Dockerfile",
                "**/*.tf",
                ".github/workflows/**",
            ]),
            require_ticket_for: s(&["production"]),
            off_hours: Some(OffHours::default()),
            risk_levels: s(&["high", "critical"]),
            risk_labels: s(&["high-risk", "breaking-change"]),
            exempt_labels: s(&["risk-accepted", "emergency"]),
            hold_score: 3,
            points: Points::default(),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(default, deny_unknown_fields)]
pub struct OffHours {
    pub timezone: String,
    /// Off hours begin at `start` and last until `end` (the next morning when end < start).
    pub start: String,
    pub end: String,
    /// Saturday and Sunday count as off hours all day.
    pub weekends: bool,
}

impl Default for OffHours {
    fn default() -> Self {
        OffHours {
            timezone: "UTC".into(),
            start: "18:00".into(),
            end: "08:00".into(),
            weekends: true,
        }
    }
}

/// Points per trigger. The defaults make each of "no ticket" and "declared high
/// risk" hold on its own, a big diff or a risky path hold only with one more
/// trigger, and off-hours only tip a change that is already risky.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Points {
    pub files: u32,
    pub lines: u32,
    pub risky_path: u32,
    pub missing_ticket: u32,
    pub risk_label: u32,
    pub off_hours: u32,
}

impl Default for Points {
    fn default() -> Self {
        Points {
            files: 2,
            lines: 2,
            risky_path: 2,
            missing_ticket: 3,
            risk_label: 3,
            off_hours: 1,
        }
    }
}

/// Validated settings, ready to evaluate.
#[derive(Debug)]
pub struct Compiled {
    pub settings: Settings,
    pub globs: Vec<Glob>,
    pub off_hours: Option<OffHoursRule>,
}

pub fn compile(text: &str) -> Result<Compiled, String> {
    let settings: Settings = verdict_sdk::parse_settings(text)?;
    if settings.hold_score == 0 {
        return Err("`hold_score` must be at least 1 (0 would hold every change)".into());
    }
    if settings.risky_paths.len() > MAX_PATTERNS {
        return Err(format!(
            "too many `risky_paths`: {} (at most {MAX_PATTERNS})",
            settings.risky_paths.len()
        ));
    }
    let mut globs = Vec::with_capacity(settings.risky_paths.len());
    for p in &settings.risky_paths {
        if p.trim().is_empty() || p.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "bad `risky_paths` pattern `{p}`: empty or longer than {MAX_PATTERN_LEN}"
            ));
        }
        globs.push(Glob::new(p.trim()));
    }
    let off_hours = match &settings.off_hours {
        Some(o) => Some(OffHoursRule::new(o).map_err(|e| format!("`off_hours`: {e}"))?),
        None => None,
    };
    Ok(Compiled {
        settings,
        globs,
        off_hours,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip() {
        let json = serde_json::to_string(&Settings::default()).unwrap();
        let c = compile(&json).unwrap();
        assert_eq!(c.settings.max_lines, 1000);
        assert_eq!(c.globs.len(), 7);
        assert!(c.off_hours.is_some());
        assert!(compile("").is_ok());
    }

    #[test]
    fn null_turns_off_hours_off() {
        assert!(compile(r#"{"off_hours":null}"#)
            .unwrap()
            .off_hours
            .is_none());
    }

    #[test]
    fn partial_sections_keep_their_other_defaults() {
        let c = compile(r#"{"points":{"off_hours":3},"off_hours":{"timezone":"Europe/Berlin"}}"#)
            .unwrap();
        assert_eq!(c.settings.points.files, 2);
        assert_eq!(c.settings.points.off_hours, 3);
        assert_eq!(c.settings.off_hours.unwrap().start, "18:00");
    }

    #[test]
    fn errors_name_the_setting_and_value() {
        for (s, needle) in [
            (
                r#"{"off_hours":{"timezone":"Europe/Berln"}}"#,
                "`off_hours`: unknown time zone `Europe/Berln`",
            ),
            (
                r#"{"off_hours":{"start":"6pm"}}"#,
                "`off_hours`: bad time `6pm`",
            ),
            (r#"{"hold_score":0}"#, "hold_score"),
            (r#"{"risky_paths":[""]}"#, "risky_paths"),
            (r#"{"max_lines":-1}"#, "invalid settings"),
            (r#"{"points":{"typo":1}}"#, "unknown field `typo`"),
            (r#"{"max_file":1}"#, "unknown field `max_file`"),
        ] {
            let e = compile(s).unwrap_err();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }
}
