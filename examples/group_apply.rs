//! Group-wise apply (pandarallel's `groupby.parallel_apply`): each store's sales get a z-score
//! within their store and a rank, one closure call per store, stores in parallel — checked equal
//! to a serial loop over the groups, with the timings.
//!
//! Run with `cargo run --release --example group_apply`.

use std::time::Instant;

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Flock, Result};

const ROWS: usize = 1_000_000;
const STORES: u64 = 2_000;

fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Per store: the z-score of each sale within the store, and its rank by amount (1 = largest).
fn per_store(g: DataFrame) -> Result<DataFrame, BoxError> {
    let amount: Vec<f64> = g.column("amount")?.f64()?.into_no_null_iter().collect();
    let n = amount.len() as f64;
    let mean = amount.iter().sum::<f64>() / n;
    let std = (amount.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n)
        .sqrt()
        .max(1e-9);
    let mut order: Vec<usize> = (0..amount.len()).collect();
    order.sort_by(|&a, &b| amount[b].total_cmp(&amount[a]));
    let mut rank = vec![0i64; amount.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r as i64 + 1;
    }
    let z: Vec<f64> = amount.iter().map(|a| (a - mean) / std).collect();
    Ok(g.hstack(&[Column::new("z".into(), z), Column::new("rank".into(), rank)])?)
}

fn main() -> Result<(), BoxError> {
    // --- 1. Sales, stores interleaved --------------------------------------------------------
    let mut state = 7;
    let store: Vec<i64> = (0..ROWS)
        .map(|_| (next(&mut state) % STORES) as i64)
        .collect();
    let amount: Vec<f64> = (0..ROWS)
        .map(|_| (next(&mut state) % 100_000) as f64 / 100.0)
        .collect();
    let df = df!("store" => store, "amount" => amount)?;
    println!("[1] {} sales in {STORES} stores", df.height());

    // --- 2. Serially: one group at a time, in first-appearance order ---------------------------
    let serial = || -> Result<DataFrame, BoxError> {
        let grouped = df.group_by_stable(["store"])?;
        let mut out: Option<DataFrame> = None;
        for idx in grouped.get_groups().iter() {
            let rows: Vec<IdxSize> = match idx {
                GroupsIndicator::Idx((_, all)) => all.to_vec(),
                GroupsIndicator::Slice([first, len]) => (first..first + len).collect(),
            };
            let part = per_store(df.take(&IdxCa::from_vec("".into(), rows))?)?;
            match out.as_mut() {
                None => out = Some(part),
                Some(acc) => {
                    acc.vstack_mut_owned(part)?;
                }
            }
        }
        Ok(out.unwrap_or_default())
    };

    // --- 3. In parallel: par_apply_groups, timed against the loop (median of 5, interleaved) ----
    let parallel = || df.par_apply_groups(&["store"], per_store);
    let (mut t_serial, mut t_par) = (Vec::new(), Vec::new());
    let (mut s_out, mut p_out) = (DataFrame::empty(), DataFrame::empty());
    for _ in 0..5 {
        let start = Instant::now();
        s_out = serial()?;
        t_serial.push(start.elapsed());
        let start = Instant::now();
        p_out = parallel()?;
        t_par.push(start.elapsed());
    }
    t_serial.sort();
    t_par.sort();
    let (t_serial, t_par) = (t_serial[2], t_par[2]);
    assert!(p_out.equals_missing(&s_out));
    let parallel = p_out;
    println!(
        "[2] serial loop over groups {t_serial:.2?}; par_apply_groups {t_par:.2?} on {} threads: \
         {:.2}x (median of 5); outputs equal, stores in first-appearance order",
        Flock::new().plan(ROWS)?.threads(),
        t_serial.as_secs_f64() / t_par.as_secs_f64()
    );
    println!("{}", parallel.head(Some(4)));

    // --- 4. The top sale of each store ----------------------------------------------------------
    let keep = parallel.column("rank")?.i64()?.equal(1);
    let top = parallel.filter(&keep)?;
    println!(
        "[3] top sale per store: {} rows (one per store)",
        top.height()
    );
    Ok(())
}
