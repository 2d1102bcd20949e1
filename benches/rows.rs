//! Row applies on a DataFrame, ours (row view and typed path) beside a serial loop and a
//! hand-written rayon loop over the same column slices: the quickstart's haversine, W1 (light),
//! W2 (heavy), W3 (strings).
//!
//! `cargo bench --bench rows`

#[path = "common/mod.rs"]
mod workloads;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use workloads::*;

fn quickstart(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let df = deliveries(N);
    let lat = df
        .column("lat")
        .unwrap()
        .f64()
        .unwrap()
        .cont_slice()
        .unwrap();
    let lon = df
        .column("lon")
        .unwrap()
        .f64()
        .unwrap()
        .cont_slice()
        .unwrap();
    let mut group = c.benchmark_group("quickstart_haversine");
    group
        .throughput(Throughput::Elements(N as u64))
        .sample_size(20);
    group.bench_function("serial", |b| {
        b.iter(|| {
            let out = (0..N).map(|i| haversine_km(lat[i], lon[i])).collect();
            Float64Chunked::from_vec("out".into(), out)
        })
    });
    group.bench_function("rayon", |b| {
        b.iter(|| {
            rayon_ranges(&polars_core::runtime::THREAD_POOL, N, |r| {
                let out = r.map(|i| haversine_km(lat[i], lon[i])).collect();
                Float64Chunked::from_vec("out".into(), out).into_series()
            })
        })
    });
    group.bench_function("rows", |b| {
        b.iter(|| {
            df.par_apply_rows("out", |r| Ok(haversine_km(r.f64("lat")?, r.f64("lon")?)))
                .unwrap()
        })
    });
    group.bench_function("typed", |b| {
        b.iter(|| {
            df.par_apply_columns("out", ["lat", "lon"], |(a, b): (f64, f64)| {
                haversine_km(a, b)
            })
            .unwrap()
        })
    });
    group.finish();
}

fn light(c: &mut Criterion) {
    const N: usize = 2_000_000;
    let df = frame(N);
    let x = df.column("x").unwrap().f64().unwrap().cont_slice().unwrap();
    let y = df.column("y").unwrap().f64().unwrap().cont_slice().unwrap();
    let k = df.column("k").unwrap().i64().unwrap().cont_slice().unwrap();
    let mut group = c.benchmark_group("w1_light");
    group
        .throughput(Throughput::Elements(N as u64))
        .sample_size(20);
    group.bench_function("serial", |b| {
        b.iter(|| {
            Float64Chunked::from_vec("out".into(), (0..N).map(|i| w1(x[i], y[i], k[i])).collect())
        })
    });
    group.bench_function("rayon", |b| {
        b.iter(|| {
            rayon_ranges(&polars_core::runtime::THREAD_POOL, N, |r| {
                Float64Chunked::from_vec("out".into(), r.map(|i| w1(x[i], y[i], k[i])).collect())
                    .into_series()
            })
        })
    });
    group.bench_function("rows", |b| {
        b.iter(|| {
            df.par_apply_rows("out", |r| Ok(w1(r.f64("x")?, r.f64("y")?, r.i64("k")?)))
                .unwrap()
        })
    });
    group.bench_function("typed", |b| {
        b.iter(|| {
            df.par_apply_columns("out", ["x", "y", "k"], |(x, y, k): (f64, f64, i64)| {
                w1(x, y, k)
            })
            .unwrap()
        })
    });
    group.finish();
}

fn heavy(c: &mut Criterion) {
    const N: usize = 20_000;
    let df = frame(N);
    let x = df.column("x").unwrap().f64().unwrap().cont_slice().unwrap();
    let k = df.column("k").unwrap().i64().unwrap().cont_slice().unwrap();
    let mut group = c.benchmark_group("w2_heavy");
    group
        .throughput(Throughput::Elements(N as u64))
        .sample_size(10);
    group.bench_function("serial", |b| {
        b.iter(|| Float64Chunked::from_vec("out".into(), (0..N).map(|i| w2(x[i], k[i])).collect()))
    });
    group.bench_function("rayon", |b| {
        b.iter(|| {
            rayon_ranges(&polars_core::runtime::THREAD_POOL, N, |r| {
                Float64Chunked::from_vec("out".into(), r.map(|i| w2(x[i], k[i])).collect())
                    .into_series()
            })
        })
    });
    group.bench_function("rows", |b| {
        b.iter(|| {
            df.par_apply_rows("out", |r| Ok(w2(r.f64("x")?, r.i64("k")?)))
                .unwrap()
        })
    });
    group.bench_function("typed", |b| {
        b.iter(|| {
            df.par_apply_columns("out", ["x", "k"], |(x, k): (f64, i64)| w2(x, k))
                .unwrap()
        })
    });
    group.finish();
}

fn strings(c: &mut Criterion) {
    const N: usize = 2_000_000;
    let df = frame(N);
    let arr = df
        .column("s")
        .unwrap()
        .str()
        .unwrap()
        .downcast_iter()
        .next()
        .unwrap()
        .clone();
    let mut group = c.benchmark_group("w3_strings");
    group
        .throughput(Throughput::Elements(N as u64))
        .sample_size(20);
    group.bench_function("serial", |b| {
        b.iter(|| Int64Chunked::from_vec("out".into(), arr.values_iter().map(w3).collect()))
    });
    group.bench_function("rayon", |b| {
        b.iter(|| {
            rayon_ranges(&polars_core::runtime::THREAD_POOL, N, |r| {
                Int64Chunked::from_vec("out".into(), r.map(|i| w3(arr.value(i))).collect())
                    .into_series()
            })
        })
    });
    group.bench_function(BenchmarkId::new("rows", N), |b| {
        b.iter(|| df.par_apply_rows("out", |r| Ok(w3(r.str("s")?))).unwrap())
    });
    group.bench_function("typed", |b| {
        b.iter(|| df.par_apply_columns("out", ["s"], |s: &str| w3(s)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, quickstart, light, heavy, strings);
criterion_main!(benches);
