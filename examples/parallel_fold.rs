//! Parallel fold (toolz's `fold`): a histogram of 20 million values and per-city statistics over
//! a frame's rows, folded per block and combined in order — checked equal to the serial fold,
//! with the timings.
//!
//! Run with `cargo run --release --example parallel_fold`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use polars_flock::Result;
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;

fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A bucket for a value: the number of trailing zeros of a hash of it (a skewed histogram).
fn bucket(x: u64) -> usize {
    let mut s = x;
    (next(&mut s).trailing_zeros() as usize).min(31)
}

/// Median times of 5 interleaved runs of `serial` and `parallel`, and their last results.
fn race<A, B>(
    mut serial: impl FnMut() -> A,
    mut parallel: impl FnMut() -> B,
) -> (Duration, Duration, A, B) {
    let (mut ts, mut tp) = (Vec::new(), Vec::new());
    let (mut a, mut b) = (None, None);
    for _ in 0..5 {
        let start = Instant::now();
        a = Some(serial());
        ts.push(start.elapsed());
        let start = Instant::now();
        b = Some(parallel());
        tp.push(start.elapsed());
    }
    ts.sort();
    tp.sort();
    (ts[2], tp[2], a.expect("ran"), b.expect("ran"))
}

fn main() -> Result<()> {
    // --- 1. A Vec: a 32-bucket histogram -----------------------------------------------------
    let values: Vec<u64> = (0..20_000_000).collect();
    let add = |mut h: [u64; 32], x: &u64| {
        h[bucket(*x)] += 1;
        h
    };
    let merge = |mut a: [u64; 32], b: [u64; 32]| {
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
        a
    };
    let (t_serial, t_par, serial, parallel) = race(
        || values.iter().fold([0u64; 32], add),
        || values.par_fold(|| [0u64; 32], |h, x| Ok(add(h, x)), merge),
    );
    let parallel = parallel?;
    assert_eq!(serial, parallel);
    // The same with hand-written rayon, for reference.
    let (_, t_rayon, _, by_rayon) = race(
        || (),
        || {
            use rayon::prelude::*;
            let chunk = values.len().div_ceil(8);
            values
                .par_chunks(chunk)
                .map(|c| c.iter().fold([0u64; 32], add))
                .reduce(|| [0u64; 32], merge)
        },
    );
    assert_eq!(by_rayon, serial);
    println!(
        "[1] histogram of {} values: serial fold {t_serial:.2?}, par_fold {t_par:.2?}: {:.2}x \
         (median of 5; hand-written rayon {t_rayon:.2?}, {:.2}x); equal; first buckets {:?}",
        values.len(),
        t_serial.as_secs_f64() / t_par.as_secs_f64(),
        t_serial.as_secs_f64() / t_rayon.as_secs_f64(),
        &parallel[..4]
    );

    // --- 2. A frame's rows: count and total per city (a map merged in block order) -------------
    let cities = ["Oslo", "Rome", "Lima", "Pune", "Kyiv"];
    let mut state = 3;
    let n = 2_000_000;
    let city: Vec<&str> = (0..n)
        .map(|_| cities[(next(&mut state) % 5) as usize])
        .collect();
    let amount: Vec<f64> = (0..n)
        .map(|_| (next(&mut state) % 10_000) as f64 / 100.0)
        .collect();
    let df = df!("city" => &city, "amount" => &amount)?;
    type Stats = BTreeMap<String, (u64, f64)>;
    let serial_fold = || {
        let mut serial = Stats::new();
        for (c, a) in city.iter().zip(&amount) {
            let e = serial.entry((*c).to_owned()).or_default();
            *e = (e.0 + 1, e.1 + a);
        }
        serial
    };
    let parallel_fold = || {
        df.par_fold_rows(
            Stats::new,
            |mut acc, row| {
                let e = acc.entry(row.str("city")?.to_owned()).or_default();
                *e = (e.0 + 1, e.1 + row.f64("amount")?);
                Ok(acc)
            },
            |mut a, b| {
                for (k, (n, s)) in b {
                    let e = a.entry(k).or_default();
                    *e = (e.0 + n, e.1 + s);
                }
                a
            },
        )
    };
    let (t_serial, t_par, serial, parallel) = race(serial_fold, parallel_fold);
    let parallel = parallel?;
    for (k, (n, s)) in &serial {
        let (pn, ps) = parallel[k];
        assert_eq!(*n, pn);
        assert!((s - ps).abs() < 1e-6 * s.abs().max(1.0)); // float sums differ in rounding only
    }
    println!(
        "[2] per-city stats over {n} rows: serial loop {t_serial:.2?}, par_fold_rows {t_par:.2?}: \
         {:.2}x (median of 5)",
        t_serial.as_secs_f64() / t_par.as_secs_f64()
    );
    for (k, (n, s)) in &parallel {
        println!("    {k}: {n} sales, mean {:.2}", s / *n as f64);
    }
    Ok(())
}
