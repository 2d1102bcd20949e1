//! A stream as an input like the others: [`Stream`] (a source of batches, where the outputs go,
//! how many batches may be in flight) and the verbs on it, run on the executor's source mode.

use std::ops::Range;
use std::sync::Mutex;

use polars::prelude::*;

use crate::cell::FromColumns;
use crate::control::{Report, Unit};
use crate::error::{BoxError, Error, Result};
use crate::exec::source::{Observers, Rows, run_source};
use crate::exec::{
    Block, KeepGoing as Units, StateSource, Stateless, lock, with_progress, with_watch,
};
use crate::flock::Flock;
use crate::frame::{apply_columns, apply_columns_keep_going, apply_rows, apply_rows_keep_going};
use crate::row::Row;
use crate::sealed::StreamInput;
use crate::stats::Stats;
use crate::streaming::{Batch, StreamSummary};
use crate::value::{OutputNames, RowOutput};
use crate::view::{KeepGoing, On, PerWorker, TypedOutput, default_flock};

/// A batch of any source, its type erased.
trait Loadable: Send {
    fn rows(&self) -> usize;
    fn source_rows(&self) -> Option<usize>;
    fn load(self: Box<Self>) -> Result<DataFrame>;
}

impl<B: Batch> Loadable for B {
    fn rows(&self) -> usize {
        Batch::rows(self)
    }
    fn source_rows(&self) -> Option<usize> {
        crate::sealed::Batch::source_rows(self)
    }
    fn load(self: Box<Self>) -> Result<DataFrame> {
        Batch::load(*self)
    }
}

impl Rows for Box<dyn Loadable + '_> {
    fn rows(&self) -> usize {
        (**self).rows()
    }
    fn source_rows(&self) -> Option<usize> {
        (**self).source_rows()
    }
}

/// What a worker hands on: an output frame, or one a sink encoded in the worker.
pub(crate) enum Output {
    Frame(DataFrame),
    #[cfg(feature = "parquet")]
    Parquet(crate::parquet::Piece),
}

type Source<'s> = Box<dyn Iterator<Item = Result<Box<dyn Loadable + 's>>> + Send + 's>;
type Encode<'s> = Box<dyn Fn(DataFrame) -> Result<Output> + Send + Sync + 's>;
type Write<'s> = Box<dyn FnMut(Output) -> std::result::Result<(), BoxError> + Send + 's>;

struct Parts<'s> {
    source: Source<'s>,
    encode: Encode<'s>,
    write: Write<'s>,
}

/// A stream of batches as an input: the verbs of [`StreamParApply`] (rows, blocks, per-worker,
/// keep-going, with any [`Flock`]'s options through [`Flock::on`]) run on every batch in
/// parallel, at most [`window`](Stream::window) batches in flight, and hand the outputs to the
/// stream's sink in input order. Bigger than RAM: peak memory is about `window × (input batch +
/// output batch)`.
///
/// A source is any iterator of `Result<B, E>` where `B` is a [`Batch`]: frames, Arrow IPC record
/// batches ([`IpcBatches`](crate::streaming::IpcBatches)), Parquet row groups decoded by the
/// worker that runs them (`ParquetBatches`, feature `parquet`). A sink is any `FnMut(DataFrame)`,
/// or a `ParquetSink` that encodes and compresses each output in the worker that made it
/// (`Stream::to_parquet`, feature `parquet`). Both are `Send`: whichever worker reads the next batch reads it, and
/// whichever completes the next output in order hands it on (one at a time, in order).
///
/// A stream runs once: a second verb on it returns [`Error::InvalidOption`].
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
/// use polars_flock::streaming::Stream;
///
/// let batches = (0..10i64).map(|b| df!("x" => (b * 100..b * 100 + 100).collect::<Vec<_>>()));
/// let mut total = 0;
/// let stream = Stream::new(batches, |out| {
///     total += out.column("y")?.i64()?.sum().unwrap_or(0);
///     Ok(())
/// });
/// let summary = Flock::new().on(&stream).par_apply_rows("y", |row| Ok(row.i64("x")? * 2))?;
/// drop(stream);
/// assert_eq!((summary.batches, summary.rows_out), (10, 1_000));
/// assert_eq!(total, 2 * (0..1_000).sum::<i64>());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Stream<'s> {
    parts: Mutex<Option<Parts<'s>>>,
    window: Option<usize>,
    total_rows: Option<usize>,
}

