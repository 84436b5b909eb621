//! Derived metadata, recomputed from current state: a word's and a row's label metadata
//! from the `labels` rows, a row's `section_label` from the `sections` rows
//! (seed-system §3.2, §3.3, §3.5, §3.6), and the place keys of a receipt's rows and words
//! from its `places` row (§3.4).
//!
//! The writer runs these for the follow-ups of [`crate::ops`] after applying a record's
//! operations, through a small [`StateReader`]. Each function returns only the patches
//! that change something (no rewrite when unchanged) and names keys to delete in `unset`
//! explicitly (Chroma's merge semantics keep omitted keys, seed §9.1 item 4). The seq of
//! the patches is given by the caller (the writer stamps it).
//!
//! One label schema for rows and words (seed §9.1 item 5 asks to normalize): the embed-time
//! arrays. Words: `label_status` (validated if any VALID, else auto_suggested if any
//! PENDING, else unvalidated; all labels count), `label_confidence` and `label_proposed_by`
//! of the latest PENDING label (by `timestamp_added`), `label_validated_at` of the latest
//! VALID, `valid_labels_array` (CORE labels with VALID) and `invalid_labels_array` (CORE
//! labels with INVALID and not VALID). Rows (`lines`): the labels of every word on the row's
//! lines (`row_line_ids`, legacy rows `[line_id]`), CORE only: the two arrays and
//! `label_status` (validated if any VALID/INVALID, else auto_suggested if any PENDING, else
//! unvalidated); the seed compactor's legacy `label_{LABEL}` boolean flags are unset.
//! Removing one label keeps the others: everything is recomputed from all current rows.
//!
//! Sections: INVALID sections are skipped; a line in several sections takes the highest
//! (status rank VALID 2 > PENDING 1 > other 0, then confidence, null = 0), the first in
//! section-type order on an exact tie; a row takes the plurality section of its lines, and
//! nothing on a tie or with no mapped line.
//!
//! Places ([`recompute_place`]): the receipt's records must carry the place keys
//! ([`PLACE_KEYS`]) exactly as [`crate::ops::place_patch`] sets and unsets them for the
//! place of its `places` row. Without a row nothing is rewritten: a place REMOVE unsets the
//! keys through its own patch, and a store migrated from the seed (or fed by the seed's SQS
//! messages, which never carry a whole place) has no rows yet, so "no row" must not mean
//! "no place" — it would wipe every merchant name at the next merge. The timestamps of the
//! stream's place patches (`last_place_update`, `place_removed_at`) are not restored: they
//! say when a patch was applied, and the row does not keep them.

use std::collections::{BTreeMap, BTreeSet};

use strata_formats::{Filter, MetaValue, Metadata, Operation, Patch, Seq, Target};

use crate::entity::{ReceiptKey, WordKey};
use crate::ids;
use crate::ops::{Collection, CollectionOp, FollowUp, PLACE_KEYS};

/// The CORE labels (`receipt_dynamo/constants.py`): the only ones the arrays and row
/// statuses count.
pub const CORE_LABELS: [&str; 22] = [
    "MERCHANT_NAME",
    "STORE_HOURS",
    "PHONE_NUMBER",
    "WEBSITE",
    "LOYALTY_ID",
    "ADDRESS_LINE",
    "DATE",
    "TIME",
    "PAYMENT_METHOD",
    "COUPON",
    "DISCOUNT",
    "PRODUCT_NAME",
    "QUANTITY",
    "UNIT_PRICE",
    "LINE_TOTAL",
    "SUBTOTAL",
    "TAX",
    "TIP",
    "GRAND_TOTAL",
    "CHANGE",
    "CASH_BACK",
    "REFUND",
];

/// The label keys of a word record.
pub const WORD_LABEL_KEYS: [&str; 6] = [
    "label_status",
    "label_confidence",
    "label_proposed_by",
    "label_validated_at",
    "valid_labels_array",
    "invalid_labels_array",
];

/// The label keys of a row record.
pub const ROW_LABEL_KEYS: [&str; 3] =
    ["label_status", "valid_labels_array", "invalid_labels_array"];

/// Read access to current state: the records of a collection matching a filter.
pub trait StateReader {
    /// The reader's error.
    type Error;
    /// `(id, metadata)` of every record of `collection` matching `filter`.
    fn get_where(
        &self,
        collection: &str,
        filter: &Filter,
    ) -> Result<Vec<(String, Metadata)>, Self::Error>;
}

/// A read failed.
#[derive(Debug, thiserror::Error)]
#[error("reading {collection} where {filter}: {source}")]
pub struct DeriveError<E: std::error::Error + 'static> {
    /// The collection read.
    pub collection: Collection,
    /// The filter, as JSON text.
    pub filter: String,
    /// The reader's error.
    #[source]
    pub source: E,
}

/// A record that could not be used and was left out of a recomputation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRow {
    /// Its collection.
    pub collection: Collection,
    /// Its id.
    pub id: String,
    /// Why.
    pub reason: String,
}

/// The result of a recomputation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Derived {
    /// Patches that change something (empty: nothing to rewrite).
    pub ops: Vec<CollectionOp>,
    /// Records left out because their metadata is unusable (reported, not fatal).
    pub skipped: Vec<SkippedRow>,
}

