//! Parquet in and out with bounded memory (feature `parquet`): a source that hands out one row
//! group (or a slice of one) at a time and is **decoded by the worker that runs it**, a sink that
//! writes row groups as outputs arrive and publishes the file atomically, and whole-file helpers
//! for [`Files`](crate::Files) jobs.
//!
//! ```
//! use polars_flock::polars::prelude::*;
//! use polars_flock::parquet::{ParquetBatches, ParquetSink, write_parquet};
//! use polars_flock::streaming::par_apply_batches;
//! use polars_flock::Flock;
//!
//! let dir = tempfile::tempdir()?;
//! let (input, output) = (dir.path().join("in.parquet"), dir.path().join("out.parquet"));
//! let mut df = df!("x" => (0..10_000i64).collect::<Vec<_>>())?;
//! write_parquet(&input, &df, 1_000)?; // 10 row groups
//!
//! // Row groups decoded in the workers, at most 4 in flight, outputs written in input order.
//! let mut sink = ParquetSink::create(&output)?;
//! let source = ParquetBatches::open(&input)?;
//! assert_eq!((source.num_rows(), source.num_row_groups()), (10_000, 10));
//! par_apply_batches(&Flock::new(), 4, source, |b| Ok(b.lazy().select([col("x") * lit(2)]).collect()?), |out| {
//!     Ok(sink.write(&out)?)
//! })?;
//! sink.finish()?; // the output appears under its name only now
//! let back = polars_flock::parquet::read_parquet(&output, None)?;
//! assert_eq!(back.column("x")?.i64()?.get(9_999), Some(19_998));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Memory
//!
//! The source keeps only the file's footer; each batch is decoded when a worker starts it, so at
//! most `window` decoded batches (and their outputs) are in memory, plus the pages of the file
//! the decoder touched (the file is memory-mapped: those pages are file-backed and reclaimable,
//! but count in RSS). Split big row groups with [`ParquetBatches::max_rows`]. The sink holds at
//! most one row group's worth of outputs ([`ParquetSink::row_group_rows`]) and its encoded pages.
//!
//! # Compared with Polars' streaming engine
//!
//! Polars' own route, `scan_parquet(..).collect_batches(..)` on the streaming engine, needs its
//! `lazy`, `parquet` and `async` features (about 275 crates: tokio, hyper, rustls, object_store),
//! and is better at what a query planner does: predicate and projection push-down, joins, and
//! cloud storage. In Polars 0.55.2 its batch iterator was measured ending normally after 94 of 100
//! batches when a UDF panicked inside the query, and delivering later batches before an `Err`.
//! This module keeps this crate's promises instead: every row group decoded and handed to your
//! closure exactly once, outputs in input order, the first failure returned with the file and the
//! row group, nothing handed to the sink after it, and the file's row count checked against its
//! footer at the end.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use polars::prelude::*;
use polars_io::SerReader;
use polars_io::parquet::metadata::FileMetadataRef;
use polars_io::parquet::read::{ParallelStrategy, ParquetReader};
pub use polars_io::parquet::write::ParquetCompression;
use polars_io::parquet::write::{BatchedWriter, ParquetWriter, get_encodings};
use polars_parquet::write::{
    CompressedPage, StatisticsOptions, Version, WriteOptions, array_to_columns, compress,
    to_parquet_schema,
};

use crate::atomic::{AtomicFile, SyncingFile};
use crate::concat::FirstSchema;
use crate::error::{Error, Result};
use crate::exec::{contain, lock};
use crate::frontends::stream::Output;
use crate::streaming::{Batch, Stream};

