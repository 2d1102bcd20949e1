//! The executor: every front-end's blocks run here, and every piece of user code runs under its
//! one guard.
//!
//! What it owns, for every call: claiming blocks in input order from a shared counter; an
//! adaptive plan's probe (its first blocks run and timed on the calling thread, the rest cut by
//! their measured cost: [`ChunkPlan::spread`]); the stop, deadline and first-failure checks
//! before each block and again after a per-worker state was acquired; per-thread states (`init`
//! at most once per pool thread per call); counting completed blocks and rows; progress (on a
//! reporting thread, never on a worker); and [`contain`], the only place where a panic of user
//! code is caught. Streams run on its source mode ([`source`]): units pulled from a source, at
//! most a window in flight, outputs handed on in order.
//!
//! # Re-entry
//!
//! A rayon worker that waits (inside a Polars op that hops pools, or a nested call) runs other
//! jobs meanwhile, on top of the suspended frame. Each thread keeps a record of the calls it is
//! inside ([`frames`]), so that:
//!
//! - a drainer of a call whose block is suspended lower on the same thread is turned away at once
//!   ("parked", and respawned when a block of that call completes elsewhere): a thread never runs
//!   two blocks of one call at once, so a per-thread lock held across a wait cannot deadlock and
//!   a per-worker state is never needed twice on one thread;
//! - a drainer that lands on a thread already inside another call (in a block, or waiting for its
//!   own blocks) runs at most one block, then respawns itself and returns, so that the call below
//!   it is held up by at most one block of each call its thread picked up.

use std::any::Any;
use std::cell::Cell;
use std::ops::{Deref, DerefMut, Range};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::control::{Failure, Report, Reporter, Stop, Unit, caused_by_stop, is_stop, with_counts};
use crate::error::{BoxError, Error, Result, UserCode};
use crate::flock::Flock;
use crate::plan::{ChunkPlan, PROBE_BUDGET};
use crate::retry::{AttemptScope, DeadlineScope, Retry};
use crate::stats::{Recorder, Stats, Watch};

#[cfg(feature = "async")]
pub(crate) mod io;
#[cfg(feature = "streaming")]
pub(crate) mod source;

// ---------------------------------------------------------------------------------------------
// The guard
// ---------------------------------------------------------------------------------------------

/// A panic of user code, caught by [`contain`]: its message.
#[derive(Debug)]
pub(crate) struct Panic {
    message: String,
}

impl Panic {
    /// The panic's message.
    #[cfg(any(feature = "arrow", feature = "parquet"))]
    pub(crate) fn into_message(self) -> String {
        self.message
    }

    /// A panic caught elsewhere (an async unit's poll): its payload is read and dropped here.
    #[cfg(feature = "async")]
    pub(crate) fn of_payload(payload: Box<dyn Any + Send>) -> Self {
        Panic {
            message: message_of(payload),
        }
    }

    /// The panic as an [`Error::Panicked`] of `during`, located at `block` (`rows`) and `row`.
    pub(crate) fn at(
        self,
        during: UserCode,
        block: usize,
        rows: Range<usize>,
        row: Option<usize>,
    ) -> Error {
        Error::Panicked {
            block,
            rows,
            row,
            message: self.message,
            during,
        }
    }
}

/// Runs user code, catching a panic. The one `catch_unwind` of the crate (with the payload's own
/// `Drop` below): every closure, `init`, callback, sink, source, `combine`, and the `Drop` of
/// every user value the crate drops, runs through here.
pub(crate) fn contain<T>(f: impl FnOnce() -> T) -> std::result::Result<T, Panic> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| Panic {
        message: message_of(payload),
    })
}

/// The message of a panic payload, which is dropped here, under the guard: it is user data, and
/// its `Drop` may panic too. Such a second payload is leaked, not read, since reading it could
/// panic again.
fn message_of(payload: Box<dyn Any + Send>) -> String {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    };
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
    message
}

/// Drops a user value under the guard.
pub(crate) fn drop_contained<T>(value: T) -> std::result::Result<(), Panic> {
    contain(move || drop(value))
}

/// Drops user values the call no longer needs (outputs after a failure, a state after a panic):
/// a panic in their `Drop` is contained and ignored, since the call already reports an earlier
/// failure.
pub(crate) fn discard<T>(value: T) {
    let _ = drop_contained(value);
}

/// A user value that is [`discard`]ed if it is dropped before [`keep`](Discarded::keep) takes it:
/// outputs collected so far, on every early return.
pub(crate) struct Discarded<T>(Option<T>);

impl<T> Discarded<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(Some(value))
    }

    /// The value, still discarded if dropped.
    #[cfg(feature = "async")]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("taken only by keep")
    }

    /// The value, no longer discarded.
    pub(crate) fn keep(mut self) -> T {
        self.0.take().expect("taken only once")
    }
}

impl<T> Deref for Discarded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until kept")
    }
}

impl<T> DerefMut for Discarded<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("present until kept")
    }
}

impl<T> Drop for Discarded<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            discard(value);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Blocks and states
// ---------------------------------------------------------------------------------------------

/// One block being run: its index, its rows, the row in progress (for panic reports), and the
/// call's own stop (to tell it from a nested call's).
pub(crate) struct Block<'a> {
    pub(crate) index: usize,
    pub(crate) rows: Range<usize>,
    current_row: Cell<Option<usize>>,
    /// A keep-going unit panicked and was contained: the thread's state may be half-updated.
    poisoned: Cell<bool>,
    /// The attempts of the last unit that failed for good after retries (1 otherwise), until
    /// taken.
    attempts: Cell<u32>,
    stop: &'a Stop<'a>,
}

