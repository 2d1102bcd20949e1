//! `Flock`: the options of a call (chunk size, pool) and the runner that carries them out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rayon::ThreadPool;

use crate::control::{CancelToken, Progress};
use crate::error::{Error, Result};
use crate::plan::ChunkPlan;
use crate::retry::Retry;
use crate::stats::{Stall, StallFn};

/// A stall callback, shared by the clones of a `Flock`.
#[derive(Clone)]
struct StallCallback(Arc<StallFn>);

impl std::fmt::Debug for StallCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fn(&[Stall])")
    }
}

/// Options for a parallel apply: rows per block and which thread pool runs the blocks.
///
/// `Flock::new()` (also `Flock::default()`) chooses the chunk size automatically and runs on
/// Polars' own pool, exactly like the verbs called on an input directly. [`Flock::on`] gives a
/// view of an input that runs every verb with these options:
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
/// use polars_flock::Flock;
///
/// let df = df!("x" => (0..1_000).map(f64::from).collect::<Vec<_>>())?;
/// let flock = Flock::new().chunksize(100).threads(2);
/// let out = flock.on(&df).par_apply_rows("y", |row| Ok(row.f64("x")? * 2.0))?;
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
    chunking: Chunking,
    pool: PoolChoice,
    timeout: Option<Duration>,
    cancel: Option<CancelToken>,
    progress: Progress,
    retry: Option<Retry>,
    unit_timeout: Option<Duration>,
    init_timeout: Option<Duration>,
    stall: Option<(Duration, StallCallback)>,
    #[cfg(feature = "async")]
    io: IoOptions,
}

/// The limits of an async call (feature `async`): see [`Flock::concurrency`] and
/// [`Flock::rate`].
#[cfg(feature = "async")]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct IoOptions {
    pub(crate) concurrency: Option<usize>,
    pub(crate) rate: Option<f64>,
}

#[cfg(feature = "async")]
impl IoOptions {
    /// The first option that is set, by name.
    fn set(&self) -> Option<&'static str> {
        (self.concurrency.map(|_| "concurrency")).or(self.rate.map(|_| "rate"))
    }

    /// The value of option `option`, as written.
    fn value_of(&self, option: &str) -> String {
        match option {
            "concurrency" => format!("{}", self.concurrency.unwrap_or_default()),
            _ => format!("{}", self.rate.unwrap_or_default()),
        }
    }
}

/// Calls in flight of an async call when [`Flock::concurrency`] is not set.
#[cfg(feature = "async")]
pub(crate) const DEFAULT_CONCURRENCY: usize = 64;

