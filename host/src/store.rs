//! The durable audit store: every decision in a tamper-evident hash chain,
//! plus the policy registry (component bytes by digest, metadata, bindings,
//! freezes) so a restart restores the active set and any past decision can
//! be replayed against the digests it used.
//!
//! [`Store`] is one seam over two backends with the same guarantees and the
//! same answers:
//!
//! - **sled** (the default, zero config): one embedded database in the data
//!   dir, for one process. sled stays inside this file and its `store/`
//!   submodules: one `audit` tree holds records, their indexes and the chain
//!   head (layout in `store/keys.rs`) so a batch commits atomically; appends
//!   go through the single writer thread in `store/writer.rs` (group
//!   commit); queries and export are in `store/query.rs`; the registry trees
//!   in `store/registry.rs`.
//! - **PostgreSQL** (`store = "postgres://…"`): several replicas share one
//!   chain, one active set and one set of idempotency keys; see
//!   `store/postgres.rs`. Postgres types stay inside that module.
//!
//! The hash scheme (`store/chain.rs`) is the backends' common ground, so a
//! chain copied from one to the other (`store/migrate.rs`) verifies with the
//! same head hash.

mod chain;
#[cfg(test)]
mod fixtures;
mod keys;
mod migrate;
mod pg;
mod query;
mod registry;
mod tamper;
mod writer;

pub use migrate::{migrate, Migrated};
pub use registry::BuiltinInstall;
#[doc(hidden)]
pub use tamper::RawRecord;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

pub use chain::{verify_exported, BrokenLink, VerifyReport, GENESIS};
pub use query::{Page, Query, DEFAULT_LIMIT, MAX_LIMIT, MAX_PAGE_BYTES};

use crate::domain::{Binding, Decision, Evaluation, Fingerprint, Freeze, PolicyMeta};
use chain::Head;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at `{path}`: {reason}")]
    Open { path: String, reason: String },
    #[error("storage failed: {0}")]
    Storage(String),
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("invalid cursor `{0}`: pass the `next_cursor` of a previous page unchanged")]
    BadCursor(String),
    #[error("the store is shut down")]
    Closed,
    /// A write failed (disk full, I/O error). sled refuses every later
    /// write once one fails, even after space returns, so the store stays
    /// failed until the process restarts and reopens it.
    #[error("the store failed and needs a restart: {0}")]
    Failed(String),
    #[error(
        "idempotency key `{}` was already used for a different request: a key names one \
         request; send that request unchanged to get its decision, or use a new key",
        crate::domain::shown(.0)
    )]
    IdempotencyConflict(String),
    /// The database cannot be reached (or stopped answering) right now.
    /// Nothing was acknowledged; the store recovers by itself once the
    /// database is back, so retrying later is right.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database refused to start the store (credentials, privileges,
    /// a schema from a newer release): something to fix in its set-up.
    #[error("{0}")]
    Setup(String),
}

// Messages only: the error type must not make sled part of the crate's API.
impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Storage(e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Flush (fsync) every batch before acknowledging it. Only the
    /// benchmark's "without per-decision flush" figure turns this off.
    pub flush_each_batch: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flush_each_batch: true,
        }
    }
}

/// What [`Store::append`] did with an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// Stored as a new record.
    New(Decision),
    /// Its idempotency key was already used: this is the stored decision,
    /// and the evaluation passed in was discarded.
    Existing(Decision),
}

/// What the writer answers for one append: what it did, and for a new
/// record the JSON the API serves for it.
#[derive(Debug)]
pub struct Receipt {
    pub appended: Appended,
    /// The stored body with its hash in place: byte for byte what reads
    /// of the new record serialise to, so a reply need not serialise the
    /// decision again. `None` for [`Appended::Existing`].
    pub json: Option<Vec<u8>>,
}

impl Appended {
    pub fn decision(&self) -> &Decision {
        match self {
            Appended::New(d) | Appended::Existing(d) => d,
        }
    }

    pub fn into_decision(self) -> Decision {
        match self {
            Appended::New(d) | Appended::Existing(d) => d,
        }
    }
}

/// Group-commit counters since open (for `/metrics` and the tests that
/// prove batching happens).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Batches that wrote at least one new record.
    pub batches: u64,
    /// New records written.
    pub records: u64,
    /// Most new records one batch held.
    pub largest_batch: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    largest_batch: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> StoreStats {
        StoreStats {
            batches: self.batches.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
        }
    }
}

