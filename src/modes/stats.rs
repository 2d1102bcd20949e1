//! Where a call's time went ([`Stats`], in [`Report::stats`](crate::Report::stats)).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

/// Where a call's time went: wall time, per worker its `init`, busy and idle time, blocks and
/// rows, the slowest blocks, and the retries by cause (mpire's insights, Ray's `ds.stats()`).
/// Every keep-going call returns it in its [`Report`](crate::Report); timing is per block, never
/// per row (two clock reads per block).
///
/// For a synchronous call, each thread that ran a block is a worker (`thread: None` is the
/// calling thread, which times an automatic plan's first blocks); its idle time is the rest of
/// the wall time, so `init + busy + idle = wall` for every worker. A stream's blocks are its
/// batches. An async call polls all its units on one task: it has no workers, and its "blocks"
/// are its units.
///
/// # Examples
///
/// ```
/// use polars_flock::prelude::*;
///
/// let items: Vec<u64> = (0..100_000).collect();
/// let (_, report) = Flock::new().chunksize(10_000).on(&items).keep_going().par_apply_rows(|x| Ok(x * 2))?;
/// let stats = &report.stats;
/// assert_eq!(stats.rows, 100_000);
/// assert_eq!(stats.blocks, 10);
/// assert_eq!(stats.workers.iter().map(|w| w.blocks).sum::<usize>(), 10);
/// assert!(stats.slowest.len() <= 5);
/// println!("{stats}"); // a compact table
/// # Ok::<(), polars_flock::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// From the call's start to its end.
    pub wall: Duration,
    /// Blocks (for an async call: units) that ran to their end, failed or not.
    pub blocks: usize,
    /// The rows (items, groups, files) of those blocks.
    pub rows: usize,
    /// Each thread that ran a block, in the order they first did.
    pub workers: Vec<WorkerStats>,
    /// The slowest blocks, slowest first (at most five): the block's index, the units it covers
    /// (rows, items, groups or files) and its time, retries and waits included.
    pub slowest: Vec<(usize, Range<usize>, Duration)>,
    /// Retries by cause: the first line of the error retried (at most 60 characters; beyond 16
    /// causes, the rest count as `"other"`).
    pub retries: BTreeMap<String, usize>,
}

/// One worker's share of a call ([`Stats::workers`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// The thread's index in its rayon pool; `None` for the calling thread.
    pub thread: Option<usize>,
    /// Time in per-worker `init` (a connection opened).
    pub init: Duration,
    /// Time running blocks (the closure, retries and their waits).
    pub busy: Duration,
    /// The rest of the call's wall time: waiting for work, or not yet started.
    pub idle: Duration,
    /// Blocks it ran.
    pub blocks: usize,
    /// Rows (items, groups, files) of those blocks.
    pub rows: usize,
}

impl Stats {
    /// Rows per second of wall time (0 for an instant call).
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = polars_flock::Stats::default();
    /// assert_eq!(stats.rows_per_second(), 0.0);
    /// ```
    pub fn rows_per_second(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.rows as f64 / secs
        } else {
            0.0
        }
    }

    /// The retries of all causes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(polars_flock::Stats::default().total_retries(), 0);
    /// ```
    pub fn total_retries(&self) -> usize {
        self.retries.values().sum()
    }
}

/// Most causes [`Stats::retries`] tells apart.
const MAX_CAUSES: usize = 16;

/// Counts a retry of `error` in `causes`.
pub(crate) fn count_cause(
    causes: &mut BTreeMap<String, usize>,
    error: &(dyn std::error::Error + 'static),
) {
    let text = error.to_string();
    let line = text.lines().next().unwrap_or("");
    let mut cause: String = line.chars().take(60).collect();
    if !causes.contains_key(&cause) && causes.len() >= MAX_CAUSES {
        cause = "other".into();
    }
    *causes.entry(cause).or_default() += 1;
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: Duration| format!("{:.3} s", d.as_secs_f64());
        writeln!(
            f,
            "wall {}, {} rows in {} blocks ({:.0} rows/s), {} workers, {} retries",
            secs(self.wall),
            self.rows,
            self.blocks,
            self.rows_per_second(),
            self.workers.len(),
            self.total_retries()
        )?;
        if !self.workers.is_empty() {
            writeln!(
                f,
                "{:<8} {:>10} {:>10} {:>10} {:>7} {:>10}",
                "worker", "init", "busy", "idle", "blocks", "rows"
            )?;
            for w in &self.workers {
                let name = w.thread.map_or_else(|| "caller".into(), |t| t.to_string());
                writeln!(
                    f,
                    "{name:<8} {:>10} {:>10} {:>10} {:>7} {:>10}",
                    secs(w.init),
                    secs(w.busy),
                    secs(w.idle),
                    w.blocks,
                    w.rows
                )?;
            }
        }
        if !self.slowest.is_empty() {
            let slowest: Vec<String> = (self.slowest.iter())
                .map(|(block, rows, took)| {
                    format!("#{block} ({}..{}) {}", rows.start, rows.end, secs(*took))
                })
                .collect();
            writeln!(f, "slowest blocks: {}", slowest.join(", "))?;
        }
        for (cause, n) in &self.retries {
            writeln!(f, "retried {n}×: {cause}")?;
        }
        Ok(())
    }
}

