//! The hash chain: how a record's bytes are laid out and hashed, and the
//! walk that proves no stored record changed.
//!
//! A record's *canonical body* is the JSON of its [`Decision`] with `hash`
//! set to `""` (its own hash cannot be inside the bytes it hashes). The
//! stored value is the 64-character lowercase hex hash followed directly by
//! that body, and
//!
//! ```text
//! hash = hex(sha256(prev_hash as its 64 ASCII hex bytes || body))
//! ```
//!
//! The first record's `prev_hash` is [`GENESIS`], 64 zeros. Verification
//! hashes the stored body bytes as they are: re-serializing a decoded
//! decision would not reproduce them (NaN samples are stored as `null` and
//! read back as NaN, `Some(NaN)` observations read back as `None`).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{keys, StoreError};
use crate::domain::{Decision, Evaluation};

/// `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const HASH_LEN: usize = 64;

/// `eval` sealed as the link after a head: what both backends store and
/// answer.
pub(super) struct Sealed {
    pub seq: u64,
    /// The hashed bytes (the record without its hash).
    pub body: Vec<u8>,
    pub hash: String,
    /// The stored value: hash and body ([`encode_record`]).
    pub value: Vec<u8>,
    /// The decision as a later read returns it (its floats made canonical,
    /// see [`canonical_floats`]), so the reply to the append is byte for
    /// byte what reads return, without parsing the stored bytes back.
    pub stored: Decision,
    /// `stored` as JSON: the body with the hash in place ([`reply_json`]).
    pub json: Vec<u8>,
}

/// Seal `eval` as the link after `head` and move `head` to it.
pub(super) fn seal(head: &mut Head, eval: Evaluation) -> Result<Sealed, StoreError> {
    let seq = head.seq + 1;
    // INVARIANT: decided_at never decreases along the chain, whichever
    // clock (or replica's clock) is behind: time-range queries translate
    // instants to seq ranges through it.
    let now = Timestamp::now();
    let decided_at = head.decided_at.map_or(now, |last| now.max(last));
    let mut stored = Decision {
        id: keys::decision_id(seq),
        seq,
        verdict: eval.verdict,
        reasons: eval.reasons,
        policies: eval.policies,
        request: eval.request,
        freezes: eval.freezes,
        decided_at,
        prev_hash: head.hash.clone(),
        hash: String::new(),
    };
    canonical_floats(&mut stored);
    let body = serde_json::to_vec(&stored)
        .map_err(|e| StoreError::Storage(format!("encoding decision {seq}: {e}")))?;
    let hash = link_hash(&head.hash, &body);
    let value = encode_record(&hash, &body);
    stored.hash = hash.clone();
    let json = reply_json(&body, &hash);
    #[cfg(debug_assertions)]
    {
        // Every test that stores a decision checks the promise above.
        let back = decode(seq, &value).expect("a sealed record decodes");
        let back = serde_json::to_vec(&back).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&back),
            String::from_utf8_lossy(&serde_json::to_vec(&stored).unwrap()),
            "a sealed decision reads back as it was sealed"
        );
        assert_eq!(
            String::from_utf8_lossy(&back),
            String::from_utf8_lossy(&json)
        );
    }
    *head = Head {
        seq,
        hash: hash.clone(),
        decided_at: Some(decided_at),
    };
    Ok(Sealed {
        seq,
        body,
        hash,
        value,
        stored,
        json,
    })
}

