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
//! - [`cli`]: the `verdict` command line (policy build/test, …).

pub mod cli;
pub mod domain;
pub mod engine;