/// Last seq and hash of the head a writer publishes.
fn head_of(head: &Mutex<Head>) -> (u64, String) {
    let h = head.lock().unwrap_or_else(|p| p.into_inner());
    (h.seq, h.hash.clone())
}

/// State the writer publishes for readers.
struct Shared {
    head: Mutex<Head>,
    stats: Counters,
    /// The first write failure, once there is one: readiness reports it and
    /// the server exits on it so its supervisor restarts it on a reopened
    /// store (see [`StoreError::Failed`]).
    failure: tokio::sync::watch::Sender<Option<String>>,
}

impl Shared {
    fn new(head: Head) -> Shared {
        Shared {
            head: Mutex::new(head),
            stats: Counters::default(),
            failure: tokio::sync::watch::Sender::new(None),
        }
    }

    /// Records the first failure (later ones add nothing) and returns the
    /// error every caller gets from now on.
    fn fail(&self, cause: &StoreError) -> StoreError {
        self.failure.send_if_modified(|f| {
            if f.is_none() {
                tracing::error!(error = %cause, "the store failed: refusing writes until restarted");
                *f = Some(cause.to_string());
                true
            } else {
                false
            }
        });
        self.failed().unwrap_or_else(|| cause.clone())
    }

    fn failed(&self) -> Option<StoreError> {
        self.failure.borrow().clone().map(StoreError::Failed)
    }
}

/// A handle to the open store; clones share it. The last one to drop
/// stops the writer and closes the database.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Sled(SledStore),
    Postgres(pg::PgStore),
}

/// Calls the same method on whichever backend is open.
macro_rules! each {
    ($self:ident, $s:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sled($s) => $call,
            Backend::Postgres($s) => $call,
        }
    };
}

