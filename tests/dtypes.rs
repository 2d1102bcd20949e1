//! Feature `dtypes`: 8- and 16-bit integers, dates, datetimes and durations through the row view,
//! the typed path and outputs, each compared with a plain serial computation on the physical values.
#![cfg(feature = "dtypes")]

mod common;

use polars_flock::chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{Error, Flock};
use proptest::prelude::*;

fn series<T: PolarsNumericType>(name: &str, values: &[Option<T::Native>]) -> ChunkedArray<T> {
    ChunkedArray::<T>::from_slice_options(name.into(), values)
}

fn frame(columns: Vec<Series>) -> DataFrame {
    let height = columns.first().map_or(0, |s| s.len());
    DataFrame::new(height, columns.into_iter().map(Column::from).collect()).unwrap()
}

fn epoch_date(days: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + TimeDelta::days(days.into())
}

fn instant(value: i64, unit: TimeUnit) -> DateTime<Utc> {
    match unit {
        TimeUnit::Nanoseconds => DateTime::from_timestamp_nanos(value),
        TimeUnit::Microseconds => DateTime::from_timestamp_micros(value).unwrap(),
        TimeUnit::Milliseconds => DateTime::from_timestamp_millis(value).unwrap(),
    }
}

fn unit() -> impl Strategy<Value = TimeUnit> {
    prop_oneof![
        Just(TimeUnit::Nanoseconds),
        Just(TimeUnit::Microseconds),
        Just(TimeUnit::Milliseconds)
    ]
}

