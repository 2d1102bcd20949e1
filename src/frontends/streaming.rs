//! Bigger than RAM: the verbs applied to a stream of batches, with a bounded number of batches in
//! flight and the outputs handed on in input order (feature `streaming`).
//!
//! A [`Stream`] is an input like a frame: [`StreamParApply`] gives it the row, typed and block
//! verbs, per-worker and keep-going, with any [`Flock`]'s options through [`Flock::on`]. A
//! source is any iterator of frames (or of other [`Batch`]es): [`IpcBatches`] reads an Arrow IPC
//! file one record batch at a time; a Polars lazy query's `LazyFrame::collect_batches` (Polars'
//! streaming engine, with the features your build enables) is one too; with feature `parquet`,
//! `ParquetBatches` hands out row groups decoded by the worker that runs them. A sink is any
//! `FnMut(DataFrame)`: [`IpcSink`] writes an Arrow IPC file batch by batch, a closure that adds
//! to a total folds the stream, and `Stream::to_parquet` writes Parquet encoded in the workers.
//! [`par_apply_batches`] and [`apply_batches_in_order`] are the earlier free functions.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::ops::Range;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use polars_arrow::io::ipc::read::FileReader;
use polars_arrow::io::ipc::write::FileWriter;

pub use crate::frontends::stream::{Stream, StreamParApply};

use crate::atomic::{AtomicFile, SyncingFile};
use crate::concat::FirstSchema;
use crate::control::{Stop, with_counts};
use crate::error::{Error, Result, UserCode};
use crate::exec::source::{Counts, Rows};
use crate::exec::{Block, contain, run_block};
use crate::flock::Flock;
use crate::ipc;

/// What a streaming call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamSummary {
    /// Batches read, processed and handed to the sink.
    pub batches: usize,
    /// Rows read.
    pub rows_in: usize,
    /// Rows handed to the sink.
    pub rows_out: usize,
    /// The most batches that were in flight at once (read, not yet handed to the sink): never
    /// more than the window.
    pub max_in_flight: usize,
    /// Retries of batches and rows ([`Flock::retries`](crate::Flock::retries)).
    pub retries: usize,
}