impl Store {
    /// Opens or creates the embedded (sled) store in `dir`, flushing every batch.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, Options::default())
    }

    pub fn open_with(dir: &Path, options: Options) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Sled(SledStore::open_with(dir, options)?),
        })
    }

    /// Connects to the PostgreSQL database `url` names, applies the schema
    /// migrations this release needs (under an advisory lock, so replicas
    /// starting together take turns) and restores the chain head.
    pub fn connect(url: &str) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Postgres(pg::PgStore::connect(url)?),
        })
    }

    /// The embedded store, if that is the backend.
    pub(crate) fn embedded(&self) -> Option<&SledStore> {
        match &self.backend {
            Backend::Sled(s) => Some(s),
            Backend::Postgres(_) => None,
        }
    }

    fn postgres(&self) -> Option<&pg::PgStore> {
        match &self.backend {
            Backend::Postgres(s) => Some(s),
            Backend::Sled(_) => None,
        }
    }

    /// Appends one evaluated decision and resolves once it is durable.
    /// A decision whose idempotency key is already stored is not appended:
    /// the stored one comes back as [`Appended::Existing`].
    pub async fn append(&self, eval: Evaluation) -> Result<Appended, StoreError> {
        self.append_fingerprinted(eval, None).await
    }

    /// [`Store::append`], with the fingerprint of the request as its caller
    /// sent it ([`crate::domain::DecisionRequest::fingerprint`]) stored with
    /// its idempotency key. A key already stored comes back as
    /// [`Appended::Existing`] only for the same request (see
    /// [`Store::find_idempotent`]); otherwise the append fails with
    /// [`StoreError::IdempotencyConflict`]. Without a fingerprint the key is
    /// not checked.
    pub async fn append_fingerprinted(
        &self,
        eval: Evaluation,
        fingerprint: Option<Fingerprint>,
    ) -> Result<Appended, StoreError> {
        Ok(self.append_for_reply(eval, fingerprint).await?.appended)
    }

    /// [`Store::append_fingerprinted`], answering also the new record's
    /// JSON ([`Receipt::json`]) for the API's reply.
    pub async fn append_for_reply(
        &self,
        eval: Evaluation,
        fingerprint: Option<Fingerprint>,
    ) -> Result<Receipt, StoreError> {
        each!(self, s => s.append_for_reply(eval, fingerprint).await)
    }

    pub fn get(&self, id: &str) -> Result<Option<Decision>, StoreError> {
        each!(self, s => s.get(id))
    }

    pub fn get_by_seq(&self, seq: u64) -> Result<Option<Decision>, StoreError> {
        each!(self, s => s.get_by_seq(seq))
    }

    pub fn get_by_idempotency_key(&self, key: &str) -> Result<Option<Decision>, StoreError> {
        each!(self, s => s.get_by_idempotency_key(key))
    }

    /// The decision stored under idempotency key `key`, if its request has
    /// `fingerprint`; a different request under the key is
    /// [`StoreError::IdempotencyConflict`].
    pub fn find_idempotent(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
    ) -> Result<Option<Decision>, StoreError> {
        each!(self, s => s.find_idempotent(key, fingerprint))
    }

    /// Audit query, newest first.
    pub fn query(&self, q: &Query) -> Result<Page, StoreError> {
        each!(self, s => s.query(q))
    }

    /// Up to `limit` decisions (and about [`MAX_PAGE_BYTES`]) in seq order
    /// after `after_seq` (exclusive).
    pub fn export(&self, after_seq: u64, limit: usize) -> Result<Vec<Decision>, StoreError> {
        each!(self, s => s.export(after_seq, limit))
    }

    /// Walks the whole chain and reports the first broken link.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        each!(self, s => s.verify())
    }

    /// Last seq and hash this process knows; `(0, GENESIS)` for an empty
    /// store. With several replicas, others may have appended since.
    pub fn head(&self) -> (u64, String) {
        each!(self, s => s.head())
    }

    pub fn stats(&self) -> StoreStats {
        each!(self, s => s.stats())
    }

    /// Keep `note` as the latest signed checkpoint, durably.
    pub fn put_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        each!(self, s => s.put_checkpoint(note))
    }

    /// The latest signed checkpoint, if one was ever signed.
    pub fn checkpoint(&self) -> Result<Option<String>, StoreError> {
        each!(self, s => s.checkpoint())
    }

    /// Forces everything written so far to disk (a no-op on PostgreSQL,
    /// where every commit is durable).
    pub fn flush(&self) -> Result<(), StoreError> {
        each!(self, s => s.flush())
    }

    /// Why the store cannot write now, if it cannot: a failed sled store
    /// (until restarted), or an unreachable database (until it is back).
    pub fn failure(&self) -> Option<String> {
        each!(self, s => s.failure())
    }

    /// Resolves once the store fails for good and needs a restart (a sled
    /// write error). A PostgreSQL outage never resolves it: that store
    /// reconnects by itself.
    pub async fn failed(&self) -> String {
        match &self.backend {
            Backend::Sled(s) => s.failed().await,
            Backend::Postgres(_) => std::future::pending().await,
        }
    }

    /// Bumped whenever the stored active set (policies, bindings, freezes)
    /// may have been changed by another replica. The embedded store has no
    /// other writer: its receiver never changes.
    pub fn active_set_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        match &self.backend {
            Backend::Sled(_) => tokio::sync::watch::channel(0).1,
            Backend::Postgres(s) => s.active_set_changes(),
        }
    }

    /// Whether several processes may share this store (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.postgres().is_some()
    }

    pub fn put_policy(&self, meta: &PolicyMeta, bytes: &[u8]) -> Result<(), StoreError> {
        each!(self, s => s.put_policy(meta, bytes))
    }

    pub fn builtins_installed(&self) -> Result<bool, StoreError> {
        each!(self, s => s.builtins_installed())
    }

    /// Installs the built-ins and marks them installed, atomically.
    /// Returns false when another replica sharing the store marked them
    /// first (nothing was written then).
    pub fn install_builtins(&self, items: &[BuiltinInstall<'_>]) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.install_builtins(items).map(|()| true),
            Backend::Postgres(s) => s.install_builtins(items),
        }
    }

    pub fn reclaim_unreferenced(&self) -> Result<Vec<String>, StoreError> {
        each!(self, s => s.reclaim_unreferenced())
    }

    pub fn policy_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        each!(self, s => s.policy_bytes(digest))
    }

    pub fn policies(&self) -> Result<Vec<PolicyMeta>, StoreError> {
        each!(self, s => s.policies())
    }

    pub fn policy_versions(&self) -> Result<Vec<(String, String)>, StoreError> {
        each!(self, s => s.policy_versions())
    }

    pub fn delete_policy(&self, name: &str) -> Result<bool, StoreError> {
        each!(self, s => s.delete_policy(name))
    }

    pub fn put_binding(&self, name: &str, b: &Binding) -> Result<(), StoreError> {
        each!(self, s => s.put_binding(name, b))
    }

    pub fn bindings(&self) -> Result<Vec<(String, Binding)>, StoreError> {
        each!(self, s => s.bindings())
    }

    pub fn delete_binding(&self, name: &str) -> Result<bool, StoreError> {
        each!(self, s => s.delete_binding(name))
    }

    pub fn put_freeze(&self, f: &Freeze) -> Result<(), StoreError> {
        each!(self, s => s.put_freeze(f))
    }

    pub fn freezes(&self) -> Result<Vec<Freeze>, StoreError> {
        each!(self, s => s.freezes())
    }

    pub fn delete_freeze(&self, id: &str) -> Result<bool, StoreError> {
        each!(self, s => s.delete_freeze(id))
    }
}

