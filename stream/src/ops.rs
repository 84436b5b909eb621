//! A stream record → strata operations on the receipt collections, plus follow-up requests
//! the writer carries out after applying them.
//!
//! Every operation carries the record's SequenceNumber as its [`Seq`], so the engine's
//! order-independence (state = operations applied in seq order) replaces the seed's
//! fragile phase order and timestamp sort. What each entity change becomes:
//!
//! | entity | INSERT / MODIFY | REMOVE |
//! |---|---|---|
//! | COMPACTION_RUN | INSERT: [`FollowUp::MergeRun`] (MODIFY ignored) | ignored |
//! | RECEIPT_PLACE | patch by receipt filter on `lines` and `words` + upsert the place row in `places` + [`FollowUp::RecomputePlace`] | patch unsetting the place keys + delete the place row + [`FollowUp::ClearPlace`] |
//! | RECEIPT_WORD_LABEL | upsert the label row in `labels` + [`FollowUp::RecomputeWordLabels`] | delete the label row + recompute |
//! | RECEIPT_SECTION | upsert the section row in `sections` + [`FollowUp::RecomputeSections`] | delete the section row + recompute |
//! | RECEIPT | ignored (vectors arrive as deltas) | delete by receipt filter in every collection ([`Collection::ALL`]) |
//! | RECEIPT_LINE | ignored | delete the line (row) id in `lines` |
//! | RECEIPT_WORD | ignored | delete the word id in `words` |
//! | RECEIPT_SUMMARY | ignored (not storage) | ignored |
//!
//! Fixes of the seed's known failures (seed-system §9): label and place INSERTs propagate;
//! a place value that is null, empty or removed goes into `unset` (never "omitted");
//! place merchant names are title-cased as at embed time; a compaction run without its
//! delta prefixes is an error, and a missing delta is an error of the run
//! ([`MergeRun::complete`]), never a silent acknowledgement; a REMOVE needs only the keys,
//! so an unparseable old image no longer drops it.
//!
//! Metadata-only rows (`labels`, `sections`, `places`) hold the source item's fields; their
//! ids are in [`crate::ids`].
//!
//! Places: the patches make a place change visible at once and are ordered by seq like any
//! operation. They are not enough alone: a run merged later replaces the receipt's records
//! with the embed-time ones (seq of the run's INSERT, after the place's), which carry only
//! `merchant_name`. The `places` row ([`place_row_metadata`]) keeps the place's current
//! state, and [`MergeRun::after_merge`] asks for [`FollowUp::RecomputePlace`], which writes
//! the place keys back from that row ([`crate::derive::recompute_place`]). A place record
//! asks for it too, as label and section records ask for theirs: a recomputation is stamped
//! by the writer after everything it has seen, so a place record delivered after it (a
//! shuffled or retried batch) loses its patches to it; its recomputation, reading the
//! row the record just wrote (the row itself is ordered by seq), repairs that. In stream
//! order it finds nothing to change. Without a row a recomputation changes nothing (a store
//! migrated from the seed has no rows, and the seed's SQS messages never carry a whole
//! place: "no row" must not wipe every merchant name). A place REMOVE asks instead for
//! [`FollowUp::ClearPlace`], which without a row unsets the place keys: the removal's own
//! patch is older than any recomputation that ran before the removal arrived, so it loses
//! to one that wrote the keys back (a removal held up in the other shard, or retried).

use std::fmt;

use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use strata_formats::{MetaValue, Metadata, Op, Operation, Record, Seq, Target};

use crate::entity::{
    detect_changes, CompactionRun, Entity, EntityError, EntityType, ReceiptKey, ReceiptPlace,
    ReceiptSection, ReceiptWordLabel, WordKey,
};
use crate::event::{BatchResponse, EventName, ParsedBatch, StreamRecord};
use crate::{ids, normalize};

/// Dimension of the `lines` and `words` embeddings (OpenAI `text-embedding-3-small`).
pub const EMBEDDING_DIMS: usize = 1536;

/// A collection of the receipt domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    /// One vector per visual row (1536-d, l2).
    Lines,
    /// One vector per OCR word (1536-d, l2).
    Words,
    /// Metadata-only mirror of RECEIPT_WORD_LABEL items.
    Labels,
    /// Metadata-only mirror of RECEIPT_SECTION items.
    Sections,
    /// Metadata-only mirror of RECEIPT_PLACE items, one row per receipt
    /// ([`place_row_metadata`], id [`ids::place_row_id`]).
    Places,
}

impl Collection {
    /// All of them, in a fixed order.
    pub const ALL: [Collection; 5] = [
        Collection::Lines,
        Collection::Words,
        Collection::Labels,
        Collection::Sections,
        Collection::Places,
    ];

