//! A cluster job: each process runs its chunks through the local executor, results cross to
//! process 0 (or into part files), and process 0 assembles them in chunk order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Exchange, Input, Probe};

use super::config::Cluster;
use super::net;
use crate::exec::contain;
use crate::sealed::names;
use crate::{
    BoxError, CancelToken, DataFrameParApply, Error, Files, Flock, Result, Row, RowOutput,
};
use crate::{OutputNames, UserCode};

/// The chunks of a cluster job's source: how many there are, and how to produce chunk `c` on
/// whichever process runs it. Each process produces only its own chunks, from the chunk id, so
/// the source itself never crosses the network: a generator ([`Chunks::new`]), a list of files
/// ([`Chunks::files`]), the row groups of a Parquet file ([`Chunks::parquet`]), or slices of a
/// frame every process can build or read ([`Chunks::split`]).
///
/// # Examples
///
/// ```
/// use polars_flock::distributed::{Chunks, Cluster};
/// use polars_flock::polars::prelude::*;
///
/// let chunks = Chunks::new(4, |c| Ok(df!("c" => [c as i64; 3])?));
/// assert_eq!(chunks.len(), 4);
/// let out = Cluster::single().par_apply_blocks(&chunks, |block| Ok(block.head(Some(1))))?.unwrap();
/// assert_eq!(out.column("c")?.i64()?.to_vec(), [Some(0), Some(1), Some(2), Some(3)]);
/// # Ok::<(), polars_flock::Error>(())
/// ```
pub struct Chunks<'a> {
    len: usize,
    load: Box<dyn Fn(usize) -> Result<DataFrame> + Send + Sync + 'a>,
}

