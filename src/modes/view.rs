//! Options and modes as values: the configured view ([`Flock::on`]), keep-going
//! ([`DataFrameParApply::keep_going`](crate::DataFrameParApply::keep_going)), and per-worker
//! states ([`PerWorker`]: an `init` closure or a [`Workers`](crate::Workers)).

use std::fmt;
use std::sync::LazyLock;

use crate::error::BoxError;
use crate::flock::Flock;
use crate::sealed::{StateSource, Typed};
use crate::value::RowOutput;

/// An input with the options to run on it: `flock.on(&df)`, `flock.on(&items)`,
/// `flock.on(&files)`. It has the same verbs as the input itself (the same traits, or for
/// [`Files`](crate::Files) the same methods), run with these options instead of the defaults, so
/// every verb takes every option and a new option never adds a method.
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
///
/// let df = df!("x" => [1i64, 2, 3, 4, 5])?;
/// let flock = Flock::new().chunksize(2).threads(2);
/// let out = flock.on(&df).par_apply_rows("sq", |row| Ok(row.i64("x")?.pow(2)))?;
/// assert_eq!(out.column("sq")?.n_chunks(), 3); // one chunk per block, not rechunked
/// let (evens, _) = flock.on(&df).keep_going().par_apply_blocks(|b| Ok(b.head(Some(1))))?;
/// assert_eq!(evens.height(), 3);
/// let doubled = flock.on(&[1, 2, 3]).par_apply_rows(|x| Ok(x * 2))?;
/// assert_eq!(doubled, [2, 4, 6]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct On<'a, T: ?Sized> {
    pub(crate) input: &'a T,
    pub(crate) flock: &'a Flock,
}

impl<T: ?Sized> Clone for On<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for On<'_, T> {}

impl<T: ?Sized> fmt::Debug for On<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("On")
            .field("input", &std::any::type_name::<T>())
            .field("flock", self.flock)
            .finish()
    }
}

impl Flock {
    /// A view of `input` that runs every verb with these options: `flock.on(&df).par_apply_rows(..)`.
    /// The view borrows both; make one per call or keep it, it is `Copy`.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let flock = Flock::new().blocks(3);
    /// let sums = flock.on(&[1, 2, 3, 4, 5, 6]).par_apply_blocks(|b| Ok(vec![b.iter().sum::<i32>()]))?;
    /// assert_eq!(sums, [3, 7, 11]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn on<'a, T: ?Sized>(&'a self, input: &'a T) -> On<'a, T> {
        On { input, flock: self }
    }
}

/// The options of a call made without a [`Flock`]: `Flock::new()`.
pub(crate) fn default_flock() -> &'static Flock {
    static DEFAULT: LazyLock<Flock> = LazyLock::new(Flock::new);
    &DEFAULT
}

/// Keep-going mode: the same verbs as the view it came from, but a failing unit — a row (an
/// error or a panic; its output is null), or a whole block, group or file (left out of the
/// output) — does not fail the call. Each verb returns its output and a
/// [`Report`](crate::Report) listing every failed unit with its error, so one bad row in ten
/// million, or one bad file of 6,000, does not discard the rest.
///
/// Made by `.keep_going()` on a frame, a slice, [`Files`](crate::Files), or a configured view
/// ([`On`]). Everything that is not a unit's failure still fails the call as in fail-fast mode:
/// invalid options, a duplicate output column, a missing column of the typed path, a failing
/// `init`, a panicking progress callback. A stop ([`Flock::timeout`],
/// [`Flock::cancel_token`]) returns what completed, with the reason in
/// [`Report::stopped`](crate::Report::stopped) and the units it kept from running in
/// [`Report::skipped`](crate::Report::skipped).
///
/// # Examples
///
/// ```
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
///
/// let df = df!("s" => ["1", "x", "3"])?;
/// let (out, report) = df.keep_going().par_apply_rows("n", |row| Ok(row.str("s")?.parse::<i64>()?))?;
/// assert_eq!(out.column("n")?.null_count(), 1);
/// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KeepGoing<'a, T: ?Sized> {
    pub(crate) input: &'a T,
    pub(crate) flock: &'a Flock,
}

impl<T: ?Sized> Clone for KeepGoing<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for KeepGoing<'_, T> {}

impl<T: ?Sized> fmt::Debug for KeepGoing<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeepGoing")
            .field("input", &std::any::type_name::<T>())
            .field("flock", self.flock)
            .finish()
    }
}

/// Where a `*_per_worker` call gets its workers' states: an `init` closure (a state per pool
/// thread that receives work, made by the call and dropped when it ends), or `&`[`Workers`](crate::Workers)
/// (states kept across calls, reused, closed when the `Workers` is dropped).
///
/// `init` returns `Result<S, BoxError>`: `?` works on any error in it.
///
/// # Examples
///
/// ```
/// use polars_flock::prelude::*;
///
/// // A closure: one state per worker, for this call only.
/// let out = [1, 2, 3].par_apply_rows_per_worker(|| Ok(Vec::<i32>::new()), |scratch, &x| {
///     scratch.push(x);
///     Ok(x * 10)
/// })?;
/// assert_eq!(out, [10, 20, 30]);
///
/// // A `Workers`: states kept across calls.
/// let workers = Workers::new(|| Ok(String::from("connection")));
/// let a = [1, 2].par_apply_rows_per_worker(&workers, |conn, &x| Ok(conn.len() + x))?;
/// let b = [3].par_apply_rows_per_worker(&workers, |conn, &x| Ok(conn.len() + x))?;
/// assert_eq!((a, b), (vec![11, 12], vec![13]));
/// assert_eq!(workers.inits(), 1); // one worker ran both calls (small inputs run inline)
/// # Ok::<(), polars_flock::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot give per-worker states of type `{S}`",
    note = "pass an `init` closure returning `Result<S, BoxError>` (e.g. `|| Ok(Connection::open(&path)?)`), or `&workers` for a `Workers<S>` kept across calls"
)]
pub trait PerWorker<S>: StateSource<S> {}

impl<S, T: StateSource<S>> PerWorker<S> for T {}

impl<S, I> StateSource<S> for I
where
    I: Fn() -> Result<S, BoxError> + Sync,
{
    fn acquire(&self) -> Result<S, BoxError> {
        self()
    }
    fn release(&self, state: S) -> Option<S> {
        Some(state)
    }
}

/// What a typed closure ([`par_apply_columns`](crate::DataFrameParApply::par_apply_columns))
/// may return: a column value or a tuple of two to four (see [`RowOutput`]), or a
/// `Result<_, BoxError>` of one when it can fail (`?` works on any error). An infallible closure
/// runs in a loop the compiler can vectorise.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by a typed closure",
    note = "return a column value (f64, i64, bool, String, Option<..>, ...), a tuple of 2 to 4 of them, or `Ok(..)` of one (`Result<_, BoxError>`: `?` works on any error)"
)]
pub trait TypedOutput: Typed {}

impl<T: Typed> TypedOutput for T {}

impl<U: RowOutput> Typed for U {
    type Value = U;
    const FALLIBLE: bool = false;
    #[inline(always)]
    fn value(self) -> Result<U, BoxError> {
        Ok(self)
    }
}

impl<U: RowOutput> Typed for Result<U, BoxError> {
    type Value = U;
    const FALLIBLE: bool = true;
    #[inline(always)]
    fn value(self) -> Result<U, BoxError> {
        self
    }
}
