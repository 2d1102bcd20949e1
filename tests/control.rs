//! Timeouts, cancellation, progress reporting and the keep-going policy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{BoxError, CancelToken, Error, Flock, Row};

/// Counts closures started, and closures running right now.
#[derive(Default)]
struct Activity {
    started: AtomicUsize,
    running: AtomicUsize,
}

impl Activity {
    fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.running.fetch_add(1, Ordering::SeqCst);
        let out = f();
        self.running.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

const BLOCK_TIME: Duration = Duration::from_millis(100);

#[test]
fn a_sleeping_closure_times_out_within_one_block_of_the_deadline() {
    let timeout = Duration::from_millis(250);
    let activity = Activity::default();
    let items: Vec<u64> = (0..40).collect();
    let flock = Flock::new().chunksize(1).threads(2).timeout(timeout);
    let start = Instant::now();
    let err = flock
        .on(&items)
        .par_apply_rows(|&x| {
            activity.run(|| std::thread::sleep(BLOCK_TIME));
            Ok(x)
        })
        .unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        err.to_string().starts_with("timed out after 250ms: "),
        "{err}"
    );
    // Blocks already running when the deadline passes finish: at most one block's time more
    // (plus scheduling slack on a loaded machine; without the timeout the call takes 2 s).
    assert!(
        elapsed < timeout + BLOCK_TIME + Duration::from_millis(400),
        "{elapsed:?}"
    );
    let Error::TimedOut {
        timeout: reported,
        completed_blocks,
        blocks,
        completed_rows,
        rows,
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!((reported, blocks, rows), (timeout, 40, 40));
    assert_eq!(completed_blocks, completed_rows);
    assert!((2..=8).contains(&completed_blocks), "{completed_blocks}");
    // Every block that started completed, and nothing is still running once the call returned.
    assert_eq!(activity.started.load(Ordering::SeqCst), completed_blocks);
    assert_eq!(activity.running.load(Ordering::SeqCst), 0);
}

#[test]
fn timeouts_apply_to_frames_rows_and_blocks() {
    let df = df!("x" => (0..1_000i64).collect::<Vec<_>>()).unwrap();
    let flock = Flock::new()
        .chunksize(100)
        .threads(2)
        .timeout(Duration::from_millis(120));
    let slow_row = |row: &Row<'_>| {
        if row.index().is_multiple_of(100) {
            std::thread::sleep(BLOCK_TIME);
        }
        Ok(row.i64("x")?)
    };
    let err = flock.on(&df).par_apply_rows("y", slow_row).unwrap_err();
    assert!(
        matches!(err, Error::TimedOut { blocks: 10, rows: 1_000, completed_rows, .. } if completed_rows % 100 == 0 && completed_rows < 1_000),
        "{err}"
    );
    let err = flock
        .on(&df)
        .par_apply_blocks(|block| {
            std::thread::sleep(BLOCK_TIME);
            Ok(block)
        })
        .unwrap_err();
    assert!(matches!(err, Error::TimedOut { blocks: 10, .. }), "{err}");
}

#[test]
fn a_generous_timeout_changes_nothing() {
    let items: Vec<u64> = (0..10_000).collect();
    let flock = Flock::new().chunksize(7).timeout(Duration::from_secs(600));
    let out = flock.on(&items).par_apply_rows(|x| Ok(x * 3)).unwrap();
    assert_eq!(out, items.iter().map(|x| x * 3).collect::<Vec<_>>());
}

