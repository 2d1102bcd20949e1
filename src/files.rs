//! Many files: a list of paths (from a directory, a glob or your own list) with parallel apply
//! over the files, each error naming its file.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::concat::{FirstSchema, vstack_all};
use crate::error::UserCode;
use crate::error::{BoxError, Error, Result};
use crate::exec::{Discarded, Stateless, contain, run_blocks_stateful};
use crate::flock::Flock;

/// The input files of an ETL job, in a stable order: apply a function to each in parallel, and
/// get the results (or the concatenated frames) back in that order.
///
/// [`in_dir`](Files::in_dir) and [`glob`](Files::glob) sort the paths, so that the order, and
/// therefore the output, does not depend on the file system; [`new`](Files::new) keeps the order
/// given. Every failure names its file ([`Error::File`]).
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
/// let sizes = files.par_apply(|path| std::fs::read_to_string(path).map(|s| s.len()))?;
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
    /// [`Error::File`] naming `dir` (or an entry) if it cannot be read.
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
        let file_error = |path: &Path, source: std::io::Error| Error::File {
            path: path.to_path_buf(),
            source: Box::new(source),
        };
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
    /// [`Error::File`] naming the pattern if it is not a valid glob, or naming a path that could
    /// not be read while matching.
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
        let matches = glob::glob(pattern).map_err(|source| Error::File {
            path: PathBuf::from(pattern),
            source: Box::new(source),
        })?;
        let mut paths = Vec::new();
        for entry in matches {
            let path = entry.map_err(|e| Error::File {
                path: e.path().to_path_buf(),
                source: Box::new(std::io::Error::from(e)),
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
    /// → write one output per input, or anything else per file.
    ///
    /// Reading files is IO: for many small files on a fast disk the default (Polars' pool) is
    /// right; for slow storage (network file systems, object stores) use a pool with more threads
    /// than cores ([`Flock::threads`]).
    ///
    /// # Errors
    ///
    /// [`Error::File`] with the path and `f`'s error (or an [`Error::Panicked`]) for the first failing
    /// file in order; no new file starts after a failure. Options and stops as for every call.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::{Error, Files};
    ///
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("a.num"), "1")?;
    /// std::fs::write(dir.path().join("b.num"), "x")?;
    /// let files = Files::in_dir(dir.path(), Some("num"))?;
    /// let err = files
    ///     .par_apply(|path| -> Result<i64, polars_flock::BoxError> {
    ///         Ok(std::fs::read_to_string(path)?.parse::<i64>()?)
    ///     })
    ///     .unwrap_err();
    /// let Error::File { path, .. } = err else { panic!() };
    /// assert!(path.ends_with("b.num"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply<U, E, F>(&self, f: F) -> Result<Vec<U>>
    where
        U: Send,
        E: Into<BoxError>,
        F: Fn(&Path) -> std::result::Result<U, E> + Sync,
    {
        self.par_apply_with(&Flock::new(), f)
    }

    /// [`par_apply`](Files::par_apply) with explicit options; the chunk size counts files.
    ///
    /// # Errors
    ///
    /// As [`par_apply`](Files::par_apply).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::{Files, Flock};
    ///
    /// let dir = tempfile::tempdir()?;
    /// for i in 0..20 {
    ///     std::fs::write(dir.path().join(format!("{i:02}.txt")), "x".repeat(i))?;
    /// }
    /// let io_pool = Flock::new().threads(8).chunksize(1); // IO-bound: more threads than cores
    /// let sizes = Files::in_dir(dir.path(), Some("txt"))?
    ///     .par_apply_with(&io_pool, |p| std::fs::metadata(p).map(|m| m.len()))?;
    /// assert_eq!(sizes, (0..20).collect::<Vec<u64>>());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_apply_with<U, E, F>(&self, flock: &Flock, f: F) -> Result<Vec<U>>
    where
        U: Send,
        E: Into<BoxError>,
        F: Fn(&Path) -> std::result::Result<U, E> + Sync,
    {
        let outputs = self.run(flock, f, |_, _, _| Ok(()))?;
        Ok(outputs.into_iter().flatten().collect())
    }

    /// Reads every file into a frame with `read` (and transforms it) in parallel, and
    /// concatenates the frames in file order, zero-copy (one chunk per file at least).
    ///
    /// # Errors
    ///
    /// [`Error::File`] naming the first failing file, or the first file whose frame has a schema
    /// unlike the first file's (its `source` is an [`Error::SchemaMismatch`]). Options and stops as
    /// for every call. No files give an empty frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::Files;
    ///
    /// let dir = tempfile::tempdir()?;
    /// for i in 0..3 {
    ///     std::fs::write(dir.path().join(format!("part-{i}.txt")), format!("{i}\n{}\n", i * 10))?;
    /// }
    /// let df = Files::in_dir(dir.path(), Some("txt"))?.par_concat(|path| {
    ///     let text = std::fs::read_to_string(path)?;
    ///     let values: Vec<i64> = text.lines().map(|l| l.parse().unwrap()).collect();
    ///     df!("v" => values)
    /// })?;
    /// let v: Vec<i64> = df.column("v")?.i64()?.into_no_null_iter().collect();
    /// assert_eq!(v, [0, 0, 1, 10, 2, 20]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_concat<F>(&self, read: F) -> Result<DataFrame>
    where
        F: Fn(&Path) -> PolarsResult<DataFrame> + Sync,
    {
        self.par_concat_with(&Flock::new(), read)
    }

    /// [`par_concat`](Files::par_concat) with explicit options; the chunk size counts files.
    ///
    /// # Errors
    ///
    /// As [`par_concat`](Files::par_concat).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::polars::prelude::*;
    /// use polars_flock::{Error, Files, Flock};
    ///
    /// let files = Files::new(["one", "two"]);
    /// let err = files
    ///     .par_concat_with(&Flock::new().chunksize(1), |p| {
    ///         if p.ends_with("two") { df!("b" => [1i64]) } else { df!("a" => [1i64]) }
    ///     })
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::File { ref path, .. } if path.ends_with("two")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_concat_with<F>(&self, flock: &Flock, read: F) -> Result<DataFrame>
    where
        F: Fn(&Path) -> PolarsResult<DataFrame> + Sync,
    {
        let mut first = FirstSchema::default();
        let outputs = self.run(flock, read, |index, path, out: &DataFrame| {
            first.check(out.schema()).map_err(|expected| Error::File {
                path: path.to_path_buf(),
                source: Box::new(Error::SchemaMismatch {
                    block: index,
                    rows: index..index + 1,
                    expected,
                    found: out.schema().clone(),
                }),
            })
        })?;
        Ok(vstack_all(outputs.into_iter().flatten())?.unwrap_or_default())
    }

    /// Runs `f` per file (blocks of files, in order), each failure wrapped with its path, and
    /// `check` on each output in file order.
    fn run<U, E, F, C>(&self, flock: &Flock, f: F, mut check: C) -> Result<Vec<Vec<U>>>
    where
        U: Send,
        E: Into<BoxError>,
        F: Fn(&Path) -> std::result::Result<U, E> + Sync,
        C: FnMut(usize, &Path, &U) -> Result<()>,
    {
        let plan = flock.plan(self.paths.len())?;
        run_blocks_stateful(
            flock,
            &plan,
            &Stateless,
            |block, ()| {
                let mut outputs = Discarded::new(Vec::with_capacity(block.rows.len()));
                for (index, path) in block.rows.clone().zip(&self.paths[block.rows.clone()]) {
                    block.enter_row(index);
                    let source: BoxError = match contain(|| f(path)) {
                        Ok(Ok(out)) => {
                            outputs.push(out);
                            continue;
                        }
                        Ok(Err(e)) => e.into(),
                        Err(panic) => Box::new(block.panicked(panic, UserCode::Closure)),
                    };
                    return Err(Error::File {
                        path: path.clone(),
                        source,
                    });
                }
                Ok(outputs.keep())
            },
            |index, outputs| {
                let first = plan.block_rows(index).start;
                for ((i, path), out) in (first..).zip(&self.paths[first..]).zip(outputs) {
                    check(i, path, out)?;
                }
                Ok(())
            },
        )
    }
}
