//! The decision service: the engine and the store working together. Every
//! front door (HTTP API, integrations, in-process tests) goes through here,
//! so the rules "stored before acknowledged", "persisted before activated"
//! and "a bad policy never replaces a good one" live in one place.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::builtin;
use crate::checkpoint::CheckpointSigner;
use crate::config::Config;
use crate::domain::{
    check_scope_name, shown, Binding, Decision, DecisionRequest, Evaluation, Freeze, InvalidName,
    PolicyMeta, PolicyResult, Selector, Verdict, EARLIEST_TIME, LATEST_TIME, MAX_METRICS,
    MAX_SAMPLES_PER_SERIES,
};
use crate::engine::{
    default_concurrency, digest_of, ActiveBinding, ArtifactCache, CacheKey, Compiler, Engine,
    EngineError, Freezes, RuntimeOptions,
};
use crate::source::Sources;
use crate::store::{
    Appended, BuiltinInstall, Page, Query, Receipt, Store, StoreError, VerifyReport,
};
use crate::telemetry;
use tracing::Instrument;

/// Most policy references one replay may name (after which it is refused,
/// not truncated); repeated references run once.
pub const MAX_REPLAY_POLICIES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// A live decision's `time` too far from the server's clock.
    #[error(
        "`time` `{time}` is {} ms away from the server clock ({now}): a live decision is made \
         at the server's clock, and a `time` sent with it may be at most {} ms away \
         (`max_clock_skew_ms`); `time` is for replay, `/v1/sources/preview` and policy \
         fixtures, so leave it out",
        .off.as_millis(),
        .max.as_millis()
    )]
    ClockSkew {
        time: Timestamp,
        now: Timestamp,
        off: SignedDuration,
        max: SignedDuration,
    },
    #[error(
        "invalid request: `time` `{0}` is out of range: give an instant from \
         1970-01-01T00:00:00Z up to 9999-01-01T00:00:00Z"
    )]
    TimeOutOfRange(Timestamp),
    #[error(
        "invalid request: metric `{}` carries `pulled`, which only the server writes (on metrics \
         it pulls from a metric source); send the samples without it",
        shown(.0)
    )]
    PulledOnInput(String),
    #[error(
        "invalid request: {given} policy references; a replay names at most {max} \
         (repeated references run once)"
    )]
    TooManyReplayPolicies { given: usize, max: usize },
    /// The caller went away (or its request timed out) before the work ended.
    #[error("the request was cancelled")]
    Cancelled,
    #[error("unknown decision `{0}`")]
    UnknownDecision(String),
    /// The server's own configuration is wrong (found when the service
    /// opens: a metric source that cannot be set up).
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The configured store cannot be opened (an unreachable database, its
    /// credentials, its privileges): the message says what to fix.
    #[error("cannot open the store: {0}")]
    StoreOpen(StoreError),
}

/// What [`App::decide`] answers.
#[derive(Debug)]
pub struct Decided {
    pub decision: Decision,
    /// Stored by this call; false when its idempotency key named an
    /// earlier decision, which is what came back.
    pub new: bool,
    /// The decision's JSON when the store had it at hand (a new record:
    /// the stored bytes), so the reply is not serialised a second time.
    pub json: Option<Vec<u8>>,
}

/// Where a replay takes its policies from.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Policy references (`name` or `name@sha256:…`) to run with default
    /// settings instead of the current bindings.
    #[serde(default)]
    pub policies: Option<Vec<String>>,
    /// Re-run exactly the digests, settings and manual freezes the decision
    /// recorded: proves the stored decision is reproducible.
    #[serde(default)]
    pub as_recorded: bool,
}

/// A replay's answer: what was decided, what would be decided now, and
/// which policies changed their minds.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub decision_id: String,
    pub original_verdict: Verdict,
    pub replayed_verdict: Verdict,
    pub changed: bool,
    pub replayed: Evaluation,
    pub diff: Vec<PolicyDiff>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyDiff {
    pub binding: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// The one door to the decision service, for the HTTP handlers and the
/// CLI. Cheap to clone. Every method that reads or writes the store, or
/// runs Wasm, does that work on the blocking pool itself, so a caller on
/// the async reactor never blocks it and never decides where the work runs.
/// The engine and the store stay behind it.
#[derive(Clone)]
pub struct App {
    core: Arc<Core>,
}

/// The counts `/readyz` and the start-up line report.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub ready: bool,
    pub policies: usize,
    pub bindings: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_failure: Option<String>,
}

