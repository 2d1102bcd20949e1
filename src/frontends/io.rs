//! Async work for IO-bound units (feature `async`, on tokio): rows, items and blocks whose
//! closures wait on the network or a database, thousands in flight on one thread.
//!
//! [`io`](crate::DataFrameParApply::io) turns a frame, a slice or [`Files`] (plain, or configured
//! with `flock.on(..)`) into an [`Io`] view whose verbs take **async closures** (`async |row| {
//! .. }`, borrowing the row across `.await`): rows and blocks of a frame, its groups, items and
//! blocks of a slice, files. A call starts its units in input order, at most
//! [`Flock::concurrency`] in flight (default 64) and at most [`Flock::rate`] starts per second,
//! and gives the results back in input order. Every verb returns an [`IoCall`]: `.await` it inside
//! an async application (nothing blocks a runtime thread), or [`wait`](IoCall::wait) for it in
//! synchronous code (the crate drives its own tokio runtime, or the caller's multi-thread runtime).
//!
//! The units' futures are polled on the task that awaits the call (or the thread that waits for
//! it): nothing is spawned, so no `'static` or `Send` bound, and dropping the call drops every
//! request in flight. A unit's CPU work runs on that thread too and delays the others' polling:
//! move heavy work out with `tokio::task::spawn_blocking`, or run it afterwards with a
//! synchronous verb on the pool. Errors, panics, keep-going, progress, [`Flock::timeout`] and
//! [`CancelToken`](crate::CancelToken) work as in the synchronous verbs; a stop drops the units
//! in flight at once. [`Flock::unit_timeout`] limits each unit.
//!
//! # Clients
//!
//! A call's units share their clients by reference: capture `&client` in the closure. Async
//! clients are made for that — a `reqwest::Client` is a connection pool, a
//! `tokio_postgres::Client` pipelines the queries of every unit that uses it. The units have no
//! workers (they all run on the one task that awaits the call), so instead of per-worker states
//! there is [`Clients`]: `n` clients made by an async `init` on first use, unit `i` using client
//! `i % n`, kept across calls (the `postgres` example opens 32 tokio-postgres connections this
//! way; a connection's task spawned in `init` runs on the crate's runtime, which outlives every
//! call).
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use polars_flock::polars::prelude::*;
//! use polars_flock::prelude::*;
//!
//! let df = df!("user" => ["ada", "bob", "cy"])?;
//! // Three "requests" of 50 ms each, in flight together: about 50 ms in all.
//! let out = Flock::new()
//!     .concurrency(100)
//!     .on(&df)
//!     .io()
//!     .par_apply_rows("greeting", async |row| {
//!         let user = row.str("user")?; // borrowed across the await
//!         tokio::time::sleep(Duration::from_millis(50)).await;
//!         Ok(format!("hello {user}"))
//!     })
//!     .wait()?;
//! assert_eq!(out.column("greeting")?.str()?.get(2), Some("hello cy"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::future::{Future, IntoFuture};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use polars::prelude::*;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use crate::concat::{keep_same_schema, vstack_all};
use crate::control::{Failure, Report, Unit};
use crate::error::{BoxError, Error, Result};
use crate::exec::io::{Units, drive};
use crate::files::{Files, file_error};
use crate::flock::Flock;
use crate::frame::{new_names, with_new_columns};
use crate::group::Groups;
use crate::plan::ChunkPlan;
use crate::row::{Row, RowSegment};
use crate::value::rows_sealed::Sealed as Outputs;
use crate::value::{OutputNames, RowOutput};

/// The async view of a frame, a slice or [`Files`] (feature `async`): verbs that take async
/// closures. Made by [`DataFrameParApply::io`](crate::DataFrameParApply::io),
/// [`SliceParApply::io`](crate::SliceParApply::io) or [`Files::io`]; see the [module](self) for
/// how calls run.
///
/// # Examples
///
/// ```
/// use polars_flock::prelude::*;
/// let ids = vec![3u32, 1, 2];
/// let out = ids.io().par_apply_rows(async |&id| Ok(id * 10)).wait()?;
/// assert_eq!(out, [30, 10, 20]);
/// # Ok::<(), polars_flock::Error>(())
/// ```
pub struct Io<'a, T: ?Sized> {
    pub(crate) input: &'a T,
    pub(crate) flock: &'a Flock,
}

