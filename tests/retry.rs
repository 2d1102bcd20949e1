//! Retries (`Flock::retries`): units that fail fewer times than the attempts give the serial
//! result on every verb and mode; more, and the call fails at the first failing unit in input
//! order (or reports each, keep-going, with its attempts); waits are honoured and never park a
//! thread of a shared pool; per-worker states are made again; the dead-letter frame.

mod common;
#[path = "common/http.rs"]
mod http;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Error, Flock, Retry, Transient, Unit, attempt};
use proptest::prelude::*;

/// How many times unit `key` fails before it succeeds, for a case's `seed`: 0 to 3.
fn fails(seed: u64, key: i64) -> u32 {
    let mut s = seed ^ (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (splitmix(&mut s) % 4) as u32
}

/// A transient failure while this attempt is within the unit's failures.
fn flaky(seed: u64, key: i64) -> Result<(), BoxError> {
    if attempt() <= fails(seed, key) {
        return Err(format!("transient failure of {key} at attempt {}", attempt()).into());
    }
    Ok(())
}

fn policy(attempts: u32) -> Retry {
    Retry::attempts(attempts)
        .backoff(Duration::ZERO, Duration::ZERO)
        .jitter(false)
}

fn ids(n: usize) -> DataFrame {
    df!("i" => (0..n as i64).collect::<Vec<_>>(), "g" => (0..n as i64).map(|i| i % 7).collect::<Vec<_>>())
        .unwrap()
}

/// The first unit (in input order) of `keys` that fails at least `attempts` times.
fn first_hopeless(seed: u64, attempts: u32, keys: impl IntoIterator<Item = i64>) -> Option<i64> {
    keys.into_iter().find(|&k| fails(seed, k) >= attempts)
}

/// Every row/item verb, fail-fast, keep-going and per-worker, against the serial loop.
fn rows_match_serial(n: usize, seed: u64, attempts: u32, chunksize: Option<usize>, threads: usize) {
    let df = ids(n);
    let flock = common::flock(chunksize, threads).retries(policy(attempts));
    let hopeless = first_hopeless(seed, attempts, 0..n as i64);
    let expected: Vec<i64> = (0..n as i64).map(|i| i * 2).collect();
    let calls = AtomicUsize::new(0);
    let f = |row: &Row<'_>| -> Result<i64, BoxError> {
        calls.fetch_add(1, Ordering::Relaxed);
        let i = row.i64("i")?;
        flaky(seed, i)?;
        Ok(i * 2)
    };
    // Frame rows, fail-fast.
    match (flock.on(&df).par_apply_rows("y", f), hopeless) {
        (Ok(out), None) => assert_eq!(i64_values(&out, "y"), expected),
        (Err(Error::Row { row, .. }), Some(h)) => assert_eq!(row as i64, h),
        (other, h) => panic!("rows: {other:?}, hopeless {h:?}"),
    }
    if hopeless.is_none() {
        // Every row ran once per attempt it needed, no more.
        let needed: usize = (0..n as i64).map(|i| fails(seed, i) as usize + 1).sum();
        assert_eq!(calls.load(Ordering::Relaxed), needed);
    }
    // Frame rows, keep-going: each hopeless row null and reported with its attempts.
    let (out, report) = flock.on(&df).keep_going().par_apply_rows("y", f).unwrap();
    let column = out.column("y").unwrap().i64().unwrap();
    let retries: usize = (0..n as i64)
        .map(|i| fails(seed, i).min(attempts - 1) as usize)
        .sum();
    assert_eq!(report.retries, retries);
    let failed: Vec<usize> = report.failed_rows().collect();
    let want: Vec<usize> = (0..n)
        .filter(|&i| fails(seed, i as i64) >= attempts)
        .collect();
    assert_eq!(failed, want);
    assert!(report.failures.iter().all(|f| f.attempts == attempts));
    for i in 0..n {
        let want = (fails(seed, i as i64) < attempts).then_some(i as i64 * 2);
        assert_eq!(column.get(i), want, "row {i}");
    }
    // Typed columns, fallible.
    let typed = flock.on(&df).par_apply_columns("y", ["i"], |(i,): (i64,)| {
        flaky(seed, i)?;
        Ok(i * 2)
    });
    match (typed, hopeless) {
        (Ok(out), None) => assert_eq!(i64_values(&out, "y"), expected),
        (Err(Error::Row { row, .. }), Some(h)) => assert_eq!(row as i64, h),
        (other, h) => panic!("columns: {other:?}, hopeless {h:?}"),
    }
    // Items, fail-fast and keep-going.
    let items: Vec<i64> = (0..n as i64).collect();
    let item = |&i: &i64| -> Result<i64, BoxError> {
        flaky(seed, i)?;
        Ok(i * 2)
    };
    match (flock.on(&items).par_apply_rows(item), hopeless) {
        (Ok(out), None) => assert_eq!(out, expected),
        (Err(Error::Row { row, .. }), Some(h)) => assert_eq!(row as i64, h),
        (other, h) => panic!("items: {other:?}, hopeless {h:?}"),
    }
    let (out, report) = flock.on(&items).keep_going().par_apply_rows(item).unwrap();
    assert_eq!(report.retries, retries);
    for (i, v) in out.iter().enumerate() {
        assert_eq!(
            *v,
            (fails(seed, i as i64) < attempts).then_some(i as i64 * 2)
        );
    }
    // Async items, through the driver's own retries.
    #[cfg(feature = "async")]
    {
        let out = flock
            .clone()
            .concurrency(1 + n % 7)
            .on(&items)
            .io()
            .par_apply_rows(async |&i| -> Result<i64, BoxError> {
                if i % 5 == 0 {
                    tokio::task::yield_now().await; // out of order
                }
                flaky(seed, i)?;
                Ok(i * 2)
            })
            .wait();
        match (out, hopeless) {
            (Ok(out), None) => assert_eq!(out, expected),
            (Err(Error::Row { row, .. }), Some(h)) => assert_eq!(row as i64, h),
            (other, h) => panic!("async items: {other:?}, hopeless {h:?}"),
        }
    }
    // A stream of the frame's batches, fail-fast.
    #[cfg(feature = "streaming")]
    {
        let batch = chunksize.unwrap_or(64);
        let batches =
            (0..n.div_ceil(batch)).map(|b| Ok::<_, BoxError>(df.slice((b * batch) as i64, batch)));
        let outs = Mutex::new(Vec::new());
        let stream = polars_flock::streaming::Stream::new(batches, |o| {
            outs.lock().unwrap().push(o);
            Ok(())
        });
        let streamed = flock.on(&stream).par_apply_rows("y", f);
        drop(stream);
        match (streamed, hopeless) {
            (Ok(_), None) => {
                let ys: Vec<i64> = (outs.into_inner().unwrap().iter())
                    .flat_map(|o| i64_values(o, "y"))
                    .collect();
                assert_eq!(ys, expected);
            }
            (Err(Error::Row { row, .. }), Some(h)) => assert_eq!(row as i64, h),
            (other, h) => panic!("stream rows: {other:?}, hopeless {h:?}"),
        }
    }
    // Per-worker, the state made again before each retry: a state is "broken" once it has seen
    // a failure, and a broken state fails every row, so only a new one can succeed.
    let made = AtomicUsize::new(0);
    let init = || -> Result<bool, BoxError> {
        made.fetch_add(1, Ordering::Relaxed);
        Ok(false)
    };
    let reinit = flock.clone().retries(policy(attempts).reinit(true));
    let per_worker = reinit
        .on(&items)
        .par_apply_rows_per_worker(init, |broken, &i| {
            if *broken {
                return Err("a broken state".into());
            }
            if attempt() <= fails(seed, i) {
                *broken = true;
                return Err("transient".into());
            }
            Ok(i * 2)
        });
    match (per_worker, hopeless) {
        (Ok(out), None) => assert_eq!(out, expected),
        (Err(Error::Row { row, .. }), Some(h)) => assert_eq!(row as i64, h),
        (other, h) => panic!("per-worker: {other:?}, hopeless {h:?}"),
    }
}

