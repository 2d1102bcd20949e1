//! Cluster jobs of real processes on loopback: this test binary starts copies of itself (the
//! ignored test `cluster_process`, configured through the environment) as the processes of a
//! job, each bounded by a timeout, and checks what they return, print and write.
#![cfg(feature = "distributed")]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use polars_flock::distributed::{Chunks, Cluster};
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::streaming::{IpcBatches, write_ipc};

/// Rows per chunk of the test job.
const ROWS: usize = 500;

/// Chunk `c` of the test job: the same frame on every process.
fn chunk(c: usize) -> DataFrame {
    let x: Vec<f64> = (0..ROWS)
        .map(|i| ((c * ROWS + i) % 97) as f64 / 7.0)
        .collect();
    let k: Vec<i64> = (0..ROWS).map(|i| ((c * ROWS + i) % 13) as i64).collect();
    let s: Vec<Option<String>> = (0..ROWS)
        .map(|i| (i % 11 != 0).then(|| format!("r{}", c * ROWS + i)))
        .collect();
    df!("x" => x, "k" => k, "s" => s).unwrap()
}

/// The row function of the test job.
fn score(row: &Row<'_>) -> Result<f64, BoxError> {
    let mut v = row.f64("x")?.fract() * 0.98 + 0.01;
    for _ in 0..50 {
        v = 3.9 * v * (1.0 - v);
    }
    Ok(v + row.i64("k")? as f64 + row.opt_str("s")?.map_or(0.0, |s| s.len() as f64))
}

/// What one process of a test job does, from its environment: `SCENARIO`, `CHUNKS`, `OUT` (a
/// directory for its result, error and the chunks it computed), and the cluster's `FLOCK_*`.
#[test]
#[ignore = "a process of the cluster tests, started by them"]
fn cluster_process() {
    let Ok(scenario) = std::env::var("SCENARIO") else {
        return;
    };
    let chunks: usize = std::env::var("CHUNKS").unwrap().parse().unwrap();
    let out = PathBuf::from(std::env::var("OUT").unwrap());
    let cluster = Cluster::from_env().unwrap();
    let me = cluster.process();
    let log = out.join(format!("computed-{me}"));
    let slow = scenario.contains("slow");
    let source = Chunks::new(chunks, |c| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        writeln!(f, "{c}")?;
        if slow {
            std::thread::sleep(Duration::from_millis(150));
        }
        Ok(chunk(c))
    });
    let cluster = match scenario.as_str() {
        s if s.starts_with("parts") => cluster.parts(out.join("parts")),
        _ => cluster,
    };
    // In the panic scenario, a row of chunk 3 (process 1's) panics.
    let cursed = (scenario == "panic").then(|| format!("r{}", 3 * ROWS + 1));
    let result = cluster.par_apply_chunks(&source, |flock, df| {
        flock.on(&df).par_apply_rows("y", |row| {
            if cursed.is_some() && row.opt_str("s")? == cursed.as_deref() {
                panic!("chunk three is cursed");
            }
            score(row)
        })
    });
    let summary = match result {
        Ok(Some(df)) => {
            write_ipc(out.join("result.arrow"), [Ok::<_, BoxError>(df)]).unwrap();
            "ok".to_owned()
        }
        Ok(None) => "none".to_owned(),
        Err(e) => describe(&e),
    };
    std::fs::write(out.join(format!("summary-{me}")), summary).unwrap();
}

/// An error as `Variant key=value …`, for the parent to check.
fn describe(e: &polars_flock::Error) -> String {
    use polars_flock::Error;
    match e {
        Error::InChunk {
            chunk,
            process,
            source,
        } => {
            format!(
                "InChunk chunk={chunk} process={process} source={}",
                describe(source)
            )
        }
        Error::Panicked { message, .. } => format!("Panicked message={message}"),
        Error::PeerLost { process, peer, .. } => {
            format!("PeerLost process={process} peer={peer:?}")
        }
        Error::ClusterStart { process, peer, .. } => {
            format!("ClusterStart process={process} peer={peer}")
        }
        other => format!("Other {other}"),
    }
}

