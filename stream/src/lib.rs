//! strata-stream: the receipt domain between a DynamoDB stream and strata.
//!
//! A Lambda DynamoDB stream event is parsed record by record ([`event`]); each record's
//! receipt entity is detected from its keys and compared old/new ([`entity`]); the record
//! becomes strata operations on the `lines`, `words`, `labels`, `sections` and `places`
//! collections plus follow-up requests ([`ops`]) that the writer carries out: delta merges for
//! compaction runs and recomputations of derived metadata ([`mod@derive`]). The seed's SQS
//! message body stays readable and writable ([`message`]) so existing queues keep working,
//! and the compactor turns the seed's SQS batches of those messages into the same
//! operations ([`sqs`]); [`builders`] produces the records the embedding producer writes,
//! with the ids of [`ids`] and the normalizers of [`normalize`].
//!
//! This crate does no I/O and depends on no engine: it is pure translation.

#![deny(missing_docs)]

pub mod builders;
pub mod derive;
pub mod entity;
pub mod event;
pub mod ids;
pub mod message;
pub mod normalize;
pub mod ops;
pub mod sqs;
#[doc(hidden)]
pub mod testing;

pub use derive::{Derived, StateReader};
pub use entity::{Entity, EntityType, FieldChange, ReceiptKey, WordKey};
pub use event::{
    parse_event, parse_record, BatchResponse, EventError, EventName, ParsedBatch, RecordFailure,
    StreamRecord,
};
pub use message::{build_messages, Queue, StreamMessage};
pub use ops::{
    translate, translate_batch, Collection, CollectionOp, FollowUp, MergeRun, Translation,
};
pub use sqs::{
    dedupe_and_order, parse_sqs_event, translate_message, MessageOpsError, SqsBatch, SqsChange,
    SqsEventError, SqsRecord, SqsRecordError,
};
