//! Runs the blocks of a plan: in the selected pool, each exactly once, panics caught, results in
//! input order, and the first failure (in input order) reported.

use std::any::Any;
use std::cell::Cell;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::control::{Report, RowFailure, Stop, Tracker, caused_by_stop, is_stop, with_counts};
use crate::error::{BoxError, Error, Result};
use crate::flock::Flock;
use crate::plan::ChunkPlan;

/// One block being run: its index, its rows, and the row in progress (for panic reports).
pub(crate) struct Block {
    pub(crate) index: usize,
    pub(crate) rows: Range<usize>,
    current_row: Cell<Option<usize>>,
}

impl Block {
    /// Records the row a row-wise closure is about to process.
    #[inline(always)]
    pub(crate) fn enter_row(&self, row: usize) {
        self.current_row.set(Some(row));
    }

    /// Runs `extend`, which appends one output per row to `out` from `first_row` on, without a
    /// per-row [`enter_row`](Block::enter_row) store, which would keep the loop from vectorising:
    /// on a panic the row is recovered from how many outputs were written (`len`), and the panic
    /// goes on to the block's handler.
    #[inline(always)]
    pub(crate) fn extend_rows<B>(
        &self,
        out: &mut B,
        len: impl Fn(&B) -> usize,
        first_row: usize,
        extend: impl FnOnce(&mut B),
    ) {
        let before = len(out);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| extend(&mut *out))) {
            self.enter_row(first_row + len(out) - before);
            resume_unwind(payload);
        }
    }
}

/// Where a drainer gets its per-worker state, and where it gives it back.
pub(crate) trait StateSource<S>: Sync {
    /// A state for a drainer about to run its first block.
    fn acquire(&self) -> std::result::Result<S, BoxError>;
    /// The drainer is done (not called after a panic, whose state may be half-updated).
    fn release(&self, state: S);
}

/// No state: the plain `par_apply_*` calls.
pub(crate) struct Stateless;

impl StateSource<()> for Stateless {
    fn acquire(&self) -> std::result::Result<(), BoxError> {
        Ok(())
    }
    fn release(&self, _: ()) {}
}

/// A fresh state from `init` per drainer, dropped when the drainer is done: the call-scoped
/// `*_per_worker` forms.
pub(crate) struct InitPerCall<I>(pub(crate) I);

impl<S, E, I> StateSource<S> for InitPerCall<I>
where
    E: Into<BoxError>,
    I: Fn() -> std::result::Result<S, E> + Sync,
{
    fn acquire(&self) -> std::result::Result<S, BoxError> {
        (self.0)().map_err(Into::into)
    }
    fn release(&self, _: S) {}
}

/// Runs `task` once per block of `plan` and returns the outputs in block order.
///
/// A block starts only if no block before it has failed, so every block before the first failure
/// runs and the error returned is the one a serial loop would meet first. Blocks after it that had
/// already started finish; their results are dropped.
pub(crate) fn run_blocks<R, F>(flock: &Flock, plan: &ChunkPlan, task: F) -> Result<Vec<R>>
where
    R: Send,
    F: Fn(&Block) -> Result<R> + Sync,
{
    run_blocks_stateful(
        flock,
        plan,
        &Stateless,
        |block, ()| task(block),
        |_, _| Ok(()),
    )
}

/// [`run_blocks`], with a per-worker state from `states` handed to `task`, and `check` applied
/// to each output in block order, so that a check failing at block 2 is reported before a task
/// failing at block 5, as a serial loop would.
///
/// Each drainer (at most one per pool thread) acquires one state just before its first block and
/// keeps it for every block it runs, so a call acquires at most `plan.threads()` states, and none
/// when there are no blocks.
pub(crate) fn run_blocks_stateful<S, R, F, C>(
    flock: &Flock,
    plan: &ChunkPlan,
    states: &impl StateSource<S>,
    task: F,
    mut check: C,
) -> Result<Vec<R>>
where
    R: Send,
    F: Fn(&Block, &mut S) -> Result<R> + Sync,
    C: FnMut(usize, &R) -> Result<()>,
{
    let tracker = Tracker::start(flock.progress(), plan.rows());
    let outcome = (|| {
        let mut results = drain_blocks(flock, plan, states, &tracker, task)?;
        let blocks = results.len();
        let mut outputs = Vec::with_capacity(blocks);
        for index in 0..blocks {
            // A block is skipped only after a lower one failed, and that failure returns first.
            match results[index]
                .take()
                .expect("a block was skipped without an earlier failure")
            {
                Ok(output) => {
                    check(index, &output)?;
                    outputs.push(output);
                }
                Err(Error::Init {
                    worker,
                    block,
                    rows,
                    source,
                    ..
                }) => {
                    // Every block before this one succeeded; later ones may have, on other workers.
                    let later = (index + 1..blocks).filter(|&i| matches!(results[i], Some(Ok(_))));
                    let completed_blocks = (0..index).chain(later).collect();
                    return Err(Error::Init {
                        worker,
                        block,
                        rows,
                        completed_blocks,
                        source,
                    });
                }
                Err(stop) if is_stop(&stop) => {
                    // Blocks before this one are in `outputs`; later ones may have completed too.
                    let later = (index + 1..blocks).filter(|&i| matches!(results[i], Some(Ok(_))));
                    return Err(counted(stop, plan, (0..index).chain(later)));
                }
                Err(error) => return Err(error),
            }
        }
        Ok(outputs)
    })();
    tracker.finish(outcome.is_ok());
    outcome
}

