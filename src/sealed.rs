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
    /// Makes `state` again for a retry ([`Retry::reinit`](crate::Retry::reinit)): a new state
    /// (never one kept from earlier) in its place, the old one dropped (user code: `init`).
    fn renew(&self, state: &mut S) -> Result<(), BoxError> {
        let new = self.acquire()?;
        crate::exec::discard(std::mem::replace(state, new));
        Ok(())
    }
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

/// A stream and the options to run it with: a [`Stream`](crate::streaming::Stream) (default
/// options) or a configured view of one.
#[cfg(feature = "streaming")]
pub trait StreamInput<'s> {
    /// The stream and the options.
    fn stream_parts(&self) -> (&crate::streaming::Stream<'s>, &Flock);
}

/// Behind `streaming::Batch`: what a stream's source may yield.
#[cfg(feature = "streaming")]
pub trait Batch {
    /// The rows of the whole source this batch comes from, when its file says (a Parquet footer):
    /// the total of a stream's progress.
    fn source_rows(&self) -> Option<usize> {
        None
    }
}

/// Record batches and the options to run on them.
#[cfg(feature = "arrow")]
pub trait Batches {
    /// The batches as one frame (zero-copy).
    fn frame(&self) -> crate::Result<DataFrame>;
    /// The options.
    fn flock(&self) -> &Flock;
}

/// Behind [`FromCell`](crate::FromCell): how a value is read from a column.
pub(crate) mod cell {
    use polars::prelude::*;
    use polars_arrow::array::Array;

    use crate::cell::{Fast, SlotData};

    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be read from a column",
        note = "supported: f64, f32, i64, i32, u64, u32, bool, &str, and Option<T> of these; with feature `dtypes` also i16, i8, u16, u8, and chrono's NaiveDate, NaiveDateTime, DateTime<Utc>, TimeDelta (dtypes must match exactly: cast the column first)"
    )]
    pub trait Sealed<'a>: Sized {
        /// A per-segment view, made once per segment and read once per row.
        type Seg;
        const NULLABLE: bool;
        /// The dtype a column must have (for a type that reads several, such as a datetime of
        /// any unit, a representative one).
        fn dtype() -> DataType;
        /// Whether a column of `dtype` is read as this type.
        #[inline]
        fn accepts(dtype: &DataType) -> bool {
            dtype == &Self::dtype()
        }
        /// The dtype to name in a mismatch with a column of dtype `found`.
        fn expected(found: &DataType) -> DataType {
            let _ = found;
            Self::dtype()
        }
        /// Checks, once per typed read, that every value of `series` converts to this type.
        fn check(series: &Series) -> std::result::Result<(), String> {
            let _ = series;
            Ok(())
        }
        /// `dtype` is the column's (it carries a temporal column's time unit).
        fn seg(array: &'a dyn Array, dtype: &'a DataType, offset: usize, len: usize) -> Self::Seg;
        fn get(seg: &Self::Seg, i: usize) -> Self;
        /// Reads segment row `i` (not null) from the row view's slot; `None` on a dtype mismatch.
        fn from_slot(slot: SlotData<'a>, i: usize) -> Option<Self>;
        /// Whether the type is read from the row view's [`Fast`] slices (then `from_fast`, not
        /// `from_slot`, is its no-null read).
        const FAST: bool = false;
        /// Reads segment row `i` from the fast slices; `None` when the column is not there.
        #[inline(always)]
        fn from_fast(fast: &Fast<'a>, i: usize) -> Option<Self> {
            let _ = (fast, i);
            None
        }
        /// The value of a null: `Some(None)` for `Option` types, `None` for the others.
        fn null() -> Option<Self>;
    }
}

/// Behind [`FromColumns`](crate::FromColumns): how a tuple of values is read from columns.
pub(crate) mod columns {
    use std::ops::Range;

    use polars::prelude::*;

    use crate::Result;
    use crate::cell::ColumnReader;

    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be read from {N} columns",
        note = "the typed path reads one supported value per name, as a tuple with one element per column: `[\"x\", \"k\"]` with `|(x, k): (f64, i64)|`, `[\"x\"]` with `|x: f64|`; annotate the closure's argument"
    )]
    pub trait Sealed<'a, const N: usize>: Sized {
        type Segs;
        fn readers(df: &'a DataFrame, names: [&str; N]) -> Result<[ColumnReader<'a>; N]>;
        fn segs(readers: &[ColumnReader<'a>; N], rows: Range<usize>) -> Self::Segs;
        fn get(segs: &Self::Segs, i: usize) -> Self;
    }
}

/// Behind [`ColumnValue`](crate::ColumnValue): how a value is written into a column.
pub(crate) mod value {
    use polars::prelude::*;

    /// Builds one output array per block without going through `AnyValue`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a column value: a row closure must return one of the supported types",
        label = "returned here",
        note = "supported: f64, f32, i64, i32, u64, u32, bool, String, &'static str, and Option<T> of these; with feature `dtypes` also i16, i8, u16, u8, and chrono's NaiveDate, NaiveDateTime, DateTime<Utc>, TimeDelta",
        note = "for a string borrowed from the row (`row.str(..)?`), return `.to_owned()`; annotate a typed closure's argument, e.g. `|(x, k): (f64, i64)|`"
    )]
    pub trait Sealed: Sized {
        type Builder: Send;
        fn dtype() -> DataType;
        fn builder(capacity: usize) -> Self::Builder;
        fn push(builder: &mut Self::Builder, value: Self);
        /// Values pushed so far (on a panic, the failing row is the next one).
        fn len(builder: &Self::Builder) -> usize;
        /// Appends many values; numeric builders let `Vec::extend` size and vectorise the loop.
        #[inline(always)]
        fn extend(builder: &mut Self::Builder, values: impl Iterator<Item = Self>) {
            for value in values {
                Self::push(builder, value);
            }
        }
        fn finish(builder: Self::Builder, name: PlSmallStr) -> Series;
        /// The same dtype with nulls: `Option<Self>`, or `Self` if it already is an `Option`.
        type Nullable: Sealed + Send;
        /// This value as a `Nullable`.
        fn some(self) -> Self::Nullable;
        /// A null `Nullable`.
        fn null() -> Self::Nullable;
    }
}

/// Behind [`RowOutput`](crate::RowOutput): how a value or tuple is written into output columns.
pub(crate) mod rows {
    use polars::prelude::*;

    /// Builds a row closure's output columns, one builder per column.
    pub trait Sealed: Sized {
        type Builders: Send;
        fn builders(capacity: usize) -> Self::Builders;
        fn push(builders: &mut Self::Builders, value: Self);
        /// Appends every value: for one column, a loop the compiler can vectorise.
        #[inline(always)]
        fn extend(builders: &mut Self::Builders, values: impl Iterator<Item = Self>) {
            for value in values {
                Self::push(builders, value);
            }
        }
        /// Values pushed so far (on a panic, the failing row is the next one).
        fn len(builders: &Self::Builders) -> usize;
        fn finish(builders: Self::Builders, names: &[PlSmallStr]) -> Vec<Series>;
        /// The output columns' dtypes, in order.
        fn dtypes() -> Vec<DataType>;
        /// The same columns with nulls (`Option`s).
        type Nullable: Sealed + Send;
        fn some(self) -> Self::Nullable;
        fn null() -> Self::Nullable;
    }
}

/// Behind [`OutputNames`](crate::OutputNames): the names of a closure's output columns.
pub(crate) mod names {
    use polars::prelude::*;

    /// The names, one per output column.
    pub trait Sealed<U> {
        fn names(&self) -> Vec<PlSmallStr>;
    }
}