/// A running job's processes, killed when dropped (a failing test leaves none behind).
struct Job {
    children: Vec<Option<Child>>,
}

impl Drop for Job {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// Starts processes `which` of an `n`-process job of `scenario` over `chunks` chunks, writing
/// into `out`.
fn start(
    scenario: &str,
    n: usize,
    which: &[usize],
    chunks: usize,
    out: &Path,
    extra: &[(&str, &str)],
) -> Job {
    let addresses = free_ports(n)
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    start_at(&addresses, scenario, which, chunks, out, extra)
}

/// [`start`] on the given comma-separated addresses.
fn start_at(
    addresses: &str,
    scenario: &str,
    which: &[usize],
    chunks: usize,
    out: &Path,
    extra: &[(&str, &str)],
) -> Job {
    std::fs::create_dir_all(out).unwrap();
    let children = which
        .iter()
        .map(|p| {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args([
                "cluster_process",
                "--exact",
                "--ignored",
                "--test-threads=1",
                "--nocapture",
            ])
            .env("SCENARIO", scenario)
            .env("CHUNKS", chunks.to_string())
            .env("OUT", out)
            .env("FLOCK_PROCESS", p.to_string())
            .env("FLOCK_ADDRESSES", addresses)
            .env("FLOCK_STARTUP_TIMEOUT", "20")
            .env("POLARS_MAX_THREADS", "2")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            for (k, v) in extra {
                cmd.env(k, v);
            }
            Some(cmd.spawn().unwrap())
        })
        .collect();
    Job { children }
}

/// What process `i` (the `i`-th started) printed and how it ended, waiting at most `timeout`.
fn wait(job: &mut Job, i: usize, timeout: Duration) -> (std::process::ExitStatus, String, String) {
    let start = Instant::now();
    let mut child = job.children[i].take().unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
            return (status, text(out.stdout), text(out.stderr));
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {i} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn summary(out: &Path, process: usize) -> String {
    std::fs::read_to_string(out.join(format!("summary-{process}")))
        .unwrap_or_else(|_| "<no summary>".into())
}

fn computed(out: &Path, process: usize) -> Vec<usize> {
    std::fs::read_to_string(out.join(format!("computed-{process}")))
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn result(out: &Path) -> DataFrame {
    let mut frames = IpcBatches::open(out.join("result.arrow")).unwrap();
    let mut df = frames.next().unwrap().unwrap();
    for f in frames {
        df.vstack_mut_owned(f.unwrap()).unwrap();
    }
    df
}

/// The job's output as one process computes it: `par_apply_rows` over the chunks one under
/// the other.
fn single_process(chunks: usize) -> DataFrame {
    let mut all = chunk(0);
    for c in 1..chunks {
        all.vstack_mut_owned(chunk(c)).unwrap();
    }
    all.par_apply_rows("y", score).unwrap()
}

/// Only the test harness's own lines: the crate writes nothing to stdout.
fn assert_no_crate_output(stdout: &str) {
    for line in stdout.lines() {
        let harness = line.is_empty()
            || line.starts_with("running ")
            || line.starts_with("test ")
            || line.starts_with("test result:");
        assert!(harness, "unexpected stdout line: {line:?}\n{stdout}");
    }
}

#[test]
fn two_processes_return_at_process_0_exactly_the_single_process_result() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = 9;
    let mut job = start("rows", 2, &[0, 1], chunks, dir.path(), &[]);
    let (s0, out0, err0) = wait(&mut job, 0, Duration::from_secs(60));
    let (s1, out1, _) = wait(&mut job, 1, Duration::from_secs(60));
    assert!(s0.success() && s1.success(), "{err0}");
    assert_eq!(summary(dir.path(), 0), "ok");
    assert_eq!(summary(dir.path(), 1), "none");
    assert_no_crate_output(&out0);
    assert_no_crate_output(&out1);
    // Chunk c ran on process c % 2, each once.
    assert_eq!(computed(dir.path(), 0), [0, 2, 4, 6, 8]);
    assert_eq!(computed(dir.path(), 1), [1, 3, 5, 7]);
    let got = result(dir.path());
    let want = single_process(chunks);
    assert_eq!(got.schema(), want.schema());
    assert!(got.equals_missing(&want), "{got}\n{want}");
}

#[test]
fn a_peer_killed_mid_run_makes_the_other_return_an_error_within_seconds() {
    for victim in [1usize, 0] {
        let dir = tempfile::tempdir().unwrap();
        let mut job = start("slow", 2, &[0, 1], 40, dir.path(), &[]);
        // Both are computing: the victim has started a few of its chunks.
        let t = Instant::now();
        while computed(dir.path(), victim).len() < 3 {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the job did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut child = job.children[victim].take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let killed = Instant::now();
        let survivor = 1 - victim;
        let (status, stdout, stderr) = wait(&mut job, survivor, Duration::from_secs(10));
        let took = killed.elapsed();
        assert!(
            status.success(),
            "the survivor panicked or crashed: {stderr}"
        );
        assert!(took < Duration::from_secs(10), "{took:?}");
        let s = summary(dir.path(), survivor);
        assert!(
            s.starts_with(&format!("PeerLost process={survivor} peer=Some({victim})")),
            "{s}"
        );
        assert_no_crate_output(&stdout);
        assert!(
            !stderr.contains("panicked"),
            "timely's panics leaked: {stderr}"
        );
    }
}

#[test]
fn a_process_whose_peer_never_starts_errors_after_the_startup_timeout() {
    for (started, missing) in [(0usize, 1usize), (1, 0)] {
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let mut job = start(
            "rows",
            2,
            &[started],
            4,
            dir.path(),
            &[("FLOCK_STARTUP_TIMEOUT", "2")],
        );
        let (status, stdout, _) = wait(&mut job, 0, Duration::from_secs(15));
        let took = t.elapsed();
        assert!(status.success());
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(10),
            "{took:?}"
        );
        assert_eq!(
            summary(dir.path(), started),
            format!("ClusterStart process={started} peer={missing}")
        );
        assert_no_crate_output(&stdout);
        assert!(
            computed(dir.path(), started).is_empty(),
            "a chunk ran before the cluster was up"
        );
    }
}

#[test]
fn connections_without_the_handshake_are_dropped_and_the_job_runs() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let addresses = format!("127.0.0.1:{},127.0.0.1:{}", ports[0], ports[1]);
    let mut first = start_at(&addresses, "rows", &[0], 4, dir.path(), &[]);
    // Strangers reach process 0 before process 1 does: one sends garbage, one closes at once.
    let t = Instant::now();
    let mut stray = loop {
        match std::net::TcpStream::connect(("127.0.0.1", ports[0])) {
            Ok(s) => break s,
            Err(_) if t.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("process 0 never listened: {e}"),
        }
    };
    std::io::Write::write_all(&mut stray, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    drop(std::net::TcpStream::connect(("127.0.0.1", ports[0])).unwrap());
    let mut second = start_at(&addresses, "rows", &[1], 4, dir.path(), &[]);
    let (s0, _, err0) = wait(&mut first, 0, Duration::from_secs(60));
    let (s1, _, _) = wait(&mut second, 0, Duration::from_secs(60));
    assert!(s0.success() && s1.success(), "{err0}");
    assert_eq!(summary(dir.path(), 0), "ok");
    assert!(result(dir.path()).equals_missing(&single_process(4)));
}

#[test]
fn a_panic_on_process_1_is_reported_by_every_process_as_panicked_in_that_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = start("panic", 2, &[0, 1], 12, dir.path(), &[]);
    let (s0, _, err0) = wait(&mut job, 0, Duration::from_secs(60));
    let (s1, _, _) = wait(&mut job, 1, Duration::from_secs(60));
    assert!(s0.success() && s1.success(), "{err0}");
    let want = "InChunk chunk=3 process=1 source=Panicked message=chunk three is cursed";
    assert_eq!(summary(dir.path(), 0), want);
    assert_eq!(summary(dir.path(), 1), want);
}

#[test]
fn part_files_after_a_crash_a_rerun_computes_only_the_missing_chunks_and_gathers_the_same_output() {
    let chunks = 16;
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("parts");
    // First run: killed mid-run.
    let mut job = start("parts-slow", 2, &[0, 1], chunks, dir.path(), &[]);
    let t = Instant::now();
    while std::fs::read_dir(&parts).map_or(0, |d| d.count()) < 4 {
        assert!(t.elapsed() < Duration::from_secs(60), "no parts written");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut victim = job.children[1].take().unwrap();
    victim.kill().unwrap();
    victim.wait().unwrap();
    let (_, _, _) = wait(&mut job, 0, Duration::from_secs(10));
    let done: BTreeSet<usize> = std::fs::read_dir(&parts)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("part-")?
                .strip_suffix(".arrow")?
                .parse()
                .ok()
        })
        .collect();
    assert!(!done.is_empty() && done.len() < chunks, "{done:?}");
    // No temporary file is taken for a part: a rerun must compute every chunk not in `done`.
    for p in 0..2 {
        let _ = std::fs::remove_file(dir.path().join(format!("computed-{p}")));
    }
    let mut rerun = start("parts", 2, &[0, 1], chunks, dir.path(), &[]);
    let (s0, _, err0) = wait(&mut rerun, 0, Duration::from_secs(60));
    let (s1, _, _) = wait(&mut rerun, 1, Duration::from_secs(60));
    assert!(s0.success() && s1.success(), "{err0}");
    assert_eq!(summary(dir.path(), 0), "ok");
    let recomputed: BTreeSet<usize> = (0..2).flat_map(|p| computed(dir.path(), p)).collect();
    let expected: BTreeSet<usize> = (0..chunks).filter(|c| !done.contains(c)).collect();
    assert_eq!(
        recomputed, expected,
        "finished chunks were recomputed, or missing ones not"
    );
    let got = result(dir.path());
    assert!(got.equals_missing(&single_process(chunks)));
    // A third run computes nothing.
    for p in 0..2 {
        let _ = std::fs::remove_file(dir.path().join(format!("computed-{p}")));
    }
    let mut third = start("parts", 2, &[0, 1], chunks, dir.path(), &[]);
    wait(&mut third, 0, Duration::from_secs(60));
    wait(&mut third, 1, Duration::from_secs(60));
    assert!((0..2).all(|p| computed(dir.path(), p).is_empty()));
    assert!(result(dir.path()).equals_missing(&single_process(chunks)));
}

