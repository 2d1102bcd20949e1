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
fn per_store(g: DataFrame) -> PolarsResult<DataFrame> {
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
    g.hstack(&[Column::new("z".into(), z), Column::new("rank".into(), rank)])
}

fn main() -> Result<()> {
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
    let start = Instant::now();
    let grouped = df.group_by_stable(["store"])?;
    let mut serial: Option<DataFrame> = None;
    for idx in grouped.get_groups().iter() {
        let rows: Vec<IdxSize> = match idx {
            GroupsIndicator::Idx((_, all)) => all.to_vec(),
            GroupsIndicator::Slice([first, len]) => (first..first + len).collect(),
        };
        let out = per_store(df.take(&IdxCa::from_vec("".into(), rows))?)?;
        match serial.as_mut() {
            None => serial = Some(out),
            Some(acc) => {
                acc.vstack_mut_owned(out)?;
            }
        }
    }
    let serial = serial.unwrap_or_default();
    let t_serial = start.elapsed();

    // --- 3. In parallel: par_apply_groups -------------------------------------------------------
    let start = Instant::now();
    let parallel = df.par_apply_groups(&["store"], per_store)?;
    let t_par = start.elapsed();
    assert!(parallel.equals_missing(&serial));
    println!(
        "[2] serial loop over groups {t_serial:.2?}; par_apply_groups {t_par:.2?} on {} threads: \
         {:.2}x; outputs equal, stores in first-appearance order",
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
