//! Many files: the seed ETL job's shape — a directory of daily CSV exports, each read, cleaned,
//! enriched and written back out — serially and with `Files::par_apply`, checked equal, with the
//! timings; then the same files concatenated into one frame in a stable order, and a corrupt file
//! named in the error.
//!
//! Run with `cargo run --release --example etl_files --features csv` (Polars' CSV reader and writer
//! through `polars_flock::polars`, no second Polars dependency). It generates 300 CSV files (5,000 rows
//! each) in a temporary directory, which is removed at the end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Error, Files, Flock, Result};

const FILES: usize = 300;
const ROWS: usize = 5_000;

/// splitmix64: deterministic data without a dependency.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One day's export of one store: `ts,store,sku,qty,unit_price`, with returns (negative qty).
fn write_export(path: &Path, day: usize) -> std::io::Result<()> {
    let mut state = day as u64;
    let mut text = String::with_capacity(ROWS * 48);
    text.push_str("ts,store,sku,qty,unit_price\n");
    for _ in 0..ROWS {
        let r = next(&mut state);
        let (h, m, s) = (r % 24, (r >> 8) % 60, (r >> 16) % 60);
        let qty = (r >> 24) % 12;
        let qty = if qty == 0 { -1 } else { qty as i64 };
        let price = ((r >> 32) % 10_000) as f64 / 100.0;
        text.push_str(&format!(
            "2024-{:02}-{:02}T{h:02}:{m:02}:{s:02},{},SKU-{:04},{qty},{price:.2}\n",
            1 + day % 12,
            1 + day % 28,
            day % 17,
            (r >> 40) % 5_000
        ));
    }
    std::fs::write(path, text)
}

fn read_csv(path: &Path) -> PolarsResult<DataFrame> {
    CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))?
        .finish()
}

/// The per-file job: drop returns, add revenue and the hour of sale.
fn transform(df: DataFrame) -> Result<DataFrame, BoxError> {
    let qty = df.column("qty")?.as_materialized_series();
    let price = df.column("unit_price")?.as_materialized_series();
    let revenue = (&qty.cast(&DataType::Float64)? * price)?.with_name("revenue".into());
    let hour: Int64Chunked = df
        .column("ts")?
        .str()?
        .iter()
        .map(|ts| ts.and_then(|ts| ts.get(11..13)?.parse().ok()))
        .collect();
    let out = df.hstack(&[
        revenue.into_column(),
        hour.with_name("hour".into()).into_column(),
    ])?;
    let sold = out.column("qty")?.i64()?.gt(0);
    Ok(out.filter(&sold)?)
}

fn write_csv(df: &mut DataFrame, path: &Path) -> PolarsResult<()> {
    let mut file = std::fs::File::create(path)?;
    CsvWriter::new(&mut file).finish(df)
}

/// Read → transform → write one output per input; returns the rows written.
fn etl(input: &Path, out_dir: &Path) -> Result<usize, BoxError> {
    let mut df = transform(read_csv(input)?)?;
    write_csv(
        &mut df,
        &out_dir.join(input.file_name().unwrap_or_default()),
    )?;
    Ok(df.height())
}

fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

fn main() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let (raw, out_serial, out_par) = (
        dir.path().join("raw"),
        dir.path().join("serial"),
        dir.path().join("parallel"),
    );
    for d in [&raw, &out_serial, &out_par] {
        std::fs::create_dir_all(d)?;
    }

    // --- 1. Generate the exports -------------------------------------------------------------
    let days: Vec<usize> = (0..FILES).collect();
    let (took, _) = timed(|| {
        days.par_apply_rows(|&day| Ok(write_export(&raw.join(format!("sales-{day:04}.csv")), day)?))
    });
    println!("[1] generated {FILES} CSV files of {ROWS} rows in {took:.2?}");

    // --- 2. List them: sorted, so the order never depends on the file system ------------------
    let files = Files::in_dir(&raw, Some("csv"))?;
    println!(
        "[2] {} files, first {:?}, last {:?}",
        files.len(),
        files.paths()[0].file_name().unwrap_or_default(),
        files.paths()[files.len() - 1]
            .file_name()
            .unwrap_or_default()
    );

    // --- 3. The ETL job, serially and in parallel (one output file per input) ------------------
    let serial = || -> Result<usize, BoxError> {
        let mut rows = 0;
        for path in files.paths() {
            rows += etl(path, &out_serial)?;
        }
        Ok(rows)
    };
    let parallel = || -> Result<usize, BoxError> {
        Ok(files.par_apply(|path| etl(path, &out_par))?.iter().sum())
    };
    // Warm the page cache and the pool once, then take the median of interleaved runs.
    let rows = serial()?;
    parallel()?;
    let (mut t_serial, mut t_par) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (t, n) = timed(serial);
        assert_eq!(n?, rows);
        t_serial.push(t);
        let (t, n) = timed(parallel);
        assert_eq!(n?, rows);
        t_par.push(t);
    }
    t_serial.sort();
    t_par.sort();
    let (s, p) = (t_serial[2], t_par[2]);
    println!(
        "[3] ETL of {FILES} files ({rows} rows kept): serial {s:.2?}, Files::par_apply {p:.2?} \
         on {} threads: speedup {:.2}x (median of 5)",
        Flock::new().plan(FILES)?.threads(),
        s.as_secs_f64() / p.as_secs_f64()
    );

    // --- 4. Same outputs, file by file ---------------------------------------------------------
    let same = files.par_apply(|path| -> Result<bool, BoxError> {
        let name = path.file_name().unwrap_or_default();
        Ok(std::fs::read(out_serial.join(name))? == std::fs::read(out_par.join(name))?)
    })?;
    assert!(same.iter().all(|&s| s));
    println!(
        "[4] all {} output files are byte-identical to the serial run's",
        same.len()
    );

    // --- 5. Or one frame: concatenated in file order -------------------------------------------
    let (took, all) = timed(|| files.par_concat(|path| transform(read_csv(path)?)));
    let all = all?;
    println!(
        "[5] Files::par_concat: {} rows x {} columns in {took:.2?}; revenue total {:.2}\n{}",
        all.height(),
        all.width(),
        all.column("revenue")?.f64()?.sum().unwrap_or(0.0),
        all.head(Some(3))
    );

    // --- 6. A corrupt file is named in the error -----------------------------------------------
    let bad: PathBuf = raw.join("sales-0150.csv");
    std::fs::write(
        &bad,
        "ts,store,sku,qty,unit_price\n2024-01-01T00:00:00,1,SKU-1,three,1.0\n",
    )?;
    match files.par_apply(|path| etl(path, &out_par)) {
        Err(Error::InFile { path, source }) => {
            println!(
                "[6] the job stops at the first bad file, in order: {} — {source}",
                path.display()
            );
        }
        other => println!("[6] unexpected: {:?}", other.map(|v| v.len())),
    }
    Ok(())
}
