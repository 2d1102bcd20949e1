//! Per-worker state: how often `init` runs, reuse across calls, tuples of resources, failing and
//! panicking `init`, and re-entrancy.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Error, Flock};

/// A stand-in for a connection: it knows its id, and counts its uses.
#[derive(Debug)]
struct Conn {
    id: usize,
    used: usize,
}

fn opener(count: &AtomicUsize) -> impl Fn() -> Result<Conn, BoxError> + Sync + '_ {
    move || {
        let id = count.fetch_add(1, Ordering::Relaxed);
        Ok(Conn { id, used: 0 })
    }
}

#[test]
fn call_scoped_init_runs_at_most_once_per_thread_with_work() {
    let df = df!("x" => (0..100_000i64).collect::<Vec<_>>()).unwrap();
    let threads = Flock::new().plan(1).unwrap().threads();
    let inits = AtomicUsize::new(0);
    let out = df
        .par_apply_rows_per_worker("y", opener(&inits), |conn, row| {
            conn.used += 1;
            Ok(row.i64("x")? + 1)
        })
        .unwrap();
    assert_eq!(
        out.column("y").unwrap().i64().unwrap().get(99_999),
        Some(100_000)
    );
    let n = inits.load(Ordering::Relaxed);
    assert!((1..=threads).contains(&n), "{n} inits on {threads} threads");

    // An input small enough to run inline opens exactly one; an empty one opens none.
    inits.store(0, Ordering::Relaxed);
    df.head(Some(10))
        .par_apply_rows_per_worker("y", opener(&inits), |_, row| Ok(row.i64("x")?))
        .unwrap();
    assert_eq!(inits.load(Ordering::Relaxed), 1);
    inits.store(0, Ordering::Relaxed);
    df.head(Some(0))
        .par_apply_rows_per_worker("y", opener(&inits), |_, row| Ok(row.i64("x")?))
        .unwrap();
    Vec::<u8>::new()
        .par_apply_rows_per_worker(opener(&inits), |_, x| Ok(*x))
        .unwrap();
    assert_eq!(inits.load(Ordering::Relaxed), 0);
}

#[test]
fn init_count_is_bounded_by_threads_for_every_form() {
    let items: Vec<u64> = (0..50_000).collect();
    let df = df!("x" => items.iter().map(|&x| x as i64).collect::<Vec<_>>()).unwrap();
    for threads in [1, 2, 3, 8] {
        let flock = Flock::new().threads(threads).chunksize(100);
        let count = AtomicUsize::new(0);
        let workers_flock = flock.clone();
        let workers = Workers::new(opener(&count));
        workers_flock
            .on(&items)
            .par_apply_rows_per_worker(&workers, |c, x| {
                c.used += 1;
                Ok(*x)
            })
            .unwrap();
        workers_flock
            .on(&items)
            .par_apply_blocks_per_worker(&workers, |c, b| {
                c.used += 1;
                Ok(b.to_vec())
            })
            .unwrap();
        workers_flock
            .on(&df)
            .par_apply_rows_per_worker("y", &workers, |c, r| {
                c.used += 1;
                Ok(r.i64("x")?)
            })
            .unwrap();
        workers_flock
            .on(&df)
            .par_apply_blocks_per_worker(&workers, |c, b| {
                c.used += 1;
                Ok(b)
            })
            .unwrap();
        // Four calls of 500 blocks each: states are reused, never more than one per thread.
        let n = count.load(Ordering::Relaxed);
        assert!((1..=threads).contains(&n), "{n} inits on {threads} threads");
        assert_eq!(workers.inits(), n);
        assert_eq!(workers.idle_states(), n);
    }
}

#[test]
fn states_are_reused_across_calls_and_dropped_with_the_runner() {
    struct Tracked(Arc<AtomicUsize>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&dropped);
    let workers_flock = Flock::new().threads(2).chunksize(10);
    let workers = Workers::new(move || Ok(Tracked(Arc::clone(&d))));
    let items: Vec<u32> = (0..1_000).collect();
    for _ in 0..5 {
        workers_flock
            .on(&items)
            .par_apply_rows_per_worker(&workers, |_, x| Ok(*x))
            .unwrap();
    }
    let opened = workers.inits();
    assert!((1..=2).contains(&opened));
    assert_eq!(
        dropped.load(Ordering::Relaxed),
        0,
        "idle states stay open between calls"
    );
    drop(workers);
    assert_eq!(
        dropped.load(Ordering::Relaxed),
        opened,
        "dropping the runner closes every state"
    );
}

#[test]
fn each_state_serves_one_block_at_a_time_and_all_its_blocks() {
    // Each block records the state it ran with; a state in use by two blocks at once would show
    // up as overlapping "in use" flags.
    let in_use: Mutex<HashSet<usize>> = Mutex::new(HashSet::new());
    let ids = AtomicUsize::new(0);
    let items: Vec<u32> = (0..20_000).collect();
    let workers = Workers::new(opener(&ids));
    let used = Flock::new()
        .threads(4)
        .chunksize(50)
        .on(&items)
        .par_apply_blocks_per_worker(&workers, |conn, block| {
            assert!(
                in_use.lock().unwrap().insert(conn.id),
                "state {} used twice at once",
                conn.id
            );
            std::thread::yield_now();
            conn.used += 1;
            in_use.lock().unwrap().remove(&conn.id);
            Ok(vec![block.len()])
        })
        .unwrap();
    assert_eq!(used.iter().sum::<usize>(), 20_000);
}

