//! `SliceParApply`: parallel, in-order apply on a slice (and so on a `Vec`), with default
//! options, a configured view ([`On`]) or in keep-going mode ([`KeepGoing`]).

use crate::concat::concat_vecs;
use crate::control::Report;
use crate::error::{BoxError, Error, Result};
use crate::exec::{Block, Discarded, StateSource, Stateless, run_blocks_stateful, run_keep_going};
use crate::flock::Flock;
use crate::fold::fold_items;
use crate::sealed::Items;
use crate::view::{KeepGoing, On, PerWorker, default_flock};

/// Parallel, in-order apply on a slice or `Vec` (Flock's `FunctionAsync` and `ListAsync`, rayon's
/// `par_iter().map()` with the order, the options and the error handling of this crate): per
/// item ([`par_apply_rows`](SliceParApply::par_apply_rows)), per block of items
/// ([`par_apply_blocks`](SliceParApply::par_apply_blocks)), or a fold
/// ([`par_fold`](SliceParApply::par_fold)).
///
/// Implemented for slices (so for `Vec`s and arrays, by auto-deref) with default options, and for
/// a configured view `flock.on(&items)` ([`Flock::on`]). Items are never copied: blocks are
/// sub-slices. Every closure returns `Result<_, BoxError>`: `?` works on any error.
///
/// The trait is sealed.
///
/// # Examples
///
/// ```
/// use polars_flock::prelude::*;
///
/// let ids: Vec<u32> = (0..10_000).collect();
/// let squares = ids.par_apply_rows(|&id| Ok(u64::from(id) * u64::from(id)))?;
/// assert_eq!(squares[9_999], 99_980_001);
///
/// let sums = Flock::new().blocks(4).on(&ids).par_apply_blocks(|b| Ok(vec![b.iter().sum::<u32>()]))?;
/// assert_eq!(sums.len(), 4);
/// # Ok::<(), polars_flock::Error>(())
/// ```
pub trait SliceParApply<T: Sync>: Items<T> {
    /// Calls `f` on every item in parallel and returns the results in item order.
    ///
    /// # Errors
    ///
    /// [`Error::Row`] with the lowest failing item index and the closure's error as source (no new
    /// block starts after a failure; a crate error returned by the closure, such as a nested
    /// call's, is its source too); [`Error::Panicked`] (with the item) if `f` panics; the
    /// options' errors.
    ///
    /// # Ordering
    ///
    /// Output `i` is `f(&items[i])`.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let raw = ["1", "2", "three", "4"];
    /// let err = raw.par_apply_rows(|s| Ok(s.parse::<i32>()?)).unwrap_err();
    /// let Error::Row { row, source } = err else { panic!() };
    /// assert_eq!(row, 2);
    /// assert!(source.downcast_ref::<std::num::ParseIntError>().is_some());
    ///
    /// let v: Vec<i32> = (0..100).collect();
    /// let neg = Flock::new().chunksize(7).threads(2).on(&v).par_apply_rows(|x| Ok(-x))?;
    /// assert_eq!(neg[99], -99);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_apply_rows<U, F>(&self, f: F) -> Result<Vec<U>>
    where
        U: Send,
        F: Fn(&T) -> std::result::Result<U, BoxError> + Sync,
    {
        let (items, flock) = self.parts();
        apply_items(items, flock, &Stateless, |(), item| f(item))
    }