/// A label as the rules read it.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelView {
    /// The line of the labelled word.
    pub line_id: u32,
    /// The labelled word.
    pub word_id: u32,
    /// The label name.
    pub label: String,
    /// Its validation status (upper case).
    pub status: String,
    /// ISO-8601 time it was added.
    pub timestamp_added: Option<String>,
    /// Who proposed it.
    pub proposed_by: Option<String>,
    /// Proposal confidence.
    pub confidence: Option<f64>,
}

/// A section as the rules read it.
#[derive(Debug, Clone, PartialEq)]
pub struct SectionView {
    /// The section type.
    pub section_type: String,
    /// Its lines.
    pub line_ids: Vec<u32>,
    /// Its status (upper case), when set.
    pub status: Option<String>,
    /// Its confidence, when set.
    pub confidence: Option<f64>,
}

/// Metadata keys to write and to delete.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyChanges {
    /// Keys to write.
    pub set: Metadata,
    /// Keys to delete.
    pub unset: Vec<String>,
}

fn normalized(label: &str) -> String {
    label.trim().to_uppercase()
}

fn is_core(label: &str) -> bool {
    CORE_LABELS.contains(&label)
}

fn str_list(set: BTreeSet<String>) -> Option<MetaValue> {
    (!set.is_empty()).then(|| MetaValue::StrList(set.into_iter().collect()))
}

/// Desired values of `keys`: `Some` to write, `None` to delete.
type Desired = Vec<(&'static str, Option<MetaValue>)>;

fn latest<'a>(labels: impl Iterator<Item = &'a LabelView>) -> Option<&'a LabelView> {
    // Latest by timestamp_added (ISO text), then label name for determinism.
    labels.max_by(|a, b| {
        a.timestamp_added
            .cmp(&b.timestamp_added)
            .then_with(|| a.label.cmp(&b.label))
    })
}

/// A word's label metadata from all its labels.
pub fn word_label_values(labels: &[LabelView]) -> Desired {
    let has = |s: &str| labels.iter().any(|l| l.status == s);
    let status = if has("VALID") {
        "validated"
    } else if has("PENDING") {
        "auto_suggested"
    } else {
        "unvalidated"
    };
    let pending = latest(labels.iter().filter(|l| l.status == "PENDING"));
    let valid = latest(labels.iter().filter(|l| l.status == "VALID"));
    let (valid_set, invalid_set) = arrays(labels.iter());
    vec![
        ("label_status", Some(MetaValue::Str(status.into()))),
        (
            "label_confidence",
            pending.and_then(|l| l.confidence).map(MetaValue::Float),
        ),
        (
            "label_proposed_by",
            pending
                .and_then(|l| l.proposed_by.clone())
                .map(MetaValue::Str),
        ),
        (
            "label_validated_at",
            valid
                .and_then(|l| l.timestamp_added.clone())
                .map(MetaValue::Str),
        ),
        ("valid_labels_array", str_list(valid_set)),
        ("invalid_labels_array", str_list(invalid_set)),
    ]
}

/// CORE labels with VALID, and CORE labels with INVALID that are not also VALID.
fn arrays<'a>(labels: impl Iterator<Item = &'a LabelView>) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut valid = BTreeSet::new();
    let mut invalid = BTreeSet::new();
    for l in labels {
        let name = normalized(&l.label);
        if !is_core(&name) {
            continue;
        }
        match l.status.as_str() {
            "VALID" => {
                valid.insert(name);
            }
            "INVALID" => {
                invalid.insert(name);
            }
            _ => {}
        }
    }
    invalid.retain(|l| !valid.contains(l));
    (valid, invalid)
}

/// A row's label metadata from the labels of the words on its lines.
pub fn row_label_values(labels: &[&LabelView]) -> Desired {
    let core: Vec<&LabelView> = labels
        .iter()
        .copied()
        .filter(|l| is_core(&normalized(&l.label)))
        .collect();
    let (valid, invalid) = arrays(core.iter().copied());
    let has = |s: &str| core.iter().any(|l| l.status == s);
    let status = if has("VALID") || has("INVALID") {
        "validated"
    } else if has("PENDING") {
        "auto_suggested"
    } else {
        "unvalidated"
    };
    vec![
        ("label_status", Some(MetaValue::Str(status.into()))),
        ("valid_labels_array", str_list(valid)),
        ("invalid_labels_array", str_list(invalid)),
    ]
}

/// The keys of `desired` that differ from `current` (writes for new or changed values,
/// deletions for present keys that must go).
pub fn diff(current: &Metadata, desired: &Desired) -> KeyChanges {
    let mut out = KeyChanges::default();
    for (key, want) in desired {
        match want {
            Some(v) if current.get(*key) != Some(v) => {
                out.set.insert(key.to_string(), v.clone());
            }
            None if current.contains_key(*key) => out.unset.push(key.to_string()),
            _ => {}
        }
    }
    out
}

/// Which section each line belongs to.
pub fn line_sections(sections: &[SectionView]) -> BTreeMap<u32, String> {
    let rank = |s: &SectionView| -> (u8, f64) {
        let status = match s.status.as_deref() {
            Some("VALID") => 2,
            Some("PENDING") => 1,
            _ => 0,
        };
        (status, s.confidence.unwrap_or(0.0))
    };
    let mut best: BTreeMap<u32, (&SectionView, (u8, f64))> = BTreeMap::new();
    for s in sections {
        if s.status.as_deref() == Some("INVALID") {
            continue;
        }
        let r = rank(s);
        for &line in &s.line_ids {
            match best.get(&line) {
                Some((_, cur)) if !(r.0 > cur.0 || (r.0 == cur.0 && r.1 > cur.1)) => {}
                _ => {
                    best.insert(line, (s, r));
                }
            }
        }
    }
    best.into_iter()
        .map(|(line, (s, _))| (line, s.section_type.clone()))
        .collect()
}