// In-process jobs (one process, no network) run in a child process too: a regression in the
// job's own stepping would hang, not fail.

#[test]
fn in_process_a_single_cluster_equals_the_local_call_for_every_verb() {
    common::run_in_child("child_single_cluster_verbs", Duration::from_secs(60));
}

#[test]
fn in_process_the_users_cancel_token_stops_the_job_as_a_failed_chunk() {
    common::run_in_child("child_single_cluster_cancel", Duration::from_secs(60));
}

#[test]
#[ignore = "run in a child process by in_process_a_single_cluster_equals_the_local_call_for_every_verb"]
fn child_single_cluster_verbs() {
    let chunks = Chunks::new(5, |c| Ok(chunk(c)));
    let cluster = Cluster::single();
    let want = single_process(5);
    let got = cluster
        .par_apply_rows(&chunks, "y", score)
        .unwrap()
        .unwrap();
    assert!(got.equals_missing(&want));
    // Each chunk is split into blocks by the cluster's local options, as a local call would.
    let heads = |flock: polars_flock::Flock| {
        let c = Cluster::single().flock(flock);
        c.par_apply_blocks(&chunks, |b| Ok(b.head(Some(2))))
            .unwrap()
            .unwrap()
            .height()
    };
    assert_eq!(heads(polars_flock::Flock::new().blocks(1)), 5 * 2);
    assert_eq!(heads(polars_flock::Flock::new().chunksize(100)), 5 * 5 * 2);
    // An empty source: an empty frame at process 0.
    let none = Chunks::new(0, |_| unreachable!());
    assert_eq!(
        cluster
            .par_apply_rows(&none, "y", score)
            .unwrap()
            .unwrap()
            .height(),
        0
    );
    // A chunk whose output has another schema.
    let odd = Chunks::new(3, |c| {
        if c == 2 {
            Ok(df!("z" => [1i64])?)
        } else {
            Ok(chunk(c))
        }
    });
    let err = cluster.par_apply_blocks(&odd, Ok).unwrap_err();
    assert!(
        matches!(&err, polars_flock::Error::InChunk { chunk: 2, source, .. } if matches!(**source, polars_flock::Error::SchemaMismatch { .. })),
        "{err}"
    );
}

