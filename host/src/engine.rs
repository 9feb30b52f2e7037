//! The decision engine: the registry of compiled policies, the active
//! bindings and freezes, and the evaluation of one request against them.
//!
//! wasmtime stays inside this module (`engine/sandbox.rs`, `engine/wit.rs`).
//! The active set is an immutable snapshot behind an `Arc`: a decision takes
//! the current snapshot and keeps it for its whole evaluation, and changes
//! (uploads, bindings, freezes) build a new snapshot and swap it in, so hot
//! reload never blocks or tears a decision in flight.

pub mod cache;
pub mod combine;
pub mod contract;
pub mod sandbox;
mod slots;
mod snapshot;
pub mod wasi;
mod wit;
mod worker;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use jiff::Timestamp;

pub use cache::{ArtifactCache, CacheKey};
pub use sandbox::{
    default_concurrency, digest_of, CompiledPolicy, Compiler, HostError, Runtime, RuntimeCore,
    RuntimeOptions, SandboxError, SnapshotError,
};
pub use worker::{main as compile_worker_main, WorkerLimits, SUBCOMMAND as COMPILE_WORKER};

use crate::domain::{
    Binding, DecisionRequest, Evaluation, Freeze, Limits, PolicyMeta, PolicyResult, Reason,
};
use crate::telemetry;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "invalid name `{0}`: use 1 to 64 characters from a-z, 0-9, `-`, `_` and `.`, \
         starting with a letter or digit"
    )]
    InvalidName(String),
    // The cause is part of the message (not a `source`), so error chains
    // printed with `{:#}` do not repeat it.
    #[error("policy `{name}` rejected: {cause}")]
    Rejected { name: String, cause: SandboxError },
    #[error("unknown policy `{0}`")]
    UnknownPolicy(String),
    #[error("unknown binding `{0}`")]
    UnknownBinding(String),
    #[error("unknown freeze `{0}`")]
    UnknownFreeze(String),
    /// A `name@digest` reference whose digest was never uploaded as `name`:
    /// running it would run another policy under this one's name.
    #[error("`{reference}` is not a version of policy `{name}`: {owners}")]
    PinMismatch {
        reference: String,
        name: String,
        owners: String,
    },
    #[error("policy `{name}` is used by binding(s) {bindings}: delete or re-point them first")]
    PolicyInUse { name: String, bindings: String },
    #[error("binding `{binding}`: settings rejected by policy `{policy}`: {message}")]
    InvalidSettings {
        binding: String,
        policy: String,
        message: String,
    },
    #[error("binding `{0}`: {1}")]
    InvalidBinding(String, String),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The host could not run a policy (overloaded, pool exhausted): never
    /// the policy's fault, so it aborts the decision instead of voting.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// A binding with its policy resolved and settings serialized once.
#[derive(Debug, Clone)]
pub struct ActiveBinding {
    pub name: String,
    pub binding: Binding,
    pub policy: Arc<CompiledPolicy>,
    settings_json: String,
}

impl ActiveBinding {
    /// A binding outside any active set (e.g. `verdict policy test`).
    pub fn new(name: &str, binding: Binding, policy: Arc<CompiledPolicy>) -> ActiveBinding {
        ActiveBinding {
            name: name.to_string(),
            settings_json: binding.settings.to_string(),
            binding,
            policy,
        }
    }
}

/// Which manual freezes an evaluation applies.
#[derive(Debug, Clone, Copy)]
pub enum Freezes<'a> {
    /// The active set's freezes in force now: a live decision.
    Active,
    /// None: a replay against current or named policies answers "what would
    /// the policies say", not "may I deploy".
    Ignore,
    /// The freezes a stored decision recorded (its `freezes` ids) and its
    /// recorded reasons, which name them: a replay as recorded. A freeze is
    /// part of a decision's evidence, so it is reproduced from the record,
    /// whatever the freeze table holds today.
    Recorded {
        ids: &'a [String],
        reasons: &'a [Reason],
    },
}

