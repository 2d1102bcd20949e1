//! Arrow IPC files, the one codec for every IPC byte the crate reads or writes: the IPC sink and
//! source of streams, and the cluster's frames on the wire and in part files.

use std::io::{Read, Seek, Write};

use polars::prelude::*;
use polars_arrow::io::ipc::read::{FileReader, read_file_metadata};
use polars_arrow::io::ipc::write::{FileWriter, WriteOptions};

/// A writer of frames of `schema` to `out`, uncompressed (the data is read back at once, or by
/// tools that map it).
pub(crate) fn writer<W: Write>(out: W, schema: &Schema) -> PolarsResult<FileWriter<W>> {
    let schema = Arc::new(schema.to_arrow(CompatLevel::newest()));
    FileWriter::try_new(out, schema, None, WriteOptions { compression: None })
}

/// Writes `df`, one record batch per chunk (its columns' chunks aligned first).
pub(crate) fn write_frame<W: Write>(
    writer: &mut FileWriter<W>,
    df: &DataFrame,
) -> PolarsResult<()> {
    let mut df = df.clone();
    if df.should_rechunk() {
        df.align_chunks_par();
    }
    for batch in df.iter_chunks(CompatLevel::newest(), false) {
        writer.write(&batch, None)?;
    }
    Ok(())
}

/// `df` as an IPC file in memory (the schema is kept even with no rows).
#[cfg(feature = "distributed")]
pub(crate) fn encode(df: &DataFrame) -> PolarsResult<Vec<u8>> {
    let mut writer = writer(Vec::new(), df.schema())?;
    write_frame(&mut writer, df)?;
    writer.finish()?;
    Ok(writer.into_inner())
}

/// A reader of the record batches of the IPC file `input`, with the file's schema.
pub(crate) fn reader<R: Read + Seek>(mut input: R) -> PolarsResult<(FileReader<R>, Schema)> {
    let metadata = read_file_metadata(&mut input)?;
    let schema = Schema::from_arrow_schema(&metadata.schema);
    Ok((FileReader::new(input, metadata, None, None), schema))
}

/// A record batch read from an IPC file as a frame (its arrays moved, not copied).
pub(crate) fn batch_to_frame(
    batch: polars_arrow::record_batch::RecordBatchT<Box<dyn polars_arrow::array::Array>>,
) -> PolarsResult<DataFrame> {
    let height = batch.height();
    let schema = batch.schema().clone();
    let columns = schema
        .iter_values()
        .zip(batch.into_arrays())
        .map(|(field, array)| Series::from_arrow(field.name.clone(), array).map(Column::from))
        .collect::<PolarsResult<Vec<_>>>()?;
    DataFrame::new(height, columns)
}

/// The frame [`encode`] wrote: every batch, concatenated.
#[cfg(feature = "distributed")]
pub(crate) fn decode(bytes: &[u8]) -> PolarsResult<DataFrame> {
    let (batches, schema) = reader(std::io::Cursor::new(bytes))?;
    let mut out = DataFrame::empty_with_schema(&schema);
    for batch in batches {
        out.vstack_mut_owned(batch_to_frame(batch?)?)?;
    }
    Ok(out)
}
