//! Per-request telemetry: the request span (continuing the caller's W3C
//! `traceparent`) and the HTTP metrics, labelled by route template.

use std::time::Duration;

use opentelemetry_http::HeaderExtractor;
use tracing::{field, Span};
use warp::http::{HeaderMap, Method, StatusCode};

use crate::telemetry;

/// The span a request is served in. A valid `traceparent` header makes it
/// a child of the caller's span, so a deploy tool's trace continues here.
pub fn request_span(method: &Method, path: &str, headers: &HeaderMap) -> Span {
    let route = route(path);
    let method = method_label(method);
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = field::Empty,
    );
    telemetry::continue_trace(&span, &HeaderExtractor(headers));
    span
}

/// Count one answered request; called inside its span.
pub fn answered(method: &Method, path: &str, status: StatusCode, took: Duration) {
    // As i64: tracing-opentelemetry exports a u16 as a string attribute.
    Span::current().record("http.response.status_code", i64::from(status.as_u16()));
    telemetry::metrics().http_request(route(path), method_label(method), status.as_u16(), took);
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

/// The route template a path belongs to (`/v1/decisions/{id}`), or
/// `unmatched`. Mirrors the route table in `http.rs`. The method is not
/// part of it: a wrong method on a known path is still about that route.
pub fn route(path: &str) -> &'static str {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["v1", "decisions"] => "/v1/decisions",
        ["v1", "decisions", id] if !id.is_empty() => "/v1/decisions/{id}",
        ["v1", "decisions", id, "replay"] if !id.is_empty() => "/v1/decisions/{id}/replay",
        ["v1", "audit", "verify"] => "/v1/audit/verify",
        ["v1", "sources", "preview"] => "/v1/sources/preview",
        ["v1", "policies"] => "/v1/policies",
        ["v1", "policies", n] if !n.is_empty() => "/v1/policies/{name}",
        ["v1", "bindings"] => "/v1/bindings",
        ["v1", "bindings", n] if !n.is_empty() => "/v1/bindings/{name}",
        ["v1", "freezes"] => "/v1/freezes",
        ["v1", "freezes", id] if !id.is_empty() => "/v1/freezes/{id}",
        ["v1", "integrations", "argo"] => "/v1/integrations/argo",
        ["v1", "integrations", "flagger", g] if !g.is_empty() => "/v1/integrations/flagger/{gate}",
        ["healthz"] => "/healthz",
        ["readyz"] => "/readyz",
        ["metrics"] => "/metrics",
        _ => "unmatched",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_route_template() {
        let cases = [
            ("/v1/decisions", "/v1/decisions"),
            ("/v1/decisions/abc123", "/v1/decisions/{id}"),
            ("/v1/decisions/abc123/replay", "/v1/decisions/{id}/replay"),
            ("/v1/audit/verify", "/v1/audit/verify"),
            ("/v1/sources/preview", "/v1/sources/preview"),
            ("/v1/policies", "/v1/policies"),
            ("/v1/policies/canary-judge", "/v1/policies/{name}"),
            ("/v1/bindings/b1", "/v1/bindings/{name}"),
            ("/v1/freezes", "/v1/freezes"),
            ("/v1/freezes/f1", "/v1/freezes/{id}"),
            ("/v1/integrations/argo", "/v1/integrations/argo"),
            (
                "/v1/integrations/flagger/rollback",
                "/v1/integrations/flagger/{gate}",
            ),
            ("/healthz", "/healthz"),
            ("/readyz", "/readyz"),
            ("/metrics", "/metrics"),
        ];
        for (path, want) in cases {
            assert_eq!(route(path), want, "{path}");
        }
    }

    #[test]
    fn unknown_paths_are_one_label() {
        for path in [
            "/",
            "/v2/decisions",
            "/v1/decisions/",
            "/v1/decisions/a/b",
            "/v1/decisions//replay",
            "/metrics/x",
            "/wp-admin.php",
        ] {
            assert_eq!(route(path), "unmatched", "{path}");
        }
    }

    #[test]
    fn odd_methods_are_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
    }
}