/// Blocks, item blocks, groups and files: the unit is the block (group, file).
fn units_match_serial(n: usize, seed: u64, attempts: u32, chunksize: usize, threads: usize) {
    let df = ids(n);
    let flock = common::flock(Some(chunksize), threads).retries(policy(attempts));
    let starts = (0..n).step_by(chunksize).map(|s| s as i64);
    let hopeless = first_hopeless(seed, attempts, starts.clone());
    let blocks = flock.on(&df).par_apply_blocks(|b| {
        if b.height() > 0 {
            flaky(seed, b.column("i")?.i64()?.get(0).unwrap())?;
        }
        Ok(b.select(["i"])?)
    });
    match (blocks, hopeless) {
        (Ok(out), None) => assert_eq!(i64_values(&out, "i"), (0..n as i64).collect::<Vec<_>>()),
        (Err(Error::Block { rows, .. }), Some(h)) => assert_eq!(rows.start as i64, h),
        (other, h) => panic!("blocks: {other:?}, hopeless {h:?}"),
    }
    let items: Vec<i64> = (0..n as i64).collect();
    let (out, report) = flock
        .on(&items)
        .keep_going()
        .par_apply_blocks(|b: &[i64]| {
            if let Some(&first) = b.first() {
                flaky(seed, first)?;
            }
            Ok(b.to_vec())
        })
        .unwrap();
    let kept: Vec<i64> = (0..n as i64)
        .filter(|i| fails(seed, i - i % chunksize as i64) < attempts)
        .collect();
    assert_eq!(out, kept);
    assert!(report.failures.iter().all(|f| f.attempts == attempts));
    // Groups (keys 0..7, in order of first appearance), keep-going.
    let (out, report) = flock
        .on(&df)
        .keep_going()
        .par_apply_groups(&["g"], |g| {
            flaky(seed, 1_000 + g.column("g")?.i64()?.get(0).unwrap_or(0))?;
            Ok(g.select(["g"])?.head(Some(1)))
        })
        .unwrap();
    let groups = (n.min(7)) as i64;
    let good: Vec<i64> = (0..groups)
        .filter(|&g| fails(seed, 1_000 + g) < attempts)
        .collect();
    assert_eq!(i64_values(&out, "g"), good);
    assert_eq!(report.failures.len(), groups as usize - good.len());
    // Files (paths need not exist), fail-fast.
    let files = Files::new((0..n.min(20)).map(|i| format!("{i}.csv")));
    let read = flock.on(&files).par_apply(|p| {
        let i: i64 = p.to_str().unwrap().trim_end_matches(".csv").parse()?;
        flaky(seed, 2_000 + i)?;
        Ok(i)
    });
    let hopeless_file = first_hopeless(seed, attempts, (0..n.min(20) as i64).map(|i| 2_000 + i));
    match (read, hopeless_file) {
        (Ok(out), None) => assert_eq!(out, (0..n.min(20) as i64).collect::<Vec<_>>()),
        (Err(Error::InFile { path, .. }), Some(h)) => {
            assert_eq!(path, std::path::PathBuf::from(format!("{}.csv", h - 2_000)));
        }
        (other, h) => panic!("files: {other:?}, hopeless {h:?}"),
    }
}

