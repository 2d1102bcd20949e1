//! `SliceParApply`: parallel, in-order apply on a slice (and so on a `Vec`).

use std::convert::Infallible;

use crate::concat::concat_vecs;
use crate::control::Report;
use crate::error::{BoxError, Error, Result};
use crate::exec::{
    Discarded, InitPerCall, StateSource, Stateless, run_blocks, run_blocks_stateful, run_keep_going,
};
use crate::flock::Flock;
use crate::fold::fold_items;
use crate::workers::Workers;

/// Parallel, in-order apply on a slice or `Vec`: per item ([`par_apply_rows`]) or per block of
/// items ([`par_apply_blocks`]), with `try_` forms for fallible closures.
///
/// Blocks are sub-slices of [`Flock::chunksize`] items (zero-copy), chosen and run exactly as for
/// a [`DataFrame`](polars::prelude::DataFrame): see [`DataFrameParApply`](crate::DataFrameParApply)
/// and [`Flock`]. Every item and every block is passed to the closure exactly once. The output is
/// one `Vec` in input order.
///
/// The trait is sealed: it is implemented for `[T]` only (a `Vec<T>` reaches it through `Deref`).
///
/// [`par_apply_rows`]: SliceParApply::par_apply_rows
/// [`par_apply_blocks`]: SliceParApply::par_apply_blocks
///
/// # Examples
///
/// ```
/// use polars_flock::prelude::*;
///
/// let items: Vec<u64> = (0..10_000).collect();
/// let squares: Vec<u64> = items.par_apply_rows(|x| x * x)?;
/// let sums: Vec<u64> = items.par_apply_blocks(|block| vec![block.iter().sum()])?;
/// assert_eq!(squares[9_999], 9_999 * 9_999);
/// assert_eq!(sums.iter().sum::<u64>(), items.iter().sum::<u64>());
/// # Ok::<(), polars_flock::Error>(())
/// ```
pub trait SliceParApply<T: Sync>: sealed::Sealed {
    /// Calls `f` on every item in parallel; item `i` of the output is `f(&self[i])`.
    ///
    /// # Errors
    ///
    /// [`Error::Panicked`] if `f` panics (with the block, its items and the item index);
    /// [`Error::InvalidOption`] and [`Error::ThreadPool`] for bad options.
    ///
    /// # Ordering
    ///
    /// Input order.
    ///
    /// # Parallelism
    ///
    /// Polars' pool, or the caller's rayon pool when called from one (see [`Flock`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let words = ["flock", "of", "birds"];
    /// let lens = words.par_apply_rows(|w| w.len())?;
    /// assert_eq!(lens, [5, 2, 5]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_apply_rows<U, F>(&self, f: F) -> Result<Vec<U>>
    where
        U: Send,
        F: Fn(&T) -> U + Sync,
    {
        self.par_apply_rows_with(&Flock::new(), f)
    }

    /// [`par_apply_rows`](SliceParApply::par_apply_rows) with explicit options.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows`](SliceParApply::par_apply_rows).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let v: Vec<i32> = (0..100).collect();
    /// let neg = v.par_apply_rows_with(&Flock::new().chunksize(7).threads(2), |x| -x)?;
    /// assert_eq!(neg[99], -99);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_apply_rows_with<U, F>(&self, flock: &Flock, f: F) -> Result<Vec<U>>
    where
        U: Send,
        F: Fn(&T) -> U + Sync;

    /// [`par_apply_rows`](SliceParApply::par_apply_rows) for a fallible closure.
    ///
    /// # Errors
    ///
    /// [`Error::Row`] with the lowest failing item index and the closure's error as source (no new
    /// block starts after a failure); otherwise as
    /// [`par_apply_rows`](SliceParApply::par_apply_rows).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::Error;
    ///
    /// let raw = ["1", "2", "three", "4"];
    /// let err = raw.try_par_apply_rows(|s| s.parse::<i32>()).unwrap_err();
    /// let Error::Row { row, source } = err else { panic!() };
    /// assert_eq!(row, 2);
    /// assert!(source.downcast_ref::<std::num::ParseIntError>().is_some());
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn try_par_apply_rows<U, E, F>(&self, f: F) -> Result<Vec<U>>
    where
        U: Send,
        E: Into<BoxError>,
        F: Fn(&T) -> std::result::Result<U, E> + Sync,
    {
        self.try_par_apply_rows_with(&Flock::new(), f)
    }

