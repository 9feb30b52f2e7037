//! The HTTP decision API (routes and statuses are listed in the README's
//! "HTTP API" table). Warp types stay inside this module.
//!
//! - this file: the route table (one filter per route) and [`serve`].
//! - [`listener`]: the accept loop: connection cap, header and idle
//!   timeouts, graceful shutdown with a deadline.
//! - [`handlers`]: plain async functions, one per route.
//! - [`integrations`]: the Argo Rollouts and Flagger front doors.
//! - [`auth`]: bearer tokens with roles.
//! - [`errors`]: the one mapping from errors and rejections to JSON bodies.
//! - [`exposure`]: without tokens, only loopback `Host` and `Origin`.
//! - [`observe`]: the per-request span and HTTP metrics.

pub mod auth;
pub mod errors;
pub mod exposure;
pub mod handlers;
pub mod integrations;
pub mod listener;
pub mod observe;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::config::{Config, Role};
use crate::service::App;
use auth::{Auth, Caller};
use errors::{shown, ApiError, RequestError};

/// Shared state every route needs.
#[derive(Clone)]
pub struct Ctx {
    pub app: Arc<App>,
    pub auth: Arc<Auth>,
    pub max_body: u64,
    pub max_policy: u64,
    pub timeout: Duration,
    /// How long a policy upload may take once its body is in: the request
    /// timeout plus the longest compile the largest allowed upload may
    /// take, so a Python or JavaScript policy (tens of seconds to compile)
    /// is answered with its compile's outcome, not a timeout.
    pub upload_timeout: Duration,
    /// How long a client may take to send its body (`body_timeout_ms`).
    pub body_timeout: Duration,
}

impl Ctx {
    pub fn new(app: Arc<App>, config: &Config) -> Ctx {
        Ctx {
            app,
            auth: Arc::new(Auth::new(&config.tokens)),
            max_body: config.max_body_bytes,
            max_policy: config.max_policy_bytes,
            timeout: Duration::from_millis(config.request_timeout_ms),
            // An upper bound of any upload's compile limit (the per-MiB
            // allowance really starts after the first MiB).
            upload_timeout: Duration::from_millis(
                config
                    .request_timeout_ms
                    .saturating_add(config.compile_timeout_ms)
                    .saturating_add(
                        config
                            .compile_timeout_ms_per_mib
                            .saturating_mul(config.max_policy_bytes.div_ceil(1 << 20)),
                    ),
            ),
            body_timeout: Duration::from_millis(config.body_timeout_ms),
        }
    }

    /// A JSON request body of at most `max_body_bytes`.
    fn body(&self) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
        media_type(JSON).and(body(
            Limit::new(self.max_body, "max_body_bytes"),
            self.body_timeout,
        ))
    }

    /// A policy component upload of at most `max_policy_bytes`.
    fn policy_body(&self) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
        media_type(WASM).and(body(
            Limit::new(self.max_policy, "max_policy_bytes"),
            self.body_timeout,
        ))
    }
}

/// A body size limit and the setting that configures it (named in the 413).
#[derive(Debug, Clone, Copy)]
struct Limit {
    bytes: u64,
    setting: &'static str,
}

impl Limit {
    fn new(bytes: u64, setting: &'static str) -> Limit {
        Limit { bytes, setting }
    }
}

const JSON: &str = "application/json";
const WASM: &str = "application/wasm";

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
fn exposure_guard(ctx: &Ctx) -> BoxedFilter<()> {
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

fn with_ctx(ctx: Ctx) -> impl Filter<Extract = (Ctx,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || ctx.clone())
}

/// Require `role`; yields the caller.
fn role(ctx: &Ctx, role: Role) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    let auth = ctx.auth.clone();
    warp::header::optional::<String>("authorization").and_then(move |h: Option<String>| {
        let auth = auth.clone();
        async move { auth.check(h.as_deref(), role).map_err(ApiError::reject) }
    })
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