proptest! {
    #![proptest_config(common::config())]

    #[test]
    fn transient_failures_are_retried_on_every_row_verb(
        n in 0usize..300,
        seed in any::<u64>(),
        attempts in 1u32..=4,
        threads in 1usize..=3,
        chunksize in prop_oneof![Just(None), (1usize..40).prop_map(Some)],
    ) {
        rows_match_serial(n, seed, attempts, chunksize, threads);
    }

    #[test]
    fn transient_failures_are_retried_on_every_unit_verb(
        n in 0usize..300,
        seed in any::<u64>(),
        attempts in 1u32..=4,
        threads in 1usize..=3,
        chunksize in 1usize..60,
    ) {
        units_match_serial(n, seed, attempts, chunksize, threads);
    }
}

#[test]
fn without_a_policy_every_unit_runs_once() {
    let calls = AtomicUsize::new(0);
    let items: Vec<u32> = (0..100).collect();
    let (_, report) = items
        .keep_going()
        .par_apply_rows(|&x| {
            calls.fetch_add(1, Ordering::Relaxed);
            if x % 10 == 0 {
                return Err("fails".into());
            }
            Ok(x)
        })
        .unwrap();
    assert_eq!(calls.into_inner(), 100);
    assert_eq!(report.retries, 0);
    assert!(report.failures.iter().all(|f| f.attempts == 1));
}

#[test]
fn panics_and_the_crates_own_errors_are_not_retried() {
    let flock = Flock::new().retries(policy(5));
    let calls = AtomicUsize::new(0);
    let df = ids(10);
    // A missing column: the crate's error, retrying cannot fix it.
    let err = flock
        .on(&df)
        .par_apply_rows("y", |row| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(row.i64("nope")?)
        })
        .unwrap_err();
    assert!(matches!(err, Error::ColumnNotFound { .. }), "{err:?}");
    assert_eq!(calls.swap(0, Ordering::Relaxed), 1);
    // A panic: the state may be half-updated.
    let items = [1, 2, 3];
    let (_, report) = flock
        .on(&items[..])
        .keep_going()
        .par_apply_rows(|&x| {
            calls.fetch_add(1, Ordering::Relaxed);
            if x == 2 {
                panic!("boom");
            }
            Ok(x)
        })
        .unwrap();
    assert_eq!(calls.into_inner(), 3);
    assert!(matches!(report.failures[0].error, Error::Panicked { .. }));
    assert_eq!(report.failures[0].attempts, 1);
}

#[test]
fn a_predicate_picks_what_is_retried_and_transient_overrides_it() {
    let flock = Flock::new().retries(policy(3).when(|e| e.is::<std::io::Error>()));
    let calls = AtomicUsize::new(0);
    let (out, report) = flock
        .on(&[0, 1, 2][..])
        .keep_going()
        .par_apply_rows(|&x| -> Result<i32, BoxError> {
            calls.fetch_add(1, Ordering::Relaxed);
            match x {
                0 if attempt() == 1 => Err(std::io::Error::other("reset").into()),
                1 => Err("a permanent error".into()),
                2 if attempt() < 3 => Err(Transient::new("busy").into()),
                _ => Ok(x),
            }
        })
        .unwrap();
    assert_eq!(out, [Some(0), None, Some(2)]);
    assert_eq!(calls.into_inner(), 2 + 1 + 3);
    assert_eq!(report.retries, 1 + 2);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].attempts, 1);
}

#[test]
fn a_transients_wait_is_honoured_and_backoff_grows() {
    // Retry-After of 150 ms, then 150 ms again: the item succeeds at its third attempt.
    let flock = Flock::new().retries(Retry::attempts(3));
    let start = Instant::now();
    let seen = Mutex::new(Vec::new());
    let out = flock
        .on(&[7][..])
        .par_apply_rows(|&x| {
            seen.lock().unwrap().push(start.elapsed());
            if attempt() < 3 {
                return Err(Transient::new("429")
                    .after(Duration::from_millis(150))
                    .into());
            }
            Ok(x)
        })
        .unwrap();
    assert_eq!(out, [7]);
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 3);
    for pair in seen.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(150), "{seen:?}");
    }
    // Exponential backoff without jitter: 40, 80 ms.
    let flock = Flock::new().retries(
        Retry::attempts(3)
            .backoff(Duration::from_millis(40), Duration::from_secs(1))
            .jitter(false),
    );
    let start = Instant::now();
    let seen = Mutex::new(Vec::new());
    let err = flock
        .on(&[1][..])
        .par_apply_rows(|_: &i32| -> Result<i32, BoxError> {
            seen.lock().unwrap().push(start.elapsed());
            Err("down".into())
        })
        .unwrap_err();
    assert!(matches!(err, Error::Row { row: 0, .. }));
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen[1] - seen[0] >= Duration::from_millis(40), "{seen:?}");
    assert!(seen[2] - seen[1] >= Duration::from_millis(80), "{seen:?}");
}

