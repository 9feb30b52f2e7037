//! Test helpers that damage the chain the way an attacker with write
//! access to the data directory would, to prove `verify` notices. Hidden
//! from the docs; they exist as `pub` so end-to-end tests can use them.

use super::{chain, keys, Store, StoreError};

impl Store {
    /// Test helper: rewrites record `seq` in place, as an attacker with
    /// disk access would. `edit` sees the decision's JSON with its stored
    /// `hash`; whatever `hash` holds afterwards is stored as the hash.
    #[doc(hidden)]
    pub fn tamper_for_tests(
        &self,
        seq: u64,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> Result<(), StoreError> {
        let audit = &self.inner.audit;
        let missing = || StoreError::Corrupt {
            what: format!("record {seq}"),
            reason: "absent".into(),
        };
        let value = audit.get(keys::record(seq))?.ok_or_else(missing)?;
        let (hash, body) = chain::split_record(&value).ok_or_else(missing)?;
        let mut json: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| StoreError::Corrupt {
                what: format!("record {seq}"),
                reason: e.to_string(),
            })?;
        json["hash"] = hash.into();
        edit(&mut json);
        let hash = json["hash"].as_str().unwrap_or_default().to_string();
        json["hash"] = "".into();
        let body = serde_json::to_vec(&json).map_err(|e| StoreError::Storage(e.to_string()))?;
        audit.insert(keys::record(seq), chain::encode_record(&hash, &body))?;
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
}
