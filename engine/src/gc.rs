//! Garbage collection: retention of versions (newest N, pinned, head, live snapshots) and
//! deletion of files that no retained version references and that are older than the grace
//! period. GC follows references, never age alone.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use strata_storage::Metadata;

use crate::error::Result;
use crate::layout;
use crate::store::{ReadableStore, Role};
use crate::writer::Writer;

/// What a GC run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Version records dropped by retention.
    pub versions_dropped: usize,
    /// Files deleted.
    pub files_deleted: usize,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Unreferenced files kept because they are younger than the grace period.
    pub files_in_grace: usize,
}

/// What a GC run keeps: the head, pinned versions and versions a live snapshot shows always,
/// besides these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOptions {
    /// The newest versions kept per collection.
    pub retain_versions: usize,
    /// Versions younger than this are kept too (`None`: only the count).
    pub retain_for: Option<Duration>,
    /// Files unreferenced for less than this are kept (readers elsewhere may map them).
    pub grace: Duration,
}

impl GcOptions {
    /// Keep only what is younger than `age`, versions and unreferenced files alike (besides
    /// the head, pins and live snapshots), as Lance's `cleanup_old_versions(older_than)`:
    /// `strata gc --older-than`.
    pub fn older_than(age: Duration) -> GcOptions {
        GcOptions {
            retain_versions: 0,
            retain_for: Some(age),
            grace: age,
        }
    }
}

impl Writer {
    /// Apply retention and delete unreferenced files older than the grace period, as the
    /// store's options say ([`StoreOptions`](crate::StoreOptions)`::retain_versions`,
    /// `retain_for` and `gc_grace`).
    pub fn gc(&self) -> Result<GcReport> {
        let o = self.options();
        self.gc_with(&GcOptions {
            retain_versions: o.retain_versions,
            retain_for: o.retain_for,
            grace: o.gc_grace,
        })
    }

    /// [`Writer::gc`] with explicit retention and grace.
    pub fn gc_with(&self, options: &GcOptions) -> Result<GcReport> {
        let _g = self.lock()?;
        let now_ms = crate::clock::now_ms();
        let young_from = options
            .retain_for
            .map(|d| now_ms.saturating_sub(d.as_millis().min(u128::from(u64::MAX)) as u64));
        let m = self.manifest();
        let storage = self.storage();
        let mut report = GcReport::default();
        let live_states = self.core().live_states();
        let live: Vec<(String, u64)> = live_states
            .iter()
            .map(|s| (s.info.name.clone(), s.version.version))
            .collect();
        let mut referenced: HashSet<String> = HashSet::new();
        let mut c = m.begin();
        let mut dropped_files = Vec::new();
        let collections = m.collections()?;
        let names: HashSet<&str> = collections.iter().map(|c| c.name.as_str()).collect();
        let mut kept: Vec<(&str, HashSet<u64>)> = Vec::new();
        for info in &collections {
            kept.push((&info.name, HashSet::new()));
            let head = m.head(&info.name)?;
            let pins = m.pins(&info.name)?;
            let mut versions = m.versions(&info.name)?;
            versions.sort_by_key(|v| std::cmp::Reverse(v.version));
            for (i, v) in versions.iter().enumerate() {
                let keep = i < options.retain_versions
                    || young_from.is_some_and(|t| v.created_ms >= t)
                    || Some(v.version) == head
                    || pins.contains(&v.version)
                    || live.iter().any(|(c, n)| *c == info.name && *n == v.version);
                if keep {
                    if let Some((_, k)) = kept.last_mut() {
                        k.insert(v.version);
                    }
                    referenced.extend(v.segments.iter().map(|s| s.file.clone()));
                    referenced.extend(v.deltas.iter().map(|d| d.file.clone()));
                } else {
                    c.delete_version(&info.name, v.version);
                    dropped_files.push(layout::version_file(&info.name, v.version));
                    report.versions_dropped += 1;
                }
            }
        }
        // Snapshots still open in this process keep their files even if their collection
        // was dropped or their version left the manifest.
        for s in &live_states {
            referenced.extend(s.version.segments.iter().map(|x| x.file.clone()));
            referenced.extend(s.version.deltas.iter().map(|x| x.file.clone()));
        }
        self.commit_batch(c)?;
        for path in dropped_files {
            self.remove_counted(&path, &mut report)?;
        }
        for (name, versions) in &kept {
            self.remove_orphan_versions(name, versions, &mut report)?;
        }
        let grace = options.grace;
        let old_enough = |meta: &Metadata| {
            SystemTime::now()
                .duration_since(meta.modified)
                .is_ok_and(|age| age >= grace)
        };
        for dir in [layout::SEGMENTS, layout::DELTAS, layout::TMP] {
            for entry in storage.list(dir)? {
                // Only files the store could have written are collected: a directory or a
                // name the storage layer refuses (a backslash, say) is not strata's.
                let foreign = entry.meta.is_dir
                    || strata_storage::check_path(&layout::join(dir, &entry.name)).is_err();
                if foreign || referenced.contains(&entry.name) {
                    continue;
                }
                if old_enough(&entry.meta) {
                    self.remove_counted(&layout::join(dir, &entry.name), &mut report)?;
                } else {
                    report.files_in_grace += 1;
                }
            }
        }
        // Ingested inbox files: their content lives on as a registered delta.
        let mut forget = m.begin();
        for name in m.ingested_all()? {
            let path = layout::inbox_file(&name);
            match storage.stat(&path)? {
                None => forget.delete_ingested(&name),
                Some(meta) if old_enough(&meta) => {
                    self.remove_counted(&path, &mut report)?;
                    forget.delete_ingested(&name);
                }
                Some(_) => report.files_in_grace += 1,
            }
        }
        self.commit_batch(forget)?;
        self.remove_dropped_collections(&names, &mut report)?;
        Ok(report)
    }

