//! Memory stays flat across repeated calls: no cache, pool or result outlives its call.
//!
//! The only test in its binary, so that no other test's allocations move the process's RSS.

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{CancelToken, Flock};

/// Resident set size in bytes (Linux; `None` elsewhere).
fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn one_round(df: &DataFrame, items: &[u64]) {
    let out = df
        .par_apply_rows("y", |row| Ok(row.f64("x")? * 2.0))
        .unwrap()
        .par_apply_columns("z", ["x"], |x: f64| x + 1.0)
        .unwrap()
        .par_apply_blocks(Ok)
        .unwrap();
    assert_eq!(out.height(), df.height());
    let (_, report) = df
        .keep_going()
        .par_apply_rows("k", |row| {
            let x = row.f64("x")?;
            if (x as u64).is_multiple_of(1_000) {
                return Err(polars_flock::BoxError::from("bad"));
            }
            Ok(x)
        })
        .unwrap();
    assert_eq!(report.failures.len(), df.height() / 1_000);
    // A fresh owned pool, token and progress callback every round: all must go away with the call.
    let token = CancelToken::new();
    let flock = Flock::new()
        .threads(2)
        .cancel_token(&token)
        .on_progress(|_, _| {});
    let doubled = flock.on(&items).par_apply_rows(|x| Ok(x * 2)).unwrap();
    assert_eq!(doubled.len(), items.len());
    let per_worker = items
        .par_apply_rows_per_worker(
            || Ok(vec![0u8; 1 << 20]),
            |buf, x| {
                buf[0] = *x as u8;
                Ok(*x)
            },
        )
        .unwrap();
    assert_eq!(per_worker.len(), items.len());
}

#[test]
fn rss_stays_flat_over_100_calls() {
    let Some(_) = rss() else {
        eprintln!("no /proc/self/statm: skipped");
        return;
    };
    let n = 200_000;
    let df = df!("x" => (0..n).map(|i| i as f64).collect::<Vec<_>>()).unwrap();
    let items: Vec<u64> = (0..n as u64).collect();
    // Warm up: allocator arenas, Polars' pool and lazily built statics reach their steady size.
    // glibc gives the threads of each round's new pool arenas of their own (up to 8 per core),
    // which keep freed memory: RSS may grow by tens of MiB over the first rounds and then stays
    // put (one CI run saw +49 MiB over rounds 10–110). A leak grows in every window instead.
    for _ in 0..10 {
        one_round(&df, &items);
    }
    let mut samples = vec![rss().unwrap()];
    for _ in 0..3 {
        for _ in 0..40 {
            one_round(&df, &items);
        }
        samples.push(rss().unwrap());
    }
    let mib = |bytes: usize| bytes as f64 / (1 << 20) as f64;
    let growth: Vec<f64> = samples
        .windows(2)
        .map(|w| mib(w[1].saturating_sub(w[0])))
        .collect();
    eprintln!(
        "RSS after 10 rounds {:.1} MiB, then per 40 rounds: {growth:+.1?} MiB",
        mib(samples[0])
    );
    // One round allocates ~20 MiB of outputs; a leak of even one 1.6 MB output column per round
    // would add 64 MiB in each of the last two windows of 40 rounds (a window where an arena
    // grew once more is let pass, not two).
    let least = growth[1].min(growth[2]);
    assert!(
        least < 16.0,
        "RSS grew by {growth:.1?} MiB per 40 rounds: a leak"
    );
}
