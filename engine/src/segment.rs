//! Memory-mapped segment files: open, verify once, read in place; and the lazily built
//! per-key equality index that lets `image_id = X AND receipt_id = N` skip a scan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use strata_formats::{
    History, MetaValue, Quantization, Scalar, SegmentLayout, SegmentView, Seq, ShadowEntry,
};
use strata_storage::{layout as paths, FileBytes, Storage};

use crate::error::{Error, Result};

/// A value an equality index can hold: strings and integers (integral floats as integers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IndexKey {
    /// A string value.
    Str(String),
    /// An integer value.
    Int(i64),
}

impl IndexKey {
    /// The index key of a filter scalar, if it can be looked up in an index.
    pub fn of_scalar(s: &Scalar) -> Option<IndexKey> {
        match s {
            Scalar::Str(v) => Some(IndexKey::Str(v.clone())),
            Scalar::Int(v) => Some(IndexKey::Int(*v)),
            Scalar::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                Some(IndexKey::Int(*f as i64))
            }
            _ => None,
        }
    }

    fn of_value(v: &MetaValue) -> Option<IndexKey> {
        v.as_scalar().as_ref().and_then(IndexKey::of_scalar)
    }
}

/// Rows of a segment by the value of one key.
pub type EqIndex = HashMap<IndexKey, Vec<u32>>;

/// A segment file mapped into memory.
pub struct MappedSegment {
    path: PathBuf,
    name: String,
    /// The whole file, mapped (see `LocalStorage::map` for why the map stays valid).
    bytes: FileBytes,
    layout: SegmentLayout,
    shadow: HashMap<String, ShadowEntry>,
    history: Vec<History>,
    history_by_id: HashMap<String, usize>,
    history_eq_index: Mutex<HashMap<String, Arc<EqIndex>>>,
    min_history_through: Option<Seq>,
    eq_index: Mutex<HashMap<String, Arc<EqIndex>>>,
    norms: OnceLock<Vec<f32>>,
}

impl std::fmt::Debug for MappedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedSegment")
            .field("path", &self.path)
            .field("rows", &self.layout.header.rows)
            .finish()
    }
}

impl MappedSegment {
    /// Map the segment file at `path` in `storage` (segment files are immutable once
    /// published, which is what [`Storage::map`] needs), parse its header and table, and
    /// (when `verify`) check every block's crc so that no read can ever return corrupt
    /// data unnoticed. Blocks are 64-byte aligned; so is the start of the map.
    pub fn open(storage: &dyn Storage, path: &str, verify: bool) -> Result<MappedSegment> {
        let bytes = storage.map(path)?;
        let location = storage.location(path);
        let layout = SegmentLayout::parse(&bytes).map_err(Error::format(&location))?;
        let view = SegmentView::new(&bytes, &layout).map_err(Error::format(&location))?;
        let (shadow, history) = if verify {
            view.verify_and_decode()
        } else {
            view.shadow().and_then(|s| Ok((s, view.history()?)))
        }
        .map_err(Error::format(&location))?;
        bytes.release_pages();
        let shadow = shadow.into_iter().map(|s| (s.id.clone(), s)).collect();
        let history_by_id = history
            .iter()
            .enumerate()
            .map(|(i, h)| (h.id.clone(), i))
            .collect();
        let min_history_through = history.iter().map(|h| h.through).min();
        Ok(MappedSegment {
            path: location,
            name: paths::file_name(path).to_string(),
            bytes,
            layout,
            shadow,
            history,
            history_by_id,
            history_eq_index: Mutex::new(HashMap::new()),
            min_history_through,
            eq_index: Mutex::new(HashMap::new()),
            norms: OnceLock::new(),
        })
    }

    /// Drop this process's resident pages of the map (they stay in the page cache and fault
    /// back in on the next read). Compaction calls it after streaming a segment once, so a
    /// merge does not hold every input and output page at the same time.
    pub fn release_pages(&self) {
        self.bytes.release_pages();
    }

