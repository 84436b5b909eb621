//! A store entirely in memory (`MemoryStorage`, the manifest in RocksDB's in-memory
//! environment): the whole lifecycle, and crashes and I/O errors at every sync point of a
//! write and of a compaction. After a crash the store reopens on what was durable: every
//! acknowledged write is there, a write whose delta never became durable is not, and
//! `verify` finds nothing wrong.

use std::sync::Arc;
use std::time::Duration;

use strata_engine::{verify_store_on, Include, ReadableStore, Reader, StoreOptions, Writer};
use strata_formats::{DeltaHeader, MetaValue, Metric, Op, Operation, Quantization, Record, Seq};
use strata_storage::memory::{Fault, SyncPoint, Trigger};
use strata_storage::{publish_inbox_delta, MemoryStorage, Storage};

fn rec(id: &str, x: f32) -> Op {
    Op::Upsert(Record {
        id: id.into(),
        embedding: Some(vec![x, 1.0]),
        document: Some(format!("doc {id}")),
        metadata: [("n".to_string(), MetaValue::Int(x as i64))]
            .into_iter()
            .collect(),
    })
}

fn opts() -> StoreOptions {
    StoreOptions {
        gc_grace: Duration::ZERO,
        retain_versions: 2,
        ..StoreOptions::default()
    }
}

fn open(disk: &MemoryStorage) -> Writer {
    Writer::open_on(Arc::new(disk.clone()), opts()).unwrap()
}

