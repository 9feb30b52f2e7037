//! Persistence of the policy registry, bindings and freezes, so a restart
//! restores exactly the active set. Every write is flushed before it
//! returns: these are rare admin operations and must not be lost.
//!
//! Retention of component bytes: a version is kept while a registered
//! policy, a binding's pin or any stored decision references its digest
//! (replaying a past decision needs the exact component it ran). Decisions
//! are kept forever, so a version that ever decided is kept forever; a
//! version that never decided is deleted by [`Store::reclaim_unreferenced`]
//! at the next start after it was replaced or deleted. Reclaiming only at
//! start means no evaluation is in flight that could still record it.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::{keys, SledStore, StoreError};
use crate::domain::{Binding, Freeze, PolicyMeta};

/// Key in the `registry_meta` tree: the built-ins were installed (all of
/// them, in one transaction) on this data dir.
const BUILTINS_INSTALLED: &[u8] = b"builtins-installed";

/// One built-in to install: its metadata, component bytes, and the binding
/// (name and value) that puts it to work.
pub struct BuiltinInstall<'a> {
    pub meta: PolicyMeta,
    pub bytes: &'a [u8],
    pub binding_name: String,
    pub binding: Binding,
}

pub(super) struct Trees {
    /// digest → component bytes (content-addressed, never deleted).
    blobs: sled::Tree,
    /// policy name → `PolicyMeta` JSON.
    policies: sled::Tree,
    /// binding name → `Binding` JSON.
    bindings: sled::Tree,
    /// freeze id → `Freeze` JSON.
    freezes: sled::Tree,
    /// Facts about the registry itself ([`BUILTINS_INSTALLED`]).
    meta: sled::Tree,
    /// `name` NUL `digest` → nothing: every (name, digest) ever uploaded,
    /// so a pin `name@digest` can be checked against the name's history.
    versions: sled::Tree,
}

impl Trees {
    pub fn open(db: &sled::Db) -> Result<Trees, StoreError> {
        Ok(Trees {
            blobs: db.open_tree("policy_blobs")?,
            policies: db.open_tree("policies")?,
            bindings: db.open_tree("bindings")?,
            freezes: db.open_tree("freezes")?,
            meta: db.open_tree("registry_meta")?,
            versions: db.open_tree("policy_versions")?,
        })
    }
}

impl SledStore {
    /// Stores a policy's bytes under its digest and its metadata under its
    /// name (replacing the previous version's metadata, not its bytes).
    pub fn put_policy(&self, meta: &PolicyMeta, bytes: &[u8]) -> Result<(), StoreError> {
        self.refuse_if_failed()?;
        let t = &self.inner.registry;
        let value = encode("policy", &meta.name, meta)?;
        // Bytes first: a crash in between leaves an unreferenced blob, never
        // metadata whose bytes are missing.
        self.guard((|| {
            if !t.blobs.contains_key(&meta.digest)? {
                t.blobs.insert(meta.digest.as_bytes(), bytes)?;
            }
            t.versions
                .insert(version_key(&meta.name, &meta.digest), &[])?;
            t.policies.insert(meta.name.as_bytes(), value).map(|_| ())
        })())?;
        self.flush()
    }

    /// Whether the built-ins were installed on this data dir.
    pub fn builtins_installed(&self) -> Result<bool, StoreError> {
        Ok(self.inner.registry.meta.contains_key(BUILTINS_INSTALLED)?)
    }

