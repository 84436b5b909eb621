//! `ChromaError`: every way reading a Chroma persist directory or tarball can fail, each
//! naming the file (or collection) and what was wrong.

/// The crate's result type.
pub type Result<T, E = ChromaError> = std::result::Result<T, E>;

/// Why a Chroma persist directory, tarball or collection could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChromaError {
    /// A file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A required file is absent.
    #[error("{file}: missing ({why})")]
    Missing {
        /// The file.
        file: String,
        /// Why it is required.
        why: String,
    },
    /// SQLite refused the database or a query.
    #[error("{file}: SQLite: {source}")]
    Sqlite {
        /// The database file.
        file: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The SQLite file is not a Chroma database (a table or column Chroma writes is absent,
    /// or a value has a type Chroma never writes).
    #[error("{file}: not a Chroma database: {reason}")]
    NotChroma {
        /// The database file.
        file: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// A segment file (header.bin, data_level0.bin, length.bin, index_metadata.pickle) is
    /// malformed: truncated, inconsistent header, unknown version, bad pickle.
    #[error("{file}: {reason}")]
    Segment {
        /// The segment file.
        file: String,
        /// What was wrong.
        reason: String,
    },
    /// A layout this reader does not read (for example a SPANN segment), or one it cannot
    /// read without guessing (a metadata segment behind the log, a hot journal).
    #[error("collection {collection:?}: unsupported: {what}")]
    Unsupported {
        /// The collection (or the file, when no collection is known yet).
        collection: String,
        /// What is not supported.
        what: String,
    },
    /// The collection's parts disagree (a record without a vector, a vector without a
    /// record, a log vector of the wrong length, …).
    #[error("collection {collection:?}: inconsistent: {reason}")]
    Inconsistent {
        /// The collection.
        collection: String,
        /// What disagrees.
        reason: String,
    },
    /// No collection of that name.
    #[error("no collection {name:?} (collections: {available:?})")]
    NoSuchCollection {
        /// The name asked for.
        name: String,
        /// The collections there are.
        available: Vec<String>,
    },
    /// A tarball member is refused (absolute path, `..`, a link, a special file); the
    /// whole tarball is refused with it.
    #[error("tarball member {member:?}: {reason}; the whole tarball is refused")]
    UnsafeMember {
        /// The member's path as stored.
        member: String,
        /// Why it is refused.
        reason: String,
    },
    /// A bound was exceeded (member size, total uncompressed size, member count).
    #[error("{file}: {what} is {actual}, over the limit of {limit}")]
    Limit {
        /// The file (a tarball member, the tarball, a segment file).
        file: String,
        /// What was measured.
        what: &'static str,
        /// The measured value (at least this much).
        actual: u64,
        /// The limit.
        limit: u64,
    },
    /// The tarball itself is malformed (bad gzip, bad tar header, truncated).
    #[error("tarball: {reason}")]
    Tar {
        /// What was wrong.
        reason: String,
    },
}

impl ChromaError {
    pub(crate) fn segment(file: impl Into<String>, reason: impl Into<String>) -> ChromaError {
        ChromaError::Segment {
            file: file.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn inconsistent(
        collection: impl Into<String>,
        reason: impl Into<String>,
    ) -> ChromaError {
        ChromaError::Inconsistent {
            collection: collection.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(
        collection: impl Into<String>,
        what: impl Into<String>,
    ) -> ChromaError {
        ChromaError::Unsupported {
            collection: collection.into(),
            what: what.into(),
        }
    }
}