    /// [`par_apply_rows`](SliceParApply::par_apply_rows) with a per-worker state: an `init`
    /// closure (one state per worker, for this call) or `&`[`Workers`](crate::Workers) (states
    /// kept across calls); see [`PerWorker`].
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](SliceParApply::par_apply_rows), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// // IO-bound work: more threads than cores, on a pool of its own, a state per worker.
    /// let workers = Workers::new(|| Ok(()));
    /// let io = Flock::new().threads(16).chunksize(1);
    /// let slept = io.on(&(0..32).collect::<Vec<u64>>()).par_apply_rows_per_worker(&workers, |(), ms| {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms % 3));
    ///     Ok(*ms)
    /// })?;
    /// assert_eq!(slept.len(), 32);
    /// assert!(workers.inits() <= 16);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_apply_rows_per_worker<S, W, U, F>(&self, workers: W, f: F) -> Result<Vec<U>>
    where
        S: Send,
        W: PerWorker<S>,
        U: Send,
        F: Fn(&mut S, &T) -> std::result::Result<U, BoxError> + Sync,
    {
        let (items, flock) = self.parts();
        apply_items(items, flock, &workers, f)
    }

    /// Calls `f` on contiguous sub-slices (blocks) in parallel and concatenates the returned
    /// `Vec`s in block order. A block may return any number of outputs.
    ///
    /// # Errors
    ///
    /// [`Error::Block`] with the block, its items and the closure's error; [`Error::Panicked`];
    /// the options' errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let v: Vec<u32> = (0..1_000).collect();
    /// let evens = v.par_apply_blocks(|block| Ok(block.iter().copied().filter(|x| x % 2 == 0).collect()))?;
    /// assert_eq!(evens.len(), 500);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_apply_blocks<U, F>(&self, f: F) -> Result<Vec<U>>
    where
        U: Send,
        F: Fn(&[T]) -> std::result::Result<Vec<U>, BoxError> + Sync,
    {
        let (items, flock) = self.parts();
        apply_item_blocks(items, flock, &Stateless, |(), block| f(block))
    }

    /// [`par_apply_blocks`](SliceParApply::par_apply_blocks) with a per-worker state (see
    /// [`PerWorker`]).
    ///
    /// # Errors
    ///
    /// As [`par_apply_blocks`](SliceParApply::par_apply_blocks), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let v: Vec<u8> = (0..128).collect(); // ASCII: one byte per char
    /// let out = v.par_apply_blocks_per_worker(|| Ok(String::new()), |buf, block| {
    ///     buf.clear();
    ///     buf.extend(block.iter().map(|&b| char::from(b)));
    ///     Ok(vec![buf.len()])
    /// })?;
    /// assert_eq!(out.iter().sum::<usize>(), 128);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_apply_blocks_per_worker<S, W, U, F>(&self, workers: W, f: F) -> Result<Vec<U>>
    where
        S: Send,
        W: PerWorker<S>,
        U: Send,
        F: Fn(&mut S, &[T]) -> std::result::Result<Vec<U>, BoxError> + Sync,
    {
        let (items, flock) = self.parts();
        apply_item_blocks(items, flock, &workers, f)
    }

    /// Folds the items in parallel (toolz's `fold`, rayon's `fold` + `reduce` in one call, in
    /// order): each block folds its items with `fold`, starting from `identity()`, and the blocks'
    /// accumulators are combined left to right, in block order, with `combine`.
    ///
    /// The result equals the serial `items.iter().try_fold(identity(), fold)` when `combine` is
    /// associative and `identity()` is neutral for it (`combine(identity(), a) == a`).
    /// `combine` need not be commutative: accumulators are never combined out of order. An empty
    /// input gives `identity()`. The chunk size sets how many items each accumulator folds.
    ///
    /// # Errors
    ///
    /// [`Error::Row`] with the first failing item; [`Error::Panicked`] (with `during`) if
    /// `fold`, `identity` or `combine` panics; the options' errors.
    ///
    /// # Parallelism
    ///
    /// `fold` runs on the pool, one block at a time per thread; `combine` runs on the calling
    /// thread, once per block after the first.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let words = ["par", "allel", " ", "fo", "ld"];
    /// // String concatenation: associative, not commutative; the order is kept.
    /// let joined = words.par_fold(String::new, |acc, w| Ok(acc + w), |a, b| a + &b)?;
    /// assert_eq!(joined, "parallel fold");
    ///
    /// let items: Vec<u64> = (1..=1_000).collect();
    /// let (sum, max) = Flock::new().chunksize(100).on(&items)
    ///     .par_fold(|| (0, 0), |(s, m), &x| Ok((s + x, m.max(x))), |a, b| (a.0 + b.0, a.1.max(b.1)))?;
    /// assert_eq!((sum, max), (500_500, 1_000));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_fold<A, Id, F, C>(&self, identity: Id, fold: F, combine: C) -> Result<A>
    where
        A: Send,
        Id: Fn() -> A + Sync,
        F: Fn(A, &T) -> std::result::Result<A, BoxError> + Sync,
        C: FnMut(A, A) -> A,
    {
        let (items, flock) = self.parts();
        fold_items(items, flock, identity, fold, combine)
    }

    /// Keep-going mode with the same options: a failing item is `None` in the output, a failing
    /// block is left out, each listed in the returned [`Report`] (see [`KeepGoing`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let raw = ["1", "x", "3"];
    /// let (out, report) = raw.keep_going().par_apply_rows(|s| Ok(s.parse::<i32>()?))?;
    /// assert_eq!(out, [Some(1), None, Some(3)]);
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [1]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn keep_going(&self) -> KeepGoing<'_, [T]> {
        let (input, flock) = self.parts();
        KeepGoing { input, flock }
    }

    /// The async view of these items (feature `async`): the same verbs with async closures, for
    /// items that wait on IO (URLs, customers, files on a network share); see
    /// [`io`](crate::io).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let names = vec!["ada", "bob"];
    /// let out = names.io().par_apply_rows(async |name| Ok(name.len())).wait()?;
    /// assert_eq!(out, [3, 3]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    #[cfg(feature = "async")]
    fn io(&self) -> crate::io::Io<'_, [T]> {
        let (input, flock) = self.parts();
        crate::io::Io { input, flock }
    }
}

