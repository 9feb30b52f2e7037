//! The single writer: the only code that appends to the chain.
//!
//! One thread owning appends gives the chain its order for free (no lock
//! around "read head, hash, write") and lets concurrent requests share one
//! fsync: it takes everything queued, writes it as one atomic batch,
//! flushes once, and only then answers every caller in the batch.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::chain::{self, Head};
use super::{keys, same_request, stored_for_key, Appended, Receipt, Shared, StoreError};
use crate::domain::{Decision, Evaluation, Fingerprint};

/// Most records one batch takes, so one caller's latency stays bounded when
/// the queue is long.
const MAX_BATCH: usize = 512;

pub(super) struct Job {
    pub eval: Evaluation,
    /// Of the request as sent, stored with its idempotency key (if any).
    pub fingerprint: Option<Fingerprint>,
    pub reply: oneshot::Sender<Result<Receipt, StoreError>>,
}

/// Hand `eval` to a writer (either backend's) and wait for its answer,
/// which comes only once the batch holding it is durable.
pub(super) async fn submit(
    tx: Option<&mpsc::Sender<Job>>,
    eval: Evaluation,
    fingerprint: Option<Fingerprint>,
) -> Result<Receipt, StoreError> {
    let tx = tx.ok_or(StoreError::Closed)?;
    let (reply, answer) = oneshot::channel();
    tx.send(Job {
        eval,
        fingerprint,
        reply,
    })
    .await
    .map_err(|_| StoreError::Closed)?;
    answer.await.map_err(|_| StoreError::Closed)?
}

pub(super) struct Writer {
    pub db: sled::Db,
    pub tree: sled::Tree,
    pub shared: Arc<Shared>,
    pub rx: mpsc::Receiver<Job>,
    /// Off only for the benchmark's "without per-decision flush" figure;
    /// sled then flushes in the background on its own timer.
    pub flush_each_batch: bool,
    /// The writer's own copy of the head; `shared.head` mirrors it for readers.
    pub head: Head,
    /// Policy digests whose "used by a decision" marker a batch applied
    /// since open: a marker is written once, not with every record (it was
    /// half of a record's tree inserts).
    pub marked: HashSet<String>,
}

/// Idempotency keys first used in the current batch (not in the tree
/// yet): the fingerprint stored with each, and its decision.
type Fresh = HashMap<String, (Option<Fingerprint>, Decision)>;

/// The answers of one batch, held back until the batch is durable.
type Outcomes = Vec<(
    oneshot::Sender<Result<Receipt, StoreError>>,
    Result<Receipt, StoreError>,
)>;