/// A Parquet file read as a stream of batches: one row group, or a slice of at most
/// [`max_rows`](ParquetBatches::max_rows) rows of one, at a time, for
/// [`par_apply_batches`](crate::streaming::par_apply_batches) and
/// [`apply_batches_in_order`](crate::streaming::apply_batches_in_order).
///
/// [`open`](ParquetBatches::open) reads the footer once; the iterator then yields
/// [`RowGroupPart`]s, which hold no data: each is decoded by the worker that runs it. When the
/// row groups are exhausted, their rows must add up to the footer's row count, or the last item
/// is an error.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::parquet::{ParquetBatches, write_parquet};
/// use polars_flock::streaming::Batch;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("t.parquet");
/// write_parquet(&path, &df!("a" => (0..250i64).collect::<Vec<_>>(), "b" => ["x"; 250])?, 100)?;
/// let parts: Vec<_> = ParquetBatches::open(&path)?.columns(["a"]).max_rows(60).collect::<Result<_, _>>()?;
/// let rows: Vec<usize> = parts.iter().map(|p| p.rows()).collect();
/// assert_eq!(rows, [60, 40, 60, 40, 50]); // row groups of 100, 100, 50, in slices of at most 60
/// let first = parts.into_iter().next().unwrap().load()?;
/// assert_eq!(first.get_column_names(), ["a"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ParquetBatches {
    file: Arc<ParquetFile>,
    max_rows: usize,
    group: usize,
    offset_in_group: usize,
    offset: usize,
    finished: bool,
}

/// What every part of one file shares: its path, the file opened once, its footer, schema and
/// projection.
#[derive(Clone)]
struct ParquetFile {
    path: PathBuf,
    /// Every part decodes this handle's file: the version that was opened, even if the path is
    /// replaced (renamed over) while the stream runs.
    handle: Arc<File>,
    metadata: FileMetadataRef,
    schema: Arc<ArrowSchema>,
    columns: Option<Vec<String>>,
}

impl ParquetFile {
    /// Opens `path` and decodes its footer under the guard: a footer is input, and the decoder
    /// panics on some corrupt ones (a negative size or offset, a field of the wrong type).
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::in_file(path, e))?;
        let handle = file.try_clone().map_err(|e| Error::in_file(path, e))?;
        let mut reader = ParquetReader::new(file);
        let footer = contain(move || -> PolarsResult<_> {
            let metadata = reader.get_metadata()?.clone();
            Ok((metadata, reader.schema()?))
        });
        let (metadata, schema) = match footer {
            Ok(Ok(footer)) => footer,
            Ok(Err(e)) => return Err(Error::in_file(path, e)),
            Err(panic) => {
                let why = format!(
                    "corrupt footer: the decoder panicked: {}",
                    panic.into_message()
                );
                let invalid = std::io::Error::new(std::io::ErrorKind::InvalidData, why);
                return Err(Error::in_file(path, invalid));
            }
        };
        Ok(ParquetFile {
            path: path.to_path_buf(),
            handle: Arc::new(handle),
            metadata,
            schema,
            columns: None,
        })
    }

    /// The frame's schema after the projection, or [`Error::ColumnNotFound`] (in
    /// [`Error::InFile`]) for a projected column the file does not have.
    fn projected_schema(&self) -> Result<Schema> {
        let schema = Schema::from_arrow_schema(&self.schema);
        let Some(columns) = &self.columns else {
            return Ok(schema);
        };
        (columns.iter())
            .map(|name| match schema.get(name) {
                Some(dtype) => Ok(Field::new(name.into(), dtype.clone())),
                None => Err(Error::in_file(
                    &self.path,
                    Error::ColumnNotFound {
                        column: name.clone(),
                        row: None,
                    },
                )),
            })
            .collect()
    }
}

impl std::fmt::Debug for ParquetFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetFile")
            .field("path", &self.path)
            .field("rows", &self.metadata.num_rows)
            .field("row_groups", &self.metadata.row_groups.len())
            .field("columns", &self.columns)
            .finish()
    }
}

