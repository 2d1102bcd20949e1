//! Retries: the policy ([`Retry`]), the hint a closure returns ([`Transient`]), the attempt a
//! closure runs ([`attempt`]), and how a call waits between attempts without parking a thread
//! of a shared pool.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{BoxError, Error, Result};

/// Which errors a [`Retry`] retries.
type Predicate = dyn Fn(&(dyn std::error::Error + 'static)) -> bool + Send + Sync;

/// A retry policy for a call's units (rows, items, blocks, groups, files, batches, async units):
/// how many attempts, how long to wait between them, which errors to retry, and whether a
/// per-worker state is made again before a retry. Set it with [`Flock::retries`](crate::Flock::retries).
///
/// A unit whose closure fails with a retryable error runs again, up to `attempts` times in all;
/// its earlier outputs are discarded (its side effects are yours: make them idempotent). Each
/// retry is counted ([`Report::retries`](crate::Report::retries), and
/// [`Failure::attempts`](crate::Failure::attempts) for a unit that failed for good). Without a
/// policy every unit runs exactly once.
///
/// **What is retried.** By default every error the closure returns itself, except the crate's
/// own errors (a missing column, a null, a wrong dtype: retrying cannot fix them) — a nested
/// call's error included. Never a panic (the closure may have left its state half-updated), and
/// never the crate's errors outside the closure (options, schemas). An async unit that outlives
/// its [`unit_timeout`](crate::Flock::unit_timeout) is retried too ([`Error::UnitTimedOut`]).
/// [`Retry::when`] replaces the default with your predicate on the closure's error; an error
/// wrapped in [`Transient`] is retried whatever the predicate says.
///
/// **Waiting.** Before attempt `k + 1` the unit waits `initial × 2^(k-1)`, at most `max`, with
/// jitter (a wait drawn uniformly from its upper half), or what a [`Transient::after`] asked.
/// The wait never parks a thread of a pool shared with other work: on Polars' pool or the
/// caller's, the waiting thread runs the pool's other jobs meanwhile (rayon's `yield_now`) and
/// naps at most a millisecond when there are none; only the threads of a pool the call owns
/// ([`Flock::threads`](crate::Flock::threads)) and a calling thread outside any pool sleep; async
/// units await a timer. The call's timeout and cancel token end a wait at once.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::Duration;
/// use polars_flock::prelude::*;
/// use polars_flock::{Flock, Retry};
///
/// // Every third item fails on its first attempt, as a flaky service would.
/// let calls = AtomicUsize::new(0);
/// let flock = Flock::new().retries(Retry::attempts(3).backoff(Duration::from_millis(1), Duration::from_millis(10)));
/// let items: Vec<u32> = (0..30).collect();
/// let out = flock.on(&items).par_apply_rows(|&x| {
///     calls.fetch_add(1, Ordering::Relaxed);
///     if x % 3 == 0 && polars_flock::attempt() == 1 {
///         return Err("503 Service Unavailable".into());
///     }
///     Ok(x * 2)
/// })?;
/// assert_eq!(out, (0..30).map(|x| x * 2).collect::<Vec<_>>());
/// assert_eq!(calls.load(Ordering::Relaxed), 40); // 30 + 10 retries
/// # Ok::<(), polars_flock::Error>(())
/// ```
#[derive(Clone)]
pub struct Retry {
    attempts: u32,
    initial: Duration,
    max: Duration,
    jitter: bool,
    reinit: bool,
    when: Option<Arc<Predicate>>,
}

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("attempts", &self.attempts)
            .field("initial", &self.initial)
            .field("max", &self.max)
            .field("jitter", &self.jitter)
            .field("reinit", &self.reinit)
            .field("when", &self.when.as_ref().map(|_| "a predicate"))
            .finish()
    }
}

impl Retry {
    /// At most `attempts` runs of each unit (the first included): `Retry::attempts(4)` is
    /// Spark's default of four tries. Waits: 100 ms, doubling, at most 10 s, with jitter.
    /// `attempts` of 0 is refused by the call ([`Error::InvalidOption`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::{Flock, Retry};
    /// let flock = Flock::new().retries(Retry::attempts(4));
    /// # let _ = flock;
    /// ```
    pub fn attempts(attempts: u32) -> Self {
        Self {
            attempts,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            jitter: true,
            reinit: false,
            when: None,
        }
    }

