//! Every single-bit flip and every truncation of a small file of each format is detected
//! (exhaustively, not sampled).

use strata_formats::segment::{SegmentLayout, SegmentView};
use strata_formats::{decode_delta, decode_version, samples, AlignedBuf, DeltaStatus};

fn delta_accepts_as_sealed(bytes: &[u8]) -> bool {
    matches!(decode_delta(bytes), Ok(d) if matches!(d.status, DeltaStatus::Sealed(_)))
}

fn segment_verifies(bytes: &[u8]) -> bool {
    let buf = AlignedBuf::copy_from(bytes);
    let Ok(layout) = SegmentLayout::parse(buf.as_bytes()) else {
        return false;
    };
    SegmentView::new(buf.as_bytes(), &layout)
        .and_then(|v| v.verify())
        .is_ok()
}

fn flips(bytes: &[u8]) -> impl Iterator<Item = (usize, u8, Vec<u8>)> + '_ {
    (0..bytes.len()).flat_map(move |i| {
        (0..8).map(move |bit| {
            let mut b = bytes.to_vec();
            b[i] ^= 1 << bit;
            (i, bit, b)
        })
    })
}

#[test]
fn delta_every_bit_flip_is_an_error() {
    let good = samples::delta();
    assert!(delta_accepts_as_sealed(&good));
    for (i, bit, bad) in flips(&good) {
        assert!(
            decode_delta(&bad).is_err(),
            "flip of bit {bit} in byte {i} of the delta was not reported as an error"
        );
    }
}

#[test]
fn delta_every_truncation_is_torn_or_an_error() {
    let good = samples::delta();
    let full = decode_delta(&good).unwrap().ops;
    for len in 0..good.len() {
        match decode_delta(&good[..len]) {
            Err(_) => {}
            Ok(d) => {
                assert!(
                    matches!(d.status, DeltaStatus::Torn { .. }),
                    "truncation to {len} bytes read as sealed"
                );
                assert!(d.ops.len() <= full.len());
                assert_eq!(d.ops[..], full[..d.ops.len()], "torn prefix differs");
            }
        }
    }
}

#[test]
fn segment_every_bit_flip_fails_verify() {
    let good = samples::segment();
    assert!(segment_verifies(&good));
    for (i, bit, bad) in flips(&good) {
        assert!(
            !segment_verifies(&bad),
            "flip of bit {bit} in byte {i} of the segment passed verify"
        );
    }
}

#[test]
fn segment_every_truncation_fails() {
    let good = samples::segment();
    for len in 0..good.len() {
        assert!(
            !segment_verifies(&good[..len]),
            "segment truncated to {len} bytes passed verify"
        );
        let buf = AlignedBuf::copy_from(&good[..len]);
        assert!(
            SegmentLayout::parse(buf.as_bytes()).is_err(),
            "truncated to {len} opened"
        );
    }
}

#[test]
fn version_every_bit_flip_and_truncation_fails() {
    let good = samples::version();
    assert!(decode_version(&good).is_ok());
    for (i, bit, bad) in flips(&good) {
        assert!(
            decode_version(&bad).is_err(),
            "flip of bit {bit} in byte {i} of the version file was accepted"
        );
    }
    for len in 0..good.len() {
        assert!(
            decode_version(&good[..len]).is_err(),
            "truncated to {len} accepted"
        );
    }
}

#[test]
fn torn_prefix_ending_in_the_end_magic_reads_as_torn() {
    // Fuzzing found: a torn file whose last complete record ends with the bytes of the end
    // magic was taken for a sealed file and refused with a footer checksum error.
    use strata_formats::{DeltaHeader, DeltaWriter, Operation, Record, Seq};
    let mut w = DeltaWriter::new(&DeltaHeader {
        collection: "c".into(),
        dims: 0,
        producer: "p".into(),
        first_seq: Seq::from(1),
        created_ms: 0,
    })
    .unwrap();
    let op = Operation::upsert(
        1,
        Record {
            id: "x".into(),
            embedding: None,
            document: None,
            metadata: [(
                "z".to_string(),
                strata_formats::MetaValue::Str(format!("{}DLSEALED", "x".repeat(80))),
            )]
            .into_iter()
            .collect(),
        },
    );
    w.push(&op).unwrap();
    let prefix = w.unsealed_bytes().to_vec();
    assert!(prefix.ends_with(b"DLSEALED"));
    let d = decode_delta(&prefix).unwrap();
    assert!(!d.is_sealed());
    assert_eq!(d.ops, vec![op]);
    let fixture = include_bytes!("../../fuzz/regressions/delta/torn-prefix-ends-in-dlsealed.delta");
    let d = decode_delta(fixture).unwrap();
    assert!(!d.is_sealed());
    let last = fixture.len() - 1;
    assert!(!decode_delta(&fixture[..last]).unwrap().is_sealed());
}

#[test]
fn zero_filled_tail_is_torn_but_a_damaged_complete_record_is_an_error() {
    let good = samples::delta();
    let unsealed = &good[..good.len() - strata_formats::delta::FOOTER_LEN];
    let mut zero_tail = unsealed.to_vec();
    zero_tail.extend_from_slice(&[0u8; 100]);
    let d = decode_delta(&zero_tail).unwrap();
    assert_eq!(d.ops.len(), 3);
    assert!(!d.is_sealed());
    let mut bad = unsealed.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(
        decode_delta(&bad).is_err(),
        "a complete record with a bad crc is corruption"
    );
}

#[test]
fn verify_checks_the_header_seq_range_and_the_offsets_ends() {
    use strata_formats::samples::{fix_segment_checksums, segment_with_history};
    use strata_formats::segment::BlockKind;

    let good = segment_with_history(3, 4);
    assert!(segment_verifies(&good));
    let error = |bytes: &[u8]| {
        let buf = AlignedBuf::copy_from(bytes);
        let layout = SegmentLayout::parse(buf.as_bytes()).unwrap();
        SegmentView::new(buf.as_bytes(), &layout)
            .unwrap()
            .verify()
            .unwrap_err()
            .to_string()
    };

    // A max seq one below the History block's largest patch seq (checksums made right).
    let mut bad = good.clone();
    bad[63] -= 1;
    fix_segment_checksums(&mut bad);
    let err = error(&bad);
    assert!(err.contains("seq range"), "{err}");

    // The Documents block one byte longer in the table (a padding byte taken in), so its
    // offsets end one byte before the blob does.
    let layout = SegmentLayout::parse(AlignedBuf::copy_from(&good).as_bytes()).unwrap();
    let i = layout
        .blocks
        .iter()
        .position(|b| b.kind == BlockKind::Documents)
        .unwrap();
    assert_ne!(
        layout.blocks[i].len % 64,
        0,
        "the block is followed by padding"
    );
    let table = good.len() - 24 - 32 * layout.blocks.len();
    let len_at = table + 32 * i + 16;
    let mut bad = good.clone();
    bad[len_at] += 1;
    fix_segment_checksums(&mut bad);
    let err = error(&bad);
    assert!(err.contains("offsets run"), "{err}");
}
