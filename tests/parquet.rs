//! Parquet in and out (feature `parquet`): round trips of every supported dtype with nulls,
//! projection, slices of row groups, empty files, streaming through a block function with the
//! row groups decoded in the workers, atomic outputs, and the faults: a truncated file, a corrupt
//! page, a sink that cannot be created, a failing stream — each a typed error naming the file,
//! with no partial output left.
#![cfg(feature = "parquet")]

use std::path::Path;

use polars_flock::parquet::{ParquetBatches, ParquetSink, read_parquet, write_parquet};
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::streaming::{Batch, Stream, apply_batches_in_order, par_apply_batches};

fn every_dtype(n: usize) -> DataFrame {
    let opt = |i: usize| i % 7 != 3;
    let dates: Vec<Option<i32>> = (0..n).map(|i| opt(i).then_some(i as i32 * 3)).collect();
    let micros: Vec<Option<i64>> = (0..n)
        .map(|i| opt(i).then_some(i as i64 * 1_000_003))
        .collect();
    let df = df!(
        "f64" => (0..n).map(|i| opt(i).then_some(i as f64 * 0.5)).collect::<Vec<_>>(),
        "f32" => (0..n).map(|i| opt(i).then_some(i as f32)).collect::<Vec<_>>(),
        "i64" => (0..n).map(|i| opt(i).then_some(i as i64 - 500)).collect::<Vec<_>>(),
        "i32" => (0..n).map(|i| opt(i).then_some(i as i32)).collect::<Vec<_>>(),
        "i16" => (0..n).map(|i| opt(i).then_some(i as i16)).collect::<Vec<_>>(),
        "i8" => (0..n).map(|i| opt(i).then_some((i % 100) as i8)).collect::<Vec<_>>(),
        "u64" => (0..n).map(|i| opt(i).then_some(i as u64)).collect::<Vec<_>>(),
        "u32" => (0..n).map(|i| opt(i).then_some(i as u32)).collect::<Vec<_>>(),
        "u16" => (0..n).map(|i| opt(i).then_some(i as u16)).collect::<Vec<_>>(),
        "u8" => (0..n).map(|i| opt(i).then_some((i % 200) as u8)).collect::<Vec<_>>(),
        "bool" => (0..n).map(|i| opt(i).then_some(i % 2 == 0)).collect::<Vec<_>>(),
        "str" => (0..n).map(|i| opt(i).then(|| format!("s{}", i % 13))).collect::<Vec<_>>(),
    )
    .unwrap();
    let date = Series::new("date".into(), dates)
        .cast(&DataType::Date)
        .unwrap();
    let ts = Series::new("ts".into(), micros.clone())
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .unwrap();
    let utc = Series::new("utc".into(), micros.clone())
        .cast(&DataType::Datetime(
            TimeUnit::Milliseconds,
            Some(TimeZone::UTC),
        ))
        .unwrap();
    let dur = Series::new("dur".into(), micros)
        .cast(&DataType::Duration(TimeUnit::Nanoseconds))
        .unwrap();
    df.hstack(&[date.into(), ts.into(), utc.into(), dur.into()])
        .unwrap()
}

#[test]
fn every_supported_dtype_round_trips_with_nulls_in_many_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.parquet");
    let df = every_dtype(2_500);
    write_parquet(&path, &df, 300).unwrap();
    let source = ParquetBatches::open(&path).unwrap();
    assert_eq!((source.num_rows(), source.num_row_groups()), (2_500, 9));
    let back = read_parquet(&path, None).unwrap();
    assert!(back.equals_missing(&df), "{back:?}");
    // Read through the row view and the typed path too.
    let got = back
        .par_apply_rows("d", |row| Ok(row.opt_date("date")?.map(|d| d.to_string())))
        .unwrap();
    assert_eq!(
        got.column("d").unwrap().str().unwrap().get(1),
        Some("1970-01-04")
    );
}

