//! Group-wise apply (pandarallel's `groupby.parallel_apply`): one block closure call per group,
//! groups run in parallel, outputs concatenated in the order the groups first appear.

use polars::prelude::*;
use polars_core::frame::group_by::{GroupPositions, GroupsIndicator};

use crate::concat::{FirstSchema, keep_same_schema, vstack_all};
use crate::control::{Failure, Report, Unit};
use crate::error::{BoxError, Error, Result, UserCode};
use crate::exec::{Block, StateSource, contain, run_blocks_stateful, run_keep_going};
use crate::flock::Flock;
use crate::plan::ChunkPlan;

/// A frame's groups, ready to run: the plan counts groups.
pub(crate) struct Groups<'a> {
    df: &'a DataFrame,
    by: &'a [&'a str],
    groups: GroupPositions,
    plan: ChunkPlan,
}

impl<'a> Groups<'a> {
    fn new(df: &'a DataFrame, flock: &Flock, by: &'a [&'a str]) -> Result<Self> {
        Self::planned(df, by, |groups| flock.plan(groups))
    }

    /// The groups of an async call (its options checked as an async call's).
    #[cfg(feature = "async")]
    pub(crate) fn for_io(df: &'a DataFrame, flock: &Flock, by: &'a [&'a str]) -> Result<Self> {
        Self::planned(df, by, |groups| flock.layout(groups))
    }

    /// How many groups.
    #[cfg(feature = "async")]
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    fn planned(
        df: &'a DataFrame,
        by: &'a [&'a str],
        plan: impl FnOnce(usize) -> Result<ChunkPlan>,
    ) -> Result<Self> {
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
        let groups = grouped.get_groups().clone();
        let plan = plan(groups.len())?;
        Ok(Groups {
            df,
            by,
            groups,
            plan,
        })
    }

    /// Group `group`'s rows: slice groups (sorted keys) are zero-copy; index groups are gathered.
    pub(crate) fn frame(&self, group: usize) -> Result<DataFrame> {
        Ok(match self.groups.get(group) {
            GroupsIndicator::Slice([first, len]) => self.df.slice(first as i64, len as usize),
            GroupsIndicator::Idx((_, idx)) => self
                .df
                .take(&IdxCa::from_vec(PlSmallStr::EMPTY, idx.to_vec()))?,
        })
    }

    pub(crate) fn key(&self, group: usize) -> String {
        let row = self.groups.get(group).first() as usize;
        self.by
            .iter()
            .map(|name| match self.df.column(name).and_then(|c| c.get(row)) {
                Ok(value) => format!("{name}={value}"),
                Err(_) => format!("{name}=?"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `source` in group `group`'s context.
    pub(crate) fn error(&self, group: usize, source: Error) -> Error {
        Error::InGroup {
            group,
            key: self.key(group),
            source: Box::new(source),
        }
    }

    /// Runs `f` on group `group` under the guard: its output, or its error in context.
    fn run<S>(
        &self,
        block: &Block,
        group: usize,
        state: &mut S,
        states: &(impl StateSource<S> + ?Sized),
        f: &impl Fn(&mut S, DataFrame) -> std::result::Result<DataFrame, BoxError>,
    ) -> Result<DataFrame> {
        let rows = self.frame(group)?;
        block.enter_row(group);
        match contain(|| block.attempt(state, states, |state| f(state, rows.clone()))) {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(self.error(group, Error::of_closure(e))),
            Err(panic) => {
                block.poison();
                Err(self.error(group, block.panicked(panic, UserCode::Closure)))
            }
        }
    }

    pub(crate) fn mismatch(&self, group: usize, expected: SchemaRef, out: &DataFrame) -> Error {
        let mismatch = Error::SchemaMismatch {
            block: group,
            rows: group..group + 1,
            expected,
            found: out.schema().clone(),
        };
        self.error(group, mismatch)
    }

    /// The outputs concatenated; no groups (the closure never ran, so its schema is unknown):
    /// the input's (empty) frame, the honest answer.
    pub(crate) fn concat(&self, outputs: impl IntoIterator<Item = DataFrame>) -> Result<DataFrame> {
        Ok(vstack_all(outputs)?.unwrap_or_else(|| self.df.clear()))
    }
}

pub(crate) fn apply_groups<S, F>(
    df: &DataFrame,
    flock: &Flock,
    by: &[&str],
    states: &(impl StateSource<S> + ?Sized),
    f: F,
) -> Result<DataFrame>
where
    S: Send,
    F: Fn(&mut S, DataFrame) -> std::result::Result<DataFrame, BoxError> + Sync,
{
    let groups = Groups::new(df, flock, by)?;
    let mut first = FirstSchema::default();
    let parts = run_blocks_stateful(
        flock,
        &groups.plan,
        states,
        |block, state| {
            (block.rows.clone())
                .map(|group| Ok((group, groups.run(block, group, state, states, &f)?)))
                .collect::<Result<Vec<_>>>()
        },
        |_, _, outputs: &Vec<(usize, DataFrame)>| {
            for (group, out) in outputs {
                (first.check(out.schema()))
                    .map_err(|expected| groups.mismatch(*group, expected, out))?;
            }
            Ok(())
        },
    )?;
    groups.concat(parts.into_iter().flatten().map(|(_, out)| out))
}

/// [`apply_groups`] in keep-going mode: a failed group (or one whose schema differs from the
/// first good group's) is left out and reported.
pub(crate) fn apply_groups_keep_going<S, F>(
    df: &DataFrame,
    flock: &Flock,
    by: &[&str],
    states: &(impl StateSource<S> + ?Sized),
    f: F,
) -> Result<(DataFrame, Report)>
where
    S: Send,
    F: Fn(&mut S, DataFrame) -> std::result::Result<DataFrame, BoxError> + Sync,
{
    let groups = Groups::new(df, flock, by)?;
    let unit = |group| Unit::Group {
        group,
        key: groups.key(group),
    };
    let (parts, mut report) = run_keep_going(
        flock,
        &groups.plan,
        states,
        |block, state, units| {
            Ok((block.rows.clone())
                .map(|group| {
                    let out = units.unit(
                        block,
                        group,
                        || unit(group),
                        || groups.run(block, group, &mut *state, states, &f),
                        |e| e,
                    );
                    (group, out)
                })
                .collect::<Vec<_>>())
        },
        |_| Vec::new(),
    )?;
    let outputs = (parts.into_iter().flatten()).filter_map(|(group, out)| Some((group, out?)));
    let kept = keep_same_schema(outputs, &mut report, |group, expected, out| Failure {
        error: groups.mismatch(group, expected, out),
        unit: unit(group),
        attempts: 1,
    });
    Ok((groups.concat(kept)?, report))
}
