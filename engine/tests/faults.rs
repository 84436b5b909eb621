//! Faults a store meets in production, without failpoints: a full disk (a real 24 MB tmpfs
//! where the test may mount one, else `MemoryStorage`'s capacity), a failed fsync (final:
//! the writer refuses every change until reopened), and temporaries left by a killed
//! process (collected at the next open). After each: nothing acknowledged is lost, nothing is
//! half-published, no temporary bytes are left, and `verify` passes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use strata_engine::{verify_store_on, Error, Include, ReadableStore, StoreOptions, Writer};
use strata_formats::{MetaValue, Metric, Op, Quantization, Record};
use strata_storage::memory::{Fault, SyncPoint, Trigger};
use strata_storage::{LocalStorage, MemoryStorage, Storage};

const DIMS: usize = 64;

fn rec(id: &str, x: f32) -> Op {
    Op::Upsert(Record {
        id: id.into(),
        embedding: Some((0..DIMS).map(|i| x + i as f32).collect()),
        document: Some(format!("doc {id}")),
        metadata: [("n".to_string(), MetaValue::Int(x as i64))]
            .into_iter()
            .collect(),
    })
}

/// `n` records `{prefix}{i}`.
fn batch(prefix: &str, n: usize) -> Vec<Op> {
    (0..n)
        .map(|i| rec(&format!("{prefix}{i:06}"), i as f32))
        .collect()
}

fn opts() -> StoreOptions {
    StoreOptions {
        gc_grace: Duration::ZERO,
        retain_versions: 2,
        ..StoreOptions::default()
    }
}

fn open(storage: Arc<dyn Storage>) -> Writer {
    Writer::open_on(storage, opts()).unwrap()
}

