//! Store lifecycle: writers and fencing, rollback, pins, retention, GC, corruption, readers
//! and the inbox. Each test fails if the feature it covers did nothing.

use std::sync::Arc;
use std::time::Duration;

use strata_engine::{
    verify_store, Error, Field, Include, MemoryStorage, Query, ReadableStore, Reader, Storage,
    StoreOptions, Writer,
};
use strata_formats::{
    DeltaHeader, Filter, MetaValue, Metric, Op, Operation, Quantization, Record, Seq, Target,
};

fn rec(id: &str, v: [f32; 2], n: i64) -> Op {
    Op::Upsert(Record {
        id: id.into(),
        embedding: Some(v.to_vec()),
        document: Some(format!("doc {id}")),
        metadata: [("n".to_string(), MetaValue::Int(n))].into_iter().collect(),
    })
}

fn opts() -> StoreOptions {
    StoreOptions {
        gc_grace: Duration::ZERO,
        retain_versions: 2,
        ..StoreOptions::default()
    }
}

/// A writer on `dir` with an empty 2-d l2 collection `c`.
fn writer_with_c(dir: &std::path::Path) -> Writer {
    let store = Writer::open(dir, opts()).unwrap();
    store
        .create_collection("c", 2, Metric::L2, Quantization::None)
        .unwrap();
    store
}

fn ids(store: &impl ReadableStore, c: &str) -> Vec<String> {
    store
        .snapshot(c)
        .unwrap()
        .get_where(None, None, 0, Include::ids())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

#[test]
fn second_writer_fails_fast_naming_the_holder_then_proceeds() {
    let dir = tempfile::tempdir().unwrap();
    let first = Writer::open(
        dir.path(),
        StoreOptions {
            holder: "compactor-A".into(),
            ..opts()
        },
    )
    .unwrap();
    let err = Writer::open(dir.path(), opts()).unwrap_err();
    match &err {
        Error::WriterBusy { holder, since, .. } => {
            assert_eq!(holder, "compactor-A");
            assert!(since.ends_with('Z'), "{since}");
        }
        other => panic!("expected WriterBusy, got {other}"),
    }
    assert!(err.to_string().contains("compactor-A"));
    first.close().unwrap();
    let second = Writer::open(dir.path(), opts()).unwrap();
    assert_eq!(second.epoch(), 2);
}

#[test]
fn a_manifest_that_cannot_open_is_a_typed_rocksdb_error_not_a_busy_writer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("manifest"), b"not a directory").unwrap();
    let err = Writer::open(dir.path(), opts()).unwrap_err();
    assert!(
        matches!(&err, Error::Manifest { op: "open", .. }),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("manifest open: "), "{err}");
}

#[test]
fn rollback_and_roll_forward() {
    let dir = tempfile::tempdir().unwrap();
    let store = writer_with_c(dir.path());
    let v1 = store
        .write("c", vec![rec("a", [0.0, 0.0], 1)])
        .unwrap()
        .version;
    store.compact("c").unwrap();
    let v3 = store
        .write(
            "c",
            vec![rec("b", [1.0, 0.0], 2), Op::Delete(Target::Id("a".into()))],
        )
        .unwrap()
        .version;
    assert_eq!(ids(&store, "c"), vec!["b"]);
    let back = store.rollback("c", v1).unwrap();
    assert!(back.head && back.note.contains(&v1.to_string()));
    assert_eq!(ids(&store, "c"), vec!["a"]);
    store.rollback("c", v3).unwrap();
    assert_eq!(ids(&store, "c"), vec!["b"]);
    assert!(matches!(
        store.rollback("c", 999),
        Err(Error::NoSuchVersion { version: 999, .. })
    ));
    let history: Vec<u64> = store
        .versions("c")
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert!(history.len() >= 6, "history kept: {history:?}");
}