#[test]
fn cancelling_from_another_thread_stops_the_call_mid_run() {
    let token = CancelToken::new();
    let activity = Activity::default();
    let items: Vec<u64> = (0..2_000).collect();
    let flock = Flock::new().chunksize(1).threads(2).cancel_token(&token);
    let (result, cancelled_at) = std::thread::scope(|s| {
        let canceller = s.spawn(|| {
            while activity.started.load(Ordering::SeqCst) < 20 {
                std::thread::sleep(Duration::from_millis(1));
            }
            token.cancel();
            Instant::now()
        });
        let result = flock.on(&items).par_apply_rows(|&x| {
            activity.run(|| std::thread::sleep(Duration::from_millis(2)));
            Ok(x)
        });
        (result, canceller.join().unwrap())
    });
    let returned_after_cancel = cancelled_at.elapsed();
    let err = result.unwrap_err();
    let Error::Cancelled {
        completed_blocks,
        blocks,
        completed_rows,
        rows,
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!((blocks, rows), (2_000, 2_000));
    assert!((20..2_000).contains(&completed_rows), "{completed_rows}");
    assert_eq!(completed_blocks, completed_rows);
    assert_eq!(activity.started.load(Ordering::SeqCst), completed_blocks);
    assert_eq!(activity.running.load(Ordering::SeqCst), 0);
    assert!(returned_after_cancel < Duration::from_secs(1));
    // A token stays cancelled: the next call using it does nothing.
    let err = flock.on(&items).par_apply_rows(|&x| Ok(x)).unwrap_err();
    assert!(matches!(
        err,
        Error::Cancelled {
            completed_rows: 0,
            ..
        }
    ));
}

#[test]
fn a_long_row_that_checks_the_token_stops_early() {
    let token = CancelToken::new();
    let df = df!("n" => [1i64, 2, 3, 4]).unwrap();
    let flock = Flock::new().chunksize(1).threads(4).cancel_token(&token);
    let start = Instant::now();
    let err = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            token.cancel();
        });
        flock
            .on(&df)
            .par_apply_rows("y", |row| {
                // A row that would run for a minute, checking the token between steps.
                for _ in 0..60_000 {
                    token.check()?;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(row.i64("n")?)
            })
            .unwrap_err()
    });
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            err,
            Error::Cancelled {
                completed_rows: 0,
                rows: 4,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_real_failure_is_not_disguised_as_a_cancellation() {
    // Item 3 fails slowly; meanwhile another worker cancels. The call reports item 3's own error,
    // the one a serial loop would have met, not the cancellation.
    let token = CancelToken::new();
    let items: Vec<u64> = (0..100).collect();
    let flock = Flock::new().chunksize(1).threads(2).cancel_token(&token);
    let err = flock
        .on(&items)
        .par_apply_rows(|&x| {
            if x == 3 {
                std::thread::sleep(Duration::from_millis(100));
                return Err("bad item".into());
            }
            if x == 10 {
                token.cancel();
            }
            Ok(x)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Row { row: 3, .. }), "{err}");
}

#[test]
fn a_block_closure_that_checks_the_token_reports_the_cancellation() {
    // Block closures return `PolarsResult`: the token's error travels through it.
    let token = CancelToken::new();
    let df = df!("x" => (0..1_000i64).collect::<Vec<_>>()).unwrap();
    let flock = Flock::new().chunksize(100).threads(1).cancel_token(&token);
    let err = flock
        .on(&df)
        .par_apply_blocks(|block| {
            if block.column("x")?.i64()?.get(0) == Some(300) {
                token.cancel();
            }
            token.check()?;
            Ok(block)
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Cancelled {
                completed_blocks: 3,
                completed_rows: 300,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn progress_callback_counts_every_row_once_in_order() {
    for (threads, chunksize) in [(1, 10), (2, 1), (4, 33), (8, 1_000)] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let flock = Flock::new()
            .threads(threads)
            .chunksize(chunksize)
            .on_progress(move |done, total| log.lock().unwrap().push((done, total)));
        let items: Vec<u64> = (0..5_000).collect();
        let out = flock.on(&items).par_apply_rows(|x| Ok(x + 1)).unwrap();
        assert_eq!(out[4_999], 5_000);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.last(), Some(&(5_000, 5_000)), "{threads} {chunksize}");
        assert!(seen.iter().all(|&(_, total)| total == 5_000));
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
        // Reported per block, never per row.
        assert!(seen.len() <= 5_000_usize.div_ceil(chunksize));
    }
}

#[test]
fn progress_stops_where_a_failure_stopped_the_call() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let flock = Flock::new()
        .chunksize(10)
        .threads(1)
        .on_progress(move |done, total| log.lock().unwrap().push((done, total)));
    let items: Vec<u64> = (0..100).collect();
    let err = flock
        .on(&items)
        .par_apply_rows(|&x| if x == 55 { Err("no".into()) } else { Ok(x) })
        .unwrap_err();
    assert!(matches!(err, Error::Row { row: 55, .. }));
    assert_eq!(seen.lock().unwrap().last(), Some(&(50, 100)));
}

#[test]
fn a_nested_call_inside_the_progress_callback_cannot_deadlock() {
    let inner: Vec<u64> = (0..1_000).collect();
    let flock = Flock::new().chunksize(50).on_progress(move |_, _| {
        let sum: u64 = Flock::new()
            .chunksize(10)
            .on(&inner)
            .par_apply_blocks(|b| Ok(vec![b.iter().sum::<u64>()]))
            .unwrap()
            .iter()
            .sum();
        assert_eq!(sum, 499_500);
    });
    let df = df!("x" => (0..20_000i64).collect::<Vec<_>>()).unwrap();
    let out = flock
        .on(&df)
        .par_apply_rows("y", |row| Ok(row.i64("x")? - 1))
        .unwrap();
    assert_eq!(
        out.column("y").unwrap().i64().unwrap().get(19_999),
        Some(19_998)
    );
}

#[test]
fn a_panicking_progress_callback_is_an_error_not_a_crash() {
    let flock = Flock::new()
        .chunksize(10)
        .on_progress(|done, _| assert!(done < 30, "progress callback gave up"));
    let items: Vec<u64> = (0..100).collect();
    let err = flock.on(&items).par_apply_rows(|x| Ok(x + 1)).unwrap_err();
    assert!(
        matches!(&err, Error::Panicked { row: None, message, .. } if message.contains("gave up")),
        "{err}"
    );
}

#[cfg(feature = "progress")]
#[test]
fn progress_bar_advances_per_block_and_finishes() {
    use polars_flock::indicatif::ProgressBar;

    let bar = ProgressBar::hidden();
    let flock = Flock::new().chunksize(64).progress_bar(bar.clone());
    let df = df!("x" => (0..10_000i64).collect::<Vec<_>>()).unwrap();
    flock
        .on(&df)
        .par_apply_rows("y", |row| Ok(row.i64("x")? + 1))
        .unwrap();
    assert_eq!((bar.length(), bar.position()), (Some(10_000), 10_000));
    assert!(bar.is_finished());

    // A second call with the same bar starts it again; a failure leaves it where it stopped.
    let err = (flock.clone().threads(1))
        .on(&df)
        .par_apply_rows("y", |row| {
            let x = row.i64("x")?;
            if x == 640 {
                return Err(BoxError::from("stop here"));
            }
            Ok(x)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Row { row: 640, .. }));
    assert_eq!((bar.length(), bar.position()), (Some(10_000), 640));
}

#[test]
fn keep_going_nulls_exactly_the_failing_rows_and_reports_each() {
    let df = df!(
        "x" => (0..10_000i64).collect::<Vec<_>>(),
        "s" => (0..10_000).map(|i| if i % 1_000 == 999 { None } else { Some("v") }).collect::<Vec<_>>(),
    )
    .unwrap();
    let flock = Flock::new().chunksize(333).threads(3);
    let (out, report) = flock
        .on(&df)
        .keep_going()
        .par_apply_rows("y", |row| {
            let x = row.i64("x")?;
            let s = row.str("s")?; // null at every 1000th row: Error::NullValue
            assert!(x % 2_500 != 1, "panic at {x}");
            if x % 700 == 0 {
                return Err(BoxError::from("multiple of 700"));
            }
            Ok(format!("{s}{x}"))
        })
        .unwrap();
    let y = out.column("y").unwrap().str().unwrap();
    let mut expected_failed = Vec::new();
    for i in 0..10_000i64 {
        let fails = i % 1_000 == 999 || i % 2_500 == 1 || i % 700 == 0;
        if fails {
            expected_failed.push(i as usize);
            assert_eq!(y.get(i as usize), None);
        } else {
            assert_eq!(y.get(i as usize), Some(format!("v{i}").as_str()));
        }
    }
    assert_eq!(report.failed_rows().collect::<Vec<_>>(), expected_failed);
    assert!(report.stopped.is_none() && report.skipped.is_empty());
    assert_eq!(report.null_rows(), expected_failed.len());
    for failure in &report.failures {
        let Unit::Row(r) = failure.unit else {
            panic!("{failure:?}")
        };
        match &failure.error {
            Error::NullValue { column, row } => assert_eq!((column.as_str(), *row), ("s", r)),
            Error::Panicked { row, message, .. } => {
                assert_eq!(*row, Some(r));
                assert!(message.contains("panic at"));
            }
            Error::Row { row, .. } => assert_eq!(*row, r),
            other => panic!("{other}"),
        }
    }
}

#[test]
fn keep_going_keeps_what_finished_when_the_call_times_out() {
    let items: Vec<u64> = (0..100).collect();
    let flock = Flock::new()
        .chunksize(10)
        .threads(2)
        .timeout(Duration::from_millis(150));
    let (out, report) = flock
        .on(&items)
        .keep_going()
        .par_apply_rows(|&x| {
            if x % 10 == 0 {
                std::thread::sleep(BLOCK_TIME);
            }
            if x == 5 {
                Err("five".into())
            } else {
                Ok(x * 2)
            }
        })
        .unwrap();
    assert_eq!(out.len(), 100);
    let Some(Error::TimedOut {
        completed_rows,
        completed_blocks,
        ..
    }) = report.stopped
    else {
        panic!("{:?}", report.stopped)
    };
    assert!((20..100).contains(&completed_rows));
    assert_eq!(completed_rows, completed_blocks * 10);
    assert_eq!(report.failed_rows().collect::<Vec<_>>(), [5]);
    let skipped: usize = report.skipped.iter().map(|r| r.len()).sum();
    assert_eq!(skipped, 100 - completed_rows);
    assert_eq!(report.null_rows(), skipped + 1);
    for (i, value) in out.iter().enumerate() {
        let in_skipped = report.skipped.iter().any(|r| r.contains(&i));
        let expected = (!in_skipped && i != 5).then_some(i as u64 * 2);
        assert_eq!(*value, expected, "item {i}");
    }
}

#[test]
fn keep_going_frame_output_keeps_its_dtype_when_rows_are_skipped() {
    let token = CancelToken::new();
    let df = df!("x" => (0..1_000i64).collect::<Vec<_>>()).unwrap();
    let flock = Flock::new().chunksize(100).threads(1).cancel_token(&token);
    let (out, report) = flock
        .on(&df)
        .keep_going()
        .par_apply_rows("y", |row| {
            let x = row.i64("x")?;
            if x == 450 {
                token.cancel();
            }
            Ok(x as f64 / 2.0)
        })
        .unwrap();
    let y = out.column("y").unwrap();
    assert_eq!(y.dtype(), &DataType::Float64);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0], 500..1_000);
    assert!(matches!(
        report.stopped,
        Some(Error::Cancelled {
            completed_rows: 500,
            completed_blocks: 5,
            ..
        })
    ));
    assert_eq!(y.null_count(), 500);
    assert_eq!(y.f64().unwrap().get(499), Some(249.5));
    assert!(!report.is_complete());
}

