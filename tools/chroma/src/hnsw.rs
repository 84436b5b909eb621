//! The HNSW segment files (chroma-core's hnswlib fork, persistence version 1):
//! `header.bin` ([`HnswHeader`]), `data_level0.bin` (fixed-size elements: link header with
//! the delete mark, neighbours, the vector, the u64 label) and `length.bin` (each element's
//! norm, used for cosine). [`HnswIndex::scan`] reads the element headers and labels only;
//! vectors are read one at a time, on demand ([`HnswIndex::vector`]).
//!
//! Every size is checked against the file before it is used: a header that claims more
//! elements or dimensions than the file holds is a [`ChromaError::Segment`] naming the file.

use std::collections::HashMap;

use crate::error::{ChromaError, Result};
use crate::source::Blob;

/// Size of `header.bin`.
pub const HEADER_LEN: usize = 100;
/// Largest dimension accepted (Chroma's own limit is far below).
pub const MAX_DIMS: usize = 1 << 16;
/// Largest `maxM0` accepted (hnswlib's default is 32).
pub const MAX_M0: u64 = 1 << 16;

/// The fields of `header.bin` the reader uses (FORMAT.md lists all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswHeader {
    /// Capacity of the index (elements).
    pub max_elements: u64,
    /// Elements written, deleted ones included: how many records `data_level0.bin` holds.
    pub cur_element_count: u64,
    /// Bytes per element in `data_level0.bin`.
    pub size_data_per_element: u64,
    /// Offset of the u64 label inside an element.
    pub label_offset: u64,
    /// Offset of the vector inside an element.
    pub offset_data: u64,
    /// Level-0 neighbour slots per element.
    pub max_m0: u64,
    /// Vector dimension, `(label_offset - offset_data) / 4`.
    pub dims: usize,
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

impl HnswHeader {
    /// Parse `header.bin` (`file` names it in errors) and check it against the length of
    /// `data_level0.bin`.
    pub fn parse(file: &str, b: &[u8], data_len: u64) -> Result<HnswHeader> {
        let bad = |reason: String| ChromaError::segment(file, reason);
        if b.len() != HEADER_LEN {
            return Err(bad(format!("{} bytes; a header is {HEADER_LEN}", b.len())));
        }
        let version = u32_at(b, 0) as i32;
        if version != 1 {
            return Err(bad(format!(
                "persistence version {version}; only 1 is known"
            )));
        }
        let offset_level0 = u64_at(b, 4);
        let h = HnswHeader {
            max_elements: u64_at(b, 12),
            cur_element_count: u64_at(b, 20),
            size_data_per_element: u64_at(b, 28),
            label_offset: u64_at(b, 36),
            offset_data: u64_at(b, 44),
            max_m0: u64_at(b, 68),
            dims: 0,
        };
        if offset_level0 != 0 {
            return Err(bad(format!("offsetLevel0 {offset_level0}; expected 0")));
        }
        if h.max_m0 == 0 || h.max_m0 > MAX_M0 || h.offset_data != h.max_m0 * 4 + 4 {
            return Err(bad(format!(
                "offsetData {} does not follow from maxM0 {} (maxM0 * 4 + 4)",
                h.offset_data, h.max_m0
            )));
        }
        let vector_bytes = h.label_offset.saturating_sub(h.offset_data);
        if vector_bytes == 0
            || !vector_bytes.is_multiple_of(4)
            || vector_bytes / 4 > MAX_DIMS as u64
        {
            return Err(bad(format!(
                "label_offset {} and offsetData {} give no whole vector of 1..={MAX_DIMS} f32",
                h.label_offset, h.offset_data
            )));
        }
        if h.size_data_per_element != h.label_offset + 8 {
            return Err(bad(format!(
                "size_data_per_element {} is not label_offset + 8 ({})",
                h.size_data_per_element,
                h.label_offset + 8
            )));
        }
        if h.cur_element_count > h.max_elements {
            return Err(bad(format!(
                "cur_element_count {} exceeds max_elements {}",
                h.cur_element_count, h.max_elements
            )));
        }
        let needed = h.cur_element_count.checked_mul(h.size_data_per_element);
        if needed.is_none_or(|n| n > data_len) {
            return Err(bad(format!(
                "claims {} elements of {} bytes, but data_level0.bin holds {data_len} bytes",
                h.cur_element_count, h.size_data_per_element
            )));
        }
        Ok(HnswHeader {
            dims: (vector_bytes / 4) as usize,
            ..h
        })
    }
}

/// The live elements of a persisted HNSW index: label → internal id, plus the norms.
#[derive(Debug)]
pub struct HnswIndex {
    header: HnswHeader,
    labels: HashMap<u64, u32>,
    norms: Option<Vec<f32>>,
    deleted: u64,
}

/// Elements read per chunk while scanning `data_level0.bin`.
const SCAN_CHUNK: u64 = 1024;