#[test]
#[ignore = "run in a child process by in_process_the_users_cancel_token_stops_the_job_as_a_failed_chunk"]
fn child_single_cluster_cancel() {
    let token = CancelToken::new();
    token.cancel();
    let chunks = Chunks::new(3, |c| Ok(chunk(c)));
    let cluster = Cluster::single().flock(polars_flock::Flock::new().cancel_token(&token));
    let err = cluster.par_apply_rows(&chunks, "y", score).unwrap_err();
    assert!(
        matches!(&err, polars_flock::Error::InChunk { chunk: 0, source, .. } if matches!(**source, polars_flock::Error::Cancelled { .. })),
        "{err}"
    );
}

#[test]
fn a_process_that_cannot_listen_on_its_address_gets_cluster_start_naming_itself() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mine = taken.local_addr().unwrap().to_string();
    let other = format!("127.0.0.1:{}", free_ports(1)[0]);
    let cluster = Cluster::new(0, [mine.clone(), other]).unwrap();
    let chunks = Chunks::new(2, |c| Ok(chunk(c)));
    let err = cluster.par_apply_rows(&chunks, "y", score).unwrap_err();
    let polars_flock::Error::ClusterStart {
        process: 0,
        peer: 0,
        address,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*address, mine);
    assert!(err.to_string().contains("could not listen"), "{err}");
}

