//! Segment files: immutable, memory-mappable columns of one compacted set of rows.
//!
//! Layout (exact offsets in FORMAT.md): a 128-byte header, then 64-byte aligned blocks —
//! f32 vectors, optional quantized codes, ids, an id index sorted by id, per-row seqs,
//! per-row metadata, documents, and the shadow entries (tombstones and patches of absent
//! ids) — then a block table and a 24-byte tail. Opening ([`SegmentLayout::parse`]) reads
//! the header and the table only; [`SegmentView::verify`] checks every block's crc.
//! Vectors are read in place: [`SegmentView::vectors`] is a zero-copy `&[f32]` over the
//! mapped bytes.

use std::io::{self, Seek, SeekFrom, Write};

use crate::codec::{self, check_crc, Cursor, FormatVersion};
use crate::collection::Quantization;
use crate::error::{FileKind, FormatError, Result};
use crate::seq::Seq;
use crate::value::{MetaValue, Metadata};

#[cfg(target_endian = "big")]
compile_error!("strata's segment files are read in place as little-endian f32: big-endian hosts are not supported");

/// Magic at byte 0 of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"STRATASG";
/// Magic at the very end of every segment file.
pub const SEGMENT_END_MAGIC: [u8; 8] = *b"SGFOOTER";
/// Format version this build writes (and the highest major it reads). A segment without
/// replay histories is written as 1.0, byte for byte what 1.0 writers produce; one with a
/// History block says 1.1 (a 1.0 reader ignores the block and reads the same rows).
pub const SEGMENT_VERSION: FormatVersion = FormatVersion { major: 1, minor: 1 };
/// The version of a segment written without a History block.
pub const SEGMENT_VERSION_NO_HISTORY: FormatVersion = FormatVersion { major: 1, minor: 0 };
/// Size of the header.
pub const HEADER_LEN: usize = 128;
/// Size of one block-table entry.
pub const BLOCK_ENTRY_LEN: usize = 32;
/// Size of the tail that ends the file.
pub const TAIL_LEN: usize = 24;
/// Alignment of every block's first byte.
pub const BLOCK_ALIGN: usize = 64;
/// Largest number of dimensions a segment may declare.
pub const MAX_DIMS: u32 = 65_536;
/// Largest number of rows one segment may hold (row numbers are u32).
pub const MAX_ROWS: u64 = u32::MAX as u64;
/// Largest number of blocks a table may list.
pub const MAX_BLOCKS: u32 = 64;

const KIND: FileKind = FileKind::Segment;

/// The kinds of block a segment holds. Readers ignore kinds they do not know (a minor
/// version may add some); a kind listed twice is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockKind {
    /// `rows × dims` little-endian f32.
    Vectors,
    /// `rows × dims` i8 codes.
    QuantI8Codes,
    /// `rows` little-endian f32 scales of the i8 codes.
    QuantI8Scales,
    /// `rows × ceil(dims / 8)` sign bits, least significant bit first.
    QuantBitCodes,
    /// Offsets table and UTF-8 bytes of the ids.
    Ids,
    /// `rows` u32 row numbers sorted by id bytes.
    IdIndex,
    /// `rows × 20` bytes: each row's seq, big-endian.
    Seqs,
    /// Offsets table and bincode [`RowMeta`] of each row.
    Metadata,
    /// Offsets table and bincode `Option<String>` document of each row.
    Documents,
    /// bincode `Vec<ShadowEntry>`.
    Shadow,
    /// bincode `Vec<History>`, sorted by id (minor version 1).
    History,
    /// A kind this build does not know (written by a newer minor version).
    Unknown(u32),
}

impl BlockKind {
    /// The kind's number in the block table.
    pub fn code(self) -> u32 {
        match self {
            BlockKind::Vectors => 1,
            BlockKind::QuantI8Codes => 2,
            BlockKind::QuantI8Scales => 3,
            BlockKind::QuantBitCodes => 4,
            BlockKind::Ids => 5,
            BlockKind::IdIndex => 6,
            BlockKind::Seqs => 7,
            BlockKind::Metadata => 8,
            BlockKind::Documents => 9,
            BlockKind::Shadow => 10,
            BlockKind::History => 11,
            BlockKind::Unknown(c) => c,
        }
    }

    /// The kind of a table number.
    pub fn from_code(code: u32) -> BlockKind {
        match code {
            1 => BlockKind::Vectors,
            2 => BlockKind::QuantI8Codes,
            3 => BlockKind::QuantI8Scales,
            4 => BlockKind::QuantBitCodes,
            5 => BlockKind::Ids,
            6 => BlockKind::IdIndex,
            7 => BlockKind::Seqs,
            8 => BlockKind::Metadata,
            9 => BlockKind::Documents,
            10 => BlockKind::Shadow,
            11 => BlockKind::History,
            c => BlockKind::Unknown(c),
        }
    }

    /// A readable name, for reports.
    pub fn name(self) -> String {
        match self {
            BlockKind::Vectors => "vectors".into(),
            BlockKind::QuantI8Codes => "i8 codes".into(),
            BlockKind::QuantI8Scales => "i8 scales".into(),
            BlockKind::QuantBitCodes => "1-bit codes".into(),
            BlockKind::Ids => "ids".into(),
            BlockKind::IdIndex => "id index".into(),
            BlockKind::Seqs => "seqs".into(),
            BlockKind::Metadata => "metadata".into(),
            BlockKind::Documents => "documents".into(),
            BlockKind::Shadow => "shadow".into(),
            BlockKind::History => "history".into(),
            BlockKind::Unknown(c) => format!("unknown block kind {c}"),
        }
    }
}