/// A handle to the open embedded store; clones share it. The last one to
/// drop stops the writer and closes the database.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    audit: sled::Tree,
    registry: registry::Trees,
    shared: Arc<Shared>,
    /// `Option` only so `Drop` can close the channel before joining.
    tx: Option<mpsc::Sender<writer::Job>>,
    writer: Option<JoinHandle<()>>,
    // INVARIANT: last field, so it drops after every sled handle above.
    _released: LockRelease,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (seq, hash) = self.head();
        f.debug_struct("Store")
            .field("head_seq", &seq)
            .field("head_hash", &hash)
            .finish()
    }
}

/// Appends waiting for the writer; beyond this, callers wait to enqueue.
const QUEUE: usize = 4096;

impl SledStore {
    /// Opens or creates the database in `dir` (creating `dir`), flushing
    /// every batch. Restores the chain head.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with(dir, Options::default())
    }

    pub fn open_with(dir: &Path, options: Options) -> Result<SledStore, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        let db = sled::Config::new().path(dir).open().map_err(|e| {
            let e = e.to_string();
            // sled's own message ends in a Rust debug dump; say what it means.
            if e.contains("could not acquire lock") {
                open_err("it is in use by another process (or another open store)".into())
            } else {
                open_err(e)
            }
        })?;
        let audit = db.open_tree("audit")?;
        let registry = registry::Trees::open(&db)?;
        let head = chain::restore_head(&audit)?;
        let shared = Arc::new(Shared::new(head.clone()));
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = writer::Writer {
            db: db.clone(),
            tree: audit.clone(),
            shared: shared.clone(),
            rx,
            flush_each_batch: options.flush_each_batch,
            head,
            marked: Default::default(),
        };
        let handle = std::thread::Builder::new()
            .name("verdict-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| open_err(format!("starting the writer thread: {e}")))?;
        Ok(SledStore {
            inner: Arc::new(Inner {
                db,
                audit,
                registry,
                shared,
                tx: Some(tx),
                writer: Some(handle),
                _released: LockRelease(dir.join("db")),
            }),
        })
    }

    /// Appends one evaluated decision and resolves once it is on disk
    /// (with the default options). A decision whose idempotency key is
    /// already stored is not appended: the stored one comes back as
    /// [`Appended::Existing`].
    pub async fn append(&self, eval: Evaluation) -> Result<Appended, StoreError> {
        Ok(self.append_for_reply(eval, None).await?.appended)
    }

    /// [`Store::append_for_reply`].
    pub async fn append_for_reply(
        &self,
        eval: Evaluation,
        fingerprint: Option<Fingerprint>,
    ) -> Result<Receipt, StoreError> {
        writer::submit(self.inner.tx.as_ref(), eval, fingerprint).await
    }

    pub fn get(&self, id: &str) -> Result<Option<Decision>, StoreError> {
        let Some(seq) = keys::seq_of_id(id) else {
            return Ok(None);
        };
        Ok(load(&self.inner.audit, seq)?.filter(|d| d.id == id))
    }

    pub fn get_by_seq(&self, seq: u64) -> Result<Option<Decision>, StoreError> {
        load(&self.inner.audit, seq)
    }

    pub fn get_by_idempotency_key(&self, key: &str) -> Result<Option<Decision>, StoreError> {
        match self.inner.audit.get(keys::idempotency(key))? {
            Some(seq) => load(&self.inner.audit, keys::trailing_seq(&seq).unwrap_or(0)),
            None => Ok(None),
        }
    }

    /// The decision stored under idempotency key `key`, if its request has
    /// `fingerprint`; a different request under the key is
    /// [`StoreError::IdempotencyConflict`].
    pub fn find_idempotent(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
    ) -> Result<Option<Decision>, StoreError> {
        let Some(value) = self.inner.audit.get(keys::idempotency(key))? else {
            return Ok(None);
        };
        let decision = stored_for_key(&self.inner.audit, key, &value)?;
        same_request(
            key,
            keys::idempotency_fingerprint(&value),
            &decision,
            fingerprint,
        )?;
        Ok(Some(decision))
    }

    /// Audit query, newest first.
    pub fn query(&self, q: &Query) -> Result<Page, StoreError> {
        query::run(&self.inner.audit, q)
    }

    /// Up to `limit` decisions (and about [`MAX_PAGE_BYTES`]) in seq order
    /// after `after_seq` (exclusive): pass the last seq of one call to the
    /// next to export everything.
    pub fn export(&self, after_seq: u64, limit: usize) -> Result<Vec<Decision>, StoreError> {
        query::export(&self.inner.audit, after_seq, limit)
    }

    /// Walks the whole chain and reports the first broken link.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        chain::verify(&self.inner.audit)
    }

    /// Last seq and hash; `(0, GENESIS)` for an empty store.
    pub fn head(&self) -> (u64, String) {
        head_of(&self.inner.shared.head)
    }

    pub fn stats(&self) -> StoreStats {
        self.inner.shared.stats.snapshot()
    }

    /// Forces everything written so far to disk (at shutdown, or when
    /// opened without per-batch flushes).
    /// Keep `note` as the latest signed checkpoint, durably. A copy; the
    /// checkpoints that prove anything are the ones kept outside.
    pub fn put_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        self.refuse_if_failed()?;
        self.guard(
            self.inner
                .audit
                .insert(keys::CHECKPOINT, note.as_bytes())
                .map(|_| ()),
        )?;
        self.flush()
    }

    /// The latest signed checkpoint, if one was ever signed.
    pub fn checkpoint(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .inner
            .audit
            .get(keys::CHECKPOINT)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.guard(self.inner.db.flush().map(|_| ()))
    }

    /// Why the store failed, if a write has failed since open.
    pub fn failure(&self) -> Option<String> {
        self.inner.shared.failure.borrow().clone()
    }

    /// Resolves once a write fails (never, for a healthy store).
    pub async fn failed(&self) -> String {
        let mut rx = self.inner.shared.failure.subscribe();
        let failure = rx.wait_for(Option::is_some).await.map(|f| f.clone());
        match failure {
            Ok(f) => f.unwrap_or_default(),
            // The sender lives as long as this store: unreachable, but
            // never resolve on it.
            Err(_) => std::future::pending().await,
        }
    }

    /// Passes `result` through; a storage error marks the store failed
    /// (and a failed store refuses the write before it is tried).
    fn guard<T>(&self, result: Result<T, sled::Error>) -> Result<T, StoreError> {
        result.map_err(|e| self.inner.shared.fail(&e.into()))
    }

    /// The error for a write attempted after the store failed.
    fn refuse_if_failed(&self) -> Result<(), StoreError> {
        match self.inner.shared.failed() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it drains the queue;
        // joining it drops the writer's database handles.
        self.tx.take();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
        let _ = self.db.flush();
    }
}

