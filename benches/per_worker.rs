//! Per-worker resources (W6: a SQLite lookup per row): a connection per worker beside a
//! connection per row.
//!
//! `cargo bench --bench per_worker`

#[path = "common/mod.rs"]
mod workloads;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use polars_flock::Flock;
use polars_flock::prelude::*;
use rusqlite::{Connection, OpenFlags};
use workloads::*;

fn bench(c: &mut Criterion) {
    const N: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w6.sqlite");
    let mut conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE lookup (k INTEGER PRIMARY KEY, label TEXT NOT NULL);")
        .unwrap();
    let tx = conn.transaction().unwrap();
    for k in 0..1_000i64 {
        tx.execute("INSERT INTO lookup VALUES (?1, ?2)", (k, w6_label(k)))
            .unwrap();
    }
    tx.commit().unwrap();
    let open = || {
        Ok(Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?)
    };
    let len = |conn: &Connection, k: i64| -> Result<i64, polars_flock::BoxError> {
        let label: String = conn
            .prepare_cached("SELECT label FROM lookup WHERE k = ?1")
            .and_then(|mut s| s.query_row([k], |r| r.get(0)))?;
        Ok(label.len() as i64)
    };
    let df = frame(N);
    let workers_flock = Flock::new();
    let workers = Workers::new(open);
    let mut group = c.benchmark_group("w6_per_worker");
    group
        .throughput(Throughput::Elements(N as u64))
        .sample_size(10);
    group.bench_function("per_row", |b| {
        b.iter(|| {
            df.par_apply_rows("out", |row| len(&open()?, row.i64("k")?))
                .unwrap()
        })
    });
    group.bench_function("per_worker", |b| {
        b.iter(|| {
            workers_flock
                .on(&df)
                .par_apply_rows_per_worker("out", &workers, |conn, row| len(conn, row.i64("k")?))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
