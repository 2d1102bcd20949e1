//! Bigger than RAM: a dataset stored as an Arrow IPC file is streamed batch by batch through a
//! block function, at most a few batches in memory, the results written to a new file in input
//! order — with the peak memory next to the file size; then the row view and keep-going on the
//! same stream, and the stream folded to a total. A stream is an input like a frame: the same
//! verbs, through `Flock::on`.
//!
//! Run with `cargo run --release --example bigger_than_ram --features streaming`.

use std::time::Instant;

use polars_flock::BoxError;
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::streaming::{IpcBatches, IpcSink, Stream, apply_batches_in_order, write_ipc};
use polars_flock::{Flock, Result};

const BATCHES: usize = 64;
const ROWS: usize = 250_000;
const WINDOW: usize = 4;

fn batch(b: usize) -> PolarsResult<DataFrame> {
    let id0 = (b * ROWS) as i64;
    df!(
        "id" => (id0..id0 + ROWS as i64).collect::<Vec<_>>(),
        "x" => (0..ROWS).map(|i| ((b * 7 + i * 13) % 1_000) as f64 / 1_000.0).collect::<Vec<_>>(),
        "y" => (0..ROWS).map(|i| ((b * 11 + i * 17) % 997) as f64).collect::<Vec<_>>(),
    )
}

/// The block function: a few hundred nanoseconds of work per row.
fn enrich(df: DataFrame) -> Result<DataFrame, BoxError> {
    let x = df.column("x")?.f64()?;
    let score: Vec<f64> = x
        .into_no_null_iter()
        .map(|v| (0..40).fold(v, |acc, _| 3.9 * acc * (1.0 - acc)))
        .collect();
    Ok(df.hstack(&[Column::new("score".into(), score)])?)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (input, output) = (
        dir.path().join("events.arrow"),
        dir.path().join("scored.arrow"),
    );

    // --- 1. The dataset: written batch by batch, never whole in memory ------------------------
    write_ipc(&input, (0..BATCHES).map(batch))?;
    let mib = std::fs::metadata(&input)?.len() as f64 / (1 << 20) as f64;
    println!(
        "[1] {} rows in {BATCHES} batches: {mib:.0} MiB on disk",
        BATCHES * ROWS
    );

    // --- 2. Stream it: read → enrich (in parallel) → write, in order ---------------------------
    reset_peak();
    let start = Instant::now();
    let mut sink = IpcSink::create(&output)?;
    let stream = Stream::new(IpcBatches::open(&input)?, |out| Ok(sink.write(&out)?)).window(WINDOW);
    let summary = Flock::new().on(&stream).par_apply_blocks(enrich)?;
    drop(stream);
    sink.finish()?;
    let t_par = start.elapsed();
    println!(
        "[2] par_apply_blocks on a stream, window {WINDOW}: {} batches, {} rows in {t_par:.2?}; at most {} in flight; \
         peak RSS {:.0} MiB for a {mib:.0} MiB dataset",
        summary.batches,
        summary.rows_out,
        summary.max_in_flight,
        peak_rss_mib()
    );

    // --- 3. Compute only (the sink counts rows): the window against one batch at a time -------
    fn count(rows: &mut usize) -> impl FnMut(DataFrame) -> Result<(), BoxError> + '_ {
        move |out| {
            *rows += out.height();
            Ok(())
        }
    }
    let (mut par_rows, mut seq_rows) = (0, 0);
    let start = Instant::now();
    let stream = Stream::new(IpcBatches::open(&input)?, count(&mut par_rows)).window(WINDOW);
    stream.par_apply_blocks(enrich)?;
    drop(stream);
    let t_window = start.elapsed();
    let start = Instant::now();
    apply_batches_in_order(
        &Flock::new(),
        IpcBatches::open(&input)?,
        enrich,
        count(&mut seq_rows),
    )?;
    let t_seq = start.elapsed();
    assert_eq!(par_rows, seq_rows);
    println!(
        "[3] read + enrich, no writing: window {WINDOW} {t_window:.2?}, one batch at a time \
         (apply_batches_in_order) {t_seq:.2?}: {:.2}x",
        t_seq.as_secs_f64() / t_window.as_secs_f64()
    );

    // --- 4. The row view on a stream, keep-going: a bad row is null, reported with its row -----
    let mut nulls = 0;
    let stream = Stream::new(IpcBatches::open(&output)?, |out| {
        nulls += out.column("bucket")?.null_count();
        Ok(())
    });
    let (_, report) = Flock::new()
        .on(&stream)
        .keep_going()
        .par_apply_rows("bucket", |row| {
            let id = row.i64("id")?;
            if id == 1_234_567 {
                return Err(format!("id {id} is reserved").into());
            }
            Ok((row.f64("score")? * 10.0) as i64)
        })?;
    drop(stream);
    println!(
        "[4] keep-going row view over the stream: {} failed row(s) {:?}, {nulls} null(s) written",
        report.failures.len(),
        report.failed_rows().collect::<Vec<_>>()
    );

    // --- 5. Fold instead of writing: the sink keeps a running total -----------------------------
    let mut total = 0.0;
    let mut n = 0usize;
    let stream = Stream::new(IpcBatches::open(&output)?, |out| {
        total += out.column("score")?.f64()?.sum().unwrap_or(0.0);
        n += out.height();
        Ok(())
    });
    stream.par_apply_blocks(Ok)?;
    drop(stream);
    println!(
        "[5] folded the output file: {n} rows, mean score {:.4}",
        total / n as f64
    );
    Ok(())
}
