//! OTLP export (HTTP/protobuf), configured only by the standard `OTEL_*`
//! environment variables.
//!
//! The exporters run on the SDK's own threads (the batch span processor's
//! and the periodic metric reader's), so the HTTP client here may block:
//! a slow or unreachable collector delays those threads, never a request.
//! Spans are handed over with a non-blocking `try_send` into a bounded
//! queue; when the collector cannot keep up, spans are dropped, not waited for.

use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithHttpConfig};

/// Largest collector answer read; OTLP answers are a few bytes.
const MAX_RESPONSE_BYTES: u64 = 4 << 20;

/// What the environment asks to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub traces: bool,
    pub metrics: bool,
}

impl Wanted {
    /// Read the standard variables through `var` (the process environment
    /// in production, a map in tests). A signal is exported when its own
    /// endpoint or the common one is set, unless `OTEL_SDK_DISABLED=true`
    /// or `OTEL_{TRACES,METRICS}_EXPORTER=none`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Wanted {
        let set = |k: &str| var(k).is_some_and(|v| !v.trim().is_empty());
        let none = |k: &str| var(k).is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Wanted {
                traces: false,
                metrics: false,
            };
        }
        let common = set("OTEL_EXPORTER_OTLP_ENDPOINT");
        Wanted {
            traces: (common || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
                && !none("OTEL_TRACES_EXPORTER"),
            metrics: (common || set("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))
                && !none("OTEL_METRICS_EXPORTER"),
        }
    }
}

/// The per-export deadline: `OTEL_EXPORTER_OTLP_TIMEOUT` milliseconds, as
/// the spec says, 10 s by default. The exporter only passes its timeout to
/// the clients it builds itself, so ours reads it here.
fn timeout(var: impl Fn(&str) -> Option<String>) -> Duration {
    var("OTEL_EXPORTER_OTLP_TIMEOUT")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(10))
}

pub fn span_exporter() -> Result<SpanExporter, opentelemetry_otlp::ExporterBuildError> {
    SpanExporter::builder()
        .with_http()
        .with_http_client(UreqClient::new(timeout(env)))
        .build()
}

pub fn metric_exporter() -> Result<MetricExporter, opentelemetry_otlp::ExporterBuildError> {
    MetricExporter::builder()
        .with_http()
        .with_http_client(UreqClient::new(timeout(env)))
        .build()
}

pub fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// opentelemetry-http's client trait over ureq, which the binary already
/// uses: no second HTTP stack (reqwest, hyper client) just for telemetry.
/// Plain `http://` only, like the rest of the binary (no TLS stack).
#[derive(Debug)]
struct UreqClient {
    agent: ureq::Agent,
}

impl UreqClient {
    fn new(timeout: Duration) -> UreqClient {
        let agent = ureq::Agent::config_builder()
            // The exporter classifies statuses itself (retry or give up).
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        UreqClient { agent }
    }
}

#[async_trait::async_trait]
impl HttpClient for UreqClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        // Blocking inside an async fn is deliberate: the SDK drives exports
        // with `futures_executor::block_on` on its own thread (see module doc).
        let (parts, body) = request.into_parts();
        let mut response = self.agent.run(Request::from_parts(parts, body.to_vec()))?;
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()?;
        let (parts, _) = response.into_parts();
        Ok(Response::from_parts(parts, Bytes::from(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn wanted(vars: &[(&str, &str)]) -> Wanted {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Wanted::from_env(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        let off = Wanted {
            traces: false,
            metrics: false,
        };
        assert_eq!(wanted(&[]), off);
        assert_eq!(wanted(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]), off);
        assert_eq!(wanted(&[("OTEL_SERVICE_NAME", "x")]), off);
    }

    #[test]
    fn common_or_signal_endpoint_turns_a_signal_on() {
        let both = wanted(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]);
        assert!(both.traces && both.metrics);
        let traces = wanted(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces")]);
        assert!(traces.traces && !traces.metrics);
        let metrics = wanted(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://c/v1/metrics")]);
        assert!(!metrics.traces && metrics.metrics);
    }

    #[test]
    fn exporter_none_and_sdk_disabled_win() {
        let w = wanted(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ]);
        assert!(w.traces && !w.metrics);
        let w = wanted(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert!(!w.traces && !w.metrics);
    }

    #[test]
    fn timeout_is_milliseconds_with_a_default() {
        assert_eq!(timeout(|_| None), Duration::from_secs(10));
        assert_eq!(timeout(|_| Some("250".into())), Duration::from_millis(250));
        assert_eq!(timeout(|_| Some("soon".into())), Duration::from_secs(10));
    }
}
