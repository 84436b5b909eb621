//! Refusals: unsafe or oversized tarballs, files that are not Chroma databases, segment
//! files whose headers lie, layouts the reader does not read (SPANN, a hot journal, a
//! persisted index whose files are gone). Each is a typed error naming the file and what
//! was wrong, and the source directory is left byte for byte as it was.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use strata_chroma::{ChromaDir, ChromaError, Limits};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

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

/// A private copy of a fixture directory.
fn copy_of(case: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (rel, bytes) in files_under(&fixtures().join(case)) {
        let p = tmp.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    tmp
}

/// One raw ustar entry: name, type flag, link target, data.
struct Raw<'a>(&'a [u8], u8, &'a [u8], &'a [u8]);

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}\0", v, width = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

/// A gzip tarball written header by header, so that names the `tar` crate's builder
/// refuses (`..`, absolute) can be made.
fn raw_tar_gz(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut tar = Vec::new();
    for Raw(name, kind, link, data) in entries {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], 0);
        h[156] = *kind;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        tar.extend_from_slice(&h);
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn sqlite_bytes() -> Vec<u8> {
    std::fs::read(fixtures().join("delta_dir/chroma.sqlite3")).unwrap()
}

#[test]
fn members_that_would_land_outside_refuse_the_whole_tarball() {
    let db = sqlite_bytes();
    let cases: Vec<(Raw<'_>, &str)> = vec![
        (Raw(b"/etc/passwd", b'0', b"", b"x"), "absolute"),
        (Raw(b"../evil", b'0', b"", b"x"), ".."),
        (Raw(b"./a/../../evil", b'0', b"", b"x"), ".."),
        (Raw(b"link", b'2', b"/etc/passwd", b""), "links"),
        (Raw(b"seg/header.bin", b'2', b"../../outside", b""), "links"),
        (Raw(b"hard", b'1', b"../outside", b""), "links"),
        (Raw(b"fifo", b'6', b"", b""), "entry type"),
    ];
    for (bad, why) in cases {
        let name = String::from_utf8_lossy(bad.0).into_owned();
        // A valid database first: the bad member still refuses everything.
        let gz = raw_tar_gz(&[Raw(b"./chroma.sqlite3", b'0', b"", &db), bad]);
        let err = ChromaDir::from_tar_gz(&gz, &Limits::default()).unwrap_err();
        match &err {
            ChromaError::UnsafeMember { member, reason } => {
                assert_eq!(member, &name);
                assert!(reason.contains(why), "{name}: {reason}");
            }
            other => panic!("{name}: {other}"),
        }
        assert!(err.to_string().contains("whole tarball is refused"));
    }
}

#[test]
fn sizes_are_bounded() {
    let db = sqlite_bytes();
    let small = Limits {
        max_member_bytes: 1 << 20,
        max_total_bytes: 1 << 20,
        max_members: 4,
    };
    // One member over the member limit.
    let big = vec![0u8; (1 << 20) + 1];
    let gz = raw_tar_gz(&[Raw(b"big.bin", b'0', b"", &big)]);
    match ChromaDir::from_tar_gz(&gz, &small).unwrap_err() {
        ChromaError::Limit { file, what, .. } => {
            assert_eq!(file, "big.bin");
            assert_eq!(what, "the member size");
        }
        other => panic!("{other}"),
    }
    // Members each under the limit, together over the total.
    let half = vec![0u8; 600 << 10];
    let gz = raw_tar_gz(&[Raw(b"a", b'0', b"", &half), Raw(b"b", b'0', b"", &half)]);
    assert!(matches!(
        ChromaDir::from_tar_gz(&gz, &small).unwrap_err(),
        ChromaError::Limit {
            what: "the total uncompressed size",
            ..
        }
    ));
    // Too many entries.
    let many: Vec<Raw<'_>> = (0..5).map(|_| Raw(b"d/", b'5', b"", b"")).collect();
    assert!(matches!(
        ChromaDir::from_tar_gz(&raw_tar_gz(&many), &small).unwrap_err(),
        ChromaError::Limit {
            what: "the number of entries",
            ..
        }
    ));
    // A gzip bomb: 64 MiB of zeros in ~64 KiB, refused at its header, long before the end.
    let zeros = vec![0u8; 64 << 20];
    let gz = raw_tar_gz(&[
        Raw(b"./chroma.sqlite3", b'0', b"", &db),
        Raw(b"bomb", b'0', b"", &zeros),
    ]);
    assert!(gz.len() < 1 << 20);
    assert!(matches!(
        ChromaDir::from_tar_gz(&gz, &small).unwrap_err(),
        ChromaError::Limit { .. }
    ));
    // Not gzip at all.
    assert!(matches!(
        ChromaDir::from_tar_gz(b"not a tarball", &Limits::default()).unwrap_err(),
        ChromaError::Tar { .. }
    ));
}

