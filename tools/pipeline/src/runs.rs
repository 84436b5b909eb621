//! Compaction runs: the embedding producer writes one sealed strata delta per collection
//! under the run's prefix (`lines/delta/{run_id}/`, `words/delta/{run_id}/`) and then
//! inserts the COMPACTION_RUN item; the compactor merges those deltas when the insert
//! reaches it. A [`RunSource`] finds a run's delta files ([`LocalRuns`]: a directory tree,
//! the embedded default and what EFS gives); [`merge_run`] decodes, checks and applies them
//! with every operation re-stamped with the SequenceNumber of the run's INSERT, so a run
//! takes its place in the stream's order and merging it twice changes nothing. Completed
//! runs are announced through a [`RunReporter`] (the DynamoDB write-back of the
//! COMPACTION_RUN state plugs in there).

use std::path::{Component, Path, PathBuf};

use strata_engine::{validate, ReadableStore, Writer};
use strata_formats::{decode_delta, Operation};
use strata_storage::{LocalStorage, Storage};
use strata_stream::ops::{DeltaLocation, DeltaOutcome, RunCompleted};
use strata_stream::{Collection, MergeRun};

/// The largest run delta read (a receipt's words are a few MB; this bounds a bad file).
pub const MAX_RUN_DELTA_BYTES: u64 = 1 << 30;

/// A run delta file: its name (for messages) and its bytes.
pub type RunFile = (String, Vec<u8>);

/// Where a run's delta files are found.
pub trait RunSource {
    /// The bytes of every delta file under `location`, in name order; `Ok(None)` when
    /// there is none (the run is not ready or its files are gone).
    fn fetch(&self, location: &DeltaLocation) -> Result<Option<Vec<RunFile>>, String>;
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

impl RunSource for LocalRuns {
    fn fetch(&self, location: &DeltaLocation) -> Result<Option<Vec<RunFile>>, String> {
        let dir = self.dir(location)?;
        let storage = LocalStorage::at(&self.root);
        let entries = match storage.list(&dir) {
            Ok(e) => e,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let mut files: Vec<_> = entries
            .into_iter()
            .filter(|e| !e.meta.is_dir && e.name.ends_with(".delta"))
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = Vec::with_capacity(files.len());
        for file in files {
            let path = format!("{dir}/{}", file.name);
            let shown = storage.location(&path).display().to_string();
            if file.meta.len > MAX_RUN_DELTA_BYTES {
                return Err(format!(
                    "{shown}: {} bytes exceeds the {MAX_RUN_DELTA_BYTES}-byte limit of a run delta",
                    file.meta.len
                ));
            }
            let bytes = storage.read(&path).map_err(|e| e.to_string())?;
            out.push((shown, bytes));
        }
        Ok(Some(out))
    }
}

/// Told about every run whose deltas all merged.
pub trait RunReporter {
    /// The run is merged and committed; an error keeps the run pending (it is merged again,
    /// which changes nothing, and reported again next time).
    fn completed(&mut self, run: &MergeRun, done: &RunCompleted) -> Result<(), String>;
}

/// A reporter that keeps what it was told (the local default; tests read it).
#[derive(Debug, Default, Clone)]
pub struct CollectingReporter {
    /// The completed runs, in order.
    pub completed: Vec<RunCompleted>,
}

impl RunReporter for CollectingReporter {
    fn completed(&mut self, _run: &MergeRun, done: &RunCompleted) -> Result<(), String> {
        self.completed.push(done.clone());
        Ok(())
    }
}

/// Decode one collection's run files into operations stamped with the run's seq.
fn load(
    store: &Writer,
    collection: Collection,
    run: &MergeRun,
    files: Vec<RunFile>,
) -> Result<Vec<Operation>, String> {
    let info = store
        .collection_info(collection.as_str())
        .map_err(|e| e.to_string())?;
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
            Ok(Some(files)) => match load(store, d.collection, run, files) {
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
}
