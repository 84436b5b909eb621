//! Compaction runs: the embedding producer writes one sealed strata delta per collection
//! under the run's prefix (`lines/delta/{run_id}/`, `words/delta/{run_id}/`) and then
//! inserts the COMPACTION_RUN item; the compactor merges those deltas when the insert
//! reaches it. A [`RunSource`] finds a run's delta files ([`LocalRuns`]: a directory tree,
//! the embedded default and what EFS gives); [`merge_run`] decodes, checks and applies them
//! with every operation re-stamped with the SequenceNumber of the run's INSERT, so a run
//! takes its place in the stream's order and merging it twice changes nothing. The
//! compactor announces run states through a [`super::reporter::RunReporter`].

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use strata_engine::{validate, ReadableStore, Writer};
use strata_formats::{decode_delta, Operation};
use strata_storage::{layout, LocalStorage, Storage};
use strata_stream::ops::{DeltaLocation, DeltaOutcome};
use strata_stream::{Collection, MergeRun};

use super::run_layout::{detect, Layout, MAX_RUN_FILES, TARBALL};

/// The largest run delta read (a receipt's words are a few MB; this bounds a bad file).
pub const MAX_RUN_DELTA_BYTES: u64 = 1 << 30;

pub use super::run_layout::{RunFile, RunPayload};

/// Where a run's delta files are found.
pub trait RunSource {
    /// The run's delta under `location`, in the layout its listing shows
    /// ([`super::run_layout::detect`]): sealed strata deltas in name order, or the seed's
    /// tarball or directory layout; `Ok(None)` when there is none (the run is not ready or
    /// its files are gone).
    fn fetch(&self, location: &DeltaLocation) -> Result<Option<RunPayload>, String>;

    /// Remove the run's files under `location` once it is merged and its retention has
    /// passed ([`super::run_retention`]): the number removed (0 when they are gone already,
    /// or when the source leaves removal to its owner).
    fn remove(&self, location: &DeltaLocation) -> Result<u64, String>;
}

/// Runs in a local directory tree: `{root}/{key_prefix}` (or `{root}/{bucket}/{key_prefix}`
/// for an `s3://bucket/...` prefix) holds the run's `*.delta` files.
#[derive(Debug, Clone)]
pub struct LocalRuns {
    root: PathBuf,
}

