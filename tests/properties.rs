//! Property tests: every parallel path equals a plain serial computation, in order, for random
//! frames (0–5,000 rows, nulls, one or several Arrow chunks), chunk sizes and thread counts, and
//! calls its closure exactly once per row or block.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Error, Flock};
use proptest::prelude::*;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn rows_equal_serial_and_run_once(
        (n, seed, pieces) in frame_params(),
        cs in (0usize..=5_010).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        let data = Data::generate(n, seed);
        let df = data.frame(pieces);
        let before = df.clone();
        let calls = AtomicUsize::new(0);
        let out = (flock(cs, threads)).on(&df).par_apply_rows("out", |row| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(row_fn(row.opt_f64("f")?, row.opt_i64("i")?, row.opt_str("s")?, row.opt_bool("b")?))
        }).unwrap();
        prop_assert_eq!(calls.load(Ordering::Relaxed), n);
        prop_assert_eq!(f64_values(&out, "out"), serial_row_fn(&data));
        prop_assert!(df.equals_missing(&before));
        prop_assert!(out.drop("out").unwrap().equals_missing(&df));
    }

    #[test]
    fn per_worker_rows_equal_serial_with_init_at_most_once_per_thread(
        (n, seed, pieces) in frame_params(),
        cs in (0usize..=5_010).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        let data = Data::generate(n, seed);
        let df = data.frame(pieces);
        let inits = AtomicUsize::new(0);
        let calls = AtomicUsize::new(0);
        let workers_flock = flock(cs, threads);
        let workers = Workers::new(|| {
            inits.fetch_add(1, Ordering::Relaxed);
            Ok(0usize)
        });
        for _ in 0..2 {
            let out = workers_flock.on(&df).par_apply_rows_per_worker("out", &workers, |rows_seen, row| {
                *rows_seen += 1;
                calls.fetch_add(1, Ordering::Relaxed);
                Ok(row_fn(row.opt_f64("f")?, row.opt_i64("i")?, row.opt_str("s")?, row.opt_bool("b")?))
            }).unwrap();
            prop_assert_eq!(f64_values(&out, "out"), serial_row_fn(&data));
        }
        prop_assert_eq!(calls.load(Ordering::Relaxed), 2 * n);
        // The second call reuses the first call's states.
        prop_assert!(inits.load(Ordering::Relaxed) <= threads);
        drop(workers);
    }

    #[test]
    fn rows_string_output_equals_serial(
        (n, seed, pieces) in frame_params(),
        cs in (0usize..=5_010).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        let data = Data::generate(n, seed);
        let df = data.frame(pieces);
        let out = (flock(cs, threads)).on(&df).par_apply_rows("label", |row| {
            Ok(row.opt_str("s")?.map(|s| format!("{s}/{}", row.index())))
        }).unwrap();
        let expected: Vec<Option<String>> = data.s.iter().enumerate()
            .map(|(r, s)| s.as_ref().map(|s| format!("{s}/{r}")))
            .collect();
        let got: Vec<Option<String>> = out.column("label").unwrap().str().unwrap()
            .iter().map(|s| s.map(str::to_owned)).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn typed_columns_equal_serial_and_run_once(
        (n, seed, pieces) in frame_params(),
        cs in (0usize..=5_010).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        let data = Data::generate(n, seed);
        // Rechunk one column only, so that the columns' chunk boundaries differ.
        let mut df = data.frame(pieces);
        let s = df.column("s").unwrap().as_materialized_series().rechunk();
        df.with_column(s.into_column()).unwrap();
        let calls = AtomicUsize::new(0);
        let out = (flock(cs, threads)).on(&df).par_apply_columns(
            "out",
            ["f", "i", "s", "b"],
            |(f, i, s, b): (Option<f64>, Option<i64>, Option<&str>, Option<bool>)| {
                calls.fetch_add(1, Ordering::Relaxed);
                row_fn(f, i, s, b)
            },
        ).unwrap();
        prop_assert_eq!(calls.load(Ordering::Relaxed), n);
        prop_assert_eq!(f64_values(&out, "out"), serial_row_fn(&data));
    }

    #[test]
    fn blocks_equal_serial_blocks_and_run_once(
        (n, seed, pieces) in frame_params(),
        cs in 1usize..=5_010,
        threads in 1usize..=8,
    ) {
        let data = Data::generate(n, seed);
        let df = data.frame(pieces);
        let calls = AtomicUsize::new(0);
        // Keep rows whose `i` is even, then add the block's row count: the output depends on the
        // block boundaries, so it is compared with a serial loop over the same blocks.
        let block_fn = |block: DataFrame| -> PolarsResult<DataFrame> {
            let keep = block.column("i")?.i64()?.iter().map(|v| v.is_some_and(|v| v % 2 == 0)).collect::<BooleanChunked>();
            let mut out = block.filter(&keep)?;
            let h = block.height() as u32;
            out.with_column(Column::new("block_rows".into(), vec![h; out.height()]))?;
            Ok(out)
        };
        let out = (flock(Some(cs), threads)).on(&df).par_apply_blocks(|block| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(block_fn(block)?)
        }).unwrap();
        let mut serial = block_fn(df.slice(0, cs.min(n)))
            .unwrap();
        let mut offset = cs;
        while offset < n {
            serial.vstack_mut_owned(block_fn(df.slice(offset as i64, cs)).unwrap()).unwrap();
            offset += cs;
        }
        prop_assert_eq!(calls.load(Ordering::Relaxed), n.div_ceil(cs).max(1));
        prop_assert!(out.equals_missing(&serial), "{out:?}\n!=\n{serial:?}");
    }

    #[test]
    fn first_error_is_the_lowest_failing_row(
        n in 1usize..=3_000,
        fail_seed in any::<u64>(),
        cs in (0usize..=3_010).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        // About one row in fifty fails; the reported row must be the first of them.
        let failing = |r: usize| { let mut s = fail_seed ^ r as u64; splitmix(&mut s).is_multiple_of(50) };
        let df = df!("x" => (0..n as i64).collect::<Vec<_>>()).unwrap();
        let result = (flock(cs, threads)).on(&df).par_apply_rows("y", |row| {
            let x = row.i64("x")?;
            if failing(x as usize) { Err(BoxError::from("bad row")) } else { Ok(x) }
        });
        match (0..n).find(|&r| failing(r)) {
            Some(first) => {
                let is_first = matches!(result, Err(Error::Row { row, .. }) if row == first);
                prop_assert!(is_first);
            }
            None => prop_assert!(result.is_ok()),
        }
    }

    #[test]
    fn vec_rows_and_blocks_equal_serial(
        items in proptest::collection::vec(any::<i64>(), 0..=5_000),
        cs in (0usize..=5_010).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        let flock = flock(cs, threads);
        let calls = AtomicUsize::new(0);
        let mapped = flock.on(&items).par_apply_rows(|x| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(x.wrapping_mul(3) ^ 7)
        }).unwrap();
        prop_assert_eq!(calls.load(Ordering::Relaxed), items.len());
        prop_assert_eq!(mapped, items.iter().map(|x| x.wrapping_mul(3) ^ 7).collect::<Vec<_>>());

        let plan = flock.plan(items.len()).unwrap();
        let block_calls = AtomicUsize::new(0);
        let sums = flock.on(&items).par_apply_blocks(|b| {
            block_calls.fetch_add(1, Ordering::Relaxed);
            Ok(vec![b.iter().fold(0i64, |a, x| a.wrapping_add(*x)), b.len() as i64])
        }).unwrap();
        prop_assert_eq!(block_calls.load(Ordering::Relaxed), plan.blocks());
        let serial: Vec<i64> = (0..plan.blocks())
            .flat_map(|b| {
                let s = &items[plan.block_rows(b)];
                [s.iter().fold(0i64, |a, x| a.wrapping_add(*x)), s.len() as i64]
            })
            .collect();
        prop_assert_eq!(sums, serial);
    }

    #[test]
    fn vec_try_rows_report_the_lowest_failing_item(
        items in proptest::collection::vec(0u32..100, 0..=3_000),
        cs in (0usize..=3_010).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        let result = (flock(cs, threads)).on(&items).par_apply_rows(|x| {
            if *x == 0 { Err("zero".into()) } else { Ok(100 / x) }
        });
        match items.iter().position(|x| *x == 0) {
            Some(first) => {
                let is_first = matches!(result, Err(Error::Row { row, .. }) if row == first);
                prop_assert!(is_first);
            }
            None => prop_assert_eq!(result.unwrap(), items.iter().map(|x| 100 / x).collect::<Vec<_>>()),
        }
    }

    #[test]
    fn keep_going_rows_equal_serial_with_failures_as_nulls(
        (n, seed, pieces) in frame_params(),
        cs in (0usize..=5_010).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        quiet_expected_panics();
        let data = Data::generate(n, seed);
        let df = data.frame(pieces);
        let calls = AtomicUsize::new(0);
        let (out, report) = (flock(cs, threads)).on(&df).keep_going().par_apply_rows("out", |row| {
            calls.fetch_add(1, Ordering::Relaxed);
            let f = row.f64("f")?; // a null fails the row: Error::NullValue
            let i = row.opt_i64("i")?;
            if i == Some(0) {
                panic!("{EXPECTED_PANIC}"); // a panic fails the row too
            }
            if i.is_some_and(|i| i % 7 == 0) {
                return Err(BoxError::from("multiple of 7"));
            }
            Ok(f * i.unwrap_or(1) as f64)
        }).unwrap();
        let mut expected = Vec::with_capacity(n);
        let mut failed = Vec::new();
        for r in 0..n {
            let fails = data.f[r].is_none() || data.i[r].is_some_and(|i| i % 7 == 0);
            if fails {
                failed.push(r);
            }
            expected.push((!fails).then(|| data.f[r].unwrap() * data.i[r].unwrap_or(1) as f64));
        }
        prop_assert_eq!(calls.load(Ordering::Relaxed), n);
        prop_assert_eq!(f64_values(&out, "out"), expected);
        prop_assert_eq!(report.failed_rows().collect::<Vec<_>>(), failed);
        prop_assert!(report.skipped.is_empty() && report.stopped.is_none());
    }

    #[test]
    fn keep_going_items_equal_serial_with_failures_as_none(
        items in proptest::collection::vec(-50i32..50, 0..3_000),
        cs in (0usize..=3_010).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        let (out, report) = (flock(cs, threads)).on(&items).keep_going().par_apply_rows(|x| {
            if *x == 0 { Err("zero".into()) } else { Ok(100 / x) }
        }).unwrap();
        let expected: Vec<Option<i32>> = items.iter().map(|x| (*x != 0).then(|| 100 / x)).collect();
        let failed: Vec<usize> = (0..items.len()).filter(|&i| items[i] == 0).collect();
        prop_assert_eq!(out, expected);
        prop_assert_eq!(report.failed_rows().collect::<Vec<_>>(), failed);
    }
}

const EXPECTED_PANIC: &str = "expected panic (property test)";

/// Keeps the panics the keep-going property causes on purpose out of the test output; any other
/// panic (a failing assertion) is printed as usual.
fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let expected =
                info.payload().downcast_ref::<String>().map(String::as_str) == Some(EXPECTED_PANIC);
            if !expected {
                default(info);
            }
        }));
    });
}

#[test]
fn auto_plan_matches_the_documented_rule() {
    for threads in 1..=8 {
        let flock = Flock::new().threads(threads);
        for rows in [0, 1, 127, 128, 1_000, 100_000, 1_000_001] {
            let plan = flock.plan(rows).unwrap();
            let expected = if rows < 128 || threads == 1 {
                rows.max(1)
            } else {
                rows.div_ceil(4 * threads).max(64)
            };
            assert_eq!(plan.chunksize(), expected, "rows {rows}, threads {threads}");
        }
    }
}
