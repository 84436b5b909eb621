//! The seed's `StreamMessage` (`strata_stream::seed`'s message part): routing of stream
//! records to messages as the seed does it, the exact body fields, and bodies that round
//! trip or fail cleanly.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};
use strata_stream::entity::{EntityType, FieldChange};
use strata_stream::event::{AttributeValue, EventName, Item, StreamRecord};
use strata_stream::seed::*;
use strata_testkit::records::attributes::{item, n, s};

const PK: &str = "IMAGE#3f52804b-2fad-4e00-92c8-b593da3a8ed3";

fn record(event: EventName, sk: &str, old: Option<Item>, new: Option<Item>) -> StreamRecord {
    StreamRecord {
        index: 0,
        event_id: "ev-1".into(),
        event_name: event,
        sequence_number: Some("100".into()),
        seq: Some(100u64.into()),
        approximate_creation: None,
        aws_region: "us-east-1".into(),
        event_source_arn: None,
        event_version: Some("1.1".into()),
        user_identity: None,
        keys: item(&[("PK", s(PK)), ("SK", s(sk))]),
        new_image: new,
        old_image: old,
        size_bytes: 1,
        stream_view_type: Some("NEW_AND_OLD_IMAGES".into()),
    }
}

fn place(name: &str) -> Item {
    item(&[("merchant_name", s(name)), ("place_id", s("p1"))])
}

// Seed §8.1 "a COMPACTION_RUN INSERT yields 2 messages (LINES then WORDS) with the right
// delta_s3_prefix; a COMPACTION_RUN MODIFY yields nothing".
#[test]
fn compaction_run_insert_yields_one_message_per_collection() {
    let new = item(&[
        ("run_id", s("r1")),
        ("lines_delta_prefix", s("lines/delta/r1/")),
        ("words_delta_prefix", s("words/delta/r1/")),
    ]);
    let sk = "RECEIPT#00003#COMPACTION_RUN#r1";
    let msgs =
        build_messages(&record(EventName::Insert, sk, None, Some(new.clone())), "t").unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].collections, vec![Queue::Lines]);
    assert_eq!(
        msgs[0].entity_data["delta_s3_prefix"],
        json!("lines/delta/r1/")
    );
    assert_eq!(msgs[1].collections, vec![Queue::Words]);
    assert_eq!(
        msgs[1].entity_data["delta_s3_prefix"],
        json!("words/delta/r1/")
    );
    assert_eq!(msgs[1].entity_data["receipt_id"], json!(3));
    let modify = record(EventName::Modify, sk, Some(new.clone()), Some(new));
    assert!(build_messages(&modify, "t").unwrap().is_empty());
}

