//! One plain async function per route: parse, call the service, shape the reply.

use std::collections::HashMap;

use bytes::Bytes;
use jiff::Timestamp;
use serde::Deserialize;
use warp::http::header::CONTENT_TYPE;
use warp::http::StatusCode;
use warp::reply::{json, with_header, with_status, Response};
use warp::Reply;

use super::auth::Caller;
use super::errors::{parse_json, ApiError};
use crate::domain::{Binding, DecisionRequest, Selector, Verdict};
use crate::service::{App, NewFreeze, ReplayRequest};
use crate::store::Query;

type Result<T> = std::result::Result<T, ApiError>;

fn ok<T: serde::Serialize>(status: StatusCode, body: &T) -> Result<Response> {
    Ok(with_status(json(body), status).into_response())
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

/// POST /v1/decisions
pub async fn decide(app: App, body: Bytes) -> Result<Response> {
    let req: DecisionRequest = parse_json(&body)?;
    let decided = app.decide(req).await?;
    let status = if decided.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    match decided.json {
        // The stored bytes: what a read of this decision serialises to.
        Some(body) => {
            let body = with_header(body, CONTENT_TYPE, "application/json");
            Ok(with_status(body, status).into_response())
        }
        None => ok(status, &decided.decision),
    }
}

/// GET /v1/decisions/{id}
pub async fn get_decision(app: App, id: String) -> Result<Response> {
    ok(StatusCode::OK, &app.decision(&id).await?)
}

/// GET /v1/decisions?service=&environment=&verdict=&since=&until=&limit=&cursor=
pub async fn query(app: App, pairs: Vec<(String, String)>) -> Result<Response> {
    let mut q = HashMap::new();
    for (k, v) in pairs {
        if q.insert(k.clone(), v).is_some() {
            return Err(invalid(format!(
                "query parameter `{k}` is given more than once; give it once"
            )));
        }
    }
    let query = parse_query(q)?;
    ok(StatusCode::OK, &app.query(query).await?)
}

pub(super) fn parse_query(mut q: HashMap<String, String>) -> Result<Query> {
    let time = |q: &mut HashMap<String, String>, k: &str| -> Result<Option<Timestamp>> {
        q.remove(k)
            .map(|v| {
                v.parse::<Timestamp>().map_err(|e| {
                    invalid(format!(
                        "`{k}` must be an RFC 3339 time like 2026-01-31T12:00:00Z: {e}"
                    ))
                })
            })
            .transpose()
    };
    let query = Query {
        service: q.remove("service"),
        environment: q.remove("environment"),
        verdict: q
            .remove("verdict")
            .map(|v| v.parse::<Verdict>().map_err(invalid))
            .transpose()?,
        since: time(&mut q, "since")?,
        until: time(&mut q, "until")?,
        limit: q
            .remove("limit")
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| invalid(format!("`limit` must be a positive integer, got `{v}`")))
            })
            .transpose()?,
        cursor: q.remove("cursor"),
    };
    if let Some(unknown) = q.keys().next() {
        return Err(invalid(format!(
            "unknown query parameter `{unknown}`: use service, environment, verdict, since, until, limit, cursor"
        )));
    }
    Ok(query)
}

/// POST /v1/sources/preview: the metrics a decision request would pull.
pub async fn preview_pull(app: App, body: Bytes) -> Result<Response> {
    let req: DecisionRequest = parse_json(&body)?;
    let metrics = app.preview_pull(req).await?;
    ok(StatusCode::OK, &serde_json::json!({ "metrics": metrics }))
}

/// POST /v1/decisions/{id}/replay
pub async fn replay(app: App, id: String, body: Bytes) -> Result<Response> {
    let how: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        parse_json(&body)?
    };
    ok(StatusCode::OK, &app.replay(&id, how).await?)
}

/// GET /v1/audit/verify
pub async fn verify(app: App) -> Result<Response> {
    ok(StatusCode::OK, &app.verify().await?)
}

/// GET /v1/audit/checkpoint: the latest signed checkpoint, as signed-note text.
pub async fn checkpoint(app: App) -> Result<Response> {
    let note = app.checkpoint().await?;
    Ok(warp::reply::with_header(note, "content-type", "text/plain; charset=utf-8").into_response())
}