/// Everything a decision needs, frozen at one instant.
#[derive(Debug, Clone, Default)]
pub struct ActiveSet {
    /// Every loaded component by digest (current and pinned versions).
    by_digest: HashMap<String, Arc<CompiledPolicy>>,
    /// Registry name → metadata of its current version.
    policies: BTreeMap<String, PolicyMeta>,
    bindings: BTreeMap<String, ActiveBinding>,
    freezes: BTreeMap<String, Freeze>,
    /// Digest → every registry name it was uploaded as (current or past
    /// versions): what a `name@digest` pin may refer to.
    versions: HashMap<String, BTreeSet<String>>,
}

impl ActiveSet {
    pub fn policies(&self) -> impl Iterator<Item = &PolicyMeta> {
        self.policies.values()
    }

    pub fn policy(&self, name: &str) -> Option<&PolicyMeta> {
        self.policies.get(name)
    }

    pub fn bindings(&self) -> impl Iterator<Item = (&str, &Binding)> {
        self.bindings.iter().map(|(n, b)| (n.as_str(), &b.binding))
    }

    pub fn freezes(&self) -> impl Iterator<Item = &Freeze> {
        self.freezes.values()
    }

    pub fn compiled(&self, digest: &str) -> Option<&Arc<CompiledPolicy>> {
        self.by_digest.get(digest)
    }

    /// Resolve `name` or `name@sha256:<hex>` to a loaded component. A pinned
    /// reference must pin a version uploaded under that very name.
    pub fn resolve(&self, reference: &str) -> Result<Arc<CompiledPolicy>, EngineError> {
        let unknown = || EngineError::UnknownPolicy(reference.to_string());
        let digest = match reference.split_once('@') {
            Some((name, digest)) => {
                self.by_digest.get(digest).ok_or_else(unknown)?;
                let owners = self.versions.get(digest);
                if !owners.is_some_and(|o| o.contains(name)) {
                    let owners = match owners {
                        Some(o) if !o.is_empty() => format!(
                            "that digest was uploaded as {}",
                            o.iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        _ => "that digest was never uploaded under a policy name".to_string(),
                    };
                    return Err(EngineError::PinMismatch {
                        reference: reference.to_string(),
                        name: name.to_string(),
                        owners,
                    });
                }
                digest.to_string()
            }
            None => self
                .policies
                .get(reference)
                .ok_or_else(unknown)?
                .digest
                .clone(),
        };
        self.by_digest.get(&digest).cloned().ok_or_else(unknown)
    }
}

/// The engine: sandbox runtime plus the current active set.
pub struct Engine {
    runtime: Runtime,
    /// Shared with the runtime, which caches compiled snapshots in it too.
    cache: Option<Arc<ArtifactCache>>,
    active: RwLock<Arc<ActiveSet>>,
    /// Serializes writers so two concurrent changes cannot lose one another;
    /// readers never take it.
    write: Mutex<()>,
}

/// Registry and binding names: also used in URLs and on-disk keys.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

impl Engine {
    pub fn new(cache: Option<ArtifactCache>) -> Result<Engine, EngineError> {
        Engine::with_options(cache, RuntimeOptions::default())
    }

    pub fn with_options(
        cache: Option<ArtifactCache>,
        options: RuntimeOptions,
    ) -> Result<Engine, EngineError> {
        let runtime = Runtime::with_options(options)?;
        let cache = cache.map(Arc::new);
        if let Some(cache) = &cache {
            runtime.cache_snapshots_in(cache.clone());
        }
        Ok(Engine {
            runtime,
            cache,
            active: RwLock::new(Arc::new(ActiveSet::default())),
            write: Mutex::new(()),
        })
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The current active set; hold on to it for a consistent view.
    pub fn snapshot(&self) -> Arc<ActiveSet> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update<R>(
        &self,
        change: impl FnOnce(&mut ActiveSet) -> Result<R, EngineError>,
    ) -> Result<R, EngineError> {
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (*self.snapshot()).clone();
        let out = change(&mut next)?;
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok(out)
    }

    /// Validate and compile a component without registering it.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<CompiledPolicy, EngineError> {
        self.runtime
            .load(bytes, self.cache.as_deref())
            .map_err(|cause| match cause {
                // The host failed, not the component: not a rejection.
                SandboxError::Host(e) => EngineError::Host(e),
                cause => EngineError::Rejected {
                    name: name.to_string(),
                    cause,
                },
            })
    }