/// A row's metadata plus the seqs of keys patched after the row's upsert.
///
/// `key_seqs` lists keys written or removed by patches newer than the row's seq (a removed
/// key is absent from `metadata`). The engine needs them so that a late, older upsert
/// keeps the newer patches: the state stays equal to applying operations in seq order.
#[derive(Debug, Clone, PartialEq, Default, bincode::Encode, bincode::Decode)]
pub struct RowMeta {
    /// The visible metadata.
    pub metadata: Metadata,
    /// Keys patched after the row's upsert, with the seq of their last patch.
    pub key_seqs: Vec<(String, Seq)>,
}

/// State kept for an id that has no live row: a tombstone, or patches that arrived
/// before the id's upsert (order-independence, DESIGN.md).
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct ShadowEntry {
    /// The id.
    pub id: String,
    /// Seq of the delete (zero when the id was never deleted).
    pub seq: Seq,
    /// Whether the id is deleted (a tombstone) rather than not yet upserted.
    pub deleted: bool,
    /// Patched keys with their seq; `None` means the patch removed the key.
    pub overlay: Vec<(String, Seq, Option<MetaValue>)>,
    /// When the entry was last written (ms since the Unix epoch), for the retention horizon.
    pub time_ms: u64,
}

/// What an id's base state is, in a [`History`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum BaseState {
    /// A record (from the upsert at `base_seq`).
    Live,
    /// Deleted at `base_seq`.
    Deleted,
    /// Never upserted or deleted.
    Absent,
}

/// A metadata patch of one id kept in a [`History`].
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct PatchEvent {
    /// The patch's seq.
    pub seq: Seq,
    /// Keys written.
    pub set: Metadata,
    /// Keys removed.
    pub unset: Vec<String>,
    /// When it arrived (ms since the Unix epoch), for the retention horizon.
    pub time_ms: u64,
}

/// The embedding and document of a history's base record, stored only when the id has no
/// live row in the segment (a filter delete hid it, and a late patch may bring it back).
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct BaseRecord {
    /// The embedding (empty for a metadata-only collection).
    pub embedding: Vec<f32>,
    /// The document.
    pub document: Option<String>,
}

/// How an id's visible state was reached, kept while operations newer than its base are
/// within the retention horizon: the base (state after the last upsert or delete, with
/// every operation up to `through` folded in) and the id's later patches. Replaying them,
/// merged in seq order with the version's retained filter operations newer than `through`,
/// gives the visible state; a late operation is inserted and the replay redone, so that a
/// filter operation is evaluated on the state at its own seq (DESIGN.md order-independence).
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct History {
    /// The id.
    pub id: String,
    /// Operations with a seq up to this one are folded into the base.
    pub through: Seq,
    /// Seq of the base's upsert or delete (zero when neither arrived).
    pub base_seq: Seq,
    /// Live, deleted or absent.
    pub base_state: BaseState,
    /// The base's metadata (for a base that is not live: values of keys patched in it).
    pub base_metadata: Metadata,
    /// Keys patched in the base after `base_seq`, with their seq.
    pub base_key_seqs: Vec<(String, Seq)>,
    /// The base record's vector and document when the id has no live row in this segment.
    pub base_record: Option<BaseRecord>,
    /// The id's patches newer than `through`, ascending seq.
    pub patches: Vec<PatchEvent>,
    /// When the id last changed (ms since the Unix epoch).
    pub time_ms: u64,
}

/// One row handed to [`SegmentWriter::push`].
#[derive(Debug, Clone, Copy)]
pub struct RowInput<'a> {
    /// The id.
    pub id: &'a str,
    /// The row's seq (of the upsert that created it).
    pub seq: Seq,
    /// The vector (`dims` floats; empty when dims is 0).
    pub vector: &'a [f32],
    /// The document.
    pub document: Option<&'a str>,
    /// The metadata.
    pub meta: &'a RowMeta,
}

/// Why a segment could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SegmentWriteError {
    /// An I/O error of the underlying writer.
    #[error("writing segment: {0}")]
    Io(#[from] io::Error),
    /// A row's vector length differs from the segment's dims.
    #[error("row {id:?} has {found} dimensions, the segment has {dims}")]
    Dims {
        /// The row's id.
        id: String,
        /// Its vector length.
        found: usize,
        /// The segment's dims.
        dims: u32,
    },
    /// Two rows share an id.
    #[error("id {0:?} appears twice in one segment")]
    DuplicateId(String),
    /// Too many rows or dims.
    #[error("segment limit exceeded: {0}")]
    Limit(String),
}

/// The fixed header of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version found.
    pub version: FormatVersion,
    /// Dimensions of every vector (0 for metadata-only).
    pub dims: u32,
    /// Number of rows.
    pub rows: u64,
    /// Smallest row seq (zero when empty).
    pub min_seq: Seq,
    /// Largest row or shadow seq (zero when empty).
    pub max_seq: Seq,
    /// Which quantized blocks are present.
    pub quantization: Quantization,
}

/// One entry of the block table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockEntry {
    /// What the block holds.
    pub kind: BlockKind,
    /// Byte offset (a multiple of [`BLOCK_ALIGN`]).
    pub offset: u64,
    /// Length in bytes (padding excluded).
    pub len: u64,
    /// crc32 of the block's bytes.
    pub crc: u32,
}

fn pad_to(len: u64) -> u64 {
    len.div_ceil(BLOCK_ALIGN as u64) * BLOCK_ALIGN as u64
}

/// Encode `n` rows of variable-length entries as a block: `(n + 1)` u64 offsets relative to
/// the blob, then the blob.
fn offsets_block(entries: &[u64], blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 8 + blob.len());
    for off in entries {
        out.extend_from_slice(&off.to_le_bytes());
    }
    out.extend_from_slice(blob);
    out
}

