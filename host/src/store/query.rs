//! Audit queries (newest first, filtered, paged) and export (oldest first).
//!
//! A query becomes a seq window: the cursor is an upper bound, and because
//! `decided_at` never decreases along the chain, `since`/`until` are one
//! lookup each in the time index. Inside the window, the most specific
//! filter's index drives a reverse scan and the other filters are point
//! lookups in their indexes, so no record is decoded unless it is served.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{keys, StoreError};
use crate::domain::{Decision, Verdict};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;
/// A page stops growing once its stored records reach this many bytes
/// (one record always fits), and hands out a cursor for the rest: a page of
/// large records is then a few MiB instead of `MAX_LIMIT` times the largest
/// request.
pub const MAX_PAGE_BYTES: usize = 4 << 20;

/// The parameters of `GET /v1/decisions`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Query {
    pub service: Option<String>,
    pub environment: Option<String>,
    pub verdict: Option<Verdict>,
    /// Inclusive: decisions with `decided_at >= since`.
    pub since: Option<Timestamp>,
    /// Exclusive: decisions with `decided_at < until`.
    pub until: Option<Timestamp>,
    /// Default [`DEFAULT_LIMIT`]; clamped to `1..=MAX_LIMIT`. A page may
    /// hold fewer (see [`MAX_PAGE_BYTES`]); `next_cursor` tells.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of a list answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    pub items: Vec<Decision>,
    /// Present when more items match; `null` on the last page.
    pub next_cursor: Option<String>,
}

pub(super) fn run(tree: &sled::Tree, q: &Query) -> Result<Page, StoreError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let empty = Page {
        items: Vec::new(),
        next_cursor: None,
    };
    // The window [lo, hi) of seqs that can match.
    let mut lo = 1u64;
    let mut hi = u64::MAX;
    if let Some(cursor) = &q.cursor {
        hi = keys::decode_cursor(cursor)?;
    }
    if let Some(since) = q.since {
        match first_seq_at_or_after(tree, since)? {
            Some(seq) => lo = seq,
            None => return Ok(empty),
        }
    }
    if let Some(until) = q.until {
        if let Some(seq) = first_seq_at_or_after(tree, until)? {
            hi = hi.min(seq);
        }
    }
    if lo >= hi {
        return Ok(empty);
    }

    let verdict = q.verdict.map(|v| v.as_str().to_string());
    let filters: Vec<(u8, &str)> = [
        (keys::BY_SERVICE, q.service.as_deref()),
        (keys::BY_ENVIRONMENT, q.environment.as_deref()),
        (keys::BY_VERDICT, verdict.as_deref()),
    ]
    .into_iter()
    .filter_map(|(prefix, value)| Some((prefix, value?)))
    .collect();

    let mut page = Paged::new(limit);
    for seq in candidates(tree, filters.first().copied(), lo, hi) {
        let seq = seq?;
        if !matches_rest(tree, &filters, seq)? {
            continue;
        }
        if page.full() {
            break;
        }
        // An index entry whose record is gone (tampering) is skipped here;
        // `verify` is where that gets reported.
        if let Some(value) = tree.get(keys::record(seq))? {
            if !page.add(seq, &value)? {
                break;
            }
        }
    }
    Ok(page.finish())
}

/// A page being filled: at most `limit` records and about
/// [`MAX_PAGE_BYTES`]. Once either is reached, any further record means a
/// next page, starting after the last one served.
pub(super) struct Paged {
    limit: usize,
    items: Vec<Decision>,
    last_seq: u64,
    bytes: usize,
    more: bool,
}

impl Paged {
    pub(super) fn new(limit: usize) -> Paged {
        Paged {
            limit,
            items: Vec::new(),
            last_seq: 0,
            bytes: 0,
            more: false,
        }
    }

    /// Whether the page holds `limit` records; a further match means more.
    pub(super) fn full(&mut self) -> bool {
        self.more = self.items.len() >= self.limit;
        self.more
    }

    /// Add the record stored as `value` unless it would take the page past
    /// [`MAX_PAGE_BYTES`]; false (and a next page) when it would.
    pub(super) fn add(&mut self, seq: u64, value: &[u8]) -> Result<bool, StoreError> {
        if !self.items.is_empty() && self.bytes + value.len() > MAX_PAGE_BYTES {
            self.more = true;
            return Ok(false);
        }
        self.bytes += value.len();
        self.items.push(super::chain::decode(seq, value)?);
        self.last_seq = seq;
        Ok(true)
    }

