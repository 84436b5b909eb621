//! Requests of absurd size get a typed error, fast and without an allocation proportional
//! to what they ask: a `k` of 10⁹, 10⁶ ids, a 10 MB `where`, 10⁵ nested `$or`.

use std::sync::Arc;

use strata_engine::limits::{MAX_BATCH_QUERIES, MAX_GET_IDS, MAX_K};
use strata_engine::{
    Error, Include, MemoryStorage, Query, ReadableStore, SearchOptions, StoreOptions, Writer,
};
use strata_formats::filter::MAX_FILTER_BYTES;
use strata_formats::{Filter, MetaValue, Metric, Op, Quantization, Record};

fn store() -> Writer {
    let store = Writer::open_on(Arc::new(MemoryStorage::new()), StoreOptions::default()).unwrap();
    store
        .create_collection("c", 2, Metric::L2, Quantization::None)
        .unwrap();
    let ops = (0..10)
        .map(|i| {
            Op::Upsert(Record {
                id: format!("r{i}"),
                embedding: Some(vec![i as f32, 0.0]),
                document: None,
                metadata: [("n".to_string(), MetaValue::Int(i))].into_iter().collect(),
            })
        })
        .collect();
    store.write("c", ops).unwrap();
    store
}

fn limit(e: Error) -> (&'static str, usize, usize) {
    match e {
        Error::LimitExceeded { what, got, limit } => (what, got, limit),
        other => panic!("not a limit error: {other}"),
    }
}

#[test]
fn a_k_of_a_billion_is_refused() {
    let snap = store().snapshot("c").unwrap();
    let q = Query {
        vector: &[0.0, 0.0],
        k: 1_000_000_000,
        filter: None,
        include: Include::ids(),
    };
    assert_eq!(
        limit(snap.query(&q).unwrap_err()),
        ("k", 1_000_000_000, MAX_K)
    );
    let err = snap
        .query_batch(
            &[vec![0.0, 0.0]],
            1_000_000_000,
            None,
            Include::ids(),
            &SearchOptions::default(),
        )
        .unwrap_err();
    assert_eq!(limit(err).0, "k");
    let many = vec![vec![0.0, 0.0]; MAX_BATCH_QUERIES + 1];
    let err = snap
        .query_batch(&many, 1, None, Include::ids(), &SearchOptions::default())
        .unwrap_err();
    assert_eq!(limit(err).0, "query vectors");
    // At the limit it works (and returns what there is).
    let q = Query { k: MAX_K, ..q };
    assert_eq!(snap.query(&q).unwrap().len(), 10);
}

#[test]
fn a_million_ids_are_refused() {
    let snap = store().snapshot("c").unwrap();
    let ids: Vec<String> = (0..1_000_000).map(|i| format!("r{i}")).collect();
    assert_eq!(
        limit(snap.get(&ids, Include::ids()).unwrap_err()),
        ("ids", 1_000_000, MAX_GET_IDS)
    );
    assert_eq!(
        snap.get(&ids[..MAX_GET_IDS], Include::ids()).unwrap().len(),
        10
    );
}

#[test]
fn a_ten_megabyte_where_is_refused() {
    let big = format!(r#"{{"n": {{"$in": [{}0]}}}}"#, "1,".repeat(5 << 20));
    assert!(big.len() > 10 << 20);
    let err = Filter::parse(&big).unwrap_err();
    assert!(err.to_string().contains("more than the limit"), "{err}");
    assert!(
        err.to_string().contains(&MAX_FILTER_BYTES.to_string()),
        "{err}"
    );
}

#[test]
fn a_hundred_thousand_nested_ors_are_refused() {
    let n = 100_000;
    let mut text = String::with_capacity(n * 12);
    for _ in 0..n {
        text.push_str(r#"{"$or":["#);
    }
    text.push_str(r#"{"n":1}"#);
    for _ in 0..n {
        text.push_str("]}");
    }
    let err = Filter::parse(&text).unwrap_err();
    assert!(
        err.to_string().contains("recursion limit") || err.to_string().contains("deeper"),
        "{err}"
    );
    // Within the byte limit but deeper than allowed: refused by depth.
    let n = 40;
    let mut text = String::new();
    for _ in 0..n {
        text.push_str(r#"{"$or":["#);
    }
    text.push_str(r#"{"n":1}"#);
    for _ in 0..n {
        text.push_str("]}");
    }
    let err = Filter::parse(&text).unwrap_err();
    assert!(err.to_string().contains("deeper than"), "{err}");
}
