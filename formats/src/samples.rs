//! Small, deterministic sample files of every format: the golden files, the fuzz seed
//! corpora and the corruption tests are built from these.

use std::io::Cursor;

use crate::collection::{Metric, Quantization};
use crate::delta::{DeltaHeader, DeltaWriter};
use crate::filter::Filter;
use crate::op::{Operation, Record, Target};
use crate::segment::{
    BaseRecord, BaseState, History, PatchEvent, RowInput, RowMeta, SegmentWriter, ShadowEntry,
};
use crate::seq::Seq;
use crate::value::{MetaValue, Metadata};
use crate::version::{encode_version, DeltaRef, RetainedOp, SegmentRef, VersionRecord};

fn meta(pairs: &[(&str, MetaValue)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// A deterministic pseudo-random vector (splitmix64 to floats in [-1, 1)).
///
/// Consecutive seeds give shifted windows of one sequence (`vector(s, d)` equals
/// `vector(0, d + s)[s..]`); the golden files were written with it, so it stays as it is.
/// Use [`noise`] for independent vectors.
pub fn vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..dims)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect()
}

/// A deterministic pseudo-random vector in [-1, 1) whose seeds are independent (the seed
/// is hashed before it starts the sequence).
pub fn noise(seed: u64, dims: usize) -> Vec<f32> {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    vector(z ^ (z >> 31), dims)
}