    /// [`try_par_apply_rows`](SliceParApply::try_par_apply_rows) with explicit options.
    ///
    /// # Errors
    ///
    /// As [`try_par_apply_rows`](SliceParApply::try_par_apply_rows).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let v = vec![4.0f64, 9.0];
    /// let roots = v.try_par_apply_rows_with(&Flock::new().chunksize(1), |x| {
    ///     if *x < 0.0 { Err("negative") } else { Ok(x.sqrt()) }
    /// })?;
    /// assert_eq!(roots, [2.0, 3.0]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn try_par_apply_rows_with<U, E, F>(&self, flock: &Flock, f: F) -> Result<Vec<U>>
    where
        U: Send,
        E: Into<BoxError>,
        F: Fn(&T) -> std::result::Result<U, E> + Sync;

    /// [`try_par_apply_rows`](SliceParApply::try_par_apply_rows) that keeps going past failing
    /// items: an item whose closure returns an error or panics gives `None`, and the [`Report`]
    /// lists every such item with its error ([`Error::Row`] or [`Error::Panicked`]).
    ///
    /// A [cancellation](Flock::cancel_token) or [timeout](Flock::timeout) does not fail the call
    /// either: items that did not run are `None`, listed in [`Report::skipped`], and the reason is
    /// in [`Report::stopped`]; an item that stops itself with `token.check()?` is skipped with the
    /// rest of its block, not failed.
    ///
    /// # Errors
    ///
    /// Only what fails the call as a whole, outside any item: [`Error::InvalidOption`],
    /// [`Error::ThreadPool`], and [`Error::Panicked`] from a panicking progress callback
    /// (`during: UserCode::Progress`).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let raw = ["1", "2", "three", "4"];
    /// let (parsed, report) = raw.try_par_apply_rows_keep_going(|s| s.parse::<i32>())?;
    /// assert_eq!(parsed, [Some(1), Some(2), None, Some(4)]);
    /// assert_eq!(report.failures[0].row, 2);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn try_par_apply_rows_keep_going<U, E, F>(&self, f: F) -> Result<(Vec<Option<U>>, Report)>
    where
        U: Send,
        E: Into<BoxError>,
        F: Fn(&T) -> std::result::Result<U, E> + Sync,
    {
        self.try_par_apply_rows_keep_going_with(&Flock::new(), f)
    }