#[test]
fn the_calls_timeout_ends_a_backoff() {
    let flock = Flock::new()
        .retries(Retry::attempts(5).backoff(Duration::from_secs(10), Duration::from_secs(10)))
        .timeout(Duration::from_millis(100));
    let start = Instant::now();
    let err = flock
        .on(&[1, 2][..])
        .par_apply_rows(|_: &i32| -> Result<i32, BoxError> { Err("down".into()) })
        .unwrap_err();
    assert!(matches!(err, Error::TimedOut { .. }), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_backoff_on_polars_pool_does_not_park_its_threads() {
    // Every pool thread waits for a retry in 2 s; meanwhile another job on the same pool must
    // still run (the waiting threads run it), long before the backoff ends.
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap(),
    );
    let flock = Flock::new().chunksize(1).retries(
        Retry::attempts(2)
            .backoff(Duration::from_secs(2), Duration::from_secs(2))
            .jitter(false),
    );
    let waiting = AtomicUsize::new(0);
    let items: Vec<u32> = (0..2).collect();
    std::thread::scope(|s| {
        let call = s.spawn(|| {
            pool.install(|| {
                flock.on(&items).par_apply_rows(|&x| {
                    if attempt() == 1 {
                        waiting.fetch_add(1, Ordering::Relaxed);
                        return Err("down".into());
                    }
                    Ok(x)
                })
            })
        });
        let start = Instant::now();
        while waiting.load(Ordering::Relaxed) < 2 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        let other = Instant::now();
        let sum: u64 = pool.install(|| {
            use rayon::prelude::*;
            (0..1_000u64).into_par_iter().sum()
        });
        let took = other.elapsed();
        assert_eq!(sum, 499_500);
        assert!(
            took < Duration::from_millis(1_000),
            "the other job waited {took:?}"
        );
        assert_eq!(call.join().unwrap().unwrap(), items);
    });
}

#[test]
fn workers_keep_the_state_a_retry_made_again() {
    // A state remembers the server's epoch it connected in; after a "restart" (epoch 1) the
    // old connections fail, and the closure asks for a new one.
    let epoch = AtomicUsize::new(0);
    let workers = Workers::new(|| Ok::<_, BoxError>(epoch.load(Ordering::SeqCst)));
    let items: Vec<u32> = (0..100).collect();
    let f = |made: &mut usize, &x: &u32| -> Result<u32, BoxError> {
        if *made < epoch.load(Ordering::SeqCst) {
            return Err(Transient::new("connection closed").reinit().into());
        }
        // A query's time: every block takes a while, so that both workers run blocks.
        std::thread::sleep(Duration::from_micros(200));
        Ok(x)
    };
    let flock = Flock::new().chunksize(10).threads(2);
    assert_eq!(
        flock
            .on(&items)
            .par_apply_rows_per_worker(&workers, f)
            .unwrap(),
        items
    );
    let before = workers.inits();
    epoch.store(1, Ordering::SeqCst);
    // Without retries the restart fails the call, naming a row.
    let err = flock
        .on(&items)
        .par_apply_rows_per_worker(&workers, f)
        .unwrap_err();
    assert!(matches!(err, Error::Row { .. }), "{err:?}");
    // With them, each old state costs one reconnect, not the job.
    let retrying = flock.clone().retries(policy(2));
    let (out, report) = retrying
        .on(&items)
        .keep_going()
        .par_apply_rows_per_worker(&workers, f)
        .unwrap();
    assert!(report.is_complete(), "{:?}", report.failures);
    assert_eq!(out.len(), 100);
    let after = workers.inits();
    assert!(
        report.retries >= 1 && after - before >= report.retries,
        "{} retries, {} inits",
        report.retries,
        after - before
    );
    // The next call reuses the new states (no retry); only a thread that ran no block in the
    // last call (the pool has 2) may need a state of its own.
    let held = workers.idle_states();
    assert!((1..=2).contains(&held), "{held} states held");
    let (_, report) = retrying
        .on(&items)
        .keep_going()
        .par_apply_rows_per_worker(&workers, f)
        .unwrap();
    assert_eq!(report.retries, 0);
    assert!(
        workers.inits() <= after + (2 - held),
        "{} inits",
        workers.inits() - after
    );
}

#[test]
fn bad_policies_are_refused() {
    let items = [1];
    let second = Duration::from_secs(1);
    for bad in [
        Retry::attempts(0),
        Retry::attempts(2).backoff(2 * second, second),
    ] {
        let err = Flock::new()
            .retries(bad)
            .on(&items[..])
            .par_apply_rows(|&x| Ok(x))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidOption {
                    option: "retries",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn the_failures_frame_has_one_row_per_failure() {
    let flock = Flock::new().retries(policy(2));
    let df = ids(20);
    let (_, report) = flock
        .on(&df)
        .keep_going()
        .par_apply_groups(&["g"], |g| -> Result<DataFrame, BoxError> {
            if g.column("g")?.i64()?.get(0) == Some(3) {
                return Err("no such customer".into());
            }
            Ok(g)
        })
        .unwrap();
    let dead = report.failures_frame();
    assert_eq!(dead.height(), 1);
    assert_eq!(
        dead.column("unit").unwrap().str().unwrap().get(0),
        Some("group")
    );
    assert_eq!(
        dead.column("key").unwrap().str().unwrap().get(0),
        Some("g=3")
    );
    assert_eq!(
        dead.column("attempts").unwrap().u32().unwrap().get(0),
        Some(2)
    );
    assert_eq!(
        dead.column("error").unwrap().str().unwrap().get(0),
        Some("InGroup")
    );
    let message = dead
        .column("message")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_owned();
    assert!(message.contains("no such customer"), "{message}");
    assert!(dead.column("path").unwrap().is_null().all());
    // Rows and files.
    let (_, report) = Files::new(["a", "b"])
        .keep_going()
        .par_apply(|p| -> Result<(), BoxError> {
            Err(format!("cannot read {}", p.display()).into())
        })
        .unwrap();
    let dead = report.failures_frame();
    assert_eq!(
        dead.column("path").unwrap().str().unwrap().get(1),
        Some("b")
    );
    assert!(matches!(
        report.failures[1].unit,
        Unit::File { file: 1, .. }
    ));
    let empty = polars_flock::Report::default().failures_frame();
    assert_eq!((empty.height(), empty.width()), (0, 9));
}

#[cfg(feature = "streaming")]
#[test]
fn stream_rows_and_batches_are_retried() {
    use polars_flock::streaming::Stream;
    let df = ids(1_000);
    let seed = 42;
    let flock = Flock::new().retries(policy(4));
    let batches = || (0..10).map(|b| Ok::<_, BoxError>(df.slice(b * 100, 100)));
    let out = Mutex::new(Vec::new());
    let stream = Stream::new(batches(), |o| {
        out.lock().unwrap().push(o);
        Ok(())
    });
    let summary = flock
        .on(&stream)
        .par_apply_rows("y", |row| {
            let i = row.i64("i")?;
            flaky(seed, i)?;
            Ok(i * 2)
        })
        .unwrap();
    let row_retries: u32 = (0..1_000).map(|i| fails(seed, i)).sum();
    assert_eq!(summary.retries, row_retries as usize);
    drop(stream);
    let ys: Vec<i64> = out
        .into_inner()
        .unwrap()
        .iter()
        .flat_map(|o| i64_values(o, "y"))
        .collect();
    assert_eq!(ys, (0..1_000).map(|i| i * 2).collect::<Vec<_>>());
    let stream = Stream::new(batches(), |_| Ok(()));
    let (summary, report) = flock
        .on(&stream)
        .keep_going()
        .par_apply_blocks(|b| {
            flaky(seed, b.column("i")?.i64()?.get(0).unwrap_or(0))?;
            Ok(b)
        })
        .unwrap();
    assert!(report.is_complete());
    assert_eq!(summary.rows_out, 1_000);
    let retries: u32 = (0..10).map(|b| fails(seed, b * 100)).sum();
    assert_eq!(report.retries, retries as usize);
    // The report's stats count the batches, and their retries by cause.
    assert_eq!((report.stats.blocks, report.stats.rows), (10, 1_000));
    assert_eq!(report.stats.total_retries(), report.retries);
    // A batch that runs long is told to the stall callback.
    let stalled = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&stalled);
    let stream = Stream::new(batches(), |_| Ok(()));
    Flock::new()
        .on_stall(Duration::from_millis(30), move |s| {
            log.lock()
                .unwrap()
                .extend(s.iter().map(|s| (s.rows.start, s.rows.end)));
        })
        .on(&stream)
        .par_apply_blocks(|b| {
            if b.column("i")?.i64()?.get(0) == Some(300) {
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(b)
        })
        .unwrap();
    assert_eq!(*stalled.lock().unwrap(), [(300, 400)]);
}

#[cfg(feature = "async")]
mod async_units {
    use super::*;

    #[test]
    fn async_units_are_retried_through_the_rate_limit() {
        // 40 items, each failing its first attempt: 80 starts at 40/s take about 2 s, and no
        // one-second window sees more than 40.
        let starts = Mutex::new(Vec::new());
        let flock = Flock::new().rate(40.0).retries(policy(2));
        let items: Vec<u32> = (0..40).collect();
        let begin = Instant::now();
        let (out, report) = flock
            .on(&items)
            .io()
            .keep_going()
            .par_apply_rows(async |&x| {
                starts.lock().unwrap().push(begin.elapsed());
                if attempt() == 1 {
                    return Err("503".into());
                }
                Ok(x)
            })
            .wait()
            .unwrap();
        assert_eq!(out, items.iter().map(|&x| Some(x)).collect::<Vec<_>>());
        assert_eq!(report.retries, 40);
        let mut starts = starts.into_inner().unwrap();
        starts.sort();
        assert_eq!(starts.len(), 80);
        for (i, &t) in starts.iter().enumerate() {
            let within = starts[i..]
                .iter()
                .take_while(|&&u| u - t < Duration::from_secs(1))
                .count();
            assert!(within <= 40, "{within} starts in a second from {t:?}");
        }
    }

    #[test]
    fn a_timed_out_async_unit_is_retried_and_its_attempt_is_visible() {
        let flock = Flock::new()
            .unit_timeout(Duration::from_millis(50))
            .retries(policy(3));
        let items = [0u32, 1, 2];
        let out = flock
            .on(&items[..])
            .io()
            .par_apply_rows(async |&x| {
                if x == 1 && attempt() < 3 {
                    tokio::time::sleep(Duration::from_secs(10)).await; // hangs: dropped at 50 ms
                }
                Ok((x, attempt()))
            })
            .wait()
            .unwrap();
        assert_eq!(out, [(0, 1), (1, 3), (2, 1)]);
        // Fail-fast: a unit that keeps failing is the call's error, after its attempts.
        let calls = AtomicUsize::new(0);
        let err = flock
            .on(&items[..])
            .io()
            .par_apply_rows(async |&x| -> Result<u32, BoxError> {
                if x == 1 {
                    calls.fetch_add(1, Ordering::Relaxed);
                    return Err("down".into());
                }
                Ok(x)
            })
            .wait()
            .unwrap_err();
        assert!(matches!(err, Error::Row { row: 1, .. }), "{err:?}");
        assert_eq!(calls.into_inner(), 3);
    }
}

#[test]
fn stats_account_for_the_wall_time_of_every_worker_and_every_row() {
    let flock = Flock::new().chunksize(50).threads(2).retries(policy(3));
    let items: Vec<u64> = (0..1_000).collect();
    let (_, report) = flock
        .on(&items)
        .keep_going()
        .par_apply_rows_per_worker(
            || {
                std::thread::sleep(Duration::from_millis(20)); // a connection opened
                Ok(())
            },
            |(), &x| {
                if x % 100 == 0 && attempt() == 1 {
                    return Err("503 Service Unavailable".into());
                }
                if x == 420 {
                    std::thread::sleep(Duration::from_millis(60)); // one slow block
                }
                Ok(x)
            },
        )
        .unwrap();
    let stats = &report.stats;
    assert_eq!((stats.rows, stats.blocks), (1_000, 20));
    assert!(
        !stats.workers.is_empty() && stats.workers.len() <= 2,
        "{stats}"
    );
    assert_eq!(stats.workers.iter().map(|w| w.rows).sum::<usize>(), 1_000);
    for w in &stats.workers {
        assert_eq!(w.init + w.busy + w.idle, stats.wall, "{stats}");
        assert!(w.init >= Duration::from_millis(20), "{stats}");
    }
    let total: Duration = stats.workers.iter().map(|w| w.init + w.busy + w.idle).sum();
    assert_eq!(total, stats.wall * stats.workers.len() as u32);
    // The slow block (rows 400..450) is the slowest.
    assert_eq!(stats.slowest[0].1, 400..450, "{stats}");
    assert!(stats.slowest[0].2 >= Duration::from_millis(60));
    assert_eq!(stats.retries.get("503 Service Unavailable"), Some(&10));
    assert_eq!(stats.total_retries(), report.retries);
    let table = stats.to_string();
    assert!(
        table.contains("worker") && table.contains("retried 10×: 503"),
        "{table}"
    );
    assert!(stats.rows_per_second() > 0.0);
}

#[cfg(feature = "async")]
#[test]
fn an_async_calls_stats_count_its_units() {
    let items: Vec<u32> = (0..50).collect();
    let (_, report) = Flock::new()
        .retries(policy(2))
        .on(&items)
        .io()
        .keep_going()
        .par_apply_rows(async |&x| {
            if x == 7 && attempt() == 1 {
                return Err("reset".into());
            }
            if x == 9 {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            Ok(x)
        })
        .wait()
        .unwrap();
    let stats = &report.stats;
    assert_eq!((stats.rows, stats.blocks), (50, 50));
    assert!(stats.workers.is_empty());
    assert_eq!(stats.slowest[0].1, 9..10);
    assert_eq!(stats.retries.get("reset"), Some(&1));
}

/// A closure that sleeps `ms` milliseconds a millisecond at a time, checking its deadline.
fn patient(ms: u64) -> Result<u64, BoxError> {
    for _ in 0..ms {
        polars_flock::check_unit()?;
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(ms)
}

#[test]
fn a_hung_synchronous_row_is_ended_within_about_its_unit_timeout() {
    let flock = Flock::new()
        .chunksize(1)
        .threads(2)
        .unit_timeout(Duration::from_millis(100));
    let start = Instant::now();
    let (out, report) = flock
        .on(&[5u64, 60_000, 5][..])
        .keep_going()
        .par_apply_rows(|&ms| patient(ms))
        .unwrap();
    let took = start.elapsed();
    assert_eq!(out, [Some(5), None, Some(5)]);
    assert!(took < Duration::from_secs(2), "{took:?}");
    let Error::Row { row: 1, source } = &report.failures[0].error else {
        panic!("{:?}", report.failures)
    };
    assert!(
        matches!(source.downcast_ref(), Some(Error::UnitTimedOut { timeout }) if *timeout == Duration::from_millis(100)),
        "{source}"
    );
    // Fail-fast on a frame: the row's error, naming it.
    let df = ids(3);
    let err = flock
        .on(&df)
        .par_apply_rows("y", |row| {
            patient(if row.i64("i")? == 2 { 60_000 } else { 1 })
        })
        .unwrap_err();
    assert!(matches!(err, Error::Row { row: 2, .. }), "{err:?}");
}

#[test]
fn a_unit_that_returns_after_its_deadline_fails_and_may_be_retried() {
    // No check in the closure: the row returns late, and its output is not accepted.
    let flock = Flock::new().unit_timeout(Duration::from_millis(30));
    let calls = AtomicUsize::new(0);
    let slow_first = |&x: &u32| -> Result<u32, BoxError> {
        calls.fetch_add(1, Ordering::Relaxed);
        if x == 1 && attempt() == 1 {
            std::thread::sleep(Duration::from_millis(80));
        }
        Ok(x)
    };
    let err = flock
        .on(&[0, 1, 2][..])
        .par_apply_rows(slow_first)
        .unwrap_err();
    let Error::Row { row: 1, source } = &err else {
        panic!("{err:?}")
    };
    assert!(matches!(
        source.downcast_ref(),
        Some(Error::UnitTimedOut { .. })
    ));
    // Retried by default: the second attempt is quick.
    let out = flock
        .retries(policy(2))
        .on(&[0, 1, 2][..])
        .par_apply_rows(slow_first)
        .unwrap();
    assert_eq!(out, [0, 1, 2]);
}

#[test]
fn the_units_deadline_is_visible_inside_it_and_nowhere_else() {
    let limit = Duration::from_secs(3);
    let flock = Flock::new().unit_timeout(limit);
    let before = Instant::now();
    let deadlines = flock
        .on(&[0, 1, 2][..])
        .par_apply_rows(|_: &i32| Ok(polars_flock::unit_deadline()))
        .unwrap();
    for d in deadlines {
        let d = d.expect("a deadline inside the unit");
        assert!(d > before && d <= Instant::now() + limit);
    }
    assert_eq!(polars_flock::unit_deadline(), None);
    assert!(polars_flock::check_unit().is_ok());
    // Blocks, groups and files are units too.
    let df = ids(40);
    let err = Flock::new()
        .chunksize(10)
        .unit_timeout(Duration::from_millis(20))
        .on(&df)
        .par_apply_blocks(|b| {
            if b.column("i")?.i64()?.get(0) == Some(20) {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(b)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Block { block: 2, .. }), "{err:?}");
    // Without the option, nothing is limited.
    assert_eq!(
        [0].par_apply_rows(|_: &i32| Ok(polars_flock::unit_deadline()))
            .unwrap(),
        [None]
    );
}

#[test]
fn a_slow_init_fails_its_worker_and_a_late_reconnect_is_retried() {
    // Every `init` sees its deadline, and one past it fails.
    let flock = Flock::new()
        .threads(2)
        .chunksize(5)
        .init_timeout(Duration::from_millis(30));
    let saw_deadline = AtomicUsize::new(0);
    let err = flock
        .on(&(0..20).collect::<Vec<u32>>())
        .par_apply_rows_per_worker(
            || {
                if polars_flock::unit_deadline().is_some() {
                    saw_deadline.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(60));
                Ok(())
            },
            |(), &x| Ok(x),
        )
        .unwrap_err();
    let Error::Init { source, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(source.downcast_ref(), Some(Error::UnitTimedOut { .. })),
        "{source}"
    );
    assert!(saw_deadline.into_inner() >= 1);
    // A reconnect for a retry that comes too late is that attempt's failure; the next one is
    // quick, and the row succeeds.
    let made = AtomicUsize::new(0);
    let out = flock
        .retries(policy(3).reinit(true))
        .on(&[7u32][..])
        .par_apply_rows_per_worker(
            || {
                // The first connection is quick, the second (a reconnect) hangs, the third is quick.
                if made.fetch_add(1, Ordering::SeqCst) == 1 {
                    std::thread::sleep(Duration::from_millis(60));
                }
                Ok(())
            },
            |(), &x| {
                if attempt() == 1 {
                    return Err("reset".into());
                }
                Ok(x)
            },
        )
        .unwrap();
    assert_eq!(out, [7]);
    assert_eq!(made.into_inner(), 3);
}

#[test]
fn a_stalled_block_is_told_once_with_its_rows_and_a_panicking_callback_changes_nothing() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let flock =
        Flock::new()
            .chunksize(10)
            .threads(2)
            .on_stall(Duration::from_millis(40), move |stalled| {
                log.lock().unwrap().extend(stalled.iter().cloned());
            });
    let items: Vec<u64> = (0..40).collect();
    let out = flock
        .on(&items)
        .par_apply_rows(|&x| {
            if x == 25 {
                std::thread::sleep(Duration::from_millis(300));
            }
            Ok(x)
        })
        .unwrap();
    assert_eq!(out, items);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].block, seen[0].rows.clone()), (2, 20..30));
    assert!(seen[0].running >= Duration::from_millis(40));
    assert!(seen[0].thread.is_some());
    // A callback that panics is contained: the call's result is unchanged.
    let flock = Flock::new()
        .chunksize(1)
        .on_stall(Duration::from_millis(10), |_| panic!("a broken logger"));
    let out = flock
        .on(&[1u64, 60][..])
        .par_apply_rows(|&ms| {
            std::thread::sleep(Duration::from_millis(ms));
            Ok(ms)
        })
        .unwrap();
    assert_eq!(out, [1, 60]);
    let err = Flock::new()
        .on_stall(Duration::ZERO, |_| {})
        .on(&[1][..])
        .par_apply_rows(|&x: &i32| Ok(x))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "on_stall",
                ..
            }
        ),
        "{err:?}"
    );
}

