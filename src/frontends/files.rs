//! Many files: a list of paths (from a directory, a glob or your own list) with parallel apply
//! over the files, each error naming its file.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::concat::{FirstSchema, keep_same_schema, vstack_all};
use crate::control::{Failure, Report, Unit};
use crate::error::{BoxError, Error, Result, UserCode};
use crate::exec::{
    Block, Discarded, StateSource, Stateless, contain, run_blocks_stateful, run_keep_going,
};
use crate::view::{KeepGoing, On, PerWorker, default_flock};

/// The input files of an ETL job, in a stable order: apply a function to each in parallel, and
/// get the results (or the concatenated frames) back in that order.
///
/// [`in_dir`](Files::in_dir) and [`glob`](Files::glob) sort the paths, so that the order, and
/// therefore the output, does not depend on the file system; [`new`](Files::new) keeps the order
/// given. Every failure names its file ([`Error::InFile`]). `flock.on(&files)` runs the same
/// verbs with options ([`Flock::on`](crate::Flock::on); the chunk size counts files), and
/// [`keep_going`](Files::keep_going) leaves failing files out instead of failing the call.
///
/// # Examples
///
/// ```
/// use polars_flock::Files;
///
/// let dir = tempfile::tempdir()?;
/// for (name, body) in [("b.txt", "22"), ("a.txt", "1"), ("c.log", "333")] {
///     std::fs::write(dir.path().join(name), body)?;
/// }
/// let files = Files::in_dir(dir.path(), Some("txt"))?;
/// assert_eq!(files.len(), 2);
/// let sizes = files.par_apply(|path| Ok(std::fs::read_to_string(path)?.len()))?;
/// assert_eq!(sizes, [1, 2]); // a.txt, then b.txt
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Files {
    paths: Vec<PathBuf>,
}

impl Files {
    /// These paths, in this order.
    ///
    /// # Examples
    ///
    /// ```
    /// let files = polars_flock::Files::new(["b.csv", "a.csv"]);
    /// assert_eq!(files.paths()[0].to_str(), Some("b.csv"));
    /// ```
    pub fn new(paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        Self {
            paths: paths.into_iter().map(Into::into).collect(),
        }
    }

