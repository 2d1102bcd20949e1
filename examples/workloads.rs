//! The standard workloads (W0–W9) measured every applicable way in one process, printed as a
//! Markdown table (and optionally CSV).
//!
//! Run with `cargo run --release --example workloads --features sqlite,parquet,postgres` (W6
//! needs `sqlite`, W7 — Parquet → block function → Parquet — needs `parquet`, W8 — lookups in a
//! PostgreSQL server it starts — needs `postgres` and the server binaries; each is skipped
//! without its feature). Options:
//!
//! - `--scale 0.1` multiplies every N (quick runs);
//! - `--threads 1,2` repeats the parallel methods on pools of those sizes (default: Polars' pool
//!   size);
//! - `--runs 5` timed runs per method after one warm-up (the median is reported);
//! - `--only W1,W4` runs a subset;
//! - `--csv PATH` also writes `workload,method,n,threads,median_s,rows_per_s,peak_rss_bytes`.
//!
//! Methods: `serial` (a plain loop, one thread), `rayon` (a hand-written rayon loop over column
//! slices, on the same pool as ours), `polars` (native Polars kernels or expressions, on Polars'
//! pool), `rows` (the row view), `typed` (the typed fast path), `blocks` / `serial_blocks` (a block
//! function in parallel / in a serial loop over the same blocks), `vec` (a Vec apply), and
//! `per_worker` / `per_row` (a SQLite connection per worker / per row), and for W7 `serial` (row
//! groups decoded one at a time on the calling thread) / `stream` (decoded in the workers) /
//! `workers` (encoded and compressed in the workers too) / `polars` (Polars' own streaming engine,
//! when `cargo build --release -p w7-polars` has built it), for W0 `serial` / `default` (the
//! verbs with default options), and for W8 and W9 (feature `async`; W9 needs no server binaries)
//! `async` (the `io()` view), W9's `threads_4x` … (thread pools, a connection per worker) and
//! `bare` (the same async client in a loop without the crate). `ratio` is throughput
//! relative to the workload's reference method (marked `ref`), measured in the same run. Peak RSS
//! is the process's high-water mark during that method's runs (reset before each method), so it
//! includes the input.

#[cfg(feature = "async")]
#[path = "../tests/common/http.rs"]
mod http;
#[cfg(feature = "postgres")]
#[path = "../tests/common/pg.rs"]
mod pg;
#[path = "../benches/common/mod.rs"]
mod workloads;

use std::sync::Arc;
use std::time::Instant;

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Files, Flock, Result};
use rayon::prelude::*;
use workloads::*;

struct Args {
    scale: f64,
    threads: Vec<usize>,
    runs: usize,
    only: Option<Vec<String>>,
    csv: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        scale: 1.0,
        threads: Vec::new(),
        runs: 5,
        only: None,
        csv: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--scale" => args.scale = value().parse().expect("--scale takes a number"),
            "--threads" => {
                args.threads = value()
                    .split(',')
                    .map(|t| t.parse().expect("--threads takes 1,2,..."))
                    .collect()
            }
            "--runs" => {
                args.runs = value()
                    .parse::<usize>()
                    .expect("--runs takes a number")
                    .max(1)
            }
            "--only" => args.only = Some(value().split(',').map(str::to_uppercase).collect()),
            "--csv" => args.csv = Some(value()),
            other => panic!("unknown option {other}; see the header of examples/workloads.rs"),
        }
    }
    if args.threads.is_empty() {
        args.threads
            .push(polars_core::runtime::THREAD_POOL.current_num_threads());
    }
    args
}

/// One line of the table.
struct Measured {
    workload: &'static str,
    method: &'static str,
    n: usize,
    threads: usize,
    median_s: f64,
    peak_rss: u64,
}

fn reset_peak_rss() {
    // Linux: writing 5 resets the high-water mark to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `/proc/self/status` field in bytes (Linux; 0 elsewhere).
fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn peak_rss() -> u64 {
    status_bytes("VmHWM:")
}

/// A method's name, N, threads, and a run that drops its output.
type Method<'a> = (&'static str, usize, usize, Box<dyn FnMut() + 'a>);

/// The methods of one workload, run round-robin so that machine noise hits all of them alike.
struct Group<'a> {
    workload: &'static str,
    methods: Vec<Method<'a>>,
}