    /// [`try_par_apply_rows_keep_going`](SliceParApply::try_par_apply_rows_keep_going) with
    /// explicit options.
    ///
    /// # Errors
    ///
    /// As [`try_par_apply_rows_keep_going`](SliceParApply::try_par_apply_rows_keep_going).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let items: Vec<i64> = (0..1_000).collect();
    /// let flock = Flock::new().chunksize(100);
    /// let (out, report) = items.try_par_apply_rows_keep_going_with(&flock, |&x| {
    ///     if x % 250 == 7 { Err("unlucky") } else { Ok(x * 2) }
    /// })?;
    /// assert_eq!(out.len(), 1_000);
    /// assert_eq!(report.failed_rows().collect::<Vec<_>>(), [7, 257, 507, 757]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn try_par_apply_rows_keep_going_with<U, E, F>(
        &self,
        flock: &Flock,
        f: F,
    ) -> Result<(Vec<Option<U>>, Report)>
    where
        U: Send,
        E: Into<BoxError>,
        F: Fn(&T) -> std::result::Result<U, E> + Sync;

    /// Calls `f` on every block of items in parallel and concatenates the returned `Vec`s in input
    /// order. A block may return any number of values.
    ///
    /// # Errors
    ///
    /// [`Error::Panicked`] with the block and its item range; [`Error::InvalidOption`] and
    /// [`Error::ThreadPool`] for bad options.
    ///
    /// # Ordering
    ///
    /// Block `b`'s values come before block `b + 1`'s.
    ///
    /// # Parallelism
    ///
    /// As [`par_apply_rows`](SliceParApply::par_apply_rows).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let v: Vec<u32> = (1..=10).collect();
    /// let maxima = v.par_apply_blocks_with(&Flock::new().chunksize(4), |b| vec![*b.iter().max().unwrap()])?;
    /// assert_eq!(maxima, [4, 8, 10]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_apply_blocks<U, F>(&self, f: F) -> Result<Vec<U>>
    where
        U: Send,
        F: Fn(&[T]) -> Vec<U> + Sync,
    {
        self.par_apply_blocks_with(&Flock::new(), f)
    }

    /// [`par_apply_blocks`](SliceParApply::par_apply_blocks) with explicit options.
    ///
    /// # Errors
    ///
    /// As [`par_apply_blocks`](SliceParApply::par_apply_blocks).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let v: Vec<u8> = vec![1, 2, 3, 4, 5];
    /// let pairs = v.par_apply_blocks_with(&Flock::new().chunksize(2), |b| vec![b.len()])?;
    /// assert_eq!(pairs, [2, 2, 1]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_apply_blocks_with<U, F>(&self, flock: &Flock, f: F) -> Result<Vec<U>>
    where
        U: Send,
        F: Fn(&[T]) -> Vec<U> + Sync,
    {
        self.try_par_apply_blocks_with(flock, |b| Ok::<_, Infallible>(f(b)))
    }

    /// [`par_apply_blocks`](SliceParApply::par_apply_blocks) for a fallible closure.
    ///
    /// # Errors
    ///
    /// [`Error::Block`] with the lowest failing block, its item range and the closure's error as
    /// source; otherwise as [`par_apply_blocks`](SliceParApply::par_apply_blocks).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::{Error, Flock};
    ///
    /// let v: Vec<i32> = vec![1, 2, -3, 4];
    /// let err = v
    ///     .try_par_apply_blocks_with(&Flock::new().chunksize(2), |b| {
    ///         if b.iter().any(|x| *x < 0) { Err("negative") } else { Ok(b.to_vec()) }
    ///     })
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::Block { block: 1, ref rows, .. } if *rows == (2..4)));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn try_par_apply_blocks<U, E, F>(&self, f: F) -> Result<Vec<U>>
    where
        U: Send,
        E: Into<BoxError>,
        F: Fn(&[T]) -> std::result::Result<Vec<U>, E> + Sync,
    {
        self.try_par_apply_blocks_with(&Flock::new(), f)
    }

    /// [`try_par_apply_blocks`](SliceParApply::try_par_apply_blocks) with explicit options.
    ///
    /// # Errors
    ///
    /// As [`try_par_apply_blocks`](SliceParApply::try_par_apply_blocks).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let v = vec!["a", "b", "c"];
    /// let joined = v.try_par_apply_blocks_with(&Flock::new().chunksize(2), |b| {
    ///     Ok::<_, std::fmt::Error>(vec![b.concat()])
    /// })?;
    /// assert_eq!(joined, ["ab", "c"]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn try_par_apply_blocks_with<U, E, F>(&self, flock: &Flock, f: F) -> Result<Vec<U>>
    where
        U: Send,
        E: Into<BoxError>,
        F: Fn(&[T]) -> std::result::Result<Vec<U>, E> + Sync;

    /// A fallible closure per item with a per-worker state, such as a database connection: `init`
    /// builds one state per worker that receives items, and `f` gets `&mut` to its worker's state
    /// for every item. States are dropped when the call returns; for states that outlive a call,
    /// or other options, see
    /// [`par_apply_rows_per_worker_with`](SliceParApply::par_apply_rows_per_worker_with).
    ///
    /// # Errors
    ///
    /// [`Error::Init`] when `init` fails or panics (no block runs without its state);
    /// [`Error::Row`] with the lowest failing item; otherwise as
    /// [`par_apply_rows`](SliceParApply::par_apply_rows).
    ///
    /// # Parallelism
    ///
    /// On the default pool (see [`Flock`]); `init` runs at most once per pool thread that receives
    /// items, never per block or per item. See [`Workers`] for the exact bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use polars_flock::prelude::*;
    ///
    /// let opened = AtomicUsize::new(0);
    /// let init = || {
    ///     opened.fetch_add(1, Ordering::Relaxed);
    ///     Ok::<_, std::io::Error>(Vec::<u64>::new()) // e.g. a connection
    /// };
    /// let ids: Vec<u64> = (0..100_000).collect();
    /// let out = ids.par_apply_rows_per_worker(init, |seen, id| {
    ///     seen.push(*id);
    ///     Ok::<_, std::io::Error>(id + 1)
    /// })?;
    /// assert_eq!(out[99_999], 100_000);
    /// let threads = polars_flock::Flock::new().plan(ids.len())?.threads();
    /// assert!(opened.load(Ordering::Relaxed) <= threads);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_apply_rows_per_worker<S, E, I, U, E2, F>(&self, init: I, f: F) -> Result<Vec<U>>
    where
        S: Send,
        E: Into<BoxError>,
        I: Fn() -> std::result::Result<S, E> + Sync,
        U: Send,
        E2: Into<BoxError>,
        F: Fn(&mut S, &T) -> std::result::Result<U, E2> + Sync;

    /// [`par_apply_rows_per_worker`](SliceParApply::par_apply_rows_per_worker) on a [`Workers`]
    /// runner: its options, and states reused across calls until the runner is dropped.
    ///
    /// # Errors
    ///
    /// As [`par_apply_rows_per_worker`](SliceParApply::par_apply_rows_per_worker).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// // IO-bound work: more threads than cores, on a pool of its own.
    /// let workers = Flock::new().threads(16).chunksize(1).workers(|| Ok::<_, std::io::Error>(()));
    /// let slept = (0..32).collect::<Vec<u64>>().par_apply_rows_per_worker_with(&workers, |(), ms| {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms % 3));
    ///     Ok::<_, std::io::Error>(*ms)
    /// })?;
    /// assert_eq!(slept.len(), 32);
    /// assert!(workers.inits() <= 16);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_apply_rows_per_worker_with<S, U, E, F>(
        &self,
        workers: &Workers<'_, S>,
        f: F,
    ) -> Result<Vec<U>>
    where
        S: Send,
        U: Send,
        E: Into<BoxError>,
        F: Fn(&mut S, &T) -> std::result::Result<U, E> + Sync;

    /// A fallible closure per block of items with a per-worker state, e.g. a connection that
    /// writes each block in one transaction.
    ///
    /// # Errors
    ///
    /// [`Error::Init`], [`Error::Block`] with the lowest failing block; otherwise as
    /// [`par_apply_blocks`](SliceParApply::par_apply_blocks).
    ///
    /// # Parallelism
    ///
    /// As [`par_apply_rows_per_worker`](SliceParApply::par_apply_rows_per_worker).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let items: Vec<u32> = (0..1_000).collect();
    /// let sums = items.par_apply_blocks_per_worker(
    ///     || Ok::<_, std::io::Error>(Vec::with_capacity(1_000)), // a reusable scratch buffer
    ///     |scratch: &mut Vec<u64>, block| {
    ///         scratch.clear();
    ///         scratch.extend(block.iter().map(|x| u64::from(*x) * 2));
    ///         Ok::<_, std::io::Error>(vec![scratch.iter().sum::<u64>()])
    ///     },
    /// )?;
    /// assert_eq!(sums.iter().sum::<u64>(), 999_000);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_apply_blocks_per_worker<S, E, I, U, E2, F>(&self, init: I, f: F) -> Result<Vec<U>>
    where
        S: Send,
        E: Into<BoxError>,
        I: Fn() -> std::result::Result<S, E> + Sync,
        U: Send,
        E2: Into<BoxError>,
        F: Fn(&mut S, &[T]) -> std::result::Result<Vec<U>, E2> + Sync;

    /// [`par_apply_blocks_per_worker`](SliceParApply::par_apply_blocks_per_worker) on a
    /// [`Workers`] runner.
    ///
    /// # Errors
    ///
    /// As [`par_apply_blocks_per_worker`](SliceParApply::par_apply_blocks_per_worker).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let workers = Flock::new().chunksize(10).workers(|| Ok::<_, std::io::Error>(0usize));
    /// let counts = (0..25).collect::<Vec<i32>>().par_apply_blocks_per_worker_with(&workers, |n, b| {
    ///     *n += b.len(); // items this worker has seen so far
    ///     Ok::<_, std::io::Error>(vec![b.len()])
    /// })?;
    /// assert_eq!(counts, [10, 10, 5]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_apply_blocks_per_worker_with<S, U, E, F>(
        &self,
        workers: &Workers<'_, S>,
        f: F,
    ) -> Result<Vec<U>>
    where
        S: Send,
        U: Send,
        E: Into<BoxError>,
        F: Fn(&mut S, &[T]) -> std::result::Result<Vec<U>, E> + Sync;
    /// Folds the items in parallel (toolz's `fold`, rayon's `fold` + `reduce` in one call, in
    /// order): each block folds its items with `fold`, starting from `identity()`, and the blocks'
    /// accumulators are combined left to right, in block order, with `combine`.
    ///
    /// The result equals the serial `items.iter().fold(identity(), fold)` when `combine` is
    /// associative and `identity()` is neutral for it (`combine(identity(), a) == a`).
    /// `combine` need not be commutative: accumulators are never combined out of order. An empty
    /// input gives `identity()`.
    ///
    /// # Errors
    ///
    /// [`Error::Panicked`] (with the item) if `fold` panics; [`Error::InvalidOption`] and
    /// [`Error::ThreadPool`] for bad options; [`Error::Cancelled`] / [`Error::TimedOut`] if
    /// stopped.
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
    /// let joined = words.par_fold(String::new, |acc, w| acc + w, |a, b| a + &b)?;
    /// assert_eq!(joined, "parallel fold");
    ///
    /// let items: Vec<u64> = (1..=1_000).collect();
    /// let (sum, max) = items.par_fold(|| (0, 0), |(s, m), &x| (s + x, m.max(x)), |a, b| (a.0 + b.0, a.1.max(b.1)))?;
    /// assert_eq!((sum, max), (500_500, 1_000));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_fold<A, Id, F, C>(&self, identity: Id, fold: F, combine: C) -> Result<A>
    where
        A: Send,
        Id: Fn() -> A + Sync,
        F: Fn(A, &T) -> A + Sync,
        C: FnMut(A, A) -> A,
    {
        self.par_fold_with(&Flock::new(), identity, fold, combine)
    }

    /// [`par_fold`](SliceParApply::par_fold) with explicit options. The chunk size sets how many
    /// items each accumulator folds.
    ///
    /// # Errors
    ///
    /// As [`par_fold`](SliceParApply::par_fold).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let items: Vec<u32> = (0..10).collect();
    /// let blocks = Flock::new().chunksize(4);
    /// let runs = items.par_fold_with(&blocks, Vec::new, |mut v, &x| { v.push(x); v }, |mut a, b| { a.extend(b); a })?;
    /// assert_eq!(runs, items);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    fn par_fold_with<A, Id, F, C>(
        &self,
        flock: &Flock,
        identity: Id,
        fold: F,
        combine: C,
    ) -> Result<A>
    where
        A: Send,
        Id: Fn() -> A + Sync,
        F: Fn(A, &T) -> A + Sync,
        C: FnMut(A, A) -> A;
}

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for [T] {}
}