impl std::fmt::Debug for Chunks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunks")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<'a> Chunks<'a> {
    /// `len` chunks, chunk `c` made by `make(c)` on the process that runs it. `make` must give
    /// the same frame for the same `c` on every process (and on a rerun): derive data from `c`,
    /// never from the process.
    ///
    /// An error of `make` is the chunk's failure: [`Error::InChunk`] with [`Error::Closure`] (a
    /// panic: [`Error::Panicked`], `during: UserCode::Source`).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::distributed::{Chunks, Cluster};
    /// use polars_flock::polars::prelude::*;
    ///
    /// let chunks = Chunks::new(2, |c| if c == 1 { Err("no chunk 1".into()) } else { Ok(df!("x" => [1i64])?) });
    /// let err = Cluster::single().par_apply_blocks(&chunks, |b| Ok(b)).unwrap_err();
    /// assert!(matches!(err, polars_flock::Error::InChunk { chunk: 1, process: 0, .. }));
    /// ```
    pub fn new<F>(len: usize, make: F) -> Self
    where
        F: Fn(usize) -> std::result::Result<DataFrame, BoxError> + Send + Sync + 'a,
    {
        Self {
            len,
            load: Box::new(move |c| match contain(|| make(c)) {
                Ok(made) => made.map_err(|source| Error::Closure { source }),
                Err(panic) => Err(panic.at(UserCode::Source, c, c..c + 1, None)),
            }),
        }
    }

    /// One chunk per file, in the list's order, read by `read` on the process that runs it
    /// (e.g. [`parquet::read_parquet`](crate::parquet::read_parquet) or a CSV reader). The
    /// files must be readable from every process under the same paths.
    ///
    /// A failure is [`Error::InChunk`] with [`Error::InFile`] naming the file.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::distributed::{Chunks, Cluster};
    /// use polars_flock::Files;
    ///
    /// let files = Files::new(["a.csv", "b.csv"]);
    /// let chunks = Chunks::files(&files, |path| Err(format!("cannot read {}", path.display()).into()));
    /// let err = Cluster::single().par_apply_blocks(&chunks, |b| Ok(b)).unwrap_err();
    /// let polars_flock::Error::InChunk { chunk: 0, source, .. } = err else { panic!("{err}") };
    /// assert!(matches!(*source, polars_flock::Error::InFile { .. }));
    /// ```
    pub fn files<F>(files: &Files, read: F) -> Self
    where
        F: Fn(&Path) -> std::result::Result<DataFrame, BoxError> + Send + Sync + 'a,
    {
        let paths: Vec<PathBuf> = files.paths().to_vec();
        let len = paths.len();
        Self {
            len,
            load: Box::new(move |c| {
                let path = &paths[c];
                match contain(|| read(path)) {
                    Ok(Ok(df)) => Ok(df),
                    Ok(Err(e)) => Err(Error::in_file(path, Error::of_closure(e))),
                    Err(panic) => Err(Error::in_file(
                        path,
                        panic.at(UserCode::Closure, c, c..c + 1, None),
                    )),
                }
            }),
        }
    }

    /// Slices of `df` (zero-copy), cut by the local planner: chunk `c` is block `c` of
    /// `flock.plan(df.height())` ([`Flock::chunksize`], [`Flock::blocks`]). Every process must
    /// hold the same `df` (read from shared storage, or generated): only the slice each one
    /// runs is processed there.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for an invalid chunk size.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::distributed::{Chunks, Cluster};
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let df = df!("x" => (0..10i64).collect::<Vec<_>>())?;
    /// let chunks = Chunks::split(&df, &Flock::new().chunksize(4))?;
    /// assert_eq!(chunks.len(), 3); // 4 + 4 + 2 rows
    /// let out = Cluster::single().par_apply_rows(&chunks, "y", |r| Ok(r.i64("x")? * 2))?.unwrap();
    /// assert_eq!(out.height(), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn split(df: &DataFrame, flock: &Flock) -> Result<Self> {
        let plan = flock.plan(df.height())?;
        let df = df.clone();
        Ok(Self {
            len: plan.blocks(),
            load: Box::new(move |c| {
                let rows = plan.block_rows(c);
                Ok(df.slice(rows.start as i64, rows.len()))
            }),
        })
    }

    /// One chunk per part of a Parquet file ([`ParquetBatches`](crate::parquet::ParquetBatches):
    /// a row group, or a slice of one with `max_rows`), decoded on the process that runs it.
    /// The file must be readable from every process under the same path.
    ///
    /// # Errors
    ///
    /// The footer's errors, as iterating the batches reports them (a footer that lies about its
    /// row count).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::distributed::{Chunks, Cluster};
    /// use polars_flock::parquet::{ParquetBatches, write_parquet};
    /// use polars_flock::polars::prelude::*;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("t.parquet");
    /// write_parquet(&path, &df!("x" => (0..10i64).collect::<Vec<_>>())?, 4)?;
    /// let chunks = Chunks::parquet(ParquetBatches::open(&path)?)?;
    /// assert_eq!(chunks.len(), 3); // row groups of 4, 4, 2
    /// let out = Cluster::single().par_apply_rows(&chunks, "y", |r| Ok(r.i64("x")? + 1))?.unwrap();
    /// assert_eq!(out.height(), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "parquet")]
    pub fn parquet(batches: crate::parquet::ParquetBatches) -> Result<Chunks<'static>> {
        use crate::streaming::Batch;
        let parts = batches.collect::<Result<Vec<_>>>()?;
        Ok(Chunks {
            len: parts.len(),
            load: Box::new(move |c| parts[c].clone().load()),
        })
    }

    /// The number of chunks.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(polars_flock::distributed::Chunks::new(5, |_| unreachable!()).len(), 5);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no chunks.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(polars_flock::distributed::Chunks::new(0, |_| unreachable!()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The output names of a row apply, shared by every chunk's local call.
struct SameNames<'a, N>(&'a N);

impl<U, N: names::Sealed<U>> names::Sealed<U> for SameNames<'_, N> {
    fn names(&self) -> Vec<PlSmallStr> {
        self.0.names()
    }
}

