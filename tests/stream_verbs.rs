//! A stream is an input like the others: every verb and mode on a stream of batches gives the
//! output (and the report) the same verb gives on the frame the batches came from, for random
//! frames, batch sizes, windows and thread counts (256 cases, as every property); progress on a Parquet stream reaches its total
//! exactly once; a failing batch under keep-going is reported with its batch and rows.
#![cfg(feature = "streaming")]

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::streaming::Stream;
use polars_flock::{Error, Flock};
use proptest::prelude::*;

/// `df` cut into batches of `batch` rows (the last shorter), as a source.
fn batches(df: &DataFrame, batch: usize) -> Vec<Result<DataFrame, BoxError>> {
    let batch = batch.max(1);
    (0..df.height().div_ceil(batch))
        .map(|b| Ok(df.slice((b * batch) as i64, batch)))
        .collect()
}

/// A stream of `df`'s batches whose outputs are collected, and the collected frames.
fn collect_into(
    out: &Mutex<Vec<DataFrame>>,
) -> impl FnMut(DataFrame) -> Result<(), BoxError> + Send + '_ {
    move |df| {
        out.lock().unwrap().push(df);
        Ok(())
    }
}

fn concat(parts: Vec<DataFrame>, like: &DataFrame) -> DataFrame {
    let mut parts = parts.into_iter();
    let Some(mut all) = parts.next() else {
        return like.clear();
    };
    for part in parts {
        all.vstack_mut_owned(part).unwrap();
    }
    all
}

fn row_out(row: &Row) -> Result<Option<f64>, BoxError> {
    Ok(row_fn(
        row.opt_f64("f")?,
        row.opt_i64("i")?,
        row.opt_str("s")?,
        row.opt_bool("b")?,
    ))
}

/// A row that fails where `i` is a multiple of 7 (and not null).
fn failing_row(row: &Row) -> Result<Option<f64>, BoxError> {
    if row.opt_i64("i")?.is_some_and(|i| i % 7 == 0) {
        return Err("seven".into());
    }
    row_out(row)
}

fn block(b: DataFrame) -> Result<DataFrame, BoxError> {
    // Depends on the block: its first half.
    Ok(b.head(Some(b.height().div_ceil(2))))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_verb_on_a_stream_equals_the_verb_on_its_frame(
        (n, seed, pieces) in (0usize..=2_000, any::<u64>(), 1usize..=3),
        batch in 1usize..=700,
        window in 1usize..=6,
        threads in 1usize..=4,
    ) {
        stream_equals_frame(n, seed, pieces, batch, window, threads)?;
    }
}

/// The edges the random cases rarely draw: no rows, one row, one batch, one thread.
#[test]
fn every_verb_on_an_empty_or_tiny_stream_equals_the_verb_on_its_frame() {
    for n in [0, 1, 2] {
        for (batch, window, threads) in [(1, 1, 1), (1, 3, 4), (700, 2, 2)] {
            stream_equals_frame(n, 7, 1, batch, window, threads).unwrap();
        }
    }
}

