//! The crate's one error type.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use polars::prelude::{DataType, PolarsError, SchemaRef};

/// The error type of every closure the crate calls (row, typed, block, group, file, `init`):
/// `?` converts any `std::error::Error + Send + Sync + 'static` (and a `&str` or `String`
/// message) into it, as with anyhow. The call reports it with its context ([`Error::Row`],
/// [`Error::Block`], [`Error::Closure`] inside [`Error::InGroup`] / [`Error::InFile`],
/// [`Error::Init`]); the original is recovered by `downcast_ref` on that `source`. The crate's
/// own errors (a getter's, a nested call's) are unboxed again and keep their row and column.
///
/// # Examples
///
/// ```
/// use polars_flock::prelude::*;
/// use polars_flock::Error;
///
/// let err = ["7", "x"].par_apply_rows(|s| Ok(s.parse::<u8>()?)).unwrap_err();
/// let Error::Row { source, .. } = err else { panic!("expected a row error") };
/// // The closure's own error type is recovered by downcasting.
/// assert!(source.downcast_ref::<std::num::ParseIntError>().is_some());
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result<T, polars_flock::Error>`, the return type of every call and of row closures.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
///
/// fn doubled(df: &DataFrame) -> polars_flock::Result<DataFrame> {
///     df.par_apply_rows("y", |row| Ok(row.i64("x")? * 2))
/// }
/// let df = df!("x" => [1i64, 2])?;
/// assert_eq!(doubled(&df)?.column("y")?.i64()?.get(1), Some(4));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a parallel apply.
///
/// Every variant carries the context needed to find the failing input: the global row index (never
/// a chunk-local one), the block index and its row range, the column name, the expected and found
/// dtypes. Variants are added over time, so match with a wildcard arm.
///
/// Errors are deterministic: when several rows or blocks fail, the call reports the one a serial
/// loop would have met first (the lowest row / block), not whichever thread lost a race.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
/// use polars_flock::Error;
///
/// let df = df!("x" => [1.0, 2.0, 3.0])?;
/// let err = df.par_apply_rows("y", |row| Ok(row.i64("x")? * 2)).unwrap_err();
/// match err {
///     Error::DtypeMismatch { column, row, expected, found } => {
///         assert_eq!(column, "x");
///         assert_eq!(row, Some(0));
///         assert_eq!(*expected, DataType::Int64);
///         assert_eq!(*found, DataType::Float64);
///     }
///     other => panic!("unexpected error: {other}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An option (or a call's parameter) has a value that cannot work, such as `chunksize(0)`,
    /// `threads(0)`, an empty key list for a group-wise apply, or a streaming window of 0.
    ///
    /// Fix the option; nothing ran.
    InvalidOption {
        /// The option's name, e.g. `"chunksize"`, or the parameter's (`"by"`, `"window"`).
        option: &'static str,
        /// The value given, as written: `"0"`, `"[]"`.
        value: String,
        /// What the option accepts.
        reason: &'static str,
    },

    /// The dedicated thread pool requested with [`Flock::threads`](crate::Flock::threads) could not
    /// be started (the OS refused to spawn threads).
    ///
    /// Ask for fewer threads, or use the default pool; nothing ran.
    ThreadPool {
        /// The number of threads requested.
        threads: usize,
        /// rayon's reason.
        source: rayon::ThreadPoolBuildError,
    },

    /// A column read by name does not exist.
    ///
    /// `row` is the global row being processed when a row closure asked for it, or `None` when the
    /// names were checked before any work started (the typed fast path).
    ColumnNotFound {
        /// The name asked for.
        column: String,
        /// The global row index, if the lookup happened inside a row closure.
        row: Option<usize>,
    },

    /// A column was read as a type its dtype does not have (no implicit casts are made).
    ///
    /// Read it with the getter for `found`, or cast the column before the call.
    DtypeMismatch {
        /// The column's name.
        column: String,
        /// The global row index, if the read happened inside a row closure.
        row: Option<usize>,
        /// The dtype the getter or tuple element reads (boxed to keep `Error` small).
        expected: Box<DataType>,
        /// The column's actual dtype.
        found: Box<DataType>,
    },

    /// A null was read through a getter that cannot represent it (`f64` rather than
    /// `Option<f64>`).
    ///
    /// Use the `Option` form (`row.opt_f64`, or `Option<f64>` in a typed tuple), or fill the nulls.
    NullValue {
        /// The column's name.
        column: String,
        /// The global row index of the null.
        row: usize,
    },

    /// The output column name is already taken in the input frame.
    ///
    /// Choose another name, or drop the old column first; the input is never overwritten silently.
    DuplicateColumn {
        /// The output name asked for.
        column: String,
    },

    /// A row closure (or an item closure on a slice) returned an error.
    ///
    /// `row` is the global row (or item) index; `source` is the closure's own error, which can be
    /// recovered with `downcast_ref`.
    Row {
        /// The global row (or item) index.
        row: usize,
        /// The closure's error.
        source: BoxError,
    },

    /// A block closure returned an error.
    Block {
        /// The block's index, counting from 0 in input order.
        block: usize,
        /// The rows (or items) the block covers in the input.
        rows: Range<usize>,
        /// The closure's error.
        source: BoxError,
    },

    /// Something failed inside one group of a group-wise apply
    /// ([`par_apply_groups`](crate::DataFrameParApply::par_apply_groups)): `source` is the
    /// structured error, the same variant any other front-end reports — [`Error::Closure`] for
    /// the closure's own error, [`Error::Panicked`] (whose `row` is the group's index),
    /// [`Error::SchemaMismatch`] (whose `block` is the group's index), or a getter's error.
    InGroup {
        /// The group's index, counting from 0 in the order groups first appear.
        group: usize,
        /// The group's key, as `column=value` pairs.
        key: String,
        /// What went wrong.
        source: Box<Error>,
    },

    /// Something failed for one file: of a [`Files`](crate::Files) job, of its listing, or of a
    /// streamed Arrow IPC file. `source` is the structured error: [`Error::Io`] (listing,
    /// opening, writing), [`Error::Closure`] (the closure's own error), [`Error::Panicked`]
    /// (whose `row` is the file's index), [`Error::SchemaMismatch`] (whose `block` is the file's,
    /// or the streamed frame's, index), [`Error::RowGroup`] (a Parquet row group), or
    /// [`Error::Polars`].
    InFile {
        /// The file (or the directory or glob pattern being listed).
        path: PathBuf,
        /// What went wrong.
        source: Box<Error>,
    },

    /// A group or file closure returned an error (reported inside [`Error::InGroup`] or
    /// [`Error::InFile`], which say which group or file). Row and block closures' errors are
    /// [`Error::Row`] and [`Error::Block`], which carry their rows.
    Closure {
        /// The closure's error: downcast it to recover your type.
        source: BoxError,
    },

    /// A row group of a Parquet file (feature `parquet`) failed to decode, or decoded to another
    /// number of rows than its footer says; reported inside [`Error::InFile`], which names the
    /// file.
    RowGroup {
        /// The row group's index in the file.
        row_group: usize,
        /// The rows of the part that failed, counted from the file's first row.
        rows: Range<usize>,
        /// The decoder's error, or what did not match.
        source: BoxError,
    },

    /// An IO error outside user code: listing a directory, opening or writing a file, starting a
    /// thread.
    Io(std::io::Error),

    /// A block closure (or a group's, a file's, a streamed frame's) returned a frame whose schema
    /// differs from the first one's.
    ///
    /// All outputs must have the same column names and dtypes in the same order, so that they can
    /// be concatenated. `block` is the index of the block, group, file or frame; `rows` its rows
    /// in the input (for a group or a file, `block..block + 1`). Inside [`Error::InGroup`] and
    /// [`Error::InFile`] this is the `source`, so that it can be matched in every front-end.
    SchemaMismatch {
        /// The index of the first block (group, file, frame) whose schema differs.
        block: usize,
        /// The rows that block covers in the input.
        rows: Range<usize>,
        /// The schema of the first output.
        expected: SchemaRef,
        /// The schema of this block's output.
        found: SchemaRef,
    },

    /// User code panicked: a closure, an `init`, a callback, a sink or source, or the `Drop` of a
    /// value the crate dropped for you. The panic was caught; the process goes on.
    ///
    /// `during` says which piece of user code it was. `block` and `rows` locate it: the block
    /// being run (for a closure or `init`); the right-hand block of a fold's `combine`; the last
    /// block a worker ran, for a per-worker state's `Drop`; the block whose completion was being
    /// reported, for a progress callback; the batch, in streaming. `row` is the row (or item)
    /// being processed when the apply works row by row, `None` otherwise.
    Panicked {
        /// The index of the block (or batch) it belongs to.
        block: usize,
        /// The rows (or items) that block covers.
        rows: Range<usize>,
        /// The row (or item) being processed, if known.
        row: Option<usize>,
        /// The panic message (`"<non-string panic payload>"` when it was not a string).
        message: String,
        /// Which user code panicked.
        during: UserCode,
    },

    /// A worker's `init` (of a `*_per_worker` call, or of [`Workers`](crate::Workers)) failed or
    /// panicked, so the block it was about to run did not run: no block runs without its state.
    ///
    /// Blocks listed in `completed_blocks` finished; their results are dropped with the call, but
    /// side effects they had (rows written to a database) happened. Fix the cause (a path, a
    /// permission, a server that is down) and run again.
    Init {
        /// The index of the pool thread whose `init` failed (`None` on the calling thread, for a
        /// call small enough to run inline).
        worker: Option<usize>,
        /// The block the worker was about to run.
        block: usize,
        /// The rows that block covers.
        rows: Range<usize>,
        /// The blocks that completed, in input order.
        completed_blocks: Vec<usize>,
        /// The error `init` returned, or its panic as an [`Error::Panicked`] (`during:
        /// UserCode::Init`).
        source: BoxError,
    },

    /// The call's [`CancelToken`](crate::CancelToken) was cancelled: no block started after that.
    ///
    /// Blocks already running when it was cancelled finished (a running closure is never
    /// interrupted); a block that returned an error once the token was cancelled counts as
    /// cancelled, so a closure may stop early with [`CancelToken::check`](crate::CancelToken::check).
    /// Fail-fast calls drop the completed blocks' results; keep-going calls keep them and
    /// report this error in [`Report::stopped`](crate::Report::stopped).
    Cancelled {
        /// Blocks that completed.
        completed_blocks: usize,
        /// Blocks in the call.
        blocks: usize,
        /// Rows (or items) in the completed blocks.
        completed_rows: usize,
        /// Rows (or items) in the call.
        rows: usize,
    },

    /// The call's [`Flock::timeout`](crate::Flock::timeout) passed: no block started after that.
    ///
    /// The deadline is checked before each block starts, so the call returns at most about one
    /// block's run time after it; a running closure is never interrupted. A block that returned an
    /// error after the deadline counts as timed out. Use smaller blocks for a tighter bound, or
    /// raise the timeout.
    TimedOut {
        /// The timeout that passed.
        timeout: Duration,
        /// Blocks that completed.
        completed_blocks: usize,
        /// Blocks in the call.
        blocks: usize,
        /// Rows (or items) in the completed blocks.
        completed_rows: usize,
        /// Rows (or items) in the call.
        rows: usize,
    },

    /// A unit (a row, an item, a block, a group, a file) did not finish within
    /// [`Flock::unit_timeout`](crate::Flock::unit_timeout): an async unit's future was dropped at
    /// the deadline (a request in flight is abandoned); a synchronous closure found its deadline
    /// passed ([`check_unit`](crate::check_unit)) or returned after it (its output dropped). It
    /// is the `source` of the [`Error::Row`] (or [`Error::Block`], ...) that names the unit; the
    /// call goes on (keep-going) or stops (fail-fast) as for any other failure of a unit, and
    /// [`Flock::retries`](crate::Flock::retries) retries it by default.
    UnitTimedOut {
        /// The per-unit time limit that passed.
        timeout: Duration,
    },

    /// An Arrow column could not cross between arrow-rs and Polars (feature `arrow`): a data type
    /// one side cannot represent, or a malformed batch.
    ///
    /// Cast the column to a supported type first (see
    /// [`arrow::to_dataframe`](crate::arrow::to_dataframe) for the list).
    Arrow {
        /// The column's name.
        column: String,
        /// The reason, from arrow-rs or polars-arrow.
        source: BoxError,
    },

    /// A chunk of a cluster job (feature `distributed`) failed on process `process`: `source`
    /// is what went wrong, as the local call reported it on that process ([`Error::Panicked`]
    /// keeps its structure across processes; another process's other errors arrive as
    /// [`Error::Remote`]). Every process of the job returns it.
    InChunk {
        /// The chunk's index in the source.
        chunk: usize,
        /// The process that ran the chunk.
        process: usize,
        /// What went wrong.
        source: Box<Error>,
    },

    /// An error that happened on another process of a cluster job, which crossed the network as
    /// its variant's name and its message (reported inside [`Error::InChunk`]).
    Remote {
        /// The variant of the original error, e.g. `"Row"` or `"DtypeMismatch"`.
        variant: String,
        /// The original error's message (its `Display`).
        message: String,
    },

    /// A cluster job (feature `distributed`) could not start: process `peer` was not reachable
    /// at `address` (or this process could not listen on its own, when `peer == process`)
    /// within the start-up timeout.
    ///
    /// Start every process of the job (with the same address list), check the addresses and
    /// the network between them, or raise the timeout; nothing ran.
    ClusterStart {
        /// This process's index.
        process: usize,
        /// The peer that was not reached.
        peer: usize,
        /// Its address.
        address: String,
        /// How long this process waited.
        waited: Duration,
        /// The last connection error.
        source: std::io::Error,
    },

    /// A cluster job lost a peer mid-run (feature `distributed`): its connection closed or
    /// broke (the process died, its machine or the network went away). No chunk starts on this
    /// process after that; nothing is returned. Rerun the job (with
    /// [`Cluster::parts`](crate::distributed::Cluster::parts), only the missing chunks run).
    PeerLost {
        /// This process's index.
        process: usize,
        /// The peer whose connection broke, when known.
        peer: Option<usize>,
        /// What the network layer reported.
        message: String,
    },

    /// An error raised by Polars outside user code (e.g. while assembling the output).
    Polars(PolarsError),
}

