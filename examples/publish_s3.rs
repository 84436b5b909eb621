//! Publishing to S3 and reading from it, measured against moto's server:
//! `bash .ci/moto.sh start` (prints the endpoint), then
//! `STRATA_TEST_S3_ENDPOINT=http://127.0.0.1:5731 cargo run --release --example publish_s3 -- ROWS`.
//!
//! Builds a ROWS × 1536 store (one compacted segment), publishes it, applies one receipt's
//! edits (30 upserts and 5 deletes) and publishes again; then opens a remote reader in a
//! fresh cache and times its first query, a refresh after another edit, and, as the
//! reference, a plain download of every object under the prefix (what the seed system
//! does before its first query).

use std::sync::Arc;
use std::time::Instant;

use futures::TryStreamExt;
use object_store::ObjectStore;
use strata::formats::samples;
use strata::{
    Include, MetaValue, Metric, Op, Quantization, Query, ReadableStore, Record, StoreOptions,
    Writer,
};
use strata_engine::{ObjectStorage, PublishOptions, PublishReport, Reader, RemoteOptions};

const DIMS: usize = 1536;

fn record(i: usize, round: u64) -> Record {
    Record {
        id: format!("IMG{:05}#{:03}", i / 40, i % 40),
        embedding: Some(samples::noise(i as u64 * 7 + round, DIMS)),
        document: Some(format!("line {i} of receipt {}", i / 40)),
        metadata: [
            ("receipt_id".to_string(), MetaValue::Int((i / 40) as i64)),
            ("label".to_string(), MetaValue::Str("ITEM".into())),
        ]
        .into_iter()
        .collect(),
    }
}

fn receipt_edit(store: &Writer, receipt: usize, round: u64) {
    let mut ops: Vec<Op> = (receipt * 40..receipt * 40 + 30)
        .map(|i| Op::Upsert(record(i, round)))
        .collect();
    ops.extend(
        (receipt * 40 + 30..receipt * 40 + 35)
            .map(|i| Op::Delete(strata::Target::Id(record(i, 0).id))),
    );
    store.write("lines", ops).unwrap();
}

fn line(what: &str, seconds: f64, r: Option<&PublishReport>) {
    match r {
        Some(r) => println!(
            "{what:<44} {seconds:>8.3} s  {:>5} files  {:>12} bytes  {:>5} requests",
            r.files_uploaded, r.bytes_uploaded, r.requests
        ),
        None => println!("{what:<44} {seconds:>8.3} s"),
    }
}

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .map_or(70_000, |a| a.parse().expect("ROWS is a number"));
    let endpoint = std::env::var("STRATA_TEST_S3_ENDPOINT")
        .expect("STRATA_TEST_S3_ENDPOINT: start moto with `bash .ci/moto.sh start`");
    let bucket = format!("publish-bench-{}", std::process::id());
    strata_testkit::s3::create_bucket(&endpoint, &bucket);
    let url = format!("s3://{bucket}/receipts");
    let remote = Arc::new(
        ObjectStorage::new(
            Arc::new(strata_testkit::s3::client(&endpoint, &bucket)),
            "receipts",
            &url,
            true,
        )
        .unwrap(),
    );

    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let store = Writer::open(dir.path(), StoreOptions::default()).unwrap();
    store
        .create_collection("lines", DIMS as u32, Metric::Cosine, Quantization::None)
        .unwrap();
    for start in (0..rows).step_by(5000) {
        let ops = (start..(start + 5000).min(rows))
            .map(|i| Op::Upsert(record(i, 0)))
            .collect();
        store.write("lines", ops).unwrap();
    }
    store.compact("lines").unwrap();
    println!(
        "{rows} × {DIMS} store built in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let options = PublishOptions::default();
    let t = Instant::now();
    let first = store.publish_to(&remote, &options).unwrap();
    line(
        "first publish (whole store)",
        t.elapsed().as_secs_f64(),
        Some(&first),
    );
    receipt_edit(&store, 3, 1);
    let t = Instant::now();
    let edit = store.publish_to(&remote, &options).unwrap();
    line(
        "publish after one receipt's edits",
        t.elapsed().as_secs_f64(),
        Some(&edit),
    );
    println!(
        "bytes per edit publish / whole store: {:.6}",
        edit.bytes_uploaded as f64 / first.bytes_uploaded as f64
    );

    let q = samples::noise(99, DIMS);
    let query = Query {
        vector: &q,
        k: 10,
        filter: None,
        include: Include::ids(),
    };
    let cache = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let reader =
        Reader::open_remote_on(remote.clone(), cache.path(), RemoteOptions::default()).unwrap();
    let hits = reader.snapshot("lines").unwrap().query(&query).unwrap();
    let cold = t.elapsed().as_secs_f64();
    line("remote reader: cold open → first query", cold, None);
    assert_eq!(
        hits,
        store.snapshot("lines").unwrap().query(&query).unwrap()
    );
    let t = Instant::now();
    reader.snapshot("lines").unwrap().query(&query).unwrap();
    line("remote reader: warm query", t.elapsed().as_secs_f64(), None);
    receipt_edit(&store, 5, 2);
    store.publish_to(&remote, &options).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let t = Instant::now();
    reader.snapshot("lines").unwrap().query(&query).unwrap();
    line(
        "remote reader: refresh after an edit + query",
        t.elapsed().as_secs_f64(),
        None,
    );

    // The reference: download every object under the prefix.
    let s3 = strata_testkit::s3::client(&endpoint, &bucket);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    let bytes: u64 = rt.block_on(async {
        let prefix = object_store::path::Path::from("receipts");
        let metas: Vec<_> = s3.list(Some(&prefix)).try_collect().await.unwrap();
        let mut n = 0;
        for m in metas {
            n += s3
                .get(&m.location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len() as u64;
        }
        n
    });
    let full = t.elapsed().as_secs_f64();
    line(
        &format!("reference: download all {bytes} bytes"),
        full,
        None,
    );
    println!(
        "cold open → first query / full download: {:.2}",
        cold / full
    );
}
