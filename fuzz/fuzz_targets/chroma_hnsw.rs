//! strata-chroma's HNSW segment parser and pickle reader on arbitrary bytes: never a
//! panic, never an allocation beyond what the input justifies. The input is `header.bin`
//! (its first 100 bytes) followed by `data_level0.bin`, also read as `length.bin`; the
//! whole input is also parsed as an `index_metadata.pickle`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_chroma::hnsw::{HnswHeader, HnswIndex, HEADER_LEN};
use strata_chroma::pickle::parse_id_map;
use strata_chroma::Blob;

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = parse_id_map(data) {
        assert!(map.id_to_label.len() <= data.len());
    }
    if data.len() < HEADER_LEN {
        return;
    }
    let (header, rest) = data.split_at(HEADER_LEN);
    let Ok(h) = HnswHeader::parse("header.bin", header, rest.len() as u64) else {
        return;
    };
    assert!(h.cur_element_count * h.size_data_per_element <= rest.len() as u64);
    assert_eq!(h.dims as u64 * 4, h.label_offset - h.offset_data);
    let blob = Blob::Memory(rest);
    let cosine = rest.first().is_some_and(|b| b & 1 == 1);
    let length = cosine.then_some(("length.bin", rest));
    let Ok(index) = HnswIndex::scan("data_level0.bin", h, &blob, length) else {
        return;
    };
    assert!(index.live() as u64 + index.deleted() == h.cur_element_count);
    let mut v = Vec::new();
    for label in 0..4u64 {
        if let Ok(true) = index.vector("data_level0.bin", &blob, label, &mut v) {
            assert_eq!(v.len(), h.dims);
        }
    }
});
