//! This replica's writer: the only code here that appends to the chain.
//!
//! As on sled, one thread takes whatever has queued and commits it as one
//! batch (group commit). What sled gets from being the only writer, this
//! gets from the chain-head row: every batch transaction locks it first,
//! so writers on all replicas take turns, each reading the head the last
//! one left. Callers are answered only after COMMIT returned.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use postgres::{Client, Transaction};
use tokio::sync::mpsc;

use super::super::chain::{self, Head};
use super::super::writer::Job;
use super::super::{same_request, Appended, Receipt, StoreError};
use super::{from_nanos, nanos, stored_for_key, Fresh, PgError, PgShared, Target};
use crate::domain::{Decision, Evaluation, Fingerprint};

/// Most records one batch takes (as on sled).
const MAX_BATCH: usize = 512;

pub(super) struct PgWriter {
    pub target: Arc<Target>,
    /// `None` after a connection failure, until the next batch reconnects.
    pub client: Option<Client>,
    pub shared: Arc<PgShared>,
    pub rx: mpsc::Receiver<Job>,
}

/// A batch that did not commit.
struct Aborted {
    error: PgError,
    /// Whether COMMIT had been sent: then the batch may have committed
    /// (its answer was lost with the connection) and must not be retried
    /// as new records, only reported.
    commit_sent: bool,
}

impl From<postgres::Error> for Aborted {
    fn from(e: postgres::Error) -> Self {
        Aborted {
            error: PgError::Client(e),
            commit_sent: false,
        }
    }
}

impl From<PgError> for Aborted {
    fn from(error: PgError) -> Self {
        Aborted {
            error,
            commit_sent: false,
        }
    }
}

/// A committed batch: each job's answer, the new head, records written.
type Committed = (Vec<Result<Receipt, StoreError>>, Head, u64);

impl PgWriter {
    pub fn run(mut self) {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = self.rx.blocking_recv() {
            jobs.push(first);
            while jobs.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            let answers = self.commit(&jobs);
            for (job, answer) in jobs.drain(..).zip(answers) {
                // The caller may have given up; the record stands either
                // way, which is what idempotency keys are for.
                let _ = job.reply.send(answer);
            }
        }
        // The client (and its runtime) drops here, on this thread.
    }

    /// Commits `jobs` as one batch and returns each one's answer. A batch
    /// that fails on a connection that may have died since its last use
    /// (the database restarted) is retried once on a fresh connection, as
    /// long as COMMIT was not sent.
    fn commit(&mut self, jobs: &[Job]) -> Vec<Result<Receipt, StoreError>> {
        let all = |e: StoreError| -> Vec<Result<Receipt, StoreError>> {
            jobs.iter().map(|_| Err(e.clone())).collect()
        };
        for attempt in 0..2 {
            let fresh = self.client.is_none();
            if fresh {
                match self.target.connect() {
                    Ok(c) => self.client = Some(c),
                    Err(e) => {
                        if matches!(e, StoreError::Unavailable(_)) {
                            self.shared.unreachable(&e);
                        }
                        return all(e);
                    }
                }
            }
            let client = self.client.as_mut().expect("connected above");
            let started = std::time::Instant::now();
            match try_commit(client, jobs) {
                Ok((answers, head, written)) => {
                    crate::telemetry::metrics().store_flush(started.elapsed());
                    self.shared.reached();
                    if written > 0 {
                        self.shared.advance(head);
                        let stats = &self.shared.stats;
                        stats.batches.fetch_add(1, Ordering::Relaxed);
                        stats.records.fetch_add(written, Ordering::Relaxed);
                        stats.largest_batch.fetch_max(written, Ordering::Relaxed);
                    }
                    return answers;
                }
                Err(aborted) => {
                    let err = self.target.error(aborted.error);
                    if !matches!(err, StoreError::Unavailable(_)) {
                        if self.client.as_ref().is_some_and(Client::is_closed) {
                            self.client = None;
                        }
                        tracing::error!(error = %err, "appending a batch of decisions failed");
                        return all(err);
                    }
                    self.client = None;
                    if !fresh && attempt == 0 && !aborted.commit_sent {
                        continue;
                    }
                    self.shared.unreachable(&err);
                    if aborted.commit_sent {
                        return all(StoreError::Unavailable(format!(
                            "{err}: the connection was lost while committing, so these \
                             decisions may or may not be stored; retry with the same \
                             idempotency key to find out"
                        )));
                    }
                    return all(err);
                }
            }
        }
        unreachable!("the second attempt always returns")
    }
}

