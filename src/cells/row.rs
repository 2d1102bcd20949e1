//! The row view handed to row closures: typed getters by column name.

use std::cell::{Cell, OnceCell};
use std::ops::Range;

use polars::prelude::*;

use crate::cell::{Fast, FromCell, SlotData};
use crate::error::{BoxError, Error, Result};
use crate::plan::segments;

/// One row of the frame, as a row closure sees it: typed getters by column name.
///
/// Getters read the column's Arrow values directly: the column is looked up and downcast once per
/// block (and again only where an Arrow chunk boundary splits the block), never per row, and no
/// `AnyValue` is made. Columns are then found by name in a small table whose place for a literal
/// name is computed at compile time: a read of `row.f64("price")` compares the name, checks the
/// dtype and the index, and loads the value (no validity check where the block has no null in
/// that column). Names may be read in any order and built at run time; a name that is not a
/// column costs a lookup in the frame on every read.
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
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    segment: &'a RowSegment<'a>,
    offset: usize,
}

/// The rows of one block that lie inside a single Arrow chunk of every column, with the columns
/// read so far.
///
/// Columns are cached by name in a small hash table kept inline: a name's two buckets come from
/// a hash of its bytes, which the compiler folds to constants for the usual literal names. A read
/// looks only at the first bucket, at a fixed place: it compares the name's key, checks the dtype
/// and the index (a validity bit only for an `Option` read of a column with nulls in the
/// segment), and loads the value; nothing is written per read. Everything else (the first read
/// of a column, a column in its second bucket or the spill table, a missing column, a dtype
/// mismatch, a null read as a non-`Option` type) is on one cold path, [`RowSegment::read_slow`].
pub(crate) struct RowSegment<'a> {
    df: &'a DataFrame,
    rows: Range<usize>,
    table: [Entry<'a>; TABLE],
    /// Columns for which both of their buckets were taken, in a table as large as twice the
    /// frame's width (so never full), made on the first such column.
    spill: OnceCell<Box<[Entry<'a>]>>,
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

/// Buckets of the inline table (a power of two).
const TABLE: usize = 32;

/// One cached column: its name as the frame spells it (compared by content: a name's address is
/// no identity, a `String` built per row may reuse the address of the previous row's), and its
/// values over the segment. An empty entry has the empty name and no data, so a read of a
/// non-empty name never matches it.
struct Entry<'a> {
    /// The name's [`key`]: for a literal name of up to 7 bytes, one comparison with a constant
    /// decides.
    key: Cell<u64>,
    name: Cell<&'a str>,
    /// The values, when the column has no null in the segment (else `Other`): a read then
    /// checks the variant and the index, and no validity.
    data: Cell<SlotData<'a>>,
    /// The same values as plain slices, for `f64` and `i64` columns.
    fast: Cell<Fast<'a>>,
    /// The values, the validity bytes and the segment's first bit, when the column has nulls in
    /// the segment.
    nullable: Cell<Option<Nullable<'a>>>,
    filled: Cell<bool>,
}

/// A segment's values with nulls among them, and where their validity bits start.
#[derive(Clone, Copy)]
struct Nullable<'a> {
    data: SlotData<'a>,
    bytes: &'a [u8],
    start: usize,
}

impl Nullable<'_> {
    /// Whether segment row `offset` is valid.
    #[inline(always)]
    fn valid(&self, offset: usize) -> bool {
        let bit = self.start + offset;
        self.bytes[bit >> 3] & (1 << (bit & 7)) != 0
    }
}

