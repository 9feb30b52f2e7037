//! The decision service: the engine and the store working together. Every
//! front door (HTTP API, integrations, in-process tests) goes through here,
//! so the rules "stored before acknowledged", "persisted before activated"
//! and "a bad policy never replaces a good one" live in one place.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::builtin;
use crate::config::Config;
use crate::domain::{
    Binding, Decision, DecisionRequest, Evaluation, Freeze, PolicyMeta, PolicyResult, Selector,
    Verdict,
};
use crate::engine::{
    default_concurrency, ActiveBinding, ArtifactCache, CacheKey, Compiler, Engine, EngineError,
    Freezes, RuntimeOptions,
};
use crate::source::Sources;
use crate::store::{Appended, Page, Query, Store, StoreError, VerifyReport};
use crate::telemetry;
use tracing::Instrument;

/// Bounds on a decision request, so one request cannot occupy the engine
/// with megabytes of samples per policy.
pub const MAX_METRICS: usize = 256;
pub const MAX_SAMPLES_PER_SERIES: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("unknown decision `{0}`")]
    UnknownDecision(String),
    #[error("internal error: {0}")]
    Internal(String),
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

pub struct App {
    engine: Arc<Engine>,
    store: Store,
    /// Metric sources and queries: what to pull before evaluating.
    sources: Arc<Sources>,
    ready: AtomicBool,
    freeze_counter: AtomicU64,
    /// The request timeout: how long a decision may wait for evaluation
    /// slots before it is refused as overloaded.
    request_timeout: Duration,
}

impl App {
    /// Open the store under `config.data_dir`, restore the registry,
    /// bindings and freezes it holds, and install the built-ins on first start.
    /// Components are compiled in this process, without limits: for
    /// trusted callers (tests). The server uses [`App::open_with`].
    pub fn open(config: &Config) -> Result<App, ServiceError> {
        App::open_with(config, Compiler::InProcess)
    }

