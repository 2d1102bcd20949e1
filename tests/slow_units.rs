//! A handful of slow units (the seeds' `Pool.map` jobs: 5 sleeping squares, 17 URLs, 40 files)
//! run on every thread with default options, whatever their count; small inputs of cheap units
//! stay on the calling thread. Timings are measured in the workloads (W0), not here: these tests
//! check where units ran.

use std::collections::HashSet;
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Duration;

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Files, Flock, Workers};

/// Which threads ran which units.
#[derive(Default)]
struct Threads(Mutex<Vec<(usize, ThreadId)>>);

impl Threads {
    fn record(&self, unit: usize) {
        let me = std::thread::current().id();
        self.0.lock().unwrap().push((unit, me));
    }

    /// The distinct threads that ran the units from `from` on.
    fn distinct_from(&self, from: usize) -> usize {
        let seen = self.0.lock().unwrap();
        let threads: HashSet<ThreadId> = seen
            .iter()
            .filter(|(u, _)| *u >= from)
            .map(|(_, t)| *t)
            .collect();
        threads.len()
    }

    fn units(&self) -> Vec<usize> {
        let mut units: Vec<usize> = self.0.lock().unwrap().iter().map(|(u, _)| *u).collect();
        units.sort_unstable();
        units
    }
}

fn slow(unit: usize) {
    // The first unit is the slowest: the probe learns from it.
    let ms = if unit == 0 { 30 } else { 15 };
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn seventeen_items_whose_first_is_slow_are_spread_over_every_thread() {
    let items: Vec<usize> = (0..17).collect();
    let threads = Threads::default();
    let flock = Flock::new().threads(2);
    let plan = flock.plan(items.len()).unwrap();
    assert!(plan.is_adaptive(), "{plan:?}");
    let out = flock
        .on(&items)
        .par_apply_rows(|&x| {
            threads.record(x);
            slow(x);
            Ok(x * x)
        })
        .unwrap();
    assert_eq!(out, items.iter().map(|x| x * x).collect::<Vec<_>>());
    assert_eq!(threads.units(), items, "every item exactly once");
    // Item 0 ran on the calling thread (the probe), the other 16 on both pool threads.
    assert_eq!(threads.distinct_from(1), 2);
}

#[test]
fn five_slow_items_on_eight_threads_run_at_once() {
    let items: Vec<usize> = (0..5).collect();
    let threads = Threads::default();
    let out = Flock::new()
        .threads(8)
        .on(&items)
        .par_apply_rows(|&x| {
            threads.record(x);
            std::thread::sleep(Duration::from_millis(if x == 0 { 20 } else { 60 }));
            Ok(x)
        })
        .unwrap();
    assert_eq!(out, items);
    // Items 1..5 are one block each, one per thread.
    assert_eq!(threads.distinct_from(1), 4);
}

#[test]
fn a_frame_of_slow_rows_is_spread_and_keeps_its_order() {
    let df = df!("x" => (0..17i64).collect::<Vec<_>>()).unwrap();
    let threads = Threads::default();
    let out = Flock::new()
        .threads(2)
        .on(&df)
        .par_apply_rows("y", |row| {
            let x = row.i64("x")?;
            threads.record(x as usize);
            slow(x as usize);
            Ok(x * 10)
        })
        .unwrap();
    let y: Vec<i64> = out
        .column("y")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(y, (0..17).map(|x| x * 10).collect::<Vec<_>>());
    assert_eq!(threads.distinct_from(1), 2);
    // The keep-going view too.
    let threads = Threads::default();
    let (out, report) = Flock::new()
        .threads(2)
        .on(&df)
        .keep_going()
        .par_apply_rows("y", |row| {
            let x = row.i64("x")?;
            threads.record(x as usize);
            slow(x as usize);
            if x == 7 {
                return Err("seven".into());
            }
            Ok(x)
        })
        .unwrap();
    assert_eq!(out.column("y").unwrap().null_count(), 1);
    assert_eq!(report.failed_rows().collect::<Vec<_>>(), [7]);
    assert_eq!(threads.distinct_from(1), 2);
}

#[test]
fn forty_slow_groups_and_files_are_spread() {
    let df = df!(
        "k" => (0..40i64).collect::<Vec<_>>(),
        "v" => (0..40i64).collect::<Vec<_>>(),
    )
    .unwrap();
    let threads = Threads::default();
    let out = Flock::new()
        .threads(2)
        .on(&df)
        .par_apply_groups(&["k"], |group| {
            let k = group.column("k")?.i64()?.get(0).unwrap_or(0) as usize;
            threads.record(k);
            slow(k);
            Ok(group)
        })
        .unwrap();
    assert_eq!(out.height(), 40);
    assert_eq!(threads.distinct_from(1), 2);

    let paths: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let files = Files::new(&paths);
    let threads = Threads::default();
    let out = Flock::new()
        .threads(2)
        .on(&files)
        .par_apply(|path| {
            let i: usize = path.to_str().unwrap_or("").parse()?;
            threads.record(i);
            slow(i);
            Ok(i)
        })
        .unwrap();
    assert_eq!(out, (0..40).collect::<Vec<_>>());
    assert_eq!(threads.distinct_from(1), 2);
}

/// The probe runs on the calling thread with a state of its own; the first pool worker that needs
/// a state takes it over, so that spreading costs no `init` more than the threads.
#[test]
fn the_probes_state_is_handed_to_a_worker_not_made_twice() {
    let items: Vec<usize> = (0..17).collect();
    let workers = Workers::new(|| Ok(Vec::<usize>::new()));
    let flock = Flock::new().threads(2);
    for _ in 0..3 {
        let out = flock
            .on(&items)
            .par_apply_rows_per_worker(&workers, |seen, &x| {
                seen.push(x);
                slow(x);
                Ok(x)
            })
            .unwrap();
        assert_eq!(out, items);
    }
    assert!(workers.inits() <= 2, "{workers:?}");
}

/// Block verbs keep the uniform layout: their blocks are part of the result.
#[test]
fn block_verbs_never_get_an_adaptive_layout() {
    let items: Vec<usize> = (0..100).collect();
    let sizes = Mutex::new(Vec::new());
    Flock::new()
        .threads(2)
        .on(&items)
        .par_apply_blocks(|block| {
            sizes.lock().unwrap().push(block.len());
            std::thread::sleep(Duration::from_millis(5));
            Ok(block.to_vec())
        })
        .unwrap();
    // Fewer than 128 items: one block, as before (no probe of one item).
    assert_eq!(*sizes.lock().unwrap(), [100]);
}

/// A small input of cheap units never leaves the calling thread. One run could be preempted for
/// longer than the probe's budget on a loaded machine, so the test asks for most of 20 runs.
#[test]
fn a_small_input_of_cheap_units_runs_on_the_calling_thread() {
    let items: Vec<u64> = (0..100).collect();
    let me = std::thread::current().id();
    let mut inline = 0;
    for _ in 0..20 {
        let threads = Threads::default();
        let out = Flock::new()
            .threads(2)
            .on(&items)
            .par_apply_rows(|&x| {
                threads.record(x as usize);
                Ok(x + 1)
            })
            .unwrap();
        assert_eq!(out, (1..=100).collect::<Vec<_>>());
        let seen = threads.0.lock().unwrap();
        inline += usize::from(seen.iter().all(|(_, t)| *t == me));
    }
    assert!(inline >= 10, "{inline} of 20 runs inline");

    // A frame's small first blocks come back as one chunk, not one per block.
    let df = df!("x" => (0..100i64).collect::<Vec<_>>()).unwrap();
    let out = Flock::new()
        .threads(2)
        .on(&df)
        .par_apply_rows("y", |row| Ok(row.i64("x")? + 1))
        .unwrap();
    assert_eq!(out.column("y").unwrap().n_chunks(), 1);
}
