//! Edges where a promise used to break: deadlines and chunk sizes at the limits of their types,
//! errors from nested calls, symlinked files, keep-going calls that stop themselves, and progress
//! callbacks that panic or block.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{CancelToken, Error, Files, Flock, UserCode};

// --- 13. A deadline beyond the clock is no deadline ---

#[test]
fn a_timeout_beyond_the_clock_is_no_deadline() {
    for timeout in [Duration::MAX, Duration::from_secs(u64::MAX)] {
        let flock = Flock::new().chunksize(10).threads(2).timeout(timeout);
        let items: Vec<u64> = (0..100).collect();
        assert_eq!(
            flock.on(&items).par_apply_rows(|x| Ok(x + 1)).unwrap()[99],
            100
        );
        let df = df!("x" => (0..100i64).collect::<Vec<_>>()).unwrap();
        let out = flock
            .on(&df)
            .par_apply_rows("y", |row| Ok(row.i64("x")?))
            .unwrap();
        assert_eq!(out.height(), 100);
        #[cfg(feature = "streaming")]
        {
            let batches = (0..3i64).map(|b| df!("x" => [b]));
            let summary =
                polars_flock::streaming::par_apply_batches(&flock, 2, batches, Ok, |_| Ok(()))
                    .unwrap();
            assert_eq!(summary.batches, 3);
            let batches = (0..3i64).map(|b| df!("x" => [b]));
            let summary =
                polars_flock::streaming::apply_batches_in_order(&flock, batches, Ok, |_| Ok(()))
                    .unwrap();
            assert_eq!(summary.batches, 3);
        }
    }
}

// --- 14. Planning never overflows ---

#[test]
fn huge_chunk_sizes_plan_exact_ranges() {
    let cs = usize::MAX / 2 + 2;
    let plan = Flock::new().chunksize(cs).plan(usize::MAX).unwrap();
    assert_eq!(plan.blocks(), 2);
    assert_eq!(plan.block_rows(0), 0..cs);
    assert_eq!(plan.block_rows(1), cs..usize::MAX);

    // A `Vec` of `usize::MAX` zero-sized items (the case that overflowed), in two blocks.
    #[allow(clippy::useless_vec)]
    let units = vec![(); usize::MAX];
    let lens = Flock::new()
        .chunksize(cs)
        .threads(2)
        .on(&units)
        .par_apply_blocks(|b| Ok(vec![b.len()]))
        .unwrap();
    assert_eq!(lens, [cs, usize::MAX - cs]);
}

#[test]
fn an_absurd_thread_count_is_an_invalid_option() {
    let err = Flock::new().threads(usize::MAX).plan(1_000).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "threads",
                ref value,
                ..
            } if *value == usize::MAX.to_string()
        ),
        "{err}"
    );
    let err = Flock::new()
        .threads(usize::MAX)
        .on(&[1, 2, 3])
        .par_apply_rows(|x| Ok(x + 1))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err}");
}

// --- 15. A nested call's error is reported at the outer row ---

#[test]
fn a_nested_calls_getter_error_is_reported_at_the_outer_row() {
    let outer = df!("x" => (0..1_000i64).collect::<Vec<_>>()).unwrap();
    let inner = df!("y" => [1i64, 2, 3]).unwrap();
    let err = Flock::new()
        .chunksize(100)
        .on(&outer)
        .par_apply_rows("z", |row| {
            let x = row.i64("x")?;
            if x == 700 {
                // A typo in the inner call: its getter fails at the inner frame's row 0.
                inner.par_apply_rows("w", |r| Ok(r.i64("nope")?))?;
            }
            Ok(x)
        })
        .unwrap_err();
    let Error::Row { row: 700, source } = &err else {
        panic!("expected the outer row 700, got {err:?}")
    };
    let inner_error = source.downcast_ref::<Error>().expect("the inner error");
    assert!(
        matches!(inner_error, Error::ColumnNotFound { row: Some(0), column } if column == "nope"),
        "{inner_error:?}"
    );
    // The outer call's own getter errors still name their row directly.
    let err = Flock::new()
        .chunksize(100)
        .on(&outer)
        .par_apply_rows("z", |row| {
            if row.index() == 700 {
                return Ok(row.i64("missing")?);
            }
            Ok(0)
        })
        .unwrap_err();
    assert!(
        matches!(err, Error::ColumnNotFound { row: Some(700), .. }),
        "{err}"
    );
}

// --- 17. `Files::in_dir` and `Files::glob` list the same files ---

#[cfg(unix)]
#[test]
fn in_dir_and_glob_list_the_same_files_through_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "x\n1\n").unwrap();
    std::fs::write(elsewhere.path().join("real.csv"), "x\n2\n").unwrap();
    std::os::unix::fs::symlink(elsewhere.path().join("real.csv"), dir.path().join("b.csv"))
        .unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone.csv"), dir.path().join("c.csv")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("d.csv")).unwrap();
    let listed = Files::in_dir(dir.path(), Some("csv")).unwrap();
    let globbed = Files::glob(&format!("{}/*.csv", dir.path().display())).unwrap();
    assert_eq!(listed.paths(), globbed.paths());
    assert_eq!(
        listed.paths(),
        [dir.path().join("a.csv"), dir.path().join("b.csv")]
    );
}

// --- 18. Keep-going rows that stop themselves are skipped, not failed ---

