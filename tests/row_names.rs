//! The row view's column cache by name: any set of names (shared prefixes, names that differ only
//! after their 7th byte, multi-byte characters, the empty name, names longer than 255 bytes, more
//! columns than the inline table holds), read in any order, by literal or run-time names, over
//! nulls and several Arrow chunks, gives what a direct read of each column gives.

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Error, Flock};
use proptest::prelude::*;

/// One column of the generated frame: its name, and its values as text (`None` for a null).
#[derive(Debug, Clone)]
struct Col {
    name: String,
    kind: u8,
    values: Vec<Option<i64>>,
}

fn names() -> impl Strategy<Value = Vec<String>> {
    // Few letters and shared stems, so that names collide in every way a cache could confuse:
    // equal first 7 bytes and length, equal hashes modulo the table, prefixes of each other.
    let name = prop_oneof![
        "[ab]{0,3}",
        "[ab]{6,9}",
        "stem_[ab]{0,4}",
        "é[aé]{0,5}",
        (250usize..300, "[ab]").prop_map(|(n, c)| c.repeat(n)),
        (0usize..60).prop_map(|i| format!("c{i}")),
    ];
    prop::collection::btree_set(name, 1..70).prop_map(|set| set.into_iter().collect())
}

fn frame(cols: &[Col], chunks: usize) -> DataFrame {
    let n = cols[0].values.len();
    let columns: Vec<Column> = cols
        .iter()
        .map(|c| {
            let name: PlSmallStr = c.name.as_str().into();
            match c.kind {
                0 => Column::new(name, &c.values),
                1 => Column::new(
                    name,
                    c.values
                        .iter()
                        .map(|v| v.map(|v| v as f64))
                        .collect::<Vec<_>>(),
                ),
                _ => Column::new(
                    name,
                    c.values
                        .iter()
                        .map(|v| v.map(|v| v.to_string()))
                        .collect::<Vec<_>>(),
                ),
            }
        })
        .collect();
    let df = DataFrame::new(n, columns).unwrap();
    // Split into `chunks` Arrow chunks, at different places for no column in particular.
    let mut out = df.slice(0, 0);
    let step = n.div_ceil(chunks.max(1)).max(1);
    let mut start = 0;
    while start < n {
        out.vstack_mut(&df.slice(start as i64, step)).unwrap();
        start += step;
    }
    out
}

/// What row `r` of the closure below returns, computed from the plain values.
fn expected(cols: &[Col], r: usize) -> String {
    let mut text = String::new();
    for k in 0..cols.len() {
        let c = &cols[(r + k) % cols.len()];
        text += &format!("{:?};", c.values[r]);
    }
    text
}

/// Reads every column of row `r`, starting at column `r % width`, through the getter of its
/// kind, by a name built at run time.
fn read(cols: &[Col], row: &Row<'_>) -> Result<String, Error> {
    let r = row.index();
    let mut text = String::new();
    for k in 0..cols.len() {
        let c = &cols[(r + k) % cols.len()];
        let name = c.name.clone();
        let value = match c.kind {
            0 => row.opt_i64(&name)?,
            1 => row.opt_f64(&name)?.map(|v| v as i64),
            _ => row.opt_str(&name)?.map(|s| s.parse().unwrap()),
        };
        text += &format!("{value:?};");
        // A name that is not a column, one byte longer than a real one.
        let missing = format!("{name}\u{1}");
        match row.opt_i64(&missing) {
            Err(Error::ColumnNotFound {
                column,
                row: Some(at),
            }) => {
                assert_eq!((column, at), (missing, r));
            }
            other => panic!("{other:?}"),
        }
    }
    Ok(text)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_names_in_any_order_read_as_directly(
        names in names(),
        n in 1usize..120,
        chunks in 1usize..4,
        chunksize in 1usize..50,
        threads in 1usize..4,
        seed in any::<u64>(),
    ) {
        let mut state = seed;
        let cols: Vec<Col> = names
            .into_iter()
            .map(|name| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let kind = (state >> 33) as u8 % 3;
                let values = (0..n)
                    .map(|r| {
                        let v = (state >> 17) as i64 % 1000 + r as i64;
                        ((v + r as i64) % 7 != 0).then_some(v)
                    })
                    .collect();
                Col { name, kind, values }
            })
            .collect();
        let df = frame(&cols, chunks);
        let out = Flock::new()
            .chunksize(chunksize)
            .threads(threads)
            .on(&df)
            .par_apply_rows("\u{0}fingerprint", |row| Ok(read(&cols, row)?))
            .unwrap();
        let got: Vec<String> = out
            .column("\u{0}fingerprint")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|s| s.unwrap().to_owned())
            .collect();
        let want: Vec<String> = (0..n).map(|r| expected(&cols, r)).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn names_equal_in_their_first_bytes_and_length_are_told_apart() {
    let long = |c: char| format!("{}{c}", "a".repeat(300));
    let df = df!(
        "abcdefg1" => [1i64],
        "abcdefg2" => [2i64],
        "" => [3i64],
        long('x').as_str() => [4i64],
        "a".repeat(400).as_str() => [5i64],
    )
    .unwrap();
    let out = df
        .par_apply_rows("y", |row| {
            Ok(row.i64("abcdefg1")? * 10_000
                + row.i64("abcdefg2")? * 1_000
                + row.i64("")? * 100
                + row.i64(&long('x'))? * 10
                + row.i64(&"a".repeat(400))?)
        })
        .unwrap();
    assert_eq!(out.column("y").unwrap().i64().unwrap().get(0), Some(12_345));

    // Same first 7 bytes and length as a column, another last byte: not that column.
    for name in ["abcdefg3".to_owned(), long('y'), "a".repeat(401)] {
        let err = df
            .par_apply_rows("y", |row| Ok(row.i64(&name)?))
            .unwrap_err();
        assert!(
            matches!(&err, Error::ColumnNotFound { column, row: Some(0) } if *column == name),
            "{err}"
        );
    }
}

#[test]
fn a_dtype_mismatch_after_a_good_read_of_the_same_column_names_both() {
    // The first read caches the column; a later read of it as another type is still checked.
    let df = df!("x" => [1.5f64, 2.5]).unwrap();
    let err = df
        .par_apply_rows("y", |row| {
            let x = row.f64("x")?;
            if row.index() == 1 {
                return Ok(row.i64("x")? as f64);
            }
            Ok(x)
        })
        .unwrap_err();
    match err {
        Error::DtypeMismatch {
            column,
            row,
            expected,
            found,
        } => {
            assert_eq!((column.as_str(), row), ("x", Some(1)));
            assert_eq!((*expected, *found), (DataType::Int64, DataType::Float64));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_null_only_in_a_later_segment_is_still_an_error_for_a_plain_getter() {
    // Segment 0 (chunk 0) has no null and takes the no-null path; chunk 1's null is found.
    let mut df = df!("x" => [1i64, 2, 3]).unwrap();
    df.vstack_mut(&df!("x" => [Some(4i64), None]).unwrap())
        .unwrap();
    let err = Flock::new()
        .chunksize(5)
        .on(&df)
        .par_apply_rows("y", |row| Ok(row.i64("x")?))
        .unwrap_err();
    assert!(
        matches!(&err, Error::NullValue { column, row: 4 } if column == "x"),
        "{err}"
    );
    let out = df
        .par_apply_rows("y", |row| Ok(row.opt_i64("x")?.unwrap_or(-1)))
        .unwrap();
    let y: Vec<i64> = out
        .column("y")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(y, [1, 2, 3, 4, -1]);
}
