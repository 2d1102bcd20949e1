//! The promises of the composable API: `?` on any error in every closure (the original recovered by
//! downcasting), one error vocabulary in every front-end (with an error chain that reaches the
//! structured inner error), keep-going at the unit level, per-worker states under keep-going, and
//! `Workers` holding states only.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;

/// A user's own error type, unknown to the crate.
#[derive(Debug, PartialEq)]
struct Mine(u32);

impl std::fmt::Display for Mine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mine {}", self.0)
    }
}

impl std::error::Error for Mine {}

fn fail(code: u32) -> Result<(), Mine> {
    Err(Mine(code))
}

/// The first `Mine` in `error`'s source chain.
fn mine(error: &Error) -> Option<&Mine> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(m) = e.downcast_ref::<Mine>() {
            return Some(m);
        }
        current = e.source();
    }
    None
}

fn frame() -> DataFrame {
    df!("x" => (0..100i64).collect::<Vec<_>>(), "k" => (0..100i64).map(|i| i % 3).collect::<Vec<_>>())
        .unwrap()
}

#[test]
fn question_mark_works_on_any_error_in_every_closure_and_the_error_is_recovered() {
    let df = frame();
    let flock = Flock::new().chunksize(10).threads(2);
    let items: Vec<u32> = (0..100).collect();
    let files = Files::new((0..10).map(|i| format!("f{i}")));
    let cases: Vec<(&str, Error, u32)> = vec![
        (
            "row",
            flock
                .on(&df)
                .par_apply_rows("y", |row| {
                    if row.i64("x")? == 42 {
                        fail(1)?;
                    }
                    Ok(1i64)
                })
                .unwrap_err(),
            1,
        ),
        (
            "typed",
            flock
                .on(&df)
                .par_apply_columns("y", ["x"], |x: i64| {
                    if x == 42 {
                        fail(2)?;
                    }
                    Ok(x)
                })
                .unwrap_err(),
            2,
        ),
        (
            "block",
            flock
                .on(&df)
                .par_apply_blocks(|b| {
                    fail(3)?;
                    Ok(b)
                })
                .unwrap_err(),
            3,
        ),
        (
            "group",
            flock
                .on(&df)
                .par_apply_groups(&["k"], |g| {
                    fail(4)?;
                    Ok(g)
                })
                .unwrap_err(),
            4,
        ),
        (
            "file",
            flock
                .on(&files)
                .par_apply(|_| -> Result<(), BoxError> { Ok(fail(5)?) })
                .unwrap_err(),
            5,
        ),
        (
            "init",
            flock
                .on(&df)
                .par_apply_rows_per_worker(
                    "y",
                    || -> Result<(), BoxError> { Ok(fail(6)?) },
                    |_, _| Ok(1i64),
                )
                .unwrap_err(),
            6,
        ),
        (
            "item",
            flock
                .on(&items)
                .par_apply_rows(|&i| {
                    if i == 42 {
                        fail(7)?;
                    }
                    Ok(i)
                })
                .unwrap_err(),
            7,
        ),
        (
            "item block",
            flock
                .on(&items)
                .par_apply_blocks(|b| -> Result<Vec<u32>, BoxError> {
                    fail(8)?;
                    Ok(b.to_vec())
                })
                .unwrap_err(),
            8,
        ),
        (
            "fold",
            flock
                .on(&items)
                .par_fold(
                    || 0,
                    |acc, &i| {
                        if i == 42 {
                            fail(9)?;
                        }
                        Ok(acc + i)
                    },
                    |a, b| a + b,
                )
                .unwrap_err(),
            9,
        ),
        (
            "row fold",
            flock
                .on(&df)
                .par_fold_rows(
                    || 0,
                    |acc, row| {
                        if row.i64("x")? == 42 {
                            fail(10)?;
                        }
                        Ok(acc + 1)
                    },
                    |a, b| a + b,
                )
                .unwrap_err(),
            10,
        ),
    ];
    for (name, error, code) in cases {
        assert_eq!(mine(&error), Some(&Mine(code)), "{name}: {error}");
    }
}