#[test]
fn keep_going_rows_that_stop_themselves_are_skipped_and_counted_as_such() {
    let token = CancelToken::new();
    let flock = Flock::new().chunksize(10).threads(2).cancel_token(&token);
    let items: Vec<u64> = (0..100).collect();
    let failed = AtomicBool::new(false);
    let (out, report) = flock
        .on(&items)
        .keep_going()
        .par_apply_rows(|&x| {
            if x == 3 {
                failed.store(true, Ordering::SeqCst);
                return Err(BoxError::from("a real failure"));
            }
            if x == 55 {
                // Cancel once row 3 has failed, whichever thread runs which block first.
                let start = std::time::Instant::now();
                while !failed.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(5) {
                    std::thread::yield_now();
                }
                token.cancel();
            }
            token.check()?;
            Ok(x)
        })
        .unwrap();
    // Only the real failure is a failure.
    assert_eq!(report.failed_rows().collect::<Vec<_>>(), [3]);
    let Some(Error::Cancelled {
        completed_rows,
        rows,
        completed_blocks,
        blocks,
    }) = report.stopped
    else {
        panic!("{:?}", report.stopped)
    };
    assert_eq!((rows, blocks), (100, 10));
    let skipped: usize = report.skipped.iter().map(|r| r.len()).sum();
    // The counts agree: every row is completed (value or failure) or skipped (null).
    assert_eq!(completed_rows + skipped, 100);
    assert!(report.skipped.iter().any(|r| r.contains(&55)));
    let completed = out.iter().filter(|v| v.is_some()).count() + report.failures.len();
    assert_eq!(completed, completed_rows);
    assert_eq!(
        report.null_rows(),
        100 - out.iter().filter(|v| v.is_some()).count()
    );
    assert!(completed_blocks <= blocks);

    // The same through the frame path.
    let token = CancelToken::new();
    let flock = Flock::new().chunksize(10).threads(2).cancel_token(&token);
    let df = df!("x" => (0..100i64).collect::<Vec<_>>()).unwrap();
    let (out, report) = flock
        .on(&df)
        .keep_going()
        .par_apply_rows("y", |row| {
            let x = row.i64("x")?;
            if x == 55 {
                token.cancel();
            }
            token.check()?;
            Ok(x)
        })
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let Some(Error::Cancelled { completed_rows, .. }) = report.stopped else {
        panic!("{:?}", report.stopped)
    };
    let values =
        out.column("y").unwrap().i64().unwrap().len() - out.column("y").unwrap().null_count();
    assert_eq!(values, completed_rows);
}

// --- 19. A panicking progress callback fails a keep-going call, as documented ---

#[test]
fn a_panicking_progress_callback_fails_a_keep_going_call() {
    let flock = Flock::new()
        .chunksize(10)
        .threads(2)
        .on_progress(|_, _| panic!("progress"));
    let items: Vec<u64> = (0..100).collect();
    let err = flock
        .on(&items)
        .keep_going()
        .par_apply_rows(|&x| Ok(x))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Panicked { during: UserCode::Progress, message, .. } if message == "progress"),
        "{err}"
    );
}

#[test]
fn a_panicking_progress_callback_stops_the_call() {
    // Blocks of 10 ms on one worker; the callback panics at its first report. Without the stop,
    // all 100 blocks would run; with it, those that start while the panic is raised (the panic
    // hook prints a backtrace first) still run, and then no more.
    let started = AtomicUsize::new(0);
    let flock = Flock::new()
        .threads(1)
        .chunksize(1)
        .on_progress(|_, _| panic!("progress"));
    let items: Vec<u64> = (0..100).collect();
    let err = flock
        .on(&items)
        .par_apply_rows(|&x| {
            started.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
            Ok(x)
        })
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Panicked {
                during: UserCode::Progress,
                ..
            }
        ),
        "{err}"
    );
    let started = started.into_inner();
    assert!(started < 50, "{started} blocks started");
}

// --- 20. A slow progress callback never keeps a worker from its next block ---

#[test]
fn a_blocked_progress_callback_never_keeps_a_worker_from_its_next_block() {
    // One worker: if it ran the callback, the callback would wait for blocks that can never run.
    let all_ran = Arc::new((Mutex::new(false), Condvar::new()));
    let seen = Arc::clone(&all_ran);
    let waited_out = Arc::new(AtomicBool::new(false));
    let timed_out = Arc::clone(&waited_out);
    let flock = Flock::new()
        .threads(1)
        .chunksize(10)
        .on_progress(move |_, _| {
            let (lock, cvar) = &*seen;
            let (ran, wait) = cvar
                .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(5), |ran| !*ran)
                .unwrap();
            if !*ran && wait.timed_out() {
                timed_out.store(true, Ordering::SeqCst);
            }
        });
    let done = AtomicUsize::new(0);
    let items: Vec<u64> = (0..100).collect();
    let out = flock
        .on(&items)
        .par_apply_rows(|&x| {
            if done.fetch_add(1, Ordering::SeqCst) == 99 {
                let (lock, cvar) = &*all_ran;
                *lock.lock().unwrap() = true;
                cvar.notify_all();
            }
            Ok(x)
        })
        .unwrap();
    assert_eq!(out.len(), 100);
    assert!(
        !waited_out.load(Ordering::SeqCst),
        "the blocks waited for the progress callback"
    );
}