impl Cluster {
    /// [`par_apply_rows`](DataFrameParApply::par_apply_rows) over every chunk of `chunks`, with
    /// the same closure and outputs as the local call: each process runs its chunks on all its
    /// cores (with [`Cluster::flock`]'s options), and process 0 returns
    /// `Some(`every chunk's output, in chunk order`)`, the frame a single process would have
    /// made from the chunks one under the other; every other process returns `None`.
    ///
    /// Row indices in errors are the chunk's own (the chunk is named by [`Error::InChunk`]).
    ///
    /// # Errors
    ///
    /// On every process: [`Error::InChunk`] for a chunk's failure anywhere (a closure's error, a
    /// panic, a source's error), [`Error::ClusterStart`] if a peer cannot be reached in time,
    /// [`Error::PeerLost`] if one dies; see the module docs' failure model.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::distributed::{Chunks, Cluster};
    /// use polars_flock::polars::prelude::*;
    ///
    /// let chunks = Chunks::new(3, |c| Ok(df!("x" => [c as f64, 0.5])?));
    /// let out = Cluster::single().par_apply_rows(&chunks, "y", |row| Ok(row.f64("x")? * 2.0))?;
    /// let y = out.unwrap().column("y")?.f64()?.to_vec();
    /// assert_eq!(y, [Some(0.0), Some(1.0), Some(2.0), Some(1.0), Some(4.0), Some(1.0)]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_rows<U, N, F>(
        &self,
        chunks: &Chunks<'_>,
        names: N,
        f: F,
    ) -> Result<Option<DataFrame>>
    where
        U: RowOutput,
        N: OutputNames<U> + Sync,
        F: Fn(&Row<'_>) -> std::result::Result<U, BoxError> + Sync,
    {
        self.par_apply_chunks(chunks, |flock, chunk| {
            flock.on(&chunk).par_apply_rows(SameNames(&names), &f)
        })
    }

    /// [`par_apply_blocks`](DataFrameParApply::par_apply_blocks) over every chunk: each chunk is
    /// split into blocks by [`Cluster::flock`]'s planner, as a local call would split it.
    /// Returns as [`par_apply_rows`](Cluster::par_apply_rows).
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](Cluster::par_apply_rows).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::distributed::{Chunks, Cluster};
    /// use polars_flock::polars::prelude::*;
    ///
    /// let chunks = Chunks::new(2, |c| Ok(df!("x" => [c as i64 + 1])?));
    /// let out = Cluster::single().par_apply_blocks(&chunks, |b| Ok(b.head(Some(1))))?;
    /// assert_eq!(out.unwrap().column("x")?.i64()?.to_vec(), [Some(1), Some(2)]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_blocks<F>(&self, chunks: &Chunks<'_>, f: F) -> Result<Option<DataFrame>>
    where
        F: Fn(DataFrame) -> std::result::Result<DataFrame, BoxError> + Sync,
    {
        self.par_apply_chunks(chunks, |flock, chunk| flock.on(&chunk).par_apply_blocks(&f))
    }

    /// Any local call per chunk: `f(flock, chunk)` gets the chunk and the local options (with
    /// the cluster's cancellation linked in: pass `flock` on, as `flock.on(&chunk)`, so that a
    /// failure elsewhere stops this process's blocks too) and returns the chunk's output frame.
    /// Every mode composes: per-worker state (a [`Workers`](crate::Workers) captured by `f`
    /// keeps one connection per worker thread across all of this process's chunks), typed
    /// columns, groups within a chunk, keep-going. Returns as
    /// [`par_apply_rows`](Cluster::par_apply_rows).
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](Cluster::par_apply_rows); an error `f` returns is the chunk's.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::distributed::{Chunks, Cluster};
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let chunks = Chunks::new(2, |c| Ok(df!("x" => [c as f64, 2.0])?));
    /// let out = Cluster::single().par_apply_chunks(&chunks, |flock, chunk| {
    ///     flock.on(&chunk).par_apply_columns("y", ["x"], |(x,): (f64,)| x * 10.0)
    /// })?;
    /// assert_eq!(out.unwrap().column("y")?.f64()?.get(3), Some(20.0));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_chunks<F>(&self, chunks: &Chunks<'_>, f: F) -> Result<Option<DataFrame>>
    where
        F: Fn(&Flock, DataFrame) -> Result<DataFrame> + Sync,
    {
        run(self, chunks, &f)
    }
}