// Seed §8.1 "place MODIFY yields one message with merchant_name in its changes and
// targets (lines, words, receipt_summary); label REMOVE targets (words, lines,
// receipt_summary); no relevant change yields none".
#[test]
fn routing_follows_the_seed() {
    let sk = "RECEIPT#00001#PLACE";
    let m = build_messages(
        &record(EventName::Modify, sk, Some(place("A")), Some(place("B"))),
        "2025-01-01T00:00:00Z",
    )
    .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].collections,
        vec![Queue::Lines, Queue::Words, Queue::ReceiptSummary]
    );
    assert_eq!(m[0].changes["merchant_name"].new, json!("B"));
    assert_eq!(m[0].context.record_id.as_deref(), Some("ev-1"));
    assert!(build_messages(
        &record(EventName::Modify, sk, Some(place("A")), Some(place("A"))),
        "t"
    )
    .unwrap()
    .is_empty());
    // place INSERT is ignored by the seed's routing
    assert!(
        build_messages(&record(EventName::Insert, sk, None, Some(place("A"))), "t")
            .unwrap()
            .is_empty()
    );

    let lsk = "RECEIPT#00001#LINE#00002#WORD#00003#LABEL#TOTAL";
    let lab = item(&[("validation_status", s("VALID")), ("reasoning", s("r"))]);
    let m = build_messages(
        &record(EventName::Remove, lsk, Some(lab.clone()), None),
        "t",
    )
    .unwrap();
    assert_eq!(
        m[0].collections,
        vec![Queue::Words, Queue::Lines, Queue::ReceiptSummary]
    );
    assert_eq!(m[0].entity_data["label"], json!("TOTAL"));
    assert_eq!(m[0].entity_data["word_id"], json!(3));
    assert_eq!(m[0].record_snapshot, None);
    // label INSERT: ignored by the seed's routing (storage ops fix this, see ops)
    assert!(
        build_messages(&record(EventName::Insert, lsk, None, Some(lab)), "t")
            .unwrap()
            .is_empty()
    );

    // REMOVE of entities without relevant fields always produces a message
    let m = build_messages(
        &record(
            EventName::Remove,
            "RECEIPT#00001#LINE#00002#WORD#00003",
            Some(item(&[])),
            None,
        ),
        "t",
    )
    .unwrap();
    assert_eq!(m[0].collections, vec![Queue::Words]);
    assert!(m[0].changes.is_empty());
    // ... even with no image at all (identity from the keys)
    let m = build_messages(&record(EventName::Remove, "RECEIPT#00001", None, None), "t").unwrap();
    assert_eq!(m[0].collections, vec![Queue::Lines, Queue::Words]);
    // non-IMAGE PK and unknown SK: nothing
    let mut other = record(EventName::Remove, "LOCK", None, None);
    other.keys = item(&[("PK", s("LOCK#lines#x")), ("SK", s("LOCK"))]);
    assert!(build_messages(&other, "t").unwrap().is_empty());
}

// Seed §8.1 "Sections: MODIFY, REMOVE (with no diff) and INSERT produce messages; an
// ITEMS section also targets line_items"; "Summary: routes only to line_items".
#[test]
fn sections_and_summaries() {
    let sec = item(&[
        ("line_ids", AttributeValue::L(vec![n("1")])),
        ("confidence", n("0.5")),
    ]);
    let m = build_messages(
        &record(
            EventName::Insert,
            "RECEIPT#00001#SECTION#ITEMS",
            None,
            Some(sec.clone()),
        ),
        "t",
    )
    .unwrap();
    assert_eq!(m[0].collections, vec![Queue::Lines, Queue::LineItems]);
    assert_eq!(m[0].entity_data["section_type"], json!("ITEMS"));
    let m = build_messages(
        &record(
            EventName::Remove,
            "RECEIPT#00001#SECTION#FOOTER",
            Some(sec),
            None,
        ),
        "t",
    )
    .unwrap();
    assert_eq!(m[0].collections, vec![Queue::Lines]);
    let sum = item(&[("timestamp_computed", s("2025"))]);
    let m = build_messages(
        &record(EventName::Insert, "RECEIPT#00001#SUMMARY", None, Some(sum)),
        "t",
    )
    .unwrap();
    assert_eq!(m[0].collections, vec![Queue::LineItems]);
    // JSON-serializable
    assert!(StreamMessage::from_body(m[0].to_body().as_bytes()).is_ok());
}

#[test]
fn unparseable_image_is_an_error() {
    let bad = item(&[("merchant_name", AttributeValue::Bool(true))]);
    let err = build_messages(
        &record(
            EventName::Modify,
            "RECEIPT#00001#PLACE",
            Some(place("A")),
            Some(bad),
        ),
        "t",
    )
    .unwrap_err();
    assert!(err.to_string().contains("merchant_name"), "{err}");
}

