//! Runs the blocks of a plan: in the selected pool, each exactly once, panics caught, results in
//! input order, and the first failure (in input order) reported.

use std::any::Any;
use std::cell::Cell;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

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
    let blocks = plan.blocks();
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
            let result = match catch_unwind(AssertUnwindSafe(|| task(&block, current))) {
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
            Err(error) => return Err(error),
        }
    }
    Ok(outputs)
}

/// Locks a mutex that no user code runs under, so poisoning cannot leave it inconsistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}
