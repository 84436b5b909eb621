//! The seed's SQS path (`strata_stream::seed`'s parse, order and translate parts): every
//! message translates into what the stream record it was built from gives, as far as the
//! message carries the data; batches are deduplicated and ordered by build time; bad
//! records fail by messageId; arbitrary input never panics.

use std::collections::HashMap;

use chrono::SecondsFormat;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use strata_formats::{MetaValue, Metadata, Op, Patch, Seq, Target};
use strata_stream::entity::{EntityType, ReceiptKey};
use strata_stream::event::{
    parse_event, AttributeValue, BatchResponse, EventName, Item, Position, StreamRecord,
};
use strata_stream::ids;
use strata_stream::ops::{
    self, translate, Collection, FollowUp, Ignored, OpsError, RecordOps, Translation,
};
use strata_stream::seed::*;
use strata_testkit::records::attributes::item;
use strata_testkit::records::{n, record as record_json, s, IMG};

// ------------------------------------------------------------ building inputs

fn stream_record(
    event: &str,
    seq: u64,
    sk: &str,
    old: Option<Value>,
    new: Option<Value>,
) -> StreamRecord {
    let text = json!({ "Records": [record_json(event, seq, sk, old, new)] }).to_string();
    let mut batch = parse_event(text.as_bytes()).unwrap();
    assert!(batch.failures.is_empty(), "{:?}", batch.failures);
    batch.records.remove(0)
}

/// One Lambda SQS record, as the event source mapping delivers it.
fn sqs_record(id: Option<&str>, body: Option<&str>, collection: Option<&str>) -> Value {
    let mut r = json!({
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1750000000000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1750000000001"
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:lines-queue",
        "awsRegion": "us-east-1"
    });
    if let Some(id) = id {
        r["messageId"] = json!(id);
    }
    if let Some(b) = body {
        r["body"] = json!(b);
    }
    if let Some(c) = collection {
        r["messageAttributes"]["collection"] = json!({
            "stringValue": c, "stringListValues": [], "binaryListValues": [], "dataType": "String"
        });
    }
    r
}

fn sqs_event(records: Vec<Value>) -> Vec<u8> {
    json!({ "Records": records }).to_string().into_bytes()
}

/// A message as the seed's compactor rebuilds it from a body.
fn message(entity_type: &str, event: &str, data: Value, changes: Value) -> StreamMessage {
    let body = json!({
        "source": "dynamodb_stream",
        "entity_type": entity_type,
        "entity_data": data,
        "changes": changes,
        "event_name": event,
        "timestamp": "2025-06-15T15:06:40.123456+00:00",
        "stream_record_id": "ev-1",
        "aws_region": "us-east-1"
    });
    StreamMessage::from_sqs(body.to_string().as_bytes(), Some("lines"), "msg-1").unwrap()
}

fn seq(v: u64) -> Seq {
    Seq::from(v)
}

fn applied(t: &Translation) -> &RecordOps {
    match t {
        Translation::Apply(r) => r,
        other => panic!("expected operations, got {other:?}"),
    }
}

fn patch(op: &Op) -> &Patch {
    match op {
        Op::Patch(p) => p,
        other => panic!("expected a patch, got {other:?}"),
    }
}

fn text(v: &str) -> MetaValue {
    MetaValue::Str(v.into())
}

