//! Block apply (W4: a per-block z-score): ours beside a serial loop over the same blocks.
//!
//! `cargo bench --bench blocks`

#[path = "common/mod.rs"]
mod workloads;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use polars_flock::Flock;
use polars_flock::prelude::*;
use workloads::*;

fn bench(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let df = frame(N);
    let flock = Flock::new();
    let plan = flock.plan(N).unwrap();
    let cs = plan.chunksize();
    let mut group = c.benchmark_group("w4_blocks");
    group
        .throughput(Throughput::Elements(N as u64))
        .sample_size(20);
    group.bench_function("serial_blocks", |b| {
        b.iter(|| {
            let mut out = w4(df.slice(0, cs)).unwrap();
            for block in 1..plan.blocks() {
                out.vstack_mut_owned(w4(df.slice((block * cs) as i64, cs)).unwrap())
                    .unwrap();
            }
            out
        })
    });
    group.bench_function("blocks", |b| {
        b.iter(|| flock.on(&df).par_apply_blocks(w4).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
