//! `DataFrameParApply`: parallel row, typed-column, block and group apply on a Polars
//! `DataFrame`, with default options, a configured view ([`On`]) or in keep-going mode
//! ([`KeepGoing`]).

use std::ops::Range;

use polars::prelude::*;

use crate::cell::{ColumnReader, FromColumns, chunk_boundaries};
use crate::concat::{FirstSchema, keep_same_schema, merge_small_chunks, vstack_all};
use crate::control::{Failure, Report, Unit};
use crate::error::{BoxError, Error, Result};
use crate::exec::{
    Block, KeepGoing as Units, StateSource, Stateless, run_blocks_stateful, run_keep_going,
};
use crate::flock::Flock;
use crate::fold::fold_rows;
use crate::group::{apply_groups, apply_groups_keep_going};
use crate::plan::{ChunkPlan, segments};
use crate::row::{Row, RowSegment};
use crate::sealed::{Frame, Typed};
use crate::value::rows_sealed::Sealed as Outputs;
use crate::value::{OutputNames, RowOutput};
use crate::view::{KeepGoing, On, PerWorker, TypedOutput, default_flock};

/// Parallel, in-order apply on a [`DataFrame`]: per row ([`par_apply_rows`]), per row over typed
/// columns ([`par_apply_columns`]), per block of rows ([`par_apply_blocks`]), per group
/// ([`par_apply_groups`]), or a fold ([`par_fold_rows`]).
///
/// Implemented for [`DataFrame`] (default options: `Flock::new()`) and for a configured view
/// `flock.on(&df)` ([`Flock::on`]), which runs the same verbs with its options.
/// [`keep_going`](DataFrameParApply::keep_going) switches either to keep-going mode. Per-worker
/// state is one `*_per_worker` form per verb, taking an `init` closure or a
/// [`Workers`](crate::Workers) ([`PerWorker`]).
///
/// The frame is cut into blocks ([`Flock::chunksize`] rows, or [`Flock::blocks`] blocks); blocks
/// are zero-copy slices of the frame (no column is copied), run on a rayon pool (see [`Flock`] for
/// which one) and reassembled in input order. Every row and every block is passed to the closure
/// exactly once, with no call to infer a schema. The input frame is never modified. The output
/// keeps one Arrow chunk per block, because rechunking costs more than most closures; call
/// [`DataFrame::rechunk_mut_par`] on the result if you need a single chunk.
///
/// Every closure returns `Result<_, BoxError>`: `?` works on the row's getters and on any error
/// (see [`BoxError`]).
///
/// The trait is sealed.
///
/// [`par_apply_rows`]: DataFrameParApply::par_apply_rows
/// [`par_apply_columns`]: DataFrameParApply::par_apply_columns
/// [`par_apply_blocks`]: DataFrameParApply::par_apply_blocks
/// [`par_apply_groups`]: DataFrameParApply::par_apply_groups
/// [`par_fold_rows`]: DataFrameParApply::par_fold_rows
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
///         Ok(block.filter(&keep)?)
///     })?;
/// assert_eq!(out.height(), 2);
/// assert_eq!(out.column("label")?.str()?.get(1), Some("Rome-3"));
///
/// // The same verbs with options:
/// let flock = Flock::new().chunksize(1).threads(2);
/// let again = flock.on(&df).par_apply_rows("total", |row| Ok(row.f64("price")? * row.i64("qty")? as f64))?;
/// assert_eq!(again.column("total")?.n_chunks(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait DataFrameParApply: Frame {
    /// Calls `f` on every row in parallel and returns the frame with its result appended as column
    /// `names` (the existing columns are shared, not copied), so calls chain. A closure that
    /// returns a tuple of two to four values adds one column per element, named by an array of
    /// as many names: `df.par_apply_rows(["lo", "hi"], |row| Ok((lo, hi)))` (see [`RowOutput`]).
    ///
    /// The closure's return type picks the column's dtype (see
    /// [`ColumnValue`](crate::ColumnValue)); `Option` gives nulls. A string read from the row
    /// borrows the frame: return `.to_owned()` of it. The closure returns
    /// `Result<_, BoxError>`: `?` works on the getters and on any error.
    ///
    /// # Errors
    ///
    /// - [`Error::DuplicateColumn`] if a name is already a column, or repeated (checked before any
    ///   work);
    /// - the getters' errors ([`Error::ColumnNotFound`], [`Error::DtypeMismatch`],
    ///   [`Error::NullValue`]) with the global row index, and the closure's own as
    ///   [`Error::Row`] (your error is its `source`: `downcast_ref`);
    /// - [`Error::Panicked`] if the closure panics (the block, its rows, the row and the message);
    /// - [`Error::InvalidOption`], [`Error::ThreadPool`], [`Error::Cancelled`] and
    ///   [`Error::TimedOut`] from the options.
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
    /// let df = df!("raw" => ["12", "7", "40"])?;
    /// let out = df.par_apply_rows("v", |row| Ok(row.str("raw")?.parse::<i64>()?))?;
    /// assert_eq!(out.column("v")?.i64()?.get(2), Some(40));
    ///
    /// // Several columns from one closure:
    /// let out = out.par_apply_rows(["lo", "hi"], |row| {
    ///     let v = row.i64("v")?;
    ///     Ok((v - 1, v + 1))
    /// })?;
    /// assert_eq!(out.column("hi")?.i64()?.get(0), Some(13));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_rows<U, N, F>(&self, names: N, f: F) -> Result<DataFrame>
    where
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&Row<'_>) -> Result<U, BoxError> + Sync,
    {
        let (df, flock) = self.parts();
        apply_rows(df, flock, &names, &Stateless, |(), row| f(row))
    }

    /// [`par_apply_rows`](DataFrameParApply::par_apply_rows) with a per-worker state, such as a
    /// database connection: `workers` is an `init` closure (one state per worker that receives
    /// rows, dropped when the call returns) or `&`[`Workers`](crate::Workers) (states kept across
    /// calls); `f` gets `&mut` to its worker's state for every row. See [`PerWorker`].
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
    /// `init` runs at most once per pool thread that receives a block, never per block or per
    /// row; see [`Workers`](crate::Workers) for the exact bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// // A stand-in for a connection: an expensive lookup table, built once per worker.
    /// let open = || Ok((0..1_000i64).map(|k| (k, format!("label-{k}"))).collect::<HashMap<_, _>>());
    /// let df = df!("k" => (0..10_000i64).map(|i| i % 1_000).collect::<Vec<_>>())?;
    /// let out = df.par_apply_rows_per_worker("label_len", open, |table, row| {
    ///     let label = table.get(&row.i64("k")?).ok_or("no label")?;
    ///     Ok(label.len() as i64)
    /// })?;
    /// assert_eq!(out.column("label_len")?.i64()?.get(999), Some(9));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_rows_per_worker<S, W, U, N, F>(
        &self,
        names: N,
        workers: W,
        f: F,
    ) -> Result<DataFrame>
    where
        S: Send,
        W: PerWorker<S>,
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&mut S, &Row<'_>) -> Result<U, BoxError> + Sync,
    {
        let (df, flock) = self.parts();
        apply_rows(df, flock, &names, &workers, f)
    }

    /// The typed fast path: calls `f` on the values of `columns` of every row, as a tuple of
    /// statically typed values, and appends the result as column `names` (or several: a tuple
    /// output with an array of names, as for [`par_apply_rows`](DataFrameParApply::par_apply_rows)).
    ///
    /// For closures so cheap that the row view's per-read lookups would dominate: each block reads
    /// plain value slices. `columns` lists the names; the closure's argument type (annotate it)
    /// says how each is read, e.g. `|(x, k): (f64, i64)|` with `["x", "k"]`; a single column is
    /// read as a plain value, `|x: f64|` with `["x"]`. See [`FromColumns`]. The closure returns
    /// a value (run in a loop the compiler can vectorise) or, when it can fail,
    /// `Result<_, BoxError>` (`Ok(..)`, `?` on any error): see [`TypedOutput`].
    ///
    /// # Errors
    ///
    /// Before any work starts: [`Error::DuplicateColumn`], [`Error::ColumnNotFound`] and
    /// [`Error::DtypeMismatch`] (with `row: None`), and [`Error::NullValue`] naming the first null
    /// of a column read as a non-`Option` type. While running: [`Error::Row`] for a fallible
    /// closure's error, [`Error::Panicked`], and the options' errors.
    ///
    /// # Ordering
    ///
    /// Row `i` of the output is `f` of row `i` of the input.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("x" => [0.5, 1.5], "y" => [2.0, 4.0], "k" => [1i64, 2], "s" => ["3", "4"])?;
    /// let out = df.par_apply_columns("w", ["x", "y", "k"], |(x, y, k): (f64, f64, i64)| {
    ///     x * y + k as f64
    /// })?;
    /// assert_eq!(out.column("w")?.f64()?.get(1), Some(8.0));
    ///
    /// // Fallible, with `?`:
    /// let out = df.par_apply_columns("n", ["s"], |s: &str| Ok(s.parse::<i64>()?))?;
    /// assert_eq!(out.column("n")?.i64()?.get(1), Some(4));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_columns<'a, const K: usize, A, R, N, F>(
        &'a self,
        names: N,
        columns: [&str; K],
        f: F,
    ) -> Result<DataFrame>
    where
        A: FromColumns<'a, K>,
        R: TypedOutput,
        N: OutputNames<R::Value>,
        F: Fn(A) -> R + Sync,
    {
        let (df, flock) = self.parts();
        apply_columns::<K, A, R, F>(df, flock, &names, columns, f)
    }

    /// Calls `f` on zero-copy blocks of rows in parallel and concatenates the returned frames in
    /// block order.
    ///
    /// Each block is a `DataFrame` slice sharing the input's buffers; `f` may filter, add or drop
    /// columns and return any number of rows, but every block must return the same schema. The
    /// closure returns `Result<DataFrame, BoxError>`: `?` works on Polars' errors and any other.
    ///
    /// With the automatic chunk size the block boundaries depend on the pool's thread count: set
    /// [`Flock::chunksize`] or [`Flock::blocks`] when the result depends on them (per-block
    /// aggregates).
    ///
    /// # Errors
    ///
    /// - [`Error::Block`] with the block, its rows and the closure's error as source;
    /// - [`Error::SchemaMismatch`] naming the first block whose schema differs from block 0's, and
    ///   both schemas;
    /// - [`Error::Panicked`] with the block and its rows;
    /// - the options' errors.
    ///
    /// # Ordering
    ///
    /// Block `b`'s output comes before block `b + 1`'s.
    ///
    /// # Parallelism
    ///
    /// On Polars' pool, Polars operations inside `f` run on the same pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("x" => (0..100).map(f64::from).collect::<Vec<_>>())?;
    /// // One row per block: the block's sum.
    /// let sums = Flock::new().chunksize(25).on(&df).par_apply_blocks(|block| {
    ///     let total = block.column("x")?.f64()?.sum().unwrap_or(0.0);
    ///     Ok(df!("sum" => [total])?)
    /// })?;
    /// assert_eq!(sums.height(), 4);
    /// assert_eq!(sums.column("sum")?.f64()?.get(0), Some(300.0)); // 0 + 1 + ... + 24
    ///
    /// // `?` on an IO error inside a block closure:
    /// let dir = std::env::temp_dir();
    /// let heights = df.par_apply_blocks(|block| {
    ///     std::fs::metadata(&dir)?;
    ///     Ok(df!("rows" => [block.height() as u32])?)
    /// })?;
    /// assert_eq!(heights.column("rows")?.u32()?.sum(), Some(100));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_blocks<F>(&self, f: F) -> Result<DataFrame>
    where
        F: Fn(DataFrame) -> Result<DataFrame, BoxError> + Sync,
    {
        let (df, flock) = self.parts();
        apply_blocks(df, flock, &Stateless, |(), block| f(block))
    }

    /// [`par_apply_blocks`](DataFrameParApply::par_apply_blocks) with a per-worker state: an
    /// `init` closure or `&`[`Workers`](crate::Workers) (see [`PerWorker`]).
    ///
    /// # Errors
    ///
    /// As [`par_apply_blocks`](DataFrameParApply::par_apply_blocks), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("x" => (0..1_000i64).collect::<Vec<_>>())?;
    /// let out = df.par_apply_blocks_per_worker(|| Ok(Vec::<i64>::new()), |buffer, block| {
    ///     buffer.clear(); // a scratch buffer per worker, reused for every block
    ///     buffer.extend(block.column("x")?.i64()?.into_no_null_iter().map(|x| x * 2));
    ///     Ok(df!("y" => buffer.as_slice())?)
    /// })?;
    /// assert_eq!(out.column("y")?.i64()?.get(999), Some(1_998));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_blocks_per_worker<S, W, F>(&self, workers: W, f: F) -> Result<DataFrame>
    where
        S: Send,
        W: PerWorker<S>,
        F: Fn(&mut S, DataFrame) -> Result<DataFrame, BoxError> + Sync,
    {
        let (df, flock) = self.parts();
        apply_blocks(df, flock, &workers, f)
    }

    /// Calls `f` once per group of rows sharing the values of the `by` columns (pandarallel's
    /// `groupby.parallel_apply`), groups in parallel, and concatenates the returned frames.
    ///
    /// Each call gets one whole group as a frame with all columns (keys included). Groups whose
    /// rows are contiguous are zero-copy slices; others are gathered (a copy of that group's rows).
    /// Many small groups are batched into blocks ([`Flock::chunksize`] and [`Flock::blocks`]
    /// count groups here), so dispatch stays per block.
    ///
    /// # Ordering
    ///
    /// Groups come in the order their key first appears in the frame, rows of a group in frame
    /// order, and the outputs are concatenated in that group order, whatever the thread count. Sort
    /// the output if you need key order.
    ///
    /// # Errors
    ///
    /// - [`Error::InGroup`] with the group's index and key if `f` fails for a group: its `source`
    ///   is [`Error::Closure`] (your error), [`Error::Panicked`], or [`Error::SchemaMismatch`]
    ///   (a schema unlike the first group's);
    /// - [`Error::ColumnNotFound`] for a missing key column and [`Error::InvalidOption`] for an
    ///   empty `by`, before any work;
    /// - the options' errors.
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
    ///     Ok(g.hstack(&[share.into_column()])?)
    /// })?;
    /// assert_eq!(out.column("store")?.str()?.get(0), Some("b")); // "b" appears first
    /// let share: Vec<f64> = out.column("share")?.f64()?.into_no_null_iter().collect();
    /// assert_eq!(share, [0.25, 0.75, 0.25, 0.75, 1.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_groups<F>(&self, by: &[&str], f: F) -> Result<DataFrame>
    where
        F: Fn(DataFrame) -> Result<DataFrame, BoxError> + Sync,
    {
        let (df, flock) = self.parts();
        apply_groups(df, flock, by, &Stateless, |(), group| f(group))
    }

    /// [`par_apply_groups`](DataFrameParApply::par_apply_groups) with a per-worker state: an
    /// `init` closure or `&`[`Workers`](crate::Workers) (see [`PerWorker`]).
    ///
    /// # Errors
    ///
    /// As [`par_apply_groups`](DataFrameParApply::par_apply_groups), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("k" => ["a", "b", "a"], "x" => [1i64, 2, 3])?;
    /// let workers = Workers::new(|| Ok(0usize)); // e.g. a connection; here a counter
    /// let out = df.par_apply_groups_per_worker(&["k"], &workers, |seen, g| {
    ///     *seen += 1;
    ///     Ok(g.head(Some(1)))
    /// })?;
    /// assert_eq!(out.height(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_groups_per_worker<S, W, F>(
        &self,
        by: &[&str],
        workers: W,
        f: F,
    ) -> Result<DataFrame>
    where
        S: Send,
        W: PerWorker<S>,
        F: Fn(&mut S, DataFrame) -> Result<DataFrame, BoxError> + Sync,
    {
        let (df, flock) = self.parts();
        apply_groups(df, flock, by, &workers, f)
    }

    /// A parallel fold over the rows (toolz's `fold`): each block folds its rows, in order, into
    /// an accumulator that starts from `identity()`, and the per-block accumulators are merged
    /// with `combine` in block order.
    ///
    /// `combine` must be associative, and `identity()` neutral for it; with those, the result
    /// equals a serial fold. `fold` returns `Result<A, BoxError>` (`?` on the getters and any
    /// error). `combine` runs on the calling thread, so it need not be `Sync`.
    ///
    /// # Errors
    ///
    /// The first failing row's error, as [`par_apply_rows`](DataFrameParApply::par_apply_rows);
    /// [`Error::Panicked`] (with `during`) if `fold`, `identity` or `combine` panics; the options'
    /// errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("x" => (1..=100).map(f64::from).collect::<Vec<_>>())?;
    /// let flock = Flock::new().chunksize(10).threads(2);
    /// let (n, sum) = flock.on(&df).par_fold_rows(
    ///     || (0, 0.0),
    ///     |(n, s), row| Ok((n + 1, s + row.f64("x")?)),
    ///     |a, b| (a.0 + b.0, a.1 + b.1),
    /// )?;
    /// assert_eq!((n, sum), (100, 5050.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_fold_rows<A, Id, F, C>(&self, identity: Id, fold: F, combine: C) -> Result<A>
    where
        A: Send,
        Id: Fn() -> A + Sync,
        F: Fn(A, &Row<'_>) -> Result<A, BoxError> + Sync,
        C: FnMut(A, A) -> A,
    {
        let (df, flock) = self.parts();
        fold_rows(df, flock, identity, fold, combine)
    }

    /// Keep-going mode with the same options: the same verbs, but a failing row becomes null and
    /// a failing block or group is left out, each listed in the returned [`Report`] (see
    /// [`KeepGoing`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("x" => [4.0, -1.0, 9.0, f64::NAN])?;
    /// let (out, report) = df.keep_going().par_apply_rows("root", |row| {
    ///     let x = row.f64("x")?;
    ///     if x < 0.0 {
    ///         return Err(format!("negative: {x}").into());
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
    fn keep_going(&self) -> KeepGoing<'_, DataFrame> {
        let (input, flock) = self.parts();
        KeepGoing { input, flock }
    }

    /// The async view of this frame (feature `async`): the same verbs with async closures, for
    /// rows that wait on IO; see [`io`](crate::io).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// let df = df!("id" => [1i64, 2])?;
    /// let out = Flock::new()
    ///     .concurrency(8)
    ///     .on(&df)
    ///     .io()
    ///     .par_apply_rows("label", async |row| Ok(format!("#{}", row.i64("id")?)))
    ///     .wait()?;
    /// assert_eq!(out.column("label")?.str()?.get(1), Some("#2"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "async")]
    fn io(&self) -> crate::io::Io<'_, DataFrame> {
        let (input, flock) = self.parts();
        crate::io::Io { input, flock }
    }
}