fn meta(pairs: &[(&str, MetaValue)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn place_img(name: &str, phone: Option<&str>) -> Value {
    json!({
        "merchant_name": s(name),
        "merchant_category": s("grocery_store"),
        "formatted_address": s("123 Main St"),
        "phone_number": phone.map_or(json!({"NULL": true}), s),
        "place_id": s("ChIJ123"),
    })
}

fn label_img(status: &str) -> Value {
    json!({
        "reasoning": s("seen on receipt"),
        "timestamp_added": s("2025-06-01T00:00:00"),
        "validation_status": s(status),
        "label_proposed_by": s("agent"),
        "label_consolidated_from": {"NULL": true},
        "confidence": n(0.75)
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

// ------------------------------------------------- the stream record, via its messages

/// The record's messages as the compactor receives them: built by the seed's stream
/// processor (at the record's own time, so that place timestamps compare), sent to the
/// `lines` / `words` queues as JSON bodies, parsed from one SQS event, deduplicated,
/// and translated with the record's SequenceNumber.
fn via_messages(record: &StreamRecord) -> Vec<Result<Translation, MessageOpsError>> {
    let built_at = record.approximate_creation.map_or_else(
        || "not a time".to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, false),
    );
    let Ok(msgs) = build_messages(record, &built_at) else {
        return Vec::new();
    };
    let mut sqs = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        for q in &m.collections {
            if matches!(q, Queue::Lines | Queue::Words) {
                let id = format!("m{i}-{q}");
                sqs.push(sqs_record(Some(&id), Some(&m.to_body()), Some(q.as_str())));
            }
        }
    }
    let batch = parse_sqs_event(&sqs_event(sqs)).unwrap();
    assert_eq!(batch.failures().count(), 0, "{:?}", batch.records);
    let seq = record.seq.unwrap_or(Seq::ZERO);
    batch
        .changes()
        .iter()
        .map(|c| translate_message(&c.message, seq))
        .collect()
}

/// A message's translation agrees with the record's: equal, or (`exact` false: a MODIFY
/// whose message carries only the changed fields) the same operations restricted to
/// keys the record's operations write the same way.
fn agree(direct: &Translation, via: &Translation, exact: bool) {
    if exact || via == direct {
        assert_eq!(via, direct);
        return;
    }
    let (d, v) = match (direct, via) {
        (Translation::Apply(d), Translation::Apply(v)) => (d, v),
        _ => {
            assert_eq!(via, direct);
            return;
        }
    };
    assert_eq!((v.seq, v.entity_type), (d.seq, d.entity_type));
    assert_eq!(v.follow_ups, d.follow_ups);
    assert_eq!(v.ops.len(), d.ops.len(), "{v:?}\n{d:?}");
    for (vo, dop) in v.ops.iter().zip(&d.ops) {
        assert_eq!((vo.collection, vo.op.seq), (dop.collection, dop.op.seq));
        let vp = patch(&vo.op.op);
        match &dop.op.op {
            Op::Patch(dp) => {
                assert_eq!(vp.target, dp.target);
                for (k, val) in &vp.set {
                    assert_eq!(dp.set.get(k), Some(val), "{k}");
                }
                for k in &vp.unset {
                    assert!(dp.unset.contains(k), "{k}");
                }
            }
            Op::Upsert(rec) => {
                assert_eq!(vp.target, Target::Id(rec.id.clone()));
                for (k, val) in &vp.set {
                    assert_eq!(rec.metadata.get(k), Some(val), "{k}");
                }
                for k in &vp.unset {
                    assert!(!rec.metadata.contains_key(k), "{k}");
                }
            }
            other => panic!("{other:?} vs {vp:?}"),
        }
    }
}

/// Check the record against its messages; returns how many changes the messages made.
fn check_agreement(record: &StreamRecord) -> usize {
    let direct = translate(record);
    let via = via_messages(record);
    let exact = record.event_name != EventName::Modify;
    for v in &via {
        match (&direct, v) {
            (Ok(d), Ok(v)) => agree(d, v, exact),
            // A run without its prefixes fails on both paths.
            (Err(OpsError::RunWithoutDelta { .. }), v) => assert!(v.is_err(), "{v:?}"),
            // Other record errors (no NewImage, no SequenceNumber) are the record's:
            // a message cannot tell (a MODIFY without NewImage reads as fields gone).
            (Err(_), _) => {}
            (d, v) => panic!("record: {d:?}\nmessage: {v:?}"),
        }
    }
    via.len()
}

#[test]
fn place_patches_and_deletes_agree_with_the_stream_record() {
    let sk = "RECEIPT#00002#PLACE";
    // MODIFY of one field: the message patches only that key (and the time keys).
    let r = stream_record(
        "MODIFY",
        10,
        sk,
        Some(place_img("vons", Some("805"))),
        Some(place_img(" vons market ", Some("805"))),
    );
    assert_eq!(check_agreement(&r), 1);
    let t = via_messages(&r).remove(0).unwrap();
    let ops = &applied(&t).ops;
    let filter = ids::receipt_filter(IMG, 2);
    for (o, c) in ops.iter().zip([Collection::Lines, Collection::Words]) {
        assert_eq!(o.collection, c);
        assert_eq!(o.op.seq, seq(10));
        let p = patch(&o.op.op);
        assert_eq!(p.target, Target::Where(filter.clone()));
        assert_eq!(
            p.set,
            meta(&[
                ("merchant_name", text("Vons Market")),
                ("last_place_update", text("2025-06-15T15:06:40+00:00")),
            ])
        );
        assert_eq!(p.unset, ["place_removed_at"]);
    }
    // Every other operation (the place's own row, if any) is narrowed the same way.
    for o in &ops[2..] {
        let p = patch(&o.op.op);
        assert_eq!(p.set, meta(&[("merchant_name", text("Vons Market"))]));
        assert!(p.unset.is_empty());
    }
    // A changed value that becomes null or blank is unset, never omitted.
    let r = stream_record(
        "MODIFY",
        11,
        sk,
        Some(place_img("Vons", Some("805"))),
        Some(place_img("Vons", None)),
    );
    assert_eq!(check_agreement(&r), 1);
    let t = via_messages(&r).remove(0).unwrap();
    let p = patch(&applied(&t).ops[0].op.op);
    assert_eq!(p.unset, ["phone_number", "place_removed_at"]);
    // MODIFY of all five fields: the message knows the whole place, as the record does.
    let r = stream_record(
        "MODIFY",
        12,
        sk,
        Some(json!({})),
        Some(place_img("Trader Joe's", Some("805"))),
    );
    assert_eq!(check_agreement(&r), 1);
    assert_eq!(
        via_messages(&r)[0].as_ref().ok(),
        translate(&r).as_ref().ok()
    );
    // REMOVE: exactly the record's patches (and row delete).
    let r = stream_record("REMOVE", 13, sk, Some(place_img("Vons", None)), None);
    assert_eq!(check_agreement(&r), 1);
    let t = translate(&r).unwrap();
    let p = patch(&applied(&t).ops[0].op.op);
    assert!(p.unset.contains(&"merchant_name".to_string()));
    assert_eq!(
        p.set.get("place_removed_at"),
        Some(&text("2025-06-15T15:06:40+00:00"))
    );
    // An unchanged MODIFY yields no message at all.
    let r = stream_record(
        "MODIFY",
        14,
        sk,
        Some(place_img("Vons", None)),
        Some(place_img("Vons", None)),
    );
    assert_eq!(check_agreement(&r), 0);
}

#[test]
fn receipt_line_word_label_and_section_removes_agree() {
    for sk in [
        "RECEIPT#00001",
        "RECEIPT#00001#LINE#00002",
        "RECEIPT#00001#LINE#00002#WORD#00003",
        "RECEIPT#00001#LINE#00002#WORD#00003#LABEL#GRAND_TOTAL",
        "RECEIPT#00001#SECTION#ITEMS",
    ] {
        // With an old image, and with the keys alone (a KEYS_ONLY stream).
        for old in [Some(json!({"TYPE": s("X")})), None] {
            let r = stream_record("REMOVE", 20, sk, old, None);
            assert_eq!(check_agreement(&r), 1, "{sk}");
            let direct = translate(&r).unwrap();
            assert!(!applied(&direct).ops.is_empty(), "{sk}");
        }
    }
    let r = stream_record(
        "REMOVE",
        21,
        "RECEIPT#00001#LINE#00002#WORD#00003",
        None,
        None,
    );
    let t = via_messages(&r).remove(0).unwrap();
    assert_eq!(
        applied(&t).ops[0].op.op,
        Op::Delete(Target::Id(ids::word_id(IMG, 1, 2, 3)))
    );
    let r = stream_record(
        "REMOVE",
        22,
        "RECEIPT#00001#LINE#00002#WORD#00003#LABEL#TOTAL",
        Some(label_img("VALID")),
        None,
    );
    let t = via_messages(&r).remove(0).unwrap();
    let rec = applied(&t);
    assert_eq!(
        rec.ops[0].op.op,
        Op::Delete(Target::Id(ids::label_row_id(IMG, 1, 2, 3, "TOTAL")))
    );
    assert_eq!(
        rec.follow_ups,
        [FollowUp::RecomputeWordLabels(
            strata_stream::entity::WordKey {
                image_id: IMG.into(),
                receipt_id: 1,
                line_id: 2,
                word_id: 3
            }
        )]
    );
}

#[test]
fn label_and_section_changes_agree() {
    let lsk = "RECEIPT#00001#LINE#00002#WORD#00003#LABEL#TOTAL";
    let r = stream_record(
        "MODIFY",
        30,
        lsk,
        Some(label_img("PENDING")),
        Some(label_img("valid")),
    );
    assert_eq!(check_agreement(&r), 1);
    let t = via_messages(&r).remove(0).unwrap();
    let rec = applied(&t);
    assert_eq!(rec.ops.len(), 1);
    assert_eq!(rec.ops[0].collection, Collection::Labels);
    let p = patch(&rec.ops[0].op.op);
    assert_eq!(
        p.target,
        Target::Id(ids::label_row_id(IMG, 1, 2, 3, "TOTAL"))
    );
    assert_eq!(p.set, meta(&[("validation_status", text("VALID"))]));
    assert!(p.unset.is_empty());

    let ssk = "RECEIPT#00001#SECTION#ITEMS";
    let r = stream_record(
        "INSERT",
        31,
        ssk,
        None,
        Some(section_img(&[1, 2], Some("valid"), 0.5)),
    );
    assert_eq!(check_agreement(&r), 1);
    let t = via_messages(&r).remove(0).unwrap();
    let Op::Upsert(row) = &applied(&t).ops[0].op.op else {
        panic!("{t:?}")
    };
    assert_eq!(row.id, ids::section_row_id(IMG, 1, "ITEMS"));
    assert_eq!(
        row.metadata.get("line_ids"),
        Some(&MetaValue::IntList(vec![1, 2]))
    );
    let r = stream_record(
        "MODIFY",
        32,
        ssk,
        Some(section_img(&[1, 2], Some("VALID"), 0.5)),
        Some(section_img(&[1, 2, 3], Some("VALID"), 0.5)),
    );
    assert_eq!(check_agreement(&r), 1);
    let t = via_messages(&r).remove(0).unwrap();
    let rec = applied(&t);
    let p = patch(&rec.ops[0].op.op);
    assert_eq!(
        p.set,
        meta(&[("line_ids", MetaValue::IntList(vec![1, 2, 3]))])
    );
    assert_eq!(
        rec.follow_ups,
        [FollowUp::RecomputeSections(ReceiptKey {
            image_id: IMG.into(),
            receipt_id: 1
        })]
    );
    // A change to null is an unset.
    let r = stream_record(
        "MODIFY",
        33,
        ssk,
        Some(section_img(&[1], Some("VALID"), 0.5)),
        Some(section_img(&[1], None, 0.5)),
    );
    assert_eq!(check_agreement(&r), 1);
    let t = via_messages(&r).remove(0).unwrap();
    assert_eq!(
        patch(&applied(&t).ops[0].op.op).unset,
        ["validation_status"]
    );
}

#[test]
fn compaction_run_messages_are_one_merge() {
    let sk = "RECEIPT#00001#COMPACTION_RUN#r1";
    let img = json!({
        "run_id": s("r1"),
        "lines_delta_prefix": s("lines/delta/r1/"),
        "words_delta_prefix": s("s3://bucket/words/delta/r1/"),
    });
    let r = stream_record("INSERT", 40, sk, None, Some(img));
    // Two messages (lines, words queues), one change, the record's MergeRun.
    assert_eq!(check_agreement(&r), 1);
    let t = via_messages(&r).remove(0).unwrap();
    let [FollowUp::MergeRun(run)] = applied(&t).follow_ups.as_slice() else {
        panic!("{t:?}")
    };
    assert_eq!((run.run_id.as_str(), run.seq), ("r1", seq(40)));
    assert_eq!(run.deltas.len(), 2);
    assert_eq!(run.deltas[1].location.bucket.as_deref(), Some("bucket"));
    // Without its prefixes a run is an error on both paths, never an acknowledgement.
    let r = stream_record("INSERT", 41, sk, None, Some(json!({"run_id": s("r1")})));
    assert_eq!(check_agreement(&r), 1);
    let err = via_messages(&r).remove(0).unwrap_err();
    assert!(
        matches!(
            &err.kind,
            MessageOpsErrorKind::RunWithoutDelta {
                collection: Collection::Lines,
                found: None,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("m0-lines"), "{err}");
    // A seed body with only delta_s3_prefix is not enough either.
    let m = message(
        "COMPACTION_RUN",
        "INSERT",
        json!({"run_id": "r2", "image_id": IMG, "receipt_id": 1, "delta_s3_prefix": "lines/delta/r2/"}),
        json!({}),
    );
    assert!(translate_message(&m, seq(1)).is_err());
    // A run id the image holds with `#` (no key segment can) survives.
    let m = message(
        "COMPACTION_RUN",
        "INSERT",
        json!({"run_id": "a#b", "image_id": IMG, "receipt_id": 1,
               "lines_delta_prefix": "l/", "words_delta_prefix": "w/"}),
        json!({}),
    );
    let t = translate_message(&m, seq(2)).unwrap();
    let [FollowUp::MergeRun(run)] = applied(&t).follow_ups.as_slice() else {
        panic!("{t:?}")
    };
    assert_eq!(run.run_id, "a#b");
    // MODIFY and REMOVE of a run: nothing, as the record.
    let m = message("COMPACTION_RUN", "MODIFY", json!({}), json!({}));
    assert_eq!(
        translate_message(&m, seq(3)).unwrap(),
        Translation::Ignore(Ignored::NotStored(
            EntityType::CompactionRun,
            EventName::Modify
        ))
    );
}

/// The fixture events (other projects' tables), each record re-keyed as every receipt
/// entity in turn: their images hold every attribute type and none of the receipt
/// fields. Whatever a record gives, its messages give the same.
#[test]
fn rekeyed_fixture_records_agree() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dynamodb-events");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fixtures missing at {}: {e}", dir.display()));
    let sks = [
        "RECEIPT#00001",
        "RECEIPT#00001#LINE#00002",
        "RECEIPT#00001#LINE#00002#WORD#00003",
        "RECEIPT#00001#LINE#00002#WORD#00003#LABEL#TOTAL",
        "RECEIPT#00001#PLACE",
        "RECEIPT#00001#SECTION#ITEMS",
        "RECEIPT#00001#SUMMARY",
        "RECEIPT#00001#COMPACTION_RUN#r1",
    ];
    let (mut records, mut changes) = (0, 0);
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let Ok(batch) = parse_event(&bytes) else {
            continue;
        };
        for rec in &batch.records {
            // As the fixture is: another table, nothing on either path.
            assert!(via_messages(rec).is_empty(), "{}", path.display());
            for sk in sks {
                let mut r = rec.clone();
                r.keys = item(&[
                    ("PK", AttributeValue::S(format!("IMAGE#{IMG}"))),
                    ("SK", AttributeValue::S(sk.to_string())),
                ]);
                for img in [&mut r.new_image, &mut r.old_image].into_iter().flatten() {
                    let mut map: HashMap<String, AttributeValue> = img.clone().into_inner();
                    map.remove("PK");
                    map.remove("SK");
                    *img = Item::from(map);
                }
                if r.seq.is_none() {
                    r.seq = Some(seq(7));
                }
                records += 1;
                changes += check_agreement(&r);
            }
        }
    }
    assert!(
        records > 50 && changes > 20,
        "{records} records, {changes} changes"
    );
}

// ------------------------------------------------------- translation, message only

#[test]
fn label_insert_is_a_patch_unless_the_row_is_whole() {
    let data = json!({"entity_type": "RECEIPT_WORD_LABEL", "image_id": IMG, "receipt_id": 1,
                      "line_id": 2, "word_id": 3, "label": "total"});
    let changes = json!({
        "label": {"old": null, "new": "TOTAL"},
        "validation_status": {"old": null, "new": "PENDING"},
        "reasoning": {"old": null, "new": "r"}
    });
    let m = message(
        "RECEIPT_WORD_LABEL",
        "INSERT",
        data.clone(),
        changes.clone(),
    );
    let t = translate_message(&m, seq(5)).unwrap();
    let rec = applied(&t);
    let p = patch(&rec.ops[0].op.op);
    assert_eq!(
        p.target,
        Target::Id(ids::label_row_id(IMG, 1, 2, 3, "TOTAL"))
    );
    assert_eq!(
        p.set,
        meta(&[
            ("image_id", text(IMG)),
            ("receipt_id", MetaValue::Int(1)),
            ("line_id", MetaValue::Int(2)),
            ("word_id", MetaValue::Int(3)),
            ("label", text("TOTAL")),
            ("validation_status", text("PENDING")),
            ("reasoning", text("r")),
        ])
    );
    assert_eq!(p.unset, ["label_consolidated_from", "label_proposed_by"]);
    assert_eq!(rec.follow_ups.len(), 1);
    // With timestamp_added and confidence the row is whole: the record's upsert.
    let mut data = data;
    data["timestamp_added"] = json!("2025-06-01T00:00:00");
    data["confidence"] = json!(0.9);
    let m = message("RECEIPT_WORD_LABEL", "INSERT", data, changes);
    let t = translate_message(&m, seq(5)).unwrap();
    let Op::Upsert(row) = &applied(&t).ops[0].op.op else {
        panic!("{t:?}")
    };
    assert_eq!(row.metadata.get("confidence"), Some(&MetaValue::Float(0.9)));
    assert_eq!(
        row.metadata.get("timestamp_added"),
        Some(&text("2025-06-01T00:00:00"))
    );
    // Identity, status, reasoning, timestamp, confidence (the null fields are absent).
    assert_eq!(row.metadata.len(), 9);
    // A MODIFY that changes no row key (only the key's `label`): nothing to do.
    let m = message(
        "RECEIPT_WORD_LABEL",
        "MODIFY",
        json!({"image_id": IMG, "receipt_id": 1, "line_id": 2, "word_id": 3, "label": "TOTAL"}),
        json!({"label": {"old": "A", "new": "B"}}),
    );
    assert_eq!(
        translate_message(&m, seq(6)).unwrap(),
        Translation::Ignore(Ignored::Unchanged(EntityType::ReceiptWordLabel))
    );
}

#[test]
fn section_backfill_and_empty_changes_only_recompute() {
    let recompute = |t: Translation| {
        let r = applied(&t).clone();
        assert!(r.ops.is_empty());
        assert_eq!(
            r.follow_ups,
            [FollowUp::RecomputeSections(ReceiptKey {
                image_id: IMG.into(),
                receipt_id: 4
            })]
        );
    };
    // The seed's backfill body: no section_type, no changes.
    let body = json!({
        "source": "section_backfill", "entity_type": "RECEIPT_SECTION",
        "entity_data": {"entity_type": "RECEIPT_SECTION", "image_id": IMG, "receipt_id": 4},
        "changes": {}, "event_name": "MODIFY", "timestamp": "2025-06-15T00:00:00+00:00",
        "stream_record_id": "section_backfill-1b0c", "aws_region": "backfill"
    });
    let m = StreamMessage::from_sqs(body.to_string().as_bytes(), Some("lines"), "b1").unwrap();
    recompute(translate_message(&m, seq(1)).unwrap());
    // Even if a backfill carried changes, it only recomputes.
    let mut body = body;
    body["changes"] = json!({"confidence": {"old": 0.1, "new": 0.2}});
    let m = StreamMessage::from_sqs(body.to_string().as_bytes(), None, "b2").unwrap();
    recompute(translate_message(&m, seq(1)).unwrap());
    let m = message(
        "RECEIPT_SECTION",
        "MODIFY",
        json!({"image_id": IMG, "receipt_id": "00004", "section_type": "ITEMS"}),
        json!({}),
    );
    recompute(translate_message(&m, seq(1)).unwrap());
    // A REMOVE needs the section type (the row must go).
    let m = message(
        "RECEIPT_SECTION",
        "REMOVE",
        json!({"image_id": IMG, "receipt_id": 4}),
        json!({}),
    );
    let err = translate_message(&m, seq(1)).unwrap_err();
    assert!(
        matches!(
            err.kind,
            MessageOpsErrorKind::Identity {
                field: "section_type",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn ignored_messages() {
    let data = json!({"image_id": IMG, "receipt_id": 1, "line_id": 1, "word_id": 1});
    for (ty, ev, want) in [
        ("RECEIPT_LETTER", "REMOVE", Ignored::NotReceiptEntity),
        ("receipt_word", "REMOVE", Ignored::NotReceiptEntity),
        (
            "RECEIPT_SUMMARY",
            "INSERT",
            Ignored::NotStored(EntityType::ReceiptSummary, EventName::Insert),
        ),
        (
            "RECEIPT_WORD",
            "MODIFY",
            Ignored::NotStored(EntityType::ReceiptWord, EventName::Modify),
        ),
        (
            "RECEIPT",
            "INSERT",
            Ignored::NotStored(EntityType::Receipt, EventName::Insert),
        ),
        (
            "COMPACTION_RUN",
            "REMOVE",
            Ignored::NotStored(EntityType::CompactionRun, EventName::Remove),
        ),
    ] {
        // An ignored type needs no identity at all.
        for d in [data.clone(), json!({})] {
            let m = message(ty, ev, d, json!({}));
            assert_eq!(
                translate_message(&m, seq(1)).unwrap(),
                Translation::Ignore(want)
            );
        }
    }
    let m = message(
        "RECEIPT_PLACE",
        "MODIFY",
        json!({"image_id": IMG, "receipt_id": 1}),
        json!({"timestamp": {"old": "a", "new": "b"}}),
    );
    assert_eq!(
        translate_message(&m, seq(1)).unwrap(),
        Translation::Ignore(Ignored::Unchanged(EntityType::ReceiptPlace))
    );
}

#[test]
fn unusable_identity_and_values_are_errors() {
    let cases = [
        (json!({"receipt_id": 1}), "image_id"),
        (json!({"image_id": "", "receipt_id": 1}), "image_id"),
        (json!({"image_id": "a#b", "receipt_id": 1}), "image_id"),
        (json!({"image_id": 7, "receipt_id": 1}), "image_id"),
        (json!({"image_id": IMG}), "receipt_id"),
        (json!({"image_id": IMG, "receipt_id": 0}), "receipt_id"),
        (json!({"image_id": IMG, "receipt_id": -3}), "receipt_id"),
        (json!({"image_id": IMG, "receipt_id": 1.5}), "receipt_id"),
        (json!({"image_id": IMG, "receipt_id": "x1"}), "receipt_id"),
        (
            json!({"image_id": IMG, "receipt_id": 4294967296u64}),
            "receipt_id",
        ),
        (json!({"image_id": IMG, "receipt_id": [1]}), "receipt_id"),
    ];
    for (data, field) in cases {
        let m = message("RECEIPT", "REMOVE", data.clone(), json!({}));
        let err = translate_message(&m, seq(1)).unwrap_err();
        match &err.kind {
            MessageOpsErrorKind::Identity { field: f, .. } => assert_eq!(*f, field, "{data}"),
            other => panic!("{data}: {other:?}"),
        }
        assert!(err.to_string().contains("msg-1"), "{err}");
    }
    // Integral numbers and digit strings are ids.
    for rid in [json!(2), json!(2.0), json!("00002")] {
        let m = message(
            "RECEIPT",
            "REMOVE",
            json!({"image_id": IMG, "receipt_id": rid}),
            json!({}),
        );
        let t = translate_message(&m, seq(1)).unwrap();
        assert_eq!(
            applied(&t).ops[0].op.op,
            Op::Delete(Target::Where(ids::receipt_filter(IMG, 2)))
        );
    }
    let label = |l: Value| {
        message(
            "RECEIPT_WORD_LABEL",
            "REMOVE",
            json!({"image_id": IMG, "receipt_id": 1, "line_id": 1, "word_id": 1, "label": l}),
            json!({}),
        )
    };
    assert!(translate_message(&label(json!("A#B")), seq(1)).is_err());
    // An id the engine would refuse is this message's error, not the invocation's.
    let err = translate_message(&label(json!("L".repeat(MAX_ID_BYTES))), seq(1)).unwrap_err();
    assert!(
        matches!(err.kind, MessageOpsErrorKind::IdTooLong { len, .. } if len > MAX_ID_BYTES),
        "{err}"
    );
    let long = "L".repeat(MAX_ID_BYTES - ids::label_row_id(IMG, 1, 1, 1, "").len());
    assert!(translate_message(&label(json!(long)), seq(1)).is_ok());
    assert!(translate_message(&label(json!("  ")), seq(1)).is_err());
    assert!(translate_message(&label(json!(null)), seq(1)).is_err());
    // A change of the wrong type names the field.
    let m = message(
        "RECEIPT_PLACE",
        "MODIFY",
        json!({"image_id": IMG, "receipt_id": 1}),
        json!({"merchant_name": {"old": "a", "new": 5}}),
    );
    let err = translate_message(&m, seq(1)).unwrap_err();
    match &err.kind {
        MessageOpsErrorKind::Field(e) => assert_eq!(e.field, "merchant_name"),
        other => panic!("{other:?}"),
    }
    let m = message(
        "RECEIPT_SECTION",
        "MODIFY",
        json!({"image_id": IMG, "receipt_id": 1, "section_type": "ITEMS"}),
        json!({"line_ids": {"old": [1], "new": [1, "x"]}}),
    );
    let err = translate_message(&m, seq(1)).unwrap_err();
    assert!(err.to_string().contains("line_ids[1]"), "{err}");
}

#[test]
fn place_fields_pair_with_place_keys() {
    let pairs: Vec<(&str, &str)> = EntityType::ReceiptPlace
        .relevant_fields()
        .iter()
        .copied()
        .zip(ops::PLACE_KEYS)
        .collect();
    assert_eq!(pairs.len(), 5);
    for (f, k) in pairs {
        assert!(
            f == k || (f, k) == ("formatted_address", "address"),
            "{f} {k}"
        );
    }
}

#[test]
fn message_times() {
    let at = |ts: Option<&str>| {
        let mut m = message("RECEIPT", "REMOVE", json!({}), json!({}));
        m.context.timestamp = ts.map(str::to_string);
        message_time(&m).map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
    };
    assert_eq!(
        at(Some("2025-08-01T00:00:00.123456+00:00")).as_deref(),
        Some("2025-08-01T00:00:00.123456Z")
    );
    assert_eq!(
        at(Some("2025-08-01T02:00:00+02:00")).as_deref(),
        Some("2025-08-01T00:00:00.000000Z")
    );
    assert_eq!(
        at(Some("2025-08-01T00:00:00.5")).as_deref(),
        Some("2025-08-01T00:00:00.500000Z")
    );
    assert_eq!(
        at(Some("2025-08-01T00:00:00")).as_deref(),
        Some("2025-08-01T00:00:00.000000Z")
    );
    assert_eq!(at(Some("yesterday")), None);
    assert_eq!(at(None), None);
}

// ------------------------------------------------------------------- SQS events

const SEED_BODY: &str = r#"{"source": "dynamodb_stream", "entity_type": "RECEIPT_WORD_LABEL", "entity_data": {"entity_type": "RECEIPT_WORD_LABEL", "image_id": "3f52804b-2fad-4e00-92c8-b593da3a8ed3", "receipt_id": 1, "line_id": 2, "word_id": 3, "label": "TOTAL"}, "changes": {"validation_status": {"old": "PENDING", "new": "VALID"}}, "event_name": "MODIFY", "timestamp": "2025-08-01T00:00:00.000001+00:00", "stream_record_id": "abc", "aws_region": "us-east-1"}"#;

#[test]
fn seed_sqs_event_parses() {
    let ev = sqs_event(vec![
        sqs_record(Some("id-1"), Some(SEED_BODY), Some("words")),
        sqs_record(Some("id-2"), Some(SEED_BODY), None),
    ]);
    let batch = parse_sqs_event(&ev).unwrap();
    assert_eq!(batch.records.len(), 2);
    assert_eq!(batch.failures().count(), 0);
    let r = &batch.records[0];
    assert_eq!(r.message_id.as_deref(), Some("id-1"));
    assert_eq!(r.collection.as_deref(), Some("words"));
    assert_eq!(r.stream_record_id.as_deref(), Some("abc"));
    assert_eq!(
        r.event_source_arn.as_deref(),
        Some("arn:aws:sqs:us-east-1:123456789012:lines-queue")
    );
    let m = r.message.as_ref().unwrap();
    assert_eq!(m.collections, [Queue::Words]);
    assert_eq!(m.context.record_id.as_deref(), Some("id-1"));
    // No collection attribute: `lines`, the seed's default.
    let m = batch.records[1].message.as_ref().unwrap();
    assert_eq!(m.collections, [Queue::Lines]);
    assert_eq!(
        batch.batch_response([]).to_json(),
        r#"{"batchItemFailures":[]}"#
    );
    // `messageAttributes` / `attributes` null (as some tools send them) are fine.
    let mut rec = sqs_record(Some("id-3"), Some(SEED_BODY), None);
    rec["messageAttributes"] = Value::Null;
    rec["attributes"] = Value::Null;
    rec["md5OfBody"] = json!(17);
    let batch = parse_sqs_event(&sqs_event(vec![rec])).unwrap();
    assert_eq!(batch.failures().count(), 0);
}

#[test]
fn bad_bodies_are_failures_by_message_id() {
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(MAX_MESSAGE_BYTES));
    let ev = sqs_event(vec![
        sqs_record(Some("ok"), Some(SEED_BODY), Some("lines")),
        sqs_record(Some("not-json"), Some("hello"), Some("lines")),
        sqs_record(Some("truncated"), Some(&SEED_BODY[..40]), Some("lines")),
        sqs_record(
            Some("bad-event"),
            Some(&SEED_BODY.replace("MODIFY", "UPSERT")),
            Some("lines"),
        ),
        sqs_record(Some("no-body"), None, Some("lines")),
        sqs_record(Some("too-big"), Some(&big), None),
        json!({"messageId": "body-type", "body": 42}),
        json!("not an object"),
    ]);
    let batch = parse_sqs_event(&ev).unwrap();
    assert_eq!(batch.records.len(), 8);
    let failed: Vec<Option<&str>> = batch.failures().map(|r| r.message_id.as_deref()).collect();
    assert_eq!(
        failed,
        [
            Some("not-json"),
            Some("truncated"),
            Some("bad-event"),
            Some("no-body"),
            Some("too-big"),
            Some("body-type"),
            None
        ]
    );
    let errs: Vec<&SqsRecordError> = batch
        .failures()
        .map(|r| r.message.as_ref().unwrap_err())
        .collect();
    assert!(matches!(
        errs[0],
        SqsRecordError::Message(MessageError::Body { .. })
    ));
    assert!(matches!(
        errs[2],
        SqsRecordError::Message(MessageError::EventName(_))
    ));
    assert_eq!(errs[3], &SqsRecordError::NoBody);
    assert!(matches!(
        errs[4],
        SqsRecordError::Message(MessageError::TooLarge { .. })
    ));
    assert!(
        matches!(errs[5], SqsRecordError::Malformed { path, .. } if path == "body"),
        "{:?}",
        errs[5]
    );
    // The good one is still there, and the response names every failed id; the record
    // without an id fails the whole batch (empty identifier).
    assert_eq!(batch.changes().len(), 1);
    let resp = batch.batch_response([]);
    let ids: Vec<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "not-json",
            "truncated",
            "bad-event",
            "no-body",
            "too-big",
            "body-type",
            ""
        ]
    );
    assert_eq!(
        BatchResponse::from_json(resp.to_json().as_bytes()).unwrap(),
        resp
    );
}

#[test]
fn a_record_without_message_id_fails_the_whole_batch() {
    for id in [None, Some("")] {
        let batch = parse_sqs_event(&sqs_event(vec![
            sqs_record(Some("a"), Some(SEED_BODY), None),
            sqs_record(id, Some(SEED_BODY), None),
        ]))
        .unwrap();
        let r = &batch.records[1];
        assert_eq!(r.message_id, None);
        assert_eq!(r.message, Err(SqsRecordError::NoMessageId));
        // Not part of any change: it cannot be acknowledged by id.
        let changes = batch.changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].message_ids, ["a"]);
        assert_eq!(
            batch.batch_response([]).to_json(),
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#
        );
    }
    // A malformed record is named when its messageId can be read.
    let batch = parse_sqs_event(&sqs_event(vec![
        json!({"messageId": "m", "body": {"nested": true}}),
        json!({"messageId": 5, "body": SEED_BODY}),
    ]))
    .unwrap();
    assert_eq!(batch.records[0].message_id.as_deref(), Some("m"));
    assert!(matches!(
        batch.records[1].message,
        Err(SqsRecordError::Malformed { ref path, .. }) if path == "messageId"
    ));
    assert_eq!(batch.records[1].message_id, None);
}