/// The piece of user code that panicked, in [`Error::Panicked`].
///
/// # Examples
///
/// ```
/// use polars_flock::prelude::*;
/// use polars_flock::{Error, Flock, UserCode};
///
/// let blocks = Flock::new().chunksize(1); // three blocks: two combines
/// let err = blocks
///     .on(&[1, 2, 3])
///     .par_fold(|| 0, |a, &x| Ok(a + x), |_, _| panic!("bad combine"))
///     .unwrap_err();
/// assert!(matches!(err, Error::Panicked { during: UserCode::Combine, block: 1, .. }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UserCode {
    /// The row, block, group, file or batch closure.
    Closure,
    /// A per-worker `init`.
    Init,
    /// The `Drop` of a per-worker state, when the crate closed it.
    StateDrop,
    /// The `Drop` of an output value the crate dropped after a failure.
    OutputDrop,
    /// A progress callback (or progress bar).
    Progress,
    /// A fold's `identity`.
    Identity,
    /// A fold's `combine`.
    Combine,
    /// A streaming source iterator.
    Source,
    /// A streaming sink.
    Sink,
}

impl std::fmt::Display for UserCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UserCode::Closure => "the closure",
            UserCode::Init => "init",
            UserCode::StateDrop => "the Drop of a per-worker state",
            UserCode::OutputDrop => "the Drop of an output",
            UserCode::Progress => "the progress callback",
            UserCode::Identity => "the fold's identity",
            UserCode::Combine => "the fold's combine",
            UserCode::Source => "the source iterator",
            UserCode::Sink => "the sink",
        })
    }
}