    /// The collection's name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Collection::Lines => "lines",
            Collection::Words => "words",
            Collection::Labels => "labels",
            Collection::Sections => "sections",
            Collection::Places => "places",
        }
    }

    /// Parse a collection name.
    pub fn parse(name: &str) -> Option<Collection> {
        Collection::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Embedding dimension (0: metadata-only).
    pub fn dims(self) -> usize {
        match self {
            Collection::Lines | Collection::Words => EMBEDDING_DIMS,
            Collection::Labels | Collection::Sections | Collection::Places => 0,
        }
    }
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation addressed to a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionOp {
    /// Where the operation applies.
    pub collection: Collection,
    /// The operation (its seq is the source record's SequenceNumber).
    pub op: Operation,
}

/// Where a run's delta for one collection lives, as the run names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaLocation {
    /// The prefix exactly as in the COMPACTION_RUN item.
    pub raw: String,
    /// The bucket of an `s3://bucket/key` prefix (`None`: the deployment's default).
    pub bucket: Option<String>,
    /// The key prefix, without a leading `/`.
    pub key_prefix: String,
}

impl DeltaLocation {
    /// Read a prefix: `s3://bucket/key` names its bucket; a leading `/` is stripped.
    /// `None` for an empty prefix or bucket.
    pub fn parse(raw: &str) -> Option<DeltaLocation> {
        let t = raw.trim();
        let (bucket, key) = match t.strip_prefix("s3://") {
            Some(rest) => {
                let (b, k) = rest.split_once('/').unwrap_or((rest, ""));
                if b.is_empty() {
                    return None;
                }
                (Some(b.to_string()), k)
            }
            None => (None, t),
        };
        let key = key.trim_start_matches('/');
        if key.is_empty() {
            return None;
        }
        Some(DeltaLocation {
            raw: raw.to_string(),
            bucket,
            key_prefix: key.to_string(),
        })
    }
}

/// One delta a run must merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDelta {
    /// `lines` or `words`.
    pub collection: Collection,
    /// Where the delta is.
    pub location: DeltaLocation,
}

/// A request to merge a compaction run's deltas (COMPACTION_RUN INSERT).
///
/// The engine finds each delta at its location and merges it; it then reports one
/// [`DeltaOutcome`] per delta to [`MergeRun::complete`], which fails the run if any delta
/// is missing or failed: that record must then be retried (reported failed), and the run
/// must not be marked COMPLETED. After a successful merge the engine runs
/// [`MergeRun::after_merge`] (recomputing sections, label metadata and place keys of the
/// receipt, since the delta's metadata was captured at embed time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRun {
    /// The run.
    pub run_id: String,
    /// The receipt whose vectors the run carries.
    pub receipt: ReceiptKey,
    /// SequenceNumber of the INSERT.
    pub seq: Seq,
    /// The deltas, `lines` then `words`.
    pub deltas: Vec<RunDelta>,
}

/// What merging one delta of a run gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaOutcome {
    /// Merged; an empty delta is a success with 0 operations.
    Merged {
        /// Operations merged.
        operations: u64,
    },
    /// No delta at the location.
    Missing,
    /// The delta exists but could not be merged.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Why a run did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// A delta was not found.
    #[error("run {run_id}: {collection} delta missing at {location}")]
    DeltaMissing {
        /// The run.
        run_id: String,
        /// The collection.
        collection: Collection,
        /// The prefix looked at.
        location: String,
    },
    /// A delta failed to merge.
    #[error("run {run_id}: {collection} delta at {location} failed to merge: {reason}")]
    DeltaFailed {
        /// The run.
        run_id: String,
        /// The collection.
        collection: Collection,
        /// The prefix.
        location: String,
        /// Why.
        reason: String,
    },
    /// The engine reported nothing for one of the run's deltas.
    #[error("run {run_id}: no outcome reported for the {collection} delta")]
    NoOutcome {
        /// The run.
        run_id: String,
        /// The collection.
        collection: Collection,
    },
}

/// A run whose every delta merged: what to record in the COMPACTION_RUN item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCompleted {
    /// The run.
    pub run_id: String,
    /// Operations merged per collection.
    pub merged: Vec<(Collection, u64)>,
}

impl MergeRun {
    /// Check the engine's outcomes: complete only if every delta of the run merged.
    pub fn complete(
        &self,
        outcomes: &[(Collection, DeltaOutcome)],
    ) -> Result<RunCompleted, RunError> {
        let mut merged = Vec::with_capacity(self.deltas.len());
        for d in &self.deltas {
            let outcome = outcomes
                .iter()
                .find(|(c, _)| *c == d.collection)
                .map(|(_, o)| o)
                .ok_or_else(|| RunError::NoOutcome {
                    run_id: self.run_id.clone(),
                    collection: d.collection,
                })?;
            match outcome {
                DeltaOutcome::Merged { operations } => merged.push((d.collection, *operations)),
                DeltaOutcome::Missing => {
                    return Err(RunError::DeltaMissing {
                        run_id: self.run_id.clone(),
                        collection: d.collection,
                        location: d.location.raw.clone(),
                    })
                }
                DeltaOutcome::Failed { reason } => {
                    return Err(RunError::DeltaFailed {
                        run_id: self.run_id.clone(),
                        collection: d.collection,
                        location: d.location.raw.clone(),
                        reason: reason.clone(),
                    })
                }
            }
        }
        Ok(RunCompleted {
            run_id: self.run_id.clone(),
            merged,
        })
    }

