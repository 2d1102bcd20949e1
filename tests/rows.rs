//! `par_apply_rows` and the typed fast path `par_apply_columns` on DataFrames.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use polars_flock::Flock;
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;

fn sales() -> DataFrame {
    df!(
        "price" => [2.5, 8.0, 1.0, 12.0, 3.0],
        "qty" => [4i64, 3, 2, 1, 10],
        "city" => ["Oslo", "Rome", "Lima", "Pune", "Kobe"],
    )
    .unwrap()
}

#[test]
fn chained_pipeline_appends_columns_in_order() {
    let flock = Flock::new().chunksize(2).threads(2);
    // With options, each step is a view of the previous step's frame.
    let totals = flock
        .on(&sales())
        .par_apply_rows(
            "total",
            |row| Ok(row.f64("price")? * row.i64("qty")? as f64),
        )
        .unwrap();
    let labelled = flock
        .on(&totals)
        .par_apply_rows("label", |row| {
            Ok(format!("{}-{}", row.str("city")?, row.i64("qty")?))
        })
        .unwrap();
    let out = flock
        .on(&labelled)
        .par_apply_blocks(|block| {
            let keep = block.column("total")?.f64()?.gt(10.0);
            Ok(block.filter(&keep)?)
        })
        .unwrap();
    let names: Vec<&str> = out.get_column_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["price", "qty", "city", "total", "label"]);
    let labels: Vec<&str> = out
        .column("label")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(labels, ["Rome-3", "Pune-1", "Kobe-10"]);
}

#[test]
fn return_type_picks_the_dtype() {
    let df = sales();
    let f = Flock::new().chunksize(2);
    macro_rules! check {
        ($name:literal, $dtype:expr, $closure:expr) => {{
            let out = f.on(&df).par_apply_rows($name, $closure).unwrap();
            assert_eq!(out.column($name).unwrap().dtype(), &$dtype, $name);
            out
        }};
    }
    check!("f64", DataType::Float64, |r| Ok(r.f64("price")?));
    check!("f32", DataType::Float32, |r| Ok(r.f64("price")? as f32));
    check!("i64", DataType::Int64, |r| Ok(r.i64("qty")?));
    check!("i32", DataType::Int32, |r| Ok(r.i64("qty")? as i32));
    check!("u64", DataType::UInt64, |r| Ok(r.i64("qty")? as u64));
    check!("u32", DataType::UInt32, |r| Ok(r.i64("qty")? as u32));
    check!("bool", DataType::Boolean, |r| Ok(r.i64("qty")? > 2));
    check!("string", DataType::String, |r| Ok(r
        .str("city")?
        .to_uppercase()));
    let out = check!("static", DataType::String, |r| Ok(if r.i64("qty")? > 2 {
        "big"
    } else {
        "small"
    }));
    assert_eq!(
        out.column("static").unwrap().str().unwrap().get(3),
        Some("small")
    );
    let out = check!("opt", DataType::Int64, |r| Ok(r
        .i64("qty")
        .ok()
        .filter(|q| *q > 2)));
    assert_eq!(out.column("opt").unwrap().null_count(), 2);
    check!("opt_f32", DataType::Float32, |r| Ok(Some(
        r.f64("price")? as f32
    )));
    check!("opt_i32", DataType::Int32, |_| Ok(None::<i32>));
    check!("opt_u64", DataType::UInt64, |_| Ok(Some(1u64)));
    check!("opt_u32", DataType::UInt32, |_| Ok(Some(1u32)));
    check!("opt_f64", DataType::Float64, |_| Ok(Some(1.0f64)));
    let out = check!("opt_bool", DataType::Boolean, |r| Ok(
        (r.index() % 2 == 0).then_some(true)
    ));
    assert_eq!(out.column("opt_bool").unwrap().null_count(), 2);
    let out = check!("opt_str", DataType::String, |r| Ok(
        (r.index() == 0).then(|| "first".to_owned())
    ));
    assert_eq!(out.column("opt_str").unwrap().null_count(), 4);
    check!("opt_static", DataType::String, |_| Ok(Some("x")));
}

