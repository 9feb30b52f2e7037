//! The sandbox: one wasmtime engine, policies compiled once, a fresh
//! instance per evaluation with hard limits on fuel, wall-clock time, memory,
//! tables and output size.
//!
//! Why a fresh instance every time: a policy instance that survived a
//! decision could carry state into the next one and break replay. With the
//! pooling allocator and an `InstancePre` a fresh instance costs a few µs.
//!
//! What the host lacks is never the policy's fault: an evaluation that
//! cannot get a slot before its caller's deadline, or cannot be
//! instantiated for a host reason (pool exhausted, no memory), is a
//! [`HostError`] that aborts the whole decision, not a policy failure that
//! would be recorded as the policy's vote.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
    ProfilingStrategy, Store, Trap, UpdateDeadline,
};

use super::cache::ArtifactCache;
pub use super::slots::Lease;
use super::slots::Slots;
use super::snapshot::{self, Access, Snapshots};
use super::wasi::{self, Determinism, Imports, WasiState};
use super::wit::{self, t, Level, Policy, PolicyPre};
use super::worker::{self, WorkerLimits};
use crate::domain::{FailureKind, Limits, PolicyFailure, PolicyInfo, PolicyMeta};

/// How often the epoch advances: the granularity of wall-clock deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Log lines and bytes kept per evaluation; the rest are counted and dropped
/// so a chatty policy cannot bloat the decision record.
const MAX_LOG_LINES: usize = 32;
const MAX_LOG_BYTES: usize = 8 * 1024;

/// Table elements a policy may grow to (Rust guests need a few hundred).
const MAX_TABLE_ELEMENTS: usize = 20_000;

/// What one component may contain. wit-component makes a Rust policy of one
/// memory, two tables and three core instances; componentize-py links 14
/// core instances (libc, libpython, the WASI adapter, shims), and the rest is
/// room for other toolchains. A component over these is refused when it is
/// compiled, so at run time the pool's totals below are always enough for
/// the slots. The counts size fixed pool metadata and address space, not
/// committed memory.
const MEMORIES_PER_COMPONENT: u32 = 4;
const TABLES_PER_COMPONENT: u32 = 8;
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;

/// Freed memories and tables decommitted together. Measured: batching
/// decommits nearly halves the cost of dropping an instance.
const DECOMMIT_BATCH: u32 = 32;

/// Bytes of a freed memory (and table) kept mapped and reset in place, per
/// pool slot (see `pool_config`). A Rust policy writes well under this (its
/// stack top, data and heap); an interpreter writes tens of MiB, of which
/// this much is kept and the rest unmapped. Bounds the resident memory of
/// idle slots at this times the pool's memories.
const KEEP_RESIDENT_MEMORY: usize = 1 << 20;
const KEEP_RESIDENT_TABLE: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("not a WebAssembly component: {0}")]
    NotComponent(String),
    #[error("component failed to compile: {0}")]
    Compile(String),
    #[error("component too expensive to compile: {0}")]
    TooExpensive(String),
    #[error("component does not implement the `verdict:policy` world: {0}")]
    World(String),
    #[error(transparent)]
    Imports(#[from] wasi::ImportError),
    #[error("`describe` failed: {0}")]
    Describe(String),
    #[error("engine set-up failed: {0}")]
    Setup(String),
    #[error(transparent)]
    Host(#[from] HostError),
}

/// The host could not run an evaluation. Never a policy's failure: it
/// aborts the decision (HTTP 503) and nothing is recorded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    #[error(
        "overloaded: no evaluation slot came free for policy `{policy}` within the request's \
         deadline (waited {waited_ms} ms); retry later"
    )]
    Overloaded { policy: String, waited_ms: u64 },
    #[error("the host could not instantiate policy `{policy}`: {cause}")]
    Instantiate { policy: String, cause: String },
    #[error(
        "overloaded: policy `{policy}` got only {cpu_ms} ms of CPU for its {timeout_ms} ms \
         deadline before the request's deadline passed (the host is short of CPU); retry later"
    )]
    Starved {
        policy: String,
        cpu_ms: u64,
        timeout_ms: u64,
    },
}

/// How a [`Runtime`] runs and compiles policies.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Evaluations that run at once; the rest wait in a queue. Near the
    /// core count, so a policy's wall-clock deadline measures its own work,
    /// not CPU queueing. Default: [`default_concurrency`].
    pub max_concurrent: u32,
    /// How long a call without a caller's deadline (`describe` at upload,
    /// `validate-settings`) may wait for a slot.
    pub queue_timeout: Duration,
    /// Where components are compiled.
    pub compiler: Compiler,
    /// Build pre-initialised snapshots (see `snapshot.rs`) in the
    /// background for the bindings in use. Off by default: a short-lived
    /// process (`verdict policy test`) would spend its CPU compiling
    /// snapshots it never uses; the server turns it on.
    pub snapshots: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            max_concurrent: default_concurrency(),
            queue_timeout: Duration::from_secs(30),
            compiler: Compiler::InProcess,
            snapshots: false,
        }
    }
}

/// The number of cores this process may use.
pub fn default_concurrency() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

/// Where components are compiled.
#[derive(Debug, Clone)]
pub enum Compiler {
    /// In this process, without memory or time limits: for input the
    /// caller trusts (the fixture runner, library tests).
    InProcess,
    /// In a child process under memory, CPU and wall-clock limits: for
    /// uploads (the server).
    Worker(WorkerLimits),
}

/// Per-store host state: the limiter, the policy's log and, for a
/// component that imports WASI, its deny-by-default WASI context.
pub struct HostState {
    limiter: Limiter,
    log: Vec<String>,
    log_bytes: usize,
    dropped_log_lines: usize,
    wasi: Option<Box<WasiState>>,
}

