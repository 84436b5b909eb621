//! The seed's `StreamMessage` and its SQS wire format (seed-system §2.2, §2.4), so that
//! existing queues (`lines`, `words`, `receipt_summary`, `line_items`) and tools keep
//! working while strata takes over storage: the body, parsed and emitted, and the seed's
//! routing of stream records to messages.
//!
//! The body is a JSON object with exactly `source`, `entity_type`, `entity_data`, `changes`
//! (field → `{old, new}`), `event_name`, `timestamp`, `stream_record_id` and `aws_region`;
//! `collections` and `record_snapshot` live in memory only and are never serialized, as in
//! the seed. [`build_messages`] applies the seed's routing table unchanged (the queues it
//! feeds are not storage; storage goes through [`crate::ops`], which fixes the seed's
//! routing gaps).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::entity::{ChangeError, Entity, EntityChange, EntityType, FieldChange};
use crate::event::{EventName, StreamRecord};

/// Largest SQS message body [`StreamMessage::from_body`] accepts (SQS's own limit is 1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The `source` of messages built from the DynamoDB stream.
pub const SOURCE_DYNAMODB_STREAM: &str = "dynamodb_stream";

/// A target queue of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    /// The `lines` compaction queue.
    Lines,
    /// The `words` compaction queue.
    Words,
    /// The receipt summary queue (not storage).
    ReceiptSummary,
    /// The line-items queue (not storage).
    LineItems,
}

impl Queue {
    /// The queue's name as in the `collection` message attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Lines => "lines",
            Queue::Words => "words",
            Queue::ReceiptSummary => "receipt_summary",
            Queue::LineItems => "line_items",
        }
    }

    /// Parse a queue name.
    pub fn parse(name: &str) -> Option<Queue> {
        [
            Queue::Lines,
            Queue::Words,
            Queue::ReceiptSummary,
            Queue::LineItems,
        ]
        .into_iter()
        .find(|q| q.as_str() == name)
    }

    /// The environment variable holding the queue's URL in the seed's deployment.
    pub fn url_env_var(self) -> &'static str {
        match self {
            Queue::Lines => "LINES_QUEUE_URL",
            Queue::Words => "WORDS_QUEUE_URL",
            Queue::ReceiptSummary => "RECEIPT_SUMMARY_QUEUE_URL",
            Queue::LineItems => "LINE_ITEM_QUEUE_URL",
        }
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a message came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageContext {
    /// `dynamodb_stream`, or `section_backfill` for backfill messages.
    pub source: String,
    /// ISO-8601 UTC time the message was built (not the change time).
    pub timestamp: Option<String>,
    /// The DynamoDB `eventID` (on the consumer side: the SQS messageId).
    pub record_id: Option<String>,
    /// The AWS region.
    pub aws_region: Option<String>,
}

/// The seed's message about one entity change.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMessage {
    /// `RECEIPT_PLACE`, `COMPACTION_RUN`, ... (kept as text: any type round-trips).
    pub entity_type: String,
    /// Identity of the entity (see [`entity_data`]).
    pub entity_data: Map<String, Value>,
    /// Changed relevant fields.
    pub changes: BTreeMap<String, FieldChange>,
    /// INSERT, MODIFY or REMOVE.
    pub event_name: EventName,
    /// Target queues (in memory only).
    pub collections: Vec<Queue>,
    /// Origin.
    pub context: MessageContext,
    /// The new entity, or the raw new image for a compaction run (in memory only).
    pub record_snapshot: Option<Value>,
}