impl ParquetBatches {
    /// Opens `path` and reads its footer. The file stays open: every part reads this version of
    /// it, even if another is renamed over `path` while the stream runs.
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] naming the file: [`Error::Io`] if it cannot be opened, [`Error::Polars`]
    /// if it is not a Parquet file, an [`Error::Io`] of kind `InvalidData` if its footer is so
    /// corrupt that the decoder panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = polars_flock::parquet::ParquetBatches::open("no/such.parquet").unwrap_err();
    /// assert!(matches!(err, polars_flock::Error::InFile { .. }));
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(ParquetBatches {
            file: Arc::new(ParquetFile::open(path.as_ref())?),
            max_rows: usize::MAX,
            group: 0,
            offset_in_group: 0,
            offset: 0,
            finished: false,
        })
    }

    /// Reads only these columns (projection), in the order given. Default: all, in the file's
    /// order.
    ///
    /// # Examples
    ///
    /// ```
    /// # use polars_flock::polars::prelude::*;
    /// # use polars_flock::parquet::{ParquetBatches, write_parquet};
    /// # use polars_flock::streaming::Batch;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("t.parquet");
    /// write_parquet(&path, &df!("a" => [1i64], "b" => [2i64], "c" => [3i64])?, 10)?;
    /// let part = ParquetBatches::open(&path)?.columns(["c", "a"]).next().unwrap()?;
    /// assert_eq!(part.load()?.get_column_names(), ["c", "a"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let file = Arc::make_mut(&mut self.file);
        file.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Splits row groups bigger than `rows` into slices of at most `rows` rows, so that a batch
    /// stays small whatever the writer chose. `0` is treated as 1. Default: one batch per row
    /// group.
    ///
    /// # Examples
    ///
    /// ```
    /// # use polars_flock::polars::prelude::*;
    /// # use polars_flock::parquet::{ParquetBatches, write_parquet};
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("t.parquet");
    /// write_parquet(&path, &df!("a" => (0..1_000i64).collect::<Vec<_>>())?, 1_000)?;
    /// assert_eq!(ParquetBatches::open(&path)?.max_rows(300).count(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_rows(mut self, rows: usize) -> Self {
        self.max_rows = rows.max(1);
        self
    }

    /// The file's rows, from its footer.
    ///
    /// # Examples
    ///
    /// ```
    /// # use polars_flock::polars::prelude::*;
    /// # use polars_flock::parquet::{ParquetBatches, write_parquet};
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("t.parquet");
    /// write_parquet(&path, &df!("a" => [1i64, 2, 3])?, 2)?;
    /// assert_eq!(ParquetBatches::open(&path)?.num_rows(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn num_rows(&self) -> usize {
        self.file.metadata.num_rows
    }

    /// The file's row groups, from its footer.
    ///
    /// # Examples
    ///
    /// ```
    /// # use polars_flock::polars::prelude::*;
    /// # use polars_flock::parquet::{ParquetBatches, write_parquet};
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("t.parquet");
    /// write_parquet(&path, &df!("a" => [1i64, 2, 3])?, 2)?;
    /// assert_eq!(ParquetBatches::open(&path)?.num_row_groups(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn num_row_groups(&self) -> usize {
        self.file.metadata.row_groups.len()
    }
}

impl Iterator for ParquetBatches {
    type Item = Result<RowGroupPart>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if self.group == 0
            && self.offset_in_group == 0
            && let Err(missing) = self.file.projected_schema()
        {
            // A projected column the file lacks is an error, even in a file with no rows.
            self.finished = true;
            return Some(Err(missing));
        }
        let groups = &self.file.metadata.row_groups;
        while let Some(group) = groups.get(self.group) {
            let in_group = group.num_rows();
            if self.offset_in_group >= in_group {
                self.group += 1;
                self.offset_in_group = 0;
                continue;
            }
            let len = (in_group - self.offset_in_group).min(self.max_rows);
            let part = RowGroupPart {
                file: Arc::clone(&self.file),
                row_group: self.group,
                offset: self.offset,
                len,
            };
            self.offset_in_group += len;
            self.offset += len;
            return Some(Ok(part));
        }
        self.finished = true;
        // The footer's count must match its row groups': a lying footer is an error, not a
        // silently short (or long) stream.
        let expected = self.file.metadata.num_rows;
        (self.offset != expected).then(|| {
            let why = format!(
                "the footer says {expected} rows, its row groups hold {}",
                self.offset
            );
            Err(Error::in_file(
                &self.file.path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, why),
            ))
        })
    }
}

