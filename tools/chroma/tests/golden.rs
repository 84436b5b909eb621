//! Golden tests: the persist directories and tarball that real chromadb (1.5.9 and 0.6.3)
//! wrote (`fixtures/make_fixtures.py`), read by strata-chroma and compared record by record
//! with what `collection.get(include=[...])` returned on a copy: ids in order, documents,
//! typed metadata, embeddings bit-exact (the cosine log tail within 1e-6: Chroma returns it
//! re-normalised, the reader the exact f32 the client sent).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use strata_chroma::{ChromaDir, Limits, VectorSource};
use strata_formats::value::metadata_from_json;
use strata_formats::{Metadata, Metric};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The metric each collection was created with (make_fixtures.py).
fn metric_of(name: &str) -> Metric {
    match name {
        "cosine_mixed" | "lines" | "legacy" => Metric::Cosine,
        "ip_mixed" => Metric::Ip,
        _ => Metric::L2,
    }
}

fn compare(dir: &ChromaDir, expected: &Value, case: &str) -> usize {
    let colls = expected["collections"].as_object().unwrap();
    let listed: Vec<String> = dir
        .collections()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    let mut want: Vec<&String> = colls.keys().collect();
    want.sort();
    assert_eq!(
        listed.iter().collect::<Vec<_>>(),
        want,
        "{case}: collections"
    );
    let mut compared = 0;
    for (name, exp) in colls {
        let coll = dir.collection(name).unwrap();
        assert_eq!(coll.metric(), metric_of(name), "{case}/{name}: metric");
        let records: Vec<_> = coll.records().collect::<Result<_, _>>().unwrap();
        let exp_records = exp["records"].as_array().unwrap();
        assert_eq!(
            records.len(),
            exp["count"].as_u64().unwrap() as usize,
            "{case}/{name}"
        );
        assert_eq!(records.len(), exp_records.len(), "{case}/{name}");
        assert_eq!(coll.len(), records.len());
        for (got, want) in records.iter().zip(exp_records) {
            let at = format!("{case}/{name}/{}", got.id);
            assert_eq!(got.id, want["id"].as_str().unwrap(), "{at}: order");
            assert_eq!(
                got.document.as_deref(),
                want["document"].as_str(),
                "{at}: document"
            );
            let meta: Metadata = match &want["metadata"] {
                Value::Null => Metadata::new(),
                Value::Object(o) => metadata_from_json(o).unwrap().0,
                other => panic!("{at}: metadata {other}"),
            };
            assert_eq!(got.metadata, meta, "{at}: metadata");
            let bits: Vec<u32> = want["embedding_bits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(Some(got.embedding.len()), coll.dimension(), "{at}: dims");
            let exact = coll.metric() != Metric::Cosine || got.vector_source == VectorSource::Hnsw;
            for (x, b) in got.embedding.iter().zip(&bits) {
                let y = f32::from_bits(*b);
                if exact {
                    assert_eq!(
                        x.to_bits(),
                        *b,
                        "{at}: {x} vs {y} ({:?})",
                        got.vector_source
                    );
                } else {
                    assert!(
                        (x - y).abs() <= 1e-6 * y.abs().max(1e-3),
                        "{at}: {x} vs {y}"
                    );
                }
            }
            compared += 1;
        }
    }
    compared
}

#[test]
fn chroma_1_5_directory_matches_get() {
    let dir = ChromaDir::open(fixtures().join("v15")).unwrap();
    let n = compare(&dir, &expected("v15.expected.json"), "v15");
    assert!(n > 150, "{n}");
    // The fixture exercises both sources of vectors and deletes inside the HNSW files.
    for name in ["l2_mixed", "cosine_mixed", "ip_mixed"] {
        let coll = dir.collection(name).unwrap();
        let stats = coll.stats();
        let (live, deleted) = stats.hnsw_elements.unwrap();
        assert!(live > 0 && deleted > 0, "{name}: {stats:?}");
        assert!(stats.log_rows_replayed > 0, "{name}: {stats:?}");
        let sources: Vec<_> = coll.records().map(|r| r.unwrap().vector_source).collect();
        assert!(sources.contains(&VectorSource::Hnsw) && sources.contains(&VectorSource::Log));
    }
    let log_only = dir.collection("log_only").unwrap();
    assert_eq!(log_only.stats().hnsw_elements, None);
    let empty = dir.collection("empty").unwrap();
    assert_eq!((empty.dimension(), empty.len()), (None, 0));
}

#[test]
fn chroma_0_6_directory_matches_get() {
    let dir = ChromaDir::open(fixtures().join("v06")).unwrap();
    assert!(compare(&dir, &expected("v06.expected.json"), "v06") > 50);
    let coll = dir.collection("legacy").unwrap();
    // 0.6 wrote "l2" in config_json_str; the real space is in segment_metadata.
    assert_eq!(
        coll.stats().metric_source,
        strata_chroma::MetricSource::LegacyMetadata
    );
}

#[test]
fn delta_directory_layout_matches_get() {
    let dir = ChromaDir::open(fixtures().join("delta_dir")).unwrap();
    assert_eq!(
        compare(&dir, &expected("delta_dir.expected.json"), "delta_dir"),
        25
    );
    assert_eq!(dir.only_collection().unwrap().name(), "words");
}

#[test]
fn delta_tarball_matches_get() {
    let bytes = std::fs::read(fixtures().join("delta.tar.gz")).unwrap();
    let dir = ChromaDir::from_tar_gz(&bytes, &Limits::default()).unwrap();
    assert_eq!(
        compare(&dir, &expected("delta.tar.gz.expected.json"), "tarball"),
        25
    );
}

/// Every file under `root`, relative path → bytes.
fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn object_layout_matches_get_and_a_tarball_of_the_directory_too() {
    let files: Vec<_> = files_under(&fixtures().join("v15")).into_iter().collect();
    let dir = ChromaDir::from_files(files.clone(), &Limits::default()).unwrap();
    compare(&dir, &expected("v15.expected.json"), "v15 objects");

    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, bytes) in &files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, format!("./{name}"), bytes.as_slice())
            .unwrap();
    }
    let gz = tar.into_inner().unwrap().finish().unwrap();
    let dir = ChromaDir::from_tar_gz(&gz, &Limits::default()).unwrap();
    compare(&dir, &expected("v15.expected.json"), "v15 tarball");
}

#[test]
fn reading_never_writes_to_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    for (rel, bytes) in files_under(&fixtures().join("v15")) {
        let p = tmp.path().join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let before = files_under(tmp.path());
    {
        let dir = ChromaDir::open(tmp.path()).unwrap();
        for c in dir.collections().unwrap() {
            let coll = dir.collection(&c.name).unwrap();
            assert_eq!(coll.records().count(), coll.len());
        }
    }
    assert_eq!(files_under(tmp.path()), before);
}