    /// The first wait, and the most any wait lasts (exponential backoff: each wait doubles).
    /// `initial` beyond `max` is refused by the call ([`Error::InvalidOption`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use polars_flock::Retry;
    /// let retry = Retry::attempts(5).backoff(Duration::from_millis(50), Duration::from_secs(2));
    /// # let _ = retry;
    /// ```
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial = initial;
        self.max = max;
        self
    }

    /// Whether waits are drawn uniformly from the upper half of the backoff (default: yes, so
    /// that units that failed together do not retry together).
    ///
    /// # Examples
    ///
    /// ```
    /// let retry = polars_flock::Retry::attempts(3).jitter(false);
    /// # let _ = retry;
    /// ```
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Drops the worker's per-worker state and makes a new one (its `init` again, or the
    /// [`Workers`](crate::Workers)' `init`) before each retry of a unit that has one: a
    /// connection the server closed is opened again, and the `Workers` keep the new one. Without
    /// it, a closure asks for this per error with [`Transient::reinit`]. Default: no.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::{Flock, Retry};
    ///
    /// // A "connection" that breaks after 5 uses; a retry makes a new one (at once).
    /// let zero = std::time::Duration::ZERO;
    /// let flock = Flock::new().retries(Retry::attempts(2).backoff(zero, zero).reinit(true));
    /// let items: Vec<u32> = (0..100).collect();
    /// let out = flock.on(&items).par_apply_rows_per_worker(|| Ok(0u32), |uses, &x| {
    ///     *uses += 1;
    ///     if *uses > 5 {
    ///         return Err("connection closed".into());
    ///     }
    ///     Ok(x)
    /// })?;
    /// assert_eq!(out, items);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn reinit(mut self, reinit: bool) -> Self {
        self.reinit = reinit;
        self
    }

    /// Retries only the errors `retryable` accepts (instead of every error of the closure's own):
    /// it is given the closure's error, to downcast (`e.downcast_ref::<std::io::Error>()`).
    /// [`Transient`] errors are retried whatever it says.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// use polars_flock::{Error, Flock, Retry};
    ///
    /// // Only IO errors are worth another try; a parse error is not.
    /// let retry = Retry::attempts(3).when(|e| e.is::<std::io::Error>());
    /// let tries = std::sync::atomic::AtomicUsize::new(0);
    /// let err = Flock::new().retries(retry).on(&["x"]).par_apply_rows(|s| {
    ///     tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ///     Ok(s.parse::<i32>()?)
    /// }).unwrap_err();
    /// assert!(matches!(err, Error::Row { row: 0, .. }));
    /// assert_eq!(tries.into_inner(), 1);
    /// ```
    pub fn when(
        mut self,
        retryable: impl Fn(&(dyn std::error::Error + 'static)) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.when = Some(Arc::new(retryable));
        self
    }

    /// Checks the policy.
    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |value: String, reason| Error::InvalidOption {
            option: "retries",
            value,
            reason,
        };
        if self.attempts == 0 {
            return Err(invalid(
                "attempts(0)".into(),
                "a unit needs at least one attempt",
            ));
        }
        if self.initial > self.max {
            return Err(invalid(
                format!("backoff({:?}, {:?})", self.initial, self.max),
                "the first wait is longer than the longest",
            ));
        }
        Ok(())
    }

    /// How long to wait before attempt `attempt + 1` of a unit whose attempt `attempt` failed
    /// with `error` (the closure's own), or `None` if it is not retried.
    pub(crate) fn wait_after(
        &self,
        attempt: u32,
        error: &(dyn std::error::Error + 'static),
    ) -> Option<Duration> {
        if attempt >= self.attempts {
            return None;
        }
        if let Some(transient) = error.downcast_ref::<Transient>() {
            return Some(transient.after.unwrap_or_else(|| self.backoff_of(attempt)));
        }
        let retryable = match &self.when {
            Some(when) => when(error),
            None => match error.downcast_ref::<Error>() {
                Some(error) => matches!(error, Error::UnitTimedOut { .. }),
                None => true,
            },
        };
        retryable.then(|| self.backoff_of(attempt))
    }

    /// Whether the state is made again before the retry after `error`.
    pub(crate) fn reinit_after(&self, error: &(dyn std::error::Error + 'static)) -> bool {
        self.reinit
            || error
                .downcast_ref::<Transient>()
                .is_some_and(|transient| transient.reinit)
    }

    /// The backoff after attempt `attempt` (from 1), jittered.
    pub(crate) fn backoff_of(&self, attempt: u32) -> Duration {
        let doubled = self
            .initial
            .saturating_mul(1u32 << (attempt - 1).min(30))
            .min(self.max);
        if self.jitter {
            doubled.mul_f64(0.5 + 0.5 * unit_random())
        } else {
            doubled
        }
    }
}

/// A closure's error that is worth another attempt, whatever the policy's predicate says, with
/// an optional wait (a `429 Too Many Requests`' `Retry-After`) and an optional request to make
/// the worker's state again first (a connection the server closed). Without a
/// [`Retry`] policy on the call it is an error like any other.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use polars_flock::prelude::*;
/// use polars_flock::{Flock, Retry, Transient};
///
/// let flock = Flock::new().retries(Retry::attempts(2));
/// let start = std::time::Instant::now();
/// let out = flock.on(&[1, 2]).par_apply_rows(|&x| {
///     if polars_flock::attempt() == 1 {
///         // The service said: come back in 50 ms.
///         return Err(Transient::new("429 Too Many Requests").after(Duration::from_millis(50)).into());
///     }
///     Ok(x)
/// })?;
/// assert_eq!(out, [1, 2]);
/// assert!(start.elapsed() >= Duration::from_millis(50));
/// # Ok::<(), polars_flock::Error>(())
/// ```
#[derive(Debug)]
pub struct Transient {
    source: BoxError,
    after: Option<Duration>,
    reinit: bool,
}

impl Transient {
    /// `source`, marked as worth another attempt.
    ///
    /// # Examples
    ///
    /// See [`Transient`].
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
            after: None,
            reinit: false,
        }
    }

    /// Waits `after` before the next attempt, instead of the policy's backoff.
    ///
    /// # Examples
    ///
    /// See [`Transient`].
    pub fn after(mut self, after: Duration) -> Self {
        self.after = Some(after);
        self
    }

    /// Makes the worker's per-worker state again before the next attempt (see
    /// [`Retry::reinit`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let e = polars_flock::Transient::new("connection reset").reinit();
    /// assert_eq!(e.to_string(), "connection reset");
    /// ```
    pub fn reinit(mut self) -> Self {
        self.reinit = true;
        self
    }

    /// The wait asked for, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let e = polars_flock::Transient::new("busy").after(Duration::from_secs(1));
    /// assert_eq!(e.wait(), Some(Duration::from_secs(1)));
    /// ```
    pub fn wait(&self) -> Option<Duration> {
        self.after
    }
}