/// One row group of a Parquet file, or a slice of one: a [`Batch`] decoded when it is loaded.
///
/// # Examples
///
/// ```
/// # use polars_flock::polars::prelude::*;
/// # use polars_flock::parquet::{ParquetBatches, write_parquet};
/// use polars_flock::streaming::Batch;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("t.parquet");
/// write_parquet(&path, &df!("a" => [1i64, 2, 3])?, 2)?;
/// let second = ParquetBatches::open(&path)?.nth(1).unwrap()?;
/// assert_eq!((second.row_group(), second.first_row(), second.rows()), (1, 2, 1));
/// assert_eq!(second.load()?.column("a")?.i64()?.get(0), Some(3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RowGroupPart {
    file: Arc<ParquetFile>,
    row_group: usize,
    offset: usize,
    len: usize,
}

impl RowGroupPart {
    /// The row group's index in the file.
    ///
    /// # Examples
    ///
    /// See [`RowGroupPart`].
    pub fn row_group(&self) -> usize {
        self.row_group
    }

    /// The part's first row in the file.
    ///
    /// # Examples
    ///
    /// See [`RowGroupPart`].
    pub fn first_row(&self) -> usize {
        self.offset
    }
}

impl crate::sealed::Batch for RowGroupPart {
    fn source_rows(&self) -> Option<usize> {
        Some(self.file.metadata.num_rows)
    }
}

impl Batch for RowGroupPart {
    fn rows(&self) -> usize {
        self.len
    }

    /// Decodes the part (only its row group's pages are read), checking that it has the rows the
    /// footer promised.
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] with an [`Error::RowGroup`] (the row group and the rows) whose source is
    /// the decoder's error, or says that the decoder returned another number of rows.
    fn load(self) -> Result<DataFrame> {
        let file = &self.file;
        let decoded = contain(|| decode(file, self.offset, self.len));
        let rows = self.offset..self.offset + self.len;
        let source: crate::BoxError = match decoded {
            Ok(Ok(df)) if df.height() == self.len => return Ok(df),
            Ok(Ok(df)) => format!(
                "decoded {} rows where the footer says {}",
                df.height(),
                self.len
            )
            .into(),
            Ok(Err(e)) => Box::new(e),
            Err(panic) => format!("the decoder panicked: {}", panic.into_message()).into(),
        };
        Err(Error::in_file(
            &file.path,
            Error::RowGroup {
                row_group: self.row_group,
                rows,
                source,
            },
        ))
    }
}

fn decode(file: &ParquetFile, offset: usize, len: usize) -> PolarsResult<DataFrame> {
    // A duplicate of the handle opened with the footer (the reader maps it; no shared cursor is
    // read), never the path again.
    let mut reader = ParquetReader::new(file.handle.try_clone()?);
    reader.set_metadata(file.metadata.clone());
    reader
        .with_slice(Some((offset, len)))
        .with_columns(file.columns.clone())
        // Only the row group overlapping the slice is decoded; other strategies walk earlier
        // row groups.
        .read_parallel(ParallelStrategy::RowGroups)
        .finish()
}

/// Reads a whole Parquet file into a frame, one row group at a time (on the calling thread: in a
/// [`Files`](crate::Files) job, the worker that runs the file), with an optional projection.
///
/// # Errors
///
/// As [`ParquetBatches::open`] and [`RowGroupPart::load`]: [`Error::InFile`], naming the row
/// group when one fails to decode.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::parquet::{read_parquet, write_parquet};
/// use polars_flock::prelude::*;
///
/// let dir = tempfile::tempdir()?;
/// for i in 0..4i64 {
///     write_parquet(&dir.path().join(format!("{i}.parquet")), &df!("v" => [i, i * 10])?, 1_000)?;
/// }
/// // Each file decoded by the worker that runs it, concatenated in file order.
/// let files = Files::in_dir(dir.path(), Some("parquet"))?;
/// let all = files.par_concat(|p| Ok(read_parquet(p, None)?))?;
/// assert_eq!(all.column("v")?.i64()?.into_no_null_iter().collect::<Vec<_>>(), [0, 0, 1, 10, 2, 20, 3, 30]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_parquet(path: impl AsRef<Path>, columns: Option<&[&str]>) -> Result<DataFrame> {
    let mut batches = ParquetBatches::open(path)?;
    if let Some(columns) = columns {
        batches = batches.columns(columns.iter().copied());
    }
    batches.file.projected_schema()?;
    let batches_file = Arc::clone(&batches.file);
    let mut out: Option<DataFrame> = None;
    for part in batches {
        let df = part?.load()?;
        match out.as_mut() {
            None => out = Some(df),
            Some(acc) => {
                acc.vstack_mut_owned(df)?;
            }
        }
    }
    match out {
        Some(df) => Ok(df),
        // A file with no rows (no row group, or empty ones) still has its columns, as the
        // decoder types them.
        None => RowGroupPart {
            file: batches_file,
            row_group: 0,
            offset: 0,
            len: 0,
        }
        .load(),
    }
}

