//! Delta files: a header, framed operation records, and a seal footer.
//!
//! A delta is written once, by one producer, then sealed and never appended to. A reader of
//! a file without a valid seal (a crash mid-write) gets the complete records it holds and
//! [`DeltaStatus::Torn`]; any corruption in a sealed file is an error. Layout: FORMAT.md.

use crate::codec::{self, check_crc, Cursor, FormatVersion};
use crate::error::{FileKind, FormatError, Result};
use crate::op::Operation;
use crate::seq::Seq;

/// Magic at byte 0 of every delta file.
pub const DELTA_MAGIC: [u8; 8] = *b"STRATADL";
/// Magic at the very end of a sealed delta file.
pub const DELTA_END_MAGIC: [u8; 8] = *b"DLSEALED";
/// Format version this build writes (and the highest major it reads).
pub const DELTA_VERSION: FormatVersion = FormatVersion { major: 1, minor: 0 };
/// Largest record payload a writer produces and a reader accepts (64 MiB).
pub const MAX_RECORD_LEN: u32 = 64 << 20;
/// Largest encoded header body (1 MiB).
pub const MAX_HEADER_LEN: u32 = 1 << 20;
/// The length word that marks the seal footer instead of a record.
pub const SEAL_MARKER: u32 = u32::MAX;
/// Size of the seal footer in bytes.
pub const FOOTER_LEN: usize = 68;

const KIND: FileKind = FileKind::Delta;

/// What a delta file says about itself in its header.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct DeltaHeader {
    /// The collection the operations apply to.
    pub collection: String,
    /// The collection's dimensions (0 for metadata-only collections).
    pub dims: u32,
    /// Who wrote the file (a unique producer id: host, process, Lambda request id...).
    pub producer: String,
    /// Seq of the first record.
    pub first_seq: Seq,
    /// Wall-clock time the file was started, in milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// What the seal footer records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaSeal {
    /// Number of records.
    pub count: u64,
    /// Smallest seq among the records (zero when there are none).
    pub min_seq: Seq,
    /// Largest seq among the records (zero when there are none).
    pub max_seq: Seq,
}

/// Whether a delta file was sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaStatus {
    /// Sealed and every checksum verified.
    Sealed(DeltaSeal),
    /// No valid seal: the writer stopped mid-file. `complete_bytes` is the length of the
    /// prefix holding the header and the complete records returned.
    Torn {
        /// Length of the valid prefix.
        complete_bytes: u64,
    },
}

/// A decoded delta file.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    /// Format version found.
    pub version: FormatVersion,
    /// The header.
    pub header: DeltaHeader,
    /// The records, in file order.
    pub ops: Vec<Operation>,
    /// Sealed, or torn.
    pub status: DeltaStatus,
}

impl Delta {
    /// True when the file was sealed.
    pub fn is_sealed(&self) -> bool {
        matches!(self.status, DeltaStatus::Sealed(_))
    }
}

/// Builds a delta file in memory: header, then records, then [`DeltaWriter::seal`].
///
/// The engine writes the bytes to a temporary file, fsyncs and links it into place; the
/// writer itself does no I/O so that the same code serves files, tests and fuzzing.
#[derive(Debug)]
pub struct DeltaWriter {
    buf: Vec<u8>,
    count: u64,
    min_seq: Seq,
    max_seq: Seq,
}

/// Why an operation could not be added to a delta.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaWriteError {
    /// The encoded record is larger than [`MAX_RECORD_LEN`].
    #[error("record of {len} bytes exceeds the {MAX_RECORD_LEN}-byte limit")]
    RecordTooLarge {
        /// Encoded length.
        len: usize,
    },
    /// The header is larger than [`MAX_HEADER_LEN`].
    #[error("delta header of {len} bytes exceeds the {MAX_HEADER_LEN}-byte limit")]
    HeaderTooLarge {
        /// Encoded length.
        len: usize,
    },
}

