//! Arrow (arrow-rs) interop through the Arrow C Data Interface: `RecordBatch` ⇄ `DataFrame`
//! without copying buffers, and `par_apply_*` over record batches.
//!
//! The only `unsafe` code of the crate is here, at the C Data Interface boundary.
#![allow(unsafe_code)]

use std::sync::Arc;

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi, to_ffi};
use arrow_array::{Array as _, ArrayRef, RecordBatch, RecordBatchOptions, make_array};
use arrow_schema::{DataType as ArrowType, Field, Schema};
use polars::prelude::*;
use polars_arrow::ffi as c;

use crate::cell::chunk_boundaries;
use crate::concat::{FirstSchema, vstack_all};
use crate::error::{BoxError, Error, Result};
use crate::exec::contain;
use crate::flock::Flock;
use crate::frame::DataFrameParApply;
use crate::plan::segments;
use crate::row::Row;
use crate::sealed;
use crate::value::{OutputNames, RowOutput};
use crate::view::{On, default_flock};

/// A `RecordBatch` as a Polars `DataFrame`, without copying buffers.
///
/// Every column is moved through the Arrow C Data Interface: numeric, boolean and view
/// (`Utf8View`, `BinaryView`) columns share the batch's buffers. Polars stores strings and binary
/// data as views, so `Utf8` / `LargeUtf8` / `Binary` / `LargeBinary` columns are converted to
/// views (the bytes stay shared; the views are new). Supported: `Null`, `Boolean`, 8–64-bit
/// signed and unsigned integers, `Float32`, `Float64`, `Utf8`, `LargeUtf8`, `Utf8View`, `Binary`,
/// `LargeBinary`, `BinaryView`, `Date32`, and `Timestamp` of any unit without a time zone. Other
/// types (decimals, durations, lists, structs, dictionaries, time zones) are refused with an
/// error: cast them first.
///
/// # Errors
///
/// [`Error::Arrow`] naming the column whose type Polars cannot import.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Float64Array, RecordBatch};
/// use polars_flock::arrow::to_dataframe;
///
/// let x = Float64Array::from(vec![1.0, 2.0, 3.0]);
/// let batch = RecordBatch::try_from_iter([("x", Arc::new(x.clone()) as _)])?;
/// let df = to_dataframe(&batch)?;
/// assert_eq!(df.column("x")?.f64()?.get(2), Some(3.0));
/// // Zero-copy: the frame reads the batch's own buffer.
/// let chunk = df.column("x")?.f64()?.downcast_iter().next().unwrap();
/// assert_eq!(chunk.values().as_ptr(), x.values().as_ptr());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn to_dataframe(batch: &RecordBatch) -> Result<DataFrame> {
    let schema = batch.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, array)| import_column(field, array).map(Column::from))
        .collect::<Result<Vec<_>>>()?;
    Ok(DataFrame::new(batch.num_rows(), columns)?)
}

/// Record batches as one `DataFrame` (one chunk per batch), without copying buffers.
///
/// # Errors
///
/// [`Error::Arrow`] for a column that cannot be imported; [`Error::SchemaMismatch`] (with the
/// batch's index as `block`) for a batch whose schema differs from the first one's. No batches
/// give an empty frame.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use polars_flock::arrow::batches_to_dataframe;
///
/// let batch = |v: Vec<i64>| RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(v)) as _)]);
/// let df = batches_to_dataframe(&[batch(vec![1, 2])?, batch(vec![3])?])?;
/// assert_eq!(df.height(), 3);
/// assert_eq!(df.column("n")?.n_chunks(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn batches_to_dataframe(batches: &[RecordBatch]) -> Result<DataFrame> {
    let mut first = FirstSchema::default();
    let mut start = 0;
    let mut frames = Vec::with_capacity(batches.len());
    for (index, batch) in batches.iter().enumerate() {
        let df = to_dataframe(batch)?;
        let rows = start..start + df.height();
        start = rows.end;
        first
            .check(df.schema())
            .map_err(|expected| Error::SchemaMismatch {
                block: index,
                rows,
                expected,
                found: df.schema().clone(),
            })?;
        frames.push(df);
    }
    Ok(vstack_all(frames)?.unwrap_or_default())
}

