//! `strata import-chroma` end to end through the binary: the golden Chroma fixtures of
//! strata-chroma imported record for record (directory, tarball, and the seed's S3 layout
//! against moto when STRATA_TEST_S3_ENDPOINT is set), importing twice changes nothing,
//! later writes win over a re-import, and every refused source writes nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use strata_chroma::ChromaDir;
use strata_engine::{Include, ReadableStore, Reader};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../chroma/fixtures")
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_env(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--store")
        .arg(store)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn import(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = vec!["--json", "import-chroma"];
    all.extend_from_slice(args);
    let o = run_env(store, &all, env);
    assert_eq!(
        o.code, 0,
        "import {args:?} failed:\n{}\n{}",
        o.stdout, o.stderr
    );
    serde_json::from_str(&o.stdout).unwrap()
}

/// Every record of a strata collection, by id.
fn store_records(store: &Path, name: &str) -> BTreeMap<String, strata_engine::RecordOut> {
    let reader = Reader::open(store).unwrap();
    let snap = reader.snapshot(name).unwrap();
    snap.get_where(None, None, 0, Include::all())
        .unwrap()
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect()
}

fn versions(store: &Path, name: &str) -> usize {
    Reader::open(store).unwrap().versions(name).unwrap().len()
}

/// The store holds exactly the Chroma collection's records.
fn assert_same(store: &Path, name: &str, dir: &ChromaDir, chroma_name: &str) {
    let coll = dir.collection(chroma_name).unwrap();
    let got = store_records(store, name);
    assert_eq!(got.len(), coll.len(), "{name}");
    for r in coll.records() {
        let r = r.unwrap();
        let s = &got[&r.id];
        assert_eq!(
            s.embedding.as_deref(),
            Some(r.embedding.as_slice()),
            "{}",
            r.id
        );
        assert_eq!(s.document, r.document, "{}", r.id);
        assert_eq!(s.metadata.as_ref(), Some(&r.metadata), "{}", r.id);
    }
    let info = Reader::open(store).unwrap().collection_info(name).unwrap();
    assert_eq!(info.metric, coll.metric());
    assert_eq!(Some(info.dims as usize), coll.dimension());
}

#[test]
fn a_directory_imports_record_for_record_and_twice_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = fixtures().join("v15");
    let dir = ChromaDir::open(&src).unwrap();
    for name in ["l2_mixed", "cosine_mixed", "ip_mixed", "log_only"] {
        let out = import(&store, &[src.to_str().unwrap(), "--collection", name], &[]);
        let n = dir.collection(name).unwrap().len() as u64;
        assert_eq!(out["records"], n);
        assert_eq!(out["written"], n);
        assert_eq!(out["with_embedding"], n);
        assert_eq!(out["without_embedding"], 0);
        assert!(out["metadata_keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "ls"));
        assert_same(&store, name, &dir, name);
        let before = store_records(&store, name);
        let v = versions(&store, name);
        let again = import(&store, &[src.to_str().unwrap(), "--collection", name], &[]);
        assert_eq!(
            (again["written"].as_u64(), again["unchanged"].as_u64()),
            (Some(0), Some(n))
        );
        assert_eq!(versions(&store, name), v, "a second import wrote a version");
        assert_eq!(store_records(&store, name), before);
    }
}

#[test]
fn a_tarball_imports_under_another_name_and_later_writes_win() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let tarball = fixtures().join("delta.tar.gz");
    let out = import(&store, &[tarball.to_str().unwrap(), "--as", "rows"], &[]);
    assert_eq!(
        (
            out["chroma_collection"].as_str(),
            out["collection"].as_str()
        ),
        (Some("lines"), Some("rows"))
    );
    assert_eq!(out["metric"], "cosine");
    let dir =
        ChromaDir::from_tar_gz(&std::fs::read(&tarball).unwrap(), &Default::default()).unwrap();
    assert_same(&store, "rows", &dir, "lines");

    // A later write (writer-stamped, after everything the collection has seen) survives
    // a re-import of the same source.
    let id = "IMAGE#0001#RECEIPT#00001#LINE#00003";
    let patch = tmp.path().join("patch.jsonl");
    std::fs::write(
        &patch,
        format!("{{\"id\": \"{id}\", \"metadata\": {{\"confidence\": 0.25, \"new\": true}}}}\n"),
    )
    .unwrap();
    let o = run_env(
        &store,
        &["update", "rows", "--file", patch.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    import(&store, &[tarball.to_str().unwrap(), "--as", "rows"], &[]);
    let meta = store_records(&store, "rows")[id].metadata.clone().unwrap();
    assert_eq!(meta["confidence"], strata_formats::MetaValue::Float(0.25));
    assert_eq!(meta["new"], strata_formats::MetaValue::Bool(true));
}

fn raw_tar_gz(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = h.to_vec();
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, dest).unwrap();
        }
    }
}

