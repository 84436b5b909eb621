//! Failpoints (the `fail` crate; the engine's dev-dependency on itself turns its
//! `failpoints` feature on for tests) at every I/O step of a write, an inbox ingestion, a
//! commit, the version-file and HEAD publication, a compaction, GC, recovery at open and a
//! producer's inbox publication. For each failpoint, and for each time it is reached in
//! the step (the `n`th fsync of a write, say):
//!
//! * an error return (EIO, ENOSPC; a short write where the step writes): the call returns
//!   a typed `Error::Io` naming the step (the failpoint's name, or the storage operation)
//!   and the file under the store; the store is at the old version or the new one, never a
//!   mix (the writer and a reader of the version files agree); no temporary is left;
//! * a crash: a child process (this binary re-run) aborts at that point;
//!
//! and after either, everything acknowledged before is readable, the next open recovers,
//! the store takes writes again and `verify` passes.
//!
//! `fail`'s registry is global: every test holds a `FailScenario` (which serializes them)
//! and this suite has its own test binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fail::FailScenario;
use strata_engine::{verify_store, Error, Include, ReadableStore, Reader, StoreOptions, Writer};
use strata_formats::{
    DeltaHeader, DeltaWriter, MetaValue, Metric, Op, Operation, Quantization, Record, Seq,
};
use strata_storage::{publish_inbox_delta, LocalStorage, Storage, StorageError};

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
        retain_versions: 1,
        ..StoreOptions::default()
    }
}

fn ids(store: &impl ReadableStore) -> Vec<String> {
    let snap = store.snapshot("c").unwrap();
    let rows = snap.get_where(None, None, 0, Include::ids()).unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The step a failpoint test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// `write` of record `x`.
    Write,
    /// `ingest_inbox` of a producer's delta holding `i`.
    Ingest,
    /// `compact`.
    Compact,
    /// `gc` (old versions and files to collect).
    Gc,
    /// `Writer::open`: recovery republishes a version whose HEAD a failure left behind and
    /// sweeps a killed writer's temporary.
    Open,
    /// A producer's `publish_inbox_delta` (no writer).
    Produce,
}

impl Action {
    fn parse(s: &str) -> Action {
        match s {
            "Write" => Action::Write,
            "Ingest" => Action::Ingest,
            "Compact" => Action::Compact,
            "Gc" => Action::Gc,
            "Open" => Action::Open,
            _ => Action::Produce,
        }
    }

    /// The records before the step, and after it if it went through.
    fn outcomes(self) -> (Vec<String>, Vec<String>) {
        let old = match self {
            Action::Open => strs(&["a", "b", "y"]),
            _ => strs(&["a", "b"]),
        };
        let mut new = old.clone();
        match self {
            Action::Write => new.push("x".into()),
            Action::Ingest => new.push("i".into()),
            _ => {}
        }
        (old, new)
    }
}

fn inbox_delta(id: &str) -> Vec<u8> {
    let header = DeltaHeader {
        collection: "c".into(),
        dims: 2,
        producer: "lambda-1".into(),
        first_seq: Seq::from_u128(1 << 100),
        created_ms: 0,
    };
    let op = Operation {
        seq: Seq::from_u128(1 << 100),
        op: rec(id, 3.0),
    };
    DeltaWriter::encode(&header, &[op]).unwrap()
}

/// A store at `root` with `a` in a segment and `b` in a delta (and older versions and
/// files for GC to collect), plus what `action` needs.
fn prepare(action: Action, root: &Path) {
    let store = Writer::open(root, opts()).unwrap();
    store
        .create_collection("c", 2, Metric::L2, Quantization::None)
        .unwrap();
    store.write("c", vec![rec("a", 1.0)]).unwrap();
    store.compact("c").unwrap();
    store.write("c", vec![rec("b", 2.0)]).unwrap();
    match action {
        Action::Ingest => {
            publish_inbox_delta(&LocalStorage::at(root), "lambda-1", &inbox_delta("i")).unwrap();
        }
        Action::Open => {
            // A write whose manifest commit went through but whose HEAD did not move, and a
            // temporary of a writer killed mid-write.
            fail::cfg("publish HEAD", "return(eio)").unwrap();
            let err = store.write("c", vec![rec("y", 4.0)]).unwrap_err();
            fail::remove("publish HEAD");
            assert!(err.to_string().contains("publish HEAD"), "{err}");
            let temp = LocalStorage::at(root)
                .write_temp("delta", b"partial")
                .unwrap();
            assert!(root.join(temp.path()).exists());
        }
        _ => {}
    }
    store.close().unwrap();
}

