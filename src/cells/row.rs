//! The row view handed to row closures: typed getters by column name.

use std::cell::{Cell, OnceCell};
use std::ops::Range;

use polars::prelude::*;
use polars_arrow::bitmap::Bitmap;

use crate::cell::{FromCell, SlotData};
use crate::error::{BoxError, Error, Result};
use crate::plan::segments;

/// One row of the frame, as a row closure sees it: typed getters by column name.
///
/// Getters read the column's Arrow values directly: the column is looked up and downcast once per
/// block (and again only where an Arrow chunk boundary splits the block), never per row, and no
/// `AnyValue` is made. Repeated reads of the same names in the same order, the usual shape of a
/// closure, hit a cached slot by position.
///
/// Every getter fails with the global row index and the column name when the column is missing
/// ([`Error::ColumnNotFound`]), has another dtype ([`Error::DtypeMismatch`], no implicit casts), or
/// holds a null read through a non-`Option` getter ([`Error::NullValue`]).
///
/// A `&str` read from a row borrows the frame for the closure's call only: to return it as the
/// new column's value, return `row.str("name")?.to_owned()` (a `String`); returning the `&str`
/// itself is a lifetime error. A `Row` cannot be kept beyond its closure either.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
///
/// let df = df!("price" => [2.5, 4.0], "qty" => [4i64, 3], "city" => ["Oslo", "Rome"])?;
/// let out = df
///     .par_apply_rows("total", |row| Ok(row.f64("price")? * row.i64("qty")? as f64))?
///     .par_apply_rows("label", |row| Ok(format!("{}-{}", row.str("city")?, row.index())))?;
/// assert_eq!(out.column("total")?.f64()?.get(1), Some(12.0));
/// assert_eq!(out.column("label")?.str()?.get(1), Some("Rome-1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Row<'a> {
    segment: &'a RowSegment<'a>,
    offset: usize,
}

/// The rows of one block that lie inside a single Arrow chunk of every column, with the columns
/// read so far.
pub(crate) struct RowSegment<'a> {
    df: &'a DataFrame,
    rows: Range<usize>,
    /// Resolved columns in the order the closure first read them. Append-only, so reads need no
    /// borrow flag: a row's k-th getter call usually finds its column in slot k.
    slots: Box<[OnceCell<Slot<'a>>]>,
    resolved: Cell<usize>,
    cursor: Cell<usize>,
    /// Set when a getter of this segment returns an error (cold path), so that the error can be
    /// told from one raised elsewhere, e.g. by a nested call: see [`Row::attribute`].
    own_error: Cell<bool>,
}

impl std::fmt::Debug for RowSegment<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowSegment")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// Columns cached per segment at most. A closure reading more columns still works: the rest are
/// looked up on every read. Bounded so that tiny blocks of very wide frames stay cheap to set up.
const MAX_CACHED_COLUMNS: usize = 64;

/// Slots beyond the frame's width, for names that are not columns (kept so that a closure which
/// tolerates a missing column does not look it up on every row).
const SPARE_SLOTS: usize = 8;

/// A column resolved for this segment, under the name the closure asked for. Names are compared
/// by content: a name's address is no identity (a `String` built per row may reuse the address
/// of the previous row's, with other content).
struct Slot<'a> {
    /// The column's name (empty for a missing column).
    name: &'a str,
    /// The name asked for, when no column has it.
    missing: Option<Box<str>>,
    /// `None` when the column does not exist.
    dtype: Option<&'a DataType>,
    data: SlotData<'a>,
    validity: Option<(&'a Bitmap, usize)>,
}