    /// The files directly in `dir` (not in subdirectories), with extension `extension` if given
    /// (without the dot, compared case-sensitively), sorted by path. Symbolic links are followed,
    /// as in [`glob`](Files::glob): a link to a file is listed (under the link's path), a broken
    /// link or a link to a directory is not.
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] naming `dir` (or an entry), with an [`Error::Io`], if it cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("x.csv"), "a\n1\n")?;
    /// std::fs::create_dir(dir.path().join("sub.csv"))?; // a directory: not listed
    /// let files = polars_flock::Files::in_dir(dir.path(), Some("csv"))?;
    /// assert_eq!(files.paths(), [dir.path().join("x.csv")]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn in_dir(dir: impl AsRef<Path>, extension: Option<&str>) -> Result<Self> {
        let dir = dir.as_ref();
        let file_error =
            |path: &Path, source: std::io::Error| Error::in_file(path, Error::Io(source));
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| file_error(dir, e))? {
            let entry = entry.map_err(|e| file_error(dir, e))?;
            let path = entry.path();
            // Links are followed, as `glob` does: the same directory lists the same files either
            // way (a broken link is no file).
            let is_file = path.is_file();
            let wanted = extension.is_none_or(|ext| path.extension().is_some_and(|e| e == ext));
            if is_file && wanted {
                paths.push(path);
            }
        }
        paths.sort();
        Ok(Self { paths })
    }

    /// The files matching a glob `pattern` (e.g. `"data/2024-*/*.csv"`, `**` for any depth),
    /// sorted by path. Symbolic links are followed, as in [`in_dir`](Files::in_dir).
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] with an [`Error::Io`], naming the pattern if it is not a valid glob
    /// (`InvalidInput`), or naming a path that could not be read while matching.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// std::fs::create_dir(dir.path().join("2024"))?;
    /// std::fs::write(dir.path().join("2024/q1.csv"), "a\n1\n")?;
    /// std::fs::write(dir.path().join("top.csv"), "a\n2\n")?;
    /// let pattern = format!("{}/**/*.csv", dir.path().display());
    /// let files = polars_flock::Files::glob(&pattern)?;
    /// assert_eq!(files.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn glob(pattern: &str) -> Result<Self> {
        let matches = glob::glob(pattern).map_err(|e| {
            let invalid = std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
            Error::in_file(Path::new(pattern), Error::Io(invalid))
        })?;
        let mut paths = Vec::new();
        for entry in matches {
            let path = entry.map_err(|e| {
                let path = e.path().to_path_buf();
                Error::in_file(&path, Error::Io(e.into()))
            })?;
            if path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        Ok(Self { paths })
    }

    /// The paths, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(polars_flock::Files::new(["a"]).paths().ends_with(&["a".into()]));
    /// ```
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// How many files.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(polars_flock::Files::new(["a", "b"]).len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether there are no files.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(polars_flock::Files::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Calls `f` on every file in parallel and returns the results in file order: read → transform
    /// → write one output per input, or anything else per file. `f` returns
    /// `Result<U, BoxError>`: `?` works on any error.
    ///
    /// Reading files is IO: for many small files on a fast disk the default (Polars' pool) is
    /// right; for slow storage (network file systems, object stores) use a pool with more threads
    /// than cores: `Flock::new().threads(8).on(&files).par_apply(f)`.
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] with the path, its `source` [`Error::Closure`] (`f`'s error) or
    /// [`Error::Panicked`], for the first failing file in order; no new file starts after a
    /// failure. Options and stops as for every call.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("a.num"), "1")?;
    /// std::fs::write(dir.path().join("b.num"), "x")?;
    /// let files = Files::in_dir(dir.path(), Some("num"))?;
    /// let err = files
    ///     .par_apply(|path| Ok(std::fs::read_to_string(path)?.parse::<i64>()?))
    ///     .unwrap_err();
    /// let Error::InFile { path, source } = err else { panic!() };
    /// assert!(path.ends_with("b.num"));
    /// let Error::Closure { source } = *source else { panic!() };
    /// assert!(source.downcast_ref::<std::num::ParseIntError>().is_some());
    ///
    /// let io_pool = Flock::new().threads(8).chunksize(1); // IO-bound: more threads than cores
    /// let sizes = io_pool.on(&files).par_apply(|p| Ok(std::fs::metadata(p)?.len()))?;
    /// assert_eq!(sizes, [1, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply<U, F>(&self, f: F) -> Result<Vec<U>>
    where
        U: Send,
        F: Fn(&Path) -> std::result::Result<U, BoxError> + Sync,
    {
        default_flock().on(self).par_apply(f)
    }

    /// [`par_apply`](Files::par_apply) with a per-worker state, such as a connection to load the
    /// files into: an `init` closure or `&`[`Workers`](crate::Workers) (see
    /// [`PerWorker`](crate::PerWorker)).
    ///
    /// # Errors
    ///
    /// As [`par_apply`](Files::par_apply), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let files = Files::new(["a", "bb", "ccc"]);
    /// let lens = files.par_apply_per_worker(|| Ok(String::new()), |buffer, p| {
    ///     buffer.clear(); // a scratch buffer per worker, reused for every file
    ///     buffer.push_str(&p.to_string_lossy());
    ///     Ok(buffer.len())
    /// })?;
    /// assert_eq!(lens, [1, 2, 3]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_per_worker<S, W, U, F>(&self, workers: W, f: F) -> Result<Vec<U>>
    where
        S: Send,
        W: PerWorker<S>,
        U: Send,
        F: Fn(&mut S, &Path) -> std::result::Result<U, BoxError> + Sync,
    {
        default_flock().on(self).par_apply_per_worker(workers, f)
    }

    /// Reads every file into a frame in parallel (`read` is yours: CSV, Parquet, JSON, with any
    /// options) and concatenates the frames in file order, without copying them.
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] naming the first failing file, or the first file whose frame has a schema
    /// unlike the first file's (its `source` is an [`Error::SchemaMismatch`]). Options and stops as
    /// for every call. No files give an empty frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let dir = tempfile::tempdir()?;
    /// for i in 0..3 {
    ///     std::fs::write(dir.path().join(format!("part-{i}.txt")), format!("{i}\n{}\n", i * 10))?;
    /// }
    /// let df = Files::in_dir(dir.path(), Some("txt"))?.par_concat(|path| {
    ///     let text = std::fs::read_to_string(path)?;
    ///     let values = text.lines().map(str::parse).collect::<Result<Vec<i64>, _>>()?;
    ///     Ok(df!("v" => values)?)
    /// })?;
    /// let v: Vec<i64> = df.column("v")?.i64()?.into_no_null_iter().collect();
    /// assert_eq!(v, [0, 0, 1, 10, 2, 20]);
    ///
    /// let files = Files::new(["one", "two"]);
    /// let err = Flock::new().chunksize(1).on(&files)
    ///     .par_concat(|p| Ok(if p.ends_with("two") { df!("b" => [1i64])? } else { df!("a" => [1i64])? }))
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::InFile { ref path, ref source }
    ///     if path.ends_with("two") && matches!(**source, Error::SchemaMismatch { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_concat<F>(&self, read: F) -> Result<DataFrame>
    where
        F: Fn(&Path) -> std::result::Result<DataFrame, BoxError> + Sync,
    {
        default_flock().on(self).par_concat(read)
    }

    /// Keep-going mode: a file that fails (or panics, or for [`par_concat`](KeepGoing::par_concat)
    /// has another schema) is left out and listed in the [`Report`] with its path, so one bad
    /// file of 6,000 does not discard the rest.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let files = Files::new(["1", "x", "3"]);
    /// let (out, report) = files.keep_going().par_apply(|p| Ok(p.to_str().unwrap().parse::<i32>()?))?;
    /// assert_eq!(out, [Some(1), None, Some(3)]);
    /// assert!(matches!(&report.failures[0].unit, Unit::File { file: 1, path } if path.ends_with("x")));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn keep_going(&self) -> KeepGoing<'_, Files> {
        KeepGoing {
            input: self,
            flock: default_flock(),
        }
    }

    /// The async view of these files (feature `async`): [`par_apply`](crate::io::Io::par_apply)
    /// with an async closure, for files that wait on a network share or an object store; see
    /// [`io`](crate::io).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let files = Files::new(["a.csv", "b.csv"]);
    /// let names = files.io().par_apply(async |p| Ok(p.display().to_string())).wait()?;
    /// assert_eq!(names, ["a.csv", "b.csv"]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    #[cfg(feature = "async")]
    pub fn io(&self) -> crate::io::Io<'_, Files> {
        crate::io::Io {
            input: self,
            flock: default_flock(),
        }
    }

    /// Runs `f` on file `index` with its worker's `state`, under the guard: its output, or its
    /// error in the file's context (a panic poisons the state).
    fn file<S, U>(
        &self,
        block: &Block,
        index: usize,
        state: &mut S,
        states: &(impl StateSource<S> + ?Sized),
        f: &impl Fn(&mut S, &Path) -> std::result::Result<U, BoxError>,
    ) -> Result<U> {
        let path = &self.paths[index];
        block.enter_row(index);
        match contain(|| block.attempt(state, states, |state| f(state, path))) {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(file_error(path, e)),
            Err(panic) => {
                block.poison();
                Err(Error::in_file(
                    path,
                    block.panicked(panic, UserCode::Closure),
                ))
            }
        }
    }

    fn mismatch(&self, index: usize, expected: SchemaRef, out: &DataFrame) -> Error {
        let mismatch = Error::SchemaMismatch {
            block: index,
            rows: index..index + 1,
            expected,
            found: out.schema().clone(),
        };
        Error::in_file(&self.paths[index], mismatch)
    }

    fn unit(&self, index: usize) -> Unit {
        Unit::File {
            file: index,
            path: self.paths[index].clone(),
        }
    }
}

