//! `Workers`: per-worker state (a database connection, a client) that outlives a call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::error::{BoxError, Error, UserCode};
use crate::exec::drop_contained;
use crate::sealed::StateSource;

type Init<'a, S> = Box<dyn Fn() -> Result<S, BoxError> + Send + Sync + 'a>;

/// Per-worker states, such as database connections, built once by `init` and reused for every
/// block a worker runs, across calls, until the `Workers` is dropped.
///
/// This is Flock's `DatabaseAsync`: instead of a connection per row (slow) or one connection shared
/// by all threads (a data race, or a lock that serialises everything), each worker owns one. Make
/// it with [`Workers::new`] and pass `&workers` to any `*_per_worker` verb, with any options
/// (`flock.on(&df).par_apply_rows_per_worker(name, &workers, f)`). It holds states only: the
/// options and the pool come from the call. For states that only live for one call, pass the
/// `init` closure itself instead (see [`PerWorker`](crate::PerWorker)). `init` may borrow from
/// its surroundings (`'a`).
///
/// # Parallelism: how often `init` runs
///
/// A call keeps one state per pool thread that runs its blocks: the thread takes it just before
/// its first block of the call (a call with no blocks takes none) and keeps it for all its blocks
/// of that call; when the call ends, the states go back to the idle list. A thread takes an idle
/// state left by an earlier call if there is one, and runs `init` only otherwise. So:
///
/// - one call runs `init` at most [`ChunkPlan::threads`](crate::ChunkPlan::threads) times, and
///   only for workers that receive a block;
/// - later calls reuse the idle states: [`inits`](Workers::inits) stays at most the largest number
///   of workers that ever ran at once (over all the pools it was used on);
/// - calls made at the same time (from several threads, or a per-worker call nested in another
///   one's closure on the same `Workers`) each take their own states, so they may run `init`
///   again; a state is never used by two blocks at once.
///
/// A thread never runs two blocks of one call at once, even when it waits inside a closure (a
/// parallel Polars op, a nested call) and work stealing hands it other work meanwhile, so one
/// thread never needs two states of one call. No lock is held while user code runs. A state
/// whose closure panicked (under keep-going too) is dropped, never reused. A panic in a state's
/// `Drop` is contained: when a call closes a state it is that call's
/// [`Error::Panicked`](crate::Error::Panicked) (`during: UserCode::StateDrop`); in
/// [`close_idle`](Workers::close_idle) it is returned; when the `Workers` itself is dropped it is
/// ignored.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use polars_flock::prelude::*;
///
/// /// Stands in for a database connection: expensive to open, used by one thread at a time.
/// struct Client { queries: usize }
///
/// let opened = AtomicUsize::new(0);
/// let workers = Workers::new(|| {
///     opened.fetch_add(1, Ordering::Relaxed);
///     Ok(Client { queries: 0 })
/// });
/// let flock = Flock::new().threads(2).chunksize(100);
/// let ids: Vec<u32> = (0..10_000).collect();
/// for _ in 0..3 {
///     let out = flock.on(&ids).par_apply_rows_per_worker(&workers, |client, id| {
///         client.queries += 1;
///         Ok(id * 2)
///     })?;
///     assert_eq!(out[9_999], 19_998);
/// }
/// // 300 blocks over 3 calls, and at most one client per thread ever opened.
/// assert!(opened.load(Ordering::Relaxed) <= 2);
/// assert_eq!(workers.inits(), opened.load(Ordering::Relaxed));
/// # Ok::<(), polars_flock::Error>(())
/// ```
pub struct Workers<'a, S> {
    init: Init<'a, S>,
    idle: Mutex<Vec<S>>,
    inits: AtomicUsize,
}

impl<'a, S: Send> Workers<'a, S> {
    /// Per-worker states made by `init` when a worker first needs one, kept across calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let workers = Workers::new(|| Ok(Vec::<u8>::with_capacity(1 << 10)));
    /// assert_eq!(workers.inits(), 0); // nothing is built before a call needs it
    /// ```
    pub fn new<I>(init: I) -> Self
    where
        I: Fn() -> Result<S, BoxError> + Send + Sync + 'a,
    {
        Workers {
            init: Box::new(init),
            idle: Mutex::new(Vec::new()),
            inits: AtomicUsize::new(0),
        }
    }
}

impl<S: Send> Workers<'_, S> {
    /// How many times `init` has run (successfully or not) since this runner was built.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let workers = Workers::new(|| Ok(0u64));
    /// assert_eq!(workers.inits(), 0); // lazily: nothing ran yet
    /// [1u64, 2].par_apply_rows_per_worker(&workers, |sum, x| { *sum += x; Ok(*sum) })?;
    /// assert_eq!(workers.inits(), 1); // two items: one block, run inline
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn inits(&self) -> usize {
        self.inits.load(Ordering::Relaxed)
    }

    /// How many states are idle, kept for the next call.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let workers = Workers::new(|| Ok(()));
    /// ["x"].par_apply_rows_per_worker(&workers, |(), s| Ok(s.len()))?;
    /// assert_eq!(workers.idle_states(), 1);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn idle_states(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Drops (closes) all idle states; later calls build new ones with `init`.
    ///
    /// # Errors
    ///
    /// [`Error::Panicked`](crate::Error::Panicked) (`during: UserCode::StateDrop`, block 0) if a
    /// state's `Drop` panicked; the other states are still dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let workers = Workers::new(|| Ok(()));
    /// ["x"].par_apply_rows_per_worker(&workers, |(), s| Ok(s.len()))?;
    /// workers.close_idle()?;
    /// assert_eq!(workers.idle_states(), 0);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn close_idle(&self) -> crate::Result<()> {
        let states = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        close(states).map_or(Ok(()), Err)
    }
}

impl<S: Send> StateSource<S> for &Workers<'_, S> {
    fn acquire(&self) -> Result<S, BoxError> {
        // The lock is released before `init` runs: user code never runs under it.
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(state) => Ok(state),
            None => {
                self.inits.fetch_add(1, Ordering::Relaxed);
                (self.init)()
            }
        }
    }

    fn renew(&self, state: &mut S) -> Result<(), BoxError> {
        self.inits.fetch_add(1, Ordering::Relaxed);
        let new = (self.init)()?;
        crate::exec::discard(std::mem::replace(state, new));
        Ok(())
    }

    fn release(&self, state: S) -> Option<S> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(state);
        None
    }
}

impl<S> std::fmt::Debug for Workers<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().map_or(0, |idle| idle.len());
        f.debug_struct("Workers")
            .field("inits", &self.inits.load(Ordering::Relaxed))
            .field("idle_states", &idle)
            .finish_non_exhaustive()
    }
}

/// Drops every state under the guard; the first panic, as an error.
fn close<S>(states: Vec<S>) -> Option<Error> {
    let mut first = None;
    for state in states {
        if let Err(panic) = drop_contained(state) {
            first.get_or_insert(panic.at(UserCode::StateDrop, 0, 0..0, None));
        }
    }
    first
}

impl<S> Drop for Workers<'_, S> {
    /// Closes the idle states; a panic in a state's `Drop` is contained and ignored.
    fn drop(&mut self) {
        let states = std::mem::take(self.idle.get_mut().unwrap_or_else(PoisonError::into_inner));
        let _ = close(states);
    }
}