/// A row's section: the most frequent section of its lines, if strictly more frequent than
/// any other; `None` on a tie or when no line is mapped.
pub fn row_section(row_lines: &[u32], map: &BTreeMap<u32, String>) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for line in row_lines {
        if let Some(s) = map.get(line) {
            *counts.entry(s.as_str()).or_default() += 1;
        }
    }
    let mut sorted: Vec<(&str, usize)> = counts.into_iter().collect();
    sorted.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
    match sorted.as_slice() {
        [] => None,
        [(top, _)] => Some(top.to_string()),
        [(top, a), (_, b), ..] => (a > b).then(|| top.to_string()),
    }
}

fn get_u32(meta: &Metadata, key: &str) -> Option<u32> {
    match meta.get(key)? {
        MetaValue::Int(i) => u32::try_from(*i).ok(),
        MetaValue::Float(f) if f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX) => {
            Some(*f as u32)
        }
        _ => None,
    }
}

fn get_str(meta: &Metadata, key: &str) -> Option<String> {
    match meta.get(key)? {
        MetaValue::Str(s) => Some(s.clone()),
        _ => None,
    }
}

fn get_f64(meta: &Metadata, key: &str) -> Option<f64> {
    match meta.get(key)? {
        MetaValue::Float(f) => Some(*f),
        MetaValue::Int(i) => Some(*i as f64),
        _ => None,
    }
}

/// A label row of the `labels` collection, as the rules read it.
pub fn label_view(meta: &Metadata) -> Result<LabelView, String> {
    let need = |k: &str| get_u32(meta, k).ok_or_else(|| format!("no integer `{k}`"));
    Ok(LabelView {
        line_id: need("line_id")?,
        word_id: need("word_id")?,
        label: get_str(meta, "label").ok_or("no string `label`")?,
        status: get_str(meta, "validation_status")
            .map(|s| s.trim().to_uppercase())
            .unwrap_or_else(|| "NONE".into()),
        timestamp_added: get_str(meta, "timestamp_added"),
        proposed_by: get_str(meta, "label_proposed_by"),
        confidence: get_f64(meta, "confidence"),
    })
}

/// A section row of the `sections` collection, as the rules read it.
pub fn section_view(meta: &Metadata) -> Result<SectionView, String> {
    let line_ids = match meta.get("line_ids") {
        None => Vec::new(),
        Some(MetaValue::IntList(l)) => l.iter().filter_map(|&i| u32::try_from(i).ok()).collect(),
        Some(_) => return Err("`line_ids` is not a list of integers".into()),
    };
    Ok(SectionView {
        section_type: get_str(meta, "section_type").ok_or("no string `section_type`")?,
        line_ids,
        status: get_str(meta, "validation_status").map(|s| s.trim().to_uppercase()),
        confidence: get_f64(meta, "confidence"),
    })
}

/// The lines of a row record: its `row_line_ids` (a JSON array text), or `[line_id]` for
/// legacy rows without it.
pub fn row_lines(meta: &Metadata) -> Result<Vec<u32>, String> {
    match meta.get("row_line_ids") {
        Some(MetaValue::Str(text)) => serde_json::from_str::<Vec<u32>>(text)
            .map_err(|e| format!("`row_line_ids` {text:?} is not a JSON list of line ids: {e}")),
        Some(MetaValue::IntList(l)) => {
            Ok(l.iter().filter_map(|&i| u32::try_from(i).ok()).collect())
        }
        Some(_) => Err("`row_line_ids` is neither a JSON text nor a list".into()),
        None => get_u32(meta, "line_id")
            .map(|l| vec![l])
            .ok_or_else(|| "neither `row_line_ids` nor an integer `line_id`".into()),
    }
}

struct Reads<'r, R> {
    reader: &'r R,
}

impl<R: StateReader> Reads<'_, R>
where
    R::Error: std::error::Error + 'static,
{
    fn get(
        &self,
        collection: Collection,
        filter: &Filter,
    ) -> Result<Vec<(String, Metadata)>, DeriveError<R::Error>> {
        let mut rows = self
            .reader
            .get_where(collection.as_str(), filter)
            .map_err(|source| DeriveError {
                collection,
                filter: filter.to_string(),
                source,
            })?;
        // Deterministic order whatever the reader returns.
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(rows)
    }

    fn labels(
        &self,
        filter: &Filter,
        out: &mut Derived,
    ) -> Result<Vec<LabelView>, DeriveError<R::Error>> {
        let mut views = Vec::new();
        for (id, meta) in self.get(Collection::Labels, filter)? {
            match label_view(&meta) {
                Ok(v) => views.push(v),
                Err(reason) => out.skipped.push(SkippedRow {
                    collection: Collection::Labels,
                    id,
                    reason,
                }),
            }
        }
        Ok(views)
    }
}

fn patch(collection: Collection, seq: Seq, target: Target, changes: KeyChanges) -> CollectionOp {
    CollectionOp {
        collection,
        op: Operation {
            seq,
            op: strata_formats::Op::Patch(Patch {
                target,
                set: changes.set,
                unset: changes.unset,
            }),
        },
    }
}

