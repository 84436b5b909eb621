//! The conformance suite every [`Storage`] backend passes: the contract of the trait, as
//! executable checks. A backend's tests call [`run`] with a constructor of empty stores;
//! a check that fails panics with what it expected.
//!
//! ```
//! strata_storage::conformance::run(&|| Box::new(strata_storage::MemoryStorage::new()));
//! ```

use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, SystemTime};

use crate::layout::{self, TMP};
use crate::Storage;

/// One named check of the suite.
type Check = (&'static str, fn(&dyn Storage));

/// Run every check, each on a fresh store from `new` (an empty root directory).
pub fn run(new: &dyn Fn() -> Box<dyn Storage>) {
    let checks: [Check; 12] = [
        ("directories", directories),
        ("publish_never_replaces", publish_never_replaces),
        ("map_and_ranges", map_and_ranges),
        ("streaming_temporaries", streaming_temporaries),
        ("link", link),
        ("replace", replace),
        ("remove", remove),
        ("listing", listing),
        ("missing_files", missing_files),
        ("invalid_paths", invalid_paths),
        ("space_and_location", space_and_location),
        ("inbox", inbox),
    ];
    for (name, check) in checks {
        let storage = new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&*storage)));
        if let Err(panic) = result {
            eprintln!("storage conformance check {name:?} failed on {storage:?}");
            std::panic::resume_unwind(panic);
        }
    }
}

fn names(s: &dyn Storage, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = s.list(dir).unwrap().into_iter().map(|e| e.name).collect();
    v.sort();
    v
}

fn directories(s: &dyn Storage) {
    assert!(s.exists("").unwrap(), "the root exists");
    assert!(names(s, "").is_empty(), "a new store is empty");
    s.create_dir("a/b/c").unwrap();
    s.create_dir("a/b").unwrap();
    assert!(s.stat("a/b").unwrap().unwrap().is_dir);
    assert_eq!(names(s, "a"), ["b"]);
    assert!(
        s.remove_dir("a/b").is_err(),
        "a non-empty directory is not removed"
    );
    s.remove_dir("a/b/c").unwrap();
    assert!(!s.exists("a/b/c").unwrap());
    assert!(s.remove_dir("a/b/c").unwrap_err().is_not_found());
}

fn publish_never_replaces(s: &dyn Storage) {
    s.create_dir(TMP).unwrap();
    s.create_dir("d").unwrap();
    let a = s.write_temp("a", b"first").unwrap();
    assert!(a.path().starts_with("tmp/"), "{a:?}");
    assert_eq!(s.read(a.path()).unwrap(), b"first");
    assert!(s.publish(&a, "d/x").unwrap());
    assert!(
        !s.exists(a.path()).unwrap(),
        "the temporary's name is removed"
    );
    let b = s.write_temp("b", b"second").unwrap();
    assert!(!s.publish(&b, "d/x").unwrap(), "an existing name is kept");
    assert_eq!(s.read("d/x").unwrap(), b"first");
    assert_eq!(
        s.read(b.path()).unwrap(),
        b"second",
        "a refused temporary stays"
    );
    assert!(
        s.publish(&b, "d/y").unwrap(),
        "and can be published elsewhere"
    );
    assert_eq!(s.read("d/y").unwrap(), b"second");
    assert!(names(s, TMP).is_empty());
    let c = s.write_temp("c", b"third").unwrap();
    assert!(s.publish(&c, "missing/z").unwrap_err().is_not_found());
    s.discard_temp(&c);
    assert!(!s.exists(c.path()).unwrap());
    s.remove_dir(TMP).unwrap();
    assert!(
        s.write_temp("d", b"x").is_err(),
        "temporaries need the tmp directory"
    );
}

fn map_and_ranges(s: &dyn Storage) {
    s.create_dir(TMP).unwrap();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let t = s.write_temp("m", &bytes).unwrap();
    assert!(s.publish(&t, "f").unwrap());
    let m = s.map("f").unwrap();
    assert_eq!(&m[..], &bytes[..]);
    assert!(
        (m.as_ptr() as usize).is_multiple_of(64),
        "maps are 64-byte aligned"
    );
    let clone = m.clone();
    assert_eq!(clone.as_ptr(), m.as_ptr(), "a clone shares the bytes");
    m.release_pages();
    assert_eq!(&clone[..], &bytes[..], "released pages read back the same");
    assert_eq!(s.read_range("f", 100..110).unwrap(), &bytes[100..110]);
    assert_eq!(s.read_range("f", 10_000..10_000).unwrap(), b"");
    assert!(
        s.read_range("f", 9_990..10_001).is_err(),
        "a range past the end fails"
    );
    let e = s.write_temp("e", b"").unwrap();
    assert!(s.publish(&e, "empty").unwrap());
    assert!(s.map("empty").unwrap().is_empty());
}

fn streaming_temporaries(s: &dyn Storage) {
    s.create_dir(TMP).unwrap();
    let mut w = s.create_temp("seg").unwrap();
    let temp = w.temp().clone();
    w.write_all(&[0u8; 8]).unwrap();
    w.write_all(b"body").unwrap();
    w.seek(SeekFrom::Start(0)).unwrap();
    w.write_all(b"HEAD").unwrap();
    assert_eq!(w.seek(SeekFrom::End(0)).unwrap(), 12);
    w.write_all(b"!").unwrap();
    let done = w.finish().unwrap();
    assert_eq!(done, temp);
    assert!(s.publish(&done, "seg").unwrap());
    assert_eq!(s.read("seg").unwrap(), b"HEAD\0\0\0\0body!");
    let mut abandoned = s.create_temp("x").unwrap();
    abandoned.write_all(b"partial").unwrap();
    let t = abandoned.temp().clone();
    assert!(s.exists(t.path()).unwrap());
    drop(abandoned);
    assert!(
        !s.exists(t.path()).unwrap(),
        "a streaming temporary dropped unfinished removes itself"
    );
    s.discard_temp(&t);
    assert!(!s.exists(t.path()).unwrap());
}