impl Error {
    /// This error as returned by the closure of global row `row`. `own` says whether it was
    /// raised by that row's own getters: only then does a getter error (which names its row)
    /// stand as it is. An error from anywhere else, e.g. a nested call's getter naming the
    /// inner frame's row, is wrapped in [`Error::Row`] with this row, the original as its source.
    /// A row closure's error for global row `row`: one of the crate's own errors (a getter's, a
    /// nested call's) as [`Error::at_row`] says; any other error becomes [`Error::Row`] with
    /// this row, the original as its source.
    #[cold]
    pub(crate) fn of_row(error: BoxError, row: usize, own: bool) -> Self {
        match error.downcast::<Error>() {
            Ok(error) => error.at_row(row, own),
            Err(source) => Error::Row { row, source },
        }
    }

    /// An error of a call over one batch of a stream, located in the stream: rows counted from
    /// the stream's first row (`offset` is the batch's), and the batch's index as the block.
    #[cfg(feature = "streaming")]
    #[cold]
    pub(crate) fn in_stream(self, batch: usize, offset: usize) -> Self {
        let shift = |rows: Range<usize>| rows.start + offset..rows.end + offset;
        match self {
            Error::ColumnNotFound { column, row } => Error::ColumnNotFound {
                column,
                row: row.map(|r| r + offset),
            },
            Error::DtypeMismatch {
                column,
                row,
                expected,
                found,
            } => Error::DtypeMismatch {
                column,
                row: row.map(|r| r + offset),
                expected,
                found,
            },
            Error::NullValue { column, row } => Error::NullValue {
                column,
                row: row + offset,
            },
            Error::Row { row, source } => Error::Row {
                row: row + offset,
                source,
            },
            Error::Block { rows, source, .. } => Error::Block {
                block: batch,
                rows: shift(rows),
                source,
            },
            Error::SchemaMismatch {
                rows,
                expected,
                found,
                ..
            } => Error::SchemaMismatch {
                block: batch,
                rows: shift(rows),
                expected,
                found,
            },
            Error::Panicked {
                rows,
                row,
                message,
                during,
                ..
            } => Error::Panicked {
                block: batch,
                rows: shift(rows),
                row: row.map(|r| r + offset),
                message,
                during,
            },
            Error::Init {
                worker,
                rows,
                source,
                ..
            } => Error::Init {
                worker,
                block: batch,
                rows: shift(rows),
                completed_blocks: Vec::new(),
                source,
            },
            other => other,
        }
    }