/// The JSON body, field for field.
#[derive(Debug, Serialize, Deserialize)]
struct Body {
    #[serde(default = "default_source")]
    source: String,
    entity_type: String,
    #[serde(default)]
    entity_data: Map<String, Value>,
    #[serde(default)]
    changes: BTreeMap<String, WireChange>,
    event_name: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    stream_record_id: Option<String>,
    #[serde(default)]
    aws_region: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireChange {
    #[serde(default)]
    old: Value,
    #[serde(default)]
    new: Value,
}

fn default_source() -> String {
    SOURCE_DYNAMODB_STREAM.to_string()
}

/// Why a message body could not be read, or a message not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The body is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message body is {len} bytes; at most {MAX_MESSAGE_BYTES} are accepted")]
    TooLarge {
        /// Body size.
        len: usize,
    },
    /// The body is not the seed's JSON message.
    #[error("message body at line {line} column {column}: {message}")]
    Body {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// `event_name` is not INSERT, MODIFY or REMOVE.
    #[error("message field `event_name`: {0:?} is not INSERT, MODIFY or REMOVE")]
    EventName(String),
    /// An image of the record does not parse as its entity.
    #[error("{record}: {error}")]
    Entity {
        /// The record, described.
        record: String,
        /// What was wrong.
        error: ChangeError,
    },
}

impl StreamMessage {
    /// The JSON body (what the seed sends to SQS).
    pub fn to_body(&self) -> String {
        let body = Body {
            source: self.context.source.clone(),
            entity_type: self.entity_type.clone(),
            entity_data: self.entity_data.clone(),
            changes: self
                .changes
                .iter()
                .map(|(k, c)| {
                    (
                        k.clone(),
                        WireChange {
                            old: c.old.clone(),
                            new: c.new.clone(),
                        },
                    )
                })
                .collect(),
            event_name: self.event_name.as_str().to_string(),
            timestamp: self.context.timestamp.clone(),
            stream_record_id: self.context.record_id.clone(),
            aws_region: self.context.aws_region.clone(),
        };
        // Serializing maps of JSON values with string keys cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// Parse a JSON body. `collections` and `record_snapshot` are not in the body: they
    /// come back empty.
    pub fn from_body(body: &[u8]) -> Result<StreamMessage, MessageError> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(MessageError::TooLarge { len: body.len() });
        }
        if !body.trim_ascii_start().starts_with(b"{") {
            return Err(MessageError::Body {
                line: 1,
                column: 1,
                message: "expected a JSON object".into(),
            });
        }
        let b: Body = serde_json::from_slice(body).map_err(|e| MessageError::Body {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let event_name = EventName::parse(&b.event_name)
            .ok_or_else(|| MessageError::EventName(b.event_name.chars().take(64).collect()))?;
        Ok(StreamMessage {
            entity_type: b.entity_type,
            entity_data: b.entity_data,
            changes: b
                .changes
                .into_iter()
                .map(|(k, c)| {
                    (
                        k,
                        FieldChange {
                            old: c.old,
                            new: c.new,
                        },
                    )
                })
                .collect(),
            event_name,
            collections: Vec::new(),
            context: MessageContext {
                source: b.source,
                timestamp: b.timestamp,
                record_id: b.stream_record_id,
                aws_region: b.aws_region,
            },
            record_snapshot: None,
        })
    }

    /// Rebuild a message as the compactor received it from SQS: the queue comes from the
    /// `collection` message attribute (`lines` when absent or unknown) and `record_id`
    /// becomes the SQS messageId (what partial-batch failures name).
    pub fn from_sqs(
        body: &[u8],
        collection_attribute: Option<&str>,
        message_id: &str,
    ) -> Result<StreamMessage, MessageError> {
        let mut m = StreamMessage::from_body(body)?;
        m.collections = vec![collection_attribute
            .and_then(Queue::parse)
            .unwrap_or(Queue::Lines)];
        m.context.record_id = Some(message_id.to_string());
        Ok(m)
    }

    /// The entity type, if it is one this crate knows.
    pub fn entity_type(&self) -> Option<EntityType> {
        EntityType::parse(&self.entity_type)
    }

    /// The SQS message attributes (all `String`) for sending this message to `queue`.
    pub fn sqs_attributes(&self, queue: Queue) -> [(&'static str, String); 4] {
        [
            ("source", self.context.source.clone()),
            ("entity_type", self.entity_type.clone()),
            ("event_name", self.event_name.as_str().to_string()),
            ("collection", queue.as_str().to_string()),
        ]
    }
}

/// The seed's `entity_data` of an entity (seed §2.2): `entity_type`, `image_id`,
/// `receipt_id`, plus `line_id` / `word_id` / `label` / `section_type` where they apply.
pub fn entity_data(entity: &Entity) -> Map<String, Value> {
    let r = entity.receipt();
    let mut m = Map::new();
    m.insert("entity_type".into(), json!(entity.entity_type().as_str()));
    m.insert("image_id".into(), json!(r.image_id));
    m.insert("receipt_id".into(), json!(r.receipt_id));
    match entity {
        Entity::ReceiptLine { line_id, .. } => {
            m.insert("line_id".into(), json!(line_id));
        }
        Entity::ReceiptWord(w) => {
            m.insert("line_id".into(), json!(w.line_id));
            m.insert("word_id".into(), json!(w.word_id));
        }
        Entity::ReceiptWordLabel(l) => {
            m.insert("line_id".into(), json!(l.word.line_id));
            m.insert("word_id".into(), json!(l.word.word_id));
            m.insert("label".into(), json!(l.label));
        }
        Entity::ReceiptSection(s) => {
            m.insert("section_type".into(), json!(s.section_type));
        }
        _ => {}
    }
    m
}

/// The queues a change of this entity goes to (seed §2.2).
pub fn targets(entity: &Entity) -> Vec<Queue> {
    match entity {
        Entity::ReceiptPlace(_) => vec![Queue::Lines, Queue::Words, Queue::ReceiptSummary],
        Entity::ReceiptWordLabel(_) => vec![Queue::Words, Queue::Lines, Queue::ReceiptSummary],
        Entity::ReceiptSection(s) => {
            if s.section_type.eq_ignore_ascii_case("ITEMS") {
                vec![Queue::Lines, Queue::LineItems]
            } else {
                vec![Queue::Lines]
            }
        }
        Entity::ReceiptSummary(_) => vec![Queue::LineItems],
        Entity::Receipt(_) => vec![Queue::Lines, Queue::Words],
        Entity::ReceiptLine { .. } => vec![Queue::Lines],
        Entity::ReceiptWord(_) => vec![Queue::Words],
        Entity::CompactionRun(_) => vec![Queue::Lines, Queue::Words],
    }
}

/// The seed stream processor's messages for one record (seed §1.3, §2.2), built at
/// `built_at` (ISO-8601 UTC, the message's `timestamp`).
///
/// * COMPACTION_RUN INSERT: two messages, `lines` then `words`, each with its own
///   `delta_s3_prefix`; MODIFY and REMOVE of a run: none.
/// * Other INSERTs: only RECEIPT_SECTION and RECEIPT_SUMMARY produce a message.
/// * MODIFY: a message only if a relevant field changed; REMOVE: always.
///
/// Unlike the seed, an image that does not parse is an error rather than an empty side.
pub fn build_messages(
    record: &StreamRecord,
    built_at: &str,
) -> Result<Vec<StreamMessage>, MessageError> {
    let change = EntityChange::from_record(record).map_err(|error| MessageError::Entity {
        record: record.describe(),
        error,
    })?;
    let Some(change) = change else {
        return Ok(Vec::new());
    };
    let context = MessageContext {
        source: SOURCE_DYNAMODB_STREAM.to_string(),
        timestamp: Some(built_at.to_string()),
        record_id: Some(record.event_id.clone()),
        aws_region: Some(record.aws_region.clone()),
    };
    if change.entity_type == EntityType::CompactionRun {
        let (EventName::Insert, Some(Entity::CompactionRun(run))) =
            (record.event_name, change.new.as_ref())
        else {
            return Ok(Vec::new());
        };
        let snapshot = record
            .new_image
            .as_ref()
            .and_then(|i| serde_json::to_value(i).ok());
        return Ok([
            (Queue::Lines, &run.lines_delta_prefix),
            (Queue::Words, &run.words_delta_prefix),
        ]
        .into_iter()
        .map(|(queue, prefix)| {
            let mut data = Map::new();
            data.insert("run_id".into(), json!(run.run_id));
            data.insert("image_id".into(), json!(run.receipt.image_id));
            data.insert("receipt_id".into(), json!(run.receipt.receipt_id));
            data.insert("lines_delta_prefix".into(), json!(run.lines_delta_prefix));
            data.insert("words_delta_prefix".into(), json!(run.words_delta_prefix));
            data.insert("delta_s3_prefix".into(), json!(prefix));
            StreamMessage {
                entity_type: EntityType::CompactionRun.as_str().to_string(),
                entity_data: data,
                changes: BTreeMap::new(),
                event_name: EventName::Insert,
                collections: vec![queue],
                context: context.clone(),
                record_snapshot: snapshot.clone(),
            }
        })
        .collect());
    }
    if record.event_name == EventName::Insert
        && !matches!(
            change.entity_type,
            EntityType::ReceiptSection | EntityType::ReceiptSummary
        )
    {
        return Ok(Vec::new());
    }
    let changes = change.changes();
    if changes.is_empty() && record.event_name != EventName::Remove {
        return Ok(Vec::new());
    }
    let subject = match change.subject() {
        Some(e) => e.clone(),
        // A REMOVE without images (KEYS_ONLY stream): identity from the keys.
        None => match EntityChange::keys_only(record) {
            Some(e) => e,
            None => return Ok(Vec::new()),
        },
    };
    Ok(vec![StreamMessage {
        entity_type: change.entity_type.as_str().to_string(),
        entity_data: entity_data(&subject),
        changes,
        event_name: record.event_name,
        collections: targets(&subject),
        context,
        record_snapshot: match record.event_name {
            EventName::Remove => None,
            _ => change.new.as_ref().map(Entity::to_json),
        },
    }])
}