impl HostState {
    /// The WASI context. Only the WASI linker's functions call this, and
    /// only components linked with it get a store: `call` gives every such
    /// store a context, so its absence is a bug in the host, not input.
    pub(super) fn wasi_mut(&mut self) -> &mut WasiState {
        self.wasi
            .as_deref_mut()
            .expect("a store of a WASI component always has a WASI context")
    }

    /// Keep a log line within the per-evaluation caps (shared by the `log`
    /// import and captured stdout/stderr).
    fn push_log(&mut self, line: String) {
        if self.log.len() >= MAX_LOG_LINES || self.log_bytes + line.len() > MAX_LOG_BYTES {
            self.dropped_log_lines += 1;
            return;
        }
        self.log_bytes += line.len();
        self.log.push(line);
    }
}

struct Limiter {
    memory_limit: usize,
    /// Set when the policy asked for more memory than allowed, so the trap
    /// that follows (usually an allocation-failure abort) is reported as what
    /// it really is.
    memory_denied: Option<usize>,
    /// Set when the policy asked for a larger table than allowed.
    table_denied: Option<usize>,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_denied = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.table_denied = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }
}

impl wit::verdict::policy::host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        self.push_log(format!("{}: {message}", wit::level(level)));
    }
}

impl wit::verdict::policy::types::Host for HostState {}

/// The sandbox runtime: a [`RuntimeCore`] shared with the thread that
/// builds snapshots in the background.
pub struct Runtime {
    core: Arc<RuntimeCore>,
}

impl std::ops::Deref for Runtime {
    type Target = RuntimeCore;

    fn deref(&self) -> &RuntimeCore {
        &self.core
    }
}

/// The wasmtime engine, the linkers granting the host's imports, the epoch
/// ticker that turns timeouts into traps, and the pre-initialised snapshots.
pub struct RuntimeCore {
    engine: Engine,
    /// `verdict:policy` only: components that import nothing else (Rust).
    linker: Linker<HostState>,
    /// `verdict:policy` and the deny-by-default WASI 0.2 (see `wasi.rs`):
    /// components carrying an interpreter (Python, JavaScript).
    wasi_linker: Linker<HostState>,
    slots: Slots,
    queue_timeout: Duration,
    compiler: Compiler,
    /// One compile at a time: compiling is the most expensive thing an
    /// upload can ask for, and uploads are rare.
    compiling: Mutex<()>,
    /// This engine's compiled-code format tag, computed once: it keys the
    /// artifact cache on every compile.
    tag: String,
    stop_ticker: Arc<AtomicBool>,
    snapshots: Mutex<Snapshots>,
    /// Where snapshots to build are queued; unset when the background
    /// builder is off ([`RuntimeOptions::snapshots`]).
    snapshot_jobs: OnceLock<Mutex<mpsc::Sender<SnapshotJob>>>,
    /// Where compiled snapshots are cached across restarts (the engine's
    /// artifact cache, when it has one).
    snapshot_cache: OnceLock<Arc<ArtifactCache>>,
}

impl Drop for RuntimeCore {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// A policy compiled once and ready to instantiate.
///
/// Wraps the `PolicyPre` (imports resolved and type-checked once) so each
/// evaluation pays only for instantiation and the call.
pub struct CompiledPolicy {
    /// `sha256:<hex>` of the component bytes: the identity the audit trail uses.
    pub digest: String,
    pub info: PolicyInfo,
    pub size: u64,
    /// Whether instances get a WASI context.
    pub imports: Imports,
    pre: PolicyPre<HostState>,
    /// The component's bytes, kept only for a component that exports
    /// `preinit` and imports nothing but `verdict:policy`: what its
    /// snapshots are built from (see `snapshot.rs`).
    preinit: Option<Arc<[u8]>>,
}

/// A snapshot to build: everything [`snapshot::key`] covers, and the bytes.
pub struct SnapshotJob {
    key: String,
    label: String,
    digest: String,
    bytes: Arc<[u8]>,
    settings: String,
    limits: Limits,
}

impl CompiledPolicy {
    /// The registry entry for this component registered as `name`.
    pub fn meta(&self, name: &str, uploaded_at: jiff::Timestamp) -> PolicyMeta {
        PolicyMeta {
            name: name.to_string(),
            digest: self.digest.clone(),
            version: self.info.version.clone(),
            size: self.size,
            info: self.info.clone(),
            uploaded_at,
        }
    }

    /// The limits for calls made on no binding's behalf (`describe` at
    /// upload), and the defaults `verdict policy test` runs fixtures under:
    /// an interpreter needs more than a Rust policy (see
    /// [`Limits::interpreter`]).
    pub fn default_limits(&self) -> Limits {
        match self.imports {
            Imports::Policy => Limits::default(),
            Imports::Wasi => Limits::interpreter(),
        }
    }

    /// How the policy is named in host errors: its own name, once known.
    fn label(&self) -> &str {
        if self.info.name.is_empty() {
            &self.digest
        } else {
            &self.info.name
        }
    }
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("digest", &self.digest)
            .field("name", &self.info.name)
            .finish()
    }
}

/// What one sandboxed call produced, success or not.
pub struct Run<R> {
    pub result: Result<R, PolicyFailure>,
    pub fuel_used: u64,
    pub duration: Duration,
    pub log: Vec<String>,
}

pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The engine settings compiled code depends on. The compile worker builds
/// its engine from these too, so its artifacts load in the server's engine.
fn code_config() -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        // Policies are synchronous: without the component model's
        // concurrency machinery a store is cheaper to create and a call
        // cheaper to make (measured 1.6 vs 2.3 µs per fresh instance+call).
        .concurrency_support(false)
        .consume_fuel(true)
        .epoch_interruption(true);
    // `VERDICT_PERF_MAP=1` writes /tmp/perf-<pid>.map as policies are
    // compiled, so `perf report` names the guest functions a profile of
    // the server spends its time in (a developer's tool; off by default).
    if std::env::var_os("VERDICT_PERF_MAP").is_some_and(|v| v == "1") {
        config.profiler(ProfilingStrategy::PerfMap);
    }
    config
}

/// The pooling allocator sized for `slots` instances at once.
fn pool_config(slots: u32) -> PoolingAllocationConfig {
    // wasmtime shards its decommit queue per CPU (at most 16 shards). Each
    // shard keeps up to a batch of freed memories and tables before it
    // decommits them, and a flush in progress holds up to another batch:
    // free for us, not yet for the pool. Without room for them, the pool
    // runs dry while fewer than `slots` instances are alive.
    let shards = default_concurrency().clamp(1, 16);
    let held_back = shards * DECOMMIT_BATCH * 2;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .total_core_instances(slots * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(slots * MEMORIES_PER_COMPONENT + held_back)
        .total_tables(slots * TABLES_PER_COMPONENT + held_back)
        .max_memory_size(Limits::MAX_MEMORY_BYTES as usize)
        .table_elements(MAX_TABLE_ELEMENTS)
        .decommit_batch_size(DECOMMIT_BATCH as usize);
    // Reset a freed instance's memory in place instead of unmapping it.
    // By default wasmtime `madvise`s a freed memory away, so the next
    // instance faults every page it touches back in, and each unmapping
    // interrupts the other cores to flush their TLBs: most of what a fresh
    // instance cost (24 µs for a minimal policy, against 8.5 µs without).
    // With the kernel's PAGEMAP_SCAN (Linux 6.7+) wasmtime finds the pages
    // the guest wrote and copies the initial image back over just those,
    // so the next instance starts from the same bytes, already mapped.
    // Without it, keeping memory resident would mean resetting the whole
    // kept region on every drop, which costs more than the faults: off.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE);
    }
    pool
}

/// Compile `bytes` with the server's code settings and serialize the
/// result: the compile worker's job (see `worker.rs`).
pub(super) fn compile_to_artifact(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut config = code_config();
    // One thread: the worker's memory limit then bounds one compile, and
    // its CPU limit is its wall-clock time.
    config.parallel_compilation(false);
    let engine = Engine::new(&config).map_err(|e| format!("engine set-up failed: {e:#}"))?;
    let component = Component::new(&engine, bytes).map_err(|e| format!("{e:#}"))?;
    component
        .serialize()
        .map_err(|e| format!("cannot serialize: {e:#}"))
}

impl Runtime {
    pub fn new() -> Result<Runtime, SandboxError> {
        Runtime::with_options(RuntimeOptions::default())
    }

    pub fn with_options(options: RuntimeOptions) -> Result<Runtime, SandboxError> {
        let build_snapshots = options.snapshots;
        let core = Arc::new(RuntimeCore::with_options(options)?);
        if build_snapshots {
            let (send, jobs) = mpsc::channel();
            let weak = Arc::downgrade(&core);
            std::thread::Builder::new()
                .name("verdict-snapshots".into())
                .spawn(move || build_snapshots_from(weak, jobs))
                .map_err(|e| {
                    SandboxError::Setup(format!("cannot start the snapshot builder: {e}"))
                })?;
            let _ = core.snapshot_jobs.set(Mutex::new(send));
        }
        Ok(Runtime { core })
    }
}

/// The background builder: one snapshot at a time, for as long as the
/// runtime lives (its queue's sender is the runtime's; once the runtime is
/// gone, `recv` fails and the thread ends).
fn build_snapshots_from(core: Weak<RuntimeCore>, jobs: mpsc::Receiver<SnapshotJob>) {
    while let Ok(job) = jobs.recv() {
        let Some(core) = core.upgrade() else { break };
        core.build_and_keep(job);
    }
}