fn maybe<T: std::fmt::Debug + Clone>(
    value: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![1 => Just(None), 4 => value.prop_map(Some)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn small_integers_round_trip_through_rows_and_the_typed_path(
        values in prop::collection::vec((maybe(any::<i8>()), maybe(any::<i16>()), maybe(any::<u8>()), maybe(any::<u16>())), 0..400),
        cs in 1usize..64,
    ) {
        let a: Vec<_> = values.iter().map(|v| v.0).collect();
        let b: Vec<_> = values.iter().map(|v| v.1).collect();
        let c: Vec<_> = values.iter().map(|v| v.2).collect();
        let d: Vec<_> = values.iter().map(|v| v.3).collect();
        let df = frame(vec![
            series::<Int8Type>("a", &a).into_series(),
            series::<Int16Type>("b", &b).into_series(),
            series::<UInt8Type>("c", &c).into_series(),
            series::<UInt16Type>("d", &d).into_series(),
        ]);
        let flock = Flock::new().chunksize(cs).threads(2);
        let out = flock.on(&df).par_apply_rows("a2", |row| Ok(row.opt_i8("a")?))
            .and_then(|df| flock.on(&df).par_apply_rows("b2", |row| Ok(row.opt_i16("b")?)))
            .and_then(|df| flock.on(&df).par_apply_rows("c2", |row| Ok(row.opt_u8("c")?)))
            .and_then(|df| flock.on(&df).par_apply_rows("d2", |row| Ok(row.opt_u16("d")?)))
            .unwrap();
        for (x, y) in [("a", "a2"), ("b", "b2"), ("c", "c2"), ("d", "d2")] {
            prop_assert!(out.column(x).unwrap().equals_missing(&out.column(y).unwrap().clone().with_name(x.into())));
        }
        let sum = flock.on(&df).par_apply_columns("s", ["a", "b", "c", "d"], |(a, b, c, d): (Option<i8>, Option<i16>, Option<u8>, Option<u16>)| {
                i64::from(a.unwrap_or(0)) + i64::from(b.unwrap_or(0)) + i64::from(c.unwrap_or(0)) + i64::from(d.unwrap_or(0))
            })
            .unwrap();
        let serial: Vec<i64> = values.iter().map(|v| {
            i64::from(v.0.unwrap_or(0)) + i64::from(v.1.unwrap_or(0)) + i64::from(v.2.unwrap_or(0)) + i64::from(v.3.unwrap_or(0))
        }).collect();
        prop_assert_eq!(common::i64_values(&sum, "s"), serial);
    }

    #[test]
    fn temporal_columns_read_as_chrono_values(
        values in prop::collection::vec((maybe(-200_000i32..200_000), maybe(-(1i64 << 52)..(1i64 << 52)), maybe(-(1i64 << 52)..(1i64 << 52))), 0..300),
        datetime_unit in unit(),
        duration_unit in unit(),
        cs in 1usize..64,
    ) {
        let days: Vec<_> = values.iter().map(|v| v.0).collect();
        let times: Vec<_> = values.iter().map(|v| v.1).collect();
        let spans: Vec<_> = values.iter().map(|v| v.2).collect();
        let df = frame(vec![
            series::<Int32Type>("d", &days).into_date().into_series(),
            series::<Int64Type>("t", &times).into_datetime(datetime_unit, None).into_series(),
            series::<Int64Type>("z", &times).into_datetime(datetime_unit, Some(TimeZone::UTC)).into_series(),
            series::<Int64Type>("p", &spans).into_duration(duration_unit).into_series(),
        ]);
        let flock = Flock::new().chunksize(cs).threads(2);
        // Row view: a string of what chrono sees, compared with the serial conversion.
        let out = flock.on(&df).par_apply_rows("text", |row| {
            Ok(format!(
                "{:?}|{:?}|{:?}|{:?}",
                row.opt_date("d")?,
                row.opt_datetime("t")?,
                row.opt_utc_datetime("z")?,
                row.opt_duration("p")?,
            ))
        }).unwrap();
        let span = |v: i64| match duration_unit {
            TimeUnit::Nanoseconds => TimeDelta::nanoseconds(v),
            TimeUnit::Microseconds => TimeDelta::microseconds(v),
            TimeUnit::Milliseconds => TimeDelta::milliseconds(v),
        };
        let serial: Vec<String> = values.iter().map(|(d, t, p)| {
            format!(
                "{:?}|{:?}|{:?}|{:?}",
                d.map(epoch_date),
                t.map(|t| instant(t, datetime_unit).naive_utc()),
                t.map(|t| instant(t, datetime_unit)),
                p.map(span),
            )
        }).collect();
        let strings = |df: &DataFrame, name: &str| -> Vec<String> {
            df.column(name).unwrap().str().unwrap().iter().map(|s| s.unwrap().to_owned()).collect()
        };
        prop_assert_eq!(strings(&out, "text"), serial);

        // The typed path reads the same values.
        let typed = flock.on(&df).par_apply_columns("n", ["d", "z"], |(d, z): (Option<NaiveDate>, Option<DateTime<Utc>>)| {
            format!("{d:?}|{z:?}")
        }).unwrap();
        let serial: Vec<String> = values.iter().map(|(d, t, _)| {
            format!("{:?}|{:?}", d.map(epoch_date), t.map(|t| instant(t, datetime_unit)))
        }).collect();
        prop_assert_eq!(strings(&typed, "n"), serial);

        // Outputs: dates as days, datetimes and durations in microseconds.
        let back = flock.on(&df).par_apply_rows("d2", |row| Ok(row.opt_date("d")?))
            .and_then(|df| flock.on(&df).par_apply_rows("t2", |row| Ok(row.opt_datetime("t")?)))
            .and_then(|df| flock.on(&df).par_apply_rows("z2", |row| Ok(row.opt_utc_datetime("z")?)))
            .and_then(|df| flock.on(&df).par_apply_rows("p2", |row| Ok(row.opt_duration("p")?)))
            .unwrap();
        prop_assert!(back.column("d2").unwrap().equals_missing(&df.column("d").unwrap().clone().with_name("d2".into())));
        let as_micros = |name: &str, dtype: DataType| back.column(name).unwrap().cast(&dtype).unwrap();
        let micros = |unit: TimeUnit, v: i64| match unit {
            TimeUnit::Nanoseconds => v.div_euclid(1_000),
            TimeUnit::Microseconds => v,
            TimeUnit::Milliseconds => v * 1_000,
        };
        let t2 = as_micros("t2", DataType::Int64);
        let expected: Vec<Option<i64>> = times.iter().map(|t| t.map(|t| micros(datetime_unit, t))).collect();
        prop_assert_eq!(t2.i64().unwrap().iter().collect::<Vec<_>>(), expected.clone());
        prop_assert_eq!(back.column("z2").unwrap().dtype(), &DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)));
        prop_assert_eq!(as_micros("z2", DataType::Int64).i64().unwrap().iter().collect::<Vec<_>>(), expected);
        let p2 = as_micros("p2", DataType::Int64);
        let expected: Vec<Option<i64>> = spans.iter().map(|p| p.map(|p| span(p).num_microseconds().unwrap())).collect();
        prop_assert_eq!(p2.i64().unwrap().iter().collect::<Vec<_>>(), expected);
    }
}

