#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]
#![deny(unreachable_pub)]
// `unsafe` only in the `arrow` module, at the Arrow C Data Interface boundary.
#![deny(unsafe_code)]

// The layout follows the architecture: front-ends (one per kind of input) turn a call into a plan
// of blocks and a task per block; options and modes (`Flock`, the views, keep-going, per-worker
// states) configure it; `plan` cuts the input; `exec` runs the blocks; `concat` reassembles the
// outputs; typed cells read and write column values. Every sealed trait is in `sealed`.
#[cfg(feature = "streaming")]
mod atomic;
mod cells;
#[cfg(doctest)]
mod compile_fail;
mod concat;
#[cfg(feature = "distributed")]
pub mod distributed;
mod error;
mod exec;
mod frontends;
#[cfg(feature = "streaming")]
mod ipc;
mod modes;
mod plan;
pub mod prelude;
mod sealed;

use cells::{cell, row, value};
#[cfg(feature = "arrow")]
pub use frontends::arrow;
#[cfg(feature = "async")]
pub use frontends::io;
#[cfg(feature = "parquet")]
pub use frontends::parquet;
#[cfg(feature = "streaming")]
pub use frontends::streaming;
use frontends::{files, fold, frame, group, slice};
use modes::{control, flock, retry, stats, view, workers};

#[cfg(feature = "dtypes")]
pub use chrono;
#[cfg(feature = "progress")]
pub use indicatif;
pub use polars;
#[cfg(feature = "postgres")]
pub use postgres;
#[cfg(feature = "sqlite")]
pub use rusqlite;
#[cfg(feature = "async")]
pub use tokio;

pub use crate::cell::{FromCell, FromColumns};
pub use crate::control::{CancelToken, Failure, Report, Unit};
pub use crate::error::{BoxError, Error, Result, UserCode};
pub use crate::files::Files;
pub use crate::flock::Flock;
pub use crate::frame::DataFrameParApply;
pub use crate::plan::ChunkPlan;
pub use crate::retry::{Retry, Transient, attempt, check_unit, unit_deadline};
pub use crate::row::Row;
pub use crate::slice::SliceParApply;
pub use crate::stats::{Stall, Stats, WorkerStats};
pub use crate::value::{ColumnValue, OutputNames, RowOutput};
pub use crate::view::{KeepGoing, On, PerWorker, TypedOutput};
pub use crate::workers::Workers;
