//! Where things live inside a store, as paths relative to its root, and the rules for the
//! names in them. The engine and the producers (the stream Lambda) share this one
//! definition.
//!
//! ```text
//! manifest/                       RocksDB manifest (writer only)
//! deltas/<n>.delta                registered delta files
//! segments/<n>.seg                segment files
//! versions/<c>/<v>.version, versions/<c>/HEAD
//! inbox/*.delta                   sealed deltas from producers, awaiting ingestion
//! tmp/                            temporary files (same filesystem, for rename/link)
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use crate::now_ms;

/// The RocksDB manifest's directory.
pub const MANIFEST: &str = "manifest";
/// The directory of registered delta files.
pub const DELTAS: &str = "deltas";
/// The directory of segment files.
pub const SEGMENTS: &str = "segments";
/// The directory of every collection's version files and HEAD.
pub const VERSIONS: &str = "versions";
/// The directory where producers drop sealed deltas.
pub const INBOX: &str = "inbox";
/// The directory of temporary files.
pub const TMP: &str = "tmp";
/// The directories a writer creates when it opens a store (the root itself aside).
pub const STORE_DIRS: [&str; 5] = [DELTAS, SEGMENTS, VERSIONS, INBOX, TMP];
/// The name of a collection's head pointer file.
pub const HEAD: &str = "HEAD";

/// `dir/name`, or `name` when `dir` is the root (`""`).
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The directory part of a relative path (`""` for a name at the root).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The last component of a relative path.
pub fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// A registered delta file.
pub fn delta(name: &str) -> String {
    join(DELTAS, name)
}

/// A segment file.
pub fn segment(name: &str) -> String {
    join(SEGMENTS, name)
}

/// The versions directory of one collection.
pub fn versions(collection: &str) -> String {
    join(VERSIONS, collection)
}

/// A version file.
pub fn version_file(collection: &str, version: u64) -> String {
    join(&versions(collection), &version_name(version))
}

/// A collection's HEAD pointer.
pub fn head(collection: &str) -> String {
    join(&versions(collection), HEAD)
}

/// A file in the inbox.
pub fn inbox_file(name: &str) -> String {
    join(INBOX, name)
}

/// Name of delta file number `n`.
pub fn delta_name(n: u64) -> String {
    format!("{n:020}.delta")
}

/// Name of segment file number `n`.
pub fn segment_name(n: u64) -> String {
    format!("{n:020}.seg")
}

/// Name of the file of version `v`.
pub fn version_name(v: u64) -> String {
    format!("{v:020}.version")
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

/// The version number in a version file name, which must be [`version_name`]'s form (20
/// digits): `7.version` or `+7.version` is no version file of the store's.
pub fn version_number(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".version")?;
    if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
        stem.parse().ok()
    } else {
        None
    }
}

/// The name of a producer's inbox file: `{producer}-{ms:013}-{n:04}.delta`. Names sort by
/// time, which is the order the writer ingests them in.
pub fn inbox_name(producer: &str, ms: u64, n: u32) -> String {
    format!("{producer}-{ms:013}-{n:04}.delta")
}

/// A fresh temporary path under [`TMP`]: `tmp/{pid}-{ms}-{counter}-{hint}.tmp`, unique in
/// this process and, with the pid, among processes sharing the store.
pub fn temp_file(hint: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    join(
        TMP,
        &format!("{}-{}-{n}-{hint}.tmp", std::process::id(), now_ms()),
    )
}

/// The hint of a temporary's file name (`{pid}-{ms}-{counter}-{hint}.tmp`, see
/// [`temp_file`]): `delta`, `segment`, `version`, `replace` (the writer's) or `inbox` (a
/// producer's); None for a name not of that form.
pub fn temp_hint(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".tmp")?;
    let mut parts = stem.splitn(4, '-');
    let numeric =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !(numeric(parts.next()) && numeric(parts.next()) && numeric(parts.next())) {
        return None;
    }
    parts.next().filter(|h| !h.is_empty())
}

/// A name that breaks the name rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {name:?}: {rule}")]
pub struct NameError {
    /// Which kind of name ("collection name", "producer name").
    pub what: &'static str,
    /// The name as given.
    pub name: String,
    /// The rule it breaks.
    pub rule: &'static str,
}

/// Check a collection name: 1 to 64 characters of `A-Z a-z 0-9 _ - .`, not starting with
/// a dot (names become directory names).
pub fn check_collection_name(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(NameError {
            what: "collection name",
            name: name.to_string(),
            rule: "use 1 to 64 characters of A-Z a-z 0-9 _ - . not starting with a dot",
        })
    }
}

/// Check a producer name for inbox files: 1 to 64 characters of `A-Z a-z 0-9 _ -`.
pub fn check_producer_name(name: &str) -> Result<(), NameError> {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(NameError {
            what: "producer name",
            name: name.to_string(),
            rule: "use 1 to 64 characters of A-Z a-z 0-9 _ -",
        })
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
        assert!(check_producer_name("lambda-1").is_ok());
        assert!(check_producer_name("a.b").is_err());
        assert_eq!(file_number(&delta_name(42)), Some(42));
        assert_eq!(file_number(&segment_name(7)), Some(7));
        assert_eq!(file_number("x.delta"), None);
        assert_eq!(version_number(&version_name(9)), Some(9));
        for foreign in [
            "7.version",
            "007.version",
            "+0000000000000000007.version",
            "x.version",
        ] {
            assert_eq!(version_number(foreign), None, "{foreign}");
        }
        assert_eq!(
            check_collection_name("a/b").unwrap_err().to_string(),
            "invalid collection name: \"a/b\": use 1 to 64 characters of A-Z a-z 0-9 _ - . not starting with a dot"
        );
    }

    #[test]
    fn temp_hints() {
        let t = temp_file("segment");
        assert_eq!(temp_hint(file_name(&t)), Some("segment"));
        assert_eq!(temp_hint("12-34-5-inbox.tmp"), Some("inbox"));
        assert_eq!(temp_hint("12-34-5-.tmp"), None);
        assert_eq!(temp_hint("x-34-5-delta.tmp"), None);
        assert_eq!(temp_hint("notes.txt"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(
            version_file("c", 3),
            "versions/c/00000000000000000003.version"
        );
        assert_eq!(head("c"), "versions/c/HEAD");
        assert_eq!(delta(&delta_name(1)), "deltas/00000000000000000001.delta");
        assert_eq!(parent("versions/c/HEAD"), "versions/c");
        assert_eq!(parent("x"), "");
        assert_eq!(file_name("versions/c/HEAD"), "HEAD");
        assert_eq!(join("", "x"), "x");
        assert!(temp_file("seg").starts_with("tmp/"));
        assert_ne!(temp_file("a"), temp_file("a"));
        assert_eq!(inbox_name("p", 5, 2), "p-0000000000005-0002.delta");
    }
}
