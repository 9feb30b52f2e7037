//! The Prometheus HTTP API as a [`MetricSource`]: `GET /api/v1/query_range`
//! for series, `GET /api/v1/query` for a value. Anything that speaks this
//! API (Thanos, Mimir, VictoriaMetrics, Cortex) works the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;

use super::{finite_or_nan, MetricSource, SourceError};

/// Largest answer read from the source; a query returning more is an
/// error, not an out-of-memory.
const MAX_ANSWER_BYTES: u64 = 32 << 20;

pub struct Prometheus {
    base: String,
    agent: ureq::Agent,
    timeout: Duration,
    headers: Vec<(String, String)>,
    token_file: Option<PathBuf>,
}

impl Prometheus {
    pub fn new(
        url: &str,
        timeout: Duration,
        headers: &BTreeMap<String, String>,
        token_file: Option<PathBuf>,
        tls: &crate::tls::ClientTls,
    ) -> Result<Prometheus, String> {
        let base = url.trim_end_matches('/');
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or_else(|| {
                format!(
                    "`{url}` is not an http:// or https:// URL (for example http://prometheus:9090)"
                )
            })?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(format!("`{url}` has no host"));
        }
        for (name, value) in headers {
            if ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("`{name}` is not a valid HTTP header name"));
            }
            if ureq::http::HeaderValue::from_str(value).is_err() {
                return Err(format!(
                    "header `{name}`: the value must be visible ASCII without line breaks"
                ));
            }
            if name.eq_ignore_ascii_case("authorization") {
                return Err(
                    "put credentials in `bearer_token_file`, not in `headers`: the config \
                     file is not a secret store"
                        .into(),
                );
            }
        }
        if let Some(f) = &token_file {
            read_token(f).map_err(|e| format!("`bearer_token_file`: {e}"))?;
        }
        // Built for http:// too: a redirect may lead to https.
        let tls_config = tls.ureq_config(base).map_err(|e| e.to_string())?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .tls_config(tls_config)
            .build()
            .into();
        Ok(Prometheus {
            base: base.to_string(),
            agent,
            timeout,
            headers: headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            token_file,
        })
    }

    fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Data, SourceError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        for (k, v) in params {
            req = req.query(*k, v);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(f) = &self.token_file {
            let token = read_token(f).map_err(SourceError::Token)?;
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        let mut resp = req.call().map_err(|e| self.transport(&url, e))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|e| self.transport(&url, e))?;
        parse_answer(&body).map_err(|e| match e {
            // A JSON error envelope is Prometheus explaining itself (bad
            // PromQL, execution timeout …): pass its message through.
            SourceError::Query(_) => e,
            _ if status != 200 => SourceError::Status {
                url: url.clone(),
                status,
                message: snippet(&body),
            },
            _ => e,
        })
    }

    fn transport(&self, url: &str, e: ureq::Error) -> SourceError {
        match e {
            ureq::Error::Timeout(_) => SourceError::Timeout {
                url: url.to_string(),
                timeout_ms: self.timeout.as_millis() as u64,
            },
            ureq::Error::BodyExceedsLimit(n) => {
                SourceError::Response(format!("answer larger than {n} bytes"))
            }
            other => SourceError::Unreachable {
                url: url.to_string(),
                message: crate::tls::explain(url, &other),
            },
        }
    }
}

impl MetricSource for Prometheus {
    fn series(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step_seconds: u64,
    ) -> Result<Vec<f64>, SourceError> {
        let data = self.get(
            "/api/v1/query_range",
            &[
                ("query", query.to_string()),
                ("start", unix(start)),
                ("end", unix(end)),
                ("step", step_seconds.to_string()),
            ],
        )?;
        match data {
            Data::Matrix(series) => series
                .iter()
                .flat_map(|s| s.values.iter())
                .map(|(_, v)| sample(v))
                .collect(),
            other => Err(SourceError::Response(format!(
                "query_range returned a {} instead of a matrix",
                other.kind()
            ))),
        }
    }