/// Applies `f` to every batch of `source` in parallel, at most `window` batches in flight, and
/// hands the outputs to `sink` in input order.
///
/// Runs on the executor's source mode: the pool's workers read the source a batch at a time
/// (one at a time, in order), only while fewer than `window` batches are in flight, load and
/// process the batch, and hand every output that is next in order to `sink` (one at a time, in
/// order: whichever worker completes the next batch writes it, so `source` and `sink` must be
/// `Send`); a batch leaves the window when its output has been given to `sink`. No thread polls
/// or waits on a channel: the calling thread waits for the pool's scope, as every call does. So
/// peak memory is about `window × (input batch + output batch)` plus what the source and the sink
/// buffer, whatever the size of the dataset. A window of twice the pool's threads keeps every
/// thread busy while one slow batch holds up the in-order sink. `window = 1` processes one batch
/// at a time, in order (see [`apply_batches_in_order`] for closures with state).
///
/// Cancellation and the timeout of `flock` are checked before each batch is read; its chunk size
/// and progress reporting are not used (a stream's length is not known up front).
///
/// # Errors
///
/// - [`Error::InvalidOption`] for `window = 0`;
/// - [`Error::Block`] (`block` = the batch's index, `rows` = its rows in the stream) if `f` fails,
///   [`Error::Panicked`] if it panics;
/// - the source's and the sink's own errors;
/// - [`Error::Cancelled`] / [`Error::TimedOut`], counting the batches (`blocks`) and rows read so
///   far and those handed to the sink (`completed_*`).
///
/// The first failure in stream order wins; every batch before it is still handed to the sink, none
/// after it.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::streaming::{IpcBatches, IpcSink, par_apply_batches, write_ipc};
/// use polars_flock::Flock;
///
/// let dir = tempfile::tempdir()?;
/// let (input, output) = (dir.path().join("in.arrow"), dir.path().join("out.arrow"));
/// // A file of 10 batches of 1,000 rows.
/// let batches = (0..10).map(|b| df!("x" => (0..1_000).map(|i| (b * 1_000 + i) as f64).collect::<Vec<_>>()));
/// write_ipc(&input, batches)?;
///
/// let mut sink = IpcSink::create(&output)?;
/// let summary = par_apply_batches(
///     &Flock::new(),
///     4,
///     IpcBatches::open(&input)?,
///     |batch| {
///         let doubled = (batch.column("x")?.as_materialized_series() * 2.0).with_name("y".into());
///         Ok(batch.hstack(&[doubled.into_column()])?)
///     },
///     |out| Ok(sink.write(&out)?),
/// )?;
/// sink.finish()?;
/// assert_eq!((summary.batches, summary.rows_out), (10, 10_000));
/// assert!(summary.max_in_flight <= 4);
///
/// // Folding instead of writing: the sink keeps a running total.
/// let mut total = 0.0;
/// par_apply_batches(&Flock::new(), 4, IpcBatches::open(&output)?, Ok, |out| {
///     total += out.column("y")?.f64()?.sum().unwrap_or(0.0);
///     Ok(())
/// })?;
/// assert_eq!(total, 2.0 * (0..10_000).sum::<i64>() as f64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn par_apply_batches<I, B, E, F, S>(
    flock: &Flock,
    window: usize,
    source: I,
    f: F,
    sink: S,
) -> Result<StreamSummary>
where
    I: IntoIterator<Item = std::result::Result<B, E>>,
    B: Batch,
    E: Into<crate::BoxError>,
    I::IntoIter: Send,
    F: Fn(DataFrame) -> std::result::Result<DataFrame, crate::BoxError> + Sync,
    S: FnMut(DataFrame) -> std::result::Result<(), crate::BoxError> + Send,
{
    flock
        .on(&Stream::new(source, sink).window(window))
        .par_apply_blocks(f)
}

impl From<Counts> for StreamSummary {
    fn from(counts: Counts) -> Self {
        StreamSummary {
            batches: counts.batches,
            rows_in: counts.rows_in,
            rows_out: counts.rows_out,
            max_in_flight: counts.max_in_flight,
            retries: counts.retries,
        }
    }
}

impl<B: Batch> Rows for B {
    fn rows(&self) -> usize {
        Batch::rows(self)
    }
    fn source_rows(&self) -> Option<usize> {
        crate::sealed::Batch::source_rows(self)
    }
}

/// A batch of a stream: a frame, or a part of a file decoded by the worker that runs it (a
/// Parquet row group, see `parquet::ParquetBatches` with feature `parquet`), so that decoding runs
/// in parallel and only the batches in flight are in memory.
///
/// Sealed: implemented for `DataFrame` and the crate's file batches.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::streaming::Batch;
///
/// let df = df!("a" => [1i64, 2, 3])?;
/// assert_eq!(df.rows(), 3);
/// assert_eq!(df.load()?.height(), 3); // a frame is already loaded
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Batch: Send + crate::sealed::Batch {
    /// Its rows, known before it is loaded (for a file's part, from the file's metadata).
    fn rows(&self) -> usize;
    /// The frame: for a file's part, decoded now, with exactly [`rows`](Batch::rows) rows or an
    /// error naming the file and the part.
    ///
    /// # Errors
    ///
    /// For a file's part: [`Error::InFile`] with the part's error.
    fn load(self) -> Result<DataFrame>;
}

impl crate::sealed::Batch for DataFrame {}

impl Batch for DataFrame {
    fn rows(&self) -> usize {
        self.height()
    }
    fn load(self) -> Result<DataFrame> {
        Ok(self)
    }
}