/// GET /v1/audit/key: the verifier key of this server's checkpoints.
pub async fn checkpoint_key(app: App) -> Result<Response> {
    let key = format!("{}\n", app.checkpoint_verifier_key());
    Ok(warp::reply::with_header(key, "content-type", "text/plain; charset=utf-8").into_response())
}

/// PUT /v1/policies/{name}
pub async fn put_policy(app: App, name: String, body: Bytes) -> Result<Response> {
    let meta = app.put_policy(&name, body.to_vec()).await?;
    ok(
        StatusCode::CREATED,
        &serde_json::json!({"name": meta.name, "digest": meta.digest, "version": meta.version, "size": meta.size, "info": meta.info}),
    )
}

/// GET /v1/policies
pub async fn list_policies(app: App) -> Result<Response> {
    let items = app.policies();
    ok(
        StatusCode::OK,
        &serde_json::json!({"items": items, "next_cursor": null}),
    )
}

/// GET /v1/policies/{name}
pub async fn get_policy(app: App, name: String) -> Result<Response> {
    ok(StatusCode::OK, &app.policy(&name)?)
}

/// DELETE /v1/policies/{name}
pub async fn delete_policy(app: App, name: String) -> Result<Response> {
    ok(StatusCode::OK, &app.delete_policy(&name).await?)
}

/// PUT /v1/bindings/{name}
pub async fn put_binding(app: App, name: String, body: Bytes) -> Result<Response> {
    let binding: Binding = parse_json(&body)?;
    app.put_binding(&name, binding.clone()).await?;
    ok(
        StatusCode::OK,
        &serde_json::json!({"name": name, "binding": binding}),
    )
}

/// GET /v1/bindings
pub async fn list_bindings(app: App) -> Result<Response> {
    let items: Vec<_> = app
        .bindings()
        .into_iter()
        .map(|(n, b)| serde_json::json!({"name": n, "binding": b}))
        .collect();
    ok(
        StatusCode::OK,
        &serde_json::json!({"items": items, "next_cursor": null}),
    )
}

/// GET /v1/bindings/{name}
pub async fn get_binding(app: App, name: String) -> Result<Response> {
    let b = app.binding(&name)?;
    ok(
        StatusCode::OK,
        &serde_json::json!({"name": name, "binding": b}),
    )
}

/// DELETE /v1/bindings/{name}
pub async fn delete_binding(app: App, name: String) -> Result<Response> {
    let b = app.delete_binding(&name).await?;
    ok(
        StatusCode::OK,
        &serde_json::json!({"name": name, "binding": b}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeBody {
    #[serde(default)]
    selector: Selector,
    reason: String,
    until: Timestamp,
}

/// POST /v1/freezes
pub async fn create_freeze(app: App, caller: Caller, body: Bytes) -> Result<Response> {
    let f: FreezeBody = parse_json(&body)?;
    let freeze = app
        .create_freeze(NewFreeze {
            selector: f.selector,
            reason: f.reason,
            until: f.until,
            created_by: caller.name,
        })
        .await?;
    ok(StatusCode::CREATED, &freeze)
}

/// GET /v1/freezes
pub async fn list_freezes(app: App) -> Result<Response> {
    let items = app.freezes();
    ok(
        StatusCode::OK,
        &serde_json::json!({"items": items, "next_cursor": null}),
    )
}

/// DELETE /v1/freezes/{id}
pub async fn delete_freeze(app: App, id: String) -> Result<Response> {
    ok(StatusCode::OK, &app.delete_freeze(&id).await?)
}

/// GET /readyz
pub fn readyz(app: &App) -> Response {
    let body = app.status();
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    with_status(json(&body), status).into_response()
}

/// GET /metrics
pub fn metrics() -> Response {
    match crate::telemetry::prometheus_text() {
        Ok(text) => warp::reply::with_header(
            text,
            "content-type",
            crate::telemetry::prometheus::CONTENT_TYPE,
        )
        .into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "metrics", e).reply(),
    }
}
