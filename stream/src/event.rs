//! DynamoDB stream events as Lambda delivers them, parsed record by record.
//!
//! [`parse_event`] takes the raw bytes of a Lambda invocation payload: the plain
//! `{"Records": [...]}` event or the tumbling-window envelope (`window`, `state`, `shardId`,
//! ...). The envelope must be valid JSON: a syntax error fails the whole call with its line
//! and column. Each record is then parsed on its own (with `aws_lambda_events`' record type,
//! whose attribute values are `serde_dynamo`'s), so a bad record becomes a
//! [`RecordFailure`] naming its index, `eventID`, `SequenceNumber`, the JSON path of the
//! offending field and its position in the payload, while the other records still parse.
//!
//! Foreign but valid input is read: a leading UTF-8 byte-order mark (as .NET tools write
//! files) is skipped, and a file holding one bare stream record (no `Records` array: one
//! element saved on its own) is a one-record batch. A partial-batch response
//! (`batchItemFailures`) is refused as what it is.
//!
//! Leniency follows what AWS documents as optional: `ApproximateCreationDateTime` may be
//! absent, an integer or fractional seconds; `SequenceNumber`, `eventVersion`,
//! `eventSourceARN`, `StreamViewType`, `userIdentity` (TTL deletes), `OldImage` and
//! `NewImage` may be absent (the Kinesis-for-DynamoDB record shape has no SequenceNumber);
//! every attribute type (S, N, B, SS, NS, BS, M, L, NULL, BOOL) is accepted. A
//! `SequenceNumber` that is present must be a decimal number of at most 40 digits, and
//! `eventName` must be INSERT, MODIFY or REMOVE: those are record failures.
//!
//! Allocation is proportional to the input, which is capped at [`MAX_EVENT_BYTES`];
//! nesting depth is bounded by serde_json's recursion limit, so no input panics.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use strata_formats::{Seq, SeqParseError};

pub use serde_dynamo::{AttributeValue, Item};

/// Largest payload [`parse_event`] accepts (Lambda's synchronous limit is 6 MB; this leaves
/// room for tests and replays while keeping allocation bounded).
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// The kind of change a stream record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventName {
    /// A new item was written.
    Insert,
    /// An existing item was changed.
    Modify,
    /// An item was deleted (by a client or by TTL).
    Remove,
}

impl EventName {
    /// The wire name (`INSERT`, `MODIFY`, `REMOVE`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::Insert => "INSERT",
            EventName::Modify => "MODIFY",
            EventName::Remove => "REMOVE",
        }
    }

    /// Parse the wire name (exact, upper case).
    pub fn parse(text: &str) -> Option<EventName> {
        match text {
            "INSERT" => Some(EventName::Insert),
            "MODIFY" => Some(EventName::Modify),
            "REMOVE" => Some(EventName::Remove),
            _ => None,
        }
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a change, when DynamoDB says so (TTL deletes carry
/// `{"type": "Service", "principalId": "dynamodb.amazonaws.com"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIdentity {
    /// The identity type (`Service` for TTL).
    pub kind: String,
    /// The principal (`dynamodb.amazonaws.com` for TTL).
    pub principal_id: String,
}

impl UserIdentity {
    /// Whether this is DynamoDB's TTL service deleting an expired item.
    pub fn is_ttl_delete(&self) -> bool {
        self.kind == "Service" && self.principal_id == "dynamodb.amazonaws.com"
    }
}

/// One parsed stream record.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Position of the record in the event's `Records` array.
    pub index: usize,
    /// The record's `eventID`.
    pub event_id: String,
    /// INSERT, MODIFY or REMOVE.
    pub event_name: EventName,
    /// `dynamodb.SequenceNumber` as sent (absent in the Kinesis record shape).
    pub sequence_number: Option<String>,
    /// The same sequence number as a number (compare these, never the text).
    pub seq: Option<Seq>,
    /// `ApproximateCreationDateTime`, whole seconds; `None` when absent (or zero).
    pub approximate_creation: Option<DateTime<Utc>>,
    /// `awsRegion`.
    pub aws_region: String,
    /// `eventSourceARN`, when present.
    pub event_source_arn: Option<String>,
    /// `eventVersion`, when present (`1.0`, `1.1`).
    pub event_version: Option<String>,
    /// `userIdentity`, when present.
    pub user_identity: Option<UserIdentity>,
    /// `dynamodb.Keys` (empty when absent).
    pub keys: Item,
    /// `dynamodb.NewImage`, `None` when absent or empty.
    pub new_image: Option<Item>,
    /// `dynamodb.OldImage`, `None` when absent or empty.
    pub old_image: Option<Item>,
    /// `dynamodb.SizeBytes`.
    pub size_bytes: i64,
    /// `dynamodb.StreamViewType`, when present (`NEW_AND_OLD_IMAGES`, ...).
    pub stream_view_type: Option<String>,
}

