//! Per-worker connections against real SQLite files (rusqlite, SQLite bundled).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Error, Flock};
use rusqlite::{Connection, OpenFlags, params};

const LOOKUP_ROWS: i64 = 1_000;

fn label(k: i64) -> String {
    format!("label-{k}-{}", "x".repeat((k % 7) as usize))
}

/// A database file with `lookup(k INTEGER PRIMARY KEY, label TEXT)` and an empty `results` table.
fn database(dir: &Path) -> PathBuf {
    let path = dir.join("flock.sqlite");
    let mut conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE lookup (k INTEGER PRIMARY KEY, label TEXT NOT NULL);
         CREATE TABLE results (id INTEGER NOT NULL, label_len INTEGER NOT NULL);",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    for k in 0..LOOKUP_ROWS {
        tx.execute("INSERT INTO lookup VALUES (?1, ?2)", params![k, label(k)])
            .unwrap();
    }
    tx.commit().unwrap();
    path
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(conn)
}

fn lookup(conn: &Connection, k: i64) -> rusqlite::Result<String> {
    conn.prepare_cached("SELECT label FROM lookup WHERE k = ?1")?
        .query_row([k], |r| r.get(0))
}

fn frame(n: i64) -> DataFrame {
    df!("id" => (0..n).collect::<Vec<_>>(), "k" => (0..n).map(|i| (i * 7) % LOOKUP_ROWS).collect::<Vec<_>>()).unwrap()
}

#[test]
fn per_worker_lookups_equal_a_serial_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(dir.path());
    let df = frame(20_000);

    let conn = open(&path).unwrap();
    let serial: Vec<i64> = (0..20_000)
        .map(|i| lookup(&conn, (i * 7) % LOOKUP_ROWS).unwrap().len() as i64)
        .collect();

    for flock in [
        Flock::new().chunksize(500),
        Flock::new().threads(4).chunksize(250),
        Flock::new().threads(16),
    ] {
        let threads = flock.plan(1).unwrap().threads();
        let inits = AtomicUsize::new(0);
        let workers_flock = flock;
        let workers = Workers::new(|| {
            inits.fetch_add(1, Ordering::Relaxed);
            Ok(open(&path)?)
        });
        let out = workers_flock
            .on(&df)
            .par_apply_rows_per_worker("label_len", &workers, |conn, row| {
                let label = lookup(conn, row.i64("k")?)?;
                Ok(label.len() as i64)
            })
            .unwrap();
        let got: Vec<i64> = out
            .column("label_len")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(got, serial);
        let opened = inits.load(Ordering::Relaxed);
        assert!(
            (1..=threads).contains(&opened),
            "{opened} connections for {threads} threads"
        );
    }
}

#[test]
fn failing_init_with_a_bad_path_is_an_init_error() {
    let df = frame(1_000);
    let err = df
        .par_apply_rows_per_worker(
            "label_len",
            || {
                Ok(Connection::open_with_flags(
                    "/no/such/dir/flock.sqlite",
                    OpenFlags::SQLITE_OPEN_READ_ONLY,
                )?)
            },
            |conn, row| Ok(lookup(conn, row.i64("k")?)?.len() as i64),
        )
        .unwrap_err();
    match err {
        Error::Init {
            block: 0,
            completed_blocks,
            source,
            ..
        } => {
            assert!(completed_blocks.is_empty());
            assert!(
                source.downcast_ref::<rusqlite::Error>().is_some(),
                "{source}"
            );
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn concurrent_writers_lose_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(dir.path());
    let n = 30_000i64;
    let df = frame(n);
    // Each worker writes its blocks through its own connection, one transaction per block.
    let written = Flock::new()
        .threads(4)
        .chunksize(1_000)
        .on(&df)
        .par_apply_blocks_per_worker(
            || Ok(open(&path)?),
            |conn, block| {
                let tx = conn.transaction()?;
                {
                    let mut insert = tx.prepare_cached("INSERT INTO results VALUES (?1, ?2)")?;
                    for (id, k) in block
                        .column("id")?
                        .i64()?
                        .into_no_null_iter()
                        .zip(block.column("k")?.i64()?.into_no_null_iter())
                    {
                        insert.execute(params![id, label(k).len() as i64])?;
                    }
                }
                tx.commit()?;
                Ok(df!("written" => [block.height() as u64])?)
            },
        )
        .unwrap();
    assert_eq!(
        written.column("written").unwrap().u64().unwrap().sum(),
        Some(n as u64)
    );

    let conn = open(&path).unwrap();
    let (rows, distinct, sum): (i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT id), SUM(id) FROM results",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (rows, distinct, sum),
        (n, n, n * (n - 1) / 2),
        "rows lost or duplicated"
    );
}

#[test]
fn read_and_write_connections_as_one_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(dir.path());
    let ids: Vec<i64> = (0..5_000).collect();
    let lens = ids
        .par_apply_rows_per_worker(
            || Ok((open(&path)?, open(&path)?)),
            |(read, write), id| {
                let len = lookup(read, id % LOOKUP_ROWS)?.len() as i64;
                write
                    .prepare_cached("INSERT INTO results VALUES (?1, ?2)")?
                    .execute(params![id, len])?;
                Ok(Ok::<_, rusqlite::Error>(len)?)
            },
        )
        .unwrap();
    assert_eq!(
        lens,
        ids.iter()
            .map(|id| label(id % LOOKUP_ROWS).len() as i64)
            .collect::<Vec<_>>()
    );
    let count: i64 = open(&path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM results", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 5_000);
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_errors_convert_with_question_mark_in_row_closures() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(dir.path());
    let df = df!("k" => [1i64, 2, 3]).unwrap();
    let err = df
        .par_apply_rows_per_worker(
            "label",
            || Ok(open(&path)?),
            |conn, row| {
                let k = row.i64("k")?;
                // No such table: a rusqlite error, converted by `?`.
                let label: String =
                    conn.query_row("SELECT label FROM missing WHERE k = ?1", [k], |r| r.get(0))?;
                Ok(label)
            },
        )
        .unwrap_err();
    let Error::Row { row: 0, source } = err else {
        panic!("unexpected {err}")
    };
    assert!(source.downcast_ref::<rusqlite::Error>().is_some());
}
