//! The HTTP decision API (routes and statuses are listed in the README's
//! "HTTP API" table). Warp types stay inside this module.
//!
//! - this file: [`routes`], which joins the routes, and [`serve`].
//! - [`filters`]: one filter per route, each naming its route template
//!   once; what it reads from the request and which handler it calls.
//! - [`listener`]: the accept loop: connection cap, header and idle
//!   timeouts, graceful shutdown with a deadline.
//! - [`handlers`]: plain async functions, one per route, calling the
//!   service ([`App`], the only door to the engine and the store).
//! - [`integrations`]: the Argo Rollouts and Flagger front doors.
//! - [`console`]: the audit console's HTML pages at `/ui/`.
//! - [`auth`]: bearer tokens with roles.
//! - [`errors`]: the one mapping from errors and rejections to JSON bodies.
//! - [`exposure`]: without tokens, only loopback `Host` and `Origin`.
//! - [`observe`]: the per-request span and HTTP metrics, labelled by the
//!   template of the route that matched.
//!
//! Statuses and bodies are tested in-process with `warp::test` (the
//! `tests` module below); signals, durability, the CLI and real services
//! are tested against the real binary (the `tests/` crate).

pub mod auth;
pub mod console;
pub mod errors;
pub mod exposure;
pub mod filters;
pub mod handlers;
pub mod integrations;
pub mod listener;
pub mod observe;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::config::Config;
use crate::service::App;
use auth::Auth;

/// Shared state every route needs.
#[derive(Clone)]
pub struct Ctx {
    pub app: App,
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
    pub fn new(app: App, config: &Config) -> Ctx {
        Ctx {
            app,
            auth: Arc::new(Auth::new(&config.tokens, &config.client_certs)),
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
}

/// The names of the connection's verified client certificate, put in each
/// request's extensions by the listener (HTTPS with `tls_client_ca` only).
#[derive(Debug, Clone)]
pub struct Peer(pub Arc<crate::tls::PeerNames>);

/// Every route, with the error recovery applied.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    use filters as f;
    // Boxing each route erases warp's nested filter types: a long chain of
    // unboxed `or`s makes rustc's type checking take minutes.
    let api = [
        f::decide(&ctx),
        f::query(&ctx),
        f::get_decision(&ctx),
        f::replay(&ctx),
        f::preview(&ctx),
        f::verify(&ctx),
        f::checkpoint(&ctx),
        f::checkpoint_key(&ctx),
        f::put_policy(&ctx),
        f::list_policies(&ctx),
        f::get_policy(&ctx),
        f::delete_policy(&ctx),
        f::put_binding(&ctx),
        f::list_bindings(&ctx),
        f::get_binding(&ctx),
        f::delete_binding(&ctx),
        f::create_freeze(&ctx),
        f::list_freezes(&ctx),
        f::delete_freeze(&ctx),
        f::argo(&ctx),
        f::flagger(&ctx),
        f::metrics(),
        f::console_root(),
        f::console_list(&ctx),
        f::console_decision(&ctx),
        f::console_replay(&ctx),
        f::console_chain(&ctx),
        f::console_static(),
    ]
    .into_iter()
    .reduce(|a, b| a.or(b).unify().boxed())
    .expect("at least one route");
    // The probes answer whatever the `Host` (see `exposure`), and first:
    // they are asked most often and cheapest to answer.
    f::healthz()
        .or(f::readyz(&ctx))
        .unify()
        .or(f::exposure_guard(&ctx).and(api))
        .unify()
        .recover(errors::recover)
        .unify()
        .map(Reply::into_response)
        .boxed()
}

/// Serve the API (over TLS when `tls` is given) on an already-bound
/// listener until `shutdown` resolves, then finish in-flight requests within
/// the shutdown deadline (see [`listener`]); says what had to be cut.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Ctx,
    limits: listener::Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> listener::ShutdownReport {
    listener::serve(listener, routes(ctx), limits, tls, shutdown).await
}