fn stream_equals_frame(
    n: usize,
    seed: u64,
    pieces: usize,
    batch: usize,
    window: usize,
    threads: usize,
) -> Result<(), TestCaseError> {
    let data = Data::generate(n, seed);
    let df = data.frame(pieces);
    let flock = Flock::new().threads(threads);
    // The frame verbs, one block per batch (block verbs' outputs depend on their blocks).
    let per_batch = Flock::new().threads(threads).chunksize(batch);
    let expected_rows = df.par_apply_rows("out", row_out).unwrap();

    // Rows.
    let out = Mutex::new(Vec::new());
    let stream = Stream::new(batches(&df, batch), collect_into(&out)).window(window);
    let summary = flock.on(&stream).par_apply_rows("out", row_out).unwrap();
    drop(stream);
    prop_assert_eq!(summary.rows_in, n);
    prop_assert!(summary.max_in_flight <= window);
    let got = concat(out.into_inner().unwrap(), &expected_rows);
    prop_assert!(got.equals_missing(&expected_rows));

    // Rows, per worker, init at most once per thread.
    let inits = AtomicUsize::new(0);
    let out = Mutex::new(Vec::new());
    let stream = Stream::new(batches(&df, batch), collect_into(&out)).window(window);
    let init = || {
        inits.fetch_add(1, Ordering::Relaxed);
        Ok(0usize)
    };
    flock
        .on(&stream)
        .par_apply_rows_per_worker("out", init, |seen, r| {
            *seen += 1;
            row_out(r)
        })
        .unwrap();
    drop(stream);
    prop_assert!(inits.load(Ordering::Relaxed) <= threads);
    prop_assert!(concat(out.into_inner().unwrap(), &expected_rows).equals_missing(&expected_rows));

    // The typed path, fail-fast and keep-going.
    let typed = |(f, i): (Option<f64>, Option<i64>)| -> Result<Option<f64>, BoxError> {
        if i.is_some_and(|i| i % 11 == 0) {
            return Err("eleven".into());
        }
        Ok(f.zip(i).map(|(f, i)| f * i as f64))
    };
    let (expected, expected_report) = df
        .keep_going()
        .par_apply_columns("t", ["f", "i"], typed)
        .unwrap();
    let out = Mutex::new(Vec::new());
    let stream = Stream::new(batches(&df, batch), collect_into(&out)).window(window);
    let (_, report) = flock
        .on(&stream)
        .keep_going()
        .par_apply_columns("t", ["f", "i"], typed)
        .unwrap();
    drop(stream);
    prop_assert!(concat(out.into_inner().unwrap(), &expected).equals_missing(&expected));
    prop_assert_eq!(
        report.failed_rows().collect::<Vec<_>>(),
        expected_report.failed_rows().collect::<Vec<_>>()
    );
    let plain = |(f, i): (Option<f64>, Option<i64>)| f.zip(i).map(|(f, i)| f - i as f64);
    let expected = df.par_apply_columns("t", ["f", "i"], plain).unwrap();
    let out = Mutex::new(Vec::new());
    let stream = Stream::new(batches(&df, batch), collect_into(&out)).window(window);
    flock
        .on(&stream)
        .par_apply_columns("t", ["f", "i"], plain)
        .unwrap();
    drop(stream);
    prop_assert!(concat(out.into_inner().unwrap(), &expected).equals_missing(&expected));

    // Blocks (a batch is a block) and blocks per worker.
    let expected_blocks = per_batch.on(&df).par_apply_blocks(block).unwrap();
    for per_worker in [false, true] {
        let out = Mutex::new(Vec::new());
        let stream = Stream::new(batches(&df, batch), collect_into(&out)).window(window);
        if per_worker {
            flock
                .on(&stream)
                .par_apply_blocks_per_worker(|| Ok(()), |(), b| block(b))
                .unwrap();
        } else {
            flock.on(&stream).par_apply_blocks(block).unwrap();
        }
        drop(stream);
        let got = concat(out.into_inner().unwrap(), &expected_blocks);
        prop_assert!(
            got.equals_missing(&expected_blocks),
            "per worker: {}",
            per_worker
        );
    }

    // Keep-going rows: the same nulls and the same report as on the frame.
    let (expected, expected_report) = df.keep_going().par_apply_rows("out", failing_row).unwrap();
    let out = Mutex::new(Vec::new());
    let stream = Stream::new(batches(&df, batch), collect_into(&out)).window(window);
    let (_, report) = flock
        .on(&stream)
        .keep_going()
        .par_apply_rows("out", failing_row)
        .unwrap();
    drop(stream);
    prop_assert!(concat(out.into_inner().unwrap(), &expected).equals_missing(&expected));
    prop_assert_eq!(
        report.failed_rows().collect::<Vec<_>>(),
        expected_report.failed_rows().collect::<Vec<_>>()
    );
    let errors: Vec<String> = report
        .failures
        .iter()
        .map(|f| f.error.to_string())
        .collect();
    let expected_errors: Vec<String> = expected_report
        .failures
        .iter()
        .map(|f| f.error.to_string())
        .collect();
    prop_assert_eq!(errors, expected_errors);

    // Keep-going blocks: a failing batch is left out and reported with its batch and rows.
    let failing_block = |b: DataFrame| -> Result<DataFrame, BoxError> {
        // (`get(0)` panics on an empty block; the frame has one when it has no rows.)
        if b.height() > 0 && b.column("i")?.i64()?.get(0).is_some_and(|i| i % 3 == 0) {
            return Err("bad batch".into());
        }
        block(b)
    };
    let (expected, expected_report) = per_batch
        .on(&df)
        .keep_going()
        .par_apply_blocks(failing_block)
        .unwrap();
    let out = Mutex::new(Vec::new());
    let stream = Stream::new(batches(&df, batch), collect_into(&out)).window(window);
    let (_, report) = flock
        .on(&stream)
        .keep_going()
        .par_apply_blocks(failing_block)
        .unwrap();
    drop(stream);
    prop_assert!(concat(out.into_inner().unwrap(), &expected).equals_missing(&expected));
    prop_assert_eq!(
        &report
            .failures
            .iter()
            .map(|f| f.unit.clone())
            .collect::<Vec<_>>(),
        &expected_report
            .failures
            .iter()
            .map(|f| f.unit.clone())
            .collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn fail_fast_errors_name_the_streams_row_and_batch() {
    let df = df!("x" => (0..1_000i64).collect::<Vec<_>>()).unwrap();
    let stream = Stream::new(batches(&df, 100), |_| Ok(()));
    let err = Flock::new()
        .threads(2)
        .on(&stream)
        .par_apply_rows("y", |row| {
            let x = row.i64("x")?;
            if x == 456 {
                return Err("boom".into());
            }
            Ok(x)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Row { row: 456, .. }), "{err}");

    let stream = Stream::new(batches(&df, 100), |_| Ok(()));
    let err = stream
        .par_apply_rows("y", |row| -> Result<i64, BoxError> {
            if row.i64("x")? == 321 {
                panic!("kaboom");
            }
            Ok(1)
        })
        .unwrap_err();
    let Error::Panicked {
        block, rows, row, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((*block, rows.clone(), *row), (3, 300..400, Some(321)));

    // A stream runs once.
    let err = stream.par_apply_blocks(Ok).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "stream",
                ..
            }
        ),
        "{err}"
    );
}