impl<T> Items<T> for [T] {
    fn parts(&self) -> (&[T], &Flock) {
        (self, default_flock())
    }
}

impl<T: Sync> SliceParApply<T> for [T] {}

macro_rules! configured_items {
    ($($(#[$meta:meta])* [$($generics:tt)*] $input:ty;)*) => {$(
        impl<$($generics)*> Items<T> for On<'_, $input> {
            fn parts(&self) -> (&[T], &Flock) {
                (&self.input[..], self.flock)
            }
        }

        impl<$($generics)*> SliceParApply<T> for On<'_, $input> where T: Sync {}
    )*};
}

configured_items! {
    [T] [T];
    [T] Vec<T>;
    [T, const N: usize] [T; N];
    [T] &[T];
    [T] &Vec<T>;
}

/// Keep-going verbs on items: each returns its output and a [`Report`].
impl<T: Sync> KeepGoing<'_, [T]> {
    /// [`SliceParApply::par_apply_rows`] that keeps going: output `i` is `None` if item `i`
    /// failed (an error or a panic; listed in the report as [`Unit::Row`](crate::Unit::Row)) or was skipped by a
    /// stop.
    ///
    /// # Errors
    ///
    /// Only what fails the call as a whole: the options' errors and a panicking progress
    /// callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let (out, report) = Flock::new().chunksize(2).on(&[1, 0, 4]).keep_going().par_apply_rows(|&x| {
    ///     if x == 0 { return Err("zero".into()); }
    ///     Ok(100 / x)
    /// })?;
    /// assert_eq!(out, [Some(100), None, Some(25)]);
    /// assert!(matches!(report.failures[0].error, Error::Row { row: 1, .. }));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_rows<U, F>(&self, f: F) -> Result<(Vec<Option<U>>, Report)>
    where
        U: Send,
        F: Fn(&T) -> std::result::Result<U, BoxError> + Sync,
    {
        apply_items_keep_going(self.input, self.flock, &Stateless, |(), item| f(item))
    }

    /// [`SliceParApply::par_apply_rows_per_worker`] that keeps going. A state whose item
    /// panicked is dropped, and its worker makes a new one for its next block.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](KeepGoing::par_apply_rows), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let (out, report) = ["a", "bb"].keep_going().par_apply_rows_per_worker(|| Ok(0), |n, s| {
    ///     *n += 1;
    ///     Ok(s.len())
    /// })?;
    /// assert_eq!(out, [Some(1), Some(2)]);
    /// assert!(report.is_complete());
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_rows_per_worker<S, W, U, F>(
        &self,
        workers: W,
        f: F,
    ) -> Result<(Vec<Option<U>>, Report)>
    where
        S: Send,
        W: PerWorker<S>,
        U: Send,
        F: Fn(&mut S, &T) -> std::result::Result<U, BoxError> + Sync,
    {
        apply_items_keep_going(self.input, self.flock, &workers, f)
    }

    /// [`SliceParApply::par_apply_blocks`] that keeps going: a block that fails or panics is
    /// left out of the output and listed in the report ([`Unit::Block`](crate::Unit::Block), with its items).
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](KeepGoing::par_apply_rows).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let v: Vec<i32> = (0..6).collect();
    /// let (out, report) = Flock::new().chunksize(2).on(&v).keep_going().par_apply_blocks(|b| {
    ///     if b.contains(&3) { return Err("bad block".into()); }
    ///     Ok(b.to_vec())
    /// })?;
    /// assert_eq!(out, [0, 1, 4, 5]);
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [2, 3]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_blocks<U, F>(&self, f: F) -> Result<(Vec<U>, Report)>
    where
        U: Send,
        F: Fn(&[T]) -> std::result::Result<Vec<U>, BoxError> + Sync,
    {
        apply_item_blocks_keep_going(self.input, self.flock, &Stateless, |(), block| f(block))
    }

    /// [`SliceParApply::par_apply_blocks_per_worker`] that keeps going (see
    /// [`par_apply_blocks`](KeepGoing::par_apply_blocks)).
    ///
    /// # Errors
    ///
    /// As [`par_apply_blocks`](KeepGoing::par_apply_blocks), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let (out, report) = [1, 2, 3].keep_going().par_apply_blocks_per_worker(|| Ok(()), |(), b| Ok(b.to_vec()))?;
    /// assert_eq!(out, [1, 2, 3]);
    /// assert!(report.is_complete());
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_blocks_per_worker<S, W, U, F>(
        &self,
        workers: W,
        f: F,
    ) -> Result<(Vec<U>, Report)>
    where
        S: Send,
        W: PerWorker<S>,
        U: Send,
        F: Fn(&mut S, &[T]) -> std::result::Result<Vec<U>, BoxError> + Sync,
    {
        apply_item_blocks_keep_going(self.input, self.flock, &workers, f)
    }
}

