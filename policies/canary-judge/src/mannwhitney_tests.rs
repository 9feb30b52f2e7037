//! Expected numbers come from scipy 1.17.1 (`scripts/reference.py`, data sets
//! `UNIT`): U and p from `scipy.stats.mannwhitneyu(x, y,
//! alternative="two-sided", method="asymptotic", use_continuity=True)`; the
//! estimate from `numpy.median(numpy.subtract.outer(x, y))`; the interval from
//! a port of R's asymptotic `wilcox.test` interval solved with
//! `scipy.optimize.brentq`, which agreed with the closed form to 1e-9.

use super::*;
use crate::differences::differences_at;
use crate::runs::Runs;

const LATENCY_CANARY: [f64; 20] = [
    131.2, 122.5, 135.9, 140.1, 129.7, 133.3, 138.8, 119.0, 136.4, 131.9, 142.6, 130.0, 134.7,
    137.2, 129.1, 139.5, 132.8, 136.0, 128.9, 141.3,
];
const LATENCY_BASELINE: [f64; 20] = [
    120.4, 118.9, 125.3, 122.7, 119.6, 124.1, 121.8, 117.5, 126.2, 123.0, 120.9, 122.2, 118.1,
    125.8, 121.1, 124.6, 119.9, 123.7, 120.2, 122.9,
];
const TIES_CANARY: [f64; 25] = [
    101., 102., 102., 103., 103., 103., 104., 104., 105., 102., 103., 104., 103., 102., 105., 103.,
    104., 102., 103., 104., 103., 105., 102., 104., 103.,
];
const TIES_BASELINE: [f64; 25] = [
    100., 101., 101., 102., 102., 102., 103., 103., 101., 102., 100., 102., 103., 101., 102., 102.,
    101., 103., 102., 101., 102., 100., 102., 103., 101.,
];
const FLAT_CANARY: [f64; 12] = [
    0.51, 0.47, 0.55, 0.49, 0.53, 0.50, 0.46, 0.52, 0.48, 0.54, 0.50, 0.51,
];
const FLAT_BASELINE: [f64; 18] = [
    0.50, 0.52, 0.47, 0.49, 0.55, 0.51, 0.48, 0.53, 0.46, 0.50, 0.52, 0.49, 0.51, 0.54, 0.47, 0.50,
    0.53, 0.48,
];

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[track_caller]
fn check(mw: MannWhitney, u: f64, p: f64, est: f64, lo: f64, hi: f64) {
    assert_eq!(mw.u, u, "U {mw:?}");
    assert!(
        close(mw.p_value, p, 1e-9) && (mw.p_value - p).abs() <= 1e-9 * p.max(1e-300) + 1e-15,
        "p {mw:?} want {p}"
    );
    assert!(close(mw.estimate, est, 1e-12), "estimate {mw:?} want {est}");
    assert!(close(mw.lower, lo, 1e-12), "lower {mw:?} want {lo}");
    assert!(close(mw.upper, hi, 1e-12), "upper {mw:?} want {hi}");
}

#[test]
fn kayenta_small_sample_95() {
    // Also Kayenta's MannWhitneySuite case: interval [6, 39], estimate 22.5
    // (R's exact interval coincides here).
    let mw = mann_whitney(&[10., 20., 30., 40.], &[1., 2., 3., 4.], 0.95).unwrap();
    check(mw, 16.0, 0.03038282197657749, 22.5, 6.0, 39.0);
}

#[test]
fn latency_shift_98() {
    let mw = mann_whitney(&LATENCY_CANARY, &LATENCY_BASELINE, 0.98).unwrap();
    check(
        mw,
        374.0,
        2.68976868945904e-06,
        11.999999999999993,
        8.699999999999989,
        15.799999999999983,
    );
}

#[test]
fn ties_heavy_98() {
    let mw = mann_whitney(&TIES_CANARY, &TIES_BASELINE, 0.98).unwrap();
    check(mw, 524.0, 2.4001597033125232e-05, 1.0, 1.0, 2.0);
}

#[test]
fn no_shift_unequal_sizes_98() {
    let mw = mann_whitney(&FLAT_CANARY, &FLAT_BASELINE, 0.98).unwrap();
    check(
        mw,
        113.5,
        0.8313847663475058,
        0.0,
        -0.020000000000000018,
        0.030000000000000027,
    );
    assert!(mw.lower < 0.0 && mw.upper > 0.0);
}

