//! Stress: Polars lazy queries inside block closures, nested calls under cancellation, and many
//! callers with their own timeouts and tokens at once. Each test is bounded in time.

use std::time::{Duration, Instant};

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{CancelToken, Error, Flock};

fn frame(n: i64) -> DataFrame {
    df!(
        "k" => (0..n).map(|i| i % 17).collect::<Vec<_>>(),
        "x" => (0..n).collect::<Vec<_>>(),
    )
    .unwrap()
}

#[test]
fn lazy_queries_inside_block_closures_are_correct() {
    let df = frame(200_000);
    for flock in [
        Flock::new().chunksize(10_000),
        Flock::new().chunksize(7_000).threads(2),
        Flock::new().chunksize(3_000).threads(4),
    ] {
        // Each block runs a multithreaded lazy query (group-by, sort) on its own slice.
        let out = flock
            .on(&df)
            .par_apply_blocks(|block| {
                Ok(block
                    .lazy()
                    .group_by([col("k")])
                    .agg([col("x").sum().alias("sum"), col("x").count().alias("n")])
                    .sort(["k"], SortMultipleOptions::default())
                    .collect()?)
            })
            .unwrap();
        // Summed over blocks, the partial sums equal one serial aggregate.
        let total = out
            .lazy()
            .group_by([col("k")])
            .agg([col("sum").sum(), col("n").sum()])
            .sort(["k"], SortMultipleOptions::default())
            .collect()
            .unwrap();
        let sums: Vec<i64> = total
            .column("sum")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        let expected: Vec<i64> = (0..17)
            .map(|k| (0..200_000i64).filter(|i| i % 17 == k).sum())
            .collect();
        assert_eq!(sums, expected);
    }
}

#[test]
fn nested_calls_stop_cleanly_when_the_outer_call_is_cancelled() {
    let token = CancelToken::new();
    let outer: Vec<u64> = (0..400).collect();
    let flock = Flock::new().chunksize(1).threads(2).cancel_token(&token);
    let start = Instant::now();
    let err = flock
        .on(&outer)
        .par_apply_rows(|&i| {
            if i == 40 {
                token.cancel();
            }
            // The inner call shares the token: it stops too, and its error stops the outer row.
            let inner: Vec<u64> = (0..20_000).collect();
            let sums = Flock::new()
                .chunksize(500)
                .cancel_token(&token)
                .on(&inner)
                .par_apply_blocks(|b| Ok(vec![b.iter().sum::<u64>()]))?;
            Ok(sums.iter().sum::<u64>() * i)
        })
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    let Error::Cancelled {
        completed_rows,
        rows,
        ..
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!(rows, 400);
    // Rows 0..40 were all claimed before row 40 cancelled; one of them may have been running on
    // the other thread, and its inner call was cancelled too.
    assert!((39..400).contains(&completed_rows), "{completed_rows}");
}

#[test]
fn eight_callers_with_their_own_deadlines_and_tokens() {
    let df = frame(100_000);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8i64)
            .map(|t| {
                let df = &df;
                s.spawn(move || {
                    let token = CancelToken::new();
                    let flock = match t % 4 {
                        0 => Flock::new().chunksize(5_000),
                        1 => Flock::new()
                            .chunksize(5_000)
                            .threads(2)
                            .timeout(Duration::from_secs(600)),
                        2 => Flock::new().chunksize(1_000).cancel_token(&token),
                        _ => Flock::new()
                            .chunksize(1_000)
                            .timeout(Duration::from_millis(30)),
                    };
                    if t % 4 == 2 {
                        token.cancel();
                    }
                    let result = flock.on(&df).par_apply_rows("y", |row| {
                        if t % 4 == 3 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Ok(row.i64("x")? + t)
                    });
                    match (t % 4, result) {
                        (0 | 1, Ok(out)) => {
                            let y = out.column("y").unwrap().i64().unwrap();
                            (0..100_000usize)
                                .step_by(997)
                                .all(|i| y.get(i) == Some(i as i64 + t))
                        }
                        (
                            2,
                            Err(Error::Cancelled {
                                completed_rows: 0, ..
                            }),
                        ) => true,
                        (3, Err(Error::TimedOut { completed_rows, .. })) => {
                            completed_rows < 100_000
                        }
                        (_, other) => panic!("caller {t}: {other:?}"),
                    }
                })
            })
            .collect();
        assert!(handles.into_iter().all(|h| h.join().unwrap()));
    });
}