    /// The follow-ups to run once the merge succeeded: sections, receipt labels, place.
    pub fn after_merge(&self) -> Vec<FollowUp> {
        vec![
            FollowUp::RecomputeSections(self.receipt.clone()),
            FollowUp::RecomputeReceiptLabels(self.receipt.clone()),
            FollowUp::RecomputePlace(self.receipt.clone()),
        ]
    }
}

/// Work the writer does after applying a record's operations, reading current state.
///
/// Recomputations are idempotent and may be deduplicated across a batch and run once after
/// all of its operations are applied; the patches they produce are stamped by the writer
/// ([`crate::derive`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FollowUp {
    /// Merge a compaction run's deltas.
    MergeRun(MergeRun),
    /// Rebuild one word's label metadata, and its row's, from the `labels` rows.
    RecomputeWordLabels(WordKey),
    /// Rebuild the label metadata of every word and row of a receipt.
    RecomputeReceiptLabels(ReceiptKey),
    /// Rebuild `section_label` of the receipt's rows from the `sections` rows.
    RecomputeSections(ReceiptKey),
    /// Rewrite the place keys ([`PLACE_KEYS`]) of the receipt's rows and words from its
    /// `places` row (all unset when it has none).
    RecomputePlace(ReceiptKey),
    /// After a place REMOVE: as [`FollowUp::RecomputePlace`] while the receipt has a
    /// `places` row, and without one unset every place key its rows and words still hold
    /// ([`crate::derive::clear_place`]).
    ClearPlace(ReceiptKey),
}

/// A record's operations and follow-ups.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordOps {
    /// The record's sequence number (every op carries it).
    pub seq: Seq,
    /// The entity the record is about.
    pub entity_type: EntityType,
    /// Operations to apply, in order.
    pub ops: Vec<CollectionOp>,
    /// Follow-ups to run after the operations are applied.
    pub follow_ups: Vec<FollowUp>,
}

/// Why a record yields nothing (a success: acknowledge it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// PK not `IMAGE#`, unknown sort key, or no keys: not a receipt entity.
    NotReceiptEntity,
    /// A MODIFY that changed nothing the collections hold.
    Unchanged(EntityType),
    /// An event of an entity that the collections do not mirror.
    NotStored(EntityType, EventName),
}

/// What a record becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Translation {
    /// Apply these operations and follow-ups.
    Apply(RecordOps),
    /// Nothing to do.
    Ignore(Ignored),
}

/// Why a record could not be translated (report it failed, so it is retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpsError {
    /// The record has no SequenceNumber (operations need one).
    #[error("{record}: no dynamodb.SequenceNumber; operations need one to be ordered")]
    NoSequenceNumber {
        /// The record, described.
        record: String,
    },
    /// An image the translation needs did not parse.
    #[error("{record}: {image}: {error}")]
    Entity {
        /// The record, described.
        record: String,
        /// `NewImage` or `Keys`.
        image: &'static str,
        /// What was wrong.
        error: EntityError,
    },
    /// An INSERT or MODIFY without a NewImage (a KEYS_ONLY or OLD_IMAGE stream).
    #[error(
        "{record}: {event} of {entity_type} has no NewImage; the stream must be NEW_AND_OLD_IMAGES"
    )]
    MissingNewImage {
        /// The record, described.
        record: String,
        /// The event.
        event: EventName,
        /// The entity.
        entity_type: EntityType,
    },
    /// A compaction run without a usable delta prefix for a collection.
    #[error(
        "{record}: compaction run {run_id} has no usable {collection}_delta_prefix ({found:?})"
    )]
    RunWithoutDelta {
        /// The record, described.
        record: String,
        /// The run.
        run_id: String,
        /// The collection whose prefix is missing.
        collection: Collection,
        /// What the item held.
        found: Option<String>,
    },
}

/// The keys a place patch writes or removes.
pub const PLACE_KEYS: [&str; 5] = [
    "merchant_name",
    "merchant_category",
    "address",
    "phone_number",
    "place_id",
];

fn iso_time(record: &StreamRecord) -> Option<String> {
    record
        .approximate_creation
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, false))
}

fn put_str(meta: &mut Metadata, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        meta.insert(key.to_string(), MetaValue::Str(v.clone()));
    }
}

fn int(v: u32) -> MetaValue {
    MetaValue::Int(i64::from(v))
}