/// Writes `df` to a Parquet file at `path` atomically (through a temporary name, renamed when
/// complete), in row groups of at most `row_group_rows` rows, zstd-compressed.
///
/// # Errors
///
/// As [`ParquetSink::create`], [`ParquetSink::write`] and [`ParquetSink::finish`].
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::parquet::{ParquetBatches, write_parquet};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("t.parquet");
/// write_parquet(&path, &df!("a" => (0..10i64).collect::<Vec<_>>())?, 4)?;
/// assert_eq!(ParquetBatches::open(&path)?.num_row_groups(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_parquet(path: impl AsRef<Path>, df: &DataFrame, row_group_rows: usize) -> Result<()> {
    let mut sink = ParquetSink::create(path)?.row_group_rows(row_group_rows);
    sink.write(df)?;
    sink.finish()
}

/// Writes frames to a Parquet file as they arrive: a sink for
/// [`par_apply_batches`](crate::streaming::par_apply_batches), or for any loop.
///
/// Frames are buffered up to [`row_group_rows`](ParquetSink::row_group_rows) rows and written
/// as one row group (small outputs do not make tiny row groups; a big frame is split). The file
/// is written under a temporary name in the same directory and renamed to `path` by
/// [`finish`](ParquetSink::finish): a run that fails, panics or is interrupted leaves no partial
/// file under `path` (a sink dropped without `finish` removes its temporary file). Every frame
/// must have the first frame's schema.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::parquet::{ParquetBatches, ParquetCompression, ParquetSink};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("out.parquet");
/// let mut sink = ParquetSink::create(&path)?
///     .compression(ParquetCompression::Snappy)
///     .row_group_rows(1_000);
/// for i in 0..10i64 {
///     sink.write(&df!("i" => vec![i; 300])?)?; // 3,000 rows, in row groups of 1,000
/// }
/// assert!(!path.exists()); // not before `finish`
/// sink.finish()?;
/// assert_eq!(ParquetBatches::open(&path)?.num_row_groups(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ParquetSink {
    path: PathBuf,
    target: Option<AtomicFile>,
    file: Option<SharedFile>,
    compression: ParquetCompression,
    row_group_rows: usize,
    writer: Option<BatchedWriter<SharedFile>>,
    schema: FirstSchema,
    buffered: Vec<DataFrame>,
    buffered_rows: usize,
    frames: usize,
    rows: usize,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("path", &self.path)
            .field("compression", &self.compression)
            .field("row_group_rows", &self.row_group_rows)
            .field("frames", &self.frames)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// The temporary file, shared with the Parquet writer so that the sink can flush it and see the
/// error (a `BufWriter` dropped by the writer would swallow it).
#[derive(Debug, Clone)]
struct SharedFile(Arc<Mutex<BufWriter<SyncingFile>>>);

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        lock(&self.0).flush()
    }
}