#[test]
fn getters_read_every_supported_dtype() {
    let df = df!(
        "f64" => [1.5f64], "f32" => [2.5f32], "i64" => [-3i64], "i32" => [-4i32],
        "u64" => [5u64], "u32" => [6u32], "bool" => [true], "str" => ["seven"],
    )
    .unwrap();
    let out = df
        .par_apply_rows("sum", |r| {
            Ok(r.f64("f64")?
                + f64::from(r.f32("f32")?)
                + r.i64("i64")? as f64
                + f64::from(r.i32("i32")?)
                + r.u64("u64")? as f64
                + f64::from(r.u32("u32")?)
                + f64::from(u8::from(r.bool("bool")?))
                + r.str("str")?.len() as f64)
        })
        .unwrap();
    assert_eq!(
        out.column("sum").unwrap().f64().unwrap().get(0),
        Some(1.5 + 2.5 - 3.0 - 4.0 + 5.0 + 6.0 + 1.0 + 5.0)
    );
}

#[test]
fn option_getters_read_nulls_as_none() {
    let df = df!(
        "f64" => [None::<f64>], "f32" => [None::<f32>], "i64" => [None::<i64>], "i32" => [None::<i32>],
        "u64" => [None::<u64>], "u32" => [None::<u32>], "bool" => [None::<bool>], "str" => [None::<&str>],
    )
    .unwrap();
    let out = df
        .par_apply_rows("all_none", |r| {
            Ok(r.opt_f64("f64")?.is_none()
                && r.opt_f32("f32")?.is_none()
                && r.opt_i64("i64")?.is_none()
                && r.opt_i32("i32")?.is_none()
                && r.opt_u64("u64")?.is_none()
                && r.opt_u32("u32")?.is_none()
                && r.opt_bool("bool")?.is_none()
                && r.opt_str("str")?.is_none())
        })
        .unwrap();
    assert_eq!(
        out.column("all_none").unwrap().bool().unwrap().get(0),
        Some(true)
    );
}

#[test]
fn multi_chunk_frame_gives_the_same_answer_as_rechunked() {
    let data = Data::generate(3_000, 7);
    let chunked = data.frame(4);
    assert!(chunked.column("f").unwrap().n_chunks() > 1);
    let mut rechunked = chunked.clone();
    rechunked.rechunk_mut();
    for cs in [1, 7, 500, 749, 750, 751, 3_000] {
        let f = Flock::new().chunksize(cs).threads(3);
        let apply = |df: &DataFrame| {
            f.on(&df)
                .par_apply_rows("out", |row| {
                    Ok(row_fn(
                        row.opt_f64("f")?,
                        row.opt_i64("i")?,
                        row.opt_str("s")?,
                        row.opt_bool("b")?,
                    ))
                })
                .unwrap()
        };
        assert_eq!(
            f64_values(&apply(&chunked), "out"),
            f64_values(&apply(&rechunked), "out")
        );
        assert_eq!(f64_values(&apply(&chunked), "out"), serial_row_fn(&data));
    }
}

#[test]
fn output_keeps_one_chunk_per_block_and_shares_input_columns() {
    let df = df!("x" => (0..1_000).map(f64::from).collect::<Vec<_>>()).unwrap();
    let out = Flock::new()
        .chunksize(100)
        .on(&df)
        .par_apply_rows("y", |r| Ok(r.f64("x")? + 1.0))
        .unwrap();
    assert_eq!(out.column("y").unwrap().n_chunks(), 10);
    let values = |df: &DataFrame| {
        df.column("x")
            .unwrap()
            .f64()
            .unwrap()
            .cont_slice()
            .unwrap()
            .as_ptr()
    };
    let (input, shared) = (values(&df), values(&out));
    assert_eq!(input, shared, "input columns must be shared, not copied");
}

