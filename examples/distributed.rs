//! One domain function, three ways: a serial loop, all local cores, and a cluster of processes.
//!
//! ```text
//! cargo run --release --features distributed --example distributed            # all three, the cluster on loopback
//! cargo run --release --features distributed --example distributed -- --rows 2000000 --chunks 64
//! ```
//!
//! Without a launcher's environment it runs the serial loop and the local call itself, then
//! starts two copies of itself as the processes of a cluster on 127.0.0.1 (one thread each,
//! `FLOCK_PROCESS` / `FLOCK_ADDRESSES` set for them) and compares what process 0 returns. Under
//! a launcher (a Kubernetes Indexed Job, `srun`, or `FLOCK_*` variables: see
//! `deploy/kubernetes.yaml` and `deploy/slurm.sh`) each process runs only the cluster way, and
//! process 0 prints the result.
//!
//! The domain function is workload W2 of the benchmarks: 1,000 steps of the logistic map per
//! row, compute-bound, so that the cluster's cost (frames crossing the network) shows against
//! real work. It ends with the cost per chunk exchanged: many tiny chunks with a trivial function.

#[path = "../benches/common/mod.rs"]
mod workloads;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use polars_flock::distributed::{Chunks, Cluster};
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{BoxError, Flock};

/// The domain code: written once, used by every way below.
fn score(row: &Row<'_>) -> Result<f64, BoxError> {
    Ok(workloads::w2(row.f64("x")?, row.i64("k")?))
}

/// Chunk `c` of the dataset, made from its id alone, so that every process can make its own
/// chunks (in production: a file or a Parquet row group per chunk, `Chunks::files` /
/// `Chunks::parquet`).
fn make_chunk(c: usize, rows: usize) -> PolarsResult<DataFrame> {
    let start = (c * rows) as i64;
    let id: Vec<i64> = (start..start + rows as i64).collect();
    let x: Vec<f64> = id
        .iter()
        .map(|i| ((i * 7919) % 10_007) as f64 / 10_007.0)
        .collect();
    let k: Vec<i64> = id.iter().map(|i| i % 1_000).collect();
    df!("id" => id, "x" => x, "k" => k)
}

struct Args {
    rows: usize,
    chunks: usize,
    runs: usize,
}

fn args() -> Args {
    let mut a = Args {
        rows: 200_000,
        chunks: 16,
        runs: 1,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--rows", Some(v)) => a.rows = v,
            ("--chunks", Some(v)) => a.chunks = v,
            ("--runs", Some(v)) => a.runs = v,
            _ => {}
        }
    }
    a.chunks = a.chunks.max(1);
    a
}

fn main() -> Result<(), BoxError> {
    let a = args();
    let per_chunk = a.rows.div_ceil(a.chunks);
    let chunks = Chunks::new(a.chunks, move |c| Ok(make_chunk(c, per_chunk)?));

    // Under a launcher: this process is one of the cluster's. Run the cluster way only.
    if std::env::var_os("FLOCK_PROCESS").is_some()
        || std::env::var_os("JOB_COMPLETION_INDEX").is_some()
        || std::env::var_os("SLURM_PROCID").is_some()
    {
        return cluster_process(&chunks, &a);
    }

    // ## 1. A serial loop (what a notebook starts with)
    let whole = {
        let mut all = make_chunk(0, per_chunk)?;
        for c in 1..a.chunks {
            all.vstack_mut_owned(make_chunk(c, per_chunk)?)?;
        }
        all
    };
    let t = Instant::now();
    let mut serial = Vec::with_capacity(whole.height());
    for c in 0..a.chunks {
        let chunk = make_chunk(c, per_chunk)?;
        let (x, k) = (chunk.column("x")?.f64()?, chunk.column("k")?.i64()?);
        for (x, k) in x.cont_slice()?.iter().zip(k.cont_slice()?) {
            serial.push(workloads::w2(*x, *k));
        }
    }
    let serial_s = t.elapsed().as_secs_f64();
    println!(
        "1. serial loop      {} rows in {serial_s:.3} s",
        serial.len()
    );

    // ## 2. All local cores: the same function, one call
    let run_local = || -> Result<(DataFrame, f64), BoxError> {
        let t = Instant::now();
        let out = Flock::new()
            .threads(2)
            .on(&whole)
            .par_apply_rows("y", score)?;
        Ok((out, t.elapsed().as_secs_f64()))
    };
    let (local, secs) = run_local()?;
    let mut local_s = vec![secs];
    let same = local
        .column("y")?
        .f64()?
        .into_no_null_iter()
        .eq(serial.iter().copied());
    println!(
        "2. local, 2 threads {} rows in {secs:.3} s  (same as serial: {same})",
        local.height()
    );

    // ## 3. A cluster of processes: the same function, `Cluster` instead of a frame
    // Two copies of this program on loopback, one thread each; process 0 reports back.
    let want: f64 = local.column("y")?.f64()?.sum().unwrap_or(0.0);
    let (secs, checksum) = launch_on_loopback(2, &a)?;
    let mut cluster_s = vec![secs];
    println!(
        "3. cluster, 2 processes x 1 thread: {secs:.3} s in process 0's call (checksum equal: {})",
        (checksum - want).abs() <= 1e-9 * want.abs().max(1.0)
    );

    // ## Measured: the local call and the cluster alternately, `--runs` times
    for _ in 1..a.runs {
        local_s.push(run_local()?.1);
        cluster_s.push(launch_on_loopback(2, &a)?.0);
    }
    if a.runs > 1 {
        let l = median(&local_s);
        let c = median(&cluster_s);
        println!(
            "   2 processes x 1 thread vs 1 process x 2 threads: {:.2}x (medians of {} runs; cluster {} s, local {} s)",
            l / c,
            a.runs,
            range(&cluster_s),
            range(&local_s)
        );
    }
    exchange_cost(2, &a)?;
    Ok(())
}

