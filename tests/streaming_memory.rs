//! Bigger than the batch budget: streaming a file many times larger than the batches in flight
//! keeps peak RSS bounded, and the output equals a serial pass over the batches.
//!
//! The only test in its binary, so that no other test's allocations move the process's RSS.
#![cfg(feature = "streaming")]

use polars_flock::BoxError;
use polars_flock::Flock;
use polars_flock::polars::prelude::*;
use polars_flock::streaming::{IpcBatches, IpcSink, par_apply_batches, write_ipc};

const BATCHES: usize = 48;
const ROWS: usize = 200_000; // 4 f64 columns: 6.4 MB per input batch, 307 MB in all
const WINDOW: usize = 4;

fn batch(b: usize) -> PolarsResult<DataFrame> {
    let col = |k: usize| {
        (0..ROWS)
            .map(|i| ((b * ROWS + i) * (k + 1) % 1_009) as f64)
            .collect::<Vec<_>>()
    };
    df!("a" => col(0), "b" => col(1), "c" => col(2), "d" => col(3))
}

fn transform(df: DataFrame) -> Result<DataFrame, BoxError> {
    let a = df.column("a")?.as_materialized_series();
    let b = df.column("b")?.as_materialized_series();
    let z = (a * b)?.with_name("z".into());
    Ok(df.hstack(&[z.into_column()])?)
}

fn status_kib(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn peak_rss_is_bounded_by_the_window_not_the_file() {
    if status_kib("VmHWM:").is_none() {
        eprintln!("no /proc/self/status: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("big.arrow"), dir.path().join("out.arrow"));
    write_ipc(&input, (0..BATCHES).map(batch)).unwrap();
    let file_mib = std::fs::metadata(&input).unwrap().len() as f64 / (1 << 20) as f64;
    let batch_mib = file_mib / BATCHES as f64;

    // Reset the high-water mark, so that it measures the streaming call alone.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let baseline = status_kib("VmRSS:").unwrap() as f64 / 1024.0;
    let mut sink = IpcSink::create(&output).unwrap();
    let summary = par_apply_batches(
        &Flock::new().threads(2),
        WINDOW,
        IpcBatches::open(&input).unwrap(),
        transform,
        |out| Ok(sink.write(&out)?),
    )
    .unwrap();
    sink.finish().unwrap();
    let peak = status_kib("VmHWM:").unwrap() as f64 / 1024.0;
    let growth = peak - baseline;
    // In flight: at most WINDOW input batches and WINDOW outputs (input + one new column),
    // plus allocator slack. The in-memory result would be the file plus a fifth: ~370 MB.
    let bound = WINDOW as f64 * batch_mib * 2.25 + 48.0;
    eprintln!(
        "file {file_mib:.0} MiB in {BATCHES} batches of {batch_mib:.1} MiB, window {WINDOW}: \
         peak RSS {peak:.0} MiB over a {baseline:.0} MiB baseline (+{growth:.0} MiB; bound {bound:.0} MiB)"
    );
    assert_eq!(summary.batches, BATCHES);
    assert!(summary.max_in_flight <= WINDOW);
    assert!(
        growth < bound,
        "peak RSS grew by {growth:.0} MiB (bound {bound:.0} MiB)"
    );
    assert!(
        bound < file_mib / 2.0,
        "the bound must be far below the data size"
    );

    // The output equals the in-memory result, compared batch by batch.
    let mut out = IpcBatches::open(&output).unwrap();
    let mut pending: Option<DataFrame> = None;
    for b in 0..BATCHES {
        let expected = transform(batch(b).unwrap()).unwrap();
        let mut got = pending
            .take()
            .unwrap_or_else(|| out.next().unwrap().unwrap());
        while got.height() < expected.height() {
            got.vstack_mut_owned(out.next().unwrap().unwrap()).unwrap();
        }
        if got.height() > expected.height() {
            pending = Some(got.slice(expected.height() as i64, got.height() - expected.height()));
            got = got.head(Some(expected.height()));
        }
        assert!(got.equals_missing(&expected), "batch {b}");
    }
    assert!(pending.is_none() && out.next().is_none());
}