impl StreamRecord {
    /// A string attribute of the keys (`PK`, `SK`), falling back to the new then the old
    /// image (the seed re-adds the keys to each image before parsing it).
    pub fn key_str(&self, name: &str) -> Option<&str> {
        [
            Some(&self.keys),
            self.new_image.as_ref(),
            self.old_image.as_ref(),
        ]
        .into_iter()
        .flatten()
        .find_map(|item| match item.inner().get(name) {
            Some(AttributeValue::S(s)) => Some(s.as_str()),
            _ => None,
        })
    }

    /// A short description naming the record, for error messages.
    pub fn describe(&self) -> String {
        format!(
            "record {} (eventID {:?}, SequenceNumber {})",
            self.index,
            self.event_id,
            self.sequence_number.as_deref().unwrap_or("absent")
        )
    }
}

/// The tumbling-window properties of a windowed invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    /// `window.start` as sent (ISO-8601).
    pub start: Option<String>,
    /// `window.end` as sent (ISO-8601).
    pub end: Option<String>,
    /// The aggregation `state` carried between invocations.
    pub state: BTreeMap<String, String>,
    /// `shardId`.
    pub shard_id: Option<String>,
    /// `eventSourceARN` of the envelope.
    pub event_source_arn: Option<String>,
    /// `isFinalInvokeForWindow`.
    pub is_final_invoke_for_window: bool,
    /// `isWindowTerminatedEarly`.
    pub is_window_terminated_early: bool,
}

/// A parsed event: the records that parsed and the ones that did not.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedBatch {
    /// Records that parsed, in event order.
    pub records: Vec<StreamRecord>,
    /// Records that did not, in event order.
    pub failures: Vec<RecordFailure>,
    /// The tumbling-window envelope, when the event had one.
    pub window: Option<TimeWindow>,
}

impl ParsedBatch {
    /// Number of records in the event (parsed or failed).
    pub fn len(&self) -> usize {
        self.records.len() + self.failures.len()
    }

    /// Whether the event held no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A position in the payload, 1-based, as serde_json counts it (column in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1 (0 when serde_json reports none, e.g. at end of input).
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// Why one record of an event could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// The record does not have the shape of a DynamoDB stream record.
    #[error("field `{path}` at {at}: {message}")]
    Malformed {
        /// JSON path of the offending field inside the record (`.` for the record itself).
        path: String,
        /// Where in the payload.
        at: Position,
        /// What was wrong.
        message: String,
    },
    /// `eventName` is not INSERT, MODIFY or REMOVE.
    #[error("field `eventName`: {name:?} is not INSERT, MODIFY or REMOVE")]
    UnknownEventName {
        /// The name found (cut to 64 characters).
        name: String,
    },
    /// `dynamodb.SequenceNumber` is not a decimal number of at most 40 digits.
    #[error("field `dynamodb.SequenceNumber`: {source}")]
    BadSequenceNumber {
        /// Why it did not parse.
        #[source]
        source: SeqParseError,
    },
}

/// A record of the event that failed, with what identifies it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("record {index} (eventID {}, SequenceNumber {}): {error}",
    event_id.as_deref().unwrap_or("unknown"), sequence_number.as_deref().unwrap_or("unknown"))]
pub struct RecordFailure {
    /// Position of the record in `Records`.
    pub index: usize,
    /// Its `eventID`, if one could be read.
    pub event_id: Option<String>,
    /// Its `dynamodb.SequenceNumber` text, if one could be read.
    pub sequence_number: Option<String>,
    /// What was wrong.
    pub error: RecordError,
}