/// A file closure's error in the file's context: one already naming this file (e.g. from
/// `parquet::read_parquet`) is not wrapped twice.
pub(crate) fn file_error(path: &Path, error: BoxError) -> Error {
    match Error::of_closure(error) {
        Error::InFile {
            path: named,
            source,
        } if named == *path => Error::InFile {
            path: named,
            source,
        },
        other => Error::in_file(path, other),
    }
}

/// [`Files`] verbs with options: `flock.on(&files)`.
impl On<'_, Files> {
    /// [`Files::par_apply`] with these options (the chunk size counts files).
    ///
    /// # Errors
    ///
    /// As [`Files::par_apply`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let files = Files::new(["a", "bb", "ccc"]);
    /// let lens = Flock::new().threads(3).on(&files).par_apply(|p| Ok(p.as_os_str().len()))?;
    /// assert_eq!(lens, [1, 2, 3]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply<U, F>(&self, f: F) -> Result<Vec<U>>
    where
        U: Send,
        F: Fn(&Path) -> std::result::Result<U, BoxError> + Sync,
    {
        self.apply(&Stateless, |(), path| f(path))
    }

    /// [`Files::par_apply_per_worker`] with these options.
    ///
    /// # Errors
    ///
    /// As [`Files::par_apply_per_worker`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let files = Files::new((0..20).map(|i| format!("{i}.csv")));
    /// let workers = Workers::new(|| Ok(0usize)); // e.g. a database connection
    /// let names = Flock::new().threads(4).chunksize(1).on(&files).par_apply_per_worker(&workers, |loaded, p| {
    ///     *loaded += 1;
    ///     Ok(p.display().to_string())
    /// })?;
    /// assert_eq!(names[19], "19.csv");
    /// assert!(workers.inits() <= 4);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_per_worker<S, W, U, F>(&self, workers: W, f: F) -> Result<Vec<U>>
    where
        S: Send,
        W: PerWorker<S>,
        U: Send,
        F: Fn(&mut S, &Path) -> std::result::Result<U, BoxError> + Sync,
    {
        self.apply(&workers, f)
    }

    fn apply<S, U, F>(&self, states: &(impl StateSource<S> + ?Sized), f: F) -> Result<Vec<U>>
    where
        S: Send,
        U: Send,
        F: Fn(&mut S, &Path) -> std::result::Result<U, BoxError> + Sync,
    {
        let files = self.input;
        let plan = self.flock.plan(files.len())?;
        let parts = run_blocks_stateful(
            self.flock,
            &plan,
            states,
            |block, state| {
                let mut outputs = Discarded::new(Vec::with_capacity(block.rows.len()));
                for index in block.rows.clone() {
                    outputs.push(files.file(block, index, state, states, &f)?);
                }
                Ok(outputs.keep())
            },
            |_, _, _| Ok(()),
        )?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// [`Files::par_concat`] with these options (the chunk size counts files).
    ///
    /// # Errors
    ///
    /// As [`Files::par_concat`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let files = Files::new(["a", "b"]);
    /// let df = Flock::new().chunksize(1).on(&files).par_concat(|p| Ok(df!("name" => [p.to_str()])?))?;
    /// assert_eq!(df.height(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_concat<F>(&self, read: F) -> Result<DataFrame>
    where
        F: Fn(&Path) -> std::result::Result<DataFrame, BoxError> + Sync,
    {
        let files = self.input;
        let plan = self.flock.plan(files.len())?;
        let mut first = FirstSchema::default();
        let parts = run_blocks_stateful(
            self.flock,
            &plan,
            &Stateless,
            |block, ()| {
                let mut outputs = Discarded::new(Vec::with_capacity(block.rows.len()));
                for index in block.rows.clone() {
                    let read = &|(): &mut (), p: &Path| read(p);
                    outputs.push(files.file(block, index, &mut (), &Stateless, read)?);
                }
                Ok(outputs.keep())
            },
            |_, rows, outputs: &Vec<DataFrame>| {
                for (index, out) in rows.zip(outputs) {
                    (first.check(out.schema()))
                        .map_err(|expected| files.mismatch(index, expected, out))?;
                }
                Ok(())
            },
        )?;
        Ok(vstack_all(parts.into_iter().flatten())?.unwrap_or_default())
    }

    /// Keep-going mode with these options (see [`Files::keep_going`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let files = Files::new(["1", "2"]);
    /// let (out, report) = Flock::new().chunksize(1).on(&files).keep_going().par_apply(|p| Ok(p.as_os_str().len()))?;
    /// assert_eq!(out, [Some(1), Some(1)]);
    /// assert!(report.is_complete());
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn keep_going(&self) -> KeepGoing<'_, Files> {
        KeepGoing {
            input: self.input,
            flock: self.flock,
        }
    }

    /// [`Files::io`] with these options.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    /// let files = Files::new((0..100).map(|i| format!("{i}.parquet")));
    /// let lens = Flock::new()
    ///     .concurrency(10)
    ///     .on(&files)
    ///     .io()
    ///     .par_apply(async |p| Ok(p.as_os_str().len()))
    ///     .wait()?;
    /// assert_eq!(lens[99], 10);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    #[cfg(feature = "async")]
    pub fn io(&self) -> crate::io::Io<'_, Files> {
        crate::io::Io {
            input: self.input,
            flock: self.flock,
        }
    }
}

