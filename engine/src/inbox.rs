//! Inbox ingestion: producers that are not the writer drop sealed delta files into
//! `inbox/`; the writer registers each one exactly once (the inbox name is recorded in the
//! same manifest batch as the version that registers it). Torn and corrupt files are
//! reported and left where they are; nothing is deleted here. The producer side is
//! [`write_inbox_delta`], over [`strata_storage::inbox`].

use std::path::{Path, PathBuf};

use strata_formats::{DeltaHeader, DeltaWriter, Operation};
use strata_storage::{publish_inbox_delta, LocalStorage, Storage, StorageError};

use crate::clock::now_ms;
use crate::error::{delta_error, Result};
use crate::layout;
use crate::store::ReadableStore;
use crate::validate::validate;
use crate::writer::Writer;

/// What an inbox ingestion did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Files registered now: (inbox name, collection, operations, version).
    pub ingested: Vec<(String, String, usize, u64)>,
    /// Files already registered earlier (seen again, applied once).
    pub already: usize,
    /// Unsealed files (a producer crashed mid-write): ignored.
    pub torn: Vec<String>,
    /// Files that cannot be registered: (name, why). Left in place for an operator.
    pub failed: Vec<(String, String)>,
}

impl Writer {
    /// Register every new sealed delta in the inbox, oldest name first.
    pub fn ingest_inbox(&self) -> Result<IngestReport> {
        self.check_sync()?;
        let storage = self.storage();
        let mut names: Vec<String> = storage
            .list(layout::INBOX)?
            .into_iter()
            .filter(|e| !e.meta.is_dir && e.name.ends_with(".delta"))
            .map(|e| e.name)
            .collect();
        names.sort();
        let mut report = IngestReport::default();
        for name in names {
            if self.manifest().ingested(&name)?.is_some() {
                report.already += 1;
                continue;
            }
            let path = layout::inbox_file(&name);
            let read = (|| {
                strata_storage::failpoint!("ingest: read inbox file", storage.location(&path));
                storage.read(&path)
            })();
            let bytes = match read {
                Ok(bytes) => bytes,
                // A name the storage layer refuses (a backslash, say) is one bad file, not
                // a reason to stop ingesting the others.
                Err(e @ StorageError::InvalidPath { .. }) => {
                    report.failed.push((name, e.to_string()));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let delta = match strata_formats::decode_delta(&bytes) {
                Ok(d) if d.is_sealed() => d,
                // No seal, or cut short inside the header: a producer died mid-write.
                Ok(_) | Err(strata_formats::FormatError::Truncated { .. }) => {
                    report.torn.push(name);
                    continue;
                }
                Err(e) => {
                    report.failed.push((name, e.to_string()));
                    continue;
                }
            };
            let collection = delta.header.collection.clone();
            let _g = self.lock()?;
            let snap = match self.head_for_commit(&collection) {
                Ok(s) => s,
                Err(e) => {
                    report.failed.push((name, e.to_string()));
                    continue;
                }
            };
            if let Some((i, why)) = delta
                .ops
                .iter()
                .enumerate()
                .find_map(|(i, op)| validate(snap.info(), op).err().map(|e| (i, e)))
            {
                report.failed.push((name, format!("record {i}: {why}")));
                continue;
            }
            // Linked, not copied, into deltas/; the link fsyncs the directory.
            let file = loop {
                let file = layout::delta_name(self.alloc_file()?);
                let dest = layout::delta(&file);
                strata_storage::failpoint!("ingest: link delta", storage.location(&dest));
                if storage.link(&path, &dest)? {
                    break file;
                }
            };
            let receipt = self.register_delta(
                snap,
                file.clone(),
                bytes.len() as u64,
                &delta.ops,
                now_ms(),
                |c| c.put_ingested(&name, &file),
            )?;
            report
                .ingested
                .push((name, collection, delta.ops.len(), receipt.version));
        }
        Ok(report)
    }
}

/// Write a sealed delta into a store's inbox, without any lock: what producers that are not
/// the writer (the stream Lambda) do. The writer ingests it with [`Writer::ingest_inbox`].
pub fn write_inbox_delta(
    store: impl AsRef<Path>,
    producer: &str,
    header: &DeltaHeader,
    ops: &[Operation],
) -> Result<PathBuf> {
    layout::check_producer_name(producer)?;
    let sealed = DeltaWriter::encode(header, ops).map_err(delta_error)?;
    let storage = LocalStorage::new(store.as_ref())?;
    let path = publish_inbox_delta(&storage, producer, &sealed)?;
    Ok(storage.location(&path))
}