#[test]
fn retention_gc_and_pins() {
    let dir = tempfile::tempdir().unwrap();
    let store = writer_with_c(dir.path());
    let v_first = store
        .write("c", vec![rec("a", [0.0, 0.0], 1)])
        .unwrap()
        .version;
    store.pin("c", v_first).unwrap();
    for i in 0..5 {
        store
            .write("c", vec![rec(&format!("x{i}"), [i as f32, 0.0], i)])
            .unwrap();
    }
    store.compact("c").unwrap();
    let before = store.versions("c").unwrap().len();
    let report = store.gc().unwrap();
    let after = store.versions("c").unwrap();
    assert!(report.versions_dropped > 0 && after.len() < before);
    // Retained: newest 2, the head, and the pinned version.
    assert!(after.iter().any(|v| v.version == v_first && v.pinned));
    assert!(after.len() <= 3, "{after:?}");
    // The pinned version's delta survives GC and its snapshot still reads.
    assert_eq!(
        store
            .snapshot_at("c", v_first)
            .unwrap()
            .count(None)
            .unwrap(),
        1
    );
    // Deltas folded by the compaction and referenced by no retained version are gone.
    assert!(
        report.files_deleted > 0 && report.bytes_freed > 0,
        "{report:?}"
    );
    store.unpin("c", v_first).unwrap();
    let report = store.gc().unwrap();
    assert!(report.versions_dropped >= 1);
    assert!(store.snapshot_at("c", v_first).is_err());
    assert_eq!(ids(&store, "c").len(), 6);
    assert!(verify_store(dir.path()).unwrap().ok());
}

#[test]
fn gc_spares_young_files_and_live_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let store = Writer::open(
        dir.path(),
        StoreOptions {
            retain_versions: 1,
            ..opts()
        },
    )
    .unwrap();
    store
        .create_collection("c", 2, Metric::L2, Quantization::None)
        .unwrap();
    store.write("c", vec![rec("a", [0.0, 0.0], 1)]).unwrap();
    let old = store.snapshot("c").unwrap();
    store.compact("c").unwrap();
    store.write("c", vec![rec("b", [0.0, 1.0], 1)]).unwrap();
    store.compact("c").unwrap();
    store.gc().unwrap();
    // The old snapshot's delta must still be readable: GC kept it.
    assert_eq!(old.count(None).unwrap(), 1);
    drop(old);
    let report = store.gc().unwrap();
    assert!(report.files_deleted > 0);
}

#[test]
fn corruption_is_reported_and_never_read_as_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Writer::open(dir.path(), opts()).unwrap();
        store
            .create_collection("c", 2, Metric::L2, Quantization::None)
            .unwrap();
        store
            .write(
                "c",
                (0..50)
                    .map(|i| rec(&format!("r{i}"), [i as f32, 1.0], i))
                    .collect(),
            )
            .unwrap();
        store.compact("c").unwrap();
        store.close().unwrap();
    }
    assert!(verify_store(dir.path()).unwrap().ok());
    let seg = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[200] ^= 0x10; // inside the vectors block
    std::fs::write(&seg, &bytes).unwrap();
    let report = verify_store(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].path, seg);
    assert!(
        report.problems[0].what.contains("vectors block"),
        "{:?}",
        report.problems
    );
    let store = Writer::open(dir.path(), opts()).unwrap();
    let err = store.snapshot("c").unwrap_err();
    assert!(
        err.to_string()
            .contains("checksum mismatch in vectors block"),
        "{err}"
    );
    drop(store);
    let reader = Reader::open(dir.path()).unwrap();
    assert!(
        reader.snapshot("c").is_err(),
        "a reader verifies by default"
    );
    // A reader that defers verification maps the segment; only the damaged block is wrong,
    // and metadata reads still work. `verify` keeps finding the damage.
    let fast = Reader::open_with(dir.path(), false).unwrap();
    let snap = fast.snapshot("c").unwrap();
    assert_eq!(snap.count(None).unwrap(), 50);
    assert_eq!(
        snap.get(&["r7".to_string()], Include::default())
            .unwrap()
            .len(),
        1
    );
    assert!(!verify_store(dir.path()).unwrap().ok());
}

#[test]
fn reader_sees_committed_versions_and_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Writer::open(dir.path(), opts()).unwrap();
    store
        .create_collection("c", 2, Metric::Cosine, Quantization::None)
        .unwrap();
    store
        .write("c", vec![rec("a", [1.0, 0.0], 1), rec("b", [0.0, 1.0], 2)])
        .unwrap();
    let listing = |d: &std::path::Path| {
        let mut v: Vec<_> = walk(d);
        v.sort();
        v
    };
    let before = listing(dir.path());
    let reader = Reader::open(dir.path()).unwrap();
    let snap = reader.snapshot("c").unwrap();
    let hits = snap
        .query(&Query {
            vector: &[1.0, 0.1],
            k: 1,
            filter: None,
            include: Include::default(),
        })
        .unwrap();
    assert_eq!(hits[0].id, "a");
    // A reader has no method that writes: `reader.write(…)` does not compile (the
    // `compile_fail` example on `Reader` checks it).
    assert_eq!(listing(dir.path()), before, "the reader changed the store");
    // The reader follows HEAD as the writer commits.
    store
        .write("c", vec![Op::Delete(Target::Id("a".into()))])
        .unwrap();
    assert_eq!(reader.snapshot("c").unwrap().count(None).unwrap(), 1);
}

