//! One filter per route, each naming its route template once (with [`at`]):
//! the same string routes the request and labels its span and metrics (see
//! [`super::observe`]). Each route filter reads its inputs (path
//! parameters, caller, body) and hands them to one function in
//! [`super::handlers`] or [`super::integrations`].

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use warp::filters::BoxedFilter;
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::auth::Caller;
use super::errors::{shown, ApiError, RequestError};
use super::observe::RouteSlot;
use super::{console, exposure, handlers, integrations, Ctx, Peer};
use crate::config::Role;

/// The path parameters a template names (`{id}`, `{name}`, `{gate}`), in
/// order, as sent (warp does not percent-decode path segments; the names
/// they carry have a grammar without `%`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params(Vec<String>);

impl Params {
    /// The template's only parameter.
    fn one(self) -> String {
        self.0.into_iter().next().unwrap_or_default()
    }
}

/// Match `path` against `template`: literal segments exactly, `{…}`
/// segments any non-empty segment. `None` when it does not match.
pub fn match_template(template: &str, path: &str) -> Option<Params> {
    let mut want = template.trim_start_matches('/').split('/');
    let mut got = path.trim_start_matches('/').split('/');
    let mut params = Vec::new();
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(Params(params)),
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return None;
                }
                params.push(g.to_string());
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

/// The route at `template`: rejects (404) any other path, and records
/// the template for the request's span and metrics once the path matches,
/// before the method or the caller is checked, so a refused request is
/// still counted under its route.
fn at(template: &'static str) -> impl Filter<Extract = (Params,), Error = Rejection> + Clone {
    warp::path::full()
        .and(warp::ext::optional::<RouteSlot>())
        .and_then(move |path: FullPath, slot: Option<RouteSlot>| async move {
            let params =
                match_template(template, path.as_str()).ok_or_else(warp::reject::not_found)?;
            if let Some(slot) = slot {
                slot.set(template);
            }
            Ok::<_, Rejection>(params)
        })
}

fn with_ctx(ctx: &Ctx) -> impl Filter<Extract = (Ctx,), Error = std::convert::Infallible> + Clone {
    let ctx = ctx.clone();
    warp::any().map(move || ctx.clone())
}

/// Require `role` (from a bearer or Basic token, or a client certificate);
/// yields the caller.
fn role(ctx: &Ctx, role: Role) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    let auth = ctx.auth.clone();
    warp::header::optional::<String>("authorization")
        .and(warp::ext::optional::<Peer>())
        .and_then(move |h: Option<String>, peer: Option<Peer>| {
            let auth = auth.clone();
            async move {
                let names = peer.as_ref().map(|p| p.0.as_ref());
                auth.check(h.as_deref(), names, role)
                    .map_err(ApiError::reject)
            }
        })
}

/// A body size limit and the setting that configures it (named in the 413).
#[derive(Debug, Clone, Copy)]
struct Limit {
    bytes: u64,
    setting: &'static str,
}

impl Limit {
    /// A JSON request body: `max_body_bytes`.
    fn json(ctx: &Ctx) -> Limit {
        Limit {
            bytes: ctx.max_body,
            setting: "max_body_bytes",
        }
    }
}

const JSON: &str = "application/json";
const WASM: &str = "application/wasm";

/// A JSON request body of at most `max_body_bytes`.
fn json_body(ctx: &Ctx) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    media_type(JSON).and(body(Limit::json(ctx), ctx.body_timeout))
}

/// A policy component upload of at most `max_policy_bytes`.
fn policy_body(ctx: &Ctx) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    let limit = Limit {
        bytes: ctx.max_policy,
        setting: "max_policy_bytes",
    };
    media_type(WASM).and(body(limit, ctx.body_timeout))
}

/// The request's `Content-Type` is `expected` (parameters such as
/// `charset` aside). Checked before the body is read.
fn media_type(expected: &'static str) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and_then(move |got: Option<String>| async move {
            check_media_type(got.as_deref(), expected).map_err(RequestError::reject)
        })
        .untuple_one()
}