/// The keep-going form of [`Io`] (made by [`Io::keep_going`]): each verb returns its output and a
/// [`Report`]; failed rows are null (`None`), failed blocks left out, as in
/// [`KeepGoing`](crate::KeepGoing).
///
/// # Examples
///
/// ```
/// use polars_flock::prelude::*;
/// let (out, report) = ["1", "x", "3"]
///     .io()
///     .keep_going()
///     .par_apply_rows(async |s| Ok(s.parse::<i32>()?))
///     .wait()?;
/// assert_eq!(out, [Some(1), None, Some(3)]);
/// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [1]);
/// # Ok::<(), polars_flock::Error>(())
/// ```
pub struct IoKeepGoing<'a, T: ?Sized> {
    input: &'a T,
    flock: &'a Flock,
}

macro_rules! view_traits {
    ($($view:ident)*) => {$(
        impl<T: ?Sized> Clone for $view<'_, T> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<T: ?Sized> Copy for $view<'_, T> {}

        impl<T: ?Sized> fmt::Debug for $view<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($view))
                    .field("input", &std::any::type_name::<T>())
                    .field("flock", self.flock)
                    .finish()
            }
        }
    )*};
}

view_traits!(Io IoKeepGoing);

impl<'a, T: ?Sized> Io<'a, T> {
    /// The keep-going form of this view: failures are collected in a [`Report`] instead of
    /// stopping the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let (out, report) = [1, 0, 2]
    ///     .io()
    ///     .keep_going()
    ///     .par_apply_rows(async |&x| if x == 0 { Err("zero".into()) } else { Ok(10 / x) })
    ///     .wait()?;
    /// assert_eq!(out, [Some(10), None, Some(5)]);
    /// assert!(matches!(report.failures[0].error, Error::Row { row: 1, .. }));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn keep_going(self) -> IoKeepGoing<'a, T> {
        IoKeepGoing {
            input: self.input,
            flock: self.flock,
        }
    }
}

/// A call of an [`Io`] view, not yet run: `.await` it in async code, or
/// [`wait`](IoCall::wait) for it in synchronous code. Nothing runs until then; dropping it
/// (or the future it becomes) drops every unit in flight.
///
/// # Examples
///
/// ```
/// use polars_flock::prelude::*;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), polars_flock::Error> {
/// // Inside a tokio application: await it (a current-thread runtime is not blocked).
/// let out = [1, 2, 3].io().par_apply_rows(async |x| Ok(x + 1)).await?;
/// assert_eq!(out, [2, 3, 4]);
/// # Ok(())
/// # }
/// ```
#[must_use = "an IoCall does nothing until it is awaited or waited for"]
pub struct IoCall<F> {
    future: F,
}

impl<F> fmt::Debug for IoCall<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoCall").finish_non_exhaustive()
    }
}

impl<F: Future> IntoFuture for IoCall<F> {
    type Output = F::Output;
    type IntoFuture = F;

    fn into_future(self) -> F {
        self.future
    }
}

impl<T, F: Future<Output = Result<T>>> IoCall<F> {
    fn new(future: F) -> Self {
        Self { future }
    }

    /// Runs the call to its end on this thread and returns its result: on the crate's own tokio
    /// runtime (started on first use, two threads that only wait on IO and timers), or, when
    /// called on a thread of a multi-thread tokio runtime, on that runtime (the thread is handed
    /// over with `block_in_place`, so its other tasks move to the runtime's other threads).
    ///
    /// # Errors
    ///
    /// The call's errors; [`Error::InvalidOption`] (option `"wait"`) when called on the thread of
    /// a current-thread tokio runtime, which cannot be blocked without stalling it: `.await` the
    /// call there. [`Error::Io`] if the crate's runtime cannot be started.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let out = [1, 2, 3].io().par_apply_rows(async |x| Ok(x * x)).wait()?;
    /// assert_eq!(out, [1, 4, 9]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn wait(self) -> Result<T> {
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(self.future))
            }
            Ok(_) => Err(Error::InvalidOption {
                option: "wait",
                value: "on a current-thread tokio runtime".into(),
                reason: "blocking this thread would stall its runtime: `.await` the call instead",
            }),
            Err(_) => runtime()?.block_on(self.future),
        }
    }
}

