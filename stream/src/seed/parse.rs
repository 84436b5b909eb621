//! Parsing the seed's SQS events: the Lambda SQS envelope, then each record on its own —
//! its messageId, its body as a [`StreamMessage`] and the body's `stream_record_id` — so
//! that a record that cannot be used is a failure named by its messageId, never a dropped
//! message and never a failed batch (the rules are in [the module documentation](super)).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::message::{MessageError, StreamMessage};
use super::order::{dedupe_and_order, SqsChange};
use crate::event::{BatchResponse, Position, MAX_EVENT_BYTES};

/// Largest SQS event [`parse_sqs_event`] accepts (the same cap as DynamoDB events; Lambda's
/// own payload limit is 6 MB).
pub const MAX_SQS_EVENT_BYTES: usize = MAX_EVENT_BYTES;

/// Why a payload is not an SQS event at all (the whole invocation fails).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqsEventError {
    /// The payload is larger than [`MAX_SQS_EVENT_BYTES`].
    #[error("SQS event is {len} bytes; at most {max} are accepted")]
    TooLarge {
        /// Payload size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not valid JSON (syntax error, truncated, or not UTF-8).
    #[error("SQS event is not valid JSON at {at}: {message}")]
    Json {
        /// Where the parser stopped.
        at: Position,
        /// serde_json's message.
        message: String,
    },
    /// Valid JSON, but not an SQS event (`Records` missing or not an array).
    #[error("not an SQS event at {at}: {message}")]
    NotAnEvent {
        /// Where the parser stopped.
        at: Position,
        /// What was wrong.
        message: String,
    },
}

/// Why one record of an SQS event yields no message (report it failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqsRecordError {
    /// The record is not an SQS message object, or a field read has the wrong type.
    #[error("field `{path}`: {message}")]
    Malformed {
        /// JSON path inside the record (`.` for the record itself).
        path: String,
        /// What was wrong (positions are within the record).
        message: String,
    },
    /// No `messageId` (or an empty one): the record cannot be named in a partial-batch
    /// response, so the whole batch must be failed.
    #[error("no messageId; only failing the whole batch keeps this message")]
    NoMessageId,
    /// No `body`.
    #[error("no body")]
    NoBody,
    /// The body is not a StreamMessage.
    #[error("body: {0}")]
    Message(#[from] MessageError),
}

/// One record of an SQS event.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsRecord {
    /// Position in the event's `Records`.
    pub index: usize,
    /// `messageId` (what a partial-batch response names); `None` when absent or empty.
    pub message_id: Option<String>,
    /// The `collection` message attribute's `stringValue`, as sent.
    pub collection: Option<String>,
    /// `eventSourceARN` (the queue), when present.
    pub event_source_arn: Option<String>,
    /// The body's own `stream_record_id` (the DynamoDB eventID; [`StreamMessage::from_sqs`]
    /// replaces the message's `record_id` with the messageId).
    pub stream_record_id: Option<String>,
    /// The message, or why there is none.
    pub message: Result<StreamMessage, SqsRecordError>,
}

/// A parsed SQS event: every record, in event order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SqsBatch {
    /// The records, each with its message or its error.
    pub records: Vec<SqsRecord>,
}

impl SqsBatch {
    /// Records that yield no message (each must be reported failed).
    pub fn failures(&self) -> impl Iterator<Item = &SqsRecord> {
        self.records.iter().filter(|r| r.message.is_err())
    }

    /// The changes of the batch, deduplicated and ordered ([`dedupe_and_order`]).
    pub fn changes(&self) -> Vec<SqsChange> {
        dedupe_and_order(&self.records)
    }

    /// The partial-batch response: every record that yielded no message, and every
    /// messageId of each change in `failed`. A failed record without a messageId is
    /// reported with an empty identifier, which makes Lambda retry the whole batch.
    pub fn batch_response<'a>(
        &'a self,
        failed: impl IntoIterator<Item = &'a SqsChange>,
    ) -> BatchResponse {
        let records = self.failures().map(|r| r.message_id.as_deref());
        let changes = failed
            .into_iter()
            .flat_map(|c| c.message_ids.iter().map(|id| Some(id.as_str())));
        BatchResponse::failing(records.chain(changes))
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<&'a RawValue>,
}