    /// A block closure's error for block `block` of `rows`.
    #[cold]
    pub(crate) fn of_block(source: BoxError, block: usize, rows: Range<usize>) -> Self {
        Error::Block {
            block,
            rows,
            source,
        }
    }

    /// `source` in the context of the file at `path`.
    #[cold]
    pub(crate) fn in_file(path: &std::path::Path, source: impl Into<Error>) -> Self {
        Error::InFile {
            path: path.to_path_buf(),
            source: Box::new(source.into()),
        }
    }

    /// A group or file closure's error: one of the crate's own errors stands as it is, any
    /// other becomes [`Error::Closure`].
    #[cold]
    pub(crate) fn of_closure(error: BoxError) -> Self {
        match error.downcast::<Error>() {
            Ok(error) => *error,
            Err(source) => Error::Closure { source },
        }
    }

    /// The closure's own error inside a unit's error (the source the crate wrapped), or the
    /// unit's error itself when the crate made it: what a [`Retry`](crate::Retry) policy judges.
    #[cfg(any(feature = "async", feature = "distributed"))]
    pub(crate) fn closure_error(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            Error::Row { source, .. } | Error::Block { source, .. } | Error::Closure { source } => {
                &**source
            }
            Error::InGroup { source, .. } | Error::InFile { source, .. } => source.closure_error(),
            other => other,
        }
    }

    /// The variant's name, e.g. `"Row"`: what crosses the network with a message, and the
    /// `error` column of [`Report::failures_frame`](crate::Report::failures_frame).
    pub(crate) fn variant_name(&self) -> &'static str {
        match self {
            Error::InvalidOption { .. } => "InvalidOption",
            Error::ThreadPool { .. } => "ThreadPool",
            Error::ColumnNotFound { .. } => "ColumnNotFound",
            Error::DtypeMismatch { .. } => "DtypeMismatch",
            Error::NullValue { .. } => "NullValue",
            Error::DuplicateColumn { .. } => "DuplicateColumn",
            Error::Row { .. } => "Row",
            Error::Block { .. } => "Block",
            Error::InGroup { .. } => "InGroup",
            Error::InFile { .. } => "InFile",
            Error::Closure { .. } => "Closure",
            Error::RowGroup { .. } => "RowGroup",
            Error::Io(_) => "Io",
            Error::SchemaMismatch { .. } => "SchemaMismatch",
            Error::Panicked { .. } => "Panicked",
            Error::Init { .. } => "Init",
            Error::Cancelled { .. } => "Cancelled",
            Error::TimedOut { .. } => "TimedOut",
            Error::UnitTimedOut { .. } => "UnitTimedOut",
            Error::Arrow { .. } => "Arrow",
            Error::InChunk { .. } => "InChunk",
            Error::Remote { .. } => "Remote",
            Error::ClusterStart { .. } => "ClusterStart",
            Error::PeerLost { .. } => "PeerLost",
            Error::Polars(_) => "Polars",
        }
    }

    pub(crate) fn at_row(self, row: usize, own: bool) -> Self {
        match self {
            e @ Error::Row { row: r, .. } if r == row => e,
            e @ (Error::ColumnNotFound { row: Some(r), .. }
            | Error::DtypeMismatch { row: Some(r), .. }
            | Error::NullValue { row: r, .. })
                if own && r == row =>
            {
                e
            }
            other => Error::Row {
                row,
                source: Box::new(other),
            },
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidOption {
                option,
                value,
                reason,
            } => write!(f, "invalid option `{option}` = {value}: {reason}"),
            Error::ThreadPool { threads, source } => {
                write!(f, "could not start a pool of {threads} threads: {source}")
            }
            Error::ColumnNotFound { column, row } => {
                write!(f, "column {column:?} not found{}", at_row(*row))
            }
            Error::DtypeMismatch {
                column,
                row,
                expected,
                found,
            } => write!(
                f,
                "column {column:?} has dtype {found:?}, but was read as {expected:?}{}",
                at_row(*row)
            ),
            Error::NullValue { column, row } => write!(
                f,
                "null value in column {column:?} at row {row}; read it as an Option"
            ),
            Error::DuplicateColumn { column } => {
                write!(f, "output column {column:?} already exists in the frame")
            }
            Error::Row { row, source } => write!(f, "row {row}: {source}"),
            Error::Block {
                block,
                rows,
                source,
            } => write!(
                f,
                "block {block} (rows {}..{}): {source}",
                rows.start, rows.end
            ),
            Error::InGroup { group, key, source } => write!(f, "group {group} ({key}): {source}"),
            Error::InFile { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Closure { source } => write!(f, "{source}"),
            Error::RowGroup {
                row_group,
                rows,
                source,
            } => write!(
                f,
                "row group {row_group} (rows {}..{}): {source}",
                rows.start, rows.end
            ),
            Error::Io(e) => e.fmt(f),
            Error::SchemaMismatch {
                block,
                rows,
                expected,
                found,
            } => write!(
                f,
                "block {block} (rows {}..{}) returned schema {found:?}, but the first returned {expected:?}",
                rows.start, rows.end
            ),
            Error::Panicked {
                block,
                rows,
                row,
                message,
                during,
            } => write!(
                f,
                "panic in block {block} (rows {}..{}){}{}: {message}",
                rows.start,
                rows.end,
                at_row(*row),
                in_user_code(*during)
            ),
            Error::Init {
                worker,
                block,
                rows,
                completed_blocks,
                source,
            } => write!(
                f,
                "init failed on worker {} before block {block} (rows {}..{}; {} blocks completed): {source}",
                worker.map_or_else(|| "<calling thread>".to_owned(), |w| w.to_string()),
                rows.start,
                rows.end,
                completed_blocks.len()
            ),
            Error::Cancelled {
                completed_blocks,
                blocks,
                completed_rows,
                rows,
            } => write!(
                f,
                "cancelled: {completed_blocks} of {blocks} blocks ({completed_rows} of {rows} rows) completed"
            ),
            Error::TimedOut {
                timeout,
                completed_blocks,
                blocks,
                completed_rows,
                rows,
            } => write!(
                f,
                "timed out after {timeout:?}: {completed_blocks} of {blocks} blocks ({completed_rows} of {rows} rows) completed"
            ),
            Error::UnitTimedOut { timeout } => {
                write!(f, "did not finish within its time limit of {timeout:?}")
            }
            Error::Arrow { column, source } => write!(f, "Arrow column {column:?}: {source}"),
            Error::InChunk {
                chunk,
                process,
                source,
            } => write!(f, "chunk {chunk} (on process {process}): {source}"),
            Error::Remote { message, .. } => f.write_str(message),
            Error::ClusterStart {
                process,
                peer,
                address,
                waited,
                source,
            } => {
                if peer == process {
                    write!(f, "process {process} could not listen on {address}")?;
                } else {
                    write!(
                        f,
                        "process {process} could not reach process {peer} at {address}"
                    )?;
                }
                write!(f, " within {waited:?}: {source}")
            }
            Error::PeerLost {
                process,
                peer,
                message,
            } => match peer {
                Some(peer) => write!(
                    f,
                    "process {process} lost its connection to process {peer}: {message}"
                ),
                None => write!(f, "process {process} lost a peer: {message}"),
            },
            Error::Polars(e) => e.fmt(f),
        }
    }
}

