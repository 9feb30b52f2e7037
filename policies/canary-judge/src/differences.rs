//! Order statistics of the pairwise differences `x_i - y_j` of two sorted
//! samples, without listing all `n·m` of them.
//!
//! # The matrix
//!
//! Each sample is first collapsed into its runs of equal values ([`Runs`]):
//! a distinct value and the number of samples holding it. Picture the
//! differences as a matrix with one row per distinct `x` and one column per
//! distinct `y`, both ascending; a cell stands for as many pairs as the
//! product of its row's and its column's counts. Along a row the differences
//! fall from left to right, down a column they rise. Floating-point
//! subtraction is monotone, so this holds for the computed differences, not
//! only for the exact ones: everything below orders the very values a sort
//! of the `n·m` computed differences would, and returns one of them.
//!
//! So the cells `<= v` in a row are the columns from some point on, and that
//! point only moves right from one row to the next: counting the pairs
//! `<= v` (and `< v`) is one walk over the rows with one column pointer,
//! `O(rows + columns)` steps. Collapsing runs makes metrics with few
//! distinct values (counts, whole milliseconds) cheap: the matrix shrinks to
//! distinct values times distinct values.
//!
//! # Selection
//!
//! A search brackets the ranks it looks for between two values `lo < hi`
//! whose counts are known: fewer pairs than each rank lie at or below `lo`,
//! at least as many below `hi`. Each pass counts one pivot `v` inside the
//! bracket, and a rank `k`
//!
//! * is `v` itself when `lt < k <= le` (`le` pairs `<= v`, `lt` pairs
//!   `< v`): however many pairs equal `v`, one pass settles them all;
//! * lies above `v` when `le < k`, which becomes the new `lo`;
//! * lies below `v` when `k <= lt`, which becomes the new `hi`.
//!
//! The estimate's one or two middle ranks and the interval's two bounds are
//! looked for together, sharing passes while they fall on the same side of
//! every pivot; when a pivot separates them the search splits in two. Once
//! few enough cells lie strictly inside a bracket, one more walk lists them
//! and the ranks are picked from the list.
//!
//! # Pivots
//!
//! The first pivot is the difference of the two medians: close to the
//! Hodges-Lehmann estimate for any roughly symmetric shift. After that, a
//! pivot extrapolates to the rank looked for along the line through the last
//! two pivots and their counts (a secant step), or with a single pivot
//! counted so far, along a slope estimated from the samples' interquartile
//! ranges. Near the middle of the differences the count below a value is a
//! smooth function of it, so a secant step lands close to the rank. The step
//! aims a little past the rank, away from the last pivot, so that the next
//! pivot tends to fall on the other side and the bracket closes around the
//! rank instead of creeping up on it from one side. Once a step has landed
//! where it aimed (within a fraction of what listing takes over), the line
//! is trusted for a bracket pass: two pivots a margin either side of the
//! ranks, counted in one walk that also lists the cells between them, from
//! which the ranks are picked directly when they fall there, as they then
//! nearly always do. (This applies where every cell is a single pair; with
//! runs of equal values the matrix is small and passes are cheap.)
//!
//! A guess outside the bracket falls back to interpolating within it; when
//! two passes in a row
//! neither halve the cells in the bracket nor cut the miss to a quarter (a
//! long tail, outliers, a count made of a few big steps), the next pivot is
//! chosen by rank rather than by value: the weighted median of the middle
//! cells of the rows' parts in the bracket. At least a quarter of the cells
//! in the bracket lie on either side of it, so whatever the values, the
//! bracket shrinks geometrically and the search ends.

use crate::runs::Runs;

/// The differences as a matrix of runs (see the module documentation).
struct Matrix<'a> {
    xs: &'a Runs,
    ys: &'a Runs,
    /// Every run of both samples is a single sample.
    single: bool,
    /// Cells few enough to list rather than count once more: listing walks
    /// the rows like a count does, plus some work per cell listed, and a
    /// walk costs about as much as that work for half as many cells as it
    /// visits rows and columns.
    listable: u64,
    /// The first pivot.
    first: f64,
    /// About how far apart in value neighbouring ranks lie near the middle of
    /// the differences, from the samples' spreads; `None` without spread.
    step: Option<f64>,
}

/// What one walk over the rows counted for a pivot `v`.
#[derive(Debug, Clone, Copy)]
struct Count {
    /// Pairs `<= v` and `< v`.
    le: u64,
    lt: u64,
    /// Cells (pairs of runs) `<= v` and `< v`.
    cells_le: u64,
    cells_lt: u64,
}