impl fmt::Display for Transient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The source's message: the error as the service gave it.
        fmt::Display::fmt(&self.source, f)
    }
}

impl std::error::Error for Transient {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

thread_local! {
    static ATTEMPT: Cell<u32> = const { Cell::new(1) };
    /// The deadline of the unit this thread runs, with its limit ([`Flock::unit_timeout`]).
    static DEADLINE: Cell<Option<(Instant, Duration)>> = const { Cell::new(None) };
    /// Retries this thread made, for a call that runs another one inline (a stream's batch) to
    /// add the inner call's to its own.
    static RETRIED: Cell<usize> = const { Cell::new(0) };
}

/// Counts a retry on this thread.
pub(crate) fn note_retry() {
    RETRIED.with(|r| r.set(r.get() + 1));
}

/// The retries this thread made so far (see [`note_retry`]).
pub(crate) fn retried_on_thread() -> usize {
    RETRIED.with(Cell::get)
}

/// The attempt of the unit the calling closure runs: 1 for its first run, 2 for its first retry,
/// and so on (see [`Retry`]); 1 outside any call. In an async unit it is the attempt of the unit
/// being polled.
///
/// # Examples
///
/// ```
/// assert_eq!(polars_flock::attempt(), 1);
/// ```
pub fn attempt() -> u32 {
    ATTEMPT.with(Cell::get)
}

/// Sets this thread's attempt while it lives; restores the previous one when dropped.
pub(crate) struct AttemptScope(u32);

impl AttemptScope {
    pub(crate) fn enter(attempt: u32) -> Self {
        Self(ATTEMPT.with(|a| a.replace(attempt)))
    }
}

impl Drop for AttemptScope {
    fn drop(&mut self) {
        ATTEMPT.with(|a| a.set(self.0));
    }
}

/// A number in [0, 1) from a shared SplitMix64 sequence (jitter needs no better).
fn unit_random() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        ^ u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()),
        );
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Waits until `until` on a thread of a synchronous call, ending early with the call's stop
/// (`check`). `may_sleep`: the thread belongs to a pool the call owns. Elsewhere on a pool, the
/// thread runs the pool's other jobs while it waits and naps at most a millisecond when there
/// are none.
pub(crate) fn wait_until(
    until: Instant,
    may_sleep: bool,
    check: impl Fn() -> Option<Error>,
) -> Option<Error> {
    let on_shared_pool = !may_sleep && rayon::current_thread_index().is_some();
    loop {
        if let Some(stop) = check() {
            return Some(stop);
        }
        let now = Instant::now();
        if now >= until {
            return None;
        }
        if on_shared_pool {
            // Another call's job may run here meanwhile: its retries are its own.
            let ours = retried_on_thread();
            let ran = rayon::yield_now();
            RETRIED.with(|r| r.set(ours));
            if ran == Some(rayon::Yield::Executed) {
                continue;
            }
        }
        let nap = if on_shared_pool {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(5)
        };
        std::thread::sleep((until - now).min(nap));
    }
}

