//! # Verdict
//!
//! A deployment policy engine: deploy tools ask "promote, hold, rollback or
//! freeze?", Verdict runs the platform team's sandboxed WebAssembly policies
//! over the rollout's metrics and change context, stores the decision in a
//! tamper-evident log and explains it.
//!
//! # Layout
//! - [`domain`]: the types the API accepts and the store keeps (requests,
//!   decisions, bindings, freezes). Everything else speaks these.
//! - [`engine`]: the policy registry, the wasmtime sandbox (the only module
//!   that touches wasmtime), binding resolution and verdict combination.
//! - [`builtin`]: the five example policies embedded in the binary and their
//!   default bindings, so `verdict serve` works with zero configuration.
//! - [`config`]: server settings (defaults, TOML file, `VERDICT_*` env).
//! - [`service`]: engine + store together: decide-then-store, persist-then-activate.
//! - [`source`]: metric sources (Prometheus): pulls the samples Argo and
//!   Flagger cannot send, recorded in the decision's input.
//! - [`store`]: the audit store: hash-chained decisions, group commit,
//!   registry persistence; embedded sled by default, PostgreSQL for several
//!   replicas (the only module that touches sled or PostgreSQL).
//! - [`http`]: the warp HTTP API and its accept loop (the only module that
//!   touches warp and hyper).
//! - [`telemetry`]: OpenTelemetry traces and metrics, OTLP export, the
//!   Prometheus text for `/metrics`, log setup (the only module that
//!   touches the OpenTelemetry SDK).
//! - [`tls`]: rustls for the HTTPS server (reloaded certificates, client
//!   certificates) and for the HTTPS clients (trusted roots, clear errors).
//! - [`cli`]: the `verdict` command line (serve, decide, audit, replay, policy …).

pub mod builtin;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod http;
pub mod service;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod tls;
