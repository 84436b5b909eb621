//! Version files: one committed version of a collection, immutable and crc-protected.
//!
//! The manifest (RocksDB) is the writer's source of truth; after each commit the same
//! record is published as a version file plus a `HEAD` pointer, so that readers on other
//! hosts open a snapshot without RocksDB. Layout: preamble, body length, bincode body, crc.

use crate::codec::{self, check_crc, Cursor, FormatVersion};
use crate::collection::{Metric, Quantization};
use crate::error::{FileKind, FormatError, Result};
use crate::op::Operation;
use crate::seq::Seq;

/// Magic at byte 0 of every version file.
pub const VERSION_MAGIC: [u8; 8] = *b"STRATAVR";
/// Format version this build writes (and the highest major it reads).
pub const VERSION_FILE_VERSION: FormatVersion = FormatVersion { major: 1, minor: 0 };
/// Largest body a version file may hold (256 MiB).
pub const MAX_VERSION_BODY: u32 = 256 << 20;

const KIND: FileKind = FileKind::Version;

/// A segment a version uses, with the rows deleted from it since it was sealed.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SegmentRef {
    /// File name under the store's `segments/` directory.
    pub file: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Rows superseded or deleted since the segment was sealed, ascending.
    pub deleted: Vec<u32>,
}

/// A delta a version uses (registered, not yet compacted).
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct DeltaRef {
    /// File name under the store's `deltas/` directory.
    pub file: String,
    /// Records in the file.
    pub count: u64,
    /// Smallest record seq.
    pub min_seq: Seq,
    /// Largest record seq.
    pub max_seq: Seq,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// A filter-targeted patch or delete kept for the retention horizon, so that a late,
/// older upsert still receives it.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct RetainedOp {
    /// The operation.
    pub op: Operation,
    /// When it was registered (ms since the Unix epoch).
    pub time_ms: u64,
}

/// One committed version of a collection.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct VersionRecord {
    /// Collection name.
    pub collection: String,
    /// Version number, unique and increasing within the store.
    pub version: u64,
    /// The version this one was derived from.
    pub parent: Option<u64>,
    /// Epoch of the writer that committed it (fencing).
    pub writer_epoch: u64,
    /// Commit time (ms since the Unix epoch).
    pub created_ms: u64,
    /// Dimensions (0 = metadata-only).
    pub dims: u32,
    /// Distance metric.
    pub metric: Metric,
    /// Quantization applied at the next compaction.
    pub quantization: Quantization,
    /// Largest seq registered in this version.
    pub seq_watermark: Seq,
    /// Segments, oldest first.
    pub segments: Vec<SegmentRef>,
    /// Registered deltas not yet compacted, in registration order.
    pub deltas: Vec<DeltaRef>,
    /// Filter-targeted operations kept for the retention horizon.
    pub retained: Vec<RetainedOp>,
    /// Live rows.
    pub rows: u64,
    /// Bytes of all referenced files.
    pub bytes: u64,
    /// What produced the version ("create", "write", "compact", "rollback to 3", ...).
    pub note: String,
}

/// Encode a version file.
pub fn encode_version(record: &VersionRecord) -> Vec<u8> {
    let body = codec::encode(record);
    let mut out = Vec::with_capacity(body.len() + 20);
    codec::write_preamble(&mut out, &VERSION_MAGIC, VERSION_FILE_VERSION);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let crc = codec::crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decode a version file from untrusted bytes.
pub fn decode_version(bytes: &[u8]) -> Result<(FormatVersion, VersionRecord)> {
    let mut cur = Cursor::new(bytes, 0, KIND);
    let version = codec::read_preamble(&mut cur, &VERSION_MAGIC, VERSION_FILE_VERSION.major)?;
    let len = cur.u32("body length")?;
    if len > MAX_VERSION_BODY {
        return Err(FormatError::malformed(
            KIND,
            "body length",
            12,
            format!("{len} exceeds the {MAX_VERSION_BODY}-byte limit"),
        ));
    }
    let body = cur.take(len as usize, "body")?;
    let crc_at = cur.pos;
    let stored = cur.u32("crc")?;
    if cur.pos != bytes.len() {
        return Err(FormatError::malformed(
            KIND,
            "file",
            cur.pos as u64,
            format!("{} bytes after the crc", bytes.len() - cur.pos),
        ));
    }
    check_crc(bytes, 0..crc_at, stored, KIND, "version file")?;
    let record = codec::decode_exact(body, KIND, "version body", 16)?;
    Ok((version, record))
}