    /// [`App::open`], compiling components with `compiler`.
    pub fn open_with(config: &Config, compiler: Compiler) -> Result<App, ServiceError> {
        let store = Store::open_with(
            &config.data_dir.join("store"),
            crate::store::Options {
                flush_each_batch: config.flush,
            },
        )?;
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
        };
        let engine = Arc::new(Engine::with_options(Some(cache), options)?);
        let sources = Sources::new(&config.metric_sources, &config.metric_queries)
            .map_err(ServiceError::InvalidRequest)?;
        let app = App {
            engine,
            store,
            sources: Arc::new(sources),
            ready: AtomicBool::new(false),
            freeze_counter: AtomicU64::new(0),
            request_timeout,
        };
        app.restore(config.builtin_policies)?;
        app.ready.store(true, Ordering::Release);
        Ok(app)
    }

    fn restore(&self, builtins: bool) -> Result<(), ServiceError> {
        let policies = self.store.policies()?;
        if policies.is_empty() && builtins {
            let now = Timestamp::now();
            for b in &builtin::BUILTINS {
                let meta = self.engine.add_policy(b.name, b.component, now)?;
                self.store.put_policy(&meta, b.component)?;
                let binding = builtin::default_binding(b.name);
                self.engine.put_binding(b.name, binding.clone())?;
                self.store.put_binding(b.name, &binding)?;
            }
            tracing::info!("first start: installed the 5 built-in policies, bound to everything");
        } else {
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
                // A pinned digest may not be any name's current version.
                if let Some((_, digest)) = binding.policy.split_once('@') {
                    self.load_version(digest)?;
                }
                if let Err(e) = self.engine.put_binding(&name, binding) {
                    tracing::error!(binding = %name, "stored binding no longer valid: {e}");
                }
            }
        }
        for f in self.store.freezes()? {
            self.engine.put_freeze(f)?;
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

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Decide and store. Returns the stored decision and whether it is new
    /// (false: an earlier decision with the same idempotency key).
    /// Runs in a `decision` span, then counts and logs the decision
    /// (telemetry.rs); the work itself is `decide_untraced`.
    pub async fn decide(&self, req: DecisionRequest) -> Result<(Decision, bool), ServiceError> {
        let span = telemetry::decision_span(&req);
        let started = std::time::Instant::now();
        let result = self.decide_untraced(req).instrument(span.clone()).await;
        telemetry::decided(&span, started, &result);
        result
    }

    async fn decide_untraced(
        &self,
        req: DecisionRequest,
    ) -> Result<(Decision, bool), ServiceError> {
        validate_request(&req)?;
        if let Some(key) = &req.idempotency_key {
            if let Some(existing) = self.store.get_by_idempotency_key(key)? {
                return Ok((existing, false));
            }
        }
        let engine = self.engine.clone();
        let sources = self.sources.clone();
        // The request's own deadline bounds its wait for evaluation slots.
        let deadline = Instant::now() + self.request_timeout;
        let eval = blocking("evaluation", move || {
            let mut req = req;
            let now = Timestamp::now();
            // Fixed before pulling: the pulled ranges end at the decision time.
            req.time.get_or_insert(now);
            sources.pull(&mut req);
            engine.evaluate_until(req, now, deadline)
        })
        .await?
        .map_err(EngineError::from)?;
        match self.store.append(eval).await? {
            Appended::New(d) => Ok((d, true)),
            Appended::Existing(d) => Ok((d, false)),
        }
    }

    /// What the metric sources would add to `req` right now, without
    /// deciding or storing anything: for checking queries and templates.
    pub async fn preview_pull(
        &self,
        req: DecisionRequest,
    ) -> Result<Vec<crate::domain::Metric>, ServiceError> {
        validate_request(&req)?;
        let sources = self.sources.clone();
        blocking("metric pull", move || {
            let mut req = req;
            req.time.get_or_insert(Timestamp::now());
            let pushed = req.metrics.len();
            sources.pull(&mut req);
            req.metrics.split_off(pushed)
        })
        .await
    }

    pub fn decision(&self, id: &str) -> Result<Decision, ServiceError> {
        self.store
            .get(id)?
            .ok_or_else(|| ServiceError::UnknownDecision(id.to_string()))
    }

    pub fn query(&self, q: &Query) -> Result<Page, ServiceError> {
        Ok(self.store.query(q)?)
    }

    pub fn verify(&self) -> Result<VerifyReport, ServiceError> {
        Ok(self.store.verify()?)
    }

    /// Re-run a stored decision's exact input; nothing is stored.
    pub async fn replay(&self, id: &str, how: ReplayRequest) -> Result<ReplayReport, ServiceError> {
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
            refs.iter()
                .map(|r| {
                    let policy = set.resolve(r)?;
                    let name = policy.info.name.clone();
                    Ok(ActiveBinding::new(
                        &name,
                        builtin::default_binding(r),
                        policy,
                    ))
                })
                .collect::<Result<_, EngineError>>()?
        } else {
            Engine::matching(&set, &original.request)
                .into_iter()
                .cloned()
                .collect()
        };
        let engine = self.engine.clone();
        let request = original.request.clone();
        let at = original.request.time.unwrap_or(original.decided_at);
        let as_recorded = how.as_recorded;
        let (freeze_ids, recorded_reasons) = (original.freezes.clone(), original.reasons.clone());
        let deadline = Instant::now() + self.request_timeout;
        let replayed = blocking("replay", move || {
            let refs: Vec<&ActiveBinding> = bindings.iter().collect();
            // As recorded, a manual freeze the decision was made under is
            // part of its evidence and is reproduced from the record, not
            // from today's freeze table. Otherwise no freeze applies: the
            // replay answers what the policies would say.
            let freezes = if as_recorded {
                Freezes::Recorded {
                    ids: &freeze_ids,
                    reasons: &recorded_reasons,
                }
            } else {
                Freezes::Ignore
            };
            engine.evaluate_under(&set, &refs, request, at, freezes, deadline)
        })
        .await?
        .map_err(EngineError::from)?;
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

    /// Validate, persist, then activate a policy upload.
    pub async fn put_policy(&self, name: &str, bytes: Vec<u8>) -> Result<PolicyMeta, ServiceError> {
        if !crate::engine::valid_name(name) {
            return Err(EngineError::InvalidName(name.to_string()).into());
        }
        let engine = self.engine.clone();
        let owned = name.to_string();
        let (compiled, bytes) = blocking("compile", move || {
            engine.compile(&owned, &bytes).map(|c| (Arc::new(c), bytes))
        })
        .await??;
        self.engine.check_upgrade(name, &compiled)?;
        let now = Timestamp::now();
        // Persist before activating: an acknowledged upload survives a restart.
        self.store.put_policy(&compiled.meta(name, now), &bytes)?;
        Ok(self.engine.register(name, compiled, now)?)
    }

    pub fn delete_policy(&self, name: &str) -> Result<PolicyMeta, ServiceError> {
        let meta = self.engine.remove_policy(name)?;
        self.store.delete_policy(name)?;
        Ok(meta)
    }

    pub fn put_binding(&self, name: &str, binding: Binding) -> Result<(), ServiceError> {
        if let Some((_, digest)) = binding.policy.split_once('@') {
            self.load_version(digest)?;
        }
        self.engine.check_binding(name, &binding)?;
        self.store.put_binding(name, &binding)?;
        Ok(self.engine.put_binding(name, binding)?)
    }

    pub fn delete_binding(&self, name: &str) -> Result<Binding, ServiceError> {
        let b = self.engine.remove_binding(name)?;
        self.store.delete_binding(name)?;
        Ok(b)
    }

    pub fn create_freeze(
        &self,
        selector: Selector,
        reason: String,
        until: Timestamp,
        created_by: Option<String>,
    ) -> Result<Freeze, ServiceError> {
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
        self.store.put_freeze(&freeze)?;
        self.engine.put_freeze(freeze.clone())?;
        Ok(freeze)
    }

    pub fn delete_freeze(&self, id: &str) -> Result<Freeze, ServiceError> {
        let f = self.engine.remove_freeze(id)?;
        self.store.delete_freeze(id)?;
        Ok(f)
    }

    /// Flush everything to disk (at shutdown).
    pub fn close(&self) -> Result<(), ServiceError> {
        self.ready.store(false, Ordering::Release);
        Ok(self.store.flush()?)
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
pub async fn blocking<T: Send + 'static>(
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

/// Input checks serde cannot express.
pub fn validate_request(req: &DecisionRequest) -> Result<(), ServiceError> {
    let bad = |m: String| Err(ServiceError::InvalidRequest(m));
    if req.deployment.service.trim().is_empty() {
        return bad("`deployment.service` must not be empty".into());
    }
    if req.deployment.environment.trim().is_empty() {
        return bad("`deployment.environment` must not be empty".into());
    }
    if req.metrics.len() > MAX_METRICS {
        return bad(format!(
            "{} metrics sent; at most {MAX_METRICS} per request",
            req.metrics.len()
        ));
    }
    for m in &req.metrics {
        if m.baseline.len() > MAX_SAMPLES_PER_SERIES || m.canary.len() > MAX_SAMPLES_PER_SERIES {
            return bad(format!(
                "metric `{}` has more than {MAX_SAMPLES_PER_SERIES} samples in a series",
                m.name
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
