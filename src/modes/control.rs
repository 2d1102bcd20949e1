//! Stopping a call early (cancellation and timeouts), progress reporting, and the keep-going
//! report.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result, UserCode};
use crate::exec::{contain, lock};
use crate::flock::Flock;
use crate::retry::{Retry, wait_until};
use crate::stats::{Stats, count_cause};

/// A flag another thread (a UI, a signal handler, a supervisor) sets to stop a running call.
///
/// Give a clone to [`Flock::cancel_token`](crate::Flock::cancel_token); keep another to call
/// [`cancel`](CancelToken::cancel). The call checks it before each block starts: once it is set, no
/// new block starts, blocks already running finish, and the call returns [`Error::Cancelled`] with
/// how many blocks and rows had completed. A closure with long rows can check it too (capture a
/// clone): [`check`](CancelToken::check) returns an error, and a block (or, under keep-going, a
/// row) whose error was caused by it counts as cancelled, not failed; any other error stays what
/// it is. Nothing pre-empts a closure that does not check: a thread
/// cannot be killed safely.
///
/// Clones share one flag. A token stays cancelled; use a new token for the next job.
///
/// # Examples
///
/// ```
/// use polars_flock::prelude::*;
/// use polars_flock::{CancelToken, Error, Flock};
///
/// let token = CancelToken::new();
/// let flock = Flock::new().chunksize(10).threads(2).cancel_token(&token);
/// let items: Vec<u64> = (0..1_000).collect();
/// let stop = token.clone();
/// let err = flock
///     .on(&items)
///     .par_apply_rows(|&x| {
///         if x == 500 {
///             stop.cancel(); // e.g. from a UI thread
///         }
///         stop.check()?; // long rows may check too
///         Ok(x * 2)
///     })
///     .unwrap_err();
/// let Error::Cancelled { completed_rows, rows, .. } = err else { panic!("{err}") };
/// assert!(completed_rows < rows);
/// assert_eq!(rows, 1_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
    /// A token this one also obeys (a cluster job's local calls obey the user's token).
    parent: Option<Arc<AtomicBool>>,
}

impl CancelToken {
    /// A token that is not cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!polars_flock::CancelToken::new().is_cancelled());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every call using this token (or a clone of it). Safe from any thread, any number
    /// of times.
    ///
    /// # Examples
    ///
    /// ```
    /// let token = polars_flock::CancelToken::new();
    /// let other = token.clone();
    /// std::thread::spawn(move || other.cancel()).join().unwrap();
    /// assert!(token.is_cancelled());
    /// ```
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Release);
    }

    /// Whether [`cancel`](CancelToken::cancel) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// let token = polars_flock::CancelToken::new();
    /// token.cancel();
    /// assert!(token.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Acquire)
            || self
                .parent
                .as_ref()
                .is_some_and(|p| p.load(Ordering::Acquire))
    }

    /// A token that is cancelled when this one is or when `parent` (if any) is; cancelling it
    /// cancels this one, never `parent`.
    #[cfg(feature = "distributed")]
    pub(crate) fn linked(&self, parent: Option<&CancelToken>) -> CancelToken {
        CancelToken {
            flag: Arc::clone(&self.flag),
            parent: parent.map(|p| Arc::clone(&p.flag)),
        }
    }

    /// `Err(Error::Cancelled { .. })` once the token is cancelled, for closures to return with
    /// `?` between expensive steps. The counts in it are zero; the call fills them in.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`] when the token is cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let token = polars_flock::CancelToken::new();
    /// assert!(token.check().is_ok());
    /// token.cancel();
    /// assert!(matches!(token.check(), Err(polars_flock::Error::Cancelled { .. })));
    /// ```
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            return Err(cancelled());
        }
        Ok(())
    }
}

fn cancelled() -> Error {
    Error::Cancelled {
        completed_blocks: 0,
        blocks: 0,
        completed_rows: 0,
        rows: 0,
    }
}

/// Why a call stopped before its end, checked before each block; and the call's retry policy,
/// with its count of retries.
pub(crate) struct Stop<'a> {
    cancel: Option<&'a CancelToken>,
    deadline: Option<(Instant, Duration)>,
    retry: Option<&'a Retry>,
    unit_timeout: Option<Duration>,
    init_timeout: Option<Duration>,
    /// The call runs on a pool of its own: a thread waiting for a retry may sleep.
    owned_pool: bool,
    retries: AtomicUsize,
    causes: Mutex<std::collections::BTreeMap<String, usize>>,
}