/// The source's next batch, under the guard (`index` and `row` locate a panic).
fn next_batch<I, B, E>(source: &mut I, index: usize, row: usize) -> Result<Option<B>>
where
    I: Iterator<Item = std::result::Result<B, E>>,
    E: Into<crate::BoxError>,
{
    match contain(|| source.next()) {
        Ok(None) => Ok(None),
        Ok(Some(batch)) => batch.map(Some).map_err(|e| Error::of_closure(e.into())),
        Err(panic) => Err(panic.at(UserCode::Source, index, row..row, None)),
    }
}

/// Gives batch `index`'s output to the sink, under the guard; its height.
fn hand_to_sink(
    sink: &mut impl FnMut(DataFrame) -> std::result::Result<(), crate::BoxError>,
    out: DataFrame,
    index: usize,
    rows: Range<usize>,
) -> Result<usize> {
    let height = out.height();
    match contain(|| sink(out)) {
        Ok(result) => result.map(|()| height).map_err(Error::of_closure),
        Err(panic) => Err(panic.at(UserCode::Sink, index, rows, None)),
    }
}

/// Applies `f` to every batch of `source` one at a time, in order, on the calling thread, and
/// hands each output to `sink`: the sequential mode, for closures with state (a running total
/// carried from batch to batch, a model updated in order).
///
/// # Errors
///
/// As [`par_apply_batches`] (without `window`).
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::streaming::apply_batches_in_order;
/// use polars_flock::Flock;
///
/// let batches = (0..3i64).map(|b| df!("x" => [b * 2, b * 2 + 1]));
/// // A running sum across batches: needs the batches in order, one at a time.
/// let mut running = 0;
/// let mut sums = Vec::new();
/// apply_batches_in_order(
///     &Flock::new(),
///     batches,
///     |batch| {
///         let x = batch.column("x")?.i64()?;
///         let cum: Vec<i64> = x.into_no_null_iter().map(|v| { running += v; running }).collect();
///         Ok(batch.hstack(&[Column::new("cum".into(), cum)])?)
///     },
///     |out| {
///         sums.extend(out.column("cum")?.i64()?.into_no_null_iter());
///         Ok(())
///     },
/// )?;
/// assert_eq!(sums, [0, 1, 3, 6, 10, 15]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn apply_batches_in_order<I, B, E, F, S>(
    flock: &Flock,
    source: I,
    mut f: F,
    mut sink: S,
) -> Result<StreamSummary>
where
    I: IntoIterator<Item = std::result::Result<B, E>>,
    B: Batch,
    E: Into<crate::BoxError>,
    F: FnMut(DataFrame) -> std::result::Result<DataFrame, crate::BoxError>,
    S: FnMut(DataFrame) -> std::result::Result<(), crate::BoxError>,
{
    let stop = Stop::start(flock);
    let mut summary = StreamSummary::default();
    let mut source = source.into_iter();
    for index in 0.. {
        if let Some(stopped) = stop.check() {
            return Err(with_counts(
                stopped,
                index,
                index,
                summary.rows_in,
                summary.rows_in,
            ));
        }
        let Some(batch) = next_batch(&mut source, index, summary.rows_in)? else {
            break;
        };
        let range = summary.rows_in..summary.rows_in + batch.rows();
        summary.rows_in = range.end;
        summary.max_in_flight = 1;
        let block = Block::new(index, range.clone(), &stop);
        let (out, _) = run_block(&block, || {
            let mut batch = block.inputs(batch.load()?);
            (block.attempt_stateless(|| f(batch())))
                .map_err(|source| Error::of_block(source, index, range.clone()))
        });
        summary.rows_out += hand_to_sink(&mut sink, out?, index, range)?;
        summary.batches += 1;
    }
    Ok(summary)
}

