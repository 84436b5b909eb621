//! A collection's vectors, combined as Chroma combines them: the persisted HNSW files
//! (everything up to the VECTOR segment's `max_seq_id`) and the log `embeddings_queue`
//! above it, replayed in seq order with Chroma's rules (ADD only if absent, UPDATE only if
//! present and carrying a vector, UPSERT sets, DELETE removes).

use std::collections::HashMap;

use crate::db::{seq_value, Db};
use crate::error::{ChromaError, Result};
use crate::hnsw::{HnswHeader, HnswIndex, HEADER_LEN};
use crate::pickle::parse_id_map;
use crate::source::{Blob, Source};

/// The largest `index_metadata.pickle` read (100k ids take a few MB).
pub const MAX_PICKLE_BYTES: u64 = 1 << 30;

/// Where a record's vector came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorSource {
    /// The persisted HNSW files (bit-identical to Chroma's `get()`).
    Hnsw,
    /// The log above the vector segment's `max_seq_id` (the exact f32 the client sent;
    /// Chroma's `get()` returns a cosine vector re-normalised, within ~1 ulp of it).
    Log,
}

/// The persisted HNSW part of a collection.
struct Persisted<'a> {
    index: HnswIndex,
    data: Blob<'a>,
    data_file: String,
    id_to_label: HashMap<String, u64>,
}

/// The vectors of one collection.
pub(crate) struct Vectors<'a> {
    persisted: Option<Persisted<'a>>,
    /// Log state above the vector high-water mark: `None` = deleted.
    tail: HashMap<String, Option<Vec<f32>>>,
    /// The vector segment's high-water mark used.
    pub(crate) vec_max: u64,
    /// Number of live vectors.
    pub(crate) live: usize,
    /// Log rows replayed.
    pub(crate) replayed: usize,
}

/// What [`Vectors::load`] needs to know about the collection.
pub(crate) struct VectorSegment<'s> {
    pub(crate) collection: &'s str,
    pub(crate) collection_id: &'s str,
    pub(crate) segment: &'s str,
    pub(crate) dims: usize,
    pub(crate) cosine: bool,
}

fn persisted<'a>(
    source: &'a Source,
    seg: &VectorSegment<'_>,
    pickle: &[u8],
) -> Result<(Persisted<'a>, Option<u64>)> {
    let file = |name: &str| source.show(&format!("{}/{name}", seg.segment));
    let pickle_file = file("index_metadata.pickle");
    let ids = parse_id_map(pickle).map_err(|r| ChromaError::segment(&pickle_file, r))?;
    let header_file = file("header.bin");
    let header = source
        .read_small(
            &format!("{}/header.bin", seg.segment),
            HEADER_LEN as u64 * 16,
        )?
        .ok_or_else(|| ChromaError::Missing {
            file: header_file.clone(),
            why: "the segment has an index_metadata.pickle".into(),
        })?;
    let data_file = file("data_level0.bin");
    let data = source
        .blob(&format!("{}/data_level0.bin", seg.segment))?
        .ok_or_else(|| ChromaError::Missing {
            file: data_file.clone(),
            why: "the segment has an index_metadata.pickle".into(),
        })?;
    let header = HnswHeader::parse(&header_file, &header, data.len())?;
    if header.dims != seg.dims {
        return Err(ChromaError::inconsistent(
            seg.collection,
            format!(
                "{header_file} holds {}-d vectors; the collection is {}-d",
                header.dims, seg.dims
            ),
        ));
    }
    let length_file = file("length.bin");
    let norms = if seg.cosine {
        let blob = source
            .blob(&format!("{}/length.bin", seg.segment))?
            .ok_or_else(|| ChromaError::Missing {
                file: length_file.clone(),
                why: "a cosine collection's vectors are scaled by it".into(),
            })?;
        let mut bytes = vec![0u8; (header.cur_element_count * 4) as usize];
        blob.read_at(&length_file, 0, &mut bytes)?;
        Some(bytes)
    } else {
        None
    };
    let index = HnswIndex::scan(
        &data_file,
        header,
        &data,
        norms.as_deref().map(|b| (length_file.as_str(), b)),
    )?;
    let mut id_to_label = HashMap::with_capacity(ids.id_to_label.len());
    for (id, label) in ids.id_to_label {
        if !index.has_label(label) {
            return Err(ChromaError::inconsistent(
                seg.collection,
                format!("{pickle_file}: id {id:?} has label {label}, which no live element of {data_file} carries"),
            ));
        }
        if id_to_label.insert(id.clone(), label).is_some() {
            return Err(ChromaError::segment(
                &pickle_file,
                format!("id {id:?} appears twice"),
            ));
        }
    }
    let max_seq_id = ids.max_seq_id;
    Ok((
        Persisted {
            index,
            data,
            data_file,
            id_to_label,
        },
        max_seq_id,
    ))
}

/// One row of the log.
struct LogRow {
    seq: u64,
    op: i64,
    id: String,
    vector: Option<Vec<f32>>,
}

