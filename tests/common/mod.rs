//! Shared test data: random frames with nulls, built as one or several Arrow chunks, and the plain
//! serial computations the parallel paths are compared with.
#![allow(dead_code)]

use polars_flock::polars::prelude::*;
use proptest::prelude::*;

/// The columns of a test frame as plain vectors, the source of truth for serial computations.
#[derive(Debug, Clone)]
pub struct Data {
    pub f: Vec<Option<f64>>,
    pub i: Vec<Option<i64>>,
    pub s: Vec<Option<String>>,
    pub b: Vec<Option<bool>>,
}

/// splitmix64: deterministic values from a seed.
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Data {
    /// `n` rows from `seed`, with about one null in ten in every column.
    pub fn generate(n: usize, seed: u64) -> Self {
        let mut st = seed;
        let mut next = || splitmix(&mut st);
        let mut data = Data {
            f: Vec::with_capacity(n),
            i: Vec::with_capacity(n),
            s: Vec::with_capacity(n),
            b: Vec::with_capacity(n),
        };
        for _ in 0..n {
            let r = next();
            data.f.push(
                (r % 10 != 0).then(|| (next() >> 11) as f64 / (1u64 << 53) as f64 * 100.0 - 50.0),
            );
            data.i
                .push((r % 10 != 1).then(|| (next() % 2_001) as i64 - 1_000));
            data.s
                .push((r % 10 != 2).then(|| format!("item-{}", next() % 997)));
            data.b.push((r % 10 != 3).then(|| next() % 2 == 0));
        }
        data
    }

    pub fn len(&self) -> usize {
        self.f.len()
    }

    /// The frame, vstacked from `pieces` parts so that its columns have several Arrow chunks.
    pub fn frame(&self, pieces: usize) -> DataFrame {
        let n = self.len();
        let pieces = pieces.max(1);
        let mut out: Option<DataFrame> = None;
        for p in 0..pieces {
            let (lo, hi) = (n * p / pieces, n * (p + 1) / pieces);
            let part = df!(
                "f" => &self.f[lo..hi],
                "i" => &self.i[lo..hi],
                "s" => &self.s[lo..hi],
                "b" => &self.b[lo..hi],
            )
            .unwrap();
            match out.as_mut() {
                None => out = Some(part),
                Some(df) => {
                    df.vstack_mut_owned(part).unwrap();
                }
            }
        }
        out.unwrap()
    }
}

/// The row function the property tests apply, on plain values.
pub fn row_fn(f: Option<f64>, i: Option<i64>, s: Option<&str>, b: Option<bool>) -> Option<f64> {
    let (f, i) = (f?, i?);
    let extra = s.map_or(0, str::len) as f64 + if b == Some(true) { 0.5 } else { 0.0 };
    Some(f * i as f64 + extra)
}

/// The serial result of [`row_fn`] over `data`.
pub fn serial_row_fn(data: &Data) -> Vec<Option<f64>> {
    (0..data.len())
        .map(|r| row_fn(data.f[r], data.i[r], data.s[r].as_deref(), data.b[r]))
        .collect()
}

/// The property tests' configuration: at least 256 cases per property (CI runs the default);
/// `PROPTEST_CASES` raises it.
pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
        .max(256);
    ProptestConfig::with_cases(cases)
}

/// A strategy for (rows, seed, pieces).
pub fn frame_params() -> impl Strategy<Value = (usize, u64, usize)> {
    (0usize..=5_000, any::<u64>(), 1usize..=4)
}

/// A chunk size from 1 to beyond `rows`, or `None` for the automatic rule.
pub fn chunksize(rows: usize) -> impl Strategy<Value = Option<usize>> {
    prop_oneof![
        1 => Just(None),
        4 => (1usize..=rows + 10).prop_map(Some),
        1 => (1usize..=8).prop_map(Some),
    ]
}

/// The options for a property case.
pub fn flock(chunksize: Option<usize>, threads: usize) -> polars_flock::Flock {
    let flock = polars_flock::Flock::new().threads(threads);
    match chunksize {
        Some(cs) => flock.chunksize(cs),
        None => flock,
    }
}

pub fn f64_values(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name).unwrap().f64().unwrap().iter().collect()
}

pub fn i64_values(df: &DataFrame, name: &str) -> Vec<i64> {
    df.column(name)
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

/// Runs the `#[ignore]`d test `name` of the current test binary in a child process and fails if it
/// fails or does not finish within `timeout` (then the child is killed): a regression that hangs
/// fails CI instead of stalling it.
pub fn run_in_child(name: &str, timeout: std::time::Duration) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--ignored", "--test-threads=1"])
        .env("POLARS_FLOCK_CHILD", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "{name} failed in the child process: {status}"
            );
            return;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} hung: killed after {timeout:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether this process is a child started by [`run_in_child`].
pub fn in_child() -> bool {
    std::env::var_os("POLARS_FLOCK_CHILD").is_some()
}

/// A value whose `Drop` panics once, the first time it is dropped while `armed` is set (a second
/// panic while the first unwinds would abort the process, which no library can contain).
#[derive(Debug)]
pub struct PanicsOnDrop(pub &'static std::sync::atomic::AtomicBool);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if self.0.swap(false, std::sync::atomic::Ordering::SeqCst) {
            panic!("drop panicked");
        }
    }
}
