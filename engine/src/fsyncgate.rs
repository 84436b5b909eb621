//! fsync failure is final (the lesson of PostgreSQL's "fsyncgate"): after a failed fsync
//! the kernel may have dropped the dirty pages and a retry can report success for data that
//! is gone. [`SyncWatch`] wraps the writer's storage and remembers the first failed fsync
//! (of a file or a directory, or a failed manifest commit, which the writer reports to it);
//! from then on the writer refuses every change with [`Error::SyncFailed`] until it is
//! reopened, which re-reads what is really durable. Nothing is ever retried.

use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use strata_storage::{
    DirEntry, FileBytes, Metadata, Result as StorageResult, Storage, TempFile, TempWrite,
};

use crate::error::{Error, Result};

/// The first failed sync, shared by the storage wrapper and the writer.
#[derive(Debug, Default, Clone)]
pub(crate) struct SyncState(Arc<Mutex<Option<String>>>);

impl SyncState {
    /// Refuse if a sync failed.
    pub(crate) fn check(&self) -> Result<()> {
        match &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(cause) => Err(Error::SyncFailed {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Remember `cause` as the failure (the first one stays).
    pub(crate) fn fail(&self, cause: impl std::fmt::Display) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if s.is_none() {
            *s = Some(cause.to_string());
        }
    }

    /// Pass `r` on, remembering it if it is a failed sync.
    fn watch<T>(&self, r: StorageResult<T>) -> StorageResult<T> {
        if let Err(e) = &r {
            if e.is_sync_failure() {
                self.fail(e);
            }
        }
        r
    }
}

/// A storage that records failed fsyncs in a [`SyncState`] (everything else delegated).
#[derive(Debug)]
pub(crate) struct SyncWatch {
    inner: Arc<dyn Storage>,
    state: SyncState,
}

impl SyncWatch {
    /// Watch `inner`'s syncs into `state`.
    pub(crate) fn new(inner: Arc<dyn Storage>, state: SyncState) -> SyncWatch {
        SyncWatch { inner, state }
    }
}

impl Storage for SyncWatch {
    fn read(&self, path: &str) -> StorageResult<Vec<u8>> {
        self.inner.read(path)
    }

    fn map(&self, path: &str) -> StorageResult<FileBytes> {
        self.inner.map(path)
    }

    fn read_range(&self, path: &str, range: Range<u64>) -> StorageResult<Vec<u8>> {
        self.inner.read_range(path, range)
    }

    fn write_temp(&self, hint: &str, bytes: &[u8]) -> StorageResult<TempFile> {
        self.state.watch(self.inner.write_temp(hint, bytes))
    }

    fn create_temp(&self, hint: &str) -> StorageResult<Box<dyn TempWrite>> {
        let inner = self.inner.create_temp(hint)?;
        Ok(Box::new(WatchedTemp {
            inner,
            state: self.state.clone(),
        }))
    }

    fn publish(&self, temp: &TempFile, dest: &str) -> StorageResult<bool> {
        self.state.watch(self.inner.publish(temp, dest))
    }

    fn link(&self, src: &str, dest: &str) -> StorageResult<bool> {
        self.state.watch(self.inner.link(src, dest))
    }

    fn replace(&self, dest: &str, bytes: &[u8]) -> StorageResult<()> {
        self.state.watch(self.inner.replace(dest, bytes))
    }

    fn list(&self, dir: &str) -> StorageResult<Vec<DirEntry>> {
        self.inner.list(dir)
    }

    fn remove(&self, path: &str) -> StorageResult<()> {
        self.state.watch(self.inner.remove(path))
    }

    fn discard_temp(&self, temp: &TempFile) {
        self.inner.discard_temp(temp)
    }

    fn stat(&self, path: &str) -> StorageResult<Option<Metadata>> {
        self.inner.stat(path)
    }

    fn exists(&self, path: &str) -> StorageResult<bool> {
        self.inner.exists(path)
    }

    fn create_dir(&self, dir: &str) -> StorageResult<()> {
        self.state.watch(self.inner.create_dir(dir))
    }

    fn remove_dir(&self, dir: &str) -> StorageResult<()> {
        self.inner.remove_dir(dir)
    }

    fn available_space(&self) -> StorageResult<u64> {
        self.inner.available_space()
    }

    fn local_root(&self) -> Option<&Path> {
        self.inner.local_root()
    }

    fn location(&self, path: &str) -> PathBuf {
        self.inner.location(path)
    }
}

/// A streaming temporary whose `finish` (the fsync) is watched.
struct WatchedTemp {
    inner: Box<dyn TempWrite>,
    state: SyncState,
}

impl Write for WatchedTemp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Seek for WatchedTemp {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl TempWrite for WatchedTemp {
    fn temp(&self) -> &TempFile {
        self.inner.temp()
    }

    fn finish(self: Box<Self>) -> StorageResult<TempFile> {
        let WatchedTemp { inner, state } = *self;
        state.watch(inner.finish())
    }
}

/// Whether an engine error is a failed sync (see
/// [`strata_storage::StorageError::is_sync_failure`]) or a
/// failed manifest commit (a synced RocksDB write).
pub(crate) fn is_sync_failure(e: &Error) -> bool {
    match e {
        Error::Io { op, .. } => {
            op.starts_with("fsync") || op.starts_with("storage::fsync") || *op == "manifest commit"
        }
        Error::Manifest { op, .. } => matches!(*op, "commit" | "flush WAL" | "flush"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use strata_storage::memory::{Fault, SyncKind, Trigger};
    use strata_storage::MemoryStorage;

    use super::*;

    #[test]
    fn a_failed_fsync_is_remembered_and_others_are_not() {
        let disk = MemoryStorage::new();
        disk.create_dir("tmp").unwrap();
        let state = SyncState::default();
        let s = SyncWatch::new(Arc::new(disk.clone()), state.clone());
        assert!(s.read("missing").is_err());
        state.check().unwrap();
        disk.inject(
            Trigger::SyncOf {
                kind: SyncKind::File,
                prefix: "tmp/".into(),
                n: 1,
            },
            Fault::Eio,
        );
        let err = s.write_temp("x", b"bytes").unwrap_err();
        assert!(err.is_sync_failure(), "{err}");
        let refused = state.check().unwrap_err();
        assert!(matches!(refused, Error::SyncFailed { .. }), "{refused}");
        assert!(refused.to_string().contains("simulated EIO"), "{refused}");
        assert!(disk.list("tmp").unwrap().is_empty(), "the temporary went");
    }
}
