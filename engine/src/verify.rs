//! Offline checks of a store directory and of single files: every crc of every file, every
//! HEAD pointing at a decodable version whose files exist with the recorded sizes. Reads
//! only; works while a writer has the store open.

use std::path::{Path, PathBuf};

use strata_formats::{
    decode_delta, decode_version, sniff, AlignedBuf, DeltaStatus, FileKind, FormatVersion,
    SegmentLayout, SegmentView, Seq,
};
use strata_storage::{LocalStorage, Storage};

use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::layout;
use crate::store::{is_store, read_head_file};

/// One problem found by [`verify_store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// What is wrong (names the block or record).
    pub what: String,
}

/// What [`verify_store`] checked and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Files checked.
    pub files: usize,
    /// Bytes checked.
    pub bytes: u64,
    /// Problems found (empty when the store is intact).
    pub problems: Vec<Problem>,
    /// Every retained version of every collection (by collection, then version), and
    /// whether all the files it needs are intact: where a file is damaged, the versions an
    /// operator can `rollback` to.
    pub versions: Vec<VersionHealth>,
}

/// Whether one retained version can be read: its version file decodes and every segment
/// and delta it references exists with the recorded size and passes its checksums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionHealth {
    /// The collection.
    pub collection: String,
    /// The version.
    pub version: u64,
    /// Whether HEAD names it.
    pub head: bool,
    /// Files it needs that are damaged or missing (empty: intact).
    pub damaged: Vec<PathBuf>,
}

impl VersionHealth {
    /// Whether every file the version needs is intact.
    pub fn intact(&self) -> bool {
        self.damaged.is_empty()
    }
}

impl VerifyReport {
    /// The intact retained versions of `collection`, newest first (rollback targets).
    pub fn intact_versions(&self, collection: &str) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .versions
            .iter()
            .filter(|h| h.collection == collection && h.intact())
            .map(|h| h.version)
            .collect();
        v.sort_unstable_by_key(|&v| std::cmp::Reverse(v));
        v
    }

    /// Whether no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A summary of one strata file, as `strata inspect` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSummary {
    /// The kind of file.
    pub kind: FileKind,
    /// Its format version.
    pub version: Option<FormatVersion>,
    /// Its size.
    pub bytes: u64,
    /// Collection (delta and version files).
    pub collection: Option<String>,
    /// Dimensions.
    pub dims: Option<u32>,
    /// Records (delta), rows (segment) or live rows (version).
    pub count: u64,
    /// Smallest and largest seq.
    pub seq_range: Option<(Seq, Seq)>,
    /// Further facts as (name, value) lines.
    pub details: Vec<(String, String)>,
    /// `Ok` when every checksum verified, otherwise the first problem.
    pub checksums: std::result::Result<(), String>,
}

