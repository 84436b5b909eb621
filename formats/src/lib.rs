//! strata-formats: the byte layouts strata writes and reads, and the data model they carry.
//!
//! Everything here is pure: no I/O policy, no RocksDB. Decoders take untrusted bytes and
//! return a value or a typed error ([`FormatError`]); they never panic and never allocate
//! more than the input size justifies. `FORMAT.md` beside this crate is the byte-level
//! specification that the code follows.

#![deny(missing_docs)]

pub mod codec;
pub mod collection;
pub mod delta;
mod embedding_codec;
pub mod error;
pub mod filter;
pub mod op;
pub mod samples;
pub mod segment;
pub mod seq;
pub mod value;
pub mod version;

pub use codec::{crc32, FormatVersion};
pub use collection::{Metric, Quantization};
pub use delta::{decode_delta, Delta, DeltaHeader, DeltaSeal, DeltaStatus, DeltaWriter};
pub use error::{FileKind, FormatError};
pub use filter::{CmpOp, Filter, FilterError, Predicate};
pub use op::{Op, Operation, Patch, Record, Target};
pub use segment::{
    AlignedBuf, BaseRecord, BaseState, BlockKind, History, PatchEvent, RowInput, RowMeta,
    SegmentLayout, SegmentView, SegmentWriter, ShadowEntry,
};
pub use seq::{Seq, SeqParseError};
pub use value::{MetaValue, Metadata, Scalar, ValueError};
pub use version::{
    decode_version, encode_version, DeltaRef, RetainedOp, SegmentRef, VersionRecord,
};

/// Which kind of strata file some bytes are, judged by their magic.
pub fn sniff(bytes: &[u8]) -> Option<FileKind> {
    match bytes.get(..8)? {
        m if m == delta::DELTA_MAGIC => Some(FileKind::Delta),
        m if m == segment::SEGMENT_MAGIC => Some(FileKind::Segment),
        m if m == version::VERSION_MAGIC => Some(FileKind::Version),
        _ => None,
    }
}