impl ParquetSink {
    /// Creates the temporary file next to `path` (`path` itself appears at
    /// [`finish`](ParquetSink::finish)). Defaults: zstd, row groups of 512 × 1,024 rows.
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] naming `path` with an [`Error::Io`] if the directory cannot be written.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = polars_flock::parquet::ParquetSink::create("/no/such/dir/out.parquet").unwrap_err();
    /// assert!(matches!(err, polars_flock::Error::InFile { .. }));
    /// ```
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let in_file = |e| Error::in_file(&path, e);
        let target = AtomicFile::create(&path).map_err(in_file)?;
        let file = target.file().try_clone().map_err(in_file)?;
        Ok(ParquetSink {
            path,
            target: Some(target),
            file: Some(SharedFile(Arc::new(Mutex::new(BufWriter::new(
                SyncingFile::new(file),
            ))))),
            compression: ParquetCompression::default(),
            row_group_rows: 512 * 1024,
            writer: None,
            schema: FirstSchema::default(),
            buffered: Vec::new(),
            buffered_rows: 0,
            frames: 0,
            rows: 0,
        })
    }

    /// The compression of the pages. Default: zstd.
    ///
    /// # Examples
    ///
    /// See [`ParquetSink`].
    pub fn compression(mut self, compression: ParquetCompression) -> Self {
        self.compression = compression;
        self
    }

    /// The rows of a row group (`0` is treated as 1). Default: 524,288.
    ///
    /// # Examples
    ///
    /// See [`ParquetSink`].
    pub fn row_group_rows(mut self, rows: usize) -> Self {
        self.row_group_rows = rows.max(1);
        self
    }

    /// Buffers `df` and writes every full row group.
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] naming the final path: [`Error::SchemaMismatch`] (`block` is the frame's
    /// index, `rows` its rows in the output) if its schema differs from the first frame's;
    /// [`Error::Polars`] or [`Error::Io`] if writing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// let dir = tempfile::tempdir()?;
    /// let mut sink = polars_flock::parquet::ParquetSink::create(dir.path().join("x.parquet"))?;
    /// sink.write(&df!("a" => [1i64])?)?;
    /// let err = sink.write(&df!("b" => [1.0])?).unwrap_err(); // another schema
    /// let polars_flock::Error::InFile { source, .. } = err else { panic!("{err}") };
    /// assert!(matches!(*source, polars_flock::Error::SchemaMismatch { block: 1, .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write(&mut self, df: &DataFrame) -> Result<()> {
        self.count(df.schema(), df.height())?;
        self.buffered_rows += df.height();
        self.buffered.push(df.clone());
        while self.buffered_rows >= self.row_group_rows {
            let group = self.take_rows(self.row_group_rows)?;
            self.write_group(group)?;
        }
        Ok(())
    }

    /// Checks an output's schema against the first one's and counts it.
    fn count(&mut self, schema: &SchemaRef, rows: usize) -> Result<()> {
        if let Err(expected) = self.schema.check(schema) {
            let mismatch = Error::SchemaMismatch {
                block: self.frames,
                rows: self.rows..self.rows + rows,
                expected,
                found: schema.clone(),
            };
            return Err(Error::in_file(&self.path, mismatch));
        }
        self.frames += 1;
        self.rows += rows;
        Ok(())
    }

    /// Writes an output a worker encoded, in stream order.
    fn write_piece(&mut self, piece: Piece) -> Result<()> {
        let Piece::RowGroups {
            schema,
            rows,
            groups,
        } = piece
        else {
            let Piece::Frame(df) = piece else {
                unreachable!("matched above")
            };
            return self.write(&df);
        };
        self.count(&schema, rows)?;
        // Rows buffered before this output go first, as a row group of their own.
        if self.buffered_rows > 0 {
            let rest = self.take_rows(self.buffered_rows)?;
            self.write_group(rest)?;
        }
        self.writer(&schema)?;
        let writer = self.writer.as_mut().expect("started above");
        for (rows, columns) in groups {
            (writer.write_row_group(rows as u64, &columns))
                .map_err(|e| Error::in_file(&self.path, e))?;
        }
        Ok(())
    }

    /// Writes what is buffered and the footer, flushes the file to disk and renames it to its
    /// final path.
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] naming the final path if writing, flushing or renaming fails (the
    /// temporary file is then removed).
    ///
    /// # Examples
    ///
    /// See [`ParquetSink`].
    pub fn finish(mut self) -> Result<()> {
        // On an error, `Drop` removes the temporary file.
        self.complete()
    }

    fn complete(&mut self) -> Result<()> {
        if self.buffered_rows > 0 || self.writer.is_none() {
            // The rest, or an empty frame so that a file with no rows still has its schema.
            let rest = self.take_rows(self.buffered_rows)?;
            self.write_group(rest)?;
        }
        let writer = self.writer.take().expect("written above");
        writer.finish().map_err(|e| Error::in_file(&self.path, e))?;
        drop(writer);
        let file = self.file.take().expect("created");
        let file = Arc::try_unwrap(file.0).map_err(|_| {
            Error::in_file(
                &self.path,
                std::io::Error::other("the writer kept the file"),
            )
        })?;
        let written = file
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .into_inner()
            .map_err(|e| Error::in_file(&self.path, e.into_error()))?;
        written.finish();
        let target = self.target.take().expect("created");
        target.commit().map_err(|e| Error::in_file(&self.path, e))
    }

    /// The first `rows` buffered rows as one frame with aligned chunks.
    fn take_rows(&mut self, rows: usize) -> Result<DataFrame> {
        let mut out: Option<DataFrame> = None;
        let mut need = rows;
        while need > 0 || out.is_none() {
            let Some(front) = self.buffered.first_mut() else {
                break;
            };
            let part = if front.height() <= need {
                self.buffered.remove(0)
            } else {
                let head = front.slice(0, need);
                *front = front.slice(need as i64, front.height() - need);
                head
            };
            need -= part.height();
            match out.as_mut() {
                None => out = Some(part),
                Some(acc) => {
                    acc.vstack_mut_owned(part)?;
                }
            }
            if need == 0 {
                break;
            }
        }
        self.buffered_rows -= rows - need;
        let mut out = out.unwrap_or_else(|| DataFrame::empty_with_schema(&self.schema_or_empty()));
        // The batched writer requires aligned chunks, and makes one row group per chunk.
        out.rechunk_mut_par();
        Ok(out)
    }

    fn schema_or_empty(&self) -> Schema {
        self.schema
            .schema()
            .map(|s| s.as_ref().clone())
            .unwrap_or_default()
    }

    fn write_group(&mut self, group: DataFrame) -> Result<()> {
        let writer = self.writer(group.schema())?;
        writer
            .write_batch(&group)
            .map_err(|e| Error::in_file(&self.path, e))
    }

    /// The file's writer, started with `schema` (the first output's) on first use.
    fn writer(&mut self, schema: &Schema) -> Result<&mut BatchedWriter<SharedFile>> {
        if self.writer.is_none() {
            let file = self.file.clone().expect("created");
            let writer = ParquetWriter::new(file)
                .with_compression(self.compression)
                .batched(schema)
                .map_err(|e| Error::in_file(&self.path, e))?;
            self.writer = Some(writer);
        }
        Ok(self.writer.as_mut().expect("started above"))
    }
}

