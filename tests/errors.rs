//! Every error variant, with the exact context it reports.

use std::sync::atomic::{AtomicUsize, Ordering};

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Error, Flock, UserCode};

fn frame() -> DataFrame {
    df!(
        "x" => [Some(1.0), Some(2.0), None, Some(4.0), None],
        "k" => [1i64, 2, 3, 4, 5],
        "s" => ["a", "b", "c", "d", "e"],
    )
    .unwrap()
}

#[test]
fn invalid_options_are_errors_on_every_entry_point() {
    let df = frame();
    let items = [1, 2, 3];
    for flock in [Flock::new().chunksize(0), Flock::new().threads(0)] {
        let check = |e: Error| match e {
            Error::InvalidOption { option, value, .. } => {
                assert!(option == "chunksize" || option == "threads");
                assert_eq!(value, "0");
            }
            other => panic!("unexpected {other}"),
        };
        check(
            flock
                .on(&df)
                .par_apply_rows("y", |r| Ok(r.f64("x")?))
                .unwrap_err(),
        );
        check(
            flock
                .on(&df)
                .par_apply_columns("y", ["k"], |k: i64| k)
                .unwrap_err(),
        );
        check(flock.on(&df).par_apply_blocks(Ok).unwrap_err());
        check(flock.on(&items).par_apply_rows(|x| Ok(*x)).unwrap_err());
        check(
            flock
                .on(&items)
                .par_apply_blocks(|b| Ok(b.to_vec()))
                .unwrap_err(),
        );
        check(flock.plan(10).unwrap_err());
    }
    let msg = Flock::new().chunksize(0).plan(1).unwrap_err().to_string();
    assert_eq!(
        msg,
        "invalid option `chunksize` = 0: a block needs at least one row"
    );
}

#[test]
fn missing_column_names_the_column_and_row() {
    let err = frame()
        .par_apply_rows("y", |r| Ok(r.f64("nope")?))
        .unwrap_err();
    assert!(
        matches!(&err, Error::ColumnNotFound { column, row: Some(0) } if column == "nope"),
        "{err}"
    );
    assert_eq!(err.to_string(), "column \"nope\" not found at row 0");

    let err = frame()
        .par_apply_columns("y", ["k", "nope"], |(k, x): (i64, f64)| k as f64 + x)
        .unwrap_err();
    assert!(matches!(&err, Error::ColumnNotFound { column, row: None } if column == "nope"));
}

#[test]
fn wrong_dtype_names_expected_and_found() {
    let flock = Flock::new().chunksize(2);
    let err = flock
        .on(&frame())
        .par_apply_rows("y", |r| Ok(r.str("k")?.to_owned()))
        .unwrap_err();
    match err {
        Error::DtypeMismatch {
            column,
            row,
            expected,
            found,
        } => {
            assert_eq!((column.as_str(), row), ("k", Some(0)));
            assert_eq!((*expected, *found), (DataType::String, DataType::Int64));
        }
        other => panic!("unexpected {other}"),
    }
    // Checked before any work in the typed path.
    let calls = AtomicUsize::new(0);
    let err = frame()
        .par_apply_columns("y", ["s"], |s: i64| {
            calls.fetch_add(1, Ordering::Relaxed);
            s
        })
        .unwrap_err();
    assert!(matches!(
        err,
        Error::DtypeMismatch { row: None, ref expected, ref found, .. }
            if **expected == DataType::Int64 && **found == DataType::String
    ));
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    // A null in a column of the wrong dtype is still a dtype error.
    let err = frame()
        .par_apply_rows("y", |r| Ok(r.i64("x")?))
        .unwrap_err();
    assert!(matches!(err, Error::DtypeMismatch { row: Some(0), .. }));
}

#[test]
fn null_through_a_plain_getter_names_the_global_row() {
    // Rows 2 and 4 are null; with blocks of 2 rows, row 2 is row 0 of block 1: the error must say 2.
    let err = Flock::new()
        .chunksize(2)
        .threads(2)
        .on(&frame())
        .par_apply_rows("y", |r| Ok(r.f64("x")?))
        .unwrap_err();
    assert!(
        matches!(&err, Error::NullValue { column, row: 2 } if column == "x"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "null value in column \"x\" at row 2; read it as an Option"
    );

    let err = frame()
        .par_apply_columns("y", ["x"], |x: f64| x)
        .unwrap_err();
    assert!(matches!(err, Error::NullValue { row: 2, .. }));
}

#[test]
fn output_name_that_exists_is_rejected() {
    let err = frame()
        .par_apply_rows("k", |r| Ok(r.i64("k")?))
        .unwrap_err();
    assert!(matches!(&err, Error::DuplicateColumn { column } if column == "k"));
    let err = frame()
        .par_apply_columns("s", ["k"], |k: i64| k)
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateColumn { .. }));
}

