//! One metric's evidence as an inline SVG: baseline and canary side by side
//! on one value axis, with the thresholds the policies compared them to.
//! A strip of dots while there are few samples (each one visible), a
//! histogram once there are many (so a 1,000-sample series stays a few
//! kilobytes). Plain SVG, no script: it renders with JavaScript off and in
//! any browser, and its `<title>`/`<desc>` say in words what it shows.

use std::fmt::Write;

use maud::{html, Markup, PreEscaped};

use crate::domain::Metric;

const WIDTH: f64 = 640.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 16.0;
const ROW: f64 = 44.0;
const TOP: f64 = 10.0;
const AXIS: f64 = 30.0;
/// Above this many samples a series is drawn as a histogram.
const MAX_DOTS: usize = 200;
const BINS: usize = 40;

/// A line the policies drew on this metric: `threshold` from a reason.
#[derive(Debug, Clone)]
pub struct Mark {
    pub value: f64,
    pub label: String,
}

/// Summary numbers of one series, for the description and the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
}

pub fn summary(samples: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    Some(Summary {
        n: v.len(),
        mean: v.iter().sum::<f64>() / v.len() as f64,
        p50: q(0.5),
        p99: q(0.99),
    })
}

/// Short, stable number formatting for labels.
pub fn num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-4..1e6).contains(&a) {
        return format!("{x:.3e}");
    }
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    // At most 4 significant decimals past the first non-zero digit.
    match s.find('.') {
        Some(dot) => {
            let frac = &s[dot + 1..];
            let lead = frac.chars().take_while(|c| *c == '0').count();
            let keep = (lead + 4).min(frac.len());
            s[..dot + 1 + keep]
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        }
        None => s.to_string(),
    }
}

