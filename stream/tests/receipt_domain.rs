//! The receipt domain end to end: stream event JSON → records → operations → applied to an
//! in-memory store → follow-ups recomputed from that store. Each test names the seed
//! behaviour (seed-system §8) or the seed failure it fixes (§9).

use std::collections::BTreeMap;
use std::convert::Infallible;

use serde_json::{json, Value};
use strata_formats::{Filter, MetaValue, Metadata, Op, Operation, Seq, Target};
use strata_stream::derive::{self, StateReader};
use strata_stream::ids;
use strata_stream::ops::{
    translate, translate_batch, Collection, DeltaOutcome, FollowUp, Ignored, OpsError, RunError,
    Translation,
};
use strata_stream::{parse_event, EntityType, ReceiptKey, StreamRecord};

use strata_testkit::records::{n, record as record_json, s, IMG};

// ---------------------------------------------------------------- in-memory store

#[derive(Default)]
struct Store {
    cols: BTreeMap<&'static str, BTreeMap<String, Metadata>>,
}

impl Store {
    fn put(&mut self, c: Collection, id: String, meta: Value) {
        let (set, _) =
            strata_formats::value::metadata_from_json(meta.as_object().unwrap()).unwrap();
        self.cols.entry(c.as_str()).or_default().insert(id, set);
    }

    fn get(&self, c: Collection, id: &str) -> Option<&Metadata> {
        self.cols.get(c.as_str())?.get(id)
    }

    fn len(&self, c: Collection) -> usize {
        self.cols.get(c.as_str()).map_or(0, BTreeMap::len)
    }

    fn targets(&self, c: Collection, t: &Target) -> Vec<String> {
        let Some(col) = self.cols.get(c.as_str()) else {
            return Vec::new();
        };
        match t {
            Target::Id(id) => col
                .contains_key(id)
                .then(|| id.clone())
                .into_iter()
                .collect(),
            Target::Ids(ids) => ids
                .iter()
                .filter(|i| col.contains_key(*i))
                .cloned()
                .collect(),
            Target::Where(f) => col
                .iter()
                .filter(|(_, m)| f.matches(m))
                .map(|(id, _)| id.clone())
                .collect(),
        }
    }

    fn apply(&mut self, c: Collection, op: &Operation) {
        match &op.op {
            Op::Upsert(r) => {
                self.cols
                    .entry(c.as_str())
                    .or_default()
                    .insert(r.id.clone(), r.metadata.clone());
            }
            Op::Patch(p) => {
                for id in self.targets(c, &p.target) {
                    let m = self.cols.get_mut(c.as_str()).unwrap().get_mut(&id).unwrap();
                    for (k, v) in &p.set {
                        m.insert(k.clone(), v.clone());
                    }
                    for k in &p.unset {
                        m.remove(k);
                    }
                }
            }
            Op::Delete(t) => {
                for id in self.targets(c, t) {
                    self.cols.get_mut(c.as_str()).unwrap().remove(&id);
                }
            }
        }
    }

    /// Apply a translation and run its recomputation follow-ups; returns the number of
    /// recompute patches written.
    fn run(&mut self, t: &Translation) -> usize {
        let Translation::Apply(r) = t else { return 0 };
        for op in &r.ops {
            assert_eq!(op.op.seq, r.seq, "every op carries the record's seq");
            self.apply(op.collection, &op.op);
        }
        let mut written = 0;
        for f in &r.follow_ups {
            written += self.follow(f);
        }
        written
    }

    fn follow(&mut self, f: &FollowUp) -> usize {
        let Some(derived) = derive::run_follow_up(&*self, f, Seq::MAX) else {
            return 0;
        };
        let derived = derived.unwrap();
        assert!(derived.skipped.is_empty(), "{:?}", derived.skipped);
        for op in &derived.ops {
            assert!(matches!(op.op.op, Op::Patch(_)), "recomputes only patch");
            self.apply(op.collection, &op.op);
        }
        derived.ops.len()
    }
}