impl Frame for DataFrame {
    fn parts(&self) -> (&DataFrame, &Flock) {
        (self, default_flock())
    }
}

impl Frame for On<'_, DataFrame> {
    fn parts(&self) -> (&DataFrame, &Flock) {
        (self.input, self.flock)
    }
}

impl Frame for On<'_, &DataFrame> {
    fn parts(&self) -> (&DataFrame, &Flock) {
        (self.input, self.flock)
    }
}

impl DataFrameParApply for DataFrame {}

impl DataFrameParApply for On<'_, DataFrame> {}

/// `flock.on(&df)` where `df` is already a `&DataFrame`.
impl DataFrameParApply for On<'_, &DataFrame> {}

/// Keep-going verbs on a frame: each returns its output and a [`Report`]. Rows that fail (an
/// error or a panic) are null; blocks and groups that fail are left out. Errors that are not a
/// unit's failure fail the call as in the fail-fast verb.
impl<'x> KeepGoing<'x, DataFrame> {
    /// [`DataFrameParApply::par_apply_rows`] that keeps going: a failing row is null in every new
    /// column and listed in the report ([`Unit::Row`]).
    ///
    /// # Errors
    ///
    /// Only what fails the call as a whole: [`Error::DuplicateColumn`], the options' errors
    /// ([`Error::InvalidOption`], [`Error::ThreadPool`]), and [`Error::Panicked`] from a
    /// panicking progress callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let token = CancelToken::new();
    /// token.cancel(); // cancelled before it starts: every row is skipped, none is lost silently
    /// let df = df!("x" => [1i64, 2, 3])?;
    /// let flock = Flock::new().cancel_token(&token);
    /// let (out, report) = flock.on(&df).keep_going().par_apply_rows("y", |row| Ok(row.i64("x")? + 1))?;
    /// assert_eq!(out.column("y")?.null_count(), 3);
    /// assert_eq!(report.skipped, [0..3]);
    /// assert!(matches!(report.stopped, Some(Error::Cancelled { completed_rows: 0, .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_rows<U, N, F>(&self, names: N, f: F) -> Result<(DataFrame, Report)>
    where
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&Row<'_>) -> Result<U, BoxError> + Sync,
    {
        apply_rows_keep_going(self.input, self.flock, &names, &Stateless, |(), row| f(row))
    }

