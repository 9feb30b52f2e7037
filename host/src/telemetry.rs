//! Telemetry (the README's "Observability" section): `tracing` spans
//! exported as OpenTelemetry traces, OpenTelemetry metric instruments,
//! structured logs.
//!
//! - this file: setup ([`init`], [`Telemetry::shutdown`]), the instruments
//!   ([`Metrics`]) and the decision and policy spans.
//! - [`otlp`]: OTLP/HTTP export, only when the `OTEL_*` variables ask for it.
//! - [`prometheus`]: the same instruments as Prometheus text for `GET /metrics`.
//!
//! Code elsewhere only creates `tracing` spans and calls the `record` helpers
//! here; the OpenTelemetry SDK stays inside this module.

pub mod logfmt;
pub mod otlp;
pub mod prometheus;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Status, TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::{field, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::domain::{Decision, DecisionRequest, Mode, PolicyResult};
use prometheus::PrometheusReader;

/// The instrumentation scope and default `service.name`.
pub const NAME: &str = "verdict";

/// Latency buckets in seconds: a built-in policy runs in tens of
/// microseconds, a decision with a group-committed fsync in milliseconds,
/// a policy at its deadline in seconds.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Fuel buckets: the default limit is in the millions.
const FUEL_BUCKETS: &[f64] = &[1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// The target of warp's per-request log events.
const WARP_TRACE: &str = "warp::filters::trace";

/// Log line format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The providers to flush at shutdown.
pub struct Telemetry {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
}

static PROMETHEUS: OnceLock<PrometheusReader> = OnceLock::new();
/// Whether spans leave the process (OTLP trace export is on). Only then are
/// per-policy spans worth their cost ([`policy_span`]).
static TRACES_EXPORTED: AtomicBool = AtomicBool::new(false);
static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Install the log subscriber, the tracer and the meter provider. Call once,
/// first thing: instruments created before it would stay no-ops.
///
/// Logs go to stderr filtered by `RUST_LOG`; spans go to OpenTelemetry
/// whatever `RUST_LOG` says (their own filter: `verdict` at info), so
/// quietening logs never loses traces. Without OTLP variables nothing is
/// exported, but spans still carry trace ids (for logs and `traceparent`).
pub fn init(format: LogFormat) -> Telemetry {
    let resource = resource();
    let wanted = otlp::Wanted::from_env(otlp::env);
    // Logged once the subscriber exists.
    let mut problems = Vec::new();

    let mut tracer = SdkTracerProvider::builder().with_resource(resource.clone());
    if wanted.traces {
        match otlp::span_exporter() {
            Ok(e) => {
                tracer = tracer.with_batch_exporter(e);
                TRACES_EXPORTED.store(true, Ordering::Relaxed);
            }
            Err(e) => problems.push(format!("OTLP trace export is off: {e}")),
        }
    }
    let tracer = tracer.build();

    let reader = PROMETHEUS.get_or_init(PrometheusReader::new).clone();
    let mut meter = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader);
    if wanted.metrics {
        match otlp::metric_exporter() {
            Ok(e) => meter = meter.with_periodic_exporter(e),
            Err(e) => problems.push(format!("OTLP metric export is off: {e}")),
        }
    }
    let meter = meter.build();
    opentelemetry::global::set_meter_provider(meter.clone());
    metrics();

    // Only our own spans and events become OpenTelemetry data: the SDK's
    // internal logs must never feed back into the exporter.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer.tracer(NAME))
        // Source locations, thread ids and busy/idle times on every span
        // cost per request and say nothing an operator needs.
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target(NAME, LevelFilter::INFO));
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            // Event fields (decision_id, trace_id …) at the top level of
            // the object, where log pipelines index them.
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(log_filter())
    });
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Client input in a value cannot start a line of its own.
            .fmt_fields(logfmt::EscapedFields)
            // Colour codes only for a person at a terminal, not in log files.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(log_filter())
    });
    let _ = tracing_subscriber::registry()
        .with(otel)
        .with(json)
        .with(text)
        .try_init();
    for p in problems {
        tracing::warn!("{p}");
    }
    if wanted.traces || wanted.metrics {
        tracing::info!(
            traces = wanted.traces,
            metrics = wanted.metrics,
            "exporting telemetry over OTLP/HTTP"
        );
    }
    Telemetry { tracer, meter }
}

