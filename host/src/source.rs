//! Metric sources: Argo Rollouts and Flagger cannot push
//! samples, so the host pulls them. Operators configure named sources (a
//! Prometheus HTTP API today; [`MetricSource`] is the seam for others) and
//! metric queries, each scoped by a selector and templated with the
//! deployment's fields. Before a decision is evaluated, every query that
//! matches the deployment and names a metric the caller did not push is run;
//! its samples join `metrics` exactly as if pushed, with a [`Pulled`] note
//! of where they came from. The stored input therefore holds everything a
//! replay needs: the source is never asked again.
//!
//! Failure is evidence too. A source that is down, slow (every call has a
//! timeout) or returns nothing yields a metric with no samples and a
//! diagnostic; the engine turns the diagnostic into a reason and, for a
//! required metric, caps the verdict at hold ([`crate::engine`]'s
//! `missing_evidence`). A broken source can never wave a rollout through,
//! nor hang one.
//!
//! - this file: the [`MetricSource`] seam and the pull ([`Sources`]).
//! - [`config`]: the `verdict.toml` schema of sources and queries.
//! - [`template`]: `{{name}}` placeholders, filled so they stay literals.
//! - [`duration`]: `30s`, `10m`, `1h`, `2d`.
//! - [`prometheus`]: the Prometheus HTTP API backend.

mod config;
mod duration;
pub mod prometheus;
mod template;

pub use config::{QueryConfig, SourceConfig, SourceKind};
pub use duration::parse_duration;
pub use template::Template;

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::domain::{DecisionRequest, Metric, Pulled, MAX_SAMPLES_PER_SERIES};
use crate::telemetry;

/// Most points one series query may ask for (Prometheus refuses more than
/// 11,000 per series; staying below keeps the error ours and clear).
pub const MAX_POINTS: u64 = 11_000;

/// Why a source call produced no samples. The messages end up in reasons,
/// so they say what to check.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SourceError {
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("no answer from {url} within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u64 },
    #[error("{url} answered HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("cannot read the bearer token: {0}")]
    Token(String),
    #[error("the query failed: {0}")]
    Query(String),
    #[error("unexpected answer: {0}")]
    Response(String),
}

/// A backend that answers series and instant queries. Blocking: called on
/// the blocking pool, never on the async reactor.
pub trait MetricSource: Send + Sync {
    /// Every sample of every series the query returns over `[start, end]`
    /// at `step_seconds` resolution (several series, e.g. one per pod, are
    /// pooled). Non-finite samples become NaN (`null` when stored).
    fn series(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step_seconds: u64,
    ) -> Result<Vec<f64>, SourceError>;

    /// The query's single value at `at`; `None` when it returns nothing.
    /// More than one series is an error: the query must aggregate.
    fn value(&self, query: &str, at: Timestamp) -> Result<Option<f64>, SourceError>;
}

/// What a query asks for, templates parsed.
#[derive(Debug, Clone)]
enum Ask {
    Series {
        baseline: Template,
        canary: Template,
    },
    Value(Template),
}

#[derive(Debug, Clone)]
struct Query {
    config: QueryConfig,
    ask: Ask,
    lookback_s: u64,
    step_s: u64,
    source: usize,
}

/// The configured sources and queries, ready to pull.
#[derive(Clone, Default)]
pub struct Sources {
    names: Vec<String>,
    backends: Vec<Arc<dyn MetricSource>>,
    queries: Vec<Query>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("sources", &self.names)
            .field("queries", &self.queries.len())
            .finish()
    }
}

impl Sources {
    /// Check and build from config. Every mistake is reported with the
    /// query or source it is in, at startup rather than at the first decision.
    pub fn new(sources: &[SourceConfig], queries: &[QueryConfig]) -> Result<Sources, String> {
        let mut out = Sources::default();
        for s in sources {
            if s.name.trim().is_empty() {
                return Err("a `[[metric_sources]]` entry has an empty `name`".into());
            }
            if out.names.contains(&s.name) {
                return Err(format!("metric source `{}` is defined twice", s.name));
            }
            if s.timeout_ms == 0 || s.timeout_ms > 60_000 {
                return Err(format!(
                    "metric source `{}`: `timeout_ms` must be 1 to 60000",
                    s.name
                ));
            }
            let backend: Arc<dyn MetricSource> = match s.kind {
                SourceKind::Prometheus => Arc::new(
                    prometheus::Prometheus::new(
                        &s.url,
                        Duration::from_millis(s.timeout_ms),
                        &s.headers,
                        s.bearer_token_file.clone(),
                        &s.tls,
                    )
                    .map_err(|e| format!("metric source `{}`: {e}", s.name))?,
                ),
            };
            out.names.push(s.name.clone());
            out.backends.push(backend);
        }
        for q in queries {
            out.queries.push(out.check_query(q)?);
        }
        Ok(out)
    }

