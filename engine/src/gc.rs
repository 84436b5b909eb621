//! Garbage collection: retention of versions (newest N, pinned, head, live snapshots) and
//! deletion of files that no retained version references and that are older than the grace
//! period. GC follows references, never age alone.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::fsutil;
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
                    dropped_files.push(self.layout.version_file(&info.name, v.version));
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
        let old_enough = |path: &Path| -> Result<bool> {
            let meta = fs::metadata(path).map_err(Error::io("stat", path))?;
            let modified = meta.modified().map_err(Error::io("stat", path))?;
            Ok(SystemTime::now()
                .duration_since(modified)
                .is_ok_and(|age| age >= grace))
        };
        for dir in [
            self.layout.segments(),
            self.layout.deltas(),
            self.layout.tmp(),
        ] {
            for entry in fs::read_dir(&dir).map_err(Error::io("list", &dir))? {
                let entry = entry.map_err(Error::io("list", &dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if referenced.contains(&name) {
                    continue;
                }
                let path = entry.path();
                if old_enough(&path)? {
                    self.remove_counted(&path, &mut report)?;
                } else {
                    report.files_in_grace += 1;
                }
            }
        }
        // Ingested inbox files: their content lives on as a registered delta.
        let mut forget = w.manifest.begin();
        for name in w.manifest.ingested_all()? {
            let path = self.layout.inbox().join(&name);
            if !path.exists() {
                forget.delete_ingested(&name);
            } else if old_enough(&path)? {
                self.remove_counted(&path, &mut report)?;
                forget.delete_ingested(&name);
            } else {
                report.files_in_grace += 1;
            }
        }
        forget.commit(w.epoch)?;
        // Version directories of dropped collections.
        let root = self.layout.versions_root();
        for entry in fs::read_dir(&root).map_err(Error::io("list", &root))? {
            let entry = entry.map_err(Error::io("list", &root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !names.contains(name.as_str()) && !self.layout.head(&name).exists() {
                for f in fs::read_dir(entry.path()).map_err(Error::io("list", entry.path()))? {
                    let f = f.map_err(Error::io("list", entry.path()))?;
                    self.remove_counted(&f.path(), &mut report)?;
                }
                fs::remove_dir(entry.path()).map_err(Error::io("remove", entry.path()))?;
            }
        }
        Ok(report)
    }

    fn remove_counted(&self, path: &Path, report: &mut GcReport) -> Result<()> {
        let len = match fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("stat", path)(e)),
        };
        fs::remove_file(path).map_err(Error::io("remove", path))?;
        if let Some(dir) = path.parent() {
            fsutil::sync_dir(dir)?;
        }
        report.files_deleted += 1;
        report.bytes_freed += len;
        Ok(())
    }
}