#[cfg(feature = "parquet")]
#[test]
fn progress_on_a_parquet_stream_reaches_its_total_exactly_once() {
    use polars_flock::parquet::{ParquetBatches, ParquetSink, read_parquet, write_parquet};
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (
        dir.path().join("in.parquet"),
        dir.path().join("out.parquet"),
    );
    let df = df!("x" => (0..50_000i64).collect::<Vec<_>>()).unwrap();
    write_parquet(&input, &df, 4_000).unwrap();
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    let flock = Flock::new()
        .threads(3)
        .on_progress(move |done, total| log.lock().unwrap().push((done, total)));
    let mut sink = ParquetSink::create(&output).unwrap().row_group_rows(5_000);
    // The total comes from the footer: no `total_rows` needed.
    let source = ParquetBatches::open(&input).unwrap();
    let stream = Stream::to_parquet(source, &mut sink).window(3);
    let summary = flock
        .on(&stream)
        .par_apply_rows("y", |r| Ok(r.i64("x")? + 1))
        .unwrap();
    drop(stream);
    sink.finish().unwrap();
    assert_eq!(summary.rows_out, 50_000);
    let seen = seen.lock().unwrap();
    assert!(seen.iter().all(|&(_, t)| t == 50_000));
    assert_eq!(
        seen.iter().filter(|&&(d, _)| d == 50_000).count(),
        1,
        "{seen:?}"
    );
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    let back = read_parquet(&output, None).unwrap();
    assert_eq!(
        back.column("y").unwrap().i64().unwrap().get(49_999),
        Some(50_000)
    );
}

