//! Temporal cells and outputs (feature `dtypes`): Polars' `Date`, `Datetime` and `Duration` as
//! chrono's `NaiveDate`, `NaiveDateTime` / `DateTime<Utc>` and `TimeDelta`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use polars::prelude::*;
use polars_arrow::array::{Array, PrimitiveArray};
use polars_arrow::bitmap::Bitmap;

use crate::cell::{SlotData, sealed};
use crate::value::sealed as out;

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01 (Polars' day 0).
const EPOCH_FROM_CE: i32 = 719_163;

fn date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(EPOCH_FROM_CE)?)
}

fn instant(value: i64, unit: TimeUnit) -> Option<DateTime<Utc>> {
    match unit {
        TimeUnit::Nanoseconds => Some(DateTime::from_timestamp_nanos(value)),
        TimeUnit::Microseconds => DateTime::from_timestamp_micros(value),
        TimeUnit::Milliseconds => DateTime::from_timestamp_millis(value),
    }
}

fn delta(value: i64, unit: TimeUnit) -> Option<TimeDelta> {
    match unit {
        TimeUnit::Nanoseconds => Some(TimeDelta::nanoseconds(value)),
        TimeUnit::Microseconds => Some(TimeDelta::microseconds(value)),
        TimeUnit::Milliseconds => TimeDelta::try_milliseconds(value),
    }
}

/// The unit of a datetime or duration column (microseconds for any other dtype).
fn unit_of(dtype: &DataType) -> TimeUnit {
    match dtype {
        DataType::Datetime(unit, _) | DataType::Duration(unit) => *unit,
        _ => TimeUnit::Microseconds,
    }
}

/// Checks that the smallest and largest value of `series` convert (the values in between then do).
fn check_range<T>(
    series: &Series,
    convert: impl Fn(i64, TimeUnit) -> Option<T>,
) -> Result<(), String> {
    let unit = unit_of(series.dtype());
    let physical = series.to_physical_repr();
    let physical = physical.cast(&DataType::Int64).map_err(|e| e.to_string())?;
    let values = physical.i64().map_err(|e| e.to_string())?;
    for value in [values.min(), values.max()].into_iter().flatten() {
        if convert(value, unit).is_none() {
            return Err(format!(
                "value {value} is out of range for {}",
                std::any::type_name::<T>()
            ));
        }
    }
    Ok(())
}

