//! strata-stream: the receipt domain between a DynamoDB stream and strata.
//!
//! A Lambda DynamoDB stream event is parsed record by record ([`event`]); each record's
//! receipt entity is detected from its keys and compared old/new ([`entity`]); the record
//! becomes strata operations on the `lines`, `words`, `labels`, `sections` and `places`
//! collections plus follow-up requests ([`ops`]) that the writer carries out: delta merges for
//! compaction runs and recomputations of derived metadata ([`mod@derive`]). The seed's
//! migration path lives apart ([`seed`]): its SQS message body stays readable and writable
//! so existing queues keep working, and the compactor turns the seed's SQS batches of those
//! messages into the same operations; [`builders`] produces the records the embedding producer writes,
//! with the ids of [`ids`] and the normalizers of [`normalize`].
//!
//! This crate does no I/O and depends on no engine: it is pure translation.

#![deny(missing_docs)]

pub mod builders;
pub mod derive;
pub mod entity;
pub mod event;
pub mod ids;
pub mod normalize;
pub mod ops;
pub mod seed;

pub use derive::{Derived, StateReader};
pub use entity::{Entity, EntityType, FieldChange, ReceiptKey, WordKey};
pub use event::{
    parse_event, parse_record, BatchResponse, EventError, EventName, ParsedBatch, RecordFailure,
    StreamRecord,
};
pub use ops::{
    translate, translate_batch, Collection, CollectionOp, FollowUp, MergeRun, Translation,
};
pub use seed::{
    build_messages, dedupe_and_order, parse_sqs_event, translate_message, MessageOpsError, Queue,
    SqsBatch, SqsChange, SqsEventError, SqsRecord, SqsRecordError, StreamMessage,
};
