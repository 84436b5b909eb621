//! Where a store's bytes go ([`ReadableStore::space`](crate::ReadableStore::space)): the
//! files its head versions need, those only older retained (or pinned) versions hold, files
//! no version references (awaiting the GC grace period), temporaries, the inbox, and the
//! metadata (version files and the manifest). Space amplification is everything on disk
//! divided by what the heads need.

use std::collections::HashSet;

use strata_storage::{DirEntry, Storage};

use crate::error::Result;
use crate::layout;

/// Bytes and files of one part of a store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpaceUsage {
    /// Bytes.
    pub bytes: u64,
    /// Files.
    pub files: usize,
}

impl SpaceUsage {
    fn add(&mut self, bytes: u64) {
        self.bytes += bytes;
        self.files += 1;
    }
}

/// What a store's files hold, by what keeps them
/// ([`ReadableStore::space`](crate::ReadableStore::space)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpaceReport {
    /// Segments and deltas some collection's head version references.
    pub head: SpaceUsage,
    /// Segments and deltas only other retained or pinned versions reference: the rollback
    /// window.
    pub retained: SpaceUsage,
    /// Segments and deltas no version references: GC deletes them once they are older
    /// than the grace period.
    pub unreferenced: SpaceUsage,
    /// Files in `tmp/` (a write or compaction in progress, or left by a crash).
    pub tmp: SpaceUsage,
    /// Inbox files (ingested ones wait for the grace period too).
    pub inbox: SpaceUsage,
    /// Version files and the manifest.
    pub metadata: SpaceUsage,
}

impl SpaceReport {
    /// Every byte counted.
    pub fn total_bytes(&self) -> u64 {
        [
            self.head,
            self.retained,
            self.unreferenced,
            self.tmp,
            self.inbox,
            self.metadata,
        ]
        .iter()
        .map(|u| u.bytes)
        .sum()
    }

    /// Bytes on disk ÷ bytes the head versions need (`None` for a store with no data).
    pub fn amplification(&self) -> Option<f64> {
        (self.head.bytes > 0).then(|| self.total_bytes() as f64 / self.head.bytes as f64)
    }
}

/// Classify the files of `storage`: `head` names the segments and deltas some head version
/// references, `retained` those other versions do.
pub(crate) fn space(
    storage: &dyn Storage,
    head: &HashSet<String>,
    retained: &HashSet<String>,
) -> Result<SpaceReport> {
    let mut report = SpaceReport::default();
    for dir in [layout::SEGMENTS, layout::DELTAS] {
        for entry in files(storage, dir)? {
            let usage = if head.contains(&entry.name) {
                &mut report.head
            } else if retained.contains(&entry.name) {
                &mut report.retained
            } else {
                &mut report.unreferenced
            };
            usage.add(entry.meta.len);
        }
    }
    for (dir, usage) in [
        (layout::TMP, &mut report.tmp),
        (layout::INBOX, &mut report.inbox),
        (layout::MANIFEST, &mut report.metadata),
    ] {
        for entry in files(storage, dir)? {
            usage.add(entry.meta.len);
        }
    }
    for entry in list(storage, layout::VERSIONS)? {
        if entry.meta.is_dir {
            for f in files(storage, &layout::join(layout::VERSIONS, &entry.name))? {
                report.metadata.add(f.meta.len);
            }
        }
    }
    Ok(report)
}

/// A directory's entries; none if it does not exist (a backend may create it lazily).
fn list(storage: &dyn Storage, dir: &str) -> Result<Vec<DirEntry>> {
    if !storage.exists(dir)? {
        return Ok(Vec::new());
    }
    Ok(storage.list(dir)?)
}

/// The files (not directories) of a directory.
fn files(storage: &dyn Storage, dir: &str) -> Result<Vec<DirEntry>> {
    let mut out = list(storage, dir)?;
    out.retain(|e| !e.meta.is_dir);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use strata_formats::{Metric, Op, Quantization, Record};
    use strata_storage::{MemoryStorage, Storage};

    use crate::{ReadableStore, StoreOptions, Writer};

    fn upserts(ids: std::ops::Range<u32>) -> Vec<Op> {
        ids.map(|i| {
            Op::Upsert(Record {
                id: format!("r{i}"),
                embedding: Some(vec![i as f32; 8]),
                document: None,
                metadata: Default::default(),
            })
        })
        .collect()
    }

    #[test]
    fn head_retained_and_unreferenced_bytes_add_up_to_the_files() {
        let storage = Arc::new(MemoryStorage::new());
        let options = StoreOptions {
            retain_versions: 1,
            gc_grace: Duration::from_secs(3600),
            ..StoreOptions::default()
        };
        let w = Writer::open_on(storage.clone(), options).unwrap();
        w.create_collection("c", 8, Metric::L2, Quantization::None)
            .unwrap();
        assert_eq!(w.space().unwrap().amplification(), None);
        w.write("c", upserts(0..100)).unwrap();
        let first = w.space().unwrap();
        assert_eq!(first.head.files, 1, "{first:?}");
        assert_eq!(first.retained.files + first.unreferenced.files, 0);
        w.write("c", upserts(100..200)).unwrap();
        w.compact("c").unwrap();
        let after = w.space().unwrap();
        // The head is one segment; the two deltas are held by the retained versions.
        assert_eq!(after.head.files, 1, "{after:?}");
        assert_eq!(after.retained.files, 2, "{after:?}");
        w.gc().unwrap();
        let collected = w.space().unwrap();
        // Retention dropped the versions holding the deltas; the grace keeps their files.
        assert_eq!(collected.retained.files, 0, "{collected:?}");
        assert_eq!(collected.unreferenced.files, 2, "{collected:?}");
        assert_eq!(collected.head, after.head);
        let amp = collected.amplification().unwrap();
        assert!(amp > 1.0, "{amp}");
        let listed: u64 = ["segments", "deltas"]
            .iter()
            .flat_map(|d| storage.list(d).unwrap())
            .map(|e| e.meta.len)
            .sum();
        assert_eq!(
            listed,
            collected.head.bytes + collected.retained.bytes + collected.unreferenced.bytes
        );
    }
}