/// Why a payload is not a DynamoDB stream event at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The payload is larger than [`MAX_EVENT_BYTES`].
    #[error("event is {len} bytes; at most {max} are accepted")]
    TooLarge {
        /// Payload size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not UTF-8.
    #[error("event is not UTF-8: invalid byte at {at}")]
    NotUtf8 {
        /// Where the first invalid byte is.
        at: Position,
    },
    /// The payload is not valid JSON (syntax error or truncated).
    #[error("event is not valid JSON at {at}: {message}")]
    Json {
        /// Where the parser stopped.
        at: Position,
        /// serde_json's message.
        message: String,
    },
    /// Valid JSON, but not an event: `Records` missing or the envelope mistyped.
    #[error("not a DynamoDB stream event at {at}: {message}")]
    NotAnEvent {
        /// Where the parser stopped.
        at: Position,
        /// What was wrong.
        message: String,
    },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<&'a RawValue>,
    #[serde(default)]
    window: Option<WireWindow>,
    #[serde(default)]
    state: Option<BTreeMap<String, String>>,
    #[serde(rename = "shardId", default)]
    shard_id: Option<String>,
    #[serde(rename = "eventSourceARN", default)]
    event_source_arn: Option<String>,
    #[serde(rename = "isFinalInvokeForWindow", default)]
    is_final_invoke_for_window: Option<bool>,
    #[serde(rename = "isWindowTerminatedEarly", default)]
    is_window_terminated_early: Option<bool>,
}

#[derive(Deserialize)]
struct WireWindow {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

/// Just enough of a record to name it in an error.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "eventID", default)]
    event_id: Option<serde_json::Value>,
    #[serde(default)]
    dynamodb: Option<ProbeChange>,
}

#[derive(Deserialize)]
struct ProbeChange {
    #[serde(rename = "SequenceNumber", default)]
    sequence_number: Option<serde_json::Value>,
}