// ---------------------------------------------------------------------------------------------
// What crosses the network
// ---------------------------------------------------------------------------------------------

/// One message of the job's one stream, routed to worker `to` (every process has one timely
/// worker, so `to` is a process).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Msg {
    to: u64,
    chunk: u64,
    from: u64,
    body: Body,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Body {
    /// The chunk's output as an Arrow IPC file.
    Frame(#[serde(with = "bytes")] Vec<u8>),
    /// The chunk's output is in its part file (`skipped`: it was there before this run).
    Part { skipped: bool },
    /// The chunk failed (to process 0).
    Failed(Wire),
    /// From process 0: chunk `chunk` of process `from` failed; start no more chunks.
    Stop(Wire),
}

/// An error from another process: a panic keeps its structure, anything else its variant's
/// name and its message.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Wire {
    Panicked {
        block: u64,
        rows: (u64, u64),
        row: Option<u64>,
        message: String,
        during: String,
    },
    Other {
        variant: String,
        message: String,
    },
}

/// `Vec<u8>` as one byte string, not a sequence of numbers (bincode writes those one by one).
mod bytes {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

const USER_CODES: [UserCode; 9] = [
    UserCode::Closure,
    UserCode::Init,
    UserCode::StateDrop,
    UserCode::OutputDrop,
    UserCode::Progress,
    UserCode::Identity,
    UserCode::Combine,
    UserCode::Source,
    UserCode::Sink,
];

impl Wire {
    /// The innermost panic of `error` (through group, file and chunk wrappers), or its variant
    /// and message.
    fn of(error: &Error) -> Self {
        let mut inner = error;
        while let Error::InGroup { source, .. } | Error::InFile { source, .. } = inner {
            inner = source;
        }
        match inner {
            Error::Panicked {
                block,
                rows,
                row,
                message,
                during,
            } => Wire::Panicked {
                block: *block as u64,
                rows: (rows.start as u64, rows.end as u64),
                row: row.map(|r| r as u64),
                message: message.clone(),
                during: during.to_string(),
            },
            _ => Wire::Other {
                variant: error.variant_name().to_owned(),
                message: error.to_string(),
            },
        }
    }

