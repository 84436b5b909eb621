//! Publishing a store to object storage and reading it from there: on `object_store`'s
//! in-memory backend always, and on a real S3 API (moto's server, started by `make test`)
//! when `STRATA_TEST_S3_ENDPOINT` is set. Every test holds a `FailScenario`: the publish
//! failpoint's registry is global to this binary.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fail::FailScenario;
use strata_engine::{
    Error, Include, ObjectStorage, PublishOptions, Query, ReadableStore, Reader, RemoteOptions,
    RemoteStorage, StoreOptions, Writer,
};
use strata_formats::{MetaValue, Metric, Op, Quantization, Record, Target};

const DIMS: usize = 16;

fn record(i: u64, round: u64) -> Record {
    Record {
        id: format!("r{i:04}"),
        embedding: Some(strata_formats::samples::noise(i * 1000 + round, DIMS)),
        document: Some(format!("record {i} round {round}")),
        metadata: [("group".to_string(), MetaValue::Int((i % 5) as i64))]
            .into_iter()
            .collect(),
    }
}

fn upserts(ids: std::ops::Range<u64>, round: u64) -> Vec<Op> {
    ids.map(|i| Op::Upsert(record(i, round))).collect()
}

/// The backends every test runs on: memory, and moto's S3 when the test script started it.
fn backends(test: &str) -> Vec<Arc<ObjectStorage>> {
    let memory = ObjectStorage::new(
        Arc::new(object_store::memory::InMemory::new()),
        "stores/receipts",
        "memory://test/stores/receipts",
        true,
    )
    .unwrap();
    let mut out = vec![Arc::new(memory)];
    if let Some(endpoint) = strata_testkit::s3::endpoint(test) {
        let bucket = format!("publish-{}-{}", test.replace('_', "-"), std::process::id());
        strata_testkit::s3::create_bucket(&endpoint, &bucket);
        let s3 = strata_testkit::s3::client(&endpoint, &bucket);
        let url = format!("s3://{bucket}/stores/receipts");
        let mut storage = ObjectStorage::new(Arc::new(s3), "stores/receipts", &url, true).unwrap();
        // Files from 8 KiB on (the segments) go up as multipart uploads here.
        storage.set_multipart_from(8 << 10);
        out.push(Arc::new(storage));
    }
    out
}

/// A store with one collection: a compacted segment and a delta on top.
fn store(dir: &Path) -> Writer {
    let w = Writer::open(dir, StoreOptions::default()).unwrap();
    w.create_collection("lines", DIMS as u32, Metric::Cosine, Quantization::None)
        .unwrap();
    w.write("lines", upserts(0..300, 0)).unwrap();
    w.compact("lines").unwrap();
    w.write("lines", upserts(290..320, 1)).unwrap();
    w
}

fn fresh_reader(remote: &Arc<ObjectStorage>, cache: &Path) -> Reader {
    let options = RemoteOptions {
        refresh_after: Duration::ZERO,
        cache_limit: None,
    };
    Reader::open_remote_on(remote.clone(), cache, options).unwrap()
}

/// Every query, get and count of the remote reader equals the local store's.
fn assert_same(local: &Writer, remote: &Reader) {
    assert_eq!(local.head("lines").unwrap(), remote.head("lines").unwrap());
    let (l, r) = (
        local.snapshot("lines").unwrap(),
        remote.snapshot("lines").unwrap(),
    );
    assert_eq!(l.count(None).unwrap(), r.count(None).unwrap());
    let ids: Vec<String> = (0..330).step_by(7).map(|i| format!("r{i:04}")).collect();
    assert_eq!(
        l.get(&ids, Include::all()).unwrap(),
        r.get(&ids, Include::all()).unwrap()
    );
    for seed in 0..12 {
        let q = strata_formats::samples::noise(seed + 77, DIMS);
        let query = Query {
            vector: &q,
            k: 10,
            filter: None,
            include: Include::all(),
        };
        assert_eq!(l.query(&query).unwrap(), r.query(&query).unwrap());
    }
}

