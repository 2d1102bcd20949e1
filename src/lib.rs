//! Apply a function to every row (or every block) of a Polars [`DataFrame`] or a `Vec`, on all
//! cores, and get the results back in input order: the Rust successor of Python's
//! [Flock](https://pypi.org/project/flockmp/) and of hand-written `Pool.map` recipes, with no
//! pickling, no copy of the frame per worker, no GIL, and data races ruled out by the compiler.
//!
//! ```
//! use polars_flock::polars::prelude::*;
//! use polars_flock::prelude::*;
//!
//! let df = df!(
//!     "price" => [2.5, 8.0, 1.0, 12.0],
//!     "qty" => [4i64, 3, 2, 1],
//! )?;
//! let out = df.par_apply_rows("total", |row| Ok(row.f64("price")? * row.i64("qty")? as f64))?;
//!
//! // The same computation as a plain serial loop:
//! let serial: Vec<f64> = [(2.5, 4), (8.0, 3), (1.0, 2), (12.0, 1)]
//!     .iter()
//!     .map(|&(p, q)| p * q as f64)
//!     .collect();
//! let got: Vec<f64> = out.column("total")?.f64()?.into_no_null_iter().collect();
//! assert_eq!(got, serial);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Overview
//!
//! `use polars_flock::prelude::*` adds two extension traits:
//!
//! - [`DataFrameParApply`] on [`DataFrame`]:
//!   [`par_apply_rows`](DataFrameParApply::par_apply_rows) (a [`Row`] view with typed getters →
//!   a new column), [`par_apply_columns`](DataFrameParApply::par_apply_columns) (the typed fast
//!   path: a tuple of column values → a new column) and
//!   [`par_apply_blocks`](DataFrameParApply::par_apply_blocks) (a zero-copy slice of the frame →
//!   a frame; results concatenated);
//! - [`SliceParApply`] on slices and `Vec`s: `par_apply_rows` (per item) and `par_apply_blocks`
//!   (per sub-slice), with `try_` forms for fallible closures.
//!
//! Around them:
//!
//! - group-wise apply, [`par_apply_groups`](DataFrameParApply::par_apply_groups): one call per
//!   group of a key, groups in parallel, outputs in first-appearance order;
//! - parallel fold, [`par_fold`](SliceParApply::par_fold) and
//!   [`par_fold_rows`](DataFrameParApply::par_fold_rows): per-block accumulators combined in
//!   order;
//! - many files, [`Files`]: a directory or glob, read → transform → write per file or concatenate,
//!   each error naming its file;
//! - keep-going forms that turn failing rows into nulls and return a [`Report`];
//! - `arrow` (feature `arrow`): `RecordBatch` ⇄ `DataFrame` without copying, and the same calls
//!   over record batches;
//! - `streaming` (feature `streaming`): a block function over a stream of batches bigger than
//!   memory, a bounded number in flight, outputs in order.
//!
//! Each method has a `*_with` form taking a [`Flock`]: the options (rows per block, thread count
//! or pool). The `*_per_worker` forms give each worker a state built once by an `init` closure,
//! such as a database connection; a [`Workers`] runner keeps those states across calls (see
//! [Per-worker resources](#per-worker-resources)). [`Flock::plan`] shows what a call would do. The `polars` crate is re-exported as
//! [`polars`](mod@polars) so that you use the version this crate was built against.
//!
//! # How it works
//!
//! 1. The input is cut into blocks of [`Flock::chunksize`] rows (or into [`Flock::blocks`] blocks
//!    of nearly equal size). A block is a zero-copy slice: columns are shared Arrow arrays, never
//!    copied. Without either option the rule is
//!    `ceil(rows / (4 × threads))` rows per block, at least 64, and the whole input as one block,
//!    run inline on the calling thread, when that leaves fewer than two blocks.
//! 2. One task per pool thread (a *drainer*) claims blocks from a shared counter, in input order,
//!    until none are left, so blocks of unequal cost balance out. A block is never a rayon job of
//!    its own. Inside a block, a row closure runs in a tight loop over the block's rows; column
//!    lookups and Arrow downcasts happen once per block, not per row.
//!
//!    A rayon thread that waits inside your closure (a Polars op that hops pools, a nested call)
//!    runs other jobs meanwhile, on top of the waiting frame. The executor keeps a per-thread record
//!    of the calls a thread is inside, so that: **a thread never runs two blocks of one call at
//!    once** (a drainer of the call that lands there steps aside, and is restarted when a block
//!    completes), so a lock or `RefCell` your closure holds across such a wait is never re-entered
//!    by the same call, and a per-worker state is never needed twice on one thread; and a drainer
//!    that lands on a thread inside *another* call runs at most one block and then yields, so a
//!    call sharing a pool with others returns at most one of their blocks (per call its thread
//!    picked up) after its own blocks are done.
//! 3. Each block's output is one Arrow array (or frame, or `Vec`); the outputs are concatenated
//!    in block order without copying, so the result is in input order and has one chunk per
//!    block. Rechunk it ([`DataFrame::rechunk_mut_par`]) only if you need to.
//!
//! Every row and every block is passed to the closure exactly once: no speculative calls, no
//! extra call to infer a schema.
//!
//! Which pool runs the blocks: Polars' own pool when called from outside any rayon pool (it
//! respects `POLARS_MAX_THREADS`, and Polars calls inside a closure then run inline on it); the
//! caller's pool when called from a rayon worker (`pool.install(..)`, or a nested call from
//! another closure); a pool owned by the [`Flock`] with [`Flock::threads`]. Nested calls and
//! calls from many threads at once are fine. No lock is held while user code runs.
//!
//! # Rows or blocks?
//!
//! | you have | use |
//! |---|---|
//! | per-row logic reading a few columns by name, maybe fallible | [`par_apply_rows`](DataFrameParApply::par_apply_rows) |
//! | a very cheap per-row formula over known columns | [`par_apply_columns`](DataFrameParApply::par_apply_columns) |
//! | logic that works on a frame (Polars ops, filters, aggregates) | [`par_apply_blocks`](DataFrameParApply::par_apply_blocks) |
//! | a list of items (ids, records) | [`SliceParApply`] |
//! | one computation per group of a key | [`par_apply_groups`](DataFrameParApply::par_apply_groups) |
//! | one number (or map, or histogram) from all rows | [`par_fold`](SliceParApply::par_fold), [`par_fold_rows`](DataFrameParApply::par_fold_rows) |
//! | a directory of files | [`Files`] |
//! | Arrow record batches | `RecordBatchParApply` (feature `arrow`) |
//! | data bigger than memory | `streaming::par_apply_batches` (feature `streaming`) |
//!
//! # Performance
//!
//! - Dispatch is per block, never per row; a row closure costs a call plus one cached slot lookup
//!   per getter. For closures of a few nanoseconds use the typed path, which reads plain slices.
//! - Small inputs run inline: a pool hop costs microseconds.
//! - Peak memory is the input plus the outputs; the input is never copied.
//! - Closures that block on IO belong on their own pool ([`Flock::threads`], more threads than
//!   cores), never on Polars' CPU pool.
//!
//! # Errors, panics and cancellation
//!
//! Every method returns [`Result`]`<_, `[`Error`]`>`. Each error carries the context that applies
//! to it (the global row index, the block and its row range, the column and the dtypes, the group
//! key or the file: see the table below), and errors are deterministic: with several failures, the
//! one a serial loop would meet first is reported. The input is never modified.
//!
//! **`?` in row closures.** Row closures return [`Result`]`<U>`; `?` works on the row's getters
//! and on the errors such closures meet most — parsing (`ParseIntError`, `ParseFloatError`,
//! `ParseBoolError`, `ParseCharError`, chrono's `ParseError` with `dtypes`), `std::io::Error`, UTF-8
//! (`Utf8Error`, `FromUtf8Error`), `TryFromIntError`, `fmt::Error`, SQLite's with `sqlite`, a
//! `&str` or `String` message, and any [`BoxError`] (`e.into()` boxes any other error). Each is
//! reported as [`Error::Row`] with the row; the original is its `source` (`downcast_ref`). Block
//! closures return `PolarsResult`, where `?` works on `std::io::Error` and Polars' errors.
//!
//! **Fail fast (default).** After the first failure no new block starts; blocks already running
//! finish and their results are dropped. **Keep going (opt-in).**
//! [`par_apply_rows_keep_going`](DataFrameParApply::par_apply_rows_keep_going) and
//! [`try_par_apply_rows_keep_going`](SliceParApply::try_par_apply_rows_keep_going) turn each
//! failing row (an error or a panic) into a null and return a [`Report`] listing every failed row
//! with its error, so one bad row in ten million does not discard the rest.
//!
//! **Panics** in user code — a closure, an `init`, a progress callback, a fold's `identity` or
//! `combine`, a streaming source or sink, or the `Drop` of a value the crate drops for you (a
//! per-worker state, the outputs discarded after a failure, a panic's own payload) — are caught
//! and returned as [`Error::Panicked`], whose `during` ([`UserCode`]) says which; the process
//! goes on. Under keep-going a panicking row is a failed row. Where the crate drops a value after
//! the call already failed, a panic in its `Drop` is caught and ignored (the first failure is
//! reported). One panic cannot be caught by any library: a second panic while a first one
//! unwinds (a `Drop` that panics during unwinding) aborts the process, as Rust specifies.
//!
//! **Keep-going** turns the failures *of rows* into nulls. Everything else fails the call as in
//! fail-fast mode: invalid options, a duplicate output column, a panicking progress callback, a
//! thread pool that cannot start.
//!
//! **Stopping a call.** [`Flock::timeout`] (a deadline for the whole call; one beyond what the
//! clock can represent, such as `Duration::MAX`, is no deadline) and [`Flock::cancel_token`] (a
//! [`CancelToken`] another thread can trigger) are checked before each block starts, and again
//! after a per-worker `init` returns. A running closure is not pre-empted — Rust threads cannot be
//! killed safely — so the call returns once the blocks already running finish: within about one
//! block's run time (plus, on a pool shared with other calls, at most one of their blocks per call
//! its thread picked up while waiting). Closures with long rows can check the token themselves
//! ([`CancelToken::check`]). When the call returns, none of its closures is still running.
//! Keep-going calls return what completed, with the skipped rows null and the reason in
//! [`Report::stopped`]; a row that stops itself with `token.check()?` is skipped, not failed.
//!
//! **Progress.** [`Flock::on_progress`] is called with `(done, total)` as blocks complete; with
//! the `progress` feature, `Flock::progress_bar` drives an [indicatif](https://docs.rs/indicatif)
//! bar. Both run on a reporting thread of the call, never on a worker: a slow callback never
//! keeps a worker from its next block (reports that arrive meanwhile are merged), cannot change a
//! result, and can delay only the call's return, which waits for the last report's callback.
//!
//! | error | when | what to do |
//! |---|---|---|
//! | [`Error::InvalidOption`] | `chunksize(0)`, `blocks(0)`, `threads(0)` or more threads than rayon supports, no group keys, a streaming window of 0 (`value` is the value given, as text); nothing ran | fix the option |
//! | [`Error::ThreadPool`] | the OS refused the threads of [`Flock::threads`]; nothing ran | fewer threads, or the default pool |
//! | [`Error::ColumnNotFound`] | a getter or the typed path names a missing column (typed: before any work) | fix the name; `row` says where |
//! | [`Error::DtypeMismatch`] | a column read as a type it does not have (no implicit casts) | use the getter for `found`, or cast first |
//! | [`Error::NullValue`] | a null read through a non-`Option` getter | read it as an `Option`, or fill nulls |
//! | [`Error::DuplicateColumn`] | the output name already exists; nothing ran | choose another name |
//! | [`Error::Row`] | a row closure returned an error | `source` is your error (`downcast_ref`); or use keep-going |
//! | [`Error::Block`] | a block closure returned an error (streaming: `block` is the batch) | `source` is your error |
//! | [`Error::Group`] | a group-wise closure failed, panicked or changed the schema | `group` and `key` say which group |
//! | [`Error::File`] | a file of a [`Files`] job (or its listing) failed | `path` says which file |
//! | [`Error::Arrow`] | an Arrow column of an unsupported type (feature `arrow`) | cast the column first |
//! | [`Error::SchemaMismatch`] | a block returned a schema unlike block 0's | return the same columns and dtypes from every block |
//! | [`Error::Panicked`] | user code panicked (`during` says which; block, rows, row if known, message) | fix the bug; under keep-going a panicking row is a failed row |
//! | [`Error::Init`] | a per-worker `init` failed or panicked; no block ran without its state | fix the resource (path, server), rerun; `completed_blocks` had their side effects |
//! | [`Error::Cancelled`] | the call's [`CancelToken`] was cancelled | expected after a cancel; counts say how far it got |
//! | [`Error::TimedOut`] | [`Flock::timeout`] passed | raise the timeout, use smaller blocks, or keep going to keep partial results |
//! | [`Error::Polars`] | Polars failed outside user code (assembling the output) | report it: a bug here or in Polars |
//! | [`Error::Custom`] | made by [`Error::custom`] or by `?` on an ordinary error in user code; a call reports it as [`Error::Row`] | — |
//!
//! # Flock (Python) → polars-flock
//!
//! | Flock | polars-flock |
//! |---|---|
//! | `FunctionAsync(f, args)` | `args.par_apply_rows(f)` ([`SliceParApply`]) |
//! | `ListAsync(f, list)` | `list.par_apply_rows(f)` / `list.par_apply_blocks(f)` |
//! | `DataFrameAsync(df, f, row-like)` | `df.par_apply_rows(name, f)` |
//! | `DataFrameAsync(df, f, block-like)` | `df.par_apply_blocks(f)` |
//! | `chunksize=n` (`n` chunks, as `np.array_split`) | [`Flock::blocks`]`(n)` (rows per block: [`Flock::chunksize`]) |
//! | `poolSize=` | [`Flock::threads`] |
//! | `timeOutError` | [`Flock::timeout`] → [`Error::TimedOut`] |
//!
//! # Per-worker resources
//!
//! Flock's `DatabaseAsync` opens a database connection once per worker and reuses it for every
//! task the worker runs. Here that is the `*_per_worker` family: an `init` closure builds one
//! state per worker (a connection, a client, a scratch buffer, or a tuple of them), and the work
//! closure gets `&mut` to its worker's state.
//!
//! | Flock (Python) | polars-flock |
//! |---|---|
//! | `DatabaseSetup(...)` (how to connect) | the `init` closure, e.g. `\|\| Connection::open(&path)` |
//! | a list of `DatabaseSetup`s (read and write connections) | `init` returning a tuple or a struct |
//! | `DatabaseAsync(...).run(f, rows)` | `df.par_apply_rows_per_worker(name, init, f)`, or `_blocks_` |
//! | a `DatabaseAsync` kept across calls | [`Flock::workers`] → [`Workers`], then `*_per_worker_with(&workers, ..)` |
//!
//! `init` runs at most once per pool thread that receives work in a call, never per block or per
//! row, even when work stealing hands a waiting thread other work; a [`Workers`] runner keeps its
//! workers' states between calls and reuses them, and drops (closes) them when it is dropped. See
//! [`Workers`] for the exact bound. If `init` fails, no block runs without its state and the call returns
//! [`Error::Init`] naming the worker, the cause and the blocks that completed.
//!
//! A connection must not be shared across threads: most database clients (`rusqlite::Connection`
//! among them) are `Send` but not `Sync`, so the compiler rejects sharing one, and wrapping it in
//! a `Mutex` would serialise every query. One per worker gives each thread its own, with no lock.
//!
//! **IO-bound work** (queries, HTTP calls) spends its time waiting. Run it on a pool of its own
//! with more threads than cores, e.g. `Flock::new().threads(4 * cores)` (the seed ETL guidance:
//! m × cores, m from 2 to 8 depending on how much of the time is waiting), never on Polars' CPU
//! pool, where a blocked thread is a core lost to every Polars query in the process.
//!
//! # Crate features
//!
//! | feature | adds |
//! |---|---|
//! | `sqlite` | `From<rusqlite::Error> for Error` (so `?` works on SQLite calls in row closures), a re-export of [`rusqlite`](https://docs.rs/rusqlite) (SQLite bundled: nothing to install), and the `database` example |
//! | `progress` | `Flock::progress_bar` (an [indicatif](https://docs.rs/indicatif) bar per call), a re-export of `indicatif`, and the `progress` example |
//! | `dtypes` | getters, typed reads and outputs for `Int8`, `Int16`, `UInt8`, `UInt16` (`i8`, `i16`, `u8`, `u16`), `Date`, `Datetime` and `Duration` (chrono's `NaiveDate`, `NaiveDateTime` / `DateTime<Utc>`, `TimeDelta`: [`Row::date`], [`Row::datetime`], [`Row::utc_datetime`], [`Row::duration`]), and a re-export of `chrono` |
//! | `arrow` | the `arrow` module: `RecordBatch` ⇄ `DataFrame` through the Arrow C Data Interface (arrow-rs `arrow-array` / `arrow-schema`, no buffer copied), `RecordBatchParApply` in the prelude, the `dtypes` feature, and the `arrow_interop` example |
//! | `csv` | Polars' CSV reader and writer in the re-exported [`polars`](mod@polars) (`polars::prelude::CsvReadOptions`, `CsvWriter`; `polars::io`): read the files you process without a second, pinned Polars dependency; and the `etl_files` example |
//! | `streaming` | the `streaming` module: `par_apply_batches` (bounded window, ordered sink), `apply_batches_in_order`, Arrow IPC file reading and writing batch by batch, and the `bigger_than_ram` example |
//!
//! The default build depends on Polars with the `fmt` feature only.
//!
//! # Rust and Polars versions
//!
//! Edition 2024, Rust 1.89 or newer. Polars 0.55 (pinned to `=0.55.2`, re-exported).

