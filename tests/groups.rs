//! Group-wise apply: equal to a serial loop over the groups in first-appearance order, for random
//! frames, key cardinalities, chunk sizes and thread counts; errors name the group and its key.

mod common;

use std::collections::HashMap;

use common::*;
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Error, Flock};
use proptest::prelude::*;

/// A frame with a key column of `cardinality` values, contiguous (`sorted`) or interleaved.
fn keyed(n: usize, seed: u64, cardinality: u64, sorted: bool) -> (DataFrame, Vec<i64>, Vec<i64>) {
    let mut state = seed;
    let mut keys: Vec<i64> = (0..n)
        .map(|_| (splitmix(&mut state) % cardinality) as i64)
        .collect();
    if sorted {
        keys.sort();
    }
    let values: Vec<i64> = (0..n)
        .map(|_| (splitmix(&mut state) % 1_000) as i64)
        .collect();
    let df = df!("key" => &keys, "v" => &values).unwrap();
    (df, keys, values)
}

/// The closure under test: the group's rows with their position in the group and the group size.
fn per_group(g: DataFrame) -> Result<DataFrame, BoxError> {
    let n = g.height() as i64;
    let pos = Series::new("pos".into(), (0..n).collect::<Vec<_>>());
    let size = Series::new("size".into(), vec![n; n as usize]);
    Ok(g.hstack(&[pos.into_column(), size.into_column()])?)
}

/// The same, serially: groups in first-appearance order.
fn serial(keys: &[i64], values: &[i64]) -> Vec<(i64, i64, i64, i64)> {
    let mut order = Vec::new();
    let mut members: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        members
            .entry(*k)
            .or_insert_with(|| {
                order.push(*k);
                Vec::new()
            })
            .push(i);
    }
    let mut out = Vec::new();
    for k in order {
        let rows = &members[&k];
        for (pos, &r) in rows.iter().enumerate() {
            out.push((k, values[r], pos as i64, rows.len() as i64));
        }
    }
    out
}

fn rows_of(df: &DataFrame) -> Vec<(i64, i64, i64, i64)> {
    let col = |name: &str| {
        df.column(name)
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect::<Vec<_>>()
    };
    let (k, v, p, s) = (col("key"), col("v"), col("pos"), col("size"));
    (0..df.height()).map(|i| (k[i], v[i], p[i], s[i])).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn groups_equal_serial_in_first_appearance_order(
        n in 1usize..=3_000,
        seed in any::<u64>(),
        cardinality in 1u64..=500,
        sorted in any::<bool>(),
        cs in (0usize..=600).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        let (df, keys, values) = keyed(n, seed, cardinality, sorted);
        let out = (flock(cs, threads)).on(&df).par_apply_groups(&["key"], per_group).unwrap();
        prop_assert_eq!(rows_of(&out), serial(&keys, &values));
    }
}

#[test]
fn multi_column_keys_and_string_keys() {
    let df = df!(
        "city" => ["Oslo", "Rome", "Oslo", "Rome", "Oslo"],
        "year" => [2024i64, 2024, 2025, 2024, 2024],
        "qty" => [1i64, 2, 3, 4, 5],
    )
    .unwrap();
    let out = Flock::new()
        .chunksize(1)
        .threads(2)
        .on(&df)
        .par_apply_groups(&["city", "year"], |g| {
            Ok(g.select(["city", "year"])?
                .head(Some(1))
                .hstack(&[Series::new(
                    "total".into(),
                    [g.column("qty")?.i64()?.sum().unwrap_or(0)],
                )
                .into_column()])?)
        })
        .unwrap();
    let totals: Vec<i64> = out
        .column("total")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    // (Oslo, 2024) first, then (Rome, 2024), then (Oslo, 2025).
    assert_eq!(totals, [6, 6, 3]);
}

#[test]
fn group_errors_name_the_group_and_key() {
    let df = df!("k" => ["a", "b", "c", "b"], "x" => [1i64, 2, 3, 4]).unwrap();
    let flock = Flock::new().chunksize(1).threads(2);
    let err = flock
        .on(&df)
        .par_apply_groups(&["k"], |g| {
            if g.height() == 2 {
                return Err(polars_err!(ComputeError: "two rows").into());
            }
            Ok(g)
        })
        .unwrap_err();
    assert!(
        matches!(err, Error::InGroup { group: 1, ref key, .. } if key == "k=\"b\""),
        "{err}"
    );

    let err = flock
        .on(&df)
        .par_apply_groups(&["k"], |g| {
            assert!(g.height() < 2, "too big");
            Ok(g)
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::InGroup { group: 1, source, .. } if source.to_string().contains("too big")),
        "{err}"
    );

    let err = flock
        .on(&df)
        .par_apply_groups(&["k"], |g| {
            if g.height() == 2 {
                Ok(g.select(["x"])?)
            } else {
                Ok(g)
            }
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::InGroup { group: 1, source, .. }
            if matches!(Some(source.as_ref()), Some(Error::SchemaMismatch { block: 1, .. }))),
        "{err}"
    );

    assert!(matches!(
        df.par_apply_groups(&["nope"], Ok),
        Err(Error::ColumnNotFound { row: None, .. })
    ));
    assert!(matches!(
        df.par_apply_groups(&[], Ok),
        Err(Error::InvalidOption { option: "by", .. })
    ));
    let empty = df.head(Some(0));
    let out = empty
        .par_apply_groups(&["k"], |_| panic!("never called"))
        .unwrap();
    assert_eq!(out.shape(), (0, 2));
}
