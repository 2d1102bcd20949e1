//! "A panic in your closure becomes an error, never a crash": user code panics in every place the
//! crate runs user code, and each time the call returns `Error::Panicked` (or contains the panic as
//! documented). Regression tests for the panics that used to escape the call.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::PanicsOnDrop;
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Error, Files, Flock, UserCode};

fn two_threads() -> Flock {
    Flock::new().threads(2).chunksize(10)
}

fn items() -> Vec<u64> {
    (0..100).collect()
}

fn frame() -> DataFrame {
    df!("x" => (0..100i64).collect::<Vec<_>>(), "k" => (0..100i64).map(|i| i % 5).collect::<Vec<_>>())
        .unwrap()
}

/// The panic of `result`, or a failure naming what came back instead.
fn panicked<T: std::fmt::Debug>(result: polars_flock::Result<T>) -> (UserCode, String, usize) {
    match result {
        Err(Error::Panicked {
            during,
            message,
            block,
            ..
        }) => (during, message, block),
        other => panic!("expected Error::Panicked, got {other:?}"),
    }
}

// --- 1. A per-worker state whose `Drop` panics ---

#[test]
fn a_state_whose_drop_panics_after_a_successful_call_is_an_error() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    ARMED.store(true, Ordering::SeqCst);
    let result = items().par_apply_rows_per_worker(|| Ok(PanicsOnDrop(&ARMED)), |_, &x| Ok(x));
    let (during, message, _) = panicked(result);
    assert_eq!(
        (during, message.as_str()),
        (UserCode::StateDrop, "drop panicked")
    );
}

#[test]
fn a_state_whose_drop_panics_after_its_closure_panicked_is_contained() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    ARMED.store(true, Ordering::SeqCst);
    let result = items().par_apply_blocks_per_worker(
        || Ok(PanicsOnDrop(&ARMED)),
        |_, block: &[u64]| {
            if block.contains(&55) {
                panic!("closure panicked");
            }
            Ok(block.to_vec())
        },
    );
    // The closure's panic is the call's error; the state's `Drop`, run when the crate discards
    // the state, panicked too (contained).
    let (during, message, _) = panicked(result);
    assert_eq!(
        (during, message.as_str()),
        (UserCode::Closure, "closure panicked")
    );
    assert!(!ARMED.load(Ordering::SeqCst), "the state was dropped");
}

#[test]
fn workers_close_idle_returns_a_states_drop_panic_and_dropping_workers_contains_it() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    let workers_flock = Flock::new().threads(1);
    let workers = Workers::new(|| Ok(PanicsOnDrop(&ARMED)));
    workers_flock
        .on(&items())
        .par_apply_rows_per_worker(&workers, |_, &x| Ok(x))
        .unwrap();
    ARMED.store(true, Ordering::SeqCst);
    let (during, ..) = panicked(workers.close_idle());
    assert_eq!(during, UserCode::StateDrop);

    workers_flock
        .on(&items())
        .par_apply_rows_per_worker(&workers, |_, &x| Ok(x))
        .unwrap();
    ARMED.store(true, Ordering::SeqCst);
    drop(workers); // contained and ignored, as documented
    assert!(!ARMED.load(Ordering::SeqCst));
}

// --- 2. The progress callback ---

#[test]
fn a_progress_callback_panicking_on_the_final_report_is_an_error() {
    // The first report is slow, so that the final one used to be deferred to the end of the call
    // and run outside any guard.
    let first = AtomicBool::new(true);
    let first = Box::leak(Box::new(first));
    let flock = two_threads().on_progress(|done, total| {
        if first.swap(false, Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
        }
        if done == total {
            panic!("last report");
        }
    });
    let result = flock
        .on(&(0..20u64).collect::<Vec<_>>())
        .par_apply_rows(|&x| Ok(x));
    let (during, message, _) = panicked(result);
    assert_eq!(
        (during, message.as_str()),
        (UserCode::Progress, "last report")
    );
}

// --- 3. Folds ---

#[test]
fn a_panicking_combine_is_an_error() {
    let result =
        (two_threads())
            .on(&items())
            .par_fold(|| 0, |a, &x| Ok(a + x), |_, _| panic!("combine"));
    let (during, message, block) = panicked(result);
    assert_eq!(
        (during, message.as_str(), block),
        (UserCode::Combine, "combine", 1)
    );

    let result = (two_threads()).on(&frame()).par_fold_rows(
        || 0i64,
        |a, row| Ok(a + row.i64("x")?),
        |_, _| panic!("combine"),
    );
    assert_eq!(panicked(result).0, UserCode::Combine);
}