/// Streams rows into a segment file.
///
/// Vectors go straight to the output as rows arrive; ids, seqs, metadata, documents and
/// quantized codes are buffered (they are small next to the vectors) and written by
/// [`SegmentWriter::finish`], which then writes the block table and rewrites the header.
pub struct SegmentWriter<W: Write + Seek> {
    out: W,
    dims: u32,
    quantization: Quantization,
    rows: u64,
    pos: u64,
    vectors_crc: crc32fast::Hasher,
    ids: Vec<u8>,
    id_offsets: Vec<u64>,
    seqs: Vec<u8>,
    meta: Vec<u8>,
    meta_offsets: Vec<u64>,
    docs: Vec<u8>,
    doc_offsets: Vec<u64>,
    i8_codes: Vec<u8>,
    i8_scales: Vec<u8>,
    bit_codes: Vec<u8>,
    min_seq: Seq,
    max_seq: Seq,
    shadow: Vec<ShadowEntry>,
    history: Vec<History>,
}

/// Quantize a vector to i8 codes with one scale: `code = round(x / scale)`, `scale =
/// max|x| / 127` (zero vectors get scale 0 and zero codes).
pub fn quantize_i8(v: &[f32], codes: &mut Vec<u8>) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        0.0
    };
    for x in v {
        let q = if scale > 0.0 {
            (x / scale).round().clamp(-127.0, 127.0) as i8
        } else {
            0
        };
        codes.push(q as u8);
    }
    scale
}

/// Quantize a vector to sign bits: bit `i % 8` of byte `i / 8` is set when `v[i] > 0`.
pub fn quantize_bits(v: &[f32], codes: &mut Vec<u8>) {
    for chunk in v.chunks(8) {
        let mut byte = 0u8;
        for (i, x) in chunk.iter().enumerate() {
            if *x > 0.0 {
                byte |= 1 << i;
            }
        }
        codes.push(byte);
    }
}