/// The error of a failed step, as the test checks it.
#[derive(Debug)]
struct Failure {
    /// `Error::Io`'s (or `StorageError::Io`'s) operation, if it is that variant.
    op: Option<String>,
    path: Option<PathBuf>,
    text: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let text = e.to_string();
        match e {
            Error::Io { op, path, .. } => Failure {
                op: Some(op.to_string()),
                path: Some(path),
                text,
            },
            _ => Failure {
                op: None,
                path: None,
                text,
            },
        }
    }
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Failure {
        Failure::from(Error::from(e))
    }
}

/// Run `action` on the store at `root`, calling `arm` just before the step (after the
/// writer opened, except for `Open`, whose step is the open).
fn run(action: Action, root: &Path, arm: impl FnOnce()) -> Result<Option<Writer>, Failure> {
    match action {
        Action::Open => {
            arm();
            return Ok(Some(Writer::open(root, opts())?));
        }
        Action::Produce => {
            arm();
            publish_inbox_delta(&LocalStorage::at(root), "lambda-1", &inbox_delta("i"))?;
            return Ok(None);
        }
        _ => {}
    }
    let store = Writer::open(root, opts())?;
    arm();
    let result = match action {
        Action::Write => store.write("c", vec![rec("x", 9.0)]).map(|_| ()),
        Action::Ingest => store.ingest_inbox().map(|r| {
            assert_eq!(r.ingested.len(), 1, "ingest: {r:?}");
        }),
        Action::Compact => store.compact("c").map(|_| ()),
        Action::Gc => store.gc().map(|r| {
            assert!(r.files_deleted > 0, "{r:?}");
        }),
        Action::Open | Action::Produce => unreachable!(),
    };
    match result {
        Ok(()) => Ok(Some(store)),
        Err(e) => {
            // Reads keep working after the failure; the store is at the old or new version.
            let (old, new) = action.outcomes();
            let got = ids(&store);
            assert!(got == old || got == new, "{action:?} after {e}: {got:?}");
            Err(e.into())
        }
    }
}