/// Written by hand rather than derived, so that the source of [`Error::InGroup`] and
/// [`Error::InFile`] is the inner `Error` itself (`source().downcast_ref::<Error>()` finds it),
/// not its `Box`.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::ThreadPool { source, .. } => Some(source),
            Error::Row { source, .. }
            | Error::Block { source, .. }
            | Error::Closure { source }
            | Error::RowGroup { source, .. }
            | Error::Init { source, .. }
            | Error::Arrow { source, .. } => Some(source.as_ref()),
            Error::InGroup { source, .. }
            | Error::InFile { source, .. }
            | Error::InChunk { source, .. } => Some(&**source),
            Error::ClusterStart { source, .. } => Some(source),
            // Transparent, as their `Display`.
            Error::Io(e) => e.source(),
            Error::Polars(e) => e.source(),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Io(error)
    }
}

impl From<PolarsError> for Error {
    fn from(error: PolarsError) -> Self {
        Error::Polars(error)
    }
}

impl From<Error> for PolarsError {
    /// Lets code that returns `PolarsResult` (a Polars UDF, a function written for Polars) use `?`
    /// on a call of this crate.
    fn from(error: Error) -> Self {
        match error {
            Error::Polars(e) => e,
            // Kept as a value, so that the call can tell a block stopped by its token.
            stop @ (Error::Cancelled { .. } | Error::TimedOut { .. }) => {
                std::io::Error::new(std::io::ErrorKind::Interrupted, stop).into()
            }
            other => PolarsError::ComputeError(other.to_string().into()),
        }
    }
}