impl<W: Write + Seek> SegmentWriter<W> {
    /// Start a segment at the writer's position 0.
    pub fn new(
        mut out: W,
        dims: u32,
        quantization: Quantization,
    ) -> Result<SegmentWriter<W>, SegmentWriteError> {
        if dims > MAX_DIMS {
            return Err(SegmentWriteError::Limit(format!(
                "{dims} dims exceeds {MAX_DIMS}"
            )));
        }
        let quantization = if dims == 0 {
            Quantization::None
        } else {
            quantization
        };
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&[0u8; HEADER_LEN])?;
        let pos = pad_to(HEADER_LEN as u64);
        out.write_all(&vec![0u8; (pos - HEADER_LEN as u64) as usize])?;
        Ok(SegmentWriter {
            out,
            dims,
            quantization,
            rows: 0,
            pos,
            vectors_crc: crc32fast::Hasher::new(),
            ids: Vec::new(),
            id_offsets: vec![0],
            seqs: Vec::new(),
            meta: Vec::new(),
            meta_offsets: vec![0],
            docs: Vec::new(),
            doc_offsets: vec![0],
            i8_codes: Vec::new(),
            i8_scales: Vec::new(),
            bit_codes: Vec::new(),
            min_seq: Seq::MAX,
            max_seq: Seq::ZERO,
            shadow: Vec::new(),
            history: Vec::new(),
        })
    }

    /// Append one row.
    pub fn push(&mut self, row: RowInput<'_>) -> Result<(), SegmentWriteError> {
        if row.vector.len() != self.dims as usize {
            return Err(SegmentWriteError::Dims {
                id: row.id.to_string(),
                found: row.vector.len(),
                dims: self.dims,
            });
        }
        if self.rows >= MAX_ROWS {
            return Err(SegmentWriteError::Limit(format!(
                "more than {MAX_ROWS} rows"
            )));
        }
        let bytes: &[u8] = bytemuck::cast_slice(row.vector);
        self.out.write_all(bytes)?;
        self.vectors_crc.update(bytes);
        self.pos += bytes.len() as u64;
        match self.quantization {
            Quantization::None => {}
            Quantization::I8 => {
                let scale = quantize_i8(row.vector, &mut self.i8_codes);
                self.i8_scales.extend_from_slice(&scale.to_le_bytes());
            }
            Quantization::Bit => quantize_bits(row.vector, &mut self.bit_codes),
        }
        self.ids.extend_from_slice(row.id.as_bytes());
        self.id_offsets.push(self.ids.len() as u64);
        self.seqs.extend_from_slice(&row.seq.to_be_bytes());
        self.meta.extend_from_slice(&codec::encode(row.meta));
        self.meta_offsets.push(self.meta.len() as u64);
        self.docs
            .extend_from_slice(&codec::encode(&row.document.map(str::to_string)));
        self.doc_offsets.push(self.docs.len() as u64);
        self.min_seq = self.min_seq.min(row.seq);
        self.max_seq = self.max_seq.max(row.seq);
        self.rows += 1;
        Ok(())
    }

    /// Add a shadow entry (tombstone or early patch) for an id without a live row.
    pub fn push_shadow(&mut self, entry: ShadowEntry) {
        self.max_seq = self.max_seq.max(entry.seq);
        for (_, seq, _) in &entry.overlay {
            self.max_seq = self.max_seq.max(*seq);
        }
        self.shadow.push(entry);
    }

    /// Add the replay history of an id (a row or a shadow entry of this segment).
    pub fn push_history(&mut self, history: History) {
        self.max_seq = self.max_seq.max(history.through);
        for p in &history.patches {
            self.max_seq = self.max_seq.max(p.seq);
        }
        self.history.push(history);
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn write_block(
        &mut self,
        table: &mut Vec<BlockEntry>,
        kind: BlockKind,
        bytes: &[u8],
    ) -> io::Result<()> {
        let offset = self.pos;
        self.out.write_all(bytes)?;
        let len = bytes.len() as u64;
        let padded = pad_to(offset + len);
        self.out
            .write_all(&vec![0u8; (padded - offset - len) as usize])?;
        self.pos = padded;
        table.push(BlockEntry {
            kind,
            offset,
            len,
            crc: codec::crc32(bytes),
        });
        Ok(())
    }

    /// Write the remaining blocks, the table, the tail and the header; returns the writer
    /// and the file's length. The caller fsyncs.
    pub fn finish(mut self) -> Result<(W, u64), SegmentWriteError> {
        let mut table = vec![self.close_vectors()?];
        let index_bytes = self.id_index()?;
        self.write_quantized(&mut table)?;
        let ids = offsets_block(&self.id_offsets, &self.ids);
        self.write_block(&mut table, BlockKind::Ids, &ids)?;
        self.write_block(&mut table, BlockKind::IdIndex, &index_bytes)?;
        let seqs = std::mem::take(&mut self.seqs);
        self.write_block(&mut table, BlockKind::Seqs, &seqs)?;
        let meta = offsets_block(&self.meta_offsets, &self.meta);
        self.write_block(&mut table, BlockKind::Metadata, &meta)?;
        let docs = offsets_block(&self.doc_offsets, &self.docs);
        self.write_block(&mut table, BlockKind::Documents, &docs)?;
        let shadow = codec::encode(&self.shadow);
        self.write_block(&mut table, BlockKind::Shadow, &shadow)?;
        let version = self.write_history(&mut table)?;

        let table_offset = self.pos;
        let tail = encode_tail(&table, table_offset);
        self.out.write_all(&tail)?;
        let file_len = table_offset + tail.len() as u64;

        let header = self.header_bytes(version);
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header)?;
        self.out.seek(SeekFrom::Start(file_len))?;
        self.out.flush()?;
        Ok((self.out, file_len))
    }

    /// The Vectors block's table entry (its bytes were streamed by `push`), after padding
    /// the output to the next block.
    fn close_vectors(&mut self) -> io::Result<BlockEntry> {
        let vectors_offset = pad_to(HEADER_LEN as u64);
        let entry = BlockEntry {
            kind: BlockKind::Vectors,
            offset: vectors_offset,
            len: self.pos - vectors_offset,
            crc: self.vectors_crc.clone().finalize(),
        };
        let padded = pad_to(self.pos);
        self.out
            .write_all(&vec![0u8; (padded - self.pos) as usize])?;
        self.pos = padded;
        Ok(entry)
    }

    /// The IdIndex block: row numbers sorted by id bytes; checks ids are unique while
    /// building it.
    fn id_index(&self) -> Result<Vec<u8>, SegmentWriteError> {
        let mut index: Vec<u32> = (0..self.rows as u32).collect();
        let id_of = |row: u32| {
            let r = row as usize;
            &self.ids[self.id_offsets[r] as usize..self.id_offsets[r + 1] as usize]
        };
        index.sort_unstable_by(|a, b| id_of(*a).cmp(id_of(*b)));
        if let Some(w) = index.windows(2).find(|w| id_of(w[0]) == id_of(w[1])) {
            return Err(SegmentWriteError::DuplicateId(
                String::from_utf8_lossy(id_of(w[0])).into_owned(),
            ));
        }
        Ok(index.iter().flat_map(|r| r.to_le_bytes()).collect())
    }

    /// Write the quantized blocks the segment's quantization calls for.
    fn write_quantized(&mut self, table: &mut Vec<BlockEntry>) -> io::Result<()> {
        let i8_codes = std::mem::take(&mut self.i8_codes);
        let i8_scales = std::mem::take(&mut self.i8_scales);
        let bit_codes = std::mem::take(&mut self.bit_codes);
        match self.quantization {
            Quantization::None => {}
            Quantization::I8 => {
                self.write_block(table, BlockKind::QuantI8Codes, &i8_codes)?;
                self.write_block(table, BlockKind::QuantI8Scales, &i8_scales)?;
            }
            Quantization::Bit => {
                self.write_block(table, BlockKind::QuantBitCodes, &bit_codes)?;
            }
        }
        Ok(())
    }

    /// Write the History block, sorted by id, when there are histories; returns the
    /// version the header says (1.0 without histories).
    fn write_history(
        &mut self,
        table: &mut Vec<BlockEntry>,
    ) -> Result<FormatVersion, SegmentWriteError> {
        if self.history.is_empty() {
            return Ok(SEGMENT_VERSION_NO_HISTORY);
        }
        let mut history = std::mem::take(&mut self.history);
        history.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(w) = history.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(SegmentWriteError::DuplicateId(w[0].id.clone()));
        }
        self.write_block(table, BlockKind::History, &codec::encode(&history))?;
        Ok(SEGMENT_VERSION)
    }

    /// The header's bytes, crc included.
    fn header_bytes(&self, version: FormatVersion) -> Vec<u8> {
        let (min_seq, max_seq) =
            if self.rows == 0 && self.shadow.is_empty() && version == SEGMENT_VERSION_NO_HISTORY {
                (Seq::ZERO, Seq::ZERO)
            } else if self.rows == 0 {
                (Seq::ZERO, self.max_seq)
            } else {
                (self.min_seq, self.max_seq)
            };
        let mut header = Vec::with_capacity(HEADER_LEN);
        codec::write_preamble(&mut header, &SEGMENT_MAGIC, version);
        header.extend_from_slice(&self.dims.to_le_bytes());
        header.extend_from_slice(&self.rows.to_le_bytes());
        header.extend_from_slice(&min_seq.to_be_bytes());
        header.extend_from_slice(&max_seq.to_be_bytes());
        header.push(self.quantization.code());
        header.resize(HEADER_LEN - 4, 0);
        let crc = codec::crc32(&header);
        header.extend_from_slice(&crc.to_le_bytes());
        header
    }
}

