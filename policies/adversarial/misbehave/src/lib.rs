//! `misbehave`: a deliberately hostile policy for the host's sandbox tests
//! (`host/tests/sandbox_limits.rs`). Its settings pick one misbehaviour, so a
//! single component covers every limit. Not a built-in; never bind it for real.
//!
//! `std::hint::black_box` keeps the optimiser from proving a loop or a
//! recursion pointless and deleting the very thing under test.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use serde::Deserialize;
use verdict_sdk::*;

struct Misbehave;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "ok")]
    mode: String,
}

fn ok() -> String {
    "ok".into()
}

const MODES: &[&str] = &[
    "ok",
    "abstain",
    "err",
    "trap",
    "loop",
    "memory-bomb",
    "recursion",
    "huge-reason",
    "huge-metric",
    "huge-abstain",
    "many-reasons",
    "log-flood",
    "remember",
];

/// What `remember` leaves behind in its instance: how many evaluations the
/// instance has run, and a mark on every page of a 2 MiB zeroed region,
/// more than the host keeps mapped between instances. A fresh instance sees
/// a count of zero and no mark, whether the host reset the pages in place
/// or unmapped them.
static RUNS: AtomicU32 = AtomicU32::new(0);
const PAGE: usize = 4096;
static MARKS: [AtomicU8; 2 << 20] = [const { AtomicU8::new(0) }; 2 << 20];

/// `remember`: vote promote only in a fresh instance, then leave state
/// behind for the next evaluation to find if it is not reset.
fn remember() -> Result<Outcome, String> {
    let earlier = RUNS.fetch_add(1, Ordering::Relaxed);
    let marked = MARKS
        .iter()
        .step_by(PAGE)
        .filter(|m| m.load(Ordering::Relaxed) != 0)
        .count();
    for m in MARKS.iter().step_by(PAGE) {
        m.store(1, Ordering::Relaxed);
    }
    if earlier == 0 && marked == 0 {
        Ok(Outcome::promote(vec![Reason::new(
            "fresh instance: nothing left by an earlier evaluation",
        )]))
    } else {
        Err(format!(
            "state leaked: {earlier} earlier evaluations counted, {marked} pages marked"
        ))
    }
}

fn mode(settings: &str) -> Result<String, String> {
    let s: Settings = parse_settings(settings)?;
    if MODES.contains(&s.mode.as_str()) {
        Ok(s.mode)
    } else {
        Err(format!(
            "unknown mode `{}`: expected one of {}",
            s.mode,
            MODES.join(", ")
        ))
    }
}

/// Not a tail call (the `black_box` sits between the call and the addition),
/// so every level keeps a frame until the stack runs out.
fn recurse(depth: u64) -> u64 {
    // An opaque base case, never reached, that the compiler cannot rule out.
    if black_box(depth) == u64::MAX {
        return 0;
    }
    black_box(recurse(black_box(depth + 1))).wrapping_add(1)
}

impl Policy for Misbehave {
    fn describe() -> Info {
        Info::new(
            "misbehave",
            env!("CARGO_PKG_VERSION"),
            "test-only: misbehaves as its settings' `mode` says",
        )
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        mode(&settings).map(|_| ())
    }

    fn evaluate(input: Input) -> Result<Outcome, String> {
        match mode(&input.settings)?.as_str() {
            "ok" => Ok(Outcome::promote(vec![Reason::new("all good")])),
            "abstain" => Ok(Outcome::abstain("nothing to judge")),
            "err" => Err("deliberate failure".into()),
            "trap" => panic!("deliberate panic"),
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "memory-bomb" => {
                // Reserve without writing: the bomb should hit the memory
                // limit, not burn its fuel on memset first.
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(Vec::with_capacity(1 << 20)));
                }
            }
            "recursion" => Ok(Outcome::promote(vec![Reason::new(format!(
                "unreachable: {}",
                recurse(0)
            ))])),
            "huge-reason" => Ok(Outcome::hold(vec![Reason::new("x".repeat(10 << 20))])),
            "huge-metric" => Ok(Outcome::hold(vec![Reason::new("short message").on_metric(
                &"m".repeat(10 << 20),
                1.0,
                None,
            )])),
            "huge-abstain" => Ok(Outcome::abstain("x".repeat(10 << 20))),
            "many-reasons" => {
                // Empty messages allocate nothing: the count is what is tested.
                let mut reasons = Vec::with_capacity(100_000);
                reasons.resize_with(100_000, || Reason::new(String::new()));
                Ok(Outcome::hold(reasons))
            }
            "log-flood" => {
                for i in 0..10_000 {
                    log::info(&format!("line {i}"));
                }
                Ok(Outcome::promote(vec![Reason::new("logged a lot")]))
            }
            "remember" => remember(),
            other => Err(format!("mode `{other}` is validated but not implemented")),
        }
    }
}

verdict_sdk::export!(Misbehave);