#[test]
fn other_panics_still_reach_the_hook_installed_before_the_crates() {
    common::run_in_child("child_panic_hook_chain", Duration::from_secs(60));
}

#[test]
#[ignore = "run in a child process by other_panics_still_reach_the_hook_installed_before_the_crates"]
fn child_panic_hook_chain() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    std::panic::set_hook(Box::new(|_| {
        SEEN.fetch_add(1, Ordering::SeqCst);
    }));
    // A job installs the crate's hook (on top of this one)...
    let chunks = Chunks::new(2, |c| Ok(chunk(c)));
    Cluster::single()
        .par_apply_rows(&chunks, "y", score)
        .unwrap();
    // ...which passes a panic of the program's own threads on to it,
    let _ = std::thread::spawn(|| panic!("the program's own panic")).join();
    assert_eq!(SEEN.load(Ordering::SeqCst), 1);
    // and swallows only those of timely's threads.
    let _ = std::thread::Builder::new()
        .name("timely:work-0".into())
        .spawn(|| panic!("as timely's threads do when a peer dies"))
        .unwrap()
        .join();
    assert_eq!(SEEN.load(Ordering::SeqCst), 1);
}

#[test]
fn one_process_jobs_equal_a_serial_computation_over_random_frames_chunks_and_threads() {
    common::run_in_child("child_cluster_property", Duration::from_secs(300));
}