/// The block table and the tail that ends the file, for a table written at `table_offset`.
fn encode_tail(table: &[BlockEntry], table_offset: u64) -> Vec<u8> {
    let mut tail = Vec::with_capacity(table.len() * BLOCK_ENTRY_LEN + TAIL_LEN);
    for entry in table {
        tail.extend_from_slice(&entry.kind.code().to_le_bytes());
        tail.extend_from_slice(&0u32.to_le_bytes());
        tail.extend_from_slice(&entry.offset.to_le_bytes());
        tail.extend_from_slice(&entry.len.to_le_bytes());
        tail.extend_from_slice(&entry.crc.to_le_bytes());
        tail.extend_from_slice(&0u32.to_le_bytes());
    }
    tail.extend_from_slice(&table_offset.to_le_bytes());
    tail.extend_from_slice(&(table.len() as u32).to_le_bytes());
    let crc = codec::crc32(&tail);
    tail.extend_from_slice(&crc.to_le_bytes());
    tail.extend_from_slice(&SEGMENT_END_MAGIC);
    tail
}

/// Where everything is in a segment: parsed from the header and the block table only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentLayout {
    /// The header.
    pub header: SegmentHeader,
    /// The block table, in file order.
    pub blocks: Vec<BlockEntry>,
    /// The file's length.
    pub file_len: u64,
}

/// Read and check the tail: the end magic, the block count, that the table ends where the
/// tail starts, and the table's crc. Returns the table's offset and its number of entries.
fn parse_tail(bytes: &[u8]) -> Result<(u64, u32)> {
    if bytes.len() < HEADER_LEN + TAIL_LEN {
        return Err(FormatError::Truncated {
            kind: KIND,
            what: "tail".into(),
            offset: HEADER_LEN as u64,
            need: TAIL_LEN as u64,
            have: bytes.len().saturating_sub(HEADER_LEN) as u64,
        });
    }
    let tail_at = bytes.len() - TAIL_LEN;
    let mut cur = Cursor::new(bytes, tail_at, KIND);
    let table_offset = cur.u64("table offset")?;
    let count = cur.u32("block count")?;
    let stored = cur.u32("table crc")?;
    let end_magic = cur.array::<8>("end magic")?;
    if end_magic != SEGMENT_END_MAGIC {
        return Err(FormatError::malformed(
            KIND,
            "tail",
            tail_at as u64 + 16,
            "end magic missing: the file is truncated or its tail is corrupt",
        ));
    }
    if count > MAX_BLOCKS {
        return Err(FormatError::malformed(
            KIND,
            "tail",
            tail_at as u64 + 8,
            format!("block count {count} exceeds {MAX_BLOCKS}"),
        ));
    }
    let table_len = count as u64 * BLOCK_ENTRY_LEN as u64;
    if table_offset.checked_add(table_len) != Some(tail_at as u64)
        || table_offset < HEADER_LEN as u64
    {
        return Err(FormatError::malformed(
            KIND,
            "tail",
            tail_at as u64,
            format!(
                "table at {table_offset} with {count} entries does not end where the tail starts ({tail_at})"
            ),
        ));
    }
    check_crc(
        bytes,
        table_offset as usize..tail_at + 12,
        stored,
        KIND,
        "block table",
    )?;
    Ok((table_offset, count))
}

/// Read the `count` entries of the block table at `table_offset` (its crc already checked):
/// each aligned, in file order without overlap, listed once, and together covering the
/// space from the first block to the table.
fn parse_block_table(bytes: &[u8], table_offset: u64, count: u32) -> Result<Vec<BlockEntry>> {
    let mut cur = Cursor::new(bytes, table_offset as usize, KIND);
    let mut blocks: Vec<BlockEntry> = Vec::with_capacity(count as usize);
    let mut prev_end = pad_to(HEADER_LEN as u64);
    for i in 0..count {
        let at = cur.pos as u64;
        let kind = BlockKind::from_code(cur.u32("block kind")?);
        let reserved = cur.u32("reserved")?;
        let offset = cur.u64("block offset")?;
        let len = cur.u64("block length")?;
        let crc = cur.u32("block crc")?;
        let reserved2 = cur.u32("reserved")?;
        let bad = |detail: String| {
            FormatError::malformed(KIND, format!("block table entry {i}"), at, detail)
        };
        if reserved != 0 || reserved2 != 0 {
            return Err(bad("reserved fields are not zero".into()));
        }
        if offset % BLOCK_ALIGN as u64 != 0 {
            return Err(bad(format!("offset {offset} is not 64-byte aligned")));
        }
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= table_offset)
            .ok_or_else(|| bad(format!("block {offset}+{len} runs past the table")))?;
        if offset < prev_end {
            return Err(bad(format!(
                "block at {offset} overlaps the previous one (ends {prev_end})"
            )));
        }
        if blocks.iter().any(|b| b.kind == kind) {
            return Err(bad(format!("{} block listed twice", kind.name())));
        }
        prev_end = pad_to(end);
        blocks.push(BlockEntry {
            kind,
            offset,
            len,
            crc,
        });
    }
    if prev_end != table_offset {
        return Err(FormatError::malformed(
            KIND,
            "block table",
            table_offset,
            format!("blocks end at {prev_end} but the table starts at {table_offset}"),
        ));
    }
    Ok(blocks)
}

fn row_count_mismatch(what: BlockKind, offset: u64, detail: String) -> FormatError {
    FormatError::malformed(KIND, format!("{} block", what.name()), offset, detail)
}