/// The JSON of a sealed decision, from its body: `hash` is the body's last
/// field, written empty (`"hash":""}`), so the hash goes between the quotes.
fn reply_json(body: &[u8], hash: &str) -> Vec<u8> {
    const EMPTY_HASH_END: &[u8] = br#""hash":""}"#;
    debug_assert!(body.ends_with(EMPTY_HASH_END), "`hash` is the last field");
    let open = body.len() - 2;
    let mut json = Vec::with_capacity(body.len() + hash.len());
    json.extend_from_slice(&body[..open]);
    json.extend_from_slice(hash.as_bytes());
    json.extend_from_slice(br#""}"#);
    json
}

/// Makes every float of `d` what JSON reads back: JSON has no NaN or
/// infinities, so serde writes them as `null`, which a sample reads back as
/// NaN and an optional number as absent. The engine and the metric sources
/// already drop non-finite numbers at their boundaries (replay needs the
/// input the policies saw); this keeps the store's promise that an append
/// answers what reads return for any evaluation it is handed.
fn canonical_floats(d: &mut Decision) {
    let finite = |x: &mut Option<f64>| {
        if x.is_some_and(|v| !v.is_finite()) {
            *x = None;
        }
    };
    finite(&mut d.request.deployment.traffic_percent);
    for m in &mut d.request.metrics {
        for x in m.baseline.iter_mut().chain(m.canary.iter_mut()) {
            if x.is_infinite() {
                *x = f64::NAN;
            }
        }
        finite(&mut m.value);
    }
    let policy_reasons = d.policies.iter_mut().flat_map(|p| p.reasons.iter_mut());
    for r in d.reasons.iter_mut().chain(policy_reasons) {
        finite(&mut r.observed);
        finite(&mut r.threshold);
    }
}

/// The last record of the chain, persisted under `h` in the same batch as
/// the records so that after a crash it never points past or short of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Head {
    pub seq: u64,
    pub hash: String,
    /// Kept so `decided_at` stays monotonic across restarts even if the
    /// clock steps back: time-range queries rely on it.
    pub decided_at: Option<Timestamp>,
}

impl Head {
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.to_string(),
            decided_at: None,
        }
    }
}

pub(super) fn link_hash(prev_hash: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

pub(super) fn encode_record(hash: &str, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(hash.len() + body.len());
    v.extend_from_slice(hash.as_bytes());
    v.extend_from_slice(body);
    v
}

/// Splits a stored value into (hash, body).
pub(super) fn split_record(value: &[u8]) -> Option<(&str, &[u8])> {
    if value.len() < HASH_LEN {
        return None;
    }
    let (hash, body) = value.split_at(HASH_LEN);
    Some((std::str::from_utf8(hash).ok()?, body))
}

/// Decodes a stored record into the decision the API serves.
pub(super) fn decode(seq: u64, value: &[u8]) -> Result<Decision, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        what: format!("record {seq}"),
        reason,
    };
    let (hash, body) = split_record(value).ok_or_else(|| corrupt("value too short".into()))?;
    let mut d: Decision =
        serde_json::from_slice(body).map_err(|e| corrupt(format!("invalid body: {e}")))?;
    d.hash = hash.to_string();
    Ok(d)
}

/// The outcome of [`Store::verify`](super::Store::verify).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    /// Records whose hash and link checked out before the first break.
    pub checked: u64,
    /// Hash of the last record checked, the value to pin externally.
    pub head: Option<String>,
    pub broken: Option<BrokenLink>,
}

/// The first record at which the chain does not hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokenLink {
    pub seq: u64,
    pub id: String,
    pub problem: String,
}

/// Only the fields of a body that the walk checks; the rest is covered by
/// the hash and never re-serialized.
#[derive(Deserialize)]
struct Link {
    seq: u64,
    id: String,
    prev_hash: String,
}

