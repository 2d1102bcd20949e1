//! How an input of `rows` rows is cut into blocks.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// Blocks per pool thread when the chunk size is chosen automatically: enough for work stealing to
/// even out blocks of unequal cost, few enough that per-block overhead (a task, an output array)
/// stays far below the work.
pub(crate) const BLOCKS_PER_THREAD: usize = 4;

/// The smallest block the automatic rule makes. Below two of these the whole input runs inline on
/// the calling thread: a pool hop costs microseconds, more than light closures spend on 128 rows.
pub(crate) const MIN_AUTO_BLOCK_ROWS: usize = 64;

/// How long an adaptive plan's first units may run on the calling thread before the rest is
/// spread over the pool: ten to a hundred pool hops (waking a sleeping pool thread costs
/// microseconds, up to a millisecond on a busy VM), so that a small input of cheap units never
/// pays for a hop, and a slow unit is found after its first run.
pub(crate) const PROBE_BUDGET: Duration = Duration::from_micros(100);

/// The work a spread block aims at when units are slow: slow units get blocks of one unit (a
/// block's own cost, about a microsecond, is then noise), cheaper ones blocks of about this much
/// work, never coarser than four blocks per thread.
pub(crate) const TARGET_BLOCK: Duration = Duration::from_millis(10);

/// Below this much estimated work left after the probe, the rest runs on the calling thread too:
/// spreading it would save less than the hop costs.
pub(crate) const MIN_SPREAD: Duration = Duration::from_micros(200);

/// The blocks a call will run: how many rows each, on how many threads.
///
/// Obtain one with [`Flock::plan`](crate::Flock::plan) to see what a call would do; `Debug` prints
/// it.
///
/// # Examples
///
/// ```
/// use polars_flock::Flock;
///
/// let plan = Flock::new().chunksize(300).plan(1_000)?;
/// assert_eq!(plan.chunksize(), 300);
/// assert_eq!(plan.blocks(), 4); // 300 + 300 + 300 + 100
/// assert_eq!(plan.block_rows(3), 900..1_000);
/// # Ok::<(), polars_flock::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkPlan {
    rows: usize,
    chunksize: usize,
    threads: usize,
    empty_block: bool,
    /// For a plan of a given number of blocks ([`Flock::blocks`](crate::Flock::blocks)): how
    /// many blocks, from the first, have `chunksize` rows; the others have one row less, as in
    /// `np.array_split`. `None`: every block but the last has `chunksize` rows.
    long_blocks: Option<usize>,
    /// The call times its first units and spreads the rest by what they cost (see
    /// [`ChunkPlan::is_adaptive`]).
    adaptive: bool,
    /// Where each block starts, and the end: the blocks an adaptive call ran (or is running), in
    /// place of the uniform layout above.
    bounds: Option<Arc<[usize]>>,
}

impl ChunkPlan {
    /// The plan for `rows` rows: `chunksize` if given, else the automatic rule for `threads`
    /// threads (see [`Flock::chunksize`](crate::Flock::chunksize)).
    pub(crate) fn new(rows: usize, chunksize: Option<usize>, threads: usize) -> Self {
        let chunksize = chunksize.unwrap_or_else(|| auto_chunksize(rows, threads));
        ChunkPlan {
            rows,
            chunksize,
            threads,
            empty_block: false,
            long_blocks: None,
            adaptive: false,
            bounds: None,
        }
    }

    /// The uniform layout without the adaptive rule: for block verbs and folds, whose blocks are
    /// part of their result.
    pub(crate) fn fixed(mut self) -> Self {
        self.adaptive = false;
        self
    }

    /// Makes the plan adaptive (see [`ChunkPlan::is_adaptive`]) when there is something to
    /// spread: more than one unit and more than one thread.
    pub(crate) fn adaptive(mut self) -> Self {
        self.adaptive = self.rows > 1 && self.threads > 1;
        self
    }