impl RuntimeCore {
    fn with_options(options: RuntimeOptions) -> Result<RuntimeCore, SandboxError> {
        let slots = options.max_concurrent.max(1);
        let mut config = code_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool_config(slots)));
        let engine = Engine::new(&config).map_err(|e| SandboxError::Setup(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        Policy::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| SandboxError::Setup(format!("{e:#}")))?;
        let mut wasi_linker = linker.clone();
        wasi::add_to_linker(&mut wasi_linker)
            .map_err(|e| SandboxError::Setup(format!("cannot link WASI: {e:#}")))?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let stop = stop_ticker.clone();
        std::thread::Builder::new()
            .name("verdict-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| SandboxError::Setup(format!("cannot start the epoch ticker: {e}")))?;

        let tag = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            format!("{:016x}", h.finish())
        };
        Ok(RuntimeCore {
            tag,
            engine,
            linker,
            wasi_linker,
            slots: Slots::new(slots),
            queue_timeout: options.queue_timeout,
            compiler: options.compiler,
            compiling: Mutex::new(()),
            stop_ticker,
            snapshots: Mutex::new(Snapshots::default()),
            snapshot_jobs: OnceLock::new(),
            snapshot_cache: OnceLock::new(),
        })
    }

    /// Cache compiled snapshots in `cache` (the engine's artifact cache), so
    /// a restart deserializes them instead of compiling them again.
    pub fn cache_snapshots_in(&self, cache: Arc<ArtifactCache>) {
        let _ = self.snapshot_cache.set(cache);
    }

    /// A stable hex tag for this engine's compiled-code format: cached
    /// artifacts from another wasmtime version or configuration never match.
    pub fn compatibility_tag(&self) -> &str {
        &self.tag
    }

    /// Evaluations that may run at once.
    pub fn max_concurrent(&self) -> u32 {
        self.slots.capacity()
    }

    /// The deadline for calls made on no caller's behalf.
    pub fn default_deadline(&self) -> Instant {
        Instant::now() + self.queue_timeout
    }

    /// Validate, compile and describe a component. Only a component that
    /// passes every check reaches the artifact cache.
    pub fn load(
        &self,
        bytes: &[u8],
        cache: Option<&ArtifactCache>,
    ) -> Result<CompiledPolicy, SandboxError> {
        if wasmparser::Parser::is_core_wasm(bytes) {
            return Err(SandboxError::NotComponent(
                "this is a core wasm module; turn it into a component with `verdict policy build` \
                 (or `wasm-tools component new`)"
                    .into(),
            ));
        }
        if !wasmparser::Parser::is_component(bytes) {
            return Err(SandboxError::NotComponent(
                "the bytes do not start with the wasm component header".into(),
            ));
        }
        // Bytes the parser cannot read are refused as what they are: a
        // component that does not compile.
        let imports = wasi::check_imports(bytes).map_err(|e| match e {
            wasi::ImportError::Unreadable(m) => SandboxError::Compile(m),
            e => SandboxError::Imports(e),
        })?;
        let digest = digest_of(bytes);
        let tag = self.compatibility_tag();
        let (component, fresh) = match self.cached(&digest, cache) {
            Some(component) => (component, None),
            None => {
                let (component, artifact) = self.compile(bytes, cache.is_some())?;
                (component, artifact)
            }
        };
        let linker = match imports {
            Imports::Policy => &self.linker,
            Imports::Wasi => &self.wasi_linker,
        };
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| SandboxError::World(world_error(&e)))?;
        let pre = PolicyPre::new(pre).map_err(|e| SandboxError::World(world_error(&e)))?;
        // WASI components are never pre-initialised: what they could read
        // at `preinit` (clocks, randomness) would make a snapshot more than
        // a function of its settings.
        let preinit = (imports == Imports::Policy && snapshot::has_preinit(&component))
            .then(|| Arc::<[u8]>::from(bytes));
        let mut policy = CompiledPolicy {
            digest,
            info: PolicyInfo {
                name: String::new(),
                version: String::new(),
                summary: String::new(),
                metrics: Vec::new(),
                default_settings: serde_json::Value::Null,
            },
            size: bytes.len() as u64,
            imports,
            pre,
            preinit,
        };
        let determinism = || Determinism::for_call("describe", "", &policy.digest);
        let run = self.call(
            &mut self.lease(),
            &policy,
            &policy.pre,
            &policy.default_limits(),
            self.default_deadline(),
            determinism,
            |p, s| p.call_describe(s),
        )?;
        let info = run.result.map_err(|f| SandboxError::Describe(f.message))?;
        check_info(&info).map_err(SandboxError::Describe)?;
        let default_settings = serde_json::from_str(&info.default_settings).map_err(|e| {
            SandboxError::Describe(format!("default settings are not valid JSON: {e}"))
        })?;
        policy.info = PolicyInfo {
            name: info.name,
            version: info.version,
            summary: info.summary,
            metrics: info.metrics,
            default_settings,
        };
        if let (Some(cache), Some(artifact)) = (cache, fresh) {
            // A cache write failure only costs a recompile on next start.
            if let Err(e) = cache.put(&policy.digest, tag, &artifact) {
                tracing::warn!(digest = %policy.digest, error = %e, "could not cache compiled policy");
            }
        }
        Ok(policy)
    }

    /// The cached compilation of `digest`, if the cache holds one that
    /// verifies (see `cache.rs`) and this engine accepts.
    fn cached(&self, digest: &str, cache: Option<&ArtifactCache>) -> Option<Component> {
        let artifact = cache?.get(digest, self.compatibility_tag())?;
        // SAFETY: deserializing maps the artifact as native code. The cache
        // returns only bytes whose HMAC, under the data dir's secret key,
        // proves this server serialized them for this digest and this engine
        // configuration; wasmtime still checks the header and version and
        // fails cleanly on a mismatch, in which case we recompile.
        match unsafe { Component::deserialize(&self.engine, &artifact) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(digest, error = %format!("{e:#}"), "cached artifact unusable; recompiling");
                None
            }
        }
    }

    /// Compile `bytes`, one compile at a time; with `keep`, also return the
    /// serialized artifact for the cache.
    fn compile(
        &self,
        bytes: &[u8],
        keep: bool,
    ) -> Result<(Component, Option<Vec<u8>>), SandboxError> {
        let _one_at_a_time = self.compiling.lock().unwrap_or_else(|e| e.into_inner());
        match &self.compiler {
            Compiler::InProcess => {
                let component = Component::new(&self.engine, bytes)
                    .map_err(|e| SandboxError::Compile(format!("{e:#}")))?;
                let artifact = if keep {
                    component.serialize().ok()
                } else {
                    None
                };
                Ok((component, artifact))
            }
            Compiler::Worker(limits) => {
                let artifact = worker::compile(limits, bytes)?;
                // SAFETY: the artifact was just serialized by our own
                // executable from these bytes with this engine's code
                // settings, and came over a pipe only we hold. wasmtime
                // checks its header, version and settings; loading it also
                // checks the component against the pool's per-component
                // limits, which is a refusal of the component.
                let component = unsafe { Component::deserialize(&self.engine, &artifact) }
                    .map_err(|e| SandboxError::Compile(format!("{e:#}")))?;
                Ok((component, keep.then_some(artifact)))
            }
        }
    }

    /// Check settings through the policy's `validate-settings` export:
    /// `Ok(Err(message))` when the policy refuses them.
    pub fn validate_settings(
        &self,
        policy: &CompiledPolicy,
        settings: &str,
        limits: &Limits,
    ) -> Result<Result<(), String>, HostError> {
        let run = self.run_validate_settings(policy, settings, limits)?;
        Ok(match run.result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(msg),
            Err(f) => Err(f.message),
        })
    }

    /// The fuel `validate-settings` burns on `settings` in a fresh instance:
    /// the guest's start-up plus its settings parse, one phase of the fuel
    /// profile `benches/decide.rs` prints.
    pub fn settings_fuel(
        &self,
        policy: &CompiledPolicy,
        settings: &str,
        limits: &Limits,
    ) -> Result<u64, HostError> {
        Ok(self
            .run_validate_settings(policy, settings, limits)?
            .fuel_used)
    }

    fn run_validate_settings(
        &self,
        policy: &CompiledPolicy,
        settings: &str,
        limits: &Limits,
    ) -> Result<Run<Result<(), String>>, HostError> {
        let deadline = self.default_deadline();
        let determinism = || Determinism::for_call("validate-settings", settings, &policy.digest);
        self.call(
            &mut self.lease(),
            policy,
            &policy.pre,
            limits,
            deadline,
            determinism,
            |p, s| p.call_validate_settings(s, settings),
        )
    }

    /// A claim on an evaluation slot, for a caller running several policies
    /// one after another (a decision): see [`Lease`].
    pub fn lease(&self) -> Lease<'_> {
        self.slots.lease()
    }

    /// Run `evaluate` in a fresh instance under `limits`, if a slot comes
    /// free in time for the evaluation to finish by `deadline`. The slot is
    /// `lease`'s, kept for the caller's next policy.
    pub fn evaluate(
        &self,
        lease: &mut Lease<'_>,
        policy: &CompiledPolicy,
        input: &t::Input,
        limits: &Limits,
        deadline: Instant,
    ) -> Result<Run<t::Outcome>, HostError> {
        let snapshot = self.snapshot(policy, &input.settings, limits);
        let Run {
            result,
            fuel_used,
            duration,
            log,
        } = self.call(
            lease,
            policy,
            snapshot.as_deref().unwrap_or(&policy.pre),
            limits,
            deadline,
            || Determinism::for_input(input, &policy.digest),
            |p, s| p.call_evaluate(s, input),
        )?;
        let result = match result {
            Ok(Ok(outcome)) => check_output(outcome, limits),
            Ok(Err(msg)) => Err(PolicyFailure {
                kind: FailureKind::Err,
                message: format!("returned error: {}", truncate(&msg, 1024)),
            }),
            Err(f) => Err(f),
        };
        Ok(Run {
            result,
            fuel_used,
            duration,
            log,
        })
    }

    /// Instantiate `policy` in a fresh store under `limits` and call `f`.
    ///
    /// Waits for a slot until the policy's own deadline would end past
    /// `deadline` (a slot free now is always taken). The policy's deadline
    /// starts once it holds the slot: waiting is not running.
    #[allow(clippy::too_many_arguments)]
    fn call<R>(
        &self,
        lease: &mut Lease<'_>,
        policy: &CompiledPolicy,
        pre: &PolicyPre<HostState>,
        limits: &Limits,
        deadline: Instant,
        determinism: impl FnOnce() -> Determinism,
        f: impl FnOnce(&Policy, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<Run<R>, HostError> {
        let who = Who {
            label: policy.label(),
            digest: &policy.digest,
            imports: policy.imports,
        };
        self.call_in(
            lease,
            who,
            limits,
            deadline,
            determinism,
            |store| pre.instantiate(store),
            |instance, store| f(&instance, store),
        )
    }

    /// [`RuntimeCore::call`] for any component: `instantiate` makes the
    /// instance in the prepared store, `f` uses it.
    #[allow(clippy::too_many_arguments)]
    fn call_in<I, R>(
        &self,
        lease: &mut Lease<'_>,
        who: Who<'_>,
        limits: &Limits,
        deadline: Instant,
        // Only a component with WASI imports gets a clock and a seed;
        // for the rest, hashing the input for one would be wasted work.
        determinism: impl FnOnce() -> Determinism,
        instantiate: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<I>,
        f: impl FnOnce(I, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<Run<R>, HostError> {
        let timeout_ms = limits.timeout_ms.min(Limits::MAX_TIMEOUT_MS);
        let start_by = deadline
            .checked_sub(Duration::from_millis(timeout_ms))
            .unwrap_or_else(Instant::now);
        lease
            .hold(who.digest, start_by)
            .map_err(|t| HostError::Overloaded {
                policy: who.label.to_string(),
                waited_ms: t.waited.as_millis() as u64,
            })?;
        let started = Instant::now();
        let cpu_started = thread_cpu_time();
        let state = HostState {
            limiter: Limiter {
                memory_limit: limits.memory_bytes.min(Limits::MAX_MEMORY_BYTES) as usize,
                memory_denied: None,
                table_denied: None,
            },
            log: Vec::new(),
            log_bytes: 0,
            dropped_log_lines: 0,
            wasi: match who.imports {
                Imports::Policy => None,
                Imports::Wasi => Some(Box::new(WasiState::new(determinism()))),
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // set_fuel only fails when fuel is not enabled in the config; it is.
        let _ = store.set_fuel(limits.fuel);
        let ticks = timeout_ms / EPOCH_TICK.as_millis() as u64;
        // +1: the next tick may come at any moment, so a deadline of N ticks
        // could otherwise fire after less than N ms.
        store.set_epoch_deadline(ticks + 1);
        // The deadline is wall-clock time, but time the host did not give
        // the policy (its thread descheduled on a busy machine) is not the
        // policy's: the deadline only fails a policy that ran for at least
        // half of it. One that got less runs on until it has, or until its
        // caller's deadline, and then the host is the one out of time.
        let needed = Duration::from_millis(timeout_ms) / 2;
        store.epoch_deadline_callback(move |_| {
            let cpu = thread_cpu_time().saturating_sub(cpu_started);
            match at_deadline(cpu, needed, Instant::now() >= deadline) {
                AtDeadline::Fail => Ok(UpdateDeadline::Interrupt),
                AtDeadline::Starved => Err(Starved { cpu }.into()),
                AtDeadline::Extend(ticks) => Ok(UpdateDeadline::Continue(ticks)),
            }
        });

        let result = match instantiate(&mut store) {
            Ok(instance) => f(instance, &mut store),
            Err(e) if !guest_caused(&e, store.data()) && e.downcast_ref::<Starved>().is_none() => {
                return Err(HostError::Instantiate {
                    policy: who.label.to_string(),
                    cause: format!("{e:#}"),
                });
            }
            Err(e) => Err(e),
        };
        let duration = started.elapsed();
        if let Some(Starved { cpu }) = result.as_ref().err().and_then(|e| e.downcast_ref()) {
            return Err(HostError::Starved {
                policy: who.label.to_string(),
                cpu_ms: cpu.as_millis() as u64,
                timeout_ms,
            });
        }
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let result = result.map_err(|e| classify(&e, store.data(), limits, fuel_used));
        let mut state = store.into_data();
        // What the policy printed joins its log after what it logged, under
        // the same caps.
        if let Some(w) = state.wasi.take() {
            for line in w.output() {
                state.push_log(line);
            }
        }
        let mut log = state.log;
        if state.dropped_log_lines > 0 {
            log.push(format!(
                "({} more log lines dropped)",
                state.dropped_log_lines
            ));
        }
        Ok(Run {
            result,
            fuel_used,
            duration,
            log,
        })
    }
}

/// Whose component a sandboxed call runs: how host errors name it, the slot
/// it takes, and whether its store gets a WASI context.
#[derive(Clone, Copy)]
struct Who<'a> {
    label: &'a str,
    digest: &'a str,
    imports: Imports,
}

impl RuntimeCore {
    /// The ready snapshot of `policy` for these settings and limits. When
    /// there is none yet and the background builder is on, it is queued.
    fn snapshot(
        &self,
        policy: &CompiledPolicy,
        settings: &str,
        limits: &Limits,
    ) -> Option<Arc<PolicyPre<HostState>>> {
        let bytes = policy.preinit.as_ref()?;
        let key = snapshot::key(&policy.digest, settings, limits);
        let mut snapshots = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pre) = snapshots.ready(&key) {
            return Some(pre);
        }
        let jobs = self.snapshot_jobs.get()?;
        if snapshots.note(&key) {
            let job = SnapshotJob {
                key,
                label: policy.label().to_string(),
                digest: policy.digest.clone(),
                bytes: bytes.clone(),
                settings: settings.to_string(),
                limits: *limits,
            };
            let _ = jobs.lock().unwrap_or_else(|e| e.into_inner()).send(job);
        }
        None
    }

    /// Build the snapshot of `policy` for these settings and limits now, in
    /// this thread, unless it exists: for callers that want every
    /// evaluation to start from one (benchmarks, tests). `Ok(false)` when
    /// the component has no `preinit`.
    pub fn prepare(
        &self,
        policy: &CompiledPolicy,
        settings: &str,
        limits: &Limits,
    ) -> Result<bool, SnapshotError> {
        let Some(bytes) = &policy.preinit else {
            return Ok(false);
        };
        let key = snapshot::key(&policy.digest, settings, limits);
        if self.snapshot_state(&key) == Some(true) {
            return Ok(true);
        }
        let job = SnapshotJob {
            key: key.clone(),
            label: policy.label().to_string(),
            digest: policy.digest.clone(),
            bytes: bytes.clone(),
            settings: settings.to_string(),
            limits: *limits,
        };
        let pre = self.build_snapshot(&job)?;
        self.snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finish(key, snapshot::State::Ready(Arc::new(pre)));
        Ok(true)
    }

    /// `Some(true)` once the snapshot for `key` is ready, `Some(false)`
    /// while it is being built, `None` otherwise.
    fn snapshot_state(&self, key: &str) -> Option<bool> {
        let snapshots = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        if snapshots.ready(key).is_some() {
            Some(true)
        } else if snapshots.building(key) {
            Some(false)
        } else {
            None
        }
    }

    fn build_and_keep(&self, job: SnapshotJob) {
        let state = match self.build_snapshot(&job) {
            Ok(pre) => snapshot::State::Ready(Arc::new(pre)),
            Err(e) => {
                tracing::warn!(digest = %job.digest, error = %e, "no snapshot; the binding runs from its plain component");
                snapshot::State::Failed
            }
        };
        self.snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finish(job.key, state);
    }

    /// Instrument the component, run `preinit(settings)` in a fresh
    /// instance under the binding's limits, snapshot it, and compile the
    /// snapshot (both compiles cached by digest, like uploads).
    fn build_snapshot(&self, job: &SnapshotJob) -> Result<PolicyPre<HostState>, SnapshotError> {
        let wizer = snapshot::wizer();
        let (cx, instrumented) = wizer
            .instrument_component(&job.bytes)
            .map_err(|e| SnapshotError::Instrument(format!("{e:#}")))?;
        let component = self.compile_cached(&instrumented)?;
        let who = Who {
            label: &job.label,
            digest: &job.digest,
            imports: Imports::Policy,
        };
        let determinism = || Determinism::for_call(snapshot::PREINIT, &job.settings, &job.digest);
        let run = self.call_in(
            &mut self.lease(),
            who,
            &job.limits,
            self.default_deadline(),
            determinism,
            |store| self.linker.instantiate(store, &component),
            |instance, store| {
                let preinit =
                    instance.get_typed_func::<(&str,), ()>(&mut *store, snapshot::PREINIT)?;
                preinit.call(&mut *store, (job.settings.as_str(),))?;
                // What follows runs wizer's accessors, not the policy: no
                // budget of the policy's applies to them.
                store.set_fuel(u64::MAX)?;
                store.set_epoch_deadline(1 << 40);
                let snapshot = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    snapshot::now(wizer.snapshot_component(&cx, &mut Access { store, instance }))
                }));
                match snapshot {
                    Ok(Some(bytes)) => bytes,
                    _ => Err(wasmtime::format_err!("reading the instance's state failed")),
                }
            },
        )?;
        let bytes = run.result.map_err(|f| SnapshotError::Preinit(f.message))?;
        let component = self.compile_cached(&bytes)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| SnapshotError::Link(format!("{e:#}")))?;
        PolicyPre::new(pre).map_err(|e| SnapshotError::Link(format!("{e:#}")))
    }

    /// Compile `bytes` (ours: an instrumented component or a snapshot),
    /// through the snapshot cache when there is one.
    fn compile_cached(&self, bytes: &[u8]) -> Result<Component, SnapshotError> {
        let cache = self.snapshot_cache.get().map(|c| &**c);
        let digest = digest_of(bytes);
        if let Some(component) = self.cached(&digest, cache) {
            return Ok(component);
        }
        let (component, artifact) = self
            .compile(bytes, cache.is_some())
            .map_err(|e| SnapshotError::Compile(e.to_string()))?;
        if let (Some(cache), Some(artifact)) = (cache, artifact) {
            if let Err(e) = cache.put(&digest, self.compatibility_tag(), &artifact) {
                tracing::warn!(digest, error = %e, "could not cache compiled snapshot");
            }
        }
        Ok(component)
    }
}