#[test]
fn projection_and_slices_of_row_groups_read_exactly_the_asked_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let df = every_dtype(1_000);
    write_parquet(&path, &df, 400).unwrap(); // row groups of 400, 400, 200
    let parts: Vec<_> = ParquetBatches::open(&path)
        .unwrap()
        .columns(["str", "i64"])
        .max_rows(150)
        .collect::<Result<_, _>>()
        .unwrap();
    let shape: Vec<(usize, usize, usize)> = parts
        .iter()
        .map(|p| (p.row_group(), p.first_row(), p.rows()))
        .collect();
    assert_eq!(
        shape,
        [
            (0, 0, 150),
            (0, 150, 150),
            (0, 300, 100),
            (1, 400, 150),
            (1, 550, 150),
            (1, 700, 100),
            (2, 800, 150),
            (2, 950, 50)
        ]
    );
    let mut all: Option<DataFrame> = None;
    for part in parts {
        let first = part.first_row();
        let got = part.load().unwrap();
        let expected = df
            .select(["str", "i64"])
            .unwrap()
            .slice(first as i64, got.height());
        assert!(got.equals_missing(&expected), "part at {first}");
        match all.as_mut() {
            None => all = Some(got),
            Some(acc) => {
                acc.vstack_mut_owned(got).unwrap();
            }
        }
    }
    assert_eq!(all.unwrap().height(), 1_000);
}

#[test]
fn empty_files_and_files_of_zero_row_groups_stream_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.parquet");
    let empty = every_dtype(0);
    write_parquet(&path, &empty, 100).unwrap();
    let source = ParquetBatches::open(&path).unwrap();
    assert_eq!(source.num_rows(), 0);
    let summary = par_apply_batches(&Flock::new(), 2, source, Ok, |_| Ok(())).unwrap();
    assert_eq!((summary.batches, summary.rows_in), (0, 0));
    let back = read_parquet(&path, None).unwrap();
    assert_eq!(back.height(), 0);
}

#[test]
fn a_stream_of_row_groups_decoded_in_the_workers_equals_the_in_memory_result() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (
        dir.path().join("in.parquet"),
        dir.path().join("out.parquet"),
    );
    let df = every_dtype(5_000);
    write_parquet(&input, &df, 500).unwrap();
    let transform = |b: DataFrame| -> Result<DataFrame, BoxError> {
        Ok(b.lazy()
            .filter(col("i64").gt(lit(0)))
            .select([col("i64"), col("str")])
            .collect()?)
    };
    for threads in [1, 2, 3] {
        let mut sink = ParquetSink::create(&output).unwrap().row_group_rows(700);
        let summary = par_apply_batches(
            &Flock::new().threads(threads),
            3,
            ParquetBatches::open(&input).unwrap().max_rows(200),
            transform,
            |out| Ok(sink.write(&out)?),
        )
        .unwrap();
        sink.finish().unwrap();
        // 10 row groups of 500 rows, each in slices of 200, 200 and 100.
        assert_eq!((summary.batches, summary.rows_in), (30, 5_000));
        let expected = transform(df.clone()).unwrap();
        assert!(
            read_parquet(&output, None)
                .unwrap()
                .equals_missing(&expected)
        );
    }
    // The sequential mode reads the same source.
    let mut total = 0;
    apply_batches_in_order(
        &Flock::new(),
        ParquetBatches::open(&input).unwrap(),
        Ok,
        |b| {
            total += b.height();
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(total, 5_000);
}

#[test]
fn a_failing_stream_leaves_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (
        dir.path().join("in.parquet"),
        dir.path().join("out.parquet"),
    );
    write_parquet(&input, &every_dtype(1_000), 100).unwrap();
    let result = (|| -> Result<(), Error> {
        let mut sink = ParquetSink::create(&output)?.row_group_rows(100);
        par_apply_batches(
            &Flock::new().threads(2),
            2,
            ParquetBatches::open(&input)?,
            |b| {
                if b.column("u32")?.u32()?.iter().any(|v| v == Some(512)) {
                    return Err("bad batch".into());
                }
                Ok(b)
            },
            |out| Ok(sink.write(&out)?),
        )?;
        sink.finish()
    })();
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Block { block: 5, .. }), "{err}");
    assert!(!output.exists(), "no partial output under the final name");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "the temporary file is removed: {leftovers:?}"
    );
}

