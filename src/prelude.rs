//! Everything a call needs, for `use polars_flock::prelude::*;`: the extension traits, the
//! [`Row`] view, the options ([`Flock`]), per-worker states ([`Workers`]), [`Files`], the error
//! types and the keep-going [`Report`]. No name here clashes with Polars' prelude.
//!
//! # Examples
//!
//! ```
//! use polars_flock::prelude::*;
//!
//! let squares = vec![1u64, 2, 3].par_apply_rows(|x| Ok(x * x))?;
//! assert_eq!(squares, [1, 4, 9]);
//! let cubes = Flock::new().chunksize(1).on(&squares).par_apply_rows(|&x| Ok(x * x * x))?;
//! assert_eq!(cubes, [1, 64, 729]);
//! # Ok::<(), polars_flock::Error>(())
//! ```

pub use crate::control::{CancelToken, Failure, Report, Unit};
pub use crate::error::{BoxError, Error};
pub use crate::files::Files;
pub use crate::flock::Flock;
pub use crate::frame::DataFrameParApply;
pub use crate::row::Row;
pub use crate::slice::SliceParApply;
pub use crate::workers::Workers;

#[cfg(feature = "arrow")]
pub use crate::arrow::RecordBatchParApply;

#[cfg(feature = "streaming")]
pub use crate::streaming::StreamParApply;