impl HnswIndex {
    /// Scan `data_level0.bin` (`data`, named `file`): every element's delete mark and
    /// label. `length` is `length.bin` for a cosine collection (its vectors are stored
    /// normalised and re-scaled by the norm, as Chroma's `get()` does), `None` otherwise.
    pub fn scan(
        file: &str,
        header: HnswHeader,
        data: &Blob<'_>,
        length: Option<(&str, &[u8])>,
    ) -> Result<HnswIndex> {
        let count = header.cur_element_count;
        let size = header.size_data_per_element;
        let norms = match length {
            None => None,
            Some((name, bytes)) => {
                let needed = count.saturating_mul(4);
                if (bytes.len() as u64) < needed {
                    return Err(ChromaError::segment(
                        name,
                        format!("{} bytes; {count} elements need {needed}", bytes.len()),
                    ));
                }
                Some(
                    bytes[..needed as usize]
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                )
            }
        };
        let mut labels = HashMap::with_capacity(count as usize);
        let mut deleted = 0;
        let mut buf = Vec::new();
        let mut first = 0u64;
        while first < count {
            let n = SCAN_CHUNK.min(count - first);
            buf.resize((n * size) as usize, 0);
            data.read_at(file, first * size, &mut buf)?;
            for (i, element) in buf.chunks_exact(size as usize).enumerate() {
                let internal = first + i as u64;
                if element[2] & 1 != 0 {
                    deleted += 1;
                    continue;
                }
                let label = u64_at(element, header.label_offset as usize);
                if labels.insert(label, internal as u32).is_some() {
                    return Err(ChromaError::segment(
                        file,
                        format!("label {label} is held by two live elements"),
                    ));
                }
            }
            first += n;
        }
        Ok(HnswIndex {
            header,
            labels,
            norms,
            deleted,
        })
    }

    /// The header.
    pub fn header(&self) -> &HnswHeader {
        &self.header
    }

    /// Number of live (not deleted) elements.
    pub fn live(&self) -> usize {
        self.labels.len()
    }

    /// Number of elements carrying the delete mark.
    pub fn deleted(&self) -> u64 {
        self.deleted
    }

    /// Whether a live element carries `label`.
    pub fn has_label(&self, label: u64) -> bool {
        self.labels.contains_key(&label)
    }

    /// The vector of the live element with `label`, as Chroma's `get()` returns it, into
    /// `out`; `false` when no live element has that label.
    pub fn vector(
        &self,
        file: &str,
        data: &Blob<'_>,
        label: u64,
        out: &mut Vec<f32>,
    ) -> Result<bool> {
        let Some(&internal) = self.labels.get(&label) else {
            return Ok(false);
        };
        let dims = self.header.dims;
        let mut raw = vec![0u8; dims * 4];
        let offset = internal as u64 * self.header.size_data_per_element + self.header.offset_data;
        data.read_at(file, offset, &mut raw)?;
        out.clear();
        out.extend(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        if let Some(norms) = &self.norms {
            let norm = norms[internal as usize];
            for x in out.iter_mut() {
                *x *= norm;
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(count: u64, m0: u64, dims: u64) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend(1i32.to_le_bytes());
        h.extend(0u64.to_le_bytes());
        h.extend(100u64.to_le_bytes()); // max_elements
        h.extend(count.to_le_bytes());
        let offset_data = m0 * 4 + 4;
        let label_offset = offset_data + dims * 4;
        h.extend((label_offset + 8).to_le_bytes());
        h.extend(label_offset.to_le_bytes());
        h.extend(offset_data.to_le_bytes());
        h.extend(0i32.to_le_bytes());
        h.extend(0u32.to_le_bytes());
        h.extend((m0 / 2).to_le_bytes());
        h.extend(m0.to_le_bytes());
        h.extend((m0 / 2).to_le_bytes());
        h.extend(0.5f64.to_le_bytes());
        h.extend(100u64.to_le_bytes());
        h
    }

    #[test]
    fn a_header_claiming_more_than_the_file_is_refused() {
        let h = header(10, 4, 2);
        let size = 4 * 4 + 4 + 8 + 8;
        assert_eq!(HnswHeader::parse("h", &h, 10 * size).unwrap().dims, 2);
        let err = HnswHeader::parse("h", &h, 10 * size - 1).unwrap_err();
        assert!(err.to_string().contains("claims 10 elements"), "{err}");
        assert!(HnswHeader::parse("h", &h[..99], 1000).is_err());
    }

    #[test]
    fn elements_scan_with_delete_marks_and_norms() {
        let h = HnswHeader::parse("h", &header(2, 2, 2), 2 * 28).unwrap();
        let mut data = Vec::new();
        for (mark, label, v) in [(0u8, 7u64, [3.0f32, 4.0]), (1, 8, [1.0, 1.0])] {
            data.extend([1, 0, mark, 0]);
            data.extend([0u8; 8]);
            for x in v {
                data.extend(x.to_le_bytes());
            }
            data.extend(label.to_le_bytes());
        }
        let norms: Vec<u8> = [2.0f32, 1.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let blob = Blob::Memory(&data);
        let idx = HnswIndex::scan("d", h, &blob, Some(("l", &norms))).unwrap();
        assert_eq!((idx.live(), idx.deleted()), (1, 1));
        let mut v = Vec::new();
        assert!(idx.vector("d", &blob, 7, &mut v).unwrap());
        assert_eq!(v, vec![6.0, 8.0]);
        assert!(!idx.vector("d", &blob, 8, &mut v).unwrap());
    }
}