/// Inspect one file: its kind, header facts and checksum status.
pub fn inspect_file(path: &Path) -> Result<FileSummary> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        Error::invalid(
            "file",
            format!("{}: not a file name strata can open", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    inspect_in(&LocalStorage::at(dir), name)
}

/// Inspect the file at `path` in `storage`, mapped (the store's files are immutable; a
/// foreign file being truncated while it is inspected is not supported).
fn inspect_in(storage: &dyn Storage, path: &str) -> Result<FileSummary> {
    let mapped = storage.map(path)?;
    inspect_bytes(&mapped, &storage.location(path))
}

/// Inspect a file's bytes; `path` names it in messages.
fn inspect_bytes(bytes: &[u8], path: &Path) -> Result<FileSummary> {
    let kind = sniff(bytes).ok_or_else(|| {
        Error::invalid(
            "file",
            format!("{}: not a strata file (unknown magic)", path.display()),
        )
    })?;
    let mut s = FileSummary {
        kind,
        version: None,
        bytes: bytes.len() as u64,
        collection: None,
        dims: None,
        count: 0,
        seq_range: None,
        details: vec![],
        checksums: Ok(()),
    };
    match kind {
        FileKind::Delta => summarize_delta(bytes, &mut s),
        FileKind::Segment => summarize_segment(bytes, path, &mut s)?,
        FileKind::Version => summarize_version(bytes, &mut s),
    }
    Ok(s)
}

/// What a delta file's summary says beyond its kind and size.
fn summarize_delta(bytes: &[u8], s: &mut FileSummary) {
    match decode_delta(bytes) {
        Ok(d) => {
            s.version = Some(d.version);
            s.collection = Some(d.header.collection.clone());
            s.dims = Some(d.header.dims);
            s.count = d.ops.len() as u64;
            s.details
                .push(("producer".into(), d.header.producer.clone()));
            s.details
                .push(("created".into(), rfc3339(d.header.created_ms)));
            if let (Some(min), Some(max)) = (
                d.ops.iter().map(|o| o.seq).min(),
                d.ops.iter().map(|o| o.seq).max(),
            ) {
                s.seq_range = Some((min, max));
            }
            match d.status {
                DeltaStatus::Sealed(_) => s.details.push(("sealed".into(), "yes".into())),
                DeltaStatus::Torn { complete_bytes } => {
                    s.details.push(("sealed".into(), "no".into()));
                    s.checksums = Err(format!(
                        "torn: no seal footer; {} complete records in the first {complete_bytes} bytes",
                        d.ops.len()
                    ));
                }
            }
        }
        Err(e) => s.checksums = Err(e.to_string()),
    }
}

/// What a segment file's summary says beyond its kind and size.
fn summarize_segment(bytes: &[u8], path: &Path, s: &mut FileSummary) -> Result<()> {
    let aligned;
    let bytes = if (bytes.as_ptr() as usize).is_multiple_of(64) {
        bytes
    } else {
        aligned = AlignedBuf::copy_from(bytes);
        aligned.as_bytes()
    };
    match SegmentLayout::parse(bytes) {
        Ok(layout) => {
            let h = layout.header;
            s.version = Some(h.version);
            s.dims = Some(h.dims);
            s.count = h.rows;
            s.seq_range = Some((h.min_seq, h.max_seq));
            s.details
                .push(("quantization".into(), h.quantization.to_string()));
            for b in &layout.blocks {
                s.details.push((
                    format!("block {}", b.kind.name()),
                    format!("offset {} length {} crc {:#010x}", b.offset, b.len, b.crc),
                ));
            }
            let view = SegmentView::new(bytes, &layout).map_err(Error::format(path))?;
            if let Ok(sh) = view.shadow() {
                s.details
                    .push(("shadow entries".into(), sh.len().to_string()));
            }
            s.checksums = view.verify().map_err(|e| e.to_string());
        }
        Err(e) => s.checksums = Err(e.to_string()),
    }
    Ok(())
}

/// What a version file's summary says beyond its kind and size.
fn summarize_version(bytes: &[u8], s: &mut FileSummary) {
    match decode_version(bytes) {
        Ok((v, r)) => {
            s.version = Some(v);
            s.collection = Some(r.collection.clone());
            s.dims = Some(r.dims);
            s.count = r.rows;
            s.seq_range = Some((Seq::ZERO, r.seq_watermark));
            s.details.push(("version".into(), r.version.to_string()));
            s.details.push(("parent".into(), format!("{:?}", r.parent)));
            s.details
                .push(("writer epoch".into(), r.writer_epoch.to_string()));
            s.details.push(("metric".into(), r.metric.to_string()));
            s.details
                .push(("segments".into(), r.segments.len().to_string()));
            s.details
                .push(("deltas".into(), r.deltas.len().to_string()));
            s.details
                .push(("retained filter ops".into(), r.retained.len().to_string()));
            s.details.push(("note".into(), r.note.clone()));
        }
        Err(e) => s.checksums = Err(e.to_string()),
    }
}

/// Check every file of a store directory. Never writes.
pub fn verify_store(root: &Path) -> Result<VerifyReport> {
    verify_store_on(&LocalStorage::at(root))
}

/// [`verify_store`] on any storage.
pub fn verify_store_on(storage: &dyn Storage) -> Result<VerifyReport> {
    if !is_store(storage) {
        return Err(Error::invalid(
            "store",
            format!(
                "{} is not a strata store (no versions/ directory)",
                storage.location("").display()
            ),
        ));
    }
    let mut report = VerifyReport::default();
    let problem = |report: &mut VerifyReport, path: &str, what: String| {
        report.problems.push(Problem {
            path: storage.location(path),
            what,
        })
    };
    for dir in [layout::DELTAS, layout::SEGMENTS, layout::INBOX] {
        if !matches!(storage.stat(dir), Ok(Some(m)) if m.is_dir) {
            continue;
        }
        let mut entries: Vec<String> = storage
            .list(dir)?
            .into_iter()
            .map(|e| layout::join(dir, &e.name))
            .collect();
        entries.sort();
        for path in entries {
            report.files += 1;
            match inspect_in(storage, &path) {
                Ok(s) => {
                    report.bytes += s.bytes;
                    if let Err(e) = s.checksums {
                        problem(&mut report, &path, e);
                    }
                }
                Err(e) => problem(&mut report, &path, e.to_string()),
            }
        }
    }
    let damaged: Vec<PathBuf> = report.problems.iter().map(|p| p.path.clone()).collect();
    let mut collections: Vec<String> = storage
        .list(layout::VERSIONS)?
        .into_iter()
        .filter(|e| e.meta.is_dir)
        .map(|e| e.name)
        .collect();
    collections.sort();
    for collection in collections {
        verify_collection(storage, &mut report, &collection, &damaged)?;
    }
    Ok(report)
}

/// Check one collection's version files, its HEAD and the files the head references.
// Long: one pass over the version files (each one's health) then the HEAD checks, which
// share the problem list; split, they would pass the same five values around.
fn verify_collection(
    storage: &dyn Storage,
    report: &mut VerifyReport,
    collection: &str,
    damaged: &[PathBuf],
) -> Result<()> {
    let problem = |report: &mut VerifyReport, path: &str, what: String| {
        report.problems.push(Problem {
            path: storage.location(path),
            what,
        })
    };
    let cdir = layout::versions(collection);
    let mut files: Vec<String> = storage
        .list(&cdir)?
        .into_iter()
        .filter(|e| {
            Path::new(&e.name)
                .extension()
                .is_some_and(|x| x == "version")
        })
        .map(|e| layout::join(&cdir, &e.name))
        .collect();
    files.sort();
    let head = layout::head(collection);
    let head_version = read_head_file(storage, &head).ok().flatten();
    for path in &files {
        report.files += 1;
        let record = match storage.read(path) {
            Ok(b) => {
                report.bytes += b.len() as u64;
                decode_version(&b)
                    .map(|(_, r)| r)
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let version = Path::new(path)
            .file_name()
            .and_then(|n| layout::version_number(&n.to_string_lossy()));
        let Some(version) = version else { continue };
        let health = |damaged: Vec<PathBuf>| VersionHealth {
            collection: collection.to_string(),
            version,
            head: head_version == Some(version),
            damaged,
        };
        match record {
            Ok(record) => {
                let needs = record
                    .segments
                    .iter()
                    .map(|s| (layout::segment(&s.file), s.bytes))
                    .chain(
                        record
                            .deltas
                            .iter()
                            .map(|d| (layout::delta(&d.file), d.bytes)),
                    );
                let bad = needs
                    .filter(|(p, len)| {
                        let location = storage.location(p);
                        damaged.contains(&location)
                            || !matches!(storage.stat(p), Ok(Some(m)) if m.len == *len)
                    })
                    .map(|(p, _)| storage.location(&p))
                    .collect();
                report.versions.push(health(bad));
            }
            Err(e) => {
                problem(report, path, e);
                report.versions.push(health(vec![storage.location(path)]));
            }
        }
    }
    if !storage.exists(&head)? {
        return Ok(());
    }
    let bytes = storage.read(&head)?;
    let text = String::from_utf8_lossy(&bytes);
    let Ok(v) = text.trim().parse::<u64>() else {
        problem(
            report,
            &head,
            format!("HEAD holds {:?}, not a version number", text.trim()),
        );
        return Ok(());
    };
    let vpath = layout::version_file(collection, v);
    let Ok(bytes) = storage.read(&vpath) else {
        problem(
            report,
            &head,
            format!(
                "HEAD names version {v} but {} is missing",
                storage.location(&vpath).display()
            ),
        );
        return Ok(());
    };
    let Ok((_, record)) = decode_version(&bytes) else {
        return Ok(());
    };
    for s in &record.segments {
        check_ref(storage, report, &layout::segment(&s.file), s.bytes, v);
    }
    for d in &record.deltas {
        check_ref(storage, report, &layout::delta(&d.file), d.bytes, v);
    }
    Ok(())
}

fn check_ref(
    storage: &dyn Storage,
    report: &mut VerifyReport,
    path: &str,
    bytes: u64,
    version: u64,
) {
    let what = match storage.stat(path) {
        Ok(Some(m)) if m.len == bytes => return,
        Ok(Some(m)) => format!(
            "head version {version} records {bytes} bytes, file has {}",
            m.len
        ),
        _ => format!("missing, but head version {version} references it"),
    };
    report.problems.push(Problem {
        path: storage.location(path),
        what,
    });
}
