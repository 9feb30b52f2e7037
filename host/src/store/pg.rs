//! The PostgreSQL backend: several replicas, one audit chain.
//!
//! The same guarantees as the embedded store, shared across processes:
//!
//! - **One chain.** Each replica has one writer thread (`pg/writer.rs`)
//!   that takes whatever decisions have queued and appends them in one
//!   transaction: it locks the chain-head row (`SELECT … FOR UPDATE`),
//!   gives the batch the next seqs and hashes, inserts it, moves the head
//!   and commits, and only then answers the batch's callers (group commit
//!   per replica). Replicas take turns on the head row, so the chain stays
//!   gap-free and linear; `UNIQUE(seq)` and `UNIQUE(prev_hash)` refuse a fork.
//! - **Idempotency across replicas.** Keys are looked up under the head
//!   lock, so a key raced on two replicas is appended once and the loser
//!   answers the winner's record (bound to the request's fingerprint, as on
//!   sled).
//! - **One active set.** Policies (bytes by digest), bindings and freezes
//!   live in tables; every change bumps a version row in the same
//!   transaction. A poller per replica reads it every
//!   [`POLL_INTERVAL`] and tells the service, which reloads the set.
//! - **Outages are transient.** An unreachable database fails the calls
//!   made meanwhile with [`StoreError::Unavailable`] (never an acknowledged
//!   decision that was not committed), readiness reports it, and the store
//!   reconnects by itself once the database answers again: unlike a failed
//!   sled store, no restart is needed.
//!
//! The client is the synchronous `postgres` crate: the store's reads run on
//! the blocking pool and its writer is a thread, the shape this client
//! fits. Every `postgres` type stays inside this module.

mod schema;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use jiff::Timestamp;
use postgres::error::SqlState;
use postgres::{Client, NoTls};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use super::chain::{self, Head};
use super::query::Paged;
use super::registry::BuiltinInstall;
use super::{
    keys, same_request, Counters, Page, Query, Receipt, StoreError, StoreStats, VerifyReport,
    DEFAULT_LIMIT, GENESIS, MAX_LIMIT,
};
use crate::domain::{Binding, Decision, Evaluation, Fingerprint, Freeze, PolicyMeta};

/// How often each replica looks for active-set changes made elsewhere (and
/// checks that the database answers): well inside the 1 s within which a
/// change must govern every replica.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Idle connections kept for reads and admin writes (the writer and the
/// poller have their own).
const IDLE_CONNECTIONS: usize = 8;

/// How long connecting may take when the URL does not say
/// (`connect_timeout`): an unreachable host must fail a request, not hang it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows one verify query reads, so a long chain is walked in bounded memory.
const VERIFY_PAGE: i64 = 2000;

/// The advisory lock first starts take to install the built-ins once.
const BUILTINS_LOCK: i64 = 0x7665_7264_6963_75;