    fn into_error(self) -> Error {
        match self {
            Wire::Panicked {
                block,
                rows,
                row,
                message,
                during,
            } => Error::Panicked {
                block: block as usize,
                rows: rows.0 as usize..rows.1 as usize,
                row: row.map(|r| r as usize),
                message,
                during: USER_CODES
                    .into_iter()
                    .find(|u| u.to_string() == during)
                    .unwrap_or(UserCode::Closure),
            },
            Wire::Other { variant, message } => Error::Remote { variant, message },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// What the calling thread and the timely worker thread share.
struct Shared {
    /// Cancels this process's local work: set on a failure seen by process 0, a stop received,
    /// a lost peer. The local calls' token is linked to it.
    cluster_stop: CancelToken,
    /// Process 0: results received (one per chunk).
    received: AtomicUsize,
    /// Process 0: the first failure received, to broadcast.
    first_failure: Mutex<Option<Msg>>,
    /// The network failed: timely's worker panicked.
    lost: Mutex<Option<String>>,
    /// The calling thread gave up (its own panic): the worker stops waiting.
    abandoned: AtomicBool,
}

fn run(
    cluster: &Cluster,
    chunks: &Chunks<'_>,
    f: &(dyn Fn(&Flock, DataFrame) -> Result<DataFrame> + Sync),
) -> Result<Option<DataFrame>> {
    let me = cluster.process;
    if let Some(dir) = &cluster.parts {
        std::fs::create_dir_all(dir).map_err(|e| Error::in_file(dir, e))?;
    }
    let comms = net::connect(cluster)?;
    let shared = Arc::new(Shared {
        cluster_stop: CancelToken::new(),
        received: AtomicUsize::new(0),
        first_failure: Mutex::new(None),
        lost: Mutex::new(None),
        abandoned: AtomicBool::new(false),
    });
    let (to_worker, from_main) = mpsc::channel::<Option<Msg>>();
    let (to_main, from_worker) = mpsc::channel::<Msg>();
    let worker_ends = Mutex::new(Some((from_main, to_main)));
    let total = chunks.len();
    let worker_shared = Arc::clone(&shared);
    let guards = net::start(comms, move |worker| {
        let Some((from_main, to_main)) = worker_ends.lock().ok().and_then(|mut e| e.take()) else {
            return;
        };
        let shared = &worker_shared;
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drive(worker, from_main, to_main, shared, total);
        }));
        if let Err(payload) = ran {
            let message = net::panic_message(&payload);
            if let Ok(mut lost) = shared.lost.lock() {
                lost.get_or_insert(message);
            }
            shared.cluster_stop.cancel();
            // The dataflow cannot make progress any more: drop it so that timely's own loop
            // after this closure does not wait for it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for id in worker.installed_dataflows() {
                    worker.drop_dataflow(id);
                }
            }));
        }
    })?;

    // This process's chunks, on the calling thread's pools.
    let flock = cluster
        .flock
        .clone()
        .cancel_token(&shared.cluster_stop.linked(cluster.flock.cancel()));
    let mut own_failure: Option<(usize, Error)> = None;
    let computed = contain(|| {
        for c in cluster.plan(total).chunks_of(me) {
            if shared.cluster_stop.is_cancelled() {
                break;
            }
            let body = match run_chunk(cluster, chunks, f, &flock, c) {
                Ok(body) => body,
                Err(_) if shared.cluster_stop.is_cancelled() => break,
                Err(error) => {
                    let wire = Wire::of(&error);
                    own_failure = Some((c, error));
                    Body::Failed(wire)
                }
            };
            let msg = Msg {
                to: 0,
                chunk: c as u64,
                from: me as u64,
                body,
            };
            if to_worker.send(Some(msg)).is_err() || own_failure.is_some() {
                break;
            }
        }
    });
    let _ = to_worker.send(None);
    if computed.is_err() {
        shared.abandoned.store(true, Ordering::Release);
    }

    // Everything addressed to this process, until the dataflow completes (or breaks).
    let mut results: BTreeMap<usize, Body> = BTreeMap::new();
    let mut failures: Vec<(usize, usize, Wire)> = Vec::new();
    let mut stop: Option<Msg> = None;
    while let Ok(msg) = from_worker.recv() {
        match msg.body {
            Body::Failed(wire) => failures.push((msg.chunk as usize, msg.from as usize, wire)),
            Body::Stop(_) => stop = Some(msg),
            body => {
                results.insert(msg.chunk as usize, body);
            }
        }
    }
    net::finish(guards);
    if let Err(panic) = computed {
        // The crate's own code panicked (user code is contained below it): report, not unwind.
        return Err(panic.at(UserCode::Closure, 0, 0..0, None));
    }

    if let Some((c, error)) = own_failure.take() {
        // Process 0 reports the lowest failed chunk; its own error keeps its full structure.
        let lower = failures
            .iter()
            .filter(|(fc, ..)| *fc < c)
            .min_by_key(|(fc, ..)| *fc);
        return Err(match lower {
            Some((fc, p, wire)) if me == 0 => in_chunk(*fc, *p, wire.clone().into_error()),
            _ => in_chunk(c, me, error),
        });
    }
    if let Some((c, p, wire)) = failures.into_iter().min_by_key(|(c, ..)| *c) {
        return Err(in_chunk(c, p, wire.into_error()));
    }
    if let Some(Msg {
        chunk,
        from,
        body: Body::Stop(wire),
        ..
    }) = stop
    {
        return Err(in_chunk(chunk as usize, from as usize, wire.into_error()));
    }
    if let Some(message) = shared.lost.lock().ok().and_then(|mut l| l.take()) {
        let (peer, message) = net::lost_peer(message);
        return Err(Error::PeerLost {
            process: me,
            peer,
            message,
        });
    }
    if me != 0 {
        return Ok(None);
    }
    if results.len() != total {
        let missing = (0..total).find(|c| !results.contains_key(c)).unwrap_or(0);
        return Err(Error::PeerLost {
            process: me,
            peer: Some(cluster.plan(total).owner(missing)),
            message: format!("chunk {missing} never arrived"),
        });
    }
    gather(cluster, results).map(Some)
}

