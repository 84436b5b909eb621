//! Files written by an earlier build must stay readable: the golden files under
//! `tests/golden/` were written once and are checked in. Set `STRATA_BLESS=1` to write them
//! anew — only when a format's major version changes on purpose.

use std::path::PathBuf;

use strata_formats::segment::{SegmentLayout, SegmentView};
use strata_formats::{decode_delta, decode_version, samples, AlignedBuf, DeltaStatus};

fn golden(name: &str, fresh: &[u8]) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("STRATA_BLESS").is_some() {
        std::fs::write(&path, fresh).unwrap();
    }
    std::fs::read(&path).unwrap_or_else(|e| panic!("golden file {}: {e}", path.display()))
}

#[test]
fn golden_delta_reads() {
    let bytes = golden("small.delta", &samples::delta());
    let d = decode_delta(&bytes).unwrap();
    assert!(matches!(d.status, DeltaStatus::Sealed(s) if s.count == 3));
    assert_eq!(d.header.collection, "lines");
    assert_eq!(d.ops, samples::delta_ops());
    assert_eq!(
        bytes,
        samples::delta(),
        "the delta encoder's output changed"
    );
}

#[test]
fn golden_segment_reads() {
    let bytes = golden("small.seg", &samples::segment());
    let buf = AlignedBuf::copy_from(&bytes);
    let layout = SegmentLayout::parse(buf.as_bytes()).unwrap();
    let view = SegmentView::new(buf.as_bytes(), &layout).unwrap();
    view.verify().unwrap();
    let rows = samples::segment_rows(4, 5);
    assert_eq!(view.rows(), rows.len());
    for (row, (id, seq, v, doc, meta)) in rows.iter().enumerate() {
        assert_eq!(view.id(row).unwrap(), id);
        assert_eq!(view.find(id).unwrap(), Some(row));
        assert_eq!(view.seq(row).unwrap(), *seq);
        assert_eq!(view.vector(row).unwrap(), &v[..]);
        assert_eq!(view.document(row).unwrap(), *doc);
        assert_eq!(view.row_meta(row).unwrap(), *meta);
    }
    assert_eq!(view.shadow().unwrap().len(), 1);
    assert_eq!(
        bytes,
        samples::segment(),
        "the segment encoder's output changed"
    );
}

#[test]
fn golden_version_reads() {
    let bytes = golden("small.version", &samples::version());
    let (_, record) = decode_version(&bytes).unwrap();
    assert_eq!(record, samples::version_record());
    assert_eq!(
        bytes,
        samples::version(),
        "the version encoder's output changed"
    );
}