fn check_media_type(got: Option<&str>, expected: &'static str) -> Result<(), RequestError> {
    let got = got.ok_or(RequestError::NoMediaType { expected })?;
    let essence = got.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(RequestError::WrongMediaType {
            expected,
            got: shown(got),
        })
    }
}

/// Without tokens: a loopback `Host` and no foreign `Origin` (see
/// [`exposure`]). With tokens: anything.
pub fn exposure_guard(ctx: &Ctx) -> BoxedFilter<()> {
    if ctx.auth.enabled() {
        return warp::any().boxed();
    }
    warp::host::optional()
        .and(warp::header::optional::<String>("origin"))
        .and_then(
            |host: Option<warp::host::Authority>, origin: Option<String>| async move {
                exposure::check_loopback(host.as_ref(), origin.as_deref())
                    .map_err(RequestError::reject)
            },
        )
        .untuple_one()
        .boxed()
}

/// The body, read up to `limit` bytes whatever the transfer encoding
/// (`content_length_limit` alone would refuse chunked bodies), within
/// `timeout`.
fn body(
    limit: Limit,
    timeout: Duration,
) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::body::stream().and_then(move |stream| async move {
        // The body is read (and counted) rather than refused on its
        // declared length, so a client still sending gets to read the
        // 413 instead of a broken pipe. A client that sends less than it
        // declared is cut off by the read timeout instead of holding the
        // connection forever.
        collect_body_within(stream, limit, timeout).await
    })
}

/// [`collect_body`] under `timeout`: a body not received in time is a 408.
async fn collect_body_within<S, B>(
    stream: S,
    limit: Limit,
    timeout: Duration,
) -> Result<Bytes, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    match tokio::time::timeout(timeout, collect_body(stream, limit)).await {
        Ok(r) => r,
        Err(_) => Err(RequestError::BodyTimeout {
            ms: timeout.as_millis(),
        }
        .reject()),
    }
}

async fn collect_body<S, B>(stream: S, limit: Limit) -> Result<Bytes, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| RequestError::BadBody(e.to_string()).reject())?;
        if buf.len() as u64 + chunk.remaining() as u64 > limit.bytes {
            return Err(RequestError::TooLarge {
                limit: limit.bytes,
                setting: limit.setting,
            }
            .reject());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(buf))
}

/// Run a handler under the request timeout; a timeout is a 503, never a hang.
async fn timed<F>(ctx: &Ctx, f: F) -> Result<Response, Rejection>
where
    F: Future<Output = Result<Response, ApiError>>,
{
    timed_for(ctx.timeout, f).await
}

/// Run a handler under `timeout`; a timeout is a 503, never a hang.
async fn timed_for<F>(timeout: Duration, f: F) -> Result<Response, Rejection>
where
    F: Future<Output = Result<Response, ApiError>>,
{
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.reject()),
        Err(_) => Err(RequestError::Timeout {
            ms: timeout.as_millis(),
        }
        .reject()),
    }
}

/// Query string pairs in order, so a repeated parameter can be refused
/// instead of silently keeping one of its values.
type QueryPairs = Vec<(String, String)>;

// ------------------------------------------------------------ decisions ----

/// POST /v1/decisions
pub fn decide(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/decisions")
        .and(warp::post())
        .and(role(ctx, Role::Decide))
        .and(json_body(ctx))
        .and(with_ctx(ctx))
        .and_then(|_: Params, _: Caller, b: Bytes, ctx: Ctx| async move {
            timed(&ctx, handlers::decide(ctx.app.clone(), b)).await
        })
        .boxed()
}

/// GET /v1/decisions?service=&environment=&verdict=&since=&until=&limit=&cursor=
pub fn query(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/decisions")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(warp::query::<QueryPairs>())
        .and(with_ctx(ctx))
        .and_then(|_: Params, _: Caller, q: QueryPairs, ctx: Ctx| async move {
            timed(&ctx, handlers::query(ctx.app.clone(), q)).await
        })
        .boxed()
}

