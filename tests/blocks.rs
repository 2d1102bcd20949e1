//! `par_apply_blocks` on DataFrames.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use polars_flock::Flock;
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;

#[test]
fn blocks_are_zero_copy_slices_in_order() {
    let df = df!("x" => (0..1_000i64).collect::<Vec<_>>()).unwrap();
    let base = df
        .column("x")
        .unwrap()
        .i64()
        .unwrap()
        .cont_slice()
        .unwrap()
        .as_ptr() as usize;
    let seen = Mutex::new(Vec::new());
    let out = Flock::new()
        .chunksize(300)
        .threads(2)
        .on(&df)
        .par_apply_blocks(|block| {
            // The block's values live in the input's buffer, at the block's offset.
            let first = block.column("x")?.i64()?.cont_slice()?.as_ptr() as usize;
            let start = block.column("x")?.i64()?.get(0).unwrap();
            assert_eq!(first, base + start as usize * 8);
            seen.lock().unwrap().push((start, block.height()));
            Ok(block)
        })
        .unwrap();
    assert!(out.equals(&df));
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    assert_eq!(seen, [(0, 300), (300, 300), (600, 300), (900, 100)]);
    assert_eq!(
        out.column("x").unwrap().n_chunks(),
        4,
        "results are not rechunked"
    );
}

#[test]
fn blocks_may_change_the_number_of_rows() {
    let df = df!("g" => (0..100i64).map(|i| i % 3).collect::<Vec<_>>()).unwrap();
    let counts = Flock::new()
        .chunksize(10)
        .on(&df)
        .par_apply_blocks(|block| {
            let zeros = block.column("g")?.i64()?.equal(0).sum().unwrap_or(0);
            Ok(df!("zeros" => [zeros])?)
        })
        .unwrap();
    assert_eq!(counts.height(), 10);
    let total: u32 = counts
        .column("zeros")
        .unwrap()
        .u32()
        .unwrap()
        .into_no_null_iter()
        .sum();
    assert_eq!(total, 34);
}

#[test]
fn empty_frame_runs_the_closure_once_for_the_schema() {
    let df = df!("x" => Vec::<f64>::new()).unwrap();
    let calls = AtomicUsize::new(0);
    let out = df
        .par_apply_blocks(|block| {
            calls.fetch_add(1, Ordering::Relaxed);
            let mut block = block;
            block.with_column(Column::new("twice".into(), Vec::<i64>::new()))?;
            Ok(block)
        })
        .unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(out.height(), 0);
    assert_eq!(out.column("twice").unwrap().dtype(), &DataType::Int64);
}

#[test]
fn multithreaded_polars_operations_inside_blocks() {
    let data = Data::generate(20_000, 3);
    let df = data.frame(3);
    let out = Flock::new()
        .chunksize(2_500)
        .on(&df)
        .par_apply_blocks(|block| {
            // sort and group-free aggregation run Polars' own parallel kernels on the same pool.
            let sorted = block.sort(["i"], SortMultipleOptions::default())?;
            let max = sorted.column("f")?.f64()?.max();
            Ok(df!("max_f" => [max])?)
        })
        .unwrap();
    assert_eq!(out.height(), 8);
    let serial: Vec<Option<f64>> = data
        .f
        .chunks(2_500)
        .map(|c| c.iter().flatten().copied().reduce(f64::max))
        .collect();
    assert_eq!(f64_values(&out, "max_f"), serial);
}

#[test]
fn input_frame_is_never_modified() {
    let df = Data::generate(1_000, 11).frame(2);
    let before = df.clone();
    let _ = Flock::new()
        .chunksize(100)
        .on(&df)
        .par_apply_blocks(|mut block| {
            block.with_column(Column::new("f".into(), vec![0.0; block.height()]))?;
            Ok(block)
        })
        .unwrap();
    assert!(df.equals_missing(&before));
}

#[test]
fn a_number_of_blocks_cuts_like_np_array_split_and_runs_each_block_once() {
    let df = df!("x" => (0..10i64).collect::<Vec<_>>()).unwrap();
    let sizes = Mutex::new(Vec::new());
    let out = Flock::new()
        .blocks(4)
        .threads(2)
        .on(&df)
        .par_apply_blocks(|block| {
            sizes
                .lock()
                .unwrap()
                .push((block.column("x")?.i64()?.get(0), block.height()));
            Ok(block)
        })
        .unwrap();
    assert!(out.equals(&df));
    let mut sizes = sizes.into_inner().unwrap();
    sizes.sort();
    // np.array_split(range(10), 4): [0, 1, 2], [3, 4, 5], [6, 7], [8, 9]
    assert_eq!(
        sizes,
        [(Some(0), 3), (Some(3), 3), (Some(6), 2), (Some(8), 2)]
    );

    // More blocks than rows: one block per row, none empty.
    let plan = Flock::new().blocks(100).plan(3).unwrap();
    assert_eq!(plan.blocks(), 3);
    // The last option set wins.
    assert_eq!(
        Flock::new()
            .blocks(2)
            .chunksize(7)
            .plan(10)
            .unwrap()
            .blocks(),
        2
    );
    assert_eq!(
        Flock::new()
            .chunksize(7)
            .blocks(5)
            .plan(10)
            .unwrap()
            .blocks(),
        5
    );
    let err = Flock::new().blocks(0).plan(10).unwrap_err();
    assert!(
        matches!(
            err,
            polars_flock::Error::InvalidOption {
                option: "blocks",
                ref value,
                ..
            } if value == "0"
        ),
        "{err}"
    );
}