fn corrupt(path: &Path, at: impl Fn(usize) -> std::ops::Range<usize>) {
    let mut bytes = std::fs::read(path).unwrap();
    let range = at(bytes.len());
    for b in &mut bytes[range] {
        *b ^= 0x5A;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn truncated_and_corrupt_files_are_errors_naming_the_file_and_the_row_group() {
    let dir = tempfile::tempdir().unwrap();
    let df = df!("x" => (0..20_000i64).collect::<Vec<_>>(), "s" => (0..20_000).map(|i| format!("v{i}")).collect::<Vec<_>>()).unwrap();

    // Truncated: the footer is gone.
    let truncated = dir.path().join("truncated.parquet");
    write_parquet(&truncated, &df, 5_000).unwrap();
    let len = std::fs::metadata(&truncated).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = ParquetBatches::open(&truncated).unwrap_err();
    assert!(
        matches!(&err, Error::InFile { path, .. } if path == &truncated),
        "{err}"
    );
    let err = read_parquet(&truncated, None).unwrap_err();
    assert!(
        matches!(&err, Error::InFile { path, .. } if path == &truncated),
        "{err}"
    );

    // A corrupt page in the second row group: an error naming the file and that row group, and
    // no batch after it handed on.
    let broken = dir.path().join("broken.parquet");
    write_parquet(&broken, &df, 5_000).unwrap();
    let second = {
        let parts: Vec<_> = ParquetBatches::open(&broken)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(parts.len(), 4);
        parts.len()
    };
    assert_eq!(second, 4);
    // Corrupt the middle of the data (row groups are laid out in order, before the footer).
    corrupt(&broken, |n| n * 3 / 8..n * 3 / 8 + 4_096);
    let mut seen = Vec::new();
    let err = apply_batches_in_order(
        &Flock::new(),
        ParquetBatches::open(&broken).unwrap(),
        Ok,
        |b| {
            seen.push(b.height());
            Ok(())
        },
    )
    .unwrap_err();
    let Error::InFile { path, source } = &err else {
        panic!("{err}")
    };
    assert_eq!(path, &broken);
    let Error::RowGroup {
        row_group, rows, ..
    } = &**source
    else {
        panic!("{err}")
    };
    assert_eq!(rows.len(), 5_000);
    assert_eq!(
        seen.len(),
        *row_group,
        "every row group before the broken one, none after: {err}"
    );

    // In a `Files` job the error names the file; keep-going processes the others.
    let good = dir.path().join("good.parquet");
    write_parquet(&good, &df, 5_000).unwrap();
    let files = Files::new([good.clone(), broken.clone(), truncated.clone()]);
    let err = files
        .par_apply(|p| Ok(read_parquet(p, None)?.height()))
        .unwrap_err();
    assert!(
        matches!(&err, Error::InFile { path, .. } if path == &broken),
        "{err}"
    );
    let (heights, report) = files
        .keep_going()
        .par_apply(|p| Ok(read_parquet(p, None)?.height()))
        .unwrap();
    assert_eq!(heights, [Some(20_000), None, None]);
    assert_eq!(report.failures.len(), 2);
}

#[test]
fn a_sink_that_cannot_be_created_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let target = not_a_dir.join("out.parquet");
    let err = ParquetSink::create(&target).unwrap_err();
    assert!(
        matches!(&err, Error::InFile { path, source } if path == &target && matches!(**source, Error::Io(_))),
        "{err}"
    );
    let err = write_parquet(&target, &df!("a" => [1i64]).unwrap(), 10).unwrap_err();
    assert!(matches!(err, Error::InFile { .. }));
}

#[test]
fn a_sink_dropped_without_finish_leaves_nothing_and_a_mismatch_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.parquet");
    {
        let mut sink = ParquetSink::create(&path).unwrap();
        sink.write(&df!("a" => [1i64]).unwrap()).unwrap();
        let err = sink.write(&df!("b" => [1.0]).unwrap()).unwrap_err();
        let Error::InFile { source, .. } = err else {
            panic!()
        };
        assert!(matches!(*source, Error::SchemaMismatch { block: 1, .. }));
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Rewrites `path`'s footer with `edit` applied: `[data][footer][footer length: u32 LE]["PAR1"]`.
fn rewrite_footer(path: &Path, edit: impl FnOnce(&mut polars_parquet_format::FileMetaData)) {
    use polars_parquet_format::thrift::protocol::{TCompactInputProtocol, TCompactOutputProtocol};
    let bytes = std::fs::read(path).unwrap();
    let n = bytes.len();
    let len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    let footer = &bytes[n - 8 - len..n - 8];
    let mut metadata = polars_parquet_format::FileMetaData::read_from_in_protocol(
        &mut TCompactInputProtocol::new(footer, usize::MAX),
    )
    .unwrap();
    edit(&mut metadata);
    let mut new_footer = Vec::new();
    metadata
        .write_to_out_protocol(&mut TCompactOutputProtocol::new(&mut new_footer))
        .unwrap();
    let mut out = bytes[..n - 8 - len].to_vec();
    out.extend_from_slice(&new_footer);
    out.extend_from_slice(&(new_footer.len() as u32).to_le_bytes());
    out.extend_from_slice(b"PAR1");
    std::fs::write(path, out).unwrap();
}

#[test]
fn a_footer_that_lies_about_its_row_count_fails_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let df = df!("x" => (0..300i64).collect::<Vec<_>>()).unwrap();

    // The file's count disagrees with its row groups': every row group is handed on, then the
    // stream fails instead of ending as if complete.
    let path = dir.path().join("lying-total.parquet");
    write_parquet(&path, &df, 100).unwrap();
    rewrite_footer(&path, |m| m.num_rows = 250);
    let mut seen = 0;
    let err = apply_batches_in_order(
        &Flock::new(),
        ParquetBatches::open(&path).unwrap(),
        Ok,
        |b| {
            seen += b.height();
            Ok(())
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::InFile { path: p, source } if p == &path && matches!(**source, Error::Io(_))),
        "{err}"
    );
    assert!(err.to_string().contains("250"), "{err}");
    assert_eq!(seen, 300);
    let err = par_apply_batches(
        &Flock::new().threads(2),
        2,
        ParquetBatches::open(&path).unwrap(),
        Ok,
        |_| Ok(()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InFile { .. }), "{err}");

    // A row group that claims more rows than its pages hold: that row group's error, named.
    let path = dir.path().join("lying-group.parquet");
    write_parquet(&path, &df, 100).unwrap();
    rewrite_footer(&path, |m| {
        m.row_groups[1].num_rows = 150;
        m.num_rows = 350;
    });
    let err = read_parquet(&path, None).unwrap_err();
    let Error::InFile { source, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        matches!(**source, Error::RowGroup { row_group: 1, .. }),
        "{err}"
    );
}

#[test]
fn categorical_columns_round_trip_and_read_as_str() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.parquet");
    let words: Vec<Option<&str>> = (0..1_000)
        .map(|i| (i % 9 != 4).then(|| ["a", "bb", "ccc"][i % 3]))
        .collect();
    let cats = Series::new("c".into(), &words)
        .cast(&DataType::from_categories(Categories::global()))
        .unwrap();
    let df = DataFrame::new(1_000, vec![cats.into_column()]).unwrap();
    write_parquet(&path, &df, 300).unwrap();
    let back = read_parquet(&path, None).unwrap();
    assert!(
        matches!(back.column("c").unwrap().dtype(), DataType::Categorical(..)),
        "{:?}",
        back.dtypes()
    );
    let lens = back
        .par_apply_rows("len", |row| Ok(row.opt_str("c")?.map(|s| s.len() as u32)))
        .unwrap();
    let expected: Vec<Option<u32>> = words.iter().map(|w| w.map(|w| w.len() as u32)).collect();
    assert_eq!(
        lens.column("len")
            .unwrap()
            .u32()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        expected
    );
}

