//! `change-size`: holds changes larger than `max_lines`, promotes the rest.
use serde::{Deserialize, Serialize};
use verdict_sdk::*;

#[derive(Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    max_lines: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { max_lines: 500 }
    }
}

struct ChangeSize;

impl Policy for ChangeSize {
    fn describe() -> Info {
        Info::new("change-size", env!("CARGO_PKG_VERSION"), "holds large changes")
            .with_default_settings(&Settings::default())
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        parse_settings::<Settings>(&settings).map(|_| ())
    }

    fn evaluate(input: Input) -> Result<Outcome, String> {
        let s: Settings = parse_settings(&input.settings)?;
        let lines = input.change.lines_added + input.change.lines_removed;
        let reason = Reason::new(format!("{lines} lines changed (limit {})", s.max_lines))
            .on_metric("lines_changed", lines as f64, Some(s.max_lines as f64));
        if lines > s.max_lines {
            Ok(Outcome::hold(vec![reason]))
        } else {
            Ok(Outcome::promote(vec![reason]))
        }
    }
}

verdict_sdk::export!(ChangeSize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_changes_hold() {
        let mut input = Input::default();
        input.change.lines_added = 900;
        let out = ChangeSize::evaluate(input).unwrap();
        assert_eq!(out.verdict(), Some(Verdict::Hold));
    }
}