/// GET /v1/decisions/{id}
pub fn get_decision(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/decisions/{id}")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(with_ctx(ctx))
        .and_then(|p: Params, _: Caller, ctx: Ctx| async move {
            timed(&ctx, handlers::get_decision(ctx.app.clone(), p.one())).await
        })
        .boxed()
}

/// POST /v1/decisions/{id}/replay
pub fn replay(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/decisions/{id}/replay")
        .and(warp::post())
        .and(role(ctx, Role::Read))
        .and(json_body(ctx))
        .and(with_ctx(ctx))
        .and_then(|p: Params, _: Caller, b: Bytes, ctx: Ctx| async move {
            timed(&ctx, handlers::replay(ctx.app.clone(), p.one(), b)).await
        })
        .boxed()
}

/// POST /v1/sources/preview
pub fn preview(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/sources/preview")
        .and(warp::post())
        .and(role(ctx, Role::Decide))
        .and(json_body(ctx))
        .and(with_ctx(ctx))
        .and_then(|_: Params, _: Caller, b: Bytes, ctx: Ctx| async move {
            timed(&ctx, handlers::preview_pull(ctx.app.clone(), b)).await
        })
        .boxed()
}

/// GET /v1/audit/verify
pub fn verify(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/audit/verify")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(with_ctx(ctx))
        .and_then(|_: Params, _: Caller, ctx: Ctx| async move {
            timed(&ctx, handlers::verify(ctx.app.clone())).await
        })
        .boxed()
}

/// GET /v1/audit/checkpoint
pub fn checkpoint(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/audit/checkpoint")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(with_ctx(ctx))
        .and_then(|_: Params, _: Caller, ctx: Ctx| async move {
            timed(&ctx, handlers::checkpoint(ctx.app.clone())).await
        })
        .boxed()
}

/// GET /v1/audit/key
pub fn checkpoint_key(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/audit/key")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(with_ctx(ctx))
        .and_then(|_: Params, _: Caller, ctx: Ctx| async move {
            timed(&ctx, handlers::checkpoint_key(ctx.app.clone())).await
        })
        .boxed()
}

// ------------------------------------------------------------- policies ----

/// PUT /v1/policies/{name}
pub fn put_policy(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/policies/{name}")
        .and(warp::put())
        .and(role(ctx, Role::Admin))
        .and(policy_body(ctx))
        .and(with_ctx(ctx))
        .and_then(|p: Params, _: Caller, b: Bytes, ctx: Ctx| async move {
            timed_for(
                ctx.upload_timeout,
                handlers::put_policy(ctx.app.clone(), p.one(), b),
            )
            .await
        })
        .boxed()
}

/// GET /v1/policies
pub fn list_policies(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/policies")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(with_ctx(ctx))
        .and_then(|_: Params, _: Caller, ctx: Ctx| async move {
            timed(&ctx, handlers::list_policies(ctx.app.clone())).await
        })
        .boxed()
}

/// GET /v1/policies/{name}
pub fn get_policy(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/policies/{name}")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(with_ctx(ctx))
        .and_then(|p: Params, _: Caller, ctx: Ctx| async move {
            timed(&ctx, handlers::get_policy(ctx.app.clone(), p.one())).await
        })
        .boxed()
}

/// DELETE /v1/policies/{name}
pub fn delete_policy(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/policies/{name}")
        .and(warp::delete())
        .and(role(ctx, Role::Admin))
        .and(with_ctx(ctx))
        .and_then(|p: Params, _: Caller, ctx: Ctx| async move {
            timed(&ctx, handlers::delete_policy(ctx.app.clone(), p.one())).await
        })
        .boxed()
}

// ------------------------------------------------------------- bindings ----

/// PUT /v1/bindings/{name}
pub fn put_binding(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/bindings/{name}")
        .and(warp::put())
        .and(role(ctx, Role::Admin))
        .and(json_body(ctx))
        .and(with_ctx(ctx))
        .and_then(|p: Params, _: Caller, b: Bytes, ctx: Ctx| async move {
            timed(&ctx, handlers::put_binding(ctx.app.clone(), p.one(), b)).await
        })
        .boxed()
}

