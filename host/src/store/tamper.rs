//! Test helpers that damage the chain the way an attacker with write
//! access to the data directory would, to prove `verify` notices. Hidden
//! from the docs; they exist as `pub` so end-to-end tests can use them.
//!
//! Edits happen on the stored bytes, never through a decoded value: a
//! round trip through `serde_json::Value` would reorder keys and change the
//! bytes even for an empty edit, so a tamper test would pass with a no-op
//! tamper. [`RawRecord::replace`] insists that its text is found exactly
//! once, so an edit that silently misses fails the test instead.

use super::{chain, keys, SledStore, Store, StoreError};

/// One stored record as an attacker sees it on disk: the 64-hex hash and
/// the canonical body bytes (as UTF-8 text), exactly as stored.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub hash: String,
    pub body: String,
}

impl RawRecord {
    /// Replaces the single occurrence of `from` in the body with `to`.
    ///
    /// # Panics
    /// When `from` does not occur exactly once: a tamper that changes
    /// nothing (or something unintended) must not let a test pass.
    #[track_caller]
    pub fn replace(&mut self, from: &str, to: &str) {
        let hits = self.body.matches(from).count();
        assert_eq!(
            hits, 1,
            "`{from}` occurs {hits} times in the stored body, expected once: {}",
            self.body
        );
        self.body = self.body.replacen(from, to, 1);
    }

    /// Recomputes this record's own hash from `prev_hash` and the (edited)
    /// body, the way the chain does, as a careful forger would.
    pub fn rehash(&mut self, prev_hash: &str) {
        self.hash = chain::link_hash(prev_hash, self.body.as_bytes());
    }
}

impl SledStore {
    /// Test helper: rewrites record `seq` in place, as an attacker with
    /// disk access would. `edit` sees the stored hash and body bytes;
    /// whatever they hold afterwards is written back byte for byte.
    #[doc(hidden)]
    pub fn tamper_for_tests(
        &self,
        seq: u64,
        edit: impl FnOnce(&mut RawRecord),
    ) -> Result<(), StoreError> {
        let audit = &self.inner.audit;
        let corrupt = |reason: &str| StoreError::Corrupt {
            what: format!("record {seq}"),
            reason: reason.into(),
        };
        let value = audit
            .get(keys::record(seq))?
            .ok_or_else(|| corrupt("absent"))?;
        let (hash, body) = chain::split_record(&value).ok_or_else(|| corrupt("truncated"))?;
        let body = std::str::from_utf8(body).map_err(|_| corrupt("body is not UTF-8"))?;
        let mut raw = RawRecord {
            hash: hash.to_string(),
            body: body.to_string(),
        };
        edit(&mut raw);
        audit.insert(
            keys::record(seq),
            chain::encode_record(&raw.hash, raw.body.as_bytes()),
        )?;
        self.flush()
    }

    /// Test helper: deletes record `seq` (not its index entries), leaving a
    /// gap in the chain. Returns whether it existed.
    #[doc(hidden)]
    pub fn delete_record_for_tests(&self, seq: u64) -> Result<bool, StoreError> {
        let existed = self.inner.audit.remove(keys::record(seq))?.is_some();
        self.flush()?;
        Ok(existed)
    }

    /// Test helper: deletes the persisted chain head, as an attacker hiding
    /// the newest records (or a damaged disk) would. Returns whether it
    /// existed.
    #[doc(hidden)]
    pub fn delete_head_for_tests(&self) -> Result<bool, StoreError> {
        let existed = self.inner.audit.remove(keys::HEAD)?.is_some();
        self.flush()?;
        Ok(existed)
    }