/// A failure inside this module: a client error (classified into a
/// [`StoreError`] on its way out, see [`Target::error`]) or one already
/// classified.
pub(super) enum PgError {
    Client(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for PgError {
    fn from(e: postgres::Error) -> Self {
        PgError::Client(e)
    }
}

impl From<StoreError> for PgError {
    fn from(e: StoreError) -> Self {
        PgError::Store(e)
    }
}

pub(super) fn setup_error(message: String) -> PgError {
    PgError::Store(StoreError::Setup(message))
}

/// Where the database is: the parsed URL, and how to name it in messages
/// (without the password).
pub(super) struct Target {
    config: postgres::Config,
    shown: String,
    user: String,
    dbname: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Setup(
                "`store` must be a `postgres://user:password@host:port/database` URL \
                 (leave it out to keep the embedded store in `data_dir`)"
                    .into(),
            ));
        }
        let mut config: postgres::Config = url.parse().map_err(|e| {
            // The parser's message never repeats the URL (which may hold a
            // password), so it is safe to show.
            StoreError::Setup(format!(
                "invalid `store` URL: {e}: expected `postgres://user:password@host:port/database`"
            ))
        })?;
        if config.get_ssl_mode() == postgres::config::SslMode::Require {
            return Err(StoreError::Setup(
                "`sslmode=require` is not supported yet: verdict connects without TLS \
                 (`sslmode=prefer` falls back to a plain connection); reach the database over \
                 a private network or a local TLS-terminating proxy"
                    .into(),
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A dead peer (a partitioned database host) is noticed within
        // about half a minute instead of the kernel's two hours.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        if config.get_application_name().is_none() {
            config.application_name("verdict");
        }
        let user = config.get_user().unwrap_or("").to_string();
        let dbname = config.get_dbname().unwrap_or(&user).to_string();
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let host = match h {
                    postgres::config::Host::Tcp(name) => name.clone(),
                    postgres::config::Host::Unix(path) => path.display().to_string(),
                };
                match config.get_ports().get(i).or(config.get_ports().first()) {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                }
            })
            .collect();
        let shown = format!("postgres://{user}@{}/{dbname}", hosts.join(","));
        Ok(Target {
            config,
            shown,
            user,
            dbname,
        })
    }

    pub fn connect(&self) -> Result<Client, StoreError> {
        self.config
            .connect(NoTls)
            .map_err(|e| self.error(PgError::Client(e)))
    }

    /// What a failure means for whoever must act on it: an outage
    /// ([`StoreError::Unavailable`]), a set-up problem to fix (credentials,
    /// a missing database, privileges), or anything else the database said.
    pub fn error(&self, e: PgError) -> StoreError {
        let e = match e {
            PgError::Store(e) => return e,
            PgError::Client(e) => e,
        };
        let shown = &self.shown;
        let Some(db) = e.as_db_error() else {
            let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
            let text = e.to_string();
            if io
                || e.is_closed()
                || text.contains("connect")
                || text.contains("timed out")
                || text.contains("unexpected EOF")
            {
                return StoreError::Unavailable(format!("cannot reach `{shown}`: {text}"));
            }
            return StoreError::Storage(format!("the database client failed: {text}"));
        };
        let code = db.code();
        let message = db.message();
        let user = &self.user;
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            StoreError::Setup(format!(
                "the database at `{shown}` refused user `{user}`: {message}: check the user and \
                 password in `store` (VERDICT_STORE)"
            ))
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            StoreError::Setup(format!(
                "the database `{}` does not exist at `{shown}`: create it (`createdb {}`) or \
                 fix `store`",
                self.dbname, self.dbname
            ))
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            StoreError::Setup(format!(
                "user `{user}` lacks a privilege verdict needs at `{shown}`: {message}: grant it \
                 (verdict creates and then reads and writes its `verdict_*` tables, so it needs \
                 CREATE on the schema and ownership of those tables)"
            ))
        } else if code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS
            || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        {
            StoreError::Unavailable(format!("`{shown}`: {message}"))
        } else {
            StoreError::Storage(format!("the database at `{shown}` answered: {message}"))
        }
    }
}

/// State the writer and the poller publish for readers.
pub(super) struct PgShared {
    /// The newest head this replica has seen (its own commits, and what
    /// the poller reads): other replicas may be ahead by a poll interval.
    pub head: Mutex<Head>,
    pub stats: Counters,
    /// Why the database cannot be used right now, if it cannot (cleared by
    /// the next call that reaches it).
    pub outage: Mutex<Option<String>>,
    /// The active-set version last seen in the database.
    pub active: watch::Sender<u64>,
}

impl PgShared {
    pub fn reached(&self) {
        let mut outage = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(was) = outage.take() {
            tracing::info!(%was, "the database answers again");
        }
    }

    pub fn unreachable(&self, e: &StoreError) {
        let mut outage = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        if outage.is_none() {
            tracing::error!(error = %e, "the database is unavailable: refusing decisions until it is back");
        }
        *outage = Some(e.to_string());
    }

    /// Moves the known head forward (never back: a poll may read an older
    /// head than the writer's latest commit).
    pub fn advance(&self, head: Head) {
        let mut h = self.head.lock().unwrap_or_else(|p| p.into_inner());
        if head.seq > h.seq {
            *h = head;
        }
    }
}

/// A handle to the open PostgreSQL store; clones share it.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    target: Arc<Target>,
    idle: Mutex<Vec<Client>>,
    shared: Arc<PgShared>,
    /// `Option` only so `Drop` can close the channel before joining.
    tx: Option<mpsc::Sender<super::writer::Job>>,
    writer: Option<JoinHandle<()>>,
    poller: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (seq, hash) = self.head();
        f.debug_struct("PgStore")
            .field("database", &self.inner.target.shown)
            .field("head_seq", &seq)
            .field("head_hash", &hash)
            .finish()
    }
}