impl<T: Sync> SliceParApply<T> for [T] {
    fn par_apply_rows_with<U, F>(&self, flock: &Flock, f: F) -> Result<Vec<U>>
    where
        U: Send,
        F: Fn(&T) -> U + Sync,
    {
        let plan = flock.plan(self.len())?;
        let parts = run_blocks(flock, &plan, |block| {
            // Outputs so far are user values: dropped under the guard if a later item panics.
            let mut out = Discarded::new(Vec::with_capacity(block.rows.len()));
            block.extend_rows(&mut *out, Vec::len, block.rows.start, |out| {
                out.extend(self[block.rows.clone()].iter().map(&f));
            })?;
            Ok(out.keep())
        })?;
        Ok(concat_vecs(parts))
    }

    fn try_par_apply_rows_with<U, E, F>(&self, flock: &Flock, f: F) -> Result<Vec<U>>
    where
        U: Send,
        E: Into<BoxError>,
        F: Fn(&T) -> std::result::Result<U, E> + Sync,
    {
        apply_items(self, flock, &Stateless, |(), item| f(item))
    }

    fn try_par_apply_rows_keep_going_with<U, E, F>(
        &self,
        flock: &Flock,
        f: F,
    ) -> Result<(Vec<Option<U>>, Report)>
    where
        U: Send,
        E: Into<BoxError>,
        F: Fn(&T) -> std::result::Result<U, E> + Sync,
    {
        let plan = flock.plan(self.len())?;
        let (parts, report) = run_keep_going(
            flock,
            &plan,
            |block, kept| {
                let items = &self[block.rows.clone()];
                Ok((block.rows.clone().zip(items))
                    .map(|(row, item)| {
                        kept.row(block, row, || {
                            f(item).map_err(|e| Error::Row {
                                row,
                                source: e.into(),
                            })
                        })
                    })
                    .collect())
            },
            |rows| rows.map(|_| None).collect(),
        )?;
        Ok((concat_vecs(parts), report))
    }