/// A `DataFrame` as record batches, one per run of rows where no column changes Arrow chunk,
/// without copying buffers (strings leave as `Utf8View`, Polars' own layout).
///
/// A frame with a single chunk per column gives one batch; the output of a `par_apply_*` call
/// gives about one batch per block. A frame with no rows gives one empty batch carrying the
/// schema.
///
/// # Errors
///
/// [`Error::Arrow`] if arrow-rs rejects a column (a dtype it cannot represent).
///
/// # Examples
///
/// ```
/// use arrow_array::cast::AsArray;
/// use arrow_array::types::Float64Type;
/// use polars_flock::polars::prelude::*;
/// use polars_flock::arrow::to_record_batches;
///
/// let df = df!("x" => [1.0, 2.0], "s" => ["a", "b"])?;
/// let batches = to_record_batches(&df)?;
/// assert_eq!(batches.len(), 1);
/// let x = batches[0].column(0).as_primitive::<Float64Type>();
/// assert_eq!(x.value(1), 2.0);
/// // Zero-copy: the batch reads the frame's own buffer.
/// let chunk = df.column("x")?.f64()?.downcast_iter().next().unwrap();
/// assert_eq!(x.values().as_ptr(), chunk.values().as_ptr());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn to_record_batches(df: &DataFrame) -> Result<Vec<RecordBatch>> {
    let series: Vec<&Series> = df
        .columns()
        .iter()
        .map(Column::as_materialized_series)
        .collect();
    let fields: Vec<Field> = series
        .iter()
        .map(|s| export_field(s))
        .collect::<Result<_>>()?;
    let schema = Arc::new(Schema::new(fields));
    let boundaries = chunk_boundaries(series.iter().copied());
    let mut batches = Vec::new();
    for rows in segments(&boundaries, 0..df.height()) {
        let arrays = series
            .iter()
            .map(|s| {
                let part = s.slice(rows.start as i64, rows.len());
                // Within a segment every column is one chunk: this never copies.
                let part = if part.n_chunks() == 1 {
                    part
                } else {
                    part.rechunk()
                };
                export_column(&part)
            })
            .collect::<Result<Vec<_>>>()?;
        batches.push(record_batch(&schema, arrays, rows.len())?);
    }
    if batches.is_empty() {
        let arrays = series
            .iter()
            .map(|s| export_column(&s.clear()))
            .collect::<Result<Vec<_>>>()?;
        batches.push(record_batch(&schema, arrays, 0)?);
    }
    Ok(batches)
}

/// Parallel apply over Arrow record batches: the same calls as [`DataFrameParApply`], taking
/// and returning Arrow.
///
/// The batches become one zero-copy frame, the call runs on it exactly as on a frame (same
/// blocks, pools, errors and options), and the result leaves as record batches, zero-copy, about
/// one per block ([`to_record_batches`]). Implemented for a [`RecordBatch`] and for [`Batches`]
/// (several record batches, as one dataset); the trait is sealed.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{cast::AsArray, types::Float64Type, Float64Array, RecordBatch};
/// use polars_flock::prelude::*;
///
/// let x = Float64Array::from((0..1_000).map(f64::from).collect::<Vec<_>>());
/// let batch = RecordBatch::try_from_iter([("x", Arc::new(x) as _)])?;
/// let out = batch.par_apply_rows("y", |row| Ok(row.f64("x")? * 2.0))?;
/// let last = out.last().unwrap();
/// let y = last.column_by_name("y").unwrap().as_primitive::<Float64Type>();
/// assert_eq!(y.value(y.len() - 1), 1998.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait RecordBatchParApply: sealed::Batches {
    /// [`DataFrameParApply::par_apply_rows`] over record batches: the result columns `names` are
    /// appended, and the output returned as record batches (one per block).
    ///
    /// # Errors
    ///
    /// As [`DataFrameParApply::par_apply_rows`], plus [`Error::Arrow`] and
    /// [`Error::SchemaMismatch`] from the conversion ([`batches_to_dataframe`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use polars_flock::arrow::Batches;
    /// use polars_flock::prelude::*;
    ///
    /// let batch = |v: Vec<i64>| RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(v)) as _)]);
    /// let batches = vec![batch(vec![1, 2])?, batch(vec![3, 4])?];
    /// let out = Batches(&batches).par_apply_rows("sq", |row| Ok(row.i64("n")?.pow(2)))?;
    /// let rows: usize = out.iter().map(|b| b.num_rows()).sum();
    /// assert_eq!(rows, 4);
    /// assert_eq!(out[0].schema().field(1).name(), "sq");
    ///
    /// let n = Int64Array::from((0..100).collect::<Vec<i64>>());
    /// let batch = RecordBatch::try_from_iter([("n", Arc::new(n) as _)])?;
    /// let out = Flock::new().chunksize(25).on(&batch).par_apply_rows("odd", |row| Ok(row.i64("n")? % 2 == 1))?;
    /// assert_eq!(out.len(), 4); // one batch per block
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_rows<U, N, F>(&self, names: N, f: F) -> Result<Vec<RecordBatch>>
    where
        U: RowOutput,
        N: OutputNames<U>,
        F: Fn(&Row<'_>) -> std::result::Result<U, BoxError> + Sync,
    {
        let df = self.frame()?;
        to_record_batches(&self.flock().on(&df).par_apply_rows(names, f)?)
    }

    /// [`DataFrameParApply::par_apply_blocks`] over record batches: each block is a zero-copy
    /// frame; the concatenated results are returned as record batches.
    ///
    /// # Errors
    ///
    /// As [`DataFrameParApply::par_apply_blocks`], plus [`Error::Arrow`] and
    /// [`Error::SchemaMismatch`] from the conversion.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Float64Array, RecordBatch};
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let x = Float64Array::from((0..1_000).map(f64::from).collect::<Vec<_>>());
    /// let batch = RecordBatch::try_from_iter([("x", Arc::new(x) as _)])?;
    /// let out = batch.par_apply_blocks(|block| {
    ///     let keep = block.column("x")?.f64()?.gt(899.0);
    ///     Ok(block.filter(&keep)?)
    /// })?;
    /// assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 100);
    /// let heads = Flock::new().chunksize(400).on(&batch).par_apply_blocks(|b| Ok(b.head(Some(1))))?;
    /// assert_eq!(heads.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_blocks<F>(&self, f: F) -> Result<Vec<RecordBatch>>
    where
        F: Fn(DataFrame) -> std::result::Result<DataFrame, BoxError> + Sync,
    {
        let df = self.frame()?;
        to_record_batches(&self.flock().on(&df).par_apply_blocks(f)?)
    }
}