#[test]
fn keep_going_without_failures_equals_the_plain_call() {
    let df = df!("x" => (0..5_000i64).collect::<Vec<_>>()).unwrap();
    let f = |row: &Row<'_>| Ok(row.i64("x")? * 3);
    let plain = df.par_apply_rows("y", f).unwrap();
    let (kept, report) = df.keep_going().par_apply_rows("y", f).unwrap();
    assert!(report.is_complete());
    assert!(plain.equals_missing(&kept));
    // The keep-going form still rejects what fails the call as a whole.
    assert!(matches!(
        df.keep_going().par_apply_rows("x", f),
        Err(Error::DuplicateColumn { .. })
    ));
    assert!(matches!(
        Flock::new()
            .chunksize(0)
            .on(&df)
            .keep_going()
            .par_apply_rows("y", f),
        Err(Error::InvalidOption { .. })
    ));
}

/// A row that runs a nested call with a timeout of its own and returns that call's `TimedOut`
/// through `?` fails that row; the outer call (no deadline, no token) did not stop.
#[test]
fn a_nested_calls_timeout_is_an_error_of_the_row_not_the_calls_stop() {
    let items: Vec<u64> = (0..8).collect();
    let inner: Vec<u64> = (0..4).collect();
    let nested = |&x: &u64| -> Result<u64, BoxError> {
        if x == 5 {
            let slow = Flock::new()
                .chunksize(1)
                .threads(1)
                .timeout(Duration::from_millis(1));
            slow.on(&inner).par_apply_rows(|&y| {
                std::thread::sleep(Duration::from_millis(5));
                Ok(y)
            })?;
        }
        Ok(x)
    };
    let flock = Flock::new().chunksize(1).threads(2);
    let err = flock.on(&items).par_apply_rows(nested).unwrap_err();
    let Error::Row { row, source } = &err else {
        panic!("expected the row's error, got {err:?}")
    };
    assert_eq!(*row, 5);
    assert!(
        matches!(
            source.downcast_ref::<Error>(),
            Some(Error::TimedOut { blocks: 4, .. })
        ),
        "{source:?}"
    );

    // Keep-going: the row fails (null, in the report); nothing is reported as stopped.
    let (out, report) = flock
        .on(&items)
        .keep_going()
        .par_apply_rows(nested)
        .unwrap();
    assert_eq!(out[5], None);
    assert_eq!(out.iter().flatten().count(), 7);
    assert!(report.stopped.is_none(), "{:?}", report.stopped);
    assert!(report.skipped.is_empty());
    assert_eq!(report.failed_rows().collect::<Vec<_>>(), [5]);

    // The frame's row view and its blocks too.
    let df = df!("x" => (0..8i64).collect::<Vec<_>>()).unwrap();
    let err = flock
        .on(&df)
        .par_apply_rows("y", |row: &Row| {
            let x = row.i64("x")? as u64;
            Ok(nested(&x)? as i64)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Row { row: 5, .. }), "{err:?}");
    let err = flock
        .on(&df)
        .par_apply_blocks(|block| {
            for x in block.column("x")?.i64()?.into_no_null_iter() {
                nested(&(x as u64))?;
            }
            Ok(block)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Block { block: 5, .. }), "{err:?}");
}

/// A nested call's cancellation through a token of its own is the row's error too; the call's
/// own token still stops the call.
#[test]
fn only_the_calls_own_token_stops_it() {
    let items: Vec<u64> = (0..6).collect();
    let other = CancelToken::new();
    other.cancel();
    let flock = Flock::new().chunksize(1).threads(2);
    let err = flock
        .on(&items)
        .par_apply_rows(|&x| {
            if x == 3 {
                other.check()?;
            }
            Ok(x)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Row { row: 3, .. }), "{err:?}");

    let own = CancelToken::new();
    let err = flock
        .clone()
        .cancel_token(&own)
        .on(&items)
        .par_apply_rows(|&x| {
            if x == 3 {
                own.cancel();
                own.check()?;
            }
            Ok(x)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err:?}");
}