#[test]
fn naive_and_zoned_datetimes_are_not_mixed_up() {
    let t = Int64Chunked::from_vec("t".into(), vec![0]);
    let naive = frame(vec![
        t.clone()
            .into_datetime(TimeUnit::Milliseconds, None)
            .into_series(),
    ]);
    let zoned = frame(vec![
        t.into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
            .into_series(),
    ]);
    let err = naive
        .par_apply_rows("x", |row| Ok(row.utc_datetime("t")?.timestamp()))
        .unwrap_err();
    assert!(
        matches!(&err, Error::DtypeMismatch { expected, .. } if **expected == DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))),
        "{err}"
    );
    let err = zoned
        .par_apply_rows("x", |row| Ok(row.datetime("t")?.and_utc().timestamp()))
        .unwrap_err();
    assert!(matches!(err, Error::DtypeMismatch { .. }), "{err}");
    // The typed path refuses them before any work.
    let err = zoned
        .par_apply_columns("x", ["t"], |t: NaiveDateTime| t.and_utc().timestamp())
        .unwrap_err();
    assert!(
        matches!(err, Error::DtypeMismatch { row: None, .. }),
        "{err}"
    );
}

#[test]
fn a_date_beyond_chronos_range_is_an_error_not_a_wrong_value() {
    let far = Int32Chunked::from_vec("d".into(), vec![0, i32::MAX]).into_date();
    let df = frame(vec![far.into_series()]);
    let err = df
        .par_apply_rows("y", |row| Ok(row.date("d")?.to_string()))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Row { row: 1, source } if source.to_string().contains("out of range")),
        "{err}"
    );
    let err = df
        .par_apply_columns("y", ["d"], |d: NaiveDate| d.to_string())
        .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

/// Categorical and enum columns (u8, u16 and u32 codes) read as `&str` through the row view and
/// the typed path, nulls included, equal to the same column as `String`; a non-string read of
/// one is a dtype mismatch naming `Categorical`.
#[test]
fn categorical_and_enum_columns_read_as_str() {
    use polars_flock::polars::prelude::{CategoricalPhysical, Categories, FrozenCategories};
    let words: Vec<Option<&str>> = (0..3_000)
        .map(|i| (i % 7 != 3).then(|| ["red", "green", "blue", "teal"][i % 4]))
        .collect();
    let strings = Series::new("s".into(), &words);
    let mut dtypes = vec![DataType::from_categories(Categories::global())];
    for physical in [
        CategoricalPhysical::U8,
        CategoricalPhysical::U16,
        CategoricalPhysical::U32,
    ] {
        dtypes.push(DataType::from_categories(Categories::new(
            "flock".into(),
            format!("{physical:?}").into(),
            physical,
        )));
    }
    let frozen = FrozenCategories::new(["red", "green", "blue", "teal"]).unwrap();
    dtypes.push(DataType::from_frozen_categories(frozen));
    for dtype in dtypes {
        let cats = strings.cast(&dtype).unwrap();
        // Two chunks, so that blocks cross an Arrow chunk boundary.
        let mut column = cats.slice(0, 1_234);
        column.append(&cats.slice(1_234, 3_000)).unwrap();
        let df = DataFrame::new(3_000, vec![column.into_column()]).unwrap();
        let flock = Flock::new().chunksize(500).threads(2);
        let out = flock
            .on(&df)
            .par_apply_rows("len", |row| Ok(row.opt_str("s")?.map(|s| s.len() as u32)))
            .unwrap();
        let typed = flock
            .on(&df)
            .par_apply_columns("upper", ["s"], |s: Option<&str>| s.map(str::to_uppercase))
            .unwrap();
        for (i, word) in words.iter().enumerate() {
            let len = out.column("len").unwrap().u32().unwrap().get(i);
            assert_eq!(len, word.map(|w| w.len() as u32), "{dtype:?} row {i}");
            let upper = typed
                .column("upper")
                .unwrap()
                .str()
                .unwrap()
                .get(i)
                .map(str::to_owned);
            assert_eq!(upper, word.map(str::to_uppercase), "{dtype:?} row {i}");
        }
        // A non-`Option` read meets the first null, at row 3.
        let err = df
            .par_apply_rows("x", |row| Ok(row.str("s")?.len() as u32))
            .unwrap_err();
        assert!(matches!(err, Error::NullValue { row: 3, .. }), "{err}");
        let err = df.par_apply_rows("x", |row| Ok(row.i64("s")?)).unwrap_err();
        assert!(matches!(err, Error::DtypeMismatch { .. }), "{err}");
    }
}