/// Folds `f` over `rows` of `df`, one row view per run of rows between `boundaries` (the
/// columns' chunk boundaries), with each row's global index.
pub(crate) fn fold_row_views<A>(
    df: &DataFrame,
    boundaries: &[usize],
    rows: Range<usize>,
    init: A,
    mut f: impl FnMut(A, usize, &Row<'_>) -> Result<A>,
) -> Result<A> {
    let mut acc = init;
    for rows in segments(boundaries, rows) {
        let segment = RowSegment::new(df, rows.clone());
        for (offset, global) in rows.enumerate() {
            acc = f(acc, global, &segment.row(offset))?;
        }
    }
    Ok(acc)
}

impl<'a> RowSegment<'a> {
    pub(crate) fn new(df: &'a DataFrame, rows: Range<usize>) -> Self {
        RowSegment {
            df,
            rows,
            slots: (0..df.width().min(MAX_CACHED_COLUMNS) + SPARE_SLOTS)
                .map(|_| OnceCell::new())
                .collect(),
            resolved: Cell::new(0),
            cursor: Cell::new(0),
            own_error: Cell::new(false),
        }
    }

    /// The view of segment row `offset`.
    #[inline(always)]
    pub(crate) fn row(&'a self, offset: usize) -> Row<'a> {
        self.cursor.set(0);
        Row {
            segment: self,
            offset,
        }
    }

    /// The cached slot for `name`, or `None` when the cache is full.
    #[inline(always)]
    fn slot(&self, name: &str) -> Option<&Slot<'a>> {
        let position = self.cursor.get();
        self.cursor.set(position + 1);
        if let Some(slot) = self.slots.get(position).and_then(OnceCell::get)
            && same_name(slot.name, name)
            && slot.dtype.is_some()
        {
            return Some(slot);
        }
        self.find_or_resolve(name)
    }

    #[cold]
    #[inline(never)]
    fn find_or_resolve(&self, name: &str) -> Option<&Slot<'a>> {
        let resolved = &self.slots[..self.resolved.get()];
        if let Some(slot) = resolved
            .iter()
            .filter_map(OnceCell::get)
            .find(|s| s.missing.as_deref().unwrap_or(s.name) == name)
        {
            return Some(slot);
        }
        let cell = self.slots.get(self.resolved.get())?;
        self.resolved.set(self.resolved.get() + 1);
        Some(cell.get_or_init(|| self.resolve(name)))
    }

    fn resolve(&self, name: &str) -> Slot<'a> {
        match self.df.column(name) {
            Ok(column) => {
                let series = column.as_materialized_series();
                let (data, validity) = SlotData::new(series, self.rows.clone());
                Slot {
                    name: series.name().as_str(),
                    missing: None,
                    dtype: Some(series.dtype()),
                    data,
                    validity,
                }
            }
            Err(_) => Slot {
                name: "",
                missing: Some(name.into()),
                dtype: None,
                data: SlotData::Other,
                validity: None,
            },
        }
    }
}

/// `a == b`, inlined: column names are short, and a `memcmp` call per read costs more than the
/// comparison.
#[inline(always)]
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