/// The metadata of a label's row in `labels`.
pub fn label_row_metadata(l: &ReceiptWordLabel) -> Metadata {
    let mut m = Metadata::new();
    m.insert("image_id".into(), MetaValue::Str(l.word.image_id.clone()));
    m.insert("receipt_id".into(), int(l.word.receipt_id));
    m.insert("line_id".into(), int(l.word.line_id));
    m.insert("word_id".into(), int(l.word.word_id));
    m.insert("label".into(), MetaValue::Str(l.label.clone()));
    m.insert(
        "validation_status".into(),
        MetaValue::Str(l.validation_status.clone()),
    );
    put_str(&mut m, "reasoning", &l.reasoning);
    put_str(&mut m, "timestamp_added", &l.timestamp_added);
    put_str(&mut m, "label_proposed_by", &l.label_proposed_by);
    put_str(
        &mut m,
        "label_consolidated_from",
        &l.label_consolidated_from,
    );
    if let Some(c) = l.confidence {
        m.insert("confidence".into(), MetaValue::Float(c));
    }
    m
}

/// The metadata of a section's row in `sections`: identity and the fields that count
/// (seed §2.3: type, lines, confidence, status); `created_at` and `model_source` are not
/// mirrored, so a change of only those rewrites nothing.
pub fn section_row_metadata(s: &ReceiptSection) -> Metadata {
    let mut m = Metadata::new();
    m.insert(
        "image_id".into(),
        MetaValue::Str(s.receipt.image_id.clone()),
    );
    m.insert("receipt_id".into(), int(s.receipt.receipt_id));
    m.insert(
        "section_type".into(),
        MetaValue::Str(s.section_type.clone()),
    );
    if !s.line_ids.is_empty() {
        m.insert(
            "line_ids".into(),
            MetaValue::IntList(s.line_ids.iter().map(|&i| i64::from(i)).collect()),
        );
    }
    if let Some(c) = s.confidence {
        m.insert("confidence".into(), MetaValue::Float(c));
    }
    put_str(&mut m, "validation_status", &s.validation_status);
    m
}

/// The metadata of a receipt's row in `places`: `image_id`, `receipt_id` (integer, so the
/// receipt filter finds it) and the place keys exactly as [`place_patch`] sets them for
/// this place (title-cased `merchant_name`, `address` for `formatted_address`; a key
/// without a value is absent). No timestamps: the row holds what the receipt's records
/// must carry, which [`crate::derive::recompute_place`] writes back after a merge.
pub fn place_row_metadata(p: &ReceiptPlace) -> Metadata {
    let mut m = Metadata::new();
    m.insert(
        "image_id".into(),
        MetaValue::Str(p.receipt.image_id.clone()),
    );
    m.insert("receipt_id".into(), int(p.receipt.receipt_id));
    m.extend(place_patch(Some(p)).0);
    m
}