/// Why a snapshot could not be built. Never an evaluation's failure: the
/// binding then runs from its plain component.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot instrument the component: {0}")]
    Instrument(String),
    #[error("cannot compile the snapshot: {0}")]
    Compile(String),
    #[error("`preinit` failed: {0}")]
    Preinit(String),
    #[error("the snapshot does not link: {0}")]
    Link(String),
    #[error(transparent)]
    Host(#[from] HostError),
}

/// CPU time this thread has used. Where the clock is unavailable it reads
/// zero, and a policy's deadline then waits for its caller's.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// What to do when a policy's wall-clock deadline has passed.
#[derive(Debug, PartialEq, Eq)]
enum AtDeadline {
    /// It ran for long enough: the policy failed its deadline.
    Fail,
    /// It did not, and its caller's deadline has passed: the host's failure.
    Starved,
    /// Check again in this many ticks, once the missing CPU time could
    /// have been used.
    Extend(u64),
}

/// A policy fails its deadline once it has used `needed` CPU time; short of
/// that, it runs on until its caller's deadline.
fn at_deadline(cpu: Duration, needed: Duration, past_caller_deadline: bool) -> AtDeadline {
    if cpu >= needed {
        AtDeadline::Fail
    } else if past_caller_deadline {
        AtDeadline::Starved
    } else {
        let missing = (needed - cpu).as_millis() / EPOCH_TICK.as_millis();
        AtDeadline::Extend(u64::try_from(missing).unwrap_or(u64::MAX).max(1))
    }
}

