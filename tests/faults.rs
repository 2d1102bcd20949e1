//! The fault catalogue: every bad input gets its documented error (or, for empty input, its
//! documented empty result), on the frame and on the slice API. Run with `--nocapture` to see what
//! a caller gets back for each.

use std::fmt::{Debug, Display};

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Error, Flock};

fn frame() -> DataFrame {
    df!(
        "x" => (0..1_000).map(f64::from).collect::<Vec<_>>(),
        "n" => (0..1_000).map(|i| (i % 10 != 7).then_some(i as i64)).collect::<Vec<_>>(),
    )
    .unwrap()
}

fn show<T: Debug, E: Debug + Display>(fault: &str, result: &Result<T, E>) {
    match result {
        Ok(value) => println!("{fault:<40} -> Ok({value:?})"),
        Err(error) => println!("{fault:<40} -> Error::{error:?}\n{:<44}\"{error}\"", ""),
    }
}

#[test]
fn every_bad_input_gets_its_documented_error() {
    let df = frame();
    let items: Vec<u64> = (0..1_000).collect();
    let flock = Flock::new().chunksize(100).threads(2);

    let r = Flock::new()
        .chunksize(0)
        .on(&df)
        .par_apply_rows("y", |row| Ok(row.f64("x")?));
    show("chunksize 0", &r);
    assert!(matches!(
        r,
        Err(Error::InvalidOption {
            option: "chunksize",
            ref value,
            ..
        }) if value == "0"
    ));
    let r = Flock::new()
        .threads(0)
        .on(&items)
        .par_apply_rows(|x| Ok(*x));
    show("threads 0", &r);
    assert!(matches!(
        r,
        Err(Error::InvalidOption {
            option: "threads",
            ref value,
            ..
        }) if value == "0"
    ));

    // Empty input is not an error: the output is empty, with the dtype/schema the closure gives.
    let empty = df.head(Some(0));
    let r = flock
        .on(&empty)
        .par_apply_rows("y", |row| Ok(row.f64("x")? * 2.0));
    show("empty frame (rows)", &r.as_ref().map(|d| d.shape()));
    let out = r.unwrap();
    assert_eq!(
        (out.height(), out.column("y").unwrap().dtype()),
        (0, &DataType::Float64)
    );
    let r = flock.on(&empty).par_apply_blocks(|b| Ok(b.select(["x"])?));
    show("empty frame (blocks)", &r.as_ref().map(|d| d.shape()));
    assert_eq!(r.unwrap().get_column_names(), ["x"]);
    let r = flock.on(&Vec::<u64>::new()).par_apply_rows(|x| Ok(*x));
    show("empty Vec", &r);
    assert_eq!(r.unwrap(), Vec::<u64>::new());

    // A frame with no columns still has a height: rows run, and reading a column is an error.
    let no_columns = DataFrame::empty_with_height(5);
    let r = flock
        .on(&no_columns)
        .par_apply_rows("i", |row| Ok(row.index() as u64));
    show("zero-column frame, no read", &r.as_ref().map(|d| d.shape()));
    assert_eq!(
        r.unwrap().column("i").unwrap().u64().unwrap().get(4),
        Some(4)
    );
    let r = flock
        .on(&no_columns)
        .par_apply_rows("y", |row| Ok(row.f64("x")?));
    show("zero-column frame, reading \"x\"", &r);
    assert!(matches!(r, Err(Error::ColumnNotFound { ref column, row: Some(0) }) if column == "x"));

    let r = flock
        .on(&df)
        .par_apply_rows("y", |row| Ok(row.f64("nope")?));
    show("missing column (row view)", &r);
    assert!(matches!(r, Err(Error::ColumnNotFound { row: Some(0), .. })));
    let r = flock.on(&df).par_apply_columns("y", ["nope"], |x: f64| x);
    show("missing column (typed, before any work)", &r);
    assert!(matches!(r, Err(Error::ColumnNotFound { row: None, .. })));

    let r = flock.on(&df).par_apply_rows("y", |row| Ok(row.i64("x")?));
    show("wrong dtype (row view)", &r);
    assert!(matches!(r, Err(Error::DtypeMismatch { row: Some(0), .. })));
    let r = flock.on(&df).par_apply_columns("y", ["x"], |x: i64| x);
    show("wrong dtype (typed, before any work)", &r);
    assert!(matches!(r, Err(Error::DtypeMismatch { row: None, .. })));

    let r = flock.on(&df).par_apply_rows("y", |row| Ok(row.i64("n")?));
    show("null through a non-Option getter", &r);
    assert!(matches!(r, Err(Error::NullValue { row: 7, .. })));
    let r = flock.on(&df).par_apply_columns("y", ["n"], |n: i64| n);
    show("null column read as non-Option (typed)", &r);
    assert!(matches!(r, Err(Error::NullValue { row: 7, .. })));

    let r = flock.on(&df).par_apply_rows("x", |row| Ok(row.f64("x")?));
    show("output column already exists", &r);
    assert!(matches!(r, Err(Error::DuplicateColumn { .. })));

    let r = flock.on(&df).par_apply_blocks(|b| {
        if b.column("x")?.f64()?.get(0) == Some(300.0) {
            Ok(b.select(["n"])?)
        } else {
            Ok(b.select(["x"])?)
        }
    });
    show("block schema mismatch", &r);
    assert!(matches!(
        r,
        Err(Error::SchemaMismatch {
            block: 3,
            rows: std::ops::Range {
                start: 300,
                end: 400
            },
            ..
        })
    ));

    let r = flock.on(&df).par_apply_rows("y", |row| {
        let x = row.f64("x")?;
        assert!(x != 123.0, "bad row {x}");
        Ok(x)
    });
    show("panicking row closure", &r);
    assert!(matches!(
        r,
        Err(Error::Panicked {
            block: 1,
            row: Some(123),
            ..
        })
    ));
    let r = flock
        .on(&items)
        .par_apply_blocks(|b| -> Result<Vec<u64>, BoxError> { panic!("block of {}", b.len()) });
    show("panicking block closure", &r);
    assert!(matches!(
        r,
        Err(Error::Panicked {
            block: 0,
            row: None,
            ..
        })
    ));

    let r = flock.on(&df).par_apply_rows_per_worker(
        "y",
        || Ok(std::fs::File::open("/no/such/file")?),
        |_file, row| Ok(row.f64("x")?),
    );
    show("failing init", &r);
    assert!(matches!(r, Err(Error::Init { block: 0, .. })));
    let r = items.par_apply_rows_per_worker(
        || -> Result<u64, BoxError> { panic!("init panicked") },
        |_, x| Ok(*x),
    );
    show("panicking init", &r);
    assert!(
        matches!(r, Err(Error::Init { ref source, .. }) if matches!(source.downcast_ref::<Error>(), Some(Error::Panicked { message, during: polars_flock::UserCode::Init, .. }) if message == "init panicked"))
    );

    let r = flock.on(&items).par_apply_rows(|x| {
        if *x == 500 {
            Err("five hundred".into())
        } else {
            Ok(*x)
        }
    });
    show("closure error", &r.as_ref().map(Vec::len));
    assert!(matches!(r, Err(Error::Row { row: 500, .. })));
}