/// `""` for the closure itself, `" in the fold's combine"` etc. for other user code.
fn in_user_code(during: UserCode) -> String {
    match during {
        UserCode::Closure => String::new(),
        other => format!(" in {other}"),
    }
}

fn at_row(row: Option<usize>) -> String {
    row.map(|r| format!(" at row {r}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_static<T: Send + Sync + 'static>() {}

    #[test]
    fn error_is_send_sync_static() {
        assert_send_sync_static::<Error>();
    }

    #[test]
    fn error_stays_small_for_the_hot_path() {
        // Every getter returns `Result<T, Error>`: a large error would be copied on every read.
        assert!(
            std::mem::size_of::<Error>() <= 80,
            "{}",
            std::mem::size_of::<Error>()
        );
    }

    #[test]
    fn a_user_error_gets_its_row_and_stays_recoverable() {
        let e = Error::of_row("bad".into(), 7, false);
        assert!(matches!(e, Error::Row { row: 7, .. }));
        assert_eq!(e.to_string(), "row 7: bad");
        let parse = "x".parse::<i64>().unwrap_err();
        let Error::Row { source, .. } = Error::of_row(Box::new(parse), 3, true) else {
            panic!()
        };
        assert!(source.downcast_ref::<std::num::ParseIntError>().is_some());
    }

    #[test]
    fn getter_errors_keep_their_own_row() {
        let own = Error::NullValue {
            column: "x".into(),
            row: 9,
        }
        .at_row(9, true);
        assert!(matches!(own, Error::NullValue { row: 9, .. }));
    }

    #[test]
    fn a_nested_calls_getter_error_gets_the_outer_row() {
        let inner = || Error::ColumnNotFound {
            column: "x".into(),
            row: Some(0),
        };
        for own in [false, true] {
            let e = inner().at_row(700, own);
            let Error::Row { row: 700, source } = &e else {
                panic!("{e:?}")
            };
            let source = source.downcast_ref::<Error>().expect("the inner error");
            assert!(matches!(source, Error::ColumnNotFound { row: Some(0), .. }));
        }
    }
}