fn link(s: &dyn Storage) {
    s.create_dir(TMP).unwrap();
    s.create_dir("inbox").unwrap();
    s.create_dir("deltas").unwrap();
    let t = s.write_temp("i", b"sealed").unwrap();
    assert!(s.publish(&t, "inbox/p.delta").unwrap());
    assert!(s.link("inbox/p.delta", "deltas/1.delta").unwrap());
    assert!(!s.link("inbox/p.delta", "deltas/1.delta").unwrap());
    assert_eq!(s.read("deltas/1.delta").unwrap(), b"sealed");
    s.remove("inbox/p.delta").unwrap();
    assert_eq!(
        s.read("deltas/1.delta").unwrap(),
        b"sealed",
        "the other name stays"
    );
    assert!(s
        .link("inbox/p.delta", "deltas/2.delta")
        .unwrap_err()
        .is_not_found());
}

fn replace(s: &dyn Storage) {
    s.create_dir(TMP).unwrap();
    s.create_dir("v/c").unwrap();
    s.replace("v/c/HEAD", b"1\n").unwrap();
    assert_eq!(s.read("v/c/HEAD").unwrap(), b"1\n");
    let held = s.map("v/c/HEAD").unwrap();
    s.replace("v/c/HEAD", b"22\n").unwrap();
    assert_eq!(s.read("v/c/HEAD").unwrap(), b"22\n");
    assert_eq!(
        &held[..],
        b"1\n",
        "a mapped file keeps its content when replaced"
    );
    assert!(names(s, TMP).is_empty(), "no temporary is left behind");
    assert_eq!(names(s, "v/c"), ["HEAD"]);
    assert!(s.replace("nowhere/HEAD", b"1").is_err());
}

fn remove(s: &dyn Storage) {
    s.create_dir(TMP).unwrap();
    let t = s.write_temp("r", b"gone").unwrap();
    assert!(s.publish(&t, "f").unwrap());
    let mapped = s.map("f").unwrap();
    s.remove("f").unwrap();
    assert!(!s.exists("f").unwrap());
    assert_eq!(
        &mapped[..],
        b"gone",
        "a mapped file stays readable after removal"
    );
    assert!(s.remove("f").unwrap_err().is_not_found());
}

fn listing(s: &dyn Storage) {
    let before = SystemTime::now() - Duration::from_secs(5);
    s.create_dir(TMP).unwrap();
    s.create_dir("dir/sub").unwrap();
    let t = s.write_temp("l", b"12345").unwrap();
    assert!(s.publish(&t, "dir/file").unwrap());
    let mut entries = s.list("dir").unwrap();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].name, "file");
    assert_eq!(entries[0].meta.len, 5);
    assert!(!entries[0].meta.is_dir);
    assert!(entries[0].meta.modified >= before);
    assert!(entries[0].meta.modified <= SystemTime::now() + Duration::from_secs(5));
    assert_eq!(entries[1].name, "sub");
    assert!(entries[1].meta.is_dir);
    let meta = s.stat("dir/file").unwrap().unwrap();
    assert_eq!((meta.len, meta.is_dir), (5, false));
    assert!(
        s.list("dir/file").is_err(),
        "a file is not listed as a directory"
    );
}

fn missing_files(s: &dyn Storage) {
    assert!(s.read("nope").unwrap_err().is_not_found());
    assert!(s.map("nope").unwrap_err().is_not_found());
    assert!(s.read_range("nope", 0..1).unwrap_err().is_not_found());
    assert!(s.list("nope").unwrap_err().is_not_found());
    assert_eq!(s.stat("nope").unwrap(), None);
    let err = s.read("nope/x").unwrap_err();
    assert!(err.is_not_found());
    let msg = err.to_string();
    assert!(msg.starts_with("read ") && msg.contains("nope"), "{msg}");
}

fn invalid_paths(s: &dyn Storage) {
    for bad in ["/abs", "../x", "a/../b", "a//b", "./a", "a/", "a\\b"] {
        let err = s.read(bad).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad}: {err}");
        assert!(s.stat(bad).is_err(), "{bad}");
        assert!(s.create_dir(bad).is_err(), "{bad}");
    }
}

fn space_and_location(s: &dyn Storage) {
    assert!(s.available_space().unwrap() > 0);
    let here = s.location("deltas/x.delta");
    assert_ne!(here, s.location("deltas/y.delta"));
    assert!(here.starts_with(s.location("")), "{here:?}");
    if let Some(root) = s.local_root() {
        assert_eq!(s.location(""), root);
    }
}

fn inbox(s: &dyn Storage) {
    let a = crate::publish_inbox_delta(s, "lambda-1", b"one").unwrap();
    let b = crate::publish_inbox_delta(s, "lambda-1", b"two").unwrap();
    assert_ne!(a, b);
    assert_eq!(layout::parent(&a), layout::INBOX);
    assert_eq!(s.read(&a).unwrap(), b"one");
    assert_eq!(s.read(&b).unwrap(), b"two");
    assert!(names(s, TMP).is_empty());
}
