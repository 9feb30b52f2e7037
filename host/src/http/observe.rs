//! Per-request telemetry: the request span (continuing the caller's W3C
//! `traceparent`) and the HTTP metrics, labelled by the template of the
//! route that matched. The template is written once, where the route is
//! defined ([`super::filters`]): the matching route writes it into the
//! request's [`RouteSlot`], and [`Observation`] reads it back when the
//! answer is out.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::HeaderExtractor;
use tracing::{field, Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use warp::http::{HeaderMap, Method, Request, Response};

use crate::telemetry;

/// The label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Where the route that matches a request writes its template. Put in
/// the request's extensions by [`Observation::begin`].
#[derive(Debug, Clone, Default)]
pub struct RouteSlot(Arc<OnceLock<&'static str>>);

impl RouteSlot {
    /// The first route whose path matches wins (routes that differ only in
    /// method share their template).
    pub fn set(&self, template: &'static str) {
        let _ = self.0.set(template);
    }

    /// The template, or [`UNMATCHED`].
    pub fn get(&self) -> &'static str {
        self.0.get().copied().unwrap_or(UNMATCHED)
    }
}

/// One request's span, clock and route slot.
pub struct Observation {
    slot: RouteSlot,
    span: Span,
    method: &'static str,
    started: Instant,
}

impl Observation {
    /// Start observing `req`: its span (a child of the caller's trace if
    /// it sent a valid `traceparent`) and an empty route slot.
    pub fn begin<B>(req: &mut Request<B>) -> Observation {
        let slot = RouteSlot::default();
        req.extensions_mut().insert(slot.clone());
        let method = method_label(req.method());
        Observation {
            slot,
            span: request_span(method, req.headers()),
            method,
            started: Instant::now(),
        }
    }

    /// Serve the request (`answer`) inside its span, then name the span
    /// after the route that matched and count the answer.
    pub async fn around<F, B, E>(self, answer: F) -> Result<Response<B>, E>
    where
        F: Future<Output = Result<Response<B>, E>>,
    {
        let answer = answer.instrument(self.span.clone()).await;
        let route = self.slot.get();
        self.span.record("http.route", route);
        // The span has started by now (its children did): renamed on the
        // OpenTelemetry span itself, as recording `otel.name` only names
        // a span that has not.
        self.span
            .context()
            .span()
            .update_name(format!("{} {route}", self.method));
        if let Ok(response) = &answer {
            let status = response.status().as_u16();
            // As i64: tracing-opentelemetry exports a u16 as a string attribute.
            self.span
                .record("http.response.status_code", i64::from(status));
            telemetry::metrics().http_request(route, self.method, status, self.started.elapsed());
        }
        answer
    }
}

/// The span a request is served in, before its route is known.
fn request_span(method: &'static str, headers: &HeaderMap) -> Span {
    let span = tracing::info_span!(
        "request",
        otel.name = method,
        otel.kind = "server",
        http.request.method = method,
        http.route = field::Empty,
        http.response.status_code = field::Empty,
    );
    telemetry::continue_trace(&span, &HeaderExtractor(headers));
    span
}

/// The method as a label: the ones the API knows, everything else `other`
/// (the method is client input; labels must stay a small fixed set).
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_methods_are_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
    }
}