impl std::fmt::Debug for Stream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("window", &self.window)
            .field("total_rows", &self.total_rows)
            .field("used", &lock(&self.parts).is_none())
            .finish()
    }
}

impl<'s> Stream<'s> {
    /// A stream of `source`'s batches whose outputs go to `sink`, in input order.
    ///
    /// # Examples
    ///
    /// See [`Stream`].
    pub fn new<I, B, E, S>(source: I, mut sink: S) -> Self
    where
        I: IntoIterator<Item = std::result::Result<B, E>>,
        I::IntoIter: Send + 's,
        B: Batch + 's,
        E: Into<BoxError>,
        S: FnMut(DataFrame) -> std::result::Result<(), BoxError> + Send + 's,
    {
        let write = move |out| match out {
            Output::Frame(df) => sink(df),
            #[cfg(feature = "parquet")]
            Output::Parquet(_) => unreachable!("only a Parquet stream encodes"),
        };
        Self::with_parts(
            source,
            Box::new(|df| Ok(Output::Frame(df))),
            Box::new(write),
        )
    }

    pub(crate) fn with_parts<I, B, E>(source: I, encode: Encode<'s>, write: Write<'s>) -> Self
    where
        I: IntoIterator<Item = std::result::Result<B, E>>,
        I::IntoIter: Send + 's,
        B: Batch + 's,
        E: Into<BoxError>,
    {
        let source = source.into_iter().map(|batch| match batch {
            Ok(batch) => Ok(Box::new(batch) as Box<dyn Loadable + 's>),
            Err(e) => Err(Error::of_closure(e.into())),
        });
        Stream {
            parts: Mutex::new(Some(Parts {
                source: Box::new(source),
                encode,
                write,
            })),
            window: None,
            total_rows: None,
        }
    }

    /// At most `batches` batches in flight: read and not yet handed to the sink. A window of
    /// twice the pool's threads keeps every thread busy while one slow batch holds up the
    /// in-order sink; `1` processes one batch at a time, in order.
    ///
    /// Default: twice the pool's threads. `0` is rejected with [`Error::InvalidOption`] when the
    /// stream runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::streaming::Stream;
    ///
    /// let batches = (0..8i64).map(|b| df!("x" => [b]));
    /// let stream = Stream::new(batches, |_| Ok(())).window(3);
    /// let summary = stream.par_apply_blocks(Ok)?;
    /// assert!(summary.max_in_flight <= 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn window(mut self, batches: usize) -> Self {
        self.window = Some(batches);
        self
    }