/// An Arrow IPC file read one record batch at a time: a source for [`par_apply_batches`].
///
/// Only the batch being read is in memory (plus the file's footer); each batch becomes a
/// `DataFrame` without copying.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::streaming::{IpcBatches, write_ipc};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("data.arrow");
/// write_ipc(&path, [df!("n" => [1i64, 2]), df!("n" => [3i64])])?;
/// let batches = IpcBatches::open(&path)?;
/// assert_eq!(batches.num_batches(), 2);
/// let heights: Vec<usize> = batches.map(|b| b.map(|df| df.height())).collect::<Result<_, _>>()?;
/// assert_eq!(heights, [2, 1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct IpcBatches {
    reader: FileReader<BufReader<File>>,
    path: PathBuf,
    batches: usize,
}

impl std::fmt::Debug for IpcBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcBatches")
            .field("path", &self.path)
            .field("batches", &self.batches)
            .finish_non_exhaustive()
    }
}

impl IpcBatches {
    /// Opens an Arrow IPC file (Feather v2) and reads its footer.
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] naming the file if it cannot be opened or is not an IPC file.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = polars_flock::streaming::IpcBatches::open("no/such.arrow").unwrap_err();
    /// assert!(matches!(err, polars_flock::Error::InFile { .. }));
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::in_file(path, e))?;
        let (reader, _) = ipc::reader(BufReader::new(file)).map_err(|e| Error::in_file(path, e))?;
        Ok(Self {
            batches: reader.metadata().blocks.len(),
            reader,
            path: path.to_path_buf(),
        })
    }

    /// The number of record batches in the file.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::streaming::{IpcBatches, write_ipc};
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("one.arrow");
    /// write_ipc(&path, [df!("a" => [1i64])])?;
    /// assert_eq!(IpcBatches::open(&path)?.num_batches(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn num_batches(&self) -> usize {
        self.batches
    }
}

impl Iterator for IpcBatches {
    type Item = Result<DataFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.reader.next()?;
        Some(
            batch
                .map_err(|e| Error::in_file(&self.path, e))
                .and_then(|batch| {
                    ipc::batch_to_frame(batch).map_err(|e| Error::in_file(&self.path, e))
                }),
        )
    }
}

/// Writes frames to an Arrow IPC file batch by batch: a sink for [`par_apply_batches`].
///
/// The schema is taken from the first frame; every later frame must have the same one. The file
/// is written under a temporary name in the same directory and renamed to its path by
/// [`finish`](IpcSink::finish), after the footer: a run that fails, panics or is interrupted
/// leaves no partial file under the path (a sink dropped without `finish` removes its temporary
/// file).
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::streaming::{IpcBatches, IpcSink};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("out.arrow");
/// let mut sink = IpcSink::create(&path)?;
/// sink.write(&df!("s" => ["a", "b"])?)?;
/// sink.write(&df!("s" => ["c"])?)?;
/// sink.finish()?;
/// assert_eq!(IpcBatches::open(&path)?.count(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct IpcSink {
    path: PathBuf,
    target: Option<AtomicFile>,
    file: Option<BufWriter<SyncingFile>>,
    writer: Option<FileWriter<BufWriter<SyncingFile>>>,
    schema: FirstSchema,
    /// Frames and rows accepted so far (to locate a schema mismatch).
    frames: usize,
    rows: usize,
}

