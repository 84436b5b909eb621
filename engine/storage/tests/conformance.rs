//! Both backends pass the one conformance suite.

use std::sync::Mutex;

use strata_storage::{conformance, LocalStorage, MemoryStorage, Storage};

#[test]
fn local_storage_conforms() {
    let dirs = Mutex::new(Vec::new());
    conformance::run(&|| {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path().join("store")).unwrap();
        dirs.lock().unwrap().push(dir);
        Box::new(storage) as Box<dyn Storage>
    });
}

#[test]
fn memory_storage_conforms() {
    conformance::run(&|| Box::new(MemoryStorage::new()));
}

#[test]
fn local_storage_new_creates_the_root_and_at_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("a/b");
    let reader = LocalStorage::at(&missing);
    assert!(!missing.exists());
    assert!(reader.list("").unwrap_err().is_not_found());
    let writer = LocalStorage::new(&missing).unwrap();
    assert!(missing.is_dir());
    assert_eq!(writer.local_root(), Some(missing.as_path()));
    assert_eq!(
        writer.location("deltas/x"),
        missing.join("deltas").join("x")
    );
}