/// The crate's own runtime for [`IoCall::wait`] outside any runtime: two threads that drive IO
/// and timers and run what user code spawns (a database connection's task); the calls' units
/// are polled on the waiting thread.
fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("polars-flock-io")
        .enable_all()
        .build()
        .map_err(Error::Io)?;
    // Two first calls may race: one runtime is kept, the other dropped (on this thread, outside
    // any runtime, where dropping one is allowed).
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// Clients made on first use and kept across calls (feature `async`): `n` slots, each made by an
/// async `init` the first time a unit asks for it, shared by reference by every unit that uses
/// it (a `tokio_postgres::Client` pipelines their queries). Unit `i` uses slot `i % n`, so a
/// call's units spread over the slots; slots are made only when needed and stay open while the
/// `Clients` lives, for every later call (drop it to close them).
///
/// The units of an async call have no workers of their own (they all run on the task that
/// awaits the call): this is what per-worker states are for them. A failed `init` is the error of
/// the unit that asked (`Error::Row` naming it, for a row), and the slot is tried again by the
/// next unit that needs it.
///
/// # Examples
///
/// ```
/// use polars_flock::io::Clients;
/// use polars_flock::prelude::*;
///
/// // Stands for `tokio_postgres::connect(..)`: four connections, opened when first needed.
/// let clients = Clients::new(4, async || Ok(String::from("connection")));
/// let ids: Vec<usize> = (0..100).collect();
/// for _ in 0..3 {
///     let out = ids
///         .io()
///         .par_apply_rows(async |&i| {
///             let client = clients.get(i).await?;
///             Ok(client.len() + i)
///         })
///         .wait()?;
///     assert_eq!(out[99], 109);
/// }
/// assert_eq!(clients.inits(), 4); // kept across the three calls
/// # Ok::<(), polars_flock::Error>(())
/// ```
pub struct Clients<S, I> {
    slots: Vec<tokio::sync::OnceCell<S>>,
    init: I,
    inits: std::sync::atomic::AtomicUsize,
}

impl<S, I> fmt::Debug for Clients<S, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clients")
            .field("slots", &self.slots.len())
            .field(
                "open",
                &self.slots.iter().filter(|s| s.initialized()).count(),
            )
            .finish_non_exhaustive()
    }
}

