//! The key layout of the `audit` tree.
//!
//! Records, indexes and the chain head share one tree so a batch of
//! decisions and everything that points at them commit in one atomic
//! `apply_batch`; the first byte of a key says what it is:
//!
//! | key | value |
//! |---|---|
//! | `d` seq_be | record: 64-byte hex hash, then the canonical body |
//! | `s` service `\0` seq_be | empty (service index) |
//! | `e` environment `\0` seq_be | empty (environment index) |
//! | `v` verdict `\0` seq_be | empty (verdict index) |
//! | `t` time_be seq_be | empty (decided_at index, for time ranges) |
//! | `i` idempotency key | request fingerprint (32 bytes) then seq_be; seq_be alone in records stored before fingerprints |
//! | `h` | chain head, JSON |
//! | `c` | the latest signed checkpoint (signed-note text) |
//!
//! Sequence numbers are big-endian so byte order is numeric order and a
//! reverse range scan walks newest first.

use jiff::Timestamp;

use super::StoreError;
use crate::domain::Fingerprint;

pub(super) const RECORD: u8 = b'd';
pub(super) const BY_SERVICE: u8 = b's';
pub(super) const BY_ENVIRONMENT: u8 = b'e';
pub(super) const BY_VERDICT: u8 = b'v';
pub(super) const BY_TIME: u8 = b't';
pub(super) const BY_IDEMPOTENCY: u8 = b'i';
pub(super) const HEAD: &[u8] = b"h";
pub(super) const CHECKPOINT: &[u8] = b"c";
/// `u<digest>`: some stored decision ran this component version, so its
/// bytes must be kept for replay (see `Store::reclaim_unreferenced`).
pub(super) const USED_DIGEST: u8 = b'u';
/// Present once every record's digests are in the `u` index (stores
/// written before the index existed are backfilled once).
pub(super) const USED_INDEXED: &[u8] = b"m:used-digests-indexed";

pub(super) fn used_digest(digest: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + digest.len());
    k.push(USED_DIGEST);
    k.extend_from_slice(digest.as_bytes());
    k
}

/// Prefix of decision ids; the rest is the zero-padded seq, so an id maps to
/// its record without a separate index.
const ID_PREFIX: &str = "dec-";

pub(super) fn record(seq: u64) -> [u8; 9] {
    let mut k = [RECORD; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The seq at the end of any key that ends in one (records and indexes).
pub(super) fn trailing_seq(key: &[u8]) -> Option<u64> {
    let tail = key.len().checked_sub(8).map(|at| &key[at..])?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

/// `prefix value \0`: everything before the seq of an index key.
pub(super) fn index_prefix(prefix: u8, value: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(value.len() + 10);
    k.push(prefix);
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k
}

pub(super) fn index(prefix: u8, value: &str, seq: u64) -> Vec<u8> {
    let mut k = index_prefix(prefix, value);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Timestamps as bytes that sort like the instants: nanoseconds with the
/// sign bit flipped, big-endian.
pub(super) fn time(at: Timestamp, seq: u64) -> Vec<u8> {
    let sortable = (at.as_nanosecond() as u128) ^ (1u128 << 127);
    let mut k = Vec::with_capacity(25);
    k.push(BY_TIME);
    k.extend_from_slice(&sortable.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(super) fn idempotency(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(BY_IDEMPOTENCY);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The value of an idempotency key: the fingerprint of the request it
/// was first used with, then the seq (last, so [`trailing_seq`] reads
/// either layout).
pub(super) fn idempotency_value(seq: u64, fingerprint: Option<&Fingerprint>) -> Vec<u8> {
    let mut v = Vec::with_capacity(40);
    if let Some(fp) = fingerprint {
        v.extend_from_slice(fp);
    }
    v.extend_from_slice(&seq.to_be_bytes());
    v
}

/// The fingerprint an idempotency value holds; `None` for the 8-byte
/// values written before fingerprints were stored.
pub(super) fn idempotency_fingerprint(value: &[u8]) -> Option<Fingerprint> {
    (value.len() == 40).then(|| value[..32].try_into().ok())?
}

pub(super) fn decision_id(seq: u64) -> String {
    format!("{ID_PREFIX}{seq:012}")
}

/// The seq an id names, if it has the shape of one. Callers still compare
/// the stored record's id, so `dec-0000000000001` does not alias seq 1.
pub(super) fn seq_of_id(id: &str) -> Option<u64> {
    let digits = id.strip_prefix(ID_PREFIX)?;
    if digits.len() < 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A page cursor names the seq of the last item served; the next page
/// starts strictly below it. Hex keeps it opaque-looking and URL-safe.
pub(super) fn encode_cursor(seq: u64) -> String {
    format!("{seq:016x}")
}

pub(super) fn decode_cursor(cursor: &str) -> Result<u64, StoreError> {
    let bad = || StoreError::BadCursor(cursor.to_string());
    if cursor.len() != 16
        || !cursor
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad());
    }
    u64::from_str_radix(cursor, 16).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort() {
        assert_eq!(trailing_seq(&record(7)), Some(7));
        assert!(record(255) < record(256));
        assert_eq!(trailing_seq(&index(BY_SERVICE, "api", 42)), Some(42));
        let early = time(Timestamp::from_second(-5).unwrap(), 9);
        let late = time(Timestamp::from_second(5).unwrap(), 1);
        assert!(early < late, "negative instants sort first");
        assert_eq!(seq_of_id(&decision_id(12)), Some(12));
        assert_eq!(seq_of_id("dec-12"), None);
        assert_eq!(decode_cursor(&encode_cursor(300)).unwrap(), 300);
        assert!(matches!(decode_cursor("zz"), Err(StoreError::BadCursor(c)) if c == "zz"));
        let fp = [7u8; 32];
        let v = idempotency_value(9, Some(&fp));
        assert_eq!(
            (trailing_seq(&v), idempotency_fingerprint(&v)),
            (Some(9), Some(fp))
        );
        let legacy = idempotency_value(9, None);
        assert_eq!(legacy, 9u64.to_be_bytes());
        assert_eq!(
            (trailing_seq(&legacy), idempotency_fingerprint(&legacy)),
            (Some(9), None)
        );
    }
}
