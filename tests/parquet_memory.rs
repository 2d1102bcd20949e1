//! Parquet bigger than the batch budget: a file of many row groups, streamed through a block
//! function into a Parquet output with its row groups decoded in the workers, keeps peak RSS
//! bounded by the window, and the output equals the in-memory result batch by batch.
//!
//! The only test in its binary, so that no other test's allocations move the process's RSS.
#![cfg(feature = "parquet")]

use polars_flock::parquet::{ParquetBatches, ParquetCompression, ParquetSink};
use polars_flock::polars::prelude::*;
use polars_flock::streaming::par_apply_batches;
use polars_flock::{BoxError, Flock};

const GROUPS: usize = 48;
const ROWS: usize = 200_000; // 4 f64 columns: 6.4 MB decoded per row group, 307 MB in all
const WINDOW: usize = 4;

fn group(g: usize) -> DataFrame {
    let col = |k: usize| {
        (0..ROWS)
            .map(|i| ((g * ROWS + i) * (k + 1) % 1_009) as f64)
            .collect::<Vec<_>>()
    };
    df!("a" => col(0), "b" => col(1), "c" => col(2), "d" => col(3)).unwrap()
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
fn parquet_to_parquet_peak_rss_is_bounded_by_the_window_not_the_file() {
    if status_kib("VmHWM:").is_none() {
        eprintln!("no /proc/self/status: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (
        dir.path().join("big.parquet"),
        dir.path().join("out.parquet"),
    );
    let mut sink = ParquetSink::create(&input)
        .unwrap()
        .compression(ParquetCompression::Snappy)
        .row_group_rows(ROWS);
    for g in 0..GROUPS {
        sink.write(&group(g)).unwrap();
    }
    sink.finish().unwrap();
    let decoded_mib = (GROUPS * ROWS * 4 * 8) as f64 / (1 << 20) as f64;
    let group_mib = decoded_mib / GROUPS as f64;

    // Reset the high-water mark, so that it measures the streaming call alone.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let baseline = status_kib("VmRSS:").unwrap() as f64 / 1024.0;
    let source = ParquetBatches::open(&input).unwrap();
    assert_eq!(
        (source.num_rows(), source.num_row_groups()),
        (GROUPS * ROWS, GROUPS)
    );
    let mut sink = ParquetSink::create(&output).unwrap().row_group_rows(ROWS);
    let summary = par_apply_batches(&Flock::new().threads(2), WINDOW, source, transform, |out| {
        Ok(sink.write(&out)?)
    })
    .unwrap();
    sink.finish().unwrap();
    let peak = status_kib("VmHWM:").unwrap() as f64 / 1024.0;
    let growth = peak - baseline;
    // In flight: at most WINDOW decoded row groups and WINDOW outputs (input + one new column),
    // the sink's one buffered row group and its encoded pages, the decoders' page buffers, and
    // the touched pages of the memory-mapped input; plus allocator slack.
    let bound = (WINDOW + 1) as f64 * group_mib * 3.0 + 64.0;
    eprintln!(
        "decoded {decoded_mib:.0} MiB in {GROUPS} row groups of {group_mib:.1} MiB, window {WINDOW}: \
         peak RSS {peak:.0} MiB over a {baseline:.0} MiB baseline (+{growth:.0} MiB; bound {bound:.0} MiB)"
    );
    assert_eq!(summary.batches, GROUPS);
    assert!(summary.max_in_flight <= WINDOW);
    assert!(
        growth < bound,
        "peak RSS grew by {growth:.0} MiB (bound {bound:.0} MiB)"
    );
    let budget = WINDOW as f64 * group_mib;
    assert!(
        decoded_mib >= 5.0 * budget,
        "the file must be at least 5x the window's budget"
    );
    assert!(
        bound < decoded_mib / 1.5,
        "the bound must be well below the decoded file"
    );

    // The output equals the in-memory result, row group by row group.
    let out = ParquetBatches::open(&output).unwrap();
    assert_eq!(out.num_row_groups(), GROUPS);
    for (g, part) in out.enumerate() {
        use polars_flock::streaming::Batch;
        let got = part.unwrap().load().unwrap();
        assert!(
            got.equals_missing(&transform(group(g)).unwrap()),
            "row group {g}"
        );
    }
}
