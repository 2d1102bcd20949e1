//! Every verb × every mode — default options, a configured view (`flock.on(..)`), per-worker state
//! (an `init` closure and a `Workers`), keep-going — against a plain serial computation, over random
//! frames (nulls, several Arrow chunks), chunk sizes and thread counts. Keep-going runs a closure
//! that fails on some units, and must return exactly the serial result with those units null (rows)
//! or left out (blocks, groups, files), each listed in the report.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64)
        .max(64);
    ProptestConfig::with_cases(cases)
}

/// The rows whose closure fails in keep-going runs.
fn fails(i: Option<i64>) -> bool {
    i.is_some_and(|i| i % 7 == 0)
}

/// The row closure's value on plain values, `None` where it fails.
fn serial_rows(data: &Data) -> Vec<Option<Option<f64>>> {
    (0..data.len())
        .map(|r| {
            (!fails(data.i[r]))
                .then(|| row_fn(data.f[r], data.i[r], data.s[r].as_deref(), data.b[r]))
        })
        .collect()
}

fn row_value(row: &Row<'_>) -> Result<Option<f64>, BoxError> {
    Ok(row_fn(
        row.opt_f64("f")?,
        row.opt_i64("i")?,
        row.opt_str("s")?,
        row.opt_bool("b")?,
    ))
}

fn failing_row_value(row: &Row<'_>) -> Result<Option<f64>, BoxError> {
    let i = row.opt_i64("i")?;
    if fails(i) {
        return Err(format!("row {} fails", row.index()).into());
    }
    row_value(row)
}

/// The block closure: the block's rows with `i` doubled, and its height.
fn block_fn(block: DataFrame) -> Result<DataFrame, BoxError> {
    let doubled = block.column("i")?.as_materialized_series() * 2;
    let height = block.height() as u32;
    Ok(df!("i2" => doubled, "height" => vec![height; block.height()])?)
}

/// Whether a block fails in keep-going runs: it holds a row that fails.
fn block_fails(block: &DataFrame) -> bool {
    let i = block.column("i").unwrap().i64().unwrap();
    i.iter().any(fails)
}

/// The serial result of `block_fn` over `flock`'s plan of `df`, leaving out failing blocks when
/// `skip_failing`; and the rows of the failing blocks.
fn serial_blocks(df: &DataFrame, flock: &Flock, skip_failing: bool) -> (DataFrame, Vec<usize>) {
    let plan = flock.plan(df.height()).unwrap();
    let mut out: Option<DataFrame> = None;
    let mut failed = Vec::new();
    // An empty input is one empty block: the closure runs once, for its schema.
    for b in 0..plan.blocks().max(1) {
        let rows = if plan.blocks() == 0 {
            0..0
        } else {
            plan.block_rows(b)
        };
        let block = df.slice(rows.start as i64, rows.len());
        if skip_failing && block_fails(&block) {
            failed.extend(rows);
            continue;
        }
        let part = block_fn(block).unwrap();
        match out.as_mut() {
            None => out = Some(part),
            Some(acc) => {
                acc.vstack_mut_owned(part).unwrap();
            }
        }
    }
    // Every block failed (keep going): the closure's schema is unknown, and the result is the
    // input's empty frame.
    (out.unwrap_or_else(|| df.clear()), failed)
}

/// The group closure: the group's first row and its size.
fn group_fn(group: DataFrame) -> Result<DataFrame, BoxError> {
    let size = group.height() as u32;
    let first = group.head(Some(1));
    Ok(first.hstack(&[Column::new("size".into(), [size])])?)
}