#[test]
fn envelope_errors() {
    assert!(matches!(
        parse_sqs_event(b"{\"Records\": [\n {\"messageId\": \"a\"}\n"),
        Err(SqsEventError::Json {
            at: Position { line: 3, .. },
            ..
        })
    ));
    assert!(matches!(
        parse_sqs_event(b"[[]]"),
        Err(SqsEventError::NotAnEvent { .. })
    ));
    assert!(matches!(
        parse_sqs_event(b"{\"batchItemFailures\": []}"),
        Err(SqsEventError::NotAnEvent { .. })
    ));
    assert!(matches!(
        parse_sqs_event(b"{\"Records\": {}}"),
        Err(SqsEventError::NotAnEvent { .. })
    ));
    assert!(matches!(
        parse_sqs_event(b"\xff"),
        Err(SqsEventError::Json { .. })
    ));
    assert!(matches!(
        parse_sqs_event(b"{\"Records\": [\"\xff\"]}"),
        Err(SqsEventError::Json { .. })
    ));
    assert!(matches!(
        parse_sqs_event(b""),
        Err(SqsEventError::Json { .. })
    ));
    let big = vec![b' '; MAX_SQS_EVENT_BYTES + 1];
    assert!(matches!(
        parse_sqs_event(&big),
        Err(SqsEventError::TooLarge { .. })
    ));
    assert_eq!(
        parse_sqs_event(b"{\"Records\": []}").unwrap(),
        SqsBatch::default()
    );
}

