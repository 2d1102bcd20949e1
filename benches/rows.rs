//! Row apply on a DataFrame (a light per-row formula, W1's `x * y + k`): ours (row view and typed
//! path) beside a serial loop and a hand-written rayon loop over the same column slices.
//!
//! `cargo bench --bench rows`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use rayon::prelude::*;

const ROWS: usize = 2_000_000;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn frame() -> DataFrame {
    let mut st = 42;
    let mut unit = || (splitmix(&mut st) >> 11) as f64 / (1u64 << 53) as f64;
    let x: Vec<f64> = (0..ROWS).map(|_| unit()).collect();
    let y: Vec<f64> = (0..ROWS).map(|_| unit()).collect();
    let k: Vec<i64> = (0..ROWS as i64).map(|i| i % 1_000).collect();
    df!("x" => x, "y" => y, "k" => k).unwrap()
}

fn bench(c: &mut Criterion) {
    let df = frame();
    let x = df.column("x").unwrap().f64().unwrap().cont_slice().unwrap();
    let y = df.column("y").unwrap().f64().unwrap().cont_slice().unwrap();
    let k = df.column("k").unwrap().i64().unwrap().cont_slice().unwrap();
    let threads = polars_core::runtime::THREAD_POOL.current_num_threads();

    let mut group = c.benchmark_group("rows_light");
    group
        .throughput(Throughput::Elements(ROWS as u64))
        .sample_size(20);
    group.bench_function("serial", |b| {
        b.iter(|| {
            let out: Vec<f64> = (0..ROWS).map(|i| x[i] * y[i] + k[i] as f64).collect();
            Float64Chunked::from_vec("out".into(), out)
        })
    });
    group.bench_function("rayon", |b| {
        let chunk = ROWS.div_ceil(4 * threads);
        b.iter(|| {
            polars_core::runtime::THREAD_POOL.install(|| {
                let parts: Vec<Float64Chunked> = x
                    .par_chunks(chunk)
                    .zip(y.par_chunks(chunk))
                    .zip(k.par_chunks(chunk))
                    .map(|((x, y), k)| {
                        let v: Vec<f64> = x
                            .iter()
                            .zip(y)
                            .zip(k)
                            .map(|((x, y), k)| x * y + *k as f64)
                            .collect();
                        Float64Chunked::from_vec("out".into(), v)
                    })
                    .collect();
                let mut parts = parts.into_iter();
                let mut out = parts.next().unwrap();
                parts.for_each(|p| out.append_owned(p).unwrap());
                out
            })
        })
    });
    group.bench_function("rows", |b| {
        b.iter(|| {
            df.par_apply_rows(
                "out",
                |r| Ok(r.f64("x")? * r.f64("y")? + r.i64("k")? as f64),
            )
            .unwrap()
        })
    });
    group.bench_function("typed", |b| {
        b.iter(|| {
            df.par_apply_columns("out", ["x", "y", "k"], |(x, y, k): (f64, f64, i64)| {
                x * y + k as f64
            })
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