    /// The blocks an adaptive call runs once its probe ran the blocks ending at `probed` (the
    /// first starting at 0) in `elapsed`: those, then the rest of the rows in blocks sized by the
    /// measured cost per unit: one block (run on the calling thread) when the rest is estimated
    /// at under [`MIN_SPREAD`], else blocks of about [`TARGET_BLOCK`] of work, at least one unit
    /// and at most `ceil(rest / (4 × threads))` units each.
    pub(crate) fn spread(&self, probed: &[usize], elapsed: Duration) -> ChunkPlan {
        let done = probed.last().copied().unwrap_or(0);
        let rest = self.rows - done;
        let per_unit = elapsed.as_secs_f64() / done.max(1) as f64;
        let chunk = if rest as f64 * per_unit < MIN_SPREAD.as_secs_f64() {
            rest.max(1)
        } else {
            let balanced = rest.div_ceil(BLOCKS_PER_THREAD.saturating_mul(self.threads.max(1)));
            let by_time = (TARGET_BLOCK.as_secs_f64() / per_unit.max(1e-12)).round();
            // `as` saturates: a unit of no measurable cost gives the balanced size.
            (by_time as usize).clamp(1, balanced.max(1))
        };
        let mut bounds = Vec::with_capacity(probed.len() + rest.div_ceil(chunk) + 1);
        bounds.push(0);
        bounds.extend_from_slice(probed);
        let mut start = done;
        while start < self.rows {
            start = start.saturating_add(chunk).min(self.rows);
            bounds.push(start);
        }
        ChunkPlan {
            rows: self.rows,
            chunksize: bounds.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(1),
            threads: self.threads,
            empty_block: false,
            long_blocks: None,
            adaptive: false,
            bounds: Some(bounds.into()),
        }
    }

    /// `rows` rows in `blocks` blocks of sizes differing by at most one (longer blocks first), or
    /// one block per row when there are fewer rows than blocks.
    pub(crate) fn balanced(rows: usize, blocks: usize, threads: usize) -> Self {
        let blocks = blocks.clamp(1, rows.max(1));
        let (base, extra) = (rows / blocks, rows % blocks);
        let mut plan = ChunkPlan::new(rows, Some((base + usize::from(extra > 0)).max(1)), threads);
        if extra > 0 {
            plan.long_blocks = Some(extra);
        }
        plan
    }

    /// Makes an empty input one empty block instead of none, so that a block closure still runs
    /// once and the output gets the closure's schema.
    pub(crate) fn with_empty_block(mut self) -> Self {
        self.empty_block = self.rows == 0;
        self
    }