impl<S, I> Clients<S, I>
where
    I: AsyncFn() -> Result<S, BoxError>,
{
    /// `n` slots (at least one: `0` is taken as `1`), none made yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let clients = polars_flock::io::Clients::new(8, async || Ok(0u32));
    /// assert_eq!((clients.len(), clients.inits()), (8, 0));
    /// ```
    pub fn new(n: usize, init: I) -> Self {
        Self {
            slots: (0..n.max(1))
                .map(|_| tokio::sync::OnceCell::new())
                .collect(),
            init,
            inits: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The client of slot `unit % n`, made now if it is not yet (units that ask for it
    /// meanwhile wait for the same `init`).
    ///
    /// # Errors
    ///
    /// `init`'s error, for the unit to return with `?`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), polars_flock::BoxError> {
    /// # let runtime = polars_flock::tokio::runtime::Builder::new_current_thread().build()?;
    /// # runtime.block_on(async {
    /// let clients = polars_flock::io::Clients::new(2, async || Ok(vec![1, 2, 3]));
    /// assert_eq!(clients.get(5).await?.len(), 3); // slot 1
    /// assert_eq!(clients.inits(), 1);
    /// # Ok(())
    /// # })
    /// # }
    /// ```
    pub async fn get(&self, unit: usize) -> Result<&S, BoxError> {
        let slot = &self.slots[unit % self.slots.len()];
        slot.get_or_try_init(async || {
            let client = (self.init)().await?;
            self.inits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(client)
        })
        .await
    }

    /// How many slots.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(polars_flock::io::Clients::new(0, async || Ok(())).len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Always false: there is at least one slot.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!polars_flock::io::Clients::new(3, async || Ok(())).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// How many clients `init` has made so far (successfully).
    ///
    /// # Examples
    ///
    /// ```
    /// let clients = polars_flock::io::Clients::new(3, async || Ok(()));
    /// assert_eq!(clients.inits(), 0);
    /// ```
    pub fn inits(&self) -> usize {
        self.inits.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Row `row` of `df` as a unit: the row closure's future, with its error named by the row.
async fn row_unit<U, F>(df: &DataFrame, row: usize, f: &F) -> Result<U>
where
    F: AsyncFn(&Row<'_>) -> Result<U, BoxError>,
{
    // A segment per row: rows in flight together never share a getter's error flag.
    let segment = RowSegment::new(df, row..row + 1);
    let view = segment.row(0);
    f(&view).await.map_err(|e| view.attribute(e))
}

/// Block `block` of `df` as a unit.
async fn block_unit<F>(df: &DataFrame, plan: &ChunkPlan, block: usize, f: &F) -> Result<DataFrame>
where
    F: AsyncFn(DataFrame) -> Result<DataFrame, BoxError>,
{
    let rows = plan.block_rows(block);
    let slice = df.slice(rows.start as i64, rows.len());
    f(slice).await.map_err(|e| Error::of_block(e, block, rows))
}

fn block_plan(flock: &Flock, rows: usize) -> Result<ChunkPlan> {
    Ok(flock.layout(rows)?.fixed())
}

/// Async verbs on a frame.
impl<'a> Io<'a, DataFrame> {
    /// [`par_apply_rows`](crate::DataFrameParApply::par_apply_rows) with an async closure: one
    /// unit per row, at most [`concurrency`](Flock::concurrency) rows in flight, the new columns
    /// in row order.
    ///
    /// # Errors
    ///
    /// As the synchronous verb: the first failing row in input order ([`Error::Row`], a getter's
    /// error, [`Error::Panicked`]), [`Error::TimedOut`] / [`Error::Cancelled`], and the options'
    /// errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// let df = df!("x" => [1i64, 2, 3])?;
    /// let out = df.io().par_apply_rows("y", async |row| Ok(row.i64("x")? * 2)).wait()?;
    /// assert_eq!(out.column("y")?.i64()?.get(2), Some(6));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_rows<U, N, F>(
        self,
        names: N,
        f: F,
    ) -> IoCall<impl Future<Output = Result<DataFrame>> + 'a>
    where
        U: RowOutput + 'a,
        N: OutputNames<U> + 'a,
        F: AsyncFn(&Row<'_>) -> Result<U, BoxError> + 'a,
    {
        let Io { input: df, flock } = self;
        IoCall::new(async move {
            let names = new_names(df, &names)?;
            let units = Units::Rows(df.height());
            let (values, _) = drive(flock, units, false, |row| row_unit(df, row, &f)).await?;
            let mut out = U::builders(values.len());
            U::extend(&mut out, values.into_iter().flatten());
            one_part(df, &names, U::dtypes(), U::finish(out, &names))
        })
    }

    /// [`par_apply_blocks`](crate::DataFrameParApply::par_apply_blocks) with an async closure:
    /// blocks cut as the synchronous verb cuts them ([`chunksize`](Flock::chunksize),
    /// [`blocks`](Flock::blocks)), at most [`concurrency`](Flock::concurrency) in flight, the
    /// outputs concatenated in block order (one schema). For a bulk request per block.
    ///
    /// # Errors
    ///
    /// As the synchronous verb: [`Error::Block`], [`Error::SchemaMismatch`],
    /// [`Error::Panicked`], the stops and the options' errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// let df = df!("x" => (0..10i64).collect::<Vec<_>>())?;
    /// let out = Flock::new()
    ///     .chunksize(4)
    ///     .on(&df)
    ///     .io()
    ///     .par_apply_blocks(async |block| Ok(block.head(Some(1))))
    ///     .wait()?;
    /// assert_eq!(out.column("x")?.i64()?.to_vec(), [Some(0), Some(4), Some(8)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_blocks<F>(self, f: F) -> IoCall<impl Future<Output = Result<DataFrame>> + 'a>
    where
        F: AsyncFn(DataFrame) -> Result<DataFrame, BoxError> + 'a,
    {
        let Io { input: df, flock } = self;
        IoCall::new(async move { fail_fast(frame_blocks(df, flock, &f, false).await?) })
    }
}

/// Group `group` as a unit.
async fn group_unit<F>(groups: &Groups<'_>, group: usize, f: &F) -> Result<DataFrame>
where
    F: AsyncFn(DataFrame) -> Result<DataFrame, BoxError>,
{
    let rows = groups.frame(group)?;
    f(rows)
        .await
        .map_err(|e| groups.error(group, Error::of_closure(e)))
}

/// Async group-wise apply on a frame.
impl<'a> Io<'a, DataFrame> {
    /// [`par_apply_groups`](crate::DataFrameParApply::par_apply_groups) with an async closure: one
    /// unit per group (in the order groups first appear), at most
    /// [`concurrency`](Flock::concurrency) in flight, the outputs concatenated in that order. One
    /// call per customer, say.
    ///
    /// # Errors
    ///
    /// As the synchronous verb: [`Error::InGroup`] naming the group and its key, around the
    /// closure's error, a timeout or a panic; the stops and the options' errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// let df = df!("customer" => ["a", "b", "a"], "amount" => [1i64, 2, 3])?;
    /// let out = df
    ///     .io()
    ///     .par_apply_groups(&["customer"], async |orders| Ok(orders.head(Some(1))))
    ///     .wait()?;
    /// assert_eq!(out.column("amount")?.i64()?.to_vec(), [Some(1), Some(2)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_groups<F>(
        self,
        by: &'a [&'a str],
        f: F,
    ) -> IoCall<impl Future<Output = Result<DataFrame>> + 'a>
    where
        F: AsyncFn(DataFrame) -> Result<DataFrame, BoxError> + 'a,
    {
        let Io { input: df, flock } = self;
        IoCall::new(async move { fail_fast(frame_groups(df, flock, by, &f, false).await?) })
    }
}

/// Keep-going async verbs on a frame.
impl<'a> IoKeepGoing<'a, DataFrame> {
    /// [`Io::par_apply_rows`] that keeps going: a failed row's outputs are null and the row is in
    /// the [`Report`].
    ///
    /// # Errors
    ///
    /// Only what fails the call as a whole: the options' errors, a panicking progress callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// let df = df!("s" => ["1", "x"])?;
    /// let (out, report) = df
    ///     .io()
    ///     .keep_going()
    ///     .par_apply_rows("n", async |row| Ok(row.str("s")?.parse::<i64>()?))
    ///     .wait()?;
    /// assert_eq!(out.column("n")?.null_count(), 1);
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_rows<U, N, F>(
        self,
        names: N,
        f: F,
    ) -> IoCall<impl Future<Output = Result<(DataFrame, Report)>> + 'a>
    where
        U: RowOutput + 'a,
        N: OutputNames<U> + 'a,
        F: AsyncFn(&Row<'_>) -> Result<U, BoxError> + 'a,
    {
        let IoKeepGoing { input: df, flock } = self;
        IoCall::new(async move {
            let names = new_names(df, &names)?;
            let units = Units::Rows(df.height());
            let (values, report) = drive(flock, units, true, |row| row_unit(df, row, &f)).await?;
            let mut out = <U::Nullable as Outputs>::builders(values.len());
            <U::Nullable as Outputs>::extend(
                &mut out,
                values.into_iter().map(|v| v.map_or_else(U::null, U::some)),
            );
            let columns = <U::Nullable as Outputs>::finish(out, &names);
            Ok((one_part(df, &names, U::dtypes(), columns)?, report))
        })
    }

    /// [`Io::par_apply_blocks`] that keeps going: a failed block (or one whose schema differs
    /// from the first good block's) is left out and reported.
    ///
    /// # Errors
    ///
    /// Only what fails the call as a whole: the options' errors, a panicking progress callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// let df = df!("x" => [1i64, 2, 3, 4])?;
    /// let (out, report) = Flock::new()
    ///     .chunksize(2)
    ///     .on(&df)
    ///     .io()
    ///     .keep_going()
    ///     .par_apply_blocks(async |b| {
    ///         if b.column("x")?.i64()?.get(0) == Some(3) { return Err("bad block".into()) }
    ///         Ok(b)
    ///     })
    ///     .wait()?;
    /// assert_eq!(out.height(), 2);
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_blocks<F>(
        self,
        f: F,
    ) -> IoCall<impl Future<Output = Result<(DataFrame, Report)>> + 'a>
    where
        F: AsyncFn(DataFrame) -> Result<DataFrame, BoxError> + 'a,
    {
        let IoKeepGoing { input: df, flock } = self;
        IoCall::new(async move { frame_blocks(df, flock, &f, true).await })
    }
}

impl<'a> IoKeepGoing<'a, DataFrame> {
    /// [`Io::par_apply_groups`] that keeps going: a failed group (or one whose schema differs
    /// from the first good group's) is left out and reported as [`Unit::Group`] with its key.
    ///
    /// # Errors
    ///
    /// Only what fails the call as a whole: the options' errors, a missing key column, a
    /// panicking progress callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    /// let df = df!("customer" => ["a", "b", "a"], "amount" => [1i64, 2, 3])?;
    /// let (out, report) = df
    ///     .io()
    ///     .keep_going()
    ///     .par_apply_groups(&["customer"], async |orders| {
    ///         if orders.height() > 1 { return Err("too many orders".into()) }
    ///         Ok(orders)
    ///     })
    ///     .wait()?;
    /// assert_eq!(out.height(), 1);
    /// assert!(matches!(&report.failures[0].unit, Unit::Group { key, .. } if key == "customer=\"a\""));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_groups<F>(
        self,
        by: &'a [&'a str],
        f: F,
    ) -> IoCall<impl Future<Output = Result<(DataFrame, Report)>> + 'a>
    where
        F: AsyncFn(DataFrame) -> Result<DataFrame, BoxError> + 'a,
    {
        let IoKeepGoing { input: df, flock } = self;
        IoCall::new(async move { frame_groups(df, flock, by, &f, true).await })
    }
}

/// File `file` as a unit.
async fn file_unit<U, F>(paths: &[PathBuf], file: usize, f: &F) -> Result<U>
where
    F: AsyncFn(&Path) -> Result<U, BoxError>,
{
    let path = &paths[file];
    f(path).await.map_err(|e| file_error(path, e))
}

/// Async verbs on [`Files`].
impl<'a> Io<'a, Files> {
    /// [`Files::par_apply`] with an async closure: one unit per file, at most
    /// [`concurrency`](Flock::concurrency) in flight, outputs in file order (files on a network
    /// share, objects in a bucket).
    ///
    /// # Errors
    ///
    /// As the synchronous verb: [`Error::InFile`] naming the file, around the closure's error,
    /// a timeout or a panic; the stops and the options' errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let dir = tempfile::tempdir()?;
    /// for i in 0..3 {
    ///     std::fs::write(dir.path().join(format!("{i}.txt")), "x".repeat(i))?;
    /// }
    /// let files = Files::in_dir(dir.path(), Some("txt"))?;
    /// let sizes = files
    ///     .io()
    ///     .par_apply(async |path| Ok(tokio::fs::read(path).await?.len()))
    ///     .wait()?;
    /// assert_eq!(sizes, [0, 1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply<U, F>(self, f: F) -> IoCall<impl Future<Output = Result<Vec<U>>> + 'a>
    where
        U: 'a,
        F: AsyncFn(&Path) -> Result<U, BoxError> + 'a,
    {
        let Io {
            input: files,
            flock,
        } = self;
        IoCall::new(async move {
            Ok(fail_fast(files_of(files, flock, &f, false).await?)?
                .into_iter()
                .flatten()
                .collect())
        })
    }
}

/// Keep-going async verbs on [`Files`].
impl<'a> IoKeepGoing<'a, Files> {
    /// [`Io::par_apply`] on files that keeps going: `None` for a file that failed, listed in the
    /// [`Report`] as [`Unit::File`] with its path.
    ///
    /// # Errors
    ///
    /// Only what fails the call as a whole: the options' errors, a panicking progress callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let files = Files::new(["1", "x"]);
    /// let (out, report) = files
    ///     .io()
    ///     .keep_going()
    ///     .par_apply(async |p| Ok(p.to_str().unwrap_or_default().parse::<i32>()?))
    ///     .wait()?;
    /// assert_eq!(out, [Some(1), None]);
    /// assert!(matches!(report.failures[0].error, Error::InFile { .. }));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply<U, F>(
        self,
        f: F,
    ) -> IoCall<impl Future<Output = Result<(Vec<Option<U>>, Report)>> + 'a>
    where
        U: 'a,
        F: AsyncFn(&Path) -> Result<U, BoxError> + 'a,
    {
        let IoKeepGoing {
            input: files,
            flock,
        } = self;
        IoCall::new(async move { files_of(files, flock, &f, true).await })
    }
}

/// The output of a fail-fast call: its first failure left in the report (a schema that differs
/// from the first output's) is its error.
fn fail_fast<T>((out, report): (T, Report)) -> Result<T> {
    match report.failures.into_iter().next() {
        Some(failure) => Err(failure.error),
        None => Ok(out),
    }
}

/// The blocks of a frame, fail-fast or keep-going: outputs of one schema, in block order.
async fn frame_blocks<F>(
    df: &DataFrame,
    flock: &Flock,
    f: &F,
    keep_going: bool,
) -> Result<(DataFrame, Report)>
where
    F: AsyncFn(DataFrame) -> Result<DataFrame, BoxError>,
{
    let plan = block_plan(flock, df.height())?.with_empty_block();
    let units = Units::Blocks(&plan);
    let (parts, mut report) =
        drive(flock, units, keep_going, |b| block_unit(df, &plan, b, f)).await?;
    let outputs = (parts.into_iter().enumerate()).filter_map(|(i, out)| Some((i, out?)));
    let kept = keep_same_schema(outputs, &mut report, |index, expected, out| {
        let rows = plan.block_rows(index);
        Failure {
            error: Error::SchemaMismatch {
                block: index,
                rows: rows.clone(),
                expected,
                found: out.schema().clone(),
            },
            unit: Unit::Block { block: index, rows },
            attempts: 1,
        }
    });
    Ok((vstack_all(kept)?.unwrap_or_else(|| df.clear()), report))
}

/// The groups of a frame, fail-fast or keep-going: outputs of one schema, in group order.
async fn frame_groups<F>(
    df: &DataFrame,
    flock: &Flock,
    by: &[&str],
    f: &F,
    keep_going: bool,
) -> Result<(DataFrame, Report)>
where
    F: AsyncFn(DataFrame) -> Result<DataFrame, BoxError>,
{
    flock.io_options()?;
    let groups = Groups::for_io(df, flock, by)?;
    let units = Units::Groups(&groups);
    let (parts, mut report) =
        drive(flock, units, keep_going, |g| group_unit(&groups, g, f)).await?;
    let outputs = (parts.into_iter().enumerate()).filter_map(|(i, out)| Some((i, out?)));
    let kept = keep_same_schema(outputs, &mut report, |group, expected, out| Failure {
        error: groups.mismatch(group, expected, out),
        unit: Unit::Group {
            group,
            key: groups.key(group),
        },
        attempts: 1,
    });
    Ok((groups.concat(kept)?, report))
}

/// Files, fail-fast or keep-going: an output per file, `None` where it failed.
async fn files_of<U, F>(
    files: &Files,
    flock: &Flock,
    f: &F,
    keep_going: bool,
) -> Result<(Vec<Option<U>>, Report)>
where
    F: AsyncFn(&Path) -> Result<U, BoxError>,
{
    let paths = files.paths();
    drive(flock, Units::Files(paths), keep_going, |i| {
        file_unit(paths, i, f)
    })
    .await
}

/// Items, fail-fast or keep-going: an output per item, `None` where it failed.
async fn items_of<T, U, F>(
    items: &[T],
    flock: &Flock,
    f: &F,
    keep_going: bool,
) -> Result<(Vec<Option<U>>, Report)>
where
    F: AsyncFn(&T) -> Result<U, BoxError>,
{
    drive(flock, Units::Rows(items.len()), keep_going, |i| {
        item_unit(items, i, f)
    })
    .await
}

/// Blocks of items, fail-fast or keep-going: the blocks' outputs concatenated, failed blocks
/// left out.
async fn item_blocks<T, U, F>(
    items: &[T],
    flock: &Flock,
    f: &F,
    keep_going: bool,
) -> Result<(Vec<U>, Report)>
where
    F: AsyncFn(&[T]) -> Result<Vec<U>, BoxError>,
{
    let plan = block_plan(flock, items.len())?;
    let units = Units::Blocks(&plan);
    let (values, report) = drive(flock, units, keep_going, |b| {
        items_block_unit(items, &plan, b, f)
    })
    .await?;
    Ok((values.into_iter().flatten().flatten().collect(), report))
}

/// `df` with the new columns of a row verb (one part: a single chunk per column).
fn one_part(
    df: &DataFrame,
    names: &[PlSmallStr],
    dtypes: Vec<DataType>,
    columns: Vec<Series>,
) -> Result<DataFrame> {
    let plan = ChunkPlan::new(df.height(), Some(df.height().max(1)), 1);
    with_new_columns(df, names, dtypes, vec![columns], &plan)
}

/// Item `item` of `items` as a unit.
async fn item_unit<T, U, F>(items: &[T], item: usize, f: &F) -> Result<U>
where
    F: AsyncFn(&T) -> Result<U, BoxError>,
{
    f(&items[item])
        .await
        .map_err(|e| Error::of_row(e, item, false))
}

/// Block `block` of `items` as a unit.
async fn items_block_unit<T, U, F>(items: &[T], plan: &ChunkPlan, block: usize, f: &F) -> Result<U>
where
    F: AsyncFn(&[T]) -> Result<U, BoxError>,
{
    let rows = plan.block_rows(block);
    f(&items[rows.clone()])
        .await
        .map_err(|e| Error::of_block(e, block, rows))
}

/// Async verbs on a slice (a `Vec`, an array).
impl<'a, T: 'a> Io<'a, [T]> {
    /// [`par_apply_rows`](crate::SliceParApply::par_apply_rows) with an async closure: one unit
    /// per item, at most [`concurrency`](Flock::concurrency) in flight, outputs in item order.
    ///
    /// # Errors
    ///
    /// As the synchronous verb: the first failing item in input order ([`Error::Row`],
    /// [`Error::Panicked`]), the stops and the options' errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use polars_flock::prelude::*;
    /// // 17 "pages" of 100 ms each, all in flight: about 100 ms, not 1.7 s.
    /// let urls: Vec<String> = (0..17).map(|i| format!("https://example.com/{i}")).collect();
    /// let started = std::time::Instant::now();
    /// let sizes = urls.io().par_apply_rows(async |url| {
    ///     tokio::time::sleep(Duration::from_millis(100)).await;
    ///     Ok(url.len())
    /// }).wait()?;
    /// assert_eq!(sizes.len(), 17);
    /// assert!(started.elapsed() < Duration::from_millis(1_000));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_rows<U, F>(self, f: F) -> IoCall<impl Future<Output = Result<Vec<U>>> + 'a>
    where
        U: 'a,
        F: AsyncFn(&T) -> Result<U, BoxError> + 'a,
    {
        let Io {
            input: items,
            flock,
        } = self;
        IoCall::new(async move {
            Ok(fail_fast(items_of(items, flock, &f, false).await?)?
                .into_iter()
                .flatten()
                .collect())
        })
    }

    /// [`par_apply_blocks`](crate::SliceParApply::par_apply_blocks) with an async closure: the
    /// `Vec`s the blocks return, concatenated in block order (a bulk request per block, its
    /// answers per item).
    ///
    /// # Errors
    ///
    /// As the synchronous verb: [`Error::Block`], [`Error::Panicked`], the stops and the
    /// options' errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let ids: Vec<u32> = (0..10).collect();
    /// let sums = Flock::new()
    ///     .chunksize(4)
    ///     .on(&ids)
    ///     .io()
    ///     .par_apply_blocks(async |block| Ok(vec![block.iter().sum::<u32>()]))
    ///     .wait()?;
    /// assert_eq!(sums, [6, 22, 17]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_blocks<U, F>(self, f: F) -> IoCall<impl Future<Output = Result<Vec<U>>> + 'a>
    where
        U: 'a,
        F: AsyncFn(&[T]) -> Result<Vec<U>, BoxError> + 'a,
    {
        let Io {
            input: items,
            flock,
        } = self;
        IoCall::new(async move { fail_fast(item_blocks(items, flock, &f, false).await?) })
    }
}

/// Keep-going async verbs on a slice.
impl<'a, T: 'a> IoKeepGoing<'a, [T]> {
    /// [`Io::par_apply_rows`] on items that keeps going: output `i` is `None` if item `i` failed
    /// (or a stop skipped it).
    ///
    /// # Errors
    ///
    /// Only what fails the call as a whole: the options' errors, a panicking progress callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let (out, report) = ["1", "x"].io().keep_going().par_apply_rows(async |s| Ok(s.parse::<u8>()?)).wait()?;
    /// assert_eq!(out, [Some(1), None]);
    /// assert_eq!(report.failures.len(), 1);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_rows<U, F>(
        self,
        f: F,
    ) -> IoCall<impl Future<Output = Result<(Vec<Option<U>>, Report)>> + 'a>
    where
        U: 'a,
        F: AsyncFn(&T) -> Result<U, BoxError> + 'a,
    {
        let IoKeepGoing {
            input: items,
            flock,
        } = self;
        IoCall::new(async move { items_of(items, flock, &f, true).await })
    }

    /// [`Io::par_apply_blocks`] on items that keeps going: a failed block's outputs are left
    /// out and the block reported.
    ///
    /// # Errors
    ///
    /// Only what fails the call as a whole: the options' errors, a panicking progress callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let (sums, report) = Flock::new()
    ///     .chunksize(2)
    ///     .on(&[1, 2, 0, 4])
    ///     .io()
    ///     .keep_going()
    ///     .par_apply_blocks(async |b| {
    ///         if b.contains(&0) { return Err("zero".into()) }
    ///         Ok(vec![b.iter().sum::<i32>()])
    ///     })
    ///     .wait()?;
    /// assert_eq!(sums, [3]);
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [2, 3]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_blocks<U, F>(
        self,
        f: F,
    ) -> IoCall<impl Future<Output = Result<(Vec<U>, Report)>> + 'a>
    where
        U: 'a,
        F: AsyncFn(&[T]) -> Result<Vec<U>, BoxError> + 'a,
    {
        let IoKeepGoing {
            input: items,
            flock,
        } = self;
        IoCall::new(async move { item_blocks(items, flock, &f, true).await })
    }
}