/// The plot of `metric`, or `None` when it carries no number at all.
pub fn plot(metric: &Metric, marks: &[Mark]) -> Option<Markup> {
    let mut rows: Vec<(&str, Vec<f64>)> = Vec::new();
    for (label, series) in [("baseline", &metric.baseline), ("canary", &metric.canary)] {
        let finite: Vec<f64> = series.iter().copied().filter(|x| x.is_finite()).collect();
        if !finite.is_empty() {
            rows.push((label, finite));
        }
    }
    if let Some(v) = metric.value.filter(|v| v.is_finite()) {
        rows.push(("value", vec![v]));
    }
    if rows.is_empty() {
        return None;
    }
    let all = rows
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .chain(marks.iter().map(|m| m.value).filter(|v| v.is_finite()));
    let (mut lo, mut hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    if lo == hi {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        lo -= pad;
        hi += pad;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |v: f64| LEFT + (v - lo) / (hi - lo) * plot_w;
    let height = TOP + ROW * rows.len() as f64 + AXIS;

    let mut svg = String::new();
    let id = format!("plot-{}", sanitize(&metric.name));
    let _ = write!(
        svg,
        r#"<svg class="plot" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-labelledby="{id}-t {id}-d" xmlns="http://www.w3.org/2000/svg">"#
    );
    let _ = write!(svg, r#"<title id="{id}-t">{}</title>"#, esc(&metric.name));
    let desc: Vec<String> = rows
        .iter()
        .filter_map(|(label, v)| {
            summary(v).map(|s| {
                format!(
                    "{label}: {} samples, mean {}, median {}, p99 {}",
                    s.n,
                    num(s.mean),
                    num(s.p50),
                    num(s.p99)
                )
            })
        })
        .chain(
            marks
                .iter()
                .map(|m| format!("{} at {}", m.label, num(m.value))),
        )
        .collect();
    let _ = write!(svg, r#"<desc id="{id}-d">{}</desc>"#, esc(&desc.join("; ")));
    for (i, (label, values)) in rows.iter().enumerate() {
        let top = TOP + ROW * i as f64;
        let mid = top + ROW / 2.0;
        let class = match *label {
            "canary" => "canary",
            "baseline" => "baseline",
            _ => "value",
        };
        let _ = write!(
            svg,
            r#"<text class="row-label" x="{}" y="{}" text-anchor="end">{label}</text>"#,
            LEFT - 8.0,
            mid + 4.0
        );
        let _ = write!(
            svg,
            r#"<line class="row" x1="{LEFT}" x2="{}" y1="{mid}" y2="{mid}"/>"#,
            WIDTH - RIGHT
        );
        if values.len() <= MAX_DOTS {
            for (k, v) in values.iter().enumerate() {
                // Deterministic jitter, so equal values stay distinguishable.
                let jitter = ((k * 7919) % 23) as f64 / 22.0 - 0.5;
                let _ = write!(
                    svg,
                    r#"<circle class="{class}" cx="{:.1}" cy="{:.1}" r="3"/>"#,
                    x(*v),
                    mid + jitter * (ROW * 0.6)
                );
            }
        } else {
            let mut counts = [0usize; BINS];
            for v in values {
                let b = (((v - lo) / (hi - lo)) * BINS as f64) as usize;
                counts[b.min(BINS - 1)] += 1;
            }
            let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
            let bw = plot_w / BINS as f64;
            for (b, c) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
                let h = (*c as f64 / max) * (ROW - 8.0);
                let _ = write!(
                    svg,
                    r#"<rect class="{class}" x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"/>"#,
                    LEFT + b as f64 * bw + 0.5,
                    top + ROW - 4.0 - h,
                    bw - 1.0
                );
            }
        }
        if let Some(s) = summary(values) {
            let _ = write!(
                svg,
                r#"<line class="mean {class}" x1="{:.1}" x2="{:.1}" y1="{}" y2="{}"/>"#,
                x(s.mean),
                x(s.mean),
                top + 4.0,
                top + ROW - 4.0
            );
        }
    }
    let bottom = TOP + ROW * rows.len() as f64;
    for m in marks.iter().filter(|m| m.value.is_finite()) {
        let mx = x(m.value);
        let _ = write!(
            svg,
            r#"<line class="threshold" x1="{mx:.1}" x2="{mx:.1}" y1="{TOP}" y2="{bottom}"><title>{}</title></line>"#,
            esc(&format!("{}: {}", m.label, num(m.value)))
        );
    }
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" x2="{}" y1="{bottom}" y2="{bottom}"/>"#,
        WIDTH - RIGHT
    );
    for t in 0..=4 {
        let v = lo + (hi - lo) * t as f64 / 4.0;
        let _ = write!(
            svg,
            r#"<text class="tick" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x(v),
            bottom + 18.0,
            num(v)
        );
    }
    svg.push_str("</svg>");
    Some(html! { (PreEscaped(svg)) })
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Escape text for SVG content and attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(baseline: Vec<f64>, canary: Vec<f64>) -> Metric {
        serde_json::from_value(serde_json::json!({
            "name": "error_rate<script>", "baseline": baseline, "canary": canary
        }))
        .unwrap()
    }

    #[test]
    fn few_samples_are_dots_many_are_bars_and_thresholds_are_lines() {
        let m = metric(vec![0.01, 0.02, 0.015], vec![0.05, 0.06]);
        let marks = [Mark {
            value: 0.03,
            label: "threshold (thresholds)".into(),
        }];
        let svg = plot(&m, &marks).unwrap().into_string();
        assert_eq!(svg.matches("<circle").count(), 5, "{svg}");
        assert_eq!(svg.matches(r#"class="threshold""#).count(), 1);
        assert!(!svg.contains("<script>"), "names are escaped: {svg}");
        assert!(svg.contains("canary: 2 samples"), "{svg}");

        let many: Vec<f64> = (0..1000).map(|i| i as f64 / 1000.0).collect();
        let svg = plot(&metric(many.clone(), many), &[])
            .unwrap()
            .into_string();
        assert_eq!(svg.matches("<circle").count(), 0);
        assert!(svg.matches("<rect").count() <= 2 * BINS);
        assert!(svg.len() < 16 * 1024, "{} bytes", svg.len());
    }

    #[test]
    fn nothing_to_plot_is_none() {
        assert!(plot(&metric(vec![], vec![]), &[]).is_none());
        let nan = metric(vec![f64::NAN], vec![]);
        assert!(plot(&nan, &[]).is_none());
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(0.05), "0.05");
        assert_eq!(num(0.0012345678), "0.001235");
        assert_eq!(num(1234.5), "1234.5");
        assert_eq!(num(12.0), "12");
    }
}