    fn try_par_apply_blocks_with<U, E, F>(&self, flock: &Flock, f: F) -> Result<Vec<U>>
    where
        U: Send,
        E: Into<BoxError>,
        F: Fn(&[T]) -> std::result::Result<Vec<U>, E> + Sync,
    {
        apply_item_blocks(self, flock, &Stateless, |(), block| f(block))
    }

    fn par_apply_rows_per_worker<S, E, I, U, E2, F>(&self, init: I, f: F) -> Result<Vec<U>>
    where
        S: Send,
        E: Into<BoxError>,
        I: Fn() -> std::result::Result<S, E> + Sync,
        U: Send,
        E2: Into<BoxError>,
        F: Fn(&mut S, &T) -> std::result::Result<U, E2> + Sync,
    {
        apply_items(self, &Flock::new(), &InitPerCall(init), f)
    }

    fn par_apply_rows_per_worker_with<S, U, E, F>(
        &self,
        workers: &Workers<'_, S>,
        f: F,
    ) -> Result<Vec<U>>
    where
        S: Send,
        U: Send,
        E: Into<BoxError>,
        F: Fn(&mut S, &T) -> std::result::Result<U, E> + Sync,
    {
        apply_items(self, workers.flock(), workers, f)
    }

    fn par_apply_blocks_per_worker<S, E, I, U, E2, F>(&self, init: I, f: F) -> Result<Vec<U>>
    where
        S: Send,
        E: Into<BoxError>,
        I: Fn() -> std::result::Result<S, E> + Sync,
        U: Send,
        E2: Into<BoxError>,
        F: Fn(&mut S, &[T]) -> std::result::Result<Vec<U>, E2> + Sync,
    {
        apply_item_blocks(self, &Flock::new(), &InitPerCall(init), f)
    }