/// Several record batches taken as one dataset (in order), for [`RecordBatchParApply`].
///
/// A plain `Vec<RecordBatch>` is also a slice, with the item-wise
/// [`SliceParApply`](crate::SliceParApply) verbs (one call per batch); wrap it to apply per row or
/// per block across all its batches.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use polars_flock::arrow::Batches;
/// use polars_flock::prelude::*;
///
/// let batch = |v: Vec<i64>| RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(v)) as _)]);
/// let batches = vec![batch(vec![1, 2])?, batch(vec![3])?];
/// let rows = batches.par_apply_rows(|b| Ok(b.num_rows()))?; // per batch (SliceParApply)
/// assert_eq!(rows, [2, 1]);
/// let out = Batches(&batches).par_apply_rows("even", |row| Ok(row.i64("n")? % 2 == 0))?; // per row
/// assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
/// let out = Flock::new().chunksize(1).on(&Batches(&batches)).par_apply_rows("one", |_| Ok(1i64))?;
/// assert_eq!(out.len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Batches<'a>(pub &'a [RecordBatch]);

impl sealed::Batches for RecordBatch {
    fn frame(&self) -> Result<DataFrame> {
        to_dataframe(self)
    }
    fn flock(&self) -> &Flock {
        default_flock()
    }
}

impl sealed::Batches for Batches<'_> {
    fn frame(&self) -> Result<DataFrame> {
        batches_to_dataframe(self.0)
    }
    fn flock(&self) -> &Flock {
        default_flock()
    }
}

macro_rules! configured_batches {
    ($($input:ty),*) => {$(
        impl sealed::Batches for On<'_, $input> {
            fn frame(&self) -> Result<DataFrame> {
                self.input.frame()
            }
            fn flock(&self) -> &Flock {
                self.flock
            }
        }

        impl RecordBatchParApply for On<'_, $input> {}
    )*};
}

