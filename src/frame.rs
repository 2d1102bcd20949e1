//! `DataFrameParApply`: parallel row and block apply on a Polars `DataFrame`.

use std::ops::Range;

use polars::prelude::*;

use crate::cell::{ColumnReader, FromColumns, chunk_boundaries};
use crate::concat::{FirstSchema, vstack_all};
use crate::control::Report;
use crate::error::{BoxError, Error, Result};
use crate::exec::{
    Block, InitPerCall, StateSource, Stateless, run_blocks, run_blocks_stateful, run_keep_going,
};
use crate::flock::Flock;
use crate::fold::fold_rows;
use crate::group::apply_groups;
use crate::plan::segments;
use crate::row::{Row, RowSegment, fold_row_views};
use crate::value::rows_sealed::Sealed as Outputs;
use crate::value::{ColumnValue, OutputNames, RowOutput};
use crate::workers::Workers;

/// Parallel, in-order apply on a [`DataFrame`]: per row ([`par_apply_rows`]), per row over typed
/// columns ([`par_apply_columns`]), or per block of rows ([`par_apply_blocks`]).
///
/// The frame is cut into blocks of [`Flock::chunksize`] rows; blocks are zero-copy slices of the
/// frame (no column is copied), run on a rayon pool (see [`Flock`] for which one) and reassembled
/// in input order. Every row and every block is passed to the closure exactly once, with no call to
/// infer a schema. The input frame is never modified. The output keeps one Arrow chunk per block,
/// because rechunking costs more than most closures; call [`DataFrame::rechunk_mut_par`] on the
/// result if you need a single chunk.
///
/// The `*_with` forms take a [`Flock`] with the options; the others use `Flock::new()`.
///
/// The trait is sealed: it is implemented for [`DataFrame`] only.
///
/// [`par_apply_rows`]: DataFrameParApply::par_apply_rows
/// [`par_apply_columns`]: DataFrameParApply::par_apply_columns
/// [`par_apply_blocks`]: DataFrameParApply::par_apply_blocks
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
///
/// let df = df!("price" => [2.5, 8.0, 1.0], "qty" => [4i64, 3, 2], "city" => ["Oslo", "Rome", "Lima"])?;
/// let out = df
///     .par_apply_rows("total", |row| Ok(row.f64("price")? * row.i64("qty")? as f64))?
///     .par_apply_rows("label", |row| Ok(format!("{}-{}", row.str("city")?, row.i64("qty")?)))?
///     .par_apply_blocks(|block| {
///         let keep = block.column("total")?.f64()?.gt(5.0);
///         block.filter(&keep)
///     })?;
/// assert_eq!(out.height(), 2);
/// assert_eq!(out.column("label")?.str()?.get(1), Some("Rome-3"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait DataFrameParApply: sealed::Sealed {
    /// Calls `f` on every row in parallel and returns the frame with its result appended as column
    /// `names` (the existing columns are shared, not copied), so calls chain. A closure that
    /// returns a tuple of two to four values adds one column per element, named by an array of
    /// as many names: `df.par_apply_rows(["lo", "hi"], |row| Ok((lo, hi)))` (see [`RowOutput`]).
    ///
    /// The closure's return type picks the column's dtype (see [`ColumnValue`]); `Option` gives
    /// nulls. The row view's getters are typed and fallible, so the closure returns a `Result`;
    /// `?` works on the getters and on ordinary errors (parsing, IO, messages: see the crate
    /// docs), and [`Error::custom`] wraps any other error.
    ///
    /// # Errors
    ///
    /// - [`Error::DuplicateColumn`] if a name is already a column, or repeated (checked before any
    ///   work);
    /// - the getters' errors ([`Error::ColumnNotFound`], [`Error::DtypeMismatch`],
    ///   [`Error::NullValue`]) and the closure's own ([`Error::Row`]), with the global row index;
    /// - [`Error::Panicked`] if the closure panics (the block, its rows, the row and the message);
    /// - [`Error::InvalidOption`] and [`Error::ThreadPool`] for bad options.
    ///
    /// After the first failure no new block starts; the error returned is the lowest failing row,
    /// the one a serial loop would have met first.
    ///
    /// # Ordering
    ///
    /// Row `i` of the output is `f` of row `i` of the input.
    ///
    /// # Parallelism
    ///
    /// Blocks run on Polars' pool, or the caller's rayon pool when called from one (see [`Flock`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("x" => (0..10_000).map(f64::from).collect::<Vec<_>>())?;
    /// let out = df.par_apply_rows("big", |row| Ok(row.f64("x")? > 5_000.0))?;
    /// let serial: Vec<bool> = (0..10_000).map(|i| f64::from(i) > 5_000.0).collect();
    /// let got: Vec<bool> = out.column("big")?.bool()?.iter().flatten().collect();
    /// assert_eq!(got, serial);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_rows<U, F, N>(&self, names: N, f: F) -> Result<DataFrame>
    where
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&Row<'_>) -> Result<U> + Sync,
    {
        self.par_apply_rows_with(&Flock::new(), names, f)
    }

    /// [`par_apply_rows`](DataFrameParApply::par_apply_rows) with explicit options.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](DataFrameParApply::par_apply_rows).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let df = df!("x" => [1i64, 2, 3, 4, 5])?;
    /// let flock = Flock::new().chunksize(2).threads(2);
    /// let out = df.par_apply_rows_with(&flock, "sq", |row| Ok(row.i64("x")?.pow(2)))?;
    /// assert_eq!(out.column("sq")?.n_chunks(), 3); // one chunk per block, not rechunked
    /// assert_eq!(out.column("sq")?.i64()?.get(4), Some(25));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_rows_with<U, F, N>(&self, flock: &Flock, names: N, f: F) -> Result<DataFrame>
    where
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&Row<'_>) -> Result<U> + Sync;

    /// [`par_apply_rows`](DataFrameParApply::par_apply_rows) that keeps going past failing rows:
    /// a row whose closure returns an error or panics becomes null in the new column, and the
    /// [`Report`] lists every such row with its error, so one bad row in ten million does not
    /// discard the rest.
    ///
    /// A [cancellation](Flock::cancel_token) or [timeout](Flock::timeout) does not fail the call
    /// either: rows that did not run are null, listed in [`Report::skipped`], and the reason is in
    /// [`Report::stopped`]; a row that stops itself with `token.check()?` is skipped with the rest
    /// of its block, not failed. Check [`Report::is_complete`] before trusting the column. Each row runs
    /// under its own panic guard, which costs a little on the cheapest closures.
    ///
    /// # Errors
    ///
    /// Only what fails the call as a whole, outside any row: [`Error::DuplicateColumn`],
    /// [`Error::InvalidOption`], [`Error::ThreadPool`], and [`Error::Panicked`] from a panicking
    /// progress callback (`during: UserCode::Progress`).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::Error;
    ///
    /// let df = df!("x" => [4.0, -1.0, 9.0, f64::NAN])?;
    /// let (out, report) = df.par_apply_rows_keep_going("root", |row| {
    ///     let x = row.f64("x")?;
    ///     if x < 0.0 {
    ///         return Err(Error::custom(format!("negative: {x}")));
    ///     }
    ///     assert!(!x.is_nan(), "NaN input"); // a panic is a failed row too
    ///     Ok(x.sqrt())
    /// })?;
    /// let root = out.column("root")?.f64()?;
    /// assert_eq!(root.iter().collect::<Vec<_>>(), [Some(2.0), None, Some(3.0), None]);
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [1, 3]);
    /// assert!(matches!(report.failures[0].error, Error::Row { row: 1, .. }));
    /// assert!(matches!(report.failures[1].error, Error::Panicked { row: Some(3), .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_rows_keep_going<U, F, N>(&self, names: N, f: F) -> Result<(DataFrame, Report)>
    where
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&Row<'_>) -> Result<U> + Sync,
    {
        self.par_apply_rows_keep_going_with(&Flock::new(), names, f)
    }

    /// [`par_apply_rows_keep_going`](DataFrameParApply::par_apply_rows_keep_going) with explicit
    /// options.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows_keep_going`](DataFrameParApply::par_apply_rows_keep_going).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::{CancelToken, Error, Flock};
    ///
    /// let token = CancelToken::new();
    /// token.cancel(); // cancelled before it starts: every row is skipped, none is lost silently
    /// let df = df!("x" => [1i64, 2, 3])?;
    /// let flock = Flock::new().cancel_token(&token);
    /// let (out, report) = df.par_apply_rows_keep_going_with(&flock, "y", |row| Ok(row.i64("x")? + 1))?;
    /// assert_eq!(out.column("y")?.null_count(), 3);
    /// assert_eq!(report.skipped, [0..3]);
    /// assert!(matches!(report.stopped, Some(Error::Cancelled { completed_rows: 0, .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_rows_keep_going_with<U, F, N>(
        &self,
        flock: &Flock,
        names: N,
        f: F,
    ) -> Result<(DataFrame, Report)>
    where
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&Row<'_>) -> Result<U> + Sync;

    /// The typed fast path: calls `f` on the values of `columns` of every row, as a tuple of
    /// statically typed values, and appends the result as column `name`.
    ///
    /// For closures so cheap that the row view's per-read lookups would dominate: each block reads
    /// plain value slices. `columns` lists the names; the closure's argument type (annotate it)
    /// says how each is read, e.g. `|(x, k): (f64, i64)|` with `["x", "k"]`; a single column is
    /// read as a plain value, `|x: f64|` with `["x"]`. See [`FromColumns`].
    ///
    /// # Errors
    ///
    /// Before any work starts: [`Error::DuplicateColumn`], [`Error::ColumnNotFound`] and
    /// [`Error::DtypeMismatch`] (with `row: None`), and [`Error::NullValue`] naming the first null
    /// of a column read as a non-`Option` type. While running: [`Error::Panicked`].
    ///
    /// # Ordering
    ///
    /// Row `i` of the output is `f` of row `i` of the input.
    ///
    /// # Parallelism
    ///
    /// As [`par_apply_rows`](DataFrameParApply::par_apply_rows).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("x" => [0.5, 1.5], "y" => [2.0, 4.0], "k" => [1i64, 2])?;
    /// let out = df.par_apply_columns("w", ["x", "y", "k"], |(x, y, k): (f64, f64, i64)| {
    ///     x * y + k as f64
    /// })?;
    /// assert_eq!(out.column("w")?.f64()?.get(1), Some(8.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_columns<'a, const N: usize, A, U, F>(
        &'a self,
        name: &str,
        columns: [&str; N],
        f: F,
    ) -> Result<DataFrame>
    where
        A: FromColumns<'a, N>,
        U: ColumnValue,
        F: Fn(A) -> U + Sync,
    {
        self.par_apply_columns_with(&Flock::new(), name, columns, f)
    }

    /// [`par_apply_columns`](DataFrameParApply::par_apply_columns) with explicit options.
    ///
    /// # Errors
    ///
    /// As [`par_apply_columns`](DataFrameParApply::par_apply_columns).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let df = df!("s" => [Some("ab"), None, Some("c")])?;
    /// let flock = Flock::new().chunksize(1);
    /// let out = df.par_apply_columns_with(&flock, "len", ["s"], |s: Option<&str>| {
    ///     s.map(|s| s.len() as u32)
    /// })?;
    /// assert_eq!(out.column("len")?.u32()?.get(0), Some(2));
    /// assert_eq!(out.column("len")?.u32()?.get(1), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_columns_with<'a, const N: usize, A, U, F>(
        &'a self,
        flock: &Flock,
        name: &str,
        columns: [&str; N],
        f: F,
    ) -> Result<DataFrame>
    where
        A: FromColumns<'a, N>,
        U: ColumnValue,
        F: Fn(A) -> U + Sync;

    /// [`par_apply_columns`](DataFrameParApply::par_apply_columns) for a fallible closure.
    ///
    /// # Errors
    ///
    /// As [`par_apply_columns`](DataFrameParApply::par_apply_columns), plus [`Error::Row`] with
    /// the lowest failing row and the closure's error as its source.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("s" => ["1", "22", "x"])?;
    /// let err = df.try_par_apply_columns("n", ["s"], |s: &str| s.parse::<i64>()).unwrap_err();
    /// assert!(matches!(err, polars_flock::Error::Row { row: 2, .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn try_par_apply_columns<'a, const N: usize, A, U, E, F>(
        &'a self,
        name: &str,
        columns: [&str; N],
        f: F,
    ) -> Result<DataFrame>
    where
        A: FromColumns<'a, N>,
        U: ColumnValue,
        E: Into<BoxError>,
        F: Fn(A) -> std::result::Result<U, E> + Sync,
    {
        self.try_par_apply_columns_with(&Flock::new(), name, columns, f)
    }

    /// [`try_par_apply_columns`](DataFrameParApply::try_par_apply_columns) with explicit options.
    ///
    /// # Errors
    ///
    /// As [`try_par_apply_columns`](DataFrameParApply::try_par_apply_columns).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let df = df!("a" => [10u32, 20], "b" => [2u32, 0])?;
    /// let err = df
    ///     .try_par_apply_columns_with(&Flock::new().chunksize(1), "q", ["a", "b"], |(a, b): (u32, u32)| {
    ///         a.checked_div(b).ok_or("division by zero")
    ///     })
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "row 1: division by zero");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn try_par_apply_columns_with<'a, const N: usize, A, U, E, F>(
        &'a self,
        flock: &Flock,
        name: &str,
        columns: [&str; N],
        f: F,
    ) -> Result<DataFrame>
    where
        A: FromColumns<'a, N>,
        U: ColumnValue,
        E: Into<BoxError>,
        F: Fn(A) -> std::result::Result<U, E> + Sync;

    /// Calls `f` on every block of rows in parallel and concatenates the returned frames in input
    /// order.
    ///
    /// Each block is a zero-copy slice of [`Flock::chunksize`] rows (the last may be shorter). A
    /// block may return any number of rows (filter, aggregate), but every block must return the
    /// same schema (names, dtypes, order). An empty frame is passed to `f` once, as one empty
    /// block, so the output has the closure's schema.
    ///
    /// With the automatic chunk size the block boundaries depend on the pool's thread count: set
    /// [`Flock::chunksize`] when the result depends on them (per-block aggregates).
    ///
    /// # Errors
    ///
    /// - [`Error::Block`] with the block, its rows and the closure's [`PolarsError`] as source;
    /// - [`Error::SchemaMismatch`] naming the first block whose schema differs from block 0's, and
    ///   both schemas;
    /// - [`Error::Panicked`] with the block and its rows;
    /// - [`Error::InvalidOption`] and [`Error::ThreadPool`] for bad options.
    ///
    /// # Ordering
    ///
    /// Block `b`'s output comes before block `b + 1`'s.
    ///
    /// # Parallelism
    ///
    /// As [`par_apply_rows`](DataFrameParApply::par_apply_rows). On Polars' pool, Polars
    /// operations inside `f` run on the same pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let df = df!("x" => (0..100).map(f64::from).collect::<Vec<_>>())?;
    /// // One row per block: the block's sum.
    /// let sums = df.par_apply_blocks_with(&Flock::new().chunksize(25), |block| {
    ///     let total = block.column("x")?.f64()?.sum().unwrap_or(0.0);
    ///     df!("sum" => [total])
    /// })?;
    /// assert_eq!(sums.height(), 4);
    /// assert_eq!(sums.column("sum")?.f64()?.get(0), Some(300.0)); // 0 + 1 + ... + 24
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_blocks<F>(&self, f: F) -> Result<DataFrame>
    where
        F: Fn(DataFrame) -> PolarsResult<DataFrame> + Sync,
    {
        self.par_apply_blocks_with(&Flock::new(), f)
    }

    /// [`par_apply_blocks`](DataFrameParApply::par_apply_blocks) with explicit options.
    ///
    /// # Errors
    ///
    /// As [`par_apply_blocks`](DataFrameParApply::par_apply_blocks).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::{Error, Flock};
    ///
    /// let df = df!("x" => [1i64, 2, 3, 4])?;
    /// let flock = Flock::new().chunksize(2);
    /// let err = df
    ///     .par_apply_blocks_with(&flock, |block| {
    ///         if block.column("x")?.i64()?.get(0) == Some(3) {
    ///             polars_bail!(ComputeError: "bad block");
    ///         }
    ///         Ok(block)
    ///     })
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::Block { block: 1, ref rows, .. } if *rows == (2..4)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_blocks_with<F>(&self, flock: &Flock, f: F) -> Result<DataFrame>
    where
        F: Fn(DataFrame) -> PolarsResult<DataFrame> + Sync;

    /// [`par_apply_rows`](DataFrameParApply::par_apply_rows) with a per-worker state, such as a
    /// database connection: `init` builds one state per worker that receives rows, and `f` gets
    /// `&mut` to its worker's state for every row. States are dropped when the call returns; for
    /// states that outlive a call, or other options, see
    /// [`par_apply_rows_per_worker_with`](DataFrameParApply::par_apply_rows_per_worker_with).
    ///
    /// Several resources at once (a read and a write connection) are one state: return a tuple
    /// or a struct from `init`.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](DataFrameParApply::par_apply_rows), plus [`Error::Init`] when `init`
    /// fails or panics (no block runs without its state).
    ///
    /// # Parallelism
    ///
    /// On the default pool (see [`Flock`]). `init` runs at most once per pool thread that receives
    /// a block, never per block or per row; see [`Workers`] for the exact bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::Error;
    ///
    /// // A stand-in for a connection: an expensive lookup table, built once per worker.
    /// let open = || Ok::<_, Error>((0..1_000i64).map(|k| (k, format!("label-{k}"))).collect::<HashMap<_, _>>());
    /// let df = df!("k" => (0..10_000i64).map(|i| i % 1_000).collect::<Vec<_>>())?;
    /// let out = df.par_apply_rows_per_worker("label_len", open, |table, row| {
    ///     let label = table.get(&row.i64("k")?).ok_or_else(|| Error::custom("no label"))?;
    ///     Ok(label.len() as i64)
    /// })?;
    /// assert_eq!(out.column("label_len")?.i64()?.get(999), Some(9));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_rows_per_worker<S, E, I, U, F, N>(
        &self,
        names: N,
        init: I,
        f: F,
    ) -> Result<DataFrame>
    where
        S: Send,
        E: Into<BoxError>,
        I: Fn() -> std::result::Result<S, E> + Sync,
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&mut S, &Row<'_>) -> Result<U> + Sync;

    /// [`par_apply_rows_per_worker`](DataFrameParApply::par_apply_rows_per_worker) on a [`Workers`]
    /// runner: its options, and states that live until the runner is dropped, reused across calls.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows_per_worker`](DataFrameParApply::par_apply_rows_per_worker).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let workers = Flock::new().threads(4).chunksize(1_000).workers(|| Ok::<_, std::io::Error>(String::new()));
    /// let df = df!("x" => (0..10_000i64).collect::<Vec<_>>())?;
    /// for _ in 0..2 {
    ///     let out = df.par_apply_rows_per_worker_with(&workers, "s", |buffer, row| {
    ///         buffer.clear(); // a per-worker scratch buffer, reused for every row
    ///         buffer.push_str(&row.i64("x")?.to_string());
    ///         Ok(buffer.len() as u32)
    ///     })?;
    ///     assert_eq!(out.column("s")?.u32()?.get(9_999), Some(4));
    /// }
    /// assert!(workers.inits() <= 4); // two calls, 20 blocks: at most one buffer per thread
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_rows_per_worker_with<S, U, F, N>(
        &self,
        workers: &Workers<'_, S>,
        names: N,
        f: F,
    ) -> Result<DataFrame>
    where
        S: Send,
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&mut S, &Row<'_>) -> Result<U> + Sync;

    /// [`par_apply_blocks`](DataFrameParApply::par_apply_blocks) with a per-worker state: `init`
    /// builds one state per worker that receives blocks, and `f` gets `&mut` to it with each block,
    /// e.g. a connection that writes each block in one transaction.
    ///
    /// # Errors
    ///
    /// As [`par_apply_blocks`](DataFrameParApply::par_apply_blocks), plus [`Error::Init`].
    ///
    /// # Parallelism
    ///
    /// As [`par_apply_rows_per_worker`](DataFrameParApply::par_apply_rows_per_worker).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let df = df!("x" => (0..1_000i64).collect::<Vec<_>>())?;
    /// // Each worker counts the blocks it ran; the output reports it per block.
    /// let out = df.par_apply_blocks_per_worker(|| Ok::<_, std::io::Error>(0u32), |seen, block| {
    ///     *seen += 1;
    ///     df!("rows" => [block.height() as u32], "nth_block_of_worker" => [*seen])
    /// })?;
    /// assert_eq!(out.column("rows")?.u32()?.sum(), Some(1_000));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_blocks_per_worker<S, E, I, F>(&self, init: I, f: F) -> Result<DataFrame>
    where
        S: Send,
        E: Into<BoxError>,
        I: Fn() -> std::result::Result<S, E> + Sync,
        F: Fn(&mut S, DataFrame) -> PolarsResult<DataFrame> + Sync;

    /// [`par_apply_blocks_per_worker`](DataFrameParApply::par_apply_blocks_per_worker) on a
    /// [`Workers`] runner.
    ///
    /// # Errors
    ///
    /// As [`par_apply_blocks_per_worker`](DataFrameParApply::par_apply_blocks_per_worker).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::{Error, Flock};
    ///
    /// let workers = Flock::new().chunksize(2).workers(|| Err::<(), _>("server down"));
    /// let df = df!("x" => [1i64, 2, 3])?;
    /// let err = df.par_apply_blocks_per_worker_with(&workers, |(), b| Ok(b)).unwrap_err();
    /// assert!(matches!(err, Error::Init { block: 0, .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_blocks_per_worker_with<S, F>(
        &self,
        workers: &Workers<'_, S>,
        f: F,
    ) -> Result<DataFrame>
    where
        S: Send,
        F: Fn(&mut S, DataFrame) -> PolarsResult<DataFrame> + Sync;
    /// Folds the rows in parallel through the row view (toolz's `fold`): each block folds its
    /// rows with `fold`, starting from `identity()`, and the blocks' accumulators are combined
    /// left to right, in block order, with `combine`.
    ///
    /// The result equals a serial fold over the rows when `combine` is associative and
    /// `identity()` is neutral for it; `combine` need not be commutative. An empty frame gives
    /// `identity()`.
    ///
    /// # Errors
    ///
    /// The getters' errors and the closure's own, with the global row, as for
    /// [`par_apply_rows`](DataFrameParApply::par_apply_rows) (the lowest failing row);
    /// [`Error::Panicked`]; [`Error::InvalidOption`] and [`Error::ThreadPool`];
    /// [`Error::Cancelled`] / [`Error::TimedOut`] if stopped.
    ///
    /// # Parallelism
    ///
    /// `fold` runs on the pool; `combine` runs on the calling thread, once per block after the
    /// first.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("city" => ["Oslo", "Rome", "Oslo"], "qty" => [3i64, 5, 4])?;
    /// // Quantity per city, as a map: merged block by block.
    /// let per_city = df.par_fold_rows(
    ///     std::collections::BTreeMap::<String, i64>::new,
    ///     |mut acc, row| {
    ///         *acc.entry(row.str("city")?.to_owned()).or_default() += row.i64("qty")?;
    ///         Ok(acc)
    ///     },
    ///     |mut a, b| {
    ///         for (k, v) in b {
    ///             *a.entry(k).or_default() += v;
    ///         }
    ///         a
    ///     },
    /// )?;
    /// assert_eq!(per_city["Oslo"], 7);
    /// assert_eq!(per_city["Rome"], 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_fold_rows<A, Id, F, C>(&self, identity: Id, fold: F, combine: C) -> Result<A>
    where
        A: Send,
        Id: Fn() -> A + Sync,
        F: Fn(A, &Row<'_>) -> Result<A> + Sync,
        C: FnMut(A, A) -> A,
    {
        self.par_fold_rows_with(&Flock::new(), identity, fold, combine)
    }

    /// [`par_fold_rows`](DataFrameParApply::par_fold_rows) with explicit options.
    ///
    /// # Errors
    ///
    /// As [`par_fold_rows`](DataFrameParApply::par_fold_rows).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let df = df!("x" => (1..=100).map(f64::from).collect::<Vec<_>>())?;
    /// let flock = Flock::new().chunksize(10).threads(2);
    /// let (n, sum) = df.par_fold_rows_with(&flock, || (0, 0.0), |(n, s), row| Ok((n + 1, s + row.f64("x")?)), |a, b| (a.0 + b.0, a.1 + b.1))?;
    /// assert_eq!((n, sum), (100, 5050.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_fold_rows_with<A, Id, F, C>(
        &self,
        flock: &Flock,
        identity: Id,
        fold: F,
        combine: C,
    ) -> Result<A>
    where
        A: Send,
        Id: Fn() -> A + Sync,
        F: Fn(A, &Row<'_>) -> Result<A> + Sync,
        C: FnMut(A, A) -> A;
    /// Calls `f` once per group of rows sharing the values of the `by` columns (pandarallel's
    /// `groupby.parallel_apply`), groups in parallel, and concatenates the returned frames.
    ///
    /// Each call gets one whole group as a frame with all columns (keys included). Groups whose
    /// rows are contiguous are zero-copy slices; others are gathered (a copy of that group's rows).
    /// Many small groups are batched into blocks ([`Flock::chunksize`] counts groups here), so
    /// dispatch stays per block.
    ///
    /// # Ordering
    ///
    /// Groups come in the order their key first appears in the frame, rows of a group in frame
    /// order, and the outputs are concatenated in that group order, whatever the thread count. Sort
    /// the output if you need key order.
    ///
    /// # Errors
    ///
    /// - [`Error::Group`] if `f` fails or panics for a group (the group's index and key), or
    ///   returns a schema unlike the first group's;
    /// - [`Error::ColumnNotFound`] for a missing key column and [`Error::InvalidOption`] for an
    ///   empty `by`, before any work;
    /// - [`Error::InvalidOption`], [`Error::ThreadPool`], [`Error::Cancelled`],
    ///   [`Error::TimedOut`] as for the other calls.
    ///
    /// An input with no rows has no groups: `f` is not called and the result is the input's
    /// (empty) frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!(
    ///     "store" => ["b", "a", "b", "a", "c"],
    ///     "sales" => [10.0, 1.0, 30.0, 3.0, 5.0],
    /// )?;
    /// // Each store's share of its own total.
    /// let out = df.par_apply_groups(&["store"], |g| {
    ///     let sales = g.column("sales")?.as_materialized_series().clone();
    ///     let total = sales.sum::<f64>()?;
    ///     let share = (&sales / total).with_name("share".into());
    ///     g.hstack(&[share.into_column()])
    /// })?;
    /// assert_eq!(out.column("store")?.str()?.get(0), Some("b")); // "b" appears first
    /// let share: Vec<f64> = out.column("share")?.f64()?.into_no_null_iter().collect();
    /// assert_eq!(share, [0.25, 0.75, 0.25, 0.75, 1.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_groups<F>(&self, by: &[&str], f: F) -> Result<DataFrame>
    where
        F: Fn(DataFrame) -> PolarsResult<DataFrame> + Sync,
    {
        self.par_apply_groups_with(&Flock::new(), by, f)
    }

    /// [`par_apply_groups`](DataFrameParApply::par_apply_groups) with explicit options; the
    /// chunk size counts groups.
    ///
    /// # Errors
    ///
    /// As [`par_apply_groups`](DataFrameParApply::par_apply_groups).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::{Error, Flock};
    ///
    /// let df = df!("k" => [1i64, 2, 1, 3], "x" => [1.0, 2.0, 3.0, 4.0])?;
    /// let flock = Flock::new().chunksize(1).threads(2);
    /// let err = df
    ///     .par_apply_groups_with(&flock, &["k"], |g| {
    ///         if g.height() > 1 {
    ///             polars_bail!(ComputeError: "duplicate key")
    ///         }
    ///         Ok(g)
    ///     })
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::Group { group: 0, ref key, .. } if key == "k=1"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_groups_with<F>(&self, flock: &Flock, by: &[&str], f: F) -> Result<DataFrame>
    where
        F: Fn(DataFrame) -> PolarsResult<DataFrame> + Sync;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for polars::prelude::DataFrame {}
}