/// GET /v1/bindings
pub fn list_bindings(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/bindings")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(with_ctx(ctx))
        .and_then(|_: Params, _: Caller, ctx: Ctx| async move {
            timed(&ctx, handlers::list_bindings(ctx.app.clone())).await
        })
        .boxed()
}

/// GET /v1/bindings/{name}
pub fn get_binding(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/bindings/{name}")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(with_ctx(ctx))
        .and_then(|p: Params, _: Caller, ctx: Ctx| async move {
            timed(&ctx, handlers::get_binding(ctx.app.clone(), p.one())).await
        })
        .boxed()
}

/// DELETE /v1/bindings/{name}
pub fn delete_binding(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/bindings/{name}")
        .and(warp::delete())
        .and(role(ctx, Role::Admin))
        .and(with_ctx(ctx))
        .and_then(|p: Params, _: Caller, ctx: Ctx| async move {
            timed(&ctx, handlers::delete_binding(ctx.app.clone(), p.one())).await
        })
        .boxed()
}

// -------------------------------------------------------------- freezes ----

/// POST /v1/freezes
pub fn create_freeze(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/freezes")
        .and(warp::post())
        .and(role(ctx, Role::Admin))
        .and(json_body(ctx))
        .and(with_ctx(ctx))
        .and_then(|_: Params, caller: Caller, b: Bytes, ctx: Ctx| async move {
            timed(&ctx, handlers::create_freeze(ctx.app.clone(), caller, b)).await
        })
        .boxed()
}

/// GET /v1/freezes
pub fn list_freezes(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/freezes")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(with_ctx(ctx))
        .and_then(|_: Params, _: Caller, ctx: Ctx| async move {
            timed(&ctx, handlers::list_freezes(ctx.app.clone())).await
        })
        .boxed()
}

/// DELETE /v1/freezes/{id}
pub fn delete_freeze(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/freezes/{id}")
        .and(warp::delete())
        .and(role(ctx, Role::Admin))
        .and(with_ctx(ctx))
        .and_then(|p: Params, _: Caller, ctx: Ctx| async move {
            timed(&ctx, handlers::delete_freeze(ctx.app.clone(), p.one())).await
        })
        .boxed()
}

// --------------------------------------------------------- integrations ----

/// POST /v1/integrations/argo: always 200, even for a refused body (Argo
/// aborts a rollout after a few non-2xx answers; a hold pauses it).
pub fn argo(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/integrations/argo")
        .and(warp::post())
        .and(role(ctx, Role::Decide))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::stream())
        .and(with_ctx(ctx))
        .then(
            |_: Params, _: Caller, ctype: Option<String>, stream, ctx: Ctx| async move {
                let body = match check_media_type(ctype.as_deref(), JSON) {
                    // Unread: the connection closes after the answer.
                    Err(e) => Err(e.to_string()),
                    // Under the body timeout too: a stalled body must not hold
                    // the connection (nor the rollout step) forever.
                    Ok(()) => collect_body_within(stream, Limit::json(&ctx), ctx.body_timeout)
                        .await
                        .map_err(|r: Rejection| {
                            r.find::<ApiError>()
                                .map(|e| e.message.clone())
                                .unwrap_or_else(|| "cannot read the request body".into())
                        }),
                };
                integrations::argo(ctx.app.clone(), body, ctx.timeout).await
            },
        )
        .boxed()
}

/// POST /v1/integrations/flagger/{gate}
pub fn flagger(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/v1/integrations/flagger/{gate}")
        .and(warp::post())
        .and(role(ctx, Role::Decide))
        .and(json_body(ctx))
        .and(with_ctx(ctx))
        .and_then(|p: Params, _: Caller, b: Bytes, ctx: Ctx| async move {
            timed(&ctx, integrations::flagger(ctx.app.clone(), p.one(), b)).await
        })
        .boxed()
}

// -------------------------------------------------------------- console ----