/// What [`App`] runs its work on: the synchronous rules, called on the
/// blocking pool.
struct Core {
    engine: Arc<Engine>,
    store: Store,
    /// Metric sources and queries: what to pull before evaluating.
    sources: Arc<Sources>,
    ready: AtomicBool,
    freeze_counter: AtomicU64,
    /// Held across every admin write's check → persist → activate, so no
    /// other admin write changes the active set between the check and the
    /// activation (decisions never take it).
    admin: std::sync::Mutex<()>,
    /// How far a live decision's `time` may be from the server's clock.
    max_clock_skew: SignedDuration,
    /// The request timeout: how long a decision may wait for evaluation
    /// slots before it is refused as overloaded.
    request_timeout: Duration,
    /// Signs checkpoints of the chain (see [`crate::checkpoint`]).
    signer: CheckpointSigner,
    checkpoint_every: u64,
    checkpoint_interval: Duration,
    /// The head seq the last checkpoint signed, and when.
    last_checkpoint: std::sync::Mutex<(u64, Instant)>,
}

impl Core {
    /// Open the store under `config.data_dir`, restore the registry,
    /// bindings and freezes it holds, and install the built-ins on first start.
    /// Components are compiled in this process, without limits: for
    /// [`App::open_with`].
    fn open_with(config: &Config, compiler: Compiler) -> Result<Core, ServiceError> {
        // Built once, here, and first: a source's set-up (its token file,
        // its client) is read and checked once per start, before the data
        // dir is touched.
        let sources = Sources::new(&config.metric_sources, &config.metric_queries)
            .map_err(ServiceError::Config)?;
        let signer =
            CheckpointSigner::load_or_create(&config.checkpoint_key_path(), &config.audit_origin)
                .map_err(|e| ServiceError::Config(e.to_string()))?;
        let store = match &config.store {
            None => Store::open_with(
                &config.data_dir.join("store"),
                crate::store::Options {
                    flush_each_batch: config.flush,
                },
            )?,
            Some(url) => Store::connect(url).map_err(ServiceError::StoreOpen)?,
        };
        // The key stays beside the store, outside the cache directory:
        // whoever can write cache files still cannot forge an entry.
        let key = CacheKey::load_or_create(&config.data_dir.join("artifact.key"))
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let cache = ArtifactCache::open(&config.data_dir.join("cache"), key)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let request_timeout = Duration::from_millis(config.request_timeout_ms);
        let options = RuntimeOptions {
            max_concurrent: config
                .max_concurrent_evaluations
                .unwrap_or_else(default_concurrency),
            queue_timeout: request_timeout,
            compiler,
            // A server evaluates its bindings over and over: start each
            // from a pre-initialised snapshot once it is in use.
            snapshots: true,
        };
        let engine = Arc::new(Engine::with_options(Some(cache), options)?);
        let app = Core {
            engine,
            store,
            sources: Arc::new(sources),
            ready: AtomicBool::new(false),
            freeze_counter: AtomicU64::new(0),
            admin: std::sync::Mutex::new(()),
            max_clock_skew: SignedDuration::from_millis(
                i64::try_from(config.max_clock_skew_ms).unwrap_or(i64::MAX),
            ),
            request_timeout,
            signer,
            checkpoint_every: config.checkpoint_every,
            checkpoint_interval: Duration::from_millis(config.checkpoint_interval_ms),
            last_checkpoint: std::sync::Mutex::new((0, Instant::now())),
        };
        app.restore(config.builtin_policies)?;
        // A checkpoint of the chain as this start found it.
        app.sign_checkpoint()?;
        app.ready.store(true, Ordering::Release);
        Ok(app)
    }

    fn restore(&self, builtins: bool) -> Result<(), ServiceError> {
        if builtins && !self.store.builtins_installed()? {
            self.install_builtins()?;
        }
        let policies = self.store.policies()?;
        for meta in &policies {
            let bytes = self.store.policy_bytes(&meta.digest)?.ok_or_else(|| {
                ServiceError::Internal(format!(
                    "store lost the component of policy `{}` ({})",
                    meta.name, meta.digest
                ))
            })?;
            self.engine
                .add_policy(&meta.name, &bytes, meta.uploaded_at)?;
        }
        for (name, digest) in self.store.policy_versions()? {
            self.engine.note_version(&name, &digest);
        }
        for (name, binding) in self.store.bindings()? {
            warn_legacy_selector("binding", &name, &binding.selector);
            // A pinned digest may not be any name's current version.
            if let Some((_, digest)) = binding.policy.split_once('@') {
                self.load_version(digest)?;
            }
            if let Err(e) = self.engine.put_binding(&name, binding) {
                tracing::error!(binding = %name, "stored binding no longer valid: {e}");
            }
        }
        for f in self.store.freezes()? {
            warn_legacy_selector("freeze", &f.id, &f.selector);
            self.engine.put_freeze(f)?;
        }
        let reclaimed = self.store.reclaim_unreferenced()?;
        if !reclaimed.is_empty() {
            tracing::info!(
                versions = reclaimed.len(),
                "reclaimed component versions no policy, binding or decision references"
            );
        }
        Ok(())
    }

