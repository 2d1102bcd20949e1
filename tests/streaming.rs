//! Streaming (feature `streaming`): outputs equal a serial pass over the batches, in order, for
//! random batch sizes, windows and thread counts; the window bounds the batches in flight; errors,
//! panics and stops name the batch.
#![cfg(feature = "streaming")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use polars_flock::BoxError;
use polars_flock::polars::prelude::*;
use polars_flock::streaming::{
    IpcBatches, IpcSink, apply_batches_in_order, par_apply_batches, write_ipc,
};
use polars_flock::{CancelToken, Error, Flock};
use proptest::prelude::*;

fn batch(b: usize, rows: usize) -> PolarsResult<DataFrame> {
    let start = (b * 10_000) as i64;
    df!(
        "id" => (start..start + rows as i64).collect::<Vec<_>>(),
        "x" => (0..rows).map(|i| ((b * 31 + i * 7) % 101) as f64).collect::<Vec<_>>(),
    )
}

/// The closure under test: a new column and a filter, so outputs differ in size from inputs.
fn transform(df: DataFrame) -> Result<DataFrame, BoxError> {
    let y = (df.column("x")?.as_materialized_series() * 2.0).with_name("y".into());
    let out = df.hstack(&[y.into_column()])?;
    let keep = out.column("x")?.f64()?.gt(20.0);
    Ok(out.filter(&keep)?)
}