impl<'a> Block<'a> {
    pub(crate) fn new(index: usize, rows: Range<usize>, stop: &'a Stop<'a>) -> Self {
        Self {
            index,
            rows,
            current_row: Cell::new(None),
            poisoned: Cell::new(false),
            attempts: Cell::new(1),
            stop,
        }
    }

    /// Runs one unit of user code, `call` (the closure on one row, block, group, file or
    /// batch), with the call's retry policy: while it fails with a retryable error and attempts
    /// remain, waits (ended early by the call's stop, returned as the unit's error) and calls it
    /// again, first making `state` again from `states` if the policy or the error asks. Without
    /// a policy, one call and nothing more on the success path.
    #[inline(always)]
    pub(crate) fn attempt<S, T>(
        &self,
        state: &mut S,
        states: &(impl StateSource<S> + ?Sized),
        call: impl FnMut(&mut S) -> std::result::Result<T, BoxError>,
    ) -> std::result::Result<T, BoxError> {
        self.attempt_within(self.unit_limit(), state, states, call)
    }

    /// The call's per-unit time limit ([`Flock::unit_timeout`]), for a hot loop to read once.
    #[inline(always)]
    pub(crate) fn unit_limit(&self) -> Option<Duration> {
        self.stop.unit_timeout()
    }

    /// [`attempt`](Block::attempt) with the limit a hot loop read once ([`unit_limit`]): a
    /// test of a local per unit, the closure inlined.
    #[inline(always)]
    pub(crate) fn attempt_within<S, T>(
        &self,
        limit: Option<Duration>,
        state: &mut S,
        states: &(impl StateSource<S> + ?Sized),
        mut call: impl FnMut(&mut S) -> std::result::Result<T, BoxError>,
    ) -> std::result::Result<T, BoxError> {
        if let Some(limit) = limit {
            return self.attempt_limited(limit, state, states, call);
        }
        match call(state) {
            Ok(value) => Ok(value),
            Err(error) => match self.stop.retry() {
                None => Err(error),
                Some(retry) => self.retry_unit(retry, state, states, error, &mut call),
            },
        }
    }

    /// [`attempt`](Block::attempt) with a per-unit time limit: each attempt gets its deadline
    /// ([`unit_deadline`](crate::unit_deadline)), and one that returns after it failed with
    /// [`Error::UnitTimedOut`], its output dropped. Cold, as the retries are: a second call
    /// site of the closure on the hot path keeps the compiler from inlining it there (measured:
    /// 19 more instructions per row of the row view).
    #[cold]
    #[inline(never)]
    fn attempt_limited<S, T>(
        &self,
        limit: Duration,
        state: &mut S,
        states: &(impl StateSource<S> + ?Sized),
        mut call: impl FnMut(&mut S) -> std::result::Result<T, BoxError>,
    ) -> std::result::Result<T, BoxError> {
        let mut limited = |state: &mut S| within_limit(Some(limit), || call(state));
        match limited(state) {
            Ok(value) => Ok(value),
            Err(error) => match self.stop.retry() {
                None => Err(error),
                Some(retry) => self.retry_unit(retry, state, states, error, &mut limited),
            },
        }
    }

    /// `input` for each attempt of a unit that takes it by value: moved into the first (so that
    /// the unit may drop it early, as a stream's batch is), a copy kept for later ones only when
    /// the call retries (a frame's copy shares its buffers).
    #[cfg(feature = "streaming")]
    pub(crate) fn inputs<T: Clone>(&self, input: T) -> impl FnMut() -> T {
        let kept = self.stop.retry().map(|_| input.clone());
        let mut first = Some(input);
        move || match first.take() {
            Some(input) => input,
            None => kept.clone().expect("a second attempt only with retries"),
        }
    }

    /// [`attempt`](Block::attempt) without a state.
    #[inline(always)]
    pub(crate) fn attempt_stateless<T>(
        &self,
        mut call: impl FnMut() -> std::result::Result<T, BoxError>,
    ) -> std::result::Result<T, BoxError> {
        self.attempt(&mut (), &Stateless, |()| call())
    }

    /// The retries of a unit whose first attempt failed with `error`.
    #[cold]
    #[inline(never)]
    fn retry_unit<S, T>(
        &self,
        retry: &Retry,
        state: &mut S,
        states: &(impl StateSource<S> + ?Sized),
        mut error: BoxError,
        call: &mut impl FnMut(&mut S) -> std::result::Result<T, BoxError>,
    ) -> std::result::Result<T, BoxError> {
        let mut attempt = 1;
        let mut renew = false;
        loop {
            let Some(wait) = retry.wait_after(attempt, &*error) else {
                self.attempts.set(attempt);
                return Err(error);
            };
            renew |= retry.reinit_after(&*error);
            if let Some(stop) = self.stop.wait(wait) {
                discard(error);
                return Err(Box::new(stop));
            }
            attempt += 1;
            self.stop.count_retry(&*error);
            let _attempt = AttemptScope::enter(attempt);
            if renew {
                // A late one is in place but fails this attempt: the next one makes it again.
                match within_limit(self.stop.init_timeout(), || states.renew(state)) {
                    Ok(()) => renew = false,
                    Err(failed) => {
                        // The state could not be made yet (the server is still down): this
                        // attempt failed with that error, and the next one tries again.
                        discard(std::mem::replace(&mut error, failed));
                        continue;
                    }
                }
            }
            match call(state) {
                Ok(value) => return Ok(value),
                Err(failed) => discard(std::mem::replace(&mut error, failed)),
            }
        }
    }

