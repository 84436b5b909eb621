//! Garbage collection of a published store ([`Writer::gc_remote`]): delete the objects
//! under the prefix that no version named by the head object references, once they are
//! older than a grace period (a reader that opened an older head may still be fetching
//! them), in bounded batches.
//!
//! What is kept is computed from the head object read first, then the listing: an object
//! a version the head reaches references is never a candidate, whatever the listing
//! order, and an object uploaded after the head was read is younger than any sensible
//! grace period. It runs under the writer lock, so this store's own publishes do not
//! interleave with it.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use strata_storage::remote::{ObjectStorage, RemoteHead, HEAD_OBJECT, MAX_HEAD_BYTES};

use crate::error::{Error, Result};
use crate::layout;
use crate::writer::Writer;

/// Objects deleted per request.
const DELETE_BATCH: usize = 1000;

/// The largest version file read from a bucket.
const MAX_VERSION_BYTES: u64 = 256 << 20;

/// What a remote GC did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteGcReport {
    /// Objects the published versions reference (kept).
    pub objects_referenced: u64,
    /// Unreferenced objects deleted.
    pub objects_deleted: u64,
    /// Their bytes.
    pub bytes_freed: u64,
    /// Unreferenced objects kept because they are younger than the grace period.
    pub objects_in_grace: u64,
}

impl Writer {
    /// Delete the objects under `remote` that no version of its head object references
    /// and that are older than `grace`; see the module documentation.
    pub fn gc_remote(&self, remote: &ObjectStorage, grace: Duration) -> Result<RemoteGcReport> {
        let _g = self.lock()?;
        let url = remote.url().to_string();
        let Some(fetched) = remote.get(HEAD_OBJECT, MAX_HEAD_BYTES as u64)? else {
            return Err(Error::invalid(
                "remote GC",
                format!("{url}: no head object, nothing was published there"),
            ));
        };
        let head = RemoteHead::parse(&fetched.bytes)
            .map_err(|e| Error::invalid("remote GC", format!("{url}/{HEAD_OBJECT}: {e}")))?;
        if head.store_id != self.store_id() {
            return Err(Error::PublishRefused {
                url,
                reason: format!(
                    "it holds another store ({}); this is store {}, which does not collect \
                     another's garbage",
                    head.describe(),
                    self.store_id()
                ),
            });
        }
        let keep = referenced(remote, &head)?;
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut report = RemoteGcReport::default();
        let mut doomed = Vec::new();
        for dir in [layout::SEGMENTS, layout::DELTAS, layout::VERSIONS] {
            for object in remote.list(dir)? {
                if keep.contains(&object.path) {
                    report.objects_referenced += 1;
                } else if object.modified > cutoff {
                    report.objects_in_grace += 1;
                } else {
                    report.bytes_freed += object.size;
                    doomed.push(object.path);
                }
            }
        }
        for batch in doomed.chunks(DELETE_BATCH) {
            remote.delete_all(batch)?;
            report.objects_deleted += batch.len() as u64;
        }
        Ok(report)
    }
}

/// Every object a version named by `head` references: its version file, segments and
/// deltas (read from the version files in the bucket).
fn referenced(remote: &ObjectStorage, head: &RemoteHead) -> Result<HashSet<String>> {
    let mut keep = HashSet::new();
    for (name, c) in &head.collections {
        for &v in &c.versions {
            let path = layout::version_file(name, v);
            let Some(f) = remote.get(&path, MAX_VERSION_BYTES)? else {
                return Err(Error::invalid(
                    "remote GC",
                    format!(
                        "{}: the head names version {v} of {name:?} but its version file is \
                         missing; nothing was deleted",
                        remote.location(&path)
                    ),
                ));
            };
            let (_, record) = strata_formats::decode_version(&f.bytes)
                .map_err(Error::format(remote.location(&path)))?;
            keep.extend(record.segments.iter().map(|s| layout::segment(&s.file)));
            keep.extend(record.deltas.iter().map(|d| layout::delta(&d.file)));
            keep.insert(path);
        }
    }
    Ok(keep)
}