/// The deadline of the unit the calling closure runs, when the call has a
/// [`unit_timeout`](crate::Flock::unit_timeout): give a blocking client the time left as its own
/// timeout. `None` outside a limited unit. In an async unit, the deadline of the unit being
/// polled.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use polars_flock::prelude::*;
///
/// let left = Flock::new()
///     .unit_timeout(Duration::from_secs(5))
///     .on(&[1])
///     .par_apply_rows(|_| Ok(polars_flock::unit_deadline().map(|d| d.saturating_duration_since(std::time::Instant::now()))))?;
/// assert!(left[0].is_some_and(|left| left <= Duration::from_secs(5)));
/// assert_eq!(polars_flock::unit_deadline(), None);
/// # Ok::<(), polars_flock::Error>(())
/// ```
pub fn unit_deadline() -> Option<Instant> {
    DEADLINE.with(Cell::get).map(|(deadline, _)| deadline)
}

/// `Err(`[`Error::UnitTimedOut`]`)` once the unit the calling closure runs is past its
/// [`unit_timeout`](crate::Flock::unit_timeout) (`Ok` without one): call it with `?` in a long
/// closure's loop to end the unit there. See [`Flock::unit_timeout`](crate::Flock::unit_timeout).
///
/// # Errors
///
/// [`Error::UnitTimedOut`] past the deadline.
///
/// # Examples
///
/// ```
/// assert!(polars_flock::check_unit().is_ok()); // outside any call: no deadline
/// ```
pub fn check_unit() -> Result<()> {
    match DEADLINE.with(Cell::get) {
        Some((deadline, timeout)) if Instant::now() >= deadline => {
            Err(Error::UnitTimedOut { timeout })
        }
        _ => Ok(()),
    }
}

/// Sets this thread's unit deadline while it lives; restores the previous one when dropped.
pub(crate) struct DeadlineScope(Option<(Instant, Duration)>);

impl DeadlineScope {
    pub(crate) fn enter(deadline: Instant, timeout: Duration) -> Self {
        Self(DEADLINE.with(|d| d.replace(Some((deadline, timeout)))))
    }
}

impl Drop for DeadlineScope {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.0));
    }
}
