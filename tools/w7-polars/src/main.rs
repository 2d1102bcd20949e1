//! W7 through Polars' own streaming engine, for the workloads table's `polars` method:
//! `scan_parquet(input)` → the W4 block function (a per-batch z-score of `x`, as a streamable
//! map) → `sink_parquet(output)` (zstd, Polars' default row groups), on Polars' pool.
//!
//! Usage: `w7-polars INPUT OUTPUT` — runs the job once and prints the seconds it took and the
//! process's peak RSS in bytes (Linux's `VmHWM`; 0 elsewhere).
//! `POLARS_MAX_THREADS` sets the thread count. Built on its own (`cargo build --release -p
//! w7-polars`): the streaming engine is not part of polars-flock's build.

use std::sync::Arc;
use std::time::Instant;

use polars::prelude::*;

/// The workloads' W4 block function (`benches/common`): a z-score of `x` within the block.
fn w4(mut block: DataFrame) -> PolarsResult<DataFrame> {
    let x = block.column("x")?.f64()?;
    let (mean, std) = (x.mean().unwrap_or(0.0), x.std(1).unwrap_or(1.0));
    let z: Float64Chunked = x.apply_values(|v| (v - mean) / std);
    block.with_column(z.with_name("z".into()).into_column())?;
    Ok(block)
}

fn main() -> PolarsResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: w7-polars INPUT OUTPUT");
        std::process::exit(2);
    };
    let start = Instant::now();
    let scan = LazyFrame::scan_parquet(PlRefPath::new(input), ScanArgsParquet::default())?;
    let mut schema = (*scan.clone().collect_schema()?).clone();
    schema.with_column("z".into(), DataType::Float64);
    let schema = Arc::new(schema);
    let udf_schema: Arc<dyn UdfSchema> = Arc::new(move |_: &Schema| Ok(schema.clone()));
    scan.map(
        w4,
        AllowedOptimizations::default() | OptFlags::STREAMING,
        Some(udf_schema),
        Some("w4"),
    )
    .sink(
        SinkDestination::File {
            target: SinkTarget::Path(PlRefPath::new(output)),
        },
        FileWriteFormat::Parquet(Arc::new(ParquetWriteOptions::default())),
        UnifiedSinkArgs::default(),
    )?
    .collect_with_engine(Engine::Streaming)?;
    println!("{:.6} {}", start.elapsed().as_secs_f64(), peak_rss());
    Ok(())
}

/// The process's peak resident set size in bytes (`VmHWM` in `/proc/self/status`), 0 if unknown.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