/// Appends waiting for the writer; beyond this, callers wait to enqueue.
const QUEUE: usize = 4096;

impl PgStore {
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let target = Arc::new(Target::parse(url)?);
        let mut client = target.connect().map_err(|e| match e {
            StoreError::Unavailable(m) => StoreError::Unavailable(format!(
                "{m}: check `store` (VERDICT_STORE) and that PostgreSQL is running and accepts \
                 connections from here"
            )),
            e => e,
        })?;
        schema::migrate(&mut client, &target.user).map_err(|e| target.error(e))?;
        let (head, version) = read_state(&mut client).map_err(|e| target.error(e))?;
        let shared = Arc::new(PgShared {
            head: Mutex::new(head),
            stats: Counters::default(),
            outage: Mutex::new(None),
            active: watch::Sender::new(version),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = writer::PgWriter {
            target: target.clone(),
            client: Some(client),
            shared: shared.clone(),
            rx,
        };
        let spawn_err = |e: std::io::Error| StoreError::Storage(format!("starting a thread: {e}"));
        let writer = std::thread::Builder::new()
            .name("verdict-pg-writer".into())
            .spawn(move || writer.run())
            .map_err(spawn_err)?;
        let poller = {
            let (target, shared, stop) = (target.clone(), shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("verdict-pg-poller".into())
                .spawn(move || poll(&target, &shared, &stop))
                .map_err(spawn_err)?
        };
        tracing::info!(database = %target.shown, "store: PostgreSQL");
        Ok(PgStore {
            inner: Arc::new(Inner {
                target,
                idle: Mutex::new(Vec::new()),
                shared,
                tx: Some(tx),
                writer: Some(writer),
                poller: Some(poller),
                stop,
            }),
        })
    }

    /// Runs `work` on a pooled connection. A pooled connection may have
    /// died with the server (a restart) since its last use: a connection
    /// failure on one is retried once on a fresh connection, which is safe
    /// because whatever `work` did in its transaction was rolled back.
    fn with_client<T>(
        &self,
        mut work: impl FnMut(&mut Client) -> Result<T, PgError>,
    ) -> Result<T, StoreError> {
        let inner = &self.inner;
        for attempt in 0..2 {
            let pooled = inner.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let fresh = pooled.is_none();
            let mut client = match pooled {
                Some(c) => c,
                None => match inner.target.connect() {
                    Ok(c) => c,
                    Err(e) => {
                        if matches!(e, StoreError::Unavailable(_)) {
                            inner.shared.unreachable(&e);
                        }
                        return Err(e);
                    }
                },
            };
            match work(&mut client) {
                Ok(v) => {
                    inner.shared.reached();
                    self.give_back(client);
                    return Ok(v);
                }
                Err(e) => {
                    let err = inner.target.error(e);
                    if matches!(err, StoreError::Unavailable(_)) {
                        drop(client);
                        if !fresh && attempt == 0 {
                            continue;
                        }
                        inner.shared.unreachable(&err);
                        return Err(err);
                    }
                    self.give_back(client);
                    return Err(err);
                }
            }
        }
        unreachable!("the second attempt always returns")
    }

    fn give_back(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(client);
        }
    }

    pub async fn append_for_reply(
        &self,
        eval: Evaluation,
        fingerprint: Option<Fingerprint>,
    ) -> Result<Receipt, StoreError> {
        super::writer::submit(self.inner.tx.as_ref(), eval, fingerprint).await
    }

    pub fn get(&self, id: &str) -> Result<Option<Decision>, StoreError> {
        let Some(seq) = keys::seq_of_id(id) else {
            return Ok(None);
        };
        Ok(self.get_by_seq(seq)?.filter(|d| d.id == id))
    }

    pub fn get_by_seq(&self, seq: u64) -> Result<Option<Decision>, StoreError> {
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(None);
        };
        self.with_client(|c| load(c, seq))
    }

    pub fn get_by_idempotency_key(&self, key: &str) -> Result<Option<Decision>, StoreError> {
        self.with_client(|c| {
            let row = c.query_opt(
                "SELECT d.seq, d.hash, d.body FROM verdict_idempotency i \
                 JOIN verdict_decisions d ON d.seq = i.seq WHERE i.key = $1",
                &[&key],
            )?;
            row.map(|r| decode_row(&r)).transpose()
        })
    }