/// The place keys set (present, non-empty values) and unset (the others) by a place's
/// current state; `merchant_name` is title-cased as at embed time.
pub fn place_patch(place: Option<&ReceiptPlace>) -> (Metadata, Vec<String>) {
    let clean = |v: &Option<String>| {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    let values: [Option<String>; 5] = match place {
        Some(p) => [
            normalize::merchant_name(p.merchant_name.as_deref()),
            clean(&p.merchant_category),
            clean(&p.formatted_address),
            clean(&p.phone_number),
            clean(&p.place_id),
        ],
        None => Default::default(),
    };
    let mut set = Metadata::new();
    let mut unset = Vec::new();
    for (key, value) in PLACE_KEYS.iter().zip(values) {
        match value {
            Some(v) => {
                set.insert(key.to_string(), MetaValue::Str(v));
            }
            None => unset.push(key.to_string()),
        }
    }
    (set, unset)
}

struct Ctx {
    seq: Seq,
    entity_type: EntityType,
}

impl Ctx {
    fn apply(&self, ops: Vec<CollectionOp>, follow_ups: Vec<FollowUp>) -> Translation {
        Translation::Apply(RecordOps {
            seq: self.seq,
            entity_type: self.entity_type,
            ops,
            follow_ups,
        })
    }

    fn op(&self, collection: Collection, op: strata_formats::Op) -> CollectionOp {
        CollectionOp {
            collection,
            op: Operation { seq: self.seq, op },
        }
    }
}

/// Translate one stream record.
pub fn translate(record: &StreamRecord) -> Result<Translation, OpsError> {
    let (Some(pk), Some(sk)) = (record.key_str("PK"), record.key_str("SK")) else {
        return Ok(Translation::Ignore(Ignored::NotReceiptEntity));
    };
    if !pk.starts_with("IMAGE#") {
        return Ok(Translation::Ignore(Ignored::NotReceiptEntity));
    }
    let Some(entity_type) = EntityType::detect(sk) else {
        return Ok(Translation::Ignore(Ignored::NotReceiptEntity));
    };
    let event = record.event_name;
    if !is_stored(entity_type, event) {
        return Ok(Translation::Ignore(Ignored::NotStored(entity_type, event)));
    }
    let seq = record.seq.ok_or_else(|| OpsError::NoSequenceNumber {
        record: record.describe(),
    })?;
    let Images { identity, new, old } = parse_images(record, entity_type, pk, sk)?;
    let cx = Ctx { seq, entity_type };
    Ok(match (identity, new) {
        (Entity::CompactionRun(_), Some(Entity::CompactionRun(run))) => cx.apply(
            Vec::new(),
            vec![FollowUp::MergeRun(merge_run(record, seq, &run)?)],
        ),
        (Entity::ReceiptPlace(key), new) => place_ops(record, &cx, &key, new, old),
        (Entity::ReceiptWordLabel(key), new) => label_ops(&cx, &key, new, old),
        (Entity::ReceiptSection(key), new) => section_ops(&cx, &key, new, old),
        (Entity::Receipt(r), None) => {
            let filter = ids::receipt_filter(&r.image_id, r.receipt_id);
            let ops = Collection::ALL
                .into_iter()
                .map(|c| cx.op(c, Op::Delete(Target::Where(filter.clone()))))
                .collect();
            cx.apply(ops, Vec::new())
        }
        (Entity::ReceiptLine { receipt, line_id }, None) => {
            let id = ids::line_id(&receipt.image_id, receipt.receipt_id, line_id);
            cx.apply(
                vec![cx.op(Collection::Lines, Op::Delete(Target::Id(id)))],
                Vec::new(),
            )
        }
        (Entity::ReceiptWord(w), None) => {
            let id = ids::word_id(&w.image_id, w.receipt_id, w.line_id, w.word_id);
            cx.apply(
                vec![cx.op(Collection::Words, Op::Delete(Target::Id(id)))],
                Vec::new(),
            )
        }
        _ => Translation::Ignore(Ignored::NotStored(entity_type, event)),
    })
}

/// Whether an event of this entity type changes a collection (the module's table).
fn is_stored(entity_type: EntityType, event: EventName) -> bool {
    match entity_type {
        EntityType::ReceiptSummary => false,
        EntityType::CompactionRun => event == EventName::Insert,
        EntityType::Receipt | EntityType::ReceiptLine | EntityType::ReceiptWord => {
            event == EventName::Remove
        }
        _ => true,
    }
}

/// A record's entity as its keys, new image and old image give it.
struct Images {
    /// From the keys alone.
    identity: Entity,
    /// From the new image (`None` for a REMOVE).
    new: Option<Entity>,
    /// From the old image of a MODIFY, when it parses.
    old: Option<Entity>,
}

/// Parse the record's keys and images as an entity of `entity_type`.
fn parse_images(
    record: &StreamRecord,
    entity_type: EntityType,
    pk: &str,
    sk: &str,
) -> Result<Images, OpsError> {
    let event = record.event_name;
    let parse = |image: &'static str, item| {
        Entity::parse(entity_type, pk, sk, item).map_err(|error| OpsError::Entity {
            record: record.describe(),
            image,
            error,
        })
    };
    // A REMOVE needs only identity, which the keys carry.
    let identity = parse("Keys", &record.keys)?;
    let new = match (event, &record.new_image) {
        (EventName::Remove, _) => None,
        (_, Some(img)) => Some(parse("NewImage", img)?),
        (_, None) => {
            return Err(OpsError::MissingNewImage {
                record: record.describe(),
                event,
                entity_type,
            })
        }
    };
    // The old image only serves to skip unchanged MODIFYs: if it does not parse, the
    // MODIFY is treated as a change.
    let old = match (event, &record.old_image) {
        (EventName::Modify, Some(img)) => Entity::parse(entity_type, pk, sk, img).ok(),
        _ => None,
    };
    Ok(Images { identity, new, old })
}

