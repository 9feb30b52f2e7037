//! The judge natively on the benchmark's large request (10 metrics × 1,000
//! samples per side, default settings): prints the outcome, to compare two
//! builds' answers, and the time per decision, a proxy for the sandbox's
//! cost (the sandbox's fuel is the real measure: `cargo bench -p verdict --bench judge_fuel`).
//!
//! `cargo run --release --example large [iterations]` in `policies/`.

use std::time::Instant;

use canary_judge::{judge, settings};
use verdict_sdk::{Input, Metric};

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .map_or(200, |s| s.parse().expect("iterations: a number"));
    let metrics = (0..10)
        .map(|m| {
            let baseline: Vec<f64> = (0..1000)
                .map(|i| 100.0 + ((i * 7 + m) % 23) as f64)
                .collect();
            let canary: Vec<f64> = (0..1000)
                .map(|i| 100.5 + ((i * 11 + m) % 23) as f64)
                .collect();
            Metric::samples(&format!("metric_{m}"), &baseline, &canary)
        })
        .collect();
    let input = Input {
        metrics,
        settings: "{}".into(),
        ..Default::default()
    };
    let settings = settings::load(&input.settings).expect("default settings");
    println!("{:?}", judge(&input, &settings));
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(judge(std::hint::black_box(&input), &settings));
    }
    let each = start.elapsed() / iterations;
    eprintln!("{iterations} decisions: {each:?} each");
}
