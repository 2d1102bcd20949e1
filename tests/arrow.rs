//! Arrow interop (feature `arrow`): round trips for every supported type, with nulls and sliced
//! arrays, zero-copy proven by buffer addresses, and `par_apply_*` over record batches equal to
//! the frame path.
#![cfg(feature = "arrow")]

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::*;
use arrow_schema::{DataType as ArrowType, TimeUnit};
use polars_flock::arrow::{Batches, batches_to_dataframe, to_dataframe, to_record_batches};
use polars_flock::polars::df;
use polars_flock::polars::prelude::{ChunkCompareIneq, DataFrame, DataType};
use polars_flock::prelude::*;
use polars_flock::{Error, Flock};

fn every_supported_type() -> RecordBatch {
    let strs = [
        Some("a"),
        None,
        Some("a longer string than twelve bytes"),
        Some(""),
        Some("z"),
    ];
    let bins: Vec<Option<&[u8]>> = vec![
        Some(b"x"),
        Some(b""),
        None,
        Some(b"0123456789abcdef"),
        Some(b"y"),
    ];
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "bool",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                None,
                Some(false),
                Some(true),
                Some(false),
            ])),
        ),
        (
            "i8",
            Arc::new(Int8Array::from(vec![
                Some(-128),
                Some(0),
                None,
                Some(127),
                Some(1),
            ])),
        ),
        (
            "i16",
            Arc::new(Int16Array::from(vec![
                Some(-300),
                None,
                Some(0),
                Some(300),
                Some(1),
            ])),
        ),
        (
            "i32",
            Arc::new(Int32Array::from(vec![
                None,
                Some(i32::MIN),
                Some(0),
                Some(i32::MAX),
                Some(1),
            ])),
        ),
        (
            "i64",
            Arc::new(Int64Array::from(vec![
                Some(i64::MIN),
                Some(0),
                Some(i64::MAX),
                None,
                Some(1),
            ])),
        ),
        (
            "u8",
            Arc::new(UInt8Array::from(vec![
                Some(0),
                Some(255),
                None,
                Some(1),
                Some(2),
            ])),
        ),
        (
            "u16",
            Arc::new(UInt16Array::from(vec![
                Some(0),
                None,
                Some(65_535),
                Some(1),
                Some(2),
            ])),
        ),
        (
            "u32",
            Arc::new(UInt32Array::from(vec![
                Some(0),
                Some(u32::MAX),
                Some(1),
                None,
                Some(2),
            ])),
        ),
        (
            "u64",
            Arc::new(UInt64Array::from(vec![
                None,
                Some(u64::MAX),
                Some(0),
                Some(1),
                Some(2),
            ])),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![
                Some(1.5),
                Some(f32::NAN),
                None,
                Some(-0.0),
                Some(2.0),
            ])),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![
                Some(1.5),
                None,
                Some(f64::INFINITY),
                Some(-2.25),
                Some(0.0),
            ])),
        ),
        ("utf8", Arc::new(StringArray::from(strs.to_vec()))),
        (
            "large_utf8",
            Arc::new(LargeStringArray::from(strs.to_vec())),
        ),
        ("utf8_view", Arc::new(StringViewArray::from(strs.to_vec()))),
        ("binary", Arc::new(BinaryArray::from(bins.clone()))),
        (
            "large_binary",
            Arc::new(LargeBinaryArray::from(bins.clone())),
        ),
        ("binary_view", Arc::new(BinaryViewArray::from(bins.clone()))),
        (
            "date32",
            Arc::new(Date32Array::from(vec![
                Some(0),
                Some(19_000),
                None,
                Some(-1),
                Some(20_000),
            ])),
        ),
        (
            "ts_ms",
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(0),
                None,
                Some(1_700_000_000_000),
                Some(-5),
                Some(1),
            ])),
        ),
        (
            "ts_us",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(1),
                Some(2),
                None,
                Some(3),
                Some(4),
            ])),
        ),
        (
            "ts_ns",
            Arc::new(TimestampNanosecondArray::from(vec![
                None,
                Some(2),
                Some(3),
                Some(4),
                Some(5),
            ])),
        ),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

/// The type a column has after a trip through Polars: strings and binary as views, the rest as is.
fn after_round_trip(t: &ArrowType) -> ArrowType {
    match t {
        ArrowType::Utf8 | ArrowType::LargeUtf8 => ArrowType::Utf8View,
        ArrowType::Binary | ArrowType::LargeBinary => ArrowType::BinaryView,
        other => other.clone(),
    }
}