    /// Installs the built-ins that are missing, bound to everything, in one
    /// store transaction with the "installed" mark, so a crash during a
    /// first start leaves all of them or none. A registry that holds
    /// anything but unchanged built-ins (a data dir from before the mark, an
    /// operator's own policies) is only marked: what an operator removed
    /// or changed is never brought back.
    fn install_builtins(&self) -> Result<(), ServiceError> {
        let policies = self.store.policies()?;
        let bindings = self.store.bindings()?;
        let builtin_digest = |name: &str| {
            builtin::BUILTINS
                .iter()
                .find(|b| b.name == name)
                .map(|b| digest_of(b.component))
        };
        let only_builtins = policies
            .iter()
            .all(|m| builtin_digest(&m.name).as_deref() == Some(m.digest.as_str()))
            && bindings
                .iter()
                .all(|(n, b)| builtin_digest(n).is_some() && *b == builtin::default_binding(n));
        let now = Timestamp::now();
        let mut items = Vec::new();
        if only_builtins {
            for b in &builtin::BUILTINS {
                if policies.iter().any(|m| m.name == b.name)
                    && bindings.iter().any(|(n, _)| n == b.name)
                {
                    continue;
                }
                let compiled = self.engine.compile(b.name, b.component)?;
                items.push(BuiltinInstall {
                    meta: compiled.meta(b.name, now),
                    bytes: b.component,
                    binding_name: b.name.to_string(),
                    binding: builtin::default_binding(b.name),
                });
            }
        }
        let installed = self.store.install_builtins(&items)?;
        if installed && !items.is_empty() {
            tracing::info!(
                installed = items.len(),
                "first start: installed the built-in policies, bound to everything"
            );
        }
        Ok(())
    }

    /// Brings the active set in line with the store after another replica
    /// changed it: new and replaced policies first (compiled here, through
    /// this replica's artifact cache), then bindings, then what was
    /// removed, then freezes. A stored item this replica cannot activate
    /// is logged and skipped, as at start.
    fn sync_active_set(&self) -> Result<(), ServiceError> {
        let _admin = self.admin_lock();
        let set = self.engine.snapshot();
        let policies = self.store.policies()?;
        for meta in &policies {
            let current = set.policy(&meta.name).map(|m| m.digest.as_str());
            if current == Some(meta.digest.as_str()) {
                continue;
            }
            let compiled = match set.compiled(&meta.digest) {
                Some(c) => c.clone(),
                None => {
                    let bytes = self.store.policy_bytes(&meta.digest)?.ok_or_else(|| {
                        ServiceError::Internal(format!(
                            "store lost the component of policy `{}` ({})",
                            meta.name, meta.digest
                        ))
                    })?;
                    Arc::new(self.engine.compile(&meta.name, &bytes)?)
                }
            };
            self.engine
                .register(&meta.name, compiled, meta.uploaded_at)?;
            tracing::info!(policy = %meta.name, digest = %meta.digest, "loaded a policy another replica stored");
        }
        for (name, digest) in self.store.policy_versions()? {
            self.engine.note_version(&name, &digest);
        }
        let bindings = self.store.bindings()?;
        for (name, binding) in &bindings {
            if set.bindings().any(|(n, b)| n == name && b == binding) {
                continue;
            }
            if let Some((_, digest)) = binding.policy.split_once('@') {
                self.load_version(digest)?;
            }
            match self.engine.activate_binding(name, binding.clone()) {
                Ok(()) => {
                    tracing::info!(binding = %name, "applied a binding another replica stored")
                }
                Err(e) => tracing::error!(binding = %name, "stored binding cannot be applied: {e}"),
            }
        }
        for (name, _) in set.bindings() {
            if !bindings.iter().any(|(n, _)| n == name) {
                let _ = self.engine.remove_binding(name);
                tracing::info!(binding = %name, "removed a binding another replica deleted");
            }
        }
        for meta in set.policies() {
            if !policies.iter().any(|m| m.name == meta.name) {
                if let Err(e) = self.engine.remove_policy(&meta.name) {
                    tracing::error!(policy = %meta.name, "cannot remove a policy another replica deleted: {e}");
                }
            }
        }
        let freezes = self.store.freezes()?;
        for f in &freezes {
            if !set.freezes().any(|g| g == f) {
                self.engine.put_freeze(f.clone())?;
            }
        }
        for f in set.freezes() {
            if !freezes.iter().any(|g| g.id == f.id) {
                let _ = self.engine.remove_freeze(&f.id);
            }
        }
        Ok(())
    }

    /// Make sure a stored component version is loaded (for pins and replay).
    fn load_version(&self, digest: &str) -> Result<(), ServiceError> {
        if self.engine.snapshot().compiled(digest).is_some() {
            return Ok(());
        }
        let bytes = self
            .store
            .policy_bytes(digest)?
            .ok_or_else(|| EngineError::UnknownPolicy(digest.to_string()))?;
        self.engine.add_version(&bytes)?;
        Ok(())
    }

