//! Sorting samples: one bucket pass on the leading bits that differ between
//! the samples, then small sorts inside the buckets.
//!
//! Every metric's two sides are sorted once per evaluation, and for a
//! thousand samples a comparison sort was the judge's largest cost after
//! the order statistics. The samples' bit patterns, read as unsigned numbers
//! (see [`key`]), sort in the same order as the numbers. Bits that all
//! samples share (the sign and most exponent bits of samples of one
//! magnitude, and the low mantissa bits of rounded values such as whole
//! milliseconds) say nothing about the order, so the buckets are taken on
//! the leading bits that do differ: about as many buckets as samples, which
//! leaves a handful of samples per bucket for an insertion sort. When every
//! differing bit fits in the bucket number, as for a thousand latencies in
//! whole milliseconds, the bucket pass alone sorts.

/// Below this many samples a comparison sort is cheaper than the bucket
/// pass's fixed cost (its histogram).
const SMALL: usize = 64;

/// Buckets larger than this get a comparison sort instead of an insertion
/// sort (samples crowded into few buckets).
const INSERTION: usize = 16;

/// Sort ascending in the order of `f64::total_cmp`. Samples equal in that
/// order have equal bits, so the result is the same as any other sort's.
pub fn sort_samples(v: &mut [f64]) {
    if v.len() < SMALL {
        v.sort_unstable_by(f64::total_cmp);
        return;
    }
    // The bits every sample shares, found along with the keys.
    let (mut any, mut all) = (0, !0);
    let keys: Vec<u64> = v
        .iter()
        .map(|&x| {
            let k = key(x);
            (any, all) = (any | k, all & k);
            k
        })
        .collect();
    let varying = any ^ all;
    if varying == 0 {
        return; // every sample has the same bits
    }
    // Bucket on up to `width` leading differing bits: about one bucket per
    // sample. Below `shift` are the bits left to the sorts inside buckets.
    let width = usize::BITS - v.len().leading_zeros();
    let top = u64::BITS - varying.leading_zeros();
    let low = varying.trailing_zeros();
    let shift = top.saturating_sub(width).max(low);
    let buckets = 1usize << (top - shift);
    let bucket = |k: u64| ((k >> shift) as usize) & (buckets - 1);
    // `next[b]`: where bucket `b`'s next sample goes.
    let mut next = vec![0u32; buckets + 1];
    for &k in &keys {
        next[bucket(k) + 1] += 1;
    }
    for b in 1..=buckets {
        next[b] += next[b - 1];
    }
    if shift == low {
        // Every differing bit is in the bucket number: a bucket holds one
        // value, and placing the samples sorts them.
        for &k in &keys {
            let b = bucket(k);
            v[next[b] as usize] = value(k);
            next[b] += 1;
        }
        return;
    }
    let starts = next.clone();
    let mut sorted = vec![0u64; keys.len()];
    for &k in &keys {
        let b = bucket(k);
        sorted[next[b] as usize] = k;
        next[b] += 1;
    }
    for b in 0..buckets {
        let bucket = &mut sorted[starts[b] as usize..starts[b + 1] as usize];
        if bucket.len() > INSERTION {
            bucket.sort_unstable();
        } else {
            insertion_sort(bucket);
        }
    }
    for (x, &k) in v.iter_mut().zip(&sorted) {
        *x = value(k);
    }
}

fn insertion_sort(keys: &mut [u64]) {
    for i in 1..keys.len() {
        let k = keys[i];
        let mut j = i;
        while j > 0 && keys[j - 1] > k {
            keys[j] = keys[j - 1];
            j -= 1;
        }
        keys[j] = k;
    }
}

/// The bit pattern as an unsigned number in the order of `f64::total_cmp`:
/// negative numbers have all bits flipped, others only the sign bit.
fn key(x: f64) -> u64 {
    let bits = x.to_bits();
    bits ^ (((bits as i64 >> 63) as u64) | (1 << 63))
}

fn value(k: u64) -> f64 {
    // The sign bit of a key is set exactly for the non-negative numbers:
    // flip it back alone for those, every bit for the others.
    let negative = (k as i64 >> 63) as u64 ^ !0;
    f64::from_bits(k ^ (negative | (1 << 63)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed
    }

    #[track_caller]
    fn check(mut v: Vec<f64>) {
        let mut want = v.clone();
        want.sort_by(f64::total_cmp);
        sort_samples(&mut v);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&v), bits(&want));
    }

    #[test]
    fn sorts_like_total_cmp() {
        let mut seed = 1;
        for n in [0, 1, 2, 63, 64, 65, 1000, 4099] {
            // Any bit pattern (NaNs and infinities included).
            check((0..n).map(|_| f64::from_bits(lcg(&mut seed))).collect());
            // Whole numbers, decimals, negative numbers, zeros of both signs.
            check(
                (0..n)
                    .map(|_| (lcg(&mut seed) % 23) as f64 + 100.0)
                    .collect(),
            );
            check(
                (0..n)
                    .map(|_| (lcg(&mut seed) % 20_001) as f64 / 100.0 - 100.0)
                    .collect(),
            );
            check(
                (0..n)
                    .map(|i| [0.0, -0.0, 1e-310, -1e-310, f64::MAX, f64::MIN][i % 6])
                    .collect(),
            );
            check(vec![3.5; n]);
        }
    }

    #[test]
    fn keys_order_like_total_cmp() {
        let mut seed = 5;
        for _ in 0..10_000 {
            let (a, b) = (
                f64::from_bits(lcg(&mut seed)),
                f64::from_bits(lcg(&mut seed)),
            );
            assert_eq!(key(a).cmp(&key(b)), a.total_cmp(&b));
            assert_eq!(value(key(a)).to_bits(), a.to_bits());
        }
    }
}