fn read_all(path: &std::path::Path) -> DataFrame {
    let mut out = DataFrame::empty();
    for b in IpcBatches::open(path).unwrap() {
        let b = b.unwrap();
        if out.width() == 0 {
            out = b
        } else {
            out.vstack_mut_owned(b).unwrap();
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn streamed_output_equals_a_serial_pass_in_order(
        sizes in proptest::collection::vec(0usize..700, 1..25),
        window in 1usize..=8,
        threads in 1usize..=4,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("in.arrow"), dir.path().join("out.arrow"));
        write_ipc(&input, sizes.iter().enumerate().map(|(b, &n)| batch(b, n))).unwrap();

        let in_flight = AtomicUsize::new(0);
        let max_seen = AtomicUsize::new(0);
        let mut sink = IpcSink::create(&output).unwrap();
        let summary = par_apply_batches(
            &Flock::new().threads(threads),
            window,
            IpcBatches::open(&input).unwrap(),
            |df| {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max_seen.fetch_max(now, Ordering::SeqCst);
                let out = transform(df);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                out
            },
            |out| Ok(sink.write(&out)?),
        ).unwrap();
        sink.finish().unwrap();

        let mut expected = DataFrame::empty();
        for (b, &n) in sizes.iter().enumerate() {
            let out = transform(batch(b, n).unwrap()).unwrap();
            if expected.width() == 0 { expected = out } else { expected.vstack_mut_owned(out).unwrap(); }
        }
        let got = read_all(&output);
        prop_assert!(got.equals_missing(&expected), "{got:?}\n{expected:?}");
        prop_assert_eq!(summary.batches, sizes.len());
        prop_assert_eq!(summary.rows_in, sizes.iter().sum::<usize>());
        prop_assert_eq!(summary.rows_out, expected.height());
        prop_assert!(summary.max_in_flight <= window);
        // The window bounds the closures running at once too. (Not the thread count: a closure
        // calling Polars from another pool waits in Polars' pool and may start the next batch.)
        prop_assert!(max_seen.load(Ordering::SeqCst) <= window);
    }
}

fn batches(n: usize) -> impl Iterator<Item = PolarsResult<DataFrame>> {
    (0..n).map(|b| batch(b, 100))
}

#[test]
fn the_first_failing_batch_is_reported_and_earlier_ones_are_written() {
    let mut sunk = Vec::new();
    let err = par_apply_batches(
        &Flock::new().threads(3),
        4,
        batches(30),
        |df| {
            let first = df.column("id")?.i64()?.get(0).unwrap();
            if first == 70_000 || first == 120_000 {
                return Err(polars_err!(ComputeError: "bad batch at {first}").into());
            }
            Ok(df)
        },
        |out| {
            sunk.push(out.column("id")?.i64()?.get(0).unwrap());
            Ok(())
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Block { block: 7, ref rows, .. } if *rows == (700..800)),
        "{err}"
    );
    assert_eq!(sunk, (0..7).map(|b| b * 10_000).collect::<Vec<i64>>());

    let err = par_apply_batches(
        &Flock::new(),
        2,
        batches(10),
        |df| {
            assert!(
                df.column("id")?.i64()?.get(0) != Some(30_000),
                "batch 3 panics"
            );
            Ok(df)
        },
        |_| Ok(()),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Panicked {
                block: 3,
                row: None,
                ..
            }
        ),
        "{err}"
    );

    // A source error: batches before it are still handed on.
    let source = (0..10).map(|b| {
        if b == 5 {
            Err(polars_err!(ComputeError: "disk error"))
        } else {
            batch(b, 10)
        }
    });
    let mut count = 0;
    let err = par_apply_batches(&Flock::new(), 3, source, Ok, |_| {
        count += 1;
        Ok(())
    })
    .unwrap_err();
    assert!(err.to_string().contains("disk error"), "{err}");
    assert_eq!(count, 5);

    // A sink error stops the stream.
    let err = par_apply_batches(&Flock::new(), 3, batches(10), Ok, |out| {
        if out.column("id")?.i64()?.get(0) == Some(20_000) {
            Err("sink full".into())
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert!(err.to_string().contains("sink full"), "{err}");

    let err = par_apply_batches(&Flock::new(), 0, batches(1), Ok, |_| Ok(())).unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidOption {
            option: "window",
            ..
        }
    ));
}

#[test]
fn a_cancelled_stream_counts_what_was_written() {
    let token = CancelToken::new();
    let flock = Flock::new().threads(2).cancel_token(&token);
    let mut written = 0;
    let err = par_apply_batches(&flock, 2, batches(1_000), Ok, |_| {
        written += 1;
        if written == 10 {
            token.cancel();
        }
        Ok(())
    })
    .unwrap_err();
    let Error::Cancelled {
        completed_blocks,
        completed_rows,
        blocks,
        ..
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!(completed_blocks, written);
    assert_eq!(completed_rows, written * 100);
    assert!(
        completed_blocks >= 10 && blocks <= completed_blocks + 2,
        "{completed_blocks} {blocks}"
    );
}

#[test]
fn streams_run_inside_a_one_thread_pool_without_deadlock() {
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap(),
    );
    let summary = pool
        .install(|| par_apply_batches(&Flock::new(), 4, batches(50), transform, |_| Ok(())))
        .unwrap();
    assert_eq!(summary.batches, 50);
    let summary = par_apply_batches(&Flock::new().pool(pool), 3, batches(20), transform, |_| {
        Ok(())
    })
    .unwrap();
    assert_eq!(summary.batches, 20);
}

#[test]
fn sequential_mode_carries_state_in_order() {
    let mut seen = Vec::new();
    let mut next_expected = 0i64;
    let summary = apply_batches_in_order(
        &Flock::new(),
        batches(20),
        |df| {
            let first = df.column("id")?.i64()?.get(0).unwrap();
            assert_eq!(first, next_expected);
            next_expected += 10_000;
            Ok(df.head(Some(1)))
        },
        |out| {
            seen.push(out.column("id")?.i64()?.get(0).unwrap());
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(summary.batches, 20);
    assert_eq!(summary.max_in_flight, 1);
    assert_eq!(seen, (0..20).map(|b| b * 10_000).collect::<Vec<i64>>());
}

/// The IPC sink publishes its file only at `finish`: a stream that fails, or a sink dropped
/// unfinished, leaves the path as it was (here: an earlier file, untouched) and no temporary file.
#[test]
fn an_ipc_sink_replaces_its_file_only_when_finished() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.arrow");
    write_ipc(&path, batches(2)).unwrap();
    let before = std::fs::read(&path).unwrap();
    let mut sink = IpcSink::create(&path).unwrap();
    let err = par_apply_batches(
        &Flock::new().threads(2),
        2,
        batches(10),
        |b| {
            if b.column("id")?.i64()?.get(0) == Some(5 * 10_000) {
                return Err("bad batch".into());
            }
            Ok(b)
        },
        |out| Ok(sink.write(&out)?),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Block { block: 5, .. }), "{err}");
    drop(sink);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the old file is untouched"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let mut sink = IpcSink::create(&path).unwrap();
    sink.write(&batch(0, 3).unwrap()).unwrap();
    sink.finish().unwrap();
    assert_eq!(read_all(&path).height(), 3);
}