impl LocalRuns {
    /// Runs under `root`.
    pub fn new(root: impl Into<PathBuf>) -> LocalRuns {
        LocalRuns { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The run's directory, relative to the root.
    fn dir(&self, location: &DeltaLocation) -> Result<String, String> {
        let mut dir: Vec<&str> = Vec::new();
        let parts = location
            .bucket
            .iter()
            .map(String::as_str)
            .chain([location.key_prefix.as_str()]);
        for part in parts {
            for c in Path::new(part).components() {
                match c {
                    Component::Normal(p) => dir.extend(p.to_str()),
                    Component::CurDir => {}
                    _ => {
                        return Err(format!(
                            "run prefix {:?} leaves the runs directory (only plain names allowed)",
                            location.raw
                        ))
                    }
                }
            }
        }
        Ok(dir.join("/"))
    }
}

/// Every file under `dir` of `storage`, at most [`MAX_RUN_FILES`] and `depth` levels deep:
/// `(path relative to dir, size)`; `None` when `dir` does not exist.
fn list_tree(
    storage: &LocalStorage,
    dir: &str,
    depth: usize,
) -> Result<Option<Vec<(String, u64)>>, String> {
    let mut out = Vec::new();
    let mut todo = vec![(String::new(), 0usize)];
    while let Some((sub, level)) = todo.pop() {
        let path = if sub.is_empty() {
            dir.to_string()
        } else {
            format!("{dir}/{sub}")
        };
        let entries = match storage.list(&path) {
            Ok(e) => e,
            Err(e) if e.is_not_found() && sub.is_empty() => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        for e in entries {
            let rel = if sub.is_empty() {
                e.name.clone()
            } else {
                format!("{sub}/{}", e.name)
            };
            if e.meta.is_dir {
                if level < depth {
                    todo.push((rel, level + 1));
                }
            } else {
                out.push((rel, e.meta.len));
            }
            if out.len() > MAX_RUN_FILES {
                return Err(format!(
                    "{}: more than {MAX_RUN_FILES} files under a run prefix",
                    storage.location(dir).display()
                ));
            }
        }
    }
    Ok(Some(out))
}

impl RunSource for LocalRuns {
    fn remove(&self, location: &DeltaLocation) -> Result<u64, String> {
        let dir = self.dir(location)?;
        if dir.is_empty() {
            return Err(format!("run prefix {:?} names the runs root", location.raw));
        }
        let storage = LocalStorage::at(&self.root);
        let Some(listing) = list_tree(&storage, &dir, 4)? else {
            return Ok(0);
        };
        let mut dirs: BTreeSet<String> = BTreeSet::new();
        for (name, _) in &listing {
            let path = format!("{dir}/{name}");
            storage.remove(&path).map_err(|e| e.to_string())?;
            let mut parent = layout::parent(&path);
            while parent.len() > dir.len() {
                dirs.insert(parent.to_string());
                parent = layout::parent(parent);
            }
        }
        // Deepest first, then the run's own directory.
        for d in dirs.iter().rev().chain([&dir]) {
            match storage.remove_dir(d) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(listing.len() as u64)
    }

    fn fetch(&self, location: &DeltaLocation) -> Result<Option<RunPayload>, String> {
        let dir = self.dir(location)?;
        let storage = LocalStorage::at(&self.root);
        let shown = storage.location(&dir).display().to_string();
        let Some(listing) = list_tree(&storage, &dir, 4)? else {
            return Ok(None);
        };
        let read = |names: Vec<String>| -> Result<Vec<RunFile>, String> {
            names
                .into_iter()
                .map(|n| {
                    let bytes = storage
                        .read(&format!("{dir}/{n}"))
                        .map_err(|e| e.to_string())?;
                    Ok((n, bytes))
                })
                .collect()
        };
        let shown_files = |files: Vec<RunFile>| {
            files
                .into_iter()
                .map(|(n, b)| (format!("{shown}/{n}"), b))
                .collect::<Vec<_>>()
        };
        Ok(match detect(&shown, &listing)? {
            Layout::Nothing => None,
            Layout::Strata(names) => Some(RunPayload::Strata(shown_files(read(names)?))),
            Layout::Tarball => {
                let mut files = shown_files(read(vec![TARBALL.to_string()])?);
                files.pop().map(RunPayload::ChromaTarball)
            }
            Layout::ChromaDir(names) => Some(RunPayload::ChromaFiles {
                location: shown,
                files: read(names)?,
            }),
        })
    }
}

/// Convert one collection's run delta into operations stamped with the run's seq, each
/// checked against the collection.
fn load(
    store: &Writer,
    collection: Collection,
    run: &MergeRun,
    payload: RunPayload,
) -> Result<Vec<Operation>, String> {
    let info = store
        .collection_info(collection.as_str())
        .map_err(|e| e.to_string())?;
    let files = match payload {
        RunPayload::Strata(files) => files,
        seed => {
            let (name, ops) = super::seed_runs::operations(seed, collection, run.seq)?;
            for (i, op) in ops.iter().enumerate() {
                validate(&info, op).map_err(|e| format!("{name}: record {i}: {e}"))?;
            }
            return Ok(ops);
        }
    };
    let mut ops = Vec::new();
    for (name, bytes) in files {
        let delta = decode_delta(&bytes).map_err(|e| format!("{name}: {e}"))?;
        if !delta.is_sealed() {
            return Err(format!(
                "{name}: not sealed (the producer has not finished it)"
            ));
        }
        if delta.header.collection != collection.as_str() {
            return Err(format!(
                "{name}: a delta of collection {:?} under the {collection} prefix",
                delta.header.collection
            ));
        }
        for (i, mut op) in delta.ops.into_iter().enumerate() {
            op.seq = run.seq;
            validate(&info, &op).map_err(|e| format!("{name}: record {i}: {e}"))?;
            ops.push(op);
        }
    }
    Ok(ops)
}

/// Merge a run: every delta is fetched, decoded and checked before any is written; each
/// collection's operations are then one write. Returns one outcome per delta of the run.
pub fn merge_run(
    store: &Writer,
    source: &dyn RunSource,
    run: &MergeRun,
) -> Result<Vec<(Collection, DeltaOutcome)>, strata_engine::Error> {
    let mut outcomes = Vec::with_capacity(run.deltas.len());
    let mut ready = Vec::new();
    for d in &run.deltas {
        let outcome = match source.fetch(&d.location) {
            Ok(None) => DeltaOutcome::Missing,
            Err(reason) => DeltaOutcome::Failed { reason },
            Ok(Some(payload)) => match load(store, d.collection, run, payload) {
                Ok(ops) => {
                    ready.push((d.collection, ops));
                    continue;
                }
                Err(reason) => DeltaOutcome::Failed { reason },
            },
        };
        outcomes.push((d.collection, outcome));
    }
    if !outcomes.is_empty() {
        // Something is missing or broken: write nothing, the run is retried whole.
        return Ok(outcomes);
    }
    for (collection, ops) in ready {
        let n = ops.len() as u64;
        if !ops.is_empty() {
            store.write_sequenced(collection.as_str(), ops)?;
        }
        outcomes.push((collection, DeltaOutcome::Merged { operations: n }));
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(raw: &str) -> DeltaLocation {
        DeltaLocation::parse(raw).unwrap()
    }

    #[test]
    fn prefixes_stay_inside_the_root() {
        let runs = LocalRuns::new("/runs");
        assert_eq!(runs.dir(&loc("lines/delta/r1/")).unwrap(), "lines/delta/r1");
        assert_eq!(
            runs.dir(&loc("s3://bucket/words/delta/r1")).unwrap(),
            "bucket/words/delta/r1"
        );
        for bad in ["lines/../../etc", "s3://../x", "a/../b"] {
            let err = runs.dir(&loc(bad)).unwrap_err();
            assert!(err.contains("leaves the runs directory"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_missing_directory_is_a_missing_run() {
        let dir = tempfile::tempdir().unwrap();
        let runs = LocalRuns::new(dir.path());
        assert_eq!(runs.fetch(&loc("lines/delta/nope/")).unwrap(), None);
        std::fs::create_dir_all(dir.path().join("lines/delta/empty")).unwrap();
        std::fs::write(dir.path().join("lines/delta/empty/notes.txt"), b"x").unwrap();
        assert_eq!(runs.fetch(&loc("lines/delta/empty/")).unwrap(), None);
    }

    #[test]
    fn the_seeds_layouts_are_read_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let put = |rel: &str, bytes: &[u8]| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        };
        put("lines/delta/t1/delta.tar.gz", b"gz");
        put("words/delta/d1/chroma.sqlite3", b"db");
        put("words/delta/d1/seg-1/header.bin", b"h");
        put("words/delta/d1/seg-1/link_lists.bin", b"");
        put("words/delta/s1/part-00000.delta", b"s");
        let runs = LocalRuns::new(dir.path());
        let root = dir.path().display().to_string();
        assert_eq!(
            runs.fetch(&loc("lines/delta/t1/")).unwrap(),
            Some(RunPayload::ChromaTarball((
                format!("{root}/lines/delta/t1/delta.tar.gz"),
                b"gz".to_vec()
            )))
        );
        assert_eq!(
            runs.fetch(&loc("words/delta/d1/")).unwrap(),
            Some(RunPayload::ChromaFiles {
                location: format!("{root}/words/delta/d1"),
                files: vec![
                    ("chroma.sqlite3".into(), b"db".to_vec()),
                    ("seg-1/header.bin".into(), b"h".to_vec()),
                    ("seg-1/link_lists.bin".into(), Vec::new()),
                ],
            })
        );
        assert_eq!(
            runs.fetch(&loc("words/delta/s1")).unwrap(),
            Some(RunPayload::Strata(vec![(
                format!("{root}/words/delta/s1/part-00000.delta"),
                b"s".to_vec()
            )]))
        );
    }
}