#[test]
fn swapping_samples_mirrors_everything() {
    let a = mann_whitney(&LATENCY_CANARY, &LATENCY_BASELINE, 0.98).unwrap();
    let b = mann_whitney(&LATENCY_BASELINE, &LATENCY_CANARY, 0.98).unwrap();
    assert_eq!(a.u + b.u, 400.0);
    assert_eq!(a.p_value, b.p_value);
    assert!(close(a.estimate, -b.estimate, 1e-12));
    assert!(close(a.lower, -b.upper, 1e-12) && close(a.upper, -b.lower, 1e-12));
}

#[test]
fn degenerate_inputs_give_none() {
    assert!(mann_whitney(&[], &[1.0], 0.98).is_none());
    assert!(mann_whitney(&[1.0], &[], 0.98).is_none());
    assert!(mann_whitney(&[2.0, 2.0], &[2.0, 2.0, 2.0], 0.98).is_none());
    assert!(mann_whitney(&[1.0, f64::NAN], &[1.0, 2.0], 0.98).is_none());
    assert!(mann_whitney(&[1.0, f64::INFINITY], &[1.0, 2.0], 0.98).is_none());
    assert!(mann_whitney(&[1.0, 3.0], &[1.0, 2.0], 1.0).is_none());
    assert!(mann_whitney(&[1.0, 3.0], &[1.0, 2.0], f64::NAN).is_none());
}

#[test]
fn single_samples_do_not_panic() {
    let mw = mann_whitney(&[5.0], &[3.0], 0.98).unwrap();
    assert_eq!(
        (mw.u, mw.estimate, mw.lower, mw.upper),
        (1.0, 2.0, 2.0, 2.0)
    );
}

/// A small deterministic generator so the brute-force comparison needs no crate.
fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 11) as f64) / ((1u64 << 53) as f64)
}

/// Every pairwise difference, sorted: the reference the selection must
/// match bit for bit (up to the sign of zero, which `mann_whitney` drops).
fn all_differences(xs: &[f64], ys: &[f64]) -> Vec<f64> {
    let mut all: Vec<f64> = xs
        .iter()
        .flat_map(|x| ys.iter().map(move |y| x - y))
        .collect();
    all.sort_unstable_by(f64::total_cmp);
    all
}

/// The selection on two sorted samples.
fn select<const N: usize>(xs: &[f64], ys: &[f64], ranks: [u64; N]) -> [f64; N] {
    differences_at(&Runs::new(xs), &Runs::new(ys), ranks)
}

#[track_caller]
fn same(got: f64, want: f64, what: &str) {
    assert_eq!(
        (got + 0.0).to_bits(),
        (want + 0.0).to_bits(),
        "{what}: {got} != {want}"
    );
}