/// One id as `Target::Id`, several as `Target::Ids`.
fn ids_target(mut ids: Vec<String>) -> Target {
    if ids.len() == 1 {
        Target::Id(ids.remove(0))
    } else {
        Target::Ids(ids)
    }
}

fn push_if_changed(out: &mut Derived, collection: Collection, seq: Seq, id: String, c: KeyChanges) {
    if !c.set.is_empty() || !c.unset.is_empty() {
        out.ops.push(patch(collection, seq, Target::Id(id), c));
    }
}

fn word_patch(out: &mut Derived, seq: Seq, id: String, meta: &Metadata, labels: &[LabelView]) {
    let c = diff(meta, &word_label_values(labels));
    push_if_changed(out, Collection::Words, seq, id, c);
}

fn row_patch(
    out: &mut Derived,
    seq: Seq,
    id: String,
    meta: &Metadata,
    lines: &[u32],
    labels: &[LabelView],
) {
    let on_row: Vec<&LabelView> = labels
        .iter()
        .filter(|l| lines.contains(&l.line_id))
        .collect();
    let mut c = diff(meta, &row_label_values(&on_row));
    // The seed compactor's boolean flags (`label_TOTAL`, ...): not part of the schema.
    for key in meta.keys() {
        if key.starts_with("label_") && key != "label_status" {
            c.unset.push(key.clone());
        }
    }
    push_if_changed(out, Collection::Lines, seq, id, c);
}

/// A row record: id, metadata, its lines.
type RowWithLines = (String, Metadata, Vec<u32>);

fn rows_with_lines<R: StateReader>(
    reads: &Reads<'_, R>,
    receipt: &ReceiptKey,
    out: &mut Derived,
) -> Result<Vec<RowWithLines>, DeriveError<R::Error>>
where
    R::Error: std::error::Error + 'static,
{
    let filter = ids::receipt_filter(&receipt.image_id, receipt.receipt_id);
    let mut rows = Vec::new();
    for (id, meta) in reads.get(Collection::Lines, &filter)? {
        match row_lines(&meta) {
            Ok(lines) => rows.push((id, meta, lines)),
            Err(reason) => out.skipped.push(SkippedRow {
                collection: Collection::Lines,
                id,
                reason,
            }),
        }
    }
    Ok(rows)
}

/// Rebuild one word's label metadata and that of the row(s) holding its line.
pub fn recompute_word_labels<R: StateReader>(
    reader: &R,
    word: &WordKey,
    seq: Seq,
) -> Result<Derived, DeriveError<R::Error>>
where
    R::Error: std::error::Error + 'static,
{
    let reads = Reads { reader };
    let mut out = Derived::default();
    let receipt = word.receipt();
    let all = reads.labels(
        &ids::receipt_filter(&receipt.image_id, receipt.receipt_id),
        &mut out,
    )?;
    let own: Vec<LabelView> = all
        .iter()
        .filter(|l| l.line_id == word.line_id && l.word_id == word.word_id)
        .cloned()
        .collect();
    let wf = ids::word_filter(&word.image_id, word.receipt_id, word.line_id, word.word_id);
    for (id, meta) in reads.get(Collection::Words, &wf)? {
        word_patch(&mut out, seq, id, &meta, &own);
    }
    for (id, meta, lines) in rows_with_lines(&reads, &receipt, &mut out)? {
        if lines.contains(&word.line_id) {
            row_patch(&mut out, seq, id, &meta, &lines, &all);
        }
    }
    Ok(out)
}

/// Rebuild the label metadata of every word and row of a receipt.
pub fn recompute_receipt_labels<R: StateReader>(
    reader: &R,
    receipt: &ReceiptKey,
    seq: Seq,
) -> Result<Derived, DeriveError<R::Error>>
where
    R::Error: std::error::Error + 'static,
{
    let reads = Reads { reader };
    let mut out = Derived::default();
    let filter = ids::receipt_filter(&receipt.image_id, receipt.receipt_id);
    let all = reads.labels(&filter, &mut out)?;
    let mut by_word: BTreeMap<(u32, u32), Vec<LabelView>> = BTreeMap::new();
    for l in &all {
        by_word
            .entry((l.line_id, l.word_id))
            .or_default()
            .push(l.clone());
    }
    for (id, meta) in reads.get(Collection::Words, &filter)? {
        let (Some(line), Some(word)) = (get_u32(&meta, "line_id"), get_u32(&meta, "word_id"))
        else {
            out.skipped.push(SkippedRow {
                collection: Collection::Words,
                id,
                reason: "no integer `line_id` / `word_id`".into(),
            });
            continue;
        };
        let own = by_word.get(&(line, word)).map_or(&[][..], Vec::as_slice);
        word_patch(&mut out, seq, id, &meta, own);
    }
    for (id, meta, lines) in rows_with_lines(&reads, receipt, &mut out)? {
        row_patch(&mut out, seq, id, &meta, &lines, &all);
    }
    Ok(out)
}