/// Key `k` of a flaky service: `/flaky/k` fails `k % 3` times with a 429 and `Retry-After: 1`;
/// key 5 is a permanent 404.
fn flaky_path(k: u32) -> String {
    if k == 5 {
        "/status/404".into()
    } else {
        format!("/flaky/{k}?fails={}", k % 3)
    }
}

/// A 429 as a `Transient` error with the service's wait; any other error as it is.
fn transient_429(e: BoxError) -> BoxError {
    match e.downcast::<http::TooManyRequests>() {
        Ok(too_many) => {
            let after = too_many.0;
            Transient::new(*too_many).after(after).into()
        }
        Err(e) => e,
    }
}

/// The service's 429s were retried after their `Retry-After`, the 404 never.
fn check_flaky_service(
    server: &http::Server,
    out: &[Option<String>],
    report: &polars_flock::Report,
) {
    for (k, v) in out.iter().enumerate() {
        let want = (k != 5).then(|| k.to_string());
        assert_eq!(v.as_deref(), want.as_deref(), "key {k}");
    }
    assert_eq!(report.failures.len(), 1);
    assert!(matches!(report.failures[0].unit, Unit::Row(5)));
    assert_eq!(report.failures[0].attempts, 1);
    assert_eq!(report.retries, 10);
    let arrivals = server.stats.arrivals.lock().unwrap().clone();
    assert_eq!(
        arrivals.iter().filter(|(_, p)| p == "/status/404").count(),
        1
    );
    for k in (0..12u32).filter(|&k| k != 5) {
        let path = flaky_path(k);
        let times: Vec<Instant> = (arrivals.iter())
            .filter(|(_, p)| *p == path)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(times.len(), 1 + (k % 3) as usize, "key {k}");
        for pair in times.windows(2) {
            let waited = pair[1] - pair[0];
            assert!(
                waited >= Duration::from_secs(1),
                "key {k} came back after {waited:?}"
            );
        }
    }
}

