//! What a run prefix holds, decided from its listing alone (before any file is read), the
//! same way for a directory ([`super::runs::LocalRuns`]) and a bucket
//! ([`super::object_runs::ObjectStoreRuns`]):
//!
//! - `delta.tar.gz` directly under the prefix: the seed's realtime producer, a Chroma
//!   persist directory packed with archive root `.` (seed §4.1; tried first, as the seed
//!   consumer does, §4.2);
//! - `*.delta` files directly under the prefix: sealed strata deltas, read in name order;
//! - `chroma.sqlite3` directly under the prefix: the seed's directory layout (the batch
//!   producer), every file under the prefix (segment directories included) being part of
//!   the persist directory;
//! - none of them: nothing to merge yet (the run's delta is missing, and retried).
//!
//! A prefix holding two of these at once is ambiguous and refused (the run is retried, and
//! reported FAILED if it stays so). Sizes are checked against [`MAX_RUN_DELTA_BYTES`]
//! (each file, and the sum) and counts against [`MAX_RUN_FILES`] before anything is read.

use super::runs::MAX_RUN_DELTA_BYTES;

/// The tarball of the seed's realtime producer.
pub const TARBALL: &str = "delta.tar.gz";
/// The SQLite file that marks a Chroma persist directory.
pub const CHROMA_SQLITE: &str = "chroma.sqlite3";
/// The most files a run prefix may hold.
pub const MAX_RUN_FILES: usize = 10_000;

/// A run delta file: its name (for messages) and its bytes.
pub type RunFile = (String, Vec<u8>);

/// What a prefix holds, with the files to read (paths relative to the prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Nothing to merge.
    Nothing,
    /// Sealed strata deltas, in name order.
    Strata(Vec<String>),
    /// The seed's `delta.tar.gz`.
    Tarball,
    /// The seed's directory layout: every file under the prefix, in name order.
    ChromaDir(Vec<String>),
}

/// A run's delta as fetched: the bytes of the files its [`Layout`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunPayload {
    /// Sealed strata delta files, in name order.
    Strata(Vec<RunFile>),
    /// The seed's tarball (its full name, its bytes).
    ChromaTarball(RunFile),
    /// The seed's directory layout: `where` names the prefix (for messages), `files` are
    /// `(path relative to the prefix, bytes)`.
    ChromaFiles {
        /// The prefix, as shown in messages.
        location: String,
        /// The files of the persist directory.
        files: Vec<RunFile>,
    },
}

/// Decide what a prefix holds from `(path relative to the prefix, size)` of every file
/// under it (any depth; directory markers already dropped). `shown` names the prefix in
/// errors.
pub fn detect(shown: &str, listing: &[(String, u64)]) -> Result<Layout, String> {
    if listing.len() > MAX_RUN_FILES {
        return Err(format!(
            "{shown}: {} files exceed the {MAX_RUN_FILES}-file limit of a run prefix",
            listing.len()
        ));
    }
    let top = |name: &str| listing.iter().any(|(p, _)| p == name);
    let mut strata: Vec<&(String, u64)> = listing
        .iter()
        .filter(|(p, _)| !p.contains('/') && p.ends_with(".delta"))
        .collect();
    strata.sort();
    let kinds = [top(TARBALL), !strata.is_empty(), top(CHROMA_SQLITE)];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(format!(
            "{shown}: holds more than one kind of run delta ({}); refusing to guess",
            [TARBALL, "*.delta", CHROMA_SQLITE]
                .iter()
                .zip(kinds)
                .filter(|(_, k)| *k)
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let check = |files: &[&(String, u64)]| -> Result<(), String> {
        let mut total = 0u64;
        for (p, size) in files {
            if *size > MAX_RUN_DELTA_BYTES {
                return Err(format!(
                    "{shown}/{p}: {size} bytes exceeds the {MAX_RUN_DELTA_BYTES}-byte limit of a run delta"
                ));
            }
            total = total.saturating_add(*size);
        }
        if total > MAX_RUN_DELTA_BYTES {
            return Err(format!(
                "{shown}: {total} bytes in all exceed the {MAX_RUN_DELTA_BYTES}-byte limit of a run delta"
            ));
        }
        Ok(())
    };
    if kinds[0] {
        let tar: Vec<_> = listing.iter().filter(|(p, _)| p == TARBALL).collect();
        check(&tar)?;
        return Ok(Layout::Tarball);
    }
    if kinds[1] {
        check(&strata)?;
        return Ok(Layout::Strata(
            strata.into_iter().map(|(p, _)| p.clone()).collect(),
        ));
    }
    if kinds[2] {
        let mut all: Vec<&(String, u64)> = listing.iter().collect();
        all.sort();
        check(&all)?;
        return Ok(Layout::ChromaDir(
            all.into_iter().map(|(p, _)| p.clone()).collect(),
        ));
    }
    Ok(Layout::Nothing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[(&str, u64)]) -> Vec<(String, u64)> {
        names.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    #[test]
    fn each_layout_is_recognised_from_its_listing() {
        let strata = files(&[("part-1.delta", 3), ("part-0.delta", 3), ("_SUCCESS", 0)]);
        assert_eq!(
            detect("p", &strata).unwrap(),
            Layout::Strata(vec!["part-0.delta".into(), "part-1.delta".into()])
        );
        assert_eq!(
            detect("p", &files(&[("delta.tar.gz", 10)])).unwrap(),
            Layout::Tarball
        );
        let dir = files(&[
            ("seg/data_level0.bin", 100),
            ("chroma.sqlite3", 4096),
            ("seg/header.bin", 100),
        ]);
        assert_eq!(
            detect("p", &dir).unwrap(),
            Layout::ChromaDir(vec![
                "chroma.sqlite3".into(),
                "seg/data_level0.bin".into(),
                "seg/header.bin".into()
            ])
        );
        // Nested deltas or segment files without the database are nothing to merge.
        for nothing in [
            files(&[]),
            files(&[("sub/part-0.delta", 3)]),
            files(&[("seg/header.bin", 1), ("notes.txt", 1)]),
        ] {
            assert_eq!(
                detect("p", &nothing).unwrap(),
                Layout::Nothing,
                "{nothing:?}"
            );
        }
    }

    #[test]
    fn ambiguous_or_oversized_prefixes_are_refused() {
        let both = files(&[("delta.tar.gz", 10), ("part-0.delta", 3)]);
        let err = detect("s3://b/lines/delta/r1", &both).unwrap_err();
        assert!(
            err.contains("more than one kind") && err.contains("delta.tar.gz, *.delta"),
            "{err}"
        );
        let both = files(&[("chroma.sqlite3", 10), ("part-0.delta", 3)]);
        assert!(detect("p", &both).is_err());
        let big = files(&[("delta.tar.gz", MAX_RUN_DELTA_BYTES + 1)]);
        assert!(detect("p", &big).unwrap_err().contains("byte limit"));
        let half = MAX_RUN_DELTA_BYTES / 2 + 1;
        let sum = files(&[("chroma.sqlite3", half), ("seg/data_level0.bin", half)]);
        assert!(detect("p", &sum).unwrap_err().contains("in all exceed"));
        let many: Vec<(String, u64)> = (0..=MAX_RUN_FILES)
            .map(|i| (format!("seg/f{i}"), 1))
            .collect();
        assert!(detect("p", &many).unwrap_err().contains("file limit"));
    }
}