impl<'s> Stream<'s> {
    /// A stream of `source`'s batches whose outputs `sink` writes, each **encoded and compressed
    /// by the worker that made it**: only the write of the compressed pages is serial, so the
    /// whole job (decode → your function → encode → compress → write) runs on every thread. Call
    /// [`ParquetSink::finish`] after the verb; after an error, drop the sink instead (its
    /// temporary file is removed and no file appears under its path).
    ///
    /// An output of at least 16,384 rows (or of a quarter of the sink's
    /// [`row_group_rows`](ParquetSink::row_group_rows), if that is smaller) becomes row groups
    /// of its own, split at `row_group_rows`; smaller ones are buffered and merged as
    /// [`ParquetSink::write`] does, on the thread that writes. So the file's row groups follow
    /// the outputs' sizes rather than `row_group_rows` alone.
    /// An output that cannot be encoded (a dtype Parquet cannot store) fails its batch with an
    /// [`Error::InFile`] naming the sink's path.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::parquet::{ParquetBatches, ParquetSink, read_parquet, write_parquet};
    /// use polars_flock::streaming::Stream;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let (input, output) = (dir.path().join("in.parquet"), dir.path().join("out.parquet"));
    /// write_parquet(&input, &df!("x" => (0..10_000i64).collect::<Vec<_>>())?, 1_000)?;
    ///
    /// let mut sink = ParquetSink::create(&output)?.row_group_rows(1_000);
    /// let source = ParquetBatches::open(&input)?;
    /// let rows = source.num_rows();
    /// let stream = Stream::to_parquet(source, &mut sink).window(4).total_rows(rows);
    /// let summary = stream.par_apply_rows("y", |row| Ok(row.i64("x")? * 2))?;
    /// drop(stream);
    /// sink.finish()?;
    /// assert_eq!((summary.batches, summary.rows_out), (10, 10_000));
    /// let back = read_parquet(&output, None)?;
    /// assert_eq!(back.column("y")?.i64()?.get(9_999), Some(19_998));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_parquet<I, B, E>(source: I, sink: &'s mut ParquetSink) -> Self
    where
        I: IntoIterator<Item = std::result::Result<B, E>>,
        I::IntoIter: Send + 's,
        B: Batch + 's,
        E: Into<crate::BoxError>,
    {
        let encoder = Encoder {
            path: sink.path.clone(),
            compression: sink.compression,
            row_group_rows: sink.row_group_rows,
        };
        let encode = move |out| Ok(Output::Parquet(encoder.encode(out)?));
        let write = move |out| match out {
            Output::Parquet(piece) => Ok(sink.write_piece(piece)?),
            Output::Frame(df) => Ok(sink.write(&df)?),
        };
        Stream::with_parts(source, Box::new(encode), Box::new(write))
    }
}