    /// Runs `nested`, a call of its own run inline in this block (a stream's batch), counting its
    /// retries as this call's.
    #[cfg(feature = "streaming")]
    pub(crate) fn counting_retries<T>(&self, nested: impl FnOnce() -> T) -> T {
        let before = crate::retry::retried_on_thread();
        let out = nested();
        let made = crate::retry::retried_on_thread().saturating_sub(before);
        // The inner call noted them on this thread already; the outer call's count gets them.
        self.stop.add_retries(made);
        out
    }

    /// The attempts of the unit that just failed (1 unless it was retried).
    pub(crate) fn take_attempts(&self) -> u32 {
        self.attempts.replace(1)
    }

    /// The call's own stop, if its token was cancelled or its deadline passed, for an error that
    /// a stop caused ([`caused_by_stop`]): only then is it the call's stop. A nested call's
    /// `TimedOut` or `Cancelled`, returned through `?` while the call itself goes on, is an error
    /// of the unit that returned it.
    pub(crate) fn stopped_by(&self, error: &Error) -> Option<Error> {
        if caused_by_stop(error) {
            self.stop.check()
        } else {
            None
        }
    }

    /// Records the row a row-wise closure is about to process.
    #[inline(always)]
    pub(crate) fn enter_row(&self, row: usize) {
        self.current_row.set(Some(row));
    }

    /// Marks this block's per-worker state as possibly half-updated by a panic the front-end
    /// contained itself (a group's, a file's, a keep-going unit's): the state is dropped after
    /// the block, never reused.
    pub(crate) fn poison(&self) {
        self.poisoned.set(true);
    }

    /// A panic of `during` in this block, at the row in progress.
    pub(crate) fn panicked(&self, panic: Panic, during: UserCode) -> Error {
        panic.at(
            during,
            self.index,
            self.rows.clone(),
            self.current_row.get(),
        )
    }

    /// Runs `extend`, which appends one output per row to `out` from `first_row` on, without a
    /// per-row [`enter_row`](Block::enter_row) store, which would keep the loop from vectorising:
    /// on a panic the row is recovered from how many outputs were written (`len`).
    #[inline(always)]
    pub(crate) fn extend_rows<B>(
        &self,
        out: &mut B,
        len: impl Fn(&B) -> usize,
        first_row: usize,
        extend: impl FnOnce(&mut B),
    ) -> Result<()> {
        let before = len(out);
        contain(|| extend(&mut *out)).map_err(|panic| {
            self.enter_row(first_row + len(out) - before);
            self.panicked(panic, UserCode::Closure)
        })
    }
}

/// A new state from `states` (user code: `init`), under the guard and within the call's `init`
/// time limit (`Flock::init_timeout`, see [`within_limit`]).
pub(crate) fn acquire_within<S>(
    states: &(impl StateSource<S> + ?Sized),
    limit: Option<Duration>,
) -> std::result::Result<std::result::Result<S, BoxError>, Panic> {
    contain(|| within_limit(limit, || states.acquire()))
}

/// Runs user code (a unit, an `init`) within a time limit, cooperatively: its deadline is
/// [`unit_deadline`](crate::unit_deadline) meanwhile, and a success after it is dropped and
/// becomes [`Error::UnitTimedOut`] (an error stays the code's own).
fn within_limit<T>(
    limit: Option<Duration>,
    run: impl FnOnce() -> std::result::Result<T, BoxError>,
) -> std::result::Result<T, BoxError> {
    let Some(limit) = limit else {
        return run();
    };
    let started = Instant::now();
    let _deadline = started
        .checked_add(limit)
        .map(|deadline| DeadlineScope::enter(deadline, limit));
    match run() {
        Ok(late) if started.elapsed() >= limit => {
            discard(late);
            Err(Box::new(Error::UnitTimedOut { timeout: limit }))
        }
        done => done,
    }
}

/// Runs one block of user code under the guard, as every front-end does: the task's result, with
/// an error caused by the call's stop (`CancelToken::check()?` in the closure) turned into that
/// stop, and a panic into [`Error::Panicked`] at the row in progress. The flag says whether it
/// panicked (state the task touched may be half-updated).
pub(crate) fn run_block<R>(
    block: &Block<'_>,
    task: impl FnOnce() -> Result<R>,
) -> (Result<R>, bool) {
    match contain(task) {
        Ok(Ok(output)) => (Ok(output), false),
        // Only an error caused by the call's own stop is the call's stop; a genuine error (a
        // nested call's stop included) is never disguised.
        Ok(Err(error)) => match block.stopped_by(&error) {
            Some(stop) => {
                discard(error);
                (Err(stop), false)
            }
            None => (Err(error), false),
        },
        Err(panic) => (Err(block.panicked(panic, UserCode::Closure)), true),
    }
}

pub(crate) use crate::sealed::StateSource;

/// No state: the plain calls.
pub(crate) struct Stateless;