#[test]
fn publish_edit_publish_and_a_remote_reader_answers_like_the_local_store() {
    let _scenario = FailScenario::setup();
    for remote in backends("publish_edit_publish") {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let w = store(dir.path());
        let first = w.publish_to(&remote, &PublishOptions::default()).unwrap();
        assert!(!first.unchanged);
        // Two version records (create, write) plus the compaction's and the last write's:
        // every retained version file, one segment, the last write's delta.
        let versions = w.versions("lines").unwrap().len() as u64;
        assert!(first.files_uploaded >= versions + 2, "{first:?}");
        assert_eq!(first.head.store_id, w.store_id());
        let reader = fresh_reader(&remote, cache.path());
        assert_same(&w, &reader);

        // One receipt's edit: a few upserts and deletes, then publish again. Only the new
        // delta and the new version file go up.
        let mut ops = upserts(5..9, 2);
        ops.push(Op::Delete(Target::Id("r0011".into())));
        w.write("lines", ops).unwrap();
        let second = w.publish_to(&remote, &PublishOptions::default()).unwrap();
        assert_eq!(second.files_uploaded, 2, "{second:?}");
        assert!(
            second.bytes_uploaded * 10 < first.bytes_uploaded,
            "{} bytes for one edit after {} for the store",
            second.bytes_uploaded,
            first.bytes_uploaded
        );
        // The reader refreshes its head and sees the edit; the cache only fetches the new
        // files.
        assert_same(&w, &reader);
        let again = w.publish_to(&remote, &PublishOptions::default()).unwrap();
        assert!(again.unchanged);
        assert_eq!(again.files_uploaded, 0);

        // A second reader in a fresh cache agrees too, and can open a retained version.
        let cache2 = tempfile::tempdir().unwrap();
        let reader2 = fresh_reader(&remote, cache2.path());
        assert_same(&w, &reader2);
        let old = first.head.collections["lines"].head;
        assert_eq!(
            reader2
                .snapshot_at("lines", old)
                .unwrap()
                .count(None)
                .unwrap(),
            320
        );
        // A remote store refuses every change: no writer opens on it.
        let storage =
            RemoteStorage::open(remote.clone(), cache2.path(), RemoteOptions::default()).unwrap();
        let err = Writer::open_on(Arc::new(storage), StoreOptions::default()).unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A store published once, and a copy of it (the same store id and history so far).
fn store_and_copy(
    remote: &ObjectStorage,
) -> (tempfile::TempDir, Writer, tempfile::TempDir, Writer) {
    let dir = tempfile::tempdir().unwrap();
    let w = store(dir.path());
    w.publish_to(remote, &PublishOptions::default()).unwrap();
    w.close().unwrap();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let a = Writer::open(dir.path(), StoreOptions::default()).unwrap();
    let b = Writer::open(copy.path(), StoreOptions::default()).unwrap();
    assert_eq!(a.store_id(), b.store_id());
    (dir, a, copy, b)
}

#[test]
fn a_publisher_that_loses_the_race_overwrites_nothing() {
    let _scenario = FailScenario::setup();
    for remote in backends("race") {
        let (_d1, a, _d2, b) = store_and_copy(&remote);
        // A's change is a pin (no new file); B writes. B publishes while A is between
        // reading the head and moving it.
        let first = a.versions("lines").unwrap().last().unwrap().version;
        a.pin("lines", first).unwrap();
        b.write("lines", upserts(10..13, 8)).unwrap();
        let b = Arc::new(b);
        let (b2, r2) = (b.clone(), remote.clone());
        fail::cfg_callback("publish: move head", move || {
            fail::remove("publish: move head");
            b2.publish_to(&r2, &PublishOptions::default()).unwrap();
        })
        .unwrap();
        let err = a
            .publish_to(&remote, &PublishOptions::default())
            .unwrap_err();
        fail::remove("publish: move head");
        let b_head = b.head("lines").unwrap();
        assert!(matches!(err, Error::PublishConflict { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("lines@{b_head}")),
            "{err}"
        );
        // The head names B's complete version; a reader opens it.
        let cache = tempfile::tempdir().unwrap();
        let reader = fresh_reader(&remote, cache.path());
        assert_eq!(reader.head("lines").unwrap(), b_head);
        assert_same(&b, &reader);
        // A publishing again is refused: B's head is not in A's history.
        let err = a
            .publish_to(&remote, &PublishOptions::default())
            .unwrap_err();
        assert!(matches!(err, Error::PublishRefused { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("is not a version of this store's history"),
            "{err}"
        );
        assert_eq!(reader.head("lines").unwrap(), b_head);
    }
}

#[test]
fn two_diverged_copies_publishing_at_once_one_wins_and_the_head_is_complete() {
    let _scenario = FailScenario::setup();
    for remote in backends("race_threads") {
        let (_d1, a, _d2, b) = store_and_copy(&remote);
        a.write("lines", upserts(0..3, 7)).unwrap();
        b.write("lines", upserts(10..13, 8)).unwrap();
        let barrier = std::sync::Barrier::new(2);
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| {
                barrier.wait();
                a.publish_to(&remote, &PublishOptions::default())
            });
            let tb = s.spawn(|| {
                barrier.wait();
                b.publish_to(&remote, &PublishOptions::default())
            });
            (ta.join().unwrap(), tb.join().unwrap())
        });
        // Their new files have the same names (the copies share the numbering), so the
        // loser is refused at its first colliding file or at the head; never both win.
        let (winner, loser_err) = match (&ra, &rb) {
            (Ok(_), Err(e)) => (&a, e),
            (Err(e), Ok(_)) => (&b, e),
            _ => panic!("exactly one must win: {ra:?} / {rb:?}"),
        };
        assert!(
            matches!(
                loser_err,
                Error::PublishConflict { .. } | Error::PublishRefused { .. }
            ),
            "{loser_err}"
        );
        let cache = tempfile::tempdir().unwrap();
        let reader = fresh_reader(&remote, cache.path());
        assert_eq!(reader.head("lines").unwrap(), winner.head("lines").unwrap());
        assert_same(winner, &reader);
    }
}

#[test]
fn a_publisher_killed_before_moving_the_head_leaves_the_old_version_and_the_next_finishes() {
    let _scenario = FailScenario::setup();
    for remote in backends("killed") {
        let dir = tempfile::tempdir().unwrap();
        let w = store(dir.path());
        let first = w.publish_to(&remote, &PublishOptions::default()).unwrap();
        w.write("lines", upserts(400..450, 3)).unwrap();
        fail::cfg("publish: move head", "return(eio)").unwrap();
        let err = w
            .publish_to(&remote, &PublishOptions::default())
            .unwrap_err();
        fail::remove("publish: move head");
        assert!(err.to_string().contains("injected EIO"), "{err}");
        let cache = tempfile::tempdir().unwrap();
        let reader = fresh_reader(&remote, cache.path());
        assert_eq!(
            reader.head("lines").unwrap(),
            first.head.collections["lines"].head
        );
        assert_eq!(reader.snapshot("lines").unwrap().count(None).unwrap(), 320);
        // The next publish finds the files already uploaded and only moves the head.
        let next = w.publish_to(&remote, &PublishOptions::default()).unwrap();
        assert_eq!(next.files_uploaded, 0, "{next:?}");
        assert!(next.files_present > 0);
        assert_same(&w, &reader);
    }
}

#[test]
fn another_store_at_the_destination_is_refused_before_anything_is_uploaded() {
    let _scenario = FailScenario::setup();
    for remote in backends("other_store") {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let one = store(d1.path());
        let two = store(d2.path());
        assert_ne!(one.store_id(), two.store_id());
        one.publish_to(&remote, &PublishOptions::default()).unwrap();
        let requests = remote.requests();
        let err = two
            .publish_to(&remote, &PublishOptions::default())
            .unwrap_err();
        assert!(matches!(err, Error::PublishRefused { .. }), "{err}");
        assert!(err.to_string().contains(one.store_id()), "{err}");
        assert!(err.to_string().contains(two.store_id()), "{err}");
        // One GET of the head, nothing else.
        assert_eq!(remote.requests() - requests, 1);
    }
}

#[test]
fn a_file_number_is_never_reused_after_gc() {
    let _scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let w = Writer::open(dir.path(), StoreOptions::default()).unwrap();
    w.create_collection("lines", DIMS as u32, Metric::L2, Quantization::None)
        .unwrap();
    w.write("lines", upserts(0..10, 0)).unwrap();
    w.compact("lines").unwrap();
    let first = w.head("lines").unwrap();
    w.write("lines", upserts(0..10, 1)).unwrap();
    w.compact("lines").unwrap();
    let newest = w.snapshot("lines").unwrap().version().segments[0]
        .file
        .clone();
    // Back to the first compaction: the newest segment is referenced only by versions
    // that GC then drops.
    w.rollback("lines", first).unwrap();
    w.close().unwrap();
    let options = StoreOptions {
        retain_versions: 0,
        gc_grace: Duration::ZERO,
        ..StoreOptions::default()
    };
    let w = Writer::open(dir.path(), options.clone()).unwrap();
    w.gc().unwrap();
    let newest_path = dir.path().join("segments").join(&newest);
    assert!(!newest_path.exists(), "GC kept {}", newest_path.display());
    drop(w);
    let w = Writer::open(dir.path(), options).unwrap();
    let receipt = w.write("lines", upserts(0..10, 2)).unwrap();
    let delta = w
        .snapshot("lines")
        .unwrap()
        .version()
        .deltas
        .last()
        .unwrap()
        .file
        .clone();
    let number = |n: &str| n.split('.').next().unwrap().parse::<u64>().unwrap();
    assert!(
        number(&delta) > number(&newest),
        "delta {delta} reuses a number at or below the removed {newest} ({receipt:?})"
    );
}

#[test]
fn remote_gc_keeps_what_the_head_reaches_and_young_objects() {
    let _scenario = FailScenario::setup();
    for remote in backends("remote_gc") {
        let dir = tempfile::tempdir().unwrap();
        let w = store(dir.path());
        w.publish_to(&remote, &PublishOptions::default()).unwrap();
        // A reader holds the first published head, its files fetched.
        let cache = tempfile::tempdir().unwrap();
        let old_reader = fresh_reader(&remote, cache.path());
        let old = old_reader.snapshot("lines").unwrap();
        let old_count = old.count(None).unwrap();
        w.close().unwrap();
        // Rewrite everything, compact, keep no old versions: the first files are garbage
        // once the next publish no longer names their versions.
        let options = StoreOptions {
            retain_versions: 0,
            gc_grace: Duration::ZERO,
            ..StoreOptions::default()
        };
        let w = Writer::open(dir.path(), options).unwrap();
        w.write("lines", upserts(0..320, 9)).unwrap();
        w.compact("lines").unwrap();
        w.gc().unwrap();
        w.publish_to(&remote, &PublishOptions::default()).unwrap();
        // Inside the grace period nothing goes.
        let young = w.gc_remote(&remote, Duration::from_secs(3600)).unwrap();
        assert_eq!(young.objects_deleted, 0, "{young:?}");
        assert!(young.objects_in_grace > 0, "{young:?}");
        // Past it, every unreferenced object goes and nothing the head reaches.
        let swept = w.gc_remote(&remote, Duration::ZERO).unwrap();
        assert_eq!(swept.objects_deleted, young.objects_in_grace, "{swept:?}");
        assert!(swept.bytes_freed > 0);
        assert_eq!(swept.objects_referenced, young.objects_referenced);
        let cache2 = tempfile::tempdir().unwrap();
        assert_same(&w, &fresh_reader(&remote, cache2.path()));
        // The old reader's snapshot still answers from its cache.
        assert_eq!(old.count(None).unwrap(), old_count);
        let again = w.gc_remote(&remote, Duration::ZERO).unwrap();
        assert_eq!(again.objects_deleted, 0);
    }
}

/// The segment files in a reader's cache directory, and the total and largest size of the
/// other files.
fn cache_contents(dir: &Path) -> (BTreeSet<String>, u64, u64) {
    let (mut segments, mut total, mut largest) = (BTreeSet::new(), 0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if d.file_name().is_some_and(|n| n == "segments") {
                segments.insert(e.file_name().to_string_lossy().into_owned());
            } else {
                total += m.len();
                largest = largest.max(m.len());
            }
        }
    }
    (segments, total, largest)
}

#[test]
fn readers_share_one_cache_and_a_limited_cache_evicts_but_answers_the_same() {
    let _scenario = FailScenario::setup();
    for remote in backends("shared_cache") {
        let dir = tempfile::tempdir().unwrap();
        let w = store(dir.path());
        w.publish_to(&remote, &PublishOptions::default()).unwrap();
        // Four readers in one cache directory, opened and queried at once.
        let cache = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| assert_same(&w, &fresh_reader(&remote, cache.path())));
            }
        });
        // A cache limited to one byte keeps only the file fetched last and the segments an
        // open snapshot maps, and still every answer is the local store's.
        let small = tempfile::tempdir().unwrap();
        let options = RemoteOptions {
            refresh_after: Duration::ZERO,
            cache_limit: Some(1),
        };
        let reader = Reader::open_remote_on(remote.clone(), small.path(), options).unwrap();
        assert_same(&w, &reader);
        w.write("lines", upserts(0..40, 5)).unwrap();
        w.publish_to(&remote, &PublishOptions::default()).unwrap();
        assert_same(&w, &reader);
        let snap = reader.snapshot("lines").unwrap();
        let mapped: BTreeSet<String> = snap
            .version()
            .segments
            .iter()
            .map(|s| s.file.clone())
            .collect();
        let (segments, total, largest) = cache_contents(small.path());
        assert_eq!(segments, mapped, "only the mapped segments stay");
        assert!(
            total <= largest,
            "{total} bytes of other files cached, largest {largest}"
        );
    }
}