/// The operations of the sample delta: an upsert, a patch by id, a delete by filter.
pub fn delta_ops() -> Vec<Operation> {
    let seq = |s: &str| s.parse::<Seq>().expect("valid seq");
    vec![
        Operation::upsert(
            seq("4421584500000000017450439091"),
            Record {
                id: "IMAGE#a1b2#RECEIPT#00001#LINE#00001".into(),
                embedding: Some(vector(1, 4)),
                document: Some("TOTAL 12.99".into()),
                metadata: meta(&[
                    ("image_id", MetaValue::Str("a1b2".into())),
                    ("receipt_id", MetaValue::Int(1)),
                    ("confidence", MetaValue::Float(0.97)),
                    (
                        "valid_labels",
                        MetaValue::StrList(vec!["GRAND_TOTAL".into()]),
                    ),
                ]),
            },
        ),
        Operation::patch(
            seq("4421584500000000017450439092"),
            Target::Id("IMAGE#a1b2#RECEIPT#00001#LINE#00001".into()),
            meta(&[("merchant_name", MetaValue::Str("Sprouts".into()))]),
            vec!["confidence".into()],
        ),
        Operation::delete(
            seq("4421584500000000017450439093"),
            Target::Where(
                Filter::parse(r#"{"$and":[{"image_id":{"$eq":"zz"}},{"receipt_id":{"$eq":2}}]}"#)
                    .expect("valid filter"),
            ),
        ),
    ]
}

/// The sample delta file (sealed).
pub fn delta() -> Vec<u8> {
    let mut w = DeltaWriter::new(&DeltaHeader {
        collection: "lines".into(),
        dims: 4,
        producer: "sample-producer".into(),
        first_seq: delta_ops()[0].seq,
        created_ms: 1_764_000_000_000,
    })
    .expect("small header");
    for op in delta_ops() {
        w.push(&op).expect("small record");
    }
    w.seal()
}

/// One row of a sample segment: (id, seq, vector, document, meta).
pub type SampleRow = (String, Seq, Vec<f32>, Option<String>, RowMeta);

/// Rows of the sample segment.
pub fn segment_rows(dims: usize, n: usize) -> Vec<SampleRow> {
    // Ids are a permutation of 0..n: the stride must be coprime with n.
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let stride = [7, 11, 13, 17, 1]
        .into_iter()
        .find(|m| gcd(*m, n.max(1)) == 1)
        .unwrap_or(1);
    (0..n)
        .map(|i| {
            let key_seqs = if i % 2 == 0 {
                vec![("label".to_string(), Seq::from(100 + i as u64))]
            } else {
                vec![]
            };
            (
                format!("id-{:03}", (i * stride) % n.max(1)),
                Seq::from(10 + i as u64),
                vector(i as u64, dims),
                (i % 3 != 0).then(|| format!("document {i}")),
                RowMeta {
                    metadata: meta(&[
                        ("n", MetaValue::Int(i as i64)),
                        ("label", MetaValue::Str(format!("L{}", i % 4))),
                    ]),
                    key_seqs,
                },
            )
        })
        .collect()
}

/// A sample segment of `n` rows of `dims` dims with the given quantization and one shadow
/// entry.
pub fn segment_with(dims: usize, n: usize, quantization: Quantization) -> Vec<u8> {
    let mut w =
        SegmentWriter::new(Cursor::new(Vec::new()), dims as u32, quantization).expect("valid dims");
    for (id, seq, v, doc, meta) in segment_rows(dims, n) {
        w.push(RowInput {
            id: &id,
            seq,
            vector: &v,
            document: doc.as_deref(),
            meta: &meta,
        })
        .expect("valid row");
    }
    w.push_shadow(ShadowEntry {
        id: "gone".into(),
        seq: Seq::from(99),
        deleted: true,
        overlay: vec![("k".into(), Seq::from(98), Some(MetaValue::Bool(true)))],
        time_ms: 1_764_000_000_000,
    });
    w.finish().expect("in-memory write").0.into_inner()
}

/// A sample segment of `n` (≥ 1) rows of `dims` dims carrying a History block: one history
/// for the first row (a later patch) and one for a filter-deleted shadow entry (with its
/// base record).
pub fn segment_with_history(dims: usize, n: usize) -> Vec<u8> {
    let rows = segment_rows(dims, n.max(1));
    let mut w = SegmentWriter::new(Cursor::new(Vec::new()), dims as u32, Quantization::None)
        .expect("valid dims");
    for (id, seq, v, doc, meta) in &rows {
        w.push(RowInput {
            id,
            seq: *seq,
            vector: v,
            document: doc.as_deref(),
            meta,
        })
        .expect("valid row");
    }
    let (first, first_seq, _, _, first_meta) = &rows[0];
    w.push_history(History {
        id: first.clone(),
        through: *first_seq,
        base_seq: *first_seq,
        base_state: BaseState::Live,
        base_metadata: first_meta.metadata.clone(),
        base_key_seqs: vec![],
        base_record: None,
        patches: vec![PatchEvent {
            seq: Seq::from(200),
            set: meta(&[("label", MetaValue::Str("L9".into()))]),
            unset: vec!["n".into()],
            time_ms: 1_764_000_000_000,
        }],
        time_ms: 1_764_000_000_000,
    });
    w.push_shadow(ShadowEntry {
        id: "hidden".into(),
        seq: Seq::from(150),
        deleted: true,
        overlay: vec![],
        time_ms: 1_764_000_000_000,
    });
    w.push_history(History {
        id: "hidden".into(),
        through: Seq::from(120),
        base_seq: Seq::from(120),
        base_state: BaseState::Live,
        base_metadata: meta(&[("group", MetaValue::Str("g1".into()))]),
        base_key_seqs: vec![],
        base_record: Some(BaseRecord {
            embedding: vector(999, dims),
            document: Some("hidden document".into()),
        }),
        patches: vec![],
        time_ms: 1_764_000_000_000,
    });
    w.finish().expect("in-memory write").0.into_inner()
}

/// The small sample segment: 5 rows × 4 dims, i8-quantized.
pub fn segment() -> Vec<u8> {
    segment_with(4, 5, Quantization::I8)
}

/// The sample version record.
pub fn version_record() -> VersionRecord {
    VersionRecord {
        collection: "lines".into(),
        version: 7,
        parent: Some(6),
        writer_epoch: 3,
        created_ms: 1_764_000_000_000,
        dims: 4,
        metric: Metric::L2,
        quantization: Quantization::I8,
        seq_watermark: "4421584500000000017450439093".parse().expect("valid seq"),
        segments: vec![SegmentRef {
            file: "00000000000000000005-lines.seg".into(),
            rows: 5,
            bytes: 1472,
            deleted: vec![1, 3],
        }],
        deltas: vec![DeltaRef {
            file: "00000000000000000007-lines.delta".into(),
            count: 3,
            min_seq: Seq::from(1),
            max_seq: Seq::from(3),
            bytes: 400,
        }],
        retained: vec![RetainedOp {
            op: delta_ops()[2].clone(),
            time_ms: 1_764_000_000_001,
        }],
        rows: 3,
        bytes: 1872,
        note: "compact".into(),
    }
}

/// The sample version file.
pub fn version() -> Vec<u8> {
    encode_version(&version_record())
}

/// Recompute a segment's header crc, the crc of every block its table lists and the table
/// crc, in place, as far as the bytes allow (tests and the fuzzer use it to reach the checks
/// behind the checksums). Bytes too damaged to locate a field are left as they are.
pub fn fix_segment_checksums(b: &mut [u8]) {
    let u64_at = |b: &[u8], at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            b.get(at..at.checked_add(8)?)?.try_into().ok()?,
        ))
    };
    let put_u32 = |b: &mut [u8], at: usize, v: u32| {
        if let Some(dst) = at.checked_add(4).and_then(|end| b.get_mut(at..end)) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
    };
    if b.len() >= 128 {
        let crc = crate::crc32(&b[..124]);
        put_u32(b, 124, crc);
    }
    if b.len() < 128 + 24 {
        return;
    }
    let tail = b.len() - 24;
    let (Some(table), Some(count)) = (u64_at(b, tail), b.get(tail + 8..tail + 12)) else {
        return;
    };
    let count = u32::from_le_bytes(count.try_into().expect("4 bytes"));
    let Ok(table) = usize::try_from(table) else {
        return;
    };
    if table < 128 || count > 64 || table.checked_add(count as usize * 32) != Some(tail) {
        return;
    }
    for i in 0..count as usize {
        let e = table + i * 32;
        let (Some(off), Some(len)) = (u64_at(b, e + 8), u64_at(b, e + 16)) else {
            return;
        };
        if let Some(end) = off.checked_add(len).filter(|end| *end <= table as u64) {
            let crc = crate::crc32(&b[off as usize..end as usize]);
            put_u32(b, e + 24, crc);
        }
    }
    let crc = crate::crc32(&b[table..tail + 12]);
    put_u32(b, tail + 12, crc);
}