#[test]
fn a_services_429_retry_after_is_honoured_and_a_404_is_not_retried() {
    let server = http::Server::start(Duration::ZERO);
    let addr = server.addr;
    let keys: Vec<u32> = (0..12).collect();
    let workers = Workers::new(move || Ok(http::BlockingClient::new(addr)));
    // Only what the closure marks `Transient` is retried.
    let flock = Flock::new()
        .threads(6)
        .chunksize(1)
        .retries(Retry::attempts(3).when(|_| false));
    let (out, report) = flock
        .on(&keys)
        .keep_going()
        .par_apply_rows_per_worker(&workers, |c: &mut http::BlockingClient, &k| {
            c.get(&flaky_path(k)).map_err(transient_429)
        })
        .unwrap();
    check_flaky_service(&server, &out, &report);
}

#[cfg(feature = "async")]
#[test]
fn an_async_call_honours_a_services_retry_after_too() {
    let server = http::Server::start(Duration::ZERO);
    let client = http::Client::new(server.addr);
    let keys: Vec<u32> = (0..12).collect();
    let (out, report) = Flock::new()
        .retries(Retry::attempts(3).when(|_| false))
        .on(&keys)
        .io()
        .keep_going()
        .par_apply_rows(async |&k| client.get(&flaky_path(k)).await.map_err(transient_429))
        .wait()
        .unwrap();
    check_flaky_service(&server, &out, &report);
}