fn apply_items<T, S, U, F>(
    items: &[T],
    flock: &Flock,
    states: &(impl StateSource<S> + ?Sized),
    f: F,
) -> Result<Vec<U>>
where
    T: Sync,
    S: Send,
    U: Send,
    F: Fn(&mut S, &T) -> std::result::Result<U, BoxError> + Sync,
{
    let plan = flock.plan(items.len())?;
    let parts = run_blocks_stateful(
        flock,
        &plan,
        states,
        |block, state| item_loop(block, items, state, states, &f),
        |_, _, _| Ok(()),
    )?;
    Ok(concat_vecs(parts))
}

/// One block of [`apply_items`]: each item's output, up to the first error.
#[inline(always)]
fn item_loop<T, S, U>(
    block: &Block<'_>,
    items: &[T],
    state: &mut S,
    states: &(impl StateSource<S> + ?Sized),
    f: &impl Fn(&mut S, &T) -> std::result::Result<U, BoxError>,
) -> Result<Vec<U>> {
    // Outputs so far are user values: dropped under the guard if a later item fails.
    let mut out = Discarded::new(Vec::with_capacity(block.rows.len()));
    let limit = block.unit_limit();
    for (row, item) in block.rows.clone().zip(&items[block.rows.clone()]) {
        block.enter_row(row);
        match block.attempt_within(limit, state, states, |state| f(state, item)) {
            Ok(value) => out.push(value),
            Err(source) => return Err(Error::Row { row, source }),
        }
    }
    Ok(out.keep())
}

fn apply_items_keep_going<T, S, U, F>(
    items: &[T],
    flock: &Flock,
    states: &(impl StateSource<S> + ?Sized),
    f: F,
) -> Result<(Vec<Option<U>>, Report)>
where
    T: Sync,
    S: Send,
    U: Send,
    F: Fn(&mut S, &T) -> std::result::Result<U, BoxError> + Sync,
{
    let plan = flock.plan(items.len())?;
    let (parts, report) = run_keep_going(
        flock,
        &plan,
        states,
        |block, state, units| {
            let items = &items[block.rows.clone()];
            Ok((block.rows.clone().zip(items))
                .map(|(row, item)| {
                    units.row(block, row, || {
                        (block.attempt(state, states, |state| f(state, item)))
                            .map_err(|source| Error::Row { row, source })
                    })
                })
                .collect())
        },
        |rows| rows.map(|_| None).collect(),
    )?;
    Ok((concat_vecs(parts), report))
}

fn apply_item_blocks<T, S, U, F>(
    items: &[T],
    flock: &Flock,
    states: &(impl StateSource<S> + ?Sized),
    f: F,
) -> Result<Vec<U>>
where
    T: Sync,
    S: Send,
    U: Send,
    F: Fn(&mut S, &[T]) -> std::result::Result<Vec<U>, BoxError> + Sync,
{
    let plan = flock.plan(items.len())?.fixed();
    let parts = run_blocks_stateful(
        flock,
        &plan,
        states,
        |block, state| {
            (block.attempt(state, states, |state| f(state, &items[block.rows.clone()])))
                .map_err(|e| Error::of_block(e, block.index, block.rows.clone()))
        },
        |_, _, _| Ok(()),
    )?;
    Ok(concat_vecs(parts))
}

fn apply_item_blocks_keep_going<T, S, U, F>(
    items: &[T],
    flock: &Flock,
    states: &(impl StateSource<S> + ?Sized),
    f: F,
) -> Result<(Vec<U>, Report)>
where
    T: Sync,
    S: Send,
    U: Send,
    F: Fn(&mut S, &[T]) -> std::result::Result<Vec<U>, BoxError> + Sync,
{
    let plan = flock.plan(items.len())?.fixed();
    let (parts, report) = run_keep_going(
        flock,
        &plan,
        states,
        |block, state, units| {
            let out = units.block(block, || {
                (block.attempt(state, states, |state| f(state, &items[block.rows.clone()])))
                    .map_err(|e| Error::of_block(e, block.index, block.rows.clone()))
            });
            Ok(out.unwrap_or_default())
        },
        |_| Vec::new(),
    )?;
    Ok((concat_vecs(parts), report))
}
