//! Output values: the closure's return type picks the new column's dtype.

use polars::prelude::*;
use polars_arrow::array::MutableBinaryViewArray;
use polars_arrow::bitmap::MutableBitmap;

pub(crate) use crate::sealed::{names as names_sealed, rows as rows_sealed, value as sealed};

/// A value a row closure may return; its type picks the dtype of the new column.
///
/// | closure returns | column dtype |
/// |---|---|
/// | `f64`, `f32` | `Float64`, `Float32` |
/// | `i64`, `i32`, `u64`, `u32` | `Int64`, `Int32`, `UInt64`, `UInt32` |
/// | `bool` | `Boolean` |
/// | `String`, `&'static str` | `String` |
/// | `i16`, `i8`, `u16`, `u8` (feature `dtypes`) | `Int16`, `Int8`, `UInt16`, `UInt8` |
/// | `chrono::NaiveDate` (feature `dtypes`) | `Date` |
/// | `chrono::NaiveDateTime` (feature `dtypes`) | `Datetime(Microseconds, None)` |
/// | `chrono::DateTime<Utc>` (feature `dtypes`) | `Datetime(Microseconds, "UTC")` |
/// | `chrono::TimeDelta` (feature `dtypes`) | `Duration(Microseconds)` (saturating beyond ±292,000 years) |
/// | `Option<T>` of any of these | the same dtype, `None` becomes null |
///
/// The trait is sealed: it cannot be implemented outside this crate.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
///
/// let df = df!("x" => [1.0, -2.0, 4.0])?;
/// let out = df.par_apply_rows("sqrt", |row| {
///     let x = row.f64("x")?;
///     Ok((x >= 0.0).then(|| x.sqrt())) // Option<f64>: negative inputs become null
/// })?;
/// assert_eq!(out.column("sqrt")?.dtype(), &DataType::Float64);
/// assert_eq!(out.column("sqrt")?.null_count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a column value: a row closure must return one of the supported types",
    label = "returned here",
    note = "supported: f64, f32, i64, i32, u64, u32, bool, String, &'static str, and Option<T> of these; with feature `dtypes` also i16, i8, u16, u8, and chrono's NaiveDate, NaiveDateTime, DateTime<Utc>, TimeDelta",
    note = "for a string borrowed from the row (`row.str(..)?`), return `.to_owned()`; annotate a typed closure's argument, e.g. `|(x, k): (f64, i64)|`"
)]
pub trait ColumnValue: Send + Sized + sealed::Sealed {}

/// `Nullable` of a plain type (`Option<T>`) and of its `Option` (itself).
macro_rules! nullable {
    () => {
        type Nullable = Option<Self>;
        fn some(self) -> Self::Nullable {
            Some(self)
        }
        fn null() -> Self::Nullable {
            None
        }
    };
    (option) => {
        type Nullable = Self;
        fn some(self) -> Self::Nullable {
            self
        }
        fn null() -> Self::Nullable {
            None
        }
    };
}

impl<T: sealed::Sealed + Send> ColumnValue for T {}

macro_rules! numeric_value {
    ($($native:ty => $pl:ty, $dtype:expr;)*) => {$(
        impl sealed::Sealed for $native {
            type Builder = Vec<$native>;
            fn dtype() -> DataType {
                $dtype
            }
            fn builder(capacity: usize) -> Self::Builder {
                Vec::with_capacity(capacity)
            }
            #[inline(always)]
            fn push(builder: &mut Self::Builder, value: Self) {
                builder.push(value);
            }
            fn len(builder: &Self::Builder) -> usize {
                builder.len()
            }
            #[inline(always)]
            fn extend(builder: &mut Self::Builder, values: impl Iterator<Item = Self>) {
                // On a panic inside `values`, `Vec::extend` keeps the length of what it wrote.
                builder.extend(values);
            }
            fn finish(builder: Self::Builder, name: PlSmallStr) -> Series {
                ChunkedArray::<$pl>::from_vec(name, builder).into_series()
            }
            nullable!();
        }

        impl sealed::Sealed for Option<$native> {
            type Builder = (Vec<$native>, MutableBitmap);
            fn dtype() -> DataType {
                $dtype
            }
            fn builder(capacity: usize) -> Self::Builder {
                (Vec::with_capacity(capacity), MutableBitmap::with_capacity(capacity))
            }
            #[inline(always)]
            fn push(builder: &mut Self::Builder, value: Self) {
                builder.0.push(value.unwrap_or_default());
                builder.1.push(value.is_some());
            }
            fn len(builder: &Self::Builder) -> usize {
                builder.0.len()
            }
            fn finish(builder: Self::Builder, name: PlSmallStr) -> Series {
                ChunkedArray::<$pl>::from_vec_validity(name, builder.0, builder.1.into())
                    .into_series()
            }
            nullable!(option);
        }
    )*};
}