fn scalar_text(v: Option<serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.chars().take(128).collect()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Line and column (1-based, column in bytes) of a byte offset in `text`.
fn position_of(text: &[u8], offset: usize) -> Position {
    let before = &text[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    Position {
        line,
        column: offset.min(text.len()) - line_start + 1,
    }
}

/// Positions of increasing offsets in one text, each found by scanning only the bytes since
/// the previous one (a position per record of an event, not a scan from the start for each).
struct Positions<'a> {
    text: &'a [u8],
    /// The offset scanned up to, its line, and where that line starts.
    offset: usize,
    line: usize,
    line_start: usize,
}

impl<'a> Positions<'a> {
    fn new(text: &'a [u8]) -> Positions<'a> {
        Positions {
            text,
            offset: 0,
            line: 1,
            line_start: 0,
        }
    }

    /// The position of `offset` (any offset; scanning resumes from the last one when it is
    /// not before it).
    fn at(&mut self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        if offset < self.offset {
            *self = Positions::new(self.text);
        }
        for (i, &b) in self.text[self.offset..offset].iter().enumerate() {
            if b == b'\n' {
                self.line += 1;
                self.line_start = self.offset + i + 1;
            }
        }
        self.offset = offset;
        Position {
            line: self.line,
            column: offset - self.line_start + 1,
        }
    }
}

/// The absolute position of a (line, column) reported inside a sub-slice starting at `base`.
fn shift(base: Position, line: usize, column: usize) -> Position {
    if line <= 1 {
        Position {
            line: base.line,
            column: base.column + column.saturating_sub(1),
        }
    } else {
        Position {
            line: base.line + line - 1,
            column,
        }
    }
}

fn check_size(bytes: &[u8]) -> Result<&str, EventError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge {
            len: bytes.len(),
            max: MAX_EVENT_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| EventError::NotUtf8 {
        at: position_of(bytes, e.valid_up_to()),
    })?;
    // A UTF-8 byte-order mark, as .NET and PowerShell tools write it, is not part of the
    // JSON text (RFC 8259 section 8.1 lets a parser ignore it).
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Just enough of a top-level object to tell a bare stream record (one element of
/// `Records`, saved on its own) from an event.
#[derive(Deserialize)]
struct BareProbe {
    #[serde(rename = "Records", default)]
    records: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    dynamodb: Option<serde::de::IgnoredAny>,
    #[serde(rename = "eventName", default)]
    event_name: Option<serde::de::IgnoredAny>,
    #[serde(rename = "batchItemFailures", default)]
    batch_item_failures: Option<serde::de::IgnoredAny>,
}

/// What a top-level object without `Records` is: a bare record (parsed as a one-record
/// batch), a partial-batch response (refused, saying so), or None (the caller's error).
fn without_records(text: &str) -> Option<Result<ParsedBatch, EventError>> {
    let probe: BareProbe = serde_json::from_str(text).ok()?;
    if probe.records.is_some() {
        return None;
    }
    if probe.batch_item_failures.is_some() {
        return Some(Err(EventError::NotAnEvent {
            at: Position { line: 1, column: 1 },
            message: "this is a Lambda partial-batch response (`batchItemFailures`), \
                      not a stream event (a JSON object with a `Records` array)"
                .into(),
        }));
    }
    if probe.dynamodb.is_none() && probe.event_name.is_none() {
        return None;
    }
    let mut batch = ParsedBatch {
        records: vec![],
        failures: vec![],
        window: None,
    };
    match parse_raw_record(0, text, Position { line: 1, column: 1 }) {
        Ok(r) => batch.records.push(r),
        Err(f) => batch.failures.push(f),
    }
    Some(Ok(batch))
}

/// Parse a Lambda DynamoDB stream event (plain or tumbling-window).
///
/// Fails as a whole only when the payload is not a JSON event; a record that does not
/// parse is reported in [`ParsedBatch::failures`] and the others are returned.
pub fn parse_event(bytes: &[u8]) -> Result<ParsedBatch, EventError> {
    let text = check_size(bytes)?;
    // Positions count from the JSON text (after a byte-order mark).
    let bytes = text.as_bytes();
    if !text.trim_start().starts_with('{') {
        // serde would read a struct from a JSON array too: classify, then refuse.
        let at_end = Position { line: 1, column: 1 };
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Err(e) => EventError::Json {
                at: Position {
                    line: e.line(),
                    column: e.column(),
                },
                message: e.to_string(),
            },
            Ok(_) => EventError::NotAnEvent {
                at: at_end,
                message: "expected a JSON object with a `Records` array".into(),
            },
        });
    }
    let envelope: Envelope<'_> = match serde_json::from_str(text) {
        Ok(envelope) => envelope,
        Err(e) => match without_records(text) {
            Some(bare) => return bare,
            None => return Err(envelope_error(e)),
        },
    };
    let windowed = envelope.window.is_some()
        || envelope.shard_id.is_some()
        || envelope.is_final_invoke_for_window.is_some();
    let window = windowed.then(|| TimeWindow {
        start: envelope.window.as_ref().and_then(|w| w.start.clone()),
        end: envelope.window.as_ref().and_then(|w| w.end.clone()),
        state: envelope.state.unwrap_or_default(),
        shard_id: envelope.shard_id,
        event_source_arn: envelope.event_source_arn,
        is_final_invoke_for_window: envelope.is_final_invoke_for_window.unwrap_or(false),
        is_window_terminated_early: envelope.is_window_terminated_early.unwrap_or(false),
    });
    let mut records = Vec::with_capacity(envelope.records.len());
    let mut failures = Vec::new();
    let mut positions = Positions::new(bytes);
    for (index, raw) in envelope.records.into_iter().enumerate() {
        let offset = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
        let base = positions.at(offset);
        match parse_raw_record(index, raw.get(), base) {
            Ok(r) => records.push(r),
            Err(f) => failures.push(f),
        }
    }
    Ok(ParsedBatch {
        records,
        failures,
        window,
    })
}

/// The error of an envelope that does not parse: syntax (`Json`) or shape (`NotAnEvent`).
fn envelope_error(e: serde_json::Error) -> EventError {
    let at = Position {
        line: e.line(),
        column: e.column(),
    };
    match e.classify() {
        serde_json::error::Category::Data => EventError::NotAnEvent {
            at,
            message: e.to_string(),
        },
        _ => EventError::Json {
            at,
            message: e.to_string(),
        },
    }
}

/// Parse one stream record on its own (the JSON object of one element of `Records`).
pub fn parse_record(bytes: &[u8]) -> Result<StreamRecord, RecordFailure> {
    let fail = |error| RecordFailure {
        index: 0,
        event_id: None,
        sequence_number: None,
        error,
    };
    let text = check_size(bytes).map_err(|e| {
        fail(RecordError::Malformed {
            path: ".".into(),
            at: Position { line: 1, column: 1 },
            message: e.to_string(),
        })
    })?;
    parse_raw_record(0, text, Position { line: 1, column: 1 })
}