/// Walks records 1..=head in order. The head is read first, so decisions
/// appended during the walk are simply not part of it.
pub(super) fn verify(tree: &sled::Tree) -> Result<VerifyReport, StoreError> {
    let persisted = read_head(tree)?;
    let head = match persisted {
        Some(h) => h,
        None if tree.contains_key(keys::record(1))? => {
            return Ok(broken(
                0,
                None,
                1,
                "the chain head is missing but records exist".into(),
            ))
        }
        None => Head::genesis(),
    };
    let mut prev = GENESIS.to_string();
    let mut checked = 0u64;
    for item in tree.range(keys::record(1)..keys::record(head.seq.saturating_add(1))) {
        let (key, value) = item?;
        let seq = keys::trailing_seq(&key).unwrap_or(0);
        let expected = checked + 1;
        if seq != expected {
            let problem = format!("record {expected} is missing: the next stored record is {seq}");
            return Ok(broken(checked, Some(prev), expected, problem));
        }
        if let Err(problem) = check_record(seq, &value, &prev) {
            return Ok(broken(checked, Some(prev), seq, problem));
        }
        prev = split_record(&value)
            .map(|(h, _)| h.to_string())
            .unwrap_or_default();
        checked += 1;
    }
    if checked != head.seq {
        let problem = format!(
            "the chain head is record {} but the log ends at record {checked}",
            head.seq
        );
        return Ok(broken(checked, Some(prev), checked + 1, problem));
    }
    if head.seq > 0 && head.hash != prev {
        let problem = format!(
            "the chain head hash `{}` differs from the last record's `{prev}`",
            head.hash
        );
        return Ok(broken(checked, Some(prev), head.seq, problem));
    }
    Ok(VerifyReport {
        ok: true,
        checked,
        head: (checked > 0).then_some(prev),
        broken: None,
    })
}

/// Walks exported decisions (oldest first, as `verdict audit export`
/// writes them) the way [`verify`] walks the store: each record's hash is
/// recomputed from its canonical body (the decision as stored, its `hash`
/// empty) and must link to the one before. Offline: no store, no server.
pub fn verify_exported(
    decisions: impl IntoIterator<Item = Decision>,
) -> Result<VerifyReport, StoreError> {
    let mut prev = GENESIS.to_string();
    let mut checked = 0u64;
    for mut d in decisions {
        let seq = checked + 1;
        let stored = std::mem::take(&mut d.hash);
        let body = serde_json::to_vec(&d).map_err(|e| StoreError::Corrupt {
            what: format!("exported record {seq}"),
            reason: e.to_string(),
        })?;
        let value = encode_record(&stored, &body);
        let problem = if d.seq != seq {
            Some(format!(
                "record {seq} is missing: the next exported record is {}",
                d.seq
            ))
        } else {
            check_record(seq, &value, &prev).err()
        };
        if let Some(problem) = problem {
            return Ok(broken(checked, Some(prev), seq, problem));
        }
        prev = stored;
        checked += 1;
    }
    Ok(VerifyReport {
        ok: true,
        checked,
        head: (checked > 0).then_some(prev),
        broken: None,
    })
}

pub(super) fn check_record(seq: u64, value: &[u8], prev: &str) -> Result<(), String> {
    let (stored, body) = split_record(value).ok_or("the stored value is truncated")?;
    let link: Link = serde_json::from_slice(body)
        .map_err(|e| format!("the stored body is not a decision: {e}"))?;
    // Recompute with the body's own prev_hash first, so an edited record is
    // blamed on itself and a re-hashed one is caught by its successor's link.
    let actual = link_hash(&link.prev_hash, body);
    if actual != stored {
        return Err(format!(
            "hash mismatch: stored `{stored}`, content hashes to `{actual}` (record changed after it was written)"
        ));
    }
    if link.seq != seq {
        return Err(format!(
            "the body says seq {} but is stored as record {seq}",
            link.seq
        ));
    }
    if link.id != keys::decision_id(seq) {
        return Err(format!(
            "the body says id `{}`, expected `{}`",
            link.id,
            keys::decision_id(seq)
        ));
    }
    if link.prev_hash != prev {
        return Err(format!(
            "prev_hash `{}` does not match the previous record's hash `{prev}`",
            link.prev_hash
        ));
    }
    Ok(())
}

pub(super) fn broken(
    checked: u64,
    head: Option<String>,
    seq: u64,
    problem: String,
) -> VerifyReport {
    VerifyReport {
        ok: false,
        checked,
        head: head.filter(|_| checked > 0),
        broken: Some(BrokenLink {
            seq,
            id: keys::decision_id(seq),
            problem,
        }),
    }
}