fn try_commit(client: &mut Client, jobs: &[Job]) -> Result<Committed, Aborted> {
    let mut tx = client.transaction()?;
    // INVARIANT: the head row stays locked until COMMIT, so no other
    // replica appends between reading it here and moving it below.
    let row = tx.query_one(
        "SELECT seq, hash, decided_at_ns FROM verdict_chain_head WHERE id = 1 FOR UPDATE",
        &[],
    )?;
    let mut head = Head {
        seq: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
        hash: row.get(1),
        decided_at: row.get::<_, Option<i64>>(2).map(from_nanos),
    };
    let mut rows = Rows::default();
    let mut fresh = Fresh::new();
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        answers.push(place(
            &mut tx,
            job.eval.clone(),
            job.fingerprint,
            &mut head,
            &mut rows,
            &mut fresh,
        )?);
    }
    let written = rows.len() as u64;
    if written > 0 {
        rows.insert(&mut tx)?;
        tx.execute(
            "UPDATE verdict_chain_head SET seq = $1, hash = $2, decided_at_ns = $3 WHERE id = 1",
            &[&(head.seq as i64), &head.hash, &head.decided_at.map(nanos)],
        )?;
    }
    tx.commit().map_err(|e| Aborted {
        error: PgError::Client(e),
        commit_sent: true,
    })?;
    Ok((answers, head, written))
}

/// Gives one evaluation its place in the chain, or finds the decision its
/// idempotency key already names (committed by any replica, or earlier in
/// this batch). A key used for another request is that job's error alone.
fn place(
    tx: &mut Transaction<'_>,
    eval: Evaluation,
    fingerprint: Option<Fingerprint>,
    head: &mut Head,
    rows: &mut Rows,
    fresh: &mut Fresh,
) -> Result<Result<Receipt, StoreError>, PgError> {
    let Some(key) = eval.request.idempotency_key.clone() else {
        return Ok(Ok(append_new(eval, None, head, rows, fresh)?));
    };
    let found = match fresh.get(&key) {
        Some(hit) => Some(hit.clone()),
        None => stored_for_key(tx, &key)?,
    };
    let Some((stored, decision)) = found else {
        return Ok(Ok(append_new(eval, fingerprint, head, rows, fresh)?));
    };
    if let Some(fp) = &fingerprint {
        if let Err(e) = same_request(&key, stored, &decision, fp) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(Receipt {
        appended: Appended::Existing(decision),
        json: None,
    }))
}

fn append_new(
    eval: Evaluation,
    fingerprint: Option<Fingerprint>,
    head: &mut Head,
    rows: &mut Rows,
    fresh: &mut Fresh,
) -> Result<Receipt, StoreError> {
    let chain::Sealed {
        seq,
        body,
        hash,
        stored,
        json,
        ..
    } = chain::seal(head, eval)?;
    rows.push(&stored, &hash, body);
    if let Some(key) = stored.request.idempotency_key.clone() {
        rows.keys.push(key.clone());
        rows.fingerprints.push(fingerprint.map(|f| f.to_vec()));
        rows.key_seqs.push(seq as i64);
        fresh.insert(key, (fingerprint, stored.clone()));
    }
    Ok(Receipt {
        appended: Appended::New(stored),
        json: Some(json),
    })
}

/// A batch's new rows, column by column: each table gets one INSERT of
/// arrays (`unnest`) instead of a round trip per record.
#[derive(Default)]
pub(super) struct Rows {
    seqs: Vec<i64>,
    prev_hashes: Vec<String>,
    hashes: Vec<String>,
    bodies: Vec<Vec<u8>>,
    services: Vec<String>,
    environments: Vec<String>,
    verdicts: Vec<String>,
    times: Vec<i64>,
    digests: Vec<String>,
    pub keys: Vec<String>,
    pub fingerprints: Vec<Option<Vec<u8>>>,
    pub key_seqs: Vec<i64>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// Adds the record of `d` (whose canonical body is `body`, hashed to `hash`).
    pub fn push(&mut self, d: &Decision, hash: &str, body: Vec<u8>) {
        self.seqs.push(d.seq as i64);
        self.prev_hashes.push(d.prev_hash.clone());
        self.hashes.push(hash.to_string());
        self.bodies.push(body);
        self.services.push(d.request.deployment.service.clone());
        self.environments
            .push(d.request.deployment.environment.clone());
        self.verdicts.push(d.verdict.as_str().to_string());
        self.times.push(nanos(d.decided_at));
        self.digests
            .extend(d.policies.iter().map(|p| p.digest.clone()));
    }

    pub fn insert(&self, tx: &mut Transaction<'_>) -> Result<(), PgError> {
        if self.seqs.is_empty() {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO verdict_decisions \
             (seq, prev_hash, hash, body, service, environment, verdict, decided_at_ns) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], \
                                  $5::text[], $6::text[], $7::text[], $8::bigint[])",
            &[
                &self.seqs,
                &self.prev_hashes,
                &self.hashes,
                &self.bodies,
                &self.services,
                &self.environments,
                &self.verdicts,
                &self.times,
            ],
        )?;
        if !self.keys.is_empty() {
            tx.execute(
                "INSERT INTO verdict_idempotency (key, fingerprint, seq) \
                 SELECT * FROM unnest($1::text[], $2::bytea[], $3::bigint[])",
                &[&self.keys, &self.fingerprints, &self.key_seqs],
            )?;
        }
        if !self.digests.is_empty() {
            tx.execute(
                "INSERT INTO verdict_used_digests (digest) \
                 SELECT DISTINCT unnest($1::text[]) ON CONFLICT DO NOTHING",
                &[&self.digests],
            )?;
        }
        Ok(())
    }
}