/// The keep-going runner: like [`run_blocks`] for tasks that absorb their rows' failures, but a
/// cancellation or timeout does not fail the call: blocks that did not run are `None`, and the
/// stop comes back (with its counts) beside them.
fn run_blocks_keep_going<R, F>(
    flock: &Flock,
    plan: &ChunkPlan,
    task: F,
) -> Result<(Vec<Option<R>>, Option<Error>)>
where
    R: Send,
    F: Fn(&Block) -> Result<R> + Sync,
{
    let tracker = Tracker::start(flock.progress(), plan.rows());
    let outcome = (|| {
        let results = drain_blocks(flock, plan, &Stateless, &tracker, |block, ()| task(block))?;
        let completed = results
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r, Some(Ok(_))))
            .map(|(i, _)| i)
            .collect::<Vec<_>>();
        let mut stopped = None;
        let mut outputs = Vec::with_capacity(results.len());
        for result in results {
            match result {
                Some(Ok(output)) => outputs.push(Some(output)),
                Some(Err(stop)) if is_stop(&stop) => {
                    stopped.get_or_insert(stop);
                    outputs.push(None);
                }
                Some(Err(error)) => return Err(error),
                None => outputs.push(None),
            }
        }
        let stopped = stopped.map(|stop| counted(stop, plan, completed.iter().copied()));
        Ok((outputs, stopped))
    })();
    let ok = matches!(outcome, Ok((_, None)));
    tracker.finish(ok);
    outcome
}

/// Runs one row of a keep-going block: its value, or `None` with the row's error (or panic)
/// recorded in `failures`. `f`'s error already carries its row.
pub(crate) fn keep_going_row<U>(
    block: &Block,
    row: usize,
    failures: &mut Vec<RowFailure>,
    f: impl FnOnce() -> Result<U>,
) -> Option<U> {
    let error = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => return Some(value),
        Ok(Err(error)) => error,
        Err(payload) => Error::Panicked {
            block: block.index,
            rows: block.rows.clone(),
            row: Some(row),
            message: panic_message(payload.as_ref()),
        },
    };
    failures.push(RowFailure { row, error });
    None
}

/// Runs a keep-going call whose blocks return their output and their failed rows; `skipped`
/// makes the output of a block that did not run (all null). Returns the outputs in block order
/// and the report.
pub(crate) fn run_keep_going<R, F>(
    flock: &Flock,
    plan: &ChunkPlan,
    task: F,
    skipped: impl Fn(Range<usize>) -> R,
) -> Result<(Vec<R>, Report)>
where
    R: Send,
    F: Fn(&Block, &mut Vec<RowFailure>) -> Result<R> + Sync,
{
    let (results, stopped) = run_blocks_keep_going(flock, plan, |block| {
        let mut failures = Vec::new();
        let output = task(block, &mut failures)?;
        Ok((output, failures))
    })?;
    let mut report = Report {
        stopped,
        ..Report::default()
    };
    let mut outputs = Vec::with_capacity(results.len());
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Some((output, failures)) => {
                outputs.push(output);
                report.failures.extend(failures);
            }
            None => {
                let rows = plan.block_rows(index);
                outputs.push(skipped(rows.clone()));
                match report.skipped.last_mut() {
                    Some(last) if last.end == rows.start => last.end = rows.end,
                    _ => report.skipped.push(rows),
                }
            }
        }
    }
    Ok((outputs, report))
}

