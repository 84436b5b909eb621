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