    fn value(&self, query: &str, at: Timestamp) -> Result<Option<f64>, SourceError> {
        let data = self.get(
            "/api/v1/query",
            &[("query", query.to_string()), ("time", unix(at))],
        )?;
        match data {
            Data::Vector(v) if v.is_empty() => Ok(None),
            Data::Vector(v) if v.len() == 1 => sample(&v[0].value.1).map(Some),
            Data::Vector(v) => Err(SourceError::Query(format!(
                "returned {} series where one number was expected: aggregate it (sum, max, …)",
                v.len()
            ))),
            Data::Scalar((_, v)) => sample(&v).map(Some),
            other => Err(SourceError::Response(format!(
                "query returned a {} instead of a vector or scalar",
                other.kind()
            ))),
        }
    }
}

/// The token in `path`, trimmed; an empty file is an error, not an
/// anonymous call.
fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("`{}` is empty", path.display()));
    }
    if ureq::http::HeaderValue::from_str(token).is_err() {
        return Err(format!(
            "`{}` holds characters a header cannot carry",
            path.display()
        ));
    }
    Ok(token.to_string())
}

/// Prometheus' `/api/v1/*` envelope.
#[derive(Debug, Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Matrix(Vec<RangeSeries>),
    Vector(Vec<InstantSample>),
    Scalar((f64, String)),
    /// Never useful to a policy; recognised so the error can name it.
    String(serde::de::IgnoredAny),
}

impl Data {
    fn kind(&self) -> &'static str {
        match self {
            Data::Matrix(_) => "matrix",
            Data::Vector(_) => "vector",
            Data::Scalar(_) => "scalar",
            Data::String(_) => "string",
        }
    }
}

#[derive(Debug, Deserialize)]
struct RangeSeries {
    values: Vec<(f64, String)>,
}

#[derive(Debug, Deserialize)]
struct InstantSample {
    value: (f64, String),
}

fn parse_answer(body: &str) -> Result<Data, SourceError> {
    let answer: Answer = serde_json::from_str(body).map_err(|e| {
        SourceError::Response(format!(
            "not a Prometheus API answer ({e}): {}",
            snippet(body)
        ))
    })?;
    match (answer.status.as_str(), answer.data) {
        ("success", Some(data)) => Ok(data),
        ("error", _) => Err(SourceError::Query(format!(
            "{}: {}",
            answer.error_type.as_deref().unwrap_or("error"),
            answer.error.as_deref().unwrap_or("(no message)")
        ))),
        (status, _) => Err(SourceError::Response(format!(
            "status `{status}` without data"
        ))),
    }
}

/// Prometheus writes samples as strings: numbers, `NaN`, `+Inf`, `-Inf`.
fn sample(text: &str) -> Result<f64, SourceError> {
    text.parse::<f64>()
        .map(finite_or_nan)
        .map_err(|_| SourceError::Response(format!("sample `{text}` is not a number")))
}