    fn raw_record(&self, seq: u64) -> Result<Option<RawRecord>, StoreError> {
        let Some(value) = self.inner.audit.get(keys::record(seq))? else {
            return Ok(None);
        };
        let (hash, body) = chain::split_record(&value).ok_or_else(|| StoreError::Corrupt {
            what: format!("record {seq}"),
            reason: "truncated".into(),
        })?;
        Ok(Some(RawRecord {
            hash: hash.to_string(),
            body: String::from_utf8_lossy(body).into_owned(),
        }))
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .audit
            .range(keys::record(0)..=keys::record(u64::MAX))
            .next_back()
            .transpose()?
            .and_then(|(k, _)| keys::trailing_seq(&k))
            .unwrap_or(0))
    }

    /// Re-link every record from `from` on to its predecessor, renumbering
    /// it to its position, and move the head to the last one: what an
    /// attacker who knows how the chain is hashed does after an edit.
    fn relink_from(&self, from: u64) -> Result<(), StoreError> {
        let audit = &self.inner.audit;
        let mut prev = match from {
            0 | 1 => chain::GENESIS.to_string(),
            n => self.raw_record(n - 1)?.map(|r| r.hash).unwrap_or_default(),
        };
        let last = self.last_seq()?;
        for seq in from.max(1)..=last {
            let Some(mut r) = self.raw_record(seq)? else {
                continue;
            };
            let link: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
            let (old_seq, old_prev) = (
                link["seq"].as_u64().unwrap_or(seq),
                link["prev_hash"].as_str().unwrap_or_default().to_string(),
            );
            if old_seq != seq {
                r.replace(&format!("\"seq\":{old_seq},"), &format!("\"seq\":{seq},"));
                r.replace(
                    &format!("\"id\":\"{}\"", keys::decision_id(old_seq)),
                    &format!("\"id\":\"{}\"", keys::decision_id(seq)),
                );
            }
            if old_prev != prev {
                r.replace(
                    &format!("\"prev_hash\":\"{old_prev}\""),
                    &format!("\"prev_hash\":\"{prev}\""),
                );
            }
            r.rehash(&prev);
            audit.insert(
                keys::record(seq),
                chain::encode_record(&r.hash, r.body.as_bytes()),
            )?;
            prev = r.hash;
        }
        let mut head = chain::read_head(audit)?.unwrap_or_else(chain::Head::genesis);
        head.seq = last;
        head.hash = prev;
        let head = serde_json::to_vec(&head).map_err(|e| StoreError::Corrupt {
            what: "chain head".into(),
            reason: e.to_string(),
        })?;
        audit.insert(keys::HEAD, head)?;
        self.flush()
    }

    /// Test helper: edits record `seq`, then re-hashes it and re-links every
    /// later record and the head, so the chain verifies again.
    #[doc(hidden)]
    pub fn rechain_for_tests(
        &self,
        seq: u64,
        edit: impl FnOnce(&mut RawRecord),
    ) -> Result<(), StoreError> {
        self.tamper_for_tests(seq, edit)?;
        self.relink_from(seq)
    }

    /// Test helper: deletes every record after `keep` and moves the head
    /// back to it, so the chain verifies (shorter).
    #[doc(hidden)]
    pub fn truncate_for_tests(&self, keep: u64) -> Result<(), StoreError> {
        for seq in keep + 1..=self.last_seq()? {
            self.inner.audit.remove(keys::record(seq))?;
        }
        self.relink_from(keep + 1)
    }

    /// Test helper: deletes record `seq` and renumbers and re-links every
    /// later record, so no gap shows and the chain verifies.
    #[doc(hidden)]
    pub fn remove_and_rechain_for_tests(&self, seq: u64) -> Result<(), StoreError> {
        let audit = &self.inner.audit;
        let last = self.last_seq()?;
        audit.remove(keys::record(seq))?;
        for later in seq + 1..=last {
            if let Some(v) = audit.remove(keys::record(later))? {
                audit.insert(keys::record(later - 1), v)?;
            }
        }
        self.relink_from(seq)
    }
}

/// The test helpers reach the embedded (sled) store only: tampering with a
/// PostgreSQL store is done with SQL by whoever holds its credentials.
impl Store {
    fn embedded_for_tests(&self) -> Result<&SledStore, StoreError> {
        self.embedded().ok_or_else(|| {
            StoreError::Storage("the tampering test helpers need the embedded store".into())
        })
    }

    #[doc(hidden)]
    pub fn tamper_for_tests(
        &self,
        seq: u64,
        edit: impl FnOnce(&mut RawRecord),
    ) -> Result<(), StoreError> {
        self.embedded_for_tests()?.tamper_for_tests(seq, edit)
    }

    #[doc(hidden)]
    pub fn delete_record_for_tests(&self, seq: u64) -> Result<bool, StoreError> {
        self.embedded_for_tests()?.delete_record_for_tests(seq)
    }

    #[doc(hidden)]
    pub fn delete_head_for_tests(&self) -> Result<bool, StoreError> {
        self.embedded_for_tests()?.delete_head_for_tests()
    }

    #[doc(hidden)]
    pub fn rechain_for_tests(
        &self,
        seq: u64,
        edit: impl FnOnce(&mut RawRecord),
    ) -> Result<(), StoreError> {
        self.embedded_for_tests()?.rechain_for_tests(seq, edit)
    }

    #[doc(hidden)]
    pub fn truncate_for_tests(&self, keep: u64) -> Result<(), StoreError> {
        self.embedded_for_tests()?.truncate_for_tests(keep)
    }

    #[doc(hidden)]
    pub fn remove_and_rechain_for_tests(&self, seq: u64) -> Result<(), StoreError> {
        self.embedded_for_tests()?.remove_and_rechain_for_tests(seq)
    }
}
