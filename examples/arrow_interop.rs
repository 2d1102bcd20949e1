//! Arrow interop: record batches from another Rust tool (here built with arrow-rs) become a
//! Polars frame without copying, get a parallel row apply, and go back to Arrow without copying —
//! the buffer addresses are printed to show it.
//!
//! Run with `cargo run --release --example arrow_interop --features arrow`.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{ArrayRef, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray};
use polars_flock::Result;
use polars_flock::arrow::{Batches, batches_to_dataframe, to_dataframe, to_record_batches};
use polars_flock::polars::prelude::ChunkCompareIneq;
use polars_flock::prelude::*;

const ROWS: usize = 5_000_000;

fn main() -> Result<(), BoxError> {
    // --- 1. A record batch, as DataFusion / Delta / Lance / Flight would hand it over ---------
    let price = Float64Array::from(
        (0..ROWS)
            .map(|i| (i % 1_000) as f64 / 10.0)
            .collect::<Vec<_>>(),
    );
    let qty = Int64Array::from((0..ROWS as i64).map(|i| i % 7 + 1).collect::<Vec<_>>());
    let sku = StringArray::from(
        (0..ROWS)
            .map(|i| format!("SKU-{}", i % 500))
            .collect::<Vec<_>>(),
    );
    let batch = RecordBatch::try_from_iter([
        ("price", Arc::new(price.clone()) as ArrayRef),
        ("qty", Arc::new(qty) as ArrayRef),
        ("sku", Arc::new(sku) as ArrayRef),
    ])?;
    println!(
        "[1] RecordBatch: {} rows, schema {:?}",
        batch.num_rows(),
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
    );

    // --- 2. Into Polars: zero-copy -------------------------------------------------------------
    let start = Instant::now();
    let df = to_dataframe(&batch)?;
    let took = start.elapsed();
    let polars_ptr = df
        .column("price")?
        .f64()?
        .downcast_iter()
        .next()
        .map(|c| c.values().as_ptr());
    println!(
        "[2] to_dataframe in {took:.2?}: price buffer at {:p} in Arrow, {:p} in Polars (same: {})",
        price.values().as_ptr(),
        polars_ptr.unwrap_or(std::ptr::null()),
        polars_ptr == Some(price.values().as_ptr())
    );

    // --- 3. A parallel row apply straight on the batch, Arrow out ------------------------------
    let start = Instant::now();
    let out = batch.par_apply_rows(
        "total",
        |row| Ok(row.f64("price")? * row.i64("qty")? as f64),
    )?;
    let took = start.elapsed();
    let rows: usize = out.iter().map(RecordBatch::num_rows).sum();
    let first_price = out[0]
        .column_by_name("price")
        .map(|c| c.as_primitive::<Float64Type>().values().as_ptr());
    println!(
        "[3] par_apply_rows on the batch in {took:.2?}: {} record batches out ({rows} rows, one per block); \
         columns: {:?}; input column still shared: {}",
        out.len(),
        out[0]
            .schema()
            .fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect::<Vec<_>>(),
        first_price == Some(price.values().as_ptr())
    );

    // --- 4. Many batches as one dataset; a block apply ----------------------------------------
    let parts: Vec<RecordBatch> = (0..8).map(|i| batch.slice(i * 1_000, 1_000)).collect();
    let big = Batches(&parts).par_apply_blocks(|block| {
        let keep = block.column("qty")?.i64()?.gt(5);
        Ok(block.filter(&keep)?)
    })?;
    let kept: usize = big.iter().map(RecordBatch::num_rows).sum();
    let back = batches_to_dataframe(&big)?;
    println!(
        "[4] 8 sliced batches → par_apply_blocks → {kept} rows with qty > 5; as a frame: {:?}",
        back.shape()
    );

    // --- 5. Back to Arrow from any frame ------------------------------------------------------
    let batches = to_record_batches(&df.head(Some(3)))?;
    println!(
        "[5] to_record_batches: {} batch; strings leave as {}",
        batches.len(),
        batches[0].schema().field(2).data_type()
    );

    // --- 6. A type Polars cannot hold is an error naming the column -----------------------------
    let dec = Decimal128Array::from(vec![1_i128]).with_precision_and_scale(10, 2)?;
    let odd = RecordBatch::try_from_iter([("amount", Arc::new(dec) as ArrayRef)])?;
    match to_dataframe(&odd) {
        Err(e) => println!("[6] {e}"),
        Ok(_) => println!("[6] unexpected: decimal imported"),
    }
    Ok(())
}