#[test]
fn a_fold_block_whose_row_fails_transiently_is_folded_again_from_its_identity() {
    let items: Vec<i64> = (0..1_000).collect();
    let seed = 7;
    let serial: i64 = items.iter().sum();
    let flock = Flock::new().chunksize(64).threads(2).retries(policy(4));
    let sum = flock
        .on(&items)
        .par_fold(
            || 0i64,
            |acc, &x| {
                flaky(seed, x)?;
                Ok(acc + x)
            },
            |a, b| a + b,
        )
        .unwrap();
    assert_eq!(sum, serial);
    // Rows of a frame, through the row view.
    let df = ids(1_000);
    let sum = flock
        .on(&df)
        .par_fold_rows(
            || 0i64,
            |acc, row| {
                let i = row.i64("i")?;
                flaky(seed, i)?;
                Ok(acc + i)
            },
            |a, b| a + b,
        )
        .unwrap();
    assert_eq!(sum, serial);
    // A row that keeps failing is the call's error, naming it; a crate error is not retried.
    let calls = AtomicUsize::new(0);
    let err = flock
        .on(&items)
        .par_fold(
            || 0i64,
            |acc, &x| {
                if x == 300 {
                    calls.fetch_add(1, Ordering::Relaxed);
                    return Err("down".into());
                }
                Ok(acc + x)
            },
            |a, b| a + b,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Row { row: 300, .. }), "{err:?}");
    assert_eq!(calls.into_inner(), 4);
    let err = flock
        .on(&df)
        .par_fold_rows(|| 0i64, |acc, row| Ok(acc + row.i64("nope")?), |a, b| a + b)
        .unwrap_err();
    assert!(matches!(err, Error::ColumnNotFound { .. }), "{err:?}");
}

#[cfg(feature = "async")]
#[test]
fn an_async_unit_in_flight_too_long_is_told_once() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let items: Vec<u64> = (0..8).collect();
    let out = Flock::new()
        .on_stall(Duration::from_millis(40), move |stalled| {
            log.lock()
                .unwrap()
                .extend(stalled.iter().map(|s| (s.block, s.thread)));
        })
        .on(&items)
        .io()
        .par_apply_rows(async |&x| {
            if x == 3 {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(x)
        })
        .wait()
        .unwrap();
    assert_eq!(out, items);
    assert_eq!(*seen.lock().unwrap(), [(3, None)]);
}
