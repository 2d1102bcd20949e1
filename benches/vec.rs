//! Vec map (W5: the splitmix64 finaliser iterated 100 times per item): ours beside a serial
//! `iter().map().collect()` and rayon's `par_iter().map().collect()`.
//!
//! `cargo bench --bench vec`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use polars_flock::prelude::*;
use rayon::prelude::*;

const ITEMS: u64 = 1_000_000;

fn work(x: &u64) -> u64 {
    let mut z = *x;
    for _ in 0..100 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

fn bench(c: &mut Criterion) {
    let items: Vec<u64> = (0..ITEMS).collect();
    let mut group = c.benchmark_group("vec_map");
    group
        .throughput(Throughput::Elements(ITEMS))
        .sample_size(10);
    group.bench_function("serial", |b| {
        b.iter(|| items.iter().map(work).collect::<Vec<_>>())
    });
    group.bench_function("rayon", |b| {
        b.iter(|| {
            polars_core::runtime::THREAD_POOL
                .install(|| items.par_iter().map(work).collect::<Vec<_>>())
        })
    });
    group.bench_function("ours", |b| b.iter(|| items.par_apply_rows(work).unwrap()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