    /// Register `bytes` as the current version of policy `name`. A component
    /// that fails validation is rejected and the previous version stays.
    pub fn add_policy(
        &self,
        name: &str,
        bytes: &[u8],
        uploaded_at: Timestamp,
    ) -> Result<PolicyMeta, EngineError> {
        if !valid_name(name) {
            return Err(EngineError::InvalidName(name.to_string()));
        }
        let compiled = Arc::new(self.compile(name, bytes)?);
        self.check_upgrade(name, &compiled)?;
        self.register(name, compiled, uploaded_at)
    }

    /// A new version of `name` must accept the settings of every binding
    /// that follows the name; otherwise the upload would silently turn those
    /// bindings into errors. Pinned bindings are unaffected.
    pub fn check_upgrade(&self, name: &str, compiled: &CompiledPolicy) -> Result<(), EngineError> {
        let set = self.snapshot();
        for b in set.bindings.values().filter(|b| b.binding.policy == name) {
            self.runtime
                .validate_settings(compiled, &b.settings_json, &b.binding.limits)?
                .map_err(|message| EngineError::InvalidSettings {
                    binding: b.name.clone(),
                    policy: format!("{name}@{}", compiled.digest),
                    message: format!(
                        "the new version refuses this binding's settings ({message}); \
                         update or pin the binding first"
                    ),
                })?;
        }
        Ok(())
    }

    /// Make an already compiled component the current version of `name`.
    pub fn register(
        &self,
        name: &str,
        compiled: Arc<CompiledPolicy>,
        uploaded_at: Timestamp,
    ) -> Result<PolicyMeta, EngineError> {
        if !valid_name(name) {
            return Err(EngineError::InvalidName(name.to_string()));
        }
        let meta = compiled.meta(name, uploaded_at);
        self.update(|set| {
            set.by_digest
                .insert(compiled.digest.clone(), compiled.clone());
            set.versions
                .entry(compiled.digest.clone())
                .or_default()
                .insert(name.to_string());
            set.policies.insert(name.to_string(), meta.clone());
            // Bindings that follow this name pick up the new version now.
            for b in set.bindings.values_mut() {
                if b.binding.policy == name {
                    b.policy = compiled.clone();
                }
            }
            Ok(meta.clone())
        })
    }

    /// Load a component only by digest (a version a stored decision or a
    /// pinned binding needs), without making it any name's current version.
    pub fn add_version(&self, bytes: &[u8]) -> Result<Arc<CompiledPolicy>, EngineError> {
        let compiled = Arc::new(self.compile("(stored version)", bytes)?);
        self.update(|set| {
            let entry = set
                .by_digest
                .entry(compiled.digest.clone())
                .or_insert_with(|| compiled.clone());
            Ok(entry.clone())
        })
    }

    /// Record that `digest` was once uploaded as `name` (restored from the
    /// store at start), so pins to superseded versions keep resolving.
    pub fn note_version(&self, name: &str, digest: &str) {
        let _ = self.update(|set| {
            set.versions
                .entry(digest.to_string())
                .or_default()
                .insert(name.to_string());
            Ok(())
        });
    }

    pub fn remove_policy(&self, name: &str) -> Result<PolicyMeta, EngineError> {
        self.update(|set| {
            removable(set, name)?;
            set.policies
                .remove(name)
                .ok_or_else(|| EngineError::UnknownPolicy(name.to_string()))
        })
    }

