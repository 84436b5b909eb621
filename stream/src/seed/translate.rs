//! Translating one seed message into the operations and follow-ups
//! [`crate::ops::translate`] gives for the stream record it was built from: the message's
//! identity and new values rebuilt into a stream record, translated, then narrowed to what
//! the message determines (the table of what a message carries, and the limits, are in
//! [the module documentation](super)).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use strata_formats::{Op, Patch, Seq, Target};

use super::message::StreamMessage;
use super::order::message_time;
use crate::entity::{EntityError, EntityType, ReceiptKey};
use crate::event::{AttributeValue, EventName, Item, StreamRecord};
use crate::ops::{self, Collection, FollowUp, Ignored, OpsError, RecordOps, Translation};

/// The `source` of the seed's section backfill messages (§2.4).
pub const SOURCE_SECTION_BACKFILL: &str = "section_backfill";

/// Longest record id a translated message may produce (bytes): the engine refuses longer
/// ids (`strata_engine::store::validate`), and a write it refuses fails the whole
/// invocation, so such a message is an error of its own instead.
pub const MAX_ID_BYTES: usize = 4096;

/// Why a message could not be translated (report its messageIds failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message {} ({entity_type} {event}): {kind}",
    message_id.as_deref().unwrap_or("without id"))]
pub struct MessageOpsError {
    /// The message's `record_id` (the SQS messageId after [`StreamMessage::from_sqs`]).
    pub message_id: Option<String>,
    /// The entity type.
    pub entity_type: EntityType,
    /// The event.
    pub event: EventName,
    /// What was wrong.
    pub kind: MessageOpsErrorKind,
}

/// What was wrong with a message (see [`MessageOpsError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageOpsErrorKind {
    /// An identity field of `entity_data` is missing or unusable.
    #[error("entity_data field `{field}`: {message}")]
    Identity {
        /// The field.
        field: &'static str,
        /// What was wrong.
        message: String,
    },
    /// A value (a change's `new`, or a compaction run's field) has the wrong type.
    #[error("{0}")]
    Field(EntityError),
    /// A compaction run without a usable delta prefix for a collection.
    #[error("compaction run {run_id} has no usable {collection}_delta_prefix ({found:?})")]
    RunWithoutDelta {
        /// The run.
        run_id: String,
        /// The collection whose prefix is missing.
        collection: Collection,
        /// What `entity_data` held.
        found: Option<String>,
    },
    /// An id of the operations is longer than [`MAX_ID_BYTES`].
    #[error("id {prefix:?}... is {len} bytes; at most {MAX_ID_BYTES} are accepted")]
    IdTooLong {
        /// The id's first 64 characters.
        prefix: String,
        /// Its length in bytes.
        len: usize,
    },
    /// Any other translation error.
    #[error("{0}")]
    Ops(Box<OpsError>),
}

/// The keys of a label row a message's `changes` may set (beyond identity).
const LABEL_ROW_FIELDS: [&str; 4] = [
    "reasoning",
    "validation_status",
    "label_proposed_by",
    "label_consolidated_from",
];

/// Label row keys that are not relevant fields, so no seed message carries them.
const LABEL_EXTRA_FIELDS: [&str; 2] = ["timestamp_added", "confidence"];

/// Label row keys that identify the label.
const LABEL_IDENTITY_KEYS: [&str; 5] = ["image_id", "receipt_id", "line_id", "word_id", "label"];

/// The keys of a section row a message's `changes` may set (beyond identity).
const SECTION_ROW_FIELDS: [&str; 3] = ["line_ids", "confidence", "validation_status"];