/// The serial result of `group_fn` over the groups of `b` in first-appearance order, leaving out
/// groups with a failing row when `skip_failing`; and the failing groups' indices.
fn serial_groups(df: &DataFrame, data: &Data, skip_failing: bool) -> (DataFrame, Vec<usize>) {
    let mut keys: Vec<Option<bool>> = Vec::new();
    let mut rows: Vec<Vec<IdxSize>> = Vec::new();
    for (r, key) in data.b.iter().enumerate() {
        match keys.iter().position(|k| k == key) {
            Some(g) => rows[g].push(r as IdxSize),
            None => {
                keys.push(*key);
                rows.push(vec![r as IdxSize]);
            }
        }
    }
    let mut out: Option<DataFrame> = None;
    let mut failed = Vec::new();
    for (g, idx) in rows.into_iter().enumerate() {
        if skip_failing && idx.iter().any(|&r| fails(data.i[r as usize])) {
            failed.push(g);
            continue;
        }
        let group = df.take(&IdxCa::from_vec("".into(), idx)).unwrap();
        let part = group_fn(group).unwrap();
        match out.as_mut() {
            None => out = Some(part),
            Some(acc) => {
                acc.vstack_mut_owned(part).unwrap();
            }
        }
    }
    (out.unwrap_or_else(|| df.clear()), failed)
}

fn failing_group_fn(group: DataFrame) -> Result<DataFrame, BoxError> {
    let i = group.column("i")?.i64()?;
    if i.iter().any(fails) {
        return Err("a failing row in the group".into());
    }
    group_fn(group)
}

fn same(a: &DataFrame, b: &DataFrame) -> bool {
    a.schema() == b.schema() && a.equals_missing(b)
}

