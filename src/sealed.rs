//! The crate's one `sealed` module: the traits behind the public traits, which users can name in
//! bounds but neither implement nor call. Each public trait that users' types must satisfy
//! ([`ColumnValue`](crate::ColumnValue), [`RowOutput`](crate::RowOutput),
//! [`OutputNames`](crate::OutputNames), [`FromCell`](crate::FromCell),
//! [`FromColumns`](crate::FromColumns), [`TypedOutput`](crate::TypedOutput),
//! [`PerWorker`](crate::PerWorker)) or that the crate implements on inputs
//! ([`DataFrameParApply`](crate::DataFrameParApply), [`SliceParApply`](crate::SliceParApply),
//! `RecordBatchParApply`) has its supertrait here or re-exported from here.

use polars::prelude::DataFrame;

use crate::error::BoxError;
use crate::flock::Flock;

use crate::value::RowOutput;

/// A typed closure's return value: a value (or tuple of values) or a `Result` of one.
pub trait Typed: Send {
    /// The value (or tuple) the output columns hold.
    type Value: RowOutput;
    /// Whether the closure can fail: picks the per-row loop over the vectorisable one.
    const FALLIBLE: bool;
    /// The value, or the closure's error.
    fn value(self) -> Result<Self::Value, BoxError>;
}

/// Where a call gets its per-worker states, and where it gives them back: an `init` closure (a
/// fresh state per thread, dropped when the call ends) or a [`Workers`](crate::Workers) (states
/// kept across calls).
pub trait StateSource<S>: Sync {
    /// A state for a thread about to run its first block of the call (user code: `init`).
    fn acquire(&self) -> Result<S, BoxError>;
    /// The call is over and `state` is sound (never called for a state whose block panicked):
    /// keep it (`None`), or hand it back for the call to drop (`Some`).
    fn release(&self, state: S) -> Option<S>;
}

/// A frame and the options to run on it: a [`DataFrame`] (default options) or a configured
/// view of one ([`Flock::on`]).
pub trait Frame {
    /// The frame and the options.
    fn parts(&self) -> (&DataFrame, &Flock);
}

/// Items and the options to run on them: a slice or `Vec` (default options) or a configured
/// view of one.
pub trait Items<T> {
    /// The items and the options.
    fn parts(&self) -> (&[T], &Flock);
}

/// Record batches and the options to run on them.
#[cfg(feature = "arrow")]
pub trait Batches {
    /// The batches as one frame (zero-copy).
    fn frame(&self) -> crate::Result<DataFrame>;
    /// The options.
    fn flock(&self) -> &Flock;
}