/// How the input is cut into blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Chunking {
    /// `ceil(rows / (4 × threads))` rows per block, at least 64 (see [`Flock::chunksize`]).
    #[default]
    Auto,
    /// Rows per block.
    Rows(usize),
    /// A number of blocks.
    Blocks(usize),
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
    /// Without it the size is chosen automatically. Row, item, group and file verbs size their
    /// blocks by what the units cost, as they run (see [`ChunkPlan::is_adaptive`]): the first
    /// units run on the calling thread, timed, and the rest is spread in blocks of about 10 ms of
    /// work — one unit per block when units are slow, so a handful of slow items uses every
    /// thread, and a small input of cheap ones never leaves the calling thread. Block verbs and
    /// folds use `ceil(rows / (4 × threads))` rows per block, at least 64, and the whole input as
    /// one block run inline when that leaves fewer than two blocks (fewer than 128 rows, or a
    /// one-thread pool): four blocks per thread let work stealing even out blocks of unequal cost
    /// while per-block overhead stays negligible. Set it when block boundaries matter to the
    /// result (block closures that aggregate), or to spread a block verb's few slow items.
    ///
    /// Replaces a [`blocks`](Flock::blocks) set before it. Python Flock's `chunksize=` is a
    /// number of chunks: that is [`blocks`](Flock::blocks).
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
        self.chunking = Chunking::Rows(rows);
        self
    }

    /// Cuts the input into `n` blocks of nearly equal size (sizes differ by at most one row,
    /// longer blocks first), like Python Flock's `chunksize=` and `np.array_split(data, n)`;
    /// fewer blocks when there are fewer than `n` rows (a block is never empty). Replaces a
    /// [`chunksize`](Flock::chunksize) set before it, and is replaced by one set after it.
    ///
    /// Default: automatic (see [`chunksize`](Flock::chunksize)). `0` is rejected with
    /// [`Error::InvalidOption`] when the call runs.
    ///
    /// # Examples
    ///
    /// ```
    /// // Flock: `DataFrameAsync(df, f, chunksize=4)` on 10 rows.
    /// let plan = polars_flock::Flock::new().blocks(4).plan(10)?;
    /// let sizes: Vec<usize> = (0..plan.blocks()).map(|b| plan.block_rows(b).len()).collect();
    /// assert_eq!(sizes, [3, 3, 2, 2]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn blocks(mut self, n: usize) -> Self {
        self.chunking = Chunking::Blocks(n);
        self
    }

    /// Runs blocks on a pool of `n` threads owned by this `Flock` (and its clones), started on first
    /// use. Use it to cap CPU use, or with more threads than cores for closures that wait on IO,
    /// which must never block Polars' CPU pool.
    ///
    /// Default: Polars' pool. `0`, or more than [`rayon::max_num_threads`], is rejected with
    /// [`Error::InvalidOption`] when the call runs; a pool the OS cannot start gives
    /// [`Error::ThreadPool`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let flock = polars_flock::Flock::new().threads(3);
    /// let items: Vec<u32> = (0..1_000).collect();
    /// let doubled = flock.on(&items).par_apply_rows(|x| Ok(x * 2))?;
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

    /// Stops a call that runs longer than `timeout` (Flock's `timeOutError`): once it has passed,
    /// no new block starts, and the call returns [`Error::TimedOut`] with how many blocks and rows
    /// had completed (keep-going calls return what completed, with the error in
    /// [`Report::stopped`](crate::Report::stopped)).
    ///
    /// The clock starts when the call starts. The deadline is checked before each block (and
    /// again after a per-worker `init` returns), and a running closure is never interrupted
    /// (threads cannot be killed safely), so the call returns within about one block's run time
    /// after the deadline: choose a [`chunksize`](Flock::chunksize) whose blocks run well inside
    /// the timeout. On a pool shared with other calls, add at most one of their blocks per call a
    /// waiting thread of this one picked up. No thread is left busy when the call returns. A
    /// timeout beyond what the clock can represent (`Duration::MAX`) is no deadline.
    ///
    /// Default: no timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use polars_flock::prelude::*;
    /// use polars_flock::{Error, Flock};
    ///
    /// let flock = Flock::new().chunksize(1).threads(2).timeout(Duration::from_millis(50));
    /// let items: Vec<u64> = (0..100).collect();
    /// let err = flock
    ///     .on(&items)
    ///     .par_apply_rows(|&x| {
    ///         std::thread::sleep(Duration::from_millis(10));
    ///         Ok(x)
    ///     })
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::TimedOut { blocks: 100, .. }));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Lets `token` stop the call from another thread: see [`CancelToken`]. The call keeps a
    /// clone; cancelling any clone stops every call that uses it.
    ///
    /// Default: no token.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::{CancelToken, Error, Flock};
    ///
    /// let token = CancelToken::new();
    /// token.cancel(); // before the call: nothing runs
    /// let items = [1, 2, 3];
    /// let err = Flock::new()
    ///     .cancel_token(&token)
    ///     .on(&items)
    ///     .par_apply_rows(|x| Ok(x + 1))
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::Cancelled { completed_rows: 0, rows: 3, .. }));
    /// ```
    pub fn cancel_token(mut self, token: &CancelToken) -> Self {
        self.cancel = Some(token.clone());
        self
    }

    /// Caps the units (rows, items, blocks) of an async call ([`io`](crate::DataFrameParApply::io),
    /// feature `async`) that are in flight at once: at most `n` of the call's futures exist at any
    /// moment, whatever the number of threads. Set it to what the server or API accepts; an API
    /// with a quota per second also wants a [`rate`](Flock::rate).
    ///
    /// Default: 64. `0` is rejected with [`Error::InvalidOption`] when the call runs, and so is
    /// the option on a synchronous call (its calls in flight are its threads: see
    /// [`threads`](Flock::threads)).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let urls: Vec<String> = (0..100).map(|i| format!("/item/{i}")).collect();
    /// let lens = Flock::new()
    ///     .concurrency(16)
    ///     .on(&urls)
    ///     .io()
    ///     .par_apply_rows(async |url| {
    ///         tokio::time::sleep(std::time::Duration::from_millis(1)).await; // a request
    ///         Ok(url.len())
    ///     })
    ///     .wait()?;
    /// assert_eq!(lens[99], 8); // "/item/99"
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    #[cfg(feature = "async")]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.io.concurrency = Some(n);
        self
    }

    /// Starts at most `per_second` units of an async call per second (feature `async`): no
    /// window of one second ever sees more than `⌊per_second⌋` starts, and the starts are spread
    /// evenly over the second (about one every `1 / per_second` seconds, no burst at the start),
    /// so that an API with a quota per second never sees more; a rate below 1 starts one unit
    /// every `1 / per_second` seconds. The limit is the call's (one pacer for all its units),
    /// whatever the [`concurrency`](Flock::concurrency); rates beyond the timer's millisecond are
    /// reached.
    ///
    /// Default: no limit. `0`, a negative rate, NaN or infinity is rejected with
    /// [`Error::InvalidOption`] when the call runs, and so is the option on a synchronous call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// use polars_flock::prelude::*;
    /// let started = Instant::now();
    /// let out = Flock::new()
    ///     .rate(100.0)
    ///     .on(&[1, 2, 3, 4, 5])
    ///     .io()
    ///     .par_apply_rows(async |x| Ok(x * 2))
    ///     .wait()?;
    /// assert_eq!(out, [2, 4, 6, 8, 10]);
    /// assert!(started.elapsed().as_millis() >= 35); // 5 starts, about 10 ms apart
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    #[cfg(feature = "async")]
    pub fn rate(mut self, per_second: f64) -> Self {
        self.io.rate = Some(per_second);
        self
    }

    /// Gives each unit (a row, an item, a block, a group, a file, an async unit) at most
    /// `timeout` from its start; a unit past it fails with [`Error::UnitTimedOut`] as the source
    /// of the [`Error::Row`] (or [`Error::Block`], ...) that names it, and may be retried
    /// ([`Flock::retries`] retries it by default). Unlike the call's
    /// [`timeout`](Flock::timeout), it stops only that unit.
    ///
    /// - **Async units** (feature `async`): at the deadline the unit's future is dropped (a
    ///   request in flight is abandoned).
    /// - **Synchronous closures** cannot be pre-empted (a thread cannot be stopped safely), so
    ///   the limit is cooperative: the closure asks [`unit_deadline`](crate::unit_deadline) (to
    ///   give a client its own timeout: a socket's read timeout, a statement timeout) or calls
    ///   [`check_unit`](crate::check_unit)`()?` in its loop; and a unit that returns after its
    ///   deadline fails all the same, its output dropped, so that no output is ever accepted
    ///   past the limit. A closure stuck in a call that never returns holds its thread until it
    ///   does: give such calls a timeout of their own.
    ///
    /// Default: none. `Duration::ZERO` is rejected with [`Error::InvalidOption`] when the call
    /// runs.
    ///
    /// # Examples
    ///
    /// A synchronous row that checks its deadline:
    ///
    /// ```
    /// use std::time::Duration;
    /// use polars_flock::prelude::*;
    /// use polars_flock::Error;
    ///
    /// let (out, report) = Flock::new()
    ///     .unit_timeout(Duration::from_millis(50))
    ///     .on(&[1u64, 10_000, 2])
    ///     .keep_going()
    ///     .par_apply_rows(|&ms| {
    ///         for _ in 0..ms {
    ///             polars_flock::check_unit()?; // ends a unit past its deadline
    ///             std::thread::sleep(Duration::from_millis(1));
    ///         }
    ///         Ok(ms)
    ///     })?;
    /// assert_eq!(out, [Some(1), None, Some(2)]);
    /// let Error::Row { row: 1, source } = &report.failures[0].error else { panic!() };
    /// assert!(matches!(source.downcast_ref(), Some(Error::UnitTimedOut { .. })));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    ///
    /// An async unit (feature `async`), dropped at its deadline:
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use std::time::Duration;
    /// use polars_flock::prelude::*;
    /// use polars_flock::Error;
    /// let (out, report) = Flock::new()
    ///     .unit_timeout(Duration::from_millis(20))
    ///     .on(&[1u64, 500, 2])
    ///     .io()
    ///     .keep_going()
    ///     .par_apply_rows(async |&ms| {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await; // a hung request
    ///         Ok(ms)
    ///     })
    ///     .wait()?;
    /// assert_eq!(out, [Some(1), None, Some(2)]);
    /// let Error::Row { row: 1, source } = &report.failures[0].error else { panic!() };
    /// assert!(matches!(source.downcast_ref(), Some(Error::UnitTimedOut { .. })));
    /// # }
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn unit_timeout(mut self, timeout: Duration) -> Self {
        self.unit_timeout = Some(timeout);
        self
    }

    /// Gives each per-worker `init` (a connection opened) at most `timeout`, cooperatively as
    /// [`unit_timeout`](Flock::unit_timeout) does for closures: `init` can read
    /// [`unit_deadline`](crate::unit_deadline) to give its client a connect timeout, and an
    /// `init` that returns after its deadline fails all the same (its state dropped) with
    /// [`Error::Init`] whose source is [`Error::UnitTimedOut`]. A state made again for a retry
    /// ([`Retry::reinit`]) has the same limit, and a late one is that attempt's failure.
    ///
    /// Default: none. `Duration::ZERO` is rejected with [`Error::InvalidOption`] when the call
    /// runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use polars_flock::prelude::*;
    /// use polars_flock::Error;
    ///
    /// let err = Flock::new()
    ///     .init_timeout(Duration::from_millis(20))
    ///     .on(&[1, 2, 3])
    ///     .par_apply_rows_per_worker(
    ///         || {
    ///             std::thread::sleep(Duration::from_millis(50)); // a server that does not answer
    ///             Ok(())
    ///         },
    ///         |(), &x| Ok(x),
    ///     )
    ///     .unwrap_err();
    /// let Error::Init { source, .. } = &err else { panic!("{err}") };
    /// assert!(matches!(source.downcast_ref(), Some(Error::UnitTimedOut { .. })));
    /// ```
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = Some(timeout);
        self
    }

    /// Calls `callback` with the blocks that have run longer than `after` (Ray's no-progress
    /// watchdog): each such block once, with its rows (or items, groups, files), its thread and
    /// how long it has run, from a watching thread of the call (never a worker), about every
    /// `after / 4`. It only tells: log it, or cancel the call's [`CancelToken`](crate::CancelToken)
    /// (nothing is pre-empted; see [`unit_timeout`](Flock::unit_timeout) to end slow units).
    /// A panic in it is contained and ignored. Every call watches: on frames, slices, files and
    /// streams (a batch is a block), and async calls, whose units are told as blocks (`thread:
    /// None`) by the task that polls them.
    ///
    /// Default: none. `after` of zero is rejected with [`Error::InvalidOption`] when the call
    /// runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use polars_flock::prelude::*;
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let flock = Flock::new()
    ///     .chunksize(1)
    ///     .on_stall(Duration::from_millis(50), move |stalled| {
    ///         log.lock().unwrap().extend(stalled.iter().map(|s| s.rows.start));
    ///     });
    /// flock.on(&[1u64, 300, 1]).par_apply_rows(|&ms| {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     Ok(ms)
    /// })?;
    /// assert_eq!(*seen.lock().unwrap(), [1]); // item 1 ran for 300 ms
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn on_stall(
        mut self,
        after: Duration,
        callback: impl Fn(&[Stall]) + Send + Sync + 'static,
    ) -> Self {
        self.stall = Some((after, StallCallback(Arc::new(callback))));
        self
    }

    /// Retries units that fail with a transient error, as `retry` says (attempts, backoff with
    /// jitter, which errors, making a per-worker state again): see [`Retry`]. The verbs honour
    /// it on every input, the unit being what its errors name: a row (or item), a block, a group,
    /// a file, a stream's batch, an async unit. A fold's unit is its block
    /// ([`par_fold_rows`](crate::DataFrameParApply::par_fold_rows),
    /// [`par_fold`](crate::SliceParApply::par_fold)): a fold step moves its accumulator, which a
    /// failed step does not give back, so a block whose row fails is folded again, every row,
    /// from `identity`.
    ///
    /// Without it (the default) every unit runs exactly once; with it, at most
    /// `attempts` times, every retry counted in [`Report::retries`](crate::Report::retries).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::{Flock, Retry};
    ///
    /// let df = df!("id" => (0..1_000i64).collect::<Vec<_>>())?;
    /// let flock = Flock::new().retries(Retry::attempts(3).backoff(Duration::from_millis(1), Duration::from_millis(5)));
    /// // Rows 10, 20, ... fail twice before they succeed; the call succeeds.
    /// let (out, report) = flock.on(&df).keep_going().par_apply_rows("twice", |row| {
    ///     let id = row.i64("id")?;
    ///     if id % 10 == 0 && id > 0 && polars_flock::attempt() < 3 {
    ///         return Err("try again".into());
    ///     }
    ///     Ok(id * 2)
    /// })?;
    /// assert!(report.is_complete());
    /// assert_eq!(report.retries, 2 * 99);
    /// assert_eq!(out.column("twice")?.i64()?.get(990), Some(1_980));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retries(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Calls `callback(done, total)` as blocks complete, with the rows (or items) done
    /// so far and the call's total (known up front), for logs and notebooks.
    ///
    /// It runs on a reporting thread of the call, never on a worker: workers only add their
    /// block's rows to a count and go on, so a slow callback never keeps a worker from its next
    /// block. Calls come one at a time with `done` increasing; blocks that complete while the
    /// callback runs are merged into its next call, and the final count (`done == total` on
    /// success) is always reported before the call returns. So a callback cannot change results
    /// or deadlock the call (a nested parallel call inside it is fine); what a slow one can delay
    /// is the call's return, which waits for the callback running at the end and the last report.
    /// A panic in it stops the call (no block starts once the panic is caught; blocks already
    /// running finish) with [`Error::Panicked`] (`during: UserCode::Progress`), keep-going calls
    /// included.
    ///
    /// Default: none. For a terminal progress bar, see `progress_bar` (feature `progress`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let flock = Flock::new()
    ///     .chunksize(250)
    ///     .on_progress(move |done, total| log.lock().unwrap().push((done, total)));
    /// let items: Vec<u32> = (0..1_000).collect();
    /// flock.on(&items).par_apply_rows(|x| Ok(x + 1))?;
    /// let seen = seen.lock().unwrap();
    /// assert_eq!(seen.last(), Some(&(1_000, 1_000)));
    /// assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn on_progress(mut self, callback: impl Fn(usize, usize) + Send + Sync + 'static) -> Self {
        self.progress.callback = Some(Arc::new(callback));
        self
    }

    /// Shows the call's progress on an [indicatif](https://docs.rs/indicatif) bar: its length is
    /// set to the call's rows (or items) when the call starts, it advances as blocks complete
    /// (moved by the call's reporting thread, like [`on_progress`](Flock::on_progress)), and it
    /// is finished on success or abandoned where it stopped on an error. The bar is shared by
    /// clones of this `Flock`; give each call its own bar to see one bar per call.
    ///
    /// The bar is only drawn; it never changes results or waits on the work.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::indicatif::ProgressBar;
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let bar = ProgressBar::hidden(); // `ProgressBar::new(0)` draws on stderr
    /// let flock = Flock::new().chunksize(100).progress_bar(bar.clone());
    /// let items: Vec<u32> = (0..1_000).collect();
    /// flock.on(&items).par_apply_rows(|x| Ok(x + 1))?;
    /// assert_eq!(bar.length(), Some(1_000));
    /// assert_eq!(bar.position(), 1_000);
    /// assert!(bar.is_finished());
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    #[cfg(feature = "progress")]
    pub fn progress_bar(mut self, bar: indicatif::ProgressBar) -> Self {
        self.progress.bar = Some(bar);
        self
    }

    /// The blocks a call over `rows` rows would run, after checking the options. With the
    /// automatic size on several threads the plan is [adaptive](ChunkPlan::is_adaptive): row,
    /// item, group and file verbs refine it as they run; its blocks are those of block verbs and
    /// folds, and those cheap units end up with.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for `chunksize(0)`, `blocks(0)`, `threads(0)` or more threads than
    /// rayon supports, a zero `unit_timeout`, a [`Retry`] with no attempt or a first wait beyond
    /// its longest; and for the async limits (`concurrency`, `rate`), which a synchronous call
    /// cannot honour.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::{Error, Flock};
    /// let plan = Flock::new().threads(2).plan(1_000_000)?;
    /// assert_eq!(plan.blocks(), 8); // 4 per thread
    /// assert!(plan.is_adaptive());
    /// assert!(!Flock::new().threads(2).chunksize(10).plan(1_000_000)?.is_adaptive());
    /// assert!(matches!(
    ///     Flock::new().chunksize(0).plan(10),
    ///     Err(Error::InvalidOption { option: "chunksize", value, .. }) if value == "0"
    /// ));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn plan(&self, rows: usize) -> Result<ChunkPlan> {
        #[cfg(feature = "async")]
        if let Some(option) = self.io.set() {
            return Err(Error::InvalidOption {
                option,
                value: self.io.value_of(option),
                reason: "a limit of async calls (the `io()` view): a synchronous call has one call \
                         in flight per thread (see `threads`)",
            });
        }
        self.layout(rows)
    }

    /// The plan of the call's blocks, whatever kind of call it is (async calls cut blocks too).
    pub(crate) fn layout(&self, rows: usize) -> Result<ChunkPlan> {
        self.validate()?;
        let threads = self.pool_threads();
        Ok(match self.chunking {
            Chunking::Auto => ChunkPlan::new(rows, None, threads).adaptive(),
            Chunking::Rows(rows_per_block) => ChunkPlan::new(rows, Some(rows_per_block), threads),
            Chunking::Blocks(n) => ChunkPlan::balanced(rows, n, threads),
        })
    }

    fn validate(&self) -> Result<()> {
        if self.unit_timeout == Some(Duration::ZERO) {
            return Err(Error::InvalidOption {
                option: "unit_timeout",
                value: "0ns".into(),
                reason: "a unit needs some time to run",
            });
        }
        if self
            .stall
            .as_ref()
            .is_some_and(|(after, _)| after.is_zero())
        {
            return Err(Error::InvalidOption {
                option: "on_stall",
                value: "0ns".into(),
                reason: "a block needs some time to run before it stalls",
            });
        }
        if self.init_timeout == Some(Duration::ZERO) {
            return Err(Error::InvalidOption {
                option: "init_timeout",
                value: "0ns".into(),
                reason: "an `init` needs some time to run",
            });
        }
        if let Some(retry) = &self.retry {
            retry.validate()?;
        }
        if self.chunking == Chunking::Rows(0) {
            return Err(Error::InvalidOption {
                option: "chunksize",
                value: "0".into(),
                reason: "a block needs at least one row",
            });
        }
        if self.chunking == Chunking::Blocks(0) {
            return Err(Error::InvalidOption {
                option: "blocks",
                value: "0".into(),
                reason: "the input needs at least one block",
            });
        }
        if let PoolChoice::Owned { threads: 0, .. } = self.pool {
            return Err(Error::InvalidOption {
                option: "threads",
                value: "0".into(),
                reason: "a pool needs at least one thread",
            });
        }
        if let PoolChoice::Owned { threads, .. } = self.pool
            && threads > rayon::max_num_threads()
        {
            return Err(Error::InvalidOption {
                option: "threads",
                value: threads.to_string(),
                reason: "more threads than a rayon pool supports (rayon::max_num_threads())",
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

    /// The limits of an async call, checked.
    #[cfg(feature = "async")]
    pub(crate) fn io_options(&self) -> Result<IoOptions> {
        let io = self.io;
        let invalid = |option: &'static str, reason: &'static str| Error::InvalidOption {
            option,
            value: io.value_of(option),
            reason,
        };
        if io.concurrency == Some(0) {
            return Err(invalid(
                "concurrency",
                "at least one call must be in flight",
            ));
        }
        if io.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return Err(invalid(
                "rate",
                "a positive, finite number of starts per second",
            ));
        }
        Ok(io)
    }

    pub(crate) fn progress(&self) -> &Progress {
        &self.progress
    }

    pub(crate) fn cancel(&self) -> Option<&CancelToken> {
        self.cancel.as_ref()
    }

    pub(crate) fn timeout_option(&self) -> Option<Duration> {
        self.timeout
    }

    pub(crate) fn retry(&self) -> Option<&Retry> {
        self.retry.as_ref()
    }

    pub(crate) fn unit_timeout_option(&self) -> Option<Duration> {
        self.unit_timeout
    }

    pub(crate) fn init_timeout_option(&self) -> Option<Duration> {
        self.init_timeout
    }

    pub(crate) fn stall_watch(&self) -> Option<(Duration, Arc<StallFn>)> {
        (self.stall.as_ref()).map(|(after, callback)| (*after, Arc::clone(&callback.0)))
    }

    /// Whether calls run on a pool of this `Flock`'s own ([`Flock::threads`]), whose threads
    /// may sleep.
    pub(crate) fn owns_pool(&self) -> bool {
        matches!(self.pool, PoolChoice::Owned { .. })
    }
}

impl Flock {
    /// Runs `op` on the calling thread with a scope whose spawned jobs run on the pool this
    /// `Flock` selects; returns when they all completed. Called from outside any pool, the
    /// calling thread only waits (it never runs a job); from a thread of the selected pool (the
    /// caller's pool, or ours in a nested call) it runs jobs while it waits.
    pub(crate) fn in_place_scope<'scope, R>(
        &self,
        op: impl FnOnce(&rayon::Scope<'scope>) -> R,
    ) -> Result<R> {
        match &self.pool {
            PoolChoice::Ambient if rayon::current_thread_index().is_some() => {
                Ok(rayon::in_place_scope(op))
            }
            PoolChoice::Ambient => Ok(polars_core::runtime::THREAD_POOL.in_place_scope(op)),
            PoolChoice::Owned { threads, pool } => {
                Ok(owned_pool(*threads, pool)?.in_place_scope(op))
            }
            PoolChoice::Given(pool) => Ok(pool.in_place_scope(op)),
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