    pub(super) fn finish(self) -> Page {
        let next_cursor = self.more.then(|| keys::encode_cursor(self.last_seq));
        Page {
            items: self.items,
            next_cursor,
        }
    }
}

/// Seqs in `[lo, hi)`, newest first: from the driving index if there is a
/// filter, else from the records themselves.
fn candidates(
    tree: &sled::Tree,
    driver: Option<(u8, &str)>,
    lo: u64,
    hi: u64,
) -> Box<dyn Iterator<Item = Result<u64, StoreError>>> {
    match driver {
        Some((prefix, value)) => {
            let expected_len = keys::index_prefix(prefix, value).len() + 8;
            let range = keys::index(prefix, value, lo)..keys::index(prefix, value, hi);
            Box::new(tree.range(range).keys().rev().filter_map(move |k| match k {
                // A longer key is another value that merely starts with
                // `value \0`; it is not this value's entry.
                Ok(k) if k.len() == expected_len => keys::trailing_seq(&k).map(Ok),
                Ok(_) => None,
                Err(e) => Some(Err(e.into())),
            }))
        }
        None => {
            let range = keys::record(lo)..keys::record(hi);
            Box::new(tree.range(range).keys().rev().map(|k| {
                let k = k?;
                Ok(keys::trailing_seq(&k).unwrap_or(0))
            }))
        }
    }
}