    /// A live decision's `time`, if sent, must be within the configured
    /// skew of the server's clock (it is then replaced by the clock).
    fn check_clock(&self, sent: Option<Timestamp>, now: Timestamp) -> Result<(), ServiceError> {
        let Some(time) = sent else { return Ok(()) };
        let off = now.duration_since(time).abs();
        if off > self.max_clock_skew {
            return Err(ServiceError::ClockSkew {
                time,
                now,
                off,
                max: self.max_clock_skew,
            });
        }
        Ok(())
    }

    /// Everything of a live decision up to the store's append: the earlier
    /// decision of a repeated request, or the evaluation to append.
    fn evaluate_live(
        &self,
        mut req: DecisionRequest,
        fingerprint: Option<&[u8; 32]>,
    ) -> Result<Result<Evaluation, Decision>, ServiceError> {
        if let (Some(key), Some(fp)) = (&req.idempotency_key, fingerprint) {
            // A retry of the same request gets its decision back whatever
            // time it is now; another request under the key is a conflict.
            if let Some(existing) = self.store.find_idempotent(key, fp)? {
                return Ok(Err(existing));
            }
        }
        let now = Timestamp::now();
        self.check_clock(req.time, now)?;
        // The decision time is the server's: policies, pulled ranges and
        // the record all use it.
        req.time = Some(now);
        // The request's own deadline bounds its wait for evaluation slots.
        let deadline = Instant::now() + self.request_timeout;
        self.sources.pull(&mut req);
        let eval = self
            .engine
            .evaluate_until(req, now, deadline)
            .map_err(EngineError::from)?;
        Ok(Ok(eval))
    }

    fn decision(&self, id: &str) -> Result<Decision, ServiceError> {
        self.store
            .get(id)?
            .ok_or_else(|| ServiceError::UnknownDecision(id.to_string()))
    }

    /// Re-run a stored decision's exact input; nothing is stored. Stops
    /// before its next policy once `cancelled` is set.
    fn replay(
        &self,
        id: &str,
        how: ReplayRequest,
        cancelled: &AtomicBool,
    ) -> Result<ReplayReport, ServiceError> {
        let original = self.decision(id)?;
        if how.as_recorded {
            for p in &original.policies {
                self.load_version(&p.digest)?;
            }
        }
        let set = self.engine.snapshot();
        let bindings: Vec<ActiveBinding> = if how.as_recorded {
            original
                .policies
                .iter()
                .map(|p| recorded_binding(&set, p))
                .collect::<Result<_, _>>()?
        } else if let Some(refs) = &how.policies {
            named_bindings(&set, refs)?
        } else {
            Engine::matching(&set, &original.request)
                .into_iter()
                .cloned()
                .collect()
        };
        let at = original.request.time.unwrap_or(original.decided_at);
        let refs: Vec<&ActiveBinding> = bindings.iter().collect();
        // As recorded, a manual freeze the decision was made under is part
        // of its evidence and is reproduced from the record, not from
        // today's freeze table. Otherwise no freeze applies: the replay
        // answers what the policies would say.
        let freezes = if how.as_recorded {
            Freezes::Recorded {
                ids: &original.freezes,
                reasons: &original.reasons,
            }
        } else {
            Freezes::Ignore
        };
        let deadline = Instant::now() + self.request_timeout;
        let request = original.request.clone();
        let replayed = self
            .engine
            .evaluate_unless(&set, &refs, request, at, freezes, deadline, cancelled)
            .map_err(EngineError::from)?
            .ok_or(ServiceError::Cancelled)?;
        let diff = diff(&original.policies, &replayed.policies);
        Ok(ReplayReport {
            decision_id: original.id.clone(),
            original_verdict: original.verdict,
            replayed_verdict: replayed.verdict,
            changed: original.verdict != replayed.verdict || !diff.is_empty(),
            replayed,
            diff,
        })
    }

    /// Compile and check an upload, then persist and activate it.
    fn put_policy(&self, name: &str, bytes: Vec<u8>) -> Result<PolicyMeta, ServiceError> {
        if !crate::engine::valid_name(name) {
            return Err(EngineError::InvalidName(name.to_string()).into());
        }
        tracing::info!(
            policy = name,
            bytes = bytes.len(),
            "compiling uploaded policy (seconds for a Python or JavaScript component; \
             decisions go on meanwhile)"
        );
        // Compiled outside the admin lock: it takes long, and other admin
        // writes need not wait for it.
        let compiled = Arc::new(self.engine.compile(name, &bytes)?);
        let _admin = self.admin_lock();
        self.engine.check_upgrade(name, &compiled)?;
        let now = Timestamp::now();
        // Persist before activating: an acknowledged upload survives a restart.
        self.store.put_policy(&compiled.meta(name, now), &bytes)?;
        Ok(self.engine.register(name, compiled, now)?)
    }

    /// Check, persist the delete, then deactivate: a crash in between
    /// leaves the policy deleted, never reinstated by a restart.
    fn delete_policy(&self, name: &str) -> Result<PolicyMeta, ServiceError> {
        let _admin = self.admin_lock();
        self.engine.check_remove_policy(name)?;
        self.store.delete_policy(name)?;
        Ok(self.engine.remove_policy(name)?)
    }