#[test]
fn refused_sources_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let evil = tmp.path().join("evil.tar.gz");
    std::fs::write(&evil, raw_tar_gz(b"../../outside", b"x")).unwrap();
    let not_chroma = tmp.path().join("not-chroma.tar.gz");
    std::fs::write(&not_chroma, raw_tar_gz(b"chroma.sqlite3", &[7u8; 4096])).unwrap();
    let spann = tmp.path().join("spann");
    copy_dir(&fixtures().join("delta_dir"), &spann);
    let conn = rusqlite::Connection::open(spann.join("chroma.sqlite3")).unwrap();
    conn.execute(
        "UPDATE segments SET type = 'urn:chroma:segment/vector/spann' WHERE scope = 'VECTOR'",
        [],
    )
    .unwrap();
    drop(conn);
    let cases = [
        (evil.to_str().unwrap(), "whole tarball is refused"),
        (not_chroma.to_str().unwrap(), "not a Chroma database"),
        (spann.to_str().unwrap(), "spann"),
        ("/no/such/dir", "no such directory"),
    ];
    for (source, want) in cases {
        let o = run_env(&store, &["import-chroma", source], &[]);
        assert_eq!(o.code, 1, "{source}: {}", o.stderr);
        assert!(o.stderr.contains(want), "{source}: {}", o.stderr);
        assert!(!store.exists(), "{source}: the store was created");
    }
    assert!(!tmp.path().join("outside").exists());

    // A collection that exists with other dims: refused, the store's data unchanged.
    let o = run_env(&store, &["create", "words", "--dims", "16"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v = versions(&store, "words");
    let o = run_env(
        &store,
        &[
            "import-chroma",
            fixtures().join("delta_dir").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("exists with 16 dims"), "{}", o.stderr);
    assert_eq!(versions(&store, "words"), v);
    assert!(store_records(&store, "words").is_empty());
}

fn put_objects(endpoint: &str, bucket: &str, objects: Vec<(String, Vec<u8>)>) {
    use object_store::ObjectStore;
    let s3 = strata_testkit::s3::client(endpoint, bucket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (key, bytes) in objects {
            s3.put(&object_store::path::Path::from(key), bytes.into())
                .await
                .unwrap();
        }
    });
}

#[test]
fn the_seed_s3_layout_imports_through_object_store() {
    let Ok(endpoint) = std::env::var("STRATA_TEST_S3_ENDPOINT") else {
        println!("skipping the S3 import test: STRATA_TEST_S3_ENDPOINT is not set (bash .ci/moto.sh start)");
        return;
    };
    let bucket = format!("chroma-import-{}", std::process::id());
    strata_testkit::s3::create_bucket(&endpoint, &bucket);
    let version = "20260101_000000_000000_ab12cd34";
    let mut objects = vec![
        (
            "lines/snapshot/latest-pointer.txt".to_string(),
            format!("{version}\n").into_bytes(),
        ),
        (
            format!("lines/snapshot/timestamped/{version}/snapshot.tar.gz"),
            std::fs::read(fixtures().join("delta.tar.gz")).unwrap(),
        ),
        (
            "words/snapshot/latest-pointer.txt".to_string(),
            version.as_bytes().to_vec(),
        ),
        (
            format!("words/snapshot/timestamped/{version}/.snapshot_hash"),
            b"md5:0".to_vec(),
        ),
    ];
    let legacy = fixtures().join("delta_dir");
    let mut stack = vec![legacy.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(&legacy)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                objects.push((
                    format!("words/snapshot/timestamped/{version}/{rel}"),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    put_objects(&endpoint, &bucket, objects);
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let out = import(&store, &[&format!("s3://{bucket}/lines")], &env);
    assert_eq!(
        (out["collection"].as_str(), out["records"].as_u64()),
        (Some("lines"), Some(25))
    );
    let dir = ChromaDir::from_tar_gz(
        &std::fs::read(fixtures().join("delta.tar.gz")).unwrap(),
        &Default::default(),
    )
    .unwrap();
    assert_same(&store, "lines", &dir, "lines");
    let out = import(&store, &[&format!("s3://{bucket}/words")], &env);
    assert_eq!(out["records"], 25);
    assert_same(&store, "words", &ChromaDir::open(&legacy).unwrap(), "words");
    // No pointer: a clear error, nothing written.
    let o = run_env(
        &store,
        &["import-chroma", &format!("s3://{bucket}/nothing")],
        &env,
    );
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("latest-pointer.txt: not found"),
        "{}",
        o.stderr
    );
    assert!(Reader::open(&store)
        .unwrap()
        .collection_info("nothing")
        .is_err());
}