#[test]
fn a_database_that_is_not_chroma_is_refused() {
    let gz = raw_tar_gz(&[Raw(b"chroma.sqlite3", b'0', b"", b"SQLite? no, just text that is long enough to pass a length check, really, many bytes here.")]);
    match ChromaDir::from_tar_gz(&gz, &Limits::default()).unwrap_err() {
        ChromaError::NotChroma { file, .. } => assert_eq!(file, "chroma.sqlite3"),
        other => panic!("{other}"),
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("chroma.sqlite3");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE collections (id TEXT); CREATE TABLE other (x);")
        .unwrap();
    drop(conn);
    let before = files_under(tmp.path());
    let err = ChromaDir::open(tmp.path()).unwrap_err();
    assert!(
        matches!(&err, ChromaError::NotChroma { reason, .. } if reason.contains("column name")),
        "{err}"
    );
    assert_eq!(files_under(tmp.path()), before);
    // Missing database file.
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        ChromaDir::open(empty.path()).unwrap_err(),
        ChromaError::Missing { .. }
    ));
}

fn vector_segment(dir: &Path) -> String {
    files_under(dir)
        .keys()
        .find_map(|k| k.strip_suffix("/header.bin").map(str::to_string))
        .unwrap()
}

fn patch(path: &Path, at: usize, bytes: &[u8]) {
    let mut b = std::fs::read(path).unwrap();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, b).unwrap();
}

/// Open the copy's only collection, expecting a refusal; the copy is unchanged.
fn refused(dir: &Path) -> ChromaError {
    let before = files_under(dir);
    let err = ChromaDir::open(dir)
        .and_then(|d| d.only_collection().map(|_| ()))
        .unwrap_err();
    assert_eq!(files_under(dir), before, "the source changed");
    err
}

#[test]
fn a_header_claiming_more_than_the_files_hold_is_refused() {
    let tmp = copy_of("delta_dir");
    let seg = vector_segment(tmp.path());
    let header = tmp.path().join(&seg).join("header.bin");
    // cur_element_count and max_elements far beyond data_level0.bin.
    patch(&header, 12, &(1u64 << 40).to_le_bytes());
    patch(&header, 20, &(1u64 << 40).to_le_bytes());
    let err = refused(tmp.path());
    assert!(
        matches!(&err, ChromaError::Segment { file, reason } if file.ends_with("header.bin") && reason.contains("claims")),
        "{err}"
    );

    // More dimensions than the collection (label_offset moved, size kept consistent).
    let tmp = copy_of("delta_dir");
    let header = tmp.path().join(&seg).join("header.bin");
    let b = std::fs::read(&header).unwrap();
    let label_offset = u64::from_le_bytes(b[36..44].try_into().unwrap()) + 4 * 1000;
    patch(&header, 36, &label_offset.to_le_bytes());
    patch(&header, 28, &(label_offset + 8).to_le_bytes());
    let err = refused(tmp.path());
    assert!(matches!(err, ChromaError::Segment { .. }), "{err}");

    // A truncated data_level0.bin.
    let tmp = copy_of("delta_dir");
    let data = tmp.path().join(&seg).join("data_level0.bin");
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(len / 10)
        .unwrap();
    let err = refused(tmp.path());
    assert!(
        matches!(&err, ChromaError::Segment { reason, .. } if reason.contains("claims")),
        "{err}"
    );

    // A garbage pickle.
    let tmp = copy_of("delta_dir");
    std::fs::write(
        tmp.path().join(&seg).join("index_metadata.pickle"),
        b"\x80\x03}(X\xff\xff",
    )
    .unwrap();
    let err = refused(tmp.path());
    assert!(
        matches!(&err, ChromaError::Segment { file, .. } if file.ends_with("index_metadata.pickle")),
        "{err}"
    );
}