#[test]
fn a_remote_reader_sees_the_published_pins_and_opens_a_pinned_version() {
    let _scenario = FailScenario::setup();
    for remote in backends("pins") {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let w = store(dir.path());
        let pinned = w.head("lines").unwrap();
        w.pin("lines", pinned).unwrap();
        w.write("lines", upserts(0..10, 9)).unwrap();
        w.publish_to(&remote, &PublishOptions::default()).unwrap();
        let reader = fresh_reader(&remote, cache.path());
        assert_eq!(reader.pins("lines").unwrap(), [pinned].into());
        assert!(reader.pins("words").unwrap().is_empty());
        let listed: Vec<(u64, bool)> = reader
            .versions("lines")
            .unwrap()
            .iter()
            .map(|v| (v.version, v.pinned))
            .collect();
        assert!(listed.contains(&(pinned, true)), "{listed:?}");
        assert!(
            listed.iter().all(|&(v, p)| p == (v == pinned)),
            "{listed:?}"
        );
        let old = reader.snapshot_at("lines", pinned).unwrap();
        let local = w.snapshot_at("lines", pinned).unwrap();
        let ids: Vec<String> = (0..12).map(|i| format!("r{i:04}")).collect();
        assert_eq!(
            old.get(&ids, Include::all()).unwrap(),
            local.get(&ids, Include::all()).unwrap()
        );
    }
}