/// Casts the view types back for comparing values (arrow-rs compares data type and values).
fn strings(a: &dyn Array) -> Vec<Option<String>> {
    match a.data_type() {
        ArrowType::Utf8 => a
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect(),
        ArrowType::LargeUtf8 => a
            .as_string::<i64>()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect(),
        ArrowType::Utf8View => a
            .as_string_view()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect(),
        ArrowType::Binary => a
            .as_binary::<i32>()
            .iter()
            .map(|s| s.map(|b| format!("{b:?}")))
            .collect(),
        ArrowType::LargeBinary => a
            .as_binary::<i64>()
            .iter()
            .map(|s| s.map(|b| format!("{b:?}")))
            .collect(),
        ArrowType::BinaryView => a
            .as_binary_view()
            .iter()
            .map(|s| s.map(|b| format!("{b:?}")))
            .collect(),
        other => panic!("not a string type: {other}"),
    }
}

fn assert_same_values(original: &dyn Array, back: &dyn Array, name: &str) {
    assert_eq!(
        back.data_type(),
        &after_round_trip(original.data_type()),
        "{name}"
    );
    assert_eq!(back.len(), original.len(), "{name}");
    if back.data_type() == original.data_type() {
        assert_eq!(back.to_data(), original.to_data(), "{name}");
    } else {
        assert_eq!(strings(back), strings(original), "{name}");
    }
}

#[test]
fn every_supported_type_round_trips_with_nulls() {
    let batch = every_supported_type();
    let df = to_dataframe(&batch).unwrap();
    assert_eq!(df.shape(), (5, batch.num_columns()));
    assert_eq!(df.column("i8").unwrap().dtype(), &DataType::Int8);
    assert_eq!(df.column("date32").unwrap().dtype(), &DataType::Date);
    assert_eq!(df.column("utf8").unwrap().null_count(), 1);
    let back = to_record_batches(&df).unwrap();
    assert_eq!(back.len(), 1);
    for (i, field) in batch.schema().fields().iter().enumerate() {
        assert_same_values(batch.column(i), back[0].column(i), field.name());
    }
    // And Polars reads the values it was given.
    assert_eq!(
        df.column("i64").unwrap().i64().unwrap().get(2),
        Some(i64::MAX)
    );
    assert_eq!(
        df.column("utf8_view").unwrap().str().unwrap().get(2),
        Some("a longer string than twelve bytes")
    );
}

#[test]
fn sliced_arrays_round_trip() {
    let batch = every_supported_type();
    for (offset, len) in [(1, 3), (2, 3), (4, 1), (0, 0), (5, 0)] {
        let sliced = batch.slice(offset, len);
        let df = to_dataframe(&sliced).unwrap();
        assert_eq!(df.height(), len);
        let back = to_record_batches(&df).unwrap();
        assert_eq!(back.iter().map(RecordBatch::num_rows).sum::<usize>(), len);
        for (i, field) in sliced.schema().fields().iter().enumerate() {
            assert_same_values(sliced.column(i), back[0].column(i), field.name());
        }
    }
}

#[test]
fn numeric_and_view_buffers_are_shared_both_ways() {
    let x = Float64Array::from((0..100_000).map(f64::from).collect::<Vec<_>>());
    let n = Int32Array::from((0..100_000).collect::<Vec<i32>>());
    let s = StringViewArray::from(
        (0..100_000)
            .map(|i| format!("a string longer than 12 bytes {i}"))
            .collect::<Vec<_>>(),
    );
    let batch = RecordBatch::try_from_iter([
        ("x", Arc::new(x.clone()) as ArrayRef),
        ("n", Arc::new(n.clone()) as ArrayRef),
        ("s", Arc::new(s.clone()) as ArrayRef),
    ])
    .unwrap();

    // Arrow → Polars: same addresses.
    let df = to_dataframe(&batch).unwrap();
    let px = df
        .column("x")
        .unwrap()
        .f64()
        .unwrap()
        .downcast_iter()
        .next()
        .unwrap()
        .values()
        .as_ptr();
    let pn = df
        .column("n")
        .unwrap()
        .i32()
        .unwrap()
        .downcast_iter()
        .next()
        .unwrap()
        .values()
        .as_ptr();
    let ps = df
        .column("s")
        .unwrap()
        .str()
        .unwrap()
        .downcast_iter()
        .next()
        .unwrap()
        .data_buffers()[0]
        .as_ptr();
    assert_eq!(px, x.values().as_ptr());
    assert_eq!(pn, n.values().as_ptr());
    assert_eq!(ps, s.data_buffers()[0].as_ptr());

    // Polars → Arrow: same addresses again.
    let back = to_record_batches(&df).unwrap();
    assert_eq!(
        back[0]
            .column(0)
            .as_primitive::<Float64Type>()
            .values()
            .as_ptr(),
        x.values().as_ptr()
    );
    assert_eq!(
        back[0]
            .column(1)
            .as_primitive::<Int32Type>()
            .values()
            .as_ptr(),
        n.values().as_ptr()
    );
    assert_eq!(
        back[0].column(2).as_string_view().data_buffers()[0].as_ptr(),
        s.data_buffers()[0].as_ptr()
    );

    // A sliced batch shares too, from the slice's offset.
    let sliced = to_dataframe(&batch.slice(1_000, 10)).unwrap();
    let chunk = sliced
        .column("x")
        .unwrap()
        .f64()
        .unwrap()
        .downcast_iter()
        .next()
        .unwrap()
        .values()
        .as_ptr();
    assert_eq!(chunk, x.values()[1_000..].as_ptr());
}

