//! Test helpers that damage the chain the way an attacker with write
//! access to the data directory would, to prove `verify` notices. Hidden
//! from the docs; they exist as `pub` so end-to-end tests can use them.
//!
//! Edits happen on the stored bytes, never through a decoded value: a
//! round trip through `serde_json::Value` would reorder keys and change the
//! bytes even for an empty edit, so a tamper test would pass with a no-op
//! tamper. [`RawRecord::replace`] insists that its text is found exactly
//! once, so an edit that silently misses fails the test instead.

use super::{chain, keys, Store, StoreError};

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

impl Store {
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
}