fn in_chunk(chunk: usize, process: usize, source: Error) -> Error {
    Error::InChunk {
        chunk,
        process,
        source: Box::new(source),
    }
}

/// Chunk `c`: produced, run, and encoded (or written to its part file).
fn run_chunk(
    cluster: &Cluster,
    chunks: &Chunks<'_>,
    f: &(dyn Fn(&Flock, DataFrame) -> Result<DataFrame> + Sync),
    flock: &Flock,
    c: usize,
) -> Result<Body> {
    let part = cluster.parts.as_deref().map(|dir| part_path(dir, c));
    if part.as_deref().is_some_and(Path::exists) {
        return Ok(Body::Part { skipped: true });
    }
    flock.cancel().map_or(Ok(()), CancelToken::check)?;
    let chunk = load(chunks, flock, c)?;
    let out = match contain(|| f(flock, chunk)) {
        Ok(out) => out?,
        Err(panic) => return Err(panic.at(UserCode::Closure, c, c..c + 1, None)),
    };
    let bytes = encode(&out)?;
    match part {
        None => Ok(Body::Frame(bytes)),
        Some(path) => {
            crate::atomic::write_atomically(&path, &bytes).map_err(|e| Error::in_file(&path, e))?;
            Ok(Body::Part { skipped: false })
        }
    }
}

/// Chunk `c` from its source, retried as `flock`'s [`Retry`](crate::Retry) says when the source
/// fails (a panic never is): the wait on this process's calling thread, ended by the cluster's
/// stop.
fn load(chunks: &Chunks<'_>, flock: &Flock, c: usize) -> Result<DataFrame> {
    let mut attempt = 1;
    loop {
        let loaded = {
            let _attempt = crate::retry::AttemptScope::enter(attempt);
            (chunks.load)(c)
        };
        let error = match loaded {
            Ok(chunk) => return Ok(chunk),
            Err(error) => error,
        };
        let wait = match (flock.retry(), &error) {
            (_, Error::Panicked { .. }) | (None, _) => None,
            (Some(retry), error) => retry.wait_after(attempt, error.closure_error()),
        };
        let Some(wait) = wait else {
            return Err(error);
        };
        let until = std::time::Instant::now() + wait;
        let stopped = || flock.cancel().and_then(|token| token.check().err());
        if let Some(stop) = crate::retry::wait_until(until, true, stopped) {
            return Err(stop);
        }
        attempt += 1;
    }
}

