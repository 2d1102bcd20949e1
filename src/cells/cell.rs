//! Typed reads of column values: the element types a row getter or a typed tuple can read, and how
//! each is read from its Arrow arrays (downcast once per segment, never per row).

use std::ops::Range;

use polars::prelude::*;
use polars_arrow::array::{Array, BooleanArray, PrimitiveArray, Utf8ViewArray};
use polars_arrow::bitmap::Bitmap;
#[cfg(feature = "dtypes")]
use polars_core::datatypes::CategoricalMapping;

use crate::error::{Error, Result};
pub(crate) use crate::sealed::{cell as sealed, columns as columns_sealed};

/// A value that can be read from one cell of a column: by a row getter
/// ([`Row::get`](crate::Row::get)) or as an element of a typed tuple
/// ([`par_apply_columns`](crate::DataFrameParApply::par_apply_columns)).
///
/// | type | column dtype | a null gives |
/// |---|---|---|
/// | `f64`, `f32` | `Float64`, `Float32` | [`Error::NullValue`] |
/// | `i64`, `i32`, `u64`, `u32` | `Int64`, `Int32`, `UInt64`, `UInt32` | [`Error::NullValue`] |
/// | `bool` | `Boolean` | [`Error::NullValue`] |
/// | `&str` | `String` | [`Error::NullValue`] |
/// | `i16`, `i8`, `u16`, `u8` (feature `dtypes`) | `Int16`, `Int8`, `UInt16`, `UInt8` | [`Error::NullValue`] |
/// | `chrono::NaiveDate` (feature `dtypes`) | `Date` | [`Error::NullValue`] |
/// | `chrono::NaiveDateTime` (feature `dtypes`) | `Datetime` of any unit, no time zone | [`Error::NullValue`] |
/// | `chrono::DateTime<Utc>` (feature `dtypes`) | `Datetime` of any unit with a time zone (the instant) | [`Error::NullValue`] |
/// | `chrono::TimeDelta` (feature `dtypes`) | `Duration` of any unit | [`Error::NullValue`] |
/// | `Option<T>` of any of these | the same | `None` |
///
/// Dtypes must match exactly: no implicit casts (an `Int32` column is not read as `i64`).
/// The trait is sealed.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
///
/// let df = df!("n" => [Some(1i64), None])?;
/// let out = df.par_apply_rows("filled", |row| Ok(row.get::<Option<i64>>("n")?.unwrap_or(-1)))?;
/// assert_eq!(out.column("filled")?.i64()?.get(1), Some(-1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be read from a column",
    note = "supported: f64, f32, i64, i32, u64, u32, bool, &str, and Option<T> of these; with feature `dtypes` also i16, i8, u16, u8, and chrono's NaiveDate, NaiveDateTime, DateTime<Utc>, TimeDelta (dtypes must match exactly: cast the column first)"
)]
pub trait FromCell<'a>: Sized + sealed::Sealed<'a> {}

impl<'a, T: sealed::Sealed<'a>> FromCell<'a> for T {}

