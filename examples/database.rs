//! Per-worker database connections (Flock's `DatabaseAsync`) against a real SQLite file.
//!
//! Run with `cargo run --release --example database --features sqlite`. It creates a SQLite file
//! with a lookup table, enriches a generated 200,000-row frame by looking up each row's key
//! through one connection per worker, compares that with opening a connection per row, then
//! writes the results back through per-worker write transactions, one per block, and counts the
//! rows to show that nothing was lost or duplicated.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::rusqlite::{self, Connection, OpenFlags, params};
use polars_flock::{Flock, Result};

const ROWS: i64 = 200_000;
const LOOKUP_ROWS: i64 = 1_000;
const PER_ROW_SAMPLE: i64 = 20_000;

/// A read-write connection that waits for other writers instead of failing with "busy".
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(conn)
}

/// The per-row work (W6): look up `k`'s label, return its length.
fn label_len(conn: &Connection, k: i64) -> rusqlite::Result<i64> {
    let label: String = conn
        .prepare_cached("SELECT label FROM lookup WHERE k = ?1")?
        .query_row([k], |r| r.get(0))?;
    Ok(label.len() as i64)
}

fn count_results(path: &Path) -> rusqlite::Result<(i64, i64)> {
    connect(path)?.query_row(
        "SELECT COUNT(*), COUNT(DISTINCT id) FROM results",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

fn main() -> Result<(), BoxError> {
    // --- 1. A SQLite file with a lookup table -----------------------------------------------
    let dir = std::env::temp_dir().join(format!("polars-flock-database-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("lookup.sqlite");
    let _ = std::fs::remove_file(&path);
    let mut conn = Connection::open(&path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE lookup (k INTEGER PRIMARY KEY, label TEXT NOT NULL);
         CREATE TABLE results (id INTEGER NOT NULL, k INTEGER NOT NULL, label_len INTEGER NOT NULL);",
    )?;
    let tx = conn.transaction()?;
    for k in 0..LOOKUP_ROWS {
        tx.execute(
            "INSERT INTO lookup VALUES (?1, ?2)",
            params![k, format!("label-{}", "x".repeat((k % 13) as usize))],
        )?;
    }
    tx.commit()?;
    drop(conn);
    println!(
        "[1] {} with lookup(k, label): {LOOKUP_ROWS} rows",
        path.display()
    );

    // --- 2. The frame to enrich -------------------------------------------------------------
    let df = df!(
        "id" => (0..ROWS).collect::<Vec<_>>(),
        "k" => (0..ROWS).map(|i| i % LOOKUP_ROWS).collect::<Vec<_>>(),
    )?;
    println!("[2] frame: {} rows", df.height());

    // --- 3. One connection per worker --------------------------------------------------------
    let threads = Flock::new().plan(1)?.threads();
    let opened = AtomicUsize::new(0);
    let workers_flock = Flock::new().threads(threads);
    let workers = Workers::new(|| {
        opened.fetch_add(1, Ordering::Relaxed);
        Ok(connect(&path)?)
    });
    let start = Instant::now();
    let enriched =
        workers_flock
            .on(&df)
            .par_apply_rows_per_worker("label_len", &workers, |conn, row| {
                Ok(label_len(conn, row.i64("k")?)?)
            })?;
    let per_worker = start.elapsed().as_secs_f64();
    println!(
        "[3] per-worker connections: {} rows in {:.3} s ({:.0} rows/s), {} connections opened on {threads} threads\n{}",
        enriched.height(),
        per_worker,
        ROWS as f64 / per_worker,
        opened.load(Ordering::Relaxed),
        enriched.head(Some(4)),
    );

    // --- 4. The slow way: a connection per row ----------------------------------------------
    let sample = df.head(Some(PER_ROW_SAMPLE as usize));
    let start = Instant::now();
    let slow = Flock::new()
        .threads(threads)
        .on(&sample)
        .par_apply_rows("label_len", |row| {
            let conn = connect(&path)?; // opened and closed for every row
            Ok(label_len(&conn, row.i64("k")?)?)
        })?;
    let per_row = start.elapsed().as_secs_f64();
    let expected = enriched.head(Some(PER_ROW_SAMPLE as usize));
    assert!(
        slow.column("label_len")?
            .equals(expected.column("label_len")?)
    );
    let per_row_rate = PER_ROW_SAMPLE as f64 / per_row;
    println!(
        "[4] a connection per row: {PER_ROW_SAMPLE} rows in {per_row:.3} s ({per_row_rate:.0} rows/s)\n    \
         per-worker is {:.1}x faster (rows/s, same threads, same run)",
        (ROWS as f64 / per_worker) / per_row_rate
    );

    // --- 5. Write back through per-worker write transactions --------------------------------
    let before = count_results(&path)?;
    let writers_flock = Flock::new().threads(threads).chunksize(10_000);
    let writers = Workers::new(|| Ok(connect(&path)?));
    let start = Instant::now();
    let batches =
        writers_flock
            .on(&enriched)
            .par_apply_blocks_per_worker(&writers, |conn, block| {
                let tx = conn.transaction()?;
                {
                    let mut insert =
                        tx.prepare_cached("INSERT INTO results VALUES (?1, ?2, ?3)")?;
                    let ids = block.column("id")?.i64()?;
                    let ks = block.column("k")?.i64()?;
                    let lens = block.column("label_len")?.i64()?;
                    for ((id, k), len) in ids
                        .into_no_null_iter()
                        .zip(ks.into_no_null_iter())
                        .zip(lens.into_no_null_iter())
                    {
                        insert.execute(params![id, k, len])?;
                    }
                }
                tx.commit()?;
                Ok(df!("rows_written" => [block.height() as u64])?)
            })?;
    let after = count_results(&path)?;
    println!(
        "[5] wrote {} batches in {:.3} s; results table: {} rows before, {} rows ({} distinct ids) after",
        batches.height(),
        start.elapsed().as_secs_f64(),
        before.0,
        after.0,
        after.1
    );
    assert_eq!(after, (ROWS, ROWS), "rows were lost or duplicated");

    drop((workers, writers)); // closes every connection
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