impl std::fmt::Debug for IpcSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcSink")
            .field("path", &self.path)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl IpcSink {
    /// Creates the temporary file next to `path` (`path` itself appears, or is replaced, at
    /// [`finish`](IpcSink::finish)).
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] naming the file if its directory cannot be written.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let sink = polars_flock::streaming::IpcSink::create(dir.path().join("x.arrow"))?;
    /// sink.finish()?; // an empty file: no columns, no batches
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let in_file = |e| Error::in_file(path, e);
        let target = AtomicFile::create(path).map_err(in_file)?;
        let file = target.file().try_clone().map_err(in_file)?;
        Ok(Self {
            path: path.to_path_buf(),
            target: Some(target),
            file: Some(BufWriter::new(SyncingFile::new(file))),
            writer: None,
            schema: FirstSchema::default(),
            frames: 0,
            rows: 0,
        })
    }

    /// Appends `df` as one or more record batches (one per run of aligned chunks).
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] naming the file if writing fails, or if `df`'s schema differs from the
    /// first frame's (its `source` is then an [`Error::SchemaMismatch`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// let dir = tempfile::tempdir()?;
    /// let mut sink = polars_flock::streaming::IpcSink::create(dir.path().join("x.arrow"))?;
    /// sink.write(&df!("a" => [1i64])?)?;
    /// let err = sink.write(&df!("b" => [1.0])?).unwrap_err(); // another schema
    /// let polars_flock::Error::InFile { source, .. } = err else { panic!("{err}") };
    /// assert!(matches!(
    ///     *source,
    ///     polars_flock::Error::SchemaMismatch { block: 1, ref rows, .. } if *rows == (1..2)
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write(&mut self, df: &DataFrame) -> Result<()> {
        if let Err(expected) = self.schema.check(df.schema()) {
            let mismatch = Error::SchemaMismatch {
                block: self.frames,
                rows: self.rows..self.rows + df.height(),
                expected,
                found: df.schema().clone(),
            };
            return Err(Error::in_file(&self.path, mismatch));
        }
        self.frames += 1;
        self.rows += df.height();
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => {
                let file = self.file.take().ok_or_else(|| {
                    Error::in_file(&self.path, std::io::Error::other("sink is closed"))
                })?;
                let writer =
                    ipc::writer(file, df.schema()).map_err(|e| Error::in_file(&self.path, e))?;
                self.writer.insert(writer)
            }
        };
        ipc::write_frame(writer, df).map_err(|e| Error::in_file(&self.path, e))
    }

    /// Writes the footer, flushes the file to disk and renames it to its path.
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] naming the file if writing, flushing or renaming fails (the temporary
    /// file is then removed).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("x.arrow");
    /// let mut sink = polars_flock::streaming::IpcSink::create(&path)?;
    /// sink.write(&df!("a" => [1i64])?)?;
    /// sink.finish()?;
    /// assert!(std::fs::metadata(&path)?.len() > 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish(mut self) -> Result<()> {
        if self.writer.is_none() {
            // Nothing written: an IPC file with an empty schema.
            let file = self.file.take().ok_or_else(|| {
                Error::in_file(&self.path, std::io::Error::other("sink is closed"))
            })?;
            self.writer = Some(
                ipc::writer(file, &Schema::default()).map_err(|e| Error::in_file(&self.path, e))?,
            );
        }
        let mut writer = self.writer.take().expect("started above");
        let in_file = |e: Error| Error::in_file(&self.path, e);
        writer.finish().map_err(|e| in_file(e.into()))?;
        let file = writer.into_inner().into_inner();
        file.map_err(|e| in_file(e.into_error().into()))?.finish();
        let target = self.target.take().expect("created");
        target.commit().map_err(|e| in_file(e.into()))
    }
}

/// Writes frames (or results of frames) to a new Arrow IPC file, batch by batch, without holding
/// more than one in memory.
///
/// # Errors
///
/// The first frame's error, or [`Error::InFile`] naming the file.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::streaming::{IpcBatches, write_ipc};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("gen.arrow");
/// write_ipc(&path, (0..5).map(|i| df!("i" => [i as i64])))?;
/// assert_eq!(IpcBatches::open(&path)?.num_batches(), 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_ipc<I, E>(path: impl AsRef<Path>, frames: I) -> Result<()>
where
    I: IntoIterator<Item = std::result::Result<DataFrame, E>>,
    E: Into<crate::BoxError>,
{
    let mut sink = IpcSink::create(path)?;
    for frame in frames {
        sink.write(&frame.map_err(|e| Error::of_closure(e.into()))?)?;
    }
    sink.finish()
}