/// GET /ui: the console lives at `/ui/`.
pub fn console_root() -> BoxedFilter<(Response,)> {
    at("/ui")
        .and(warp::get())
        .map(|_: Params| {
            warp::redirect::see_other(warp::http::Uri::from_static("/ui/")).into_response()
        })
        .boxed()
}

/// GET /ui/?service=&environment=&verdict=&since=&until=&cursor=
pub fn console_list(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/ui/")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(warp::query::<QueryPairs>())
        .and(with_ctx(ctx))
        .then(|_: Params, _: Caller, q: QueryPairs, ctx: Ctx| async move {
            console::list(ctx.app.clone(), q).await
        })
        .boxed()
}

/// GET /ui/decisions/{id}
pub fn console_decision(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/ui/decisions/{id}")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(with_ctx(ctx))
        .then(|p: Params, _: Caller, ctx: Ctx| async move {
            console::decision(ctx.app.clone(), p.one()).await
        })
        .boxed()
}

/// GET /ui/decisions/{id}/replay
pub fn console_replay(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/ui/decisions/{id}/replay")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(with_ctx(ctx))
        .then(|p: Params, _: Caller, ctx: Ctx| async move {
            console::replay(ctx.app.clone(), p.one()).await
        })
        .boxed()
}

/// GET /ui/chain
pub fn console_chain(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/ui/chain")
        .and(warp::get())
        .and(role(ctx, Role::Read))
        .and(with_ctx(ctx))
        .then(|_: Params, _: Caller, ctx: Ctx| async move { console::chain(ctx.app.clone()).await })
        .boxed()
}

/// GET /ui/static/{file}: the console's stylesheet and script (nothing
/// secret in them, so no auth: the browser fetches them without the token).
pub fn console_static() -> BoxedFilter<(Response,)> {
    at("/ui/static/{file}")
        .and(warp::get())
        .and_then(|p: Params| async move {
            console::asset(&p.one()).ok_or_else(warp::reject::not_found)
        })
        .boxed()
}

// ---------------------------------------------------------- operations ----

/// GET or HEAD (some load balancers probe with HEAD).
fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// GET /healthz: the process answers.
pub fn healthz() -> BoxedFilter<(Response,)> {
    at("/healthz")
        .and(get_or_head())
        .map(|_: Params| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response())
        .boxed()
}

/// GET /readyz: started, and the store has not failed.
pub fn readyz(ctx: &Ctx) -> BoxedFilter<(Response,)> {
    at("/readyz")
        .and(get_or_head())
        .and(with_ctx(ctx))
        .map(|_: Params, ctx: Ctx| handlers::readyz(&ctx.app))
        .boxed()
}

/// GET /metrics: no auth, like the probes (scrapers rarely carry tokens).
pub fn metrics() -> BoxedFilter<(Response,)> {
    at("/metrics")
        .and(warp::get())
        .map(|_: Params| handlers::metrics())
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_whole_paths_with_non_empty_parameters() {
        let p = |v: &[&str]| Some(Params(v.iter().map(|s| s.to_string()).collect()));
        assert_eq!(match_template("/v1/decisions", "/v1/decisions"), p(&[]));
        assert_eq!(
            match_template("/v1/decisions/{id}", "/v1/decisions/abc"),
            p(&["abc"])
        );
        assert_eq!(
            match_template(
                "/v1/integrations/flagger/{gate}",
                "/v1/integrations/flagger/rollback"
            ),
            p(&["rollback"])
        );
        for (template, path) in [
            ("/v1/decisions", "/v1/decisions/"),
            ("/v1/decisions", "/v1/decision"),
            ("/v1/decisions/{id}", "/v1/decisions/"),
            ("/v1/decisions/{id}", "/v1/decisions/a/b"),
            ("/v1/decisions/{id}/replay", "/v1/decisions//replay"),
            ("/metrics", "/metrics/x"),
            ("/healthz", "/"),
        ] {
            assert_eq!(match_template(template, path), None, "{template} {path}");
        }
    }
}