    /// Remove the version files of `collection` that name no version the manifest keeps:
    /// those of versions an earlier GC dropped from the manifest and was stopped (killed, or
    /// an I/O error) before deleting. A reader listing version files would show them as
    /// versions, and `verify` would read them, so they do not wait for the next drop.
    fn remove_orphan_versions(
        &self,
        collection: &str,
        kept: &HashSet<u64>,
        report: &mut GcReport,
    ) -> Result<()> {
        let dir = layout::versions(collection);
        // A collection whose directory was never made (its creation stopped after the
        // manifest commit) has no version files to collect.
        if !self.storage().exists(&dir)? {
            return Ok(());
        }
        for entry in self.storage().list(&dir)? {
            let orphan = !entry.meta.is_dir
                && layout::version_number(&entry.name).is_some_and(|v| !kept.contains(&v));
            if orphan {
                self.remove_counted(&layout::join(&dir, &entry.name), report)?;
            }
        }
        Ok(())
    }

    /// Remove the version directories of dropped collections (`names` are the live ones).
    fn remove_dropped_collections(
        &self,
        names: &HashSet<&str>,
        report: &mut GcReport,
    ) -> Result<()> {
        let storage = self.storage();
        for entry in storage.list(layout::VERSIONS)? {
            let name = entry.name;
            if !entry.meta.is_dir || layout::check_collection_name(&name).is_err() {
                continue;
            }
            if !names.contains(name.as_str()) && !storage.exists(&layout::head(&name))? {
                let dir = layout::versions(&name);
                for f in storage.list(&dir)? {
                    self.remove_counted(&layout::join(&dir, &f.name), report)?;
                }
                storage.remove_dir(&dir)?;
            }
        }
        Ok(())
    }

    fn remove_counted(&self, path: &str, report: &mut GcReport) -> Result<()> {
        let Some(meta) = self.storage().stat(path)? else {
            return Ok(());
        };
        strata_storage::failpoint!("gc: remove", self.storage().location(path));
        self.storage().remove(path)?;
        report.files_deleted += 1;
        report.bytes_freed += meta.len;
        Ok(())
    }
}