impl SegmentLayout {
    /// Parse and check the header and the block table (not the blocks' contents).
    pub fn parse(bytes: &[u8]) -> Result<SegmentLayout> {
        let header = parse_header(bytes)?;
        let file_len = bytes.len() as u64;
        let (table_offset, count) = parse_tail(bytes)?;
        let blocks = parse_block_table(bytes, table_offset, count)?;
        let layout = SegmentLayout {
            header,
            blocks,
            file_len,
        };
        layout.check_sizes()?;
        Ok(layout)
    }

    fn check_sizes(&self) -> Result<()> {
        let rows = self.header.rows;
        let dims = u64::from(self.header.dims);
        let expect_fixed = |kind: BlockKind, per_row: u64| -> Result<()> {
            let block = self.block(kind)?;
            let want = rows.checked_mul(per_row);
            if want != Some(block.len) {
                return Err(row_count_mismatch(
                    kind,
                    block.offset,
                    format!(
                        "{} bytes, expected {rows} rows × {per_row} bytes",
                        block.len
                    ),
                ));
            }
            Ok(())
        };
        expect_fixed(BlockKind::Vectors, dims * 4)?;
        expect_fixed(BlockKind::IdIndex, 4)?;
        expect_fixed(BlockKind::Seqs, 20)?;
        match self.header.quantization {
            Quantization::None => {}
            Quantization::I8 => {
                expect_fixed(BlockKind::QuantI8Codes, dims)?;
                expect_fixed(BlockKind::QuantI8Scales, 4)?;
            }
            Quantization::Bit => expect_fixed(BlockKind::QuantBitCodes, dims.div_ceil(8))?,
        }
        for kind in [BlockKind::Ids, BlockKind::Metadata, BlockKind::Documents] {
            let block = self.block(kind)?;
            let table = (rows + 1) * 8;
            if block.len < table {
                return Err(row_count_mismatch(
                    kind,
                    block.offset,
                    format!("{} bytes cannot hold {} offsets", block.len, rows + 1),
                ));
            }
        }
        self.block(BlockKind::Shadow)?;
        Ok(())
    }

    /// The table entry of a block kind; an error if the segment lacks it.
    pub fn block(&self, kind: BlockKind) -> Result<&BlockEntry> {
        self.blocks.iter().find(|b| b.kind == kind).ok_or_else(|| {
            FormatError::malformed(
                KIND,
                "block table",
                self.file_len,
                format!("required {} block is missing", kind.name()),
            )
        })
    }
}

fn parse_header(bytes: &[u8]) -> Result<SegmentHeader> {
    let mut cur = Cursor::new(bytes, 0, KIND);
    let version = codec::read_preamble(&mut cur, &SEGMENT_MAGIC, SEGMENT_VERSION.major)?;
    let dims = cur.u32("dims")?;
    let rows = cur.u64("rows")?;
    let min_seq = Seq::from_be_bytes(cur.array("min seq")?);
    let max_seq = Seq::from_be_bytes(cur.array("max seq")?);
    let quant = cur.array::<1>("quantization")?[0];
    cur.take(HEADER_LEN - 4 - cur.pos, "reserved")?;
    let stored = cur.u32("header crc")?;
    check_crc(bytes, 0..HEADER_LEN - 4, stored, KIND, "header")?;
    let bad = |what: &str, offset: u64, detail: String| {
        FormatError::malformed(KIND, what, offset, detail)
    };
    if bytes[65..HEADER_LEN - 4].iter().any(|b| *b != 0) {
        return Err(bad("header", 65, "reserved bytes are not zero".into()));
    }
    if dims > MAX_DIMS {
        return Err(bad("header", 12, format!("{dims} dims exceeds {MAX_DIMS}")));
    }
    if rows > MAX_ROWS {
        return Err(bad("header", 16, format!("{rows} rows exceeds {MAX_ROWS}")));
    }
    let quantization = Quantization::from_code(quant)
        .ok_or_else(|| bad("header", 64, format!("unknown quantization code {quant}")))?;
    if dims == 0 && quantization != Quantization::None {
        return Err(bad("header", 64, "quantization without vectors".into()));
    }
    Ok(SegmentHeader {
        version,
        dims,
        rows,
        min_seq,
        max_seq,
        quantization,
    })
}

/// A parsed segment over its bytes (usually a memory map): cheap to create, zero-copy reads.
#[derive(Debug, Clone, Copy)]
pub struct SegmentView<'a> {
    bytes: &'a [u8],
    layout: &'a SegmentLayout,
}