#![deny(missing_docs)]
#![deny(missing_debug_implementations)]
#![deny(unreachable_pub)]
// `unsafe` only in the `arrow` module, at the Arrow C Data Interface boundary.
#![deny(unsafe_code)]

// The layout follows the architecture: front-ends (one per kind of input) turn a call into a plan
// of blocks and a task per block; options and modes (`Flock`, the views, keep-going, per-worker
// states) configure it; `plan` cuts the input; `exec` runs the blocks; `concat` reassembles the
// outputs; typed cells read and write column values. Every sealed trait is in `sealed`.
mod cells;
#[cfg(doctest)]
mod compile_fail;
mod concat;
mod error;
mod exec;
mod frontends;
mod modes;
mod plan;
pub mod prelude;
mod sealed;

use cells::{cell, row, value};
#[cfg(feature = "arrow")]
pub use frontends::arrow;
#[cfg(feature = "streaming")]
pub use frontends::streaming;
use frontends::{files, fold, frame, group, slice};
use modes::{control, flock, view, workers};

#[cfg(feature = "dtypes")]
pub use chrono;
#[cfg(feature = "progress")]
pub use indicatif;
pub use polars;
#[cfg(feature = "sqlite")]
pub use rusqlite;

pub use crate::cell::{FromCell, FromColumns};
pub use crate::control::{CancelToken, Failure, Report, Unit};
pub use crate::error::{BoxError, Error, Result, UserCode};
pub use crate::files::Files;
pub use crate::flock::Flock;
pub use crate::frame::DataFrameParApply;
pub use crate::plan::ChunkPlan;
pub use crate::row::Row;
pub use crate::slice::SliceParApply;
pub use crate::value::{ColumnValue, OutputNames, RowOutput};
pub use crate::view::{KeepGoing, On, PerWorker, TypedOutput};
pub use crate::workers::Workers;

#[cfg(doc)]
use polars::prelude::DataFrame;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