/// A stop error with the counts of the `completed` blocks filled in.
fn counted(stop: Error, plan: &ChunkPlan, completed: impl Iterator<Item = usize>) -> Error {
    let (blocks, rows) = completed.fold((0, 0), |(blocks, rows), i| {
        (blocks + 1, rows + plan.block_rows(i).len())
    });
    with_counts(stop, blocks, plan.blocks(), rows, plan.rows())
}

/// Runs the blocks and returns each one's result in block order: `None` for a block that never
/// started because a lower one failed or the call was stopped.
fn drain_blocks<S, R, F>(
    flock: &Flock,
    plan: &ChunkPlan,
    states: &impl StateSource<S>,
    tracker: &Tracker<'_>,
    task: F,
) -> Result<Vec<Option<Result<R>>>>
where
    R: Send,
    F: Fn(&Block, &mut S) -> Result<R> + Sync,
{
    let blocks = plan.blocks();
    let stop = Stop::start(flock.cancel(), flock.timeout_option());
    let first_failure = AtomicUsize::new(usize::MAX);
    let next = AtomicUsize::new(0);
    let finished: Mutex<Vec<(usize, Result<R>)>> = Mutex::new(Vec::with_capacity(blocks));

    // One drainer per thread pulls block indices from a shared counter, in input order, so that
    // each block runs exactly once and blocks are never rayon jobs themselves. A worker that waits
    // inside user code (a Polars op hopping pools, a nested call) may steal a job: at most one of
    // the other drainers, never a block of its own call. So user code re-enters a thread at most
    // `threads` deep, however many blocks there are.
    let drain = || {
        let mut done = Vec::new();
        let mut state: Option<S> = None;
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            // Blocks are claimed in order: past the end, or past a failure, nothing is left.
            if index >= blocks || index > first_failure.load(Ordering::Acquire) {
                break;
            }
            // Cancellation and the deadline are checked before each block, never during one.
            if let Some(stopped) = stop.check() {
                first_failure.fetch_min(index, Ordering::AcqRel);
                done.push((index, Err(stopped)));
                break;
            }
            let rows = plan.block_rows(index);
            let current = match state.as_mut() {
                Some(current) => current,
                None => match catch_unwind(AssertUnwindSafe(|| states.acquire())) {
                    Ok(Ok(fresh)) => state.insert(fresh),
                    failed => {
                        let source = match failed {
                            Ok(Err(source)) => source,
                            Err(payload) => panic_message(payload.as_ref()).into(),
                            Ok(Ok(_)) => unreachable!("handled above"),
                        };
                        first_failure.fetch_min(index, Ordering::AcqRel);
                        let worker = rayon::current_thread_index();
                        let error = Error::Init {
                            worker,
                            block: index,
                            rows,
                            completed_blocks: Vec::new(),
                            source,
                        };
                        done.push((index, Err(error)));
                        break;
                    }
                },
            };
            let block = Block {
                index,
                rows: rows.clone(),
                current_row: Cell::new(None),
            };
            let run = || {
                let result = task(&block, current);
                if result.is_ok() {
                    tracker.advance(block.rows.len());
                }
                result
            };
            let result = match catch_unwind(AssertUnwindSafe(run)) {
                // A closure that stopped itself (`CancelToken::check()?`) reports the call's
                // stop, with its counts; any other error is reported as it is.
                Ok(Err(error)) if caused_by_stop(&error) => Err(stop.check().unwrap_or(error)),
                Ok(result) => result,
                Err(payload) => {
                    // The state may be half-updated (a transaction left open): never reuse it.
                    state = None;
                    Err(Error::Panicked {
                        block: index,
                        rows,
                        row: block.current_row.get(),
                        message: panic_message(payload.as_ref()),
                    })
                }
            };
            if result.is_err() {
                first_failure.fetch_min(index, Ordering::AcqRel);
            }
            done.push((index, result));
        }
        if let Some(state) = state {
            states.release(state);
        }
        lock(&finished).extend(done);
    };

    if plan.is_inline() {
        drain();
    } else {
        let drainers = plan.threads().min(blocks);
        flock.install(|| {
            rayon::scope(|scope| {
                for _ in 1..drainers {
                    scope.spawn(|_| drain());
                }
                drain();
            })
        })?;
    }

    let mut results: Vec<Option<Result<R>>> = (0..blocks).map(|_| None).collect();
    for (index, result) in finished
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        results[index] = Some(result);
    }
    Ok(results)
}

/// Locks a mutex that no user code runs under, so poisoning cannot leave it inconsistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}
