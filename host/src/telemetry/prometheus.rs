//! `GET /metrics`: the OpenTelemetry instruments in the Prometheus text
//! exposition format (version 0.0.4), read on demand through a manual reader.
//!
//! Written here rather than with `opentelemetry-prometheus`, which depends on
//! the `prometheus` crate and its unmaintained protobuf stack; the format is
//! small. Names follow the OpenTelemetry→Prometheus mapping: dots become
//! underscores, the unit is appended (`s` → `_seconds`), monotonic sums get
//! `_total`.

use std::fmt::Write;
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, HistogramDataPoint, Metric, MetricData, ResourceMetrics,
};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A manual reader the meter provider owns and `/metrics` shares: the
/// provider takes its readers by value, so the handle is an `Arc`.
#[derive(Debug, Clone)]
pub struct PrometheusReader(Arc<ManualReader>);

impl PrometheusReader {
    pub fn new() -> PrometheusReader {
        // Cumulative: Prometheus expects counters and histograms that only grow.
        PrometheusReader(Arc::new(
            ManualReader::builder()
                .with_temporality(Temporality::Cumulative)
                .build(),
        ))
    }

    /// Collect every instrument now and render the exposition text.
    pub fn render(&self) -> Result<String, String> {
        let mut rm = ResourceMetrics::default();
        self.0
            .collect(&mut rm)
            .map_err(|e| format!("collecting metrics: {e}"))?;
        Ok(encode(&rm))
    }
}

impl Default for PrometheusReader {
    fn default() -> Self {
        PrometheusReader::new()
    }
}

impl MetricReader for PrometheusReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Render every metric of `rm`.
pub fn encode(rm: &ResourceMetrics) -> String {
    let mut out = String::new();
    for scope in rm.scope_metrics() {
        for metric in scope.metrics() {
            match metric.data() {
                AggregatedMetrics::F64(d) => family(&mut out, metric, d),
                AggregatedMetrics::U64(d) => family(&mut out, metric, d),
                AggregatedMetrics::I64(d) => family(&mut out, metric, d),
            }
        }
    }
    out
}

/// The numeric types the SDK aggregates, as exposition values.
trait Num: Copy {
    fn text(self) -> String;
}
impl Num for f64 {
    fn text(self) -> String {
        float(self)
    }
}
impl Num for u64 {
    fn text(self) -> String {
        self.to_string()
    }
}
impl Num for i64 {
    fn text(self) -> String {
        self.to_string()
    }
}

fn family<T: Num>(out: &mut String, metric: &Metric, data: &MetricData<T>) {
    let (kind, counter) = match data {
        MetricData::Sum(s) if s.is_monotonic() => ("counter", true),
        MetricData::Sum(_) | MetricData::Gauge(_) => ("gauge", false),
        MetricData::Histogram(_) => ("histogram", false),
        // Never configured here (no exponential-histogram view); a
        // classic exposition has no form for it.
        MetricData::ExponentialHistogram(_) => return,
    };
    let name = metric_name(metric.name(), metric.unit(), counter);
    let help = if metric.description().is_empty() {
        metric.name()
    } else {
        metric.description()
    };
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    match data {
        MetricData::Sum(s) => {
            for p in s.data_points() {
                sample(out, &name, &labels(p.attributes(), None), p.value().text());
            }
        }
        MetricData::Gauge(g) => {
            for p in g.data_points() {
                sample(out, &name, &labels(p.attributes(), None), p.value().text());
            }
        }
        MetricData::Histogram(h) => {
            for p in h.data_points() {
                histogram(out, &name, p);
            }
        }
        MetricData::ExponentialHistogram(_) => {}
    }
}