/// Waits (briefly) until sled's lock on its data file is released.
///
/// sled's background IO threads keep the file, and so its exclusive lock,
/// for a moment after the last handle drops; without this wait, reopening
/// the directory right after closing it (a restart in tests, a reload)
/// fails with "could not acquire lock". Closing therefore means closed.
struct LockRelease(PathBuf);

impl Drop for LockRelease {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match std::fs::File::open(&self.0).map(|f| f.try_lock()) {
                Ok(Err(std::fs::TryLockError::WouldBlock)) => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                // Acquired (and released with the file), or nothing to wait for.
                _ => return,
            }
        }
    }
}

/// The decision an idempotency key's stored `value` names.
fn stored_for_key(tree: &sled::Tree, key: &str, value: &[u8]) -> Result<Decision, StoreError> {
    let seq = keys::trailing_seq(value).unwrap_or(0);
    load(tree, seq)?.ok_or_else(|| StoreError::Corrupt {
        what: format!("idempotency key `{key}`"),
        reason: format!("it names record {seq}, which does not exist"),
    })
}

/// Whether a request with `fingerprint` is the one `key` was first used
/// with. `stored` is the fingerprint kept with the key; a key written before
/// fingerprints were kept has none, and its decision's stored request is
/// compared instead, with what the server added removed: pulled metrics and
/// a `time` the server filled in (so it is tried both with and without its
/// `time`). A conflict is an error naming the key.
fn same_request(
    key: &str,
    stored: Option<Fingerprint>,
    decision: &Decision,
    fingerprint: &Fingerprint,
) -> Result<(), StoreError> {
    let same = match stored {
        Some(stored) => stored == *fingerprint,
        None => {
            let mut sent = decision.request.clone();
            sent.metrics.retain(|m| m.pulled.is_none());
            sent.fingerprint() == *fingerprint || {
                sent.time = None;
                sent.fingerprint() == *fingerprint
            }
        }
    };
    if same {
        Ok(())
    } else {
        Err(StoreError::IdempotencyConflict(key.to_string()))
    }
}