#[test]
#[ignore = "run in a child process by one_process_jobs_equal_a_serial_computation_over_random_frames_chunks_and_threads"]
fn child_cluster_property() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(32);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = (
        common::frame_params(),
        1usize..=700,
        prop::option::of(1usize..=300),
        1usize..=3,
    );
    runner
        .run(
            &strategy,
            |((n, seed, pieces), chunk_rows, local_rows, threads)| {
                let data = common::Data::generate(n, seed);
                let df = data.frame(pieces);
                // The source cut by one planner, each chunk cut again by the processes' own options.
                let chunks =
                    Chunks::split(&df, &polars_flock::Flock::new().chunksize(chunk_rows)).unwrap();
                prop_assert_eq!(chunks.len(), n.div_ceil(chunk_rows).max(1));
                let cluster = Cluster::single().flock(common::flock(local_rows, threads));
                let row = |row: &Row<'_>| -> Result<Option<f64>, BoxError> {
                    Ok(common::row_fn(
                        row.opt_f64("f")?,
                        row.opt_i64("i")?,
                        row.opt_str("s")?,
                        row.opt_bool("b")?,
                    ))
                };
                let out = cluster
                    .par_apply_rows(&chunks, "out", row)
                    .unwrap()
                    .unwrap();
                prop_assert_eq!(
                    common::f64_values(&out, "out"),
                    common::serial_row_fn(&data)
                );
                prop_assert!(
                    out.select(["f", "i", "s", "b"])
                        .unwrap()
                        .equals_missing(&df)
                );
                // Blocks: every block's first row, as a serial loop over the same blocks finds them.
                let firsts = cluster
                    .par_apply_blocks(&chunks, |b| Ok(b.head(Some(1))))
                    .unwrap()
                    .unwrap();
                prop_assert_eq!(
                    firsts.height(),
                    if n == 0 {
                        0
                    } else {
                        (0..chunks.len())
                            .map(|c| {
                                let len = chunk_rows.min(n - c * chunk_rows);
                                let plan = common::flock(local_rows, threads).plan(len).unwrap();
                                plan.blocks()
                            })
                            .sum::<usize>()
                    }
                );
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn in_process_a_chunk_whose_source_fails_once_is_read_again_with_retries() {
    common::run_in_child(
        "child_single_cluster_chunk_retries",
        Duration::from_secs(60),
    );
}

#[test]
#[ignore = "run in a child process by in_process_a_chunk_whose_source_fails_once_is_read_again_with_retries"]
fn child_single_cluster_chunk_retries() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Chunk 2's source fails on its first read (a file server's hiccup); a panic is never retried.
    let reads = AtomicUsize::new(0);
    let chunks = Chunks::new(5, |c| {
        if c == 2 && reads.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err("connection reset while reading chunk 2".into());
        }
        Ok(chunk(c))
    });
    let zero = Duration::ZERO;
    let retrying =
        polars_flock::Flock::new().retries(polars_flock::Retry::attempts(2).backoff(zero, zero));
    let got = Cluster::single()
        .flock(retrying.clone())
        .par_apply_rows(&chunks, "y", score)
        .unwrap()
        .unwrap();
    assert!(got.equals_missing(&single_process(5)));
    assert_eq!(reads.load(Ordering::SeqCst), 2);
    // Without retries, the same hiccup is the chunk's failure.
    reads.store(0, Ordering::SeqCst);
    let err = Cluster::single()
        .par_apply_rows(&chunks, "y", score)
        .unwrap_err();
    assert!(
        matches!(err, polars_flock::Error::InChunk { chunk: 2, .. }),
        "{err}"
    );
    // A panicking source is not read again.
    let panics = Chunks::new(2, |c| {
        assert!(c != 1, "a broken reader");
        Ok(chunk(c))
    });
    let err = Cluster::single()
        .flock(retrying)
        .par_apply_rows(&panics, "y", score)
        .unwrap_err();
    let polars_flock::Error::InChunk {
        chunk: 1, source, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(
        matches!(**source, polars_flock::Error::Panicked { .. }),
        "{source}"
    );
}