#[test]
fn a_panicking_identity_on_empty_input_is_an_error() {
    let empty: Vec<u64> = Vec::new();
    let result = empty.par_fold(
        || -> u64 { panic!("identity") },
        |a, &x| Ok(a + x),
        |a, b| a + b,
    );
    let (during, message, _) = panicked(result);
    assert_eq!((during, message.as_str()), (UserCode::Identity, "identity"));

    let result = frame().clear().par_fold_rows(
        || -> i64 { panic!("identity") },
        |a, row| Ok(a + row.i64("x")?),
        |a, b| a + b,
    );
    assert_eq!(panicked(result).0, UserCode::Identity);
}

// --- 4. Streaming ---

#[cfg(feature = "streaming")]
mod streaming {
    use super::*;
    use polars_flock::streaming::{apply_batches_in_order, par_apply_batches};

    fn batches() -> impl Iterator<Item = PolarsResult<DataFrame>> {
        (0..6i64).map(|b| df!("x" => [b, b + 1]))
    }

    #[test]
    fn a_panicking_sink_is_an_error() {
        let result = par_apply_batches(&Flock::new(), 3, batches(), Ok, |_| panic!("sink"));
        let (during, message, block) = panicked(result);
        assert_eq!(
            (during, message.as_str(), block),
            (UserCode::Sink, "sink", 0)
        );

        let result = apply_batches_in_order(&Flock::new(), batches(), Ok, |_| panic!("sink"));
        assert_eq!(panicked(result).0, UserCode::Sink);
    }

    #[test]
    fn a_source_that_panics_at_batch_3_is_an_error() {
        let source = || {
            batches().enumerate().map(|(i, b)| {
                if i == 3 {
                    panic!("source");
                }
                b
            })
        };
        let mut sunk = 0;
        let result = par_apply_batches(&Flock::new(), 2, source(), Ok, |_| {
            sunk += 1;
            Ok(())
        });
        let (during, message, block) = panicked(result);
        assert_eq!(
            (during, message.as_str(), block),
            (UserCode::Source, "source", 3)
        );
        assert_eq!(
            sunk, 3,
            "every batch before the failure still reaches the sink"
        );

        let result = apply_batches_in_order(&Flock::new(), source(), Ok, |_| Ok(()));
        assert_eq!(panicked(result).0, UserCode::Source);
    }
}

// --- 5. User values the crate drops ---

/// A panic payload whose own `Drop` panics.
struct PayloadBomb;

impl Drop for PayloadBomb {
    fn drop(&mut self) {
        panic!("payload drop");
    }
}

#[test]
fn a_panic_payload_whose_drop_panics_is_contained() {
    let result = (two_threads()).on(&items()).par_apply_rows(|&x| {
        if x == 42 {
            std::panic::panic_any(PayloadBomb);
        }
        Ok(x)
    });
    let (during, message, block) = panicked(result);
    assert_eq!(
        (during, message.as_str(), block),
        (UserCode::Closure, "<non-string panic payload>", 4)
    );
}

#[test]
fn an_output_whose_drop_panics_after_a_later_row_failed_is_contained() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    // Within the failing block (rows 50..54 done) and across blocks (block 0's outputs, dropped
    // after the call failed).
    ARMED.store(true, Ordering::SeqCst);
    let result = (two_threads()).on(&items()).par_apply_rows(|&x| {
        if x == 55 {
            return Err("bad row".into());
        }
        Ok(PanicsOnDrop(&ARMED))
    });
    assert!(
        matches!(result, Err(Error::Row { row: 55, .. })),
        "{result:?}"
    );
    assert!(!ARMED.load(Ordering::SeqCst), "an output was dropped");

    ARMED.store(true, Ordering::SeqCst);
    let result = (two_threads()).on(&items()).par_apply_rows(|&x| {
        if x == 55 {
            panic!("row panicked");
        }
        Ok(PanicsOnDrop(&ARMED))
    });
    let (during, message, _) = panicked(result);
    assert_eq!(
        (during, message.as_str()),
        (UserCode::Closure, "row panicked")
    );
    assert!(!ARMED.load(Ordering::SeqCst));
}

// --- Every place user code runs ---