    /// What [`Engine::remove_policy`] would refuse, without removing: the
    /// service checks, persists the delete, then activates it.
    pub fn check_remove_policy(&self, name: &str) -> Result<(), EngineError> {
        let set = self.snapshot();
        removable(&set, name)?;
        match set.policies.contains_key(name) {
            true => Ok(()),
            false => Err(EngineError::UnknownPolicy(name.to_string())),
        }
    }

    /// Validate a binding without activating it: policy resolves, limits in
    /// range, settings accepted by the policy's own `validate-settings`.
    pub fn check_binding(&self, name: &str, binding: &Binding) -> Result<(), EngineError> {
        if !valid_name(name) {
            return Err(EngineError::InvalidName(name.to_string()));
        }
        let invalid = |msg: String| EngineError::InvalidBinding(name.to_string(), msg);
        check_limits(&binding.limits).map_err(invalid)?;
        if !binding.settings.is_object() {
            return Err(invalid("`settings` must be a JSON object".into()));
        }
        let policy = self.snapshot().resolve(&binding.policy)?;
        self.runtime
            .validate_settings(&policy, &binding.settings.to_string(), &binding.limits)?
            .map_err(|message| EngineError::InvalidSettings {
                binding: name.to_string(),
                policy: binding.policy.clone(),
                message,
            })
    }

    /// Validate a binding (see [`Engine::check_binding`]) and make it active.
    pub fn put_binding(&self, name: &str, binding: Binding) -> Result<(), EngineError> {
        self.check_binding(name, &binding)?;
        self.activate_binding(name, binding)
    }

    /// Activates a binding [`Engine::check_binding`] already accepted,
    /// without running the policy's settings check a second time.
    pub fn activate_binding(&self, name: &str, binding: Binding) -> Result<(), EngineError> {
        self.update(|set| {
            // Re-resolve under the writer lock: the policy may have changed
            // since validation; if it vanished the binding is refused.
            let policy = set.resolve(&binding.policy)?;
            set.bindings
                .insert(name.to_string(), ActiveBinding::new(name, binding, policy));
            Ok(())
        })
    }

    pub fn remove_binding(&self, name: &str) -> Result<Binding, EngineError> {
        self.update(|set| {
            set.bindings
                .remove(name)
                .map(|b| b.binding)
                .ok_or_else(|| EngineError::UnknownBinding(name.to_string()))
        })
    }

    pub fn put_freeze(&self, freeze: Freeze) -> Result<(), EngineError> {
        self.update(|set| {
            set.freezes.insert(freeze.id.clone(), freeze);
            Ok(())
        })
    }

    pub fn remove_freeze(&self, id: &str) -> Result<Freeze, EngineError> {
        self.update(|set| {
            set.freezes
                .remove(id)
                .ok_or_else(|| EngineError::UnknownFreeze(id.to_string()))
        })
    }

    /// Build, now, the pre-initialised snapshot of every active binding
    /// whose component supports one (see `engine/snapshot.rs`), so that
    /// every evaluation from here on starts from a snapshot: for benchmarks
    /// and tests (a server builds them in the background as bindings are
    /// used). Each binding's name with whether it got one.
    pub fn prepare_snapshots(&self) -> Vec<(String, Result<bool, SnapshotError>)> {
        let set = self.snapshot();
        set.bindings
            .values()
            .map(|b| {
                let prepared = self
                    .runtime
                    .prepare(&b.policy, &b.settings_json, &b.binding.limits);
                (b.name.clone(), prepared)
            })
            .collect()
    }

    /// Decide `req` against the current active set. Blocking (runs Wasm):
    /// call it from a blocking thread, never on the async reactor.
    pub fn evaluate(&self, req: DecisionRequest, now: Timestamp) -> Result<Evaluation, HostError> {
        self.evaluate_until(req, now, self.runtime.default_deadline())
    }