/// An output as a worker of a [`Stream::to_parquet`] hands it on: its row groups, encoded and
/// compressed, or a frame too small for a row group of its own.
pub(crate) enum Piece {
    Frame(DataFrame),
    RowGroups {
        schema: SchemaRef,
        rows: usize,
        /// Per row group: its rows, and per leaf column its compressed pages.
        groups: Vec<(usize, Vec<Vec<CompressedPage>>)>,
    },
}

/// Outputs of at least this many rows (or a quarter of the sink's row groups, if smaller) are
/// encoded by their worker as row groups of their own: a reader pays little for row groups of
/// 16k rows, and batches of a few tens of thousands of rows (a streaming engine's morsels, IPC
/// batches) are then encoded in parallel too.
const MIN_OWN_ROW_GROUP: usize = 16_384;

/// What a worker needs to encode an output as the sink's writer would: the same options as
/// `ParquetWriter` gives its `BatchedWriter` (statistics by default, version 1 pages, the
/// default page size).
struct Encoder {
    path: PathBuf,
    compression: ParquetCompression,
    row_group_rows: usize,
}

impl Encoder {
    fn encode(&self, out: DataFrame) -> Result<Piece> {
        if out.height() < (self.row_group_rows / 4).clamp(1, MIN_OWN_ROW_GROUP) {
            return Ok(Piece::Frame(out));
        }
        self.row_groups(&out)
            .map_err(|e| Error::in_file(&self.path, e))
    }

    fn row_groups(&self, out: &DataFrame) -> PolarsResult<Piece> {
        let arrow = out.schema().to_arrow(CompatLevel::newest());
        let parquet = to_parquet_schema(&arrow)?;
        let encodings = get_encodings(&arrow);
        let options = WriteOptions {
            statistics: StatisticsOptions::default(),
            version: Version::V1,
            compression: self.compression.into(),
            data_page_size: None,
        };
        let mut groups = Vec::new();
        let mut offset = 0;
        while offset < out.height() {
            let len = (out.height() - offset).min(self.row_group_rows);
            let mut group = out.slice(offset as i64, len);
            group.rechunk_mut_par();
            for batch in group.iter_chunks(CompatLevel::newest(), false) {
                let mut columns = Vec::new();
                let fields = batch.columns().iter().zip(parquet.fields());
                for ((array, type_), encoding) in fields.zip(encodings.iter()) {
                    for pages in array_to_columns(array, type_.clone(), options, encoding)? {
                        let compressed =
                            pages.map(|page| Ok(compress(page?, Vec::new(), options.compression)?));
                        columns.push(compressed.collect::<PolarsResult<Vec<_>>>()?);
                    }
                }
                groups.push((batch.len(), columns));
            }
            offset += len;
        }
        Ok(Piece::RowGroups {
            schema: out.schema().clone(),
            rows: out.height(),
            groups,
        })
    }
}

impl Drop for ParquetSink {
    fn drop(&mut self) {
        // Not finished (a failure, a panic, an early return): the writer is dropped first, then
        // the temporary file is removed, so that no partial file is left.
        drop(self.writer.take());
        drop(self.file.take());
        drop(self.target.take());
    }
}