    /// [`DataFrameParApply::par_apply_rows_per_worker`] that keeps going. A state whose row
    /// panicked is dropped, and its worker makes a new one for its next block.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](KeepGoing::par_apply_rows), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("s" => ["1", "x", "3"])?;
    /// let (out, report) = df.keep_going().par_apply_rows_per_worker("n", || Ok(0u32), |parsed, row| {
    ///     let n = row.str("s")?.parse::<i64>()?;
    ///     *parsed += 1;
    ///     Ok(n)
    /// })?;
    /// assert_eq!(out.column("n")?.null_count(), 1);
    /// assert_eq!(report.failures.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_rows_per_worker<S, W, U, N, F>(
        &self,
        names: N,
        workers: W,
        f: F,
    ) -> Result<(DataFrame, Report)>
    where
        S: Send,
        W: PerWorker<S>,
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&mut S, &Row<'_>) -> Result<U, BoxError> + Sync,
    {
        apply_rows_keep_going(self.input, self.flock, &names, &workers, f)
    }

    /// [`DataFrameParApply::par_apply_columns`] that keeps going: a row whose closure fails or
    /// panics is null. Checks made before any work (missing column, wrong dtype, a null read as a
    /// non-`Option` value) still fail the call.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](KeepGoing::par_apply_rows), plus the typed path's checks.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("s" => ["1", "x", "3"])?;
    /// let (out, report) = df.keep_going().par_apply_columns("n", ["s"], |s: &str| Ok(s.parse::<i64>()?))?;
    /// assert_eq!(out.column("n")?.i64()?.get(2), Some(3));
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_columns<const K: usize, A, R, N, F>(
        &self,
        names: N,
        columns: [&str; K],
        f: F,
    ) -> Result<(DataFrame, Report)>
    where
        A: FromColumns<'x, K>,
        R: TypedOutput,
        N: OutputNames<R::Value>,
        F: Fn(A) -> R + Sync,
    {
        apply_columns_keep_going::<K, A, R, F>(self.input, self.flock, &names, columns, f)
    }

    /// [`DataFrameParApply::par_apply_blocks`] that keeps going: a block that fails, panics or
    /// returns a schema unlike the first good block's is left out of the output and listed in the
    /// report ([`Unit::Block`], with its rows). If no block succeeds, the closure's schema is
    /// unknown and the output is the input's empty frame.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](KeepGoing::par_apply_rows).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("x" => [1i64, 2, 3, 4])?;
    /// let (out, report) = Flock::new().chunksize(2).on(&df).keep_going().par_apply_blocks(|b| {
    ///     if b.column("x")?.i64()?.get(0) == Some(3) {
    ///         return Err("bad block".into());
    ///     }
    ///     Ok(b)
    /// })?;
    /// assert_eq!(out.height(), 2);
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_blocks<F>(&self, f: F) -> Result<(DataFrame, Report)>
    where
        F: Fn(DataFrame) -> Result<DataFrame, BoxError> + Sync,
    {
        apply_blocks_keep_going(self.input, self.flock, &Stateless, |(), block| f(block))
    }

    /// [`DataFrameParApply::par_apply_blocks_per_worker`] that keeps going (see
    /// [`par_apply_blocks`](KeepGoing::par_apply_blocks)).
    ///
    /// # Errors
    ///
    /// As [`par_apply_blocks`](KeepGoing::par_apply_blocks), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("x" => [1i64, 2, 3])?;
    /// let (out, report) = df.keep_going().par_apply_blocks_per_worker(|| Ok(()), |(), b| Ok(b))?;
    /// assert_eq!(out.height(), 3);
    /// assert!(report.is_complete());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_blocks_per_worker<S, W, F>(
        &self,
        workers: W,
        f: F,
    ) -> Result<(DataFrame, Report)>
    where
        S: Send,
        W: PerWorker<S>,
        F: Fn(&mut S, DataFrame) -> Result<DataFrame, BoxError> + Sync,
    {
        apply_blocks_keep_going(self.input, self.flock, &workers, f)
    }

    /// [`DataFrameParApply::par_apply_groups`] that keeps going: a group that fails, panics or
    /// returns a schema unlike the first good group's is left out and listed in the report
    /// ([`Unit::Group`], with its key; the error is [`Error::InGroup`]).
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](KeepGoing::par_apply_rows), plus the key checks of
    /// [`DataFrameParApply::par_apply_groups`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("k" => [1i64, 2, 1, 3])?;
    /// let (out, report) = df.keep_going().par_apply_groups(&["k"], |g| {
    ///     if g.height() > 1 {
    ///         return Err("duplicate key".into());
    ///     }
    ///     Ok(g)
    /// })?;
    /// assert_eq!(out.height(), 2); // groups k=2 and k=3
    /// assert!(matches!(&report.failures[0].unit, Unit::Group { group: 0, key } if key == "k=1"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_groups<F>(&self, by: &[&str], f: F) -> Result<(DataFrame, Report)>
    where
        F: Fn(DataFrame) -> Result<DataFrame, BoxError> + Sync,
    {
        apply_groups_keep_going(self.input, self.flock, by, &Stateless, |(), group| f(group))
    }

    /// [`DataFrameParApply::par_apply_groups_per_worker`] that keeps going (see
    /// [`par_apply_groups`](KeepGoing::par_apply_groups)).
    ///
    /// # Errors
    ///
    /// As [`par_apply_groups`](KeepGoing::par_apply_groups), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("k" => [1i64, 2, 1])?;
    /// let (out, report) = df.keep_going().par_apply_groups_per_worker(&["k"], || Ok(()), |(), g| Ok(g))?;
    /// assert_eq!(out.height(), 3);
    /// assert!(report.is_complete());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_groups_per_worker<S, W, F>(
        &self,
        by: &[&str],
        workers: W,
        f: F,
    ) -> Result<(DataFrame, Report)>
    where
        S: Send,
        W: PerWorker<S>,
        F: Fn(&mut S, DataFrame) -> Result<DataFrame, BoxError> + Sync,
    {
        apply_groups_keep_going(self.input, self.flock, by, &workers, f)
    }
}

