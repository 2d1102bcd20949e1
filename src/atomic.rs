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

/// Bytes written between two requests to start writing a file's data to disk.
const WRITEBACK_EVERY: u64 = 32 << 20;

/// A file being written whose data the OS starts putting on disk while the writing goes on:
/// every 32 MiB a thread of its own calls `sync_data`, so that the `fsync` of
/// [`AtomicFile::commit`] waits for the last few MiB only instead of the whole file (measured:
/// 135 ms of a 100 MB Parquet file's commit, after every worker was done). The thread ends with
/// [`finish`](SyncingFile::finish) or when the file is dropped.
#[derive(Debug)]
pub(crate) struct SyncingFile {
    file: File,
    since: u64,
    syncer: Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl SyncingFile {
    pub(crate) fn new(file: File) -> Self {
        Self {
            file,
            since: 0,
            syncer: None,
        }
    }

    /// Asks the syncing thread (started on first use) to put what was written on disk. Without
    /// a thread (the OS refused one), the data goes to disk at commit, as without this.
    fn request(&mut self) {
        if self.syncer.is_none() {
            let Ok(file) = self.file.try_clone() else {
                return;
            };
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let spawned = std::thread::Builder::new()
                .name("polars-flock-writeback".into())
                .spawn(move || {
                    while rx.recv().is_ok() {
                        while rx.try_recv().is_ok() {}
                        // An error shows again at commit's own `sync_all`.
                        let _ = file.sync_data();
                    }
                });
            match spawned {
                Ok(thread) => self.syncer = Some((tx, thread)),
                Err(_) => return,
            }
        }
        if let Some((tx, _)) = &self.syncer {
            let _ = tx.send(());
        }
    }

    /// Ends the syncing thread, after its last `sync_data`.
    pub(crate) fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some((tx, thread)) = self.syncer.take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

impl io::Write for SyncingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since += n as u64;
        if self.since >= WRITEBACK_EVERY {
            self.since = 0;
            self.request();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for SyncingFile {
    fn drop(&mut self) {
        self.stop();
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
    fn a_syncing_file_writes_every_byte_and_ends_its_thread() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let mut file = SyncingFile::new(File::create(&path).unwrap());
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        for _ in 0..((2 * WRITEBACK_EVERY) >> 20) + 1 {
            file.write_all(&chunk).unwrap();
        }
        assert!(file.syncer.is_some(), "the writeback thread started");
        file.finish();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len() as u64, 2 * WRITEBACK_EVERY + (1 << 20));
        assert!(back.chunks(1 << 20).all(|c| c == chunk.as_slice()));
        // Dropped unfinished (a failed sink): the thread is joined, nothing is left running.
        let mut dropped = SyncingFile::new(File::create(dir.path().join("x.bin")).unwrap());
        for _ in 0..(WRITEBACK_EVERY >> 20) {
            dropped.write_all(&chunk).unwrap();
        }
        drop(dropped);
    }

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