/// A RECEIPT_PLACE change: the place keys patched on the receipt's `lines` and `words`,
/// its `places` row written or deleted, and a recomputation asked for.
fn place_ops(
    record: &StreamRecord,
    cx: &Ctx,
    key: &ReceiptPlace,
    new: Option<Entity>,
    old: Option<Entity>,
) -> Translation {
    let entity_type = cx.entity_type;
    let new_place = match &new {
        Some(Entity::ReceiptPlace(p)) => Some(p),
        _ => None,
    };
    if record.event_name == EventName::Modify {
        if let Some(old) = &old {
            if detect_changes(entity_type, Some(old), new.as_ref()).is_empty() {
                return Translation::Ignore(Ignored::Unchanged(entity_type));
            }
        }
    }
    let (mut set, mut unset) = place_patch(new_place);
    let time = iso_time(record);
    match new_place {
        Some(_) => {
            if let Some(t) = time {
                set.insert("last_place_update".into(), MetaValue::Str(t));
            }
            unset.push("place_removed_at".into());
        }
        None => {
            unset.push("canonical_merchant_name".into());
            unset.push("last_place_update".into());
            if let Some(t) = time {
                set.insert("place_removed_at".into(), MetaValue::Str(t));
            }
        }
    }
    let filter = ids::receipt_filter(&key.receipt.image_id, key.receipt.receipt_id);
    let mut ops: Vec<CollectionOp> = [Collection::Lines, Collection::Words]
        .into_iter()
        .map(|c| {
            cx.op(
                c,
                Op::Patch(strata_formats::Patch {
                    target: Target::Where(filter.clone()),
                    set: set.clone(),
                    unset: unset.clone(),
                }),
            )
        })
        .collect();
    let row_id = ids::place_row_id(&key.receipt.image_id, key.receipt.receipt_id);
    let row = match new_place {
        Some(p) => Op::Upsert(Record {
            id: row_id,
            embedding: None,
            document: None,
            metadata: place_row_metadata(p),
        }),
        None => Op::Delete(Target::Id(row_id)),
    };
    ops.push(cx.op(Collection::Places, row));
    let follow_up = match new_place {
        Some(_) => FollowUp::RecomputePlace(key.receipt.clone()),
        None => FollowUp::ClearPlace(key.receipt.clone()),
    };
    cx.apply(ops, vec![follow_up])
}

/// A RECEIPT_WORD_LABEL change: its `labels` row written or deleted (nothing when the row
/// would not change), and a recomputation of the word's labels asked for.
fn label_ops(
    cx: &Ctx,
    key: &ReceiptWordLabel,
    new: Option<Entity>,
    old: Option<Entity>,
) -> Translation {
    let w = &key.word;
    let id = ids::label_row_id(&w.image_id, w.receipt_id, w.line_id, w.word_id, &key.label);
    let new_meta = match new {
        Some(Entity::ReceiptWordLabel(l)) => Some(label_row_metadata(&l)),
        _ => None,
    };
    let old_meta = match &old {
        Some(Entity::ReceiptWordLabel(o)) => Some(label_row_metadata(o)),
        _ => None,
    };
    let Some(op) = side_row_op(id, new_meta, old_meta) else {
        return Translation::Ignore(Ignored::Unchanged(cx.entity_type));
    };
    cx.apply(
        vec![cx.op(Collection::Labels, op)],
        vec![FollowUp::RecomputeWordLabels(key.word.clone())],
    )
}

/// A RECEIPT_SECTION change: its `sections` row written or deleted (nothing when the row
/// would not change), and a recomputation of the receipt's sections asked for.
fn section_ops(
    cx: &Ctx,
    key: &ReceiptSection,
    new: Option<Entity>,
    old: Option<Entity>,
) -> Translation {
    let r = &key.receipt;
    let id = ids::section_row_id(&r.image_id, r.receipt_id, &key.section_type);
    let new_meta = match new {
        Some(Entity::ReceiptSection(s)) => Some(section_row_metadata(&s)),
        _ => None,
    };
    let old_meta = match &old {
        Some(Entity::ReceiptSection(o)) => Some(section_row_metadata(o)),
        _ => None,
    };
    let Some(op) = side_row_op(id, new_meta, old_meta) else {
        return Translation::Ignore(Ignored::Unchanged(cx.entity_type));
    };
    cx.apply(
        vec![cx.op(Collection::Sections, op)],
        vec![FollowUp::RecomputeSections(r.clone())],
    )
}

fn merge_run(record: &StreamRecord, seq: Seq, run: &CompactionRun) -> Result<MergeRun, OpsError> {
    let mut deltas = Vec::with_capacity(2);
    for (collection, prefix) in [
        (Collection::Lines, &run.lines_delta_prefix),
        (Collection::Words, &run.words_delta_prefix),
    ] {
        let location = prefix
            .as_deref()
            .and_then(DeltaLocation::parse)
            .ok_or_else(|| OpsError::RunWithoutDelta {
                record: record.describe(),
                run_id: run.run_id.clone(),
                collection,
                found: prefix.clone(),
            })?;
        deltas.push(RunDelta {
            collection,
            location,
        });
    }
    Ok(MergeRun {
        run_id: run.run_id.clone(),
        receipt: run.receipt.clone(),
        seq,
        deltas,
    })
}

/// A record of a batch that could not be used, from parsing or translation.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedRecord {
    /// Index in the event's `Records`.
    pub index: usize,
    /// Its SequenceNumber, when known (what the partial-batch response names).
    pub sequence_number: Option<String>,
    /// What went wrong.
    pub error: String,
}

/// A whole batch translated: per-record results in event order, and failures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchTranslation {
    /// `(record index, its SequenceNumber text, translation)` of the records that translated.
    pub records: Vec<(usize, Option<String>, Translation)>,
    /// Records that failed to parse or translate.
    pub failures: Vec<FailedRecord>,
}

