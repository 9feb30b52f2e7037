//! Per-metric classification in the manner of Kayenta's MannWhitneyClassifier:
//! clean the samples, then Nodata / Pass / High / Low from the rank test's
//! confidence interval and the mean-ratio effect size.

use verdict_sdk::stats::quantile;

use crate::mannwhitney::{mann_whitney_runs, MannWhitney};
use crate::runs::{sort_samples, Runs};
use crate::settings::{MetricConfig, NanStrategy, OutlierStrategy, Settings};

/// Samples kept per side. Beyond this the sorted samples are thinned to evenly
/// spaced order statistics: the empirical distribution is preserved while the
/// work stays inside the sandbox's fuel and deadline (the rank test is already
/// decisive long before this many samples).
pub const MAX_SAMPLES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Pass,
    /// The canary is significantly higher (and the direction makes that bad).
    High,
    /// The canary is significantly lower (and the direction makes that bad).
    Low,
    /// A side has no usable samples.
    Nodata,
    /// Samples on both sides, but fewer than `min_samples` on one.
    TooFew,
}

/// Why a metric passed without a test, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    Identical,
    SingleValue,
}

#[derive(Debug, Clone)]
pub struct MetricResult {
    pub name: String,
    pub group: String,
    pub unit: Option<String>,
    pub class: Class,
    /// Nodata that counts as a failure (`must_have_data`).
    pub data_required: bool,
    /// A critical metric that failed beyond its critical effect size.
    pub critical_failure: bool,
    pub baseline_n: usize,
    pub canary_n: usize,
    pub stats: Option<MannWhitney>,
    /// canary mean / baseline mean; `None` when the baseline mean is not
    /// positive (the ratio then says nothing and does not gate).
    pub ratio: Option<f64>,
    pub canary_mean: Option<f64>,
    /// The effect-size threshold the ratio was held to (increase or decrease).
    pub allowed: f64,
    pub shortcut: Option<Shortcut>,
}

/// Classify one metric from its raw samples.
pub fn classify(
    cfg: &MetricConfig,
    unit: Option<&str>,
    baseline: &[f64],
    canary: &[f64],
    settings: &Settings,
) -> MetricResult {
    let y = prepare(baseline, cfg);
    let x = prepare(canary, cfg);
    let mut r = MetricResult {
        name: cfg.name.clone(),
        group: cfg.group_name().to_string(),
        unit: unit.map(str::to_string),
        class: Class::Pass,
        data_required: cfg.must_have_data,
        critical_failure: false,
        baseline_n: y.total() as usize,
        canary_n: x.total() as usize,
        stats: None,
        ratio: None,
        canary_mean: x.mean(),
        allowed: cfg.effect_size.allowed_increase,
        shortcut: None,
    };
    if x.is_empty() || y.is_empty() {
        r.class = Class::Nodata;
        return r;
    }
    if r.canary_n < settings.min_samples || r.baseline_n < settings.min_samples {
        r.class = Class::TooFew;
        return r;
    }
    // `prepare` sorted both sides, so equal multisets compare equal here.
    if x.same_samples(&y) {
        r.shortcut = Some(Shortcut::Identical);
        return r;
    }
    let ends = |r: &Runs| (r.values[0], r.values[r.values.len() - 1]);
    let ((x0, xn), (y0, yn)) = (ends(&x), ends(&y));
    if x0 == xn && y0 == yn && x0 == y0 {
        r.shortcut = Some(Shortcut::SingleValue);
        return r;
    }
    let Some(mw) = mann_whitney_runs(&x, &y, settings.confidence) else {
        // Only reachable when every observation is tied: nothing moved.
        r.shortcut = Some(Shortcut::SingleValue);
        return r;
    };
    r.stats = Some(mw);
    r.ratio = mean_ratio(r.canary_mean, y.mean());

    let es = &cfg.effect_size;
    let margin = settings.tolerance * mw.estimate.abs();
    // A missing ratio (baseline mean <= 0) cannot veto: the rank test decides.
    let ratio_at_least = |t: f64| r.ratio.is_none_or(|q| q >= t);
    let ratio_at_most = |t: f64| r.ratio.is_none_or(|q| q <= t);
    let high = cfg.direction.watches_increase()
        && mw.lower > margin
        && ratio_at_least(es.allowed_increase);
    let low = cfg.direction.watches_decrease()
        && mw.upper < -margin
        && ratio_at_most(es.allowed_decrease);
    if high {
        r.class = Class::High;
        r.critical_failure = cfg.critical && ratio_at_least(es.critical_increase);
    } else if low {
        r.class = Class::Low;
        r.allowed = es.allowed_decrease;
        r.critical_failure = cfg.critical && ratio_at_most(es.critical_decrease);
    }
    r
}

/// Clean one side: missing values per `nan_strategy`, infinities dropped
/// (they have a rank but no mean or shift), optional IQR outlier removal,
/// thinning to [`MAX_SAMPLES`]. Returns the samples sorted, as runs.
fn prepare(raw: &[f64], cfg: &MetricConfig) -> Runs {
    let mut v: Vec<f64> = raw
        .iter()
        .filter_map(|&s| {
            if s.is_nan() {
                (cfg.nan_strategy == NanStrategy::Replace).then_some(0.0)
            } else if s.is_infinite() {
                None
            } else {
                Some(s)
            }
        })
        .collect();
    let outliers = cfg.outliers.strategy == OutlierStrategy::Remove && v.len() >= 4;
    if !outliers && v.len() <= MAX_SAMPLES {
        return Runs::sort(v);
    }
    sort_samples(&mut v);
    if outliers {
        if let (Some(q1), Some(q3)) = (quantile(&v, 0.25), quantile(&v, 0.75)) {
            let reach = cfg.outliers.factor * (q3 - q1);
            let (lo, hi) = (q1 - reach, q3 + reach);
            v.retain(|&s| s >= lo && s <= hi);
        }
    }
    if v.len() > MAX_SAMPLES {
        let last = (v.len() - 1) as f64;
        let step = last / (MAX_SAMPLES - 1) as f64;
        v = (0..MAX_SAMPLES)
            .map(|i| v[((i as f64 * step).round() as usize).min(v.len() - 1)])
            .collect();
    }
    Runs::new(&v)
}

/// canary mean / baseline mean, Kayenta's effect size. Defined only for a
/// positive baseline mean: latencies, rates and counts are non-negative, and
/// a zero baseline has no ratio at all.
fn mean_ratio(canary_mean: Option<f64>, baseline_mean: Option<f64>) -> Option<f64> {
    let (mx, my) = (canary_mean?, baseline_mean?);
    let q = mx / my;
    (my > 0.0 && q.is_finite()).then_some(q)
}
