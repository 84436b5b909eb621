//! Operations: what a delta file holds and what a write applies.
//!
//! `Upsert` replaces a record; `Patch` merges metadata into the records a target selects
//! (keys not named survive, `unset` keys are deleted: Chroma's `update`); `Delete` removes the
//! records a target selects. Every operation carries a [`Seq`]: the state after any set of
//! operations equals the state after applying them sorted by seq (DESIGN.md, "Data model").

use crate::filter::Filter;
use crate::seq::Seq;
use crate::value::Metadata;

/// A record: id, optional embedding, optional document, metadata.
///
/// Encoded as bincode derives it, field by field; the embedding's values are copied as one
/// block (`embedding_codec`), the same bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The record's id (UTF-8).
    pub id: String,
    /// The embedding; its length must equal the collection's dims.
    pub embedding: Option<Vec<f32>>,
    /// The document text.
    pub document: Option<String>,
    /// The metadata.
    pub metadata: Metadata,
}

impl bincode::Encode for Record {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        bincode::Encode::encode(&self.id, e)?;
        crate::embedding_codec::encode(self.embedding.as_deref(), e)?;
        bincode::Encode::encode(&self.document, e)?;
        bincode::Encode::encode(&self.metadata, e)
    }
}

impl<C> bincode::Decode<C> for Record {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(Record {
            id: bincode::Decode::decode(d)?,
            embedding: crate::embedding_codec::decode(d)?,
            document: bincode::Decode::decode(d)?,
            metadata: bincode::Decode::decode(d)?,
        })
    }
}

bincode::impl_borrow_decode!(Record);

/// Which records a patch or a delete applies to.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub enum Target {
    /// One record by id.
    Id(String),
    /// Several records by id.
    Ids(Vec<String>),
    /// Every record whose metadata matches the filter.
    Where(Filter),
}

/// A metadata merge: `set` keys are written, `unset` keys are removed, others survive.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct Patch {
    /// The records to patch.
    pub target: Target,
    /// Keys to write.
    pub set: Metadata,
    /// Keys to remove.
    pub unset: Vec<String>,
}

/// What an operation does.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub enum Op {
    /// Insert or replace a whole record.
    Upsert(Record),
    /// Merge metadata into the targeted records.
    Patch(Patch),
    /// Remove the targeted records.
    Delete(Target),
}

/// An operation with its position in the source's order.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct Operation {
    /// Position in the source's order (a DynamoDB SequenceNumber, or stamped by the writer).
    pub seq: Seq,
    /// What the operation does.
    pub op: Op,
}

impl Target {
    /// The ids this target names, if it names ids rather than a filter.
    pub fn ids(&self) -> Option<&[String]> {
        match self {
            Target::Id(id) => Some(std::slice::from_ref(id)),
            Target::Ids(ids) => Some(ids),
            Target::Where(_) => None,
        }
    }
}

impl Operation {
    /// An upsert.
    pub fn upsert(seq: impl Into<Seq>, record: Record) -> Operation {
        Operation {
            seq: seq.into(),
            op: Op::Upsert(record),
        }
    }

    /// A patch.
    pub fn patch(
        seq: impl Into<Seq>,
        target: Target,
        set: Metadata,
        unset: Vec<String>,
    ) -> Operation {
        Operation {
            seq: seq.into(),
            op: Op::Patch(Patch { target, set, unset }),
        }
    }

    /// A delete.
    pub fn delete(seq: impl Into<Seq>, target: Target) -> Operation {
        Operation {
            seq: seq.into(),
            op: Op::Delete(target),
        }
    }

    /// The embedding this operation carries, if any.
    pub fn embedding(&self) -> Option<&[f32]> {
        match &self.op {
            Op::Upsert(r) => r.embedding.as_deref(),
            _ => None,
        }
    }
}