fn parse_raw_record(
    index: usize,
    raw: &str,
    base: Position,
) -> Result<StreamRecord, RecordFailure> {
    use aws_lambda_events::dynamodb::EventRecord;

    if !raw.trim_start().starts_with('{') {
        return Err(RecordFailure {
            index,
            event_id: None,
            sequence_number: None,
            error: RecordError::Malformed {
                path: ".".into(),
                at: base,
                message: "expected a JSON object (a stream record)".into(),
            },
        });
    }

    let probe: Option<Probe> = serde_json::from_str(raw).ok();
    let (event_id, sequence_number) = match probe {
        Some(p) => (
            scalar_text(p.event_id),
            p.dynamodb.and_then(|d| scalar_text(d.sequence_number)),
        ),
        None => (None, None),
    };
    let fail = |error| RecordFailure {
        index,
        event_id: event_id.clone(),
        sequence_number: sequence_number.clone(),
        error,
    };
    let mut de = serde_json::Deserializer::from_str(raw);
    let rec: EventRecord = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        fail(RecordError::Malformed {
            path,
            at: shift(base, inner.line(), inner.column()),
            message: inner.to_string(),
        })
    })?;
    let event_name = EventName::parse(&rec.event_name).ok_or_else(|| {
        fail(RecordError::UnknownEventName {
            name: rec.event_name.chars().take(64).collect(),
        })
    })?;
    let change = rec.change;
    let seq = match &change.sequence_number {
        Some(text) => Some(
            text.parse::<Seq>()
                .map_err(|source| fail(RecordError::BadSequenceNumber { source }))?,
        ),
        None => None,
    };
    let approximate_creation = {
        let secs = change.approximate_creation_date_time.timestamp();
        // Whole seconds: aws_lambda_events reads the fraction imprecisely, and absent
        // means the epoch.
        (secs != 0)
            .then(|| DateTime::<Utc>::from_timestamp(secs, 0))
            .flatten()
    };
    let non_empty = |item: Item| (!item.inner().is_empty()).then_some(item);
    Ok(StreamRecord {
        index,
        event_id: rec.event_id,
        event_name,
        sequence_number: change.sequence_number,
        seq,
        approximate_creation,
        aws_region: rec.aws_region,
        event_source_arn: rec.event_source_arn,
        event_version: rec.event_version,
        user_identity: rec.user_identity.map(|u| UserIdentity {
            kind: u.type_,
            principal_id: u.principal_id,
        }),
        keys: change.keys,
        new_image: non_empty(change.new_image),
        old_image: non_empty(change.old_image),
        size_bytes: change.size_bytes,
        stream_view_type: change.stream_view_type.map(|v| v.to_string()),
    })
}

/// One entry of a partial-batch response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItemFailure {
    /// For DynamoDB streams: the failed record's SequenceNumber. An empty identifier makes
    /// Lambda treat the whole batch as failed.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// The partial-batch response a stream Lambda returns (`ReportBatchItemFailures`).
///
/// Lambda retries from the lowest failed SequenceNumber, so reporting every failed record
/// is enough; a failure whose SequenceNumber is unknown is reported with an empty
/// identifier, which fails (retries) the whole batch rather than silently dropping it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BatchResponse {
    /// The failed items (empty: the whole batch succeeded).
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

