//! What the compiler rejects, as compile-fail doctests: the data races that the README says are
//! ruled out by construction.

/// A closure capturing an `Rc` (not thread-safe) is rejected: closures must be `Sync`.
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
/// use polars_flock::prelude::*;
///
/// let offset = Rc::new(5u64);
/// let out = [1u64, 2, 3].par_apply_rows(|x| Ok(x + *offset));
/// ```
///
/// The same closure with an `Arc` compiles:
///
/// ```
/// use std::sync::Arc;
/// use polars_flock::prelude::*;
///
/// let offset = Arc::new(5u64);
/// let out = [1u64, 2, 3].par_apply_rows(|x| Ok(x + *offset))?;
/// assert_eq!(out, [6, 7, 8]);
/// # Ok::<(), polars_flock::Error>(())
/// ```
pub(crate) struct RcCaptured;

/// A connection that is `Send` but not `Sync` (like `rusqlite::Connection`; here a `RefCell`)
/// cannot be shared by all workers: each worker needs its own, through `*_per_worker`.
///
/// ```compile_fail,E0277
/// use std::cell::RefCell;
/// use polars_flock::prelude::*;
///
/// let connection = RefCell::new(Vec::new()); // Send, not Sync
/// let out = [1u64, 2, 3].par_apply_rows(|x| Ok(connection.borrow_mut().push(*x)));
/// ```
///
/// One per worker compiles:
///
/// ```
/// use std::cell::RefCell;
/// use polars_flock::prelude::*;
///
/// let out = [1u64, 2, 3].par_apply_rows_per_worker(
///     || Ok(RefCell::new(Vec::new())),
///     |connection, &x| {
///         connection.borrow_mut().push(x);
///         Ok(x)
///     },
/// )?;
/// assert_eq!(out, [1, 2, 3]);
/// # Ok::<(), polars_flock::Error>(())
/// ```
pub(crate) struct SharedConnection;

/// A [`Row`](crate::Row) cannot escape its closure: it borrows the block being run.
///
/// ```compile_fail,E0521
/// use std::sync::Mutex;
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
///
/// let df = df!("x" => [1i64, 2])?;
/// let kept: Mutex<Vec<&Row<'_>>> = Mutex::new(Vec::new());
/// df.par_apply_rows("y", |row| {
///     kept.lock().unwrap().push(row);
///     Ok(1i64)
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Values read from it can be kept:
///
/// ```
/// use std::sync::Mutex;
/// use polars_flock::polars::prelude::*;
/// use polars_flock::prelude::*;
///
/// let df = df!("x" => [1i64, 2])?;
/// let kept = Mutex::new(Vec::new());
/// df.par_apply_rows("y", |row| {
///     kept.lock().unwrap().push(row.i64("x")?);
///     Ok(1i64)
/// })?;
/// assert_eq!(kept.into_inner()?.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub(crate) struct RowEscapes;