/// Samples of `n` values: uniform, coarsely rounded to force ties, skewed,
/// with outliers, or from a handful of values (`kind` picks).
fn sample(seed: &mut u64, n: usize, kind: usize, centre: f64) -> Vec<f64> {
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let u = lcg(seed);
            match kind % 6 {
                0 => centre + (u - 0.5) * 50.0,
                1 => centre + ((u - 0.5) * 200.0).round() / 4.0,
                2 => centre + (u.powi(4) * 1e4 * 1000.0).round() / 1000.0,
                3 if u < 0.02 => centre + 1e12 * (u - 0.01),
                3 => centre + (u - 0.5) * 10.0,
                4 => centre + (u * 4.0).floor(),
                _ => centre + ((u - 0.5) * 1e6).round() * 1e-9,
            }
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

#[test]
fn differences_at_match_brute_force_for_every_rank() {
    let mut seed = 7;
    for round in 0..120 {
        let n = 1 + (lcg(&mut seed) * 30.0) as usize;
        let m = 1 + (lcg(&mut seed) * 30.0) as usize;
        let xs = sample(&mut seed, n, round, 0.0);
        let shift = lcg(&mut seed) * 20.0 - 10.0;
        let ys = sample(&mut seed, m, round / 6, shift);
        let all = all_differences(&xs, &ys);
        for k in 1..=all.len() as u64 {
            let [got] = select(&xs, &ys, [k]);
            same(got, all[k as usize - 1], &format!("round {round} k={k}"));
        }
    }
}

#[test]
fn differences_at_match_brute_force_for_rank_sets() {
    let mut seed = 3;
    for round in 0..300 {
        let n = 1 + (lcg(&mut seed) * 60.0) as usize;
        let m = 1 + (lcg(&mut seed) * 60.0) as usize;
        let xs = sample(&mut seed, n, round, 0.0);
        let shift = lcg(&mut seed) * 4.0 - 2.0;
        let ys = sample(&mut seed, m, round / 6, shift);
        let all = all_differences(&xs, &ys);
        let pairs = all.len() as u64;
        // Random ranks, repeats and neighbours included, in any order.
        let mut rank = || 1 + ((lcg(&mut seed) * pairs as f64) as u64).min(pairs - 1);
        let a = rank();
        let ranks = [a, rank(), (a + 1).min(pairs), a, rank()];
        let got = select(&xs, &ys, ranks);
        for (k, g) in ranks.iter().zip(got) {
            same(
                g,
                all[*k as usize - 1],
                &format!("round {round} k={k} of {ranks:?}"),
            );
        }
    }
}

#[test]
fn differences_at_match_brute_force_on_large_samples() {
    let mut seed = 11;
    for round in 0..12 {
        let n = 300 + (lcg(&mut seed) * 900.0) as usize;
        let m = 300 + (lcg(&mut seed) * 900.0) as usize;
        let xs = sample(&mut seed, n, round, 1.0);
        let ys = sample(&mut seed, m, round + round / 6, 0.0);
        let all = all_differences(&xs, &ys);
        let pairs = all.len() as u64;
        // The ranks `mann_whitney` asks for, and the extremes.
        let (lo, hi) = interval_ranks(pairs, 2.3263478740408408, (pairs as f64 * 200.0).sqrt());
        let ranks = [
            pairs / 2,
            pairs / 2 + 1,
            lo,
            hi,
            1,
            2,
            pairs / 100,
            pairs - 7,
            pairs,
        ];
        let got = select(&xs, &ys, ranks);
        for (k, g) in ranks.iter().zip(got) {
            same(g, all[*k as usize - 1], &format!("round {round} k={k}"));
        }
    }
}

#[test]
fn differences_at_handle_extremes() {
    // Differences that overflow to infinity, and zeros of both signs.
    let xs = [-1.7e308, -1.0, -0.0, 0.0, 1.7e308];
    let ys = [-1.7e308, -0.0, 0.0, 2.0, 1.7e308];
    let all = all_differences(&xs, &ys);
    for k in 1..=all.len() as u64 {
        let [got] = select(&xs, &ys, [k]);
        same(got, all[k as usize - 1], &format!("k={k}"));
    }
}

#[test]
fn interval_ranks_are_symmetric_and_clamped() {
    assert_eq!(interval_ranks(16, 1.959963984540054, 12f64.sqrt()), (1, 16));
    // 400 pairs, sigma^2 = 400 * 41 / 12: k = ceil(199.5 - 2.326 * 36.97) = 114.
    let (lo, hi) = interval_ranks(400, 2.3263478740408408, (400.0 * 41.0 / 12.0f64).sqrt());
    assert_eq!((lo, hi), (114, 287));
    assert_eq!(interval_ranks(1, 2.0, 0.5), (1, 1));
    assert_eq!(interval_ranks(10, f64::NAN, 1.0), (1, 10));
}

#[test]
fn large_samples_finish_and_agree_with_the_shift() {
    let x: Vec<f64> = (0..10_000).map(|i| 100.0 + (i % 97) as f64 * 0.5).collect();
    let y: Vec<f64> = (0..10_000).map(|i| 90.0 + (i % 89) as f64 * 0.5).collect();
    let mw = mann_whitney(&x, &y, 0.98).unwrap();
    assert!(mw.lower > 0.0 && mw.lower <= mw.estimate && mw.estimate <= mw.upper);
    assert!(mw.p_value < 1e-100);
}

#[test]
fn extreme_magnitudes_stay_finite_or_ordered() {
    let mw = mann_whitney(
        &[1e300, 1.5e300, 2e300],
        &[-1e300, -1.2e300, -1.7e300],
        0.98,
    )
    .unwrap();
    assert!(mw.lower <= mw.estimate && mw.estimate <= mw.upper);
    let mw = mann_whitney(&[1e-300, 2e-300, 3e-300], &[0.0, 0.0, 1e-300], 0.98).unwrap();
    assert!(mw.lower <= mw.estimate && mw.estimate <= mw.upper);
}