pub(super) fn read_head(tree: &sled::Tree) -> Result<Option<Head>, StoreError> {
    let Some(raw) = tree.get(keys::HEAD)? else {
        return Ok(None);
    };
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            what: "chain head".into(),
            reason: e.to_string(),
        })
}

/// The head to continue from at open: the persisted one, or (if that key
/// was lost) the last record, so the store still opens and `verify` can
/// report the damage.
pub(super) fn restore_head(tree: &sled::Tree) -> Result<Head, StoreError> {
    if let Some(h) = read_head(tree)? {
        return Ok(h);
    }
    match tree
        .range(keys::record(0)..=keys::record(u64::MAX))
        .next_back()
    {
        Some(item) => {
            let (key, value) = item?;
            let d = decode(keys::trailing_seq(&key).unwrap_or(0), &value)?;
            Ok(Head {
                seq: d.seq,
                hash: d.hash,
                decided_at: Some(d.decided_at),
            })
        }
        None => Ok(Head::genesis()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::eval;
    use super::super::SledStore as Store;
    use super::*;
    use crate::domain::{Decision, Verdict};

    /// Five records written, the store closed: tampering then happens to a
    /// store at rest, as it would on a real disk.
    async fn five(dir: &std::path::Path) -> Vec<Decision> {
        let store = Store::open(dir).unwrap();
        let mut out = Vec::new();
        for v in [
            Verdict::Promote,
            Verdict::Hold,
            Verdict::Promote,
            Verdict::Rollback,
            Verdict::Promote,
        ] {
            out.push(
                store
                    .append(eval("api", "prod", v))
                    .await
                    .unwrap()
                    .into_decision(),
            );
        }
        out
    }

    #[tokio::test]
    async fn empty_store_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let report = Store::open(dir.path()).unwrap().verify().unwrap();
        assert_eq!(
            report,
            VerifyReport {
                ok: true,
                checked: 0,
                head: None,
                broken: None
            }
        );
    }

    #[tokio::test]
    async fn stored_hash_is_sha256_over_prev_hash_and_body() {
        let dir = tempfile::tempdir().unwrap();
        let written = five(dir.path()).await;
        let store = Store::open(dir.path()).unwrap();
        let raw = store.inner.audit.get(keys::record(2)).unwrap().unwrap();
        let (hash, body) = split_record(&raw).unwrap();
        assert_eq!(hash, written[1].hash);
        assert_eq!(hash, link_hash(&written[0].hash, body));
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body["hash"], "", "the canonical body carries an empty hash");
        assert_eq!(body["prev_hash"], written[0].hash.as_str());
    }

    #[tokio::test]
    async fn edited_reason_is_reported_at_its_seq() {
        let dir = tempfile::tempdir().unwrap();
        let written = five(dir.path()).await;
        let store = Store::open(dir.path()).unwrap();
        store
            .tamper_for_tests(3, |r| {
                r.replace(
                    r#""seq":3,"verdict":"promote","reasons":[{"policy":"error-rate","message":"api error rate 0.5% under 1%""#,
                    r#""seq":3,"verdict":"promote","reasons":[{"policy":"error-rate","message":"all clear, ship it""#,
                )
            })
            .unwrap();
        assert_eq!(
            store.get_by_seq(3).unwrap().unwrap().reasons[0].message,
            "all clear, ship it"
        );

        let report = store.verify().unwrap();
        assert!(!report.ok);
        assert_eq!(report.checked, 2);
        assert_eq!(report.head, Some(written[1].hash.clone()));
        let broken = report.broken.unwrap();
        assert_eq!((broken.seq, broken.id.as_str()), (3, "dec-000000000003"));
        assert!(
            broken.problem.starts_with("hash mismatch: stored `"),
            "{}",
            broken.problem
        );
    }

    #[tokio::test]
    async fn rehashed_record_breaks_the_next_link() {
        let dir = tempfile::tempdir().unwrap();
        let written = five(dir.path()).await;
        let store = Store::open(dir.path()).unwrap();
        // A smarter attacker recomputes the edited record's own hash.
        store
            .tamper_for_tests(4, |r| {
                r.replace(
                    r#""seq":4,"verdict":"rollback""#,
                    r#""seq":4,"verdict":"promote""#,
                );
                r.rehash(&written[2].hash);
            })
            .unwrap();
        let report = store.verify().unwrap();
        let broken = report.broken.unwrap();
        assert_eq!(broken.seq, 5);
        assert_eq!(report.checked, 4);
        assert!(
            broken
                .problem
                .contains(&format!("prev_hash `{}` does not match", written[3].hash)),
            "{}",
            broken.problem
        );
    }

    #[tokio::test]
    async fn deleted_record_is_reported_as_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        five(dir.path()).await;
        let store = Store::open(dir.path()).unwrap();
        assert!(store.delete_record_for_tests(2).unwrap());
        let report = store.verify().unwrap();
        assert_eq!(report.checked, 1);
        let broken = report.broken.unwrap();
        assert_eq!(broken.seq, 2);
        assert_eq!(
            broken.problem,
            "record 2 is missing: the next stored record is 3"
        );
    }

    #[tokio::test]
    async fn deleted_last_record_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        five(dir.path()).await;
        let store = Store::open(dir.path()).unwrap();
        assert!(store.delete_record_for_tests(5).unwrap());
        let report = store.verify().unwrap();
        assert_eq!(report.checked, 4);
        let broken = report.broken.unwrap();
        assert_eq!(broken.seq, 5);
        assert_eq!(
            broken.problem,
            "the chain head is record 5 but the log ends at record 4"
        );
    }

    #[tokio::test]
    async fn an_unchanged_write_back_still_verifies() {
        // The tamper helper itself must not change bytes: otherwise every
        // tamper test would pass with an empty edit.
        let dir = tempfile::tempdir().unwrap();
        let written = five(dir.path()).await;
        let store = Store::open(dir.path()).unwrap();
        let before = store.inner.audit.get(keys::record(3)).unwrap().unwrap();
        store.tamper_for_tests(3, |_| {}).unwrap();
        let after = store.inner.audit.get(keys::record(3)).unwrap().unwrap();
        assert_eq!(
            before, after,
            "an empty edit must write back the same bytes"
        );
        let report = store.verify().unwrap();
        assert_eq!(
            (report.ok, report.checked, report.head),
            (true, 5, Some(written[4].hash.clone()))
        );
    }

    #[tokio::test]
    #[should_panic(expected = "occurs 0 times in the stored body")]
    async fn a_tamper_that_misses_fails_loudly() {
        let dir = tempfile::tempdir().unwrap();
        five(dir.path()).await;
        let store = Store::open(dir.path()).unwrap();
        let _ = store.tamper_for_tests(2, |r| r.replace("no such text", "x"));
    }

    #[tokio::test]
    async fn a_missing_head_with_records_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        five(dir.path()).await;
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(store.delete_head_for_tests().unwrap());
        }
        // The store still opens (the head is rebuilt in memory from the
        // last record) so that verify can say what is wrong.
        let store = Store::open(dir.path()).unwrap();
        let report = store.verify().unwrap();
        assert!(!report.ok);
        assert_eq!(report.checked, 0);
        let broken = report.broken.unwrap();
        assert_eq!(broken.seq, 1);
        assert_eq!(
            broken.problem,
            "the chain head is missing but records exist"
        );
    }

    #[tokio::test]
    async fn a_forged_newest_record_is_caught_by_the_head() {
        // No successor links to the newest record, so a forger who
        // re-hashes it is caught only by the persisted head's hash.
        let dir = tempfile::tempdir().unwrap();
        let written = five(dir.path()).await;
        let store = Store::open(dir.path()).unwrap();
        store
            .tamper_for_tests(5, |r| {
                r.replace(
                    r#""seq":5,"verdict":"promote""#,
                    r#""seq":5,"verdict":"rollback""#,
                );
                r.rehash(&written[3].hash);
            })
            .unwrap();
        let report = store.verify().unwrap();
        assert!(!report.ok);
        assert_eq!(report.checked, 5, "every record checks out on its own");
        let broken = report.broken.unwrap();
        assert_eq!(broken.seq, 5);
        assert!(
            broken.problem.starts_with(&format!(
                "the chain head hash `{}` differs from the last record's",
                written[4].hash
            )),
            "{}",
            broken.problem
        );
    }

    #[tokio::test]
    async fn non_finite_numbers_are_stored_as_reads_return_them() {
        let dir = tempfile::tempdir().unwrap();
        let (id, replied) = {
            let store = Store::open(dir.path()).unwrap();
            let mut e = eval("api", "prod", Verdict::Hold);
            e.request.metrics[0].canary = vec![0.5, f64::NAN, f64::INFINITY];
            e.request.metrics[0].value = Some(f64::NAN);
            e.reasons[0].observed = Some(f64::NAN);
            e.policies[0].reasons[0].threshold = Some(f64::NEG_INFINITY);
            let d = store.append(e).await.unwrap().into_decision();
            // The reply is what was stored: samples that JSON cannot carry
            // read back as NaN, such optional numbers as absent.
            assert!(d.request.metrics[0].canary[1].is_nan());
            assert!(d.request.metrics[0].canary[2].is_nan());
            assert_eq!(d.request.metrics[0].value, None);
            assert_eq!(d.reasons[0].observed, None);
            assert_eq!(d.policies[0].reasons[0].threshold, None);
            (d.id.clone(), serde_json::to_string(&d).unwrap())
        };
        let store = Store::open(dir.path()).unwrap();
        let d = store.get(&id).unwrap().unwrap();
        assert_eq!(d.request.metrics[0].canary[0], 0.5);
        assert!(d.request.metrics[0].canary[1].is_nan());
        assert_eq!(serde_json::to_string(&d).unwrap(), replied);
        let report = store.verify().unwrap();
        assert_eq!((report.ok, report.checked), (true, 1));
    }

    #[tokio::test]
    async fn floats_read_back_bit_for_bit() {
        // serde_json's default float parser can land one ulp off; a stored
        // decision must read back (and replay) with exactly the numbers the
        // policies saw. These values all came back changed without
        // `float_roundtrip`.
        let awkward = [
            0.025000500000000002,
            0.013000360555127547,
            0.031000556776436282,
            1.0715660391465826e-75,
            -1.603964615428183e143,
        ];
        let dir = tempfile::tempdir().unwrap();
        let mut e = eval("api", "prod", Verdict::Hold);
        e.request.metrics[0].canary = awkward.to_vec();
        e.request.metrics[0].value = Some(awkward[0]);
        e.request.deployment.traffic_percent = Some(awkward[2]);
        e.reasons[0].observed = Some(awkward[1]);
        e.policies[0].reasons[0].threshold = Some(awkward[3]);
        e.policies[0].settings = serde_json::json!({ "max": awkward[4] });
        let replied = {
            let store = Store::open(dir.path()).unwrap();
            store.append(e.clone()).await.unwrap().into_decision()
        };
        let store = Store::open(dir.path()).unwrap();
        let read = store.get(&replied.id).unwrap().unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&read.request.metrics[0].canary), bits(&awkward));
        assert_eq!(read.request.metrics[0].value, Some(awkward[0]));
        assert_eq!(read.request.deployment.traffic_percent, Some(awkward[2]));
        assert_eq!(read.reasons[0].observed, Some(awkward[1]));
        assert_eq!(read.policies[0].reasons[0].threshold, Some(awkward[3]));
        assert_eq!(read.policies[0].settings, e.policies[0].settings);
        assert_eq!(read, replied);
    }
}