impl<'a> SegmentView<'a> {
    /// A view of `bytes`, which must be the bytes `layout` was parsed from.
    pub fn new(bytes: &'a [u8], layout: &'a SegmentLayout) -> Result<SegmentView<'a>> {
        if bytes.len() as u64 != layout.file_len {
            return Err(FormatError::malformed(
                KIND,
                "file",
                0,
                format!(
                    "file is {} bytes, its layout was parsed from {}",
                    bytes.len(),
                    layout.file_len
                ),
            ));
        }
        Ok(SegmentView { bytes, layout })
    }

    /// The layout.
    pub fn layout(&self) -> &'a SegmentLayout {
        self.layout
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.layout.header.rows as usize
    }

    /// Dimensions.
    pub fn dims(&self) -> usize {
        self.layout.header.dims as usize
    }

    /// The bytes of a block.
    pub fn block_bytes(&self, kind: BlockKind) -> Result<&'a [u8]> {
        let b = self.layout.block(kind)?;
        // parse() checked offset + len <= table offset <= file length.
        Ok(&self.bytes[b.offset as usize..(b.offset + b.len) as usize])
    }

    /// Check one block's crc.
    pub fn verify_block(&self, kind: BlockKind) -> Result<()> {
        let b = self.layout.block(kind)?;
        check_crc(
            self.bytes,
            b.offset as usize..(b.offset + b.len) as usize,
            b.crc,
            KIND,
            &format!("{} block", kind.name()),
        )
    }

    /// Check every block's crc, that padding is zero, and the internal consistency of the
    /// variable-length blocks (offsets, UTF-8 ids, sorted id index, decodable entries).
    pub fn verify(&self) -> Result<()> {
        self.verify_and_decode().map(|_| ())
    }

    /// [`SegmentView::verify`], returning the shadow entries and histories it decoded (so
    /// that a reader that verifies does not decode them twice).
    pub fn verify_and_decode(&self) -> Result<(Vec<ShadowEntry>, Vec<History>)> {
        let mut pos = HEADER_LEN as u64;
        for b in &self.layout.blocks {
            self.check_zero(pos, b.offset, "padding")?;
            self.verify_block(b.kind)?;
            pos = b.offset + b.len;
        }
        let table_offset = self.layout.file_len
            - TAIL_LEN as u64
            - self.layout.blocks.len() as u64 * BLOCK_ENTRY_LEN as u64;
        self.check_zero(pos, table_offset, "padding")?;
        let mut prev: Option<&str> = None;
        for i in 0..self.rows() {
            let row = self.index_row(i)?;
            let id = self.id(row)?;
            if prev.is_some_and(|p| p >= id) {
                return Err(FormatError::malformed(
                    KIND,
                    "id index block",
                    self.layout.block(BlockKind::IdIndex)?.offset + 4 * i as u64,
                    format!("ids out of order or repeated at index entry {i}"),
                ));
            }
            prev = Some(id);
            self.row_meta(i)?;
            self.document(i)?;
        }
        for kind in [BlockKind::Ids, BlockKind::Metadata, BlockKind::Documents] {
            self.check_offsets_ends(kind)?;
        }
        let shadow = self.shadow()?;
        let history = self.history()?;
        self.check_seq_range(&shadow, &history)?;
        Ok((shadow, history))
    }

    /// An offsets-table block starts its first entry at 0 and ends its last at the blob's end.
    fn check_offsets_ends(&self, kind: BlockKind) -> Result<()> {
        let block = self.block_bytes(kind)?;
        let offset = self.layout.block(kind)?.offset;
        let rows = self.rows();
        let read = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&block[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let blob_len = (block.len() - (rows + 1) * 8) as u64;
        let (first, last) = (read(0), read(rows));
        if first != 0 || last != blob_len {
            return Err(FormatError::malformed(
                KIND,
                format!("{} block", kind.name()),
                offset,
                format!(
                    "offsets run {first}..{last}, the blob holds {blob_len} bytes (must be 0..{blob_len})"
                ),
            ));
        }
        Ok(())
    }

    /// The header's min and max seq are those of the rows, shadow entries and histories.
    fn check_seq_range(&self, shadow: &[ShadowEntry], history: &[History]) -> Result<()> {
        let mut min = Seq::MAX;
        let mut max = Seq::ZERO;
        for row in 0..self.rows() {
            let seq = self.seq(row)?;
            min = min.min(seq);
            max = max.max(seq);
        }
        let others =
            shadow
                .iter()
                .flat_map(|s| std::iter::once(s.seq).chain(s.overlay.iter().map(|(_, q, _)| *q)))
                .chain(history.iter().flat_map(|h| {
                    std::iter::once(h.through).chain(h.patches.iter().map(|p| p.seq))
                }));
        for seq in others {
            max = max.max(seq);
        }
        if self.rows() == 0 {
            min = Seq::ZERO;
        }
        let h = &self.layout.header;
        if h.min_seq != min || h.max_seq != max {
            return Err(FormatError::malformed(
                KIND,
                "header",
                24,
                format!(
                    "header seq range {}..{} differs from the contents' {min}..{max}",
                    h.min_seq, h.max_seq
                ),
            ));
        }
        Ok(())
    }

    fn check_zero(&self, from: u64, to: u64, what: &str) -> Result<()> {
        match self.bytes[from as usize..to as usize]
            .iter()
            .position(|b| *b != 0)
        {
            None => Ok(()),
            Some(i) => Err(FormatError::malformed(
                KIND,
                what,
                from + i as u64,
                "padding byte is not zero (corrupt)",
            )),
        }
    }

    /// All vectors, row-major, borrowed from the file's bytes (zero-copy).
    ///
    /// Fails if the bytes are not 4-byte aligned in memory (a memory map always is).
    pub fn vectors(&self) -> Result<&'a [f32]> {
        let bytes = self.block_bytes(BlockKind::Vectors)?;
        bytemuck::try_cast_slice(bytes).map_err(|e| {
            FormatError::malformed(
                KIND,
                "vectors block",
                self.layout
                    .block(BlockKind::Vectors)
                    .map_or(0, |b| b.offset),
                format!("cannot view as f32 in place: {e:?} (the buffer is not 4-byte aligned)"),
            )
        })
    }

    /// One row's vector.
    pub fn vector(&self, row: usize) -> Result<&'a [f32]> {
        let dims = self.dims();
        self.check_row(row)?;
        Ok(&self.vectors()?[row * dims..(row + 1) * dims])
    }

    /// The i8 codes and per-row scales, when the segment has them.
    pub fn quant_i8(&self) -> Result<Option<(&'a [i8], &'a [f32])>> {
        if self.layout.header.quantization != Quantization::I8 {
            return Ok(None);
        }
        let codes: &[i8] = bytemuck::cast_slice(self.block_bytes(BlockKind::QuantI8Codes)?);
        let scales = bytemuck::try_cast_slice(self.block_bytes(BlockKind::QuantI8Scales)?)
            .map_err(|e| FormatError::malformed(KIND, "i8 scales block", 0, format!("{e:?}")))?;
        Ok(Some((codes, scales)))
    }

    /// The sign-bit codes, when the segment has them.
    pub fn quant_bits(&self) -> Result<Option<&'a [u8]>> {
        if self.layout.header.quantization != Quantization::Bit {
            return Ok(None);
        }
        self.block_bytes(BlockKind::QuantBitCodes).map(Some)
    }

    fn check_row(&self, row: usize) -> Result<()> {
        if row >= self.rows() {
            return Err(FormatError::malformed(
                KIND,
                "row number",
                0,
                format!("row {row} out of range (segment has {})", self.rows()),
            ));
        }
        Ok(())
    }

    /// Entry `row` of an offsets block.
    fn entry(&self, kind: BlockKind, row: usize) -> Result<&'a [u8]> {
        self.check_row(row)?;
        let block = self.block_bytes(kind)?;
        let base = self.layout.block(kind)?.offset;
        let rows = self.rows();
        let table = (rows + 1) * 8;
        let read = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&block[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let (start, end) = (read(row), read(row + 1));
        let blob_len = (block.len() - table) as u64;
        if start > end || end > blob_len {
            return Err(FormatError::malformed(
                KIND,
                format!("{} block", kind.name()),
                base + row as u64 * 8,
                format!("entry {row} spans {start}..{end}, blob holds {blob_len} bytes"),
            ));
        }
        Ok(&block[table + start as usize..table + end as usize])
    }

    /// A row's id.
    pub fn id(&self, row: usize) -> Result<&'a str> {
        let bytes = self.entry(BlockKind::Ids, row)?;
        std::str::from_utf8(bytes).map_err(|e| {
            FormatError::malformed(KIND, "ids block", 0, format!("id of row {row}: {e}"))
        })
    }

    fn index_row(&self, i: usize) -> Result<usize> {
        let block = self.block_bytes(BlockKind::IdIndex)?;
        let mut b = [0u8; 4];
        b.copy_from_slice(&block[i * 4..i * 4 + 4]);
        let row = u32::from_le_bytes(b) as usize;
        self.check_row(row)?;
        Ok(row)
    }

    /// The row holding `id`, by binary search of the id index (no scan).
    pub fn find(&self, id: &str) -> Result<Option<usize>> {
        let (mut lo, mut hi) = (0usize, self.rows());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let row = self.index_row(mid)?;
            match self.id(row)?.cmp(id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(row)),
            }
        }
        Ok(None)
    }

    /// A row's seq.
    pub fn seq(&self, row: usize) -> Result<Seq> {
        self.check_row(row)?;
        let block = self.block_bytes(BlockKind::Seqs)?;
        let mut b = [0u8; 20];
        b.copy_from_slice(&block[row * 20..row * 20 + 20]);
        Ok(Seq::from_be_bytes(b))
    }

    /// A row's metadata and patched-key seqs.
    pub fn row_meta(&self, row: usize) -> Result<RowMeta> {
        let bytes = self.entry(BlockKind::Metadata, row)?;
        codec::decode_exact(bytes, KIND, &format!("metadata of row {row}"), 0)
    }

    /// A row's document.
    pub fn document(&self, row: usize) -> Result<Option<String>> {
        let bytes = self.entry(BlockKind::Documents, row)?;
        codec::decode_exact(bytes, KIND, &format!("document of row {row}"), 0)
    }

    /// The shadow entries (tombstones and early patches).
    pub fn shadow(&self) -> Result<Vec<ShadowEntry>> {
        let block = self.layout.block(BlockKind::Shadow)?;
        codec::decode_exact(
            self.block_bytes(BlockKind::Shadow)?,
            KIND,
            "shadow block",
            block.offset,
        )
    }
}