#[test]
fn each_front_end_reports_its_context_around_the_users_error() {
    let df = frame();
    let flock = Flock::new().chunksize(10).threads(2);
    let err = flock
        .on(&df)
        .par_apply_rows("y", |row| {
            if row.index() == 42 {
                fail(1)?;
            }
            Ok(1i64)
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::Row { row: 42, source } if source.downcast_ref::<Mine>().is_some())
    );

    let err = flock
        .on(&df)
        .par_apply_blocks(|b| {
            fail(2)?;
            Ok(b)
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::Block { block: 0, rows, source } if *rows == (0..10) && source.is::<Mine>())
    );

    let err = df
        .par_apply_groups(&["k"], |g| {
            fail(3)?;
            Ok(g)
        })
        .unwrap_err();
    let Error::InGroup {
        group: 0,
        key,
        source,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(key, "k=0");
    let Error::Closure { source } = &**source else {
        panic!("{err}")
    };
    assert!(source.is::<Mine>());

    let files = Files::new(["a", "b"]);
    let err = files
        .par_apply(|p| -> Result<(), BoxError> {
            if p.ends_with("b") {
                fail(4)?;
            }
            Ok(())
        })
        .unwrap_err();
    let Error::InFile { path, source } = &err else {
        panic!("{err}")
    };
    assert!(path.ends_with("b"));
    assert!(matches!(&**source, Error::Closure { source } if source.is::<Mine>()));
}

#[test]
fn the_error_chain_of_a_group_or_file_error_reaches_the_inner_error_itself() {
    // Regression: a derived `source()` of a `Box<Error>` field yields the `Box`, so that
    // `downcast_ref::<Error>()` on it fails and chain walkers skip the structured error.
    let df = frame();
    let err = df
        .par_apply_groups(&["k"], |_| -> Result<DataFrame, BoxError> {
            panic!("boom")
        })
        .unwrap_err();
    let source = std::error::Error::source(&err).expect("a source");
    assert!(
        matches!(source.downcast_ref::<Error>(), Some(Error::Panicked { message, .. }) if message == "boom"),
        "{err}"
    );
    let files = Files::new(["a"]);
    let err = files
        .par_apply(|_| -> Result<(), BoxError> { panic!("boom") })
        .unwrap_err();
    let source = std::error::Error::source(&err).expect("a source");
    assert!(
        matches!(source.downcast_ref::<Error>(), Some(Error::Panicked { .. })),
        "{err}"
    );
}

#[test]
fn a_token_checked_inside_a_file_or_group_closure_stops_the_call_as_cancelled() {
    // Regression of the same chain: the stop inside `InFile` / `InGroup` must be recognised.
    let token = CancelToken::new();
    token.cancel();
    let flock = Flock::new().cancel_token(&token);
    let token_inside = CancelToken::new();
    let inside = token_inside.clone();
    let files = Files::new((0..20).map(|i| format!("f{i}")));
    let err = Flock::new()
        .chunksize(1)
        .threads(2)
        .cancel_token(&token_inside)
        .on(&files)
        .par_apply(|p| {
            if p.ends_with("f3") {
                inside.cancel();
            }
            inside.check()?;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");

    let df = frame();
    let err = flock.on(&df).par_apply_groups(&["k"], Ok).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Cancelled {
                completed_blocks: 0,
                ..
            }
        ),
        "{err}"
    );
    let group_token = CancelToken::new();
    let in_group = group_token.clone();
    let err = Flock::new()
        .chunksize(1)
        .cancel_token(&group_token)
        .on(&df)
        .par_apply_groups(&["k"], |g| {
            in_group.cancel();
            in_group.check()?;
            Ok(g)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
}

#[test]
fn keep_going_blocks_leave_out_failures_and_mismatches_in_input_order() {
    let df = df!("x" => (0..40i64).collect::<Vec<_>>()).unwrap();
    let flock = Flock::new().chunksize(10).threads(2);
    let (out, report) = flock
        .on(&df)
        .keep_going()
        .par_apply_blocks(|b| {
            let first = b.column("x")?.i64()?.get(0);
            match first {
                Some(10) => Err("bad block".into()),
                Some(20) => Ok(b
                    .select(["x"])?
                    .lazy()
                    .with_column(lit(1).alias("extra"))
                    .collect()?),
                Some(30) => panic!("boom"),
                _ => Ok(b),
            }
        })
        .unwrap();
    // Block 0 is kept; 1 failed, 2 has another schema, 3 panicked.
    assert_eq!(out.height(), 10);
    let units: Vec<Unit> = report.failures.iter().map(|f| f.unit.clone()).collect();
    assert_eq!(
        units,
        [
            Unit::Block {
                block: 1,
                rows: 10..20
            },
            Unit::Block {
                block: 2,
                rows: 20..30
            },
            Unit::Block {
                block: 3,
                rows: 30..40
            },
        ]
    );
    assert!(matches!(
        report.failures[0].error,
        Error::Block { block: 1, .. }
    ));
    assert!(matches!(
        report.failures[1].error,
        Error::SchemaMismatch { block: 2, .. }
    ));
    assert!(matches!(
        report.failures[2].error,
        Error::Panicked {
            block: 3,
            row: None,
            ..
        }
    ));
    assert_eq!(report.failed_rows().count(), 30);

    // Every block failed: the input's empty frame, and every block reported.
    let (out, report) = flock
        .on(&df)
        .keep_going()
        .par_apply_blocks(|_| -> Result<DataFrame, BoxError> { Err("no".into()) })
        .unwrap();
    assert_eq!((out.height(), out.width()), (0, 1));
    assert_eq!(report.failures.len(), 4);
}

#[test]
fn keep_going_per_worker_drops_a_state_whose_row_panicked() {
    let df = df!("x" => (0..40i64).collect::<Vec<_>>()).unwrap();
    let inits = AtomicUsize::new(0);
    let seen: Mutex<Vec<(usize, i64)>> = Mutex::new(Vec::new());
    let flock = Flock::new().chunksize(10).threads(1);
    let (out, report) = flock
        .on(&df)
        .keep_going()
        .par_apply_rows_per_worker(
            "y",
            || Ok(inits.fetch_add(1, Ordering::SeqCst)),
            |state, row| {
                let x = row.i64("x")?;
                seen.lock().unwrap().push((*state, x));
                if x == 15 {
                    panic!("state may be half-updated");
                }
                Ok(x)
            },
        )
        .unwrap();
    assert_eq!(out.column("y").unwrap().null_count(), 1);
    assert_eq!(report.failed_rows().collect::<Vec<_>>(), [15]);
    // One thread: state 0 until the panic in block 1, then a fresh state from block 2 on.
    assert_eq!(inits.load(Ordering::SeqCst), 2);
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.iter().all(|&(state, x)| state == usize::from(x >= 20)),
        "{seen:?}"
    );
}

#[test]
fn workers_hold_states_only_and_serve_calls_with_any_options() {
    let opened = AtomicUsize::new(0);
    let workers = Workers::new(|| {
        opened.fetch_add(1, Ordering::SeqCst);
        Ok(Vec::<u64>::new())
    });
    let items: Vec<u64> = (0..1_000).collect();
    for flock in [
        Flock::new().threads(2).chunksize(10),
        Flock::new().threads(3).blocks(7),
        Flock::new(),
    ] {
        let out = flock
            .on(&items)
            .par_apply_rows_per_worker(&workers, |scratch, &x| {
                scratch.push(x);
                Ok(x + 1)
            })
            .unwrap();
        assert_eq!(out, (1..=1_000).collect::<Vec<_>>());
    }
    // States are reused across calls and pools: never more than the largest pool.
    assert!((1..=3).contains(&opened.load(Ordering::SeqCst)));
    assert_eq!(workers.inits(), opened.load(Ordering::SeqCst));
}

#[test]
fn the_issues_examples_compile_and_run() {
    let df = df!("raw" => ["1", "22", "333"]).unwrap();
    let out = df
        .par_apply_rows("v", |row| Ok(row.str("raw")?.parse::<i64>()?))
        .unwrap();
    assert_eq!(out.column("v").unwrap().i64().unwrap().get(2), Some(333));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.txt");
    let out = df
        .par_apply_blocks(|block| {
            std::fs::write(&path, block.height().to_string())?; // `?` on a std::io::Error
            let read: u32 = std::fs::read_to_string(Path::new(&path))?.parse()?;
            Ok(df!("rows" => [read])?)
        })
        .unwrap();
    assert_eq!(out.column("rows").unwrap().u32().unwrap().get(0), Some(3));
}

#[test]
fn keep_going_groups_and_files_per_worker_drop_a_state_whose_closure_panicked() {
    // One thread, one group (or file) per block: the state that saw the panic is never reused.
    let flock = Flock::new().chunksize(1).threads(1);
    let df = df!("k" => [0i64, 1, 2, 3]).unwrap();
    let inits = AtomicUsize::new(0);
    let seen = Mutex::new(Vec::new());
    let (out, report) = flock
        .on(&df)
        .keep_going()
        .par_apply_groups_per_worker(
            &["k"],
            || Ok(inits.fetch_add(1, Ordering::SeqCst)),
            |state, g| {
                let k = g.column("k")?.i64()?.get(0).unwrap();
                seen.lock().unwrap().push((*state, k));
                if k == 1 {
                    panic!("half-updated");
                }
                Ok(g)
            },
        )
        .unwrap();
    assert_eq!(out.height(), 3);
    assert!(
        matches!(&report.failures[0].error, Error::InGroup { group: 1, source, .. } if matches!(**source, Error::Panicked { .. }))
    );
    assert_eq!(inits.load(Ordering::SeqCst), 2);
    assert_eq!(seen.into_inner().unwrap(), [(0, 0), (0, 1), (1, 2), (1, 3)]);

    let files = Files::new(["0", "1", "2", "3"]);
    let inits = AtomicUsize::new(0);
    let (out, report) = flock
        .on(&files)
        .keep_going()
        .par_apply_per_worker(
            || Ok(inits.fetch_add(1, Ordering::SeqCst)),
            |state, p| {
                if p.ends_with("1") {
                    panic!("half-updated");
                }
                Ok(*state)
            },
        )
        .unwrap();
    assert_eq!(out, [Some(0), None, Some(1), Some(1)]);
    assert_eq!(report.failures.len(), 1);
}