impl DataFrameParApply for DataFrame {
    fn par_apply_rows_with<U, F, N>(&self, flock: &Flock, names: N, f: F) -> Result<DataFrame>
    where
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&Row<'_>) -> Result<U> + Sync,
    {
        apply_rows(self, flock, &names, &Stateless, |(), row| f(row))
    }

    fn par_apply_rows_keep_going_with<U, F, N>(
        &self,
        flock: &Flock,
        names: N,
        f: F,
    ) -> Result<(DataFrame, Report)>
    where
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&Row<'_>) -> Result<U> + Sync,
    {
        let names = new_names(self, &names)?;
        let plan = flock.plan(self.height())?;
        let boundaries = chunk_boundaries(self.columns().iter().filter_map(Column::as_series));
        let (parts, report) = run_keep_going(
            flock,
            &plan,
            |block, kept| {
                let builders = <U::Nullable as Outputs>::builders(block.rows.len());
                let rows = block.rows.clone();
                let out =
                    fold_row_views(self, &boundaries, rows, builders, |mut out, global, row| {
                        let value =
                            kept.row(block, global, || f(row).map_err(|e| row.attribute(e)));
                        <U::Nullable as Outputs>::push(
                            &mut out,
                            value.map_or_else(U::null, U::some),
                        );
                        Ok(out)
                    })?;
                Ok(<U::Nullable as Outputs>::finish(out, &names))
            },
            |rows| {
                (names.iter().zip(U::dtypes()))
                    .map(|(name, dtype)| Series::full_null(name.clone(), rows.len(), &dtype))
                    .collect()
            },
        )?;
        Ok((with_new_columns(self, &names, U::dtypes(), parts)?, report))
    }