/// The fields of a Lambda SQS record that are read (`aws_lambda_events::sqs::SqsMessage`
/// names them the same; the others are ignored).
#[derive(Deserialize)]
struct WireRecord {
    #[serde(rename = "messageId", default)]
    message_id: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(rename = "eventSourceARN", default)]
    event_source_arn: Option<String>,
    #[serde(rename = "messageAttributes", default)]
    message_attributes: Option<Value>,
}

#[derive(Deserialize)]
struct IdProbe {
    #[serde(rename = "messageId", default)]
    message_id: Option<Value>,
}

#[derive(Deserialize)]
struct BodyProbe {
    #[serde(default)]
    stream_record_id: Option<Value>,
}

fn json_position(e: &serde_json::Error) -> Position {
    Position {
        line: e.line(),
        column: e.column(),
    }
}

/// Parse a Lambda SQS event of the seed's queues.
///
/// Fails as a whole only when the payload is not a JSON object with a `Records` array; a
/// record that yields no message is returned with its error (see [`SqsRecordError`]).
pub fn parse_sqs_event(bytes: &[u8]) -> Result<SqsBatch, SqsEventError> {
    if bytes.len() > MAX_SQS_EVENT_BYTES {
        return Err(SqsEventError::TooLarge {
            len: bytes.len(),
            max: MAX_SQS_EVENT_BYTES,
        });
    }
    if !bytes.trim_ascii_start().starts_with(b"{") {
        // serde reads a struct from a JSON array too: classify, then refuse.
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Err(e) => SqsEventError::Json {
                    at: json_position(&e),
                    message: e.to_string(),
                },
                Ok(_) => SqsEventError::NotAnEvent {
                    at: Position { line: 1, column: 1 },
                    message: "expected a JSON object with a `Records` array".into(),
                },
            },
        );
    }
    let envelope: Envelope<'_> = serde_json::from_slice(bytes).map_err(|e| {
        let at = json_position(&e);
        match e.classify() {
            serde_json::error::Category::Data => SqsEventError::NotAnEvent {
                at,
                message: e.to_string(),
            },
            _ => SqsEventError::Json {
                at,
                message: e.to_string(),
            },
        }
    })?;
    let records = envelope
        .records
        .into_iter()
        .enumerate()
        .map(|(index, raw)| parse_sqs_record(index, raw.get()))
        .collect();
    Ok(SqsBatch { records })
}

fn parse_sqs_record(index: usize, raw: &str) -> SqsRecord {
    let mut record = SqsRecord {
        index,
        message_id: None,
        collection: None,
        event_source_arn: None,
        stream_record_id: None,
        message: Err(SqsRecordError::NoMessageId),
    };
    if !raw.trim_start().starts_with('{') {
        record.message = Err(SqsRecordError::Malformed {
            path: ".".into(),
            message: "expected a JSON object (an SQS message)".into(),
        });
        return record;
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    let wire: WireRecord = match serde_path_to_error::deserialize(&mut de) {
        Ok(w) => w,
        Err(e) => {
            // Name the record if its messageId can be read, so only it is retried.
            record.message_id =
                serde_json::from_str::<IdProbe>(raw)
                    .ok()
                    .and_then(|p| match p.message_id {
                        Some(Value::String(s)) if !s.is_empty() => Some(s),
                        _ => None,
                    });
            record.message = Err(SqsRecordError::Malformed {
                path: e.path().to_string(),
                message: e.into_inner().to_string(),
            });
            return record;
        }
    };
    record.event_source_arn = wire.event_source_arn;
    record.collection = wire
        .message_attributes
        .as_ref()
        .and_then(|a| a.get("collection"))
        .and_then(|c| c.get("stringValue"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let Some(id) = wire.message_id.filter(|s| !s.is_empty()) else {
        record.message = Err(SqsRecordError::NoMessageId);
        return record;
    };
    record.message_id = Some(id.clone());
    let Some(body) = wire.body else {
        record.message = Err(SqsRecordError::NoBody);
        return record;
    };
    record.message = StreamMessage::from_sqs(body.as_bytes(), record.collection.as_deref(), &id)
        .map_err(SqsRecordError::Message);
    if record.message.is_ok() {
        record.stream_record_id =
            serde_json::from_str::<BodyProbe>(&body)
                .ok()
                .and_then(|p| match p.stream_record_id {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                });
    }
    record
}
