//! In-order reassembly: frames and vectors concatenated without copying, and the one schema every
//! part must share.

use polars::prelude::*;

use crate::control::{Failure, Report};

/// Remembers the first schema it is shown and compares every later one with it: names, dtypes
/// and order (`Schema`'s own `==` ignores the order).
#[derive(Debug, Default)]
pub(crate) struct FirstSchema(Option<SchemaRef>);

impl FirstSchema {
    /// `Err(first)` if `found` differs from the first schema seen.
    pub(crate) fn check(&mut self, found: &SchemaRef) -> std::result::Result<(), SchemaRef> {
        match &self.0 {
            None => {
                self.0 = Some(found.clone());
                Ok(())
            }
            Some(first) if same_schema(first, found) => Ok(()),
            Some(first) => Err(first.clone()),
        }
    }

    /// The first schema seen, if any.
    #[cfg(feature = "parquet")]
    pub(crate) fn schema(&self) -> Option<&SchemaRef> {
        self.0.as_ref()
    }
}

fn same_schema(a: &Schema, b: &Schema) -> bool {
    a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x == y)
}

/// The frames one under the other, in order, without copying (their chunks are appended);
/// `None` for no frames.
pub(crate) fn vstack_all(
    frames: impl IntoIterator<Item = DataFrame>,
) -> PolarsResult<Option<DataFrame>> {
    let mut frames = frames.into_iter();
    let Some(mut out) = frames.next() else {
        return Ok(None);
    };
    for frame in frames {
        out.vstack_mut_owned(frame)?;
    }
    Ok(Some(out))
}

/// The vectors one after the other, in order (moved, not cloned).
pub(crate) fn concat_vecs<U>(parts: Vec<Vec<U>>) -> Vec<U> {
    if parts.len() == 1 {
        return parts.into_iter().next().unwrap_or_default();
    }
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for part in parts {
        out.extend(part);
    }
    out
}

/// Keep-going reassembly: the outputs (with their unit's index, in input order) that have the
/// first kept output's schema; every other one is a failed unit, made by `mismatch` and added to
/// `report`, whose failures are then put in input order.
pub(crate) fn keep_same_schema(
    outputs: impl IntoIterator<Item = (usize, DataFrame)>,
    report: &mut Report,
    mismatch: impl Fn(usize, SchemaRef, &DataFrame) -> Failure,
) -> Vec<DataFrame> {
    let mut first = FirstSchema::default();
    let mut kept = Vec::new();
    for (index, out) in outputs {
        match first.check(out.schema()) {
            Ok(()) => kept.push(out),
            Err(expected) => report.failures.push(mismatch(index, expected, &out)),
        }
    }
    report.failures.sort_by_key(|failure| failure.unit.index());
    kept
}

/// Runs of chunks whose rows together stay under this are merged into one chunk: an adaptive
/// call's first blocks (1, 2, 4, … rows, run on the calling thread) would otherwise leave a
/// column, and its record batches, in many tiny pieces. A merge copies at most this many rows.
const SMALL_CHUNKS: usize = 1 << 16;

/// `series` with each run of consecutive chunks totalling at most [`SMALL_CHUNKS`] rows merged
/// into one chunk; larger chunks are kept as they are (no copy).
pub(crate) fn merge_small_chunks(series: Series) -> PolarsResult<Series> {
    let lens: Vec<usize> = series.chunk_lengths().collect();
    if lens.windows(2).all(|w| w[0] + w[1] > SMALL_CHUNKS) {
        return Ok(series);
    }
    let mut pieces = Vec::new();
    let (mut i, mut offset) = (0, 0);
    while i < lens.len() {
        let (mut j, mut len) = (i + 1, lens[i]);
        while j < lens.len() && len + lens[j] <= SMALL_CHUNKS {
            len += lens[j];
            j += 1;
        }
        let piece = series.slice(offset as i64, len);
        pieces.push(if j - i > 1 { piece.rechunk() } else { piece });
        (i, offset) = (j, offset + len);
    }
    let mut pieces = pieces.into_iter();
    let mut merged = pieces.next().unwrap_or(series);
    for piece in pieces {
        merged.append_owned(piece)?;
    }
    Ok(merged)
}