// Seed §8.1 "Publishing: body fields; empty changes; null context fields; attributes
// source/entity_type/event_name/collection".
#[test]
fn body_has_exactly_the_seed_fields() {
    let m = StreamMessage {
        entity_type: "RECEIPT_PLACE".into(),
        entity_data: json!({"entity_type": "RECEIPT_PLACE", "image_id": "i", "receipt_id": 1})
            .as_object()
            .unwrap()
            .clone(),
        changes: BTreeMap::new(),
        event_name: EventName::Modify,
        collections: vec![Queue::Lines, Queue::Words],
        context: MessageContext {
            source: "dynamodb_stream".into(),
            timestamp: None,
            record_id: None,
            aws_region: None,
        },
        record_snapshot: Some(json!({"x": 1})),
    };
    let body: Value = serde_json::from_str(&m.to_body()).unwrap();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "aws_region",
            "changes",
            "entity_data",
            "entity_type",
            "event_name",
            "source",
            "stream_record_id",
            "timestamp"
        ]
    );
    assert_eq!(body["changes"], json!({}));
    assert_eq!(body["timestamp"], Value::Null);
    let back = StreamMessage::from_body(m.to_body().as_bytes()).unwrap();
    assert_eq!(back.collections, Vec::<Queue>::new());
    assert_eq!(back.record_snapshot, None);
    assert_eq!(back.entity_data, m.entity_data);
    let attrs = m.sqs_attributes(Queue::Words);
    assert_eq!(attrs[3], ("collection", "words".to_string()));
    assert_eq!(attrs[2], ("event_name", "MODIFY".to_string()));
}

#[test]
fn seed_body_parses() {
    // A body as the Python publisher writes it (json.dumps separators).
    let body = br#"{"source": "dynamodb_stream", "entity_type": "RECEIPT_WORD_LABEL", "entity_data": {"entity_type": "RECEIPT_WORD_LABEL", "image_id": "i", "receipt_id": 1, "line_id": 2, "word_id": 3, "label": "TOTAL"}, "changes": {"validation_status": {"old": "PENDING", "new": "VALID"}}, "event_name": "MODIFY", "timestamp": "2025-08-01T00:00:00+00:00", "stream_record_id": "abc", "aws_region": "us-east-1"}"#;
    let m = StreamMessage::from_sqs(body, Some("words"), "sqs-msg-1").unwrap();
    assert_eq!(m.entity_type(), Some(EntityType::ReceiptWordLabel));
    assert_eq!(m.collections, vec![Queue::Words]);
    assert_eq!(m.context.record_id.as_deref(), Some("sqs-msg-1"));
    assert_eq!(m.changes["validation_status"].new, json!("VALID"));
    assert!(matches!(
        StreamMessage::from_body(br#"{"entity_type":"X","event_name":"UPSERT"}"#),
        Err(MessageError::EventName(_))
    ));
    assert!(matches!(
        StreamMessage::from_body(br#"["X", {}, {}, "INSERT"]"#),
        Err(MessageError::Body { .. })
    ));
    assert!(matches!(
        StreamMessage::from_body(b"{\"entity_type\": 1"),
        Err(MessageError::Body { line: 1, .. })
    ));
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
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

fn message() -> impl Strategy<Value = StreamMessage> {
    (
        "[A-Z_]{1,20}",
        prop::collection::btree_map("[a-z_]{1,10}", json_value(), 0..5),
        prop::collection::btree_map("[a-z_]{1,10}", (json_value(), json_value()), 0..4),
        prop_oneof![
            Just(EventName::Insert),
            Just(EventName::Modify),
            Just(EventName::Remove)
        ],
        "[a-z_]{1,16}",
        prop::option::of("[0-9T:.+-]{0,32}"),
        prop::option::of("[a-f0-9-]{0,36}"),
        prop::option::of("[a-z0-9-]{0,16}"),
    )
        .prop_map(
            |(t, data, changes, ev, source, ts, id, region)| StreamMessage {
                entity_type: t,
                entity_data: data.into_iter().collect(),
                changes: changes
                    .into_iter()
                    .map(|(k, (old, new))| (k, FieldChange { old, new }))
                    .collect(),
                event_name: ev,
                collections: Vec::new(),
                context: MessageContext {
                    source,
                    timestamp: ts,
                    record_id: id,
                    aws_region: region,
                },
                record_snapshot: None,
            },
        )
}

proptest! {
    #[test]
    fn body_round_trips(m in message()) {
        let body = m.to_body();
        let back = StreamMessage::from_body(body.as_bytes()).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.to_body(), body);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        let _ = StreamMessage::from_body(v.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = StreamMessage::from_body(&b);
    }
}
