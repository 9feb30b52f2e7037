//! A side's samples in ascending order, as runs of equal values, and the
//! sort that produces them.
//!
//! Every metric's two sides are sorted once per evaluation, and for a
//! thousand samples a comparison sort was the judge's largest cost after the
//! order statistics. Here the samples' bit patterns, read as unsigned numbers
//! (see [`key`]), sort in the same order as the numbers. Bits that every
//! sample shares (the sign and most exponent bits of samples of one
//! magnitude, and the low mantissa bits of rounded values such as whole
//! milliseconds) say nothing about the order, so one counting pass buckets
//! the samples on the leading bits that do differ: about as many buckets as
//! samples, which leaves a handful per bucket for an insertion sort. When
//! every differing bit fits in the bucket number, as for a thousand
//! latencies in whole milliseconds, each bucket holds a single value: the
//! runs are read straight off the bucket counts, and the samples are never
//! moved at all.
//!
//! Everything downstream works on the runs: the rank statistics treat a run
//! as one value with a count, so ties cost nothing extra, and the mean adds
//! the run values in the same order as the sorted samples, so it is the very
//! same number.

/// Below this many samples a comparison sort is cheaper than the bucket
/// pass's fixed cost (its bucket counts).
const SMALL: usize = 16;

/// Buckets larger than this get a comparison sort instead of an insertion
/// sort (samples crowded into few buckets).
const INSERTION: usize = 16;

/// Samples in ascending `f64::total_cmp` order as runs of equal bit
/// patterns. (`-0.0` and `0.0` are equal numbers in different runs; the
/// rank statistics merge them where it matters.)
#[derive(Debug, Clone)]
pub struct Runs {
    /// The distinct values, ascending.
    pub values: Vec<f64>,
    /// `starts[i]` is the number of samples before run `i`; one more entry
    /// at the end holds the number of samples.
    pub starts: Vec<u32>,
}

impl Runs {
    /// The runs of samples already sorted (in `f64::total_cmp` order).
    pub fn new(sorted: &[f64]) -> Runs {
        let mut values = Vec::with_capacity(sorted.len());
        let mut starts = Vec::with_capacity(sorted.len() + 1);
        let mut last = None;
        for (i, &v) in sorted.iter().enumerate() {
            if last != Some(v.to_bits()) {
                values.push(v);
                starts.push(i as u32);
                last = Some(v.to_bits());
            }
        }
        starts.push(sorted.len() as u32);
        Runs { values, starts }
    }

    /// Sort `samples` into runs (see the module documentation).
    pub fn sort(mut samples: Vec<f64>) -> Runs {
        if samples.len() < SMALL {
            samples.sort_unstable_by(f64::total_cmp);
            return Runs::new(&samples);
        }
        let (any, all) = samples.iter().fold((0, !0), |(any, all), &x| {
            let k = key(x);
            (any | k, all & k)
        });
        let varying = any ^ all;
        if varying == 0 {
            // Every sample has the same bits.
            return Runs {
                values: vec![samples[0]],
                starts: vec![0, samples.len() as u32],
            };
        }
        // Bucket on up to `width` leading differing bits: about one bucket
        // per sample (at most 2^16 buckets). Below `shift` are the bits left
        // to the sorts inside buckets.
        let width = (usize::BITS - samples.len().leading_zeros()).min(16);
        let top = u64::BITS - varying.leading_zeros();
        let low = varying.trailing_zeros();
        let shift = top.saturating_sub(width).max(low);
        let buckets = 1usize << (top - shift);
        let bucket = |k: u64| ((k >> shift) as usize) & (buckets - 1);
        let mut counts = vec![0u32; buckets];
        for &x in &samples {
            counts[bucket(key(x))] += 1;
        }
        if shift == low {
            // Every differing bit is in the bucket number, so a bucket holds
            // one value: its key is the shared bits with the bucket number
            // in place.
            let shared = all & !(((buckets - 1) as u64) << shift);
            let mut runs = Runs {
                values: Vec::new(),
                starts: Vec::new(),
            };
            let mut before = 0;
            for (b, &count) in counts.iter().enumerate() {
                if count > 0 {
                    runs.values.push(value(shared | (b as u64) << shift));
                    runs.starts.push(before);
                    before += count;
                }
            }
            runs.starts.push(before);
            return runs;
        }
        // From counts to where each bucket's next key goes.
        let (mut before, mut crowded) = (0, false);
        for slot in counts.iter_mut() {
            let count = *slot;
            *slot = before;
            before += count;
            crowded |= count as usize > INSERTION;
        }
        let mut sorted = vec![0u64; samples.len()];
        for &x in &samples {
            let k = key(x);
            let b = bucket(k);
            sorted[counts[b] as usize] = k;
            counts[b] += 1;
        }
        if crowded {
            // Sort the crowded buckets apart (each now ends where the next
            // starts), and let the insertion sort below only order the few
            // keys in each of the others.
            let mut start = 0;
            for &end in &counts {
                let end = end as usize;
                if end - start > INSERTION {
                    sorted[start..end].sort_unstable();
                }
                start = end;
            }
        }
        // Every key is in its bucket: what is left to order lies within
        // buckets of a handful of keys, so one insertion sort over all of
        // them does little more than read them.
        insertion_sort(&mut sorted);
        if sorted.windows(2).all(|w| w[0] != w[1]) {
            // All distinct, as continuous measurements are.
            return Runs {
                values: sorted.iter().map(|&k| value(k)).collect(),
                starts: (0..=samples.len() as u32).collect(),
            };
        }
        let mut runs = Runs {
            values: Vec::with_capacity(samples.len()),
            starts: Vec::with_capacity(samples.len() + 1),
        };
        let mut last = None;
        for (i, &k) in sorted.iter().enumerate() {
            if last != Some(k) {
                runs.values.push(value(k));
                runs.starts.push(i as u32);
                last = Some(k);
            }
        }
        runs.starts.push(samples.len() as u32);
        runs
    }