#[test]
fn closure_errors_report_the_lowest_failing_row() {
    let n = 10_000;
    let df = df!("x" => (0..n as i64).collect::<Vec<_>>()).unwrap();
    for threads in [1, 2, 8] {
        let err = Flock::new()
            .chunksize(100)
            .threads(threads)
            .on(&df)
            .par_apply_rows("y", |r| {
                let x = r.i64("x")?;
                if x % 1_000 == 777 {
                    Err(BoxError::from(format!("bad {x}")))
                } else {
                    Ok(x)
                }
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "row 777: bad 777");
        assert!(matches!(err, Error::Row { row: 777, .. }));
    }
}

#[test]
fn no_new_block_starts_after_a_failure() {
    // Block 0 fails at its first row. The other thread's blocks wait until that row has been
    // called and then take at least 1 ms each, so that how fast the machine runs 999 small
    // blocks, or how long it preempts the failing thread, does not decide the outcome (on a
    // loaded CI machine the other thread once drained every block while block 0's thread was
    // descheduled, before the blocks waited).
    let n = 100_000;
    let df = df!("x" => (0..n as i64).collect::<Vec<_>>()).unwrap();
    let calls = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let err = Flock::new()
        .chunksize(100)
        .threads(2)
        .on(&df)
        .par_apply_rows("y", |r| {
            calls.fetch_add(1, Ordering::Relaxed);
            if r.index() == 0 {
                failed.store(true, Ordering::Release);
                return Err(BoxError::from("stop"));
            }
            if r.index() % 100 == 0 {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while !failed.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
                    std::thread::yield_now();
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Ok(1)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Row { row: 0, .. }));
    // Blocks already running on the other thread finish; nothing close to all 1,000 blocks runs
    // (500 would take the failing thread half a second to record its failure).
    let blocks_run = calls.load(Ordering::Relaxed).div_ceil(100);
    assert!(blocks_run < 500, "{blocks_run} blocks ran");
}

#[test]
fn block_errors_name_block_and_rows() {
    let df = df!("x" => (0..10i64).collect::<Vec<_>>()).unwrap();
    let err = Flock::new()
        .chunksize(3)
        .on(&df)
        .par_apply_blocks(|b| {
            if b.column("x")?.i64()?.get(0) == Some(6) {
                return Err(polars_err!(ComputeError: "no sixes").into());
            }
            Ok(b)
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "block 2 (rows 6..9): no sixes");
    let Error::Block { source, .. } = err else {
        panic!()
    };
    assert!(source.downcast_ref::<PolarsError>().is_some());

    let v: Vec<i32> = (0..10).collect();
    let err = Flock::new()
        .chunksize(4)
        .on(&v)
        .par_apply_blocks(|b| {
            if b.contains(&9) {
                Err("nine".into())
            } else {
                Ok(b.to_vec())
            }
        })
        .unwrap_err();
    assert!(matches!(err, Error::Block { block: 2, ref rows, .. } if *rows == (8..10)));
}

#[test]
fn block_schema_mismatch_names_block_and_both_schemas() {
    let df = df!("x" => (0..10i64).collect::<Vec<_>>()).unwrap();
    let err = Flock::new()
        .chunksize(4)
        .on(&df)
        .par_apply_blocks(|b| {
            if b.column("x")?.i64()?.get(0) == Some(4) {
                Ok(b.column("x")?.cast(&DataType::Float64)?.into_frame())
            } else {
                Ok(b)
            }
        })
        .unwrap_err();
    match err {
        Error::SchemaMismatch {
            block,
            rows,
            expected,
            found,
        } => {
            assert_eq!((block, rows), (1, 4..8));
            assert_eq!(expected.get("x"), Some(&DataType::Int64));
            assert_eq!(found.get("x"), Some(&DataType::Float64));
        }
        other => panic!("unexpected {other}"),
    }
    // Same names in another order is a mismatch too.
    let df = df!("a" => [1i64, 2], "b" => [3i64, 4]).unwrap();
    let err = Flock::new()
        .chunksize(1)
        .on(&df)
        .par_apply_blocks(|b| {
            if b.column("a")?.i64()?.get(0) == Some(2) {
                Ok(b.select(["b", "a"])?)
            } else {
                Ok(b)
            }
        })
        .unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { block: 1, .. }));
}

#[test]
fn a_mismatch_before_a_failure_is_reported_first() {
    // Serial order: block 1's schema mismatch comes before block 3's error.
    let df = df!("x" => (0..8i64).collect::<Vec<_>>()).unwrap();
    let err = Flock::new()
        .chunksize(2)
        .threads(2)
        .on(&df)
        .par_apply_blocks(|b| match b.column("x")?.i64()?.get(0) {
            Some(2) => Ok(b.select(Vec::<&str>::new())?),
            Some(6) => Err(polars_err!(ComputeError: "late failure").into()),
            _ => Ok(b),
        })
        .unwrap_err();
    assert!(
        matches!(err, Error::SchemaMismatch { block: 1, .. }),
        "{err}"
    );
}

#[test]
fn panics_are_contained_with_block_rows_and_message() {
    let df = df!("x" => (0..100i64).collect::<Vec<_>>()).unwrap();
    let before = df.clone();
    let err = Flock::new()
        .chunksize(10)
        .threads(2)
        .on(&df)
        .par_apply_rows("y", |r| {
            let x = r.i64("x")?;
            if x == 42 {
                panic!("boom at {x}");
            }
            Ok(x)
        })
        .unwrap_err();
    match &err {
        Error::Panicked {
            block,
            rows,
            row,
            message,
            during,
        } => {
            assert_eq!((*block, rows.clone(), *row), (4, 40..50, Some(42)));
            assert_eq!(*during, UserCode::Closure);
            assert_eq!(message, "boom at 42");
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(
        err.to_string(),
        "panic in block 4 (rows 40..50) at row 42: boom at 42"
    );
    assert!(df.equals(&before));

    let err = Flock::new()
        .chunksize(30)
        .on(&df)
        .par_apply_columns("y", ["x"], |x: i64| {
            assert!(x < 95, "too big");
            x
        })
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Panicked {
            block: 3,
            row: Some(95),
            ..
        }
    ));

    let err = Flock::new()
        .chunksize(50)
        .on(&df)
        .par_apply_blocks(|b| {
            if b.column("x")?.i64()?.get(0) == Some(50) {
                std::panic::panic_any(7u8);
            }
            Ok(b)
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::Panicked { block: 1, row: None, message, .. } if message == "<non-string panic payload>")
    );

    let v: Vec<u32> = (0..1_000).collect();
    let err = Flock::new()
        .chunksize(100)
        .threads(2)
        .on(&v)
        .par_apply_rows(|x| Ok(10 / x.abs_diff(500).min(1)))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Panicked {
                block: 5,
                row: Some(500),
                ..
            }
        ),
        "{err}"
    );
    let err = v
        .par_apply_blocks(|b| -> Result<Vec<u32>, BoxError> { panic!("block {}", b.len()) })
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Panicked {
            block: 0,
            row: None,
            ..
        }
    ));
}