impl<'a> Group<'a> {
    fn new(workload: &'static str) -> Self {
        Group {
            workload,
            methods: Vec::new(),
        }
    }

    /// A method over `n` rows on `threads` threads; its output is dropped after each run.
    fn add<T>(
        &mut self,
        method: &'static str,
        n: usize,
        threads: usize,
        mut f: impl FnMut() -> T + 'a,
    ) {
        self.methods.push((
            method,
            n,
            threads,
            Box::new(move || drop(std::hint::black_box(f()))),
        ));
    }

    /// One warm-up run of each method, then `runs` rounds; the median wall time of each method
    /// and the highest peak RSS over its runs (the high-water mark is reset before every run).
    fn run(mut self, table: &mut Vec<Measured>, runs: usize) {
        for (_, _, _, f) in &mut self.methods {
            f();
        }
        let mut times = vec![Vec::new(); self.methods.len()];
        let mut peaks = vec![0u64; self.methods.len()];
        for _ in 0..runs {
            for (i, (_, _, _, f)) in self.methods.iter_mut().enumerate() {
                reset_peak_rss();
                let start = Instant::now();
                f();
                times[i].push(start.elapsed().as_secs_f64());
                peaks[i] = peaks[i].max(peak_rss());
            }
        }
        for ((method, n, threads, _), (mut t, peak_rss)) in
            self.methods.into_iter().zip(times.into_iter().zip(peaks))
        {
            t.sort_by(f64::total_cmp);
            let median_s = t[t.len() / 2];
            eprintln!(
                "  {} {method:<13} n={n:<9} threads={threads} {median_s:>9.4} s",
                self.workload
            );
            table.push(Measured {
                workload: self.workload,
                method,
                n,
                threads,
                median_s,
                peak_rss,
            });
        }
    }
}

/// Rows `[start, end)` of a one-chunk column as a slice.
fn slice<T: PolarsNumericType>(ca: &ChunkedArray<T>) -> &[T::Native] {
    ca.cont_slice()
        .expect("generated columns are one chunk without nulls")
}

fn scaled(n: usize, scale: f64) -> usize {
    ((n as f64 * scale) as usize).max(1_000)
}

