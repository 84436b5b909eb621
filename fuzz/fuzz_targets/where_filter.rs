//! Filter::parse on arbitrary UTF-8: never a panic; a filter that parses has a canonical
//! JSON form that parses back to an equal filter, can be stored in a delta file
//! (Target::Where) and read back, and evaluates on a few fixed metadata maps.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata_formats::value::{metadata_from_json, Metadata};
use strata_formats::{decode_delta, DeltaHeader, DeltaWriter, Filter, Operation, Seq, Target};

fn maps() -> &'static [Metadata] {
    static MAPS: OnceLock<Vec<Metadata>> = OnceLock::new();
    MAPS.get_or_init(|| {
        [
            "{}",
            r#"{"image_id": "a1b2", "receipt_id": 2, "confidence": 0.97, "valid": true}"#,
            r#"{"a": -1, "b": 2.5, "s": "TOTAL 12.99", "l": ["A", "B"], "n": [1, 2, 3]}"#,
            r#"{"x": 9223372036854775807, "y": -9223372036854775808, "f": [0.5, -0.0], "t": [true]}"#,
            r#"{"": "", "$and": 1, "label": "GRAND_TOTAL", "merchant_name": "Sprouts"}"#,
        ]
        .iter()
        .map(|text| {
            let v: serde_json::Value = serde_json::from_str(text).expect("valid json");
            metadata_from_json(v.as_object().expect("object")).expect("valid metadata").0
        })
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(filter) = Filter::parse(text) else {
        return;
    };
    let canonical = filter.to_json().to_string();
    match Filter::parse(&canonical) {
        Ok(again) => assert_eq!(
            again, filter,
            "canonical form {canonical} parses differently"
        ),
        Err(e) => panic!("canonical form {canonical} of an accepted filter does not parse: {e}"),
    }
    assert_eq!(filter.to_string(), canonical);
    for meta in maps() {
        let _ = filter.matches(meta);
    }
    let _ = filter.required_equalities();

    // What a writer does with it: store it in a delta, then read it back.
    let mut w = DeltaWriter::new(&DeltaHeader {
        collection: "c".into(),
        dims: 0,
        producer: "fuzz".into(),
        first_seq: Seq::from(1u64),
        created_ms: 0,
    })
    .expect("small header");
    w.push(&Operation::delete(1u64, Target::Where(filter.clone())))
        .expect("a filter record fits");
    let bytes = w.seal();
    match decode_delta(&bytes) {
        Ok(d) => assert_eq!(
            d.ops[0].op,
            strata_formats::Op::Delete(Target::Where(filter))
        ),
        Err(e) => panic!("a delta holding an accepted filter does not decode: {e}"),
    }
});