impl<'a> Stop<'a> {
    /// Starts the clock of `flock`'s timeout, if any. A deadline beyond what the clock can
    /// represent (`Duration::MAX`) is no deadline.
    pub(crate) fn start(flock: &'a Flock) -> Self {
        let timeout = flock.timeout_option();
        Self {
            cancel: flock.cancel(),
            deadline: timeout.and_then(|t| Some((Instant::now().checked_add(t)?, t))),
            retry: flock.retry(),
            unit_timeout: flock.unit_timeout_option(),
            init_timeout: flock.init_timeout_option(),
            owned_pool: flock.owns_pool(),
            retries: AtomicUsize::new(0),
            causes: Mutex::default(),
        }
    }

    /// The error to stop with, counts not yet filled in, or `None` to go on.
    pub(crate) fn check(&self) -> Option<Error> {
        if self.cancel.is_some_and(CancelToken::is_cancelled) {
            return Some(cancelled());
        }
        match self.deadline {
            Some((deadline, timeout)) if Instant::now() >= deadline => Some(Error::TimedOut {
                timeout,
                completed_blocks: 0,
                blocks: 0,
                completed_rows: 0,
                rows: 0,
            }),
            _ => None,
        }
    }

    /// The call's per-unit time limit.
    #[inline(always)]
    pub(crate) fn unit_timeout(&self) -> Option<Duration> {
        self.unit_timeout
    }

    /// The call's time limit of a per-worker `init`.
    pub(crate) fn init_timeout(&self) -> Option<Duration> {
        self.init_timeout
    }

    /// The call's retry policy.
    #[inline(always)]
    pub(crate) fn retry(&self) -> Option<&'a Retry> {
        self.retry
    }

    /// Counts a retry (made on this thread) after `cause`.
    pub(crate) fn count_retry(&self, cause: &(dyn std::error::Error + 'static)) {
        self.add_retries(1);
        crate::retry::note_retry();
        count_cause(&mut lock(&self.causes), cause);
    }

    /// The retries by cause so far.
    pub(crate) fn causes(&self) -> std::collections::BTreeMap<String, usize> {
        lock(&self.causes).clone()
    }

    /// Counts the retries of a call run inside one of this call's units.
    pub(crate) fn add_retries(&self, retries: usize) {
        self.retries.fetch_add(retries, Ordering::Relaxed);
    }

    /// The retries so far.
    pub(crate) fn retries(&self) -> usize {
        self.retries.load(Ordering::Relaxed)
    }

    /// Waits `wait` before a retry (see [`wait_until`]): `Some` with the call's stop if it came
    /// meanwhile.
    pub(crate) fn wait(&self, wait: Duration) -> Option<Error> {
        let until = Instant::now() + wait;
        wait_until(until, self.owned_pool, || self.check())
    }
}

/// Fills in the counts of a stop error made by [`Stop::check`].
pub(crate) fn with_counts(
    error: Error,
    done_blocks: usize,
    blocks: usize,
    done_rows: usize,
    rows: usize,
) -> Error {
    match error {
        Error::Cancelled { .. } => Error::Cancelled {
            completed_blocks: done_blocks,
            blocks,
            completed_rows: done_rows,
            rows,
        },
        Error::TimedOut { timeout, .. } => Error::TimedOut {
            timeout,
            completed_blocks: done_blocks,
            blocks,
            completed_rows: done_rows,
            rows,
        },
        other => other,
    }
}

/// Whether `error` is a stop made by [`Stop::check`].
pub(crate) fn is_stop(error: &Error) -> bool {
    matches!(error, Error::Cancelled { .. } | Error::TimedOut { .. })
}

/// Whether a stop caused a closure's error: a [`CancelToken::check`] error (or a timeout)
/// returned as is, as a row's or block's source, or through a `PolarsError` (where it travels as
/// an `io::ErrorKind::Interrupted` error). Whether it was the call's own stop is the caller's
/// question (a nested call's stop is an error of the unit).
pub(crate) fn caused_by_stop(error: &Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<Error>().is_some_and(is_stop) {
            return true;
        }
        current = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => e.source(),
        };
    }
    false
}