    fn par_apply_blocks_per_worker_with<S, U, E, F>(
        &self,
        workers: &Workers<'_, S>,
        f: F,
    ) -> Result<Vec<U>>
    where
        S: Send,
        U: Send,
        E: Into<BoxError>,
        F: Fn(&mut S, &[T]) -> std::result::Result<Vec<U>, E> + Sync,
    {
        apply_item_blocks(self, workers.flock(), workers, f)
    }

    fn par_fold_with<A, Id, F, C>(
        &self,
        flock: &Flock,
        identity: Id,
        fold: F,
        combine: C,
    ) -> Result<A>
    where
        A: Send,
        Id: Fn() -> A + Sync,
        F: Fn(A, &T) -> A + Sync,
        C: FnMut(A, A) -> A,
    {
        fold_items(self, flock, identity, fold, combine)
    }
}

/// A fallible closure per item, with its worker's state; the first failing item is reported.
fn apply_items<T, S, U, E, F>(
    items: &[T],
    flock: &Flock,
    states: &impl StateSource<S>,
    f: F,
) -> Result<Vec<U>>
where
    T: Sync,
    S: Send,
    U: Send,
    E: Into<BoxError>,
    F: Fn(&mut S, &T) -> std::result::Result<U, E> + Sync,
{
    let plan = flock.plan(items.len())?;
    let parts = run_blocks_stateful(
        flock,
        &plan,
        states,
        |block, state| {
            let mut out = Discarded::new(Vec::with_capacity(block.rows.len()));
            for (row, item) in block.rows.clone().zip(&items[block.rows.clone()]) {
                block.enter_row(row);
                match f(state, item) {
                    Ok(value) => out.push(value),
                    Err(e) => {
                        return Err(Error::Row {
                            row,
                            source: e.into(),
                        });
                    }
                }
            }
            Ok(out.keep())
        },
        |_, _| Ok(()),
    )?;
    Ok(concat_vecs(parts))
}

/// A fallible closure per sub-slice, with its worker's state.
fn apply_item_blocks<T, S, U, E, F>(
    items: &[T],
    flock: &Flock,
    states: &impl StateSource<S>,
    f: F,
) -> Result<Vec<U>>
where
    T: Sync,
    S: Send,
    U: Send,
    E: Into<BoxError>,
    F: Fn(&mut S, &[T]) -> std::result::Result<Vec<U>, E> + Sync,
{
    let plan = flock.plan(items.len())?;
    let parts = run_blocks_stateful(
        flock,
        &plan,
        states,
        |block, state| {
            f(state, &items[block.rows.clone()]).map_err(|e| Error::Block {
                block: block.index,
                rows: block.rows.clone(),
                source: e.into(),
            })
        },
        |_, _| Ok(()),
    )?;
    Ok(concat_vecs(parts))
}