/// What the log layers print: `RUST_LOG` (default info), events only.
/// Formatting every span's fields for log context would cost on each
/// request, and the one decision line carries its own ids; spans are for
/// traces.
fn log_filter<S>() -> impl Filter<S> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn,cranelift=warn"));
    // warp's request tracer logs two lines per request (and a warning per
    // 4xx); the request span carries that already. Shown only when
    // `RUST_LOG` names that target.
    let asked = std::env::var("RUST_LOG").is_ok_and(|v| v.contains(WARP_TRACE));
    let filter = if asked {
        filter
    } else {
        filter.add_directive(
            format!("{WARP_TRACE}=off")
                .parse()
                .expect("valid directive"),
        )
    };
    // The hint carries the level on: without it the combination has none,
    // `log` records (sled's debug lines) are handed to tracing only to be
    // filtered out, and that cost about 1.5% of a loaded server.
    let hint = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    filter.and(filter_fn(|m| m.is_event()).with_max_level_hint(hint))
}

/// `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` when given (the SDK's
/// detectors read them), else `service.name=verdict` rather than the
/// SDK's `unknown_service`.
fn resource() -> Resource {
    let named = otlp::env("OTEL_SERVICE_NAME").is_some_and(|v| !v.trim().is_empty())
        || otlp::env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|v| {
            v.split(',')
                .any(|kv| kv.trim_start().starts_with("service.name="))
        });
    let builder = Resource::builder();
    if named {
        builder.build()
    } else {
        builder.with_service_name(NAME).build()
    }
}

impl Telemetry {
    /// Flush what is buffered and stop the export threads, waiting at most
    /// `timeout`: an unreachable collector must not hold up the exit.
    pub fn shutdown(self, timeout: Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        let Telemetry { tracer, meter } = self;
        let spawned = std::thread::Builder::new()
            .name("telemetry-shutdown".into())
            .spawn(move || {
                let t = tracer.shutdown_with_timeout(timeout);
                let m = meter.shutdown_with_timeout(timeout);
                let _ = tx.send((t, m));
            });
        if spawned.is_err() {
            return;
        }
        match rx.recv_timeout(timeout + Duration::from_millis(100)) {
            Ok((t, m)) => {
                for (what, r) in [("traces", t), ("metrics", m)] {
                    if let Err(e) = r {
                        tracing::warn!("flushing {what} at shutdown: {e}");
                    }
                }
            }
            Err(_) => tracing::warn!(
                "telemetry not flushed within {} ms; dropping the rest",
                timeout.as_millis()
            ),
        }
    }
}

/// The Prometheus text of every instrument, for `GET /metrics`; empty
/// until [`init`] ran (e.g. in router unit tests).
pub fn prometheus_text() -> Result<String, String> {
    match PROMETHEUS.get() {
        Some(r) => r.render(),
        None => Ok(String::new()),
    }
}

/// Make `span` (not yet entered) a child of the W3C `traceparent` found in
/// `headers`, if any, so a caller's trace continues here.
pub fn continue_trace(span: &Span, headers: &dyn Extractor) {
    let parent = TraceContextPropagator::new().extract(headers);
    // Fails only when no OpenTelemetry layer is installed (router unit
    // tests): the span then simply has no OpenTelemetry side.
    let _ = span.set_parent(parent);
}

/// Every instrument, created once from the global meter provider.
pub struct Metrics {
    decisions: Counter<u64>,
    decision_duration: Histogram<f64>,
    policy_duration: Histogram<f64>,
    policy_fuel: Histogram<u64>,
    policy_errors: Counter<u64>,
    store_flush: Histogram<f64>,
    http_requests: Counter<u64>,
    http_duration: Histogram<f64>,
    metric_pulls: Counter<u64>,
    metric_pull_duration: Histogram<f64>,
    /// The `environment` label's values (client input, so bounded).
    environments: BoundedLabel,
}

/// Distinct `environment` label values at most; later ones are counted
/// under [`OTHER_LABEL`]. Each value is a series per instrument and
/// verdict, and a client can name any number of environments.
pub const MAX_ENVIRONMENT_LABELS: usize = 100;

/// The label for values past the cap. Outside the name grammar (it starts
/// with `_`), so no real environment is ever confused with it.
pub const OTHER_LABEL: &str = "_other";

