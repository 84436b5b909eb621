//! Offline checks of a store directory and of single files: every crc of every file, every
//! HEAD pointing at a decodable version whose files exist with the recorded sizes. Reads
//! only; works while a writer has the store open.

use std::fs;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use strata_formats::{
    decode_delta, decode_version, sniff, AlignedBuf, DeltaStatus, FileKind, FormatVersion,
    SegmentLayout, SegmentView, Seq,
};

use crate::error::{Error, Result};
use crate::layout::Layout;

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
}

impl VerifyReport {
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

fn map(path: &Path) -> Result<Option<Mmap>> {
    let file = fs::File::open(path).map_err(Error::io("open", path))?;
    let len = file.metadata().map_err(Error::io("stat", path))?.len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the map is read-only and private to this function's caller, which drops it
    // before returning; strata never modifies a published file in place. If another process
    // truncated the file while we read, the OS would raise SIGBUS — the same exposure every
    // reader of a mapped file has; inspection of a file being truncated is not supported.
    // Bytes are only read through bounds-checked decoders.
    let m = unsafe { Mmap::map(&file) }.map_err(Error::io("map", path))?;
    Ok(Some(m))
}

/// Inspect one file: its kind, header facts and checksum status.
pub fn inspect_file(path: &Path) -> Result<FileSummary> {
    let mapped = map(path)?;
    let bytes: &[u8] = mapped.as_deref().unwrap_or(&[]);
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
        FileKind::Delta => match decode_delta(bytes) {
            Ok(d) => {
                s.version = Some(d.version);
                s.collection = Some(d.header.collection.clone());
                s.dims = Some(d.header.dims);
                s.count = d.ops.len() as u64;
                s.details
                    .push(("producer".into(), d.header.producer.clone()));
                s.details.push((
                    "created".into(),
                    crate::fsutil::rfc3339(d.header.created_ms),
                ));
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
        },
        FileKind::Segment => {
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
        }
        FileKind::Version => match decode_version(bytes) {
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
        },
    }
    Ok(s)
}

/// Check every file of a store directory. Never writes.
pub fn verify_store(root: &Path) -> Result<VerifyReport> {
    let layout = Layout::new(root);
    if !layout.versions_root().is_dir() {
        return Err(Error::invalid(
            "store",
            format!(
                "{} is not a strata store (no versions/ directory)",
                root.display()
            ),
        ));
    }
    let mut report = VerifyReport::default();
    let problem = |report: &mut VerifyReport, path: &Path, what: String| {
        report.problems.push(Problem {
            path: path.to_path_buf(),
            what,
        })
    };
    for dir in [layout.deltas(), layout.segments(), layout.inbox()] {
        if !dir.is_dir() {
            continue;
        }
        let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(Error::io("list", &dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            report.files += 1;
            match inspect_file(&path) {
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
    let vroot = layout.versions_root();
    let mut collections: Vec<PathBuf> = fs::read_dir(&vroot)
        .map_err(Error::io("list", &vroot))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    collections.sort();
    for cdir in collections {
        let mut files: Vec<PathBuf> = fs::read_dir(&cdir)
            .map_err(Error::io("list", &cdir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "version"))
            .collect();
        files.sort();
        for path in &files {
            report.files += 1;
            match fs::read(path).map_err(Error::io("read", path)) {
                Ok(b) => {
                    report.bytes += b.len() as u64;
                    if let Err(e) = decode_version(&b) {
                        problem(&mut report, path, e.to_string());
                    }
                }
                Err(e) => problem(&mut report, path, e.to_string()),
            }
        }
        let head = cdir.join("HEAD");
        if !head.exists() {
            continue;
        }
        let text = fs::read_to_string(&head).map_err(Error::io("read", &head))?;
        let Ok(v) = text.trim().parse::<u64>() else {
            problem(
                &mut report,
                &head,
                format!("HEAD holds {:?}, not a version number", text.trim()),
            );
            continue;
        };
        let vpath = cdir.join(format!("{v:020}.version"));
        let Ok(bytes) = fs::read(&vpath) else {
            problem(
                &mut report,
                &head,
                format!("HEAD names version {v} but {} is missing", vpath.display()),
            );
            continue;
        };
        let Ok((_, record)) = decode_version(&bytes) else {
            continue;
        };
        for s in &record.segments {
            check_ref(&mut report, &layout.segments().join(&s.file), s.bytes, v);
        }
        for d in &record.deltas {
            check_ref(&mut report, &layout.deltas().join(&d.file), d.bytes, v);
        }
    }
    Ok(report)
}

fn check_ref(report: &mut VerifyReport, path: &Path, bytes: u64, version: u64) {
    match fs::metadata(path) {
        Ok(m) if m.len() == bytes => {}
        Ok(m) => report.problems.push(Problem {
            path: path.to_path_buf(),
            what: format!(
                "head version {version} records {bytes} bytes, file has {}",
                m.len()
            ),
        }),
        Err(_) => report.problems.push(Problem {
            path: path.to_path_buf(),
            what: format!("missing, but head version {version} references it"),
        }),
    }
}
