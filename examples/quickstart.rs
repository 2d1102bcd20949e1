//! Quickstart: a parallel row apply on a 1,000,000-row frame, checked against a serial loop.
//!
//! Run with `cargo run --release --example quickstart`. It builds a frame of generated deliveries
//! in memory, computes each delivery's great-circle distance from a depot serially and with
//! `par_apply_rows`, checks that both agree, prints the timings and the speedup, then keeps the
//! long-haul deliveries with a `par_apply_blocks` step.

use std::time::{Duration, Instant};

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Flock, Result};

const ROWS: usize = 1_000_000;
const DEPOT: (f64, f64) = (59.91, 10.75); // Oslo

/// Haversine distance in km: the per-row work.
fn distance_km(lat: f64, lon: f64) -> f64 {
    let (p1, p2) = (DEPOT.0.to_radians(), lat.to_radians());
    let dp = p2 - p1;
    let dl = (lon - DEPOT.1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    6_371.0 * 2.0 * a.sqrt().asin()
}

/// splitmix64 in [0, 1): deterministic data without a dependency.
fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// Times `f` and returns the duration with the result.
fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() -> Result<()> {
    // --- 1. Build a frame -------------------------------------------------------------------
    let mut state = 42;
    let lat: Vec<f64> = (0..ROWS)
        .map(|_| 35.0 + 35.0 * uniform(&mut state))
        .collect();
    let lon: Vec<f64> = (0..ROWS)
        .map(|_| -10.0 + 40.0 * uniform(&mut state))
        .collect();
    let id: Vec<i64> = (0..ROWS as i64).collect();
    let df = df!("id" => id, "lat" => lat, "lon" => lon)?;
    println!(
        "[1] input: {} rows x {} columns\n{}",
        df.height(),
        df.width(),
        df.head(Some(3))
    );

    // --- 2. Serial reference: a plain loop over the typed columns ---------------------------
    let serial_loop = || -> Result<Vec<f64>> {
        let lat = df.column("lat")?.f64()?;
        let lon = df.column("lon")?.f64()?;
        Ok(lat
            .into_no_null_iter()
            .zip(lon.into_no_null_iter())
            .map(|(a, b)| distance_km(a, b))
            .collect())
    };
    let serial = serial_loop()?;
    println!("[2] serial loop: {} distances", serial.len());

    // --- 3. The same function with par_apply_rows -------------------------------------------
    let rows = || {
        df.par_apply_rows("dist_km", |row| {
            Ok(distance_km(row.f64("lat")?, row.f64("lon")?))
        })
    };
    let out = rows()?;
    let parallel: Vec<f64> = out.column("dist_km")?.f64()?.into_no_null_iter().collect();
    assert_eq!(
        parallel, serial,
        "parallel result differs from the serial loop"
    );
    let plan = Flock::new().plan(df.height())?;
    println!(
        "[3] par_apply_rows == serial loop: true\n    {plan:?}\n{}",
        out.head(Some(5))
    );

    // --- 4. The typed fast path, and timings -------------------------------------------------
    let typed = || {
        df.par_apply_columns("dist_km", ["lat", "lon"], |(a, b): (f64, f64)| {
            distance_km(a, b)
        })
    };
    assert!(typed()?.column("dist_km")?.equals(out.column("dist_km")?));
    // Interleaved runs in a rotating order, so that machine noise hits every method alike:
    // whichever call comes right after the serial loop finds the pool's threads asleep, and on a
    // virtual machine waking them can cost milliseconds.
    let methods: [&dyn Fn() -> Duration; 3] =
        [&|| timed(serial_loop).0, &|| timed(rows).0, &|| {
            timed(typed).0
        }];
    let mut times: [Vec<Duration>; 3] = Default::default();
    for round in 0..9 {
        for k in 0..3 {
            let m = (round + k) % 3;
            times[m].push(methods[m]());
        }
    }
    let [t_serial, t_rows, t_typed] = times;
    let (serial_time, par_time, typed_time) = (median(t_serial), median(t_rows), median(t_typed));
    println!(
        "[4] timings (median of 9 interleaved runs, {} threads):",
        plan.threads()
    );
    println!(
        "    serial loop        {:>8.1} ms",
        serial_time.as_secs_f64() * 1e3
    );
    println!(
        "    par_apply_rows     {:>8.1} ms   speedup {:.2}x",
        par_time.as_secs_f64() * 1e3,
        serial_time.as_secs_f64() / par_time.as_secs_f64()
    );
    println!(
        "    par_apply_columns  {:>8.1} ms   speedup {:.2}x",
        typed_time.as_secs_f64() * 1e3,
        serial_time.as_secs_f64() / typed_time.as_secs_f64()
    );
    println!(
        "    the row view runs at {:.2}x the typed path's throughput",
        typed_time.as_secs_f64() / par_time.as_secs_f64()
    );

    // --- 5. A block step: keep the long-haul deliveries -------------------------------------
    let long_haul = out.par_apply_blocks(|block| {
        let keep = block.column("dist_km")?.f64()?.gt(2_000.0);
        Ok(block.filter(&keep)?)
    })?;
    let expected = serial.iter().filter(|d| **d > 2_000.0).count();
    assert_eq!(long_haul.height(), expected);
    println!(
        "[5] par_apply_blocks: {} of {} deliveries are over 2,000 km\n{}",
        long_haul.height(),
        out.height(),
        long_haul.head(Some(3))
    );
    Ok(())
}
