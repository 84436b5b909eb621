//! `FormatError`: every way a byte string can fail to be a valid strata file.

/// Which of strata's file kinds an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A delta file (`*.delta`).
    Delta,
    /// A segment file (`*.seg`).
    Segment,
    /// A version file (`*.version`).
    Version,
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Delta => "delta file",
            FileKind::Segment => "segment file",
            FileKind::Version => "version file",
        })
    }
}

/// A decoding failure: what was wrong and where (byte offset, block or record).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The input ended before a structure was complete.
    #[error("{kind}: truncated: {what} at byte {offset} needs {need} bytes, only {have} present")]
    Truncated {
        /// File kind.
        kind: FileKind,
        /// The structure being read.
        what: String,
        /// Its byte offset.
        offset: u64,
        /// Bytes it needs.
        need: u64,
        /// Bytes present.
        have: u64,
    },
    /// The file does not start with the expected magic.
    #[error("{kind}: bad magic {found:02x?} (not a {kind}, or its first bytes are corrupt)")]
    BadMagic {
        /// File kind expected.
        kind: FileKind,
        /// The bytes found.
        found: Vec<u8>,
    },
    /// The file was written by a newer, incompatible major version.
    #[error("{kind}: format major version {found} is newer than this build supports ({supported}); upgrade strata to read it")]
    NewerMajor {
        /// File kind.
        kind: FileKind,
        /// Major version in the file.
        found: u16,
        /// Highest major version this build reads.
        supported: u16,
    },
    /// A checksum did not match: the bytes are corrupt.
    #[error("{kind}: checksum mismatch in {what} (bytes {offset}..{end}): stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// File kind.
        kind: FileKind,
        /// The protected structure (block or record).
        what: String,
        /// First byte covered.
        offset: u64,
        /// One past the last byte covered.
        end: u64,
        /// Checksum stored in the file.
        stored: u32,
        /// Checksum of the bytes present.
        computed: u32,
    },
    /// A structure's fields are inconsistent or out of range.
    #[error("{kind}: malformed {what} at byte {offset}: {detail}")]
    Malformed {
        /// File kind.
        kind: FileKind,
        /// The structure.
        what: String,
        /// Its byte offset.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
}

/// Result of decoding.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

impl FormatError {
    pub(crate) fn malformed(
        kind: FileKind,
        what: impl Into<String>,
        offset: u64,
        detail: impl Into<String>,
    ) -> FormatError {
        FormatError::Malformed {
            kind,
            what: what.into(),
            offset,
            detail: detail.into(),
        }
    }
}