fn histogram<T: Num>(out: &mut String, name: &str, p: &HistogramDataPoint<T>) {
    // OpenTelemetry counts per bucket; Prometheus buckets are cumulative.
    let mut cumulative = 0u64;
    let counts: Vec<u64> = p.bucket_counts().collect();
    for (i, bound) in p.bounds().enumerate() {
        cumulative += counts.get(i).copied().unwrap_or(0);
        let le = float(bound);
        let l = labels(p.attributes(), Some(&le));
        sample(out, &format!("{name}_bucket"), &l, cumulative.to_string());
    }
    let l = labels(p.attributes(), Some("+Inf"));
    sample(out, &format!("{name}_bucket"), &l, p.count().to_string());
    let l = labels(p.attributes(), None);
    sample(out, &format!("{name}_sum"), &l, p.sum().text());
    sample(out, &format!("{name}_count"), &l, p.count().to_string());
}

fn sample(out: &mut String, name: &str, labels: &str, value: String) {
    let _ = writeln!(out, "{name}{labels} {value}");
}

/// `{k="v",…}` (empty when there are none), with `le` last for buckets.
fn labels<'a>(attrs: impl Iterator<Item = &'a KeyValue>, le: Option<&str>) -> String {
    let mut parts: Vec<String> = attrs
        .map(|kv| {
            format!(
                "{}=\"{}\"",
                label_name(kv.key.as_str()),
                escape_value(&kv.value.as_str())
            )
        })
        .collect();
    // The SDK keeps attributes in no fixed order; sorted, every line of a
    // series reads the same.
    parts.sort();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// The Prometheus name of an instrument: `verdict.decision.duration` in
/// `s` → `verdict_decision_duration_seconds`; a counter gets `_total`.
pub fn metric_name(name: &str, unit: &str, counter: bool) -> String {
    let mut n: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if n.starts_with(|c: char| c.is_ascii_digit()) {
        n.insert(0, '_');
    }
    if let Some(suffix) = unit_suffix(unit) {
        if !n.ends_with(&format!("_{suffix}")) {
            n.push('_');
            n.push_str(suffix);
        }
    }
    if counter && !n.ends_with("_total") {
        n.push_str("_total");
    }
    n
}

/// UCUM units we use, as Prometheus base-unit words; annotations such as
/// `{instruction}` and the unit `1` add nothing to the name.
fn unit_suffix(unit: &str) -> Option<&'static str> {
    match unit {
        "s" => Some("seconds"),
        "ms" => Some("milliseconds"),
        "By" => Some("bytes"),
        _ => None,
    }
}

fn label_name(key: &str) -> String {
    let mut n: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if n.is_empty() || n.starts_with(|c: char| c.is_ascii_digit()) {
        n.insert(0, '_');
    }
    n
}

fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    #[test]
    fn names_follow_the_otel_to_prometheus_mapping() {
        assert_eq!(
            metric_name("verdict.decision.duration", "s", false),
            "verdict_decision_duration_seconds"
        );
        assert_eq!(
            metric_name("verdict.decisions", "{decision}", true),
            "verdict_decisions_total"
        );
        assert_eq!(metric_name("a.b_total", "", true), "a_b_total");
        assert_eq!(metric_name("x_seconds", "s", false), "x_seconds");
        assert_eq!(metric_name("1st-metric", "1", false), "_1st_metric");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label_name("http.route"), "http_route");
    }

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        let reader = PrometheusReader::new();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .build();
        let meter = provider.meter("test");
        let c = meter
            .u64_counter("t.decisions")
            .with_description("decisions made")
            .build();
        c.add(2, &[KeyValue::new("verdict", "hold")]);
        let h = meter
            .f64_histogram("t.latency")
            .with_unit("s")
            .with_description("how long")
            .with_boundaries(vec![0.1, 1.0])
            .build();
        h.record(0.0625, &[]);
        h.record(0.5, &[]);
        h.record(4.0, &[]);
        let text = reader.render().unwrap();
        assert!(
            text.contains("# HELP t_decisions_total decisions made\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE t_decisions_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("t_decisions_total{verdict=\"hold\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE t_latency_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("t_latency_seconds_bucket{le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_latency_seconds_bucket{le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_latency_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("t_latency_seconds_sum 4.5625\n"), "{text}");
        assert!(text.contains("t_latency_seconds_count 3\n"), "{text}");
    }
}