    /// [`Engine::evaluate`] for a caller that must be answered by
    /// `deadline`: a policy that cannot get a slot in time for its own
    /// deadline to end by then fails the decision as overloaded.
    pub fn evaluate_until(
        &self,
        req: DecisionRequest,
        now: Timestamp,
        deadline: Instant,
    ) -> Result<Evaluation, HostError> {
        let set = self.snapshot();
        let bindings = Self::matching(&set, &req);
        self.evaluate_under(&set, &bindings, req, now, Freezes::Active, deadline)
    }

    /// Evaluate `req` against the given bindings. `apply_freezes` is false for
    /// replay, which answers "what would the policies say", not "may I deploy".
    pub fn evaluate_with(
        &self,
        set: &ActiveSet,
        bindings: &[&ActiveBinding],
        req: DecisionRequest,
        now: Timestamp,
        apply_freezes: bool,
    ) -> Result<Evaluation, HostError> {
        let freezes = if apply_freezes {
            Freezes::Active
        } else {
            Freezes::Ignore
        };
        let deadline = self.runtime.default_deadline();
        self.evaluate_under(set, bindings, req, now, freezes, deadline)
    }

    /// Evaluate `req` against the given bindings, under the given freezes,
    /// for a caller that must be answered by `deadline`. A host failure
    /// (see [`HostError`]) aborts the whole evaluation: a decision made
    /// without one of its policies would be a different decision.
    pub fn evaluate_under(
        &self,
        set: &ActiveSet,
        bindings: &[&ActiveBinding],
        req: DecisionRequest,
        now: Timestamp,
        freezes: Freezes<'_>,
        deadline: Instant,
    ) -> Result<Evaluation, HostError> {
        let never = AtomicBool::new(false);
        let evaluation =
            self.evaluate_unless(set, bindings, req, now, freezes, deadline, &never)?;
        Ok(evaluation.expect("an evaluation that cannot be cancelled completes"))
    }

    /// [`Engine::evaluate_under`], checking `cancelled` before each policy:
    /// `Ok(None)` once it is set (the caller is gone; nothing is combined).
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate_unless(
        &self,
        set: &ActiveSet,
        bindings: &[&ActiveBinding],
        mut req: DecisionRequest,
        now: Timestamp,
        freezes: Freezes<'_>,
        deadline: Instant,
        cancelled: &AtomicBool,
    ) -> Result<Option<Evaluation>, HostError> {
        let at = *req.time.get_or_insert(now);
        // Manual freezes are operator actions in real time: the server's
        // clock decides whether one is active, not the request's `time`.
        let active: Vec<&Freeze> = match freezes {
            Freezes::Active => set
                .freezes
                .values()
                .filter(|f| f.applies(&req.deployment, now))
                .collect(),
            Freezes::Ignore | Freezes::Recorded { .. } => Vec::new(),
        };
        let mut input = wit::input(&req, at.as_millisecond(), String::new());
        let mut policies = Vec::with_capacity(bindings.len());
        // One slot for the whole decision, moved from policy to policy.
        let mut lease = self.runtime.lease();
        for b in bindings {
            if cancelled.load(Ordering::Relaxed) {
                return Ok(None);
            }
            input.settings.clone_from(&b.settings_json);
            let info = &b.policy.info;
            let span = telemetry::policy_span(
                &b.name,
                &info.name,
                &info.version,
                &b.policy.digest,
                b.binding.mode,
            );
            let result = span.in_scope(|| self.run_binding(&mut lease, b, &input, deadline))?;
            telemetry::policy_evaluated(&span, &result);
            policies.push(result);
        }
        let (mut verdict, mut reasons, freeze_ids) = match freezes {
            Freezes::Recorded { ids, reasons } if !ids.is_empty() => {
                let (verdict, reasons) = combine::recorded_freeze(ids, reasons);
                (verdict, reasons, ids.to_vec())
            }
            _ => {
                let (verdict, reasons) = combine::combine(&policies, &active);
                (
                    verdict,
                    reasons,
                    active.iter().map(|f| f.id.clone()).collect(),
                )
            }
        };
        combine::missing_evidence(&req.metrics, &mut verdict, &mut reasons);
        Ok(Some(Evaluation {
            verdict,
            reasons,
            policies,
            request: req,
            freezes: freeze_ids,
        }))
    }

