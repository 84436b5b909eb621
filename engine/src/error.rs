//! `Error`: every way an engine call can fail, each saying what and where.

use std::path::PathBuf;

use strata_formats::FormatError;
use strata_storage::layout::NameError;
use strata_storage::StorageError;

/// An engine error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    #[error("manifest {op}: {source}")]
    Manifest {
        /// What was being done (`open`, `get`, `commit`, …).
        op: &'static str,
        /// RocksDB's error (its [`rocksdb::Error::kind`] classifies it).
        source: rocksdb::Error,
    },
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
    /// An operation of a write is invalid (see [`validate`](crate::validate())); nothing was
    /// written.
    #[error("invalid operation {index}: {detail}")]
    InvalidOperation {
        /// The operation's position in its batch (from 0).
        index: usize,
        /// The field at fault.
        field: Field,
        /// What is wrong with it.
        detail: String,
    },
    /// An invalid argument (the message says which and why).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was invalid.
        what: String,
        /// Why.
        detail: String,
    },
    /// An fsync (or a synced manifest commit) failed earlier in this writer: what it was
    /// making durable may be lost whatever a retry would report (PostgreSQL's fsyncgate), so
    /// the writer commits nothing more. Reopen the store: it re-reads what is durable.
    #[error("the writer stopped committing after a failed sync ({cause}); nothing since is committed — reopen the store, which re-reads what is really on disk")]
    SyncFailed {
        /// The failure, as it was reported.
        cause: String,
    },
    /// The head version references a file that fails its checksum (or is missing or
    /// torn): the writer commits nothing on top of it. `strata verify` names the intact
    /// retained versions; `rollback` to one of them.
    #[error("refusing to commit on top of version {version} of {collection:?}: it references {}, which fails its checksum ({detail}); `strata verify` lists the intact retained versions, `strata rollback` returns to one", .path.display())]
    DamagedHead {
        /// The collection.
        collection: String,
        /// Its head version.
        version: u64,
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A request beyond one of the engine's bounds (`MAX_K`, `MAX_GET_IDS`,
    /// `MAX_BATCH_QUERIES`); nothing was allocated for it.
    #[error("{what} is {got}, more than the limit of {limit}")]
    LimitExceeded {
        /// What was too large (`k`, `ids`, `query vectors`).
        what: &'static str,
        /// The size asked for.
        got: usize,
        /// The limit.
        limit: usize,
    },
    /// A publish refused before it moved anything: the destination holds another store or
    /// another history, or a file there differs from this store's.
    #[error("publish to {url} refused: {reason}; the head was not moved")]
    PublishRefused {
        /// The destination.
        url: String,
        /// Why.
        reason: String,
    },
    /// Another publisher moved the head between this publish's read of it and its move.
    #[error("publish to {url} lost a race: the head is now {theirs}, not the {read} this publish read; {ours} was not published and nothing was overwritten (the files uploaded are harmless); publish again")]
    PublishConflict {
        /// The destination.
        url: String,
        /// The head this publish read (`none` if there was none).
        read: String,
        /// What this publish would have made the head.
        ours: String,
        /// What the head is now.
        theirs: String,
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

    pub(crate) fn manifest(op: &'static str) -> impl FnOnce(rocksdb::Error) -> Error {
        move |source| Error::Manifest { op, source }
    }

    pub(crate) fn invalid_operation(index: usize, e: InvalidOp) -> Error {
        Error::InvalidOperation {
            index,
            field: e.field,
            detail: e.detail,
        }
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

/// The part of an operation that is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// A record id, or an id a patch or delete targets: empty, or longer than 4096 bytes.
    Id,
    /// The embedding: missing where the collection has dimensions, present where it is
    /// metadata-only, or holding a value that is not finite.
    Embedding,
    /// The embedding's length differs from the collection's dimensions.
    Dims,
}

impl Field {
    /// The field's name as messages show it.
    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Embedding => "embedding",
            Field::Dims => "dims",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why [`validate`](crate::validate()) refused an operation: the field at fault and a readable detail (which
/// record, which value, what the collection expects). Displays as the detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
#[non_exhaustive]
pub struct InvalidOp {
    /// The field at fault.
    pub field: Field,
    /// What is wrong with it.
    pub detail: String,
}

/// A delta that cannot be encoded (a header or a record over the format's limits) as the
/// invalid argument it is: the header says `delta`, a record says `operation`.
pub(crate) fn delta_error(e: strata_formats::delta::DeltaWriteError) -> Error {
    let what = match e {
        strata_formats::delta::DeltaWriteError::HeaderTooLarge { .. } => "delta",
        _ => "operation",
    };
    Error::invalid(what, e.to_string())
}