impl BatchResponse {
    /// A response failing the records with these SequenceNumbers (`None`: unknown, which
    /// fails the whole batch).
    pub fn failing<'a>(sequence_numbers: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let mut out = BatchResponse::default();
        for s in sequence_numbers {
            let id = s.unwrap_or("").to_string();
            if !out
                .batch_item_failures
                .iter()
                .any(|f| f.item_identifier == id)
            {
                out.batch_item_failures.push(BatchItemFailure {
                    item_identifier: id,
                });
            }
        }
        out
    }

    /// Parse a response from JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EventError> {
        let text = check_size(bytes)?;
        serde_json::from_str(text).map_err(|e| EventError::Json {
            at: Position {
                line: e.line(),
                column: e.column(),
            },
            message: e.to_string(),
        })
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"batchItemFailures\":[]}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_json(seq: &str, event: &str) -> String {
        format!(
            r#"{{"eventID":"e{seq}","eventName":"{event}","awsRegion":"us-east-1",
            "dynamodb":{{"Keys":{{"PK":{{"S":"IMAGE#x"}},"SK":{{"S":"RECEIPT#00001"}}}},
            "SequenceNumber":"{seq}","SizeBytes":10}}}}"#
        )
    }

    #[test]
    fn a_bad_record_does_not_fail_the_batch() {
        let event = format!(
            r#"{{"Records":[{},{{"eventID":"bad","eventName":"INSERT","awsRegion":"r","dynamodb":{{"SequenceNumber":"7","SizeBytes":"x"}}}},{}]}}"#,
            record_json("5", "INSERT"),
            record_json("9", "REMOVE")
        );
        let batch = parse_event(event.as_bytes()).unwrap();
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.records[1].index, 2);
        assert_eq!(batch.records[1].event_name, EventName::Remove);
        assert_eq!(batch.failures.len(), 1);
        let f = &batch.failures[0];
        assert_eq!(f.index, 1);
        assert_eq!(f.event_id.as_deref(), Some("bad"));
        assert_eq!(f.sequence_number.as_deref(), Some("7"));
        match &f.error {
            RecordError::Malformed { path, at, .. } => {
                assert_eq!(path, "dynamodb.SizeBytes");
                assert_eq!(at.line, 3);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(f.to_string().contains("eventID bad"));
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        let event = format!(
            r#"{{"Records":[{},{}]}}"#,
            record_json("9", "MODIFY"),
            record_json("10", "MODIFY")
        );
        let batch = parse_event(event.as_bytes()).unwrap();
        assert!(batch.records[0].seq < batch.records[1].seq);
    }

    #[test]
    fn bad_sequence_number_and_event_name_are_record_failures() {
        let event = format!(
            r#"{{"Records":[{},{}]}}"#,
            record_json("12x", "MODIFY"),
            record_json("3", "UPSERT")
        );
        let batch = parse_event(event.as_bytes()).unwrap();
        assert!(batch.records.is_empty());
        assert!(matches!(
            batch.failures[0].error,
            RecordError::BadSequenceNumber {
                source: SeqParseError::NotDecimal { at: 2, .. }
            }
        ));
        assert!(matches!(
            &batch.failures[1].error,
            RecordError::UnknownEventName { name } if name == "UPSERT"
        ));
    }

    #[test]
    fn envelope_errors_say_where() {
        match parse_event(b"{\"Records\": [\n  {\"a\": 1}\n") {
            Err(EventError::Json { at, .. }) => assert_eq!(at.line, 3),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_event(b"{\"batchItemFailures\": []}"),
            Err(EventError::NotAnEvent { .. })
        ));
        assert!(matches!(
            parse_event(b"\xff"),
            Err(EventError::NotUtf8 { .. })
        ));
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(matches!(
            parse_event(&big),
            Err(EventError::TooLarge { .. })
        ));
    }

    #[test]
    fn batch_response_fails_whole_batch_for_unknown_seq() {
        let r = BatchResponse::failing([Some("5"), None, Some("5")]);
        assert_eq!(
            r.to_json(),
            r#"{"batchItemFailures":[{"itemIdentifier":"5"},{"itemIdentifier":""}]}"#
        );
        assert_eq!(BatchResponse::from_json(r.to_json().as_bytes()).unwrap(), r);
    }

    #[test]
    fn positions_equal_a_scan_from_the_start() {
        let text = b"{\n  \"a\": 1,\n\n  \"b\": [\n 2]\n}";
        let mut positions = Positions::new(text);
        // Increasing offsets, then one before the last (a rescan).
        for offset in (0..=text.len() + 2).chain([3, 0, 9]) {
            assert_eq!(
                positions.at(offset),
                position_of(text, offset),
                "offset {offset}"
            );
        }
    }

    #[test]
    fn position_of_counts_lines_and_columns() {
        assert_eq!(position_of(b"ab\ncd", 4), Position { line: 2, column: 2 });
        assert_eq!(
            shift(Position { line: 3, column: 5 }, 1, 2),
            Position { line: 3, column: 6 }
        );
        assert_eq!(
            shift(Position { line: 3, column: 5 }, 2, 2),
            Position { line: 4, column: 2 }
        );
    }
}