/// The row view's frame: blocks split at every column's chunk boundaries, one row view per
/// segment, `f` called on each row with its worker's state.
pub(crate) fn apply_rows<S, U, F>(
    df: &DataFrame,
    flock: &Flock,
    names: &impl OutputNames<U>,
    states: &(impl StateSource<S> + ?Sized),
    f: F,
) -> Result<DataFrame>
where
    S: Send,
    U: RowOutput,
    F: Fn(&mut S, &Row<'_>) -> Result<U, BoxError> + Sync,
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
                    result = row_loop(block, &segment, rows.len(), out, state, states, &f);
                })?;
                result?;
            }
            Ok(<U as Outputs>::finish(out, &names))
        },
        |_, _, _| Ok(()),
    )?;
    with_new_columns(df, &names, U::dtypes(), parts, &plan)
}

/// Runs `f` on every row of `segment` in order, pushing each value onto `out`, up to the first
/// error (no row after it runs). A function of its own, never inlined into the executor: the loop
/// then has the registers to itself (the quickstart's row view runs 4–6% faster than inlined).
#[inline(never)]
fn row_loop<'s, S, U, F>(
    block: &Block<'_>,
    segment: &'s RowSegment<'s>,
    rows: usize,
    out: &mut <U as Outputs>::Builders,
    state: &mut S,
    states: &(impl StateSource<S> + ?Sized),
    f: &F,
) -> Result<()>
where
    U: RowOutput,
    F: Fn(&mut S, &Row<'_>) -> Result<U, BoxError>,
{
    let limit = block.unit_limit();
    for offset in 0..rows {
        let row = segment.row(offset);
        match block.attempt_within(limit, state, states, |state| f(state, &row)) {
            Ok(value) => <U as Outputs>::push(out, value),
            Err(e) => return Err(row.attribute(e)),
        }
    }
    Ok(())
}

/// [`apply_rows`] in keep-going mode: each row under its own guard, a failed row null.
pub(crate) fn apply_rows_keep_going<S, U, F>(
    df: &DataFrame,
    flock: &Flock,
    names: &impl OutputNames<U>,
    states: &(impl StateSource<S> + ?Sized),
    f: F,
) -> Result<(DataFrame, Report)>
where
    S: Send,
    U: RowOutput,
    F: Fn(&mut S, &Row<'_>) -> Result<U, BoxError> + Sync,
{
    let names = new_names(df, names)?;
    let plan = flock.plan(df.height())?;
    let boundaries = chunk_boundaries(df.columns().iter().filter_map(Column::as_series));
    let (parts, report) = run_keep_going(
        flock,
        &plan,
        states,
        |block, state, units| {
            let mut out = <U::Nullable as Outputs>::builders(block.rows.len());
            for rows in segments(&boundaries, block.rows.clone()) {
                let segment = RowSegment::new(df, rows.clone());
                for (offset, global) in rows.enumerate() {
                    let row = segment.row(offset);
                    let value = units.row(block, global, || {
                        (block.attempt(state, states, |state| f(state, &row)))
                            .map_err(|e| row.attribute(e))
                    });
                    <U::Nullable as Outputs>::push(&mut out, value.map_or_else(U::null, U::some));
                }
            }
            Ok(<U::Nullable as Outputs>::finish(out, &names))
        },
        |rows| null_columns(&names, U::dtypes(), rows.len()),
    )?;
    Ok((
        with_new_columns(df, &names, U::dtypes(), parts, &plan)?,
        report,
    ))
}

fn null_columns(names: &[PlSmallStr], dtypes: Vec<DataType>, len: usize) -> Vec<Series> {
    (names.iter().zip(dtypes))
        .map(|(name, dtype)| Series::full_null(name.clone(), len, &dtype))
        .collect()
}

/// The block apply's frame: zero-copy slices in, schemas checked in block order, outputs
/// vstacked without a copy.
fn apply_blocks<S, F>(
    df: &DataFrame,
    flock: &Flock,
    states: &(impl StateSource<S> + ?Sized),
    f: F,
) -> Result<DataFrame>
where
    S: Send,
    F: Fn(&mut S, DataFrame) -> Result<DataFrame, BoxError> + Sync,
{
    let plan = flock.plan(df.height())?.fixed().with_empty_block();
    let mut first = FirstSchema::default();
    let parts = run_blocks_stateful(
        flock,
        &plan,
        states,
        |block, state| {
            let slice = df.slice(block.rows.start as i64, block.rows.len());
            (block.attempt(state, states, |state| f(state, slice.clone())))
                .map_err(|source| Error::of_block(source, block.index, block.rows.clone()))
        },
        |index, rows, out: &DataFrame| {
            first
                .check(out.schema())
                .map_err(|expected| schema_mismatch(index, rows, expected, out))
        },
    )?;
    Ok(vstack_all(parts)?.unwrap_or_default())
}

fn schema_mismatch(
    block: usize,
    rows: Range<usize>,
    expected: SchemaRef,
    out: &DataFrame,
) -> Error {
    Error::SchemaMismatch {
        block,
        rows,
        expected,
        found: out.schema().clone(),
    }
}

/// [`apply_blocks`] in keep-going mode: a failed block (or one whose schema differs from the
/// first good block's) is left out and reported.
fn apply_blocks_keep_going<S, F>(
    df: &DataFrame,
    flock: &Flock,
    states: &(impl StateSource<S> + ?Sized),
    f: F,
) -> Result<(DataFrame, Report)>
where
    S: Send,
    F: Fn(&mut S, DataFrame) -> Result<DataFrame, BoxError> + Sync,
{
    let plan = flock.plan(df.height())?.fixed().with_empty_block();
    let (parts, mut report) = run_keep_going(
        flock,
        &plan,
        states,
        |block, state, units: &mut Units| {
            let slice = df.slice(block.rows.start as i64, block.rows.len());
            Ok(units.block(block, || {
                (block.attempt(state, states, |state| f(state, slice.clone())))
                    .map_err(|e| Error::of_block(e, block.index, block.rows.clone()))
            }))
        },
        |_| None,
    )?;
    let outputs = (parts.into_iter().enumerate()).filter_map(|(i, out)| Some((i, out?)));
    let kept = keep_same_schema(outputs, &mut report, |index, expected, out| {
        let rows = plan.block_rows(index);
        Failure {
            error: schema_mismatch(index, rows.clone(), expected, out),
            unit: Unit::Block { block: index, rows },
            attempts: 1,
        }
    });
    Ok((vstack_all(kept)?.unwrap_or_else(|| df.clear()), report))
}

/// The typed path's frame: checks, readers read before any work, blocks split at the selected
/// columns' chunk boundaries, one segment's outputs appended at a time.
pub(crate) fn apply_columns<'a, const K: usize, A, R, F>(
    df: &'a DataFrame,
    flock: &Flock,
    names: &impl OutputNames<R::Value>,
    columns: [&str; K],
    f: F,
) -> Result<DataFrame>
where
    A: FromColumns<'a, K>,
    R: Typed,
    F: Fn(A) -> R + Sync,
{
    let names = new_names(df, names)?;
    let plan = flock.plan(df.height())?;
    let readers = A::readers(df, columns)?;
    let boundaries = chunk_boundaries(readers.iter().map(ColumnReader::series));

    let parts = run_blocks_stateful(
        flock,
        &plan,
        &Stateless,
        |block, ()| {
            let mut out = <R::Value as Outputs>::builders(block.rows.len());
            for rows in segments(&boundaries, block.rows.clone()) {
                let segs = A::segs(&readers, rows.clone());
                if R::FALLIBLE {
                    for (i, row) in rows.enumerate() {
                        block.enter_row(row);
                        match block.attempt_stateless(|| f(A::get(&segs, i)).value()) {
                            Ok(value) => <R::Value as Outputs>::push(&mut out, value),
                            Err(e) => return Err(Error::of_row(e, row, false)),
                        }
                    }
                } else {
                    // Infallible: one `extend` per segment, which numeric outputs turn into a
                    // sized, vectorisable loop.
                    block.extend_rows(&mut out, <R::Value as Outputs>::len, rows.start, |out| {
                        <R::Value as Outputs>::extend(
                            out,
                            (0..rows.len()).map(|i| match f(A::get(&segs, i)).value() {
                                Ok(value) => value,
                                Err(_) => unreachable!("an infallible typed output"),
                            }),
                        );
                    })?;
                }
            }
            Ok(<R::Value as Outputs>::finish(out, &names))
        },
        |_, _, _| Ok(()),
    )?;
    with_new_columns(df, &names, <R::Value as Outputs>::dtypes(), parts, &plan)
}

/// [`apply_columns`] in keep-going mode.
pub(crate) fn apply_columns_keep_going<'a, const K: usize, A, R, F>(
    df: &'a DataFrame,
    flock: &Flock,
    names: &impl OutputNames<R::Value>,
    columns: [&str; K],
    f: F,
) -> Result<(DataFrame, Report)>
where
    A: FromColumns<'a, K>,
    R: Typed,
    F: Fn(A) -> R + Sync,
{
    type Nullable<R> = <<R as Typed>::Value as Outputs>::Nullable;
    let names = new_names(df, names)?;
    let plan = flock.plan(df.height())?;
    let readers = A::readers(df, columns)?;
    let boundaries = chunk_boundaries(readers.iter().map(ColumnReader::series));
    let dtypes = <R::Value as Outputs>::dtypes;
    let (parts, report) = run_keep_going(
        flock,
        &plan,
        &Stateless,
        |block, (), units| {
            let mut out = <Nullable<R> as Outputs>::builders(block.rows.len());
            for rows in segments(&boundaries, block.rows.clone()) {
                let segs = A::segs(&readers, rows.clone());
                for (i, row) in rows.enumerate() {
                    let value = units.row(block, row, || {
                        (block.attempt_stateless(|| f(A::get(&segs, i)).value()))
                            .map_err(|e| Error::of_row(e, row, false))
                    });
                    let value = value.map_or_else(R::Value::null, R::Value::some);
                    <Nullable<R> as Outputs>::push(&mut out, value);
                }
            }
            Ok(<Nullable<R> as Outputs>::finish(out, &names))
        },
        |rows| null_columns(&names, dtypes(), rows.len()),
    )?;
    Ok((
        with_new_columns(df, &names, dtypes(), parts, &plan)?,
        report,
    ))
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
pub(crate) fn new_names<U>(df: &DataFrame, names: &impl OutputNames<U>) -> Result<Vec<PlSmallStr>> {
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

/// `df` with the blocks' output columns appended: `parts[block][column]`, concatenated per
/// column without a copy (one chunk per block; an adaptive plan's small first blocks merged).
pub(crate) fn with_new_columns(
    df: &DataFrame,
    names: &[PlSmallStr],
    dtypes: Vec<DataType>,
    parts: Vec<Vec<Series>>,
    plan: &ChunkPlan,
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
        let column = match column {
            // An adaptive call's first blocks are small: one chunk, not one per block.
            Some(column) if plan.is_adaptive() => merge_small_chunks(column)?,
            Some(column) => column,
            None => Series::new_empty(name.clone(), &dtype),
        };
        out.with_column(column.into_column())?;
    }
    Ok(out)
}