    /// Installs `items` (may be empty) and marks the built-ins installed,
    /// all in one transaction: a crash part-way through a first start
    /// leaves either nothing or everything, never a partial gate.
    pub fn install_builtins(&self, items: &[BuiltinInstall<'_>]) -> Result<(), StoreError> {
        self.refuse_if_failed()?;
        let mut encoded = Vec::with_capacity(items.len());
        for i in items {
            encoded.push((
                encode("policy", &i.meta.name, &i.meta)?,
                encode("binding", &i.binding_name, &i.binding)?,
            ));
        }
        let t = &self.inner.registry;
        let result = (&t.blobs, &t.policies, &t.bindings, &t.meta, &t.versions).transaction(
            |(blobs, policies, bindings, meta, versions)| {
                for (i, (policy, binding)) in items.iter().zip(&encoded) {
                    blobs.insert(i.meta.digest.as_bytes(), i.bytes)?;
                    versions.insert(version_key(&i.meta.name, &i.meta.digest), &[][..])?;
                    policies.insert(i.meta.name.as_bytes(), policy.as_slice())?;
                    bindings.insert(i.binding_name.as_bytes(), binding.as_slice())?;
                }
                meta.insert(BUILTINS_INSTALLED, &[][..])?;
                Ok::<_, ConflictableTransactionError<()>>(())
            },
        );
        match result {
            Ok(()) => {}
            Err(TransactionError::Storage(e)) => return self.guard(Err(e)),
            Err(TransactionError::Abort(())) => unreachable!("the transaction never aborts"),
        }
        self.flush()
    }

    /// Deletes the bytes of every component version nothing references:
    /// no registered policy, no binding pin, no stored decision. Returns
    /// the digests removed. Call at start only (see the module doc).
    pub fn reclaim_unreferenced(&self) -> Result<Vec<String>, StoreError> {
        self.refuse_if_failed()?;
        self.index_used_digests()?;
        let t = &self.inner.registry;
        let mut keep: HashSet<String> = self.policies()?.into_iter().map(|m| m.digest).collect();
        for (_, b) in self.bindings()? {
            if let Some((_, digest)) = b.policy.split_once('@') {
                keep.insert(digest.to_string());
            }
        }
        let audit = &self.inner.audit;
        let mut removed = Vec::new();
        for item in t.blobs.iter() {
            let (key, _) = self.guard(item)?;
            let digest = String::from_utf8_lossy(&key).into_owned();
            if keep.contains(&digest) || audit.contains_key(keys::used_digest(&digest))? {
                continue;
            }
            self.guard(t.blobs.remove(&key))?;
            removed.push(digest);
        }
        if !removed.is_empty() {
            self.flush()?;
        }
        Ok(removed)
    }

    /// Backfills the used-digest index from every record, once per store
    /// (stores written before the index existed).
    fn index_used_digests(&self) -> Result<(), StoreError> {
        let audit = &self.inner.audit;
        if audit.contains_key(keys::USED_INDEXED)? {
            return Ok(());
        }
        let (head, _) = self.head();
        let mut batch = sled::Batch::default();
        for seq in 1..=head {
            if let Some(d) = self.get_by_seq(seq)? {
                for p in &d.policies {
                    batch.insert(keys::used_digest(&p.digest), &[][..]);
                }
            }
        }
        batch.insert(keys::USED_INDEXED, &[][..]);
        self.guard(audit.apply_batch(batch))?;
        self.flush()
    }

    /// Every stored component version: (digest, bytes), by digest.
    pub(super) fn blobs(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.registry.blobs.iter() {
            let (key, value) = item?;
            out.push((String::from_utf8_lossy(&key).into_owned(), value.to_vec()));
        }
        Ok(out)
    }

    pub fn policy_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.registry.blobs.get(digest)?.map(|v| v.to_vec()))
    }

    /// Registered policies, by name.
    pub fn policies(&self) -> Result<Vec<PolicyMeta>, StoreError> {
        list(&self.inner.registry.policies, "policy")
            .map(|v| v.into_iter().map(|(_, m)| m).collect())
    }

    /// Every (name, digest) pair ever uploaded, deleted policies included.
    pub fn policy_versions(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.registry.versions.iter() {
            let (key, _) = item?;
            let key = String::from_utf8_lossy(&key);
            let (name, digest) = key.split_once('\0').ok_or_else(|| StoreError::Corrupt {
                what: format!("policy version `{key}`"),
                reason: "no name/digest separator".into(),
            })?;
            out.push((name.to_string(), digest.to_string()));
        }
        Ok(out)
    }

    /// Removes the policy's metadata; its bytes stay for replay. Returns
    /// whether it existed.
    pub fn delete_policy(&self, name: &str) -> Result<bool, StoreError> {
        remove(self, &self.inner.registry.policies, name)
    }

    pub fn put_binding(&self, name: &str, b: &Binding) -> Result<(), StoreError> {
        self.refuse_if_failed()?;
        let value = encode("binding", name, b)?;
        self.guard(self.inner.registry.bindings.insert(name.as_bytes(), value))?;
        self.flush()
    }

    /// Bindings with their names, by name.
    pub fn bindings(&self) -> Result<Vec<(String, Binding)>, StoreError> {
        list(&self.inner.registry.bindings, "binding")
    }

    pub fn delete_binding(&self, name: &str) -> Result<bool, StoreError> {
        remove(self, &self.inner.registry.bindings, name)
    }

    pub fn put_freeze(&self, f: &Freeze) -> Result<(), StoreError> {
        self.refuse_if_failed()?;
        let value = encode("freeze", &f.id, f)?;
        self.guard(self.inner.registry.freezes.insert(f.id.as_bytes(), value))?;
        self.flush()
    }

    /// Freezes, by id (expired ones included: the caller decides).
    pub fn freezes(&self) -> Result<Vec<Freeze>, StoreError> {
        list(&self.inner.registry.freezes, "freeze")
            .map(|v| v.into_iter().map(|(_, f)| f).collect())
    }

    pub fn delete_freeze(&self, id: &str) -> Result<bool, StoreError> {
        remove(self, &self.inner.registry.freezes, id)
    }
}

/// Names never hold NUL (see `engine::valid_name`), so it separates.
fn version_key(name: &str, digest: &str) -> Vec<u8> {
    format!("{name}\0{digest}").into_bytes()
}

fn encode<T: Serialize>(what: &str, name: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value)
        .map_err(|e| StoreError::Storage(format!("encoding {what} `{name}`: {e}")))
}