numeric_value! {
    f64 => Float64Type, DataType::Float64;
    f32 => Float32Type, DataType::Float32;
    i64 => Int64Type, DataType::Int64;
    i32 => Int32Type, DataType::Int32;
    u64 => UInt64Type, DataType::UInt64;
    u32 => UInt32Type, DataType::UInt32;
}

#[cfg(feature = "dtypes")]
numeric_value! {
    i16 => Int16Type, DataType::Int16;
    i8 => Int8Type, DataType::Int8;
    u16 => UInt16Type, DataType::UInt16;
    u8 => UInt8Type, DataType::UInt8;
}

macro_rules! bool_value {
    ($($t:ty $(, $option:ident)?;)*) => {$(
        impl sealed::Sealed for $t {
            type Builder = Vec<$t>;
            fn dtype() -> DataType {
                DataType::Boolean
            }
            fn builder(capacity: usize) -> Self::Builder {
                Vec::with_capacity(capacity)
            }
            #[inline(always)]
            fn push(builder: &mut Self::Builder, value: Self) {
                builder.push(value);
            }
            fn len(builder: &Self::Builder) -> usize {
                builder.len()
            }
            fn finish(builder: Self::Builder, name: PlSmallStr) -> Series {
                BooleanChunked::new(name, builder.as_slice()).into_series()
            }
            nullable!($($option)?);
        }
    )*};
}

bool_value! {
    bool;
    Option<bool>, option;
}

macro_rules! string_value {
    ($($t:ty $(, $option:ident)? => |$b:ident, $v:ident| $push:expr;)*) => {$(
        impl sealed::Sealed for $t {
            type Builder = MutableBinaryViewArray<str>;
            fn dtype() -> DataType {
                DataType::String
            }
            fn builder(capacity: usize) -> Self::Builder {
                MutableBinaryViewArray::with_capacity(capacity)
            }
            #[inline(always)]
            fn push($b: &mut Self::Builder, $v: Self) {
                $push
            }
            fn len(builder: &Self::Builder) -> usize {
                builder.len()
            }
            fn finish(builder: Self::Builder, name: PlSmallStr) -> Series {
                StringChunked::with_chunk(name, builder.freeze()).into_series()
            }
            nullable!($($option)?);
        }
    )*};
}

string_value! {
    String => |b, v| b.push_value(v);
    &'static str => |b, v| b.push_value(v);
    Option<String>, option => |b, v| b.push(v);
    Option<&'static str>, option => |b, v| b.push(v);
}

/// What a row closure returns: one [`ColumnValue`] (one new column, named by a `&str`), or a
/// tuple of two to four of them (one new column per element, named by an array of as many names),
/// as pandas' `apply(..., result_type="expand")`.
///
/// The trait is sealed.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
///
/// let df = df!("x" => [1.0, 4.0, 9.0])?;
/// let out = df.par_apply_rows(["root", "half"], |row| {
///     let x = row.f64("x")?;
///     Ok((x.sqrt(), (x / 2.0).round() as i64))
/// })?;
/// assert_eq!(out.column("root")?.f64()?.get(2), Some(3.0));
/// assert_eq!(out.column("half")?.i64()?.get(1), Some(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a row closure's output",
    note = "return one column value (f64, i64, String, Option<..>, ...) with one name, or a tuple of 2 to 4 of them with an array of as many names: `[\"lo\", \"hi\"]` with `Ok((lo, hi))`"
)]
pub trait RowOutput: Send + Sized + rows_sealed::Sealed {}

