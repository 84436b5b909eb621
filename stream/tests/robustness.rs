//! Untrusted input never panics: arbitrary bytes, arbitrary JSON, deep nesting and random
//! DynamoDB records go through parsing, translation and message building.

use proptest::prelude::*;
use serde_json::{json, Value};
use strata_stream::event::{parse_event, parse_record, EventError};
use strata_stream::ops::{translate, translate_batch, Translation};
use strata_stream::seed::build_messages;

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[ -~]{0,16}".prop_map(Value::String),
        prop_oneof![
            Just("INSERT"),
            Just("MODIFY"),
            Just("REMOVE"),
            Just("S"),
            Just("N"),
            Just("L")
        ]
        .prop_map(|s| Value::String(s.into())),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-zA-Z]{1,6}",
                    Just("Records".to_string()),
                    Just("dynamodb".to_string()),
                    Just("Keys".to_string()),
                    Just("NewImage".to_string()),
                    Just("SequenceNumber".to_string()),
                    Just("S".to_string()),
                    Just("M".to_string()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn attr() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        "[ -~]{0,12}".prop_map(|s| json!({ "S": s })),
        prop_oneof![
            Just("1"),
            Just("00042"),
            Just("0.5"),
            Just("-3"),
            Just("x"),
            Just("1e999")
        ]
        .prop_map(|n| json!({ "N": n })),
        Just(json!({"NULL": true})),
        any::<bool>().prop_map(|b| json!({ "BOOL": b })),
        Just(json!({"B": "AAEqQQ=="})),
        Just(json!({"NS": ["1", "2"]})),
        Just(json!({"SS": []})),
    ];
    scalar.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|l| json!({ "L": l })),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..3).prop_map(|m| json!({ "M": m })),
        ]
    })
}

fn sort_key() -> impl Strategy<Value = String> {
    let id = prop_oneof![Just("00001"), Just("00000"), Just("7"), Just("x"), Just("")];
    (
        id.clone(),
        id.clone(),
        id,
        prop_oneof![
            Just(""),
            Just("#PLACE"),
            Just("#SUMMARY"),
            Just("#SECTION#ITEMS"),
            Just("#SECTION#"),
            Just("#COMPACTION_RUN#r1"),
            Just("#COMPACTION_RUN#"),
        ],
        0..4usize,
        prop_oneof![Just("TOTAL"), Just(""), Just("PLACE")],
    )
        .prop_map(|(r, l, w, tail, shape, label)| match shape {
            0 => format!("RECEIPT#{r}{tail}"),
            1 => format!("RECEIPT#{r}#LINE#{l}"),
            2 => format!("RECEIPT#{r}#LINE#{l}#WORD#{w}"),
            _ => format!("RECEIPT#{r}#LINE#{l}#WORD#{w}#LABEL#{label}"),
        })
}

fn image() -> impl Strategy<Value = Option<Value>> {
    let fields = prop_oneof![
        Just("merchant_name"),
        Just("place_id"),
        Just("line_ids"),
        Just("confidence"),
        Just("validation_status"),
        Just("run_id"),
        Just("receipt_id"),
        Just("lines_delta_prefix"),
        Just("words_delta_prefix"),
        Just("timestamp_added"),
        Just("label_proposed_by"),
    ];
    prop::option::of(
        prop::collection::btree_map(fields.prop_map(str::to_string), attr(), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    )
}

fn record() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("INSERT"), Just("MODIFY"), Just("REMOVE")],
        prop_oneof![Just("IMAGE#abc"), Just("IMAGE#"), Just("LOCK#x")],
        sort_key(),
        image(),
        image(),
        prop::option::of("[0-9]{1,45}"),
    )
        .prop_map(|(ev, pk, sk, old, new, seq)| {
            let mut d = json!({"Keys": {"PK": {"S": pk}, "SK": {"S": sk}}, "SizeBytes": 1});
            if let Some(o) = old {
                d["OldImage"] = o;
            }
            if let Some(n) = new {
                d["NewImage"] = n;
            }
            if let Some(s) = seq {
                d["SequenceNumber"] = json!(s);
            }
            json!({"eventID": "e", "eventName": ev, "awsRegion": "r", "dynamodb": d})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_event(&b);
        let _ = parse_record(&b);
    }

    #[test]
    fn arbitrary_json_never_panics(v in any_json()) {
        let text = v.to_string();
        if let Ok(batch) = parse_event(text.as_bytes()) {
            // A top-level object without `Records` but with a record's keys is a bare
            // record, parsed as a one-record batch.
            let bare = v.get("dynamodb").is_some() || v.get("eventName").is_some();
            let n = v["Records"]
                .as_array()
                .map_or(usize::from(bare), Vec::len);
            prop_assert_eq!(batch.len(), n);
            let t = translate_batch(&batch);
            prop_assert_eq!(t.records.len() + t.failures.len(), n);
        }
        let wrapped = json!({"Records": [v]}).to_string();
        let batch = parse_event(wrapped.as_bytes()).unwrap();
        prop_assert_eq!(batch.len(), 1);
    }

    #[test]
    fn random_receipt_records_never_panic(recs in prop::collection::vec(record(), 1..6)) {
        let text = json!({ "Records": recs }).to_string();
        let batch = parse_event(text.as_bytes()).unwrap();
        prop_assert_eq!(batch.len(), recs.len());
        for r in &batch.records {
            let _ = build_messages(r, "2025-01-01T00:00:00+00:00");
            if let Ok(Translation::Apply(ops)) = translate(r) {
                prop_assert_eq!(Some(ops.seq), r.seq);
                for op in &ops.ops {
                    prop_assert_eq!(op.op.seq, ops.seq);
                }
            }
        }
        let t = translate_batch(&batch);
        prop_assert_eq!(t.records.len() + t.failures.len(), recs.len());
        prop_assert!(t.batch_response().batch_item_failures.len() <= t.failures.len());
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_event(deep.as_bytes()).is_err());
    let deep_records = format!(
        r#"{{"Records":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    match parse_event(deep_records.as_bytes()) {
        Ok(b) => assert!(b.records.is_empty()),
        Err(EventError::Json { .. } | EventError::NotAnEvent { .. }) => {}
        Err(other) => panic!("{other:?}"),
    }
    let attr = format!(
        "{}{{\"S\":\"x\"}}{}",
        "{\"L\":[".repeat(5_000),
        "]}".repeat(5_000)
    );
    let rec = format!(
        r#"{{"Records":[{{"eventID":"e","eventName":"INSERT","awsRegion":"r","dynamodb":{{"SizeBytes":1,"NewImage":{{"a":{attr}}}}}}}]}}"#
    );
    // The envelope keeps the record as raw text, so the recursion limit hits the record.
    match parse_event(rec.as_bytes()) {
        Ok(b) => assert_eq!(b.failures.len(), 1),
        Err(EventError::Json { .. }) => {}
        Err(other) => panic!("{other:?}"),
    }
}