    /// The number of rows (or items) in the input.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(polars_flock::Flock::new().plan(10)?.rows(), 10);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Rows per block; the last block may be shorter. For a number of blocks
    /// ([`Flock::blocks`](crate::Flock::blocks)), the largest block's rows.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(polars_flock::Flock::new().chunksize(7).plan(10)?.chunksize(), 7);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn chunksize(&self) -> usize {
        self.chunksize
    }

    /// The number of threads of the pool that will run the blocks.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(polars_flock::Flock::new().threads(3).plan(10)?.threads(), 3);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The number of blocks: `ceil(rows / chunksize)`, and 0 for an empty input (a DataFrame block
    /// apply still runs its closure once, on the empty frame, to learn the output schema).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::Flock;
    /// assert_eq!(Flock::new().chunksize(4).plan(10)?.blocks(), 3);
    /// assert_eq!(Flock::new().chunksize(4).plan(0)?.blocks(), 0);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn blocks(&self) -> usize {
        if self.empty_block {
            return 1;
        }
        if let Some(bounds) = &self.bounds {
            return bounds.len() - 1;
        }
        match self.long_blocks {
            // `extra` blocks of `chunksize` rows, the rest of `chunksize - 1`.
            Some(long) => long + (self.rows - long * self.chunksize) / (self.chunksize - 1),
            None => self.rows.div_ceil(self.chunksize),
        }
    }

    /// Whether the call runs on the calling thread, without a pool, whatever its units cost: at
    /// most one block and not [adaptive](ChunkPlan::is_adaptive) (one unit, a one-thread pool, or
    /// a chunk size that makes one block).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::Flock;
    /// assert!(Flock::new().plan(1)?.is_inline());
    /// assert!(Flock::new().chunksize(1_000).plan(100)?.is_inline());
    /// assert!(Flock::new().threads(1).plan(1_000_000)?.is_inline());
    /// // 100 units may be cheap (then they run inline) or slow (then they are spread).
    /// assert!(!Flock::new().threads(2).plan(100)?.is_inline());
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn is_inline(&self) -> bool {
        self.blocks() <= 1 && !self.adaptive
    }

    /// Whether the call sizes its blocks by what its units cost, as it runs: the plan of the
    /// automatic chunk size for row, item, group and file verbs on a pool of more than one
    /// thread.
    ///
    /// Such a call runs its first units on the calling thread, timed, in blocks of 1, 2, 4, …
    /// units, until they have taken 100 µs or the input is done: a small input of cheap units
    /// never leaves the calling thread. The rest is then spread over the pool in blocks sized by
    /// the measured cost per unit: blocks of about 10 ms of work, never coarser than
    /// [`chunksize`](ChunkPlan::chunksize) (4 blocks per thread), and one unit each when a unit
    /// takes 10 ms or more — so 17 slow items on 2 threads run 2 at a time, whatever their
    /// count. When under 200 µs of work is left, the rest runs on the calling thread too.
    ///
    /// The probe learns from the first units: a prefix of cheap units followed by slow ones
    /// runs at most one probe block of them serially (2^k units after 2^k − 1 cheap ones).
    /// Outputs are the same whatever the blocks: the plan only changes where units run.
    ///
    /// Block verbs and folds never use an adaptive plan (their blocks are part of the result);
    /// an explicit [`chunksize`](crate::Flock::chunksize) or [`blocks`](crate::Flock::blocks)
    /// turns it off.
    ///
    /// [`blocks`](ChunkPlan::blocks), [`chunksize`](ChunkPlan::chunksize) and
    /// [`block_rows`](ChunkPlan::block_rows) of an adaptive plan describe the uniform layout the
    /// rule starts from: the blocks cheap units get.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::Flock;
    /// assert!(Flock::new().threads(2).plan(17)?.is_adaptive());
    /// assert!(!Flock::new().threads(2).chunksize(1).plan(17)?.is_adaptive());
    /// assert!(!Flock::new().threads(1).plan(17)?.is_adaptive());
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn is_adaptive(&self) -> bool {
        self.adaptive
    }

    /// The input rows block `block` covers.
    ///
    /// # Panics
    ///
    /// Panics if `block >= self.blocks()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let plan = polars_flock::Flock::new().chunksize(4).plan(10)?;
    /// assert_eq!(plan.block_rows(0), 0..4);
    /// assert_eq!(plan.block_rows(2), 8..10);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn block_rows(&self, block: usize) -> Range<usize> {
        assert!(block < self.blocks(), "block {block} out of range");
        if let Some(bounds) = &self.bounds {
            return bounds[block]..bounds[block + 1];
        }
        if let Some(long) = self.long_blocks {
            let short = self.chunksize - 1;
            let start = if block < long {
                block * self.chunksize
            } else {
                long * self.chunksize + (block - long) * short
            };
            let len = if block < long { self.chunksize } else { short };
            return start..start + len;
        }
        // `block < blocks()` keeps `start` below `rows`; the end saturates for huge chunk sizes.
        let start = block.saturating_mul(self.chunksize);
        start..start.saturating_add(self.chunksize).min(self.rows)
    }
}