    fn par_apply_rows_per_worker<S, E, I, U, F, N>(
        &self,
        names: N,
        init: I,
        f: F,
    ) -> Result<DataFrame>
    where
        S: Send,
        E: Into<BoxError>,
        I: Fn() -> std::result::Result<S, E> + Sync,
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&mut S, &Row<'_>) -> Result<U> + Sync,
    {
        apply_rows(self, &Flock::new(), &names, &InitPerCall(init), f)
    }

    fn par_apply_rows_per_worker_with<S, U, F, N>(
        &self,
        workers: &Workers<'_, S>,
        names: N,
        f: F,
    ) -> Result<DataFrame>
    where
        S: Send,
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&mut S, &Row<'_>) -> Result<U> + Sync,
    {
        apply_rows(self, workers.flock(), &names, workers, f)
    }

    fn par_apply_columns_with<'a, const N: usize, A, U, F>(
        &'a self,
        flock: &Flock,
        name: &str,
        columns: [&str; N],
        f: F,
    ) -> Result<DataFrame>
    where
        A: FromColumns<'a, N>,
        U: ColumnValue,
        F: Fn(A) -> U + Sync,
    {
        // Infallible: one `extend` per segment, which numeric outputs turn into a sized,
        // vectorisable loop.
        apply_columns::<N, A, U, _>(self, flock, name, columns, |out, segs, rows, block| {
            block.extend_rows(out, U::len, rows.start, |out| {
                U::extend(out, (0..rows.len()).map(|i| f(A::get(segs, i))));
            })
        })
    }

    fn try_par_apply_columns_with<'a, const N: usize, A, U, E, F>(
        &'a self,
        flock: &Flock,
        name: &str,
        columns: [&str; N],
        f: F,
    ) -> Result<DataFrame>
    where
        A: FromColumns<'a, N>,
        U: ColumnValue,
        E: Into<BoxError>,
        F: Fn(A) -> std::result::Result<U, E> + Sync,
    {
        apply_columns::<N, A, U, _>(self, flock, name, columns, |out, segs, rows, block| {
            for (i, row) in rows.enumerate() {
                block.enter_row(row);
                match f(A::get(segs, i)) {
                    Ok(value) => U::push(out, value),
                    Err(e) => {
                        return Err(Error::Row {
                            row,
                            source: e.into(),
                        });
                    }
                }
            }
            Ok(())
        })
    }

    fn par_apply_blocks_with<F>(&self, flock: &Flock, f: F) -> Result<DataFrame>
    where
        F: Fn(DataFrame) -> PolarsResult<DataFrame> + Sync,
    {
        apply_blocks(self, flock, &Stateless, |(), block| f(block))
    }

    fn par_apply_blocks_per_worker<S, E, I, F>(&self, init: I, f: F) -> Result<DataFrame>
    where
        S: Send,
        E: Into<BoxError>,
        I: Fn() -> std::result::Result<S, E> + Sync,
        F: Fn(&mut S, DataFrame) -> PolarsResult<DataFrame> + Sync,
    {
        apply_blocks(self, &Flock::new(), &InitPerCall(init), f)
    }

    fn par_apply_blocks_per_worker_with<S, F>(
        &self,
        workers: &Workers<'_, S>,
        f: F,
    ) -> Result<DataFrame>
    where
        S: Send,
        F: Fn(&mut S, DataFrame) -> PolarsResult<DataFrame> + Sync,
    {
        apply_blocks(self, workers.flock(), workers, f)
    }

    fn par_fold_rows_with<A, Id, F, C>(
        &self,
        flock: &Flock,
        identity: Id,
        fold: F,
        combine: C,
    ) -> Result<A>
    where
        A: Send,
        Id: Fn() -> A + Sync,
        F: Fn(A, &Row<'_>) -> Result<A> + Sync,
        C: FnMut(A, A) -> A,
    {
        fold_rows(self, flock, identity, fold, combine)
    }

    fn par_apply_groups_with<F>(&self, flock: &Flock, by: &[&str], f: F) -> Result<DataFrame>
    where
        F: Fn(DataFrame) -> PolarsResult<DataFrame> + Sync,
    {
        apply_groups(self, flock, by, f)
    }
}

