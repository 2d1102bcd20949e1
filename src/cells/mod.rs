//! Typed cells: reading column values (the row view's getters, the typed path's column readers)
//! and writing output values into columns.

pub(crate) mod cell;
pub(crate) mod row;
#[cfg(feature = "dtypes")]
pub(crate) mod temporal;
pub(crate) mod value;