impl BatchTranslation {
    /// The partial-batch response reporting every failed record (an unknown
    /// SequenceNumber fails the whole batch, see [`BatchResponse`]).
    pub fn batch_response(&self) -> BatchResponse {
        BatchResponse::failing(self.failures.iter().map(|f| f.sequence_number.as_deref()))
    }
}

/// Translate every parsed record of a batch; parse failures are carried over.
pub fn translate_batch(batch: &ParsedBatch) -> BatchTranslation {
    let mut out = BatchTranslation::default();
    for f in &batch.failures {
        out.failures.push(FailedRecord {
            index: f.index,
            sequence_number: f.sequence_number.clone(),
            error: f.to_string(),
        });
    }
    for r in &batch.records {
        match translate(r) {
            Ok(t) => out.records.push((r.index, r.sequence_number.clone(), t)),
            Err(e) => out.failures.push(FailedRecord {
                index: r.index,
                sequence_number: r.sequence_number.clone(),
                error: e.to_string(),
            }),
        }
    }
    out.failures.sort_by_key(|f| f.index);
    out
}

/// The write of a metadata-only side row (label or section): an upsert of its new
/// metadata, a delete when the source row is gone, or nothing when nothing changed.
fn side_row_op(id: String, new: Option<Metadata>, old: Option<Metadata>) -> Option<Op> {
    match new {
        Some(meta) if old.as_ref() == Some(&meta) => None,
        Some(metadata) => Some(Op::Upsert(Record {
            id,
            embedding: None,
            document: None,
            metadata,
        })),
        None => Some(Op::Delete(Target::Id(id))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    use strata_testkit::records::{record, s, IMG};

    fn tr(event: &str, seq: u64, sk: &str, old: Option<Value>, new: Option<Value>) -> Translation {
        let text = json!({ "Records": [record(event, seq, sk, old, new)] }).to_string();
        let batch = crate::event::parse_event(text.as_bytes()).unwrap();
        assert!(batch.failures.is_empty(), "{:?}", batch.failures);
        translate(&batch.records[0]).unwrap()
    }

    fn applied(t: &Translation) -> &RecordOps {
        match t {
            Translation::Apply(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn place_img(name: &str, phone: Option<&str>) -> Value {
        json!({
            "TYPE": s("RECEIPT_PLACE"),
            "merchant_name": s(name),
            "merchant_category": s("grocery_store"),
            "formatted_address": s("123 Main St"),
            "phone_number": phone.map_or(json!({"NULL": true}), s),
            "place_id": s("ChIJ123"),
            "timestamp": s("2025-06-01T00:00:00"),
        })
    }

    fn text(v: &str) -> MetaValue {
        MetaValue::Str(v.into())
    }

    #[test]
    fn collections_round_trip() {
        for c in Collection::ALL {
            assert_eq!(Collection::parse(c.as_str()), Some(c));
        }
        assert_eq!(Collection::parse("places"), Some(Collection::Places));
        assert_eq!(Collection::Places.dims(), 0);
    }

    // RECEIPT_PLACE INSERT / MODIFY upsert the receipt's `places` row (after the patches,
    // same seq); REMOVE deletes it; each asks for the place recomputation; an unchanged
    // MODIFY writes nothing.
    #[test]
    fn place_changes_are_mirrored_into_the_places_row() {
        let sk = "RECEIPT#00002#PLACE";
        let row_id = ids::place_row_id(IMG, 2);
        let ins = tr(
            "INSERT",
            10,
            sk,
            None,
            Some(place_img(" vons ", Some("805"))),
        );
        let r = applied(&ins);
        let colls: Vec<Collection> = r.ops.iter().map(|o| o.collection).collect();
        assert_eq!(
            colls,
            [Collection::Lines, Collection::Words, Collection::Places]
        );
        assert!(r.ops.iter().all(|o| o.op.seq == Seq::from(10u64)));
        let receipt = ReceiptKey {
            image_id: IMG.into(),
            receipt_id: 2,
        };
        assert_eq!(r.follow_ups, [FollowUp::RecomputePlace(receipt.clone())]);
        let Op::Upsert(row) = &r.ops[2].op.op else {
            panic!("{:?}", r.ops[2])
        };
        assert_eq!(row.id, row_id);
        assert!(row.embedding.is_none());
        let want: Metadata = [
            ("image_id", text(IMG)),
            ("receipt_id", MetaValue::Int(2)),
            ("merchant_name", text("Vons")),
            ("merchant_category", text("grocery_store")),
            ("address", text("123 Main St")),
            ("phone_number", text("805")),
            ("place_id", text("ChIJ123")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(row.metadata, want);
        // The row is what the patch sets, plus identity.
        let Op::Patch(p) = &r.ops[1].op.op else {
            panic!()
        };
        for (k, v) in &p.set {
            if k != "last_place_update" {
                assert_eq!(row.metadata.get(k), Some(v), "{k}");
            }
        }

        let modify = tr(
            "MODIFY",
            11,
            sk,
            Some(place_img(" vons ", Some("805"))),
            Some(place_img("Vons #2", None)),
        );
        let r = applied(&modify);
        let Op::Upsert(row) = &r.ops[2].op.op else {
            panic!()
        };
        assert_eq!(row.metadata.get("merchant_name"), Some(&text("Vons #2")));
        assert!(!row.metadata.contains_key("phone_number"));

        let unchanged = tr(
            "MODIFY",
            12,
            sk,
            Some(place_img("Vons #2", None)),
            Some({
                let mut v = place_img("Vons #2", None);
                v["timestamp"] = s("2026-01-01T00:00:00");
                v
            }),
        );
        assert_eq!(
            unchanged,
            Translation::Ignore(Ignored::Unchanged(EntityType::ReceiptPlace))
        );

        let rm = tr("REMOVE", 13, sk, Some(place_img("Vons #2", None)), None);
        let r = applied(&rm);
        assert_eq!(r.ops.len(), 3);
        assert_eq!(r.ops[2].collection, Collection::Places);
        assert_eq!(r.ops[2].op.op, Op::Delete(Target::Id(row_id)));
        assert_eq!(r.ops[2].op.seq, Seq::from(13u64));
        assert_eq!(r.follow_ups, [FollowUp::ClearPlace(receipt)]);
    }

    // A receipt delete removes its records from every collection, `places` included.
    #[test]
    fn receipt_remove_deletes_by_filter_in_every_collection() {
        let t = tr("REMOVE", 20, "RECEIPT#00001", Some(json!({})), None);
        let r = applied(&t);
        let colls: Vec<Collection> = r.ops.iter().map(|o| o.collection).collect();
        assert_eq!(colls, Collection::ALL);
        assert!(colls.contains(&Collection::Places));
        let filter = ids::receipt_filter(IMG, 1);
        for o in &r.ops {
            assert_eq!(o.op.op, Op::Delete(Target::Where(filter.clone())));
        }
    }

    #[test]
    fn a_merge_recomputes_sections_labels_then_the_place() {
        let t = tr(
            "INSERT",
            30,
            "RECEIPT#00001#COMPACTION_RUN#r1",
            None,
            Some(json!({
                "run_id": s("r1"),
                "lines_delta_prefix": s("lines/delta/r1/"),
                "words_delta_prefix": s("words/delta/r1/"),
            })),
        );
        let r = applied(&t);
        let [FollowUp::MergeRun(m)] = r.follow_ups.as_slice() else {
            panic!("{:?}", r.follow_ups)
        };
        let key = ReceiptKey {
            image_id: IMG.into(),
            receipt_id: 1,
        };
        assert_eq!(
            m.after_merge(),
            [
                FollowUp::RecomputeSections(key.clone()),
                FollowUp::RecomputeReceiptLabels(key.clone()),
                FollowUp::RecomputePlace(key.clone()),
            ]
        );
        let json = serde_json::to_string(&FollowUp::RecomputePlace(key.clone())).unwrap();
        assert_eq!(
            serde_json::from_str::<FollowUp>(&json).unwrap(),
            FollowUp::RecomputePlace(key)
        );
    }

    // Items of other types under a word, line or label key (entity.rs, "Deviation from the
    // seed's detection"): their INSERTs and REMOVEs are acknowledged and change nothing.
    #[test]
    fn items_sharing_the_key_space_change_nothing() {
        let w = "RECEIPT#00001#LINE#00001#WORD#00001";
        for (sk, ty) in [
            (format!("{w}#LETTER#00001"), "RECEIPT_LETTER"),
            (format!("{w}#EMBEDDING"), "RECEIPT_WORD_EMBEDDING"),
            (
                "RECEIPT#00001#LINE#00001#EMBEDDING".to_string(),
                "RECEIPT_LINE_EMBEDDING",
            ),
            (format!("{w}#SPATIAL_ANALYSIS"), "SPATIAL_ANALYSIS"),
            (
                format!("{w}#LABEL#TOTAL#COVE"),
                "RECEIPT_WORD_LABEL_COVE_VERIFICATION",
            ),
        ] {
            let img = json!({ "TYPE": s(ty), "validation_status": s("VALID") });
            for t in [
                tr("INSERT", 40, &sk, None, Some(img.clone())),
                tr("MODIFY", 41, &sk, Some(img.clone()), Some(img.clone())),
                tr("REMOVE", 42, &sk, Some(img.clone()), None),
            ] {
                assert_eq!(t, Translation::Ignore(Ignored::NotReceiptEntity), "{sk}");
            }
        }
    }
}
