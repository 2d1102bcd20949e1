//! Parallel fold: equal to the serial fold for associative (even non-commutative) combines, for
//! random inputs, chunk sizes and thread counts.

mod common;

use common::*;
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Error, Flock};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn slice_fold_equals_serial_in_order(
        items in proptest::collection::vec(any::<u32>(), 0..3_000),
        cs in (0usize..=3_010).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        let flock = flock(cs, threads);
        // Non-commutative: collecting in order.
        let collected = flock.on(&items).par_fold(Vec::new, |mut v, &x| { v.push(x); Ok(v) }, |mut a, b| { a.extend(b); a }).unwrap();
        prop_assert_eq!(&collected, &items);
        // Commutative, with wrapping arithmetic.
        let sum = flock.on(&items).par_fold(|| 0u32, |a, &x| Ok(a.wrapping_add(x)), u32::wrapping_add).unwrap();
        prop_assert_eq!(sum, items.iter().fold(0u32, |a, &x| a.wrapping_add(x)));
        // Associative, non-commutative: 2×2 matrix products mod 2^32.
        let mat = |x: u32| [x | 1, x >> 3, x.rotate_left(7), 1u32];
        let mul = |a: [u32; 4], b: [u32; 4]| [
            a[0].wrapping_mul(b[0]).wrapping_add(a[1].wrapping_mul(b[2])),
            a[0].wrapping_mul(b[1]).wrapping_add(a[1].wrapping_mul(b[3])),
            a[2].wrapping_mul(b[0]).wrapping_add(a[3].wrapping_mul(b[2])),
            a[2].wrapping_mul(b[1]).wrapping_add(a[3].wrapping_mul(b[3])),
        ];
        let id = || [1u32, 0, 0, 1];
        let product = flock.on(&items).par_fold(id, |acc, &x| Ok(mul(acc, mat(x))), mul).unwrap();
        prop_assert_eq!(product, items.iter().fold(id(), |acc, &x| mul(acc, mat(x))));
    }

    #[test]
    fn row_fold_equals_serial(
        (n, seed, pieces) in frame_params(),
        cs in (0usize..=5_010).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        let data = Data::generate(n, seed);
        let df = data.frame(pieces);
        let got = (flock(cs, threads)).on(&df).par_fold_rows(
            Vec::new,
            |mut acc, row| {
                acc.push((row.index(), row_fn(row.opt_f64("f")?, row.opt_i64("i")?, row.opt_str("s")?, row.opt_bool("b")?)));
                Ok(acc)
            },
            |mut a, b| { a.extend(b); a },
        ).unwrap();
        let expected: Vec<(usize, Option<f64>)> = serial_row_fn(&data).into_iter().enumerate().collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn row_fold_reports_the_lowest_failing_row(
        (n, seed, pieces) in frame_params(),
        cs in (0usize..=5_010).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        let data = Data::generate(n, seed);
        let df = data.frame(pieces);
        let result = (flock(cs, threads)).on(&df).par_fold_rows(|| 0.0, |acc, row| Ok(acc + row.f64("f")?), |a, b| a + b);
        match data.f.iter().position(Option::is_none) {
            Some(first) => {
                let is_first = matches!(result, Err(Error::NullValue { row, .. }) if row == first);
                prop_assert!(is_first);
            }
            None => prop_assert!(result.is_ok()),
        }
    }
}

#[test]
fn empty_input_folds_to_identity() {
    let empty: Vec<u8> = Vec::new();
    assert_eq!(
        empty
            .par_fold(|| 7, |a, _| Ok(a + 1), |a, b| a + b)
            .unwrap(),
        7
    );
    let df = df!("x" => Vec::<f64>::new()).unwrap();
    let n = df
        .par_fold_rows(|| 0usize, |a, _| Ok(a + 1), |a, b| a + b)
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn a_panicking_fold_names_the_item() {
    let items: Vec<u32> = (0..1_000).collect();
    let err = Flock::new()
        .chunksize(100)
        .on(&items)
        .par_fold(
            || 0u32,
            |a, &x| {
                assert!(x != 555, "bad item");
                Ok(a + x)
            },
            |a, b| a + b,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Panicked {
                block: 5,
                row: Some(555),
                ..
            }
        ),
        "{err}"
    );
}