/// Raised from the epoch callback when a policy's thread got less than
/// half its deadline as CPU time before its caller's deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("starved of CPU ({cpu:?} used)")]
struct Starved {
    cpu: Duration,
}

/// Whether an instantiation failed because of the policy: its start code
/// trapped or ran out of a limit, or it asked for more memory or table than
/// its binding allows. Anything else (the pool exhausted, the host out of
/// memory) is the host's: the same component instantiated fine when it was
/// loaded, under the same engine.
fn guest_caused(err: &wasmtime::Error, state: &HostState) -> bool {
    state.limiter.memory_denied.is_some()
        || state.limiter.table_denied.is_some()
        || err.downcast_ref::<Trap>().is_some()
}

/// Turn a wasmtime error into the policy failure an operator can act on.
fn classify(err: &wasmtime::Error, state: &HostState, limits: &Limits, fuel: u64) -> PolicyFailure {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    if let Some(desired) = state.limiter.memory_denied {
        return PolicyFailure {
            kind: FailureKind::Memory,
            message: format!(
                "memory limit {:.0} MiB exceeded (asked for {:.1} MiB)",
                mib(limits.memory_bytes),
                mib(desired as u64)
            ),
        };
    }
    if let Some(desired) = state.limiter.table_denied {
        return PolicyFailure {
            kind: FailureKind::Instantiate,
            message: format!(
                "table limit of {MAX_TABLE_ELEMENTS} elements exceeded (asked for {desired})"
            ),
        };
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return PolicyFailure {
            kind: FailureKind::Trap,
            message: format!("exited (status {}) instead of returning a result", exit.0),
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PolicyFailure {
            kind: FailureKind::Fuel,
            message: format!("ran out of fuel after {fuel} units"),
        },
        Some(Trap::Interrupt) => PolicyFailure {
            kind: FailureKind::Deadline,
            message: format!("exceeded {} ms deadline", limits.timeout_ms),
        },
        // An interpreter (a component importing WASI) aborts this way when
        // its runtime gives up; the one a policy author hits is
        // componentize-js's `fetch` without the HTTP interface, so say so.
        Some(Trap::UnreachableCodeReached) if state.wasi.is_some() => PolicyFailure {
            kind: FailureKind::Trap,
            message: "trapped: the policy's interpreter aborted (`unreachable`); in JavaScript, \
                      `fetch` does this: policies have no network access"
                .into(),
        },
        Some(trap) => PolicyFailure {
            kind: FailureKind::Trap,
            // Display says "wasm trap: …"; "trapped: wasm trap: …" stutters.
            message: format!(
                "trapped: {}",
                trap.to_string().trim_start_matches("wasm trap: ")
            ),
        },
        None => PolicyFailure {
            kind: FailureKind::Instantiate,
            message: format!("could not run: {err:#}"),
        },
    }
}

/// `describe` output is stored with the policy and served in every listing:
/// bound it like any other policy output.
fn check_info(info: &t::Info) -> Result<(), String> {
    const MAX_FIELD: usize = 4096;
    const MAX_METRICS: usize = 256;
    const MAX_DEFAULT_SETTINGS: usize = 64 * 1024;
    if info.name.is_empty() {
        return Err("returned an empty policy name".into());
    }
    for (field, value) in [
        ("name", &info.name),
        ("version", &info.version),
        ("summary", &info.summary),
    ] {
        if value.len() > MAX_FIELD {
            return Err(format!(
                "returned a {field} of {} bytes, more than {MAX_FIELD}",
                value.len()
            ));
        }
    }
    if info.metrics.len() > MAX_METRICS || info.metrics.iter().any(|m| m.len() > MAX_FIELD) {
        return Err(format!(
            "returned more than {MAX_METRICS} metric names, or one longer than {MAX_FIELD} bytes"
        ));
    }
    if info.default_settings.len() > MAX_DEFAULT_SETTINGS {
        return Err(format!(
            "returned default settings of {} bytes, more than {MAX_DEFAULT_SETTINGS}",
            info.default_settings.len()
        ));
    }
    Ok(())
}

/// Enforce the output limits: a policy answering with a flood of reasons is
/// a broken policy, not an explanation.
fn check_output(outcome: t::Outcome, limits: &Limits) -> Result<t::Outcome, PolicyFailure> {
    let fail = |message: String| PolicyFailure {
        kind: FailureKind::Output,
        message,
    };
    match &outcome {
        t::Outcome::Vote(d) => {
            if d.reasons.len() > limits.max_reasons as usize {
                return Err(fail(format!(
                    "returned {} reasons, more than the limit of {}",
                    d.reasons.len(),
                    limits.max_reasons
                )));
            }
            if let Some(r) = d
                .reasons
                .iter()
                .find(|r| r.message.len() > limits.max_reason_bytes as usize)
            {
                return Err(fail(format!(
                    "returned a reason of {} bytes, more than the limit of {}",
                    r.message.len(),
                    limits.max_reason_bytes
                )));
            }
            // The metric name is stored with the reason too: unchecked, it
            // would carry megabytes past the message limit into the record.
            if let Some(m) = d
                .reasons
                .iter()
                .filter_map(|r| r.metric.as_ref())
                .find(|m| m.len() > limits.max_reason_bytes as usize)
            {
                return Err(fail(format!(
                    "returned a metric name of {} bytes, more than the limit of {}",
                    m.len(),
                    limits.max_reason_bytes
                )));
            }
        }
        t::Outcome::Abstain(why) => {
            if why.len() > limits.max_reason_bytes as usize {
                return Err(fail(format!(
                    "returned an abstention message of {} bytes, more than the limit of {}",
                    why.len(),
                    limits.max_reason_bytes
                )));
            }
        }
    }
    Ok(outcome)
}

/// Reword linker/type-check errors into what the policy author must fix.
fn world_error(err: &wasmtime::Error) -> String {
    let text = format!("{err:#}");
    if text.contains("matching implementation was not found") || text.contains("import") {
        format!(
            "{text} (a policy may import only `verdict:policy/host`, `verdict:policy/types` \
             and WASI 0.2 interfaces)"
        )
    } else {
        text
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_fails_a_policy_only_for_time_it_ran() {
        let ms = Duration::from_millis;
        // Ran for at least half its deadline: the policy's failure.
        assert_eq!(at_deadline(ms(100), ms(100), false), AtDeadline::Fail);
        assert_eq!(at_deadline(ms(150), ms(100), true), AtDeadline::Fail);
        // Descheduled most of the time: more time, for what it missed.
        assert_eq!(at_deadline(ms(30), ms(100), false), AtDeadline::Extend(70));
        assert_eq!(
            at_deadline(Duration::from_micros(99_900), ms(100), false),
            AtDeadline::Extend(1)
        );
        // Its caller has given up: the host ran out of time, not the policy.
        assert_eq!(at_deadline(ms(30), ms(100), true), AtDeadline::Starved);
    }

    #[test]
    fn this_threads_cpu_time_advances_with_work() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        while thread_cpu_time() - before < Duration::from_millis(5) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(thread_cpu_time() > before);
    }
}
