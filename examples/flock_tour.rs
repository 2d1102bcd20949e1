//! A tour of Flock's tutorial, in Rust: each cell mirrors a section of the Python library's
//! walkthrough and prints what the notebook would.
//!
//! Run with `cargo run --release --example flock_tour`.

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Flock, Result};

/// Flock's first example: a plain function applied to many inputs.
fn slow_square(x: &u64) -> u64 {
    // Stand-in for real work.
    (0..1_000).fold(*x, |acc, i| acc.wrapping_mul(31).wrapping_add(i)) % 1_000 + x * x
}

/// An "instance method": a struct whose method is applied in parallel. `&self` is shared by all
/// threads, which the compiler allows because `Scaler` is `Sync`.
struct Scaler {
    factor: f64,
    offset: f64,
}

impl Scaler {
    fn apply(&self, x: f64) -> f64 {
        x * self.factor + self.offset
    }
}

/// A multi-argument function: Flock passes argument tuples; here each item is a tuple.
fn weighted(price: f64, qty: i64, tax: f64) -> f64 {
    price * qty as f64 * (1.0 + tax)
}

const STOP_WORDS: &[&str] = &[
    "the", "a", "an", "and", "of", "to", "in", "is", "on", "over",
];

fn main() -> Result<()> {
    // --- 1. A basic function over a list (Flock's FunctionAsync) ----------------------------
    let inputs: Vec<u64> = (0..20).collect();
    let squares = inputs.par_apply_rows(|x| Ok(slow_square(x)))?;
    let serial: Vec<u64> = inputs.iter().map(slow_square).collect();
    assert_eq!(squares, serial);
    println!("[1] slow_square over 0..20 -> {:?}...", &squares[..6]);
    // The seed's version: 5 squares that each wait (here 100 ms). Default options spread a
    // handful of slow items over every thread, with no chunk size to choose.
    let five: Vec<u64> = (1..=5).collect();
    let sleepy = |x: &u64| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        x * x
    };
    let start = std::time::Instant::now();
    let serial: Vec<u64> = five.iter().map(sleepy).collect();
    let serial_time = start.elapsed();
    let start = std::time::Instant::now();
    let parallel = five.par_apply_rows(|x| Ok(sleepy(x)))?;
    let parallel_time = start.elapsed();
    assert_eq!(parallel, serial);
    println!(
        "[1] 5 squares waiting 100 ms each -> {parallel:?}: serial {serial_time:.0?}, \
         par_apply_rows {parallel_time:.0?} on {} threads",
        Flock::new().plan(1)?.threads()
    );

    // --- 2. Lambdas (closures) capture their environment by reference -----------------------
    let base = 10;
    let shifted = inputs.par_apply_rows(|x| Ok(x + base))?;
    println!("[2] closure |x| x + {base} -> {:?}...", &shifted[..6]);

    // --- 3. An instance method -----------------------------------------------------------------
    let scaler = Scaler {
        factor: 2.0,
        offset: 0.5,
    };
    let xs: Vec<f64> = (0..5).map(f64::from).collect();
    let scaled = xs.par_apply_rows(|x| Ok(scaler.apply(*x)))?;
    println!("[3] Scaler {{ factor: 2, offset: 0.5 }}.apply -> {scaled:?}");

    // --- 4. Multi-argument functions: items are tuples ---------------------------------------
    let orders = [(2.5, 4i64, 0.2), (8.0, 3, 0.1), (1.0, 2, 0.0)];
    let totals = orders.par_apply_rows(|&(p, q, t)| Ok(weighted(p, q, t)))?;
    println!("[4] weighted(price, qty, tax) -> {totals:?}");

    // --- 5. Lists, in blocks (Flock's ListAsync with chunksize=4: four chunks) ---------------
    let numbers: Vec<u64> = (1..=1_000).collect();
    let flock = Flock::new().blocks(4); // or `.chunksize(250)`: rows per block
    let block_sums = flock
        .on(&numbers)
        .par_apply_blocks(|block| Ok(vec![block.iter().sum::<u64>()]))?;
    println!(
        "[5] sums of 4 blocks of 250 -> {block_sums:?} (total {})",
        block_sums.iter().sum::<u64>()
    );

    // --- 6. DataFrames, row-like (DataFrameAsync, row by row) --------------------------------
    let df = df!(
        "price" => [2.5, 8.0, 1.0, 12.0, 3.0, 7.5],
        "qty" => [4i64, 3, 2, 1, 10, 2],
        "city" => ["Oslo", "Rome", "Lima", "Pune", "Kobe", "Oslo"],
    )?;
    let rows = df
        .par_apply_rows(
            "total",
            |row| Ok(row.f64("price")? * row.i64("qty")? as f64),
        )?
        .par_apply_rows("label", |row| {
            Ok(format!("{}-{}", row.str("city")?, row.i64("qty")?))
        })?;
    println!("[6] row-like: two chained par_apply_rows\n{rows}");

    // --- 7. DataFrames, block-like (DataFrameAsync, block by block) --------------------------
    let per_block = Flock::new()
        .chunksize(3)
        .on(&rows)
        .par_apply_blocks(|block| {
            let total = block.column("total")?.f64()?.sum().unwrap_or(0.0);
            Ok(df!("rows" => [block.height() as u32], "revenue" => [total])?)
        })?;
    println!("[7] block-like: revenue per block of 3 rows\n{per_block}");

    // --- 8. Errors say where: a bad row is named, nothing crashes -------------------------------
    let err = df
        .par_apply_rows("bad", |row| {
            let qty = row.i64("qty")?;
            if qty == 10 {
                Err(BoxError::from("qty of 10 is not allowed"))
            } else {
                Ok(qty)
            }
        })
        .unwrap_err();
    println!("[8] error: {err}");

    // --- 9. A pipeline on a text column: lower-case -> strip punctuation -> stop words -> count --
    let reviews = df!("review" => [
        "The quick brown fox jumps over the lazy dog!",
        "An apple a day keeps the doctor away.",
        "Rust, Polars and rayon: fast, safe, and parallel.",
        "Is this the real life? Is this just fantasy?",
    ])?;
    let counted = reviews
        .par_apply_rows("lower", |row| Ok(row.str("review")?.to_lowercase()))?
        .par_apply_rows("clean", |row| {
            Ok(row
                .str("lower")?
                .chars()
                .filter(|c| c.is_alphanumeric() || c.is_whitespace())
                .collect::<String>())
        })?
        .par_apply_rows("content", |row| {
            let words: Vec<&str> = row
                .str("clean")?
                .split_whitespace()
                .filter(|w| !STOP_WORDS.contains(w))
                .collect();
            Ok(words.join(" "))
        })?
        .par_apply_columns("words", ["content"], |s: &str| {
            s.split_whitespace().count() as u32
        })?;
    let words: Vec<u32> = counted
        .column("words")?
        .u32()?
        .into_no_null_iter()
        .collect();
    assert_eq!(words, [6, 5, 6, 6]);
    println!(
        "[9] text pipeline\n{}",
        counted.select(["content", "words"])?
    );
    Ok(())
}
