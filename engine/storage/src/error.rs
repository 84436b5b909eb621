//! `StorageError`: how a storage operation fails, naming the operation and the path.

use std::io;
use std::path::PathBuf;

use crate::layout::NameError;

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The operating system (or a simulated device) refused an operation on a path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("read", "link", "fsync directory", …).
        op: &'static str,
        /// Where, as the backend names it ([`crate::Storage::location`]).
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A relative path that does not name a place inside the store.
    #[error("invalid storage path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A collection or producer name that breaks the name rules.
    #[error(transparent)]
    InvalidName(#[from] NameError),
}

/// Result of a storage operation.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    /// An error constructor for `op` on `path`, for `map_err`.
    pub fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::Io { op, path, source }
    }

    /// The kind of the underlying I/O error (`InvalidInput` for bad paths and names).
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            StorageError::Io { source, .. } => source.kind(),
            StorageError::InvalidPath { .. } | StorageError::InvalidName(_) => {
                io::ErrorKind::InvalidInput
            }
        }
    }

    /// Whether the file or directory does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == io::ErrorKind::NotFound
    }

    /// The `io::Error` inside (for `Write` impls), keeping this error's message.
    pub fn into_io(self) -> io::Error {
        let kind = self.kind();
        io::Error::new(kind, self.to_string())
    }

    /// Whether a failed fsync (of a file or a directory) caused it: after one, what was
    /// written may be lost whatever a retry says (PostgreSQL's "fsyncgate"), so the writer
    /// stops committing until it is reopened.
    pub fn is_sync_failure(&self) -> bool {
        matches!(self, StorageError::Io { op, .. } if op.starts_with("fsync") || *op == "storage::fsync" || *op == "storage::fsync_dir")
    }

    /// Whether the device is full (ENOSPC, or a memory backend's capacity).
    pub fn is_no_space(&self) -> bool {
        self.kind() == io::ErrorKind::StorageFull
    }
}