#[test]
fn par_apply_over_batches_equals_the_frame_path() {
    let batches: Vec<RecordBatch> = (0..7)
        .map(|b| {
            let n = Int64Array::from((0..1_000).map(|i| b * 1_000 + i).collect::<Vec<i64>>());
            RecordBatch::try_from_iter([("n", Arc::new(n) as ArrayRef)]).unwrap()
        })
        .collect();
    for threads in [1, 2, 5] {
        let flock = Flock::new().chunksize(333).threads(threads);
        let out = flock
            .on(&Batches(&batches))
            .par_apply_rows("sq", |row| Ok(row.i64("n")? * 3))
            .unwrap();
        let df = batches_to_dataframe(&out).unwrap();
        let expected = batches_to_dataframe(&batches)
            .unwrap()
            .par_apply_rows("sq", |row| Ok(row.i64("n")? * 3))
            .unwrap();
        assert!(df.equals_missing(&expected));
        // The output leaves zero-copy, one batch per run of aligned chunks.
        assert!(out.len() >= 7);
        let sq: Vec<i64> = out
            .iter()
            .flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(sq, (0..7_000).map(|i| i * 3).collect::<Vec<i64>>());

        let kept = flock
            .on(&Batches(&batches))
            .par_apply_blocks(|block| {
                let mask = block.column("n")?.i64()?.lt(10);
                Ok(block.filter(&mask)?)
            })
            .unwrap();
        assert_eq!(kept.iter().map(RecordBatch::num_rows).sum::<usize>(), 10);
    }
}

#[test]
fn unsupported_types_and_mismatched_batches_are_errors() {
    let dec = Decimal128Array::from(vec![1, 2])
        .with_precision_and_scale(10, 2)
        .unwrap();
    let batch = RecordBatch::try_from_iter([("amount", Arc::new(dec) as ArrayRef)]).unwrap();
    let err = to_dataframe(&batch).unwrap_err();
    assert!(
        matches!(&err, Error::Arrow { column, .. } if column == "amount"),
        "{err}"
    );

    let a = RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1])) as ArrayRef)])
        .unwrap();
    let b =
        RecordBatch::try_from_iter([("n", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef)])
            .unwrap();
    let err = batches_to_dataframe(&[a.clone(), a, b]).unwrap_err();
    assert!(
        matches!(err, Error::SchemaMismatch { block: 2, .. }),
        "{err}"
    );
}

#[test]
fn empty_and_columnless_frames_keep_their_shape() {
    let df = df!("x" => Vec::<f64>::new(), "s" => Vec::<String>::new()).unwrap();
    let batches = to_record_batches(&df).unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].num_rows(), 0);
    assert_eq!(
        batches[0].schema().field(1).data_type(),
        &ArrowType::Utf8View
    );
    let back = batches_to_dataframe(&batches).unwrap();
    assert_eq!(back.schema(), df.schema());

    let none = DataFrame::empty_with_height(3);
    let batches = to_record_batches(&none).unwrap();
    assert_eq!((batches[0].num_rows(), batches[0].num_columns()), (3, 0));
    assert_eq!(to_dataframe(&batches[0]).unwrap().height(), 3);
    let _ = TimeUnit::Second;
}

#[test]
fn a_null_column_round_trips_through_every_path() {
    let batch = RecordBatch::try_from_iter([
        ("x", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
        ("n", Arc::new(NullArray::new(3)) as ArrayRef),
    ])
    .unwrap();
    let df = to_dataframe(&batch).unwrap();
    assert_eq!(df.column("n").unwrap().dtype(), &DataType::Null);
    let back = to_record_batches(&df).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].column(1).data_type(), &ArrowType::Null);
    assert_eq!(back[0].column(1).len(), 3);
    let out = batch.par_apply_rows("y", |row| Ok(row.i64("x")?)).unwrap();
    let last = out.last().unwrap();
    assert_eq!(
        last.column_by_name("n").unwrap().data_type(),
        &ArrowType::Null
    );
    assert_eq!(last.num_rows(), 3);
}

#[test]
fn a_tuple_output_adds_columns_to_record_batches() {
    let n = Int64Array::from((0..100).collect::<Vec<i64>>());
    let batch = RecordBatch::try_from_iter([("n", Arc::new(n) as ArrayRef)]).unwrap();
    let out = Flock::new()
        .chunksize(30)
        .on(&batch)
        .par_apply_rows(["half", "odd"], |row| {
            let n = row.i64("n")?;
            Ok((n / 2, n % 2 == 1))
        })
        .unwrap();
    assert_eq!(out.len(), 4);
    let last = out.last().unwrap();
    assert_eq!(last.num_columns(), 3);
    let half = last
        .column_by_name("half")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(half.value(half.len() - 1), 49);
}