/// A file with no rows keeps its schema: the crate's own empty file, and one of zero row groups
/// (as pyarrow writes an empty table); a projection naming a missing column is an error.
#[test]
fn a_file_with_no_rows_reads_as_its_columns_and_a_missing_column_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("own.parquet");
    let empty = every_dtype(0);
    write_parquet(&own, &empty, 100).unwrap();
    let zero_groups = dir.path().join("zero-groups.parquet");
    write_parquet(&zero_groups, &every_dtype(10), 100).unwrap();
    rewrite_footer(&zero_groups, |m| {
        m.row_groups.clear();
        m.num_rows = 0;
    });
    for path in [&own, &zero_groups] {
        let back = read_parquet(path, None).unwrap();
        assert_eq!(back.height(), 0);
        assert_eq!(
            back.get_column_names(),
            empty.get_column_names(),
            "{path:?}"
        );
        for (name, dtype) in empty.schema().iter() {
            // Polars' decoder types a zero-row-group file's UTC column without its time zone.
            if path == &own || name != "utc" {
                assert_eq!(back.schema().get(name), Some(dtype), "{path:?}: {name}");
            }
        }
        let projected = read_parquet(path, Some(&["str", "i64"])).unwrap();
        assert_eq!(projected.get_column_names(), ["str", "i64"]);
        let err = read_parquet(path, Some(&["i64", "nope"])).unwrap_err();
        let Error::InFile { source, .. } = &err else {
            panic!("{err}")
        };
        assert!(
            matches!(&**source, Error::ColumnNotFound { column, .. } if column == "nope"),
            "{err}"
        );
        let mut stream = ParquetBatches::open(path).unwrap().columns(["nope"]);
        assert!(matches!(stream.next(), Some(Err(Error::InFile { .. }))));
        assert!(stream.next().is_none());
    }
}