fn main() -> Result<(), BoxError> {
    let args = args();
    let wanted = |w: &str| {
        args.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == w))
    };
    let polars_threads = polars_core::runtime::THREAD_POOL.current_num_threads();
    let mut table: Vec<Measured> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let pools: Vec<Arc<rayon::ThreadPool>> = args
        .threads
        .iter()
        .map(|&t| {
            Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .expect("pool"),
            )
        })
        .collect();
    // Ours runs on the very pool the hand-written rayon loops use.
    let flocks: Vec<Flock> = pools
        .iter()
        .map(|p| Flock::new().pool(Arc::clone(p)))
        .collect();

    if wanted("W0") {
        w0(&mut table, args.runs)?;
    }

    if wanted("W1") {
        let n = scaled(20_000_000, args.scale);
        let df = frame(n);
        let (x, y, k) = (
            slice(df.column("x")?.f64()?),
            slice(df.column("y")?.f64()?),
            slice(df.column("k")?.i64()?),
        );
        let mut g = Group::new("W1");
        g.add("serial", n, 1, || {
            let out = x.iter().zip(y).zip(k).map(|((x, y), k)| w1(*x, *y, *k));
            Float64Chunked::from_vec("out".into(), out.collect())
        });
        g.add("polars", n, polars_threads, || {
            let (x, y) = (
                df.column("x").unwrap().f64().unwrap(),
                df.column("y").unwrap().f64().unwrap(),
            );
            let k = df.column("k").unwrap().cast(&DataType::Float64).unwrap();
            &(x * y) + k.f64().unwrap()
        });
        for (pool, flock) in pools.iter().zip(&flocks) {
            let t = pool.current_num_threads();
            let df = &df;
            g.add("rayon", n, t, move || {
                rayon_ranges(pool, n, |r| {
                    let (x, y, k) = (&x[r.clone()], &y[r.clone()], &k[r]);
                    let out = x.iter().zip(y).zip(k).map(|((x, y), k)| w1(*x, *y, *k));
                    Float64Chunked::from_vec("out".into(), out.collect()).into_series()
                })
            });
            g.add("rows", n, t, move || {
                flock
                    .on(&df)
                    .par_apply_rows("out", |row| {
                        Ok(w1(row.f64("x")?, row.f64("y")?, row.i64("k")?))
                    })
                    .unwrap()
            });
            g.add("typed", n, t, move || {
                flock
                    .on(&df)
                    .par_apply_columns("out", ["x", "y", "k"], |(x, y, k): (f64, f64, i64)| {
                        w1(x, y, k)
                    })
                    .unwrap()
            });
        }
        g.run(&mut table, args.runs);
    }

    if wanted("W2") {
        let n = scaled(200_000, args.scale);
        let df = frame(n);
        let (x, k) = (slice(df.column("x")?.f64()?), slice(df.column("k")?.i64()?));
        let mut g = Group::new("W2");
        g.add("serial", n, 1, || {
            let out = x.iter().zip(k).map(|(x, k)| w2(*x, *k));
            Float64Chunked::from_vec("out".into(), out.collect())
        });
        g.add("polars", n, polars_threads, || {
            // Polars' vectorised form: 1,000 chained expressions, each over every row.
            let mut v = (df.column("x").unwrap().as_materialized_series() * 0.98) + 0.01;
            for _ in 0..1_000 {
                let one_minus = (&v * -1.0) + 1.0;
                v = (&(&v * 3.9) * &one_minus).unwrap();
            }
            (&v + &df
                .column("k")
                .unwrap()
                .cast(&DataType::Float64)
                .unwrap()
                .take_materialized_series())
                .unwrap()
        });
        for (pool, flock) in pools.iter().zip(&flocks) {
            let t = pool.current_num_threads();
            let df = &df;
            g.add("rayon", n, t, move || {
                rayon_ranges(pool, n, |r| {
                    let out = x[r.clone()].iter().zip(&k[r]).map(|(x, k)| w2(*x, *k));
                    Float64Chunked::from_vec("out".into(), out.collect()).into_series()
                })
            });
            g.add("rows", n, t, move || {
                flock
                    .on(&df)
                    .par_apply_rows("out", |row| Ok(w2(row.f64("x")?, row.i64("k")?)))
                    .unwrap()
            });
            g.add("typed", n, t, move || {
                flock
                    .on(&df)
                    .par_apply_columns("out", ["x", "k"], |(x, k): (f64, i64)| w2(x, k))
                    .unwrap()
            });
            g.add("blocks", n, t, move || {
                // The typed block form: the closure gets the block's columns as slices and runs the
                // map on eight rows at once, so the compiler vectorises across rows.
                flock
                    .on(&df)
                    .par_apply_blocks(|block| {
                        let x = block.column("x")?.f64()?.rechunk();
                        let k = block.column("k")?.i64()?.rechunk();
                        let (x, k) = (x.cont_slice()?, k.cont_slice()?);
                        let out: Vec<f64> = w2_lanes(x, k);
                        Ok(Float64Chunked::from_vec("out".into(), out)
                            .into_series()
                            .into_frame())
                    })
                    .unwrap()
            });
        }
        g.run(&mut table, args.runs);
    }

    if wanted("W3") {
        let n = scaled(20_000_000, args.scale);
        let df = frame(n);
        let s = df.column("s")?.str()?;
        let arr = s.downcast_iter().next().expect("one chunk");
        let mut g = Group::new("W3");
        g.add("serial", n, 1, || {
            Int64Chunked::from_vec("out".into(), arr.values_iter().map(w3).collect())
        });
        g.add("polars", n, polars_threads, || {
            df.clone()
                .lazy()
                .select([(col("s").str().len_bytes().cast(DataType::Int64)
                    + col("s")
                        .str()
                        .count_matches(lit("1"), true)
                        .cast(DataType::Int64))
                .alias("out")])
                .collect()
                .unwrap()
        });
        for (pool, flock) in pools.iter().zip(&flocks) {
            let t = pool.current_num_threads();
            let df = &df;
            g.add("rayon", n, t, move || {
                rayon_ranges(pool, n, |r| {
                    Int64Chunked::from_vec("out".into(), r.map(|i| w3(arr.value(i))).collect())
                        .into_series()
                })
            });
            g.add("rows", n, t, move || {
                flock
                    .on(&df)
                    .par_apply_rows("out", |row| Ok(w3(row.str("s")?)))
                    .unwrap()
            });
            g.add("typed", n, t, move || {
                flock
                    .on(&df)
                    .par_apply_columns("out", ["s"], |s: &str| w3(s))
                    .unwrap()
            });
        }
        g.run(&mut table, args.runs);
    }

    if wanted("W4") {
        let n = scaled(10_000_000, args.scale);
        let baseline = status_bytes("VmRSS:");
        let df = frame(n);
        let mut g = Group::new("W4");
        for (pool, flock) in pools.iter().zip(&flocks) {
            let t = pool.current_num_threads();
            let plan = flock.plan(n)?;
            let cs = plan.chunksize();
            let df = &df;
            g.add("serial_blocks", n, 1, move || {
                let mut out = w4(df.slice(0, cs)).unwrap();
                for b in 1..plan.blocks() {
                    out.vstack_mut_owned(w4(df.slice((b * cs) as i64, cs)).unwrap())
                        .unwrap();
                }
                out
            });
            g.add("polars", n, polars_threads, move || {
                let block = (col("id") / lit(cs as i64)).cast(DataType::Int64);
                df.clone()
                    .lazy()
                    .with_column(
                        ((col("x") - col("x").mean().over([block.clone()]).unwrap())
                            / col("x").std(1).over([block]).unwrap())
                        .alias("z"),
                    )
                    .collect()
                    .unwrap()
            });
            g.add("blocks", n, t, move || {
                flock.on(&df).par_apply_blocks(w4).unwrap()
            });
        }
        g.run(&mut table, args.runs);
        // Memory: the output shares the input's columns and adds `z`.
        let out = (flocks[0]).on(&df).par_apply_blocks(w4)?;
        let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
        let (input, new) = (
            df.estimated_size(),
            out.column("z")?.as_materialized_series().estimated_size(),
        );
        let peak = table
            .iter()
            .filter(|m| m.workload == "W4" && m.method == "blocks")
            .map(|m| m.peak_rss)
            .max();
        notes.push(format!(
            "W4 memory: input {:.0} MiB, output {:.0} MiB of which {:.0} MiB new (`z`, the rest shared); \
             blocks peak RSS {:.0} MiB over a {:.0} MiB baseline: {:.2}x (input + new output)",
            mib(input),
            mib(out.estimated_size()),
            mib(new),
            mib(peak.unwrap_or(0) as usize),
            mib(baseline as usize),
            peak.unwrap_or(0).saturating_sub(baseline) as f64 / (input + new) as f64,
        ));
    }

    if wanted("W5") {
        let n = scaled(1_000_000, args.scale);
        let items: Vec<u64> = (0..n as u64).collect();
        let mut g = Group::new("W5");
        g.add("serial", n, 1, || items.iter().map(w5).collect::<Vec<_>>());
        for (pool, flock) in pools.iter().zip(&flocks) {
            let t = pool.current_num_threads();
            let items = &items;
            g.add("rayon", n, t, move || {
                pool.install(|| items.par_iter().map(w5).collect::<Vec<_>>())
            });
            g.add("vec", n, t, move || {
                flock.on(&items).par_apply_rows(|x| Ok(w5(x))).unwrap()
            });
        }
        g.run(&mut table, args.runs);
    }

    #[cfg(feature = "sqlite")]
    if wanted("W6") {
        w6(&mut table, &flocks, args.scale, args.runs)?;
    }

    #[cfg(feature = "postgres")]
    if wanted("W8") {
        w8(&mut table, args.scale, args.runs)?;
    }

    #[cfg(feature = "async")]
    if wanted("W9") {
        w9(&mut table, args.scale, args.runs)?;
    }

    #[cfg(feature = "parquet")]
    if wanted("W7") {
        w7(&mut table, &flocks, args.scale, args.runs)?;
    }

    println!(
        "{} cores; Polars' pool: {polars_threads} threads; median of {} runs per method (round-robin); ratios from this run",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.runs
    );
    println!();
    print_table(&table);
    for note in &notes {
        println!("\n{note}");
    }
    if let Some(path) = &args.csv {
        let mut csv =
            String::from("workload,method,n,threads,median_s,rows_per_s,peak_rss_bytes\n");
        for m in &table {
            csv.push_str(&format!(
                "{},{},{},{},{:.6},{:.0},{}\n",
                m.workload,
                m.method,
                m.n,
                m.threads,
                m.median_s,
                m.n as f64 / m.median_s,
                m.peak_rss
            ));
        }
        std::fs::write(path, csv)?;
        eprintln!("wrote {path}");
    }
    Ok(())
}