/// Rebuild `section_label` of a receipt's rows; rows with the same new value share one
/// patch by id list.
pub fn recompute_sections<R: StateReader>(
    reader: &R,
    receipt: &ReceiptKey,
    seq: Seq,
) -> Result<Derived, DeriveError<R::Error>>
where
    R::Error: std::error::Error + 'static,
{
    let reads = Reads { reader };
    let mut out = Derived::default();
    let filter = ids::receipt_filter(&receipt.image_id, receipt.receipt_id);
    let mut sections = Vec::new();
    // Sorted by id, i.e. by section type: the DynamoDB query order ("first seen").
    for (id, meta) in reads.get(Collection::Sections, &filter)? {
        match section_view(&meta) {
            Ok(s) => sections.push(s),
            Err(reason) => out.skipped.push(SkippedRow {
                collection: Collection::Sections,
                id,
                reason,
            }),
        }
    }
    let map = line_sections(&sections);
    let mut groups: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    for (id, meta, lines) in rows_with_lines(&reads, receipt, &mut out)? {
        let want = row_section(&lines, &map);
        let current = get_str(&meta, "section_label");
        let changed = match &want {
            Some(w) => current.as_ref() != Some(w),
            None => meta.contains_key("section_label"),
        };
        if changed {
            groups.entry(want).or_default().push(id);
        }
    }
    for (want, row_ids) in groups {
        let mut c = KeyChanges::default();
        match want {
            Some(v) => {
                c.set.insert("section_label".into(), MetaValue::Str(v));
            }
            None => c.unset.push("section_label".into()),
        }
        out.ops
            .push(patch(Collection::Lines, seq, ids_target(row_ids), c));
    }
    Ok(out)
}

/// The place keys a receipt's records must carry, from its `places` row (`None`: no place,
/// every key unset). The row holds exactly what [`crate::ops::place_patch`] sets
/// ([`crate::ops::place_row_metadata`]), so a key absent from it is one the patch unsets.
pub fn place_values(row: Option<&Metadata>) -> Desired {
    PLACE_KEYS
        .iter()
        .map(|&k| (k, row.and_then(|m| m.get(k)).cloned()))
        .collect()
}

/// Rewrite the place keys of a receipt's `lines` and `words` records from its `places` row
/// (see the module documentation): only records whose keys differ are patched, records
/// needing the same change share one patch by id list. Without a row nothing is rewritten.
pub fn recompute_place<R: StateReader>(
    reader: &R,
    receipt: &ReceiptKey,
    seq: Seq,
) -> Result<Derived, DeriveError<R::Error>>
where
    R::Error: std::error::Error + 'static,
{
    place_from_row(reader, receipt, seq, WithoutRow::Keep)
}

/// After a place REMOVE: as [`recompute_place`] while the receipt has a `places` row (a
/// newer place arrived), and without one every place key still on its records is unset.
/// The removal's own patch is not enough: a recomputation stamped after it (above its seq)
/// may have written the keys back before the removal arrived.
pub fn clear_place<R: StateReader>(
    reader: &R,
    receipt: &ReceiptKey,
    seq: Seq,
) -> Result<Derived, DeriveError<R::Error>>
where
    R::Error: std::error::Error + 'static,
{
    place_from_row(reader, receipt, seq, WithoutRow::Unset)
}

/// What a place recomputation does when the receipt has no `places` row.
#[derive(Clone, Copy)]
enum WithoutRow {
    /// Nothing: no row does not mean no place (module documentation).
    Keep,
    /// Unset every place key: the place was removed.
    Unset,
}

fn place_from_row<R: StateReader>(
    reader: &R,
    receipt: &ReceiptKey,
    seq: Seq,
    without_row: WithoutRow,
) -> Result<Derived, DeriveError<R::Error>>
where
    R::Error: std::error::Error + 'static,
{
    let reads = Reads { reader };
    let mut out = Derived::default();
    let filter = ids::receipt_filter(&receipt.image_id, receipt.receipt_id);
    let row_id = ids::place_row_id(&receipt.image_id, receipt.receipt_id);
    let mut row = None;
    for (id, meta) in reads.get(Collection::Places, &filter)? {
        if id == row_id {
            row = Some(meta);
        } else {
            out.skipped.push(SkippedRow {
                collection: Collection::Places,
                id,
                reason: format!("not the receipt's place row {row_id}"),
            });
        }
    }
    let desired = match (row, without_row) {
        (Some(row), _) => place_values(Some(&row)),
        (None, WithoutRow::Unset) => place_values(None),
        // No row: nothing known about the place (see the module documentation).
        (None, WithoutRow::Keep) => return Ok(out),
    };
    for collection in [Collection::Lines, Collection::Words] {
        // Records needing the same change, in id order; few distinct changes per receipt.
        let mut groups: Vec<(KeyChanges, Vec<String>)> = Vec::new();
        for (id, meta) in reads.get(collection, &filter)? {
            let c = diff(&meta, &desired);
            if c.set.is_empty() && c.unset.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(g, _)| *g == c) {
                Some((_, ids)) => ids.push(id),
                None => groups.push((c, vec![id])),
            }
        }
        for (c, record_ids) in groups {
            out.ops
                .push(patch(collection, seq, ids_target(record_ids), c));
        }
    }
    Ok(out)
}