#[test]
fn several_resources_as_one_tuple_state() {
    let reads = AtomicUsize::new(0);
    let writes = AtomicUsize::new(0);
    let df = df!("k" => (0..5_000i64).collect::<Vec<_>>()).unwrap();
    let init = || Ok((opener(&reads)()?, opener(&writes)()?));
    let out = df
        .par_apply_rows_per_worker("k2", init, |(read, write), row| {
            read.used += 1;
            write.used += 1;
            Ok(row.i64("k")? * 2)
        })
        .unwrap();
    assert_eq!(
        out.column("k2").unwrap().i64().unwrap().get(4_999),
        Some(9_998)
    );
    assert_eq!(
        reads.load(Ordering::Relaxed),
        writes.load(Ordering::Relaxed)
    );
}

#[test]
fn failing_init_names_worker_block_and_completed_blocks() {
    // The first init succeeds; every later one fails. With one thread, blocks run in order on one
    // state, so nothing fails; with a fresh runner whose init always fails, block 0 fails at once.
    let items: Vec<u32> = (0..100).collect();
    let err = Flock::new()
        .chunksize(10)
        .on(&items)
        .par_apply_rows_per_worker(
            &Workers::new(|| Err::<(), _>("cannot connect".into())),
            |(), x| Ok(*x),
        )
        .unwrap_err();
    match &err {
        Error::Init {
            block,
            rows,
            completed_blocks,
            source,
            ..
        } => {
            assert_eq!((*block, rows.clone()), (0, 0..10));
            assert!(completed_blocks.is_empty());
            assert_eq!(source.to_string(), "cannot connect");
        }
        other => panic!("unexpected {other}"),
    }

    // Two threads; the second worker's init fails after the first worker finished some blocks.
    let opened = AtomicUsize::new(0);
    let init = || {
        if opened.fetch_add(1, Ordering::SeqCst) == 0 {
            Ok(())
        } else {
            Err("second connection refused".into())
        }
    };
    let slow = |(): &mut (), x: &u32| {
        std::thread::sleep(std::time::Duration::from_micros(200));
        Ok(*x)
    };
    let err_flock = Flock::new().threads(2).chunksize(10);
    let err = Workers::new(init);
    let err = err_flock.on(&items).par_apply_rows_per_worker(&err, slow);
    if let Err(Error::Init {
        block,
        completed_blocks,
        worker,
        ..
    }) = &err
    {
        // Every block before the failed one completed, and is reported.
        assert!(worker.is_some());
        assert!(
            (0..*block).all(|b| completed_blocks.contains(&b)),
            "{completed_blocks:?}"
        );
        assert!(!completed_blocks.contains(block));
    } else {
        // The first worker may have drained every block before the second thread started.
        assert_eq!(err.unwrap(), items);
    }
}

#[test]
fn panicking_init_is_an_init_error() {
    let df = df!("x" => [1i64, 2, 3]).unwrap();
    let err = df
        .par_apply_rows_per_worker(
            "y",
            || -> Result<(), BoxError> { panic!("no config file") },
            |(), r| Ok(r.i64("x")?),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::Init { worker: None, block: 0, source, .. }
            if matches!(source.downcast_ref::<Error>(), Some(Error::Panicked { message, during: polars_flock::UserCode::Init, .. }) if message == "no config file")),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("init failed on worker <calling thread> before block 0"),
        "{err}"
    );
}

#[test]
fn a_state_whose_closure_panicked_is_not_reused() {
    let count = AtomicUsize::new(0);
    let workers_flock = Flock::new().threads(1).chunksize(5);
    let workers = Workers::new(opener(&count));
    let items: Vec<u32> = (0..20).collect();
    let err = workers_flock
        .on(&items)
        .par_apply_rows_per_worker(&workers, |_, x| {
            assert_ne!(*x, 7, "poisoned state");
            Ok(*x)
        })
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Panicked {
            block: 1,
            row: Some(7),
            ..
        }
    ));
    assert_eq!(
        workers.idle_states(),
        0,
        "the state that saw the panic was dropped"
    );
    workers_flock
        .on(&items)
        .par_apply_rows_per_worker(&workers, |_, x| Ok(*x))
        .unwrap();
    assert_eq!(workers.inits(), 2);
}

#[test]
fn reentrant_and_nested_per_worker_calls_neither_panic_nor_deadlock() {
    // A closure that runs a parallel Polars op (which lets the waiting thread steal work) and a
    // nested per-worker call on the same runner.
    let count = AtomicUsize::new(0);
    let workers_flock = Flock::new().threads(2).chunksize(1);
    let workers = Workers::new(opener(&count));
    let big = df!("x" => (0..200_000i64).rev().collect::<Vec<_>>()).unwrap();
    let outer: Vec<u32> = (0..16).collect();
    let out = workers_flock
        .on(&outer)
        .par_apply_rows_per_worker(&workers, |conn, &i| {
            conn.used += 1;
            let sorted = big.sort(["x"], SortMultipleOptions::default())?;
            let inner: Vec<u32> = (0..100).collect();
            let nested = workers_flock
                .on(&inner)
                .par_apply_rows_per_worker(&workers, |c, x| {
                    c.used += 1;
                    Ok(x + i)
                })?;
            Ok(sorted.column("x")?.i64()?.get(0).unwrap() as u32 + nested[99])
        })
        .unwrap();
    assert_eq!(out, (0..16).map(|i| 99 + i).collect::<Vec<_>>());
    // Nested calls take their own states; the count stays small and bounded by the nesting: at
    // most one state per thread for the outer call, plus one per thread for each of the (at most
    // two, one per outer block running) nested calls in flight.
    assert!(workers.inits() <= 2 + 2 * 2, "{} inits", workers.inits());
}