/// The row view's frame: blocks split at every column's chunk boundaries, one row view per
/// segment, `f` called on each row with its worker's state.
fn apply_rows<S, U, F>(
    df: &DataFrame,
    flock: &Flock,
    names: &impl OutputNames<U>,
    states: &impl StateSource<S>,
    f: F,
) -> Result<DataFrame>
where
    S: Send,
    U: RowOutput,
    F: Fn(&mut S, &Row<'_>) -> Result<U> + Sync,
{
    let names = new_names(df, names)?;
    let plan = flock.plan(df.height())?;
    // Scalar columns are one chunk once materialised: no boundary, and no need to materialise a
    // column the closure may never read.
    let boundaries = chunk_boundaries(df.columns().iter().filter_map(Column::as_series));

    let parts = run_blocks_stateful(
        flock,
        &plan,
        states,
        |block, state| {
            let mut out = U::builders(block.rows.len());
            for rows in segments(&boundaries, block.rows.clone()) {
                let segment = RowSegment::new(df, rows.clone());
                let mut result = Ok(());
                block.extend_rows(&mut out, <U as Outputs>::len, rows.start, |out| {
                    for offset in 0..rows.len() {
                        let row = segment.row(offset);
                        match f(state, &row) {
                            Ok(value) => <U as Outputs>::push(out, value),
                            Err(e) => {
                                result = Err(row.attribute(e));
                                return;
                            }
                        }
                    }
                })?;
                result?;
            }
            Ok(<U as Outputs>::finish(out, &names))
        },
        |_, _| Ok(()),
    )?;
    with_new_columns(df, &names, U::dtypes(), parts)
}

/// The block apply's frame: zero-copy slices in, schemas checked in block order, outputs
/// vstacked without a copy.
fn apply_blocks<S, F>(
    df: &DataFrame,
    flock: &Flock,
    states: &impl StateSource<S>,
    f: F,
) -> Result<DataFrame>
where
    S: Send,
    F: Fn(&mut S, DataFrame) -> PolarsResult<DataFrame> + Sync,
{
    let plan = flock.plan(df.height())?.with_empty_block();
    let mut first = FirstSchema::default();
    let parts = run_blocks_stateful(
        flock,
        &plan,
        states,
        |block, state| {
            let slice = df.slice(block.rows.start as i64, block.rows.len());
            f(state, slice).map_err(|source| Error::Block {
                block: block.index,
                rows: block.rows.clone(),
                source: Box::new(source),
            })
        },
        |index, out: &DataFrame| {
            first
                .check(out.schema())
                .map_err(|expected| Error::SchemaMismatch {
                    block: index,
                    rows: plan.block_rows(index),
                    expected,
                    found: out.schema().clone(),
                })
        },
    )?;
    Ok(vstack_all(parts)?.unwrap_or_default())
}

/// The typed path's frame: checks, readers read before any work, blocks split at the selected
/// columns' chunk boundaries, and `fill` appending one segment's outputs.
fn apply_columns<'a, const N: usize, A, U, Fill>(
    df: &'a DataFrame,
    flock: &Flock,
    name: &str,
    columns: [&str; N],
    fill: Fill,
) -> Result<DataFrame>
where
    A: FromColumns<'a, N>,
    U: ColumnValue,
    Fill: Fn(&mut U::Builder, &A::Segs, Range<usize>, &Block) -> Result<()> + Sync,
{
    ensure_new_column(df, name)?;
    let plan = flock.plan(df.height())?;
    let readers = A::readers(df, columns)?;
    let boundaries = chunk_boundaries(readers.iter().map(ColumnReader::series));

    let parts = run_blocks(flock, &plan, |block| {
        let mut out = U::builder(block.rows.len());
        for rows in segments(&boundaries, block.rows.clone()) {
            let segs = A::segs(&readers, rows.clone());
            fill(&mut out, &segs, rows, block)?;
        }
        Ok(U::finish(out, name.into()))
    })?;
    with_new_column::<U>(df, name, parts)
}