fn body(entity: &str, event: &str, rid: u32, ts: Option<&str>, record_id: &str) -> String {
    json!({
        "source": "dynamodb_stream", "entity_type": entity,
        "entity_data": {"entity_type": entity, "image_id": IMG, "receipt_id": rid},
        "changes": {}, "event_name": event, "timestamp": ts,
        "stream_record_id": record_id, "aws_region": "us-east-1"
    })
    .to_string()
}

#[test]
fn identical_bodies_on_both_queues_are_one_change() {
    let receipt_rm = body("RECEIPT", "REMOVE", 1, Some("2025-08-01T00:00:02Z"), "e1");
    let batch = parse_sqs_event(&sqs_event(vec![
        sqs_record(Some("l1"), Some(&receipt_rm), Some("lines")),
        sqs_record(Some("w1"), Some(&receipt_rm), Some("words")),
        // Redelivered on the same queue.
        sqs_record(Some("l1-again"), Some(&receipt_rm), Some("lines")),
    ]))
    .unwrap();
    let changes = batch.changes();
    assert_eq!(changes.len(), 1);
    let c = &changes[0];
    assert_eq!(c.message_ids, ["l1", "w1", "l1-again"]);
    assert_eq!(c.indexes, [0, 1, 2]);
    assert_eq!(c.message.collections, [Queue::Lines, Queue::Words]);
    assert_eq!(c.message.context.record_id.as_deref(), Some("l1"));
    // Failing the change fails every copy.
    let resp = batch.batch_response(&changes);
    assert_eq!(resp.batch_item_failures.len(), 3);
    // The same content from another DynamoDB record is another change.
    let other = body("RECEIPT", "REMOVE", 1, Some("2025-08-01T00:00:02Z"), "e2");
    let batch = parse_sqs_event(&sqs_event(vec![
        sqs_record(Some("l1"), Some(&receipt_rm), Some("lines")),
        sqs_record(Some("l2"), Some(&other), Some("lines")),
    ]))
    .unwrap();
    assert_eq!(batch.changes().len(), 2);
}