/// W2 on eight rows at a time: the same arithmetic as [`w2`], in an order the compiler can run
/// on SIMD lanes.
fn w2_lanes(x: &[f64], k: &[i64]) -> Vec<f64> {
    const LANES: usize = 8;
    let mut out = Vec::with_capacity(x.len());
    let mut xs = x.chunks_exact(LANES);
    let mut ks = k.chunks_exact(LANES);
    for (x, k) in (&mut xs).zip(&mut ks) {
        let mut v = [0.0; LANES];
        for l in 0..LANES {
            v[l] = 0.01 + 0.98 * x[l];
        }
        for _ in 0..1_000 {
            for v in &mut v {
                *v = 3.9 * *v * (1.0 - *v);
            }
        }
        for l in 0..LANES {
            out.push(v[l] + k[l] as f64);
        }
    }
    out.extend(
        xs.remainder()
            .iter()
            .zip(ks.remainder())
            .map(|(x, k)| w2(*x, *k)),
    );
    out
}

/// W7: Parquet → the W4 block function → Parquet, streamed one row group at a time: `serial`
/// decodes and runs each row group on the calling thread (`apply_batches_in_order`); `stream`
/// decodes them inside the workers, at most 4 in flight (`par_apply_batches`, the sink encoding
/// on the calling thread); `workers` encodes and compresses the outputs in the workers too
/// (`Stream::to_parquet`).
#[cfg(feature = "parquet")]
fn w7(
    table: &mut Vec<Measured>,
    flocks: &[Flock],
    scale: f64,
    runs: usize,
) -> Result<(), BoxError> {
    use polars_flock::parquet::{ParquetBatches, ParquetSink, write_parquet};
    use polars_flock::streaming::{Stream, apply_batches_in_order, par_apply_batches};
    let n = scaled(10_000_000, scale);
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("w7.parquet");
    write_parquet(&input, &frame(n), (n / 40).max(1))?;
    let output = dir.path().join("w7-out.parquet");
    let (input, output) = (&input, &output);
    let polars_rss = std::cell::Cell::new(0u64);
    let polars_rss = &polars_rss;
    let binary = w7_polars_binary();
    let mut g = Group::new("W7");
    g.add("serial", n, 1, move || {
        let mut sink = ParquetSink::create(output).unwrap();
        let source = ParquetBatches::open(input).unwrap();
        apply_batches_in_order(&Flock::new(), source, w4, |out| Ok(sink.write(&out)?)).unwrap();
        sink.finish().unwrap();
    });
    for flock in flocks {
        let t = flock.plan(1)?.threads();
        g.add("stream", n, t, move || {
            let mut sink = ParquetSink::create(output).unwrap();
            let source = ParquetBatches::open(input).unwrap();
            par_apply_batches(flock, 4, source, w4, |out| Ok(sink.write(&out)?)).unwrap();
            sink.finish().unwrap();
        });
        g.add("workers", n, t, move || {
            let mut sink = ParquetSink::create(output).unwrap();
            let source = ParquetBatches::open(input).unwrap();
            let stream = Stream::to_parquet(source, &mut sink).window(4);
            flock.on(&stream).par_apply_blocks(w4).unwrap();
            drop(stream);
            sink.finish().unwrap();
        });
    }
    // Polars' own streaming engine on the same job, if its binary was built (`cargo build
    // --release -p w7-polars`; not part of this crate's build): timed inside the process, which
    // runs on Polars' pool with POLARS_MAX_THREADS set to each thread count.
    match &binary {
        Some(binary) => {
            for flock in flocks {
                let t = flock.plan(1)?.threads();
                g.add("polars", n, t, move || {
                    let out = std::process::Command::new(binary)
                        .arg(input)
                        .arg(output)
                        .env("POLARS_MAX_THREADS", t.to_string())
                        .output()
                        .expect("w7-polars runs");
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    assert!(
                        out.status.success(),
                        "w7-polars: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let rss = stdout
                        .split_whitespace()
                        .nth(1)
                        .and_then(|r| r.parse().ok());
                    polars_rss.set(polars_rss.get().max(rss.unwrap_or(0)));
                });
            }
        }
        None => eprintln!(
            "  W7 polars: not measured (build it first: `cargo build --release -p w7-polars`)"
        ),
    }
    g.run(table, runs);
    if binary.is_some() {
        eprintln!(
            "  W7 polars: a process of its own (its start-up is in the time); its peak RSS: {} MiB \
             (the table's column is this process's)",
            polars_rss.get() >> 20
        );
    }
    Ok(())
}

/// The `w7-polars` binary next to this example's directory, if it was built.
#[cfg(feature = "parquet")]
fn w7_polars_binary() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let binary = exe.parent()?.parent()?.join("w7-polars");
    binary.is_file().then_some(binary)
}