fn ensure_new_column(df: &DataFrame, name: &str) -> Result<()> {
    if df.get_column_index(name).is_some() {
        return Err(Error::DuplicateColumn {
            column: name.to_owned(),
        });
    }
    Ok(())
}

/// The new columns' names, checked against the frame's and each other before any work.
fn new_names<U>(df: &DataFrame, names: &impl OutputNames<U>) -> Result<Vec<PlSmallStr>> {
    let names = names.names();
    for (i, name) in names.iter().enumerate() {
        ensure_new_column(df, name)?;
        if names[..i].contains(name) {
            return Err(Error::DuplicateColumn {
                column: name.to_string(),
            });
        }
    }
    Ok(names)
}

fn with_new_column<U: ColumnValue>(
    df: &DataFrame,
    name: &str,
    parts: Vec<Series>,
) -> Result<DataFrame> {
    let parts = parts.into_iter().map(|part| vec![part]).collect();
    with_new_columns(df, &[name.into()], vec![U::dtype()], parts)
}

/// `df` with the blocks' output columns appended: `parts[block][column]`, concatenated per
/// column without a copy (one chunk per block).
fn with_new_columns(
    df: &DataFrame,
    names: &[PlSmallStr],
    dtypes: Vec<DataType>,
    parts: Vec<Vec<Series>>,
) -> Result<DataFrame> {
    let mut columns: Vec<Option<Series>> = names.iter().map(|_| None).collect();
    for block in parts {
        for (column, part) in columns.iter_mut().zip(block) {
            match column {
                Some(column) => {
                    column.append_owned(part)?;
                }
                None => *column = Some(part),
            }
        }
    }
    let mut out = df.clone();
    for ((column, name), dtype) in columns.into_iter().zip(names).zip(dtypes) {
        let column = column.unwrap_or_else(|| Series::new_empty(name.clone(), &dtype));
        out.with_column(column.into_column())?;
    }
    Ok(out)
}
