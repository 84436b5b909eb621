//! The memory backend's capacity, fault injection and crash model.

use std::io::Write;

use strata_storage::memory::{Fault, OpKind, SyncKind, SyncPoint, Trigger};
use strata_storage::{layout, MemoryStorage, Storage};

fn store() -> MemoryStorage {
    let m = MemoryStorage::new();
    for d in layout::STORE_DIRS {
        m.create_dir(d).unwrap();
    }
    m
}

fn publish(m: &MemoryStorage, dest: &str, bytes: &[u8]) {
    let t = m.write_temp("t", bytes).unwrap();
    assert!(m.publish(&t, dest).unwrap());
}

#[test]
fn capacity_limits_writes_and_reports_what_is_left() {
    let m = store();
    m.set_capacity(Some(100));
    assert_eq!(m.available_space().unwrap(), 100);
    publish(&m, "deltas/a", &[1; 60]);
    assert_eq!(m.used_bytes(), 60);
    assert_eq!(m.available_space().unwrap(), 40);
    let err = m.write_temp("big", &[2; 41]).unwrap_err();
    assert!(err.is_no_space(), "{err}");
    assert!(err.to_string().contains("no space left"), "{err}");
    let mut w = m.create_temp("seg").unwrap();
    w.write_all(&[3; 30]).unwrap();
    let e = w.write_all(&[3; 30]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
    drop(w);
    // A second name for the same file costs nothing; removing both names frees it.
    assert!(m.link("deltas/a", "inbox/a").unwrap());
    m.remove("deltas/a").unwrap();
    m.remove("inbox/a").unwrap();
    for t in m.list(layout::TMP).unwrap() {
        m.remove(&layout::join(layout::TMP, &t.name)).unwrap();
    }
    assert_eq!(m.used_bytes(), 0);
    m.set_capacity(None);
    assert_eq!(m.available_space().unwrap(), u64::MAX);
}

#[test]
fn an_injected_error_fires_once_at_the_nth_operation() {
    let m = store();
    publish(&m, "deltas/a", b"a");
    m.inject(Trigger::Op(OpKind::Read, 2), Fault::Eio);
    m.read("deltas/a").unwrap();
    let err = m.read("deltas/a").unwrap_err();
    assert!(err.to_string().contains("simulated EIO"), "{err}");
    assert!(err.to_string().starts_with("read memory://"), "{err}");
    m.read("deltas/a").unwrap();
    m.inject(Trigger::Op(OpKind::Publish, 1), Fault::Enospc);
    let t = m.write_temp("t", b"b").unwrap();
    assert!(m.publish(&t, "deltas/b").unwrap_err().is_no_space());
    assert!(
        !m.exists("deltas/b").unwrap(),
        "a fault at the start changes nothing"
    );
    assert!(m.publish(&t, "deltas/b").unwrap());
    assert_eq!(m.op_count(OpKind::Publish), 3);
}

#[test]
fn an_error_at_a_named_sync_point_leaves_the_step_before_it() {
    let m = store();
    m.inject(
        Trigger::SyncOf {
            kind: SyncKind::Dir,
            prefix: "deltas".into(),
            n: 1,
        },
        Fault::Eio,
    );
    let t = m.write_temp("t", b"x").unwrap();
    let err = m.publish(&t, "deltas/x").unwrap_err();
    assert!(err.to_string().starts_with("fsync directory"), "{err}");
    // The link was made (as the local backend would have), but never became durable.
    assert!(m.exists("deltas/x").unwrap());
    assert!(!m.recover().exists("deltas/x").unwrap());
    assert_eq!(
        m.sync_points(),
        [
            SyncPoint::File(t.path().into()),
            SyncPoint::Dir("deltas".into())
        ]
    );
}

#[test]
fn a_crash_loses_what_was_not_synced_and_stops_everything() {
    let m = store();
    publish(&m, "deltas/durable", b"kept");
    // Data fsynced, name never published: the temporary's directory is never synced.
    let pending = m.write_temp("t", b"pending").unwrap();
    // Published but its directory sync is where the crash hits.
    m.inject(Trigger::Sync(2), Fault::Crash);
    let t = m.write_temp("t", b"lost").unwrap();
    let err = m.publish(&t, "deltas/lost").unwrap_err();
    assert!(
        err.to_string()
            .contains("simulated crash at fsync directory"),
        "{err}"
    );
    assert!(m.crashed_at().is_some());
    assert!(
        m.read("deltas/durable").is_err(),
        "a crashed storage refuses everything"
    );
    assert!(m.list("").is_err());
    let r = m.recover();
    assert_eq!(r.read("deltas/durable").unwrap(), b"kept");
    assert!(!r.exists("deltas/lost").unwrap());
    assert!(!r.exists(pending.path()).unwrap());
    assert_eq!(
        r.location("x"),
        m.location("x"),
        "the same store, recovered"
    );
    assert!(r.crashed_at().is_none());
    publish(&r, "deltas/after", b"again");
}

#[test]
fn a_durable_name_comes_back_with_its_last_synced_bytes() {
    let m = store();
    m.replace("versions/HEAD", b"1\n").unwrap();
    let mut w = m.create_temp("seg").unwrap();
    w.write_all(b"unsynced").unwrap();
    let temp = w.temp().clone();
    // Syncing tmp/ (here through a replace of a file in it) makes the temporary's name
    // durable, but its data was never fsynced; power goes while it is being written.
    m.replace("tmp/pointer", b"p").unwrap();
    m.replace("versions/HEAD", b"2\n").unwrap();
    m.crash();
    drop(w);
    let r = m.recover();
    assert_eq!(r.read("versions/HEAD").unwrap(), b"2\n");
    assert_eq!(
        r.read(temp.path()).unwrap(),
        b"",
        "data never fsynced is lost"
    );
    assert_eq!(r.read("tmp/pointer").unwrap(), b"p");
}

#[test]
fn a_crash_during_a_replace_keeps_the_old_pointer() {
    let m = store();
    m.replace("versions/HEAD", b"1\n").unwrap();
    m.inject(
        Trigger::SyncOf {
            kind: SyncKind::Dir,
            prefix: "versions".into(),
            n: 1,
        },
        Fault::Crash,
    );
    assert!(m.replace("versions/HEAD", b"2\n").is_err());
    assert_eq!(m.recover().read("versions/HEAD").unwrap(), b"1\n");
}

#[test]
fn a_crash_before_a_file_sync_loses_the_temporary() {
    let m = store();
    m.inject(
        Trigger::SyncOf {
            kind: SyncKind::File,
            prefix: "tmp/".into(),
            n: 1,
        },
        Fault::Crash,
    );
    let mut w = m.create_temp("seg").unwrap();
    w.write_all(b"segment bytes").unwrap();
    let temp = w.temp().clone();
    assert!(w.finish().is_err());
    assert!(!m.recover().exists(temp.path()).unwrap());
}

#[test]
fn a_removal_is_durable_only_after_its_directory_sync() {
    let m = store();
    publish(&m, "segments/s", b"seg");
    m.inject(Trigger::Sync(1), Fault::Crash);
    assert!(m.remove("segments/s").is_err());
    assert_eq!(m.recover().read("segments/s").unwrap(), b"seg");
}