#[test]
fn errors_convert_into_polars_errors_for_nested_use_in_blocks() {
    let df = df!("x" => [1.0, 2.0, 3.0, 4.0]).unwrap();
    let err = Flock::new()
        .chunksize(2)
        .on(&df)
        .par_apply_blocks(|b| Ok(b.par_apply_rows("y", |r| Ok(r.i64("x")?))?))
        .unwrap_err();
    assert!(matches!(err, Error::Block { block: 0, .. }));
    assert!(
        err.to_string()
            .contains("column \"x\" has dtype Float64, but was read as Int64 at row 0"),
        "{err}"
    );
}

#[test]
fn question_mark_works_on_ordinary_errors_in_row_closures() {
    let df = df!("raw" => ["1", "2", "x", "4"]).unwrap();
    // Parsing: no `map_err` needed; the original error is the source.
    let err = df
        .par_apply_rows("v", |row| Ok(row.str("raw")?.parse::<i64>()?))
        .unwrap_err();
    let Error::Row { row: 2, source } = &err else {
        panic!("{err:?}")
    };
    assert!(source.downcast_ref::<std::num::ParseIntError>().is_some());
    // Messages and boxed errors of any type.
    let err = df
        .par_apply_rows("v", |row| {
            if row.index() == 1 {
                Err(format!("bad row {}", row.index()))?;
            }
            let boxed: Result<i64, polars_flock::BoxError> = Ok(1);
            boxed
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::Row { row: 1, source } if source.to_string() == "bad row 1"),
        "{err}"
    );
    // IO in a row closure, and in a block closure (which returns `PolarsResult`).
    let err = df
        .par_apply_rows("v", |_| {
            Ok(std::fs::read_to_string("/nonexistent/polars-flock")?.len() as u64)
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::Row { row: 0, source } if source.downcast_ref::<std::io::Error>().is_some()),
        "{err}"
    );
    let err = df
        .par_apply_blocks(|block| {
            std::fs::metadata("/nonexistent/polars-flock")?;
            Ok(block)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Block { block: 0, .. }), "{err}");
}

#[test]
fn no_row_after_a_failed_one_runs_in_its_block() {
    // One block over two Arrow chunks (two segments): a failure in either segment stops the
    // block at that row, as a serial loop would.
    let mut df = df!("x" => (0..50i64).collect::<Vec<_>>()).unwrap();
    df.vstack_mut(&df!("x" => (50..100i64).collect::<Vec<_>>()).unwrap())
        .unwrap();
    for failing in [10i64, 70] {
        let calls = AtomicUsize::new(0);
        let err = Flock::new()
            .chunksize(100)
            .on(&df)
            .par_apply_rows("y", |r| {
                calls.fetch_add(1, Ordering::Relaxed);
                let x = r.i64("x")?;
                if x == failing {
                    return Err("stop".into());
                }
                Ok(x)
            })
            .unwrap_err();
        assert!(
            matches!(err, Error::Row { row, .. } if row == failing as usize),
            "{err}"
        );
        assert_eq!(calls.load(Ordering::Relaxed), failing as usize + 1);
    }
}