/// A JSON value as the DynamoDB attribute a stream image would hold, one level deep
/// (nothing the entities read is nested deeper; deeper values only need their type, for the
/// error message).
fn attribute(v: &Value) -> AttributeValue {
    fn scalar(v: &Value) -> AttributeValue {
        match v {
            Value::Null => AttributeValue::Null(true),
            Value::Bool(b) => AttributeValue::Bool(*b),
            Value::Number(n) => AttributeValue::N(n.to_string()),
            Value::String(s) => AttributeValue::S(s.clone()),
            Value::Array(_) => AttributeValue::L(Vec::new()),
            Value::Object(_) => AttributeValue::M(HashMap::new()),
        }
    }
    match v {
        Value::Array(items) => AttributeValue::L(items.iter().map(scalar).collect()),
        other => scalar(other),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

type Kind = MessageOpsErrorKind;

/// A string identity field: non-empty, without `#` unless `allow_hash` (a key segment
/// cannot hold one).
fn data_str<'a>(
    data: &'a Map<String, Value>,
    field: &'static str,
    allow_hash: bool,
) -> Result<&'a str, Kind> {
    let bad = |message: String| Kind::Identity { field, message };
    let s = match data.get(field) {
        None | Some(Value::Null) => return Err(bad("missing".into())),
        Some(Value::String(s)) => s.as_str(),
        Some(v) => return Err(bad(format!("expected a string, found {}", json_type(v)))),
    };
    if s.is_empty() {
        return Err(bad("empty".into()));
    }
    if !allow_hash && s.contains('#') {
        return Err(bad(format!(
            "{:?} contains `#`, which no DynamoDB key part holds",
            s.chars().take(64).collect::<String>()
        )));
    }
    Ok(s)
}

/// A positive integer identity field (a JSON integer, an integral number, or digits).
fn data_id(data: &Map<String, Value>, field: &'static str) -> Result<u32, Kind> {
    let bad = |message: String| Kind::Identity { field, message };
    let id = match data.get(field) {
        None | Some(Value::Null) => return Err(bad("missing".into())),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(u) => u32::try_from(u).ok(),
            None => n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f <= f64::from(u32::MAX))
                .map(|f| f as u32),
        },
        Some(Value::String(s)) => s.trim().parse::<u32>().ok(),
        Some(v) => return Err(bad(format!("expected an integer, found {}", json_type(v)))),
    };
    id.filter(|&i| i > 0)
        .ok_or_else(|| bad(format!("{} is not a positive integer", data[field])))
}

/// A `changes` new value, when the change is present.
fn new_value<'a>(m: &'a StreamMessage, field: &str) -> Option<&'a Value> {
    m.changes.get(field).map(|c| &c.new)
}

fn keys_item(pk: &str, sk: &str) -> Item {
    let mut map = HashMap::new();
    map.insert("PK".to_string(), AttributeValue::S(pk.to_string()));
    map.insert("SK".to_string(), AttributeValue::S(sk.to_string()));
    Item::from(map)
}

/// The stream record a message stands for: the keys, a new image (`fields`) unless a
/// REMOVE, `seq`, and the message's time as the change time.
fn synthetic_record(
    m: &StreamMessage,
    seq: Seq,
    pk: &str,
    sk: &str,
    fields: Vec<(&str, AttributeValue)>,
) -> StreamRecord {
    let keys = keys_item(pk, sk);
    let new_image = (m.event_name != EventName::Remove).then(|| {
        let mut map: HashMap<String, AttributeValue> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        map.insert("PK".to_string(), AttributeValue::S(pk.to_string()));
        map.insert("SK".to_string(), AttributeValue::S(sk.to_string()));
        Item::from(map)
    });
    StreamRecord {
        index: 0,
        event_id: m.context.record_id.clone().unwrap_or_default(),
        event_name: m.event_name,
        sequence_number: Some(seq.to_string()),
        seq: Some(seq),
        approximate_creation: message_time(m)
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.timestamp(), 0)),
        aws_region: m.context.aws_region.clone().unwrap_or_default(),
        event_source_arn: None,
        event_version: None,
        user_identity: None,
        keys,
        new_image,
        old_image: None,
        size_bytes: 0,
        stream_view_type: None,
    }
}