    fn put_binding(&self, name: &str, binding: Binding) -> Result<(), ServiceError> {
        let _admin = self.admin_lock();
        binding.selector.validate()?;
        if let Some((_, digest)) = binding.policy.split_once('@') {
            self.load_version(digest)?;
        }
        self.engine.check_binding(name, &binding)?;
        self.store.put_binding(name, &binding)?;
        Ok(self.engine.activate_binding(name, binding)?)
    }

    fn delete_binding(&self, name: &str) -> Result<Binding, ServiceError> {
        let _admin = self.admin_lock();
        if !self.engine.snapshot().bindings().any(|(n, _)| n == name) {
            return Err(EngineError::UnknownBinding(name.to_string()).into());
        }
        self.store.delete_binding(name)?;
        Ok(self.engine.remove_binding(name)?)
    }

    fn create_freeze(&self, new: NewFreeze) -> Result<Freeze, ServiceError> {
        let NewFreeze {
            selector,
            reason,
            until,
            created_by,
        } = new;
        selector.validate()?;
        let now = Timestamp::now();
        if reason.trim().is_empty() {
            return Err(ServiceError::InvalidRequest(
                "a freeze needs a `reason`".into(),
            ));
        }
        if until <= now {
            return Err(ServiceError::InvalidRequest(format!(
                "`until` ({until}) is in the past"
            )));
        }
        let n = self.freeze_counter.fetch_add(1, Ordering::Relaxed);
        let seed = format!("{}|{n}|{reason}", now.as_nanosecond());
        let id = format!(
            "frz-{}",
            &hex::encode(Sha256::digest(seed.as_bytes()))[..12]
        );
        let freeze = Freeze {
            id,
            selector,
            reason,
            until,
            created_at: now,
            created_by,
        };
        let _admin = self.admin_lock();
        self.store.put_freeze(&freeze)?;
        self.engine.put_freeze(freeze.clone())?;
        Ok(freeze)
    }

    fn delete_freeze(&self, id: &str) -> Result<Freeze, ServiceError> {
        let _admin = self.admin_lock();
        if !self.engine.snapshot().freezes().any(|f| f.id == id) {
            return Err(EngineError::UnknownFreeze(id.to_string()).into());
        }
        self.store.delete_freeze(id)?;
        Ok(self.engine.remove_freeze(id)?)
    }

    /// Sign, keep and log a checkpoint of the current head.
    fn sign_checkpoint(&self) -> Result<String, ServiceError> {
        let (seq, hash) = self.store.head();
        let note = self
            .signer
            .sign(seq, &hash)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.store.put_checkpoint(&note)?;
        *self
            .last_checkpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = (seq, Instant::now());
        // The log line is a copy kept outside the data dir by whatever
        // collects the logs: it proves the chain's state at this moment.
        tracing::info!(size = seq, checkpoint = %note, "signed audit checkpoint");
        Ok(note)
    }