/// One column's data over one segment (a row range inside a single Arrow array), as the row view
/// holds it.
#[derive(Debug, Clone, Copy)]
pub enum SlotData<'a> {
    F64(&'a [f64]),
    F32(&'a [f32]),
    I64(&'a [i64]),
    I32(&'a [i32]),
    U64(&'a [u64]),
    U32(&'a [u32]),
    #[cfg(feature = "dtypes")]
    I16(&'a [i16]),
    #[cfg(feature = "dtypes")]
    I8(&'a [i8]),
    #[cfg(feature = "dtypes")]
    U16(&'a [u16]),
    #[cfg(feature = "dtypes")]
    U8(&'a [u8]),
    #[cfg(feature = "dtypes")]
    Date(&'a [i32]),
    /// Values, unit, and whether the column has a time zone.
    #[cfg(feature = "dtypes")]
    Datetime(&'a [i64], TimeUnit, bool),
    #[cfg(feature = "dtypes")]
    Duration(&'a [i64], TimeUnit),
    Bool(&'a BooleanArray, usize),
    Str(&'a Utf8ViewArray, usize),
    /// A categorical (or enum) column, read as its strings.
    #[cfg(feature = "dtypes")]
    Cat(StrSeg<'a>),
    Other,
}

/// The values of a column without nulls in the segment, for the two dtypes read most often, as
/// plain slices: a read checks only the index (an empty slice for any other column).
#[derive(Debug, Clone, Copy)]
pub struct Fast<'a> {
    pub f64s: &'a [f64],
    pub i64s: &'a [i64],
}

impl<'a> Fast<'a> {
    pub const EMPTY: Self = Fast {
        f64s: &[],
        i64s: &[],
    };

    /// The fast slices of a column's `data`.
    pub fn of(data: SlotData<'a>) -> Self {
        match data {
            SlotData::F64(f64s) => Fast {
                f64s,
                ..Fast::EMPTY
            },
            SlotData::I64(i64s) => Fast {
                i64s,
                ..Fast::EMPTY
            },
            _ => Fast::EMPTY,
        }
    }
}

impl<'a> SlotData<'a> {
    /// Views `rows` (global) of `series` (which must not cross an Arrow chunk boundary), with the
    /// validity bitmap and its offset when the segment's array has nulls.
    pub(crate) fn new(
        series: &'a Series,
        rows: Range<usize>,
    ) -> (Self, Option<(&'a Bitmap, usize)>) {
        let (array, offset) = locate(series.chunks(), rows.start);
        let len = rows.len();
        let validity = array
            .validity()
            .filter(|_| array.null_count() > 0)
            .map(|v| (v, offset));
        fn prim<T: polars_arrow::types::NativeType>(a: &dyn Array, off: usize, len: usize) -> &[T] {
            let a = a
                .as_any()
                .downcast_ref::<PrimitiveArray<T>>()
                .expect("dtype checked");
            &a.values()[off..off + len]
        }
        let a = array.as_ref();
        let data = match series.dtype() {
            DataType::Float64 => SlotData::F64(prim(a, offset, len)),
            DataType::Float32 => SlotData::F32(prim(a, offset, len)),
            DataType::Int64 => SlotData::I64(prim(a, offset, len)),
            DataType::Int32 => SlotData::I32(prim(a, offset, len)),
            DataType::UInt64 => SlotData::U64(prim(a, offset, len)),
            DataType::UInt32 => SlotData::U32(prim(a, offset, len)),
            #[cfg(feature = "dtypes")]
            DataType::Int16 => SlotData::I16(prim(a, offset, len)),
            #[cfg(feature = "dtypes")]
            DataType::Int8 => SlotData::I8(prim(a, offset, len)),
            #[cfg(feature = "dtypes")]
            DataType::UInt16 => SlotData::U16(prim(a, offset, len)),
            #[cfg(feature = "dtypes")]
            DataType::UInt8 => SlotData::U8(prim(a, offset, len)),
            #[cfg(feature = "dtypes")]
            DataType::Date => SlotData::Date(prim(a, offset, len)),
            #[cfg(feature = "dtypes")]
            DataType::Datetime(unit, zone) => {
                SlotData::Datetime(prim(a, offset, len), *unit, zone.is_some())
            }
            #[cfg(feature = "dtypes")]
            DataType::Duration(unit) => SlotData::Duration(prim(a, offset, len), *unit),
            DataType::Boolean => SlotData::Bool(downcast(a), offset),
            DataType::String => SlotData::Str(downcast(a), offset),
            #[cfg(feature = "dtypes")]
            DataType::Categorical(..) | DataType::Enum(..) => {
                match StrSeg::new(a, series.dtype(), offset) {
                    Some(seg) => SlotData::Cat(seg),
                    None => SlotData::Other,
                }
            }
            _ => SlotData::Other,
        };
        (data, validity)
    }
}

fn downcast<A: 'static>(a: &dyn Array) -> &A {
    a.as_any().downcast_ref::<A>().expect("dtype checked")
}

/// The array holding global row `row`, and the row's offset in it.
fn locate(chunks: &[ArrayRef], row: usize) -> (&ArrayRef, usize) {
    let mut start = 0;
    for chunk in chunks {
        if row < start + chunk.len() {
            return (chunk, row - start);
        }
        start += chunk.len();
    }
    unreachable!("row {row} beyond the column's {start} rows")
}

/// The sorted global row indices (after 0) where an Arrow chunk of any of `columns` starts: the
/// points where a block must be split so that every column is one array within each piece.
pub(crate) fn chunk_boundaries<'s>(columns: impl IntoIterator<Item = &'s Series>) -> Vec<usize> {
    let mut boundaries = Vec::new();
    for series in columns {
        let mut start = 0;
        for len in series.chunk_lengths() {
            if start > 0 {
                boundaries.push(start);
            }
            start += len;
        }
    }
    boundaries.sort_unstable();
    boundaries.dedup();
    boundaries
}

/// The first null in `series`, if any.
fn first_null(series: &Series) -> Option<usize> {
    let mut start = 0;
    for chunk in series.chunks() {
        if chunk.null_count() > 0
            && let Some(i) = chunk
                .validity()
                .and_then(|v| v.iter().position(|valid| !valid))
        {
            return Some(start + i);
        }
        start += chunk.len();
    }
    None
}

macro_rules! primitive_cell {
    ($($t:ty => $variant:ident, $dtype:expr $(, $fast:ident)?;)*) => {$(
        impl<'a> sealed::Sealed<'a> for $t {
            type Seg = &'a [$t];
            const NULLABLE: bool = false;
            fn dtype() -> DataType { $dtype }
            #[inline(always)]
            fn seg(array: &'a dyn Array, _: &'a DataType, offset: usize, len: usize) -> Self::Seg {
                &downcast::<PrimitiveArray<$t>>(array).values()[offset..offset + len]
            }
            #[inline(always)]
            fn get(seg: &Self::Seg, i: usize) -> Self { seg[i] }
            #[inline(always)]
            fn from_slot(slot: SlotData<'a>, i: usize) -> Option<Self> {
                match slot { SlotData::$variant(v) => v.get(i).copied(), _ => None }
            }
            $(
                const FAST: bool = true;
                #[inline(always)]
                fn from_fast(fast: &Fast<'a>, i: usize) -> Option<Self> { fast.$fast.get(i).copied() }
            )?
            fn null() -> Option<Self> { None }
        }

        impl<'a> sealed::Sealed<'a> for Option<$t> {
            type Seg = (&'a [$t], Option<&'a Bitmap>, usize);
            const NULLABLE: bool = true;
            fn dtype() -> DataType { $dtype }
            #[inline(always)]
            fn seg(array: &'a dyn Array, _: &'a DataType, offset: usize, len: usize) -> Self::Seg {
                let a = downcast::<PrimitiveArray<$t>>(array);
                (&a.values()[offset..offset + len], a.validity().filter(|_| a.null_count() > 0), offset)
            }
            #[inline(always)]
            fn get(seg: &Self::Seg, i: usize) -> Self {
                let valid = seg.1.is_none_or(|v| v.get_bit(seg.2 + i));
                valid.then(|| seg.0[i])
            }
            #[inline(always)]
            fn from_slot(slot: SlotData<'a>, i: usize) -> Option<Self> {
                match slot { SlotData::$variant(v) => v.get(i).map(|v| Some(*v)), _ => None }
            }
            $(
                const FAST: bool = true;
                #[inline(always)]
                fn from_fast(fast: &Fast<'a>, i: usize) -> Option<Self> {
                    fast.$fast.get(i).map(|v| Some(*v))
                }
            )?
            fn null() -> Option<Self> { Some(None) }
        }
    )*};
}

primitive_cell! {
    f64 => F64, DataType::Float64, f64s;
    f32 => F32, DataType::Float32;
    i64 => I64, DataType::Int64, i64s;
    i32 => I32, DataType::Int32;
    u64 => U64, DataType::UInt64;
    u32 => U32, DataType::UInt32;
}

#[cfg(feature = "dtypes")]
primitive_cell! {
    i16 => I16, DataType::Int16;
    i8 => I8, DataType::Int8;
    u16 => U16, DataType::UInt16;
    u8 => U8, DataType::UInt8;
}

macro_rules! array_cell {
    ($($t:ty, $opt:ty => $array:ty, $variant:ident, $dtype:expr;)*) => {$(
        impl<'a> sealed::Sealed<'a> for $t {
            type Seg = (&'a $array, usize);
            const NULLABLE: bool = false;
            fn dtype() -> DataType { $dtype }
            #[inline(always)]
            fn seg(array: &'a dyn Array, _: &'a DataType, offset: usize, _len: usize) -> Self::Seg {
                (downcast::<$array>(array), offset)
            }
            #[inline(always)]
            fn get(seg: &Self::Seg, i: usize) -> Self { seg.0.value(seg.1 + i) }
            #[inline(always)]
            fn from_slot(slot: SlotData<'a>, i: usize) -> Option<Self> {
                match slot { SlotData::$variant(a, off) => Some(a.value(off + i)), _ => None }
            }
            fn null() -> Option<Self> { None }
        }

        impl<'a> sealed::Sealed<'a> for $opt {
            type Seg = (&'a $array, usize);
            const NULLABLE: bool = true;
            fn dtype() -> DataType { $dtype }
            #[inline(always)]
            fn seg(array: &'a dyn Array, _: &'a DataType, offset: usize, _len: usize) -> Self::Seg {
                (downcast::<$array>(array), offset)
            }
            #[inline(always)]
            fn get(seg: &Self::Seg, i: usize) -> Self { seg.0.get(seg.1 + i) }
            #[inline(always)]
            fn from_slot(slot: SlotData<'a>, i: usize) -> Option<Self> {
                match slot { SlotData::$variant(a, off) => Some(Some(a.value(off + i))), _ => None }
            }
            fn null() -> Option<Self> { Some(None) }
        }
    )*};
}

array_cell! {
    bool, Option<bool> => BooleanArray, Bool, DataType::Boolean;
}

/// A segment of a string column: a `String` column's views or, with `dtypes`, a categorical (or
/// enum) column's codes and the mapping that turns them into strings. Either way a read borrows
/// from the frame (its array, or the mapping its dtype holds): no string is copied.
#[derive(Clone, Copy)]
pub enum StrSeg<'a> {
    Utf8(&'a Utf8ViewArray, usize),
    #[cfg(feature = "dtypes")]
    Cat8(&'a PrimitiveArray<u8>, usize, &'a CategoricalMapping),
    #[cfg(feature = "dtypes")]
    Cat16(&'a PrimitiveArray<u16>, usize, &'a CategoricalMapping),
    #[cfg(feature = "dtypes")]
    Cat32(&'a PrimitiveArray<u32>, usize, &'a CategoricalMapping),
}

impl std::fmt::Debug for StrSeg<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StrSeg::Utf8(..) => "StrSeg::Utf8",
            #[cfg(feature = "dtypes")]
            _ => "StrSeg::Categorical",
        })
    }
}

impl<'a> StrSeg<'a> {
    /// The segment of `array` (of a column of `dtype`) from `offset` on; `None` if it is neither
    /// a string nor a categorical array.
    fn new(array: &'a dyn Array, dtype: &'a DataType, offset: usize) -> Option<Self> {
        let any = array.as_any();
        if let Some(a) = any.downcast_ref::<Utf8ViewArray>() {
            return Some(StrSeg::Utf8(a, offset));
        }
        #[cfg(feature = "dtypes")]
        if let DataType::Categorical(_, mapping) | DataType::Enum(_, mapping) = dtype {
            let mapping: &'a CategoricalMapping = mapping;
            if let Some(a) = any.downcast_ref::<PrimitiveArray<u8>>() {
                return Some(StrSeg::Cat8(a, offset, mapping));
            }
            if let Some(a) = any.downcast_ref::<PrimitiveArray<u16>>() {
                return Some(StrSeg::Cat16(a, offset, mapping));
            }
            if let Some(a) = any.downcast_ref::<PrimitiveArray<u32>>() {
                return Some(StrSeg::Cat32(a, offset, mapping));
            }
        }
        let _ = dtype;
        None
    }

    /// Row `i`'s string (its validity is checked by the caller).
    #[inline(always)]
    fn value(&self, i: usize) -> &'a str {
        match *self {
            StrSeg::Utf8(a, off) => a.value(off + i),
            // A code is always in its column's mapping (Polars builds both together).
            #[cfg(feature = "dtypes")]
            StrSeg::Cat8(a, off, m) => m.cat_to_str(a.value(off + i).into()).unwrap_or_default(),
            #[cfg(feature = "dtypes")]
            StrSeg::Cat16(a, off, m) => m.cat_to_str(a.value(off + i).into()).unwrap_or_default(),
            #[cfg(feature = "dtypes")]
            StrSeg::Cat32(a, off, m) => m.cat_to_str(a.value(off + i)).unwrap_or_default(),
        }
    }

    /// Row `i`'s string, or `None` for a null.
    #[inline(always)]
    fn get(&self, i: usize) -> Option<&'a str> {
        let valid = match *self {
            StrSeg::Utf8(a, off) => a.is_valid(off + i),
            #[cfg(feature = "dtypes")]
            StrSeg::Cat8(a, off, _) => a.is_valid(off + i),
            #[cfg(feature = "dtypes")]
            StrSeg::Cat16(a, off, _) => a.is_valid(off + i),
            #[cfg(feature = "dtypes")]
            StrSeg::Cat32(a, off, _) => a.is_valid(off + i),
        };
        valid.then(|| self.value(i))
    }
}

/// Whether a column of `dtype` reads as strings: `String`, and with `dtypes` categorical and enum
/// columns.
fn is_string(dtype: &DataType) -> bool {
    match dtype {
        DataType::String => true,
        #[cfg(feature = "dtypes")]
        DataType::Categorical(..) | DataType::Enum(..) => true,
        _ => false,
    }
}

macro_rules! str_cell {
    ($($t:ty, $nullable:literal, |$seg:ident, $i:ident| $get:expr, $null:expr;)*) => {$(
        impl<'a> sealed::Sealed<'a> for $t {
            type Seg = StrSeg<'a>;
            const NULLABLE: bool = $nullable;
            fn dtype() -> DataType { DataType::String }
            #[inline]
            fn accepts(dtype: &DataType) -> bool { is_string(dtype) }
            #[inline(always)]
            fn seg(array: &'a dyn Array, dtype: &'a DataType, offset: usize, _len: usize) -> Self::Seg {
                StrSeg::new(array, dtype, offset).expect("dtype checked")
            }
            #[inline(always)]
            fn get($seg: &Self::Seg, $i: usize) -> Self { $get }
            #[inline(always)]
            fn from_slot(slot: SlotData<'a>, i: usize) -> Option<Self> {
                let $i = i;
                match slot {
                    SlotData::Str(a, off) => {
                        let $seg = &StrSeg::Utf8(a, off);
                        Some($get)
                    }
                    #[cfg(feature = "dtypes")]
                    SlotData::Cat(seg) => {
                        let $seg = &seg;
                        Some($get)
                    }
                    _ => None,
                }
            }
            fn null() -> Option<Self> { $null }
        }
    )*};
}

// The row view reads a slot only for a valid row, so `value` is enough there; typed `Option`
// reads check validity themselves.
str_cell! {
    &'a str, false, |seg, i| seg.value(i), None;
    Option<&'a str>, true, |seg, i| seg.get(i), Some(None);
}

/// One column of the frame, checked for a typed read: its series and where its chunks start.
#[derive(Debug)]
pub struct ColumnReader<'a> {
    series: &'a Series,
}

impl<'a> ColumnReader<'a> {
    /// Resolves `name` for reads as `T`, checking existence, dtype and (for non-nullable `T`)
    /// nulls, before any work starts.
    pub(crate) fn new<T: FromCell<'a>>(df: &'a DataFrame, name: &str) -> Result<Self> {
        let column = df.column(name).map_err(|_| Error::ColumnNotFound {
            column: name.to_owned(),
            row: None,
        })?;
        if !T::accepts(column.dtype()) {
            return Err(Error::DtypeMismatch {
                column: name.to_owned(),
                row: None,
                expected: Box::new(T::expected(column.dtype())),
                found: Box::new(column.dtype().clone()),
            });
        }
        let series = column.as_materialized_series();
        T::check(series).map_err(|why| {
            Error::Polars(PolarsError::ComputeError(
                format!("column {name:?}: {why}").into(),
            ))
        })?;
        if !T::NULLABLE
            && let Some(row) = first_null(series)
        {
            return Err(Error::NullValue {
                column: name.to_owned(),
                row,
            });
        }
        Ok(ColumnReader { series })
    }

    pub(crate) fn series(&self) -> &'a Series {
        self.series
    }

    /// The view of `rows` (global, inside one Arrow chunk) for reads as `T`.
    #[inline]
    pub(crate) fn seg<T: FromCell<'a>>(&self, rows: Range<usize>) -> T::Seg {
        let (array, offset) = locate(self.series.chunks(), rows.start);
        T::seg(array.as_ref(), self.series.dtype(), offset, rows.len())
    }
}

/// A tuple of column values read together by the typed fast path, with the names as an array of
/// the same length: `f64` with `["x"]`, `(f64, i64)` with `["x", "k"]`, up to six columns.
///
/// Each element is a [`FromCell`] type. The trait is sealed.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
///
/// let df = df!("x" => [1.5, 2.5], "k" => [2i64, 4], "s" => ["a", "bb"])?;
/// let out = df.par_apply_columns("y", ["x", "k", "s"], |(x, k, s): (f64, i64, &str)| {
///     x * k as f64 + s.len() as f64
/// })?;
/// assert_eq!(out.column("y")?.f64()?.get(1), Some(12.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be read from {N} columns",
    note = "the typed path reads one supported value per name, as a tuple with one element per column: `[\"x\", \"k\"]` with `|(x, k): (f64, i64)|`, `[\"x\"]` with `|x: f64|`; annotate the closure's argument"
)]
pub trait FromColumns<'a, const N: usize>: Sized + columns_sealed::Sealed<'a, N> {}

impl<'a, const N: usize, T: columns_sealed::Sealed<'a, N>> FromColumns<'a, N> for T {}

macro_rules! single_column {
    ($($t:ty),*) => {$(
        impl<'a> $crate::cell::columns_sealed::Sealed<'a, 1> for $t {
            type Segs = <$t as $crate::cell::sealed::Sealed<'a>>::Seg;
            fn readers(
                df: &'a polars::prelude::DataFrame,
                names: [&str; 1],
            ) -> $crate::Result<[$crate::cell::ColumnReader<'a>; 1]> {
                Ok([$crate::cell::ColumnReader::new::<$t>(df, names[0])?])
            }
            #[inline(always)]
            fn segs(
                readers: &[$crate::cell::ColumnReader<'a>; 1],
                rows: std::ops::Range<usize>,
            ) -> Self::Segs {
                readers[0].seg::<$t>(rows)
            }
            #[inline(always)]
            fn get(segs: &Self::Segs, i: usize) -> Self {
                <$t as $crate::cell::sealed::Sealed<'a>>::get(segs, i)
            }
        }
    )*};
}

/// Also used for the temporal cells (feature `dtypes`).
#[cfg_attr(not(feature = "dtypes"), allow(unused_imports))]
pub(crate) use single_column;

single_column!(
    f64,
    f32,
    i64,
    i32,
    u64,
    u32,
    bool,
    &'a str,
    Option<f64>,
    Option<f32>,
    Option<i64>,
    Option<i32>,
    Option<u64>,
    Option<u32>,
    Option<bool>,
    Option<&'a str>
);

#[cfg(feature = "dtypes")]
single_column!(
    i16,
    i8,
    u16,
    u8,
    Option<i16>,
    Option<i8>,
    Option<u16>,
    Option<u8>
);

macro_rules! tuple_columns {
    ($n:literal; $($t:ident $i:tt),*) => {
        impl<'a, $($t: FromCell<'a>),*> columns_sealed::Sealed<'a, $n> for ($($t,)*) {
            type Segs = ($($t::Seg,)*);
            fn readers(df: &'a DataFrame, names: [&str; $n]) -> Result<[ColumnReader<'a>; $n]> {
                Ok([$(ColumnReader::new::<$t>(df, names[$i])?),*])
            }
            #[inline(always)]
            fn segs(readers: &[ColumnReader<'a>; $n], rows: Range<usize>) -> Self::Segs {
                ($(readers[$i].seg::<$t>(rows.clone()),)*)
            }
            #[inline(always)]
            fn get(segs: &Self::Segs, i: usize) -> Self {
                ($($t::get(&segs.$i, i),)*)
            }
        }
    };
}

tuple_columns!(1; A 0);
tuple_columns!(2; A 0, B 1);
tuple_columns!(3; A 0, B 1, C 2);
tuple_columns!(4; A 0, B 1, C 2, D 3);
tuple_columns!(5; A 0, B 1, C 2, D 3, E 4);
tuple_columns!(6; A 0, B 1, C 2, D 3, E 4, F 5);