impl Writer {
    /// Runs until every `Store` handle (and so every sender) is gone, after
    /// draining what was already queued.
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
            let outcomes = match self.shared.failed() {
                // sled refuses every write after one failed: answer at once.
                Some(e) => fail(
                    jobs.drain(..).map(|j| (j.reply, Err(e.clone()))).collect(),
                    e,
                ),
                None => self.commit(&mut jobs),
            };
            for (reply, result) in outcomes {
                // The caller may have given up (request cancelled); the
                // record is stored either way, which is what idempotency
                // keys are for.
                let _ = reply.send(result);
            }
        }
    }

    fn commit(&mut self, jobs: &mut Vec<Job>) -> Outcomes {
        let mut head = self.head.clone();
        let mut batch = sled::Batch::default();
        // Idempotency keys first seen in this batch: not in the tree yet.
        let mut fresh: Fresh = HashMap::new();
        let mut outcomes: Outcomes = Vec::with_capacity(jobs.len());
        let mut written = 0u64;
        // Digests first marked used in this batch.
        let mut marks = HashSet::new();
        for job in jobs.drain(..) {
            let result = self.place(job.eval, job.fingerprint, &mut head, &mut batch, &mut fresh);
            if let Ok(Receipt {
                appended: Appended::New(d),
                ..
            }) = &result
            {
                written += 1;
                for p in &d.policies {
                    if !self.marked.contains(&p.digest) && marks.insert(p.digest.clone()) {
                        batch.insert(keys::used_digest(&p.digest), &[][..]);
                    }
                }
            }
            outcomes.push((job.reply, result));
        }
        if written > 0 {
            match serde_json::to_vec(&head) {
                Ok(h) => batch.insert(keys::HEAD, h),
                Err(e) => {
                    return fail(
                        outcomes,
                        StoreError::Storage(format!("encoding the chain head: {e}")),
                    )
                }
            }
            if let Err(e) = self.tree.apply_batch(batch) {
                // Nothing was applied: the head stays where it was.
                let err = self.shared.fail(&e.into());
                return fail(outcomes, err);
            }
            // Applied (visible to readers) even if the flush below fails: the
            // head must follow the tree, or the next batch would fork the chain.
            self.head = head.clone();
            *self.shared.head.lock().unwrap_or_else(|p| p.into_inner()) = head;
            // Applied: a later batch may rely on these markers. (Should the
            // flush below fail, the store refuses every later write.)
            self.marked.extend(marks);
        }
        // Flush even when only duplicates were answered: their originals may
        // come from a batch whose flush failed.
        if self.flush_each_batch {
            let started = std::time::Instant::now();
            let flushed = self.db.flush();
            crate::telemetry::metrics().store_flush(started.elapsed());
            if let Err(e) = flushed {
                let err = self
                    .shared
                    .fail(&StoreError::Storage(format!("flushing to disk: {e}")));
                return fail(outcomes, err);
            }
        }
        if written > 0 {
            let stats = &self.shared.stats;
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats.records.fetch_add(written, Ordering::Relaxed);
            stats.largest_batch.fetch_max(written, Ordering::Relaxed);
        }
        outcomes
    }

    /// Gives one evaluation its place in the chain (or finds the decision
    /// its idempotency key already names) and adds its writes to `batch`.
    fn place(
        &self,
        eval: Evaluation,
        fingerprint: Option<Fingerprint>,
        head: &mut Head,
        batch: &mut sled::Batch,
        fresh: &mut Fresh,
    ) -> Result<Receipt, StoreError> {
        let key = eval.request.idempotency_key.clone();
        if let Some(key) = key.as_deref() {
            let (stored, d) = if let Some((stored, d)) = fresh.get(key) {
                (*stored, d.clone())
            } else if let Some(value) = self.tree.get(keys::idempotency(key))? {
                let d = stored_for_key(&self.tree, key, &value)?;
                (keys::idempotency_fingerprint(&value), d)
            } else {
                return self.append_new(eval, key, fingerprint, head, batch, fresh);
            };
            if let Some(fp) = &fingerprint {
                same_request(key, stored, &d, fp)?;
            }
            return Ok(Receipt {
                appended: Appended::Existing(d),
                json: None,
            });
        }
        self.append_new(eval, "", None, head, batch, fresh)
    }

    /// Gives `eval` the next place in the chain; a non-empty `key` is
    /// stored with `fingerprint` and remembered for the rest of the batch.
    fn append_new(
        &self,
        eval: Evaluation,
        key: &str,
        fingerprint: Option<Fingerprint>,
        head: &mut Head,
        batch: &mut sled::Batch,
        fresh: &mut Fresh,
    ) -> Result<Receipt, StoreError> {
        let chain::Sealed {
            seq,
            value,
            stored,
            json,
            ..
        } = chain::seal(head, eval)?;

        let dep = &stored.request.deployment;
        batch.insert(&keys::record(seq), value);
        batch.insert(keys::index(keys::BY_SERVICE, &dep.service, seq), &[][..]);
        batch.insert(
            keys::index(keys::BY_ENVIRONMENT, &dep.environment, seq),
            &[][..],
        );
        batch.insert(
            keys::index(keys::BY_VERDICT, stored.verdict.as_str(), seq),
            &[][..],
        );
        batch.insert(keys::time(stored.decided_at, seq), &[][..]);
        if !key.is_empty() {
            batch.insert(
                keys::idempotency(key),
                keys::idempotency_value(seq, fingerprint.as_ref()),
            );
            fresh.insert(key.to_string(), (fingerprint, stored.clone()));
        }
        Ok(Receipt {
            appended: Appended::New(stored),
            json: Some(json),
        })
    }
}