/// A label whose values come from clients: the first `max` distinct values
/// are kept as they are, for the life of the process; the rest are one
/// value, [`OTHER_LABEL`]. First come, first kept: the environments a team
/// deploys to every day are seen long before a flood of made-up ones.
#[derive(Debug)]
pub struct BoundedLabel {
    max: usize,
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl BoundedLabel {
    pub fn new(max: usize) -> BoundedLabel {
        BoundedLabel {
            max,
            seen: Default::default(),
        }
    }

    /// The label value to record for `value`.
    pub fn value(&self, value: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(value) {
            return value.to_string();
        }
        if seen.len() < self.max {
            seen.insert(value.to_string());
            return value.to_string();
        }
        OTHER_LABEL.to_string()
    }
}

/// The instruments; no-ops when [`init`] has not run (library users, tests).
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(|| Metrics::new(&opentelemetry::global::meter(NAME)))
}

impl Metrics {
    fn new(m: &Meter) -> Metrics {
        let seconds = |name: &'static str, help: &'static str| {
            m.f64_histogram(name)
                .with_unit("s")
                .with_description(help)
                .with_boundaries(SECONDS_BUCKETS.to_vec())
                .build()
        };
        Metrics {
            decisions: m
                .u64_counter("verdict.decisions")
                .with_unit("{decision}")
                .with_description("Decisions made, by verdict and environment")
                .build(),
            decision_duration: seconds(
                "verdict.decision.duration",
                "Time to decide and store a decision",
            ),
            policy_duration: seconds(
                "verdict.policy.evaluation.duration",
                "Time one policy evaluation ran in the sandbox, by policy and outcome",
            ),
            policy_fuel: m
                .u64_histogram("verdict.policy.fuel")
                .with_unit("{instruction}")
                .with_description("Wasm fuel one policy evaluation used, by policy")
                .with_boundaries(FUEL_BUCKETS.to_vec())
                .build(),
            policy_errors: m
                .u64_counter("verdict.policy.errors")
                .with_unit("{error}")
                .with_description("Policy evaluations that failed, by policy and kind")
                .build(),
            store_flush: seconds(
                "verdict.store.flush.duration",
                "Time to flush one group-committed batch to disk",
            ),
            http_requests: m
                .u64_counter("verdict.http.requests")
                .with_unit("{request}")
                .with_description("HTTP requests answered, by route, method and status")
                .build(),
            http_duration: seconds(
                "verdict.http.request.duration",
                "Time to answer an HTTP request, by route, method and status",
            ),
            metric_pulls: m
                .u64_counter("verdict.metric.pulls")
                .with_unit("{metric}")
                .with_description(
                    "Metrics pulled from a metric source, by source and outcome (ok, or gap: \
                     missing or incomplete samples)",
                )
                .build(),
            metric_pull_duration: seconds(
                "verdict.metric.pull.duration",
                "Time to pull one metric (both series of a pair) from a metric source",
            ),
            environments: BoundedLabel::new(MAX_ENVIRONMENT_LABELS),
        }
    }

    /// One HTTP answer. `route` is the route template, never the raw path:
    /// ids in labels would make one time series per request.
    pub fn http_request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        took: Duration,
    ) {
        let attrs = [
            KeyValue::new("http.route", route),
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ];
        self.http_requests.add(1, &attrs);
        self.http_duration.record(took.as_secs_f64(), &attrs);
    }

    /// One pulled metric: `complete` is false when it arrived with a
    /// diagnostic (source down, slow, empty, bad query).
    pub fn metric_pulled(&self, source: &str, complete: bool, took: Duration) {
        let source = KeyValue::new("source", source.to_string());
        let outcome = KeyValue::new("outcome", if complete { "ok" } else { "gap" });
        self.metric_pulls.add(1, &[source.clone(), outcome]);
        self.metric_pull_duration
            .record(took.as_secs_f64(), &[source]);
    }

    /// One group-commit flush.
    pub fn store_flush(&self, took: Duration) {
        self.store_flush.record(took.as_secs_f64(), &[]);
    }
}

/// The span one decision runs in, a child of the request's span; its
/// policy evaluations are its children ([`policy_span`]).
pub fn decision_span(req: &DecisionRequest) -> Span {
    tracing::info_span!(
        "decision",
        service = %req.deployment.service,
        environment = %req.deployment.environment,
        verdict = field::Empty,
        decision.id = field::Empty,
        decision.new = field::Empty,
    )
}

