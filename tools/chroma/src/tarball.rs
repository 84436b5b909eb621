//! Tarballs of persist directories (`delta.tar.gz`, `snapshot.tar.gz`), read in memory.
//!
//! A tarball from a bucket is untrusted. Every member's path is checked
//! ([`member_path`]): absolute paths, `..` components, links of any kind and special files
//! refuse the *whole* tarball, before anything is used (nothing is ever extracted to disk).
//! Sizes are bounded by [`Limits`]: a member over `max_member_bytes`, a total over
//! `max_total_bytes` (also counted on the decompressed stream itself, so a gzip bomb stops
//! at the limit) or more than `max_members` entries is refused with [`ChromaError::Limit`].

use std::collections::BTreeMap;
use std::io::{self, Read};

use crate::error::{ChromaError, Result};

/// Bounds on what a tarball (or a set of files from an object store) may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest member (file) accepted, in bytes.
    pub max_member_bytes: u64,
    /// The largest total of all members, and of the decompressed stream, in bytes.
    pub max_total_bytes: u64,
    /// The largest number of entries (files, directories) accepted.
    pub max_members: usize,
}

impl Default for Limits {
    /// 2 GiB per member, 4 GiB in all, 10 000 entries: a production snapshot (~600 MB, 7
    /// files) fits; a run delta of one receipt is a few MB.
    fn default() -> Limits {
        Limits {
            max_member_bytes: 2 << 30,
            max_total_bytes: 4 << 30,
            max_members: 10_000,
        }
    }
}

/// The files of a tarball or an object prefix: normalised relative path → bytes.
pub type Files = BTreeMap<String, Vec<u8>>;

/// The normalised relative path of a tarball member or object key, or why it is refused.
/// `Ok(None)` for the archive root (`.`, `./`). Leading `./` and repeated slashes are
/// dropped; an absolute path, a `..` component, a backslash, a NUL or a non-UTF-8 name is
/// refused.
pub fn member_path(raw: &[u8]) -> std::result::Result<Option<String>, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "the path is not UTF-8".to_string())?;
    if text.starts_with('/') {
        return Err("absolute path".into());
    }
    if text.contains('\\') || text.contains('\0') {
        return Err("backslash or NUL in the path".into());
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("`..` component (would land outside the directory)".into()),
            p => parts.push(p),
        }
    }
    Ok(if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    })
}

/// A reader that fails once more than `left` bytes have passed (the gzip-bomb bound).
struct Bounded<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(BombError(self.limit)));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[derive(Debug)]
struct BombError(u64);

impl std::fmt::Display for BombError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decompressed stream over {} bytes", self.0)
    }
}

impl std::error::Error for BombError {}

fn tar_error(e: io::Error, limit: u64) -> ChromaError {
    if e.get_ref().is_some_and(|inner| inner.is::<BombError>()) {
        return ChromaError::Limit {
            file: "tarball".into(),
            what: "the decompressed size",
            actual: limit + 1,
            limit,
        };
    }
    ChromaError::Tar {
        reason: e.to_string(),
    }
}

/// Every regular file of a gzip-compressed tarball, in memory, after checking every
/// member (see the module doc). Directory entries are checked and skipped.
pub fn read_tar_gz(bytes: &[u8], limits: &Limits) -> Result<Files> {
    // Headers and padding are at most 1536 bytes per entry (a long name or pax header,
    // the header, the padding), on top of the members' own bytes.
    let overhead = (limits.max_members as u64 + 2).saturating_mul(1536);
    let stream_limit = limits.max_total_bytes.saturating_add(overhead);
    let gz = flate2::read::GzDecoder::new(bytes);
    let bounded = Bounded {
        inner: gz,
        left: stream_limit,
        limit: stream_limit,
    };
    let mut archive = tar::Archive::new(bounded);
    let entries = archive.entries().map_err(|e| tar_error(e, stream_limit))?;
    let mut files = Files::new();
    let mut total = 0u64;
    for (count, entry) in entries.enumerate() {
        if count >= limits.max_members {
            return Err(ChromaError::Limit {
                file: "tarball".into(),
                what: "the number of entries",
                actual: count as u64 + 1,
                limit: limits.max_members as u64,
            });
        }
        let mut entry = entry.map_err(|e| tar_error(e, stream_limit))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let refuse = |reason: String| ChromaError::UnsafeMember {
            member: shown.clone(),
            reason,
        };
        let path = member_path(&raw).map_err(refuse)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(refuse("links are refused".into()));
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            return Err(refuse(format!("entry type {kind:?} is refused")));
        }
        let Some(path) = path else {
            return Err(refuse("a file at the archive root's own path".into()));
        };
        let size = entry.size();
        if size > limits.max_member_bytes {
            return Err(ChromaError::Limit {
                file: path,
                what: "the member size",
                actual: size,
                limit: limits.max_member_bytes,
            });
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(ChromaError::Limit {
                file: "tarball".into(),
                what: "the total uncompressed size",
                actual: total,
                limit: limits.max_total_bytes,
            });
        }
        // No capacity from the header's claim: the buffer grows with what really arrives.
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| tar_error(e, stream_limit))?;
        if data.len() as u64 != size {
            return Err(ChromaError::Tar {
                reason: format!("member {path:?} is truncated"),
            });
        }
        if files.insert(path.clone(), data).is_some() {
            return Err(ChromaError::UnsafeMember {
                member: path,
                reason: "appears twice".into(),
            });
        }
    }
    Ok(files)
}

/// Check a set of files that arrived as separate objects (the directory layout of a
/// delta or a legacy snapshot under a prefix): the same path rules and limits as a
/// tarball's members. Paths are relative to the prefix.
pub fn check_files(files: Vec<(String, Vec<u8>)>, limits: &Limits) -> Result<Files> {
    if files.len() > limits.max_members {
        return Err(ChromaError::Limit {
            file: "object prefix".into(),
            what: "the number of objects",
            actual: files.len() as u64,
            limit: limits.max_members as u64,
        });
    }
    let mut out = Files::new();
    let mut total = 0u64;
    for (name, bytes) in files {
        let path = member_path(name.as_bytes())
            .map_err(|reason| ChromaError::UnsafeMember {
                member: name.clone(),
                reason,
            })?
            .ok_or_else(|| ChromaError::UnsafeMember {
                member: name.clone(),
                reason: "an object at the prefix itself".into(),
            })?;
        let size = bytes.len() as u64;
        if size > limits.max_member_bytes {
            return Err(ChromaError::Limit {
                file: path,
                what: "the object size",
                actual: size,
                limit: limits.max_member_bytes,
            });
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(ChromaError::Limit {
                file: "object prefix".into(),
                what: "the total size",
                actual: total,
                limit: limits.max_total_bytes,
            });
        }
        if out.insert(path.clone(), bytes).is_some() {
            return Err(ChromaError::UnsafeMember {
                member: path,
                reason: "appears twice".into(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_or_refused() {
        assert_eq!(member_path(b".").unwrap(), None);
        assert_eq!(member_path(b"./").unwrap(), None);
        assert_eq!(
            member_path(b"./abc/header.bin").unwrap().as_deref(),
            Some("abc/header.bin")
        );
        assert_eq!(member_path(b"a//b/./c").unwrap().as_deref(), Some("a/b/c"));
        for bad in [
            &b"/etc/passwd"[..],
            b"../x",
            b"a/../../x",
            b"a/..",
            b"a\\..\\x",
            b"\xff",
            b"a\0b",
        ] {
            assert!(member_path(bad).is_err(), "{bad:?}");
        }
    }
}