impl<T: rows_sealed::Sealed + Send> RowOutput for T {}

/// The names of a row closure's new columns: a `&str` for one [`ColumnValue`], an array of
/// names for a tuple ([`RowOutput`]). The trait is sealed.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
///
/// let df = df!("s" => ["a-1", "b-2"])?;
/// let out = df.par_apply_rows(["key", "n"], |row| {
///     let (key, n) = row.str("s")?.split_once('-').ok_or("no dash")?;
///     Ok((key.to_owned(), n.parse::<i64>()?))
/// })?;
/// assert_eq!(out.column("key")?.str()?.get(1), Some("b"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot name the columns of a `{U}` output",
    note = "one name (`\"total\"`) for one value; an array of as many names as the tuple has elements (`[\"lo\", \"hi\"]` for `(f64, f64)`)"
)]
pub trait OutputNames<U>: names_sealed::Sealed<U> {}

impl<U, N: names_sealed::Sealed<U>> OutputNames<U> for N {}

impl<U: ColumnValue> rows_sealed::Sealed for U {
    type Builders = U::Builder;
    #[inline(always)]
    fn builders(capacity: usize) -> Self::Builders {
        U::builder(capacity)
    }
    #[inline(always)]
    fn push(builders: &mut Self::Builders, value: Self) {
        U::push(builders, value);
    }
    #[inline(always)]
    fn extend(builders: &mut Self::Builders, values: impl Iterator<Item = Self>) {
        <U as sealed::Sealed>::extend(builders, values);
    }
    #[inline(always)]
    fn len(builders: &Self::Builders) -> usize {
        <U as sealed::Sealed>::len(builders)
    }
    fn finish(builders: Self::Builders, names: &[PlSmallStr]) -> Vec<Series> {
        vec![U::finish(builders, names[0].clone())]
    }
    fn dtypes() -> Vec<DataType> {
        vec![<U as sealed::Sealed>::dtype()]
    }
    type Nullable = U::Nullable;
    fn some(self) -> Self::Nullable {
        <U as sealed::Sealed>::some(self)
    }
    fn null() -> Self::Nullable {
        <U as sealed::Sealed>::null()
    }
}

impl<U: ColumnValue> names_sealed::Sealed<U> for &str {
    fn names(&self) -> Vec<PlSmallStr> {
        vec![(*self).into()]
    }
}

macro_rules! tuple_output {
    ($n:literal; $($t:ident $i:tt),*) => {
        impl<$($t: ColumnValue),*> rows_sealed::Sealed for ($($t,)*) {
            type Builders = ($($t::Builder,)*);
            #[inline(always)]
            fn builders(capacity: usize) -> Self::Builders {
                ($($t::builder(capacity),)*)
            }
            #[inline(always)]
            fn push(builders: &mut Self::Builders, value: Self) {
                $($t::push(&mut builders.$i, value.$i);)*
            }
            #[inline(always)]
            fn len(builders: &Self::Builders) -> usize {
                <A as sealed::Sealed>::len(&builders.0)
            }
            fn finish(builders: Self::Builders, names: &[PlSmallStr]) -> Vec<Series> {
                vec![$($t::finish(builders.$i, names[$i].clone())),*]
            }
            fn dtypes() -> Vec<DataType> {
                vec![$(<$t as sealed::Sealed>::dtype()),*]
            }
            type Nullable = ($($t::Nullable,)*);
            fn some(self) -> Self::Nullable {
                ($(<$t as sealed::Sealed>::some(self.$i),)*)
            }
            fn null() -> Self::Nullable {
                ($(<$t as sealed::Sealed>::null(),)*)
            }
        }

        impl<$($t: ColumnValue),*> names_sealed::Sealed<($($t,)*)> for [&str; $n] {
            fn names(&self) -> Vec<PlSmallStr> {
                self.iter().map(|&name| name.into()).collect()
            }
        }
    };
}

tuple_output!(2; A 0, B 1);
tuple_output!(3; A 0, B 1, C 2);
tuple_output!(4; A 0, B 1, C 2, D 3);