impl StateSource<()> for Stateless {
    fn acquire(&self) -> std::result::Result<(), BoxError> {
        Ok(())
    }
    fn release(&self, (): ()) -> Option<()> {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Which calls a thread is inside
// ---------------------------------------------------------------------------------------------

pub(crate) mod frames {
    use std::cell::RefCell;
    use std::marker::PhantomData;

    /// What a thread does for a call.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Kind {
        /// Waits for the call's blocks (the calling thread).
        Waiting,
        /// Runs the call's blocks (a drainer, or an inline call).
        Running,
    }

    thread_local! {
        static FRAMES: RefCell<Vec<(u64, Kind)>> = const { RefCell::new(Vec::new()) };
    }

    /// This thread's record of being inside a call; dropped (on the same thread: it is `!Send`)
    /// when the thread leaves it.
    #[derive(Debug)]
    pub(crate) struct Frame(PhantomData<*const ()>);

    /// Enters call `call` as `kind`. `None` when `kind` is `Running` and this thread already runs
    /// a block of that call lower on its stack; otherwise the frame and whether the thread is
    /// inside another call too (a guest, which runs at most one block before yielding).
    pub(crate) fn enter(call: u64, kind: Kind) -> Option<(Frame, bool)> {
        FRAMES
            .try_with(|frames| {
                let mut frames = frames.borrow_mut();
                let running = |&&(c, k): &&(u64, Kind)| c == call && k == Kind::Running;
                if kind == Kind::Running && frames.iter().any(|f| running(&f)) {
                    return None;
                }
                let guest = frames.iter().any(|&(c, _)| c != call);
                frames.push((call, kind));
                Some((Frame(PhantomData), guest))
            })
            // A thread being torn down keeps no record, and runs no other call's work.
            .unwrap_or_else(|_| Some((Frame(PhantomData), false)))
    }

    impl Drop for Frame {
        fn drop(&mut self) {
            let _ = FRAMES.try_with(|frames| frames.borrow_mut().pop());
        }
    }
}

use frames::Kind;

static NEXT_CALL: AtomicU64 = AtomicU64::new(0);

/// A fresh call identity, for [`frames`].
pub(crate) fn new_call() -> u64 {
    NEXT_CALL.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// A call
// ---------------------------------------------------------------------------------------------

/// A thread's per-worker state within one call, and the last block that thread ran.
struct Slot<S> {
    thread: Option<usize>,
    state: Option<S>,
    last: Option<usize>,
}

struct Call<'a, S, R, F, St: ?Sized> {
    id: u64,
    /// The blocks: the caller's plan, or once an adaptive call's probe ran, every block's rows.
    plan: ChunkPlan,
    states: &'a St,
    task: F,
    stop: Stop<'a>,
    reporter: Option<&'a Reporter<'a>>,
    next: AtomicUsize,
    first_failure: AtomicUsize,
    /// Drainers turned away on a thread that was inside one of this call's blocks.
    parked: AtomicUsize,
    finished: Mutex<Vec<(usize, Result<R>)>>,
    slots: Mutex<Vec<Slot<S>>>,
    /// The state the probe made on the calling thread, and its last block, until a worker takes
    /// it.
    spare: Mutex<Option<(S, usize)>>,
    /// Where the time went, per block.
    recorder: Mutex<Recorder>,
    /// The running blocks, when stalls are watched.
    watch: Option<&'a Watch>,
}

impl<S, R, F, St> Call<'_, S, R, F, St>
where
    S: Send,
    R: Send,
    F: Fn(&Block, &mut S) -> Result<R> + Sync,
    St: StateSource<S> + ?Sized,
{
    /// Pulls blocks until none is left for this drainer. `scope` is `None` for an inline call.
    fn drain<'s>(&'s self, scope: Option<&rayon::Scope<'s>>) {
        let Some((_frame, guest)) = frames::enter(self.id, Kind::Running) else {
            // A block of this call is suspended lower on this thread: never start another on top.
            self.parked.fetch_add(1, Ordering::AcqRel);
            return;
        };
        let thread = rayon::current_thread_index();
        let mut state: Option<S> = None;
        while let Some(index) = self.claim() {
            if !self.run_claimed(index, self.plan.block_rows(index), thread, &mut state) {
                break;
            }
            if let Some(scope) = scope {
                self.respawn_parked(scope);
                if guest {
                    // On top of another call's frame: yield after one block, so that the frame
                    // below can return as soon as its own work is done.
                    if self.more_left() {
                        scope.spawn(|scope| self.drain(Some(scope)));
                    }
                    break;
                }
            }
        }
        if let Some(state) = state {
            self.put_state(thread, state);
        }
    }

    /// Runs an adaptive plan's first blocks on the calling thread, timed: blocks of 1, 2, 4, …
    /// units until they took [`PROBE_BUDGET`], the input is done, or
    /// a block failed or the call stopped. Returns the plan of every block, the rest sized by
    /// the measured cost ([`ChunkPlan::spread`]); the caller's state is left for the first
    /// worker that needs one, so that the probe costs no `init` of its own.
    fn probe(&self) -> ChunkPlan {
        let rows = self.plan.rows();
        let mut ends = Vec::new();
        let start = Instant::now();
        let thread = rayon::current_thread_index();
        let mut state: Option<S> = None;
        // A fresh call: no block of it can be running lower on this thread.
        if let Some((_frame, _)) = frames::enter(self.id, Kind::Running) {
            let (mut done, mut size) = (0usize, 1usize);
            while done < rows && start.elapsed() < PROBE_BUDGET {
                let index = ends.len();
                if self.reporter.is_some_and(Reporter::failed) || !self.still_wanted(index) {
                    break;
                }
                let end = done.saturating_add(size).min(rows);
                ends.push(end);
                if !self.run_claimed(index, done..end, thread, &mut state)
                    || self.first_failure.load(Ordering::Acquire) != usize::MAX
                {
                    break;
                }
                (done, size) = (end, size.saturating_mul(2));
            }
        }
        self.next.store(ends.len(), Ordering::Release);
        if let Some(state) = state {
            *lock(&self.spare) = Some((state, ends.len().saturating_sub(1)));
        }
        self.plan.spread(&ends, start.elapsed())
    }