    pub fn find_idempotent(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
    ) -> Result<Option<Decision>, StoreError> {
        let found = self.with_client(|c| stored_for_key(c, key))?;
        let Some((stored, decision)) = found else {
            return Ok(None);
        };
        same_request(key, stored, &decision, fingerprint)?;
        Ok(Some(decision))
    }

    /// The audit query. The sled store turns `since`/`until` into a seq
    /// window through `decided_at`, which never decreases along the chain;
    /// the same invariant holds here, so filtering on time is the same
    /// window and the pages are the same.
    pub fn query(&self, q: &Query) -> Result<Page, StoreError> {
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let hi = match &q.cursor {
            Some(cursor) => keys::decode_cursor(cursor)?,
            None => u64::MAX,
        };
        let hi = i64::try_from(hi).unwrap_or(i64::MAX);
        let since = q.since.map(nanos);
        let until = q.until.map(nanos);
        let verdict = q.verdict.map(|v| v.as_str().to_string());
        self.with_client(|c| {
            // One more row than the page holds tells whether there is a next page.
            let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
            let rows = c.query(
                "SELECT seq, hash, body FROM verdict_decisions \
                 WHERE seq < $1 \
                   AND ($2::text IS NULL OR service = $2) \
                   AND ($3::text IS NULL OR environment = $3) \
                   AND ($4::text IS NULL OR verdict = $4) \
                   AND ($5::bigint IS NULL OR decided_at_ns >= $5) \
                   AND ($6::bigint IS NULL OR decided_at_ns < $6) \
                 ORDER BY seq DESC LIMIT $7",
                &[
                    &hi,
                    &q.service,
                    &q.environment,
                    &verdict,
                    &since,
                    &until,
                    &fetch,
                ],
            )?;
            let mut page = Paged::new(limit);
            for row in &rows {
                if page.full() {
                    break;
                }
                let (seq, value) = raw_row(row);
                if !page.add(seq, &value)? {
                    break;
                }
            }
            Ok(page.finish())
        })
    }

    pub fn export(&self, after_seq: u64, limit: usize) -> Result<Vec<Decision>, StoreError> {
        let Ok(after) = i64::try_from(after_seq) else {
            return Ok(Vec::new());
        };
        self.with_client(|c| {
            let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            let rows = c.query(
                "SELECT seq, hash, body FROM verdict_decisions WHERE seq > $1 \
                 ORDER BY seq LIMIT $2",
                &[&after, &fetch],
            )?;
            let mut page = Paged::new(limit);
            for row in &rows {
                if page.full() {
                    break;
                }
                let (seq, value) = raw_row(row);
                if !page.add(seq, &value)? {
                    break;
                }
            }
            Ok(page.finish().items)
        })
    }