fn list<T: DeserializeOwned>(
    tree: &sled::Tree,
    what: &str,
) -> Result<Vec<(String, T)>, StoreError> {
    let mut out = Vec::new();
    for item in tree.iter() {
        let (key, value) = item?;
        let name = String::from_utf8_lossy(&key).into_owned();
        let parsed = serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt {
            what: format!("{what} `{name}`"),
            reason: e.to_string(),
        })?;
        out.push((name, parsed));
    }
    Ok(out)
}

fn remove(store: &SledStore, tree: &sled::Tree, key: &str) -> Result<bool, StoreError> {
    store.refuse_if_failed()?;
    let existed = store.guard(tree.remove(key.as_bytes()))?.is_some();
    if existed {
        store.flush()?;
    }
    Ok(existed)
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;
    use crate::domain::{Limits, Mode, OnError, PolicyInfo, Selector};
    use jiff::Timestamp;

    fn meta(name: &str, digest: &str, version: &str) -> PolicyMeta {
        PolicyMeta {
            name: name.into(),
            digest: digest.into(),
            version: version.into(),
            size: 3,
            info: PolicyInfo {
                name: name.into(),
                version: version.into(),
                summary: "judges the canary".into(),
                metrics: vec!["error_rate".into()],
                default_settings: serde_json::json!({"max_error_rate": 0.01}),
            },
            uploaded_at: Timestamp::from_second(1_700_000_000).unwrap(),
        }
    }

    fn binding(policy: &str) -> Binding {
        Binding {
            policy: policy.into(),
            selector: Selector {
                service: None,
                environment: Some("prod".into()),
            },
            mode: Mode::Shadow,
            on_error: OnError::Rollback,
            settings: serde_json::json!({"max_error_rate": 0.02}),
            limits: Limits {
                fuel: 5_000,
                ..Limits::default()
            },
        }
    }

    fn freeze(id: &str) -> Freeze {
        Freeze {
            id: id.into(),
            selector: Selector {
                service: Some("api".into()),
                environment: None,
            },
            reason: "black friday".into(),
            until: Timestamp::from_second(1_800_000_000).unwrap(),
            created_at: Timestamp::from_second(1_700_000_000).unwrap(),
            created_by: Some("ops".into()),
        }
    }

    #[test]
    fn registry_round_trips_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (judge_v1, judge_v2, risk) = (
            meta("canary-judge", "sha256:aa", "1.0.0"),
            meta("canary-judge", "sha256:bb", "2.0.0"),
            meta("change-risk", "sha256:cc", "0.1.0"),
        );
        {
            let store = Store::open(dir.path()).unwrap();
            store.put_policy(&judge_v1, b"v1!").unwrap();
            store.put_policy(&risk, b"rsk").unwrap();
            store.put_policy(&judge_v2, b"v2!").unwrap();
            store
                .put_policy(&meta("doomed", "sha256:dd", "0.0.1"), b"bye")
                .unwrap();
            assert!(store.delete_policy("doomed").unwrap());
            assert!(!store.delete_policy("doomed").unwrap());

            store
                .put_binding("judge-prod", &binding("canary-judge"))
                .unwrap();
            store
                .put_binding("risk", &binding("change-risk@sha256:cc"))
                .unwrap();
            store.put_binding("temp", &binding("canary-judge")).unwrap();
            assert!(store.delete_binding("temp").unwrap());
            assert!(!store.delete_binding("temp").unwrap());

            store.put_freeze(&freeze("frz-1")).unwrap();
            store.put_freeze(&freeze("frz-2")).unwrap();
            assert!(store.delete_freeze("frz-1").unwrap());
            assert!(!store.delete_freeze("frz-1").unwrap());
        }
        let store = Store::open(dir.path()).unwrap();
        // Latest metadata per name, ordered by name.
        assert_eq!(store.policies().unwrap(), vec![judge_v2, risk]);
        // Bytes of replaced and deleted policies stay for replay.
        assert_eq!(
            store.policy_bytes("sha256:aa").unwrap().as_deref(),
            Some(&b"v1!"[..])
        );
        assert_eq!(
            store.policy_bytes("sha256:bb").unwrap().as_deref(),
            Some(&b"v2!"[..])
        );
        assert_eq!(
            store.policy_bytes("sha256:dd").unwrap().as_deref(),
            Some(&b"bye"[..])
        );
        assert_eq!(store.policy_bytes("sha256:ee").unwrap(), None);
        assert_eq!(
            store.bindings().unwrap(),
            vec![
                ("judge-prod".to_string(), binding("canary-judge")),
                ("risk".to_string(), binding("change-risk@sha256:cc"))
            ]
        );
        assert_eq!(store.freezes().unwrap(), vec![freeze("frz-2")]);
        // Every version ever uploaded, under the name it was uploaded as.
        assert_eq!(
            store.policy_versions().unwrap(),
            [
                ("canary-judge", "sha256:aa"),
                ("canary-judge", "sha256:bb"),
                ("change-risk", "sha256:cc"),
                ("doomed", "sha256:dd"),
            ]
            .map(|(n, d)| (n.to_string(), d.to_string()))
        );
    }
}