impl<'a> Entry<'a> {
    /// Reads segment row `offset` as `T` where that needs no check beyond the dtype's: a column
    /// without nulls in the segment, or one with nulls read as an `Option`. `None` otherwise
    /// (the cold path decides).
    #[inline(always)]
    fn read<T: FromCell<'a>>(&self, offset: usize) -> Option<T> {
        if T::FAST {
            if let Some(value) = T::from_fast(&self.fast.get(), offset) {
                return Some(value);
            }
        } else if let Some(value) = T::from_slot(self.data.get(), offset) {
            return Some(value);
        }
        if T::NULLABLE
            && let Some(nullable) = self.nullable.get()
            && let Some(value) = T::from_slot(nullable.data, offset)
        {
            return Some(match T::null() {
                Some(null) if !nullable.valid(offset) => null,
                _ => value,
            });
        }
        None
    }

    /// Whether the entry caches a column named `name` (or is empty and `name` is empty).
    #[inline(always)]
    fn is(&self, name: &str) -> bool {
        self.key.get() == key(name)
            && (name.len() < 8 || same_bytes(self.name.get().as_bytes(), name.as_bytes()))
    }

    const fn empty() -> Self {
        Entry {
            key: Cell::new(0),
            name: Cell::new(""),
            data: Cell::new(SlotData::Other),
            fast: Cell::new(Fast::EMPTY),
            nullable: Cell::new(None),
            filled: Cell::new(false),
        }
    }
}

/// A name's length (up to 255) in the low byte and its first 7 bytes (zero-padded) above: the
/// whole name for a name of up to 7 bytes, and for one of up to 3 ASCII bytes a word that x86
/// compares as an immediate.
#[inline(always)]
fn key(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let n = bytes.len().min(7);
    let mut word = [0u8; 8];
    word[0] = bytes.len().min(255) as u8;
    word[1..=n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(word)
}

/// A name's hash, word at a time over its bytes: the compiler computes it for a literal name, and
/// a name built at run time costs a few instructions per 8 bytes.
#[inline(always)]
fn hash(name: &str) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (name.len() as u64).wrapping_mul(K);
    for chunk in name.as_bytes().chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    h ^ (h >> 29)
}