#[test]
fn changes_are_ordered_by_time_not_remove_first() {
    let t = |s: u32| format!("2025-08-01T00:00:{s:02}.000001+00:00");
    let run = |rid: u32, ts: &str, q: &str| {
        json!({
            "source": "dynamodb_stream", "entity_type": "COMPACTION_RUN",
            "entity_data": {"run_id": "r", "image_id": IMG, "receipt_id": rid,
                "lines_delta_prefix": "lines/delta/r/", "words_delta_prefix": "words/delta/r/",
                "delta_s3_prefix": format!("{q}/delta/r/")},
            "changes": {}, "event_name": "INSERT", "timestamp": ts,
            "stream_record_id": "run-ev", "aws_region": "us-east-1"
        })
        .to_string()
    };
    let line_rm = json!({
        "source": "dynamodb_stream", "entity_type": "RECEIPT_LINE",
        "entity_data": {"image_id": IMG, "receipt_id": 1, "line_id": 4},
        "changes": {}, "event_name": "REMOVE", "timestamp": t(5),
        "stream_record_id": "rm-ev", "aws_region": "us-east-1"
    })
    .to_string();
    let batch = parse_sqs_event(&sqs_event(vec![
        // Delivered out of order: the REMOVE first, then the run it follows.
        sqs_record(Some("rm"), Some(&line_rm), Some("lines")),
        sqs_record(Some("run-l"), Some(&run(1, &t(3), "lines")), Some("lines")),
        sqs_record(
            Some("late"),
            Some(&body("RECEIPT", "REMOVE", 9, Some(&t(9)), "x")),
            None,
        ),
        sqs_record(
            Some("no-time"),
            Some(&body("RECEIPT", "REMOVE", 8, None, "y")),
            None,
        ),
        sqs_record(Some("run-w"), Some(&run(1, &t(3), "words")), Some("words")),
        sqs_record(
            Some("bad-time"),
            Some(&body("RECEIPT", "REMOVE", 7, Some("soon"), "z")),
            None,
        ),
    ]))
    .unwrap();
    let changes = batch.changes();
    let order: Vec<Vec<&str>> = changes
        .iter()
        .map(|c| c.message_ids.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        order,
        [
            vec!["no-time"],
            vec!["bad-time"],
            vec!["run-l", "run-w"],
            vec!["rm"],
            vec!["late"]
        ]
    );
    // Stamped in that order, the line delete comes after the merge that re-created it,
    // so the line stays deleted (REMOVE-first would resurrect it).
    let stamped: Vec<Translation> = changes
        .iter()
        .zip(100u64..)
        .map(|(c, s)| translate_message(&c.message, seq(s)).unwrap())
        .collect();
    let [FollowUp::MergeRun(run)] = applied(&stamped[2]).follow_ups.as_slice() else {
        panic!("{:?}", stamped[2])
    };
    assert_eq!(run.seq, seq(102));
    assert_eq!(applied(&stamped[3]).ops[0].op.seq, seq(103));
    // Nothing was dropped: an INSERT/MODIFY next to a REMOVE of the same key stays.
    let place = json!({
        "source": "dynamodb_stream", "entity_type": "RECEIPT_PLACE",
        "entity_data": {"image_id": IMG, "receipt_id": 1},
        "changes": {"merchant_name": {"old": "a", "new": "b"}}, "event_name": "MODIFY",
        "timestamp": t(6), "stream_record_id": "p", "aws_region": "us-east-1"
    })
    .to_string();
    let batch = parse_sqs_event(&sqs_event(vec![
        sqs_record(Some("p"), Some(&place), None),
        sqs_record(
            Some("r"),
            Some(&body("RECEIPT", "REMOVE", 1, Some(&t(5)), "r")),
            None,
        ),
    ]))
    .unwrap();
    let ids: Vec<String> = batch
        .changes()
        .into_iter()
        .map(|c| c.message_ids[0].clone())
        .collect();
    assert_eq!(ids, ["r", "p"]);
}