fn too_large(limit: Limit) -> Rejection {
    RequestError::TooLarge {
        limit: limit.bytes,
        setting: limit.setting,
    }
    .reject()
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
            return Err(too_large(limit));
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
type Query = Vec<(String, String)>;

/// Every route, with the error recovery applied.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    use warp::path::end;
    let c = || with_ctx(ctx.clone());
    let v1 = warp::path("v1");

    // POST /v1/decisions
    let decide = v1
        .and(warp::path("decisions"))
        .and(end())
        .and(warp::post())
        .and(c())
        .and(role(&ctx, Role::Decide))
        .and(ctx.body())
        .and_then(|ctx: Ctx, _c: Caller, b: Bytes| async move {
            timed(&ctx, handlers::decide(ctx.app.clone(), b)).await
        });
    // GET /v1/decisions
    let query = v1
        .and(warp::path("decisions"))
        .and(end())
        .and(warp::get())
        .and(c())
        .and(role(&ctx, Role::Read))
        .and(warp::query::<Query>())
        .and_then(|ctx: Ctx, _c: Caller, q: Query| async move {
            timed(&ctx, handlers::query(ctx.app.clone(), q)).await
        });
    // GET /v1/decisions/{id}
    let get = v1
        .and(warp::path!("decisions" / String))
        .and(warp::get())
        .and(c())
        .and(role(&ctx, Role::Read))
        .and_then(|id: String, ctx: Ctx, _c: Caller| async move {
            timed(&ctx, handlers::get_decision(ctx.app.clone(), id)).await
        });
    // POST /v1/decisions/{id}/replay
    let replay = v1
        .and(warp::path!("decisions" / String / "replay"))
        .and(warp::post())
        .and(c())
        .and(role(&ctx, Role::Read))
        .and(ctx.body())
        .and_then(|id: String, ctx: Ctx, _c: Caller, b: Bytes| async move {
            timed(&ctx, handlers::replay(ctx.app.clone(), id, b)).await
        });
    // POST /v1/sources/preview
    let preview = v1
        .and(warp::path!("sources" / "preview"))
        .and(warp::post())
        .and(c())
        .and(role(&ctx, Role::Decide))
        .and(ctx.body())
        .and_then(|ctx: Ctx, _c: Caller, b: Bytes| async move {
            timed(&ctx, handlers::preview_pull(ctx.app.clone(), b)).await
        });
    // GET /v1/audit/verify
    let verify = v1
        .and(warp::path!("audit" / "verify"))
        .and(warp::get())
        .and(c())
        .and(role(&ctx, Role::Read))
        .and_then(|ctx: Ctx, _c: Caller| async move {
            timed(&ctx, handlers::verify(ctx.app.clone())).await
        });

    // PUT /v1/policies/{name}
    let put_policy = v1
        .and(warp::path!("policies" / String))
        .and(warp::put())
        .and(c())
        .and(role(&ctx, Role::Admin))
        .and(ctx.policy_body())
        .and_then(|name: String, ctx: Ctx, _c: Caller, b: Bytes| async move {
            timed_for(
                ctx.upload_timeout,
                handlers::put_policy(ctx.app.clone(), name, b),
            )
            .await
        });
    // GET /v1/policies
    let list_policies = v1
        .and(warp::path("policies"))
        .and(end())
        .and(warp::get())
        .and(c())
        .and(role(&ctx, Role::Read))
        .and_then(|ctx: Ctx, _c: Caller| async move {
            timed(&ctx, handlers::list_policies(ctx.app.clone())).await
        });
    // GET /v1/policies/{name}
    let get_policy = v1
        .and(warp::path!("policies" / String))
        .and(warp::get())
        .and(c())
        .and(role(&ctx, Role::Read))
        .and_then(|name: String, ctx: Ctx, _c: Caller| async move {
            timed(&ctx, handlers::get_policy(ctx.app.clone(), name)).await
        });
    // DELETE /v1/policies/{name}
    let delete_policy = v1
        .and(warp::path!("policies" / String))
        .and(warp::delete())
        .and(c())
        .and(role(&ctx, Role::Admin))
        .and_then(|name: String, ctx: Ctx, _c: Caller| async move {
            timed(&ctx, handlers::delete_policy(ctx.app.clone(), name)).await
        });

    // PUT /v1/bindings/{name}
    let put_binding = v1
        .and(warp::path!("bindings" / String))
        .and(warp::put())
        .and(c())
        .and(role(&ctx, Role::Admin))
        .and(ctx.body())
        .and_then(|name: String, ctx: Ctx, _c: Caller, b: Bytes| async move {
            timed(&ctx, handlers::put_binding(ctx.app.clone(), name, b)).await
        });
    // GET /v1/bindings
    let list_bindings = v1
        .and(warp::path("bindings"))
        .and(end())
        .and(warp::get())
        .and(c())
        .and(role(&ctx, Role::Read))
        .and_then(|ctx: Ctx, _c: Caller| async move {
            timed(&ctx, handlers::list_bindings(ctx.app.clone())).await
        });
    // GET /v1/bindings/{name}
    let get_binding = v1
        .and(warp::path!("bindings" / String))
        .and(warp::get())
        .and(c())
        .and(role(&ctx, Role::Read))
        .and_then(|name: String, ctx: Ctx, _c: Caller| async move {
            timed(&ctx, handlers::get_binding(ctx.app.clone(), name)).await
        });
    // DELETE /v1/bindings/{name}
    let delete_binding = v1
        .and(warp::path!("bindings" / String))
        .and(warp::delete())
        .and(c())
        .and(role(&ctx, Role::Admin))
        .and_then(|name: String, ctx: Ctx, _c: Caller| async move {
            timed(&ctx, handlers::delete_binding(ctx.app.clone(), name)).await
        });

    // POST /v1/freezes
    let create_freeze = v1
        .and(warp::path("freezes"))
        .and(end())
        .and(warp::post())
        .and(c())
        .and(role(&ctx, Role::Admin))
        .and(ctx.body())
        .and_then(|ctx: Ctx, caller: Caller, b: Bytes| async move {
            timed(&ctx, handlers::create_freeze(ctx.app.clone(), caller, b)).await
        });
    // GET /v1/freezes
    let list_freezes = v1
        .and(warp::path("freezes"))
        .and(end())
        .and(warp::get())
        .and(c())
        .and(role(&ctx, Role::Read))
        .and_then(|ctx: Ctx, _c: Caller| async move {
            timed(&ctx, handlers::list_freezes(ctx.app.clone())).await
        });
    // DELETE /v1/freezes/{id}
    let delete_freeze = v1
        .and(warp::path!("freezes" / String))
        .and(warp::delete())
        .and(c())
        .and(role(&ctx, Role::Admin))
        .and_then(|id: String, ctx: Ctx, _c: Caller| async move {
            timed(&ctx, handlers::delete_freeze(ctx.app.clone(), id)).await
        });

    // POST /v1/integrations/argo: always 200, even for a refused body
    // (Argo aborts a rollout after a few non-2xx answers; a hold pauses it).
    let argo = v1
        .and(warp::path!("integrations" / "argo"))
        .and(warp::post())
        .and(c())
        .and(role(&ctx, Role::Decide))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::stream())
        .then(
            |ctx: Ctx, _c: Caller, ctype: Option<String>, stream| async move {
                let body = match check_media_type(ctype.as_deref(), JSON) {
                    // Unread: the connection closes after the answer.
                    Err(e) => Err(e.to_string()),
                    // Under the body timeout too: a stalled body must not hold
                    // the connection (nor the rollout step) forever.
                    Ok(()) => {
                        let limit = Limit::new(ctx.max_body, "max_body_bytes");
                        collect_body_within(stream, limit, ctx.body_timeout)
                            .await
                            .map_err(|r: Rejection| {
                                r.find::<ApiError>()
                                    .map(|e| e.message.clone())
                                    .unwrap_or_else(|| "cannot read the request body".into())
                            })
                    }
                };
                integrations::argo(ctx.app.clone(), body, ctx.timeout).await
            },
        );
    // POST /v1/integrations/flagger/{gate}
    let flagger = v1
        .and(warp::path!("integrations" / "flagger" / String))
        .and(warp::post())
        .and(c())
        .and(role(&ctx, Role::Decide))
        .and(ctx.body())
        .and_then(|gate: String, ctx: Ctx, _c: Caller, b: Bytes| async move {
            timed(&ctx, integrations::flagger(ctx.app.clone(), gate, b)).await
        });

    // GET /healthz, GET /readyz (HEAD too: some load balancers probe with it)
    let get_or_head = || warp::get().or(warp::head()).unify();
    let healthz = warp::path("healthz")
        .and(end())
        .and(get_or_head())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response());
    let readyz = warp::path("readyz")
        .and(end())
        .and(get_or_head())
        .and(c())
        .map(|ctx: Ctx| handlers::readyz(&ctx.app));
    // GET /metrics: no auth, like the probes (scrapers rarely carry tokens).
    let metrics = warp::path("metrics")
        .and(end())
        .and(warp::get())
        .map(handlers::metrics);

    // Boxing each route erases warp's nested filter types: a long chain of
    // unboxed `or`s makes rustc's type checking take minutes.
    let api: Vec<BoxedFilter<(Response,)>> = vec![
        decide.boxed(),
        query.boxed(),
        get.boxed(),
        replay.boxed(),
        preview.boxed(),
        verify.boxed(),
        put_policy.boxed(),
        list_policies.boxed(),
        get_policy.boxed(),
        delete_policy.boxed(),
        put_binding.boxed(),
        list_bindings.boxed(),
        get_binding.boxed(),
        delete_binding.boxed(),
        create_freeze.boxed(),
        list_freezes.boxed(),
        delete_freeze.boxed(),
        argo.boxed(),
        flagger.boxed(),
        metrics.boxed(),
    ];
    let api = api
        .into_iter()
        .reduce(|a, b| a.or(b).unify().boxed())
        .expect("at least one route");
    // The probes answer whatever the `Host` (see `exposure`), and first:
    // they are asked most often and cheapest to answer.
    let combined = healthz
        .or(readyz)
        .unify()
        .or(exposure_guard(&ctx).and(api))
        .unify()
        .boxed();
    let recovered = combined.recover(errors::recover).unify().boxed();
    // Outside the recovery, so every answer (404s and 401s included) is
    // counted; the trace wrapper is outermost so the metrics callback runs
    // inside the request span and can record the status on it.
    recovered
        .with(warp::log::custom(|info: warp::log::Info<'_>| {
            observe::answered(info.method(), info.path(), info.status(), info.elapsed())
        }))
        .with(warp::trace(|info: warp::trace::Info<'_>| {
            observe::request_span(info.method(), info.path(), info.request_headers())
        }))
        .map(Reply::into_response)
        .boxed()
}

/// Serve the API on an already-bound listener until `shutdown` resolves,
/// then finish in-flight requests within the shutdown deadline (see
/// [`listener`]); says what had to be cut.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Ctx,
    limits: listener::Limits,
    shutdown: impl Future<Output = ()>,
) -> listener::ShutdownReport {
    listener::serve(listener, routes(ctx), limits, shutdown).await
}
