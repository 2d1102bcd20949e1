//! Front-ends: one per kind of input (frames, slices, files, Arrow batches, streams), each turning
//! a call into a plan of blocks and a task per block for the executor, and the outputs back into
//! the caller's type.

#[cfg(feature = "arrow")]
pub mod arrow;
pub(crate) mod files;
pub(crate) mod fold;
pub(crate) mod frame;
pub(crate) mod group;
#[cfg(feature = "async")]
pub mod io;
#[cfg(feature = "parquet")]
pub mod parquet;
pub(crate) mod slice;
#[cfg(feature = "streaming")]
pub(crate) mod stream;
#[cfg(feature = "streaming")]
pub mod streaming;