/// A name's two buckets in a table of `len` (a power of two) buckets: never the same one.
#[inline(always)]
fn buckets(h: u64, len: usize) -> (usize, usize) {
    let mask = len as u64 - 1;
    let first = (h >> 40) & mask;
    let step = ((h >> 20) % mask) + 1;
    (first as usize, ((first + step) & mask) as usize)
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
            table: [const { Entry::empty() }; TABLE],
            spill: OnceCell::new(),
            own_error: Cell::new(false),
        }
    }

    /// The view of segment row `offset`.
    #[inline(always)]
    pub(crate) fn row(&'a self, offset: usize) -> Row<'a> {
        Row {
            segment: self,
            offset,
        }
    }

    /// The entry of `name`'s first bucket in the inline table.
    #[inline(always)]
    fn first(&self, name: &str) -> &Entry<'a> {
        &self.table[buckets(hash(name), TABLE).0]
    }

    /// Reads `name` at segment row `offset`, on every path: finds or caches the column, then
    /// reads it with every check.
    #[cold]
    #[inline(never)]
    fn read_slow<T: FromCell<'a>>(&self, name: &str, offset: usize) -> Result<T> {
        match self.entry(name) {
            Some(entry) => match entry.read(offset) {
                Some(value) => Ok(value),
                None => self.read_entry(entry, name, offset),
            },
            None => match self.df.column(name) {
                // A column that no table has room for (not reached: the spill table has room for
                // every column): read without caching.
                Ok(column) => {
                    let entry = Entry::empty();
                    self.fill(&entry, column);
                    self.read_entry(&entry, name, offset)
                }
                Err(_) => Err(self.error(Error::ColumnNotFound {
                    column: name.to_owned(),
                    row: Some(self.rows.start + offset),
                })),
            },
        }
    }

    /// The entry caching `name`, cached now if the column exists and is not cached yet; `None`
    /// for a missing column (not cached: reading one is an error, which costs more than the
    /// lookup).
    fn entry(&self, name: &str) -> Option<&Entry<'a>> {
        let h = hash(name);
        let (first, second) = buckets(h, TABLE);
        for bucket in [first, second] {
            let entry = &self.table[bucket];
            if entry.filled.get() && entry.name.get() == name {
                return Some(entry);
            }
        }
        let spill = self.spill.get().map_or(&[][..], |spill| spill);
        let mut probe =
            (0..spill.len()).map(|i| &spill[(buckets(h, spill.len()).0 + i) % spill.len()]);
        let mut free = None;
        for entry in probe.by_ref() {
            if !entry.filled.get() {
                free = Some(entry);
                break;
            }
            if entry.name.get() == name {
                return Some(entry);
            }
        }
        let column = self.df.column(name).ok()?;
        let inline = [first, second]
            .into_iter()
            .map(|b| &self.table[b])
            .find(|e| !e.filled.get());
        let entry = match inline.or(free) {
            Some(entry) => entry,
            None if self.spill.get().is_none() => {
                let spill = self.spill.get_or_init(|| {
                    let len = (2 * self.df.width()).next_power_of_two().max(TABLE);
                    (0..len).map(|_| Entry::empty()).collect()
                });
                let start = buckets(h, spill.len()).0;
                &spill[start]
            }
            None => return None,
        };
        self.fill(entry, column);
        Some(entry)
    }

    fn fill(&self, entry: &Entry<'a>, column: &'a Column) {
        let series = column.as_materialized_series();
        let (data, validity) = SlotData::new(series, self.rows.clone());
        let name = series.name().as_str();
        entry.key.set(key(name));
        entry.name.set(name);
        match validity.filter(|(bits, offset)| bits.null_count_range(*offset, self.rows.len()) > 0)
        {
            Some((bits, offset)) => {
                let (bytes, start, _) = bits.as_slice();
                entry.nullable.set(Some(Nullable {
                    data,
                    bytes,
                    start: start + offset,
                }));
            }
            None => {
                entry.data.set(data);
                entry.fast.set(Fast::of(data));
            }
        }
        entry.filled.set(true);
    }

    /// Reads a cached column with every check: the value, a null as `T`'s null or an error, a
    /// dtype mismatch, a value out of `T`'s range.
    fn read_entry<T: FromCell<'a>>(
        &self,
        entry: &Entry<'a>,
        name: &str,
        offset: usize,
    ) -> Result<T> {
        let row = self.rows.start + offset;
        let nullable = entry.nullable.get();
        let data = nullable.map_or(entry.data.get(), |n| n.data);
        let Some(value) = T::from_slot(data, offset) else {
            let dtype = self.df.column(name).map(Column::dtype).ok();
            return Err(self.error(match dtype {
                // The dtype is right: the value itself does not convert (a date beyond chrono's
                // range).
                Some(found) if T::accepts(found) => Error::Row {
                    row,
                    source: format!(
                        "column {name:?}: value out of range for {}",
                        std::any::type_name::<T>()
                    )
                    .into(),
                },
                Some(found) => Error::DtypeMismatch {
                    column: name.to_owned(),
                    row: Some(row),
                    expected: Box::new(T::expected(found)),
                    found: Box::new(found.clone()),
                },
                None => Error::ColumnNotFound {
                    column: name.to_owned(),
                    row: Some(row),
                },
            }));
        };
        if nullable.is_none_or(|n| n.valid(offset)) {
            return Ok(value);
        }
        T::null().ok_or_else(|| {
            self.error(Error::NullValue {
                column: name.to_owned(),
                row,
            })
        })
    }

    /// `error`, marked as a getter's own.
    fn error(&self, error: Error) -> Error {
        self.own_error.set(true);
        error
    }
}

/// `a == b`, inlined: column names are short, and a `memcmp` call per read costs more than the
/// comparison (for a literal name the compiler unrolls it into a comparison of constants).
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
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
    /// Takes the row by value, so that the row loop need not keep the view in memory.
    #[cold]
    #[inline(never)]
    pub(crate) fn attribute(self, error: BoxError) -> Error {
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
        let (segment, offset) = (self.segment, self.offset);
        // Only the first bucket on the hot path, so that the read is at fixed places: a column
        // in its second bucket (its first taken by another) is read on the cold path.
        let entry = segment.first(name);
        if entry.is(name)
            && let Some(value) = entry.read(offset)
        {
            return Ok(value);
        }
        segment.read_slow(name, offset)
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
