//! Many files: stable order, results equal to a serial loop over the files, and every error
//! naming its file.

mod common;

use std::path::Path;

use common::*;
use polars_flock::BoxError;
use polars_flock::polars::prelude::*;
use polars_flock::{Error, Files, Flock};
use proptest::prelude::*;

/// Writes `contents[i]` as numbered text files (one integer per line) into a new directory.
fn write_files(contents: &[Vec<i64>]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (i, values) in contents.iter().enumerate() {
        let text: String = values.iter().map(|v| format!("{v}\n")).collect();
        std::fs::write(dir.path().join(format!("part-{i:04}.txt")), text).unwrap();
    }
    // Noise the listing must skip.
    std::fs::write(dir.path().join("README.md"), "not data").unwrap();
    std::fs::create_dir(dir.path().join("sub.txt")).unwrap();
    dir
}

fn read_values(path: &Path) -> Result<DataFrame, BoxError> {
    let text = std::fs::read_to_string(path)?;
    let values: Vec<i64> = text
        .lines()
        .map(|l| {
            l.parse::<i64>()
                .map_err(|e| polars_err!(ComputeError: "{e}"))
        })
        .collect::<PolarsResult<_>>()?;
    let n = values.len();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    Ok(df!("v" => values, "file" => vec![name; n])?)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn concat_and_apply_equal_a_serial_loop_in_file_order(
        contents in proptest::collection::vec(proptest::collection::vec(-1_000i64..1_000, 0..50), 0..40),
        cs in (0usize..=45).prop_flat_map(chunksize),
        threads in 1usize..=8,
    ) {
        let dir = write_files(&contents);
        let files = Files::in_dir(dir.path(), Some("txt")).unwrap();
        prop_assert_eq!(files.len(), contents.len());
        let flock = flock(cs, threads);

        let sums = flock.on(&files).par_apply(|p| read_values(p).map(|df| df.column("v").unwrap().i64().unwrap().sum().unwrap_or(0))).unwrap();
        let expected: Vec<i64> = contents.iter().map(|c| c.iter().sum()).collect();
        prop_assert_eq!(sums, expected);

        let df = flock.on(&files).par_concat(read_values).unwrap();
        let all: Vec<i64> = contents.iter().flatten().copied().collect();
        if contents.is_empty() {
            prop_assert_eq!(df.height(), 0);
        } else {
            prop_assert_eq!(df.column("v").unwrap().i64().unwrap().into_no_null_iter().collect::<Vec<_>>(), all);
        }
    }
}

#[test]
fn listing_is_sorted_filtered_and_glob_aware() {
    let dir = write_files(&[vec![1], vec![2], vec![3]]);
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::write(dir.path().join("nested/part-9999.txt"), "4\n").unwrap();
    let names = |files: &Files| -> Vec<String> {
        files
            .paths()
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect()
    };
    let listed = Files::in_dir(dir.path(), Some("txt")).unwrap();
    assert_eq!(
        names(&listed),
        ["part-0000.txt", "part-0001.txt", "part-0002.txt"]
    );
    assert_eq!(Files::in_dir(dir.path(), None).unwrap().len(), 4); // README.md too
    let globbed = Files::glob(&format!("{}/**/part-*.txt", dir.path().display())).unwrap();
    assert_eq!(
        names(&globbed),
        [
            "nested/part-9999.txt",
            "part-0000.txt",
            "part-0001.txt",
            "part-0002.txt"
        ]
    );
}

#[test]
fn errors_name_the_first_failing_file() {
    let dir = write_files(&[vec![1], vec![2], vec![3], vec![4], vec![5]]);
    std::fs::write(dir.path().join("part-0001.txt"), "x\n").unwrap();
    std::fs::write(dir.path().join("part-0003.txt"), "y\n").unwrap();
    let files = Files::in_dir(dir.path(), Some("txt")).unwrap();
    let flock = Flock::new().chunksize(1).threads(4);
    let err = flock.on(&files).par_concat(read_values).unwrap_err();
    let Error::InFile { path, source } = &err else {
        panic!("{err}")
    };
    assert!(path.ends_with("part-0001.txt"), "{err}");
    assert!(source.to_string().contains("invalid digit"), "{err}");
    assert!(err.to_string().contains("part-0001.txt"));

    let err = flock
        .on(&files)
        .par_apply(|p| -> Result<(), BoxError> {
            assert!(!p.ends_with("part-0002.txt"), "cannot read this one");
            Ok(())
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::InFile { path, source } if path.ends_with("part-0002.txt") && source.to_string().contains("cannot read") && matches!(Some(source.as_ref()), Some(Error::Panicked { .. }))),
        "{err}"
    );

    let err = Files::in_dir(dir.path().join("missing"), None).unwrap_err();
    assert!(
        matches!(&err, Error::InFile { path, .. } if path.ends_with("missing")),
        "{err}"
    );
    let err = Files::glob("data/[unclosed").unwrap_err();
    assert!(
        matches!(&err, Error::InFile { path, .. } if path.to_str() == Some("data/[unclosed")),
        "{err}"
    );
}

#[test]
fn concat_rejects_a_file_with_another_schema() {
    let dir = write_files(&[vec![1], vec![2], vec![3]]);
    let files = Files::in_dir(dir.path(), Some("txt")).unwrap();
    let err = Flock::new()
        .chunksize(1)
        .on(&files)
        .par_concat(|p| {
            let df = read_values(p)?;
            if p.ends_with("part-0002.txt") {
                Ok(df.select(["v"])?)
            } else {
                Ok(df)
            }
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::InFile { path, source } if path.ends_with("part-0002.txt")
            && matches!(Some(source.as_ref()), Some(Error::SchemaMismatch { block: 2, .. }))),
        "{err}"
    );
}

#[cfg(feature = "csv")]
#[test]
fn csv_files_read_through_the_reexported_polars() {
    use polars_flock::polars::prelude::{CsvReadOptions, SerReader};
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        std::fs::write(
            dir.path().join(format!("{i}.csv")),
            format!("x,k\n{i},a\n{},b\n", i + 10),
        )
        .unwrap();
    }
    let files = polars_flock::Files::in_dir(dir.path(), Some("csv")).unwrap();
    let all = files
        .par_concat(|path| {
            Ok(CsvReadOptions::default()
                .with_has_header(true)
                .try_into_reader_with_file_path(Some(path.to_path_buf()))?
                .finish()?)
        })
        .unwrap();
    let x: Vec<i64> = all
        .column("x")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(x, [0, 10, 1, 11, 2, 12]);
}