// ------------------------------------------------------------------ robustness

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (0u32..6).prop_map(|i| json!(i)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        "[a-zA-Z0-9 #_é]{0,12}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "image_id",
            "receipt_id",
            "line_id",
            "word_id",
            "label",
            "section_type",
            "run_id",
            "lines_delta_prefix",
            "words_delta_prefix",
            "merchant_name",
            "formatted_address",
            "phone_number",
            "validation_status",
            "reasoning",
            "line_ids",
            "confidence",
            "timestamp_added",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,8}",
    ]
}

/// Bodies of the seed's shape with arbitrary identity and change values.
fn body_strategy() -> impl Strategy<Value = String> {
    (
        prop::sample::select(
            EntityType::ALL
                .iter()
                .map(|t| t.as_str().to_string())
                .chain(["OTHER".to_string()])
                .collect::<Vec<_>>(),
        ),
        prop::sample::select(vec!["INSERT", "MODIFY", "REMOVE"]),
        prop::collection::btree_map(field_name(), json_value(), 0..8),
        prop::collection::btree_map(field_name(), (json_value(), json_value()), 0..5),
        prop::option::of("(dynamodb_stream|section_backfill)"),
        prop::option::of("2025-0[1-9]-0[1-9]T0[0-9]:00:00(Z|\\.5|x)"),
    )
        .prop_map(|(ty, ev, data, changes, source, ts)| {
            let changes: Map<String, Value> = changes
                .into_iter()
                .map(|(k, (o, nw))| (k, json!({"old": o, "new": nw})))
                .collect();
            let mut b = json!({
                "entity_type": ty, "entity_data": data, "changes": changes,
                "event_name": ev, "timestamp": ts, "stream_record_id": "e",
            });
            if let Some(s) = source {
                b["source"] = json!(s);
            }
            b.to_string()
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(batch) = parse_sqs_event(&b) {
            let _ = batch.changes();
            let _ = batch.batch_response([]);
        }
    }

    #[test]
    fn arbitrary_records_never_panic(records in prop::collection::vec(json_value(), 0..6)) {
        let batch = parse_sqs_event(&sqs_event(records)).unwrap();
        for c in batch.changes() {
            let _ = translate_message(&c.message, seq(1));
        }
    }

    /// Any body of the seed's shape: parsing and translation never panic; every change
    /// holds the ids of its copies; every operation carries the stamped seq and non-empty
    /// ids far below the engine's limit.
    #[test]
    fn arbitrary_messages_translate_safely(
        bodies in prop::collection::vec((body_strategy(), prop::option::of("(lines|words)")), 1..6),
        stamp in 1u64..1_000_000,
    ) {
        let records = bodies
            .iter()
            .enumerate()
            .flat_map(|(i, (b, q))| {
                let id = format!("m{i}");
                [sqs_record(Some(&id), Some(b), q.as_deref()),
                 sqs_record(Some(&format!("{id}-copy")), Some(b), Some("words"))]
            })
            .collect();
        let batch = parse_sqs_event(&sqs_event(records)).unwrap();
        let changes = batch.changes();
        let acked: usize = changes.iter().map(|c| c.message_ids.len()).sum();
        prop_assert_eq!(acked + batch.failures().count(), batch.records.len());
        for c in &changes {
            prop_assert!(c.message_ids.len() >= 2);
            let Ok(Translation::Apply(r)) = translate_message(&c.message, seq(stamp)) else {
                continue;
            };
            prop_assert_eq!(r.seq, seq(stamp));
            for o in &r.ops {
                prop_assert_eq!(o.op.seq, seq(stamp));
                let ids: Vec<&String> = match &o.op.op {
                    Op::Upsert(rec) => vec![&rec.id],
                    Op::Patch(Patch { target, .. }) | Op::Delete(target) => {
                        target.ids().map(|i| i.iter().collect()).unwrap_or_default()
                    }
                };
                for id in ids {
                    prop_assert!(!id.is_empty() && id.len() <= 4096, "{}", id);
                }
                if let Op::Patch(p) = &o.op.op {
                    prop_assert!(!p.set.is_empty() || !p.unset.is_empty(), "{:?}", p);
                }
            }
        }
    }
}
