//! Builders of DynamoDB stream records for tests: a record as JSON, as Lambda delivers it
//! ([`record`], with the attribute builders [`s`] and [`n`]), and typed attribute values
//! ([`attributes`]).

use serde_json::{json, Value};

/// The image every test record belongs to.
pub const IMG: &str = "3f52804b-2fad-4e00-92c8-b593da3a8ed3";

/// A DynamoDB string attribute.
pub fn s(v: &str) -> Value {
    json!({ "S": v })
}

/// A DynamoDB number attribute.
pub fn n(v: impl ToString) -> Value {
    json!({ "N": v.to_string() })
}

/// A receipts-table stream record of image [`IMG`] as Lambda delivers it: `event` is
/// INSERT / MODIFY / REMOVE, the images get the record's keys added.
pub fn record(event: &str, seq: u64, sk: &str, old: Option<Value>, new: Option<Value>) -> Value {
    let keys = json!({"PK": s(&format!("IMAGE#{IMG}")), "SK": s(sk)});
    let with_keys = |img: Value| {
        let mut o = img.as_object().cloned().unwrap_or_default();
        o.insert("PK".into(), keys["PK"].clone());
        o.insert("SK".into(), keys["SK"].clone());
        Value::Object(o)
    };
    let mut d = json!({
        "ApproximateCreationDateTime": 1_750_000_000,
        "Keys": keys,
        "SequenceNumber": seq.to_string(),
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES"
    });
    if let Some(o) = old {
        d["OldImage"] = with_keys(o);
    }
    if let Some(nw) = new {
        d["NewImage"] = with_keys(nw);
    }
    json!({
        "eventID": format!("ev{seq}"),
        "eventName": event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": d,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x"
    })
}

/// Typed attribute values (what [`strata_stream::event::parse_record`] gives) for tests
/// that build a [`strata_stream::StreamRecord`] by hand.
pub mod attributes {
    use std::collections::HashMap;

    use strata_stream::event::{AttributeValue, Item};

    /// An item of these attributes.
    pub fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        Item::from(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<HashMap<_, _>>(),
        )
    }

    /// A string attribute.
    pub fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_string())
    }

    /// A number attribute.
    pub fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }
}
