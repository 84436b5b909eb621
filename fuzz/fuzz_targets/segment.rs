//! SegmentLayout::parse + SegmentView on arbitrary bytes (copied into an AlignedBuf, as a
//! memory map would be aligned): never a panic from parse, verify or any accessor; a
//! segment that verifies answers every accessor, finds every id at its row, and rewrites
//! (SegmentWriter) to a segment that verifies and holds the same rows.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use strata_formats::codec::encode;
use strata_formats::segment::{SegmentLayout, SegmentView};
use strata_formats::{AlignedBuf, Quantization, RowInput, SegmentWriter};

// libFuzzer's mutation, then (most of the time) the checksums recomputed: see strata_fuzz.
fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let size = libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    if strata_fuzz::fix_this_time(seed) {
        strata_fuzz::fix_segment(&mut data[..size]);
    }
    size
});

fuzz_target!(|data: &[u8]| {
    let buf = AlignedBuf::copy_from(data);
    let bytes = buf.as_bytes();
    let Ok(layout) = SegmentLayout::parse(bytes) else {
        return;
    };
    let view = SegmentView::new(bytes, &layout).expect("same bytes as parsed");
    let verified = view.verify().is_ok();
    let rows = view.rows();
    let dims = view.dims();

    // Every accessor on every row, whether or not the segment verified.
    for row in 0..rows {
        let id = view.id(row);
        if let Ok(id) = id {
            let found = view.find(id);
            if verified {
                assert_eq!(
                    found.expect("find"),
                    Some(row),
                    "id {id:?} not found at its row"
                );
            }
        }
        let seq = view.seq(row);
        let vector = view.vector(row);
        let meta = view.row_meta(row);
        let doc = view.document(row);
        if verified {
            id.expect("id of a verified row");
            seq.expect("seq of a verified row");
            assert_eq!(vector.expect("vector of a verified row").len(), dims);
            meta.expect("metadata of a verified row");
            doc.expect("document of a verified row");
        }
    }
    // Out of range rows are errors, not panics.
    assert!(view.id(rows).is_err());
    assert!(view.seq(rows).is_err());
    assert!(view.vector(rows).is_err());
    assert!(view.row_meta(rows).is_err());
    assert!(view.document(rows).is_err());
    let _ = view.find("");
    let _ = view.find("id-000");
    let shadow = view.shadow();
    let history = view.history();
    let quant_i8 = view.quant_i8();
    let quant_bits = view.quant_bits();
    let _ = view.vectors();
    if !verified {
        return;
    }

    let shadow = shadow.expect("shadow of a verified segment");
    let history = history.expect("history of a verified segment");
    let quantization = layout.header.quantization;
    match quantization {
        Quantization::I8 => {
            let (codes, scales) = quant_i8.expect("i8 block").expect("i8 present");
            assert_eq!(codes.len(), rows * dims);
            assert_eq!(scales.len(), rows);
        }
        Quantization::Bit => {
            let codes = quant_bits.expect("bit block").expect("bits present");
            assert_eq!(codes.len(), rows * dims.div_ceil(8));
        }
        Quantization::None => {}
    }

    // Rewrite the rows and compare.
    let mut w = SegmentWriter::new(Cursor::new(Vec::new()), dims as u32, quantization)
        .expect("dims already checked");
    let metas: Vec<_> = (0..rows).map(|r| view.row_meta(r).unwrap()).collect();
    let docs: Vec<_> = (0..rows).map(|r| view.document(r).unwrap()).collect();
    for row in 0..rows {
        w.push(RowInput {
            id: view.id(row).unwrap(),
            seq: view.seq(row).unwrap(),
            vector: view.vector(row).unwrap(),
            document: docs[row].as_deref(),
            meta: &metas[row],
        })
        .expect("a verified row rewrites");
    }
    for entry in &shadow {
        w.push_shadow(entry.clone());
    }
    for h in &history {
        w.push_history(h.clone());
    }
    let out = w.finish().expect("in-memory write").0.into_inner();
    let buf2 = AlignedBuf::copy_from(&out);
    let layout2 = match SegmentLayout::parse(buf2.as_bytes()) {
        Ok(l) => l,
        Err(e) => panic!("a rewritten segment does not parse: {e}"),
    };
    let view2 = SegmentView::new(buf2.as_bytes(), &layout2).unwrap();
    if let Err(e) = view2.verify() {
        panic!("a rewritten segment does not verify: {e}");
    }
    assert_eq!(view2.rows(), rows);
    for row in 0..rows {
        assert_eq!(view2.id(row).unwrap(), view.id(row).unwrap());
        assert_eq!(view2.seq(row).unwrap(), view.seq(row).unwrap());
        let (a, b) = (view2.vector(row).unwrap(), view.vector(row).unwrap());
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert_eq!(encode(&view2.row_meta(row).unwrap()), encode(&metas[row]));
        assert_eq!(view2.document(row).unwrap(), docs[row]);
    }
    assert_eq!(encode(&view2.shadow().unwrap()), encode(&shadow));
    assert_eq!(encode(&view2.history().unwrap()), encode(&history));
});