#[test]
fn empty_and_zero_column_frames() {
    let empty = df!("x" => Vec::<f64>::new()).unwrap();
    let out = empty
        .par_apply_rows("y", |r| Ok(r.f64("x")? as i32))
        .unwrap();
    assert_eq!(out.height(), 0);
    assert_eq!(out.column("y").unwrap().dtype(), &DataType::Int32);
    let out = empty
        .par_apply_columns("y", ["x"], |x: f64| x > 0.0)
        .unwrap();
    assert_eq!(out.column("y").unwrap().dtype(), &DataType::Boolean);

    let no_columns = DataFrame::empty_with_height(300);
    let out = Flock::new()
        .chunksize(64)
        .on(&no_columns)
        .par_apply_rows("i", |r| Ok(r.index() as u32))
        .unwrap();
    assert_eq!(out.shape(), (300, 1));
    assert_eq!(out.column("i").unwrap().u32().unwrap().get(299), Some(299));
}

#[test]
fn scalar_columns_are_read_like_any_other() {
    let mut df = df!("x" => [1i64, 2, 3, 4]).unwrap();
    df.with_column(Column::new_scalar("k".into(), Scalar::from(10i64), 4))
        .unwrap();
    let out = Flock::new()
        .chunksize(1)
        .on(&df)
        .par_apply_rows("y", |r| Ok(r.i64("x")? * r.i64("k")?))
        .unwrap();
    let y = i64_values(&out, "y");
    assert_eq!(y, [10, 20, 30, 40]);
}

#[test]
fn every_row_is_passed_exactly_once() {
    let n = 10_007;
    let df = df!("x" => (0..n as i64).collect::<Vec<_>>()).unwrap();
    let seen: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
    Flock::new()
        .chunksize(333)
        .threads(4)
        .on(&df)
        .par_apply_rows("y", |r| {
            seen[r.i64("x")? as usize].fetch_add(1, Ordering::Relaxed);
            Ok(true)
        })
        .unwrap();
    assert!(seen.iter().all(|c| c.load(Ordering::Relaxed) == 1));
}

#[test]
fn getters_in_varying_order_and_missing_optional_columns() {
    // Closures that read different columns on different rows, or tolerate a missing column, still
    // get the right values (the slot cache is positional only as a fast path).
    let df = df!("a" => [1i64, 2, 3, 4], "b" => [10i64, 20, 30, 40]).unwrap();
    let out = df
        .par_apply_rows("y", |r| {
            let bonus = r.i64("no_such_column").unwrap_or(0);
            // A fresh String per row: it may reuse the last row's address with other content.
            let name = (if r.index() % 2 == 0 { "a" } else { "b" }).to_string();
            Ok(r.i64(&name)? + bonus + r.i64("a")?)
        })
        .unwrap();
    let y = i64_values(&out, "y");
    assert_eq!(y, [2, 22, 6, 44]);
}

#[test]
fn typed_path_reads_tuples_and_single_columns() {
    let df = sales();
    let out = df
        .par_apply_columns("total", ["price", "qty"], |(p, q): (f64, i64)| p * q as f64)
        .unwrap()
        .par_apply_columns("len", ["city"], |c: &str| c.len() as u32)
        .unwrap()
        .par_apply_columns("one", ["qty"], |(q,): (i64,)| q == 1)
        .unwrap();
    let total: Vec<f64> = out
        .column("total")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(total, [10.0, 24.0, 2.0, 12.0, 30.0]);
    assert_eq!(out.column("len").unwrap().u32().unwrap().get(0), Some(4));
    assert_eq!(
        out.column("one").unwrap().bool().unwrap().get(3),
        Some(true)
    );

    let six = df!("a" => [1i32], "b" => [2u32], "c" => [3u64], "d" => [4.0f32], "e" => [true], "f" => ["x"]).unwrap();
    let out = six
        .par_apply_columns(
            "s",
            ["a", "b", "c", "d", "e", "f"],
            |(a, b, c, d, e, f): (i32, u32, u64, f32, bool, &str)| format!("{a}{b}{c}{d}{e}{f}"),
        )
        .unwrap();
    assert_eq!(
        out.column("s").unwrap().str().unwrap().get(0),
        Some("1234truex")
    );
}

#[test]
fn try_typed_path_returns_values_or_the_first_error() {
    let df = df!("s" => ["1", "2", "3"]).unwrap();
    let out = df
        .par_apply_columns("n", ["s"], |s: &str| Ok(s.parse::<i64>()?))
        .unwrap();
    assert_eq!(out.column("n").unwrap().i64().unwrap().get(2), Some(3));
}