impl std::fmt::Debug for ChunkPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkPlan")
            .field("rows", &self.rows)
            .field("chunksize", &self.chunksize)
            .field("blocks", &self.blocks())
            .field("threads", &self.threads)
            .field("inline", &self.is_inline())
            .field("adaptive", &self.adaptive)
            .finish()
    }
}

/// `ceil(rows / (BLOCKS_PER_THREAD * threads))`, but at least `MIN_AUTO_BLOCK_ROWS`; one block
/// (inline) when that leaves fewer than two.
fn auto_chunksize(rows: usize, threads: usize) -> usize {
    let target_blocks = BLOCKS_PER_THREAD.saturating_mul(threads.max(1));
    let chunksize = rows.div_ceil(target_blocks).max(MIN_AUTO_BLOCK_ROWS);
    if rows < 2 * MIN_AUTO_BLOCK_ROWS || threads <= 1 {
        rows.max(1)
    } else {
        chunksize
    }
}

/// Splits `range` at the sorted `boundaries` that fall strictly inside it, so that no piece
/// crosses an Arrow chunk boundary of any column read.
pub(crate) fn segments(
    boundaries: &[usize],
    range: Range<usize>,
) -> impl Iterator<Item = Range<usize>> {
    let first = boundaries.partition_point(|&b| b <= range.start);
    let inner = boundaries[first..]
        .iter()
        .copied()
        .take_while(move |&b| b < range.end);
    let starts = std::iter::once(range.start).chain(inner.clone());
    let ends = inner.chain(std::iter::once(range.end));
    starts
        .zip(ends)
        .map(|(s, e)| s..e)
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_rule_gives_four_blocks_per_thread() {
        let plan = ChunkPlan::new(1_000_000, None, 2);
        assert_eq!(plan.blocks(), 8);
        assert_eq!(plan.chunksize(), 125_000);
    }

    #[test]
    fn auto_rule_runs_small_inputs_inline() {
        assert!(ChunkPlan::new(127, None, 8).is_inline());
        assert!(!ChunkPlan::new(128, None, 8).is_inline());
        assert_eq!(
            ChunkPlan::new(128, None, 8).chunksize(),
            MIN_AUTO_BLOCK_ROWS
        );
        assert!(ChunkPlan::new(1_000_000, None, 1).is_inline());
        assert_eq!(ChunkPlan::new(0, None, 4).blocks(), 0);
    }

    #[test]
    fn blocks_cover_every_row_once() {
        for rows in [0, 1, 5, 64, 1000, 1001] {
            for cs in [1, 3, 64, 1000, 5000] {
                let plan = ChunkPlan::new(rows, Some(cs), 2);
                let covered: Vec<usize> = (0..plan.blocks())
                    .flat_map(|b| plan.block_rows(b))
                    .collect();
                assert_eq!(covered, (0..rows).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn huge_chunk_sizes_and_thread_counts_never_overflow() {
        for (rows, cs) in [
            (usize::MAX, usize::MAX / 2 + 2),
            (usize::MAX, usize::MAX),
            (usize::MAX, usize::MAX - 1),
            (10, usize::MAX),
        ] {
            let plan = ChunkPlan::new(rows, Some(cs), 2);
            let last = plan.block_rows(plan.blocks() - 1);
            assert!(
                last.start < last.end && last.end == rows,
                "{plan:?}: {last:?}"
            );
            let first = plan.block_rows(0);
            assert_eq!(first, 0..cs.min(rows));
        }
        let plan = ChunkPlan::new(1_000, None, usize::MAX);
        assert_eq!(plan.blocks(), 16);
        assert_eq!(plan.block_rows(15), 960..1_000);
    }

    #[test]
    fn a_number_of_blocks_splits_like_np_array_split() {
        for rows in [0usize, 1, 5, 9, 10, 64, 1000, 1001] {
            for n in [1usize, 2, 3, 4, 7, 100, 2000] {
                let plan = ChunkPlan::balanced(rows, n, 2);
                let sizes: Vec<usize> = (0..plan.blocks())
                    .map(|b| plan.block_rows(b).len())
                    .collect();
                let covered: Vec<usize> = (0..plan.blocks())
                    .flat_map(|b| plan.block_rows(b))
                    .collect();
                assert_eq!(
                    covered,
                    (0..rows).collect::<Vec<_>>(),
                    "{rows} rows, {n} blocks"
                );
                // np.array_split: n parts, the first rows % n one longer (no empty blocks here).
                let parts = n.min(rows);
                let expected: Vec<usize> = (0..parts)
                    .map(|i| rows / parts + usize::from(i < rows % parts))
                    .collect();
                assert_eq!(sizes, expected, "{rows} rows, {n} blocks");
                assert_eq!(plan.chunksize(), sizes.first().copied().unwrap_or(1));
            }
        }
    }

    #[test]
    fn segments_split_at_inner_boundaries_only() {
        let b = [0, 10, 20, 30];
        let segs: Vec<_> = segments(&b, 5..25).collect();
        assert_eq!(segs, vec![5..10, 10..20, 20..25]);
        let segs: Vec<_> = segments(&b, 10..20).collect();
        assert_eq!(segs, vec![10..20]);
        assert_eq!(segments(&[], 0..7).collect::<Vec<_>>(), vec![0..7]);
    }

    fn spread_sizes(
        rows: usize,
        threads: usize,
        probed: &[usize],
        elapsed: Duration,
    ) -> Vec<usize> {
        let plan = ChunkPlan::new(rows, None, threads).adaptive();
        let spread = plan.spread(probed, elapsed);
        let covered: Vec<usize> = (0..spread.blocks())
            .flat_map(|b| spread.block_rows(b))
            .collect();
        assert_eq!(covered, (0..rows).collect::<Vec<_>>());
        (0..spread.blocks())
            .map(|b| spread.block_rows(b).len())
            .collect()
    }

    #[test]
    fn slow_units_are_spread_one_per_block() {
        // 17 units, the first took 100 ms: the other 16 are one block each, for every thread.
        let sizes = spread_sizes(17, 2, &[1], Duration::from_millis(100));
        assert_eq!(sizes, [1; 17]);
        let sizes = spread_sizes(100, 8, &[1], Duration::from_millis(100));
        assert_eq!(sizes.len(), 100);
        // 6,087 files of 25 ms: one each.
        assert_eq!(
            spread_sizes(6_087, 2, &[1], Duration::from_millis(25)).len(),
            6_087
        );
    }

    #[test]
    fn cheap_units_get_the_uniform_layout_or_stay_inline() {
        // 100 units that took 1 µs together after the probe ran 63: the rest in one block.
        assert_eq!(
            spread_sizes(100, 2, &[1, 3, 7, 15, 31, 63], Duration::from_micros(1)),
            [1, 2, 4, 8, 16, 32, 37]
        );
        // 20M rows at 1.5 ns: after 131,071 probed rows the rest in 4 blocks per thread at most.
        let probed: Vec<usize> = (1..=17).map(|k| (1 << k) - 1).collect();
        let sizes = spread_sizes(20_000_000, 2, &probed, Duration::from_micros(197));
        assert_eq!(sizes.len(), 17 + 8);
        // Units of 100 µs: blocks of about 10 ms of work.
        let sizes = spread_sizes(10_000, 2, &[1, 3], Duration::from_micros(300));
        assert_eq!(sizes[2], 100);
    }

    #[test]
    fn only_the_automatic_size_on_several_threads_is_adaptive() {
        assert!(ChunkPlan::new(17, None, 2).adaptive().is_adaptive());
        assert!(!ChunkPlan::new(17, None, 1).adaptive().is_adaptive());
        assert!(!ChunkPlan::new(1, None, 8).adaptive().is_adaptive());
        assert!(!ChunkPlan::new(17, None, 2).adaptive().fixed().is_adaptive());
        assert!(ChunkPlan::new(1, None, 8).adaptive().is_inline());
    }
}