impl<'a> Row<'a> {
    /// The row's global index in the input frame (not its index inside the block).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("x" => [0.0; 1_000])?;
    /// let out = df.par_apply_rows("i", |row| Ok(row.index() as u64))?;
    /// assert_eq!(out.column("i")?.u64()?.get(999), Some(999));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn index(&self) -> usize {
        self.segment.rows.start + self.offset
    }

    /// The error `f` returned for this row, as the call reports it: a getter error of this row
    /// stands as it is; anything else becomes [`Error::Row`] with this row.
    #[cold]
    pub(crate) fn attribute(&self, error: BoxError) -> Error {
        let own = self.segment.own_error.replace(false);
        Error::of_row(error, self.index(), own)
    }

    /// Reads column `name` as `T` (any [`FromCell`] type: `f64`, `Option<&str>`, ...).
    ///
    /// The named getters ([`f64`](Row::f64), [`opt_str`](Row::opt_str), ...) are shorthands for
    /// this.
    ///
    /// # Errors
    ///
    /// [`Error::ColumnNotFound`], [`Error::DtypeMismatch`] when the column's dtype is not exactly
    /// `T`'s, [`Error::NullValue`] for a null read as a non-`Option` type; each with this row's
    /// global index.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let df = df!("x" => [Some(1.0), None])?;
    /// let out = df.par_apply_rows("y", |row| Ok(row.get::<Option<f64>>("x")?.map(|x| x + 1.0)))?;
    /// assert_eq!(out.column("y")?.f64()?.get(0), Some(2.0));
    /// assert_eq!(out.column("y")?.f64()?.get(1), None);
    ///
    /// let err = df.par_apply_rows("y", |row| Ok(row.get::<f64>("x")?)).unwrap_err();
    /// assert!(matches!(err, polars_flock::Error::NullValue { row: 1, .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline(always)]
    pub fn get<T: FromCell<'a>>(&self, name: &str) -> Result<T> {
        match self.segment.slot(name) {
            Some(slot) => self.read(name, slot),
            None => self.read_uncached(name),
        }
    }

    #[cold]
    #[inline(never)]
    fn read_uncached<T: FromCell<'a>>(&self, name: &str) -> Result<T> {
        self.read(name, &self.segment.resolve(name))
    }

    #[inline(always)]
    fn read<T: FromCell<'a>>(&self, name: &str, slot: &Slot<'a>) -> Result<T> {
        if let Some((bits, offset)) = slot.validity
            && !bits.get_bit(offset + self.offset)
        {
            return self.null(name, slot);
        }
        match T::from_slot(slot.data, self.offset) {
            Some(value) => Ok(value),
            None => Err(self.mismatch::<T>(name, slot)),
        }
    }

    #[cold]
    #[inline(never)]
    fn null<T: FromCell<'a>>(&self, name: &str, slot: &Slot<'a>) -> Result<T> {
        if T::from_slot(slot.data, self.offset).is_none() {
            return Err(self.mismatch::<T>(name, slot));
        }
        T::null().ok_or_else(|| {
            self.segment.own_error.set(true);
            Error::NullValue {
                column: name.to_owned(),
                row: self.index(),
            }
        })
    }

    #[cold]
    #[inline(never)]
    fn mismatch<T: FromCell<'a>>(&self, name: &str, slot: &Slot<'a>) -> Error {
        self.segment.own_error.set(true);
        if let Some(found) = slot.dtype
            && T::accepts(found)
        {
            // The dtype is right: the value itself does not convert (a date beyond chrono's range).
            return Error::Row {
                row: self.index(),
                source: format!(
                    "column {name:?}: value out of range for {}",
                    std::any::type_name::<T>()
                )
                .into(),
            };
        }
        match slot.dtype {
            None => Error::ColumnNotFound {
                column: name.to_owned(),
                row: Some(self.index()),
            },
            Some(found) => Error::DtypeMismatch {
                column: name.to_owned(),
                row: Some(self.index()),
                expected: Box::new(T::expected(found)),
                found: Box::new(found.clone()),
            },
        }
    }
}