/// Footers that made the decoder panic (a negative column-chunk size or page offset): a typed
/// error naming the file, never a panic out of the crate.
#[test]
fn a_corrupt_footer_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let df = df!("x" => (0..1_000i64).collect::<Vec<_>>()).unwrap();
    type Edit = fn(&mut polars_parquet_format::FileMetaData);
    let edits: [(&str, Edit); 3] = [
        ("negative size", |m| {
            m.row_groups[0].columns[0]
                .meta_data
                .as_mut()
                .unwrap()
                .total_compressed_size = -5;
        }),
        ("negative offset", |m| {
            m.row_groups[0].columns[0]
                .meta_data
                .as_mut()
                .unwrap()
                .data_page_offset = -1_000_000;
        }),
        ("huge offset", |m| {
            m.row_groups[0].columns[0]
                .meta_data
                .as_mut()
                .unwrap()
                .data_page_offset = i64::MAX - 2;
        }),
    ];
    for (what, edit) in edits {
        let path = dir.path().join(format!("{what}.parquet"));
        write_parquet(&path, &df, 500).unwrap();
        rewrite_footer(&path, edit);
        let read = std::panic::catch_unwind(|| read_parquet(&path, None));
        let result = read.unwrap_or_else(|_| panic!("{what}: a panic escaped the crate"));
        // The decoder may not need the corrupt field (then the data is right), or fails.
        match result {
            Ok(back) => assert!(back.equals(&df), "{what}: wrong data"),
            Err(err) => assert!(
                matches!(&err, Error::InFile { path: p, .. } if p == &path),
                "{what}: {err}"
            ),
        }
        let streamed = std::panic::catch_unwind(|| {
            let source = ParquetBatches::open(&path)?;
            par_apply_batches(&Flock::new().threads(2), 2, source, Ok, |_| Ok(()))
        });
        match streamed.unwrap_or_else(|_| panic!("{what}: a panic escaped the stream")) {
            Ok(summary) => assert_eq!(summary.rows_out, 1_000, "{what}"),
            Err(err) => assert!(
                err.to_string().contains(&*path.to_string_lossy()),
                "{what}: {err}"
            ),
        }
    }
}