/// Ranks still looked for between two pivots.
#[derive(Debug, Clone)]
struct Search {
    /// The differences in play lie strictly between these two values; `lo`
    /// is `None` below every difference, `hi` above every difference.
    lo: Option<f64>,
    hi: Option<f64>,
    /// Pairs and cells `<= lo`, and pairs and cells `< hi`: before the
    /// ones in play, and up to the end of them.
    at_lo: (u64, u64),
    under_hi: (u64, u64),
    /// The last two pivots counted, latest first, with their `<=` counts.
    counted: [Option<(f64, u64)>; 2],
    /// How far the last pivot's count fell from the count it aimed at.
    aim_error: Option<u64>,
    /// Passes in a row that made little progress (see `run`).
    stalls: u32,
    /// `(rank, index into the output)`, ascending by rank.
    targets: Vec<(u64, usize)>,
}

impl Search {
    /// Pairs in play.
    fn pairs(&self) -> u64 {
        self.under_hi.0 - self.at_lo.0
    }

    /// Cells in play.
    fn cells(&self) -> u64 {
        self.under_hi.1 - self.at_lo.1
    }
}

/// The differences `x - y` of the given 1-based ranks (each in `1..=n·m`)
/// among the `n·m` pairs of the two samples, in the order asked.
pub fn differences_at<const N: usize>(xs: &Runs, ys: &Runs, ranks: [u64; N]) -> [f64; N] {
    let mut out = [f64::NAN; N];
    if xs.values.is_empty() || ys.values.is_empty() {
        return out;
    }
    let (n, m) = (xs.total(), ys.total());
    let pairs = u64::from(n) * u64::from(m);
    let cells = xs.values.len() as u64 * ys.values.len() as u64;
    let matrix = Matrix {
        xs,
        ys,
        single: cells == pairs,
        listable: 64 + (xs.values.len() + ys.values.len()) as u64 / 2,
        first: xs.at(n / 2) - ys.at(m / 2),
        step: step(xs, ys, pairs),
    };
    let mut targets: Vec<(u64, usize)> = ranks.into_iter().zip(0..).collect();
    targets.sort_unstable();
    let mut stack = vec![Search {
        lo: None,
        hi: None,
        at_lo: (0, 0),
        under_hi: (pairs, cells),
        counted: [None, None],
        aim_error: None,
        stalls: 0,
        targets,
    }];
    while let Some(search) = stack.pop() {
        matrix.run(search, &mut stack, &mut out);
    }
    out
}