    /// The rows the source will yield: the total of the progress callback and bar. Default: what
    /// the source's file says (a Parquet footer, read with the first batch), or unknown (the total
    /// reported is 0) for other sources.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::streaming::Stream;
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let flock = Flock::new().on_progress(move |done, total| log.lock().unwrap().push((done, total)));
    /// let batches = (0..4i64).map(|b| df!("x" => [b, b]));
    /// let stream = Stream::new(batches, |_| Ok(())).total_rows(8);
    /// flock.on(&stream).par_apply_blocks(Ok)?;
    /// assert_eq!(seen.lock().unwrap().last(), Some(&(8, 8)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn total_rows(mut self, rows: usize) -> Self {
        self.total_rows = Some(rows);
        self
    }

    /// Runs `task` on every batch (which it loads, in the worker), then the sink's encoding, and
    /// hands the outputs on in order; `note` sees each task output before it goes (keep-going
    /// reports).
    fn run<S, X>(
        &self,
        flock: &Flock,
        states: &(impl StateSource<S> + ?Sized),
        task: impl Fn(&Block<'_>, &mut S, Box<dyn Loadable + 's>) -> Result<(Option<DataFrame>, X)>
        + Sync,
        mut note: impl FnMut(X) + Send,
    ) -> Result<(StreamSummary, Stats, Option<Error>)>
    where
        S: Send,
        X: Send,
    {
        let Some(Parts {
            mut source,
            encode,
            mut write,
        }) = lock(&self.parts).take()
        else {
            return Err(Error::InvalidOption {
                option: "stream",
                value: "already run".into(),
                reason: "a stream's source and sink are used by its first verb",
            });
        };
        let window = match self.window {
            Some(window) => window,
            None => 2 * flock.plan(1)?.threads(),
        };
        let task = |block: &Block<'_>, state: &mut S, batch: Box<dyn Loadable + 's>| {
            let (out, extra) = task(block, state, batch)?;
            let out = match out {
                Some(out) => Some((out.height(), encode(out)?)),
                None => None,
            };
            Ok((out, extra))
        };
        let mut sink = |(out, extra): (Option<(usize, Output)>, X)| {
            note(extra);
            match out {
                Some((height, out)) => write(out).map(|()| height),
                None => Ok(0),
            }
        };
        let (counts, late) = with_progress(
            flock,
            self.total_rows.unwrap_or(0),
            |reporter| {
                with_watch(flock, |watch| {
                    run_source(
                        flock,
                        window,
                        &mut source,
                        states,
                        task,
                        &mut sink,
                        Observers { reporter, watch },
                    )
                })
            },
            // The bar is finished only if every batch was handed on.
            |done| matches!(done, Ok((_, _, None))),
        )?;
        let (counts, stats, failure) = counts?;
        Ok((StreamSummary::from(counts), stats, failure.or(late)))
    }

    /// [`run`](Stream::run) for a fail-fast verb: the first failure is the call's error.
    fn run_fail_fast<S>(
        &self,
        flock: &Flock,
        states: &(impl StateSource<S> + ?Sized),
        task: impl Fn(&Block<'_>, &mut S, DataFrame) -> Result<DataFrame> + Sync,
    ) -> Result<StreamSummary>
    where
        S: Send,
    {
        let task = |block: &Block<'_>, state: &mut S, batch: Box<dyn Loadable + 's>| {
            Ok((Some(task(block, state, batch.load()?)?), ()))
        };
        let (summary, _, failure) = self.run(flock, states, task, drop)?;
        failure.map_or(Ok(summary), Err)
    }
}

/// One call over a batch, on the worker that runs the batch: a plan of one block, run inline,
/// with the stream call's retry policy and cancel token.
fn inline(flock: &Flock) -> std::borrow::Cow<'static, Flock> {
    static INLINE: std::sync::LazyLock<Flock> =
        std::sync::LazyLock::new(|| Flock::new().chunksize(usize::MAX));
    match flock.retry() {
        None => std::borrow::Cow::Borrowed(&INLINE),
        Some(retry) => {
            let mut inline = INLINE.clone().retries(retry.clone());
            if let Some(token) = flock.cancel() {
                inline = inline.cancel_token(token);
            }
            std::borrow::Cow::Owned(inline)
        }
    }
}

/// A worker's state lent to a call over one batch: the call's only block takes it, and it stays
/// the worker's (a retry that makes it again makes it from the stream call's `states`).
struct Lend<'a, S, St: ?Sized>(Mutex<Option<&'a mut S>>, &'a St);

impl<'a, S: Send, St: StateSource<S> + ?Sized> StateSource<&'a mut S> for Lend<'a, S, St> {
    fn acquire(&self) -> std::result::Result<&'a mut S, BoxError> {
        lock(&self.0)
            .take()
            .ok_or_else(|| "the worker's state is in use".into())
    }
    fn renew(&self, state: &mut &'a mut S) -> std::result::Result<(), BoxError> {
        self.1.renew(&mut **state)
    }
    fn release(&self, _: &'a mut S) -> Option<&'a mut S> {
        None
    }
}