#[test]
fn a_reader_reads_pins_from_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let store = writer_with_c(dir.path());
    store.write("c", vec![rec("a", [1.0, 0.0], 1)]).unwrap();
    let head = store.head("c").unwrap();
    store.pin("c", head).unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.head("c").unwrap(), head);
    // Version files record no pins; the manifest, opened read-only, does.
    assert!(reader.versions("c").unwrap().iter().all(|v| !v.pinned));
    let manifest_files = || {
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("manifest"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = manifest_files();
    assert_eq!(
        reader.pins("c").unwrap().into_iter().collect::<Vec<_>>(),
        [head]
    );
    // Reading the manifest adds nothing to the store (RocksDB's info log goes elsewhere).
    assert_eq!(manifest_files(), before);
    store.close().unwrap();
    assert_eq!(
        reader.pins("c").unwrap().into_iter().collect::<Vec<_>>(),
        [head]
    );
}

/// The header of a producer's delta for collection `c` (2-d) starting at seq 10.
fn inbox_header() -> DeltaHeader {
    DeltaHeader {
        collection: "c".into(),
        dims: 2,
        producer: "lambda-1".into(),
        first_seq: Seq::from(10),
        created_ms: 0,
    }
}

fn walk(d: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = vec![];
    for e in std::fs::read_dir(d).unwrap() {
        let e = e.unwrap();
        if e.file_name() == "manifest" {
            continue;
        }
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push((e.path().display().to_string(), e.metadata().unwrap().len()));
        }
    }
    out
}

#[test]
fn inbox_is_ingested_once_and_torn_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = writer_with_c(dir.path());
    let header = inbox_header();
    let op = |s: u64, id: &str| Operation {
        seq: Seq::from(s),
        op: rec(id, [1.0, 2.0], s as i64),
    };
    strata_engine::write_inbox_delta(dir.path(), "lambda-1", &header, &[op(10, "a"), op(11, "b")])
        .unwrap();
    std::fs::write(
        dir.path().join("inbox/torn.delta"),
        &strata_formats::samples::delta()[..40],
    )
    .unwrap();
    let r = store.ingest_inbox().unwrap();
    assert_eq!(r.ingested.len(), 1);
    assert_eq!(r.torn, vec!["torn.delta".to_string()]);
    let r2 = store.ingest_inbox().unwrap();
    assert!(r2.ingested.is_empty() && r2.already == 1);
    assert_eq!(ids(&store, "c"), vec!["a", "b"]);
    // A write without source seqs orders after the ingested ones.
    let w = store
        .write(
            "c",
            vec![Op::Delete(Target::Where(
                Filter::parse(r#"{"n": 10}"#).unwrap(),
            ))],
        )
        .unwrap();
    assert!(w.first_seq > Seq::from(11));
    assert_eq!(ids(&store, "c"), vec!["b"]);
}

#[test]
fn foreign_names_in_the_store_stop_neither_ingestion_nor_gc() {
    let dir = tempfile::tempdir().unwrap();
    let store = writer_with_c(dir.path());
    let header = inbox_header();
    let good = Operation {
        seq: Seq::from(10),
        op: rec("a", [1.0, 2.0], 10),
    };
    // Names the storage layer refuses to address, and a directory where files belong.
    let sealed = strata_formats::samples::delta();
    std::fs::write(dir.path().join("inbox/a\\b.delta"), &sealed).unwrap();
    std::fs::create_dir(dir.path().join("inbox/sub.delta")).unwrap();
    std::fs::write(dir.path().join("segments/x\\y.seg"), b"not ours").unwrap();
    std::fs::create_dir(dir.path().join("deltas/stray")).unwrap();
    strata_engine::write_inbox_delta(dir.path(), "lambda-1", &header, &[good]).unwrap();

    let r = store.ingest_inbox().unwrap();
    assert_eq!(r.ingested.len(), 1, "{r:?}");
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert_eq!(r.failed[0].0, "a\\b.delta");
    assert!(r.failed[0].1.contains("backslash"), "{}", r.failed[0].1);
    assert_eq!(ids(&store, "c"), vec!["a"]);

    store.gc().unwrap();
    assert!(dir.path().join("segments/x\\y.seg").exists());
    assert!(dir.path().join("inbox/a\\b.delta").exists());
    assert!(dir.path().join("deltas/stray").is_dir());
    assert_eq!(ids(&store, "c"), vec!["a"]);
}