impl DeltaWriter {
    /// Start a delta with its header.
    pub fn new(header: &DeltaHeader) -> Result<DeltaWriter, DeltaWriteError> {
        let body = codec::encode(header);
        if body.len() > MAX_HEADER_LEN as usize {
            return Err(DeltaWriteError::HeaderTooLarge { len: body.len() });
        }
        let mut buf = Vec::with_capacity(4096);
        codec::write_preamble(&mut buf, &DELTA_MAGIC, DELTA_VERSION);
        buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
        buf.extend_from_slice(&body);
        let crc = codec::crc32(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        Ok(DeltaWriter {
            buf,
            count: 0,
            min_seq: Seq::MAX,
            max_seq: Seq::ZERO,
        })
    }

    /// A whole sealed delta in one call: [`DeltaWriter::new`], [`push`](Self::push) of
    /// each operation in order, [`seal`](Self::seal).
    pub fn encode(header: &DeltaHeader, ops: &[Operation]) -> Result<Vec<u8>, DeltaWriteError> {
        let mut writer = DeltaWriter::new(header)?;
        // Room for the embeddings and a little more per record, so the buffer is not moved
        // while it grows (capacity that is never written costs no memory).
        let estimate: usize = ops
            .iter()
            .map(|op| 256 + op.embedding().map_or(0, |e| e.len() * 4))
            .sum();
        writer.buf.reserve(estimate + FOOTER_LEN);
        for op in ops {
            writer.push(op)?;
        }
        Ok(writer.seal())
    }

    /// Append one record.
    pub fn push(&mut self, op: &Operation) -> Result<(), DeltaWriteError> {
        // Encoded in place after room for the frame (length and crc), filled in after.
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 8]);
        codec::encode_into(op, &mut self.buf);
        let len = self.buf.len() - start - 8;
        if len > MAX_RECORD_LEN as usize || len == 0 {
            self.buf.truncate(start);
            return Err(DeltaWriteError::RecordTooLarge { len });
        }
        let len_bytes = (len as u32).to_le_bytes();
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&len_bytes);
        hasher.update(&self.buf[start + 8..]);
        let crc = hasher.finalize().to_le_bytes();
        self.buf[start..start + 4].copy_from_slice(&len_bytes);
        self.buf[start + 4..start + 8].copy_from_slice(&crc);
        self.count += 1;
        self.min_seq = self.min_seq.min(op.seq);
        self.max_seq = self.max_seq.max(op.seq);
        Ok(())
    }

    /// Bytes written so far (header and records, no seal): what a crash would leave.
    pub fn unsealed_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Number of records pushed.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Append the seal footer and return the complete file.
    pub fn seal(mut self) -> Vec<u8> {
        let (min_seq, max_seq) = if self.count == 0 {
            (Seq::ZERO, Seq::ZERO)
        } else {
            (self.min_seq, self.max_seq)
        };
        let body_crc = codec::crc32(&self.buf);
        let footer_start = self.buf.len();
        self.buf.extend_from_slice(&SEAL_MARKER.to_le_bytes());
        self.buf.extend_from_slice(&self.count.to_le_bytes());
        self.buf.extend_from_slice(&min_seq.to_be_bytes());
        self.buf.extend_from_slice(&max_seq.to_be_bytes());
        self.buf.extend_from_slice(&body_crc.to_le_bytes());
        let footer_crc = codec::crc32(&self.buf[footer_start..]);
        self.buf.extend_from_slice(&footer_crc.to_le_bytes());
        self.buf.extend_from_slice(&DELTA_END_MAGIC);
        debug_assert_eq!(self.buf.len() - footer_start, FOOTER_LEN);
        self.buf
    }
}

/// Read the preamble and header; returns (version, header, offset of the first record).
pub fn read_delta_header(bytes: &[u8]) -> Result<(FormatVersion, DeltaHeader, usize)> {
    let mut cur = Cursor::new(bytes, 0, KIND);
    let version = codec::read_preamble(&mut cur, &DELTA_MAGIC, DELTA_VERSION.major)?;
    let len = cur.u32("header length")?;
    if len > MAX_HEADER_LEN {
        return Err(FormatError::malformed(
            KIND,
            "header length",
            12,
            format!("{len} exceeds the {MAX_HEADER_LEN}-byte limit"),
        ));
    }
    let body = cur.take(len as usize, "header")?;
    let crc_at = cur.pos;
    let stored = cur.u32("header crc")?;
    check_crc(bytes, 0..crc_at, stored, KIND, "header")?;
    let header = codec::decode_exact(body, KIND, "header", 16)?;
    Ok((version, header, cur.pos))
}

/// Whether the last [`FOOTER_LEN`] bytes form a seal footer with a valid crc; returns it
/// and the footer's offset.
fn read_seal(bytes: &[u8], body_start: usize) -> Result<Option<(DeltaSeal, usize, u32)>> {
    if bytes.len() < body_start + FOOTER_LEN || !bytes.ends_with(&DELTA_END_MAGIC) {
        return Ok(None);
    }
    let start = bytes.len() - FOOTER_LEN;
    let mut cur = Cursor::new(bytes, start, KIND);
    let marker = cur.u32("seal marker")?;
    let count = cur.u64("record count")?;
    let min_seq = Seq::from_be_bytes(cur.array("min seq")?);
    let max_seq = Seq::from_be_bytes(cur.array("max seq")?);
    let body_crc = cur.u32("body crc")?;
    let crc_at = cur.pos;
    let footer_crc = cur.u32("footer crc")?;
    check_crc(bytes, start..crc_at, footer_crc, KIND, "seal footer")?;
    if marker != SEAL_MARKER {
        return Err(FormatError::malformed(
            KIND,
            "seal footer",
            start as u64,
            format!("seal marker is {marker:#x}, expected {SEAL_MARKER:#x}"),
        ));
    }
    Ok(Some((
        DeltaSeal {
            count,
            min_seq,
            max_seq,
        },
        start,
        body_crc,
    )))
}