    fn last_checkpoint_seq(&self) -> u64 {
        self.last_checkpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    /// Whether enough has been decided since the last checkpoint.
    fn checkpoint_due(&self) -> bool {
        let (last_seq, at) = *self
            .last_checkpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (seq, _) = self.store.head();
        let added = seq.saturating_sub(last_seq);
        added >= self.checkpoint_every || (added > 0 && at.elapsed() >= self.checkpoint_interval)
    }

    fn admin_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // Poisoning needs a panic while held; the set it guards is only
        // ever replaced whole, so carrying on is safe.
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A manual freeze to create (`POST /v1/freezes`, `created_by` from the caller's token).
#[derive(Debug, Clone)]
pub struct NewFreeze {
    pub selector: Selector,
    pub reason: String,
    pub until: Timestamp,
    pub created_by: Option<String>,
}

impl App {
    /// Open the store under `config.data_dir`, restore the registry,
    /// bindings and freezes it holds, and install the built-ins on first
    /// start. Blocking (start-up). Components are compiled in this process,
    /// without limits: for trusted callers (tests). The server uses
    /// [`App::open_with`].
    pub fn open(config: &Config) -> Result<App, ServiceError> {
        App::open_with(config, Compiler::InProcess)
    }

    /// [`App::open`], compiling components with `compiler`.
    pub fn open_with(config: &Config, compiler: Compiler) -> Result<App, ServiceError> {
        Ok(App {
            core: Arc::new(Core::open_with(config, compiler)?),
        })
    }

    /// Run `work` on the core, on the blocking pool.
    async fn on_core<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce(&Core) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let core = self.core.clone();
        blocking(what, move || work(&core)).await?
    }

    /// Ready to decide: started, and the store has not failed.
    pub fn is_ready(&self) -> bool {
        self.core.ready.load(Ordering::Acquire) && self.core.store.failure().is_none()
    }

    /// Why the store failed, if it has (readiness reports it).
    pub fn store_failure(&self) -> Option<String> {
        self.core.store.failure()
    }

    /// Resolves when the store fails: the server then shuts down so its
    /// supervisor restarts it on a reopened store.
    pub async fn store_failed(&self) -> String {
        self.core.store.failed().await
    }

    /// Readiness and the size of the active set (memory only).
    pub fn status(&self) -> Status {
        let set = self.core.engine.snapshot();
        Status {
            ready: self.is_ready(),
            policies: set.policies().count(),
            bindings: set.bindings().count(),
            store_failure: self.store_failure(),
        }
    }

    /// Decide and store: a live decision, made at the server's clock.
    /// Returns the stored decision and whether it is new (false: the
    /// earlier decision of the same request under the same idempotency key).
    /// Runs in a `decision` span, then counts and logs the decision
    /// (telemetry.rs); the work itself is `decide_untraced`.
    pub async fn decide(&self, req: DecisionRequest) -> Result<Decided, ServiceError> {
        // Before the span: only valid names reach traces, logs and metric labels.
        validate_request(&req)?;
        let span = telemetry::decision_span(&req);
        let started = std::time::Instant::now();
        let result = self.decide_untraced(req).instrument(span.clone()).await;
        telemetry::decided(
            &span,
            started,
            result.as_ref().map(|d| (&d.decision, d.new)),
        );
        result
    }

    async fn decide_untraced(&self, req: DecisionRequest) -> Result<Decided, ServiceError> {
        // The request as the caller sent it, before the server fills anything in.
        let fingerprint = req.idempotency_key.as_ref().map(|_| req.fingerprint());
        let fp = fingerprint.clone();
        let eval = match self
            .on_core("evaluation", move |core| {
                core.evaluate_live(req, fp.as_ref())
            })
            .await?
        {
            Ok(eval) => eval,
            Err(existing) => {
                return Ok(Decided {
                    decision: existing,
                    new: false,
                    json: None,
                })
            }
        };
        // The writer thread commits (group commit); nothing blocks here.
        let Receipt { appended, json } =
            self.core.store.append_for_reply(eval, fingerprint).await?;
        Ok(Decided {
            new: matches!(appended, Appended::New(_)),
            decision: appended.into_decision(),
            json,
        })
    }

    /// What the metric sources would add to `req` right now, without
    /// deciding or storing anything: for checking queries and templates.
    /// The caller's `time` is honoured (validated to a representable range).
    pub async fn preview_pull(
        &self,
        req: DecisionRequest,
    ) -> Result<Vec<crate::domain::Metric>, ServiceError> {
        validate_request(&req)?;
        self.on_core("metric pull", move |core| {
            let mut req = req;
            req.time.get_or_insert(Timestamp::now());
            let pushed = req.metrics.len();
            core.sources.pull(&mut req);
            Ok(req.metrics.split_off(pushed))
        })
        .await
    }

    /// One stored decision.
    pub async fn decision(&self, id: &str) -> Result<Decision, ServiceError> {
        let id = id.to_string();
        self.on_core("read", move |core| core.decision(&id)).await
    }

    /// A page of the audit trail.
    pub async fn query(&self, q: Query) -> Result<Page, ServiceError> {
        self.on_core("query", move |core| Ok(core.store.query(&q)?))
            .await
    }

    /// Walk the whole hash chain.
    pub async fn verify(&self) -> Result<VerifyReport, ServiceError> {
        self.on_core("verify", |core| Ok(core.store.verify()?))
            .await
    }

    /// Re-run a stored decision's exact input; nothing is stored.
    pub async fn replay(&self, id: &str, how: ReplayRequest) -> Result<ReplayReport, ServiceError> {
        // Dropping this future (the client went away, or the request timed
        // out) raises the flag: the replay stops before its next policy
        // instead of burning CPU for nobody.
        let cancelled = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(cancelled.clone());
        let id = id.to_string();
        self.on_core("replay", move |core| core.replay(&id, how, &cancelled))
            .await
    }

    /// Validate, persist, then activate a policy upload.
    pub async fn put_policy(&self, name: &str, bytes: Vec<u8>) -> Result<PolicyMeta, ServiceError> {
        let name = name.to_string();
        self.on_core("policy upload", move |core| core.put_policy(&name, bytes))
            .await
    }

    /// Delete a policy no binding uses.
    pub async fn delete_policy(&self, name: &str) -> Result<PolicyMeta, ServiceError> {
        let name = name.to_string();
        self.on_core("policy delete", move |core| core.delete_policy(&name))
            .await
    }

    /// Create or replace a binding (runs the policy's `validate-settings`).
    pub async fn put_binding(&self, name: &str, binding: Binding) -> Result<(), ServiceError> {
        let name = name.to_string();
        self.on_core("binding", move |core| core.put_binding(&name, binding))
            .await
    }

    pub async fn delete_binding(&self, name: &str) -> Result<Binding, ServiceError> {
        let name = name.to_string();
        self.on_core("binding delete", move |core| core.delete_binding(&name))
            .await
    }

    pub async fn create_freeze(&self, new: NewFreeze) -> Result<Freeze, ServiceError> {
        self.on_core("freeze", move |core| core.create_freeze(new))
            .await
    }

    pub async fn delete_freeze(&self, id: &str) -> Result<Freeze, ServiceError> {
        let id = id.to_string();
        self.on_core("freeze delete", move |core| core.delete_freeze(&id))
            .await
    }

    /// The registered policies (current versions), by name.
    pub fn policies(&self) -> Vec<PolicyMeta> {
        self.core.engine.snapshot().policies().cloned().collect()
    }

    pub fn policy(&self, name: &str) -> Result<PolicyMeta, ServiceError> {
        self.core
            .engine
            .snapshot()
            .policy(name)
            .cloned()
            .ok_or_else(|| EngineError::UnknownPolicy(name.to_string()).into())
    }

    /// The bindings, by name.
    pub fn bindings(&self) -> Vec<(String, Binding)> {
        self.core
            .engine
            .snapshot()
            .bindings()
            .map(|(n, b)| (n.to_string(), b.clone()))
            .collect()
    }

    pub fn binding(&self, name: &str) -> Result<Binding, ServiceError> {
        self.core
            .engine
            .snapshot()
            .bindings()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| EngineError::UnknownBinding(name.to_string()).into())
    }

    /// The manual freezes still in force.
    pub fn freezes(&self) -> Vec<Freeze> {
        let now = Timestamp::now();
        self.core
            .engine
            .snapshot()
            .freezes()
            .filter(|f| f.until > now)
            .cloned()
            .collect()
    }

    /// Every manual freeze the server holds, expired ones included.
    pub fn all_freezes(&self) -> Vec<Freeze> {
        self.core.engine.snapshot().freezes().cloned().collect()
    }

    /// Stop answering ready, sign a last checkpoint and flush everything
    /// to disk (at shutdown).
    pub async fn close(&self) -> Result<(), ServiceError> {
        self.core.ready.store(false, Ordering::Release);
        self.on_core("close", |core| {
            if core.store.head().0 > core.last_checkpoint_seq() {
                core.sign_checkpoint()?;
            }
            Ok(core.store.flush()?)
        })
        .await
    }

    /// Sign checkpoints as decisions come in (every `checkpoint_every`
    /// decisions, or `checkpoint_interval_ms` after the last one if any
    /// decision was added since), until the future is dropped. A failure
    /// is logged and retried at the next look: checkpoints never hold up
    /// decisions.
    pub async fn run_checkpoints(&self) {
        let look = self.core.checkpoint_interval.min(Duration::from_secs(1));
        loop {
            tokio::time::sleep(look).await;
            if !self.core.checkpoint_due() {
                continue;
            }
            if let Err(e) = self
                .on_core("checkpoint", |core| core.sign_checkpoint())
                .await
            {
                tracing::warn!("cannot sign an audit checkpoint: {e}");
            }
        }
    }

    /// The latest signed checkpoint (signed-note text).
    /// Follows the active-set changes other replicas store (a shared
    /// store only; returns at once otherwise). A reload that fails (the
    /// database went away meanwhile) is retried until it succeeds, so no
    /// change is missed.
    pub async fn follow_active_set(&self) {
        if !self.core.store.is_shared() {
            return;
        }
        let mut changes = self.core.store.active_set_changes();
        while changes.changed().await.is_ok() {
            loop {
                match self
                    .on_core("active set", |core| core.sync_active_set())
                    .await
                {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!("cannot load the active set another replica changed: {e}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
    }

    pub async fn checkpoint(&self) -> Result<String, ServiceError> {
        self.on_core("checkpoint", |core| match core.store.checkpoint()? {
            Some(note) => Ok(note),
            None => core.sign_checkpoint(),
        })
        .await
    }

    /// The public key that verifies this server's checkpoints.
    pub fn checkpoint_verifier_key(&self) -> String {
        self.core.signer.verifier_key()
    }
}

/// The bindings a replay against named policies runs: each reference
/// (`name` or `name@sha256:…`) resolved, with default settings, at most
/// [`MAX_REPLAY_POLICIES`] of them, and each component once (two references
/// to one digest would give the same result twice).
fn named_bindings(
    set: &crate::engine::ActiveSet,
    refs: &[String],
) -> Result<Vec<ActiveBinding>, ServiceError> {
    if refs.len() > MAX_REPLAY_POLICIES {
        return Err(ServiceError::TooManyReplayPolicies {
            given: refs.len(),
            max: MAX_REPLAY_POLICIES,
        });
    }
    let mut out: Vec<ActiveBinding> = Vec::with_capacity(refs.len());
    for r in refs {
        let policy = set.resolve(r)?;
        if out.iter().any(|b| b.policy.digest == policy.digest) {
            continue;
        }
        let name = policy.info.name.clone();
        out.push(ActiveBinding::new(
            &name,
            builtin::default_binding(r),
            policy,
        ));
    }
    Ok(out)
}

/// A selector stored before names had a grammar keeps its exact value
/// (it meant exactly that name before, and matches exactly that name now);
/// one outside the grammar matches nothing any more, which the log says.
fn warn_legacy_selector(what: &str, id: &str, selector: &Selector) {
    if let Err(e) = selector.validate() {
        tracing::warn!(
            "stored {what} `{}` can no longer match any deployment: {e}; re-create it with a valid name",
            shown(id)
        );
    }
}

/// Sets its flag when dropped: ties blocking work to the future awaiting it.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn recorded_binding(
    set: &crate::engine::ActiveSet,
    p: &PolicyResult,
) -> Result<ActiveBinding, ServiceError> {
    let policy = set
        .compiled(&p.digest)
        .cloned()
        .ok_or_else(|| EngineError::UnknownPolicy(format!("{}@{}", p.name, p.digest)))?;
    let binding = Binding {
        policy: format!("{}@{}", p.name, p.digest),
        selector: Selector::default(),
        mode: p.mode,
        // A failed policy recorded its binding's on_error verdict as its vote.
        on_error: match (&p.error, p.verdict) {
            (Some(_), Some(Verdict::Rollback)) => crate::domain::OnError::Rollback,
            (Some(_), Some(Verdict::Freeze)) => crate::domain::OnError::Freeze,
            _ => crate::domain::OnError::Hold,
        },
        settings: p.settings.clone(),
        limits: p.limits,
    };
    Ok(ActiveBinding::new(&p.binding, binding, policy))
}

fn outcome_label(p: &PolicyResult) -> String {
    match (&p.error, &p.verdict) {
        (Some(e), Some(v)) => format!("{v} (error: {})", e.kind.as_str()),
        (None, Some(v)) => v.to_string(),
        _ => "abstain".into(),
    }
}

fn diff(before: &[PolicyResult], after: &[PolicyResult]) -> Vec<PolicyDiff> {
    let mut out = Vec::new();
    for b in before {
        let a = after.iter().find(|a| a.binding == b.binding);
        let (was, now) = (outcome_label(b), a.map(outcome_label));
        if Some(&was) != now.as_ref() {
            out.push(PolicyDiff {
                binding: b.binding.clone(),
                before: Some(was),
                after: now,
            });
        }
    }
    for a in after
        .iter()
        .filter(|a| !before.iter().any(|b| b.binding == a.binding))
    {
        out.push(PolicyDiff {
            binding: a.binding.clone(),
            before: None,
            after: Some(outcome_label(a)),
        });
    }
    out
}

/// Run blocking work (Wasm, a full chain walk) on tokio's blocking pool,
/// never on the async reactor.
async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    // The blocking pool does not inherit the current span: carry it over,
    // so spans opened there (policy evaluations) nest under the caller's.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| ServiceError::Internal(format!("{what} task failed: {e}")))
}

/// Input checks serde cannot express, for every request that enters
/// through a door (live decisions, the Argo and Flagger doors, preview).
pub fn validate_request(req: &DecisionRequest) -> Result<(), ServiceError> {
    let bad = |m: String| Err(ServiceError::InvalidRequest(m));
    check_scope_name("deployment.service", &req.deployment.service)?;
    check_scope_name("deployment.environment", &req.deployment.environment)?;
    if let Some(t) = req.time {
        if !(EARLIEST_TIME..LATEST_TIME).contains(&t) {
            return Err(ServiceError::TimeOutOfRange(t));
        }
    }
    if req.metrics.len() > MAX_METRICS {
        return bad(format!(
            "{} metrics sent; at most {MAX_METRICS} per request",
            req.metrics.len()
        ));
    }
    for m in &req.metrics {
        // Provenance is the server's to write: a pushed metric claiming to
        // be pulled would be forged evidence (and skip a required pull).
        if m.pulled.is_some() {
            return Err(ServiceError::PulledOnInput(m.name.clone()));
        }
        if m.baseline.len() > MAX_SAMPLES_PER_SERIES || m.canary.len() > MAX_SAMPLES_PER_SERIES {
            return bad(format!(
                "metric `{}` has more than {MAX_SAMPLES_PER_SERIES} samples in a series",
                shown(&m.name)
            ));
        }
    }
    if let Some(p) = req.deployment.traffic_percent {
        if !(0.0..=100.0).contains(&p) {
            return bad(format!(
                "`deployment.traffic_percent` must be 0 to 100, got {p}"
            ));
        }
    }
    if let Some(key) = &req.idempotency_key {
        if key.is_empty() || key.len() > 256 {
            return bad("`idempotency_key` must be 1 to 256 characters".into());
        }
    }
    Ok(())
}