#[test]
fn bad_writes_are_rejected_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = writer_with_c(dir.path());
    let v = store.snapshot("c").unwrap().version().version;
    let bad = Op::Upsert(Record {
        id: "x".into(),
        embedding: Some(vec![1.0; 3]),
        document: None,
        metadata: Default::default(),
    });
    let err = store
        .write("c", vec![rec("ok", [0.0, 0.0], 0), bad])
        .unwrap_err();
    assert!(
        err.to_string().contains("operation 1") && err.to_string().contains("3 dimensions"),
        "{err}"
    );
    assert!(
        matches!(
            err,
            Error::InvalidOperation {
                index: 1,
                field: Field::Dims,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.snapshot("c").unwrap().version().version, v);
    assert!(matches!(
        store.write("nope", vec![]),
        Err(Error::NoSuchCollection(_))
    ));
    assert!(matches!(
        store.create_collection("c", 2, Metric::L2, Quantization::None),
        Err(Error::CollectionExists(_))
    ));
    assert!(store
        .create_collection("../evil", 2, Metric::L2, Quantization::None)
        .is_err());
}

#[test]
fn compaction_refuses_to_start_without_twice_the_inputs_free() {
    let disk = MemoryStorage::new();
    {
        let store = Writer::open_on(Arc::new(disk.clone()), opts()).unwrap();
        store
            .create_collection("c", 2, Metric::L2, Quantization::None)
            .unwrap();
        store
            .write("c", vec![rec("a", [0.0, 0.0], 1), rec("b", [1.0, 0.0], 2)])
            .unwrap();
        store.close().unwrap();
    }
    let store = Writer::open_on(Arc::new(disk.clone()), opts()).unwrap();
    disk.set_capacity(Some(disk.used_bytes() + 10));
    let before = store.snapshot("c").unwrap().version().clone();
    let err = store.compact("c").unwrap_err();
    assert!(matches!(err, Error::NoSpace { available: 10, .. }), "{err}");
    assert!(err.to_string().contains("nothing was changed"));
    assert_eq!(store.snapshot("c").unwrap().version(), &before);
    assert_eq!(disk.list("segments").unwrap().len(), 0);
}

/// A merge policy that flushes whenever a delta is pending and refuses to do anything else,
/// or (when `bad`) asks for a merge before flushing.
#[derive(Debug)]
struct FlushOnly {
    bad: bool,
}

impl strata_engine::MergePolicy for FlushOnly {
    fn plan(&self, stats: &strata_engine::CompactionStats) -> strata_engine::CompactionPlan {
        strata_engine::CompactionPlan {
            flush: stats.deltas > 0 && !self.bad,
            merge: (self.bad && !stats.segments.is_empty()).then_some(0..1),
            rewrite: vec![],
            input_bytes: stats.delta_bytes,
        }
    }
}

#[test]
fn a_custom_merge_policy_decides_and_bad_plans_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let with = |bad| StoreOptions {
        policy: std::sync::Arc::new(FlushOnly { bad }),
        ..opts()
    };
    {
        let store = Writer::open(dir.path(), with(false)).unwrap();
        store
            .create_collection("c", 2, Metric::L2, Quantization::None)
            .unwrap();
        store.write("c", vec![rec("a", [0.0, 0.0], 1)]).unwrap();
        // The default policy waits for 16 deltas; this one flushes the first.
        let report = store.maybe_compact("c").unwrap().expect("a flush");
        assert_eq!((report.deltas_folded, report.segments_out), (1, 1));
        assert_eq!(store.maybe_compact("c").unwrap(), None);
        store.write("c", vec![rec("b", [1.0, 0.0], 2)]).unwrap();
        store.close().unwrap();
    }
    let store = Writer::open(dir.path(), with(true)).unwrap();
    let before = store.snapshot("c").unwrap().version().clone();
    let err = store.maybe_compact("c").unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { what, .. } if what == "compaction plan"),
        "{err}"
    );
    assert!(err.to_string().contains("pending"), "{err}");
    assert_eq!(store.snapshot("c").unwrap().version(), &before);
    assert_eq!(ids(&store, "c"), ["a", "b"]);
}
