//! Garbage collection: retention of versions (newest N, pinned, head, live snapshots) and
//! deletion of files that no retained version references and that are older than the grace
//! period. GC follows references, never age alone.

use std::collections::HashSet;
use std::time::SystemTime;

use strata_storage::Metadata;

use crate::error::Result;
use crate::layout;
use crate::store::Store;

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

impl Store {
    /// Apply retention and delete unreferenced files older than the grace period.
    pub fn gc(&self) -> Result<GcReport> {
        let w = self.writer("gc")?;
        let _g = self.lock();
        let mut report = GcReport::default();
        let live: Vec<(String, u64)> = {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            live.retain(|s| s.strong_count() > 0);
            live.iter()
                .filter_map(|s| s.upgrade())
                .map(|s| (s.info.name.clone(), s.version.version))
                .collect()
        };
        let mut referenced: HashSet<String> = HashSet::new();
        let mut c = w.manifest.begin();
        let mut dropped_files = Vec::new();
        let collections = w.manifest.collections()?;
        let names: HashSet<&str> = collections.iter().map(|c| c.name.as_str()).collect();
        for info in &collections {
            let head = w.manifest.head(&info.name)?;
            let pins = w.manifest.pins(&info.name)?;
            let mut versions = w.manifest.versions(&info.name)?;
            versions.sort_by_key(|v| std::cmp::Reverse(v.version));
            for (i, v) in versions.iter().enumerate() {
                let keep = i < self.options.retain_versions
                    || Some(v.version) == head
                    || pins.contains(&v.version)
                    || live.iter().any(|(c, n)| *c == info.name && *n == v.version);
                if keep {
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
        for s in self.live.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if let Some(s) = s.upgrade() {
                referenced.extend(s.version.segments.iter().map(|x| x.file.clone()));
                referenced.extend(s.version.deltas.iter().map(|x| x.file.clone()));
            }
        }
        c.commit(w.epoch)?;
        for path in dropped_files {
            self.remove_counted(&path, &mut report)?;
        }
        let grace = self.options.gc_grace;
        let old_enough = |meta: &Metadata| {
            SystemTime::now()
                .duration_since(meta.modified)
                .is_ok_and(|age| age >= grace)
        };
        for dir in [layout::SEGMENTS, layout::DELTAS, layout::TMP] {
            for entry in self.storage.list(dir)? {
                if referenced.contains(&entry.name) {
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
        let mut forget = w.manifest.begin();
        for name in w.manifest.ingested_all()? {
            let path = layout::inbox_file(&name);
            match self.storage.stat(&path)? {
                None => forget.delete_ingested(&name),
                Some(meta) if old_enough(&meta) => {
                    self.remove_counted(&path, &mut report)?;
                    forget.delete_ingested(&name);
                }
                Some(_) => report.files_in_grace += 1,
            }
        }
        forget.commit(w.epoch)?;
        // Version directories of dropped collections.
        for entry in self.storage.list(layout::VERSIONS)? {
            let name = entry.name;
            if !names.contains(name.as_str()) && !self.storage.exists(&layout::head(&name))? {
                let dir = layout::versions(&name);
                for f in self.storage.list(&dir)? {
                    self.remove_counted(&layout::join(&dir, &f.name), &mut report)?;
                }
                self.storage.remove_dir(&dir)?;
            }
        }
        Ok(report)
    }

    fn remove_counted(&self, path: &str, report: &mut GcReport) -> Result<()> {
        let Some(meta) = self.storage.stat(path)? else {
            return Ok(());
        };
        self.storage.remove(path)?;
        report.files_deleted += 1;
        report.bytes_freed += meta.len;
        Ok(())
    }
}
