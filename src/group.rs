//! Group-wise apply (pandarallel's `groupby.parallel_apply`): one block closure call per group,
//! groups run in parallel, outputs concatenated in the order the groups first appear.

use polars::prelude::*;
use polars_core::frame::group_by::GroupsIndicator;

use crate::concat::{FirstSchema, vstack_all};
use crate::error::{Error, Result, UserCode};
use crate::exec::{Stateless, contain, run_blocks_stateful};
use crate::flock::Flock;

/// Runs `f` on every group of `df` by the `by` columns and vstacks the outputs in group order.
pub(crate) fn apply_groups<F>(df: &DataFrame, flock: &Flock, by: &[&str], f: F) -> Result<DataFrame>
where
    F: Fn(DataFrame) -> PolarsResult<DataFrame> + Sync,
{
    if by.is_empty() {
        return Err(Error::InvalidOption {
            option: "by",
            value: "[]".into(),
            reason: "group-wise apply needs at least one key column",
        });
    }
    for name in by {
        if df.get_column_index(name).is_none() {
            return Err(Error::ColumnNotFound {
                column: (*name).to_owned(),
                row: None,
            });
        }
    }
    // Stable: groups in the order their key first appears, rows of a group in frame order.
    let grouped = df.group_by_stable(by.iter().copied())?;
    let groups = grouped.get_groups();
    let plan = flock.plan(groups.len())?;

    let group_error = |group: usize, source: crate::BoxError| {
        let first = groups.get(group).first() as usize;
        Error::Group {
            group,
            key: describe_key(df, by, first),
            source,
        }
    };
    let mut first = FirstSchema::default();
    let parts = run_blocks_stateful(
        flock,
        &plan,
        &Stateless,
        |block, ()| {
            let mut outputs = Vec::with_capacity(block.rows.len());
            for group in block.rows.clone() {
                let rows = match groups.get(group) {
                    // Slice groups (sorted keys) are zero-copy; index groups are gathered.
                    GroupsIndicator::Slice([first, len]) => df.slice(first as i64, len as usize),
                    GroupsIndicator::Idx((_, idx)) => {
                        df.take(&IdxCa::from_vec(PlSmallStr::EMPTY, idx.to_vec()))?
                    }
                };
                block.enter_row(group);
                let out = match contain(|| f(rows)) {
                    Ok(Ok(out)) => out,
                    Ok(Err(e)) => return Err(group_error(group, Box::new(e))),
                    Err(panic) => {
                        let panicked = block.panicked(panic, UserCode::Closure);
                        return Err(group_error(group, Box::new(panicked)));
                    }
                };
                outputs.push((group, out));
            }
            Ok(outputs)
        },
        |_, outputs: &Vec<(usize, DataFrame)>| {
            for (group, out) in outputs {
                first.check(out.schema()).map_err(|expected| {
                    let mismatch = Error::SchemaMismatch {
                        block: *group,
                        rows: *group..*group + 1,
                        expected,
                        found: out.schema().clone(),
                    };
                    group_error(*group, Box::new(mismatch))
                })?;
            }
            Ok(())
        },
    )?;
    let outputs = parts.into_iter().flatten().map(|(_, out)| out);
    // No groups: the closure never ran, so its schema is unknown; the input's (empty) frame is
    // the honest answer.
    Ok(vstack_all(outputs)?.unwrap_or_else(|| df.clear()))
}

/// `k=3, city="Oslo"`: the key of the group whose first row is `row`.
fn describe_key(df: &DataFrame, by: &[&str], row: usize) -> String {
    by.iter()
        .map(|name| match df.column(name).and_then(|c| c.get(row)) {
            Ok(value) => format!("{name}={value}"),
            Err(_) => format!("{name}=?"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