fn unix(t: Timestamp) -> String {
    let ms = t.as_millisecond();
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn snippet(body: &str) -> String {
    let t = body.trim();
    match t.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default trust (the system's roots).
    const SYSTEM_ROOTS: crate::tls::ClientTls = crate::tls::ClientTls {
        ca_file: None,
        system_roots: None,
    };

    #[test]
    fn matrix_series_are_pooled_and_non_finite_become_nan() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"pod":"a"},"values":[[1700000000,"1.5"],[1700000030.5,"NaN"]]},
            {"metric":{"pod":"b"},"values":[[1700000000,"+Inf"],[1700000030,"2"]]}]}}"#;
        let Data::Matrix(series) = parse_answer(body).unwrap() else {
            panic!("matrix expected")
        };
        let samples: Vec<f64> = series
            .iter()
            .flat_map(|s| s.values.iter())
            .map(|(_, v)| sample(v).unwrap())
            .collect();
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0], 1.5);
        assert!(samples[1].is_nan() && samples[2].is_nan());
        assert_eq!(samples[3], 2.0);
    }

    #[test]
    fn error_envelopes_keep_prometheus_message() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let e = parse_answer(body).unwrap_err();
        assert_eq!(
            e,
            SourceError::Query("bad_data: parse error at char 5".into())
        );
        let e = parse_answer("<html>gateway</html>").unwrap_err();
        assert!(e.to_string().contains("not a Prometheus API answer"), "{e}");
    }

    #[test]
    fn vectors_and_scalars_parse() {
        let v = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.25"]}]}}"#;
        let Data::Vector(v) = parse_answer(v).unwrap() else {
            panic!()
        };
        assert_eq!(sample(&v[0].value.1).unwrap(), 0.25);
        let s = r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
        assert!(matches!(parse_answer(s).unwrap(), Data::Scalar((_, ref x)) if x == "3"));
        assert!(sample("abc").is_err());
    }

    #[test]
    fn urls_must_be_http_or_https_with_a_host() {
        let new = |url: &str| {
            Prometheus::new(
                url,
                Duration::from_secs(1),
                &BTreeMap::new(),
                None,
                &SYSTEM_ROOTS,
            )
        };
        assert!(new("http://prom:9090/").is_ok());
        assert!(new("http://prom:9090/prometheus").is_ok());
        assert!(new("https://prom").is_ok());
        assert!(new("ftp://prom").is_err());
        assert!(new("prom:9090").is_err());
        assert!(new("http://").is_err());
    }

    #[test]
    fn times_are_unix_seconds_with_millis() {
        let t: Timestamp = "2026-01-02T03:04:05.067Z".parse().unwrap();
        assert_eq!(unix(t), "1767323045.067");
    }

    /// A one-shot HTTP server on loopback: answers `status` + `body` to the
    /// first request and hands back the request head it received.
    fn one_shot(
        status: &'static str,
        body: &'static str,
    ) -> (String, std::thread::JoinHandle<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(answer.as_bytes()).unwrap();
            String::from_utf8_lossy(&head).to_lowercase()
        });
        (url, handle)
    }

    #[test]
    fn headers_and_a_bearer_token_from_a_file_are_sent() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let (url, server) = one_shot(
            "200 OK",
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.5"]}]}}"#,
        );
        let headers = BTreeMap::from([("X-Scope-OrgID".to_string(), "team-a".to_string())]);
        let p = Prometheus::new(
            &url,
            Duration::from_secs(5),
            &headers,
            Some(token.clone()),
            &SYSTEM_ROOTS,
        )
        .unwrap();
        let at: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(p.value("up", at).unwrap(), Some(0.5));
        let head = server.join().unwrap();
        assert!(
            head.starts_with("get /api/v1/query?query=up&time=1767323045.000 "),
            "{head}"
        );
        assert!(head.contains("authorization: bearer s3cret\r\n"), "{head}");
        assert!(head.contains("x-scope-orgid: team-a\r\n"), "{head}");

        // A token file that disappears is a clear per-call error.
        std::fs::remove_file(&token).unwrap();
        let e = p.value("up", at).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot read the bearer token"),
            "{e}"
        );
    }

    #[test]
    fn a_refusal_that_is_not_prometheus_json_names_the_status() {
        let (url, server) = one_shot("401 Unauthorized", "missing credentials");
        let p = Prometheus::new(
            &url,
            Duration::from_secs(5),
            &BTreeMap::new(),
            None,
            &SYSTEM_ROOTS,
        )
        .unwrap();
        let e = p.value("up", Timestamp::UNIX_EPOCH).unwrap_err();
        server.join().unwrap();
        assert!(matches!(e, SourceError::Status { status: 401, .. }), "{e}");
        assert!(e.to_string().contains("missing credentials"), "{e}");
    }

    #[test]
    fn bad_headers_and_unreadable_tokens_are_refused_at_startup() {
        let t = Duration::from_secs(1);
        let h = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(
            Prometheus::new("http://p", t, &h("bad header", "x"), None, &SYSTEM_ROOTS).is_err()
        );
        assert!(
            Prometheus::new("http://p", t, &h("X-A", "line\nbreak"), None, &SYSTEM_ROOTS).is_err()
        );
        let e = Prometheus::new(
            "http://p",
            t,
            &h("Authorization", "Bearer x"),
            None,
            &SYSTEM_ROOTS,
        )
        .err()
        .unwrap();
        assert!(e.contains("bearer_token_file"), "{e}");
        let e = Prometheus::new(
            "http://p",
            t,
            &BTreeMap::new(),
            Some("/nonexistent/token".into()),
            &SYSTEM_ROOTS,
        )
        .err()
        .unwrap();
        assert!(e.contains("/nonexistent/token"), "{e}");
    }
}