/// A call's running record, kept by the executor.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) workers: Vec<WorkerStats>,
    pub(crate) slowest: Vec<(usize, Range<usize>, Duration)>,
}

impl Recorder {
    /// Records a block `index` of `rows` that thread `thread` ran in `busy`, after `init`.
    pub(crate) fn block(
        &mut self,
        thread: Option<usize>,
        init: Duration,
        busy: Duration,
        index: usize,
        rows: Range<usize>,
    ) {
        let worker = match self.workers.iter().position(|w| w.thread == thread) {
            Some(i) => &mut self.workers[i],
            None => {
                self.workers.push(WorkerStats {
                    thread,
                    ..WorkerStats::default()
                });
                self.workers.last_mut().expect("pushed")
            }
        };
        worker.init += init;
        worker.busy += busy;
        worker.blocks += 1;
        worker.rows += rows.len();
        if self.slowest.len() < 5 || self.slowest.last().is_some_and(|s| s.2 < busy) {
            let at = self.slowest.partition_point(|s| s.2 >= busy);
            self.slowest.insert(at, (index, rows, busy));
            self.slowest.truncate(5);
        }
    }

    /// The stats of a call that took `wall`, with its `retries`.
    pub(crate) fn finish(self, wall: Duration, retries: BTreeMap<String, usize>) -> Stats {
        let mut workers = self.workers;
        for w in &mut workers {
            w.idle = wall.saturating_sub(w.init + w.busy);
        }
        Stats {
            wall,
            blocks: workers.iter().map(|w| w.blocks).sum(),
            rows: workers.iter().map(|w| w.rows).sum(),
            workers,
            slowest: self.slowest,
            retries,
        }
    }
}

/// A block that has run longer than [`Flock::on_stall`](crate::Flock::on_stall)'s limit, as the
/// stall callback is told.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stall {
    /// The block's index.
    pub block: usize,
    /// The units it covers (rows, items, groups or files).
    pub rows: Range<usize>,
    /// The thread running it (its index in its pool; `None` for the calling thread).
    pub thread: Option<usize>,
    /// How long it has run so far.
    pub running: Duration,
}

/// The stall callback and its limit.
pub(crate) type StallFn = dyn Fn(&[Stall]) + Send + Sync;

/// The blocks of a call running now, watched by a thread of the call for stalls.
pub(crate) struct Watch {
    after: Duration,
    callback: std::sync::Arc<StallFn>,
    running: std::sync::Mutex<Vec<(Stall, std::time::Instant, bool)>>,
    done: std::sync::Mutex<bool>,
    wake: std::sync::Condvar,
}

impl Watch {
    pub(crate) fn new(after: Duration, callback: std::sync::Arc<StallFn>) -> Self {
        Self {
            after,
            callback,
            running: std::sync::Mutex::default(),
            done: std::sync::Mutex::new(false),
            wake: std::sync::Condvar::new(),
        }
    }

    /// Block `block` of `rows` starts on `thread`.
    pub(crate) fn start(&self, block: usize, rows: Range<usize>, thread: Option<usize>) {
        let stall = Stall {
            block,
            rows,
            thread,
            running: Duration::ZERO,
        };
        crate::exec::lock(&self.running).push((stall, std::time::Instant::now(), false));
    }

    /// Block `block` ended.
    pub(crate) fn end(&self, block: usize) {
        crate::exec::lock(&self.running).retain(|(s, _, _)| s.block != block);
    }

    /// Runs on the watching thread until [`close`](Watch::close): every `after / 4` (at least
    /// every millisecond, at most every 100 ms), tells the callback of the blocks that have run
    /// longer than `after` since the last look, each once.
    pub(crate) fn serve(&self) {
        let tick = (self.after / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
        let mut done = crate::exec::lock(&self.done);
        while !*done {
            done = self
                .wake
                .wait_timeout(done, tick)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
            let stalled: Vec<Stall> = crate::exec::lock(&self.running)
                .iter_mut()
                .filter(|(_, started, told)| !told && started.elapsed() >= self.after)
                .map(|(stall, started, told)| {
                    *told = true;
                    Stall {
                        running: started.elapsed(),
                        ..stall.clone()
                    }
                })
                .collect();
            if !stalled.is_empty() {
                drop(done);
                // A panicking callback is the user's: it is contained, and the call goes on.
                let _ = crate::exec::contain(|| (self.callback)(&stalled));
                done = crate::exec::lock(&self.done);
            }
        }
    }

    /// Ends [`serve`](Watch::serve).
    pub(crate) fn close(&self) {
        *crate::exec::lock(&self.done) = true;
        self.wake.notify_all();
    }
}
