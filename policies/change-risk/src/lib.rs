//! # change-risk
//!
//! Blast radius from the change context: each trigger (too many files, too many
//! lines, a risky path, no ticket where one is required, a declared high risk,
//! deploying off hours) adds points; at `hold_score` the change is held with one
//! reason per trigger, below it the change is promoted with a summary.
//!
//! # Layout
//! - this file: the [`Policy`] impl and the scoring.
//! - [`settings`]: the settings document, defaults, validation.
//! - [`glob`]: the path glob matcher for `risky_paths`.
//! - [`offhours`]: working hours in an IANA zone.

pub mod glob;
pub mod offhours;
pub mod settings;

use settings::{Compiled, Settings};
use verdict_sdk::*;

pub struct ChangeRisk;

impl Policy for ChangeRisk {
    fn describe() -> Info {
        Info::new(
            "change-risk",
            env!("CARGO_PKG_VERSION"),
            "blast radius of a change: diff size, risky paths, missing ticket, declared risk, off hours",
        )
        .with_default_settings(&Settings::default())
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        verdict_sdk::prepared(&settings, settings::compile).map(|_| ())
    }

    fn evaluate(input: Input) -> Result<Outcome, String> {
        let compiled = verdict_sdk::prepared(&input.settings, settings::compile)?;
        Ok(assess(&input, compiled))
    }
}

verdict_sdk::export!(ChangeRisk);

/// One thing that makes the change riskier, with the points it adds.
struct Trigger {
    points: u32,
    reason: Reason,
}

/// The decision for one request under validated settings.
pub fn assess(input: &Input, c: &Compiled) -> Outcome {
    let ch = &input.change;
    if is_empty(ch) {
        return Outcome::abstain(
            "no change context in the request (no files, lines, paths, labels, ticket or commit)",
        );
    }
    let s = &c.settings;
    let triggers: Vec<Trigger> = triggers(input, c)
        .into_iter()
        .filter(|t| t.points > 0)
        .collect();
    let score: u64 = triggers.iter().map(|t| u64::from(t.points)).sum();
    let hold = score >= u64::from(s.hold_score);
    let score_reason = |msg: String| {
        Reason::new(msg).on_metric("risk_score", score as f64, Some(f64::from(s.hold_score)))
    };

    if !hold {
        let what = if triggers.is_empty() {
            let lines = u64::from(ch.lines_added) + u64::from(ch.lines_removed);
            format!("{} files, {lines} lines, no risky path", files_changed(ch))
        } else {
            triggers
                .iter()
                .map(|t| t.reason.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Outcome::promote(vec![score_reason(format!(
            "risk score {score} below hold score {}: {what}",
            s.hold_score
        ))]);
    }
    let exempt = s.exempt_labels.iter().find(|l| input.has_label(l));
    let head = match exempt {
        Some(label) => format!(
            "label `{label}` exempts this change: risk score {score} would hold (hold score {})",
            s.hold_score
        ),
        None => format!("risk score {score} reaches hold score {}", s.hold_score),
    };
    let mut reasons = vec![score_reason(head)];
    reasons.extend(triggers.into_iter().map(|t| {
        let mut r = t.reason;
        r.message = format!("{} (+{})", r.message, t.points);
        r
    }));
    match exempt {
        Some(_) => Outcome::promote(reasons),
        None => Outcome::hold(reasons),
    }
}

/// Every trigger that fires, in a fixed order (size, paths, ticket, risk, time).
fn triggers(input: &Input, c: &Compiled) -> Vec<Trigger> {
    let (ch, s, p) = (&input.change, &c.settings, &c.settings.points);
    let mut out = Vec::new();
    let mut add = |points: u32, reason: Reason| out.push(Trigger { points, reason });

    let files = files_changed(ch);
    if files > u64::from(s.max_files) {
        add(
            p.files,
            Reason::new(format!("{files} files changed exceeds {}", s.max_files)).on_metric(
                "files_changed",
                files as f64,
                Some(f64::from(s.max_files)),
            ),
        );
    }
    let lines = u64::from(ch.lines_added) + u64::from(ch.lines_removed);
    if lines > u64::from(s.max_lines) {
        add(
            p.lines,
            Reason::new(format!("{lines} lines changed exceeds {}", s.max_lines)).on_metric(
                "lines_changed",
                lines as f64,
                Some(f64::from(s.max_lines)),
            ),
        );
    }
    if let Some(r) = risky_paths(ch, c) {
        add(p.risky_path, r);
    }
    let needs_ticket = s.require_ticket_for.contains(&input.deployment.environment);
    if needs_ticket && ch.ticket.as_deref().is_none_or(|t| t.trim().is_empty()) {
        add(
            p.missing_ticket,
            Reason::new(format!(
                "no ticket for a `{}` deployment",
                input.deployment.environment
            )),
        );
    }
    let level = ch.risk.as_deref().filter(|r| {
        s.risk_levels
            .iter()
            .any(|l| l.eq_ignore_ascii_case(r.trim()))
    });
    if let Some(level) = level {
        add(
            p.risk_label,
            Reason::new(format!("declared risk `{level}`")),
        );
    } else if let Some(label) = s.risk_labels.iter().find(|l| input.has_label(l)) {
        add(p.risk_label, Reason::new(format!("labelled `{label}`")));
    }
    if let Some(msg) = c
        .off_hours
        .as_ref()
        .and_then(|o| o.check(input.now_unix_ms))
    {
        add(p.off_hours, Reason::new(msg));
    }
    out
}

/// The first risky path with the pattern it matched, and how many more there are.
fn risky_paths(ch: &Change, c: &Compiled) -> Option<Reason> {
    let mut first: Option<(String, &str)> = None;
    let mut count = 0usize;
    for path in &ch.paths {
        let norm = glob::normalize(path);
        if let Some(g) = c.globs.iter().find(|g| g.matches(&norm)) {
            count += 1;
            first.get_or_insert((norm, g.as_str()));
        }
    }
    let (path, pattern) = first?;
    let more = if count > 1 {
        format!(" and {} more", count - 1)
    } else {
        String::new()
    };
    Some(
        Reason::new(format!(
            "touches risky path `{path}` (matches `{pattern}`){more}"
        ))
        .on_metric("risky_paths", count as f64, None),
    )
}

/// Deploy tools report either a count or the list; trust whichever is larger.
fn files_changed(ch: &Change) -> u64 {
    u64::from(ch.files_changed).max(ch.paths.len() as u64)
}

/// Nothing at all about the change: the request carries none of this policy's input.
fn is_empty(ch: &Change) -> bool {
    let blank = |o: &Option<String>| o.as_deref().is_none_or(|s| s.trim().is_empty());
    ch.files_changed == 0
        && ch.lines_added == 0
        && ch.lines_removed == 0
        && ch.paths.is_empty()
        && ch.labels.is_empty()
        && [&ch.ticket, &ch.commit, &ch.risk, &ch.title, &ch.author]
            .into_iter()
            .all(blank)
}

#[cfg(test)]
mod tests;
