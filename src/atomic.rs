//! A file that appears under its name complete or not at all: written under a temporary name in
//! the same directory and renamed over the final name when complete. The one implementation for
//! the Parquet sink, the IPC sink and the cluster's part files.
//!
//! The temporary name is random (12 random characters, created exclusively): two writers of one
//! path never share it, even in processes with the same pid in different PID namespaces (two
//! containers on a shared volume, a retried pod beside the old one). It is short (a prefix of the
//! final name of at most 32 bytes), so that any final name the file system accepts can be
//! written. A writer dropped before [`commit`](AtomicFile::commit) removes its temporary file.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// The longest prefix of the final name kept in the temporary name.
const NAME_PREFIX: usize = 32;

/// A file being written under a temporary name next to `path`.
#[derive(Debug)]
pub(crate) struct AtomicFile {
    path: PathBuf,
    temp: NamedTempFile,
}

impl AtomicFile {
    /// Creates the temporary file next to `path`.
    pub(crate) fn create(path: &Path) -> io::Result<Self> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut end = name.len().min(NAME_PREFIX);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", &name[..end]))
            .suffix(".polars-flock-tmp")
            .rand_bytes(12)
            .tempfile_in(dir)?;
        Ok(Self {
            path: path.to_path_buf(),
            temp,
        })
    }

    /// The temporary file, to write to.
    pub(crate) fn file(&self) -> &File {
        self.temp.as_file()
    }

    /// Flushes the file to disk and renames it to its final path, replacing any file there.
    pub(crate) fn commit(self) -> io::Result<()> {
        self.temp.as_file().sync_all()?;
        self.temp.persist(&self.path).map(drop).map_err(|e| e.error)
    }
}

/// Writes `bytes` to `path` atomically.
#[cfg(feature = "distributed")]
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let file = AtomicFile::create(path)?;
    file.file().write_all(bytes)?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_appears_only_when_committed_and_a_dropped_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let file = AtomicFile::create(&path).unwrap();
        std::io::Write::write_all(&mut file.file(), b"abc").unwrap();
        assert!(!path.exists());
        file.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        drop(AtomicFile::create(&path).unwrap());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn two_writers_of_one_path_never_share_a_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("same.parquet");
        let a = AtomicFile::create(&path).unwrap();
        let b = AtomicFile::create(&path).unwrap();
        assert_ne!(a.temp.path(), b.temp.path());
    }

    #[test]
    fn a_name_at_the_file_systems_limit_can_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{}.parquet", "é".repeat(116)));
        assert_eq!(path.file_name().unwrap().len(), 240);
        let file = AtomicFile::create(&path).unwrap();
        file.commit().unwrap();
        assert!(path.exists());
    }
}
