//! OTLP export (HTTP/protobuf), configured only by the standard `OTEL_*`
//! environment variables.
//!
//! The exporters run on the SDK's own threads (the batch span processor's
//! and the periodic metric reader's), so the HTTP client here may block:
//! a slow or unreachable collector delays those threads, never a request.
//! Spans are handed over with a non-blocking `try_send` into a bounded
//! queue; when the collector cannot keep up, spans are dropped, not waited for.
//!
//! An `https://` endpoint trusts the system's CA certificates, or the PEM
//! bundle in `OTEL_EXPORTER_OTLP_CERTIFICATE` (or the per-signal
//! `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_CERTIFICATE`) alone, or both with
//! `VERDICT_OTLP_SYSTEM_ROOTS=true`.

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

/// Why an exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ExportSetupError {
    #[error(transparent)]
    Build(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// Which signal an exporter carries (for its per-signal variables).
#[derive(Debug, Clone, Copy)]
enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn var(self, what: &str) -> String {
        match self {
            Signal::Traces => format!("OTEL_EXPORTER_OTLP_TRACES_{what}"),
            Signal::Metrics => format!("OTEL_EXPORTER_OTLP_METRICS_{what}"),
        }
    }
}

/// The CAs the exporter of `signal` trusts, read through `var`: the
/// per-signal certificate variable, else the common one, else the system's.
fn client_tls(signal: Signal, var: impl Fn(&str) -> Option<String>) -> crate::tls::ClientTls {
    let set = |k: &str| var(k).filter(|v| !v.trim().is_empty());
    crate::tls::ClientTls {
        ca_file: set(&signal.var("CERTIFICATE"))
            .or_else(|| set("OTEL_EXPORTER_OTLP_CERTIFICATE"))
            .map(Into::into),
        system_roots: set("VERDICT_OTLP_SYSTEM_ROOTS").map(|v| v.trim() == "true"),
    }
}

/// The endpoint of `signal`, only to judge whether it is https.
fn endpoint(signal: Signal, var: impl Fn(&str) -> Option<String>) -> String {
    var(&signal.var("ENDPOINT"))
        .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .unwrap_or_default()
}

fn client(signal: Signal) -> Result<UreqClient, crate::tls::TlsError> {
    let tls = client_tls(signal, env).ureq_config(endpoint(signal, env).trim())?;
    Ok(UreqClient::new(timeout(env), tls))
}

pub fn span_exporter() -> Result<SpanExporter, ExportSetupError> {
    Ok(SpanExporter::builder()
        .with_http()
        .with_http_client(client(Signal::Traces)?)
        .build()?)
}

pub fn metric_exporter() -> Result<MetricExporter, ExportSetupError> {
    Ok(MetricExporter::builder()
        .with_http()
        .with_http_client(client(Signal::Metrics)?)
        .build()?)
}

pub fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// opentelemetry-http's client trait over ureq, which the binary already
/// uses: no second HTTP stack (reqwest, hyper client) just for telemetry.
#[derive(Debug)]
struct UreqClient {
    agent: ureq::Agent,
    /// When a transport failure was last logged (at most one per
    /// [`FAILURE_LOG_EVERY`]): the exporter reports only "network error",
    /// so the host and the cause (a refused certificate …) are logged here.
    failure_logged: std::sync::Mutex<Option<std::time::Instant>>,
}

const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

impl UreqClient {
    fn new(timeout: Duration, tls: ureq::tls::TlsConfig) -> UreqClient {
        let agent = ureq::Agent::config_builder()
            // The exporter classifies statuses itself (retry or give up).
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .tls_config(tls)
            .build()
            .into();
        UreqClient {
            agent,
            failure_logged: std::sync::Mutex::new(None),
        }
    }

    fn log_failure(&self, message: &str) {
        let mut last = self
            .failure_logged
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if last.is_none_or(|t| now.duration_since(t) >= FAILURE_LOG_EVERY) {
            *last = Some(now);
            tracing::warn!("OTLP export failed: {message}");
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for UreqClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        // Blocking inside an async fn is deliberate: the SDK drives exports
        // with `futures_executor::block_on` on its own thread (see module doc).
        let (parts, body) = request.into_parts();
        let uri = parts.uri.to_string();
        // A certificate failure names the collector and the reason.
        let mut response = self
            .agent
            .run(Request::from_parts(parts, body.to_vec()))
            .map_err(|e| {
                let message = format!("{uri}: {}", crate::tls::explain(&uri, &e));
                self.log_failure(&message);
                message
            })?;
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
    fn collector_ca_from_the_signal_or_common_variable() {
        let vars = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |k: &str| map.get(k).cloned()
        };
        let none = client_tls(Signal::Traces, vars(&[]));
        assert_eq!(none, crate::tls::ClientTls::default());
        let common = vars(&[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"),
            ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "/metrics-ca.pem"),
            ("VERDICT_OTLP_SYSTEM_ROOTS", "true"),
        ]);
        let t = client_tls(Signal::Traces, &common);
        assert_eq!(t.ca_file.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert_eq!(t.system_roots, Some(true));
        let m = client_tls(Signal::Metrics, &common);
        assert_eq!(
            m.ca_file.as_deref(),
            Some(std::path::Path::new("/metrics-ca.pem"))
        );
    }

    #[test]
    fn timeout_is_milliseconds_with_a_default() {
        assert_eq!(timeout(|_| None), Duration::from_secs(10));
        assert_eq!(timeout(|_| Some("250".into())), Duration::from_millis(250));
        assert_eq!(timeout(|_| Some("soon".into())), Duration::from_secs(10));
    }
}