/// The timely worker's loop: the calling thread's messages into the stream, everything that
/// arrives here back to it; process 0 counts results and broadcasts the first failure.
fn drive(
    worker: &mut timely::worker::Worker,
    from_main: mpsc::Receiver<Option<Msg>>,
    to_main: mpsc::Sender<Msg>,
    shared: &Arc<Shared>,
    total: usize,
) {
    let me = worker.index();
    let peers = worker.peers();
    let mut input: InputHandle<u64, CapacityContainerBuilder<Vec<Msg>>> = InputHandle::new();
    let seen = Arc::clone(shared);
    let probe = worker.dataflow(|scope| {
        scope
            .input_from(&mut input)
            .exchange(|m: &Msg| m.to)
            .map(move |m: Msg| {
                match &m.body {
                    Body::Stop(_) => seen.cluster_stop.cancel(),
                    Body::Failed(_) => {
                        seen.cluster_stop.cancel();
                        if let Ok(mut first) = seen.first_failure.lock() {
                            first.get_or_insert_with(|| m.clone());
                        }
                        seen.received.fetch_add(1, Ordering::AcqRel);
                    }
                    _ => {
                        seen.received.fetch_add(1, Ordering::AcqRel);
                    }
                }
                // Moved, not cloned: a frame's bytes are copied once, by the network.
                let _ = to_main.send(m);
            })
            .probe()
            .0
    });
    let mut main_done = false;
    let mut stop_sent = false;
    loop {
        let mut sent = false;
        loop {
            match from_main.try_recv() {
                Ok(Some(msg)) => {
                    input.send(msg);
                    sent = true;
                }
                Ok(None) | Err(mpsc::TryRecvError::Disconnected) => {
                    main_done = true;
                    break;
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if me == 0 && !stop_sent {
            let first = shared.first_failure.lock().ok().and_then(|f| f.clone());
            if let Some(Msg {
                chunk,
                from,
                body: Body::Failed(wire),
                ..
            }) = first
            {
                for to in 1..peers as u64 {
                    input.send(Msg {
                        to,
                        chunk,
                        from,
                        body: Body::Stop(wire.clone()),
                    });
                }
                stop_sent = true;
                sent = true;
            }
        }
        if sent {
            // Messages leave the exchange's buffers when their epoch closes (a plain `flush`
            // leaves them buffered for a local destination).
            let next = *input.time() + 1;
            input.advance_to(next);
        }
        let receiving = me == 0 && !stop_sent && shared.received.load(Ordering::Acquire) < total;
        if main_done && !receiving {
            break;
        }
        if shared.abandoned.load(Ordering::Acquire) {
            break;
        }
        // The calling thread's messages do not wake the worker: poll for them (network
        // arrivals do wake it).
        worker.step_or_park(Some(Duration::from_millis(2)));
    }
    drop(input);
    while !probe.done() && !shared.abandoned.load(Ordering::Acquire) {
        worker.step_or_park(Some(Duration::from_millis(5)));
    }
    if shared.abandoned.load(Ordering::Acquire) {
        for id in worker.installed_dataflows() {
            worker.drop_dataflow(id);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Frames as bytes, part files, the gather
// ---------------------------------------------------------------------------------------------

fn part_path(dir: &Path, chunk: usize) -> PathBuf {
    dir.join(format!("part-{chunk:06}.arrow"))
}

fn gather(cluster: &Cluster, results: BTreeMap<usize, Body>) -> Result<DataFrame> {
    let mut schema = crate::concat::FirstSchema::default();
    let mut frames = Vec::with_capacity(results.len());
    for (c, body) in results {
        let df = match body {
            Body::Frame(bytes) => decode(&bytes)?,
            Body::Part { .. } => {
                let dir = cluster.parts.as_deref().unwrap_or(Path::new("."));
                let path = part_path(dir, c);
                let bytes = std::fs::read(&path).map_err(|e| Error::in_file(&path, e))?;
                decode(&bytes).map_err(|e| Error::in_file(&path, e))?
            }
            Body::Failed(_) | Body::Stop(_) => continue,
        };
        if let Err(expected) = schema.check(df.schema()) {
            return Err(in_chunk(
                c,
                cluster.plan(usize::MAX).owner(c),
                Error::SchemaMismatch {
                    block: c,
                    rows: c..c + 1,
                    expected,
                    found: df.schema().clone(),
                },
            ));
        }
        frames.push(df);
    }
    Ok(crate::concat::vstack_all(frames)?.unwrap_or_default())
}

/// `df` as an Arrow IPC file in memory (the schema is kept even with no rows).
fn encode(df: &DataFrame) -> Result<Vec<u8>> {
    Ok(crate::ipc::encode(df)?)
}

/// The frame [`encode`] wrote.
fn decode(bytes: &[u8]) -> Result<DataFrame> {
    Ok(crate::ipc::decode(bytes)?)
}
