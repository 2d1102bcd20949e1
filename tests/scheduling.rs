//! How blocks are scheduled when threads wait inside user code: a thread never runs two blocks of
//! one call at once, `init` runs at most once per pool thread per call, a call sharing a pool is
//! held up by at most one block of another call, and no block starts after a stop or a failure,
//! even one that happened while `init` ran. Regression tests for the re-entry breaks.

mod common;

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{CancelToken, Error, Flock};
use rayon::ThreadPool;

thread_local! {
    /// Blocks of the call under test that are on this thread's stack.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Records the deepest stack of one call's blocks seen on any thread.
#[derive(Default)]
struct DepthProbe {
    max: AtomicUsize,
}

impl DepthProbe {
    fn inside<T>(&self, f: impl FnOnce() -> T) -> T {
        let depth = DEPTH.with(|d| {
            d.set(d.get() + 1);
            d.get()
        });
        self.max.fetch_max(depth, Ordering::SeqCst);
        let out = f();
        DEPTH.with(|d| d.set(d.get() - 1));
        out
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

/// Waits the way IO-bound blocks do: through a nested call on a pool of its own (`io` has one
/// item per block, so that the call really runs on that pool).
fn nested_io(io: &Flock) {
    io.on(&(0..4u64).collect::<Vec<_>>())
        .par_apply_rows(|_| {
            std::thread::sleep(Duration::from_millis(2));
            Ok(())
        })
        .unwrap();
}

fn pool(threads: usize) -> Arc<ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap(),
    )
}

/// Occupies one thread of `pool` for `busy`, returning once the job is running.
fn occupy_one_thread(pool: &ThreadPool, busy: Duration) {
    let started = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&started);
    pool.spawn(move || {
        flag.store(true, Ordering::SeqCst);
        std::thread::sleep(busy);
    });
    while !started.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
}

// --- 6. Blocks of one call never stack up on one thread ---

#[test]
fn blocks_doing_io_through_a_nested_pool_never_stack_on_the_default_pool() {
    let io = Flock::new().threads(2).chunksize(1);
    let items: Vec<u64> = (0..8).collect();
    for _ in 0..10 {
        let probe = DepthProbe::default();
        let out = Flock::new()
            .chunksize(1)
            .on(&items)
            .par_apply_blocks(|block| {
                probe.inside(|| nested_io(&io));
                Ok(block.to_vec())
            })
            .unwrap();
        assert_eq!(out, items);
        assert_eq!(probe.max(), 1, "blocks of one call stacked up on a thread");
    }
}

#[test]
fn blocks_running_a_polars_sort_never_stack_on_an_owned_pool() {
    let mut state = 7u64;
    let values: Vec<i64> = (0..200_000)
        .map(|_| common::splitmix(&mut state) as i64)
        .collect();
    let big = df!("v" => values).unwrap();
    let df = df!("i" => (0..6i64).collect::<Vec<_>>()).unwrap();
    let flock = Flock::new().threads(2).chunksize(1);
    for _ in 0..10 {
        let probe = DepthProbe::default();
        let out = flock
            .on(&df)
            .par_apply_blocks(|block| {
                probe.inside(|| big.sort(["v"], SortMultipleOptions::default()))?;
                Ok(block)
            })
            .unwrap();
        assert!(out.equals(&df));
        assert_eq!(probe.max(), 1, "blocks of one call stacked up on a thread");
    }
}

#[test]
fn blocks_never_stack_on_a_pool_whose_other_thread_is_busy() {
    let shared = pool(2);
    let io = Flock::new().threads(2).chunksize(1);
    for _ in 0..3 {
        occupy_one_thread(&shared, Duration::from_millis(100));
        let probe = DepthProbe::default();
        let flock = Flock::new().pool(Arc::clone(&shared)).chunksize(1);
        let out = flock
            .on(&(0..6u64).collect::<Vec<_>>())
            .par_apply_rows(|&x| {
                Ok(probe.inside(|| {
                    nested_io(&io);
                    x
                }))
            })
            .unwrap();
        assert_eq!(out, (0..6).collect::<Vec<_>>());
        assert_eq!(probe.max(), 1, "blocks of one call stacked up on a thread");
    }
}

