//! The requests the benches decide, shared so every bench measures the
//! same inputs.

use verdict::domain::DecisionRequest;

/// The bench request: 2 series × 40 samples, 2 burn rates, a change.
pub fn request_json() -> serde_json::Value {
    let baseline: Vec<f64> = (0..40).map(|i| 100.0 + (i % 7) as f64).collect();
    let canary: Vec<f64> = (0..40).map(|i| 101.0 + (i % 5) as f64).collect();
    let errors: Vec<f64> = (0..40).map(|i| 0.001 + 0.0001 * (i % 3) as f64).collect();
    serde_json::json!({
        "deployment": {"service": "checkout", "environment": "production", "version": "v2",
                       "previous_version": "v1", "traffic_percent": 10.0},
        "change": {"files_changed": 4, "lines_added": 120, "lines_removed": 30,
                   "paths": ["src/cart.rs", "src/api/handlers.rs"], "ticket": "OPS-7"},
        "metrics": [
            {"name": "latency_p99_ms", "baseline": baseline, "canary": canary},
            {"name": "error_rate", "baseline": errors, "canary": errors},
            {"name": "burn_rate_1h", "value": 0.8}, {"name": "burn_rate_5m", "value": 0.9}
        ],
        "time": "2026-03-03T10:00:00Z"
    })
}

pub fn request() -> DecisionRequest {
    serde_json::from_value(request_json()).expect("valid request")
}

/// 10 metrics × 1,000 samples per side whose samples take 23 distinct
/// values per metric and side: a large canary analysis.
pub fn large_request() -> DecisionRequest {
    samples_request(|m, i| {
        (
            100.0 + ((i * 7 + m) % 23) as f64,
            100.5 + ((i * 11 + m) % 23) as f64,
        )
    })
}

/// Like the large request, but with continuous samples (no two alike): the
/// canary judge's order statistics cannot lean on runs of equal values there.
#[allow(dead_code)] // only `judge_fuel` decides it
pub fn smooth_request() -> DecisionRequest {
    // Deterministic and spread out: sums of fractional parts of multiples of
    // irrational numbers, roughly bell-shaped.
    let bell = |i: usize, m: usize, a: [f64; 3]| {
        let frac = |c: f64| ((i * 10 + m) as f64 * c).fract();
        frac(a[0]) + frac(a[1]) + frac(a[2])
    };
    samples_request(|m, i| {
        (
            100.0 + 10.0 * bell(i, m, [0.618_033_988_7, 0.414_213_562_4, 0.732_050_807_6]),
            100.5 + 10.0 * bell(i, m, [0.236_067_977_5, 0.645_751_311_1, 0.162_277_660_2]),
        )
    })
}

/// 10 metrics `metric_{m}` × 1,000 samples per side; `sample(m, i)` is the
/// i-th (baseline, canary) pair of metric m.
fn samples_request(sample: impl Fn(usize, usize) -> (f64, f64)) -> DecisionRequest {
    let metrics: Vec<serde_json::Value> = (0..10)
        .map(|m| {
            let (baseline, canary): (Vec<f64>, Vec<f64>) =
                (0..1000).map(|i| sample(m, i)).unzip();
            serde_json::json!({"name": format!("metric_{m}"), "baseline": baseline, "canary": canary})
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "deployment": {"service": "checkout", "environment": "production", "version": "v2"},
        "metrics": metrics,
        "time": "2026-03-03T10:00:00Z"
    }))
    .expect("valid request")
}
