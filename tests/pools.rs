//! Which pool runs the blocks, nested and concurrent calls, and Polars work inside closures.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use common::i64_values;
use polars_flock::Flock;
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;

fn thread_names<F: FnOnce(&(dyn Fn() + Sync))>(run: F) -> HashSet<String> {
    let names = Mutex::new(HashSet::new());
    let record = || {
        let name = std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_owned();
        names.lock().unwrap().insert(name);
    };
    run(&record);
    names.into_inner().unwrap()
}

fn big_frame() -> DataFrame {
    df!("x" => (0..200_000i64).collect::<Vec<_>>()).unwrap()
}

#[test]
fn default_runs_on_polars_pool() {
    let df = big_frame();
    let names = thread_names(|record| {
        Flock::new()
            .chunksize(1_000)
            .on(&df)
            .par_apply_rows("y", |r| {
                record();
                Ok(r.i64("x")?)
            })
            .unwrap();
    });
    assert!(names.iter().all(|n| n.starts_with("polars")), "{names:?}");
}

#[test]
fn threads_option_runs_on_an_owned_pool_of_that_size() {
    let df = big_frame();
    let flock = Flock::new().threads(3).chunksize(500);
    let names = thread_names(|record| {
        flock
            .on(&df)
            .par_apply_rows("y", |r| {
                record();
                std::thread::yield_now();
                Ok(r.i64("x")?)
            })
            .unwrap();
    });
    assert!(
        names.iter().all(|n| n.starts_with("polars-flock-")),
        "{names:?}"
    );
    assert!(names.len() <= 3);
    assert_eq!(flock.plan(10).unwrap().threads(), 3);
}

#[test]
fn caller_pool_is_used_when_called_from_inside_it() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .thread_name(|i| format!("caller-{i}"))
        .build()
        .unwrap();
    let items: Vec<u64> = (0..100_000).collect();
    let names = thread_names(|record| {
        pool.install(|| {
            assert_eq!(Flock::new().plan(1_000_000).unwrap().threads(), 2);
            Flock::new()
                .chunksize(1_000)
                .on(&items)
                .par_apply_rows(|x| {
                    record();
                    Ok(x + 1)
                })
                .unwrap();
        });
    });
    assert!(names.iter().all(|n| n.starts_with("caller-")), "{names:?}");

    let pool = Arc::new(pool);
    let names = thread_names(|record| {
        Flock::new()
            .chunksize(1_000)
            .pool(pool.clone())
            .on(&items)
            .par_apply_blocks(|b| {
                record();
                Ok(b.to_vec())
            })
            .unwrap();
    });
    assert!(names.iter().all(|n| n.starts_with("caller-")), "{names:?}");
}

#[test]
fn nested_calls_do_not_deadlock_and_are_correct() {
    let outer: Vec<u64> = (0..64).collect();
    for flock in [
        Flock::new().chunksize(1),
        Flock::new().chunksize(1).threads(2),
    ] {
        let sums = flock
            .on(&outer)
            .par_apply_rows(|i| {
                let inner: Vec<u64> = (0..10_000).map(|j| j * i).collect();
                Ok(Flock::new()
                    .chunksize(100)
                    .on(&inner)
                    .par_apply_blocks(|b| Ok(vec![b.iter().sum::<u64>()]))
                    .unwrap()
                    .iter()
                    .sum::<u64>())
            })
            .unwrap();
        let expected: Vec<u64> = outer
            .iter()
            .map(|i| i * (0..10_000u64).sum::<u64>())
            .collect();
        assert_eq!(sums, expected);
    }

    // A frame apply nested in a frame block apply.
    let df = big_frame();
    let out = Flock::new()
        .chunksize(20_000)
        .on(&df)
        .par_apply_blocks(|block| {
            Ok(Flock::new()
                .chunksize(1_000)
                .on(&block)
                .par_apply_rows("y", |r| Ok(r.i64("x")? * 2))?)
        })
        .unwrap();
    let y = i64_values(&out, "y");
    assert_eq!(y, (0..200_000i64).map(|x| x * 2).collect::<Vec<_>>());
}

#[test]
fn calls_from_many_threads_at_once() {
    let df = big_frame();
    let shared_flock = Flock::new().threads(2).chunksize(5_000);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8i64)
            .map(|t| {
                let (df, flock) = (&df, &shared_flock);
                s.spawn(move || {
                    let own = if t % 2 == 0 {
                        Flock::new().chunksize(3_000)
                    } else {
                        flock.clone()
                    };
                    let out = own
                        .on(&df)
                        .par_apply_rows("y", |r| Ok(r.i64("x")? + t))
                        .unwrap();
                    let y = out.column("y").unwrap().i64().unwrap();
                    (0..200_000usize)
                        .step_by(9_973)
                        .all(|i| y.get(i) == Some(i as i64 + t))
                })
            })
            .collect();
        assert!(handles.into_iter().all(|h| h.join().unwrap()));
    });
}

#[test]
fn closures_running_multithreaded_polars_queries() {
    let df = big_frame();
    for flock in [
        Flock::new().chunksize(1),
        Flock::new().chunksize(1).threads(2),
    ] {
        let sorted_heads = flock
            .on(&(0..16u32).collect::<Vec<_>>())
            .par_apply_rows(|&k| {
                let sorted = df
                    .sort(
                        ["x"],
                        SortMultipleOptions::default().with_order_descending(k % 2 == 0),
                    )
                    .unwrap();
                Ok(sorted.column("x").unwrap().i64().unwrap().get(0).unwrap())
            })
            .unwrap();
        let expected: Vec<i64> = (0..16)
            .map(|k| if k % 2 == 0 { 199_999 } else { 0 })
            .collect();
        assert_eq!(sorted_heads, expected);
    }
}

#[test]
fn user_code_reenters_a_thread_at_most_pool_size_deep() {
    // Regression: blocks used to be rayon jobs, so a worker waiting in a Polars op (which hops into
    // Polars' pool and lets the waiting worker steal) started other blocks on top of its stack,
    // hundreds deep with many small blocks: a stack overflow in debug builds.
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    thread_local!(static DEPTH: Cell<usize> = const { Cell::new(0) });
    let max_depth = AtomicUsize::new(0);
    let items: Vec<u32> = (0..400).collect();
    for flock in [
        Flock::new().chunksize(1).threads(2),
        Flock::new().chunksize(1),
    ] {
        max_depth.store(0, Ordering::Relaxed);
        let threads = flock.plan(1).unwrap().threads();
        let out = flock
            .on(&items)
            .par_apply_rows(|&x| {
                let depth = DEPTH.with(|d| {
                    d.set(d.get() + 1);
                    d.get()
                });
                max_depth.fetch_max(depth, Ordering::Relaxed);
                // What a parallel Polars kernel does: run a join on Polars' pool.
                let ((), b) = polars_core::runtime::THREAD_POOL.install(|| {
                    rayon::join(
                        || std::thread::sleep(std::time::Duration::from_micros(200)),
                        || x * 2,
                    )
                });
                DEPTH.with(|d| d.set(d.get() - 1));
                Ok(b)
            })
            .unwrap();
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        let depth = max_depth.load(Ordering::Relaxed);
        assert!(
            depth <= threads,
            "user code nested {depth} deep on {threads} threads"
        );
    }
}
