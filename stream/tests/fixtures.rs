//! Every DynamoDB stream fixture in `tests/fixtures/dynamodb-events` (real Lambda events
//! published by other projects, vendored with their licences; see that folder's README)
//! parses, or, for the malformed one, fails with a position.
//!
//! If a fixture is missing the tests fail, they never skip.

use std::path::PathBuf;

use strata_formats::Seq;
use strata_stream::event::{
    parse_event, parse_record, AttributeValue, BatchResponse, EventError, EventName, ParsedBatch,
};
use strata_stream::ops::{translate_batch, Ignored, Translation};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dynamodb-events")
}

fn read(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {} is missing ({e}): it belongs in the repository",
            path.display()
        )
    })
}

fn event(name: &str) -> ParsedBatch {
    let batch = parse_event(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(batch.failures.is_empty(), "{name}: {:?}", batch.failures);
    batch
}

/// How each fixture is read; a new file in the folder must be added here.
const KNOWN: [&str; 9] = [
    "lambda-go__dynamodb-event-malformed.2.json",
    "lambda-go__dynamodb-event.json",
    "lambda-go__dynamodb-time-window-event.json",
    "powertools-python__dynamoStreamEvent.json",
    "powertools-python__getting_started_dynamodb_event.json",
    "powertools-python__getting_started_dynamodb_response.json",
    "powertools-python__pydantic_dynamodb_event.json",
    "rust-runtime__example-dynamodb-event-record-with-optional-fields.json",
    "rust-runtime__example-dynamodb-event.json",
];

#[test]
fn every_fixture_is_covered() {
    let entries = std::fs::read_dir(dir()).unwrap_or_else(|e| {
        panic!(
            "fixture folder {} is missing ({e}): it belongs in the repository",
            dir().display()
        )
    });
    let mut found: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    found.sort();
    assert_eq!(found, KNOWN, "fixture folder changed: cover the new files");
}

#[test]
fn plain_events_with_every_attribute_type() {
    for name in [
        "lambda-go__dynamodb-event.json",
        "rust-runtime__example-dynamodb-event.json",
    ] {
        let batch = event(name);
        assert_eq!(batch.records.len(), 2, "{name}");
        assert!(batch.window.is_none());
        let r0 = &batch.records[0];
        assert_eq!(r0.event_name, EventName::Insert);
        assert_eq!(r0.event_version.as_deref(), Some("1.1"));
        assert_eq!(
            r0.seq,
            Some("1405400000000002063282832".parse::<Seq>().unwrap())
        );
        assert_eq!(
            r0.approximate_creation.map(|t| t.timestamp()),
            Some(1_480_642_020)
        );
        let img = batch.records[1].new_image.as_ref().unwrap();
        assert_eq!(
            img.get("b2"),
            Some(&AttributeValue::B(b"\xb5\xeb\x2d".to_vec()))
        );
        assert!(matches!(img.get("List"), Some(AttributeValue::L(l)) if l.len() == 3));
        assert!(matches!(img.get("Map"), Some(AttributeValue::M(m)) if m.len() == 2));
        assert!(matches!(img.get("NumberSet"), Some(AttributeValue::Ns(n)) if n.len() == 2));
        assert!(matches!(img.get("BinarySet"), Some(AttributeValue::Bs(b)) if b.len() == 2));
        assert!(matches!(img.get("StringSet"), Some(AttributeValue::Ss(s)) if s.len() == 2));
        assert_eq!(img.get("Null"), Some(&AttributeValue::Null(true)));
        assert_eq!(img.get("Boolean"), Some(&AttributeValue::Bool(true)));
        assert!(matches!(img.get("EmptyStringSet"), Some(AttributeValue::Ss(s)) if s.is_empty()));
        assert!(batch.records[1].old_image.is_none());
    }
    // TTL delete identity (lambda-go variant)
    let batch = event("lambda-go__dynamodb-event.json");
    let who = batch.records[0].user_identity.as_ref().unwrap();
    assert!(who.is_ttl_delete());
}

#[test]
fn tumbling_window_envelope() {
    let batch = event("lambda-go__dynamodb-time-window-event.json");
    assert_eq!(batch.records.len(), 3);
    let names: Vec<EventName> = batch.records.iter().map(|r| r.event_name).collect();
    assert_eq!(
        names,
        [EventName::Insert, EventName::Modify, EventName::Remove]
    );
    assert!(batch.records[0].seq < batch.records[2].seq);
    assert_eq!(batch.records[0].event_version.as_deref(), Some("1.0"));
    assert!(batch.records[1].old_image.is_some());
    assert!(batch.records[2].new_image.is_none());
    let w = batch.window.expect("window");
    assert_eq!(w.start.as_deref(), Some("2020-07-30T17:00:00Z"));
    assert_eq!(w.end.as_deref(), Some("2020-07-30T17:05:00Z"));
    assert_eq!(w.state.get("1").map(String::as_str), Some("state1"));
    assert_eq!(w.shard_id.as_deref(), Some("shard123456789"));
    assert!(!w.is_final_invoke_for_window);
}

#[test]
fn powertools_events() {
    let batch = event("powertools-python__dynamoStreamEvent.json");
    assert_eq!(batch.records.len(), 2);
    // fractional ApproximateCreationDateTime
    assert_eq!(
        batch.records[0].approximate_creation.map(|t| t.timestamp()),
        Some(1_693_997_155)
    );
    // absent ApproximateCreationDateTime
    assert_eq!(batch.records[1].approximate_creation, None);

    let batch = event("powertools-python__getting_started_dynamodb_event.json");
    let seqs: Vec<&str> = batch
        .records
        .iter()
        .map(|r| r.sequence_number.as_deref().unwrap())
        .collect();
    assert_eq!(seqs, ["3275880929", "8640712661"]);

    let batch = event("powertools-python__pydantic_dynamodb_event.json");
    let img = batch.records[0].new_image.as_ref().unwrap();
    assert_eq!(
        img.get("Message"),
        Some(&AttributeValue::S(r#"{"item": {"laptop": "amd"}}"#.into()))
    );
}

#[test]
fn partial_batch_response_fixture() {
    let bytes = read("powertools-python__getting_started_dynamodb_response.json");
    let r = BatchResponse::from_json(&bytes).unwrap();
    assert_eq!(r, BatchResponse::failing([Some("8640712661")]));
    // It is a response, not an event.
    assert!(matches!(
        parse_event(&bytes),
        Err(EventError::NotAnEvent { .. })
    ));
}

#[test]
fn kinesis_shaped_record_without_sequence_number() {
    let bytes = read("rust-runtime__example-dynamodb-event-record-with-optional-fields.json");
    let r = parse_record(&bytes).unwrap();
    assert_eq!(r.sequence_number, None);
    assert_eq!(r.seq, None);
    assert_eq!(r.event_version, None);
    assert_eq!(r.user_identity, None);
    assert_eq!(r.approximate_creation, None);
    assert_eq!(r.event_name, EventName::Insert);
    assert!(r.new_image.is_some());
    // As one record of an event it parses too.
    let text = format!("{{\"Records\": [{}]}}", String::from_utf8(bytes).unwrap());
    assert_eq!(event_from(&text).records.len(), 1);
}

fn event_from(text: &str) -> ParsedBatch {
    parse_event(text.as_bytes()).unwrap()
}

#[test]
fn malformed_fixture_fails_with_a_position() {
    let bytes = read("lambda-go__dynamodb-event-malformed.2.json");
    match parse_event(&bytes) {
        Err(EventError::Json { at, message }) => {
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
            assert!(
                at.line >= lines - 1 && at.line <= lines,
                "{at} of {lines} lines"
            );
            assert!(message.contains("EOF"), "{message}");
            let shown = parse_event(&bytes).unwrap_err().to_string();
            assert!(shown.contains(&format!("line {}", at.line)), "{shown}");
        }
        other => panic!("expected a JSON error, got {other:?}"),
    }
}

/// The fixtures come from other tables: translation ignores them (PK is not `IMAGE#`), and
/// never fails on them.
#[test]
fn foreign_tables_translate_to_nothing() {
    for name in KNOWN {
        let Ok(batch) = parse_event(&read(name)) else {
            continue;
        };
        let t = translate_batch(&batch);
        assert!(t.failures.is_empty(), "{name}: {:?}", t.failures);
        for (_, _, tr) in &t.records {
            assert_eq!(
                tr,
                &Translation::Ignore(Ignored::NotReceiptEntity),
                "{name}"
            );
        }
        assert!(t.batch_response().batch_item_failures.is_empty());
    }
}

/// Each record of a fixture, broken in turn, is reported alone with its position.
#[test]
fn a_broken_record_in_a_real_event_is_reported_alone() {
    let text = String::from_utf8(read("lambda-go__dynamodb-time-window-event.json")).unwrap();
    let broken = text.replacen("\"SizeBytes\":59", "\"SizeBytes\":\"59\"", 1);
    assert_ne!(broken, text);
    let batch = parse_event(broken.as_bytes()).unwrap();
    assert_eq!(batch.records.len(), 2);
    assert_eq!(batch.failures.len(), 1);
    let f = &batch.failures[0];
    assert_eq!(f.index, 1);
    assert_eq!(f.event_id.as_deref(), Some("2"));
    assert_eq!(f.sequence_number.as_deref(), Some("222"));
    let line_of_field = text
        .lines()
        .position(|l| l.contains("\"SizeBytes\":59"))
        .unwrap()
        + 1;
    match &f.error {
        strata_stream::event::RecordError::Malformed { path, at, .. } => {
            assert_eq!(path, "dynamodb.SizeBytes");
            assert_eq!(at.line, line_of_field);
        }
        other => panic!("{other:?}"),
    }
    let t = translate_batch(&batch);
    assert_eq!(t.batch_response(), BatchResponse::failing([Some("222")]));
}

/// Every fixture that is an event (or a bare record) parses the same with a UTF-8
/// byte-order mark in front, as .NET tools save files.
#[test]
fn a_byte_order_mark_changes_nothing() {
    for name in KNOWN {
        if name.contains("malformed") || name.contains("response") {
            continue;
        }
        let plain = parse_event(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend(read(name));
        let marked = parse_event(&bom).unwrap_or_else(|e| panic!("{name} with a BOM: {e}"));
        assert_eq!(marked.records, plain.records, "{name}");
        assert_eq!(marked.failures.len(), plain.failures.len(), "{name}");
        assert!(!marked.records.is_empty(), "{name}");
    }
    // Positions in errors count from the JSON text, after the mark.
    let mut bad = vec![0xEF, 0xBB, 0xBF];
    bad.extend(b"{\"Records\": [}");
    match parse_event(&bad) {
        Err(EventError::Json { at, .. }) => assert_eq!((at.line, at.column), (1, 14)),
        other => panic!("{other:?}"),
    }
}

/// A file holding one bare stream record is a one-record event; each record of every
/// fixture event, saved alone, is read back the same.
#[test]
fn a_bare_record_is_a_one_record_event() {
    let bytes = read("rust-runtime__example-dynamodb-event-record-with-optional-fields.json");
    let batch = parse_event(&bytes).unwrap();
    assert_eq!(batch.records.len(), 1);
    assert_eq!(batch.records[0], parse_record(&bytes).unwrap());
    for name in KNOWN {
        if name.contains("malformed") || name.contains("response") || name.contains("optional") {
            continue;
        }
        let text = String::from_utf8(read(name)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (i, record) in value["Records"].as_array().unwrap().iter().enumerate() {
            let alone = serde_json::to_vec(record).unwrap();
            let batch = parse_event(&alone).unwrap_or_else(|e| panic!("{name} #{i}: {e}"));
            assert_eq!(batch.len(), 1, "{name} #{i}");
            let whole = parse_event(text.as_bytes()).unwrap();
            let (a, b) = (&batch.records[0], &whole.records[i]);
            assert_eq!(
                (&a.event_id, &a.sequence_number, &a.keys),
                (&b.event_id, &b.sequence_number, &b.keys),
                "{name} #{i}"
            );
        }
    }
    // An object that is neither an event nor a record is still refused, saying why.
    let err = parse_event(br#"{"hello": 1}"#).unwrap_err();
    assert!(err.to_string().contains("Records"), "{err}");
    let err = parse_event(&read(
        "powertools-python__getting_started_dynamodb_response.json",
    ))
    .unwrap_err();
    assert!(err.to_string().contains("partial-batch response"), "{err}");
}