/// The record stored at `seq`, if any.
fn load(tree: &sled::Tree, seq: u64) -> Result<Option<Decision>, StoreError> {
    match tree.get(keys::record(seq))? {
        Some(value) => chain::decode(seq, &value).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Verdict;
    use fixtures::eval;

    #[tokio::test]
    async fn append_then_get_returns_the_stored_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(store.head(), (0, GENESIS.to_string()));

        let Appended::New(d) = store
            .append(eval("api", "prod", Verdict::Hold))
            .await
            .unwrap()
        else {
            panic!("first append must be new")
        };
        assert_eq!(d.seq, 1);
        assert_eq!(d.id, "dec-000000000001");
        assert_eq!(d.verdict, Verdict::Hold);
        assert_eq!(d.prev_hash, GENESIS);
        assert_eq!(d.hash.len(), 64);
        assert_eq!(d.reasons[0].message, "api error rate 0.5% under 1%");
        assert_eq!(d.request.deployment.service, "api");

        assert_eq!(store.get("dec-000000000001").unwrap(), Some(d.clone()));
        assert_eq!(store.get_by_seq(1).unwrap(), Some(d.clone()));
        assert_eq!(store.get("dec-000000000002").unwrap(), None);
        assert_eq!(
            store.get("dec-0000000000001").unwrap(),
            None,
            "a differently padded id is not an alias"
        );
        assert_eq!(store.get("nonsense").unwrap(), None);
        assert_eq!(store.head(), (1, d.hash.clone()));
        assert_eq!(
            store.stats(),
            StoreStats {
                batches: 1,
                records: 1,
                largest_batch: 1
            }
        );
    }

    #[tokio::test]
    async fn reopen_restores_head_and_the_chain_continues() {
        let dir = tempfile::tempdir().unwrap();
        let mut third = None;
        {
            let store = Store::open(dir.path()).unwrap();
            for _ in 0..3 {
                third = Some(
                    store
                        .append(eval("api", "prod", Verdict::Promote))
                        .await
                        .unwrap(),
                );
            }
        }
        let third = third.unwrap().into_decision();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.head(), (3, third.hash.clone()));

        let fourth = store
            .append(eval("web", "prod", Verdict::Rollback))
            .await
            .unwrap()
            .into_decision();
        assert_eq!(fourth.seq, 4);
        assert_eq!(fourth.prev_hash, third.hash);
        assert!(fourth.decided_at >= third.decided_at);
        let report = store.verify().unwrap();
        assert_eq!(
            report,
            VerifyReport {
                ok: true,
                checked: 4,
                head: Some(fourth.hash),
                broken: None
            }
        );
    }

    #[tokio::test]
    async fn open_twice_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).expect_err("the directory is locked");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot open the store at `{}`: it is in use by another process (or another open store)",
                dir.path().display()
            )
        );
    }
}
