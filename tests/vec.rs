//! `SliceParApply` on Vecs and slices.

use std::sync::atomic::{AtomicUsize, Ordering};

use polars_flock::Flock;
use polars_flock::prelude::*;

#[test]
fn rows_map_in_order_with_any_item_type() {
    let words: Vec<String> = (0..5_000).map(|i| format!("w{i}")).collect();
    let upper = words.par_apply_rows(|w| Ok(w.to_uppercase())).unwrap();
    assert_eq!(
        upper,
        words.iter().map(|w| w.to_uppercase()).collect::<Vec<_>>()
    );

    let items: Vec<u64> = (0..100_000).collect();
    let squares: Vec<u64> = items.par_apply_rows(|x| Ok(x * x)).unwrap();
    assert_eq!(squares, items.iter().map(|x| x * x).collect::<Vec<_>>());
    let from_slice = items[10..20].par_apply_rows(|x| Ok(x + 1)).unwrap();
    assert_eq!(from_slice, (11..21).collect::<Vec<_>>());
}

#[test]
fn blocks_return_any_number_of_values() {
    let items: Vec<u64> = (0..1_000).collect();
    let f = Flock::new().chunksize(100).threads(2);
    let sums = f
        .on(&items)
        .par_apply_blocks(|b| Ok(vec![b.iter().sum::<u64>()]))
        .unwrap();
    assert_eq!(sums.len(), 10);
    assert_eq!(sums.iter().sum::<u64>(), 499_500);
    let evens = f
        .on(&items)
        .par_apply_blocks(|b| Ok(b.iter().filter(|x| *x % 2 == 0).copied().collect()))
        .unwrap();
    assert_eq!(evens, (0..1_000).step_by(2).collect::<Vec<u64>>());
    let nothing = f
        .on(&items)
        .par_apply_blocks(|_| Ok(Vec::<u8>::new()))
        .unwrap();
    assert!(nothing.is_empty());
}

#[test]
fn empty_input_gives_empty_output_without_calls() {
    let empty: Vec<i32> = Vec::new();
    let calls = AtomicUsize::new(0);
    let out = empty
        .par_apply_rows(|x| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(*x)
        })
        .unwrap();
    assert!(out.is_empty());
    let out = empty
        .par_apply_blocks(|b| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(b.to_vec())
        })
        .unwrap();
    assert!(out.is_empty());
    assert_eq!(calls.load(Ordering::Relaxed), 0);
}

#[test]
fn try_forms_return_values_when_nothing_fails() {
    let raw = ["1", "22", "333"];
    let parsed = raw.par_apply_rows(|s| Ok(s.parse::<u32>()?)).unwrap();
    assert_eq!(parsed, [1, 22, 333]);
    let lens = Flock::new()
        .chunksize(2)
        .on(&raw)
        .par_apply_blocks(|b| Ok(b.iter().map(|s| s.len()).collect()))
        .unwrap();
    assert_eq!(lens, [1, 2, 3]);
}

#[test]
fn blocks_cover_the_input_exactly_once() {
    let items: Vec<usize> = (0..10_001).collect();
    let seen: Vec<AtomicUsize> = (0..items.len()).map(|_| AtomicUsize::new(0)).collect();
    Flock::new()
        .chunksize(97)
        .threads(4)
        .on(&items)
        .par_apply_blocks(|b| {
            for x in b {
                seen[*x].fetch_add(1, Ordering::Relaxed);
            }
            Ok(Vec::<()>::new())
        })
        .unwrap();
    assert!(seen.iter().all(|c| c.load(Ordering::Relaxed) == 1));
}
