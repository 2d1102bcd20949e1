//! The extension traits and the [`Row`] view, for `use polars_flock::prelude::*;`.
//!
//! # Examples
//!
//! ```
//! use polars_flock::prelude::*;
//!
//! let squares = vec![1u64, 2, 3].par_apply_rows(|x| x * x)?;
//! assert_eq!(squares, [1, 4, 9]);
//! # Ok::<(), polars_flock::Error>(())
//! ```

pub use crate::frame::DataFrameParApply;
pub use crate::row::Row;
pub use crate::slice::SliceParApply;

#[cfg(feature = "arrow")]
pub use crate::arrow::RecordBatchParApply;