/// Keep-going verbs on [`Files`]: a failing file is left out, listed in the [`Report`] with its
/// path ([`Unit::File`]) and its error ([`Error::InFile`]).
impl KeepGoing<'_, Files> {
    /// [`Files::par_apply`] that keeps going: one output per file, `None` for a file that failed
    /// (or that a stop kept from running: see [`Report::skipped`], in file indices).
    ///
    /// # Errors
    ///
    /// Only what fails the call as a whole: the options' errors and a panicking progress
    /// callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let files = Files::new(["a", "b", "c"]);
    /// let (out, report) = files.keep_going().par_apply(|p| {
    ///     if p.ends_with("b") { return Err("unreadable".into()); }
    ///     Ok(p.to_path_buf())
    /// })?;
    /// assert_eq!(out.iter().flatten().count(), 2);
    /// assert!(matches!(report.failures[0].error, Error::InFile { ref path, .. } if path.ends_with("b")));
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply<U, F>(&self, f: F) -> Result<(Vec<Option<U>>, Report)>
    where
        U: Send,
        F: Fn(&Path) -> std::result::Result<U, BoxError> + Sync,
    {
        let (parts, report) = self.run(&Stateless, &|(), p: &Path| f(p))?;
        Ok((parts.into_iter().flatten().collect(), report))
    }

    /// [`Files::par_apply_per_worker`] that keeps going (see [`par_apply`](KeepGoing::par_apply)).
    /// A state whose closure panicked is dropped, and its worker makes a new one.
    ///
    /// # Errors
    ///
    /// As [`par_apply`](KeepGoing::par_apply), plus [`Error::Init`].
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::prelude::*;
    ///
    /// let files = Files::new(["1", "x"]);
    /// let (out, report) = files.keep_going().par_apply_per_worker(|| Ok(()), |(), p| {
    ///     Ok(p.to_str().unwrap().parse::<i32>()?)
    /// })?;
    /// assert_eq!(out, [Some(1), None]);
    /// assert_eq!(report.failures.len(), 1);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn par_apply_per_worker<S, W, U, F>(
        &self,
        workers: W,
        f: F,
    ) -> Result<(Vec<Option<U>>, Report)>
    where
        S: Send,
        W: PerWorker<S>,
        U: Send,
        F: Fn(&mut S, &Path) -> std::result::Result<U, BoxError> + Sync,
    {
        let (parts, report) = self.run(&workers, &f)?;
        Ok((parts.into_iter().flatten().collect(), report))
    }

    /// [`Files::par_concat`] that keeps going: a file that fails, or whose frame's schema differs
    /// from the first good file's, is left out.
    ///
    /// # Errors
    ///
    /// As [`par_apply`](KeepGoing::par_apply).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::prelude::*;
    ///
    /// let files = Files::new(["1", "x", "3"]);
    /// let (df, report) = files.keep_going().par_concat(|p| {
    ///     let v: i64 = p.to_str().unwrap().parse()?;
    ///     Ok(df!("v" => [v])?)
    /// })?;
    /// assert_eq!(df.height(), 2);
    /// assert_eq!(report.failures.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_concat<F>(&self, read: F) -> Result<(DataFrame, Report)>
    where
        F: Fn(&Path) -> std::result::Result<DataFrame, BoxError> + Sync,
    {
        let files = self.input;
        let (parts, mut report) = self.run(&Stateless, &|(), p: &Path| read(p))?;
        let outputs = (parts.into_iter().flatten().enumerate())
            .filter_map(|(index, out)| Some((index, out?)));
        let kept = keep_same_schema(outputs, &mut report, |index, expected, out| Failure {
            error: files.mismatch(index, expected, out),
            unit: files.unit(index),
            attempts: 1,
        });
        Ok((vstack_all(kept)?.unwrap_or_default(), report))
    }

    fn run<S: Send, U: Send>(
        &self,
        states: &(impl StateSource<S> + ?Sized),
        f: &(impl Fn(&mut S, &Path) -> std::result::Result<U, BoxError> + Sync),
    ) -> Result<(Vec<Vec<Option<U>>>, Report)> {
        let files = self.input;
        let plan = self.flock.plan(files.len())?;
        run_keep_going(
            self.flock,
            &plan,
            states,
            |block, state, units| {
                Ok((block.rows.clone())
                    .map(|index| {
                        units.unit(
                            block,
                            index,
                            || files.unit(index),
                            || files.file(block, index, &mut *state, states, f),
                            |e| e,
                        )
                    })
                    .collect())
            },
            |rows| rows.map(|_| None).collect(),
        )
    }
}