impl SegmentView<'_> {
    /// The replay histories, sorted by id (empty when the segment has no History block).
    pub fn history(&self) -> Result<Vec<History>> {
        let Some(block) = self
            .layout
            .blocks
            .iter()
            .find(|b| b.kind == BlockKind::History)
        else {
            return Ok(Vec::new());
        };
        let list: Vec<History> = codec::decode_exact(
            self.block_bytes(BlockKind::History)?,
            KIND,
            "history block",
            block.offset,
        )?;
        if let Some(i) = list.windows(2).position(|w| w[0].id >= w[1].id) {
            return Err(FormatError::malformed(
                KIND,
                "history block",
                block.offset,
                format!("ids out of order or repeated at entry {}", i + 1),
            ));
        }
        let dims = self.dims();
        for h in &list {
            if let Some(r) = &h.base_record {
                if r.embedding.len() != dims {
                    return Err(FormatError::malformed(
                        KIND,
                        "history block",
                        block.offset,
                        format!(
                            "history of {:?} has a {}-dimension base vector, the segment has {dims}",
                            h.id,
                            r.embedding.len()
                        ),
                    ));
                }
            }
            if let Some(p) = h.patches.iter().find(|p| p.seq <= h.through) {
                return Err(FormatError::malformed(
                    KIND,
                    "history block",
                    block.offset,
                    format!(
                        "history of {:?} keeps a patch at seq {} not newer than its base ({})",
                        h.id, p.seq, h.through
                    ),
                ));
            }
        }
        Ok(list)
    }
}

/// A byte buffer whose start is 64-byte aligned, for reading a segment from memory that
/// is not a memory map (tests, tools reading a file into memory).
#[derive(Debug, Clone)]
pub struct AlignedBuf {
    words: Vec<[u64; 8]>,
    len: usize,
}

impl AlignedBuf {
    /// Copy bytes into an aligned buffer.
    pub fn copy_from(bytes: &[u8]) -> AlignedBuf {
        let mut words = vec![[0u64; 8]; bytes.len().div_ceil(64)];
        let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        dst[..bytes.len()].copy_from_slice(bytes);
        AlignedBuf {
            words,
            len: bytes.len(),
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
}