macro_rules! getters {
    ($($get:ident, $opt:ident: $t:ty, $dtype:literal, $some:expr;)*) => {$(
        #[doc = concat!("Reads column `name` (dtype `", $dtype, "`) as `", stringify!($t), "`; a null is an error.")]
        ///
        /// # Errors
        ///
        /// [`Error::ColumnNotFound`], [`Error::DtypeMismatch`], [`Error::NullValue`], with the
        /// global row index.
        ///
        /// # Examples
        ///
        /// ```
        /// use polars_flock::polars::prelude::*;
        /// use polars_flock::prelude::*;
        ///
        #[doc = concat!("let df = df!(\"v\" => [", stringify!($some), "])?;")]
        #[doc = concat!("let out = df.par_apply_rows(\"w\", |row| Ok(row.", stringify!($get), "(\"v\")?.to_owned()))?;")]
        #[doc = concat!("assert_eq!(out.column(\"w\")?.get(0)?, df.column(\"v\")?.get(0)?);")]
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        #[inline]
        pub fn $get(&self, name: &str) -> Result<$t> {
            self.get::<$t>(name)
        }

        #[doc = concat!("Reads column `name` (dtype `", $dtype, "`) as `Option<", stringify!($t), ">`; a null is `None`.")]
        ///
        /// # Errors
        ///
        /// [`Error::ColumnNotFound`], [`Error::DtypeMismatch`], with the global row index.
        ///
        /// # Examples
        ///
        /// ```
        /// use polars_flock::polars::prelude::*;
        /// use polars_flock::prelude::*;
        ///
        #[doc = concat!("let df = df!(\"v\" => [Some(", stringify!($some), "), None])?;")]
        #[doc = concat!("let out = df.par_apply_rows(\"w\", |row| Ok(row.", stringify!($opt), "(\"v\")?.map(|v| v.to_owned())))?;")]
        #[doc = concat!("assert_eq!(out.column(\"w\")?.get(0)?, df.column(\"v\")?.get(0)?);")]
        /// assert_eq!(out.column("w")?.null_count(), 1);
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        #[inline]
        pub fn $opt(&self, name: &str) -> Result<Option<$t>> {
            self.get::<Option<$t>>(name)
        }
    )*};
}

impl<'a> Row<'a> {
    getters! {
        f64, opt_f64: f64, "Float64", 1.5f64;
        f32, opt_f32: f32, "Float32", 1.5f32;
        i64, opt_i64: i64, "Int64", -7i64;
        i32, opt_i32: i32, "Int32", -7i32;
        u64, opt_u64: u64, "UInt64", 7u64;
        u32, opt_u32: u32, "UInt32", 7u32;
        bool, opt_bool: bool, "Boolean", true;
        str, opt_str: &'a str, "String", "text";
    }
}

#[cfg(feature = "dtypes")]
impl<'a> Row<'a> {
    getters! {
        i16, opt_i16: i16, "Int16", -7i16;
        i8, opt_i8: i8, "Int8", -7i8;
        u16, opt_u16: u16, "UInt16", 7u16;
        u8, opt_u8: u8, "UInt8", 7u8;
    }
}