/// One process of the cluster: runs the job and, at process 0, prints its time and checksum.
fn cluster_process(chunks: &Chunks<'_>, a: &Args) -> Result<(), BoxError> {
    // `FLOCK_THREADS` (set by the loopback launcher below) sizes each process's pool.
    let cluster = Cluster::from_env()?;
    // The exchange cost: many one-row chunks with a trivial function, when asked.
    if let Some(test) = std::env::var_os("FLOCK_EXCHANGE_TEST") {
        let tiny = Chunks::new(a.chunks, |c| Ok(df!("c" => [c as i64])?));
        let source = if test == "bytes" { chunks } else { &tiny };
        let t = Instant::now();
        let out = cluster.par_apply_blocks(source, Ok)?;
        if let Some(out) = out {
            let bytes = out.estimated_size();
            println!(
                "exchange {} {} {bytes}",
                out.height(),
                t.elapsed().as_secs_f64()
            );
        }
        return Ok(());
    }
    let t = Instant::now();
    let out = cluster.par_apply_rows(chunks, "y", score)?;
    let secs = t.elapsed().as_secs_f64();
    if let Some(out) = out {
        let checksum = out.column("y")?.f64()?.sum().unwrap_or(0.0);
        println!("result {} {secs} {checksum}", out.height());
    }
    Ok(())
}

/// Starts `n` copies of this program as a cluster on 127.0.0.1 and returns process 0's job time
/// and checksum.
fn launch_on_loopback(n: usize, a: &Args) -> Result<(f64, f64), BoxError> {
    let (secs, rest) = run_cluster(n, a, &[])?;
    let checksum = rest.parse::<f64>()?;
    Ok((secs, checksum))
}

fn run_cluster(n: usize, a: &Args, extra: &[(&str, &str)]) -> Result<(f64, String), BoxError> {
    let ports: Vec<u16> = (0..n)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
        })
        .collect::<Result<_, _>>()?;
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let me = std::env::current_exe()?;
    let mut children = Vec::new();
    for p in 0..n {
        let mut cmd = Command::new(&me);
        cmd.args([
            "--rows",
            &a.rows.to_string(),
            "--chunks",
            &a.chunks.to_string(),
        ])
        .env("FLOCK_PROCESS", p.to_string())
        .env("FLOCK_ADDRESSES", addresses.join(","))
        .env("FLOCK_THREADS", "1")
        .stdout(if p == 0 {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        for (k, v) in extra {
            cmd.env(k, v);
        }
        children.push(cmd.spawn()?);
    }
    let mut report = String::new();
    for (p, child) in children.into_iter().enumerate() {
        let out = wait_with_timeout(child, Duration::from_secs(600))?;
        if !out.status.success() {
            return Err(format!("process {p} failed: {}", out.status).into());
        }
        if p == 0 {
            report = String::from_utf8(out.stdout)?;
        }
    }
    let line = report.lines().last().ok_or("process 0 printed nothing")?;
    let mut words = line.split_whitespace().skip(2);
    let secs = words.next().ok_or("no time")?.parse::<f64>()?;
    Ok((secs, words.collect::<Vec<_>>().join(" ")))
}

/// Prints the cost per chunk exchanged: 2,000 one-row chunks through the cluster.
fn exchange_cost(n: usize, a: &Args) -> Result<(), BoxError> {
    let tiny = Args {
        chunks: 2_000,
        ..*a
    };
    let (secs, _) = run_cluster(n, &tiny, &[("FLOCK_EXCHANGE_TEST", "1")])?;
    println!(
        "   exchange: {} one-row chunks in {secs:.3} s = {:.0} us per chunk (produce, run, encode, send, decode, concatenate)",
        tiny.chunks,
        secs / tiny.chunks as f64 * 1e6
    );
    // The data's cost: the dataset's chunks themselves, with nothing computed.
    let (secs, bytes) = run_cluster(n, a, &[("FLOCK_EXCHANGE_TEST", "bytes")])?;
    let mib = bytes.parse::<f64>()? / (1 << 20) as f64;
    println!(
        "   exchange: the {} chunks as they are ({mib:.0} MiB, half of it from the other process) in {secs:.3} s",
        a.chunks
    );
    Ok(())
}

fn wait_with_timeout(
    mut child: std::process::Child,
    timeout: Duration,
) -> Result<std::process::Output, BoxError> {
    let start = Instant::now();
    while child.try_wait()?.is_none() {
        if start.elapsed() > timeout {
            child.kill()?;
            return Err("a process did not finish in time".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(child.wait_with_output()?)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn range(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    if v.len() == 1 {
        format!("{lo:.3}")
    } else {
        format!("{lo:.3}-{hi:.3}")
    }
}