    /// Runs claimed block `index` (`rows`) with this thread's `state`, acquired first if it has
    /// none (a state this thread left earlier in the call, the probe's, or a new one). False
    /// when this drainer must stop: `init` failed, or a stop or a failure came while it ran.
    fn run_claimed(
        &self,
        index: usize,
        rows: Range<usize>,
        thread: Option<usize>,
        state: &mut Option<S>,
    ) -> bool {
        let fresh = state.is_none();
        if fresh {
            *state = self
                .take_state(thread)
                .or_else(|| lock(&self.spare).take().map(|(state, _)| state));
        }
        let mut init = Duration::ZERO;
        let current = match state {
            Some(current) => current,
            None => match self.acquire_timed(&mut init) {
                Ok(Ok(new)) => state.insert(new),
                failed => {
                    let source: BoxError = match failed {
                        Ok(Err(source)) => source,
                        Err(panic) => Box::new(panic.at(UserCode::Init, index, rows.clone(), None)),
                        Ok(Ok(_)) => unreachable!("matched above"),
                    };
                    let error = Error::Init {
                        worker: thread,
                        block: index,
                        rows,
                        completed_blocks: Vec::new(),
                        source,
                    };
                    self.record(index, Err(error));
                    return false;
                }
            },
        };
        // `init` may have run for long: a stop or an earlier failure meanwhile means no block.
        if fresh && !self.still_wanted(index) {
            return false;
        }
        let block = Block::new(index, rows, &self.stop);
        if let Some(watch) = self.watch {
            watch.start(index, block.rows.clone(), thread);
        }
        let started = Instant::now();
        let (result, panicked) = run_block(&block, || (self.task)(&block, current));
        let busy = started.elapsed();
        if let Some(watch) = self.watch {
            watch.end(index);
        }
        lock(&self.recorder).block(thread, init, busy, index, block.rows.clone());
        if (panicked || block.poisoned.get())
            && let Some(broken) = state.take()
        {
            // The state may be half-updated (a transaction left open): never reuse it.
            discard(broken);
        }
        if result.is_ok()
            && let Some(reporter) = self.reporter
        {
            reporter.advance(block.rows.clone(), index);
        }
        self.note_last(thread, index);
        self.record(index, result);
        true
    }

    /// A new state (user code: `init`), its time added to `init`.
    fn acquire_timed(
        &self,
        init: &mut Duration,
    ) -> std::result::Result<std::result::Result<S, BoxError>, Panic> {
        let started = Instant::now();
        let acquired = acquire_within(self.states, self.stop.init_timeout());
        *init += started.elapsed();
        acquired
    }

    /// The next block in input order, or `None` when none is left for this drainer: past the
    /// end, past a failure, or stopped (the stop recorded at the block it kept from starting).
    fn claim(&self) -> Option<usize> {
        if self.reporter.is_some_and(Reporter::failed) {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::AcqRel);
        if index >= self.plan.blocks() || index > self.first_failure.load(Ordering::Acquire) {
            return None;
        }
        self.still_wanted(index).then_some(index)
    }

    /// Whether claimed block `index` may still start: no lower block failed, and no stop (which
    /// is then recorded at `index`).
    fn still_wanted(&self, index: usize) -> bool {
        if index > self.first_failure.load(Ordering::Acquire) {
            return false;
        }
        match self.stop.check() {
            Some(stopped) => {
                self.record(index, Err(stopped));
                false
            }
            None => true,
        }
    }

    fn record(&self, index: usize, result: Result<R>) {
        if result.is_err() {
            self.first_failure.fetch_min(index, Ordering::AcqRel);
        }
        lock(&self.finished).push((index, result));
    }

    fn more_left(&self) -> bool {
        self.next.load(Ordering::Acquire) < self.plan.blocks()
            && self.first_failure.load(Ordering::Acquire) == usize::MAX
    }

    /// Gives drainers turned away earlier another chance, now that a block has completed.
    fn respawn_parked<'s>(&'s self, scope: &rayon::Scope<'s>) {
        while self.more_left()
            && self
                .parked
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| p.checked_sub(1))
                .is_ok()
        {
            scope.spawn(|scope| self.drain(Some(scope)));
        }
    }

    fn take_state(&self, thread: Option<usize>) -> Option<S> {
        let mut slots = lock(&self.slots);
        slots
            .iter_mut()
            .find(|slot| slot.thread == thread)
            .and_then(|slot| slot.state.take())
    }

    fn put_state(&self, thread: Option<usize>, state: S) {
        self.slot(thread, |slot| slot.state = Some(state));
    }

    fn note_last(&self, thread: Option<usize>, index: usize) {
        self.slot(thread, |slot| slot.last = Some(index));
    }

    fn slot(&self, thread: Option<usize>, f: impl FnOnce(&mut Slot<S>)) {
        let mut slots = lock(&self.slots);
        match slots.iter_mut().position(|slot| slot.thread == thread) {
            Some(i) => f(&mut slots[i]),
            None => {
                let mut slot = Slot {
                    thread,
                    state: None,
                    last: None,
                };
                f(&mut slot);
                slots.push(slot);
            }
        }
    }
}

/// What a call's blocks gave: each block's result, in block order (a block that did not start is
/// missing), and a failure outside every block (a progress callback, a state's `Drop`).
pub(crate) struct Executed<R> {
    plan: ChunkPlan,
    /// The retries the call made.
    retries: usize,
    /// Where its time went.
    stats: Stats,
    results: Discarded<Vec<(usize, Result<R>)>>,
    late: Option<Error>,
}