/// Run a recomputation follow-up; `None` for [`FollowUp::MergeRun`], which is the engine's.
pub fn run_follow_up<R: StateReader>(
    reader: &R,
    follow_up: &FollowUp,
    seq: Seq,
) -> Option<Result<Derived, DeriveError<R::Error>>>
where
    R::Error: std::error::Error + 'static,
{
    Some(match follow_up {
        FollowUp::MergeRun(_) => return None,
        FollowUp::RecomputeWordLabels(w) => recompute_word_labels(reader, w, seq),
        FollowUp::RecomputeReceiptLabels(r) => recompute_receipt_labels(reader, r, seq),
        FollowUp::RecomputeSections(r) => recompute_sections(reader, r, seq),
        FollowUp::RecomputePlace(r) => recompute_place(reader, r, seq),
        FollowUp::ClearPlace(r) => clear_place(reader, r, seq),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sec(t: &str, lines: &[u32], status: Option<&str>, conf: Option<f64>) -> SectionView {
        SectionView {
            section_type: t.into(),
            line_ids: lines.to_vec(),
            status: status.map(str::to_string),
            confidence: conf,
        }
    }

    // Seed §8.10 "sections map: highest confidence wins, VALID beats PENDING, INVALID
    // skipped, a tie gives no stamp"; §3.6 "on an exact rank tie the first one seen is kept".
    #[test]
    fn section_map_and_plurality() {
        let map = line_sections(&[
            sec("A", &[1, 2], Some("PENDING"), Some(0.9)),
            sec("B", &[2, 3], Some("VALID"), None),
            sec("C", &[3, 4], Some("INVALID"), Some(1.0)),
            sec("D", &[4, 5], None, Some(0.2)),
            sec("E", &[5], None, Some(0.7)),
            sec("F", &[6], None, None),
            sec("G", &[6], None, Some(0.0)),
        ]);
        assert_eq!(map[&1], "A");
        assert_eq!(map[&2], "B", "VALID beats PENDING whatever the confidence");
        assert_eq!(map[&3], "B", "INVALID skipped");
        assert_eq!(map[&4], "D");
        assert_eq!(map[&5], "E", "higher confidence wins");
        assert_eq!(map[&6], "F", "exact tie: first seen");
        assert_eq!(row_section(&[1, 2, 3], &map).as_deref(), Some("B"));
        assert_eq!(row_section(&[1, 2], &map), None, "1-1 tie");
        assert_eq!(row_section(&[9], &map), None, "no mapped line");
        assert_eq!(row_section(&[1, 9], &map).as_deref(), Some("A"));
    }

    // ---- places ----

    /// Collections of rows by id, read with the filter.
    #[derive(Default)]
    struct Rows(BTreeMap<&'static str, BTreeMap<String, Metadata>>);

    impl StateReader for Rows {
        type Error = std::convert::Infallible;
        fn get_where(
            &self,
            collection: &str,
            filter: &Filter,
        ) -> Result<Vec<(String, Metadata)>, Self::Error> {
            Ok(self.0.get(collection).map_or_else(Vec::new, |c| {
                c.iter()
                    .rev() // the reader's order must not matter
                    .filter(|(_, m)| filter.matches(m))
                    .map(|(id, m)| (id.clone(), m.clone()))
                    .collect()
            }))
        }
    }

    impl Rows {
        fn put(&mut self, c: Collection, id: String, m: Metadata) {
            self.0.entry(c.as_str()).or_default().insert(id, m);
        }

        fn apply(&mut self, derived: &Derived) {
            for op in &derived.ops {
                let strata_formats::Op::Patch(p) = &op.op.op else {
                    panic!("recomputes only patch: {op:?}")
                };
                let ids = match &p.target {
                    Target::Id(id) => vec![id.clone()],
                    Target::Ids(ids) => ids.clone(),
                    Target::Where(_) => panic!("by id"),
                };
                let col = self.0.get_mut(op.collection.as_str()).unwrap();
                for id in ids {
                    apply(
                        col.get_mut(&id).unwrap(),
                        &KeyChanges {
                            set: p.set.clone(),
                            unset: p.unset.clone(),
                        },
                    );
                }
            }
        }

        fn get(&self, c: Collection, id: &str) -> &Metadata {
            &self.0[c.as_str()][id]
        }
    }

    fn text(v: &str) -> MetaValue {
        MetaValue::Str(v.into())
    }

    const IMG: &str = "img";

    fn receipt(r: u32) -> ReceiptKey {
        ReceiptKey {
            image_id: IMG.into(),
            receipt_id: r,
        }
    }

    fn ident(r: u32, extra: &[(&str, MetaValue)]) -> Metadata {
        let mut m = Metadata::new();
        m.insert("image_id".into(), text(IMG));
        m.insert("receipt_id".into(), MetaValue::Int(i64::from(r)));
        for (k, v) in extra {
            m.insert(k.to_string(), v.clone());
        }
        m
    }

    fn place(r: u32, phone: Option<&str>) -> crate::entity::ReceiptPlace {
        crate::entity::ReceiptPlace {
            receipt: receipt(r),
            merchant_name: Some("  vons market ".into()),
            merchant_category: Some("grocery_store".into()),
            formatted_address: Some("2800 E Thousand Oaks Blvd".into()),
            phone_number: phone.map(str::to_string),
            place_id: Some("ChIJ123".into()),
        }
    }

    /// Receipt 1: two rows and three words as a run leaves them (embed-time
    /// `merchant_name` only; words without a place at embed time carry `""`); receipt 2:
    /// one word with its own place keys.
    fn merged(merchant: &str) -> Rows {
        let mut rows = Rows::default();
        for l in [1, 3] {
            rows.put(
                Collection::Lines,
                ids::line_id(IMG, 1, l),
                ident(
                    1,
                    &[
                        ("line_id", MetaValue::Int(i64::from(l))),
                        ("merchant_name", text(merchant)),
                    ],
                ),
            );
        }
        for w in 1..=3 {
            rows.put(
                Collection::Words,
                ids::word_id(IMG, 1, 1, w),
                ident(
                    1,
                    &[
                        ("word_id", MetaValue::Int(i64::from(w))),
                        ("merchant_name", text(merchant)),
                    ],
                ),
            );
        }
        rows.put(
            Collection::Words,
            ids::word_id(IMG, 2, 1, 1),
            ident(
                2,
                &[("merchant_name", text("Other")), ("place_id", text("p2"))],
            ),
        );
        rows
    }

    /// The place keys of a record, as `place_patch` would leave them.
    fn assert_place_keys(m: &Metadata, p: Option<&crate::entity::ReceiptPlace>) {
        let (set, unset) = crate::ops::place_patch(p);
        for (k, v) in &set {
            assert_eq!(m.get(k), Some(v), "{k}");
        }
        for k in &unset {
            assert!(!m.contains_key(k), "{k} should be unset: {m:?}");
        }
    }

    // Bug: a place written before its receipt's run was replaced by the run's records
    // (embed-time `merchant_name` only). The place row puts every key back, one patch per
    // collection for records needing the same change, and nothing once they agree.
    #[test]
    fn place_keys_come_back_from_the_place_row() {
        let mut rows = merged("Vons Market");
        let p = place(1, Some("(805) 495-5311"));
        rows.put(
            Collection::Places,
            ids::place_row_id(IMG, 1),
            crate::ops::place_row_metadata(&p),
        );
        let seq = Seq::from(7u64);
        let d = recompute_place(&rows, &receipt(1), seq).unwrap();
        assert!(d.skipped.is_empty());
        assert_eq!(d.ops.len(), 2, "{:#?}", d.ops);
        for (op, (collection, n)) in d
            .ops
            .iter()
            .zip([(Collection::Lines, 2), (Collection::Words, 3)])
        {
            assert_eq!(op.collection, collection);
            assert_eq!(op.op.seq, seq);
            let strata_formats::Op::Patch(patch) = &op.op.op else {
                panic!()
            };
            let Target::Ids(ids) = &patch.target else {
                panic!("{:?}", patch.target)
            };
            assert_eq!(ids.len(), n);
            assert!(
                !patch.set.contains_key("merchant_name"),
                "unchanged keys are not rewritten"
            );
            assert_eq!(patch.set.len(), 4);
            assert!(patch.unset.is_empty());
        }
        rows.apply(&d);
        for id in [ids::line_id(IMG, 1, 1), ids::line_id(IMG, 1, 3)] {
            assert_place_keys(rows.get(Collection::Lines, &id), Some(&p));
        }
        for w in 1..=3 {
            assert_place_keys(
                rows.get(Collection::Words, &ids::word_id(IMG, 1, 1, w)),
                Some(&p),
            );
        }
        let other = rows.get(Collection::Words, &ids::word_id(IMG, 2, 1, 1));
        assert_eq!(
            other.get("place_id"),
            Some(&text("p2")),
            "other receipt untouched"
        );
        assert!(recompute_place(&rows, &receipt(1), seq)
            .unwrap()
            .ops
            .is_empty());

        // A later place without a phone: only the phone goes.
        let q = place(1, None);
        rows.put(
            Collection::Places,
            ids::place_row_id(IMG, 1),
            crate::ops::place_row_metadata(&q),
        );
        let d = recompute_place(&rows, &receipt(1), seq).unwrap();
        for op in &d.ops {
            let strata_formats::Op::Patch(patch) = &op.op.op else {
                panic!()
            };
            assert!(patch.set.is_empty());
            assert_eq!(patch.unset, ["phone_number"]);
        }
        rows.apply(&d);
        assert_place_keys(
            rows.get(Collection::Words, &ids::word_id(IMG, 1, 1, 2)),
            Some(&q),
        );
    }

    // No place row (never placed, removed, or a store migrated from the seed without
    // rows): nothing is rewritten, whatever the records hold.
    #[test]
    fn without_a_place_row_nothing_is_rewritten() {
        for merchant in ["", "Stale Name"] {
            let rows = merged(merchant);
            assert!(recompute_place(&rows, &receipt(1), Seq::ZERO)
                .unwrap()
                .ops
                .is_empty());
        }
    }

    // After a removal without a row every place key still held is unset (a recomputation
    // stamped above the removal's seq may have written them back); with a row (a newer
    // place arrived) the row wins, as in a plain recomputation.
    #[test]
    fn a_cleared_place_unsets_the_keys_unless_a_row_came_back() {
        let mut rows = merged("Vons Market");
        let seq = Seq::from(9u64);
        let d = clear_place(&rows, &receipt(1), seq).unwrap();
        assert!(!d.ops.is_empty());
        for op in &d.ops {
            let strata_formats::Op::Patch(patch) = &op.op.op else {
                panic!()
            };
            assert!(patch.set.is_empty(), "{patch:?}");
            assert!(patch.unset.iter().all(|k| PLACE_KEYS.contains(&k.as_str())));
        }
        rows.apply(&d);
        for w in 1..=3 {
            assert_place_keys(
                rows.get(Collection::Words, &ids::word_id(IMG, 1, 1, w)),
                None,
            );
        }
        assert_eq!(
            rows.get(Collection::Words, &ids::word_id(IMG, 2, 1, 1))
                .get("place_id"),
            Some(&text("p2")),
            "other receipt untouched"
        );
        assert!(clear_place(&rows, &receipt(1), seq).unwrap().ops.is_empty());
        let p = place(1, None);
        rows.put(
            Collection::Places,
            ids::place_row_id(IMG, 1),
            crate::ops::place_row_metadata(&p),
        );
        let cleared = run_follow_up(&rows, &FollowUp::ClearPlace(receipt(1)), seq)
            .unwrap()
            .unwrap();
        assert_eq!(cleared, recompute_place(&rows, &receipt(1), seq).unwrap());
        rows.apply(&cleared);
        assert_place_keys(
            rows.get(Collection::Words, &ids::word_id(IMG, 1, 1, 2)),
            Some(&p),
        );
    }

    // Records in different states get different patches; each record gets only its own
    // differences; a foreign row of the receipt in `places` is reported, not used.
    #[test]
    fn records_needing_different_changes_get_their_own_patches() {
        let mut rows = merged("Vons Market");
        let p = place(1, Some("1"));
        rows.put(
            Collection::Places,
            ids::place_row_id(IMG, 1),
            crate::ops::place_row_metadata(&p),
        );
        rows.put(
            Collection::Places,
            "stray".into(),
            ident(1, &[("merchant_name", text("X"))]),
        );
        // Word 3 already up to date, word 2 with a stale phone.
        let (set, _) = crate::ops::place_patch(Some(&p));
        let w3 = rows
            .0
            .get_mut("words")
            .unwrap()
            .get_mut(&ids::word_id(IMG, 1, 1, 3))
            .unwrap();
        w3.extend(set.clone());
        let w2 = rows
            .0
            .get_mut("words")
            .unwrap()
            .get_mut(&ids::word_id(IMG, 1, 1, 2))
            .unwrap();
        w2.extend(set);
        w2.insert("phone_number".into(), text("2"));
        let d = recompute_place(&rows, &receipt(1), Seq::ZERO).unwrap();
        assert_eq!(d.skipped.len(), 1);
        assert_eq!(d.skipped[0].id, "stray");
        let words: Vec<&CollectionOp> = d
            .ops
            .iter()
            .filter(|o| o.collection == Collection::Words)
            .collect();
        assert_eq!(words.len(), 2, "{words:#?}");
        let targets: Vec<Target> = words
            .iter()
            .map(|o| match &o.op.op {
                strata_formats::Op::Patch(p) => p.target.clone(),
                _ => panic!(),
            })
            .collect();
        assert!(targets.contains(&Target::Id(ids::word_id(IMG, 1, 1, 1))));
        assert!(targets.contains(&Target::Id(ids::word_id(IMG, 1, 1, 2))));
        rows.apply(&d);
        for w in 1..=3 {
            assert_place_keys(
                rows.get(Collection::Words, &ids::word_id(IMG, 1, 1, w)),
                Some(&p),
            );
        }
        let ff = run_follow_up(&rows, &FollowUp::RecomputePlace(receipt(1)), Seq::ZERO);
        assert!(
            ff.unwrap().unwrap().ops.is_empty(),
            "wired into run_follow_up"
        );
    }

    fn label() -> impl Strategy<Value = LabelView> {
        (
            prop_oneof![
                Just("TAX"),
                Just("DATE"),
                Just("total"),
                Just(" TIP "),
                Just("OTHER")
            ],
            prop_oneof![
                Just("VALID"),
                Just("INVALID"),
                Just("PENDING"),
                Just("NONE"),
                Just("NEEDS_REVIEW")
            ],
            prop::option::of("2025-0[1-9]"),
            prop::option::of(0.0f64..1.0),
            1u32..4,
        )
            .prop_map(|(l, st, ts, c, line)| LabelView {
                line_id: line,
                word_id: 1,
                label: l.into(),
                status: st.into(),
                timestamp_added: ts,
                proposed_by: Some("p".into()),
                confidence: c,
            })
    }

    fn apply(meta: &mut Metadata, c: &KeyChanges) {
        meta.extend(c.set.clone());
        for k in &c.unset {
            meta.remove(k);
        }
    }

    proptest! {
        #[test]
        fn label_rules_are_consistent_and_idempotent(
            labels in prop::collection::vec(label(), 0..8),
            start in prop::collection::vec(0usize..6, 0..6),
        ) {
            let desired = word_label_values(&labels);
            let mut meta = Metadata::new();
            for i in start {
                meta.insert(WORD_LABEL_KEYS[i].into(), MetaValue::Str("stale".into()));
            }
            let c = diff(&meta, &desired);
            apply(&mut meta, &c);
            prop_assert!(diff(&meta, &desired).set.is_empty());
            prop_assert!(diff(&meta, &desired).unset.is_empty());
            let list = |k: &str| match meta.get(k) {
                Some(MetaValue::StrList(l)) => l.clone(),
                None => Vec::new(),
                other => panic!("{other:?}"),
            };
            let (valid, invalid) = (list("valid_labels_array"), list("invalid_labels_array"));
            prop_assert!(valid.iter().all(|v| !invalid.contains(v)));
            prop_assert!(valid.iter().chain(&invalid).all(|l| CORE_LABELS.contains(&l.as_str())));
            let mut sorted = valid.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(&sorted, &valid);
            let refs: Vec<&LabelView> = labels.iter().collect();
            let row = row_label_values(&refs);
            prop_assert_eq!(row.len(), ROW_LABEL_KEYS.len());
        }
    }
}