/// A plain progress callback: `(rows done, rows in total)`.
pub(crate) type ProgressFn = dyn Fn(usize, usize) + Send + Sync;

/// Where a call reports progress: a callback and, with the `progress` feature, a bar.
#[derive(Clone, Default)]
pub(crate) struct Progress {
    pub(crate) callback: Option<Arc<ProgressFn>>,
    #[cfg(feature = "progress")]
    pub(crate) bar: Option<indicatif::ProgressBar>,
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Progress");
        s.field(
            "callback",
            &self.callback.as_ref().map(|_| "Fn(done, total)"),
        );
        #[cfg(feature = "progress")]
        s.field("bar", &self.bar.as_ref().map(|_| "ProgressBar"));
        s.finish()
    }
}

impl Progress {
    /// Reports `done` of `total` to the callback and the bar (user code: call it under the
    /// guard).
    pub(crate) fn report(&self, done: usize, total: usize) {
        if let Some(callback) = &self.callback {
            callback(done, total);
        }
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
        }
    }

    /// A call of `total` rows starts: the bar's length is set up front.
    pub(crate) fn begin(&self, total: usize) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(0);
        }
        let _ = total;
    }

    /// The call ended: the bar finished (`ok`) or abandoned where it stopped.
    pub(crate) fn end(&self, ok: bool) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            if ok {
                bar.finish();
            } else {
                bar.abandon();
            }
        }
        let _ = ok;
    }

    /// `Some` when a callback or a bar is set.
    pub(crate) fn active(&self) -> Option<&Self> {
        #[cfg(feature = "progress")]
        if self.bar.is_some() {
            return Some(self);
        }
        self.callback.as_ref().map(|_| self)
    }
}

/// What workers tell the reporting thread.
#[derive(Default)]
struct Reports {
    done: usize,
    /// The last completed block and its rows, where a panic of the callback is reported.
    last_block: (usize, Range<usize>),
    closed: bool,
}

/// One call's progress, reported on a thread of its own: workers add the rows of each completed
/// block and go on at once, never waiting for the callback; the reporting thread calls it with
/// the latest count, one call at a time, `done` increasing (counts that arrive while it runs are
/// merged into the next call).
pub(crate) struct Reporter<'a> {
    progress: &'a Progress,
    /// The call's rows (or items), reported as the total (0 while unknown).
    total: AtomicUsize,
    reports: Mutex<Reports>,
    wake: Condvar,
    failed: AtomicBool,
    failure: Mutex<Option<Error>>,
}

impl<'a> Reporter<'a> {
    /// A call of `total` rows is starting: the bar's length is set up front.
    pub(crate) fn new(progress: &'a Progress, total: usize) -> Self {
        progress.begin(total);
        Self {
            progress,
            total: AtomicUsize::new(total),
            reports: Mutex::new(Reports::default()),
            wake: Condvar::new(),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
        }
    }

    /// The total, learnt once the call has started (a stream's source read its file's footer),
    /// if it was not known up front.
    #[cfg(feature = "streaming")]
    pub(crate) fn learn_total(&self, total: usize) {
        if (self
            .total
            .compare_exchange(0, total, Ordering::AcqRel, Ordering::Acquire))
        .is_ok()
        {
            #[cfg(feature = "progress")]
            if let Some(bar) = &self.progress.bar {
                bar.set_length(total as u64);
            }
        }
    }

    /// Block `block` of `rows` completed (called on the worker: no user code runs here).
    pub(crate) fn advance(&self, rows: Range<usize>, block: usize) {
        let mut reports = lock(&self.reports);
        reports.done += rows.len();
        reports.last_block = (block, rows);
        drop(reports);
        self.wake.notify_one();
    }