/// Runs `task` once per block of `plan`, each thread with its own state from `states`.
///
/// Blocks are claimed in input order and a block starts only if no lower block has failed, so
/// every block before the first failure runs and the first failure is the one a serial loop would
/// meet. Blocks after it that had already started finish; their results are dropped.
pub(crate) fn execute<S, R, F, St>(
    flock: &Flock,
    plan: &ChunkPlan,
    states: &St,
    task: F,
) -> Result<Executed<R>>
where
    S: Send,
    R: Send,
    F: Fn(&Block, &mut S) -> Result<R> + Sync,
    St: StateSource<S> + ?Sized,
{
    let (executed, late) = with_progress(
        flock,
        plan.rows(),
        |reporter| {
            with_watch(flock, |watch| {
                run_call(flock, plan, states, reporter, watch, task)
            })
        },
        |executed| executed.as_ref().is_ok_and(Executed::succeeded),
    )?;
    let mut executed = executed?;
    if let Some(error) = late {
        executed.late.get_or_insert(error);
    }
    Ok(executed)
}

/// Runs `run` with a reporter of `total` rows serving on a thread of its own when `flock`
/// reports progress: `run`'s result, and the progress callback's panic if it panicked. `ok`
/// says whether the call succeeded (the bar is then finished, else abandoned).
pub(crate) fn with_progress<T>(
    flock: &Flock,
    total: usize,
    run: impl FnOnce(Option<&Reporter<'_>>) -> T,
    ok: impl FnOnce(&T) -> bool,
) -> Result<(T, Option<Error>)> {
    let Some(progress) = flock.progress().active() else {
        return Ok((run(None), None));
    };
    let reporter = Reporter::new(progress, total);
    std::thread::scope(|scope| {
        let serving = std::thread::Builder::new()
            .name("polars-flock-progress".into())
            .spawn_scoped(scope, || reporter.serve())
            .map_err(Error::Io)?;
        let result = run(Some(&reporter));
        let ok = ok(&result);
        reporter.close();
        let _ = serving.join();
        let late = reporter.finish(ok);
        Ok((result, late))
    })
}

/// Runs `run` with a watch of the running blocks served by a thread of its own when `flock`
/// watches for stalls ([`Flock::on_stall`]).
pub(crate) fn with_watch<T>(flock: &Flock, run: impl FnOnce(Option<&Watch>) -> T) -> T {
    let Some((after, callback)) = flock.stall_watch() else {
        return run(None);
    };
    let watch = Watch::new(after, callback);
    std::thread::scope(|scope| {
        let watching = std::thread::Builder::new()
            .name("polars-flock-stalls".into())
            .spawn_scoped(scope, || watch.serve());
        let out = run(Some(&watch));
        watch.close();
        if let Ok(watching) = watching {
            let _ = watching.join();
        }
        out
    })
}

fn run_call<S, R, F, St>(
    flock: &Flock,
    plan: &ChunkPlan,
    states: &St,
    reporter: Option<&Reporter<'_>>,
    watch: Option<&Watch>,
    task: F,
) -> Result<Executed<R>>
where
    S: Send,
    R: Send,
    F: Fn(&Block, &mut S) -> Result<R> + Sync,
    St: StateSource<S> + ?Sized,
{
    let mut call = Call {
        id: new_call(),
        plan: plan.clone(),
        states,
        task,
        stop: Stop::start(flock),
        reporter,
        next: AtomicUsize::new(0),
        first_failure: AtomicUsize::new(usize::MAX),
        parked: AtomicUsize::new(0),
        finished: Mutex::new(Vec::new()),
        slots: Mutex::new(Vec::new()),
        spare: Mutex::new(None),
        recorder: Mutex::default(),
        watch,
    };
    let started = Instant::now();
    if plan.is_adaptive() {
        call.plan = call.probe();
    }
    let left = call.plan.blocks() - call.next.load(Ordering::Acquire).min(call.plan.blocks());
    // After a probe that failed or stopped, nothing more starts.
    let ok_so_far = call.first_failure.load(Ordering::Acquire) == usize::MAX;
    if ok_so_far && (left <= 1 || plan.is_inline()) {
        call.drain(None);
    } else if ok_so_far && left > 0 {
        // One drainer per pool thread, spawned into the pool: the calling thread only waits
        // (when it is a pool thread, rayon lets it run jobs meanwhile, as guest work).
        let drainers = call.plan.threads().min(left);
        let waiting = frames::enter(call.id, Kind::Waiting);
        flock.in_place_scope(|scope| {
            for _ in 0..drainers {
                scope.spawn(|scope| call.drain(Some(scope)));
            }
        })?;
        drop(waiting);
    }
    let retries = call.stop.retries();
    let causes = call.stop.causes();
    let Call {
        plan,
        slots,
        spare,
        finished,
        recorder,
        ..
    } = call;
    let recorder = recorder
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let stats = recorder.finish(started.elapsed(), causes);
    let spare = spare.into_inner().unwrap_or_else(PoisonError::into_inner);
    let states_left = (slots.into_inner().unwrap_or_else(PoisonError::into_inner))
        .into_iter()
        .filter_map(|slot| Some((slot.state?, slot.last?)))
        .chain(spare);
    let mut late = None;
    for (state, last) in states_left {
        if let Some(state) = states.release(state)
            && let Err(panic) = drop_contained(state)
        {
            late.get_or_insert(panic.at(UserCode::StateDrop, last, plan.block_rows(last), None));
        }
    }
    let mut results = finished
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    results.sort_unstable_by_key(|(index, _)| *index);
    Ok(Executed {
        plan,
        retries,
        stats,
        results: Discarded::new(results),
        late,
    })
}

impl<R> Executed<R> {
    /// Every block ran and succeeded, and nothing failed outside them.
    fn succeeded(&self) -> bool {
        self.late.is_none()
            && self.results.len() == self.plan.blocks()
            && self.results.iter().all(|(_, r)| r.is_ok())
    }

    /// The outputs in block order, fail-fast: the first failure in block order (a stop with its
    /// counts), with `check` applied to each output in block order, so that a check failing at
    /// block 2 is reported before a task failing at block 5, as a serial loop would.
    pub(crate) fn outputs(
        mut self,
        mut check: impl FnMut(usize, Range<usize>, &R) -> Result<()>,
    ) -> Result<Vec<R>> {
        let results = std::mem::take(&mut *self.results);
        // Blocks that completed, for the counts of an `Init` failure or a stop.
        let completed: Vec<usize> = (results.iter())
            .filter(|(_, r)| r.is_ok())
            .map(|(i, _)| *i)
            .collect();
        let mut results = Discarded::new(results.into_iter().peekable());
        let mut outputs = Discarded::new(Vec::with_capacity(self.plan.blocks()));
        for index in 0..self.plan.blocks() {
            let Some((_, result)) = results.next_if(|(i, _)| *i == index) else {
                // A block is missing only after a lower one failed (returned below, first) or
                // when a failure outside the blocks stopped the call.
                return Err(self.late.take().unwrap_or_else(|| {
                    Error::Polars(polars::prelude::PolarsError::ComputeError(
                        format!("polars-flock: block {index} did not run").into(),
                    ))
                }));
            };
            match result {
                Ok(output) => {
                    let checked = check(index, self.plan.block_rows(index), &output);
                    outputs.push(output);
                    checked?;
                }
                Err(Error::Init {
                    worker,
                    block,
                    rows,
                    source,
                    ..
                }) => {
                    // Every block before this one succeeded; later ones may have, on other workers.
                    return Err(Error::Init {
                        worker,
                        block,
                        rows,
                        completed_blocks: completed,
                        source,
                    });
                }
                Err(stop) if is_stop(&stop) => {
                    return Err(counted(stop, &self.plan, completed.into_iter()));
                }
                Err(error) => return Err(error),
            }
        }
        if let Some(late) = self.late.take() {
            return Err(late);
        }
        Ok(outputs.keep())
    }

    /// The outputs in block order for a keep-going call, whose tasks absorb their rows' failures:
    /// `None` for a block that did not run because the call stopped, and the stop (counts not
    /// filled in) beside them. Any other failure fails the call.
    fn keep_going(mut self) -> Result<(Vec<Option<R>>, Option<Error>, ChunkPlan)> {
        let results = std::mem::take(&mut *self.results);
        let mut results = Discarded::new(results.into_iter().peekable());
        let mut outputs = Discarded::new(Vec::with_capacity(self.plan.blocks()));
        let mut stopped = None;
        for index in 0..self.plan.blocks() {
            match results.next_if(|(i, _)| *i == index) {
                Some((_, Ok(output))) => outputs.push(Some(output)),
                Some((_, Err(stop))) if is_stop(&stop) => {
                    stopped.get_or_insert(stop);
                    outputs.push(None);
                }
                Some((_, Err(error))) => return Err(error),
                None => outputs.push(None),
            }
        }
        if let Some(late) = self.late.take() {
            return Err(late);
        }
        Ok((outputs.keep(), stopped, self.plan.clone()))
    }
}

/// Runs `task` once per block of `plan` and returns the outputs in block order (fail-fast).
pub(crate) fn run_blocks<R, F>(flock: &Flock, plan: &ChunkPlan, task: F) -> Result<Vec<R>>
where
    R: Send,
    F: Fn(&Block) -> Result<R> + Sync,
{
    execute(flock, plan, &Stateless, |block, ()| task(block))?.outputs(|_, _, _| Ok(()))
}

/// [`run_blocks`] with a per-thread state from `states` and a `check` of each output in block
/// order (see [`Executed::outputs`]).
pub(crate) fn run_blocks_stateful<S, R, F, C>(
    flock: &Flock,
    plan: &ChunkPlan,
    states: &(impl StateSource<S> + ?Sized),
    task: F,
    check: C,
) -> Result<Vec<R>>
where
    S: Send,
    R: Send,
    F: Fn(&Block, &mut S) -> Result<R> + Sync,
    C: FnMut(usize, Range<usize>, &R) -> Result<()>,
{
    execute(flock, plan, states, task)?.outputs(check)
}

// ---------------------------------------------------------------------------------------------
// Keep-going
// ---------------------------------------------------------------------------------------------

/// A keep-going block's record of its units (rows, or the block itself, its groups or files):
/// those that failed, and the unit at which the call's stop reached it (that unit and the rest of
/// the block are skipped).
#[derive(Default)]
pub(crate) struct KeepGoing {
    failures: Vec<Failure>,
    stopped: Option<(usize, Error)>,
}

impl KeepGoing {
    /// The failures recorded, as a report (the stop, if any, in [`Report::stopped`]).
    #[cfg(feature = "streaming")]
    pub(crate) fn into_report(self) -> Report {
        Report {
            failures: self.failures,
            stopped: self.stopped.map(|(_, stop)| stop),
            ..Report::default()
        }
    }

    /// Runs one row: its value, or `None` with the row's error (or panic) recorded. A row that
    /// stopped itself (`CancelToken::check()?`) is skipped, not failed, and so is every later row
    /// of the block, whose closure is not called. `f`'s error already carries its row.
    #[inline]
    pub(crate) fn row<U>(
        &mut self,
        block: &Block,
        row: usize,
        f: impl FnOnce() -> Result<U>,
    ) -> Option<U> {
        self.unit(block, row, || Unit::Row(row), f, |e| e)
    }

    /// Runs a whole block as one unit: its output, or `None` with its failure recorded as
    /// [`Unit::Block`] (its index and rows). `f`'s error already names the block.
    pub(crate) fn block<U>(
        &mut self,
        block: &Block<'_>,
        f: impl FnOnce() -> Result<U>,
    ) -> Option<U> {
        let unit = || Unit::Block {
            block: block.index,
            rows: block.rows.clone(),
        };
        self.unit(block, block.rows.start, unit, f, |e| e)
    }

    /// Runs one unit with index `index` (a row, a group or file index, or the block's rows'
    /// start for a whole block): its value, or `None` with its error recorded as a failure of
    /// `unit()`, `wrap` adding the unit's context to the error (not to a panic of a row, which
    /// already names it). A panic poisons the block's per-worker state, which is then dropped.
    pub(crate) fn unit<U>(
        &mut self,
        block: &Block,
        index: usize,
        unit: impl FnOnce() -> Unit,
        f: impl FnOnce() -> Result<U>,
        wrap: impl FnOnce(Error) -> Error,
    ) -> Option<U> {
        if self.stopped.is_some() {
            return None;
        }
        let error = match contain(f) {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(error)) => match block.stopped_by(&error) {
                Some(stop) => {
                    discard(error);
                    self.stopped = Some((index, stop));
                    return None;
                }
                None => wrap(error),
            },
            Err(panic) => {
                block.poison();
                let unit = unit();
                let row = match unit {
                    Unit::Block { .. } => None,
                    _ => Some(index),
                };
                let panicked = panic.at(UserCode::Closure, block.index, block.rows.clone(), row);
                self.failures.push(Failure {
                    error: match unit {
                        Unit::Row(_) => panicked,
                        _ => wrap(panicked),
                    },
                    unit,
                    attempts: block.take_attempts(),
                });
                return None;
            }
        };
        self.failures.push(Failure {
            unit: unit(),
            error,
            attempts: block.take_attempts(),
        });
        None
    }
}