/// The temporaries in the store's `tmp/`.
fn temporaries(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("tmp"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// After a failure (an error or a crash): the next open recovers, everything acknowledged
/// is there, the store is at the old or new version, writer and reader agree, no writer
/// temporary is left, new writes go through, and `verify` passes.
fn check_recovered(action: Action, root: &Path, what: &str) {
    let (old, new) = action.outcomes();
    let store = Writer::open(root, opts()).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    let left: Vec<_> = temporaries(root)
        .into_iter()
        .filter(|t| !t.contains("-inbox."))
        .collect();
    assert!(left.is_empty(), "{what}: writer temporaries left: {left:?}");
    let mut got = ids(&store);
    assert!(
        got == old || got == new,
        "{what}: {got:?}, not {old:?} nor {new:?}"
    );
    let reader = Reader::open(root).unwrap();
    assert_eq!(
        reader.head("c").unwrap(),
        store.head("c").unwrap(),
        "{what}: HEAD and the manifest disagree"
    );
    assert_eq!(ids(&reader), got, "{what}: the reader sees another store");
    if action == Action::Ingest || action == Action::Produce {
        store.ingest_inbox().unwrap();
        got = ids(&store);
        let is = got.iter().filter(|id| *id == "i").count();
        assert!(is <= 1, "{what}: ingested twice: {got:?}");
        if action == Action::Ingest {
            assert_eq!(is, 1, "{what}: the inbox file was lost: {got:?}");
        }
    }
    store.write("c", vec![rec("z", 5.0)]).unwrap();
    store.compact("c").unwrap();
    store.gc().unwrap();
    // The version files are the manifest's versions, no more: a GC stopped between its
    // commit and its deletions leaves nothing behind once the next one has run.
    let numbers = |v: Vec<strata_engine::VersionInfo>| -> Vec<u64> {
        v.into_iter().map(|v| v.version).collect()
    };
    assert_eq!(
        numbers(Reader::open(root).unwrap().versions("c").unwrap()),
        numbers(store.versions("c").unwrap()),
        "{what}: version files that name no version"
    );
    let after = ids(&store);
    assert!(after.contains(&"z".to_string()), "{what}: {after:?}");
    assert!(got.iter().all(|id| after.contains(id)), "{what}: {after:?}");
    store.close().unwrap();
    let report = verify_store(root).unwrap();
    assert!(report.ok(), "{what}: verify: {:?}", report.problems);
}

/// How many times `action` reaches failpoint `name`.
fn hits(action: Action, name: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    prepare(action, &root);
    let n = Arc::new(AtomicUsize::new(0));
    let counter = n.clone();
    let name = name.to_string();
    let r = run(action, &root, || {
        fail::cfg_callback(&name, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
    });
    fail::remove(&name);
    assert!(r.is_ok(), "{action:?} fails without faults: {:?}", r.err());
    n.load(Ordering::SeqCst)
}

/// Fail the `nth` time the failpoint is reached with `return(arg)`.
fn config(nth: usize, arg: &str) -> String {
    if nth <= 1 {
        format!("1*return({arg})")
    } else {
        format!("{}*off->1*return({arg})", nth - 1)
    }
}

/// Every error return (`args`) at every time `action` reaches failpoint `name`.
fn errors_at(action: Action, name: &str, args: &[&str]) {
    let _scenario = FailScenario::setup();
    let n = hits(action, name);
    assert!(n >= 1, "{action:?} never reaches failpoint {name:?}");
    for nth in 1..=n {
        for arg in args {
            let what = format!("{action:?}: {name} #{nth} return({arg})");
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("store");
            prepare(action, &root);
            let before = temporaries(&root);
            let r = run(action, &root, || {
                fail::cfg(name, &config(nth, arg)).unwrap()
            })
            .map(drop);
            fail::remove(name);
            let short_is_fine = *arg == "short" && name == "storage::temp_write";
            match r {
                Ok(_) if short_is_fine => {}
                Ok(_) => panic!("{what}: the step succeeded"),
                Err(f) => {
                    assert!(
                        !short_is_fine,
                        "{what}: a short write(2) must be retried: {f:?}"
                    );
                    let op =
                        f.op.as_deref()
                            .unwrap_or_else(|| panic!("{what}: untyped {f:?}"));
                    let path = f.path.as_deref().unwrap();
                    assert!(
                        path.starts_with(&root),
                        "{what}: {path:?} is not in the store"
                    );
                    let named = op == name
                        || f.text.contains(name)
                        || (*arg == "short" && f.text.contains("short write"));
                    assert!(
                        named,
                        "{what}: the error names neither step nor fault: {f:?}"
                    );
                    if *arg == "enospc" || *arg == "short" {
                        assert!(
                            f.text.to_lowercase().contains("no space left"),
                            "{what}: {f:?}"
                        );
                    }
                    // The failed call left no temporary of its own (a killed writer's,
                    // which recovery was about to sweep, may still be there).
                    let left: Vec<_> = temporaries(&root)
                        .into_iter()
                        .filter(|t| !before.contains(t))
                        .collect();
                    assert!(left.is_empty(), "{what}: temporaries left: {left:?}");
                }
            }
            check_recovered(action, &root, &what);
        }
    }
}

/// A crash (the process aborts) at every time `action` reaches failpoint `name`.
fn crashes_at(action: Action, name: &str) {
    let _scenario = FailScenario::setup();
    let n = hits(action, name);
    assert!(n >= 1, "{action:?} never reaches failpoint {name:?}");
    for nth in 1..=n {
        let what = format!("{action:?}: crash at {name} #{nth}");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        prepare(action, &root);
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("STRATA_FP_CHILD", &root)
            .env("STRATA_FP_ACTION", format!("{action:?}"))
            .env("STRATA_FP_NAME", name)
            .env("STRATA_FP_NTH", nth.to_string())
            .output()
            .unwrap();
        assert!(
            !status.status.success(),
            "{what}: the child did not crash: {}",
            String::from_utf8_lossy(&status.stdout)
        );
        let stderr = String::from_utf8_lossy(&status.stderr);
        assert!(
            stderr.contains("failpoint crash"),
            "{what}: the child failed otherwise: {stderr}"
        );
        check_recovered(action, &root, &what);
    }
}

/// The child of `crashes_at`: run the step, aborting the `nth` time the failpoint is hit.
#[test]
fn crash_child() {
    let Some(root) = std::env::var_os("STRATA_FP_CHILD") else {
        return;
    };
    let _scenario = FailScenario::setup();
    let action = Action::parse(&std::env::var("STRATA_FP_ACTION").unwrap());
    let name = std::env::var("STRATA_FP_NAME").unwrap();
    let nth: usize = std::env::var("STRATA_FP_NTH").unwrap().parse().unwrap();
    let seen = AtomicUsize::new(0);
    let r = run(action, Path::new(&root), || {
        fail::cfg_callback(&name, move || {
            if seen.fetch_add(1, Ordering::SeqCst) + 1 == nth {
                eprintln!("failpoint crash");
                std::process::abort();
            }
        })
        .unwrap()
    });
    println!(
        "the step finished without reaching the crash: {:?}",
        r.err()
    );
}

const ERRORS: &[&str] = &["eio", "enospc"];
const WRITES: &[&str] = &["eio", "enospc", "short"];

macro_rules! failpoint_tests {
    ($($test:ident: $action:ident at $name:literal with $args:expr;)*) => {
        $(
            #[test]
            fn $test() {
                errors_at(Action::$action, $name, $args);
                crashes_at(Action::$action, $name);
            }
        )*
    };
}

failpoint_tests! {
    write_delta: Write at "write delta" with ERRORS;
    write_storage_write: Write at "storage::write" with WRITES;
    write_fsync: Write at "storage::fsync" with ERRORS;
    write_publish: Write at "publish file" with ERRORS;
    write_link: Write at "storage::link" with ERRORS;
    write_fsync_dir: Write at "storage::fsync_dir" with ERRORS;
    write_manifest_commit: Write at "manifest commit" with ERRORS;
    write_version_file: Write at "publish version file" with ERRORS;
    write_head: Write at "publish HEAD" with ERRORS;
    write_head_rename: Write at "storage::rename" with ERRORS;
    ingest_read: Ingest at "ingest: read inbox file" with ERRORS;
    ingest_link: Ingest at "ingest: link delta" with ERRORS;
    ingest_storage_link: Ingest at "storage::link" with ERRORS;
    ingest_fsync_dir: Ingest at "storage::fsync_dir" with ERRORS;
    ingest_manifest_commit: Ingest at "manifest commit" with ERRORS;
    ingest_fsync: Ingest at "storage::fsync" with ERRORS;
    compact_segment: Compact at "compact: write segment" with ERRORS;
    compact_temp_write: Compact at "storage::temp_write" with WRITES;
    compact_fsync: Compact at "storage::fsync" with ERRORS;
    compact_publish: Compact at "publish file" with ERRORS;
    compact_fsync_dir: Compact at "storage::fsync_dir" with ERRORS;
    compact_manifest_commit: Compact at "manifest commit" with ERRORS;
    compact_version_file: Compact at "publish version file" with ERRORS;
    compact_head: Compact at "publish HEAD" with ERRORS;
    gc_manifest_commit: Gc at "manifest commit" with ERRORS;
    gc_remove: Gc at "gc: remove" with ERRORS;
    gc_storage_remove: Gc at "storage::remove" with ERRORS;
    gc_fsync_dir: Gc at "storage::fsync_dir" with ERRORS;
    recover_sweep: Open at "recover: sweep temporaries" with ERRORS;
    recover_republish: Open at "recover: republish version" with ERRORS;
    recover_write: Open at "storage::write" with WRITES;
    recover_fsync: Open at "storage::fsync" with ERRORS;
    recover_fsync_dir: Open at "storage::fsync_dir" with ERRORS;
    produce_publish: Produce at "inbox: publish" with ERRORS;
    produce_write: Produce at "storage::write" with WRITES;
    produce_fsync: Produce at "storage::fsync" with ERRORS;
}
