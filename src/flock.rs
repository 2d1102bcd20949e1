//! `Flock`: the options of a call (chunk size, pool) and the runner that carries them out.

use std::sync::{Arc, Mutex};

use rayon::ThreadPool;

use crate::error::{Error, Result};
use crate::plan::ChunkPlan;

/// Options for a parallel apply: rows per block and which thread pool runs the blocks.
///
/// `Flock::new()` (also `Flock::default()`) chooses the chunk size automatically and runs on
/// Polars' own pool, exactly like the plain `par_apply_*` methods. Pass it to the `*_with` forms:
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
/// use polars_flock::Flock;
///
/// let df = df!("x" => (0..1_000).map(f64::from).collect::<Vec<_>>())?;
/// let flock = Flock::new().chunksize(100).threads(2);
/// let out = df.par_apply_rows_with(&flock, "y", |row| Ok(row.f64("x")? * 2.0))?;
/// assert_eq!(out.column("y")?.f64()?.get(999), Some(1998.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Parallelism: which pool runs what
///
/// | configuration | called from outside any rayon pool | called from a rayon worker thread |
/// |---|---|---|
/// | default | Polars' pool (`POLARS_MAX_THREADS` threads) | that thread's own pool, no hop |
/// | [`threads(n)`](Flock::threads) | a pool of `n` threads owned by this `Flock` | the same owned pool |
/// | [`pool(p)`](Flock::pool) | `p` | `p` |
///
/// On Polars' pool, Polars operations called inside a closure run inline on the same pool instead
/// of hopping to another one (and re-entering user code there). A call with a single block (see
/// [`ChunkPlan::is_inline`]) runs on the calling thread.
///
/// A `Flock` is cheap to clone; clones share the owned pool. The pool is started on first use and
/// its threads end when the last clone is dropped.
#[derive(Debug, Clone, Default)]
pub struct Flock {
    chunksize: Option<usize>,
    pool: PoolChoice,
}

#[derive(Debug, Clone, Default)]
enum PoolChoice {
    /// Polars' pool, or the caller's when called from a rayon worker.
    #[default]
    Ambient,
    /// A pool of this many threads, started on first use.
    Owned {
        threads: usize,
        pool: Arc<Mutex<Option<Arc<ThreadPool>>>>,
    },
    /// A pool the user built.
    Given(Arc<ThreadPool>),
}

impl Flock {
    /// Default options: automatic chunk size, Polars' pool (or the caller's).
    ///
    /// # Examples
    ///
    /// ```
    /// let plan = polars_flock::Flock::new().plan(1_000_000)?;
    /// assert!(plan.blocks() >= 1);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows (or items) per block. Each block is one task for the pool; the last may be shorter.
    ///
    /// Without it the size is chosen automatically: `ceil(rows / (4 × threads))`, at least 64
    /// rows, and the whole input as one block run inline on the calling thread when that leaves
    /// fewer than two blocks (fewer than 128 rows, or a one-thread pool). Four blocks per thread let
    /// work stealing even out blocks of unequal cost while per-block overhead stays negligible.
    /// Set it when block boundaries matter to the result (block closures that aggregate), or for
    /// few, expensive rows.
    ///
    /// Default: automatic. `0` is rejected with [`Error::InvalidOption`] when the call runs.
    ///
    /// # Examples
    ///
    /// ```
    /// let plan = polars_flock::Flock::new().chunksize(250).plan(1_000)?;
    /// assert_eq!(plan.blocks(), 4);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn chunksize(mut self, rows: usize) -> Self {
        self.chunksize = Some(rows);
        self
    }

    /// Runs blocks on a pool of `n` threads owned by this `Flock` (and its clones), started on first
    /// use. Use it to cap CPU use, or with more threads than cores for closures that wait on IO,
    /// which must never block Polars' CPU pool.
    ///
    /// Default: Polars' pool. `0` is rejected with [`Error::InvalidOption`] when the call runs; a
    /// pool the OS cannot start gives [`Error::ThreadPool`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let flock = polars_flock::Flock::new().threads(3);
    /// let items: Vec<u32> = (0..1_000).collect();
    /// let doubled = items.par_apply_rows_with(&flock, |x| x * 2)?;
    /// assert_eq!(doubled[999], 1998);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn threads(mut self, n: usize) -> Self {
        self.pool = PoolChoice::Owned {
            threads: n,
            pool: Arc::default(),
        };
        self
    }

    /// Runs blocks on a rayon pool you built and own.
    ///
    /// Calling from inside `pool.install(..)` has the same effect without this option.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let pool = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap());
    /// let flock = polars_flock::Flock::new().pool(pool);
    /// assert_eq!(flock.plan(10)?.threads(), 2);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn pool(mut self, pool: Arc<ThreadPool>) -> Self {
        self.pool = PoolChoice::Given(pool);
        self
    }

    /// The blocks a call over `rows` rows would run, after checking the options.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for `chunksize(0)` or `threads(0)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::{Error, Flock};
    /// let plan = Flock::new().threads(2).plan(1_000_000)?;
    /// assert_eq!(plan.blocks(), 8); // 4 per thread
    /// assert!(matches!(
    ///     Flock::new().chunksize(0).plan(10),
    ///     Err(Error::InvalidOption { option: "chunksize", value: 0, .. })
    /// ));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn plan(&self, rows: usize) -> Result<ChunkPlan> {
        self.validate()?;
        Ok(ChunkPlan::new(rows, self.chunksize, self.pool_threads()))
    }

    fn validate(&self) -> Result<()> {
        if self.chunksize == Some(0) {
            return Err(Error::InvalidOption {
                option: "chunksize",
                value: 0,
                reason: "a block needs at least one row",
            });
        }
        if let PoolChoice::Owned { threads: 0, .. } = self.pool {
            return Err(Error::InvalidOption {
                option: "threads",
                value: 0,
                reason: "a pool needs at least one thread",
            });
        }
        Ok(())
    }

    fn pool_threads(&self) -> usize {
        match &self.pool {
            PoolChoice::Ambient if rayon::current_thread_index().is_some() => {
                rayon::current_num_threads()
            }
            PoolChoice::Ambient => polars_core::runtime::THREAD_POOL.current_num_threads(),
            PoolChoice::Owned { threads, .. } => *threads,
            PoolChoice::Given(pool) => pool.current_num_threads(),
        }
    }

    /// Runs `op` on the pool this `Flock` selects.
    pub(crate) fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> Result<R> {
        match &self.pool {
            // Already on a pool (the caller's, or ours in a nested call): stay there. An `install`
            // into another pool would block this worker and let it steal unrelated work meanwhile.
            PoolChoice::Ambient if rayon::current_thread_index().is_some() => Ok(op()),
            PoolChoice::Ambient => Ok(polars_core::runtime::THREAD_POOL.install(op)),
            PoolChoice::Owned { threads, pool } => Ok(owned_pool(*threads, pool)?.install(op)),
            PoolChoice::Given(pool) => Ok(pool.install(op)),
        }
    }
}

/// Starts the owned pool on first use. The lock is held only while building, never around user
/// code.
fn owned_pool(threads: usize, slot: &Mutex<Option<Arc<ThreadPool>>>) -> Result<Arc<ThreadPool>> {
    let mut slot = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(pool) = slot.as_ref() {
        return Ok(Arc::clone(pool));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("polars-flock-{i}"))
        .build()
        .map_err(|source| Error::ThreadPool { threads, source })?;
    let pool = Arc::new(pool);
    *slot = Some(Arc::clone(&pool));
    Ok(pool)
}