    /// Build with explicit backends (tests, other kinds of source).
    pub fn with_backend(mut self, name: &str, backend: Arc<dyn MetricSource>) -> Sources {
        self.names.push(name.to_string());
        self.backends.push(backend);
        self
    }

    pub fn add_query(&mut self, q: &QueryConfig) -> Result<(), String> {
        let checked = self.check_query(q)?;
        self.queries.push(checked);
        Ok(())
    }

    fn check_query(&self, q: &QueryConfig) -> Result<Query, String> {
        let at = |m: String| format!("metric query `{}`: {m}", q.metric);
        if q.metric.trim().is_empty() {
            return Err("a `[[metric_queries]]` entry has an empty `metric`".into());
        }
        q.selector.validate().map_err(|e| at(e.to_string()))?;
        let source = self
            .names
            .iter()
            .position(|n| *n == q.source)
            .ok_or_else(|| at(format!("unknown source `{}`", q.source)))?;
        let parse = |t: &str| Template::parse(t).map_err(at);
        let ask = match (&q.baseline, &q.canary, &q.value) {
            (Some(b), Some(c), None) => Ask::Series {
                baseline: parse(b)?,
                canary: parse(c)?,
            },
            (None, None, Some(v)) => Ask::Value(parse(v)?),
            _ => {
                return Err(at(
                    "give either `baseline` and `canary` (two series) or `value` (one number)"
                        .into(),
                ))
            }
        };
        let lookback_s = parse_duration(&q.lookback).map_err(|e| at(format!("lookback {e}")))?;
        let step_s = parse_duration(&q.step).map_err(|e| at(format!("step {e}")))?;
        if lookback_s / step_s > MAX_POINTS {
            return Err(at(format!(
                "lookback {} / step {} asks for more than {MAX_POINTS} points per series",
                q.lookback, q.step
            )));
        }
        Ok(Query {
            config: q.clone(),
            ask,
            lookback_s,
            step_s,
            source,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// Pull every metric the request needs and did not push, appending them
    /// to `req.metrics` (in query order). Blocking; the calls run
    /// concurrently, so the wait is bounded by the slowest source's timeout.
    /// `req.time` must be set: it is the end of every range.
    pub fn pull(&self, req: &mut DecisionRequest) {
        let end = req.time.expect("the decision time is fixed before pulling");
        let mut wanted: Vec<&Query> = Vec::new();
        for q in &self.queries {
            let name = &q.config.metric;
            // Pushed samples win; of two matching queries for one metric the
            // first configured wins.
            if q.config.selector.matches(&req.deployment)
                && !req.metrics.iter().any(|m| &m.name == name)
                && !wanted.iter().any(|w| &w.config.metric == name)
            {
                wanted.push(q);
            }
        }
        if wanted.is_empty() {
            return;
        }
        let span = tracing::info_span!(
            "pull_metrics",
            metrics = wanted.len(),
            gaps = tracing::field::Empty
        );
        let _entered = span.enter();
        let request: &DecisionRequest = req;
        let pulled: Vec<Metric> = std::thread::scope(|s| {
            let handles: Vec<_> = wanted
                .iter()
                .map(|q| {
                    s.spawn(move || {
                        let started = std::time::Instant::now();
                        let m = self.pull_one(q, request, end);
                        let complete = m.pulled.as_ref().is_some_and(|p| p.diagnostic.is_none());
                        telemetry::metrics().metric_pulled(
                            &q.config.source,
                            complete,
                            started.elapsed(),
                        );
                        m
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(&wanted)
                .map(|(h, q)| {
                    h.join().unwrap_or_else(|_| {
                        let mut m = empty_metric(q, end);
                        note(
                            &mut m,
                            "pulling it failed unexpectedly (a bug; see the server log)",
                        );
                        m
                    })
                })
                .collect()
        });
        let mut gaps = 0;
        for m in &pulled {
            if let Some(p) = &m.pulled {
                if let Some(d) = &p.diagnostic {
                    gaps += 1;
                    tracing::warn!(metric = %m.name, source = %p.source, "metric not pulled: {d}");
                }
            }
        }
        span.record("gaps", gaps);
        req.metrics.extend(pulled);
    }

    fn pull_one(&self, q: &Query, req: &DecisionRequest, end: Timestamp) -> Metric {
        let mut m = empty_metric(q, end);
        let backend = &self.backends[q.source];
        match &q.ask {
            Ask::Value(t) => {
                let query = match t.expand(req) {
                    Ok(query) => query,
                    Err(e) => {
                        note(&mut m, &e);
                        return m;
                    }
                };
                match backend.value(&query, end) {
                    Ok(Some(v)) if v.is_finite() => m.value = Some(v),
                    // `Some(NaN)` would be stored as `null` and read back as
                    // no value, so a replay would see other input than the
                    // policy did. Prometheus answers NaN for 0/0 (a ratio
                    // over no traffic): that is a gap, like no data.
                    Ok(Some(v)) => note(&mut m, &format!("the query returned {v}, not a number")),
                    Ok(None) => note(&mut m, "the query returned no data"),
                    Err(e) => note(&mut m, &e.to_string()),
                }
                pulled_mut(&mut m).value_query = Some(query);
            }
            Ask::Series { baseline, canary } => {
                let lookback_s = match req.args.get("lookback") {
                    Some(l) => match parse_duration(l) {
                        Ok(s) if s / q.step_s <= MAX_POINTS => s,
                        Ok(_) => {
                            note(&mut m, &format!(
                                "arg lookback `{l}` asks for more than {MAX_POINTS} points at step {}",
                                q.config.step
                            ));
                            return m;
                        }
                        Err(e) => {
                            note(&mut m, &format!("arg lookback {e}"));
                            return m;
                        }
                    },
                    None => q.lookback_s,
                };
                let Some(start) = i64::try_from(lookback_s)
                    .ok()
                    .and_then(|s| end.checked_sub(SignedDuration::from_secs(s)).ok())
                else {
                    note(&mut m, &format!(
                        "the range {lookback_s} s before {end} starts before the earliest representable time"
                    ));
                    return m;
                };
                let (bq, cq) = match (baseline.expand(req), canary.expand(req)) {
                    (Ok(b), Ok(c)) => (b, c),
                    (Err(e), _) | (_, Err(e)) => {
                        note(&mut m, &e);
                        return m;
                    }
                };
                let (b, c) = std::thread::scope(|s| {
                    let b = s.spawn(|| backend.series(&bq, start, end, q.step_s));
                    let c = backend.series(&cq, start, end, q.step_s);
                    (b.join(), c)
                });
                let b = b
                    .unwrap_or_else(|_| Err(SourceError::Response("query thread panicked".into())));
                for (side, result, into) in [
                    ("baseline", b, &mut m.baseline),
                    ("canary", c, &mut m.canary),
                ] {
                    match result {
                        Ok(samples) if samples.is_empty() => {
                            let msg = format!("the {side} query returned no data");
                            note_parts(&mut m.pulled, &msg);
                        }
                        Ok(samples) if samples.len() > MAX_SAMPLES_PER_SERIES => {
                            let msg = format!(
                                "the {side} query returned {} samples, more than {MAX_SAMPLES_PER_SERIES}: aggregate it or raise the step",
                                samples.len()
                            );
                            note_parts(&mut m.pulled, &msg);
                        }
                        Ok(samples) => *into = samples,
                        Err(e) => note_parts(&mut m.pulled, &format!("{side}: {e}")),
                    }
                }
                let p = pulled_mut(&mut m);
                p.baseline_query = Some(bq);
                p.canary_query = Some(cq);
                p.start = Some(start);
                p.step_seconds = Some(q.step_s);
            }
        }
        m
    }
}

fn empty_metric(q: &Query, end: Timestamp) -> Metric {
    Metric {
        name: q.config.metric.clone(),
        unit: q.config.unit.clone(),
        baseline: Vec::new(),
        canary: Vec::new(),
        value: None,
        pulled: Some(Pulled {
            source: q.config.source.clone(),
            baseline_query: None,
            canary_query: None,
            value_query: None,
            start: None,
            end,
            step_seconds: None,
            required: q.config.required,
            diagnostic: None,
        }),
    }
}

fn pulled_mut(m: &mut Metric) -> &mut Pulled {
    m.pulled.as_mut().expect("pulled metrics carry provenance")
}

fn note(m: &mut Metric, message: &str) {
    note_parts(&mut m.pulled, message);
}

/// Add to the diagnostic (a series pair can fail on both sides).
fn note_parts(p: &mut Option<Pulled>, message: &str) {
    let p = p.as_mut().expect("pulled metrics carry provenance");
    p.diagnostic = Some(match p.diagnostic.take() {
        Some(d) => format!("{d}; {message}"),
        None => message.to_string(),
    });
}

/// JSON has no infinities: they would come back from the store as null
/// (NaN), so the stored input would differ from what the policy saw. Make
/// them NaN before anyone sees them.
pub fn finite_or_nan(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        f64::NAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use super::template::tests::request;

    #[test]
    fn a_range_reaching_past_the_calendar_is_a_diagnostic_not_a_panic() {
        let (s, _) = sources(
            Table::default(),
            &[query(
                "latency",
                "baseline = 'l{v=\"{{previous_version}}\"}'\ncanary = 'l{v=\"{{version}}\"}'\nstep = \"100000000d\"",
            )],
        );
        let mut req = request();
        req.args.insert("lookback".into(), "99999999999d".into());
        s.pull(&mut req);
        let d = diag_of(&req, "latency");
        assert!(d.contains("earliest representable time"), "{d}");
    }

    #[test]
    fn query_selectors_follow_the_name_grammar() {
        let src = SourceConfig {
            name: "t".into(),
            kind: SourceKind::Prometheus,
            url: "http://p:9090".into(),
            timeout_ms: 1000,
            headers: Default::default(),
            bearer_token_file: None,
            tls: Default::default(),
        };
        let q = query(
            "m",
            "value = 'x'\nselector = { environment = \"Production\" }",
        );
        let e = Sources::new(&[src], &[q]).unwrap_err();
        assert!(
            e.contains("metric query `m`") && e.contains("`selector.environment` `Production`"),
            "{e}"
        );
    }

    /// An in-memory backend: records the calls, answers from a table.
    #[derive(Default)]
    struct Table {
        calls: Mutex<Vec<String>>,
        series: Vec<(&'static str, Result<Vec<f64>, SourceError>)>,
        values: Vec<(&'static str, Result<Option<f64>, SourceError>)>,
    }

    impl MetricSource for Table {
        fn series(
            &self,
            q: &str,
            start: Timestamp,
            end: Timestamp,
            step: u64,
        ) -> Result<Vec<f64>, SourceError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("range {q} {start} {end} {step}"));
            self.series
                .iter()
                .find(|(k, _)| q.contains(k))
                .map(|(_, r)| r.clone())
                .unwrap_or(Ok(vec![]))
        }
        fn value(&self, q: &str, at: Timestamp) -> Result<Option<f64>, SourceError> {
            self.calls.lock().unwrap().push(format!("instant {q} {at}"));
            self.values
                .iter()
                .find(|(k, _)| q.contains(k))
                .map(|(_, r)| r.clone())
                .unwrap_or(Ok(None))
        }
    }

    fn query(metric: &str, toml: &str) -> QueryConfig {
        toml::from_str(&format!("metric = \"{metric}\"\nsource = \"t\"\n{toml}")).unwrap()
    }

    fn sources(table: Table, queries: &[QueryConfig]) -> (Sources, Arc<Table>) {
        let table = Arc::new(table);
        let mut s = Sources::default().with_backend("t", table.clone());
        for q in queries {
            s.add_query(q).unwrap();
        }
        (s, table)
    }

    #[test]
    fn pulls_series_and_values_records_provenance_and_keeps_pushed_metrics() {
        let table = Table {
            series: vec![("v1", Ok(vec![1.0, 2.0])), ("v2", Ok(vec![3.0]))],
            values: vec![("burn", Ok(Some(0.5)))],
            ..Default::default()
        };
        let (s, table) = sources(table, &[
            query("latency", "baseline = 'lat{v=\"{{previous_version}}\"}'\ncanary = 'lat{v=\"{{version}}\"}'\nlookback = \"5m\"\nstep = \"1m\""),
            query("burn_rate_1h", "value = 'burn{s=\"{{service}}\"}'"),
            query("pushed", "value = 'never'"),
            query("other_service", "value = 'never'\nselector = { service = \"cart\" }"),
        ]);
        let mut req = request();
        req.metrics.push(Metric {
            name: "pushed".into(),
            unit: None,
            baseline: vec![],
            canary: vec![],
            value: Some(1.0),
            pulled: None,
        });
        s.pull(&mut req);
        let names: Vec<&str> = req.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["pushed", "latency", "burn_rate_1h"]);
        let lat = &req.metrics[1];
        assert_eq!(
            (lat.baseline.clone(), lat.canary.clone()),
            (vec![1.0, 2.0], vec![3.0])
        );
        let p = lat.pulled.as_ref().unwrap();
        assert_eq!(p.baseline_query.as_deref(), Some(r#"lat{v="v1"}"#));
        assert_eq!(p.start, Some("2026-01-01T00:05:00Z".parse().unwrap()));
        assert_eq!(
            (p.step_seconds, p.required, p.diagnostic.clone()),
            (Some(60), true, None)
        );
        assert_eq!(req.metrics[2].value, Some(0.5));
        let calls = table.calls.lock().unwrap();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert!(
            calls
                .iter()
                .any(|c| c == r#"instant burn{s="shop"} 2026-01-01T00:10:00Z"#),
            "{calls:?}"
        );
    }

    #[test]
    fn a_non_finite_value_is_a_gap_and_round_trips_through_json() {
        let table = Table {
            values: vec![
                ("ratio", Ok(Some(f64::NAN))),
                ("spike", Ok(Some(f64::INFINITY))),
            ],
            ..Default::default()
        };
        let (s, _) = sources(
            table,
            &[
                query("ratio", "value = 'ratio'"),
                query("spike", "value = 'spike'"),
            ],
        );
        let mut req = request();
        s.pull(&mut req);
        for (m, shown) in req.metrics.iter().zip(["NaN", "inf"]) {
            assert_eq!(m.value, None, "{}", m.name);
            assert_eq!(
                m.pulled.as_ref().unwrap().diagnostic.as_deref(),
                Some(format!("the query returned {shown}, not a number").as_str())
            );
            // What is stored is what the policy saw.
            let back: Metric = serde_json::from_slice(&serde_json::to_vec(m).unwrap()).unwrap();
            assert_eq!(&back, m);
        }
    }

    #[test]
    fn failures_become_diagnostics_never_errors() {
        let table = Table {
            series: vec![
                ("v1", Ok(vec![1.0])),
                (
                    "v2",
                    Err(SourceError::Timeout {
                        url: "http://p".into(),
                        timeout_ms: 5,
                    }),
                ),
            ],
            ..Default::default()
        };
        let (s, _) = sources(
            table,
            &[
                query(
                    "latency",
                    "baseline = 'l{v=\"{{previous_version}}\"}'\ncanary = 'l{v=\"{{version}}\"}'",
                ),
                query("empty", "value = 'nothing'\nrequired = false"),
                query("templated", "value = 'x{r=\"{{region}}\"}'"),
            ],
        );
        let mut req = request();
        s.pull(&mut req);
        let diag = |i: usize| {
            req.metrics[i]
                .pulled
                .as_ref()
                .unwrap()
                .diagnostic
                .clone()
                .unwrap()
        };
        assert_eq!(req.metrics[0].baseline, vec![1.0]);
        assert!(req.metrics[0].canary.is_empty());
        assert_eq!(diag(0), "canary: no answer from http://p within 5 ms");
        assert_eq!(diag(1), "the query returned no data");
        assert!(!req.metrics[1].pulled.as_ref().unwrap().required);
        assert!(diag(2).contains("{{region}}"), "{}", diag(2));
        // The request arg `lookback` overrides the configured one, checked.
        let mut req = request();
        req.args.insert("lookback".into(), "forever".into());
        s.pull(&mut req);
        assert!(diag_of(&req, "latency").starts_with("arg lookback"));
    }

    fn diag_of(req: &DecisionRequest, name: &str) -> String {
        let m = req.metrics.iter().find(|m| m.name == name).unwrap();
        m.pulled
            .as_ref()
            .unwrap()
            .diagnostic
            .clone()
            .unwrap_or_default()
    }

    #[test]
    fn config_mistakes_are_named() {
        let src = |name: &str| SourceConfig {
            name: name.into(),
            kind: SourceKind::Prometheus,
            url: "http://p:9090".into(),
            timeout_ms: 1000,
            headers: Default::default(),
            bearer_token_file: None,
            tls: Default::default(),
        };
        let err = |q: QueryConfig| Sources::new(&[src("t")], &[q]).unwrap_err();
        assert!(err(query("m", "value = 'x'\nbaseline = 'y'"))
            .contains("either `baseline` and `canary`"));
        assert!(err(query("m", "baseline = 'y'")).contains("metric query `m`"));
        assert!(
            err(query("m", "value = 'x'\nlookback = \"30d\"\nstep = \"1s\""))
                .contains("more than 11000 points")
        );
        assert!(err(query("m", "value = '{{oops'")).contains("unclosed"));
        let mut q = query("m", "value = 'x'");
        q.source = "nope".into();
        assert!(err(q).contains("unknown source `nope`"));
        assert!(Sources::new(&[src("t"), src("t")], &[])
            .unwrap_err()
            .contains("defined twice"));
        let toml_err =
            toml::from_str::<QueryConfig>("metric = 'm'\nsource = 't'\nvalu = 'x'").unwrap_err();
        assert!(toml_err.to_string().contains("valu"));
    }
}