/// Runs a keep-going call whose blocks return their output and record their units in a
/// [`KeepGoing`], each thread with its state from `states`; `skipped` makes the output of a
/// block that did not run (rows: all null; blocks, groups, files: nothing). `units` maps a
/// block's rows to the units the stop skips (the rows themselves, or group or file indices: the
/// same here). Returns the outputs in block order and the report, whose stop counts agree with
/// its skipped units.
pub(crate) fn run_keep_going<S, R, F>(
    flock: &Flock,
    plan: &ChunkPlan,
    states: &(impl StateSource<S> + ?Sized),
    task: F,
    skipped: impl Fn(Range<usize>) -> R,
) -> Result<(Vec<R>, Report)>
where
    S: Send,
    R: Send,
    F: Fn(&Block, &mut S, &mut KeepGoing) -> Result<R> + Sync,
{
    let mut executed = execute(flock, plan, states, |block, state| {
        let mut units = KeepGoing::default();
        let output = task(block, state, &mut units)?;
        Ok((output, units))
    })?;
    // The blocks that ran: an adaptive plan's are known only now.
    let retries = executed.retries;
    let stats = std::mem::take(&mut executed.stats);
    let (results, mut stopped, plan) = executed.keep_going()?;
    let mut report = Report {
        retries,
        stats,
        ..Report::default()
    };
    let mut outputs = Vec::with_capacity(results.len());
    let (mut done_blocks, mut done_rows) = (0, 0);
    let skip = |report: &mut Report, rows: Range<usize>| match report.skipped.last_mut() {
        Some(last) if last.end == rows.start => last.end = rows.end,
        _ => report.skipped.push(rows),
    };
    for (index, result) in results.into_iter().enumerate() {
        let rows = plan.block_rows(index);
        match result {
            Some((output, kept)) => {
                outputs.push(output);
                report.failures.extend(kept.failures);
                match kept.stopped {
                    Some((row, stop)) => {
                        stopped.get_or_insert(stop);
                        done_rows += row - rows.start;
                        skip(&mut report, row..rows.end);
                    }
                    None => {
                        done_blocks += 1;
                        done_rows += rows.len();
                    }
                }
            }
            None => {
                outputs.push(skipped(rows.clone()));
                skip(&mut report, rows);
            }
        }
    }
    report.stopped =
        stopped.map(|stop| with_counts(stop, done_blocks, plan.blocks(), done_rows, plan.rows()));
    Ok((outputs, report))
}

/// A stop error with the counts of the `completed` blocks filled in.
fn counted(stop: Error, plan: &ChunkPlan, completed: impl Iterator<Item = usize>) -> Error {
    let (blocks, rows) = completed.fold((0, 0), |(blocks, rows), i| {
        (blocks + 1, rows + plan.block_rows(i).len())
    });
    with_counts(stop, blocks, plan.blocks(), rows, plan.rows())
}

/// Locks a mutex that no user code runs under, so poisoning cannot leave it inconsistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