#[test]
fn closures_reading_more_columns_than_the_slot_cache() {
    // 100 columns read per row (more than the per-block cache holds), plus 20 missing names.
    let columns: Vec<Column> = (0..100)
        .map(|c| {
            Column::new(
                format!("c{c}").into(),
                (0..50i64).map(|r| r * c).collect::<Vec<_>>(),
            )
        })
        .collect();
    let df = DataFrame::new(50, columns).unwrap();
    let out = Flock::new()
        .chunksize(7)
        .on(&df)
        .par_apply_rows("sum", |r| {
            let mut sum = 0;
            for c in 0..100 {
                sum += r.i64(&format!("c{c}"))?;
            }
            for m in 0..20 {
                assert!(r.i64(&format!("missing{m}")).is_err());
            }
            Ok(sum)
        })
        .unwrap();
    let expected: Vec<i64> = (0..50i64).map(|r| r * (0..100).sum::<i64>()).collect();
    assert_eq!(i64_values(&out, "sum"), expected);
}

#[test]
fn a_tuple_output_adds_one_column_per_element_on_every_row_path() {
    let data = common::Data::generate(1_000, 11);
    let df = data.frame(3);
    let flock = Flock::new().chunksize(70).threads(2);
    let two = |row: &polars_flock::Row<'_>| -> Result<(Option<f64>, Option<String>), BoxError> {
        Ok((
            row.opt_f64("f")?.map(|f| f * 2.0),
            row.opt_str("s")?.map(str::to_uppercase),
        ))
    };
    let together = flock.on(&df).par_apply_rows(["f2", "s2"], two).unwrap();
    let apart = flock
        .on(&df)
        .par_apply_rows("f2", |row| Ok(two(row)?.0))
        .and_then(|df| flock.on(&df).par_apply_rows("s2", |row| Ok(two(row)?.1)))
        .unwrap();
    assert!(together.equals_missing(&apart));

    // Keep-going: a failed row is null in every new column.
    let (kept, report) = flock
        .on(&df)
        .keep_going()
        .par_apply_rows(["a", "bb", "c"], |row| {
            let i = row.opt_i64("i")?.ok_or("null i")?;
            Ok((i, i * 2, i.to_string()))
        })
        .unwrap();
    let nulls = data.i.iter().filter(|i| i.is_none()).count();
    assert_eq!(report.failures.len(), nulls);
    for name in ["a", "bb", "c"] {
        assert_eq!(kept.column(name).unwrap().null_count(), nulls);
    }
    let doubled: Vec<Option<i64>> = kept.column("bb").unwrap().i64().unwrap().iter().collect();
    assert_eq!(
        doubled,
        data.i.iter().map(|i| i.map(|i| i * 2)).collect::<Vec<_>>()
    );

    // Per worker, four columns.
    let out = df
        .par_apply_rows_per_worker(
            ["w", "x", "y", "z"],
            || Ok(0u64),
            |seen, row| {
                *seen += 1;
                Ok((row.index() as u64, *seen >= 1, row.opt_bool("b")?, 1i32))
            },
        )
        .unwrap();
    assert_eq!(out.width(), df.width() + 4);
    assert_eq!(out.column("w").unwrap().u64().unwrap().get(999), Some(999));

    // Names are checked before any work: taken, or repeated.
    let err = df
        .par_apply_rows(["f", "new"], |_| Ok((1i64, 2i64)))
        .unwrap_err();
    assert!(
        matches!(err, polars_flock::Error::DuplicateColumn { ref column } if column == "f"),
        "{err}"
    );
    let err = df
        .par_apply_rows(["n", "n"], |_| Ok((1i64, 2i64)))
        .unwrap_err();
    assert!(
        matches!(err, polars_flock::Error::DuplicateColumn { ref column } if column == "n"),
        "{err}"
    );
    // An empty frame gets typed, empty columns.
    let out = df
        .clear()
        .par_apply_rows(["p", "q"], |_| Ok((1.5f64, true)))
        .unwrap();
    assert_eq!(out.column("q").unwrap().dtype(), &DataType::Boolean);
}