fn ids(store: &impl ReadableStore) -> Vec<String> {
    let snap = store.snapshot("c").unwrap();
    let rows = snap.get_where(None, None, 0, Include::ids()).unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

/// A store with collection `c` holding `a` in a segment and `b` in a delta.
fn seeded() -> MemoryStorage {
    let disk = MemoryStorage::new();
    let store = open(&disk);
    store
        .create_collection("c", 2, Metric::L2, Quantization::None)
        .unwrap();
    store.write("c", vec![rec("a", 1.0)]).unwrap();
    store.compact("c").unwrap();
    store.write("c", vec![rec("b", 2.0)]).unwrap();
    store.close().unwrap();
    disk
}

fn assert_clean(disk: &MemoryStorage) {
    let report = verify_store_on(disk).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

#[test]
fn a_store_lives_entirely_in_memory() {
    let disk = seeded();
    assert_eq!(disk.local_root(), None);
    let store = open(&disk);
    assert_eq!(store.epoch(), 2, "the manifest survived the reopen");
    assert!(store.path().to_string_lossy().starts_with("memory://"));
    assert_eq!(ids(&store), ["a", "b"]);
    // A producer's inbox delta, through the storage layer alone.
    let header = DeltaHeader {
        collection: "c".into(),
        dims: 2,
        producer: "lambda-1".into(),
        first_seq: Seq::from_u128(100),
        created_ms: 0,
    };
    let mut w = strata_formats::DeltaWriter::new(&header).unwrap();
    w.push(&Operation {
        seq: Seq::from_u128(100),
        op: rec("i", 3.0),
    })
    .unwrap();
    publish_inbox_delta(&disk, "lambda-1", &w.seal()).unwrap();
    let report = store.ingest_inbox().unwrap();
    assert_eq!(report.ingested.len(), 1);
    let compacted = store.compact("c").unwrap();
    assert!(compacted.segments_out >= 1, "{compacted:?}");
    let gc = store.gc().unwrap();
    assert!(gc.files_deleted > 0, "{gc:?}");
    assert_eq!(ids(&store), ["a", "b", "i"]);
    assert_clean(&disk);
    let reader = Reader::open_on(Arc::new(disk.clone()), true).unwrap();
    assert_eq!(ids(&reader), ["a", "b", "i"]);
    let busy = Writer::open_on(Arc::new(disk.clone()), opts()).unwrap_err();
    assert!(
        matches!(busy, strata_engine::Error::WriterBusy { .. }),
        "{busy}"
    );
}

/// The sync points a fresh run of `act` on the seeded store reaches.
fn sync_points_of(act: impl Fn(&Writer) -> strata_engine::Result<()>) -> Vec<SyncPoint> {
    let disk = seeded();
    let store = open(&disk);
    let before = disk.sync_points().len();
    act(&store).unwrap();
    disk.sync_points()[before..].to_vec()
}

#[test]
fn a_crash_at_any_sync_point_of_a_write_loses_nothing_acknowledged() {
    let write = |s: &Writer| s.write("c", vec![rec("x", 9.0)]).map(|_| ());
    let points = sync_points_of(write);
    assert!(points.len() >= 4, "{points:?}");
    let delta_durable = points
        .iter()
        .position(|p| *p == SyncPoint::Dir("deltas".into()))
        .expect("the delta's directory is synced");
    for (i, point) in points.iter().enumerate() {
        let disk = seeded();
        let store = open(&disk);
        disk.inject(Trigger::Sync(i as u64 + 1), Fault::Crash);
        let err = write(&store).unwrap_err();
        assert!(
            err.to_string().contains("simulated crash"),
            "{point}: {err}"
        );
        drop(store);
        let disk = disk.recover();
        let store = open(&disk);
        let mut expect = vec!["a", "b"];
        // The manifest commits after the delta is durable: from then on the write is in
        // the store though it was never acknowledged, and reopening republishes its
        // version file and HEAD.
        if i > delta_durable {
            expect.push("x");
        }
        assert_eq!(ids(&store), expect, "crash at {point}");
        store.close().unwrap();
        assert_clean(&disk);
    }
}

#[test]
fn a_crash_at_any_sync_point_of_a_compaction_loses_nothing() {
    let compact = |s: &Writer| s.compact("c").map(|_| ());
    let points = sync_points_of(compact);
    assert!(points.len() >= 3, "{points:?}");
    for (i, point) in points.iter().enumerate() {
        let disk = seeded();
        let store = open(&disk);
        disk.inject(Trigger::Sync(i as u64 + 1), Fault::Crash);
        assert!(compact(&store).is_err(), "crash at {point}");
        drop(store);
        let disk = disk.recover();
        let store = open(&disk);
        assert_eq!(ids(&store), ["a", "b"], "crash at {point}");
        store.compact("c").unwrap();
        assert_eq!(
            ids(&store),
            ["a", "b"],
            "compaction after the crash at {point}"
        );
        store.close().unwrap();
        assert_clean(&disk);
    }
}

#[test]
fn an_io_error_at_any_sync_point_of_a_write_fails_it_and_the_reopened_store_goes_on() {
    let write = |s: &Writer| s.write("c", vec![rec("x", 9.0)]).map(|_| ());
    let points = sync_points_of(write);
    for (i, point) in points.iter().enumerate() {
        let disk = seeded();
        let store = open(&disk);
        disk.inject(Trigger::Sync(i as u64 + 1), Fault::Eio);
        let err = write(&store).unwrap_err();
        assert!(err.to_string().contains("simulated EIO"), "{point}: {err}");
        // A failed fsync is final: this writer commits nothing more (tests/faults.rs); the
        // store goes on once reopened.
        assert!(matches!(
            store.write("c", vec![rec("y", 8.0)]),
            Err(strata_engine::Error::SyncFailed { .. })
        ));
        drop(store);
        let store = open(&disk);
        store.write("c", vec![rec("y", 8.0)]).unwrap();
        let got = ids(&store);
        assert!(
            got.starts_with(&["a".to_string(), "b".to_string()]),
            "{got:?}"
        );
        assert!(got.contains(&"y".to_string()), "{point}: {got:?}");
        drop(store);
        let store = open(&disk);
        assert!(ids(&store).contains(&"y".to_string()));
        store.close().unwrap();
        assert_clean(&disk);
    }
}

#[test]
fn a_full_device_fails_a_write_without_committing_it() {
    let disk = seeded();
    let store = open(&disk);
    let before = store.snapshot("c").unwrap().version().version;
    disk.set_capacity(Some(disk.used_bytes()));
    let err = store.write("c", vec![rec("x", 9.0)]).unwrap_err();
    assert!(err.to_string().contains("no space left"), "{err}");
    assert_eq!(store.snapshot("c").unwrap().version().version, before);
    disk.set_capacity(None);
    store.write("c", vec![rec("x", 9.0)]).unwrap();
    assert_eq!(ids(&store), ["a", "b", "x"]);
}