/// Random byte flips in the footer: never a panic out of the crate.
#[test]
fn random_footer_flips_never_panic_out_of_the_crate() {
    let dir = tempfile::tempdir().unwrap();
    let df = df!(
        "x" => (0..500i64).collect::<Vec<_>>(),
        "b" => (0..500).map(|i| i % 3 == 0).collect::<Vec<_>>(),
        "s" => (0..500).map(|i| format!("v{i}")).collect::<Vec<_>>(),
    )
    .unwrap();
    let clean = dir.path().join("clean.parquet");
    write_parquet(&clean, &df, 100).unwrap();
    let bytes = std::fs::read(&clean).unwrap();
    let n = bytes.len();
    let footer_len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    let footer = n - 8 - footer_len..n - 8;
    let path = dir.path().join("flipped.parquet");
    let mut state = 7u64;
    for _ in 0..160 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let at = footer.start + (state >> 33) as usize % footer.len();
        let mut flipped = bytes.clone();
        flipped[at] ^= 1 << ((state >> 20) % 8);
        std::fs::write(&path, &flipped).unwrap();
        let read = std::panic::catch_unwind(|| read_parquet(&path, None).map(|df| df.height()));
        assert!(read.is_ok(), "flip at byte {at}: a panic escaped the crate");
    }
}

/// A stream reads the version of the file it opened, even when another file is renamed over the
/// path while it runs (an atomic replace by another job).
#[test]
fn a_file_replaced_while_streaming_is_read_as_it_was_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.parquet");
    let old = df!("v" => vec![1i64; 1_000]).unwrap();
    write_parquet(&path, &old, 100).unwrap();
    let source = ParquetBatches::open(&path).unwrap();
    let replacement = df!("v" => vec![2i64; 1_000]).unwrap();
    let mut replaced = false;
    let mut total = 0i64;
    apply_batches_in_order(&Flock::new(), source, Ok, |out| {
        if !replaced {
            // After the first batch: the path now names another file.
            write_parquet(&path, &replacement, 100)?;
            replaced = true;
        }
        total += out.column("v")?.i64()?.sum().unwrap_or(0);
        Ok(())
    })
    .unwrap();
    assert!(replaced);
    assert_eq!(total, 1_000, "every batch from the old version");
    assert_eq!(
        read_parquet(&path, None)
            .unwrap()
            .column("v")
            .unwrap()
            .i64()
            .unwrap()
            .get(0),
        Some(2)
    );
}

/// Two sinks of one path at once (two containers with the same pid, a retried pod beside the
/// old one): each has a temporary file of its own, so the published file is one of theirs, whole.
#[test]
fn two_sinks_of_one_path_never_mix_and_a_long_name_can_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.parquet");
    let a = df!("who" => vec!["a"; 3_000]).unwrap();
    let b = df!("who" => vec!["b"; 3_000]).unwrap();
    let mut sink_a = ParquetSink::create(&path).unwrap().row_group_rows(1_000);
    let mut sink_b = ParquetSink::create(&path).unwrap().row_group_rows(1_000);
    for i in 0..3 {
        sink_a.write(&a.slice(i * 1_000, 1_000)).unwrap();
        sink_b.write(&b.slice(i * 1_000, 1_000)).unwrap();
    }
    sink_a.finish().unwrap();
    sink_b.finish().unwrap();
    let back = read_parquet(&path, None).unwrap();
    assert_eq!(back.height(), 3_000);
    let who = back.column("who").unwrap().str().unwrap();
    assert!(
        who.iter().all(|w| w == Some("b")),
        "one writer's file, whole"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // A 240-byte file name (the limit is 255): the temporary name must fit too.
    let long = dir.path().join(format!("{}.parquet", "x".repeat(232)));
    write_parquet(&long, &a, 1_000).unwrap();
    assert_eq!(read_parquet(&long, None).unwrap().height(), 3_000);
}