fn ops_kind(e: OpsError) -> Kind {
    match e {
        OpsError::Entity { error, .. } => Kind::Field(error),
        OpsError::RunWithoutDelta {
            run_id,
            collection,
            found,
            ..
        } => Kind::RunWithoutDelta {
            run_id,
            collection,
            found,
        },
        other => Kind::Ops(Box::new(other)),
    }
}

/// Keep only the `patch_keep` keys of the translation's patches, and turn its upserts into
/// patches of the `row_keep` keys (present in the record: set; absent: unset): what a
/// message that knows only those keys may write.
fn narrow(t: Translation, patch_keep: &BTreeSet<&str>, row_keep: &BTreeSet<&str>) -> Translation {
    let Translation::Apply(r) = t else {
        return t;
    };
    let ops = r
        .ops
        .into_iter()
        .map(|mut cop| {
            cop.op.op = match cop.op.op {
                Op::Patch(p) => Op::Patch(Patch {
                    target: p.target,
                    set: p
                        .set
                        .into_iter()
                        .filter(|(k, _)| patch_keep.contains(k.as_str()))
                        .collect(),
                    unset: p
                        .unset
                        .into_iter()
                        .filter(|k| patch_keep.contains(k.as_str()))
                        .collect(),
                }),
                Op::Upsert(rec) => {
                    let unset = row_keep
                        .iter()
                        .filter(|k| !rec.metadata.contains_key(**k))
                        .map(|k| k.to_string())
                        .collect();
                    Op::Patch(Patch {
                        target: Target::Id(rec.id),
                        set: rec
                            .metadata
                            .into_iter()
                            .filter(|(k, _)| row_keep.contains(k.as_str()))
                            .collect(),
                        unset,
                    })
                }
                other => other,
            };
            cop
        })
        // A patch left with no key would write nothing: leave it out.
        .filter(|cop| !matches!(&cop.op.op, Op::Patch(p) if p.set.is_empty() && p.unset.is_empty()))
        .collect();
    Translation::Apply(RecordOps { ops, ..r })
}

/// Translate one message, with the seq the caller stamped it with: the operations and
/// follow-ups [`crate::ops::translate`] gives for the same entity change, as far as the
/// message carries the data (the module documentation lists what it cannot carry).
pub fn translate_message(m: &StreamMessage, seq: Seq) -> Result<Translation, MessageOpsError> {
    let Some(entity_type) = m.entity_type() else {
        return Ok(Translation::Ignore(Ignored::NotReceiptEntity));
    };
    let event = m.event_name;
    let stored = match entity_type {
        EntityType::ReceiptSummary => false,
        EntityType::CompactionRun => event == EventName::Insert,
        EntityType::Receipt | EntityType::ReceiptLine | EntityType::ReceiptWord => {
            event == EventName::Remove
        }
        EntityType::ReceiptPlace | EntityType::ReceiptWordLabel | EntityType::ReceiptSection => {
            true
        }
    };
    if !stored {
        return Ok(Translation::Ignore(Ignored::NotStored(entity_type, event)));
    }
    translate_stored(m, seq, entity_type)
        .and_then(check_ids)
        .map_err(|kind| MessageOpsError {
            message_id: m.context.record_id.clone(),
            entity_type,
            event,
            kind,
        })
}

/// Refuse operations with an id the engine would refuse.
fn check_ids(t: Translation) -> Result<Translation, Kind> {
    if let Translation::Apply(r) = &t {
        for cop in &r.ops {
            let ids: &[String] = match &cop.op.op {
                Op::Upsert(rec) => std::slice::from_ref(&rec.id),
                Op::Patch(Patch { target, .. }) | Op::Delete(target) => {
                    target.ids().unwrap_or_default()
                }
            };
            if let Some(id) = ids.iter().find(|id| id.len() > MAX_ID_BYTES) {
                return Err(Kind::IdTooLong {
                    prefix: id.chars().take(64).collect(),
                    len: id.len(),
                });
            }
        }
    }
    Ok(t)
}