    /// Samples in run `i`.
    #[inline]
    pub fn count(&self, i: usize) -> u32 {
        self.starts[i + 1] - self.starts[i]
    }

    /// The number of samples.
    pub fn total(&self) -> u32 {
        self.starts[self.values.len()]
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The sample at 0-based position `p` of the sorted samples.
    pub fn at(&self, p: u32) -> f64 {
        self.values[self.starts.partition_point(|&s| s <= p) - 1]
    }

    /// The samples, sorted.
    pub fn samples(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.values.len())
            .flat_map(|i| std::iter::repeat_n(self.values[i], self.count(i) as usize))
    }

    /// Whether both hold the same samples (as numbers: `-0.0` equals `0.0`).
    pub fn same_samples(&self, other: &Runs) -> bool {
        if self.total() != other.total() {
            return false;
        }
        if self.starts == other.starts && self.values.iter().eq(&other.values) {
            return true;
        }
        // Runs cut differently can still hold equal numbers (`-0.0`, `0.0`).
        self.samples().eq(other.samples())
    }

    /// The arithmetic mean, summed in sorted order like
    /// `verdict_sdk::stats::mean` of the sorted samples: the same number.
    pub fn mean(&self) -> Option<f64> {
        if self.is_empty() {
            return None;
        }
        let n = self.total() as f64;
        if self.values.len() as u32 == self.total() {
            return Some(self.values.iter().sum::<f64>() / n); // no ties
        }
        // `Sum` for f64 adds the terms in order to its sum of no terms.
        let mut sum: f64 = std::iter::empty::<f64>().sum();
        for (i, &v) in self.values.iter().enumerate() {
            for _ in 0..self.count(i) {
                sum += v;
            }
        }
        Some(sum / n)
    }

    /// sum(t^3 - t) over the groups of equal samples: the tie correction of
    /// the rank variance.
    pub fn tie_term(&self) -> f64 {
        let mut total = 0.0;
        if self.values.len() as u32 == self.total() {
            return total; // no ties: every term is 0
        }
        let mut i = 0;
        while let Some(&v) = self.values.get(i) {
            // Runs of equal numbers (`-0.0` then `0.0`) tie with each other.
            let mut t = 0;
            while self.values.get(i) == Some(&v) {
                t += self.count(i);
                i += 1;
            }
            let t = t as f64;
            total += t * t * t - t;
        }
        total
    }
}

/// Sort ascending in the order of `f64::total_cmp`.
pub fn sort_samples(v: &mut [f64]) {
    let runs = Runs::sort(v.to_vec());
    for (slot, x) in v.iter_mut().zip(runs.samples()) {
        *slot = x;
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
    fn check(v: Vec<f64>) {
        let mut want = v.clone();
        want.sort_by(f64::total_cmp);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let runs = Runs::sort(v.clone());
        let exact = |r: &Runs| (bits(&r.values), r.starts.clone());
        assert_eq!(exact(&runs), exact(&Runs::new(&want)));
        let mut got = v.clone();
        sort_samples(&mut got);
        assert_eq!(bits(&got), bits(&want));
        let mean = verdict_sdk::stats::mean(&want).map(f64::to_bits);
        assert_eq!(runs.mean().map(f64::to_bits), mean);
    }

    #[test]
    fn sorts_like_total_cmp() {
        let mut seed = 1;
        for n in [0, 1, 2, 15, 16, 17, 40, 1000, 4099] {
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

    #[test]
    fn equal_numbers_tie_across_runs() {
        let runs = Runs::new(&[-0.0, 0.0, 0.0, 1.0]);
        assert_eq!(runs.values.len(), 3);
        // One group of three equal samples: 27 - 3.
        assert_eq!(runs.tie_term(), 24.0);
        assert!(runs.same_samples(&Runs::new(&[0.0, 0.0, -0.0, 1.0])));
        assert!(runs.same_samples(&Runs::new(&[0.0, 0.0, 0.0, 1.0])));
        assert!(!runs.same_samples(&Runs::new(&[0.0, 0.0, 1.0, 1.0])));
        assert!(!runs.same_samples(&Runs::new(&[0.0, 0.0, 1.0])));
    }
}