/// Runs the row verb over one batch with the worker's `state`; errors located in the stream. A
/// panic (already contained) marks the worker's state as poisoned.
fn rows_of_batch<S, U>(
    flock: &Flock,
    block: &Block<'_>,
    state: &mut S,
    states: &(impl StateSource<S> + ?Sized),
    batch: &DataFrame,
    names: &impl OutputNames<U>,
    f: &(impl Fn(&mut S, &Row<'_>) -> std::result::Result<U, BoxError> + Sync),
) -> Result<DataFrame>
where
    S: Send,
    U: RowOutput,
{
    let lend = Lend(Mutex::new(Some(state)), states);
    block
        .counting_retries(|| {
            apply_rows(
                batch,
                &inline(flock),
                names,
                &lend,
                |s: &mut &mut S, row| f(s, row),
            )
        })
        .map_err(|e| located(block, e))
}

fn located(block: &Block<'_>, error: Error) -> Error {
    if matches!(error, Error::Panicked { .. }) {
        block.poison();
    }
    error.in_stream(block.index, block.rows.start)
}

/// The verbs on a [`Stream`]: the frame verbs' names and closures, run on every batch in
/// parallel, each output handed to the stream's sink in input order. Each returns what the
/// stream did ([`StreamSummary`]).
///
/// Sealed: implemented for [`Stream`] (default options) and its configured view
/// ([`Flock::on`]).
///
/// # Parallelism
///
/// Batches run on the pool the [`Flock`] selects, each on one worker (a batch is a unit, never
/// split). Per-worker states: `init` runs at most once per worker that runs a batch; the state
/// is kept for every batch that worker runs.
pub trait StreamParApply<'s>: StreamInput<'s> {
    /// [`par_apply_rows`](crate::DataFrameParApply::par_apply_rows) on every batch: the batch
    /// with the new columns goes to the sink.
    ///
    /// # Errors
    ///
    /// As the frame verb, with rows counted from the stream's first row; plus the source's and
    /// the sink's errors, and [`Error::Cancelled`] / [`Error::TimedOut`] counting the batches
    /// (`blocks`) read and handed on. The first failure in stream order wins; every batch before
    /// it is handed to the sink, none after it.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::streaming::Stream;
    /// use polars_flock::Error;
    ///
    /// let batches = (0..4i64).map(|b| df!("s" => [format!("{b}"), "x".to_string()]));
    /// let stream = Stream::new(batches, |_| Ok(()));
    /// let err = stream.par_apply_rows("n", |row| Ok(row.str("s")?.parse::<i64>()?)).unwrap_err();
    /// assert!(matches!(err, Error::Row { row: 1, .. })); // the stream's row 1
    /// ```
    fn par_apply_rows<U, N, F>(&self, names: N, f: F) -> Result<StreamSummary>
    where
        U: RowOutput,
        N: OutputNames<U> + Sync,
        F: Fn(&Row<'_>) -> std::result::Result<U, BoxError> + Sync,
    {
        let (stream, flock) = self.stream_parts();
        let f = |(): &mut (), row: &Row<'_>| f(row);
        stream.run_fail_fast(flock, &Stateless, |block, state, batch| {
            rows_of_batch(flock, block, state, &Stateless, &batch, &names, &f)
        })
    }

    /// [`par_apply_rows`](StreamParApply::par_apply_rows) with a per-worker state: an `init`
    /// closure or `&`[`Workers`](crate::Workers) (see [`PerWorker`]).
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](StreamParApply::par_apply_rows), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::streaming::Stream;
    ///
    /// let workers = Workers::new(|| Ok(1_000i64)); // e.g. a connection per worker
    /// let batches = (0..6i64).map(|b| df!("x" => [b]));
    /// let stream = Stream::new(batches, |_| Ok(()));
    /// let summary = stream.par_apply_rows_per_worker("y", &workers, |base, row| Ok(*base + row.i64("x")?))?;
    /// assert_eq!(summary.rows_out, 6);
    /// assert!(workers.inits() <= Flock::new().plan(1)?.threads());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_rows_per_worker<S, W, U, N, F>(
        &self,
        names: N,
        workers: W,
        f: F,
    ) -> Result<StreamSummary>
    where
        S: Send,
        W: PerWorker<S>,
        U: RowOutput,
        N: OutputNames<U> + Sync,
        F: Fn(&mut S, &Row<'_>) -> std::result::Result<U, BoxError> + Sync,
    {
        let (stream, flock) = self.stream_parts();
        stream.run_fail_fast(flock, &workers, |block, state, batch| {
            rows_of_batch(flock, block, state, &workers, &batch, &names, &f)
        })
    }

    /// The typed path, [`par_apply_columns`](crate::DataFrameParApply::par_apply_columns), on
    /// every batch: the batch with the new columns goes to the sink.
    ///
    /// The values read must not borrow the batch (a batch lives only while a worker runs it):
    /// numbers and `bool`, `Option`s of them, and `String` (an owned copy); read `&str` through
    /// the row view ([`par_apply_rows`](StreamParApply::par_apply_rows)) instead.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](StreamParApply::par_apply_rows).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::streaming::Stream;
    ///
    /// let batches = (0..4i64).map(|b| df!("x" => [b as f64, 0.5], "k" => [b, 2]));
    /// let mut sum = 0.0;
    /// let stream = Stream::new(batches, |out| Ok(sum += out.column("xk")?.f64()?.sum().unwrap_or(0.0)));
    /// stream.par_apply_columns("xk", ["x", "k"], |(x, k): (f64, i64)| x * k as f64)?;
    /// drop(stream);
    /// assert_eq!(sum, 0.0 + 1.0 + 4.0 + 9.0 + 4.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_columns<const K: usize, A, R, N, F>(
        &self,
        names: N,
        columns: [&str; K],
        f: F,
    ) -> Result<StreamSummary>
    where
        A: for<'b> FromColumns<'b, K>,
        R: TypedOutput,
        N: OutputNames<R::Value> + Sync,
        F: Fn(A) -> R + Sync,
    {
        let (stream, flock) = self.stream_parts();
        stream.run_fail_fast(flock, &Stateless, |block, (), batch| {
            (block.counting_retries(|| {
                apply_columns::<K, A, R, _>(&batch, &inline(flock), &names, columns, &f)
            }))
            .map_err(|e| located(block, e))
        })
    }

    /// [`par_apply_blocks`](crate::DataFrameParApply::par_apply_blocks) on every batch: each
    /// batch is one block, and `f`'s frame goes to the sink.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](StreamParApply::par_apply_rows); a failing batch is
    /// [`Error::Block`] (`block` = the batch's index, `rows` = its rows in the stream).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::streaming::Stream;
    ///
    /// let batches = (0..5i64).map(|b| df!("x" => [b, b + 10]));
    /// let mut heights = Vec::new();
    /// let stream = Stream::new(batches, |out| Ok(heights.push(out.height())));
    /// stream.par_apply_blocks(|b| Ok(b.head(Some(1))))?;
    /// drop(stream);
    /// assert_eq!(heights, [1; 5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_blocks<F>(&self, f: F) -> Result<StreamSummary>
    where
        F: Fn(DataFrame) -> std::result::Result<DataFrame, BoxError> + Sync,
    {
        let (stream, flock) = self.stream_parts();
        stream.run_fail_fast(flock, &Stateless, |block, (), batch| {
            block_of_batch(block, batch, &mut (), &Stateless, |(), b| f(b))
        })
    }

    /// [`par_apply_blocks`](StreamParApply::par_apply_blocks) with a per-worker state.
    ///
    /// # Errors
    ///
    /// As [`par_apply_blocks`](StreamParApply::par_apply_blocks), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::streaming::Stream;
    ///
    /// let batches = (0..5i64).map(|b| df!("x" => [b]));
    /// let stream = Stream::new(batches, |_| Ok(()));
    /// let summary = stream.par_apply_blocks_per_worker(|| Ok(0usize), |seen, b| {
    ///     *seen += 1; // batches this worker ran so far
    ///     Ok(b)
    /// })?;
    /// assert_eq!(summary.batches, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn par_apply_blocks_per_worker<S, W, F>(&self, workers: W, f: F) -> Result<StreamSummary>
    where
        S: Send,
        W: PerWorker<S>,
        F: Fn(&mut S, DataFrame) -> std::result::Result<DataFrame, BoxError> + Sync,
    {
        let (stream, flock) = self.stream_parts();
        stream.run_fail_fast(flock, &workers, |block, state, batch| {
            block_of_batch(block, batch, state, &workers, &f)
        })
    }

    /// Keep-going mode: a failing row is null (the batch is still written), a failing batch is
    /// left out, and each is reported with its rows in the stream and its batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::streaming::Stream;
    ///
    /// let batches = (0..3i64).map(|b| df!("s" => [format!("{b}"), "x".to_string()]));
    /// let stream = Stream::new(batches, |_| Ok(()));
    /// let (summary, report) = stream.keep_going().par_apply_rows("n", |row| Ok(row.str("s")?.parse::<i64>()?))?;
    /// assert_eq!(summary.rows_out, 6);
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [1, 3, 5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn keep_going(&self) -> KeepGoing<'_, Stream<'s>> {
        let (stream, flock) = self.stream_parts();
        KeepGoing {
            input: stream,
            flock,
        }
    }
}

/// `f` on one batch as a block, its error located in the stream.
fn block_of_batch<S>(
    block: &Block<'_>,
    batch: DataFrame,
    state: &mut S,
    states: &(impl StateSource<S> + ?Sized),
    f: impl Fn(&mut S, DataFrame) -> std::result::Result<DataFrame, BoxError>,
) -> Result<DataFrame> {
    let mut batch = block.inputs(batch);
    (block.attempt(state, states, |state| f(state, batch())))
        .map_err(|e| Error::of_block(e, block.index, block.rows.clone()))
}

impl<'s> StreamInput<'s> for Stream<'s> {
    fn stream_parts(&self) -> (&Stream<'s>, &Flock) {
        (self, default_flock())
    }
}

impl<'s> StreamInput<'s> for On<'_, Stream<'s>> {
    fn stream_parts(&self) -> (&Stream<'s>, &Flock) {
        (self.input, self.flock)
    }
}

impl<'s> StreamParApply<'s> for Stream<'s> {}

impl<'s> StreamParApply<'s> for On<'_, Stream<'s>> {}

/// Keep-going verbs on a stream: each returns what the stream did and a [`Report`] whose rows
/// are counted from the stream's first row. A failing row is null in the batch's output; a
/// batch that fails (its closure, its decoding) is left out, reported as [`Unit::Block`]. A stop
/// (cancellation, timeout) is in [`Report::stopped`]; the batches not read are not listed in
/// [`Report::skipped`] (a stream's rows are not known up front).
impl<'s> KeepGoing<'_, Stream<'s>> {
    /// [`StreamParApply::par_apply_rows`] that keeps going.
    ///
    /// # Errors
    ///
    /// Only what fails the stream as a whole: the source's and the sink's errors, the options'
    /// errors, [`Error::DuplicateColumn`].
    ///
    /// # Examples
    ///
    /// See [`StreamParApply::keep_going`].
    pub fn par_apply_rows<U, N, F>(&self, names: N, f: F) -> Result<(StreamSummary, Report)>
    where
        U: RowOutput,
        N: OutputNames<U> + Sync,
        F: Fn(&Row<'_>) -> std::result::Result<U, BoxError> + Sync,
    {
        let f = |(): &mut (), row: &Row<'_>| f(row);
        self.rows(&Stateless, &names, &f)
    }

    /// [`StreamParApply::par_apply_rows_per_worker`] that keeps going.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](Self::par_apply_rows), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::streaming::Stream;
    ///
    /// let batches = (0..3i64).map(|b| df!("x" => [b, -1]));
    /// let stream = Stream::new(batches, |_| Ok(()));
    /// let (_, report) = stream.keep_going().par_apply_rows_per_worker("y", || Ok(()), |(), row| {
    ///     let x = row.i64("x")?;
    ///     if x < 0 { return Err("negative".into()); }
    ///     Ok(x)
    /// })?;
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [1, 3, 5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_rows_per_worker<S, W, U, N, F>(
        &self,
        names: N,
        workers: W,
        f: F,
    ) -> Result<(StreamSummary, Report)>
    where
        S: Send,
        W: PerWorker<S>,
        U: RowOutput,
        N: OutputNames<U> + Sync,
        F: Fn(&mut S, &Row<'_>) -> std::result::Result<U, BoxError> + Sync,
    {
        self.rows(&workers, &names, &f)
    }

    /// [`StreamParApply::par_apply_columns`] that keeps going: a failing row is null.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](Self::par_apply_rows).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::streaming::Stream;
    ///
    /// let batches = (0..3i64).map(|b| df!("k" => [b, 0]));
    /// let stream = Stream::new(batches, |_| Ok(()));
    /// let (_, report) = stream.keep_going().par_apply_columns("inv", ["k"], |k: i64| {
    ///     if k == 0 { return Err("division by zero".into()); }
    ///     Ok(1.0 / k as f64)
    /// })?;
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [0, 1, 3, 5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_columns<const K: usize, A, R, N, F>(
        &self,
        names: N,
        columns: [&str; K],
        f: F,
    ) -> Result<(StreamSummary, Report)>
    where
        A: for<'b> FromColumns<'b, K>,
        R: TypedOutput,
        N: OutputNames<R::Value> + Sync,
        F: Fn(A) -> R + Sync,
    {
        self.keep_going(&Stateless, |block, (), batch| {
            let (out, report) = apply_columns_keep_going::<K, A, R, _>(
                &batch,
                &inline(self.flock),
                &names,
                columns,
                &f,
            )
            .map_err(|e| located(block, e))?;
            Ok((Some(out), located_report(block, report)))
        })
    }

    /// [`StreamParApply::par_apply_blocks`] that keeps going: a failing batch is left out.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](Self::par_apply_rows).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::streaming::Stream;
    ///
    /// let batches = (0..4i64).map(|b| df!("x" => [b, b]));
    /// let mut rows = 0;
    /// let stream = Stream::new(batches, |out| Ok(rows += out.height()));
    /// let (_, report) = stream.keep_going().par_apply_blocks(|b| {
    ///     if b.column("x")?.i64()?.get(0) == Some(2) { return Err("bad batch".into()); }
    ///     Ok(b)
    /// })?;
    /// drop(stream);
    /// assert_eq!(rows, 6);
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [4, 5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_blocks<F>(&self, f: F) -> Result<(StreamSummary, Report)>
    where
        F: Fn(DataFrame) -> std::result::Result<DataFrame, BoxError> + Sync,
    {
        self.blocks(&Stateless, &|(): &mut (), b| f(b))
    }

    /// [`StreamParApply::par_apply_blocks_per_worker`] that keeps going.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](Self::par_apply_rows), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// use polars_flock::streaming::Stream;
    ///
    /// let batches = (0..4i64).map(|b| df!("x" => [b]));
    /// let stream = Stream::new(batches, |_| Ok(()));
    /// let (summary, report) = stream.keep_going().par_apply_blocks_per_worker(|| Ok(()), |(), b| Ok(b))?;
    /// assert_eq!(summary.batches, 4);
    /// assert!(report.is_complete());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_blocks_per_worker<S, W, F>(
        &self,
        workers: W,
        f: F,
    ) -> Result<(StreamSummary, Report)>
    where
        S: Send,
        W: PerWorker<S>,
        F: Fn(&mut S, DataFrame) -> std::result::Result<DataFrame, BoxError> + Sync,
    {
        self.blocks(&workers, &f)
    }

    fn rows<S, U>(
        &self,
        states: &(impl StateSource<S> + ?Sized),
        names: &(impl OutputNames<U> + Sync),
        f: &(impl Fn(&mut S, &Row<'_>) -> std::result::Result<U, BoxError> + Sync),
    ) -> Result<(StreamSummary, Report)>
    where
        S: Send,
        U: RowOutput,
    {
        self.keep_going(states, |block, state, batch| {
            let lend = Lend(Mutex::new(Some(state)), states);
            let rows = |s: &mut &mut S, row: &Row<'_>| f(s, row);
            let inline = inline(self.flock);
            let (out, report) = apply_rows_keep_going(&batch, &inline, names, &lend, rows)
                .map_err(|e| located(block, e))?;
            if (report.failures.iter()).any(|f| matches!(f.error, Error::Panicked { .. })) {
                // A row panicked with the worker's state in hand: it may be half-updated.
                block.poison();
            }
            Ok((Some(out), located_report(block, report)))
        })
    }

    fn blocks<S>(
        &self,
        states: &(impl StateSource<S> + ?Sized),
        f: &(impl Fn(&mut S, DataFrame) -> std::result::Result<DataFrame, BoxError> + Sync),
    ) -> Result<(StreamSummary, Report)>
    where
        S: Send,
    {
        self.keep_going(states, |block, state, batch| {
            let mut units = Units::default();
            let out = units.block(block, || block_of_batch(block, batch, state, states, f));
            Ok((out, units.into_report()))
        })
    }

    /// Runs a keep-going `task` on every batch; a batch that fails as a whole (its decoding) is
    /// left out and reported as [`Unit::Block`]; the reports come back in stream order.
    fn keep_going<S>(
        &self,
        states: &(impl StateSource<S> + ?Sized),
        task: impl Fn(&Block<'_>, &mut S, DataFrame) -> Result<(Option<DataFrame>, Report)> + Sync,
    ) -> Result<(StreamSummary, Report)>
    where
        S: Send,
    {
        // A batch that cannot be loaded (a row group that does not decode) is left out.
        let task =
            |block: &Block<'_>, state: &mut S, batch: Box<dyn Loadable + '_>| match batch.load() {
                Ok(batch) => task(block, state, batch),
                Err(error) => {
                    let unit = Unit::Block {
                        block: block.index,
                        rows: block.rows.clone(),
                    };
                    let attempts = block.take_attempts();
                    let failure = crate::control::Failure {
                        unit,
                        error,
                        attempts,
                    };
                    let report = Report {
                        failures: vec![failure],
                        ..Report::default()
                    };
                    Ok((None, report))
                }
            };
        let mut report = Report::default();
        let mut row_causes = std::collections::BTreeMap::new();
        let note = |part: Report| {
            report.failures.extend(part.failures);
            report.retries += part.retries;
            for (cause, n) in part.stats.retries {
                *row_causes.entry(cause).or_insert(0) += n;
            }
            if report.stopped.is_none() {
                report.stopped = part.stopped;
            }
        };
        let (stream, flock) = (self.input, self.flock);
        let (mut summary, mut stats, failure) = stream.run(flock, states, task, note)?;
        // The batches' retries, and the rows' (counted by each batch's own call).
        report.retries += summary.retries;
        summary.retries = report.retries;
        for (cause, n) in row_causes {
            *stats.retries.entry(cause).or_insert(0) += n;
        }
        report.stats = stats;
        match failure {
            None => {}
            Some(stop @ (Error::Cancelled { .. } | Error::TimedOut { .. })) => {
                report.stopped = Some(stop);
            }
            Some(error) => return Err(error),
        }
        Ok((summary, report))
    }
}

/// A batch's keep-going report, its rows counted from the stream's first row.
fn located_report(block: &Block<'_>, report: Report) -> Report {
    let offset = block.rows.start;
    let shift = |rows: Range<usize>| rows.start + offset..rows.end + offset;
    let mut located = Report::default();
    for failure in report.failures {
        let unit = match failure.unit {
            Unit::Row(row) => Unit::Row(row + offset),
            Unit::Block { rows, .. } => Unit::Block {
                block: block.index,
                rows: shift(rows),
            },
            other => other,
        };
        let error = failure.error.in_stream(block.index, offset);
        located.failures.push(crate::control::Failure {
            unit,
            error,
            attempts: failure.attempts,
        });
    }
    located.skipped = report.skipped.into_iter().map(shift).collect();
    located.stopped = report.stopped;
    located.retries = report.retries;
    located
}
