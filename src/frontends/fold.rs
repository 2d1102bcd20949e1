//! Parallel fold (toolz's `fold`): per-block accumulators from `identity`, combined in block
//! order.

use polars::prelude::*;

use crate::cell::chunk_boundaries;
use crate::control::is_stop;
use crate::error::{BoxError, Error, Result, UserCode};
use crate::exec::{Block, Discarded, contain, run_blocks};
use crate::flock::Flock;
use crate::plan::ChunkPlan;
use crate::row::{Row, fold_row_views};

/// Folds `items`: each block folds its items from `identity()`, then the blocks' accumulators
/// are combined left to right in block order.
pub(crate) fn fold_items<T, A, Id, F, C>(
    items: &[T],
    flock: &Flock,
    identity: Id,
    fold: F,
    combine: C,
) -> Result<A>
where
    T: Sync,
    A: Send,
    Id: Fn() -> A + Sync,
    F: Fn(A, &T) -> std::result::Result<A, BoxError> + Sync,
    C: FnMut(A, A) -> A,
{
    let plan = flock.plan(items.len())?.fixed();
    let accs = run_blocks(flock, &plan, |block| {
        retried(block, || {
            let init = identity_for(block, &identity)?;
            fold_block(block, &items[block.rows.clone()], init, &fold)
        })
    })?;
    combine_in_order(&plan, accs, identity, combine)
}

/// Folds the rows of `df` through the row view; a failing row stops the fold with its error.
pub(crate) fn fold_rows<A, Id, F, C>(
    df: &DataFrame,
    flock: &Flock,
    identity: Id,
    fold: F,
    combine: C,
) -> Result<A>
where
    A: Send,
    Id: Fn() -> A + Sync,
    F: Fn(A, &Row<'_>) -> std::result::Result<A, BoxError> + Sync,
    C: FnMut(A, A) -> A,
{
    let plan = flock.plan(df.height())?.fixed();
    let boundaries = chunk_boundaries(df.columns().iter().filter_map(Column::as_series));
    let accs = run_blocks(flock, &plan, |block| {
        retried(block, || {
            fold_row_views(
                df,
                &boundaries,
                block.rows.clone(),
                identity_for(block, &identity)?,
                |acc, global, row| {
                    block.enter_row(global);
                    fold(acc, row).map_err(|e| row.attribute(e))
                },
            )
        })
    })?;
    combine_in_order(&plan, accs, identity, combine)
}

/// Folds a block (`fold_once`, from a fresh accumulator) under the call's retry policy: a fold
/// step moves its accumulator, so a block whose row fails with a retryable error is folded again
/// from `identity`, every row of it (a fold's unit is its block). The row's error, and the stop
/// that ended a wait, come back as without retries.
fn retried<A>(block: &Block, mut fold_once: impl FnMut() -> Result<A>) -> Result<A> {
    let failed_row = std::cell::Cell::new(None);
    let folded = block.attempt_stateless(|| match fold_once() {
        Ok(acc) => Ok(acc),
        // The closure's own error, for the policy to judge.
        Err(Error::Row { row, source }) => {
            failed_row.set(Some(row));
            Err(source)
        }
        Err(other) => {
            failed_row.set(None);
            Err(Box::new(other) as BoxError)
        }
    });
    folded.map_err(|source| match source.downcast::<Error>() {
        Ok(error) if is_stop(&error) => *error,
        Ok(error) => match failed_row.get() {
            Some(row) => Error::Row { row, source: error },
            None => *error,
        },
        Err(source) => Error::Row {
            row: failed_row.get().unwrap_or(block.rows.start),
            source,
        },
    })
}

/// One block's fold, kept out of line: inlined into the (large) block runner, LLVM stopped
/// inlining `fold` itself and moved a large accumulator in and out of every call (measured: a
/// 32-bucket histogram folded at 1.3× serial on 2 threads instead of 1.9×).
/// A block's fresh accumulator; a panic in `identity` is reported as such.
fn identity_for<A>(block: &Block, identity: &impl Fn() -> A) -> Result<A> {
    contain(identity).map_err(|panic| block.panicked(panic, UserCode::Identity))
}

#[inline(never)]
fn fold_block<T, A>(
    block: &Block,
    items: &[T],
    init: A,
    fold: &impl Fn(A, &T) -> std::result::Result<A, BoxError>,
) -> Result<A> {
    // The item in progress is recovered from a count on a panic, not stored per item.
    let mut done = 0;
    let folded = contain(|| {
        items
            .iter()
            .try_fold(init, |acc, item| -> std::result::Result<A, BoxError> {
                let acc = fold(acc, item)?;
                done += 1;
                Ok(acc)
            })
    });
    match folded {
        Ok(Ok(acc)) => Ok(acc),
        Ok(Err(source)) => Err(Error::Row {
            row: block.rows.start + done,
            source,
        }),
        Err(panic) => {
            block.enter_row(block.rows.start + done);
            Err(block.panicked(panic, UserCode::Closure))
        }
    }
}

fn combine_in_order<A>(
    plan: &ChunkPlan,
    accs: Vec<A>,
    identity: impl Fn() -> A,
    mut combine: impl FnMut(A, A) -> A,
) -> Result<A> {
    let mut accs = Discarded::new(accs.into_iter());
    let Some(mut acc) = accs.next() else {
        return contain(identity).map_err(|panic| panic.at(UserCode::Identity, 0, 0..0, None));
    };
    for (index, next) in (1..).zip(&mut *accs) {
        acc = contain(|| combine(acc, next))
            .map_err(|panic| panic.at(UserCode::Combine, index, plan.block_rows(index), None))?;
    }
    Ok(acc)
}