#[test]
fn a_persisted_index_whose_files_are_gone_is_refused() {
    let tmp = copy_of("delta_dir");
    let seg = vector_segment(tmp.path());
    std::fs::remove_file(tmp.path().join(&seg).join("index_metadata.pickle")).unwrap();
    let err = refused(tmp.path());
    assert!(
        matches!(&err, ChromaError::Missing { file, why } if file.ends_with("index_metadata.pickle") && why.contains("max_seq_id")),
        "{err}"
    );
    let tmp = copy_of("delta_dir");
    std::fs::remove_file(tmp.path().join(&seg).join("data_level0.bin")).unwrap();
    assert!(matches!(refused(tmp.path()), ChromaError::Missing { .. }));
}

fn edit(dir: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join("chroma.sqlite3")).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn spann_and_other_segment_types_are_refused() {
    let tmp = copy_of("delta_dir");
    edit(
        tmp.path(),
        "UPDATE segments SET type = 'urn:chroma:segment/vector/spann' WHERE scope = 'VECTOR'",
    );
    let err = refused(tmp.path());
    assert!(
        matches!(&err, ChromaError::Unsupported { what, .. } if what.contains("spann")),
        "{err}"
    );
    let tmp = copy_of("delta_dir");
    edit(
        tmp.path(),
        r##"UPDATE collections SET schema_str = '{"keys":{"#embedding":{"float_list":{"vector_index":{"config":{"space":"l2","spann":{"search_nprobe":64}}}}}}}'"##,
    );
    let err = refused(tmp.path());
    assert!(
        matches!(&err, ChromaError::Unsupported { what, .. } if what.contains("SPANN")),
        "{err}"
    );
}

#[test]
fn a_hot_journal_or_a_lagging_metadata_segment_is_refused() {
    let tmp = copy_of("delta_dir");
    std::fs::write(tmp.path().join("chroma.sqlite3-journal"), b"journal").unwrap();
    let err = refused(tmp.path());
    assert!(
        matches!(&err, ChromaError::Unsupported { what, .. } if what.contains("journal")),
        "{err}"
    );

    let tmp = copy_of("delta_dir");
    edit(tmp.path(), "UPDATE max_seq_id SET seq_id = 1 WHERE segment_id IN (SELECT id FROM segments WHERE scope = 'METADATA')");
    let err = refused(tmp.path());
    assert!(
        matches!(&err, ChromaError::Unsupported { what, .. } if what.contains("behind the log")),
        "{err}"
    );
}

#[test]
fn records_without_vectors_are_refused() {
    let tmp = copy_of("delta_dir");
    edit(
        tmp.path(),
        "INSERT INTO embeddings (segment_id, embedding_id, seq_id) \
         SELECT id, 'ghost', 1 FROM segments WHERE scope = 'METADATA'",
    );
    let err = refused(tmp.path());
    assert!(
        matches!(&err, ChromaError::Inconsistent { reason, .. } if reason.contains("live vectors")),
        "{err}"
    );
}