fn ids(store: &impl ReadableStore) -> Vec<String> {
    let snap = store.snapshot("c").unwrap();
    let rows = snap.get_where(None, None, 0, Include::ids()).unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

fn temporaries(storage: &dyn Storage) -> Vec<String> {
    storage
        .list("tmp")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

fn assert_clean(storage: &dyn Storage) {
    let report = verify_store_on(storage).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

/// A memory store with collection `c` holding `a` (in a segment) and `b` (in a delta).
fn seeded() -> MemoryStorage {
    let disk = MemoryStorage::new();
    let store = open(Arc::new(disk.clone()));
    store
        .create_collection("c", DIMS as u32, Metric::L2, Quantization::None)
        .unwrap();
    store.write("c", vec![rec("a", 1.0)]).unwrap();
    store.compact("c").unwrap();
    store.write("c", vec![rec("b", 2.0)]).unwrap();
    store.close().unwrap();
    disk
}

// ---- fsync failure is final ----

/// The sync points a write on the seeded store reaches.
fn write_sync_points() -> Vec<SyncPoint> {
    let disk = seeded();
    let store = open(Arc::new(disk.clone()));
    let before = disk.sync_points().len();
    store.write("c", vec![rec("x", 9.0)]).unwrap();
    disk.sync_points()[before..].to_vec()
}

/// A sync point without the temporary's unique name: what it syncs (`file delta.tmp`,
/// `dir deltas`).
fn shape(p: &SyncPoint) -> String {
    match p {
        SyncPoint::File(path) => format!("file {}", path.rsplit('-').next().unwrap_or("")),
        SyncPoint::Dir(dir) => format!("dir {dir}"),
    }
}

#[test]
fn after_a_failed_fsync_the_writer_refuses_every_change_until_reopened() {
    let points = write_sync_points();
    assert!(points.len() >= 4, "{points:?}");
    let delta_durable = points
        .iter()
        .position(|p| *p == SyncPoint::Dir("deltas".into()))
        .expect("the delta's directory is synced");
    for (i, point) in points.iter().enumerate() {
        let disk = seeded();
        let store = open(Arc::new(disk.clone()));
        let syncs_before = disk.sync_points().len();
        disk.inject(Trigger::Sync(i as u64 + 1), Fault::Eio);
        let err = store.write("c", vec![rec("x", 9.0)]).unwrap_err();
        assert!(err.to_string().contains("simulated EIO"), "{point}: {err}");
        // Never retried: the failed point was reached once, and nothing synced after it.
        let after = &disk.sync_points()[syncs_before..];
        assert_eq!(after.len(), i + 1, "{point}: {after:?}");
        assert_eq!(after.last().map(shape), Some(shape(point)), "{after:?}");
        // Every change is refused now, with the typed error naming the first failure.
        let refused = store.write("c", vec![rec("y", 8.0)]).unwrap_err();
        assert!(
            matches!(&refused, Error::SyncFailed { cause } if cause.contains("simulated EIO")),
            "{point}: {refused}"
        );
        assert!(matches!(store.compact("c"), Err(Error::SyncFailed { .. })));
        assert!(matches!(store.gc(), Err(Error::SyncFailed { .. })));
        assert!(matches!(
            store.ingest_inbox(),
            Err(Error::SyncFailed { .. })
        ));
        assert_eq!(disk.sync_points().len(), syncs_before + after.len());
        // Reads go on.
        let got = ids(&store);
        assert!(got.starts_with(&["a".into(), "b".into()]), "{got:?}");
        drop(store);
        // Reopened, the writer re-reads what is on disk and commits again.
        let store = open(Arc::new(disk.clone()));
        store.write("c", vec![rec("y", 8.0)]).unwrap();
        let got = ids(&store);
        assert!(got.contains(&"y".to_string()), "{point}: {got:?}");
        // The manifest commits after the delta is durable: a failure after that leaves the
        // (unacknowledged) write in the store, one before it leaves nothing.
        assert_eq!(
            got.contains(&"x".to_string()),
            i > delta_durable,
            "{point}: {got:?}"
        );
        assert!(
            temporaries(&disk).is_empty(),
            "{point}: {:?}",
            temporaries(&disk)
        );
        store.close().unwrap();
        assert_clean(&disk);
    }
}

#[test]
fn a_failed_fsync_during_a_compaction_is_final_too() {
    let disk = seeded();
    let store = open(Arc::new(disk.clone()));
    disk.inject(Trigger::Sync(1), Fault::Eio);
    let err = store.compact("c").unwrap_err();
    assert!(err.to_string().contains("simulated EIO"), "{err}");
    assert!(matches!(
        store.write("c", vec![rec("y", 8.0)]),
        Err(Error::SyncFailed { .. })
    ));
    assert!(temporaries(&disk).is_empty(), "{:?}", temporaries(&disk));
    drop(store);
    let store = open(Arc::new(disk.clone()));
    assert_eq!(ids(&store), ["a", "b"]);
    store.compact("c").unwrap();
    assert_eq!(ids(&store), ["a", "b"]);
    store.close().unwrap();
    assert_clean(&disk);
}

// ---- temporaries ----

#[test]
fn temporaries_of_a_killed_writer_are_collected_at_the_next_open() {
    let disk = seeded();
    // What a writer killed mid-write leaves: a delta and a segment temporary, and a
    // producer's inbox temporary (which a live producer elsewhere may still be writing).
    let delta = disk.write_temp("delta", &[7; 1000]).unwrap();
    let segment = disk.write_temp("segment", &[7; 5000]).unwrap();
    let inbox = disk.write_temp("inbox", &[7; 100]).unwrap();
    let used = disk.used_bytes();
    let store = open(Arc::new(disk.clone()));
    let left = temporaries(&disk);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(inbox.path().ends_with(&left[0]), "{left:?}");
    assert!(!disk.exists(delta.path()).unwrap());
    assert!(!disk.exists(segment.path()).unwrap());
    assert_eq!(disk.used_bytes(), used - 6000);
    // The grace period (zero here) then lets GC take the producer's.
    store.gc().unwrap();
    assert!(temporaries(&disk).is_empty());
    assert_eq!(ids(&store), ["a", "b"]);
}

#[test]
fn a_write_that_fails_anywhere_leaves_no_temporary() {
    for fault in [Fault::Eio, Fault::Enospc] {
        for n in 1..=3 {
            let disk = seeded();
            let store = open(Arc::new(disk.clone()));
            let used = disk.used_bytes();
            disk.inject(Trigger::Sync(n), fault);
            assert!(
                store.write("c", batch("x", 10)).is_err(),
                "{fault:?} at {n}"
            );
            let left = temporaries(&disk);
            assert!(left.is_empty(), "{fault:?} at sync {n}: {left:?}");
            if n == 1 {
                assert_eq!(disk.used_bytes(), used, "{fault:?}: no bytes left behind");
            }
        }
    }
}

// ---- a full disk ----

#[test]
fn a_full_memory_device_fails_writes_cleanly_and_they_resume_once_space_is_freed() {
    let disk = seeded();
    let store = open(Arc::new(disk.clone()));
    let before = store.snapshot("c").unwrap().version().version;
    let used = disk.used_bytes();
    disk.set_capacity(Some(used + 20_000));
    let err = store.write("c", batch("x", 200)).unwrap_err();
    let Error::Io { source, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{err}");
    assert!(err.to_string().contains("no space left"), "{err}");
    assert_eq!(disk.used_bytes(), used, "the failed write left no bytes");
    assert!(temporaries(&disk).is_empty());
    assert_eq!(store.snapshot("c").unwrap().version().version, before);
    assert_eq!(ids(&store), ["a", "b"], "reads go on");
    disk.set_capacity(None);
    store.write("c", batch("x", 200)).unwrap();
    assert_eq!(ids(&store).len(), 202);
    store.close().unwrap();
    assert_clean(&disk);
}

/// A size-limited tmpfs mounted for one test, unmounted (and its directory removed) on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mount a tmpfs of `size` (`24m`) in a fresh directory; None (with a printed reason)
    /// where mounting is refused (not root, no CAP_SYS_ADMIN, no `mount`).
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("strata-tmpfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                println!(
                    "skipping the tmpfs part: mount refused: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                let _ = std::fs::remove_dir(&dir);
                None
            }
            Err(e) => {
                println!("skipping the tmpfs part: cannot run mount: {e}");
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }

    fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn free_bytes(dir: &Path) -> u64 {
    LocalStorage::at(dir).available_space().unwrap()
}

/// Fill `dir` with a file outside the store until about `leave` bytes are free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let filler = dir.join("filler");
    let free = free_bytes(dir);
    let size = free.saturating_sub(leave);
    std::fs::write(&filler, vec![0xAB; size as usize]).unwrap();
    filler
}

#[test]
fn a_full_tmpfs_fails_writes_with_no_space_and_leaves_nothing_behind() {
    let Some(fs) = Tmpfs::mount("24m") else {
        // The same promise on the memory backend's capacity.
        a_full_memory_device_fails_writes_cleanly_and_they_resume_once_space_is_freed();
        return;
    };
    let root = fs.path().join("store");
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(&root).unwrap());
    let store = open(storage.clone());
    store
        .create_collection("c", DIMS as u32, Metric::L2, Quantization::None)
        .unwrap();
    let acked = store.write("c", batch("a", 2000)).unwrap();
    store.compact("c").unwrap();
    store.write("c", batch("b", 500)).unwrap();
    let before = store.snapshot("c").unwrap().version().version;
    // About 3 MB left: a batch of 16 000 records (a delta of more than 4 MB) cannot be
    // written.
    let filler = fill(fs.path(), 3 << 20);
    let free = free_bytes(fs.path());
    let big = batch("x", 16_000);
    let mut failures = 0;
    for _ in 0..3 {
        let err = store.write("c", big.clone()).unwrap_err();
        let Error::Io { source, path, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{err}");
        assert!(
            err.to_string().to_lowercase().contains("no space left"),
            "{err}"
        );
        assert!(path.starts_with(&root), "{err}");
        failures += 1;
        // Nothing half-published, no temporary bytes left: the space is as it was.
        assert!(
            temporaries(&*storage).is_empty(),
            "{:?}",
            temporaries(&*storage)
        );
        assert_eq!(store.snapshot("c").unwrap().version().version, before);
        let now_free = free_bytes(fs.path());
        assert!(
            now_free + 64 * 1024 >= free,
            "free space went from {free} to {now_free}"
        );
        // Reads keep working.
        assert_eq!(ids(&store).len(), 2500);
    }
    assert_eq!(failures, 3);
    assert_clean(&*storage);
    // Space freed: the same write goes through.
    std::fs::remove_file(&filler).unwrap();
    let receipt = store.write("c", big).unwrap();
    assert!(receipt.version > acked.version);
    assert_eq!(ids(&store).len(), 18_500);
    store.close().unwrap();
    let store = open(storage.clone());
    assert_eq!(ids(&store).len(), 18_500);
    drop(store);
    assert_clean(&*storage);
}

// ---- a damaged file under the head ----

#[test]
fn a_damaged_head_is_refused_and_verify_names_the_versions_to_roll_back_to() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(&root).unwrap());
    let store = open(storage.clone());
    store
        .create_collection("c", DIMS as u32, Metric::L2, Quantization::None)
        .unwrap();
    store.write("c", vec![rec("a", 1.0)]).unwrap();
    store.compact("c").unwrap();
    let good = store.write("c", vec![rec("b", 2.0)]).unwrap();
    let last = store.write("c", vec![rec("d", 3.0)]).unwrap();
    store.close().unwrap();
    // Bit rot in the newest delta, which only the head references.
    let delta = root.join("deltas").join(&last.delta);
    let mut bytes = std::fs::read(&delta).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x55;
    std::fs::write(&delta, &bytes).unwrap();

    let report = verify_store_on(&*storage).unwrap();
    assert!(!report.ok());
    let head = report
        .versions
        .iter()
        .find(|v| v.head)
        .expect("the head is listed");
    assert_eq!(head.version, last.version);
    assert_eq!(head.damaged, vec![delta.clone()], "{report:?}");
    let intact = report.intact_versions("c");
    assert_eq!(intact.first(), Some(&good.version), "{report:?}");
    assert!(!intact.contains(&last.version));

    let store = open(storage.clone());
    let err = store.write("c", vec![rec("e", 4.0)]).unwrap_err();
    let Error::DamagedHead { version, path, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!((*version, path), (last.version, &delta), "{err}");
    assert!(err.to_string().contains("refusing to commit"), "{err}");
    assert!(matches!(store.compact("c"), Err(Error::DamagedHead { .. })));
    // Rolled back to the newest intact version, the store takes writes again.
    store.rollback("c", good.version).unwrap();
    store.write("c", vec![rec("e", 4.0)]).unwrap();
    assert_eq!(ids(&store).len(), 3);
    let report = verify_store_on(&*storage).unwrap();
    let head = report.versions.iter().find(|v| v.head).unwrap();
    assert!(head.intact(), "{report:?}");
}
