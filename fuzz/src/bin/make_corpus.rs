//! Writes the seed corpora of the fuzz targets from `strata_formats::samples`:
//! `cargo run --features make-corpus --bin make-corpus` in fuzz/ (any toolchain). Seeds are
//! named `seed-*` so that the repository keeps them (libFuzzer's own discoveries are
//! hash-named and ignored).

use std::fs;
use std::path::{Path, PathBuf};

use strata_formats::samples;
use strata_formats::Quantization;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("create corpus dir");
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    println!("{:>7} bytes  {}", bytes.len(), path.display());
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");

    let delta = root.join("delta");
    let sealed = samples::delta();
    write(&delta, "seed-delta-small", &sealed);
    // A torn file: header and the first records, no seal (what a crash leaves).
    write(&delta, "seed-delta-torn", &sealed[..sealed.len() - 100]);
    write(&delta, "seed-delta-header-only", &sealed[..0x45]);

    let segment = root.join("segment");
    write(&segment, "seed-segment-small", &samples::segment());
    write(
        &segment,
        "seed-segment-history",
        &samples::segment_with_history(3, 4),
    );
    for (name, dims, rows, quant) in [
        ("seed-segment-4x5-none", 4, 5, Quantization::None),
        ("seed-segment-4x5-bit", 4, 5, Quantization::Bit),
        ("seed-segment-9x3-bit", 9, 3, Quantization::Bit),
        ("seed-segment-3x6-i8", 3, 6, Quantization::I8),
        ("seed-segment-0x4-metaonly", 0, 4, Quantization::None),
        ("seed-segment-8x0-empty", 8, 0, Quantization::I8),
        ("seed-segment-1x1-none", 1, 1, Quantization::None),
    ] {
        write(&segment, name, &samples::segment_with(dims, rows, quant));
    }

    let version = root.join("version");
    write(&version, "seed-version-small", &samples::version());
    let mut bare = samples::version_record();
    bare.parent = None;
    bare.segments.clear();
    bare.deltas.clear();
    bare.retained.clear();
    bare.note = "create".into();
    write(
        &version,
        "seed-version-bare",
        &strata_formats::encode_version(&bare),
    );

    let filters = root.join("where_filter");
    for (name, text) in [
        ("seed-filter-eq-shorthand", r#"{"image_id": "a1b2"}"#),
        (
            "seed-filter-and",
            r#"{"$and":[{"image_id":{"$eq":"zz"}},{"receipt_id":{"$eq":2}}]}"#,
        ),
        (
            "seed-filter-multikey",
            r#"{"image_id": "x", "receipt_id": 2}"#,
        ),
        (
            "seed-filter-or-cmp",
            r#"{"$or":[{"n":{"$gt":4}},{"x":{"$lte":2.5}},{"y":{"$gte":-3}},{"z":{"$lt":1e3}}]}"#,
        ),
        (
            "seed-filter-in-nin",
            r#"{"$and":[{"label":{"$in":["A","B"]}},{"n":{"$nin":[1,2,3]}}]}"#,
        ),
        ("seed-filter-ne-bool", r#"{"valid":{"$ne":true}}"#),
        (
            "seed-filter-contains",
            r#"{"valid_labels":{"$contains":"GRAND_TOTAL"}}"#,
        ),
        (
            "seed-filter-nested",
            r#"{"$or":[{"$and":[{"a":1},{"b":{"$ne":"x"}}]},{"$and":[{"c":{"$in":[1.5,2]}}]}]}"#,
        ),
        ("seed-filter-bad-op", r#"{"a":{"$between":[1,2]}}"#),
        ("seed-filter-bad-null", r#"{"a":null}"#),
        ("seed-filter-bad-empty", r#"{}"#),
        ("seed-filter-bad-empty-in", r#"{"a":{"$in":[]}}"#),
        ("seed-filter-bad-gt-string", r#"{"a":{"$gt":"x"}}"#),
        ("seed-filter-bad-two-ops", r#"{"a":{"$gt":1,"$lt":3}}"#),
        ("seed-filter-bad-not", r#"{"$not":[{"a":1}]}"#),
        ("seed-filter-bad-u64", r#"{"a":18446744073709551615}"#),
    ] {
        write(&filters, name, text.as_bytes());
    }
}