    fn run_binding(
        &self,
        lease: &mut sandbox::Lease<'_>,
        b: &ActiveBinding,
        input: &wit::t::Input,
        deadline: Instant,
    ) -> Result<PolicyResult, HostError> {
        let run = self
            .runtime
            .evaluate(lease, &b.policy, input, &b.binding.limits, deadline)?;
        let mut result = PolicyResult {
            binding: b.name.clone(),
            name: b.policy.info.name.clone(),
            version: b.policy.info.version.clone(),
            digest: b.policy.digest.clone(),
            mode: b.binding.mode,
            verdict: None,
            abstained: None,
            reasons: Vec::new(),
            error: None,
            duration_us: run.duration.as_micros() as u64,
            fuel_used: run.fuel_used,
            limits: b.binding.limits,
            settings: b.binding.settings.clone(),
            log: run.log,
        };
        match run.result {
            Ok(wit::t::Outcome::Vote(d)) => {
                result.verdict = Some(wit::verdict(d.verdict));
                result.reasons = d
                    .reasons
                    .into_iter()
                    .map(|r| wit::reason(&b.name, r))
                    .collect();
            }
            Ok(wit::t::Outcome::Abstain(why)) => result.abstained = Some(why),
            Err(failure) => {
                tracing::warn!(
                    binding = %b.name,
                    policy = %b.policy.info.name,
                    digest = %b.policy.digest,
                    kind = failure.kind.as_str(),
                    "policy failed: {}",
                    failure.message
                );
                result.verdict = Some(b.binding.on_error.verdict());
                result.error = Some(failure);
            }
        }
        Ok(result)
    }

    /// Bindings of the current set that apply to `req`'s deployment.
    pub fn matching<'a>(set: &'a ActiveSet, req: &DecisionRequest) -> Vec<&'a ActiveBinding> {
        set.bindings
            .values()
            .filter(|b| b.binding.selector.matches(&req.deployment))
            .collect()
    }
}

fn check_limits(l: &Limits) -> Result<(), String> {
    if l.fuel == 0 {
        return Err("`limits.fuel` must be greater than 0".into());
    }
    if l.timeout_ms == 0 || l.timeout_ms > Limits::MAX_TIMEOUT_MS {
        return Err(format!(
            "`limits.timeout_ms` must be between 1 and {}",
            Limits::MAX_TIMEOUT_MS
        ));
    }
    if l.memory_bytes < 1 << 16 || l.memory_bytes > Limits::MAX_MEMORY_BYTES {
        return Err(format!(
            "`limits.memory_bytes` must be between 65536 and {}",
            Limits::MAX_MEMORY_BYTES
        ));
    }
    if l.max_reasons == 0 || l.max_reason_bytes == 0 {
        return Err("`limits.max_reasons` and `limits.max_reason_bytes` must be positive".into());
    }
    Ok(())
}

/// A policy can be removed only while no binding uses it (by name or pin).
fn removable(set: &ActiveSet, name: &str) -> Result<(), EngineError> {
    let users: Vec<String> = set
        .bindings
        .iter()
        .filter(|(_, b)| {
            b.binding.policy == name || b.binding.policy.starts_with(&format!("{name}@"))
        })
        .map(|(n, _)| format!("`{n}`"))
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    Err(EngineError::PolicyInUse {
        name: name.to_string(),
        bindings: users.join(", "),
    })
}