/// A batch that fails to decode under keep-going is left out and reported with its batch and
/// rows; the others are written.
#[cfg(feature = "parquet")]
#[test]
fn a_batch_that_fails_under_keep_going_is_reported_with_its_batch_and_rows() {
    use polars_flock::Unit;
    use polars_flock::parquet::{ParquetBatches, write_parquet};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    let df = df!("x" => (0..1_000i64).collect::<Vec<_>>()).unwrap();
    write_parquet(&input, &df, 100).unwrap();
    let mut written = 0;
    let stream = Stream::new(ParquetBatches::open(&input).unwrap(), |out| {
        written += out.height();
        Ok(())
    });
    let (summary, report) = Flock::new()
        .threads(2)
        .on(&stream)
        .keep_going()
        .par_apply_blocks(|b| {
            if b.column("x")?.i64()?.get(0) == Some(700) {
                return Err("bad batch".into());
            }
            Ok(b)
        })
        .unwrap();
    drop(stream);
    assert_eq!(written, 900);
    assert_eq!(summary.rows_in, 1_000);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(
        report.failures[0].unit,
        Unit::Block {
            block: 7,
            rows: 700..800
        }
    );
    assert!(matches!(
        report.failures[0].error,
        Error::Block { block: 7, .. }
    ));
}

/// A stream whose sink is a writer failing mid-stream: the first failure in order, nothing
/// handed on after it, and the stream's source is not read past the window.
#[test]
fn a_failing_sink_stops_the_stream_in_order() {
    let df = df!("x" => (0..1_000i64).collect::<Vec<_>>()).unwrap();
    let mut handed = Vec::new();
    let stream = Stream::new(batches(&df, 10), |out| {
        let first = out.column("x")?.i64()?.get(0).unwrap_or(0);
        if first == 500 {
            return Err("disk full".into());
        }
        handed.push(first);
        Ok(())
    })
    .window(4);
    let err = Flock::new()
        .threads(2)
        .on(&stream)
        .par_apply_blocks(Ok)
        .unwrap_err();
    drop(stream);
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(handed, (0..50).map(|b| b * 10).collect::<Vec<_>>());
}

/// A stream stopped by its token: fail-fast returns `Cancelled` with the batches handed on;
/// keep-going returns what was handed on, with the stop in the report. Either way the outputs
/// handed on are the stream's first batches, in order.
#[test]
fn a_cancelled_stream_hands_on_a_prefix_and_reports_the_stop() {
    use polars_flock::CancelToken;
    let df = df!("x" => (0..2_000i64).collect::<Vec<_>>()).unwrap();
    for keep_going in [false, true] {
        let token = CancelToken::new();
        let flock = Flock::new().threads(2).cancel_token(&token);
        let firsts = Mutex::new(Vec::new());
        let stream = Stream::new(batches(&df, 100), |out| {
            firsts
                .lock()
                .unwrap()
                .push(out.column("x")?.i64()?.get(0).unwrap_or(-1));
            Ok(())
        })
        .window(2);
        let f = |row: &Row| {
            let x = row.i64("x")?;
            if x == 700 {
                token.cancel();
            }
            Ok(x)
        };
        let (summary, stopped) = if keep_going {
            let (summary, report) = flock
                .on(&stream)
                .keep_going()
                .par_apply_rows("y", f)
                .unwrap();
            (summary.batches, report.stopped)
        } else {
            let err = flock.on(&stream).par_apply_rows("y", f).unwrap_err();
            let Error::Cancelled {
                completed_blocks, ..
            } = err
            else {
                panic!("{err}")
            };
            (completed_blocks, Some(err))
        };
        drop(stream);
        assert!(
            matches!(stopped, Some(Error::Cancelled { .. })),
            "{stopped:?}"
        );
        let firsts = firsts.into_inner().unwrap();
        assert_eq!(firsts.len(), summary);
        assert!(summary < 20);
        assert_eq!(
            firsts,
            (0..summary as i64).map(|b| b * 100).collect::<Vec<_>>()
        );
    }
}
