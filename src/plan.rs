//! How an input of `rows` rows is cut into blocks.

use std::ops::Range;

/// Blocks per pool thread when the chunk size is chosen automatically: enough for work stealing to
/// even out blocks of unequal cost, few enough that per-block overhead (a task, an output array)
/// stays far below the work.
pub(crate) const BLOCKS_PER_THREAD: usize = 4;

/// The smallest block the automatic rule makes. Below two of these the whole input runs inline on
/// the calling thread: a pool hop costs microseconds, more than light closures spend on 128 rows.
pub(crate) const MIN_AUTO_BLOCK_ROWS: usize = 64;

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
        match self.long_blocks {
            // `extra` blocks of `chunksize` rows, the rest of `chunksize - 1`.
            Some(long) => long + (self.rows - long * self.chunksize) / (self.chunksize - 1),
            None => self.rows.div_ceil(self.chunksize),
        }
    }

    /// Whether the call runs on the calling thread, without a pool: true when there is at most one
    /// block.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::Flock;
    /// assert!(Flock::new().plan(100)?.is_inline()); // too small for parallelism to pay
    /// assert!(!Flock::new().threads(2).plan(1_000_000)?.is_inline());
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn is_inline(&self) -> bool {
        self.blocks() <= 1
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
}
