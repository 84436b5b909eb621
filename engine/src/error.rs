//! `Error`: every way an engine call can fail, each saying what and where.

use std::path::PathBuf;

use strata_formats::FormatError;
use strata_storage::layout::NameError;
use strata_storage::StorageError;

/// An engine error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file's bytes are corrupt or not a strata file.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: FormatError,
    },
    /// The RocksDB manifest failed.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The manifest holds a value this build cannot decode.
    #[error("manifest entry {key}: {detail}")]
    ManifestEntry {
        /// The key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// Another process holds the writer role.
    #[error("store {path} is open for writing by {holder} since {since} (epoch {epoch}); close it there first, or open a reader")]
    WriterBusy {
        /// The store.
        path: PathBuf,
        /// Who holds it.
        holder: String,
        /// Since when (RFC 3339, UTC).
        since: String,
        /// Their epoch.
        epoch: u64,
    },
    /// This writer's epoch is no longer current: another writer took over.
    #[error("writer fenced: this writer has epoch {mine} but the store's current epoch is {current}; nothing was committed")]
    Fenced {
        /// This writer's epoch.
        mine: u64,
        /// The current epoch.
        current: u64,
    },
    /// No collection of that name.
    #[error("no collection named {0:?}")]
    NoSuchCollection(String),
    /// The collection exists already.
    #[error("collection {0:?} already exists")]
    CollectionExists(String),
    /// A version that does not exist or is no longer retained.
    #[error("collection {collection:?} has no retained version {version}")]
    NoSuchVersion {
        /// The collection.
        collection: String,
        /// The version.
        version: u64,
    },
    /// An invalid argument or operation (the message says which and why).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was invalid.
        what: String,
        /// Why.
        detail: String,
    },
    /// Not enough free disk for a compaction.
    #[error("not enough free disk at {path} for compaction: {needed} bytes needed (twice the inputs), {available} available; nothing was changed")]
    NoSpace {
        /// The store.
        path: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The store was opened read-only.
    #[error("store is open read-only; {0} needs the writer")]
    ReadOnly(&'static str),
}

/// Result of an engine call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn format(path: impl Into<PathBuf>) -> impl FnOnce(FormatError) -> Error {
        let path = path.into();
        move |source| Error::Format { path, source }
    }

    pub(crate) fn invalid(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Invalid {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Error {
        match e {
            StorageError::Io { op, path, source } => Error::Io { op, path, source },
            StorageError::InvalidName(n) => n.into(),
            other => Error::invalid("storage path", other.to_string()),
        }
    }
}

impl From<NameError> for Error {
    fn from(e: NameError) -> Error {
        Error::invalid(e.what, format!("{:?}: {}", e.name, e.rule))
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Error {
        Error::Manifest(e.into_string())
    }
}