/// Record a decision's outcome on its span, count it, and write its one
/// log line (decision id, trace id, verdict). `new` is false when an
/// idempotency key returned an earlier decision: logged, not counted again.
pub fn decided<E: std::fmt::Display>(
    span: &Span,
    started: Instant,
    result: Result<(&Decision, bool), &E>,
) {
    let (d, new) = match result {
        Ok(decided) => decided,
        Err(e) => {
            span.set_status(Status::error(e.to_string()));
            return;
        }
    };
    let verdict = d.verdict.as_str();
    let env = &d.request.deployment.environment;
    span.record("verdict", verdict);
    span.record("decision.id", d.id.as_str());
    span.record("decision.new", new);
    if new {
        let m = metrics();
        let attrs = [
            KeyValue::new("verdict", verdict),
            KeyValue::new("environment", m.environments.value(env)),
        ];
        m.decisions.add(1, &attrs);
        m.decision_duration
            .record(started.elapsed().as_secs_f64(), &attrs);
    }
    let trace_id = span.context().span().span_context().trace_id();
    span.in_scope(|| {
        tracing::info!(
            decision_id = %d.id,
            trace_id = %trace_id,
            verdict = %verdict,
            service = %d.request.deployment.service,
            environment = %env,
            new,
            "decision"
        )
    });
}

/// The span one policy evaluation runs in, when traces are exported; else
/// a disabled span. Logs never print span fields (see `log_filter`), and
/// the trace id that log lines and `traceparent` carry comes from the
/// request and decision spans, so unexported policy spans would only cost
/// (about 1.6 µs per policy, `traced/five_builtins` in the decide bench).
pub fn policy_span(binding: &str, name: &str, version: &str, digest: &str, mode: Mode) -> Span {
    if !TRACES_EXPORTED.load(Ordering::Relaxed) {
        return Span::none();
    }
    tracing::info_span!(
        "policy",
        policy.binding = binding,
        policy.name = name,
        policy.version = version,
        policy.digest = digest,
        policy.mode = match mode {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        },
        policy.outcome = field::Empty,
        policy.verdict = field::Empty,
        policy.fuel_used = field::Empty,
        policy.duration_us = field::Empty,
        error.kind = field::Empty,
    )
}

/// `vote`, `abstain` or `error` (an error's fallback verdict is a vote
/// only in the decision's bookkeeping, not in what the policy did).
pub fn outcome(r: &PolicyResult) -> &'static str {
    if r.error.is_some() {
        "error"
    } else if r.abstained.is_some() {
        "abstain"
    } else {
        "vote"
    }
}

/// Record one evaluation's result on its span and in the policy metrics.
pub fn policy_evaluated(span: &Span, r: &PolicyResult) {
    let outcome = outcome(r);
    span.record("policy.outcome", outcome);
    if let Some(v) = r.verdict {
        span.record("policy.verdict", v.as_str());
    }
    // OpenTelemetry integers are i64; neither value comes near the limit.
    span.record("policy.fuel_used", saturating_i64(r.fuel_used));
    span.record("policy.duration_us", saturating_i64(r.duration_us));
    let m = metrics();
    let policy = KeyValue::new("policy", r.name.clone());
    if let Some(e) = &r.error {
        span.record("error.kind", e.kind.as_str());
        span.set_status(Status::error(e.message.clone()));
        m.policy_errors
            .add(1, &[policy.clone(), KeyValue::new("kind", e.kind.as_str())]);
    }
    m.policy_duration.record(
        r.duration_us as f64 / 1e6,
        &[policy.clone(), KeyValue::new("outcome", outcome)],
    );
    m.policy_fuel.record(r.fuel_used, &[policy]);
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_filter_keeps_its_level_hint() {
        // With a hint, tracing sets `log`'s max level from it, and a library's
        // debug records are skipped where they are made, not filtered later.
        let filter = log_filter::<tracing_subscriber::Registry>();
        assert!(filter.max_level_hint().is_some());
    }

    #[test]
    fn client_label_values_are_bounded_first_come_first_kept() {
        let label = BoundedLabel::new(3);
        for v in ["prod", "staging", "dev"] {
            assert_eq!(label.value(v), v);
        }
        assert_eq!(label.value("made-up-1"), OTHER_LABEL);
        assert_eq!(label.value("made-up-2"), OTHER_LABEL);
        // Kept values stay themselves after the cap is reached.
        assert_eq!(label.value("prod"), "prod");
        assert!(crate::domain::check_scope_name("environment", OTHER_LABEL).is_err());
    }
}
