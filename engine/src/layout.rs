//! Where things live inside a store directory, and the rules for names in it.
//!
//! ```text
//! <store>/manifest/               RocksDB manifest (writer only)
//! <store>/deltas/<n>.delta        registered delta files
//! <store>/segments/<n>.seg        segment files
//! <store>/versions/<c>/<v>.version, <store>/versions/<c>/HEAD
//! <store>/inbox/*.delta           sealed deltas from producers, awaiting ingestion
//! <store>/tmp/                    temporary files (same filesystem, for rename/link)
//! ```

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Paths of a store.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The store's root directory.
    pub root: PathBuf,
}

impl Layout {
    /// The layout of a store at `root`.
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }

    /// The manifest directory.
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest")
    }

    /// The deltas directory.
    pub fn deltas(&self) -> PathBuf {
        self.root.join("deltas")
    }

    /// The segments directory.
    pub fn segments(&self) -> PathBuf {
        self.root.join("segments")
    }

    /// The versions directory of all collections.
    pub fn versions_root(&self) -> PathBuf {
        self.root.join("versions")
    }

    /// The versions directory of one collection.
    pub fn versions(&self, collection: &str) -> PathBuf {
        self.versions_root().join(collection)
    }

    /// A version file.
    pub fn version_file(&self, collection: &str, version: u64) -> PathBuf {
        self.versions(collection)
            .join(format!("{version:020}.version"))
    }

    /// A collection's HEAD pointer.
    pub fn head(&self, collection: &str) -> PathBuf {
        self.versions(collection).join("HEAD")
    }

    /// The inbox directory.
    pub fn inbox(&self) -> PathBuf {
        self.root.join("inbox")
    }

    /// The temporary directory.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Name of delta file number `n`.
    pub fn delta_name(n: u64) -> String {
        format!("{n:020}.delta")
    }

    /// Name of segment file number `n`.
    pub fn segment_name(n: u64) -> String {
        format!("{n:020}.seg")
    }

    /// The number in a delta or segment file name.
    pub fn file_number(name: &str) -> Option<u64> {
        let stem = name
            .strip_suffix(".delta")
            .or_else(|| name.strip_suffix(".seg"))?;
        if stem.len() == 20 {
            stem.parse().ok()
        } else {
            None
        }
    }
}

/// Check a collection name: 1 to 64 characters of `A-Z a-z 0-9 _ - .`, not starting with
/// a dot (names become directory names).
pub fn check_collection_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "collection name",
            format!(
                "{name:?}: use 1 to 64 characters of A-Z a-z 0-9 _ - . not starting with a dot"
            ),
        ))
    }
}

/// Check a producer name for inbox files: 1 to 64 characters of `A-Z a-z 0-9 _ -`.
pub fn check_producer_name(name: &str) -> Result<()> {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(Error::invalid(
            "producer name",
            format!("{name:?}: use 1 to 64 characters of A-Z a-z 0-9 _ -"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_collection_name("lines").is_ok());
        assert!(check_collection_name("../x").is_err());
        assert!(check_collection_name(".hidden").is_err());
        assert!(check_collection_name("").is_err());
        assert_eq!(Layout::file_number(&Layout::delta_name(42)), Some(42));
        assert_eq!(Layout::file_number("x.delta"), None);
    }
}
