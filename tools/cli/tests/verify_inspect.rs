//! `strata verify` and `strata inspect` on a real store: a flipped byte in any block of a
//! real segment makes verify exit 1 naming the file and the block.

use std::process::Command;

use strata_engine::{StoreOptions, Writer};
use strata_formats::segment::{BlockKind, SegmentLayout};
use strata_formats::{AlignedBuf, MetaValue, Metric, Op, Quantization, Record};

fn strata(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn build_store(dir: &std::path::Path) -> std::path::PathBuf {
    let store = Writer::open(dir, StoreOptions::default()).unwrap();
    store
        .create_collection("lines", 8, Metric::L2, Quantization::I8)
        .unwrap();
    let ops = (0..40)
        .map(|i| {
            Op::Upsert(Record {
                id: format!("line-{i}"),
                embedding: Some(strata_formats::samples::vector(i, 8)),
                document: Some(format!("LINE {i}")),
                metadata: [("receipt_id".to_string(), MetaValue::Int(i as i64 % 3))]
                    .into_iter()
                    .collect(),
            })
        })
        .collect();
    store.write("lines", ops).unwrap();
    store
        .write(
            "lines",
            vec![Op::Delete(strata_formats::Target::Id("line-3".into()))],
        )
        .unwrap();
    store.compact("lines").unwrap();
    store.close().unwrap();
    std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

#[test]
fn verify_names_the_file_and_block_of_any_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let seg = build_store(dir.path());
    let store = dir.path().to_str().unwrap();
    let (code, out, _) = strata(&["verify", store]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": ok"), "{out}");

    let good = std::fs::read(&seg).unwrap();
    let layout = SegmentLayout::parse(AlignedBuf::copy_from(&good).as_bytes()).unwrap();
    let mut checked = 0;
    for block in &layout.blocks {
        if block.len == 0 {
            continue;
        }
        let mut bad = good.clone();
        bad[(block.offset + block.len / 2) as usize] ^= 0x01;
        std::fs::write(&seg, &bad).unwrap();
        let (code, out, _) = strata(&["--store", store, "verify"]);
        assert_eq!(code, 1, "flip in {} not caught: {out}", block.kind.name());
        assert!(out.contains(&seg.display().to_string()), "{out}");
        assert!(
            out.contains(&format!("{} block", block.kind.name())),
            "block {} not named: {out}",
            block.kind.name()
        );
        checked += 1;
    }
    std::fs::write(&seg, &good).unwrap();
    assert!(layout
        .blocks
        .iter()
        .any(|b| b.kind == BlockKind::QuantI8Codes));
    assert!(checked >= 8, "only {checked} blocks checked");
    // Header and table too.
    for at in [20usize, good.len() - 30] {
        let mut bad = good.clone();
        bad[at] ^= 0x80;
        std::fs::write(&seg, &bad).unwrap();
        let (code, out, _) = strata(&["verify", store, "--json"]);
        assert_eq!(code, 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["ok"], false);
    }
    std::fs::write(&seg, &good).unwrap();
}

#[test]
fn inspect_describes_each_kind_and_flags_damage() {
    let dir = tempfile::tempdir().unwrap();
    let seg = build_store(dir.path());
    let (code, out, _) = strata(&["inspect", seg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("segment file") && out.contains("dims            8"),
        "{out}"
    );
    assert!(out.contains("count           39"), "{out}");
    assert!(out.contains("checksums       ok"), "{out}");
    let version = std::fs::read_dir(dir.path().join("versions/lines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "version"))
        .unwrap();
    let (code, out, _) = strata(&["inspect", version.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kind"], "version file");
    assert_eq!(v["collection"], "lines");
    let mut bad = std::fs::read(&seg).unwrap();
    bad[300] ^= 4;
    let damaged = dir.path().join("damaged.seg");
    std::fs::write(&damaged, &bad).unwrap();
    let (code, out, _) = strata(&["inspect", damaged.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAILED") && out.contains("checksum mismatch"),
        "{out}"
    );
    let (code, _, err) = strata(&["inspect", "/nonexistent/file"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/file"), "{err}");
    let (code, _, _) = strata(&["no-such-command"]);
    assert_eq!(code, 2);
}
