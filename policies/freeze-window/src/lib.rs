//! # freeze-window
//!
//! Change calendars: deny windows freeze deployments while open, allow windows
//! permit deployments only while open; deny beats allow; a change carrying an
//! exempt label (`hotfix`, `emergency`) passes (break-glass). Time comes only
//! from the request's `now-unix-ms` — a policy has no clock.
//!
//! # Layout
//! - this file: the [`Policy`] impl and the decision over all windows.
//! - [`settings`]: the settings document, validated into compiled windows.
//! - [`window`]: one window's schedule and time zone; how local times and DST
//!   transitions become instants.
//! - [`cron`]: the five-field cron matcher.
//! - [`local`]: strict parsers for times, dates, durations and zones; printing.

pub mod cron;
pub mod local;
pub mod settings;
pub mod window;

use jiff::Timestamp;
use settings::{Compiled, Settings};
use verdict_sdk::*;
use window::{Kind, Window};

/// Reasons past this many are summarised, so a big calendar keeps decisions readable.
const MAX_REASONS: usize = 3;

pub struct FreezeWindow;

impl Policy for FreezeWindow {
    fn describe() -> Info {
        Info::new(
            "freeze-window",
            env!("CARGO_PKG_VERSION"),
            "change calendars: deny and allow windows (weekly, cron, one-off dates) in IANA time zones",
        )
        .with_default_settings(&Settings::default())
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        verdict_sdk::prepared(&settings, settings::compile).map(|_| ())
    }

    fn evaluate(input: Input) -> Result<Outcome, String> {
        let compiled = verdict_sdk::prepared(&input.settings, settings::compile)?;
        Ok(decide(&input, compiled))
    }
}

verdict_sdk::export!(FreezeWindow);

/// The decision for one request under validated settings.
pub fn decide(input: &Input, settings: &Compiled) -> Outcome {
    if settings.windows.is_empty() {
        return Outcome::abstain("no freeze windows configured");
    }
    let dep = &input.deployment;
    let applicable: Vec<&Window> = settings
        .windows
        .iter()
        .filter(|w| w.selector.matches(dep))
        .collect();
    if applicable.is_empty() {
        return Outcome::abstain(format!(
            "no window applies to service `{}` in environment `{}`",
            dep.service, dep.environment
        ));
    }
    let Ok(now) = Timestamp::from_millisecond(input.now_unix_ms) else {
        // Not abstention: the policy's input is present but unusable, and letting a
        // freeze policy drop out on a garbage clock would be a silent pass.
        return Outcome::hold(vec![Reason::new(format!(
            "decision time {} ms is outside the supported calendar",
            input.now_unix_ms
        ))]);
    };

    let open = |kind: Kind| -> Vec<(&Window, Timestamp)> {
        applicable
            .iter()
            .filter(|w| w.kind == kind)
            .filter_map(|w| w.active_until(now).map(|until| (*w, until)))
            .collect()
    };
    let deny_open = open(Kind::Deny);
    let allows: Vec<&Window> = applicable
        .iter()
        .copied()
        .filter(|w| w.kind == Kind::Allow)
        .collect();
    let allow_open = open(Kind::Allow);

    let mut blocking: Vec<String> = deny_open
        .iter()
        .map(|(w, until)| deny_message(w, *until))
        .collect();
    if !allows.is_empty() && allow_open.is_empty() {
        blocking.push(closed_message(&allows, now));
    }
    if !blocking.is_empty() {
        let exempt = settings.exempt_labels.iter().find(|l| input.has_label(l));
        return match exempt {
            Some(label) => Outcome::promote(cap(blocking
                .into_iter()
                .map(|m| format!("label `{label}` exempts this change: {m}"))
                .collect())),
            None => Outcome::freeze(cap(blocking)),
        };
    }

    let mut reasons = Vec::new();
    if let Some((w, until)) = allow_open.iter().max_by_key(|(_, until)| *until) {
        reasons.push(format!(
            "inside allow window `{}` ({}) until {}",
            w.name,
            w.zone_name,
            local::format_local(*until, &w.tz)
        ));
    }
    let denies = applicable.len() - allows.len();
    if denies > 0 {
        reasons.push(format!("no deny window open ({denies} checked)"));
    }
    Outcome::promote(reasons.into_iter().map(Reason::new).collect())
}

fn deny_message(w: &Window, until: Timestamp) -> String {
    format!(
        "deny window `{}` ({}) is open until {}",
        w.name,
        w.zone_name,
        local::format_local(until, &w.tz)
    )
}

/// Outside every allow window: name them and say when the next one opens, if it
/// opens within the look-ahead.
fn closed_message(allows: &[&Window], now: Timestamp) -> String {
    let names: Vec<String> = allows
        .iter()
        .take(MAX_REASONS)
        .map(|w| format!("`{}`", w.name))
        .collect();
    let more = if allows.len() > MAX_REASONS {
        format!(" and {} more", allows.len() - MAX_REASONS)
    } else {
        String::new()
    };
    let next = allows
        .iter()
        .filter_map(|w| w.next_start(now).map(|s| (*w, s)))
        .min_by_key(|(_, s)| *s);
    let plural = if allows.len() == 1 { "" } else { "s" };
    let mut msg = format!("outside allow window{plural} {}{more}", names.join(", "));
    if let Some((w, s)) = next {
        msg.push_str(&format!(
            "; next opens {} ({})",
            local::format_local(s, &w.tz),
            w.zone_name
        ));
    }
    msg
}

/// At most [`MAX_REASONS`] reasons; the rest are counted in the last one.
fn cap(mut messages: Vec<String>) -> Vec<Reason> {
    if messages.len() > MAX_REASONS {
        let extra = messages.len() - (MAX_REASONS - 1);
        messages.truncate(MAX_REASONS - 1);
        messages.push(format!("and {extra} more windows"));
    }
    messages.into_iter().map(Reason::new).collect()
}

#[cfg(test)]
mod tests;
