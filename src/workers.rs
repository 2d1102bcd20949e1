//! `Workers`: per-worker state (a database connection, a client) that outlives a call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::error::{BoxError, Error, UserCode};
use crate::exec::{Panic, StateSource, drop_contained};
use crate::flock::Flock;

type Init<'a, S> = Box<dyn Fn() -> Result<S, BoxError> + Send + Sync + 'a>;

/// A runner whose workers each hold a state, such as a database connection, built once by `init`
/// and reused for every block the worker runs, across calls, until the `Workers` is dropped.
///
/// This is Flock's `DatabaseAsync`: instead of a connection per row (slow) or one connection shared
/// by all threads (a data race, or a lock that serialises everything), each worker owns one. Build
/// it with [`Flock::workers`] and pass it to the `*_per_worker_with` methods. For state that only
/// lives for one call, the `*_per_worker` methods take the `init` closure directly (and run on
/// the default pool); `init` may borrow from its surroundings (`'a`).
///
/// # Parallelism: how often `init` runs
///
/// A call keeps one state per pool thread that runs its blocks: the thread takes it just before
/// its first block of the call (a call with no blocks takes none) and keeps it for all its blocks
/// of that call; when the call ends, the states go back to the runner's idle list. A thread takes
/// an idle state left by an earlier call if there is one, and runs `init` only otherwise. So:
///
/// - one call runs `init` at most [`ChunkPlan::threads`](crate::ChunkPlan::threads) times, and
///   only for workers that receive a block;
/// - later calls reuse the idle states: [`inits`](Workers::inits) stays at most the largest number
///   of workers that ever ran at once;
/// - calls made at the same time (from several threads, or a `*_per_worker_with` call nested in
///   another one's closure on the same `Workers`) each take their own states, so they may run
///   `init` again; a state is never used by two blocks at once.
///
/// A thread never runs two blocks of one call at once, even when it waits inside a closure (a
/// parallel Polars op, a nested call) and work stealing hands it other work meanwhile, so one
/// thread never needs two states of one call. No lock is held while user code runs. A state
/// whose closure panicked is dropped, never reused. A panic in a state's `Drop` is contained:
/// when a call closes a state it is that call's [`Error::Panicked`](crate::Error::Panicked)
/// (`during: UserCode::StateDrop`); in [`close_idle`](Workers::close_idle) it is returned; when
/// the `Workers` itself is dropped it is ignored.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use polars_flock::prelude::*;
/// use polars_flock::Flock;
///
/// /// Stands in for a database connection: expensive to open, used by one thread at a time.
/// struct Client { queries: usize }
///
/// let opened = Arc::new(AtomicUsize::new(0));
/// let counter = Arc::clone(&opened);
/// let workers = Flock::new().threads(2).chunksize(100).workers(move || {
///     counter.fetch_add(1, Ordering::Relaxed);
///     Ok::<_, std::io::Error>(Client { queries: 0 })
/// });
/// let ids: Vec<u32> = (0..10_000).collect();
/// for _ in 0..3 {
///     let out = ids.par_apply_rows_per_worker_with(&workers, |client, id| {
///         client.queries += 1;
///         Ok::<_, std::io::Error>(id * 2)
///     })?;
///     assert_eq!(out[9_999], 19_998);
/// }
/// // 300 blocks over 3 calls, and at most one client per thread ever opened.
/// assert!(opened.load(Ordering::Relaxed) <= 2);
/// assert_eq!(workers.inits(), opened.load(Ordering::Relaxed));
/// # Ok::<(), polars_flock::Error>(())
/// ```
pub struct Workers<'a, S> {
    flock: Flock,
    init: Init<'a, S>,
    idle: Mutex<Vec<S>>,
    inits: AtomicUsize,
}

impl Flock {
    /// A [`Workers`] runner with these options, whose workers each build their state with `init`.
    ///
    /// For IO-bound work (a database, an HTTP service) give it its own pool with more threads
    /// than cores, e.g. `Flock::new().threads(4 * cores)`: workers then wait on IO in parallel
    /// without ever blocking Polars' CPU pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::Flock;
    ///
    /// let workers = Flock::new().threads(8).workers(|| Ok::<_, std::io::Error>(Vec::<u8>::new()));
    /// let lens = ["a", "bb"].par_apply_rows_per_worker_with(&workers, |buffer, s| {
    ///     buffer.clear();
    ///     buffer.extend_from_slice(s.as_bytes());
    ///     Ok::<_, std::io::Error>(buffer.len())
    /// })?;
    /// assert_eq!(lens, [1, 2]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn workers<'a, S, E, I>(self, init: I) -> Workers<'a, S>
    where
        S: Send,
        E: Into<BoxError>,
        I: Fn() -> Result<S, E> + Send + Sync + 'a,
    {
        Workers {
            flock: self,
            init: Box::new(move || init().map_err(Into::into)),
            idle: Mutex::new(Vec::new()),
            inits: AtomicUsize::new(0),
        }
    }
}

impl<S: Send> Workers<'_, S> {
    /// The options calls on this runner use.
    ///
    /// # Examples
    ///
    /// ```
    /// let workers = polars_flock::Flock::new().threads(3).workers(|| Ok::<_, std::io::Error>(()));
    /// assert_eq!(workers.flock().plan(10)?.threads(), 3);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn flock(&self) -> &Flock {
        &self.flock
    }

    /// How many times `init` has run (successfully or not) since this runner was built.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let workers = polars_flock::Flock::new().workers(|| Ok::<_, std::io::Error>(0u64));
    /// assert_eq!(workers.inits(), 0); // lazily: nothing ran yet
    /// [1u64, 2].par_apply_rows_per_worker_with(&workers, |sum, x| { *sum += x; Ok::<_, std::io::Error>(*sum) })?;
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
    /// let workers = polars_flock::Flock::new().workers(|| Ok::<_, std::io::Error>(()));
    /// ["x"].par_apply_rows_per_worker_with(&workers, |(), s| Ok::<_, std::io::Error>(s.len()))?;
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
    /// let workers = polars_flock::Flock::new().workers(|| Ok::<_, std::io::Error>(()));
    /// ["x"].par_apply_rows_per_worker_with(&workers, |(), s| Ok::<_, std::io::Error>(s.len()))?;
    /// workers.close_idle()?;
    /// assert_eq!(workers.idle_states(), 0);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn close_idle(&self) -> crate::Result<()> {
        let states = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        close(states).map_or(Ok(()), Err)
    }
}

impl<S: Send> StateSource<S> for Workers<'_, S> {
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

    fn release(&self, state: S) -> Result<(), Panic> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(state);
        Ok(())
    }
}

impl<S> std::fmt::Debug for Workers<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().map_or(0, |idle| idle.len());
        f.debug_struct("Workers")
            .field("flock", &self.flock)
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