/// A message of a stored entity type, with the identity every entity shares: the receipt.
struct Stored<'a> {
    m: &'a StreamMessage,
    seq: Seq,
    entity_type: EntityType,
    image_id: &'a str,
    receipt_id: u32,
    pk: String,
    receipt_sk: String,
}

impl Stored<'_> {
    /// The given fields of `changes` (their new values) as a new image.
    fn changed(&self, fields: &[&'static str]) -> Vec<(&'static str, AttributeValue)> {
        fields
            .iter()
            .filter_map(|f| new_value(self.m, f).map(|v| (*f, attribute(v))))
            .collect()
    }

    /// The fields a MODIFY determines: those in `changes`.
    fn in_changes(&self, fields: &[&'static str]) -> BTreeSet<&'static str> {
        fields
            .iter()
            .copied()
            .filter(|f| self.m.changes.contains_key(*f))
            .collect()
    }

    /// `translate` of the stream record with key `sk` and new image `fields`.
    fn run(&self, sk: &str, fields: Vec<(&str, AttributeValue)>) -> Result<Translation, Kind> {
        // The keys are built from validated parts; check anyway that they name the entity,
        // so that a key the detection does not take can never turn into an acknowledgement.
        if EntityType::detect(sk) != Some(self.entity_type) {
            return Err(Kind::Identity {
                field: "entity_data",
                message: format!(
                    "gives the key {sk:?}, which is not a {} key",
                    self.entity_type
                ),
            });
        }
        ops::translate(&synthetic_record(self.m, self.seq, &self.pk, sk, fields)).map_err(ops_kind)
    }

    fn compaction_run(&self) -> Result<Translation, Kind> {
        let data = &self.m.entity_data;
        // The run id goes into the image, which `Entity::parse` prefers to the key's
        // last segment (a segment cannot hold `#`, an image's run_id can).
        let run_id = data_str(data, "run_id", true)?;
        let sk = format!(
            "{}#COMPACTION_RUN#{}",
            self.receipt_sk,
            run_id.replace('#', "_")
        );
        let mut fields = vec![("run_id", AttributeValue::S(run_id.to_string()))];
        for f in ["lines_delta_prefix", "words_delta_prefix"] {
            if let Some(v) = data.get(f) {
                fields.push((f, attribute(v)));
            }
        }
        self.run(&sk, fields)
    }

    fn place(&self) -> Result<Translation, Kind> {
        let fields = EntityType::ReceiptPlace.relevant_fields();
        let known = self.in_changes(fields);
        // INSERT: fields absent from `changes` are null (§2.3), so the image is whole.
        let whole = self.m.event_name != EventName::Modify || known.len() == fields.len();
        if !whole && known.is_empty() {
            return Ok(Translation::Ignore(Ignored::Unchanged(self.entity_type)));
        }
        let t = self.run(&format!("{}#PLACE", self.receipt_sk), self.changed(fields))?;
        if whole {
            return Ok(t);
        }
        let row_keep: BTreeSet<&str> = fields
            .iter()
            .zip(ops::PLACE_KEYS)
            .filter(|(f, _)| known.contains(*f))
            .map(|(_, k)| k)
            .collect();
        let mut patch_keep = row_keep.clone();
        patch_keep.extend(["last_place_update", "place_removed_at"]);
        Ok(narrow(t, &patch_keep, &row_keep))
    }

    fn label(&self) -> Result<Translation, Kind> {
        let (m, data, event) = (self.m, &self.m.entity_data, self.m.event_name);
        let line_id = data_id(data, "line_id")?;
        let word_id = data_id(data, "word_id")?;
        let label = data_str(data, "label", false)?;
        let sk = format!(
            "{}#LINE#{line_id:05}#WORD#{word_id:05}#LABEL#{label}",
            self.receipt_sk
        );
        if event == EventName::Remove {
            return self.run(&sk, Vec::new());
        }
        let mut fields = self.changed(&LABEL_ROW_FIELDS);
        // Not relevant fields: only a producer other than the seed sends them.
        let mut known = match event {
            EventName::Insert => LABEL_ROW_FIELDS.into_iter().collect(),
            _ => self.in_changes(&LABEL_ROW_FIELDS),
        };
        for f in LABEL_EXTRA_FIELDS {
            if let Some(v) = new_value(m, f).or_else(|| data.get(f)) {
                fields.push((f, attribute(v)));
                known.insert(f);
            }
        }
        let changed_any = event == EventName::Insert
            || !self.in_changes(&LABEL_ROW_FIELDS).is_empty()
            || !self.in_changes(&LABEL_EXTRA_FIELDS).is_empty();
        if !changed_any {
            return Ok(Translation::Ignore(Ignored::Unchanged(self.entity_type)));
        }
        let t = self.run(&sk, fields)?;
        if known.len() == LABEL_ROW_FIELDS.len() + LABEL_EXTRA_FIELDS.len() {
            // The whole row is known: the upsert `translate` gives.
            return Ok(t);
        }
        if event == EventName::Insert {
            known.extend(LABEL_IDENTITY_KEYS);
        }
        Ok(narrow(t, &known, &known))
    }

    fn section(&self) -> Result<Translation, Kind> {
        let (m, event) = (self.m, self.m.event_name);
        let known = self.in_changes(&SECTION_ROW_FIELDS);
        // INSERT: every relevant field is in `changes` or null; the row is whole.
        let whole = match event {
            EventName::Insert => !m.changes.is_empty(),
            _ => known.len() == SECTION_ROW_FIELDS.len(),
        };
        let backfill = m.context.source == SOURCE_SECTION_BACKFILL;
        if event != EventName::Remove && (backfill || (!whole && known.is_empty())) {
            return Ok(Translation::Apply(RecordOps {
                seq: self.seq,
                entity_type: self.entity_type,
                ops: Vec::new(),
                follow_ups: vec![FollowUp::RecomputeSections(ReceiptKey {
                    image_id: self.image_id.to_string(),
                    receipt_id: self.receipt_id,
                })],
            }));
        }
        let section_type = data_str(&m.entity_data, "section_type", false)?;
        let sk = format!("{}#SECTION#{section_type}", self.receipt_sk);
        let t = self.run(
            &sk,
            self.changed(EntityType::ReceiptSection.relevant_fields()),
        )?;
        if event == EventName::Remove || whole {
            return Ok(t);
        }
        Ok(narrow(t, &known, &known))
    }
}

fn translate_stored(
    m: &StreamMessage,
    seq: Seq,
    entity_type: EntityType,
) -> Result<Translation, Kind> {
    let data = &m.entity_data;
    let image_id = data_str(data, "image_id", false)?;
    let receipt_id = data_id(data, "receipt_id")?;
    let stored = Stored {
        m,
        seq,
        entity_type,
        image_id,
        receipt_id,
        pk: format!("IMAGE#{image_id}"),
        receipt_sk: format!("RECEIPT#{receipt_id:05}"),
    };
    let receipt_sk = &stored.receipt_sk;
    match entity_type {
        EntityType::CompactionRun => stored.compaction_run(),
        EntityType::Receipt => stored.run(receipt_sk, Vec::new()),
        EntityType::ReceiptLine => {
            let line_id = data_id(data, "line_id")?;
            stored.run(&format!("{receipt_sk}#LINE#{line_id:05}"), Vec::new())
        }
        EntityType::ReceiptWord => {
            let line_id = data_id(data, "line_id")?;
            let word_id = data_id(data, "word_id")?;
            stored.run(
                &format!("{receipt_sk}#LINE#{line_id:05}#WORD#{word_id:05}"),
                Vec::new(),
            )
        }
        EntityType::ReceiptPlace => stored.place(),
        EntityType::ReceiptWordLabel => stored.label(),
        EntityType::ReceiptSection => stored.section(),
        EntityType::ReceiptSummary => Ok(Translation::Ignore(Ignored::NotStored(
            entity_type,
            m.event_name,
        ))),
    }
}