    /// Walks records 1..=head in order in one snapshot (repeatable read),
    /// so decisions appended during the walk are simply not part of it.
    /// The problems reported are worded as the embedded store words them.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.with_client(|c| {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let row = tx.query_one("SELECT seq, hash FROM verdict_chain_head WHERE id = 1", &[])?;
            let head_seq: i64 = row.get(0);
            let head_hash: String = row.get(1);
            let head_seq = u64::try_from(head_seq).unwrap_or(0);
            let mut prev = GENESIS.to_string();
            let mut checked = 0u64;
            loop {
                let rows = tx.query(
                    "SELECT seq, hash, body FROM verdict_decisions \
                     WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
                    &[&(checked as i64), &(head_seq as i64), &VERIFY_PAGE],
                )?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    let (seq, value) = raw_row(row);
                    let expected = checked + 1;
                    if seq != expected {
                        let problem = format!(
                            "record {expected} is missing: the next stored record is {seq}"
                        );
                        return Ok(chain::broken(checked, Some(prev), expected, problem));
                    }
                    if let Err(problem) = chain::check_record(seq, &value, &prev) {
                        return Ok(chain::broken(checked, Some(prev), seq, problem));
                    }
                    prev = row.get::<_, String>(1);
                    checked += 1;
                }
            }
            tx.commit()?;
            if checked != head_seq {
                let problem = format!(
                    "the chain head is record {head_seq} but the log ends at record {checked}"
                );
                return Ok(chain::broken(checked, Some(prev), checked + 1, problem));
            }
            if head_seq > 0 && head_hash != prev {
                let problem = format!(
                    "the chain head hash `{head_hash}` differs from the last record's `{prev}`"
                );
                return Ok(chain::broken(checked, Some(prev), head_seq, problem));
            }
            Ok(VerifyReport {
                ok: true,
                checked,
                head: (checked > 0).then_some(prev),
                broken: None,
            })
        })
    }

    pub fn head(&self) -> (u64, String) {
        super::head_of(&self.inner.shared.head)
    }

    pub fn stats(&self) -> StoreStats {
        self.inner.shared.stats.snapshot()
    }

    pub fn put_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO verdict_checkpoint (id, note) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET note = EXCLUDED.note",
                &[&note],
            )?;
            Ok(())
        })
    }

    pub fn checkpoint(&self) -> Result<Option<String>, StoreError> {
        self.with_client(|c| {
            Ok(
                c.query_opt("SELECT note FROM verdict_checkpoint WHERE id = 1", &[])?
                    .map(|r| r.get(0)),
            )
        })
    }

    /// Every commit is durable when it returns (the database's own WAL
    /// flush): nothing is left to flush.
    pub fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    pub fn failure(&self) -> Option<String> {
        self.inner
            .shared
            .outage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn active_set_changes(&self) -> watch::Receiver<u64> {
        self.inner.shared.active.subscribe()
    }

    /// Runs `work` in a transaction that also bumps the active-set version,
    /// so every replica's poller sees that something changed.
    fn change<T>(
        &self,
        mut work: impl FnMut(&mut postgres::Transaction<'_>) -> Result<T, PgError>,
    ) -> Result<T, StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            let out = work(&mut tx)?;
            tx.execute(
                "UPDATE verdict_active_set SET version = version + 1 WHERE id = 1",
                &[],
            )?;
            tx.commit()?;
            Ok(out)
        })
    }

    pub fn put_policy(&self, meta: &PolicyMeta, bytes: &[u8]) -> Result<(), StoreError> {
        let value = encode("policy", &meta.name, meta)?;
        self.change(|tx| {
            put_policy_rows(tx, meta, bytes, &value)?;
            Ok(())
        })
    }

    pub fn builtins_installed(&self) -> Result<bool, StoreError> {
        self.with_client(|c| builtins_marked(c))
    }

    /// Installs `items` and marks the built-ins installed, in one
    /// transaction under an advisory lock: replicas on their first start
    /// together install them once, and a mark already there (another
    /// replica won) leaves everything as that replica installed it.
    pub fn install_builtins(&self, items: &[BuiltinInstall<'_>]) -> Result<bool, StoreError> {
        let mut encoded = Vec::with_capacity(items.len());
        for i in items {
            encoded.push((
                encode("policy", &i.meta.name, &i.meta)?,
                encode("binding", &i.binding_name, &i.binding)?,
            ));
        }
        self.change(|tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&BUILTINS_LOCK])?;
            if builtins_marked(tx)? {
                return Ok(false);
            }
            for (i, (policy, binding)) in items.iter().zip(&encoded) {
                put_policy_rows(tx, &i.meta, i.bytes, policy)?;
                put_named(
                    tx,
                    "verdict_bindings",
                    "name",
                    "value",
                    &i.binding_name,
                    binding,
                )?;
            }
            tx.execute(
                "INSERT INTO verdict_registry_meta (key) VALUES ('builtins-installed') \
                 ON CONFLICT DO NOTHING",
                &[],
            )?;
            Ok(true)
        })
    }

    /// Never reclaims here. On sled this runs at start, when no evaluation
    /// in flight could still record a version about to be deleted; with
    /// several replicas another one may be evaluating it at that very
    /// moment, so every uploaded version is kept.
    pub fn reclaim_unreferenced(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    pub fn policy_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_client(|c| {
            Ok(c.query_opt(
                "SELECT bytes FROM verdict_policy_blobs WHERE digest = $1",
                &[&digest],
            )?
            .map(|r| r.get(0)))
        })
    }

    /// Registered policies, by name (byte order, as on sled).
    pub fn policies(&self) -> Result<Vec<PolicyMeta>, StoreError> {
        let rows =
            self.list("SELECT name, meta FROM verdict_policies ORDER BY name COLLATE \"C\"")?;
        parse_all::<PolicyMeta>("policy", rows).map(|v| v.into_iter().map(|(_, m)| m).collect())
    }

    pub fn policy_versions(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.list(
            "SELECT name, digest FROM verdict_policy_versions \
             ORDER BY name COLLATE \"C\", digest COLLATE \"C\"",
        )
    }

    pub fn delete_policy(&self, name: &str) -> Result<bool, StoreError> {
        self.remove("DELETE FROM verdict_policies WHERE name = $1", name)
    }

    pub fn put_binding(&self, name: &str, b: &Binding) -> Result<(), StoreError> {
        let value = encode("binding", name, b)?;
        self.change(|tx| put_named(tx, "verdict_bindings", "name", "value", name, &value))
    }

    pub fn bindings(&self) -> Result<Vec<(String, Binding)>, StoreError> {
        let rows =
            self.list("SELECT name, value FROM verdict_bindings ORDER BY name COLLATE \"C\"")?;
        parse_all("binding", rows)
    }

    pub fn delete_binding(&self, name: &str) -> Result<bool, StoreError> {
        self.remove("DELETE FROM verdict_bindings WHERE name = $1", name)
    }

    pub fn put_freeze(&self, f: &Freeze) -> Result<(), StoreError> {
        let value = encode("freeze", &f.id, f)?;
        self.change(|tx| put_named(tx, "verdict_freezes", "id", "value", &f.id, &value))
    }

    pub fn freezes(&self) -> Result<Vec<Freeze>, StoreError> {
        let rows = self.list("SELECT id, value FROM verdict_freezes ORDER BY id COLLATE \"C\"")?;
        parse_all::<Freeze>("freeze", rows).map(|v| v.into_iter().map(|(_, f)| f).collect())
    }

    pub fn delete_freeze(&self, id: &str) -> Result<bool, StoreError> {
        self.remove("DELETE FROM verdict_freezes WHERE id = $1", id)
    }

    fn list(&self, sql: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.with_client(|c| {
            Ok(c.query(sql, &[])?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
    }

    fn remove(&self, sql: &str, key: &str) -> Result<bool, StoreError> {
        self.change(|tx| Ok(tx.execute(sql, &[&key])? > 0))
    }

    /// Copies a chain, registry and checkpoint into this (empty) store in
    /// one transaction; see `store/migrate.rs`.
    pub(super) fn import(&self, dump: &super::migrate::Dump) -> Result<(), StoreError> {
        self.change(|tx| {
            let row = tx.query_one(
                "SELECT seq FROM verdict_chain_head WHERE id = 1 FOR UPDATE",
                &[],
            )?;
            let existing: i64 = row.get(0);
            if existing != 0 {
                return Err(setup_error(format!(
                    "the database already holds an audit chain ({existing} decisions): \
                     migrate into an empty database"
                )));
            }
            for (digest, bytes) in &dump.blobs {
                tx.execute(
                    "INSERT INTO verdict_policy_blobs (digest, bytes) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                    &[digest, bytes],
                )?;
            }
            for (name, digest) in &dump.versions {
                tx.execute(
                    "INSERT INTO verdict_policy_versions (name, digest) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                    &[name, digest],
                )?;
            }
            for meta in &dump.policies {
                let value = encode("policy", &meta.name, meta)?;
                put_named(tx, "verdict_policies", "name", "meta", &meta.name, &value)?;
            }
            for (name, b) in &dump.bindings {
                let value = encode("binding", name, b)?;
                put_named(tx, "verdict_bindings", "name", "value", name, &value)?;
            }
            for f in &dump.freezes {
                let value = encode("freeze", &f.id, f)?;
                put_named(tx, "verdict_freezes", "id", "value", &f.id, &value)?;
            }
            if dump.builtins_installed {
                tx.execute(
                    "INSERT INTO verdict_registry_meta (key) VALUES ('builtins-installed') \
                     ON CONFLICT DO NOTHING",
                    &[],
                )?;
            }
            if let Some(note) = &dump.checkpoint {
                tx.execute(
                    "INSERT INTO verdict_checkpoint (id, note) VALUES (1, $1) \
                     ON CONFLICT (id) DO UPDATE SET note = EXCLUDED.note",
                    &[note],
                )?;
            }
            let mut rows = writer::Rows::default();
            for (seq, value) in &dump.records {
                let d = chain::decode(*seq, value)?;
                let (hash, body) = chain::split_record(value).unwrap_or_default();
                rows.push(&d, hash, body.to_vec());
                if rows.len() >= 1000 {
                    rows.insert(tx)?;
                    rows = writer::Rows::default();
                }
            }
            rows.insert(tx)?;
            for (key, fingerprint, seq) in &dump.idempotency {
                tx.execute(
                    "INSERT INTO verdict_idempotency (key, fingerprint, seq) VALUES ($1, $2, $3)",
                    &[key, &fingerprint.map(|f| f.to_vec()), &(*seq as i64)],
                )?;
            }
            if let Some(head) = &dump.head {
                tx.execute(
                    "UPDATE verdict_chain_head SET seq = $1, hash = $2, decided_at_ns = $3 \
                     WHERE id = 1",
                    &[&(head.seq as i64), &head.hash, &head.decided_at.map(nanos)],
                )?;
            }
            Ok(())
        })?;
        if let Some(head) = &dump.head {
            self.inner.shared.advance(head.clone());
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it drains the queue.
        self.tx.take();
        self.stop.store(true, Ordering::Relaxed);
        for handle in [self.writer.take(), self.poller.take()]
            .into_iter()
            .flatten()
        {
            let _ = handle.join();
        }
        // Each client owns a small runtime, which may not be dropped on an
        // async worker thread (the last handle may go there): drop them on
        // a thread of their own.
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

/// The head and the active-set version, read together.
fn read_state(c: &mut Client) -> Result<(Head, u64), PgError> {
    let row = c.query_one(
        "SELECT h.seq, h.hash, h.decided_at_ns, a.version \
         FROM verdict_chain_head h, verdict_active_set a WHERE h.id = 1 AND a.id = 1",
        &[],
    )?;
    let head = Head {
        seq: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
        hash: row.get(1),
        decided_at: row.get::<_, Option<i64>>(2).map(from_nanos),
    };
    let version = u64::try_from(row.get::<_, i64>(3)).unwrap_or(0);
    Ok((head, version))
}

/// The poller: every [`POLL_INTERVAL`], reads the active-set version and
/// the head on its own connection. A new version is announced to the
/// service; a failure marks the database unreachable (readiness) until a
/// read succeeds again.
fn poll(target: &Target, shared: &PgShared, stop: &AtomicBool) {
    let mut client: Option<Client> = None;
    while !stop.load(Ordering::Relaxed) {
        if client.is_none() {
            match target.connect() {
                Ok(c) => client = Some(c),
                Err(e) => shared.unreachable(&e),
            }
        }
        if let Some(c) = client.as_mut() {
            match read_state(c) {
                Ok((head, version)) => {
                    shared.reached();
                    shared.advance(head);
                    shared.active.send_if_modified(|v| {
                        let changed = *v != version;
                        *v = version;
                        changed
                    });
                }
                Err(e) => {
                    client = None;
                    shared.unreachable(&target.error(e));
                }
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn load(c: &mut Client, seq: i64) -> Result<Option<Decision>, PgError> {
    let row = c.query_opt(
        "SELECT seq, hash, body FROM verdict_decisions WHERE seq = $1",
        &[&seq],
    )?;
    row.map(|r| decode_row(&r)).transpose()
}

/// The fingerprint stored with `key` and the decision it names, if the key
/// was used.
pub(super) fn stored_for_key<C: postgres::GenericClient>(
    c: &mut C,
    key: &str,
) -> Result<Option<(Option<Fingerprint>, Decision)>, PgError> {
    let row = c.query_opt(
        "SELECT d.seq, d.hash, d.body, i.fingerprint FROM verdict_idempotency i \
         JOIN verdict_decisions d ON d.seq = i.seq WHERE i.key = $1",
        &[&key],
    )?;
    let Some(row) = row else { return Ok(None) };
    let fingerprint = row
        .get::<_, Option<Vec<u8>>>(3)
        .and_then(|f| Fingerprint::try_from(f.as_slice()).ok());
    Ok(Some((fingerprint, decode_row(&row)?)))
}

/// `(seq, hash ‖ body)`: a row in the layout the chain functions read.
fn raw_row(row: &postgres::Row) -> (u64, Vec<u8>) {
    let seq: i64 = row.get(0);
    let hash: &str = row.get(1);
    let body: &[u8] = row.get(2);
    (
        u64::try_from(seq).unwrap_or(0),
        chain::encode_record(hash, body),
    )
}

pub(super) fn decode_row(row: &postgres::Row) -> Result<Decision, PgError> {
    let (seq, value) = raw_row(row);
    Ok(chain::decode(seq, &value)?)
}

fn builtins_marked<C: postgres::GenericClient>(c: &mut C) -> Result<bool, PgError> {
    Ok(c.query_opt(
        "SELECT 1 FROM verdict_registry_meta WHERE key = 'builtins-installed'",
        &[],
    )?
    .is_some())
}

fn put_policy_rows(
    tx: &mut postgres::Transaction<'_>,
    meta: &PolicyMeta,
    bytes: &[u8],
    value: &str,
) -> Result<(), PgError> {
    // Content-addressed: the bytes under a digest never change.
    tx.execute(
        "INSERT INTO verdict_policy_blobs (digest, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&meta.digest, &bytes],
    )?;
    tx.execute(
        "INSERT INTO verdict_policy_versions (name, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&meta.name, &meta.digest],
    )?;
    put_named(tx, "verdict_policies", "name", "meta", &meta.name, value)
}

/// Upserts one JSON `value` under `key` (table and column names are this
/// module's constants, never input).
fn put_named(
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    key_column: &str,
    value_column: &str,
    key: &str,
    value: &str,
) -> Result<(), PgError> {
    let sql = format!(
        "INSERT INTO {table} ({key_column}, {value_column}) VALUES ($1, $2) \
         ON CONFLICT ({key_column}) DO UPDATE SET {value_column} = EXCLUDED.{value_column}"
    );
    tx.execute(sql.as_str(), &[&key, &value])?;
    Ok(())
}

fn encode<T: serde::Serialize>(what: &str, name: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Storage(format!("encoding {what} `{name}`: {e}")))
}

fn parse_all<T: DeserializeOwned>(
    what: &str,
    rows: Vec<(String, String)>,
) -> Result<Vec<(String, T)>, StoreError> {
    rows.into_iter()
        .map(|(name, value)| {
            let parsed = serde_json::from_str(&value).map_err(|e| StoreError::Corrupt {
                what: format!("{what} `{name}`"),
                reason: e.to_string(),
            })?;
            Ok((name, parsed))
        })
        .collect()
}

/// Nanoseconds since the epoch, saturated to what a `bigint` holds (the
/// years 1677–2262; far-off query bounds clamp to them).
pub(super) fn nanos(t: Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(if t.as_nanosecond() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

pub(super) fn from_nanos(n: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(n)).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Idempotency keys first used in the batch being built (not in the table
/// yet): the fingerprint stored with each, and its decision.
pub(super) type Fresh = HashMap<String, (Option<Fingerprint>, Decision)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password_and_other_schemes_are_refused() {
        let t = Target::parse("postgres://verdict:s3cret@db.internal:6543/audit").unwrap();
        assert_eq!(t.shown, "postgres://verdict@db.internal:6543/audit");
        assert_eq!((t.user.as_str(), t.dbname.as_str()), ("verdict", "audit"));
        let t = Target::parse("postgresql://verdict@db").unwrap();
        assert_eq!(
            t.shown, "postgres://verdict@db:5432/verdict",
            "dbname defaults to the user"
        );
        for bad in ["mysql://root:s3cret@db/x", "db.internal:5432", ""] {
            let e = Target::parse(bad).err().unwrap().to_string();
            assert!(e.contains("must be a `postgres://"), "{bad}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
        let e = Target::parse("postgres://u:s3cret@db/x?sslmode=require")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`sslmode=require` is not supported yet"), "{e}");
        let e = Target::parse("postgres://u:s3cret@db:notaport/x")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("invalid `store` URL: "), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn nobody_listening_is_an_outage_naming_the_database() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The listener is closed again: nothing answers on `port`.
        let t = Target::parse(&format!("postgres://u:pw@127.0.0.1:{port}/x")).unwrap();
        match t.connect() {
            Err(StoreError::Unavailable(m)) => {
                assert!(
                    m.starts_with(&format!("cannot reach `postgres://u@127.0.0.1:{port}/x`")),
                    "{m}"
                )
            }
            other => panic!("expected an outage, got {:?}", other.err()),
        }
    }

    #[test]
    fn nanoseconds_round_trip_and_far_bounds_clamp() {
        let t: Timestamp = "2026-11-30T22:00:00.123456789Z".parse().unwrap();
        assert_eq!(from_nanos(nanos(t)), t);
        let far: Timestamp = "9999-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(nanos(far), i64::MAX);
        let early: Timestamp = "0001-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(nanos(early), i64::MIN);
    }
}