fn nullable_f64(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name).unwrap().f64().unwrap().iter().collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn frame_verbs_in_every_mode_equal_serial(
        (n, seed, pieces) in (0usize..=1_500, any::<u64>(), 1usize..=3),
        cs in (0usize..=1_510).prop_flat_map(chunksize),
        threads in 1usize..=4,
    ) {
        let data = Data::generate(n, seed);
        let df = data.frame(pieces);
        let flock = flock(cs, threads);
        let serial: Vec<Option<f64>> = serial_row_fn(&data);
        let inits = AtomicUsize::new(0);
        let init = || {
            inits.fetch_add(1, Ordering::Relaxed);
            Ok(0usize)
        };
        let workers = Workers::new(init);

        // Rows: default, configured, per-worker (init and Workers), keep-going.
        let rows = |out: DataFrame| nullable_f64(&out, "out");
        prop_assert_eq!(rows(df.par_apply_rows("out", row_value).unwrap()), serial.clone());
        prop_assert_eq!(rows(flock.on(&df).par_apply_rows("out", row_value).unwrap()), serial.clone());
        let counted = |seen: &mut usize, row: &Row<'_>| {
            *seen += 1;
            row_value(row)
        };
        prop_assert_eq!(rows(flock.on(&df).par_apply_rows_per_worker("out", init, counted).unwrap()), serial.clone());
        prop_assert_eq!(rows(flock.on(&df).par_apply_rows_per_worker("out", &workers, counted).unwrap()), serial.clone());
        let expected = serial_rows(&data);
        let failed: Vec<usize> = (0..n).filter(|&r| fails(data.i[r])).collect();
        let (out, report) = flock.on(&df).keep_going().par_apply_rows("out", failing_row_value).unwrap();
        let kept: Vec<Option<f64>> = expected.iter().map(|v| v.flatten()).collect();
        prop_assert_eq!(rows(out), kept.clone());
        prop_assert_eq!(report.failed_rows().collect::<Vec<_>>(), failed.clone());
        let (out, report) = flock.on(&df).keep_going()
            .par_apply_rows_per_worker("out", &workers, |_, row| failing_row_value(row)).unwrap();
        prop_assert_eq!(rows(out), kept.clone());
        prop_assert_eq!(report.failed_rows().collect::<Vec<_>>(), failed.clone());

        // Typed columns (infallible, fallible, tuple outputs), default and configured, keep-going.
        type Cells<'a> = (Option<f64>, Option<i64>, Option<&'a str>, Option<bool>);
        let typed = |(f, i, s, b): Cells<'_>| row_fn(f, i, s, b);
        let cols = ["f", "i", "s", "b"];
        prop_assert_eq!(rows(df.par_apply_columns("out", cols, typed).unwrap()), serial.clone());
        prop_assert_eq!(rows(flock.on(&df).par_apply_columns("out", cols, typed).unwrap()), serial.clone());
        let both = flock.on(&df)
            .par_apply_columns(["out", "i_again"], cols, |c: Cells<'_>| (typed(c), c.1))
            .unwrap();
        prop_assert_eq!(nullable_f64(&both, "out"), serial.clone());
        prop_assert_eq!(both.column("i_again").unwrap().i64().unwrap().iter().collect::<Vec<_>>(), data.i.clone());
        let failing_typed = |c: Cells<'_>| -> Result<Option<f64>, BoxError> {
            if fails(c.1) {
                return Err("fails".into());
            }
            Ok(typed(c))
        };
        let (out, report) = flock.on(&df).keep_going().par_apply_columns("out", cols, failing_typed).unwrap();
        prop_assert_eq!(rows(out), kept.clone());
        prop_assert_eq!(report.failed_rows().collect::<Vec<_>>(), failed.clone());

        // Blocks: default (against the default plan), configured, per-worker, keep-going.
        let (serial_default, _) = serial_blocks(&df, &Flock::new(), false);
        prop_assert!(same(&df.par_apply_blocks(block_fn).unwrap(), &serial_default));
        let (serial_blocks_out, _) = serial_blocks(&df, &flock, false);
        prop_assert!(same(&flock.on(&df).par_apply_blocks(block_fn).unwrap(), &serial_blocks_out));
        let per_block = |_: &mut usize, b: DataFrame| block_fn(b);
        prop_assert!(same(&flock.on(&df).par_apply_blocks_per_worker(init, per_block).unwrap(), &serial_blocks_out));
        prop_assert!(same(&flock.on(&df).par_apply_blocks_per_worker(&workers, per_block).unwrap(), &serial_blocks_out));
        let (serial_kept, failed_rows) = serial_blocks(&df, &flock, true);
        let failing_block = |b: DataFrame| {
            if block_fails(&b) {
                return Err("a failing row in the block".into());
            }
            block_fn(b)
        };
        let (out, report) = flock.on(&df).keep_going().par_apply_blocks(failing_block).unwrap();
        prop_assert!(same(&out, &serial_kept), "{out:?} {serial_kept:?}");
        prop_assert_eq!(report.failed_rows().collect::<Vec<_>>(), failed_rows.clone());
        let all_blocks = report.failures.iter().all(|f| matches!(f.unit, Unit::Block { .. }));
        prop_assert!(all_blocks);
        let (out, _) = flock.on(&df).keep_going().par_apply_blocks_per_worker(&workers, |_, b| failing_block(b)).unwrap();
        prop_assert!(same(&out, &serial_kept));

        // Groups: default, configured, per-worker, keep-going.
        let (serial_groups_out, failed_groups) = serial_groups(&df, &data, false);
        prop_assert!(same(&df.par_apply_groups(&["b"], group_fn).unwrap(), &serial_groups_out));
        prop_assert!(same(&flock.on(&df).par_apply_groups(&["b"], group_fn).unwrap(), &serial_groups_out));
        prop_assert!(same(
            &flock.on(&df).par_apply_groups_per_worker(&["b"], &workers, |_, g| group_fn(g)).unwrap(),
            &serial_groups_out
        ));
        prop_assert!(failed_groups.is_empty());
        let (serial_kept, failed_groups) = serial_groups(&df, &data, true);
        let (out, report) = flock.on(&df).keep_going().par_apply_groups(&["b"], failing_group_fn).unwrap();
        prop_assert!(same(&out, &serial_kept));
        let groups: Vec<usize> = report.failures.iter().map(|f| match &f.unit {
            Unit::Group { group, .. } => *group,
            other => panic!("{other:?}"),
        }).collect();
        prop_assert_eq!(groups, failed_groups.clone());
        let all_in_group = report.failures.iter().all(|f| matches!(f.error, Error::InGroup { .. }));
        prop_assert!(all_in_group);
        let (out, _) = flock.on(&df).keep_going()
            .par_apply_groups_per_worker(&["b"], init, |_, g| failing_group_fn(g)).unwrap();
        prop_assert!(same(&out, &serial_kept));

        // Fold: default and configured.
        let serial_sum: i64 = data.i.iter().flatten().sum();
        let fold = |acc: i64, row: &Row<'_>| Ok(acc + row.opt_i64("i")?.unwrap_or(0));
        prop_assert_eq!(df.par_fold_rows(|| 0, fold, |a, b| a + b).unwrap(), serial_sum);
        prop_assert_eq!(flock.on(&df).par_fold_rows(|| 0, fold, |a, b| a + b).unwrap(), serial_sum);

        // Per-worker: `init` at most once per pool thread per call (seven calls used `init`).
        let bound = 7 * flock.plan(n).unwrap().threads();
        prop_assert!(inits.load(Ordering::Relaxed) <= bound);
    }

    #[test]
    fn slice_and_file_verbs_in_every_mode_equal_serial(
        n in 0usize..=3_000,
        seed in any::<u64>(),
        cs in (0usize..=3_010).prop_flat_map(chunksize),
        threads in 1usize..=4,
    ) {
        let data = Data::generate(n, seed);
        let items = data.i.clone();
        let flock = flock(cs, threads);
        let f = |x: &Option<i64>| x.map(|x| x * 3 - 1);
        let serial: Vec<Option<i64>> = items.iter().map(f).collect();
        let workers = Workers::new(|| Ok(Vec::<i64>::new()));

        // Items: default, configured, per-worker, keep-going.
        prop_assert_eq!(items.par_apply_rows(|x| Ok(f(x))).unwrap(), serial.clone());
        prop_assert_eq!(flock.on(&items).par_apply_rows(|x| Ok(f(x))).unwrap(), serial.clone());
        prop_assert_eq!(flock.on(&items[..]).par_apply_rows(|x| Ok(f(x))).unwrap(), serial.clone());
        prop_assert_eq!(
            flock.on(&items).par_apply_rows_per_worker(|| Ok(0u32), |_, x| Ok(f(x))).unwrap(),
            serial.clone()
        );
        prop_assert_eq!(
            flock.on(&items).par_apply_rows_per_worker(&workers, |seen, x| {
                seen.push(x.unwrap_or(0));
                Ok(f(x))
            }).unwrap(),
            serial.clone()
        );
        let failing = |x: &Option<i64>| -> Result<Option<i64>, BoxError> {
            if fails(*x) { return Err("fails".into()); }
            Ok(f(x))
        };
        let kept: Vec<Option<Option<i64>>> = items.iter().map(|x| (!fails(*x)).then(|| f(x))).collect();
        let failed: Vec<usize> = (0..n).filter(|&r| fails(items[r])).collect();
        let (out, report) = flock.on(&items).keep_going().par_apply_rows(failing).unwrap();
        prop_assert_eq!(out, kept.clone());
        prop_assert_eq!(report.failed_rows().collect::<Vec<_>>(), failed.clone());
        let (out, _) = flock.on(&items).keep_going().par_apply_rows_per_worker(&workers, |_, x| failing(x)).unwrap();
        prop_assert_eq!(out, kept.clone());

        // Item blocks: outputs per item, so that they equal the serial map whatever the plan.
        let per_block = |b: &[Option<i64>]| Ok(b.iter().map(f).collect::<Vec<_>>());
        prop_assert_eq!(items.par_apply_blocks(per_block).unwrap(), serial.clone());
        prop_assert_eq!(flock.on(&items).par_apply_blocks(per_block).unwrap(), serial.clone());
        prop_assert_eq!(flock.on(&items).par_apply_blocks_per_worker(&workers, |_, b| per_block(b)).unwrap(), serial.clone());
        let plan = flock.plan(n).unwrap();
        let mut serial_kept = Vec::new();
        let mut failed_items = Vec::new();
        for b in 0..plan.blocks() {
            let rows = plan.block_rows(b);
            if items[rows.clone()].iter().any(|x| fails(*x)) {
                failed_items.extend(rows);
            } else {
                serial_kept.extend(items[rows].iter().map(f));
            }
        }
        let failing_block = |b: &[Option<i64>]| -> Result<Vec<Option<i64>>, BoxError> {
            if b.iter().any(|x| fails(*x)) { return Err("fails".into()); }
            per_block(b)
        };
        let (out, report) = flock.on(&items).keep_going().par_apply_blocks(failing_block).unwrap();
        prop_assert_eq!(out, serial_kept);
        prop_assert_eq!(report.failed_rows().collect::<Vec<_>>(), failed_items);

        // Fold.
        let serial_sum: i64 = items.iter().flatten().sum();
        prop_assert_eq!(items.par_fold(|| 0, |a, x| Ok(a + x.unwrap_or(0)), |a, b| a + b).unwrap(), serial_sum);
        prop_assert_eq!(flock.on(&items).par_fold(|| 0, |a, x| Ok(a + x.unwrap_or(0)), |a, b| a + b).unwrap(), serial_sum);

        // Files (named by the item, so that no file system is needed): default, configured,
        // keep-going for `par_apply` and `par_concat`.
        let files = Files::new((0..n.min(300)).map(|r| format!("{}", items[r].unwrap_or(1))));
        let value = |p: &Path| -> Result<i64, BoxError> {
            let v: i64 = p.to_str().unwrap().parse()?;
            if v % 7 == 0 { return Err("fails".into()); }
            Ok(v)
        };
        let names: Vec<i64> = files.paths().iter().map(|p| p.to_str().unwrap().parse().unwrap()).collect();
        let good: Vec<Option<i64>> = names.iter().map(|&v| (v % 7 != 0).then_some(v)).collect();
        if good.iter().all(Option::is_some) {
            prop_assert_eq!(files.par_apply(value).unwrap(), names.clone());
            prop_assert_eq!(flock.on(&files).par_apply(value).unwrap(), names.clone());
        } else {
            let first = good.iter().position(Option::is_none).unwrap();
            let err = flock.on(&files).par_apply(value).unwrap_err();
            let is_first = matches!(&err, Error::InFile { path, .. } if *path == files.paths()[first]);
            prop_assert!(is_first, "{}", err);
        }
        let files_workers = Workers::new(|| Ok(0usize));
        let per_file = |loaded: &mut usize, p: &Path| {
            *loaded += 1;
            value(p)
        };
        if good.iter().all(Option::is_some) {
            prop_assert_eq!(files.par_apply_per_worker(|| Ok(0usize), per_file).unwrap(), names.clone());
            prop_assert_eq!(flock.on(&files).par_apply_per_worker(&files_workers, per_file).unwrap(), names.clone());
        }
        let (out, _) = flock.on(&files).keep_going().par_apply_per_worker(&files_workers, per_file).unwrap();
        prop_assert_eq!(out, good.clone());
        let (out, report) = flock.on(&files).keep_going().par_apply(value).unwrap();
        prop_assert_eq!(out, good.clone());
        let failed_files: Vec<usize> = report.failures.iter().map(|f| match f.unit {
            Unit::File { file, .. } => file,
            ref other => panic!("{other:?}"),
        }).collect();
        prop_assert_eq!(failed_files, (0..good.len()).filter(|&i| good[i].is_none()).collect::<Vec<_>>());
        let (concat, _) = flock.on(&files).keep_going()
            .par_concat(|p| Ok(df!("v" => [value(p)?])?)).unwrap();
        let expected: Vec<i64> = good.iter().flatten().copied().collect();
        if expected.is_empty() {
            // No file read: an empty frame (no schema is known).
            prop_assert_eq!(concat.height(), 0);
        } else {
            let concat: Vec<i64> = concat.column("v").unwrap().i64().unwrap().into_no_null_iter().collect();
            prop_assert_eq!(concat, expected);
        }
    }
}