    /// Whether the callback panicked: then no new block starts.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The reporting thread's loop, until [`close`](Reporter::close) and the last report.
    pub(crate) fn serve(&self) {
        let mut reported = 0;
        loop {
            let mut reports = lock(&self.reports);
            while reports.done == reported && !reports.closed {
                reports = self
                    .wake
                    .wait(reports)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let (done, (block, rows), closed) =
                (reports.done, reports.last_block.clone(), reports.closed);
            drop(reports);
            if done > reported {
                reported = done;
                if let Err(panic) = contain(|| self.report(done)) {
                    let error = panic.at(UserCode::Progress, block, rows, None);
                    *lock(&self.failure) = Some(error);
                    self.failed.store(true, Ordering::Release);
                    return;
                }
            } else if closed {
                return;
            }
        }
    }

    fn report(&self, done: usize) {
        self.progress
            .report(done, self.total.load(Ordering::Acquire));
    }

    /// No more blocks will complete: the reporting thread makes its last report and ends.
    pub(crate) fn close(&self) {
        lock(&self.reports).closed = true;
        self.wake.notify_one();
    }

    /// After the reporting thread ended: the bar finished (`ok`) or abandoned where it stopped,
    /// and the callback's panic, if it panicked.
    pub(crate) fn finish(&self, ok: bool) -> Option<Error> {
        self.progress.end(ok);
        lock(&self.failure).take()
    }
}

/// What a keep-going call met ([`DataFrameParApply::keep_going`](crate::DataFrameParApply::keep_going)):
/// the units that failed (rows, now null in the output; or blocks, groups and files, left out of
/// it), each with its error, and whether the call stopped early.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
///
/// let df = df!("s" => ["1", "2", "x", "4"])?;
/// let (out, report) = df.keep_going().par_apply_rows("n", |row| {
///     Ok(row.str("s")?.parse::<i64>()?)
/// })?;
/// assert_eq!(out.column("n")?.null_count(), 1);
/// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [2]);
/// assert!(!report.is_complete());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Report {
    /// Every failed unit, in input order, with its error.
    pub failures: Vec<Failure>,
    /// Why the call stopped early ([`Error::Cancelled`] or [`Error::TimedOut`], with its
    /// counts), if it did.
    pub stopped: Option<Error>,
    /// What the stop kept from running, as ranges in input order: rows for row and block verbs
    /// (null in a row verb's output, absent from a block verb's), group indices for groups, file
    /// indices for files.
    pub skipped: Vec<Range<usize>>,
    /// The retries the call made ([`Flock::retries`](crate::Flock::retries)): attempts beyond
    /// each unit's first, whether the unit then succeeded or not.
    pub retries: usize,
    /// Where the call's time went: wall, per worker, slowest blocks, retries by cause.
    pub stats: Stats,
}