/// Decode a delta file from untrusted bytes.
///
/// A sealed file must verify completely (header crc, every record crc, body crc, footer
/// crc, record count and seq range) or the call fails. A file without a valid seal yields
/// its complete records with [`DeltaStatus::Torn`] when what follows them is an incomplete
/// record or zero bytes (what a crash leaves); a complete record that fails its crc or
/// decoding, or a seal marker among the records, is corruption and an error.
pub fn decode_delta(bytes: &[u8]) -> Result<Delta> {
    let (version, header, body_start) = read_delta_header(bytes)?;
    // Only a footer whose crc verifies seals the file. A tail that merely looks like one
    // (a torn file whose last record happens to end in the end magic, or a damaged footer)
    // is read as unsealed, where a seal marker among the records is reported as damage.
    let seal = read_seal(bytes, body_start).ok().flatten();
    let records_end = seal.map_or(bytes.len(), |(_, at, _)| at);
    if let Some((_, at, body_crc)) = seal {
        check_crc(bytes, 0..at, body_crc, KIND, "records (body crc)")?;
    }
    let mut ops = Vec::new();
    let mut pos = body_start;
    let mut torn = false;
    while pos < records_end {
        match read_record(bytes, pos, records_end) {
            Ok((op, next)) => {
                ops.push(op);
                pos = next;
            }
            Err(e) if seal.is_some() => return Err(e),
            Err(e) => {
                let rest = &bytes[pos..];
                if rest.len() >= 4 && rest[..4] == SEAL_MARKER.to_le_bytes() {
                    return Err(FormatError::malformed(
                        KIND,
                        "seal footer",
                        pos as u64,
                        "a seal marker is present but the footer is damaged",
                    ));
                }
                // A crash leaves a prefix of what the writer wrote (or, on some
                // filesystems, a zero-filled tail): only an incomplete record is a tear.
                // A complete record that fails its checks is corruption.
                if matches!(e, FormatError::Truncated { .. }) || rest.iter().all(|b| *b == 0) {
                    torn = true;
                    break;
                }
                return Err(e);
            }
        }
    }
    let status = match seal {
        Some((seal, at, _)) => {
            let (mut min, mut max) = (Seq::MAX, Seq::ZERO);
            for op in &ops {
                min = min.min(op.seq);
                max = max.max(op.seq);
            }
            if ops.is_empty() {
                min = Seq::ZERO;
            }
            if seal.count != ops.len() as u64 || seal.min_seq != min || seal.max_seq != max {
                return Err(FormatError::malformed(
                    KIND,
                    "seal footer",
                    at as u64,
                    format!(
                        "footer says {} records in seq {}..={}, file holds {} in {}..={}",
                        seal.count,
                        seal.min_seq,
                        seal.max_seq,
                        ops.len(),
                        min,
                        max
                    ),
                ));
            }
            DeltaStatus::Sealed(seal)
        }
        None => DeltaStatus::Torn {
            complete_bytes: if torn { pos } else { bytes.len() } as u64,
        },
    };
    Ok(Delta {
        version,
        header,
        ops,
        status,
    })
}

/// Read the record at `pos`; returns it and the offset after it.
fn read_record(bytes: &[u8], pos: usize, end: usize) -> Result<(Operation, usize)> {
    let mut cur = Cursor::new(&bytes[..end], pos, KIND);
    let len = cur.u32("record length")?;
    if len == 0 || len > MAX_RECORD_LEN {
        return Err(FormatError::malformed(
            KIND,
            "record length",
            pos as u64,
            format!("{len} is outside 1..={MAX_RECORD_LEN}"),
        ));
    }
    let stored = cur.u32("record crc")?;
    let payload = cur.take(len as usize, "record payload")?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(payload);
    let computed = hasher.finalize();
    if computed != stored {
        return Err(FormatError::Checksum {
            kind: KIND,
            what: format!("record at byte {pos}"),
            offset: pos as u64,
            end: cur.pos as u64,
            stored,
            computed,
        });
    }
    let op = codec::decode_exact(payload, KIND, "record payload", pos as u64 + 8)?;
    Ok((op, cur.pos))
}