// --- 7. A per-thread lock held across a wait cannot deadlock ---

#[test]
fn a_per_thread_lock_held_across_a_wait_cannot_deadlock() {
    common::run_in_child(
        "child_holds_a_per_thread_lock_across_a_wait",
        Duration::from_secs(30),
    );
}

#[test]
#[ignore = "run in a child process by a_per_thread_lock_held_across_a_wait_cannot_deadlock"]
fn child_holds_a_per_thread_lock_across_a_wait() {
    assert!(common::in_child());
    thread_local! {
        static CONNECTION: Mutex<u64> = const { Mutex::new(0) };
    }
    let shared = pool(2);
    let io = Flock::new().threads(2).chunksize(1);
    for _ in 0..3 {
        occupy_one_thread(&shared, Duration::from_millis(100));
        let flock = Flock::new().pool(Arc::clone(&shared)).chunksize(1);
        let out = flock
            .on(&(0..6u64).collect::<Vec<_>>())
            .par_apply_rows(|&x| {
                Ok(CONNECTION.with(|connection| {
                    let mut uses = connection.lock().unwrap();
                    nested_io(&io); // waits while holding this thread's lock
                    *uses += 1;
                    x
                }))
            })
            .unwrap();
        assert_eq!(out.len(), 6);
    }
}

// --- 8. `init` runs at most once per pool thread per call ---

#[test]
fn init_runs_at_most_once_per_pool_thread_in_a_call_whose_blocks_wait() {
    let io = Flock::new().threads(2).chunksize(1);
    let items: Vec<u64> = (0..8).collect();
    for _ in 0..10 {
        let threads: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());
        let workers_flock = Flock::new().chunksize(1);
        let workers = Workers::new(|| {
            threads.lock().unwrap().push(std::thread::current().id());
            Ok(())
        });
        let out = workers_flock
            .on(&items)
            .par_apply_rows_per_worker(&workers, |(), &x| {
                nested_io(&io);
                Ok(x)
            })
            .unwrap();
        assert_eq!(out, items);
        drop(workers);
        let threads = threads.into_inner().unwrap();
        let distinct: HashSet<_> = threads.iter().collect();
        assert_eq!(
            distinct.len(),
            threads.len(),
            "init ran twice on a thread: {threads:?}"
        );
    }
}

// --- 9. A call sharing a pool is held up by at most one block of another call ---

#[test]
fn a_timed_out_call_returns_without_running_another_calls_blocks() {
    let shared = pool(2);
    let other_stop = CancelToken::new();
    let other = {
        let flock = Flock::new()
            .pool(Arc::clone(&shared))
            .chunksize(1)
            .cancel_token(&other_stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let blocks: Vec<u64> = vec![100; 40];
            let _ = flock.on(&blocks).par_apply_rows(|&ms| {
                std::thread::sleep(Duration::from_millis(ms));
                Ok(())
            });
        })
    };
    let flock = Flock::new()
        .pool(Arc::clone(&shared))
        .chunksize(1)
        .timeout(Duration::from_millis(100));
    let blocks: Vec<u64> = vec![50, 500, 50, 50, 50, 50, 50, 50];
    let start = Instant::now();
    let result = flock.on(&blocks).par_apply_rows(|&ms| {
        std::thread::sleep(Duration::from_millis(ms));
        Ok(())
    });
    let elapsed = start.elapsed();
    other_stop.cancel();
    other.join().unwrap();
    assert!(matches!(result, Err(Error::TimedOut { .. })), "{result:?}");
    // Its own longest block (500 ms) bounds it, plus at most one 100 ms block of the other call;
    // running the other call's blocks to their end took 2.3 s.
    assert!(
        elapsed < Duration::from_millis(1_500),
        "returned after {elapsed:?}"
    );
}