fn log_rows(db: &Db, seg: &VectorSegment<'_>, above: u64) -> Result<Vec<LogRow>> {
    let mut stmt = db
        .conn
        .prepare(
            "SELECT seq_id, operation, id, vector, encoding FROM embeddings_queue \
             WHERE substr(topic, -length(?1) - 1) = '/' || ?1 ORDER BY seq_id",
        )
        .map_err(|e| db.err(e))?;
    let mut rows = stmt.query([seg.collection_id]).map_err(|e| db.err(e))?;
    let mut out = Vec::new();
    let bad = |seq: u64, why: String| {
        ChromaError::inconsistent(seg.collection, format!("embeddings_queue seq {seq}: {why}"))
    };
    while let Some(row) = rows.next().map_err(|e| db.err(e))? {
        let seq = seq_value(row.get_ref(0).map_err(|e| db.err(e))?).map_err(|w| bad(0, w))?;
        if seq <= above {
            continue;
        }
        let op: i64 = row.get(1).map_err(|e| db.err(e))?;
        let id: String = row.get(2).map_err(|e| db.err(e))?;
        let vector: Option<Vec<u8>> = row.get(3).map_err(|e| db.err(e))?;
        let encoding: Option<String> = row.get(4).map_err(|e| db.err(e))?;
        let vector = match vector {
            None => None,
            Some(bytes) => {
                if encoding.as_deref() != Some("FLOAT32") {
                    return Err(bad(
                        seq,
                        format!("vector encoding {encoding:?}; only FLOAT32 is read"),
                    ));
                }
                if bytes.len() != seg.dims * 4 {
                    return Err(bad(
                        seq,
                        format!(
                            "a vector of {} bytes; {} dims need {}",
                            bytes.len(),
                            seg.dims,
                            seg.dims * 4
                        ),
                    ));
                }
                Some(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                )
            }
        };
        out.push(LogRow {
            seq,
            op,
            id,
            vector,
        });
    }
    Ok(out)
}

impl<'a> Vectors<'a> {
    /// The vectors of a collection that was never written.
    pub(crate) fn empty() -> Vectors<'a> {
        Vectors {
            persisted: None,
            tail: HashMap::new(),
            vec_max: 0,
            live: 0,
            replayed: 0,
        }
    }

    /// Read the persisted index (if any) and replay the log above its high-water mark.
    pub(crate) fn load(
        source: &'a Source,
        db: &Db,
        seg: &VectorSegment<'_>,
        vec_max_row: Option<u64>,
    ) -> Result<Vectors<'a>> {
        let pickle_rel = format!("{}/index_metadata.pickle", seg.segment);
        let (persisted, vec_max) = match source.read_small(&pickle_rel, MAX_PICKLE_BYTES)? {
            Some(pickle) => {
                let (p, legacy_max) = persisted(source, seg, &pickle)?;
                (Some(p), vec_max_row.or(legacy_max).unwrap_or(0))
            }
            None => {
                if vec_max_row.is_some_and(|m| m > 0) {
                    return Err(ChromaError::Missing {
                        file: source.show(&pickle_rel),
                        why: format!(
                            "the vector segment's max_seq_id is {}: the vectors up to it are only in the HNSW files",
                            vec_max_row.unwrap_or(0)
                        ),
                    });
                }
                (None, 0)
            }
        };
        let mut v = Vectors {
            live: persisted.as_ref().map_or(0, |p| p.id_to_label.len()),
            persisted,
            tail: HashMap::new(),
            vec_max,
            replayed: 0,
        };
        for row in log_rows(db, seg, vec_max)? {
            v.apply(seg.collection, row)?;
        }
        Ok(v)
    }

    fn in_persisted(&self, id: &str) -> bool {
        self.persisted
            .as_ref()
            .is_some_and(|p| p.id_to_label.contains_key(id))
    }

    fn present(&self, id: &str) -> bool {
        match self.tail.get(id) {
            Some(v) => v.is_some(),
            None => self.in_persisted(id),
        }
    }

    fn set(&mut self, id: String, vector: Option<Vec<f32>>) {
        let was = self.present(&id);
        let is = vector.is_some();
        self.live = self.live + is as usize - was as usize;
        self.tail.insert(id, vector);
    }

    fn apply(&mut self, collection: &str, row: LogRow) -> Result<()> {
        self.replayed += 1;
        let needs = |row: &LogRow| {
            ChromaError::inconsistent(
                collection,
                format!(
                    "embeddings_queue seq {}: operation {} on {:?} without a vector",
                    row.seq, row.op, row.id
                ),
            )
        };
        match row.op {
            0 => {
                if !self.present(&row.id) {
                    let v = row.vector.clone().ok_or_else(|| needs(&row))?;
                    self.set(row.id, Some(v));
                }
            }
            1 => {
                if self.present(&row.id) {
                    if let Some(v) = row.vector {
                        self.set(row.id, Some(v));
                    }
                }
            }
            2 => match row.vector {
                Some(v) => self.set(row.id, Some(v)),
                None if self.present(&row.id) => {}
                None => return Err(needs(&row)),
            },
            3 => {
                if self.present(&row.id) {
                    self.set(row.id, None);
                }
            }
            4 => {} // BACKFILL_FN: no data
            other => {
                return Err(ChromaError::unsupported(
                    collection,
                    format!("embeddings_queue seq {}: operation code {other}", row.seq),
                ))
            }
        }
        Ok(())
    }

    /// Whether `id` has a vector.
    pub(crate) fn has(&self, id: &str) -> bool {
        self.present(id)
    }

    /// The vector of `id` into `out`, and where it came from; `None` when it has none.
    pub(crate) fn get(&self, id: &str, out: &mut Vec<f32>) -> Result<Option<VectorSource>> {
        match self.tail.get(id) {
            Some(Some(v)) => {
                out.clear();
                out.extend_from_slice(v);
                return Ok(Some(VectorSource::Log));
            }
            Some(None) => return Ok(None),
            None => {}
        }
        let Some(p) = &self.persisted else {
            return Ok(None);
        };
        let Some(&label) = p.id_to_label.get(id) else {
            return Ok(None);
        };
        Ok(p.index
            .vector(&p.data_file, &p.data, label, out)?
            .then_some(VectorSource::Hnsw))
    }

    /// Elements of the HNSW files (live, deleted), if the index was ever persisted.
    pub(crate) fn hnsw_elements(&self) -> Option<(usize, u64)> {
        self.persisted
            .as_ref()
            .map(|p| (p.index.live(), p.index.deleted()))
    }
}