/// The `Error::Panicked` somewhere in `error`'s chain (groups, files and `init` wrap it).
fn find_panic(error: &Error) -> Option<UserCode> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(Error::Panicked { during, .. }) = e.downcast_ref::<Error>() {
            return Some(*during);
        }
        current = e.source();
    }
    None
}

#[test]
fn every_place_user_code_runs_turns_a_panic_into_an_error() {
    let flock = two_threads();
    let df = frame();
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..4)
        .map(|i| {
            let path = dir.path().join(format!("f{i}.txt"));
            std::fs::write(&path, "x").unwrap();
            path
        })
        .collect();
    let files = Files::new(paths);
    let boom = |x: i64| {
        if x == 37 {
            panic!("boom");
        }
    };
    let calls = AtomicUsize::new(0);
    let init_panics = || -> Result<(), BoxError> {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("boom");
        }
        Ok(())
    };

    type Case<'a> = (&'a str, Box<dyn Fn() -> Result<(), Error> + 'a>, UserCode);
    let cases: Vec<Case<'_>> = vec![
        (
            "frame rows",
            Box::new(|| {
                flock
                    .on(&df)
                    .par_apply_rows("y", |r| {
                        boom(r.i64("x")?);
                        Ok(1i64)
                    })
                    .map(drop)
            }),
            UserCode::Closure,
        ),
        (
            "frame rows, keep going (a failed row)",
            Box::new(|| {
                let (_, report) = flock.on(&df).keep_going().par_apply_rows("y", |r| {
                    boom(r.i64("x")?);
                    Ok(1i64)
                })?;
                Err(report.failures.into_iter().next().unwrap().error)
            }),
            UserCode::Closure,
        ),
        (
            "typed columns",
            Box::new(|| {
                flock
                    .on(&df)
                    .par_apply_columns("y", ["x"], |x: i64| {
                        boom(x);
                        x
                    })
                    .map(drop)
            }),
            UserCode::Closure,
        ),
        (
            "frame blocks",
            Box::new(|| {
                flock
                    .on(&df)
                    .par_apply_blocks(|b| {
                        boom(b.column("x")?.i64()?.get(0).unwrap() + 7);
                        Ok(b)
                    })
                    .map(drop)
            }),
            UserCode::Closure,
        ),
        (
            "frame rows per worker: init",
            Box::new(|| {
                df.par_apply_rows_per_worker("y", init_panics, |(), r| Ok(r.i64("x")?))
                    .map(drop)
            }),
            UserCode::Init,
        ),
        (
            "slice rows",
            Box::new(|| {
                flock
                    .on(&items())
                    .par_apply_rows(|&x| {
                        let _: () = boom(x as i64);
                        Ok(())
                    })
                    .map(drop)
            }),
            UserCode::Closure,
        ),
        (
            "slice blocks",
            Box::new(|| {
                flock
                    .on(&items())
                    .par_apply_blocks(|b| {
                        boom(b[0] as i64 + 7);
                        Ok(b.to_vec())
                    })
                    .map(drop)
            }),
            UserCode::Closure,
        ),
        (
            "slice fold",
            Box::new(|| {
                flock
                    .on(&items())
                    .par_fold(
                        || 0,
                        |a, &x| {
                            boom(x as i64);
                            Ok(a)
                        },
                        |a, b| a + b,
                    )
                    .map(drop)
            }),
            UserCode::Closure,
        ),
        (
            "groups",
            Box::new(|| {
                flock
                    .on(&df)
                    .par_apply_groups(&["k"], |g| {
                        boom(g.column("k")?.i64()?.get(0).unwrap() + 35);
                        Ok(g)
                    })
                    .map(drop)
            }),
            UserCode::Closure,
        ),
        (
            "files",
            Box::new(|| {
                flock
                    .on(&files)
                    .par_apply(|p| {
                        if p.ends_with("f2.txt") {
                            panic!("boom");
                        }
                        Ok(())
                    })
                    .map(drop)
            }),
            UserCode::Closure,
        ),
        (
            "progress callback",
            Box::new(|| {
                (flock.clone().on_progress(|_, _| panic!("boom")))
                    .on(&items())
                    .par_apply_rows(|&x| Ok(x))
                    .map(drop)
            }),
            UserCode::Progress,
        ),
    ];
    for (name, case, expected) in cases {
        calls.store(0, Ordering::SeqCst);
        let error = case().expect_err(name);
        assert_eq!(find_panic(&error), Some(expected), "{name}: {error}");
    }
}
