//! The `Storage` trait: what the engine asks of the place a store lives — immutable files,
//! create-if-absent publication, atomic pointer files, listings, deletion — and the small
//! types its methods pass.

use std::fmt;
use std::io;
use std::io::{Seek, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::bytes::FileBytes;
use crate::error::Result;

/// What a file or directory is, as [`Storage::stat`] and [`Storage::list`] report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// Length in bytes (backend-defined for directories).
    pub len: u64,
    /// When the content last changed.
    pub modified: SystemTime,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name inside the listed directory (not a path).
    pub name: String,
    /// Its metadata.
    pub meta: Metadata,
}

/// A temporary file, written and fsynced, not yet published under a final name. Its path
/// is under [`crate::layout::TMP`], so publication can link it (same filesystem). A
/// temporary that is never published is removed by its owner ([`Storage::discard_temp`]);
/// one a killed process left behind is removed when the writer next opens the store (or by
/// GC after its grace period, for a producer's).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a temporary file is published or discarded"]
pub struct TempFile {
    path: String,
}

impl TempFile {
    /// A temporary at a relative path (backends create these).
    pub(crate) fn new(path: String) -> TempFile {
        TempFile { path }
    }

    /// Its path, relative to the store's root.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A temporary file being written in a stream (segments, which can be gigabytes). The
/// bytes are durable only after [`TempWrite::finish`], which fsyncs; dropping the writer
/// without finishing, or a failed `finish`, removes the temporary.
pub trait TempWrite: Write + Seek + Send {
    /// The temporary being written.
    fn temp(&self) -> &TempFile;

    /// Flush and fsync the file; afterwards it can be published.
    fn finish(self: Box<Self>) -> Result<TempFile>;
}

/// A store's files, by path relative to the store's root with `/` separators (for example
/// `deltas/00000000000000000001.delta`; `""` is the root itself). A path may not be
/// absolute nor contain empty, `.` or `..` components ([`crate::StorageError::InvalidPath`]).
///
/// The contract every backend keeps, checked by [`crate::conformance::run`]:
///
/// * A file is published once under its final name and never changed afterwards: only
///   [`Storage::publish`] and [`Storage::link`] create final names, both refuse to replace,
///   and only [`Storage::replace`] (for small pointer files such as HEAD) swaps content
///   under a name, atomically.
/// * Durability: a temporary is fsynced before it can be published, and publication,
///   linking, replacement and removal fsync the directory they change before returning.
///   Creating a directory fsyncs its parent; removing one is not synced.
/// * Errors name the operation and the path ([`crate::StorageError`]); a missing file is
///   [`crate::StorageError::is_not_found`].
pub trait Storage: Send + Sync + fmt::Debug {
    /// Read a whole file.
    fn read(&self, path: &str) -> Result<Vec<u8>>;

    /// The whole content of an immutable file without a copy (a memory map locally). Only
    /// for files that nobody modifies while the handle lives: published deltas, segments
    /// and version files, which the store never writes, truncates or renames over.
    fn map(&self, path: &str) -> Result<FileBytes>;

    /// Read the bytes of `range` of a file; fails if the file is shorter.
    fn read_range(&self, path: &str, range: Range<u64>) -> Result<Vec<u8>>;

    /// Write `bytes` to a new temporary file and fsync it. If that fails, the temporary is
    /// removed before the error returns. `hint` (a few characters of
    /// `A-Z a-z 0-9 _ -`) becomes part of its name. The directory [`crate::layout::TMP`]
    /// must exist.
    fn write_temp(&self, hint: &str, bytes: &[u8]) -> Result<TempFile>;

    /// Start a temporary file written in a stream; see [`TempWrite`].
    fn create_temp(&self, hint: &str) -> Result<Box<dyn TempWrite>>;

    /// Publish a finished temporary under `dest` unless `dest` exists (create-if-absent:
    /// a hard link locally, which works on NFS where `renameat2(RENAME_NOREPLACE)` does
    /// not). On success the temporary's name is removed and `dest`'s directory fsynced:
    /// `Ok(true)`, and the [`TempFile`] is spent. `Ok(false)` if `dest` exists: nothing
    /// changed, and the temporary can be published under another name.
    fn publish(&self, temp: &TempFile, dest: &str) -> Result<bool>;

    /// Give the existing file `src` the additional name `dest` unless `dest` exists, then
    /// fsync `dest`'s directory (`Ok(true)`); `Ok(false)` if `dest` exists. The writer
    /// registers an inbox file as a delta this way, without copying it.
    fn link(&self, src: &str, dest: &str) -> Result<bool>;

    /// Replace (or create) the small file `dest` atomically with `bytes`: temporary file,
    /// fsync, rename over `dest`, fsync the directory. A reader sees the old or the new
    /// content, never a mix. A failed rename removes the temporary.
    fn replace(&self, dest: &str, bytes: &[u8]) -> Result<()>;

    /// The entries of a directory (files and subdirectories), in no particular order.
    /// Entries removed while the listing runs may be left out.
    fn list(&self, dir: &str) -> Result<Vec<DirEntry>>;

    /// Delete a file and fsync its directory.
    fn remove(&self, path: &str) -> Result<()>;

    /// Remove a temporary that will not be published, best effort and unsynced (a
    /// temporary left behind is harmless: GC removes old ones).
    fn discard_temp(&self, temp: &TempFile);

    /// A file's or directory's metadata; `None` if nothing is at `path`.
    fn stat(&self, path: &str) -> Result<Option<Metadata>>;

    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.stat(path)?.is_some())
    }

    /// Create a directory and any missing parents, fsyncing the parent of each one created
    /// (locally); nothing if it exists.
    fn create_dir(&self, dir: &str) -> Result<()>;

    /// Remove an empty directory (unsynced).
    fn remove_dir(&self, dir: &str) -> Result<()>;

    /// Bytes that can still be written.
    fn available_space(&self) -> Result<u64>;

    /// The store's directory on the local filesystem, when it has one (the RocksDB
    /// manifest needs a real directory).
    fn local_root(&self) -> Option<&Path>;

    /// Where `path` lives, for messages and errors: an absolute path locally,
    /// `memory://<id>/<path>` in memory. `location("")` is the store itself.
    fn location(&self, path: &str) -> PathBuf;
}

/// Check a relative storage path: `""` (the root) or `/`-separated components, none
/// empty, `.` or `..`, with no backslash or NUL. Backends call it on every path.
pub fn check_path(path: &str) -> Result<()> {
    let reason = if path.starts_with('/') {
        Some("absolute; paths are relative to the store's root")
    } else if path.contains(['\\', '\0']) {
        Some("contains a backslash or NUL")
    } else if !path.is_empty()
        && path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Some("has an empty, `.` or `..` component")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(crate::StorageError::InvalidPath {
            path: path.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The start and end of `range` inside a file of `len` bytes.
pub(crate) fn check_range(range: &Range<u64>, len: u64) -> io::Result<(usize, usize)> {
    if range.start > range.end {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("range {}..{} is reversed", range.start, range.end),
        ));
    }
    if range.end > len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "range {}..{} goes beyond the file's {len} bytes",
                range.start, range.end
            ),
        ));
    }
    let index = |n: u64| {
        usize::try_from(n).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "range beyond the address space",
            )
        })
    };
    Ok((index(range.start)?, index(range.end)?))
}
