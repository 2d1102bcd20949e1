//! Per-worker PostgreSQL connections over loopback, and IO pools bigger than the core count.
//!
//! ```text
//! cargo run --release --features postgres --example postgres
//! ```
//!
//! Starts a throwaway PostgreSQL server (the server binaries must be installed: Debian's
//! `postgresql` package), fills a lookup table, then looks up one key per row: a connection per
//! row, a connection per worker on a cores-sized pool, and on pools of 4x, 8x and 16x cores; once
//! plain, once with a 1 ms server-side wait (`pg_sleep(0.001)`), which stands for a remote
//! database's network and disk latency without using this machine's cores. With the `async`
//! feature too, an async column: the same lookups with 256 queries in flight on one thread.
//! Last, a long job meets a server restart (`pg_ctl stop -m immediate`, then start) in its
//! middle and finishes: retries make each worker's connection again (`Retry::reinit`), and the
//! report says where the time went.

#[path = "../tests/common/pg.rs"]
mod pg;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use polars_flock::polars::prelude::*;
use polars_flock::postgres::{Client, NoTls};
use polars_flock::prelude::*;
use polars_flock::{BoxError, Flock, Retry, Transient, Workers};

fn main() -> Result<(), BoxError> {
    let server = pg::PgServer::with_lookup(10_000)?;
    let url = server.url();
    let mut admin = Client::connect(&url, NoTls)?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let backends = |c: &mut Client| -> Result<i64, BoxError> {
        Ok(c.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
            &[],
        )?
        .get(0))
    };
    let baseline = backends(&mut admin)?;
    // For the async column (feature `async`): 32 tokio-postgres connections, opened on first use
    // by `io::Clients` (here by a first call, before the timings) and kept across calls; their
    // tasks run on the crate's runtime. Dropped before the connection count below.
    #[cfg(feature = "async")]
    let clients = {
        let clients = polars_flock::io::Clients::new(32, async || {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            Ok(client)
        });
        let slots: Vec<usize> = (0..clients.len()).collect();
        slots
            .io()
            .par_apply_rows(async |&i| Ok(clients.get(i).await.map(|_| ())?))
            .wait()?;
        clients
    };

    for (name, sql) in [
        ("plain lookup", "SELECT label FROM lookup WHERE k = $1"),
        (
            "lookup + 1 ms wait",
            "SELECT label FROM lookup, pg_sleep(0.001) WHERE k = $1",
        ),
    ] {
        println!("## {name}");
        let lookup = |c: &mut Client, row: &Row<'_>| -> Result<String, BoxError> {
            let k = row.i64("k")?;
            Ok(c.query_one(sql, &[&k])?.get(0))
        };
        // A connection per row: few rows, it is slow.
        let few = df!("k" => (0..200i64).collect::<Vec<_>>())?;
        let t = Instant::now();
        Flock::new()
            .threads(cores)
            .on(&few)
            .par_apply_rows("label", |row| {
                let mut c = Client::connect(&url, NoTls)?;
                lookup(&mut c, row)
            })?;
        let per_row = few.height() as f64 / t.elapsed().as_secs_f64();
        println!("  connection per row, {cores} threads: {per_row:.0} rows/s");
        let many = df!("k" => (0..4_000i64).map(|i| (i * 7) % 10_000).collect::<Vec<_>>())?;
        let mut base = 0.0;
        for factor in [1, 4, 8, 16] {
            let threads = cores * factor;
            let t = Instant::now();
            Flock::new()
                .threads(threads)
                .chunksize(50)
                .on(&many)
                .par_apply_rows_per_worker("label", || Ok(Client::connect(&url, NoTls)?), lookup)?;
            let rate = many.height() as f64 / t.elapsed().as_secs_f64();
            if factor == 1 {
                base = rate;
            }
            println!(
                "  connection per worker, {threads} threads ({factor}x cores): {rate:.0} rows/s ({:.1}x per row, {:.2}x the cores-sized pool)",
                rate / per_row,
                rate / base
            );
        }
        // The async column (feature `async`): 256 queries in flight from one thread, over 32
        // tokio-postgres connections opened on first use (`io::Clients`; each pipelines its
        // rows' queries; the connections' tasks run on the crate's runtime).
        #[cfg(feature = "async")]
        {
            let t = Instant::now();
            let out = Flock::new()
                .concurrency(256)
                .on(&many)
                .io()
                .par_apply_rows("label", async |row| {
                    let client = clients.get(row.index()).await?;
                    let label: String = client.query_one(sql, &[&row.i64("k")?]).await?.get(0);
                    Ok(label)
                })
                .wait()?;
            assert_eq!(out.height(), many.height());
            let rate = many.height() as f64 / t.elapsed().as_secs_f64();
            println!(
                "  async, 256 in flight over 32 connections, one thread: {rate:.0} rows/s ({:.2}x the cores-sized pool)",
                rate / base
            );
        }
    }
    #[cfg(feature = "async")]
    drop(clients);
    restart_mid_run(&server)?;
    // The restart closed this connection too.
    admin = Client::connect(&url, NoTls)?;
    let t = Instant::now();
    while backends(&mut admin)? != baseline && t.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    println!(
        "connections open after the calls: {} (baseline {baseline})",
        backends(&mut admin)?
    );
    Ok(())
}

/// 20,000 lookups through one connection per worker while the server restarts after the first
/// 5,000: a closed connection is a `Transient` error asking for a new connection, retried with
/// backoff until the server is back.
fn restart_mid_run(server: &pg::PgServer) -> Result<(), BoxError> {
    println!("## the server restarts mid-run");
    let url = server.url();
    let workers = Workers::new(|| Ok(Client::connect(&url, NoTls)?));
    let done = AtomicUsize::new(0);
    let df = df!("k" => (0..20_000i64).map(|i| (i * 7) % 10_000).collect::<Vec<_>>())?;
    let flock = Flock::new().threads(4).chunksize(250).retries(
        Retry::attempts(30).backoff(Duration::from_millis(20), Duration::from_millis(500)),
    );
    let t = Instant::now();
    let (out, report) = flock.on(&df).keep_going().par_apply_rows_per_worker(
        "label",
        &workers,
        |c: &mut Client, row| -> Result<String, BoxError> {
            if done.fetch_add(1, Ordering::SeqCst) == 5_000 {
                server.stop()?; // as a crash would
                server.restart()?;
            }
            match c.query_one("SELECT label FROM lookup WHERE k = $1", &[&row.i64("k")?]) {
                Ok(found) => Ok(found.get(0)),
                Err(e) if c.is_closed() || e.is_closed() => Err(Transient::new(e).reinit().into()),
                Err(e) => Err(e.into()),
            }
        },
    )?;
    println!(
        "  {} rows in {:.2} s, {} null, {} retries, {} connections made in all",
        out.height(),
        t.elapsed().as_secs_f64(),
        out.column("label")?.null_count(),
        report.retries,
        workers.inits()
    );
    assert!(report.is_complete(), "{:?}", report.failures.first());
    print!("{}", report.stats);
    // Nothing failed for good; had something, this is the frame to write next to the output.
    assert_eq!(report.failures_frame().height(), 0);
    Ok(())
}
