//! The standard workloads (W1–W6 of the project's WORKLOADS.md), generated deterministically and
//! shared by the benches, the `workloads` example and the tests (included with `#[path]`).
#![allow(dead_code)]

use polars_flock::BoxError;
use polars_flock::polars::prelude::*;
use rayon::prelude::*;

/// splitmix64: the generator and (W5) the per-item work.
#[inline(always)]
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    finalise(*state)
}

/// The splitmix64 finaliser.
#[inline(always)]
pub fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Frame F(N): `id` = 0..N, `x`/`y` uniform in [0, 1) from splitmix64 seeded with 42 (x from the
/// even draws, y from the odd ones), `k` = id % 1000, `s` = "item-" + (id % 997).
pub fn frame(n: usize) -> DataFrame {
    let mut state = 42u64;
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        x.push(unit(splitmix64(&mut state)));
        y.push(unit(splitmix64(&mut state)));
    }
    let id: Vec<i64> = (0..n as i64).collect();
    let k: Vec<i64> = id.iter().map(|i| i % 1_000).collect();
    let labels: Vec<String> = (0..997).map(|i| format!("item-{i}")).collect();
    let s = StringChunked::from_iter_values(
        "s".into(),
        id.iter().map(|i| labels[(*i % 997) as usize].as_str()),
    );
    DataFrame::new(
        n,
        vec![
            Column::new("id".into(), id),
            Column::new("x".into(), x),
            Column::new("y".into(), y),
            Column::new("k".into(), k),
            s.into_column(),
        ],
    )
    .expect("columns of equal length")
}

/// W1: a light row UDF.
#[inline(always)]
pub fn w1(x: f64, y: f64, k: i64) -> f64 {
    x * y + k as f64
}

/// W2: a heavy row UDF, the logistic map iterated 1,000 times.
#[inline(always)]
pub fn w2(x: f64, k: i64) -> f64 {
    let mut v = 0.01 + 0.98 * x;
    for _ in 0..1_000 {
        v = 3.9 * v * (1.0 - v);
    }
    v + k as f64
}

/// W3: a string row UDF: the length plus the count of '1's.
#[inline(always)]
pub fn w3(s: &str) -> i64 {
    (s.len() + s.bytes().filter(|b| *b == b'1').count()) as i64
}

/// W4: a block UDF: the block plus `z` = (x - mean(x)) / std(x), over the block.
pub fn w4(block: DataFrame) -> Result<DataFrame, BoxError> {
    let x = block.column("x")?.f64()?;
    let (mean, std) = (x.mean().unwrap_or(0.0), x.std(1).unwrap_or(1.0));
    let z: Float64Chunked = x.apply_values(|v| (v - mean) / std);
    let mut block = block;
    block.with_column(z.with_name("z".into()).into_column())?;
    Ok(block)
}

/// The quickstart's shape: `lat`/`lon` of generated deliveries (uniform in [35, 70) and
/// [-10, 30)), and the great-circle distance from a depot, about 20 ns of libm work per row read
/// through two getters.
pub fn deliveries(n: usize) -> DataFrame {
    let mut state = 42u64;
    let lat: Vec<f64> = (0..n)
        .map(|_| 35.0 + 35.0 * unit(splitmix64(&mut state)))
        .collect();
    let lon: Vec<f64> = (0..n)
        .map(|_| -10.0 + 40.0 * unit(splitmix64(&mut state)))
        .collect();
    df!("lat" => lat, "lon" => lon).expect("equal lengths")
}

/// The quickstart's per-row work: haversine distance in km from (59.91, 10.75).
#[inline(always)]
pub fn haversine_km(lat: f64, lon: f64) -> f64 {
    let (p1, p2) = (59.91f64.to_radians(), lat.to_radians());
    let dl = (lon - 10.75).to_radians();
    let a = ((p2 - p1) / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    6_371.0 * 2.0 * a.sqrt().asin()
}

/// W5: the splitmix64 finaliser iterated 100 times.
#[inline(always)]
pub fn w5(x: &u64) -> u64 {
    let mut z = *x;
    for _ in 0..100 {
        z = finalise(z);
    }
    z
}

/// W6's lookup table: `lookup(k INTEGER PRIMARY KEY, label TEXT)`, 1,000 rows.
pub fn w6_label(k: i64) -> String {
    format!("label-{k}-{}", "x".repeat((k % 13) as usize))
}

/// The hand-written rayon shape: cut `0..n` into `4 × threads` ranges, map each to an array on
/// `pool`, and append the arrays in order (no rechunk) — what this crate does, without it.
pub fn rayon_ranges<F>(pool: &rayon::ThreadPool, n: usize, f: F) -> Series
where
    F: Fn(std::ops::Range<usize>) -> Series + Sync,
{
    let chunk = n.div_ceil(4 * pool.current_num_threads()).max(1);
    let parts: Vec<Series> = pool.install(|| {
        (0..n.div_ceil(chunk))
            .into_par_iter()
            .map(|b| f(b * chunk..((b + 1) * chunk).min(n)))
            .collect()
    });
    let mut parts = parts.into_iter();
    let mut out = parts.next().expect("n > 0");
    for part in parts {
        out.append_owned(part).expect("same dtype");
    }
    out
}