/// Replaces every answer of a batch with `err`: nothing is acknowledged
/// that is not durable.
fn fail(outcomes: Outcomes, err: StoreError) -> Outcomes {
    outcomes
        .into_iter()
        .map(|(reply, _)| (reply, Err(err.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{eval, keyed};
    use super::super::{Options, Store, StoreStats};
    use super::*;
    use crate::domain::Verdict;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_get_consecutive_seqs_and_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let store = store.clone();
                let service = format!("svc-{}", i % 7);
                tokio::spawn(
                    async move { store.append(eval(&service, "prod", Verdict::Promote)).await },
                )
            })
            .collect();
        let mut seqs = Vec::new();
        for t in tasks {
            let Appended::New(d) = t.await.unwrap().unwrap() else {
                panic!("no idempotency keys here")
            };
            assert_eq!(d.id, keys::decision_id(d.seq));
            seqs.push(d.seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());

        let report = store.verify().unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.checked, 200);
        assert_eq!(store.head().0, 200);
        // How the 200 were batched depends on scheduling; that queued jobs
        // share one commit is proven deterministically below.
        let stats = store.stats();
        assert_eq!(stats.records, 200);
        assert!(stats.batches >= 1 && stats.batches <= 200, "{stats:?}");
    }

    /// A writer over a fresh database in `dir`, driven by hand through `rx`.
    fn writer_on(dir: &std::path::Path, rx: mpsc::Receiver<Job>) -> (Writer, Arc<Shared>) {
        let db = sled::Config::new().path(dir).open().unwrap();
        let tree = db.open_tree("audit").unwrap();
        let shared = Arc::new(Shared::new(Head::genesis()));
        let writer = Writer {
            db,
            tree,
            shared: shared.clone(),
            rx,
            flush_each_batch: true,
            marked: HashSet::new(),
            head: Head::genesis(),
        };
        (writer, shared)
    }

    /// Group commit: everything already queued when the writer wakes is
    /// written as one batch with one flush. The jobs are queued before the
    /// writer runs, so the batch size does not depend on timing.
    #[test]
    fn queued_appends_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel(64);
        let (writer, shared) = writer_on(dir.path(), rx);
        let mut replies = Vec::new();
        for i in 0..50 {
            let (reply, answer) = oneshot::channel();
            let eval = eval(&format!("svc-{}", i % 7), "prod", Verdict::Promote);
            tx.try_send(Job {
                eval,
                fingerprint: None,
                reply,
            })
            .unwrap();
            replies.push(answer);
        }
        drop(tx);
        writer.run();
        let seqs: Vec<u64> = replies
            .into_iter()
            .map(|r| r.blocking_recv().unwrap().unwrap().appended.decision().seq)
            .collect();
        assert_eq!(
            seqs,
            (1..=50).collect::<Vec<u64>>(),
            "answered in queue order"
        );
        let stats = &shared.stats;
        assert_eq!(stats.batches.load(Ordering::Relaxed), 1, "one commit");
        assert_eq!(stats.largest_batch.load(Ordering::Relaxed), 50);
    }

    #[tokio::test]
    async fn same_idempotency_key_returns_the_stored_decision() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let store = Store::open(dir.path()).unwrap();
            let Appended::New(first) = store
                .append(keyed("deploy-42", Verdict::Hold))
                .await
                .unwrap()
            else {
                panic!("first use of a key must be new")
            };
            // A retry with a different outcome still gets the original.
            let again = store
                .append(keyed("deploy-42", Verdict::Promote))
                .await
                .unwrap();
            assert_eq!(again, Appended::Existing(first.clone()));
            assert_eq!(
                store.get_by_idempotency_key("deploy-42").unwrap(),
                Some(first.clone())
            );
            assert_eq!(store.get_by_idempotency_key("deploy-43").unwrap(), None);
            assert_eq!(store.head().0, 1);
            first
        };
        // And after a restart.
        let store = Store::open(dir.path()).unwrap();
        let after = store
            .append(keyed("deploy-42", Verdict::Freeze))
            .await
            .unwrap();
        assert_eq!(after, Appended::Existing(first.clone()));
        assert_eq!(after.decision().verdict, Verdict::Hold);
        let other = store
            .append(keyed("deploy-43", Verdict::Freeze))
            .await
            .unwrap();
        assert!(matches!(&other, Appended::New(d) if d.seq == 2 && d.prev_hash == first.hash));
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
    async fn a_key_names_one_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let first = store
            .append_fingerprinted(keyed("k", Verdict::Hold), Some(a))
            .await
            .unwrap()
            .into_decision();
        let again = store
            .append_fingerprinted(keyed("k", Verdict::Promote), Some(a))
            .await
            .unwrap();
        assert_eq!(again, Appended::Existing(first.clone()));
        let conflict = store
            .append_fingerprinted(keyed("k", Verdict::Hold), Some(b))
            .await
            .unwrap_err();
        assert!(matches!(&conflict, StoreError::IdempotencyConflict(k) if k == "k"));
        assert!(conflict
            .to_string()
            .starts_with("idempotency key `k` was already used"));
        assert_eq!(store.find_idempotent("k", &a).unwrap(), Some(first));
        assert!(matches!(
            store.find_idempotent("k", &b),
            Err(StoreError::IdempotencyConflict(_))
        ));
        assert_eq!(store.find_idempotent("other", &b).unwrap(), None);
        assert_eq!(store.head().0, 1);
    }

    /// Keys stored before fingerprints (8-byte values) are matched against
    /// the stored request minus what the server added to it.
    #[tokio::test]
    async fn keys_without_a_fingerprint_match_their_stored_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut eval = keyed("legacy", Verdict::Hold);
        let sent = eval.request.clone();
        let mut pulled = sent.metrics[0].clone();
        pulled.name = "pulled_metric".into();
        pulled.pulled = Some(crate::domain::Pulled {
            source: "prom".into(),
            baseline_query: None,
            canary_query: None,
            value_query: Some("up".into()),
            start: None,
            end: sent.time.unwrap(),
            step_seconds: None,
            required: true,
            diagnostic: None,
        });
        eval.request.metrics.push(pulled);
        let stored = store.append(eval).await.unwrap().into_decision();
        // As sent with its time, or without one (the server filled it in).
        assert_eq!(
            store
                .find_idempotent("legacy", &sent.fingerprint())
                .unwrap(),
            Some(stored.clone())
        );
        let mut untimed = sent.clone();
        untimed.time = None;
        assert_eq!(
            store
                .find_idempotent("legacy", &untimed.fingerprint())
                .unwrap(),
            Some(stored.clone())
        );
        let mut other = sent.clone();
        other.deployment.service = "payments".into();
        assert!(matches!(
            store.find_idempotent("legacy", &other.fingerprint()),
            Err(StoreError::IdempotencyConflict(_))
        ));
        let retried = keyed("legacy", Verdict::Promote);
        let answer = store
            .append_fingerprinted(retried, Some(untimed.fingerprint()))
            .await
            .unwrap();
        assert_eq!(answer, Appended::Existing(stored));
    }

    /// Drives the writer by hand so the duplicate is provably in the same
    /// batch as its original (with real concurrency that is only likely).
    #[test]
    fn duplicate_key_within_one_batch_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let (_tx, rx) = mpsc::channel(1);
        let (mut writer, shared) = writer_on(dir.path(), rx);
        let same = Some([1u8; 32]);
        let mut jobs: Vec<Job> = [
            (keyed("k", Verdict::Hold), same),
            (eval("web", "prod", Verdict::Promote), None),
            (keyed("k", Verdict::Rollback), same),
            (keyed("k", Verdict::Rollback), Some([2u8; 32])),
        ]
        .into_iter()
        .map(|(eval, fingerprint)| Job {
            eval,
            fingerprint,
            reply: oneshot::channel().0,
        })
        .collect();

        let mut results: Vec<_> = writer
            .commit(&mut jobs)
            .into_iter()
            .map(|(_, r)| r.map(|r| r.appended))
            .collect();
        // Another request under a key first used in the same batch.
        assert!(matches!(
            results.pop(),
            Some(Err(StoreError::IdempotencyConflict(k))) if k == "k"
        ));
        let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        let Appended::New(original) = &results[0] else {
            panic!("{results:?}")
        };
        assert_eq!(original.seq, 1);
        assert!(matches!(&results[1], Appended::New(d) if d.seq == 2));
        assert_eq!(results[2], Appended::Existing(original.clone()));
        assert_eq!(writer.head.seq, 2);
        assert_eq!(shared.head.lock().unwrap().seq, 2);
        assert_eq!(shared.stats.largest_batch.load(Ordering::Relaxed), 2);
        assert!(jobs.is_empty(), "the batch is drained");
    }

    #[test]
    fn a_used_digest_is_marked_once_and_stays_marked() {
        let dir = tempfile::tempdir().unwrap();
        let (_tx, rx) = mpsc::channel(1);
        let (mut writer, _) = writer_on(dir.path(), rx);
        let job = |digest: &str| {
            let mut eval = eval("api", "prod", Verdict::Promote);
            eval.policies[0].digest = digest.to_string();
            Job {
                eval,
                fingerprint: None,
                reply: oneshot::channel().0,
            }
        };
        let (a, b) = (
            format!("sha256:{}", "a".repeat(64)),
            format!("sha256:{}", "b".repeat(64)),
        );
        writer.commit(&mut vec![job(&a), job(&a)]);
        assert_eq!(writer.marked, HashSet::from([a.clone()]));
        // Marked already: a later batch writes only the new digest's marker.
        writer.commit(&mut vec![job(&a), job(&b)]);
        assert_eq!(writer.marked, HashSet::from([a.clone(), b.clone()]));
        for digest in [&a, &b] {
            assert!(writer.tree.contains_key(keys::used_digest(digest)).unwrap());
        }
        assert_eq!(writer.head.seq, 4);
    }

    #[tokio::test]
    async fn without_per_batch_flush_still_chains() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(
            dir.path(),
            Options {
                flush_each_batch: false,
            },
        )
        .unwrap();
        for i in 0..10 {
            let d = store
                .append(eval("api", "prod", Verdict::Promote))
                .await
                .unwrap()
                .into_decision();
            assert_eq!(d.seq, i + 1);
        }
        store.flush().unwrap();
        let report = store.verify().unwrap();
        assert_eq!((report.ok, report.checked), (true, 10));
    }
}