impl Report {
    /// Whether every unit ran and none failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let (out, report) = [1, 2, 3].keep_going().par_apply_rows(|x| Ok(x * 2))?;
    /// assert_eq!(out, [Some(2), Some(4), Some(6)]);
    /// assert!(report.is_complete());
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty() && self.stopped.is_none()
    }

    /// The input rows (or items) of the failed units, in order: a failed row, or every row of a
    /// failed block. Groups and files have no rows here (see [`Report::failures`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let (_, report) = ["1", "x", "3", "y"].keep_going().par_apply_rows(|s| Ok(s.parse::<i32>()?))?;
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [1, 3]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn failed_rows(&self) -> impl Iterator<Item = usize> + '_ {
        self.failures.iter().flat_map(|f| match &f.unit {
            Unit::Row(row) => *row..*row + 1,
            Unit::Block { rows, .. } => rows.clone(),
            _ => 0..0,
        })
    }

    /// How many output rows of a row verb are null because of a failure or the stop.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let (out, report) = ["1", "x"].keep_going().par_apply_rows(|s| Ok(s.parse::<i32>()?))?;
    /// assert_eq!(report.null_rows(), out.iter().filter(|v| v.is_none()).count());
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn null_rows(&self) -> usize {
        self.failures.len()
            + self
                .skipped
                .iter()
                .map(ExactSizeIterator::len)
                .sum::<usize>()
    }

    /// The failures as data (dead letters), one row per failed unit in input order, to write
    /// next to the output and replay later. Columns:
    ///
    /// | column | type | holds |
    /// |---|---|---|
    /// | `unit` | str | `row`, `block`, `group` or `file` |
    /// | `index` | u64 | the row, block, group or file index |
    /// | `first_row`, `rows` | u64 | the input rows the unit covers (null for groups and files) |
    /// | `key` | str | a group's key, as `column=value` pairs (else null) |
    /// | `path` | str | a file's path (else null) |
    /// | `attempts` | u32 | how many times it ran ([`Flock::retries`](crate::Flock::retries)) |
    /// | `error` | str | the error's variant, e.g. `Row`, `Panicked`, `InFile` |
    /// | `message` | str | the error and its sources, joined by `: ` |
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let (_, report) = ["1", "x", "3"].keep_going().par_apply_rows(|s| Ok(s.parse::<i32>()?))?;
    /// let dead = report.failures_frame();
    /// assert_eq!(dead.height(), 1);
    /// assert_eq!(dead.column("index")?.u64()?.get(0), Some(1));
    /// assert_eq!(dead.column("error")?.str()?.get(0), Some("Row"));
    /// assert!(dead.column("message")?.str()?.get(0).unwrap().contains("invalid digit"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failures_frame(&self) -> polars::prelude::DataFrame {
        use polars::prelude::{Column, DataFrame, IntoColumn, NamedFrom, Series};
        let n = self.failures.len();
        let (mut unit, mut index, mut first_row, mut rows) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut key, mut path, mut attempts, mut error, mut message) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for failure in &self.failures {
            let (kind, i, covered, k, p) = match &failure.unit {
                Unit::Row(row) => ("row", *row, Some(*row..*row + 1), None, None),
                Unit::Block { block, rows } => ("block", *block, Some(rows.clone()), None, None),
                Unit::Group { group, key } => ("group", *group, None, Some(key.clone()), None),
                Unit::File { file, path } => {
                    ("file", *file, None, None, Some(path.display().to_string()))
                }
            };
            unit.push(kind);
            index.push(i as u64);
            first_row.push(covered.as_ref().map(|r| r.start as u64));
            rows.push(covered.map(|r| r.len() as u64));
            key.push(k);
            path.push(p);
            attempts.push(failure.attempts);
            error.push(failure.error.variant_name());
            message.push(chain(&failure.error));
        }
        let columns: Vec<Column> = vec![
            Series::new("unit".into(), unit).into_column(),
            Series::new("index".into(), index).into_column(),
            Series::new("first_row".into(), first_row).into_column(),
            Series::new("rows".into(), rows).into_column(),
            Series::new("key".into(), key).into_column(),
            Series::new("path".into(), path).into_column(),
            Series::new("attempts".into(), attempts).into_column(),
            Series::new("error".into(), error).into_column(),
            Series::new("message".into(), message).into_column(),
        ];
        DataFrame::new(n, columns).expect("columns of one length and distinct names")
    }
}

/// An error's message followed by its sources', joined by `: ` (a source whose message the
/// error's own already ends with is not repeated).
fn chain(error: &Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(next) = source {
        let text = next.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = next.source();
    }
    message
}

/// One failed unit of a keep-going call: which, and why.
#[derive(Debug)]
#[non_exhaustive]
pub struct Failure {
    /// The row, block, group or file that failed.
    pub unit: Unit,
    /// What went wrong, as the fail-fast call would have returned it: e.g. [`Error::Row`],
    /// [`Error::NullValue`], [`Error::Block`], [`Error::SchemaMismatch`], [`Error::InGroup`],
    /// [`Error::InFile`], or [`Error::Panicked`].
    pub error: Error,
    /// How many times the unit ran: 1, or more after retries ([`Flock::retries`](crate::Flock::retries)).
    pub attempts: u32,
}

/// The unit of work a [`Failure`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unit {
    /// A row of a frame, or an item of a slice: its global index.
    Row(usize),
    /// A block of a block verb: its index and the rows (or items) it covers. It is absent from
    /// the output.
    Block {
        /// The block's index, from 0 in input order.
        block: usize,
        /// The rows (or items) it covers.
        rows: Range<usize>,
    },
    /// A group of a group-wise apply, absent from the output.
    Group {
        /// The group's index, from 0 in the order groups first appear.
        group: usize,
        /// Its key, as `column=value` pairs.
        key: String,
    },
    /// A file of a [`Files`](crate::Files) job, absent from the output.
    File {
        /// The file's index in the list.
        file: usize,
        /// Its path.
        path: std::path::PathBuf,
    },
}

impl Unit {
    /// The unit's index in input order: the row, block, group or file index.
    pub(crate) fn index(&self) -> usize {
        match self {
            Unit::Row(row) => *row,
            Unit::Block { block, .. } => *block,
            Unit::Group { group, .. } => *group,
            Unit::File { file, .. } => *file,
        }
    }
}