/// Outputs encoded and compressed in the workers (`Stream::to_parquet`) make the same file content
/// as outputs written on the calling thread: every dtype with nulls, outputs big and small (a
/// row group of their own, or merged), row groups split, any thread count and window.
#[test]
fn outputs_encoded_in_the_workers_equal_outputs_written_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    let df = every_dtype(6_000);
    write_parquet(&input, &df, 1_000).unwrap();
    // Batches of 1,000 rows keep a varying share: 1,000, 80 (small: merged), 550, ...
    let transform = |b: DataFrame| -> Result<DataFrame, BoxError> {
        let first = b.column("u32")?.u32()?.get(0).unwrap_or(0) as usize;
        let keep = [1_000, 80, 550, 0, 999, 300][first / 1_000 % 6];
        Ok(b.head(Some(keep)))
    };
    let expected = {
        let reference = dir.path().join("reference.parquet");
        let mut sink = ParquetSink::create(&reference).unwrap().row_group_rows(400);
        let source = ParquetBatches::open(&input).unwrap();
        apply_batches_in_order(
            &Flock::new(),
            source,
            transform,
            |out| Ok(sink.write(&out)?),
        )
        .unwrap();
        sink.finish().unwrap();
        read_parquet(&reference, None).unwrap()
    };
    assert!(expected.height() > 2_000);
    for (threads, window, group_rows) in [(1, 1, 400), (2, 3, 400), (3, 2, 1_000), (2, 4, 64)] {
        let output = dir
            .path()
            .join(format!("out-{threads}-{window}-{group_rows}.parquet"));
        let mut sink = ParquetSink::create(&output)
            .unwrap()
            .row_group_rows(group_rows);
        let stream =
            Stream::to_parquet(ParquetBatches::open(&input).unwrap(), &mut sink).window(window);
        let summary = Flock::new()
            .threads(threads)
            .on(&stream)
            .par_apply_blocks(transform)
            .unwrap();
        drop(stream);
        sink.finish().unwrap();
        assert_eq!(summary.batches, 6);
        assert_eq!(summary.rows_out, expected.height());
        assert!(summary.max_in_flight <= window);
        let back = read_parquet(&output, None).unwrap();
        assert!(
            back.equals_missing(&expected),
            "{threads} threads, window {window}"
        );
        // No row group is bigger than asked.
        let groups = ParquetBatches::open(&output).unwrap();
        assert!(groups.map(|p| p.unwrap().rows()).all(|r| r <= group_rows));
    }
}

/// A failing batch in a worker-encoded stream: the first failure in stream order, and no file.
#[test]
fn a_failing_stream_encoded_in_the_workers_leaves_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    let output = dir.path().join("out.parquet");
    write_parquet(&input, &every_dtype(2_000), 200).unwrap();
    let mut sink = ParquetSink::create(&output).unwrap().row_group_rows(100);
    let stream = Stream::to_parquet(ParquetBatches::open(&input).unwrap(), &mut sink).window(3);
    let err = Flock::new()
        .threads(2)
        .on(&stream)
        .par_apply_blocks(|b| {
            if b.column("u32")?.u32()?.iter().any(|v| v == Some(1_234)) {
                return Err("bad batch".into());
            }
            Ok(b)
        })
        .unwrap_err();
    drop(stream);
    assert!(matches!(err, Error::Block { block: 6, .. }), "{err}");
    drop(sink);
    assert!(!output.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// Keep-going on a stream: a row group that does not decode is left out and reported as its
/// batch with its rows; every other row group is written.
#[test]
fn a_row_group_that_does_not_decode_is_left_out_under_keep_going() {
    use polars_flock::Unit;
    let dir = tempfile::tempdir().unwrap();
    let df = df!("x" => (0..20_000i64).collect::<Vec<_>>(), "s" => (0..20_000).map(|i| format!("v{i}")).collect::<Vec<_>>()).unwrap();
    let broken = dir.path().join("broken.parquet");
    write_parquet(&broken, &df, 5_000).unwrap();
    corrupt(&broken, |n| n * 3 / 8..n * 3 / 8 + 4_096);
    let mut written = Vec::new();
    let stream = Stream::new(ParquetBatches::open(&broken).unwrap(), |out| {
        written.push(out.column("x")?.i64()?.get(0));
        Ok(())
    });
    let (summary, report) = Flock::new()
        .threads(2)
        .on(&stream)
        .keep_going()
        .par_apply_rows("y", |row| Ok(row.i64("x")? + 1))
        .unwrap();
    drop(stream);
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    let Unit::Block { block, rows } = &report.failures[0].unit else {
        panic!("{:?}", report.failures[0])
    };
    assert_eq!(rows.len(), 5_000);
    assert_eq!(rows.start, block * 5_000);
    assert!(matches!(&report.failures[0].error, Error::InFile { path, .. } if path == &broken));
    assert_eq!(summary.batches, 4);
    assert_eq!(written.len(), 3);
    assert!(!written.contains(&Some(rows.start as i64)));
}