// --- 10-12. Stop and failure are checked again after `init` ---

/// Runs ten one-item blocks on `workers`; the result and how many blocks started.
fn count_started_blocks(
    flock: &Flock,
    workers: &polars_flock::Workers<'_, ()>,
) -> (polars_flock::Result<Vec<u64>>, usize) {
    let started = AtomicUsize::new(0);
    let items: Vec<u64> = (0..10).collect();
    let result = flock
        .on(&items)
        .par_apply_rows_per_worker(workers, |(), &x| {
            started.fetch_add(1, Ordering::SeqCst);
            Ok(x)
        });
    (result, started.into_inner())
}

#[test]
fn cancelling_inside_a_slow_init_starts_no_block() {
    let token = CancelToken::new();
    let workers_flock = Flock::new().threads(2).chunksize(1).cancel_token(&token);
    let workers = Workers::new(|| {
        token.cancel();
        std::thread::sleep(Duration::from_millis(100));
        Ok(())
    });
    let (result, started) = count_started_blocks(&workers_flock, &workers);
    assert!(
        matches!(
            result,
            Err(Error::Cancelled {
                completed_blocks: 0,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(started, 0);
}

#[test]
fn a_deadline_passing_while_init_runs_starts_no_block() {
    let workers_flock = Flock::new()
        .threads(2)
        .chunksize(1)
        .timeout(Duration::from_millis(50));
    let workers = Workers::new(|| {
        std::thread::sleep(Duration::from_millis(200));
        Ok(())
    });
    let (result, started) = count_started_blocks(&workers_flock, &workers);
    assert!(
        matches!(
            result,
            Err(Error::TimedOut {
                completed_blocks: 0,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(started, 0);
}

#[test]
fn no_block_starts_after_a_failure_that_happened_while_init_ran() {
    // The second `init` is slow; whichever worker gets it, no block may start once block 0 failed.
    for _ in 0..8 {
        let inits = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let late_starts = AtomicUsize::new(0);
        let workers_flock = Flock::new().threads(2).chunksize(1);
        let workers = Workers::new(|| {
            if inits.fetch_add(1, Ordering::SeqCst) == 1 {
                std::thread::sleep(Duration::from_millis(300));
            }
            Ok(())
        });
        let items: Vec<u64> = (0..10).collect();
        let result = workers_flock
            .on(&items)
            .par_apply_rows_per_worker(&workers, |(), &x| {
                if failed.load(Ordering::SeqCst) {
                    late_starts.fetch_add(1, Ordering::SeqCst);
                }
                if x == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                    failed.store(true, Ordering::SeqCst);
                    return Err("block 0 fails".into());
                }
                Ok(x)
            });
        assert!(
            matches!(result, Err(Error::Row { row: 0, .. })),
            "{result:?}"
        );
        assert_eq!(
            late_starts.load(Ordering::SeqCst),
            0,
            "a block started after block 0 failed"
        );
    }
}

#[cfg(feature = "streaming")]
#[test]
fn streamed_batches_that_wait_never_stack_on_one_thread() {
    let shared = pool(2);
    let io = Flock::new().threads(2).chunksize(1);
    for _ in 0..3 {
        occupy_one_thread(&shared, Duration::from_millis(100));
        let probe = DepthProbe::default();
        let batches = (0..8i64).map(|b| df!("x" => [b]));
        let mut seen = Vec::new();
        polars_flock::streaming::par_apply_batches(
            &Flock::new().pool(Arc::clone(&shared)),
            4,
            batches,
            |batch| {
                probe.inside(|| nested_io(&io));
                Ok(batch)
            },
            |out| {
                seen.push(out.column("x")?.i64()?.get(0).unwrap());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        assert_eq!(probe.max(), 1, "batches of one call stacked up on a thread");
    }
}