    /// Where the file is ([`Storage::location`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A zero-copy view.
    pub fn view(&self) -> SegmentView<'_> {
        SegmentView::new(&self.bytes, &self.layout).expect("layout was parsed from this map")
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.layout.header.rows as usize
    }

    /// Size of the file in bytes.
    pub fn bytes(&self) -> u64 {
        self.layout.file_len
    }

    /// Which quantized codes the segment holds.
    pub fn layout_quantization(&self) -> Quantization {
        self.layout.header.quantization
    }

    /// Euclidean norms of every row's vector, computed on first use (quantized search
    /// needs them to turn an i8 dot product into an l2 or cosine estimate).
    pub fn norms(&self) -> Result<&[f32]> {
        if let Some(n) = self.norms.get() {
            return Ok(n);
        }
        let view = self.view();
        let dims = view.dims();
        let vectors = view.vectors().map_err(|e| self.err(e))?;
        let norms = vectors
            .chunks(dims.max(1))
            .map(|v| v.iter().map(|x| x * x).sum::<f32>().sqrt())
            .collect();
        Ok(self.norms.get_or_init(|| norms))
    }

    /// The shadow entry of an id, if the segment has one.
    pub fn shadow(&self, id: &str) -> Option<&ShadowEntry> {
        self.shadow.get(id)
    }

    /// The replay history of an id, if the segment has one.
    pub fn history(&self, id: &str) -> Option<&History> {
        self.history_by_id.get(id).map(|i| &self.history[*i])
    }

    /// The replay histories of the segment's ids.
    pub fn histories(&self) -> impl Iterator<Item = &History> {
        self.history.iter()
    }

    /// The histories in which `key` may ever equal `value`: its value in the base or in one
    /// of the history's patches is `value` (an index over both, built on first use).
    pub fn histories_with(&self, key: &str, value: &IndexKey) -> Vec<&History> {
        let ix = cached_index(&self.history_eq_index, key, || {
            let mut ix = EqIndex::new();
            for (i, h) in self.history.iter().enumerate() {
                let values = std::iter::once(&h.base_metadata)
                    .chain(h.patches.iter().map(|p| &p.set))
                    .filter_map(|m| m.get(key).and_then(IndexKey::of_value));
                for k in values {
                    let rows = ix.entry(k).or_default();
                    if rows.last() != Some(&(i as u32)) {
                        rows.push(i as u32);
                    }
                }
            }
            Ok(ix)
        })
        // The build above reads nothing that can fail.
        .unwrap_or_default();
        ix.get(value)
            .map(|rows| rows.iter().map(|i| &self.history[*i as usize]).collect())
            .unwrap_or_default()
    }

    /// The smallest `through` of the segment's histories (None without histories): retained
    /// filter operations newer than it are still needed to replay them.
    pub fn min_history_through(&self) -> Option<Seq> {
        self.min_history_through
    }

    /// All shadow entries.
    pub fn shadows(&self) -> impl Iterator<Item = &ShadowEntry> {
        self.shadow.values()
    }

    /// Map a format error of this segment to an engine error.
    pub fn err(&self, e: strata_formats::FormatError) -> Error {
        Error::Format {
            path: self.path.clone(),
            source: e,
        }
    }

    /// The equality index of a key, built on first use by one pass over the metadata.
    pub fn eq_index(&self, key: &str) -> Result<Arc<EqIndex>> {
        cached_index(&self.eq_index, key, || {
            let view = self.view();
            let mut ix = EqIndex::new();
            for row in 0..self.rows() {
                let meta = view.row_meta(row).map_err(|e| self.err(e))?;
                if let Some(k) = meta.metadata.get(key).and_then(IndexKey::of_value) {
                    ix.entry(k).or_default().push(row as u32);
                }
            }
            Ok(ix)
        })
    }
}

/// The index of `key` in `cache`, built by `build` on first use.
fn cached_index(
    cache: &Mutex<HashMap<String, Arc<EqIndex>>>,
    key: &str,
    build: impl FnOnce() -> Result<EqIndex>,
) -> Result<Arc<EqIndex>> {
    if let Some(ix) = cache.lock().expect("index lock").get(key) {
        return Ok(ix.clone());
    }
    let ix = Arc::new(build()?);
    cache
        .lock()
        .expect("index lock")
        .insert(key.to_string(), ix.clone());
    Ok(ix)
}

/// A fixed-size set of row numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowSet {
    words: Vec<u64>,
    len: usize,
}

impl RowSet {
    /// An empty set for `rows` rows.
    pub fn new(rows: usize) -> RowSet {
        RowSet {
            words: vec![0; rows.div_ceil(64)],
            len: 0,
        }
    }

    /// Insert a row; returns whether it was new. Rows out of range are ignored.
    pub fn insert(&mut self, row: usize) -> bool {
        let Some(w) = self.words.get_mut(row / 64) else {
            return false;
        };
        let bit = 1u64 << (row % 64);
        if *w & bit != 0 {
            return false;
        }
        *w |= bit;
        self.len += 1;
        true
    }

    /// Whether a row is in the set.
    pub fn contains(&self, row: usize) -> bool {
        self.words
            .get(row / 64)
            .is_some_and(|w| w & (1u64 << (row % 64)) != 0)
    }

    /// Number of rows in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The rows in ascending order.
    pub fn to_vec(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.len);
        for (i, w) in self.words.iter().enumerate() {
            let mut w = *w;
            while w != 0 {
                let b = w.trailing_zeros() as usize;
                out.push((i * 64 + b) as u32);
                w &= w - 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_set_basics() {
        let mut s = RowSet::new(130);
        assert!(s.insert(0));
        assert!(s.insert(129));
        assert!(!s.insert(129));
        assert!(!s.insert(500));
        assert!(s.contains(129) && !s.contains(128));
        assert_eq!(s.to_vec(), vec![0, 129]);
        assert_eq!(s.len(), 2);
    }
}