impl Matrix<'_> {
    /// Narrow one search until its ranks are answered, pushing the part of it
    /// that a pivot splits off.
    fn run(&self, mut s: Search, stack: &mut Vec<Search>, out: &mut [f64]) {
        loop {
            if s.cells() <= self.listable {
                self.pick_listed(&s, out);
                return;
            }
            if let Some((a, b)) = self.bracket(&s) {
                match self.bracket_pass(s, a, b, stack, out) {
                    Some(rest) => s = rest,
                    None => return,
                }
                continue;
            }
            let rescue = s.stalls >= 2;
            let (v, aim) = if rescue {
                (self.middle_cell(&s), None)
            } else {
                self.guess(&s)
            };
            let c = self.count(v);
            s.aim_error = aim.map(|aim: f64| (c.le as f64 - aim).abs() as u64);
            // How far the pivot's count missed the rank it aimed at, and the
            // last pivot's count, for telling progress from a stall.
            let k = s.targets[s.targets.len() / 2].0;
            let (miss, last_miss) = (c.le.abs_diff(k), s.counted[0].map(|(_, c0)| c0.abs_diff(k)));
            let cells = s.cells();
            s.counted = [Some((v, c.le)), s.counted[0]];
            // Ranks `<= lt` lie below v, ranks `> le` above; between, v.
            let below = s.targets.partition_point(|&(k, _)| k <= c.lt);
            let above = s.targets.partition_point(|&(k, _)| k <= c.le);
            for &(_, o) in &s.targets[below..above] {
                out[o] = v;
            }
            if below > 0 && above < s.targets.len() {
                let mut lower = s.clone();
                lower.targets.truncate(below);
                lower.hi = Some(v);
                lower.under_hi = (c.lt, c.cells_lt);
                stack.push(lower);
            }
            if above < s.targets.len() {
                s.targets.drain(..above);
                s.lo = Some(v);
                s.at_lo = (c.le, c.cells_le);
            } else if below > 0 {
                s.targets.truncate(below);
                s.hi = Some(v);
                s.under_hi = (c.lt, c.cells_lt);
            } else {
                return;
            }
            // A pass that neither halved the cells in play nor cut its miss
            // to a quarter is a stall; after two in a row the next pivot is
            // picked by rank instead (see the module documentation).
            let progress = s.cells() * 2 <= cells || last_miss.is_some_and(|last| miss * 4 < last);
            s.stalls = if rescue || progress { 0 } else { s.stalls + 1 };
        }
    }

    /// The smallest and largest value a pivot of the search may take: the
    /// differences in play all lie within, and nothing else does.
    fn range(&self, s: &Search) -> (f64, f64) {
        let (xs, ys) = (&self.xs.values, &self.ys.values);
        let lowest = xs[0] - ys[ys.len() - 1];
        let highest = xs[xs.len() - 1] - ys[0];
        (
            s.lo.map_or(lowest, f64::next_up),
            s.hi.map_or(highest, f64::next_down),
        )
    }

    /// A value near the middle rank looked for (see the module
    /// documentation), and the count it aims at when it extrapolates.
    fn guess(&self, s: &Search) -> (f64, Option<f64>) {
        let (floor, ceil) = self.range(s);
        let Some((v1, c1)) = s.counted[0] else {
            return (self.first, None);
        };
        // Aim past the rank, as seen from the last pivot, by a quarter of
        // what listing takes over, so that the next pivot tends to land on
        // the other side of the rank.
        let k = s.targets[s.targets.len() / 2].0 as f64 - 0.5;
        let past = (self.listable / 4) as f64;
        let aim = if (c1 as f64) < k { k + past } else { k - past };
        let along = self.slope(s).map(|d| v1 + (aim - c1 as f64) * d);
        if let Some(v) = along.filter(|v| *v >= floor && *v <= ceil) {
            return (v, Some(aim));
        }
        // Where the rank would fall if the pairs in play were spread evenly.
        let t = (k - s.at_lo.0 as f64) / s.pairs() as f64;
        let v = floor + (ceil - floor) * t;
        if v >= floor && v <= ceil {
            (v, None)
        } else {
            (self.middle_cell(s), None)
        }
    }

    /// Value per rank along the line through the last two pivots, else the
    /// samples' estimate.
    fn slope(&self, s: &Search) -> Option<f64> {
        match s.counted {
            [Some((v1, c1)), Some((v0, c0))] if c0 != c1 => {
                Some((v1 - v0) / (c1 as f64 - c0 as f64))
            }
            _ => self.step,
        }
    }

    /// Two pivots close around the search's ranks, when the last step showed
    /// the line through the last two pivots to be a good guide: a bracket
    /// pass then counts both and lists the cells between them in one walk.
    fn bracket(&self, s: &Search) -> Option<(f64, f64)> {
        let error = s.aim_error?;
        let (first, last) = (s.targets[0].0, s.targets[s.targets.len() - 1].0);
        if !self.single || error > self.listable / 8 || last - first > self.listable / 4 {
            return None;
        }
        let [Some((v1, c1)), Some((v0, c0))] = s.counted else {
            return None;
        };
        if c0 == c1 {
            return None;
        }
        let d = (v1 - v0) / (c1 as f64 - c0 as f64);
        // A margin of a quarter of what listing takes over, more if the last
        // step missed by more.
        let margin = (self.listable / 4 + 2 * error) as f64;
        let at = |k: f64| v1 + (k - c1 as f64) * d;
        let (floor, ceil) = self.range(s);
        let a = at(first as f64 - 0.5 - margin).max(floor);
        let b = at(last as f64 - 0.5 + margin).min(ceil);
        (a < b).then_some((a, b))
    }

    /// Each row's range of columns holding the cells in play: the row of
    /// `xs.values[i]` gets `[start, end)`, both only growing with `i`.
    fn in_play(&self, s: &Search, mut each: impl FnMut(usize, usize, usize)) {
        let ys = &self.ys.values[..];
        let (mut start, mut end) = (0, 0);
        for (i, &x) in self.xs.values.iter().enumerate() {
            // Columns before `start` hold differences `>= hi`, columns from
            // `end` on differences `<= lo`.
            if let Some(hi) = s.hi {
                while start < ys.len() && x - ys[start] >= hi {
                    start += 1;
                }
            }
            end = end.max(start);
            match s.lo {
                Some(lo) => {
                    while end < ys.len() && x - ys[end] > lo {
                        end += 1;
                    }
                }
                None => end = ys.len(),
            }
            each(i, start, end);
        }
    }

    /// A cell near the middle of those in play, whatever their values: the
    /// median of the rows' middle cells in play, each row weighing as many
    /// cells as it has in play. At least a quarter of the cells in play lie
    /// on either side of it (see the module documentation).
    fn middle_cell(&self, s: &Search) -> f64 {
        let (xs, ys) = (&self.xs.values, &self.ys.values);
        let mut middles = Vec::new();
        self.in_play(s, |i, start, end| {
            if start < end {
                middles.push((xs[i] - ys[(start + end) / 2], end - start));
            }
        });
        middles.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let half = middles.iter().map(|&(_, cells)| cells).sum::<usize>() / 2;
        let mut seen = 0;
        for &(v, cells) in &middles {
            seen += cells;
            if seen > half {
                return v;
            }
        }
        // Unreachable with a rank in play: some row holds its pairs.
        self.range(s).0
    }

    /// Count `a < b` in one walk and list the cells between them; answer the
    /// ranks that fall on or between them, push the ones below `a` as a
    /// search of their own, and return the search for the ones above `b`.
    fn bracket_pass(
        &self,
        mut s: Search,
        a: f64,
        b: f64,
        stack: &mut Vec<Search>,
        out: &mut [f64],
    ) -> Option<Search> {
        let (ca, cb, listed) = self.count_between(a, b);
        let t = &s.targets;
        let below_a = t.partition_point(|&(k, _)| k <= ca.lt);
        let at_a = t.partition_point(|&(k, _)| k <= ca.le);
        let below_b = t.partition_point(|&(k, _)| k <= cb.lt);
        let at_b = t.partition_point(|&(k, _)| k <= cb.le);
        for &(_, o) in &t[below_a..at_a] {
            out[o] = a;
        }
        for &(_, o) in &t[below_b..at_b] {
            out[o] = b;
        }
        let part = |s: &Search, targets: std::ops::Range<usize>| Search {
            targets: s.targets[targets].to_vec(),
            aim_error: None,
            stalls: 0,
            ..s.clone()
        };
        if at_a < below_b {
            let mut between = part(&s, at_a..below_b);
            (between.lo, between.at_lo) = (Some(a), (ca.le, ca.cells_le));
            (between.hi, between.under_hi) = (Some(b), (cb.lt, cb.cells_lt));
            between.counted = [Some((b, cb.le)), Some((a, ca.le))];
            match listed {
                Some(mut listed) => self.select(&between, &mut listed, out),
                None => stack.push(between),
            }
        }
        if below_a > 0 {
            let mut lower = part(&s, 0..below_a);
            (lower.hi, lower.under_hi) = (Some(a), (ca.lt, ca.cells_lt));
            lower.counted = [Some((a, ca.le)), Some((b, cb.le))];
            stack.push(lower);
        }
        if at_b == s.targets.len() {
            return None;
        }
        s.targets.drain(..at_b);
        (s.lo, s.at_lo) = (Some(b), (cb.le, cb.cells_le));
        s.counted = [Some((b, cb.le)), Some((a, ca.le))];
        (s.aim_error, s.stalls) = (None, 0);
        Some(s)
    }

    /// Counts at `a < b` (every cell a single pair) and, unless there are
    /// too many, the cells strictly between them.
    fn count_between(&self, a: f64, b: f64) -> (Count, Count, Option<Vec<f64>>) {
        let ys = &self.ys.values[..];
        let columns = ys.len();
        let limit = 4 * self.listable as usize;
        let mut listed = Some(Vec::with_capacity(self.listable as usize));
        let (mut le_a, mut le_b) = (0, 0);
        let (mut sums, mut cells_between) = ([0u64; 4], 0);
        for &x in &self.xs.values {
            // As in `count`, for both pivots: the cells `<= b` start at
            // `le_b`, those `< b` at `lt_b`, and so on, `lt_b <= le_a`.
            while le_b < columns && x - ys[le_b] > b {
                le_b += 1;
            }
            let mut lt_b = le_b;
            while lt_b < columns && x - ys[lt_b] == b {
                lt_b += 1;
            }
            le_a = le_a.max(lt_b);
            while le_a < columns && x - ys[le_a] > a {
                le_a += 1;
            }
            let mut lt_a = le_a;
            while lt_a < columns && x - ys[lt_a] == a {
                lt_a += 1;
            }
            for (sum, from) in sums.iter_mut().zip([le_a, lt_a, le_b, lt_b]) {
                *sum += (columns - from) as u64;
            }
            cells_between += le_a - lt_b;
            if cells_between > limit {
                listed = None;
            } else if let Some(listed) = &mut listed {
                listed.extend(ys[lt_b..le_a].iter().map(|&y| x - y));
            }
        }
        let count = |le: u64, lt: u64| Count {
            le,
            lt,
            cells_le: le,
            cells_lt: lt,
        };
        (count(sums[0], sums[1]), count(sums[2], sums[3]), listed)
    }

    /// One walk over the rows: the pairs and cells `<= v` and `< v`.
    fn count(&self, v: f64) -> Count {
        let ys = &self.ys.values[..];
        let columns = ys.len();
        // In a row the differences fall from left to right: those `<= v`
        // are the columns from `le` on, a start that only moves right from
        // one row to the next. Differences equal to v follow it directly
        // (few: the columns are distinct values).
        let mut le = 0;
        let step = |x: f64, le: &mut usize| {
            while *le < columns && x - ys[*le] > v {
                *le += 1;
            }
            let mut lt = *le;
            while lt < columns && x - ys[lt] == v {
                lt += 1;
            }
            lt
        };
        if self.single {
            // Every cell is one pair.
            let (mut le_sum, mut lt_sum) = (0, 0);
            for &x in &self.xs.values {
                let lt = step(x, &mut le);
                le_sum += (columns - le) as u64;
                lt_sum += (columns - lt) as u64;
            }
            let (le, lt) = (le_sum, lt_sum);
            return Count {
                le,
                lt,
                cells_le: le,
                cells_lt: lt,
            };
        }
        let (starts, m) = (&self.ys.starts[..], self.ys.total());
        let mut c = Count {
            le: 0,
            lt: 0,
            cells_le: 0,
            cells_lt: 0,
        };
        for (&x, run) in self.xs.values.iter().zip(self.xs.starts.windows(2)) {
            let lt = step(x, &mut le);
            let weight = u64::from(run[1] - run[0]);
            c.le += weight * u64::from(m - starts[le]);
            c.lt += weight * u64::from(m - starts[lt]);
            c.cells_le += (columns - le) as u64;
            c.cells_lt += (columns - lt) as u64;
        }
        c
    }

    /// Pick the ranks from the cells in play, listed (every one a pair).
    fn select(&self, s: &Search, listed: &mut [f64], out: &mut [f64]) {
        // Ascending ranks: a pick leaves nothing larger before it, so the
        // next rank is looked for from the pick on (it may be the same).
        let mut rest = listed;
        let mut start = 0;
        for &(k, o) in &s.targets {
            let at = (k - s.at_lo.0 - 1) as usize - start;
            rest.select_nth_unstable_by(at, f64::total_cmp);
            out[o] = rest[at];
            let whole = rest;
            rest = &mut whole[at..];
            start += at;
        }
    }

    /// List the cells in play and pick the ranks from the list.
    fn pick_listed(&self, s: &Search, out: &mut [f64]) {
        let (xs, ys) = (self.xs, self.ys);
        if self.single {
            // Every cell is a single pair.
            let mut listed = Vec::with_capacity(s.cells() as usize);
            self.in_play(s, |i, start, end| {
                let x = xs.values[i];
                listed.extend(ys.values[start..end].iter().map(|&y| x - y));
            });
            self.select(s, &mut listed, out);
            return;
        }
        // Cells standing for several pairs: sort them and walk the counts.
        let mut listed: Vec<(f64, u64)> = Vec::with_capacity(s.cells() as usize);
        self.in_play(s, |i, start, end| {
            let (x, weight) = (xs.values[i], u64::from(xs.count(i)));
            for j in start..end {
                listed.push((x - ys.values[j], weight * u64::from(ys.count(j))));
            }
        });
        listed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut below = s.at_lo.0;
        let mut cells = listed.iter();
        let mut cell = cells.next();
        for &(k, o) in &s.targets {
            while let Some(&(v, pairs)) = cell {
                if k <= below + pairs {
                    out[o] = v;
                    break;
                }
                below += pairs;
                cell = cells.next();
            }
        }
    }
}

/// Value per rank near the middle of the differences, estimated from the
/// interquartile ranges: for roughly normal samples the middle half of the
/// differences spans about `sqrt(iqr_x^2 + iqr_y^2)`.
fn step(xs: &Runs, ys: &Runs, pairs: u64) -> Option<f64> {
    let iqr = |r: &Runs| r.at(r.total() * 3 / 4) - r.at(r.total() / 4);
    let spread = iqr(xs).hypot(iqr(ys));
    let step = spread / (pairs as f64 / 2.0);
    (step.is_finite() && step > 0.0).then_some(step)
}