fn matches_rest(tree: &sled::Tree, filters: &[(u8, &str)], seq: u64) -> Result<bool, StoreError> {
    for (prefix, value) in filters.iter().skip(1) {
        if !tree.contains_key(keys::index(*prefix, value, seq))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The first seq decided at or after `at`, if any.
fn first_seq_at_or_after(tree: &sled::Tree, at: Timestamp) -> Result<Option<u64>, StoreError> {
    let start = keys::time(at, 0);
    let end = [keys::BY_TIME + 1];
    match tree.range(start.as_slice()..&end[..]).next() {
        Some(item) => Ok(keys::trailing_seq(&item?.0)),
        None => Ok(None),
    }
}

/// Records after `after_seq` in seq order: at most `limit` and about
/// [`MAX_PAGE_BYTES`] (at least one, if any is left and `limit` > 0).
pub(super) fn export(
    tree: &sled::Tree,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<Decision>, StoreError> {
    let Some(first) = after_seq.checked_add(1) else {
        return Ok(Vec::new());
    };
    let mut page = Paged::new(limit);
    for item in tree.range(keys::record(first)..=keys::record(u64::MAX)) {
        let (key, value) = item?;
        if page.full() {
            break;
        }
        let seq = keys::trailing_seq(&key).unwrap_or(0);
        if !page.add(seq, &value)? {
            break;
        }
    }
    Ok(page.finish().items)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::eval;
    use super::super::Store;
    use super::*;
    use Verdict::{Freeze, Hold, Promote, Rollback};

    /// Twelve records: seq i has service api/web/db by (i-1)%3, environment
    /// prod for even i (staging for odd) and verdict by (i-1)%4.
    async fn twelve(store: &Store) -> Vec<Decision> {
        let mut out = Vec::new();
        for i in 1..=12usize {
            let service = ["api", "web", "db"][(i - 1) % 3];
            let env = if i % 2 == 0 { "prod" } else { "staging" };
            let verdict = [Promote, Hold, Rollback, Freeze][(i - 1) % 4];
            let appended = store.append(eval(service, env, verdict)).await.unwrap();
            out.push(appended.into_decision());
        }
        out
    }

    fn filter(service: Option<&str>, env: Option<&str>, verdict: Option<Verdict>) -> Query {
        Query {
            service: service.map(Into::into),
            environment: env.map(Into::into),
            verdict,
            ..Query::default()
        }
    }

    /// Seqs of the first page.
    fn run(store: &Store, q: Query) -> Vec<u64> {
        store
            .query(&q)
            .unwrap()
            .items
            .iter()
            .map(|d| d.seq)
            .collect()
    }

    #[tokio::test]
    async fn filters_each_and_combined_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        twelve(&store).await;
        let none: Vec<u64> = Vec::new();
        assert_eq!(
            run(&store, Query::default()),
            (1..=12).rev().collect::<Vec<u64>>()
        );
        assert_eq!(run(&store, filter(Some("api"), None, None)), [10, 7, 4, 1]);
        assert_eq!(
            run(&store, filter(None, Some("prod"), None)),
            [12, 10, 8, 6, 4, 2]
        );
        assert_eq!(run(&store, filter(None, None, Some(Hold))), [10, 6, 2]);
        assert_eq!(
            run(&store, filter(Some("api"), Some("prod"), None)),
            [10, 4]
        );
        assert_eq!(
            run(&store, filter(Some("api"), Some("prod"), Some(Hold))),
            [10]
        );
        assert_eq!(
            run(&store, filter(Some("api"), Some("prod"), Some(Freeze))),
            [4]
        );
        assert_eq!(
            run(&store, filter(Some("api"), Some("prod"), Some(Rollback))),
            none
        );
        assert_eq!(
            run(&store, filter(None, Some("staging"), Some(Rollback))),
            [11, 7, 3]
        );
        assert_eq!(run(&store, filter(Some("nope"), None, None)), none);
    }

    #[tokio::test]
    async fn service_filter_matches_the_exact_value_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for service in ["api", "api\0x", "ap", "api"] {
            store.append(eval(service, "prod", Promote)).await.unwrap();
        }
        assert_eq!(run(&store, filter(Some("api"), None, None)), [4, 1]);
        assert_eq!(run(&store, filter(Some("api\0x"), None, None)), [2]);
    }

    #[tokio::test]
    async fn since_and_until_select_by_decided_at() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let all = twelve(&store).await;
        let (since, until) = (all[3].decided_at, all[8].decided_at);
        let expected: Vec<u64> = all
            .iter()
            .rev()
            .filter(|d| d.decided_at >= since && d.decided_at < until)
            .map(|d| d.seq)
            .collect();
        assert!(
            expected.contains(&4) && !expected.contains(&9),
            "{expected:?}"
        );
        let window = |since, until| Query {
            since,
            until,
            ..Query::default()
        };
        assert_eq!(run(&store, window(Some(since), Some(until))), expected);

        let after_last = all[11].decided_at + jiff::SignedDuration::from_secs(1);
        assert_eq!(
            run(&store, window(Some(after_last), None)),
            Vec::<u64>::new()
        );
        assert_eq!(
            run(&store, window(None, Some(all[0].decided_at))),
            Vec::<u64>::new()
        );
        assert_eq!(run(&store, window(None, Some(after_last))).len(), 12);

        let prod_since: Vec<u64> = all
            .iter()
            .rev()
            .filter(|d| d.decided_at >= since && d.request.deployment.environment == "prod")
            .map(|d| d.seq)
            .collect();
        let q = Query {
            since: Some(since),
            ..filter(None, Some("prod"), None)
        };
        assert_eq!(run(&store, q), prod_since);
    }

    #[tokio::test]
    async fn cursor_paging_visits_every_record_once_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        twelve(&store).await;
        let prod = filter(None, Some("prod"), None);
        let cases: [(Query, usize, Vec<Vec<u64>>); 3] = [
            (
                Query::default(),
                5,
                vec![vec![12, 11, 10, 9, 8], vec![7, 6, 5, 4, 3], vec![2, 1]],
            ),
            (prod.clone(), 4, vec![vec![12, 10, 8, 6], vec![4, 2]]),
            // A page that ends exactly at the last match has no next page.
            (prod, 6, vec![vec![12, 10, 8, 6, 4, 2]]),
        ];
        for (base, limit, pages) in cases {
            let mut cursor = None;
            let mut seen = Vec::new();
            loop {
                let q = Query {
                    limit: Some(limit),
                    cursor,
                    ..base.clone()
                };
                let page = store.query(&q).unwrap();
                seen.push(page.items.iter().map(|d| d.seq).collect::<Vec<u64>>());
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(seen, pages, "limit {limit}, filter {base:?}");
        }
    }

    #[tokio::test]
    async fn bad_cursor_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        twelve(&store).await;
        let bad = Query {
            cursor: Some("garbage".into()),
            ..Query::default()
        };
        let err = store.query(&bad).unwrap_err();
        assert!(matches!(&err, StoreError::BadCursor(c) if c == "garbage"));
        assert_eq!(
            err.to_string(),
            "invalid cursor `garbage`: pass the `next_cursor` of a previous page unchanged"
        );
        let limited = |limit| Query {
            limit: Some(limit),
            ..Query::default()
        };
        assert_eq!(run(&store, limited(0)), [12], "limit 0 is clamped to 1");
        assert_eq!(run(&store, limited(5000)).len(), 12);
        let json = serde_json::to_value(store.query(&limited(1)).unwrap()).unwrap();
        assert_eq!(json["items"][0]["seq"], 12);
        assert_eq!(json["next_cursor"], keys::encode_cursor(12).as_str());
    }

    #[test]
    fn query_parameters_deserialize_from_snake_case() {
        let q: Query = serde_json::from_value(serde_json::json!({
            "service": "api", "verdict": "hold", "since": "2025-01-01T00:00:00Z", "limit": 10
        }))
        .unwrap();
        assert_eq!(q.verdict, Some(Hold));
        assert_eq!(q.since, Some("2025-01-01T00:00:00Z".parse().unwrap()));
        let err = serde_json::from_value::<Query>(serde_json::json!({"servce": "api"}));
        let err = err.unwrap_err().to_string();
        assert!(err.contains("unknown field `servce`"), "{err}");
    }

    /// `n` records of about `size` bytes each (in `args`), seqs 1..=n.
    async fn large(store: &Store, n: usize, size: usize) {
        for i in 0..n {
            let mut e = eval("api", "prod", Promote);
            e.request.args.insert("blob".into(), "x".repeat(size + i));
            store.append(e).await.unwrap();
        }
    }

    #[tokio::test]
    async fn pages_of_large_records_stop_near_max_page_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        large(&store, 12, 600 << 10).await;
        let mut cursor = None;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let q = Query {
                limit: Some(MAX_LIMIT),
                cursor,
                ..Query::default()
            };
            let page = store.query(&q).unwrap();
            let bytes = serde_json::to_vec(&page).unwrap().len();
            assert!(
                bytes <= MAX_PAGE_BYTES + (64 << 10),
                "page {pages} is {bytes} bytes"
            );
            assert!(!page.items.is_empty());
            seen.extend(page.items.iter().map(|d| d.seq));
            pages += 1;
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert!(pages >= 2, "{pages} page(s)");
        assert_eq!(seen, (1..=12).rev().collect::<Vec<u64>>());

        // Export pages the same way, oldest first.
        let mut after = 0;
        let mut exported = Vec::new();
        loop {
            let part = store.export(after, MAX_LIMIT).unwrap();
            let Some(last) = part.last() else { break };
            assert!(part.len() < 12, "{} records in one export call", part.len());
            after = last.seq;
            exported.extend(part.iter().map(|d| d.seq));
        }
        assert_eq!(exported, (1..=12).collect::<Vec<u64>>());
    }

    #[tokio::test]
    async fn a_record_larger_than_a_page_is_still_served() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        large(&store, 2, MAX_PAGE_BYTES + 1).await;
        let page = store.query(&Query::default()).unwrap();
        assert_eq!(page.items.len(), 1);
        let q = Query {
            cursor: page.next_cursor,
            ..Query::default()
        };
        let rest = store.query(&q).unwrap();
        assert_eq!(rest.items.iter().map(|d| d.seq).collect::<Vec<_>>(), [1]);
        assert_eq!(rest.next_cursor, None);
        assert_eq!(store.export(0, 10).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn export_pages_in_seq_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        twelve(&store).await;
        let seqs = |v: Vec<Decision>| v.into_iter().map(|d| d.seq).collect::<Vec<u64>>();
        assert_eq!(seqs(store.export(0, 5).unwrap()), [1, 2, 3, 4, 5]);
        assert_eq!(
            seqs(store.export(5, 100).unwrap()),
            (6..=12).collect::<Vec<u64>>()
        );
        assert!(store.export(12, 10).unwrap().is_empty());
        assert!(store.export(u64::MAX, 10).unwrap().is_empty());
    }
}