impl RecordBatchParApply for RecordBatch {}
impl RecordBatchParApply for Batches<'_> {}
configured_batches!(RecordBatch, Batches<'_>);

fn arrow_error(column: &str, source: impl Into<crate::BoxError>) -> Error {
    Error::Arrow {
        column: column.to_owned(),
        source: source.into(),
    }
}

/// The arrow-rs types this build of Polars imports (it panics on some others, e.g. decimals
/// without its `dtype-decimal` feature, so they are refused before any import).
fn supported(data_type: &ArrowType) -> bool {
    use ArrowType::*;
    matches!(
        data_type,
        Null | Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float32
            | Float64
            | Utf8
            | LargeUtf8
            | Utf8View
            | Binary
            | LargeBinary
            | BinaryView
            | Date32
            | Timestamp(_, None)
    )
}

/// One arrow-rs column into a Polars series, through the C Data Interface.
fn import_column(field: &Field, array: &ArrayRef) -> Result<Series> {
    let name = field.name();
    if !supported(array.data_type()) {
        return Err(arrow_error(
            name,
            format!(
                "data type {} is not supported; cast it first",
                array.data_type()
            ),
        ));
    }
    let (array, schema) = to_ffi(&array.to_data()).map_err(|e| arrow_error(name, e))?;
    let (array, schema) = (array_to_polars(array), schema_to_polars(schema));
    // SAFETY: `schema` was just exported by arrow-rs, so it is a valid, released-once C schema.
    let imported = unsafe { c::import_field_from_c(&schema) }.map_err(|e| arrow_error(name, e))?;
    // SAFETY: `array` was exported by arrow-rs together with `schema`, whose data type is
    // `imported.dtype`; polars-arrow keeps the C array alive (and releases it) as long as its
    // buffers are used.
    let array = unsafe { c::import_array_from_c(array, imported.dtype().clone()) }
        .map_err(|e| arrow_error(name, e))?;
    // Polars panics (rather than erring) on some arrays it cannot hold: keep that an error.
    match contain(|| Series::from_arrow(name.as_str().into(), array)) {
        Ok(series) => series.map_err(|e| arrow_error(name, e)),
        Err(panic) => Err(arrow_error(name, panic.into_message())),
    }
}

/// The arrow-rs field of a Polars series.
fn export_field(series: &Series) -> Result<Field> {
    let field = series.field().to_arrow(CompatLevel::newest());
    let schema = schema_to_arrow_rs(c::export_field_to_c(&field));
    Field::try_from(&schema).map_err(|e| arrow_error(series.name(), e))
}

/// A single-chunk Polars series as an arrow-rs array, through the C Data Interface.
fn export_column(series: &Series) -> Result<ArrayRef> {
    // polars-arrow exports a null array with a validity buffer slot, which arrow-rs's importer
    // rejects ("doesn't expect buffer at index 0"); a null array has no data to share anyway.
    if series.dtype() == &DataType::Null {
        return Ok(Arc::new(arrow_array::NullArray::new(series.len())));
    }
    let field = series.field().to_arrow(CompatLevel::newest());
    let array = c::export_array_to_c(series.to_arrow(0, CompatLevel::newest()));
    let (array, schema) = (
        array_to_arrow_rs(array),
        schema_to_arrow_rs(c::export_field_to_c(&field)),
    );
    // SAFETY: `array` and `schema` were exported together by polars-arrow and describe the same
    // array; arrow-rs takes ownership of `array`.
    let data = unsafe { from_ffi(array, &schema) }.map_err(|e| arrow_error(series.name(), e))?;
    Ok(make_array(data))
}

// The four moves below are sound for one reason: `FFI_ArrowArray` / `FFI_ArrowSchema` (arrow-rs)
// and `c::ArrowArray` / `c::ArrowSchema` (polars-arrow) are both `#[repr(C)]` definitions of the
// Arrow C Data Interface's `ArrowArray` and `ArrowSchema` structs: same size (checked by
// `transmute` at compile time), same field layout. A move transfers the struct and the ownership of
// its `release` callback; the source value is consumed, so the release runs exactly once, on the
// receiving side.

fn array_to_polars(array: FFI_ArrowArray) -> c::ArrowArray {
    // SAFETY: see above.
    unsafe { std::mem::transmute::<FFI_ArrowArray, c::ArrowArray>(array) }
}

fn schema_to_polars(schema: FFI_ArrowSchema) -> c::ArrowSchema {
    // SAFETY: see above.
    unsafe { std::mem::transmute::<FFI_ArrowSchema, c::ArrowSchema>(schema) }
}

fn array_to_arrow_rs(array: c::ArrowArray) -> FFI_ArrowArray {
    // SAFETY: see above.
    unsafe { std::mem::transmute::<c::ArrowArray, FFI_ArrowArray>(array) }
}

fn schema_to_arrow_rs(schema: c::ArrowSchema) -> FFI_ArrowSchema {
    // SAFETY: see above.
    unsafe { std::mem::transmute::<c::ArrowSchema, FFI_ArrowSchema>(schema) }
}

fn record_batch(schema: &Arc<Schema>, arrays: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    // The row count matters for frames without columns.
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(Arc::clone(schema), arrays, &options)
        .map_err(|e| arrow_error("<batch>", e))
}
