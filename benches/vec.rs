//! Vec map (W5: the splitmix64 finaliser iterated 100 times per item): ours beside a serial
//! `iter().map().collect()` and rayon's `par_iter().map().collect()`; and a small input of cheap
//! items (100 items of a few nanoseconds), where the adaptive plan must stay on the calling
//! thread: its cost over the serial loop is the overhead of a call.
//!
//! `cargo bench --bench vec`

#[path = "common/mod.rs"]
mod workloads;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use polars_flock::prelude::*;
use rayon::prelude::*;
use workloads::w5;

fn bench(c: &mut Criterion) {
    const ITEMS: u64 = 1_000_000;
    let items: Vec<u64> = (0..ITEMS).collect();
    let mut group = c.benchmark_group("w5_vec");
    group
        .throughput(Throughput::Elements(ITEMS))
        .sample_size(10);
    group.bench_function("serial", |b| {
        b.iter(|| items.iter().map(w5).collect::<Vec<_>>())
    });
    group.bench_function("rayon", |b| {
        b.iter(|| {
            polars_core::runtime::THREAD_POOL
                .install(|| items.par_iter().map(w5).collect::<Vec<_>>())
        })
    });
    group.bench_function("vec", |b| {
        b.iter(|| items.par_apply_rows(|x| Ok(w5(x))).unwrap())
    });
    group.finish();

    let small: Vec<u64> = (0..100).collect();
    let mut group = c.benchmark_group("small_cheap");
    group.throughput(Throughput::Elements(100));
    group.bench_function("serial", |b| {
        b.iter(|| small.iter().map(|x| x * 3 + 1).collect::<Vec<_>>())
    });
    group.bench_function("vec", |b| {
        b.iter(|| small.par_apply_rows(|x| Ok(x * 3 + 1)).unwrap())
    });
    let frame = polars_flock::polars::prelude::df!("x" => (0..100i64).collect::<Vec<_>>()).unwrap();
    group.bench_function("frame_rows", |b| {
        b.iter(|| {
            frame
                .par_apply_rows("y", |row| Ok(row.i64("x")? * 3 + 1))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