impl StateReader for Store {
    type Error = Infallible;
    fn get_where(&self, c: &str, f: &Filter) -> Result<Vec<(String, Metadata)>, Infallible> {
        Ok(self
            .cols
            .get(c)
            .map(|col| {
                col.iter()
                    .filter(|(_, m)| f.matches(m))
                    .map(|(id, m)| (id.clone(), m.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("reader down")]
struct Down;

struct FailingReader;
impl StateReader for FailingReader {
    type Error = Down;
    fn get_where(&self, _: &str, _: &Filter) -> Result<Vec<(String, Metadata)>, Down> {
        Err(Down)
    }
}

// ---------------------------------------------------------------- stream records

fn parse(records: Vec<Value>) -> Vec<StreamRecord> {
    let text = json!({ "Records": records }).to_string();
    let b = parse_event(text.as_bytes()).unwrap();
    assert!(b.failures.is_empty(), "{:?}", b.failures);
    b.records
}

fn one(event: &str, seq: u64, sk: &str, old: Option<Value>, new: Option<Value>) -> StreamRecord {
    parse(vec![record_json(event, seq, sk, old, new)]).remove(0)
}

fn tr(event: &str, seq: u64, sk: &str, old: Option<Value>, new: Option<Value>) -> Translation {
    translate(&one(event, seq, sk, old, new)).unwrap()
}

fn label_sk(line: u32, word: u32, label: &str) -> String {
    format!("RECEIPT#00001#LINE#{line:05}#WORD#{word:05}#LABEL#{label}")
}

fn label_img(status: &str, ts: &str) -> Value {
    json!({
        "TYPE": s("RECEIPT_WORD_LABEL"),
        "reasoning": s("seen on receipt"),
        "timestamp_added": s(ts),
        "validation_status": s(status),
        "label_proposed_by": s("agent"),
        "label_consolidated_from": {"NULL": true}
    })
}

fn section_img(lines: &[u32], status: Option<&str>, conf: f64) -> Value {
    let mut v = json!({
        "line_ids": {"L": lines.iter().map(n).collect::<Vec<_>>()},
        "created_at": s("2025-06-01T00:00:00"),
        "confidence": n(conf),
    });
    if let Some(st) = status {
        v["validation_status"] = s(st);
    }
    v
}

// ---------------------------------------------------------------- fixtures of state

/// Receipt 1: rows {1,2} (primary 1) and {3} plus a legacy row 4 without row_line_ids;
/// words (1,1), (2,1), (3,1), (4,1). Receipt 2: one row and one word.
fn receipt_store() -> Store {
    let mut st = Store::default();
    for (primary, lines) in [(1, "[1, 2]"), (3, "[3]")] {
        st.put(
            Collection::Lines,
            ids::line_id(IMG, 1, primary),
            json!({"image_id": IMG, "receipt_id": 1, "line_id": primary, "row_line_ids": lines,
                   "text": "t", "merchant_name": "Old Name"}),
        );
    }
    st.put(
        Collection::Lines,
        ids::line_id(IMG, 1, 4),
        json!({"image_id": IMG, "receipt_id": 1, "line_id": 4, "text": "legacy",
               "label_TOTAL": true, "label_status": "validated"}),
    );
    for (line, word) in [(1, 1), (2, 1), (3, 1), (4, 1)] {
        st.put(
            Collection::Words,
            ids::word_id(IMG, 1, line, word),
            json!({"image_id": IMG, "receipt_id": 1, "line_id": line, "word_id": word,
                   "text": "w", "merchant_name": "Old Name", "label_status": "unvalidated"}),
        );
    }
    st.put(
        Collection::Lines,
        ids::line_id(IMG, 2, 1),
        json!({"image_id": IMG, "receipt_id": 2, "line_id": 1, "row_line_ids": "[1]", "merchant_name": "Other"}),
    );
    st.put(
        Collection::Words,
        ids::word_id(IMG, 2, 1, 1),
        json!({"image_id": IMG, "receipt_id": 2, "line_id": 1, "word_id": 1, "merchant_name": "Other"}),
    );
    st
}

fn meta_str(m: &Metadata, k: &str) -> Option<String> {
    match m.get(k)? {
        MetaValue::Str(s) => Some(s.clone()),
        other => panic!("{k} is {other:?}"),
    }
}

fn meta_list(m: &Metadata, k: &str) -> Option<Vec<String>> {
    match m.get(k)? {
        MetaValue::StrList(l) => Some(l.clone()),
        other => panic!("{k} is {other:?}"),
    }
}

fn word(st: &Store, line: u32, w: u32) -> Metadata {
    st.get(Collection::Words, &ids::word_id(IMG, 1, line, w))
        .unwrap()
        .clone()
}

fn row(st: &Store, receipt: u32, primary: u32) -> Metadata {
    st.get(Collection::Lines, &ids::line_id(IMG, receipt, primary))
        .unwrap()
        .clone()
}

// ---------------------------------------------------------------- place

fn place_img(name: Option<&str>, phone: &str) -> Value {
    json!({
        "merchant_name": name.map_or(json!({"NULL": true}), s),
        "merchant_category": s("grocery_store"),
        "formatted_address": s("123 Main St, Westlake Village, CA"),
        "phone_number": s(phone),
        "place_id": s("ChIJ123"),
        "timestamp": s("2025-06-01T00:00:00"),
    })
}

// Seed §8.4 "Place: MODIFY updates every vector of the receipt in both collections" with
// the merchant name title-cased as at embed time (fixes §9.1 item 5); `formatted_address`
// is stored as `address`.
#[test]
fn place_modify_patches_every_record_of_the_receipt_by_filter() {
    let mut st = receipt_store();
    let t = tr(
        "MODIFY",
        500,
        "RECEIPT#00001#PLACE",
        Some(place_img(Some("OLD NAME"), "805")),
        Some(place_img(Some("  VONS market "), "805")),
    );
    let Translation::Apply(r) = &t else {
        panic!("{t:?}")
    };
    assert_eq!(r.entity_type, EntityType::ReceiptPlace);
    assert_eq!(r.seq, Seq::from(500u64));
    let colls: Vec<Collection> = r.ops.iter().map(|o| o.collection).collect();
    assert_eq!(
        colls,
        [Collection::Lines, Collection::Words, Collection::Places]
    );
    match &r.ops[0].op.op {
        Op::Patch(p) => {
            assert_eq!(
                p.target,
                Target::Where(
                    Filter::parse(&format!(
                        r#"{{"$and":[{{"image_id":{{"$eq":"{IMG}"}}}},{{"receipt_id":{{"$eq":1}}}}]}}"#
                    ))
                    .unwrap()
                )
            );
            assert!(p.set.contains_key("last_place_update"));
        }
        other => panic!("{other:?}"),
    }
    st.run(&t);
    for m in [
        row(&st, 1, 1),
        row(&st, 1, 3),
        word(&st, 2, 1),
        word(&st, 4, 1),
    ] {
        assert_eq!(
            meta_str(&m, "merchant_name").as_deref(),
            Some("Vons Market")
        );
        assert_eq!(
            meta_str(&m, "address").as_deref(),
            Some("123 Main St, Westlake Village, CA")
        );
        assert_eq!(meta_str(&m, "place_id").as_deref(), Some("ChIJ123"));
        assert_eq!(
            meta_str(&m, "last_place_update").as_deref(),
            Some("2025-06-15T15:06:40+00:00")
        );
    }
    // the other receipt is untouched
    assert_eq!(
        meta_str(&row(&st, 2, 1), "merchant_name").as_deref(),
        Some("Other")
    );
}

// Fixes §9.1 item 4: a null new value deletes the key instead of being omitted.
#[test]
fn place_null_value_goes_into_unset() {
    let mut st = receipt_store();
    let t = tr(
        "MODIFY",
        501,
        "RECEIPT#00001#PLACE",
        Some(place_img(Some("Vons"), "805-555-1234")),
        Some(place_img(None, "")),
    );
    let Translation::Apply(r) = &t else { panic!() };
    let Op::Patch(p) = &r.ops[1].op.op else {
        panic!()
    };
    assert!(p.unset.contains(&"merchant_name".to_string()));
    assert!(
        p.unset.contains(&"phone_number".to_string()),
        "empty string = no value"
    );
    st.run(&t);
    assert!(!word(&st, 1, 1).contains_key("merchant_name"));
}

// Seed §8.4 "REMOVE nulls the fields"; seed §8.1 "no relevant change yields none"; place
// INSERT now propagates (the seed ignored it, §2.2).
#[test]
fn place_insert_remove_and_unchanged() {
    let mut st = receipt_store();
    let ins = tr(
        "INSERT",
        10,
        "RECEIPT#00001#PLACE",
        None,
        Some(place_img(Some("vons"), "1")),
    );
    st.run(&ins);
    assert_eq!(
        meta_str(&word(&st, 1, 1), "merchant_name").as_deref(),
        Some("Vons")
    );

    let same = tr(
        "MODIFY",
        11,
        "RECEIPT#00001#PLACE",
        Some(place_img(Some("vons"), "1")),
        Some({
            let mut v = place_img(Some("vons"), "1");
            v["timestamp"] = s("2026-01-01T00:00:00");
            v
        }),
    );
    assert_eq!(
        same,
        Translation::Ignore(Ignored::Unchanged(EntityType::ReceiptPlace))
    );

    let rm = tr(
        "REMOVE",
        12,
        "RECEIPT#00001#PLACE",
        Some(place_img(Some("vons"), "1")),
        None,
    );
    st.run(&rm);
    for m in [word(&st, 1, 1), row(&st, 1, 1)] {
        for k in [
            "merchant_name",
            "merchant_category",
            "address",
            "phone_number",
            "place_id",
            "last_place_update",
        ] {
            assert!(!m.contains_key(k), "{k} survived a place REMOVE");
        }
        assert!(m.contains_key("place_removed_at"));
    }
    assert_eq!(
        meta_str(&row(&st, 2, 1), "merchant_name").as_deref(),
        Some("Other")
    );
}

// ---------------------------------------------------------------- labels

// Fixes §9.2 item 11: label INSERTs propagate; the label row id is the word id + #LABEL#.
#[test]
fn label_insert_propagates_to_word_and_row() {
    let mut st = receipt_store();
    let t = tr(
        "INSERT",
        20,
        &label_sk(2, 1, "GRAND_TOTAL"),
        None,
        Some(label_img("VALID", "2025-06-01T10:00:00")),
    );
    let Translation::Apply(r) = &t else { panic!() };
    let Op::Upsert(rec) = &r.ops[0].op.op else {
        panic!()
    };
    assert_eq!(r.ops[0].collection, Collection::Labels);
    assert_eq!(
        rec.id,
        format!("IMAGE#{IMG}#RECEIPT#00001#LINE#00002#WORD#00001#LABEL#GRAND_TOTAL")
    );
    assert_eq!(rec.embedding, None);
    assert_eq!(
        r.follow_ups,
        [FollowUp::RecomputeWordLabels(strata_stream::WordKey {
            image_id: IMG.into(),
            receipt_id: 1,
            line_id: 2,
            word_id: 1
        })]
    );
    let written = st.run(&t);
    assert_eq!(written, 2, "the word and its row");
    let w = word(&st, 2, 1);
    assert_eq!(meta_str(&w, "label_status").as_deref(), Some("validated"));
    assert_eq!(
        meta_list(&w, "valid_labels_array"),
        Some(vec!["GRAND_TOTAL".into()])
    );
    assert_eq!(
        meta_str(&w, "label_validated_at").as_deref(),
        Some("2025-06-01T10:00:00")
    );
    // line 2 belongs to the row whose primary line is 1
    let rw = row(&st, 1, 1);
    assert_eq!(
        meta_list(&rw, "valid_labels_array"),
        Some(vec!["GRAND_TOTAL".into()])
    );
    assert_eq!(meta_str(&rw, "label_status").as_deref(), Some("validated"));
    // other words untouched
    assert_eq!(
        meta_str(&word(&st, 1, 1), "label_status").as_deref(),
        Some("unvalidated")
    );
    // Seed §8.4 sections: "unchanged rows not rewritten" -- likewise labels: recomputing
    // again writes nothing.
    assert_eq!(st.follow(&r.follow_ups[0]), 0);
}

// Fixes §9.2 item 11 (a REMOVE stripped every label field): removing one label keeps
// the others. Seed §8.4 "REMOVE clears label_status and both arrays" when it was the last.
#[test]
fn removing_one_label_keeps_the_others() {
    let mut st = receipt_store();
    let sk_a = label_sk(1, 1, "SUBTOTAL");
    let sk_b = label_sk(1, 1, "TAX");
    st.run(&tr(
        "INSERT",
        30,
        &sk_a,
        None,
        Some(label_img("VALID", "2025-01-01")),
    ));
    st.run(&tr(
        "INSERT",
        31,
        &sk_b,
        None,
        Some(label_img("INVALID", "2025-01-02")),
    ));
    let w = word(&st, 1, 1);
    assert_eq!(
        meta_list(&w, "valid_labels_array"),
        Some(vec!["SUBTOTAL".into()])
    );
    assert_eq!(
        meta_list(&w, "invalid_labels_array"),
        Some(vec!["TAX".into()])
    );

    st.run(&tr(
        "REMOVE",
        32,
        &sk_a,
        Some(label_img("VALID", "2025-01-01")),
        None,
    ));
    let w = word(&st, 1, 1);
    assert_eq!(
        meta_list(&w, "valid_labels_array"),
        None,
        "explicitly unset"
    );
    assert_eq!(
        meta_list(&w, "invalid_labels_array"),
        Some(vec!["TAX".into()])
    );
    assert_eq!(meta_str(&w, "label_status").as_deref(), Some("unvalidated"));
    assert!(!w.contains_key("label_validated_at"));
    assert_eq!(st.len(Collection::Labels), 1);

    st.run(&tr(
        "REMOVE",
        33,
        &sk_b,
        Some(label_img("INVALID", "2025-01-02")),
        None,
    ));
    let w = word(&st, 1, 1);
    for k in [
        "valid_labels_array",
        "invalid_labels_array",
        "label_confidence",
        "label_proposed_by",
        "label_validated_at",
    ] {
        assert!(!w.contains_key(k), "{k}");
    }
    assert_eq!(meta_str(&w, "label_status").as_deref(), Some("unvalidated"));
    let rw = row(&st, 1, 1);
    assert_eq!(
        meta_str(&rw, "label_status").as_deref(),
        Some("unvalidated")
    );
    assert!(!rw.contains_key("invalid_labels_array"));
}

// Seed §8.4 "Label arrays: both keys always written; stale arrays overwritten; every
// status transition keeps valid ∩ invalid = ∅".
#[test]
fn status_transitions_never_overlap_arrays() {
    let mut st = receipt_store();
    let sk = label_sk(3, 1, "DATE");
    let mut old: Option<Value> = None;
    for (i, status) in [
        "PENDING",
        "VALID",
        "INVALID",
        "PENDING",
        "VALID",
        "NEEDS_REVIEW",
    ]
    .iter()
    .enumerate()
    {
        let new = label_img(status, "2025-01-01");
        let ev = if old.is_some() { "MODIFY" } else { "INSERT" };
        st.run(&tr(ev, 40 + i as u64, &sk, old.clone(), Some(new.clone())));
        old = Some(new);
        let w = word(&st, 3, 1);
        let valid = meta_list(&w, "valid_labels_array").unwrap_or_default();
        let invalid = meta_list(&w, "invalid_labels_array").unwrap_or_default();
        assert!(
            valid.iter().all(|v| !invalid.contains(v)),
            "{status}: {valid:?} {invalid:?}"
        );
        match *status {
            "VALID" => assert_eq!(valid, ["DATE"]),
            "INVALID" => assert_eq!(invalid, ["DATE"]),
            _ => assert!(valid.is_empty() && invalid.is_empty(), "{status}"),
        }
        let expect = match *status {
            "VALID" => "validated",
            "PENDING" => "auto_suggested",
            _ => "unvalidated",
        };
        assert_eq!(
            meta_str(&w, "label_status").as_deref(),
            Some(expect),
            "{status}"
        );
    }
}

// Seed §8.4 "Row labels: VALID and INVALID, other keys kept, validated; PENDING only →
// auto_suggested; non-CORE PENDING → unvalidated" with the array schema; §9.1 item 4: the
// legacy label_{X} flags are unset, not left behind.
#[test]
fn row_label_rules() {
    let mut st = receipt_store();
    // legacy row 4: a non-CORE PENDING label only
    st.run(&tr(
        "INSERT",
        50,
        &label_sk(4, 1, "SOMETHING"),
        None,
        Some(label_img("PENDING", "t")),
    ));
    let legacy = row(&st, 1, 4);
    assert_eq!(
        meta_str(&legacy, "label_status").as_deref(),
        Some("unvalidated")
    );
    assert!(!legacy.contains_key("label_TOTAL"), "legacy flag unset");
    assert_eq!(
        meta_str(&legacy, "text").as_deref(),
        Some("legacy"),
        "other keys kept"
    );
    // the word counts all labels (not only CORE)
    assert_eq!(
        meta_str(&word(&st, 4, 1), "label_status").as_deref(),
        Some("auto_suggested")
    );
    assert_eq!(
        meta_str(&word(&st, 4, 1), "label_proposed_by").as_deref(),
        Some("agent")
    );

    st.run(&tr(
        "INSERT",
        51,
        &label_sk(3, 1, "TIP"),
        None,
        Some(label_img("PENDING", "t")),
    ));
    assert_eq!(
        meta_str(&row(&st, 1, 3), "label_status").as_deref(),
        Some("auto_suggested")
    );

    // VALID on one word of the row, INVALID of the same label on another: VALID wins
    st.run(&tr(
        "INSERT",
        52,
        &label_sk(1, 1, "TAX"),
        None,
        Some(label_img("VALID", "t")),
    ));
    st.run(&tr(
        "INSERT",
        53,
        &label_sk(2, 1, "TAX"),
        None,
        Some(label_img("INVALID", "t")),
    ));
    st.run(&tr(
        "INSERT",
        54,
        &label_sk(2, 1, "TIP"),
        None,
        Some(label_img("INVALID", "t")),
    ));
    let r = row(&st, 1, 1);
    assert_eq!(
        meta_list(&r, "valid_labels_array"),
        Some(vec!["TAX".into()])
    );
    assert_eq!(
        meta_list(&r, "invalid_labels_array"),
        Some(vec!["TIP".into()])
    );
    assert_eq!(meta_str(&r, "label_status").as_deref(), Some("validated"));
}

// Seed §8.5 "processing order: delta → place → labels (a label on a word that only exists
// after the delta merge still applies)": here the label arrives first; the merge's
// follow-ups recompute the receipt's labels.
#[test]
fn label_before_merge_still_applies_after_merge() {
    let mut st = Store::default();
    st.run(&tr(
        "INSERT",
        60,
        &label_sk(1, 1, "TOTAL"),
        None,
        Some(label_img("VALID", "t")),
    ));
    assert_eq!(st.len(Collection::Words), 0, "no word yet: nothing patched");
    let run = tr(
        "INSERT",
        61,
        "RECEIPT#00001#COMPACTION_RUN#r1",
        None,
        Some(
            json!({"run_id": s("r1"), "lines_delta_prefix": s("lines/delta/r1/"),
                    "words_delta_prefix": s("words/delta/r1/")}),
        ),
    );
    let Translation::Apply(r) = &run else {
        panic!()
    };
    let FollowUp::MergeRun(m) = &r.follow_ups[0] else {
        panic!()
    };
    // the engine merges the delta ...
    st.put(
        Collection::Words,
        ids::word_id(IMG, 1, 1, 1),
        json!({"image_id": IMG, "receipt_id": 1, "line_id": 1, "word_id": 1, "label_status": "unvalidated"}),
    );
    let done = m
        .complete(&[
            (Collection::Lines, DeltaOutcome::Merged { operations: 0 }),
            (Collection::Words, DeltaOutcome::Merged { operations: 1 }),
        ])
        .unwrap();
    assert_eq!(
        done.merged,
        [(Collection::Lines, 0), (Collection::Words, 1)]
    );
    // ... then runs the after-merge follow-ups
    for f in m.after_merge() {
        st.follow(&f);
    }
    let w = word(&st, 1, 1);
    assert_eq!(meta_str(&w, "label_status").as_deref(), Some("validated"));
}

// ---------------------------------------------------------------- sections

fn section_sk(t: &str) -> String {
    format!("RECEIPT#00001#SECTION#{t}")
}

// Seed §8.4 "Sections: plurality from fresh state, not the event; INVALID demotion strips
// the label; deleting all sections strips labels; a tie leaves the key unset; unchanged
// rows not rewritten; the words collection is a no-op; a legacy row without row_line_ids
// uses line_id".
#[test]
fn section_rules() {
    let mut st = receipt_store();
    let items = tr(
        "INSERT",
        70,
        &section_sk("ITEMS"),
        None,
        Some(section_img(&[1, 2, 4], Some("PENDING"), 0.8)),
    );
    let Translation::Apply(r) = &items else {
        panic!()
    };
    assert_eq!(r.ops[0].collection, Collection::Sections);
    assert_eq!(
        r.follow_ups,
        [FollowUp::RecomputeSections(ReceiptKey {
            image_id: IMG.into(),
            receipt_id: 1
        })]
    );
    st.run(&items);
    assert_eq!(
        meta_str(&row(&st, 1, 1), "section_label").as_deref(),
        Some("ITEMS")
    );
    assert_eq!(
        meta_str(&row(&st, 1, 4), "section_label").as_deref(),
        Some("ITEMS"),
        "legacy row"
    );
    assert!(!row(&st, 1, 3).contains_key("section_label"));
    assert!(st.cols["words"]
        .values()
        .all(|m| !m.contains_key("section_label")));

    // a VALID section claiming line 2 beats the PENDING one; row {1,2} is now a 1-1 tie
    let total = section_img(&[2, 3], Some("VALID"), 0.1);
    st.run(&tr(
        "INSERT",
        71,
        &section_sk("TOTAL_LINE"),
        None,
        Some(total.clone()),
    ));
    assert!(!row(&st, 1, 1).contains_key("section_label"), "tie → unset");
    assert_eq!(
        meta_str(&row(&st, 1, 3), "section_label").as_deref(),
        Some("TOTAL_LINE")
    );

    // unchanged: a MODIFY of a field we do not mirror is ignored; a recompute writes nothing
    let mut touched = total.clone();
    touched["created_at"] = s("2026-01-01T00:00:00");
    assert_eq!(
        tr(
            "MODIFY",
            72,
            &section_sk("TOTAL_LINE"),
            Some(total.clone()),
            Some(touched.clone())
        ),
        Translation::Ignore(Ignored::Unchanged(EntityType::ReceiptSection))
    );
    assert_eq!(
        st.follow(&FollowUp::RecomputeSections(ReceiptKey {
            image_id: IMG.into(),
            receipt_id: 1
        })),
        0
    );

    // INVALID demotion: TOTAL_LINE is skipped, ITEMS takes its lines back
    let invalid = section_img(&[2, 3], Some("INVALID"), 0.1);
    st.run(&tr(
        "MODIFY",
        73,
        &section_sk("TOTAL_LINE"),
        Some(total),
        Some(invalid.clone()),
    ));
    assert_eq!(
        meta_str(&row(&st, 1, 1), "section_label").as_deref(),
        Some("ITEMS")
    );
    assert!(!row(&st, 1, 3).contains_key("section_label"));

    // deleting all sections strips every label
    st.run(&tr(
        "REMOVE",
        74,
        &section_sk("TOTAL_LINE"),
        Some(invalid),
        None,
    ));
    st.run(&tr(
        "REMOVE",
        75,
        &section_sk("ITEMS"),
        Some(section_img(&[1], None, 0.0)),
        None,
    ));
    assert_eq!(st.len(Collection::Sections), 0);
    assert!(st.cols["lines"]
        .values()
        .all(|m| !m.contains_key("section_label")));
}

// Seed §8.4 "a storm of N events → one query and one pass": the follow-ups of N section
// events on one receipt are equal, so the writer runs one.
#[test]
fn section_storm_deduplicates() {
    let recs = parse(
        (0..5)
            .map(|i| {
                record_json(
                    "INSERT",
                    80 + i,
                    &section_sk(&format!("S{i}")),
                    None,
                    Some(section_img(&[1], None, 0.5)),
                )
            })
            .collect(),
    );
    let batch = translate_batch(&strata_stream::ParsedBatch {
        records: recs,
        failures: vec![],
        window: None,
    });
    let mut follow: Vec<FollowUp> = batch
        .records
        .iter()
        .flat_map(|(_, _, t)| match t {
            Translation::Apply(r) => r.follow_ups.clone(),
            Translation::Ignore(_) => vec![],
        })
        .collect();
    follow.dedup();
    assert_eq!(follow.len(), 1);
}

// ---------------------------------------------------------------- deletions

// Seed §8.4 "Deletions: word delete only on words, line delete only on lines; receipt
// delete for words and for lines (by metadata filter)"; §9.5 "deletes by id for words and
// lines; by (image_id, receipt_id) filter for receipts".
#[test]
fn deletions_by_id_and_by_receipt_filter() {
    let mut st = receipt_store();
    st.run(&tr(
        "INSERT",
        90,
        &label_sk(1, 1, "TAX"),
        None,
        Some(label_img("VALID", "t")),
    ));
    st.run(&tr(
        "INSERT",
        91,
        &section_sk("ITEMS"),
        None,
        Some(section_img(&[1], None, 0.5)),
    ));

    let t = tr(
        "REMOVE",
        92,
        "RECEIPT#00001#LINE#00003#WORD#00001",
        Some(json!({})),
        None,
    );
    let Translation::Apply(r) = &t else { panic!() };
    assert_eq!(r.ops.len(), 1);
    assert_eq!(r.ops[0].collection, Collection::Words);
    assert_eq!(
        r.ops[0].op.op,
        Op::Delete(Target::Id(ids::word_id(IMG, 1, 3, 1)))
    );
    st.run(&t);
    assert!(st
        .get(Collection::Words, &ids::word_id(IMG, 1, 3, 1))
        .is_none());

    let t = tr("REMOVE", 93, "RECEIPT#00001#LINE#00003", None, None);
    let Translation::Apply(r) = &t else { panic!() };
    assert_eq!(r.ops[0].collection, Collection::Lines);
    st.run(&t);
    assert!(st
        .get(Collection::Lines, &ids::line_id(IMG, 1, 3))
        .is_none());
    assert!(st
        .get(Collection::Words, &ids::word_id(IMG, 1, 4, 1))
        .is_some());

    // RECEIPT REMOVE: one delete by filter per collection, nothing of receipt 2 touched
    let t = tr(
        "REMOVE",
        94,
        "RECEIPT#00001",
        Some(json!({"TYPE": s("RECEIPT")})),
        None,
    );
    let Translation::Apply(r) = &t else { panic!() };
    assert_eq!(r.ops.len(), Collection::ALL.len());
    assert!(r
        .ops
        .iter()
        .all(|o| matches!(&o.op.op, Op::Delete(Target::Where(_)))));
    st.run(&t);
    assert_eq!(st.len(Collection::Words), 1);
    assert_eq!(st.len(Collection::Lines), 1);
    assert_eq!(st.len(Collection::Labels), 0);
    assert_eq!(st.len(Collection::Sections), 0);
    assert!(st
        .get(Collection::Words, &ids::word_id(IMG, 2, 1, 1))
        .is_some());

    // INSERT/MODIFY of receipts, lines and words are not storage events
    assert_eq!(
        tr(
            "INSERT",
            95,
            "RECEIPT#00001#LINE#00001",
            None,
            Some(json!({}))
        ),
        Translation::Ignore(Ignored::NotStored(
            EntityType::ReceiptLine,
            strata_stream::EventName::Insert
        ))
    );
}

// A REMOVE needs only the keys: an unparseable old image no longer drops it (seed §6.1).
#[test]
fn remove_with_unparseable_old_image_still_deletes() {
    let t = tr(
        "REMOVE",
        96,
        &label_sk(1, 1, "TAX"),
        Some(json!({"reasoning": {"N": "1"}})),
        None,
    );
    let Translation::Apply(r) = t else { panic!() };
    assert!(matches!(r.ops[0].op.op, Op::Delete(Target::Id(_))));
}

// ---------------------------------------------------------------- compaction runs

// Seed §8.1 COMPACTION_RUN INSERT → one merge per collection; MODIFY → nothing; fixes §9.3
// item 13 / seed §4.3 step 1: a run without a delta prefix is an error, never an ack.
#[test]
fn compaction_runs() {
    let sk = "RECEIPT#00007#COMPACTION_RUN#run-9";
    let img = json!({"run_id": s("run-9"), "receipt_id": n(7),
                     "lines_delta_prefix": s("s3://bucket-a/lines/delta/run-9/"),
                     "words_delta_prefix": s("/words/delta/run-9/"),
                     "lines_state": s("PENDING"), "words_state": s("PENDING")});
    let t = tr("INSERT", 100, sk, None, Some(img.clone()));
    let Translation::Apply(r) = &t else { panic!() };
    assert!(r.ops.is_empty());
    let FollowUp::MergeRun(m) = &r.follow_ups[0] else {
        panic!()
    };
    assert_eq!(m.run_id, "run-9");
    assert_eq!(m.receipt.receipt_id, 7);
    assert_eq!(m.seq, Seq::from(100u64));
    assert_eq!(m.deltas[0].collection, Collection::Lines);
    assert_eq!(m.deltas[0].location.bucket.as_deref(), Some("bucket-a"));
    assert_eq!(m.deltas[0].location.key_prefix, "lines/delta/run-9/");
    assert_eq!(m.deltas[1].location.bucket, None);
    assert_eq!(m.deltas[1].location.key_prefix, "words/delta/run-9/");

    // a missing delta fails the run, naming it
    let err = m
        .complete(&[
            (Collection::Lines, DeltaOutcome::Merged { operations: 3 }),
            (Collection::Words, DeltaOutcome::Missing),
        ])
        .unwrap_err();
    assert!(matches!(
        &err,
        RunError::DeltaMissing {
            collection: Collection::Words,
            ..
        }
    ));
    assert!(err.to_string().contains("run-9"));
    assert!(matches!(
        m.complete(&[(Collection::Lines, DeltaOutcome::Merged { operations: 3 })]),
        Err(RunError::NoOutcome {
            collection: Collection::Words,
            ..
        })
    ));
    assert!(matches!(
        m.complete(&[
            (
                Collection::Lines,
                DeltaOutcome::Failed {
                    reason: "crc".into()
                }
            ),
            (Collection::Words, DeltaOutcome::Merged { operations: 0 }),
        ]),
        Err(RunError::DeltaFailed { .. })
    ));

    assert_eq!(
        tr("MODIFY", 101, sk, Some(img.clone()), Some(img.clone())),
        Translation::Ignore(Ignored::NotStored(
            EntityType::CompactionRun,
            strata_stream::EventName::Modify
        ))
    );

    let mut no_words = img;
    no_words
        .as_object_mut()
        .unwrap()
        .remove("words_delta_prefix");
    let err = translate(&one("INSERT", 102, sk, None, Some(no_words))).unwrap_err();
    assert!(
        matches!(
            err,
            OpsError::RunWithoutDelta {
                collection: Collection::Words,
                ..
            }
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------- record-level errors

#[test]
fn records_without_sequence_number_or_new_image_fail_visibly() {
    let mut v = record_json(
        "INSERT",
        1,
        &label_sk(1, 1, "TAX"),
        None,
        Some(label_img("VALID", "t")),
    );
    v["dynamodb"]
        .as_object_mut()
        .unwrap()
        .remove("SequenceNumber");
    let recs = parse(vec![v]);
    assert!(matches!(
        translate(&recs[0]),
        Err(OpsError::NoSequenceNumber { .. })
    ));
    let batch = translate_batch(&strata_stream::ParsedBatch {
        records: recs,
        failures: vec![],
        window: None,
    });
    // an unknown SequenceNumber fails the whole batch (empty identifier)
    assert_eq!(
        batch.batch_response().batch_item_failures[0].item_identifier,
        ""
    );

    let r = one(
        "MODIFY",
        2,
        &label_sk(1, 1, "TAX"),
        Some(label_img("VALID", "t")),
        None,
    );
    assert!(matches!(
        translate(&r),
        Err(OpsError::MissingNewImage { .. })
    ));

    let r = one(
        "INSERT",
        3,
        &label_sk(1, 1, "TAX"),
        None,
        Some(json!({"validation_status": {"N": "2"}})),
    );
    let err = translate(&r).unwrap_err();
    assert!(err.to_string().contains("validation_status"), "{err}");
    assert!(err.to_string().contains("ev3"), "{err}");
}

#[test]
fn reader_errors_propagate_with_context() {
    let err = derive::recompute_sections(
        &FailingReader,
        &ReceiptKey {
            image_id: IMG.into(),
            receipt_id: 1,
        },
        Seq::ZERO,
    )
    .unwrap_err();
    assert_eq!(err.collection, Collection::Sections);
    assert!(err.to_string().contains("reader down"));
}

// Non-IMAGE keys (locks) and unknown sort keys are ignored (seed §8.1).
#[test]
fn foreign_items_are_ignored() {
    let mut v = record_json("MODIFY", 5, "LOCK", Some(json!({})), Some(json!({})));
    v["dynamodb"]["Keys"]["PK"] = s("LOCK#lines#chroma-lines-compaction");
    let r = parse(vec![v]).remove(0);
    assert_eq!(
        translate(&r).unwrap(),
        Translation::Ignore(Ignored::NotReceiptEntity)
    );
    assert_eq!(
        tr("REMOVE", 6, "RECEIPT#00001#LETTER#00001", None, None),
        Translation::Ignore(Ignored::NotReceiptEntity)
    );
}