#[cfg(feature = "sqlite")]
fn w6(
    table: &mut Vec<Measured>,
    flocks: &[Flock],
    scale: f64,
    runs: usize,
) -> Result<(), BoxError> {
    use polars_flock::rusqlite::{Connection, OpenFlags};
    let n = scaled(200_000, scale);
    let dir = std::env::temp_dir().join(format!("polars-flock-workloads-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("w6.sqlite");
    let _ = std::fs::remove_file(&path);
    let mut conn = Connection::open(&path)?;
    conn.execute_batch("CREATE TABLE lookup (k INTEGER PRIMARY KEY, label TEXT NOT NULL);")?;
    let tx = conn.transaction()?;
    for k in 0..1_000i64 {
        tx.execute("INSERT INTO lookup VALUES (?1, ?2)", (k, w6_label(k)))?;
    }
    tx.commit()?;
    let open = || Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY);
    let len = |conn: &Connection, k: i64| -> Result<i64, BoxError> {
        let label: String = conn
            .prepare_cached("SELECT label FROM lookup WHERE k = ?1")?
            .query_row([k], |r| r.get(0))?;
        Ok(label.len() as i64)
    };
    let df = frame(n);
    // A connection per row is ~40x slower: it runs on a tenth of the rows, compared in rows/s.
    let sample = df.head(Some(n / 10));
    let workers: Vec<_> = flocks
        .iter()
        .map(|_| Workers::new(move || Ok(open()?)))
        .collect();
    let mut g = Group::new("W6");
    for (flock, workers) in flocks.iter().zip(&workers) {
        let t = flock.plan(1)?.threads();
        g.add("per_row", sample.height(), t, || {
            flock
                .on(&sample)
                .par_apply_rows("out", |row| len(&open()?, row.i64("k")?))
                .unwrap()
        });
        g.add("per_worker", n, t, || {
            flock
                .on(&df)
                .par_apply_rows_per_worker("out", &*workers, |conn, row| len(conn, row.i64("k")?))
                .unwrap()
        });
    }
    g.run(table, runs);
    for (flock, workers) in flocks.iter().zip(&workers) {
        eprintln!(
            "  W6 per_worker on {} threads: {} connections opened over {} calls",
            flock.plan(1)?.threads(),
            workers.inits(),
            runs + 1
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// W8: a lookup per row in PostgreSQL over loopback (a throwaway server started here): a
/// connection per row, and a connection per worker (kept across runs) on pools of 1x, 4x, 8x and
/// 16x cores; `W8` is the plain lookup, `W8+1ms` the same with a 1 ms server-side wait
/// (`pg_sleep(0.001)`), which stands for a remote database's latency without using this
/// machine's cores.
#[cfg(feature = "postgres")]
fn w8(table: &mut Vec<Measured>, scale: f64, runs: usize) -> Result<(), BoxError> {
    use polars_flock::postgres::{Client, NoTls};
    let server = pg::PgServer::with_lookup(1_000)?;
    let url = server.url();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let connect = || -> Result<Client, BoxError> { Ok(Client::connect(&url, NoTls)?) };
    for (workload, sql, n) in [
        (
            "W8",
            "SELECT label FROM lookup WHERE k = $1",
            scaled(40_000, scale),
        ),
        (
            "W8+1ms",
            "SELECT label FROM lookup, pg_sleep(0.001) WHERE k = $1",
            scaled(4_000, scale),
        ),
    ] {
        let len = |c: &mut Client, k: i64| -> Result<i64, BoxError> {
            let label: String = c.query_one(sql, &[&k])?.get(0);
            Ok(label.len() as i64)
        };
        let df = frame(n).head(Some(n));
        // A connection per row is far slower: a twentieth of the rows, compared in rows/s.
        let sample = df.head(Some((n / 20).max(1)));
        let pools: Vec<(usize, Flock, Workers<'_, Client>)> = [1, 4, 8, 16]
            .into_iter()
            .map(|f| (f, Flock::new().threads(cores * f), Workers::new(connect)))
            .collect();
        // Opened in the warm-up run, kept across the timed runs.
        #[cfg(feature = "async")]
        let clients = polars_flock::io::Clients::new(64, async || {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            Ok(client)
        });
        let mut g = Group::new(workload);
        let cores_pool = &pools[0].1;
        g.add("per_row", sample.height(), cores, || {
            cores_pool
                .on(&sample)
                .par_apply_rows("out", |row| len(&mut connect()?, row.i64("k")?))
                .unwrap()
        });
        let (df, len) = (&df, &len);
        for (factor, flock, workers) in &pools {
            let method = match factor {
                1 => "per_worker",
                4 => "per_worker_4x",
                8 => "per_worker_8x",
                _ => "per_worker_16x",
            };
            g.add(method, n, cores * factor, move || {
                flock
                    .on(&df)
                    .par_apply_rows_per_worker("out", workers, |c, row| len(c, row.i64("k")?))
                    .unwrap()
            });
        }
        // Async: one call with 256 queries in flight over 64 connections shared by the call
        // (a connection runs one query at a time on the server; each pipelines its share).
        #[cfg(feature = "async")]
        {
            let (io, clients) = (Flock::new().concurrency(256), &clients);
            g.add("async", n, 1, move || {
                io.on(df)
                    .io()
                    .par_apply_rows("out", async |row| {
                        let client = clients.get(row.index()).await?;
                        let label: String = client.query_one(sql, &[&row.i64("k")?]).await?.get(0);
                        Ok(label.len() as i64)
                    })
                    .wait()
                    .unwrap()
            });
        }
        g.run(table, runs);
    }
    Ok(())
}

/// W9: HTTP lookups against a local server (started here, 5 ms latency per request, keep-alive):
/// a thread pool of 4x, 8x and 16x cores with a connection per worker (`threads_4x`, ...), the
/// async view with 256 requests in flight on one shared client (`async`), and the same client in
/// a bare loop of 256 futures with no crate in between (`bare`, the ceiling of client and server
/// on this machine).
#[cfg(feature = "async")]
fn w9(table: &mut Vec<Measured>, scale: f64, runs: usize) -> Result<(), BoxError> {
    use futures_util::StreamExt;
    use std::time::Duration;
    let n = scaled(20_000, scale);
    let server = http::Server::start(Duration::from_millis(5));
    let addr = server.addr;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let ids: Vec<u64> = (0..n as u64).collect();
    let ids = &ids;
    let client = http::Client::new(addr);
    let client = &client;
    let pools: Vec<(usize, Flock, Workers<'_, http::BlockingClient>)> = [4, 8, 16]
        .into_iter()
        .map(|f| {
            let workers = Workers::new(move || Ok(http::BlockingClient::new(addr)));
            (f, Flock::new().threads(cores * f), workers)
        })
        .collect();
    let bare_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bare_runtime = &bare_runtime;
    let io = Flock::new().concurrency(256);
    let io = &io;
    let mut g = Group::new("W9");
    for (factor, flock, workers) in &pools {
        let method = match factor {
            4 => "threads_4x",
            8 => "threads_8x",
            _ => "threads_16x",
        };
        g.add(method, n, cores * factor, move || {
            flock
                .on(ids)
                .par_apply_rows_per_worker(workers, |c, i| c.get(&format!("/echo/{i}")))
                .unwrap()
        });
    }
    g.add("async", n, 1, move || {
        io.on(ids)
            .io()
            .par_apply_rows(async |i| client.get(&format!("/echo/{i}")).await)
            .wait()
            .unwrap()
    });
    g.add("bare", n, 1, move || {
        bare_runtime.block_on(
            futures_util::stream::iter(ids)
                .map(|i| async move { client.get(&format!("/echo/{i}")).await.unwrap() })
                .buffered(256)
                .collect::<Vec<_>>(),
        )
    });
    g.run(table, runs);
    eprintln!(
        "  W9 server: {} requests, at most {} in flight",
        server
            .stats
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        server
            .stats
            .max_in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

/// W0: the seeds' few slow items, with default options (Polars' pool, automatic chunk size):
/// 17 items that sleep 20 ms (`Pool.map` over URLs), and 40 files each read and then 10 ms of
/// waiting (`Files::par_apply`), against a plain loop. Not scaled: the count is the point.
fn w0(table: &mut Vec<Measured>, runs: usize) -> Result<(), BoxError> {
    use std::time::Duration;
    let items: Vec<u64> = (0..17).collect();
    let item = |x: &u64| {
        std::thread::sleep(Duration::from_millis(20));
        x * x
    };
    let dir = tempfile::tempdir()?;
    let paths: Vec<std::path::PathBuf> = (0..40)
        .map(|i| {
            let path = dir.path().join(format!("part-{i:02}.txt"));
            std::fs::write(&path, format!("{i}\n").repeat(1_000)).map(|()| path)
        })
        .collect::<std::io::Result<_>>()?;
    let file = |path: &std::path::Path| -> std::io::Result<usize> {
        let text = std::fs::read_to_string(path)?;
        std::thread::sleep(Duration::from_millis(10));
        Ok(text.lines().count())
    };
    let threads = polars_core::runtime::THREAD_POOL.current_num_threads();
    let mut g = Group::new("W0 items");
    g.add("serial", items.len(), 1, || {
        items.iter().map(item).collect::<Vec<_>>()
    });
    g.add("default", items.len(), threads, || {
        items.par_apply_rows(|x| Ok(item(x))).unwrap()
    });
    g.run(table, runs);
    let files = Files::new(&paths);
    let mut g = Group::new("W0 files");
    g.add("serial", paths.len(), 1, || {
        paths.iter().map(|p| file(p).unwrap()).collect::<Vec<_>>()
    });
    g.add("default", paths.len(), threads, || {
        files.par_apply(|p| Ok(file(p)?)).unwrap()
    });
    g.run(table, runs);
    Ok(())
}

fn reference(workload: &str) -> &'static str {
    match workload {
        "W0 items" | "W0 files" | "W2" | "W7" => "serial",
        "W4" => "serial_blocks",
        "W6" | "W8" => "per_row",
        "W8+1ms" => "per_worker",
        "W9" => "bare",
        _ => "rayon",
    }
}

fn print_table(table: &[Measured]) {
    println!("| workload | method | N | threads | median s | rows/s | ratio | peak RSS |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for m in table {
        let rate = m.n as f64 / m.median_s;
        let reference = table.iter().find(|r| {
            r.workload == m.workload
                && r.method == reference(m.workload)
                && (r.threads == m.threads || r.method == "serial" || r.method == "serial_blocks")
        });
        let ratio = match reference {
            Some(r) if std::ptr::eq(r, m) => "ref".to_owned(),
            Some(r) => format!("{:.2}x", rate / (r.n as f64 / r.median_s)),
            None => "-".to_owned(),
        };
        println!(
            "| {} | {} | {} | {} | {:.4} | {:.3e} | {} | {:.0} MiB |",
            m.workload,
            m.method,
            m.n,
            m.threads,
            m.median_s,
            rate,
            ratio,
            m.peak_rss as f64 / (1024.0 * 1024.0)
        );
    }
}
