//! `verdict store migrate`: copy an embedded (sled) store into PostgreSQL.
//!
//! Records are copied as stored, byte for byte (hash and canonical body),
//! never re-serialized, so the chain verifies after the move with the same
//! head hash. Everything goes in one transaction into an empty database:
//! an interrupted migration leaves nothing behind to clean up. The source
//! is read whole into memory first, which suits a one-off move of an
//! audit trail that fitted one process's disk.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::chain::{self, Head};
use super::{keys, pg::PgStore, SledStore, StoreError, VerifyReport};
use crate::domain::{Binding, Fingerprint, Freeze, PolicyMeta};

/// What the target receives.
pub(super) struct Dump {
    /// `(seq, hash ‖ body)` as stored, oldest first.
    pub records: Vec<(u64, Vec<u8>)>,
    /// `(key, fingerprint, seq)`.
    pub idempotency: Vec<(String, Option<Fingerprint>, u64)>,
    pub blobs: Vec<(String, Vec<u8>)>,
    pub versions: Vec<(String, String)>,
    pub policies: Vec<PolicyMeta>,
    pub bindings: Vec<(String, Binding)>,
    pub freezes: Vec<Freeze>,
    pub builtins_installed: bool,
    pub checkpoint: Option<String>,
    pub head: Option<Head>,
}

/// What a migration copied, and the target's verification.
#[derive(Debug, Clone, Serialize)]
pub struct Migrated {
    pub decisions: u64,
    pub policies: usize,
    pub policy_versions: usize,
    pub bindings: usize,
    pub freezes: usize,
    pub verify: VerifyReport,
}

/// Copies the embedded store in `from` (a data dir, or its `store`
/// directory) into the empty PostgreSQL database `to`, then verifies the
/// copy: the same number of records and the same head hash as the source.
pub fn migrate(from: &Path, to: &str) -> Result<Migrated, StoreError> {
    let dir = sled_dir(from)?;
    let source = SledStore::open(&dir)?;
    let before = source.verify()?;
    if !before.ok {
        return Err(StoreError::Setup(format!(
            "the audit chain in `{}` does not verify ({}): refusing to copy a broken chain",
            dir.display(),
            before
                .broken
                .as_ref()
                .map_or_else(String::new, |b| format!("record {}: {}", b.seq, b.problem))
        )));
    }
    let dump = source.dump()?;
    drop(source);
    let target = PgStore::connect(to)?;
    target.import(&dump)?;
    let after = target.verify()?;
    if !after.ok || after.checked != before.checked || after.head != before.head {
        return Err(StoreError::Storage(format!(
            "the copy does not match its source: the source verified {} records with head \
             {:?}, the copy {} with head {:?}",
            before.checked, before.head, after.checked, after.head
        )));
    }
    Ok(Migrated {
        decisions: after.checked,
        policies: dump.policies.len(),
        policy_versions: dump.versions.len(),
        bindings: dump.bindings.len(),
        freezes: dump.freezes.len(),
        verify: after,
    })
}

/// The sled directory under `from`: a data dir holds it as `store/`.
/// Refuses a directory with no store in it (opening would create one).
fn sled_dir(from: &Path) -> Result<PathBuf, StoreError> {
    let nested = from.join("store");
    let dir = if nested.join("db").is_file() {
        nested
    } else {
        from.to_path_buf()
    };
    if !dir.join("db").is_file() {
        return Err(StoreError::Open {
            path: from.display().to_string(),
            reason: "there is no verdict store here: pass the data dir of a verdict that \
                     ran on the embedded store (or its `store` directory)"
                .into(),
        });
    }
    Ok(dir)
}

impl SledStore {
    fn dump(&self) -> Result<Dump, StoreError> {
        let audit = &self.inner.audit;
        let mut records = Vec::new();
        for item in audit.range(keys::record(1)..=keys::record(u64::MAX)) {
            let (key, value) = item?;
            records.push((keys::trailing_seq(&key).unwrap_or(0), value.to_vec()));
        }
        let mut idempotency = Vec::new();
        for item in audit.scan_prefix([keys::BY_IDEMPOTENCY]) {
            let (key, value) = item?;
            let name = String::from_utf8_lossy(&key[1..]).into_owned();
            let seq = keys::trailing_seq(&value).unwrap_or(0);
            idempotency.push((name, keys::idempotency_fingerprint(&value), seq));
        }
        Ok(Dump {
            records,
            idempotency,
            blobs: self.blobs()?,
            versions: self.policy_versions()?,
            policies: self.policies()?,
            bindings: self.bindings()?,
            freezes: self.freezes()?,
            builtins_installed: self.builtins_installed()?,
            checkpoint: self.checkpoint()?,
            head: chain::read_head(audit)?,
        })
    }
}