#[cfg(feature = "dtypes")]
/// Temporal getters (feature `dtypes`). Polars' `Date`, `Datetime` (any time unit) and `Duration`
/// columns are read as [chrono](https://docs.rs/chrono) values (`polars_flock::chrono`); a
/// `Datetime` without a time zone is a [`NaiveDateTime`](chrono::NaiveDateTime), one with a time
/// zone is the instant it names, a [`DateTime<Utc>`](chrono::DateTime). A value beyond chrono's
/// range (±262,143 years) is an [`Error::Row`].
impl<'a> Row<'a> {
    /// Reads a `Date` column; a null is an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::chrono::Datelike;
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// // Days since 1970-01-01.
    /// let days = Int32Chunked::from_vec("d".into(), vec![0, 19_723]).into_date();
    /// let df = DataFrame::new(2, vec![days.into_series().into_column()])?;
    /// let out = df.par_apply_rows("year", |row| Ok(row.date("d")?.year()))?;
    /// assert_eq!(out.column("year")?.i32()?.get(1), Some(2024));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn date(&self, name: &str) -> Result<chrono::NaiveDate> {
        self.get(name)
    }

    /// Reads a `Date` column; a null is `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let days = Int32Chunked::from_slice_options("d".into(), &[Some(0), None]).into_date();
    /// let df = DataFrame::new(2, vec![days.into_series().into_column()])?;
    /// let out = df.par_apply_rows("d2", |row| Ok(row.opt_date("d")?))?; // a Date column again
    /// assert!(out.column("d2")?.equals_missing(df.column("d")?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn opt_date(&self, name: &str) -> Result<Option<chrono::NaiveDate>> {
        self.get(name)
    }

    /// Reads a `Datetime` column without a time zone, of any time unit; a null is an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::chrono::Timelike;
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// // Milliseconds since 1970-01-01 00:00:00.
    /// let t = Int64Chunked::from_vec("t".into(), vec![3_600_000 * 5]);
    /// let t = t.into_datetime(TimeUnit::Milliseconds, None).into_series();
    /// let df = DataFrame::new(1, vec![t.into_column()])?;
    /// let out = df.par_apply_rows("hour", |row| Ok(row.datetime("t")?.hour()))?;
    /// assert_eq!(out.column("hour")?.u32()?.get(0), Some(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn datetime(&self, name: &str) -> Result<chrono::NaiveDateTime> {
        self.get(name)
    }

    /// Reads a `Datetime` column without a time zone; a null is `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let t = Int64Chunked::from_slice_options("t".into(), &[Some(1), None]);
    /// let t = t.into_datetime(TimeUnit::Microseconds, None).into_series();
    /// let df = DataFrame::new(2, vec![t.into_column()])?;
    /// let out = df.par_apply_rows("t2", |row| Ok(row.opt_datetime("t")?))?; // microseconds
    /// assert!(out.column("t2")?.equals_missing(df.column("t")?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn opt_datetime(&self, name: &str) -> Result<Option<chrono::NaiveDateTime>> {
        self.get(name)
    }

    /// Reads a `Datetime` column with a time zone (any zone, any unit) as the instant it names;
    /// a null is an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let t = Int64Chunked::from_vec("t".into(), vec![1_700_000_000_000_000]);
    /// let t = t.into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)).into_series();
    /// let df = DataFrame::new(1, vec![t.into_column()])?;
    /// let out = df.par_apply_rows("s", |row| Ok(row.utc_datetime("t")?.timestamp()))?;
    /// assert_eq!(out.column("s")?.i64()?.get(0), Some(1_700_000_000));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn utc_datetime(&self, name: &str) -> Result<chrono::DateTime<chrono::Utc>> {
        self.get(name)
    }

    /// Reads a `Datetime` column with a time zone as an instant; a null is `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let t = Int64Chunked::from_slice_options("t".into(), &[None, Some(0)]);
    /// let t = t.into_datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC)).into_series();
    /// let df = DataFrame::new(2, vec![t.into_column()])?;
    /// let out = df.par_apply_rows("epoch", |row| Ok(row.opt_utc_datetime("t")?.map(|t| t.timestamp())))?;
    /// assert_eq!(out.column("epoch")?.i64()?.get(1), Some(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn opt_utc_datetime(&self, name: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        self.get(name)
    }

    /// Reads a `Duration` column of any time unit; a null is an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let d = Int64Chunked::from_vec("d".into(), vec![90_000]);
    /// let d = d.into_duration(TimeUnit::Milliseconds).into_series();
    /// let df = DataFrame::new(1, vec![d.into_column()])?;
    /// let out = df.par_apply_rows("minutes", |row| Ok(row.duration("d")?.num_minutes()))?;
    /// assert_eq!(out.column("minutes")?.i64()?.get(0), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn duration(&self, name: &str) -> Result<chrono::TimeDelta> {
        self.get(name)
    }

    /// Reads a `Duration` column; a null is `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let d = Int64Chunked::from_slice_options("d".into(), &[Some(5), None]);
    /// let d = d.into_duration(TimeUnit::Microseconds).into_series();
    /// let df = DataFrame::new(2, vec![d.into_column()])?;
    /// let out = df.par_apply_rows("d2", |row| Ok(row.opt_duration("d")?))?; // a Duration column again
    /// assert!(out.column("d2")?.equals_missing(df.column("d")?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn opt_duration(&self, name: &str) -> Result<Option<chrono::TimeDelta>> {
        self.get(name)
    }
}