macro_rules! temporal_cell {
    ($t:ty, $physical:ty, |$found:ident| $accepts:expr, $expected:expr,
     |$slot:ident, $i:ident| $from_slot:expr, |$v:ident, $unit:ident| $convert:expr) => {
        impl<'a> sealed::Sealed<'a> for $t {
            type Seg = (&'a [$physical], TimeUnit);
            const NULLABLE: bool = false;
            fn dtype() -> DataType {
                Self::expected(&DataType::Null)
            }
            fn accepts($found: &DataType) -> bool {
                $accepts
            }
            fn expected($found: &DataType) -> DataType {
                let _ = $found;
                $expected
            }
            fn check(series: &Series) -> Result<(), String> {
                check_range(series, |$v, $unit| {
                    let $v = <$physical>::try_from($v).ok()?;
                    $convert
                })
            }
            #[inline(always)]
            fn seg(
                array: &'a dyn Array,
                dtype: &'a DataType,
                offset: usize,
                len: usize,
            ) -> Self::Seg {
                let values = array
                    .as_any()
                    .downcast_ref::<PrimitiveArray<$physical>>()
                    .expect("dtype checked")
                    .values();
                (&values[offset..offset + len], unit_of(dtype))
            }
            #[inline(always)]
            fn get(seg: &Self::Seg, i: usize) -> Self {
                let ($v, $unit) = (seg.0[i], seg.1);
                // `check` has seen every value convert.
                ($convert).unwrap_or_default()
            }
            #[inline(always)]
            fn from_slot($slot: SlotData<'a>, $i: usize) -> Option<Self> {
                let ($v, $unit): ($physical, TimeUnit) = $from_slot?;
                $convert
            }
            fn null() -> Option<Self> {
                None
            }
        }

        impl<'a> sealed::Sealed<'a> for Option<$t> {
            type Seg = ((&'a [$physical], TimeUnit), Option<&'a Bitmap>, usize);
            const NULLABLE: bool = true;
            fn dtype() -> DataType {
                <$t as sealed::Sealed<'a>>::dtype()
            }
            fn accepts(found: &DataType) -> bool {
                <$t as sealed::Sealed<'a>>::accepts(found)
            }
            fn expected(found: &DataType) -> DataType {
                <$t as sealed::Sealed<'a>>::expected(found)
            }
            fn check(series: &Series) -> Result<(), String> {
                <$t as sealed::Sealed<'a>>::check(series)
            }
            #[inline(always)]
            fn seg(
                array: &'a dyn Array,
                dtype: &'a DataType,
                offset: usize,
                len: usize,
            ) -> Self::Seg {
                let validity = array.validity().filter(|_| array.null_count() > 0);
                (
                    <$t as sealed::Sealed<'a>>::seg(array, dtype, offset, len),
                    validity,
                    offset,
                )
            }
            #[inline(always)]
            fn get(seg: &Self::Seg, i: usize) -> Self {
                let valid = seg.1.is_none_or(|v| v.get_bit(seg.2 + i));
                valid.then(|| <$t as sealed::Sealed<'a>>::get(&seg.0, i))
            }
            #[inline(always)]
            fn from_slot(slot: SlotData<'a>, i: usize) -> Option<Self> {
                <$t as sealed::Sealed<'a>>::from_slot(slot, i).map(Some)
            }
            fn null() -> Option<Self> {
                Some(None)
            }
        }
    };
}

temporal_cell!(
    NaiveDate,
    i32,
    |found| found == &DataType::Date,
    DataType::Date,
    |slot, i| match slot {
        SlotData::Date(v) => Some((v[i], TimeUnit::Microseconds)),
        _ => None,
    },
    |v, _unit| date(v)
);

temporal_cell!(
    NaiveDateTime,
    i64,
    |found| matches!(found, DataType::Datetime(_, None)),
    DataType::Datetime(unit_of(found), None),
    |slot, i| match slot {
        SlotData::Datetime(v, unit, false) => Some((v[i], unit)),
        _ => None,
    },
    |v, unit| instant(v, unit).map(|t| t.naive_utc())
);

temporal_cell!(
    DateTime<Utc>,
    i64,
    |found| matches!(found, DataType::Datetime(_, Some(_))),
    DataType::Datetime(unit_of(found), Some(TimeZone::UTC)),
    |slot, i| match slot {
        SlotData::Datetime(v, unit, true) => Some((v[i], unit)),
        _ => None,
    },
    |v, unit| instant(v, unit)
);

temporal_cell!(
    TimeDelta,
    i64,
    |found| matches!(found, DataType::Duration(_)),
    DataType::Duration(unit_of(found)),
    |slot, i| match slot {
        SlotData::Duration(v, unit) => Some((v[i], unit)),
        _ => None,
    },
    |v, unit| delta(v, unit)
);

crate::cell::single_column!(
    NaiveDate,
    NaiveDateTime,
    DateTime<Utc>,
    TimeDelta,
    Option<NaiveDate>,
    Option<NaiveDateTime>,
    Option<DateTime<Utc>>,
    Option<TimeDelta>
);

// --- Outputs: microseconds for datetimes and durations, days for dates ---

fn days(value: NaiveDate) -> i32 {
    chrono::Datelike::num_days_from_ce(&value) - EPOCH_FROM_CE
}

fn micros(value: TimeDelta) -> i64 {
    // Beyond ±292,000 years a duration has no microsecond count: saturate, as Polars' casts do.
    value
        .num_microseconds()
        .unwrap_or(if value < TimeDelta::zero() {
            i64::MIN
        } else {
            i64::MAX
        })
}

macro_rules! temporal_value {
    ($t:ty, $physical:ty, $pl:ty, $dtype:expr, |$v:ident| $to_physical:expr, |$ca:ident| $logical:expr) => {
        impl out::Sealed for $t {
            type Builder = Vec<$physical>;
            fn dtype() -> DataType {
                $dtype
            }
            fn builder(capacity: usize) -> Self::Builder {
                Vec::with_capacity(capacity)
            }
            #[inline(always)]
            fn push(builder: &mut Self::Builder, $v: Self) {
                builder.push($to_physical);
            }
            fn len(builder: &Self::Builder) -> usize {
                builder.len()
            }
            fn finish(builder: Self::Builder, name: PlSmallStr) -> Series {
                let $ca = ChunkedArray::<$pl>::from_vec(name, builder);
                $logical
            }
            type Nullable = Option<Self>;
            fn some(self) -> Self::Nullable {
                Some(self)
            }
            fn null() -> Self::Nullable {
                None
            }
        }

        impl out::Sealed for Option<$t> {
            type Builder = (Vec<$physical>, polars_arrow::bitmap::MutableBitmap);
            fn dtype() -> DataType {
                $dtype
            }
            fn builder(capacity: usize) -> Self::Builder {
                (
                    Vec::with_capacity(capacity),
                    polars_arrow::bitmap::MutableBitmap::with_capacity(capacity),
                )
            }
            #[inline(always)]
            fn push(builder: &mut Self::Builder, value: Self) {
                builder.1.push(value.is_some());
                builder.0.push(match value {
                    Some($v) => $to_physical,
                    None => 0,
                });
            }
            fn len(builder: &Self::Builder) -> usize {
                builder.0.len()
            }
            fn finish(builder: Self::Builder, name: PlSmallStr) -> Series {
                let $ca = ChunkedArray::<$pl>::from_vec_validity(name, builder.0, builder.1.into());
                $logical
            }
            type Nullable = Self;
            fn some(self) -> Self::Nullable {
                self
            }
            fn null() -> Self::Nullable {
                None
            }
        }
    };
}

temporal_value!(
    NaiveDate,
    i32,
    Int32Type,
    DataType::Date,
    |v| days(v),
    |ca| ca.into_date().into_series()
);
temporal_value!(
    NaiveDateTime,
    i64,
    Int64Type,
    DataType::Datetime(TimeUnit::Microseconds, None),
    |v| v.and_utc().timestamp_micros(),
    |ca| ca.into_datetime(TimeUnit::Microseconds, None).into_series()
);
temporal_value!(
    DateTime<Utc>,
    i64,
    Int64Type,
    DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
    |v| v.timestamp_micros(),
    |ca| ca
        .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
        .into_series()
);
temporal_value!(
    TimeDelta,
    i64,
    Int64Type,
    DataType::Duration(TimeUnit::Microseconds),
    |v| micros(v),
    |ca| ca.into_duration(TimeUnit::Microseconds).into_series()
);
