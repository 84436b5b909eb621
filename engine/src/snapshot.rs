//! Snapshots: an immutable view of one collection at one version — its mapped segments,
//! the rows deleted or superseded in them, and the overlay of entries folded from the
//! registered deltas (merge-on-read). Every read runs on a snapshot; the writer swaps in a
//! new one after each commit and never changes one a reader holds.

use std::collections::BTreeSet;
use std::sync::Arc;

use strata_formats::{
    Filter, Metadata, Metric, Op, Operation, Quantization, RetainedOp, Target, VersionRecord,
};

use crate::error::{Error, Result};
use crate::resolve::{stored_history_matches, Entry, FilterProbe, Row};
use crate::segment::{IndexKey, MappedSegment, RowSet};

/// A collection's settings.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct CollectionInfo {
    /// The name.
    pub name: String,
    /// Dimensions (0 = metadata-only).
    pub dims: u32,
    /// Distance metric.
    pub metric: Metric,
    /// Quantization built at compaction.
    pub quantization: Quantization,
    /// Creation time (ms since the Unix epoch).
    pub created_ms: u64,
}

/// A segment as one snapshot sees it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentSlot {
    /// The mapped file.
    pub(crate) seg: Arc<MappedSegment>,
    /// Rows deleted in the version plus rows superseded by the overlay.
    pub(crate) dead: RowSet,
    /// Rows deleted in the version alone (what the next version record keeps).
    pub(crate) version_dead: RowSet,
}

/// Which parts of a record a read returns (Chroma's `include`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Include {
    /// Return embeddings.
    pub embeddings: bool,
    /// Return documents.
    pub documents: bool,
    /// Return metadata.
    pub metadatas: bool,
}

impl Default for Include {
    fn default() -> Include {
        Include {
            embeddings: false,
            documents: true,
            metadatas: true,
        }
    }
}

impl Include {
    /// Everything.
    pub fn all() -> Include {
        Include {
            embeddings: true,
            documents: true,
            metadatas: true,
        }
    }

    /// Ids only.
    pub fn ids() -> Include {
        Include {
            embeddings: false,
            documents: false,
            metadatas: false,
        }
    }
}

/// One record returned by a read.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordOut {
    /// The id.
    pub id: String,
    /// Distance to the query vector (queries only).
    pub distance: Option<f32>,
    /// The embedding, if asked for.
    pub embedding: Option<Vec<f32>>,
    /// The document, if asked for.
    pub document: Option<String>,
    /// The metadata, if asked for.
    pub metadata: Option<Metadata>,
}

/// Where a visible record lives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Loc<'a> {
    Seg(usize, usize),
    Overlay(&'a str, &'a Entry),
}

/// The state behind a [`Snapshot`] (also what the writer builds the next one from).
#[derive(Debug, Clone)]
pub(crate) struct SnapshotState {
    /// The collection's settings.
    pub(crate) info: CollectionInfo,
    /// The version this snapshot shows.
    pub(crate) version: Arc<VersionRecord>,
    /// Segments, oldest first.
    pub(crate) segments: Vec<SegmentSlot>,
    /// Entries folded from registered deltas, by id. A persistent map: the writer derives
    /// each version's state from a clone of the last one that a reader may still hold,
    /// and cloning it costs O(1), not a copy of every id.
    pub(crate) overlay: imbl::HashMap<String, Arc<Entry>>,
    /// How many overlay entries are live (maintained with it).
    overlay_live: usize,
    /// Filter-targeted operations within the retention horizon, ascending seq.
    pub(crate) ledger: Vec<RetainedOp>,
}

/// A history that cannot be replayed, as a format error of its segment's History block.
pub(crate) fn history_error(seg: &MappedSegment, detail: String) -> Error {
    let offset = seg
        .view()
        .layout()
        .block(strata_formats::BlockKind::History)
        .map_or(0, |b| b.offset);
    seg.err(strata_formats::FormatError::Malformed {
        kind: strata_formats::FileKind::Segment,
        what: "history block".into(),
        offset,
        detail,
    })
}

/// An immutable view of a collection at one version. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Snapshot(pub(crate) Arc<SnapshotState>);

impl SnapshotState {
    /// A state with the version's segments and no overlay yet.
    pub(crate) fn new(
        info: CollectionInfo,
        version: Arc<VersionRecord>,
        segments: Vec<Arc<MappedSegment>>,
    ) -> Result<SnapshotState> {
        let mut slots = Vec::with_capacity(segments.len());
        for (seg, sref) in segments.into_iter().zip(&version.segments) {
            let mut dead = RowSet::new(seg.rows());
            for row in &sref.deleted {
                if (*row as usize) >= seg.rows() {
                    return Err(Error::ManifestEntry {
                        key: format!("version {} segment {}", version.version, sref.file),
                        detail: format!("deleted row {row} beyond its {} rows", seg.rows()),
                    });
                }
                dead.insert(*row as usize);
            }
            slots.push(SegmentSlot {
                seg,
                version_dead: dead.clone(),
                dead,
            });
        }
        Ok(SnapshotState {
            info,
            ledger: version.retained.clone(),
            version,
            segments: slots,
            overlay: imbl::HashMap::new(),
            overlay_live: 0,
        })
    }

    /// The current entry of an id from the segments (newest first), with its row location.
    fn lookup(&self, id: &str) -> Result<(Entry, Option<(usize, usize)>)> {
        for (si, slot) in self.segments.iter().enumerate().rev() {
            if let Some(shadow) = slot.seg.shadow(id) {
                let e = Entry::from_shadow(shadow.clone(), slot.seg.history(id))
                    .map_err(|d| history_error(&slot.seg, d))?;
                return Ok((e, None));
            }
            let view = slot.seg.view();
            if let Some(row) = view.find(id).map_err(|e| slot.seg.err(e))? {
                if slot.dead.contains(row) {
                    continue;
                }
                return Ok((self.entry_at(si, row)?, Some((si, row))));
            }
        }
        Ok((Entry::absent(), None))
    }

    fn entry_at(&self, si: usize, row: usize) -> Result<Entry> {
        let seg = &self.segments[si].seg;
        let view = seg.view();
        let e = |e| seg.err(e);
        let meta = view.row_meta(row).map_err(e)?;
        let embedding = if view.dims() > 0 {
            Some(Arc::from(view.vector(row).map_err(|e| seg.err(e))?))
        } else {
            None
        };
        let id = view.id(row).map_err(e)?;
        Entry::from_row(
            view.seq(row).map_err(|e| seg.err(e))?,
            Row {
                embedding,
                document: view.document(row).map_err(|e| seg.err(e))?,
                metadata: meta.metadata,
            },
            meta.key_seqs,
            seg.history(id),
        )
        .map_err(|d| history_error(seg, d))
    }

    fn entry_mut(&mut self, id: &str) -> Result<&mut Entry> {
        if !self.overlay.contains_key(id) {
            let (entry, loc) = self.lookup(id)?;
            if let Some((si, row)) = loc {
                self.segments[si].dead.insert(row);
            }
            self.overlay_live += usize::from(entry.is_live());
            self.overlay.insert(id.to_string(), Arc::new(entry));
        }
        Ok(Arc::make_mut(
            self.overlay.get_mut(id).expect("inserted above"),
        ))
    }

    /// Account for an overlay entry that was live (`before`) and now is or is not.
    fn live_changed(&mut self, before: bool, after: bool) {
        match (before, after) {
            (false, true) => self.overlay_live += 1,
            (true, false) => self.overlay_live -= 1,
            _ => {}
        }
    }

    /// Live entries of the overlay, kept as entries change (a write does not count them).
    pub(crate) fn overlay_live(&self) -> usize {
        self.overlay_live
    }

    /// Empty the overlay (a flush wrote it into a segment).
    pub(crate) fn clear_overlay(&mut self) {
        self.overlay.clear();
        self.overlay_live = 0;
    }

    /// Ids of the visible records that match a filter.
    fn matching_ids(&self, filter: &Filter) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        self.for_each_live(Some(filter), |loc| {
            ids.push(match loc {
                Loc::Overlay(id, _) => id.to_string(),
                Loc::Seg(si, row) => self.segments[si]
                    .seg
                    .view()
                    .id(row)
                    .map_err(|e| self.segments[si].seg.err(e))?
                    .to_string(),
            });
            Ok(())
        })?;
        Ok(ids)
    }

    /// Apply an operation that names `id` (an upsert, or a patch or delete by id).
    fn apply_to_id(&mut self, id: &str, op: &Operation, now: u64) -> Result<()> {
        let ledger = std::mem::take(&mut self.ledger);
        let out = self.entry_mut(id).map(|e| {
            let before = e.is_live();
            e.apply(op.seq, &op.op, &ledger, now);
            (before, e.is_live())
        });
        self.ledger = ledger;
        let (before, after) = out?;
        self.live_changed(before, after);
        Ok(())
    }

    /// Replay an id against the ledger (a filter operation joined it); the id enters the
    /// overlay only if its state changes.
    fn replay_id(&mut self, id: &str, now: u64) -> Result<()> {
        if let Some(e) = self.overlay.get_mut(id) {
            let e = Arc::make_mut(e);
            let before = e.is_live();
            e.replay(&self.ledger, now);
            let after = e.is_live();
            self.live_changed(before, after);
            return Ok(());
        }
        let (mut entry, loc) = self.lookup(id)?;
        if entry.replay(&self.ledger, now) {
            if let Some((si, row)) = loc {
                self.segments[si].dead.insert(row);
            }
            self.overlay_live += usize::from(entry.is_live());
            self.overlay.insert(id.to_string(), Arc::new(entry));
        }
        Ok(())
    }

    /// Fold one operation into the overlay (the order-independence rules of `resolve`).
    pub(crate) fn fold(&mut self, op: &Operation, now: u64) -> Result<()> {
        let target = match &op.op {
            Op::Upsert(r) => return self.apply_to_id(&r.id, op, now),
            Op::Patch(p) => &p.target,
            Op::Delete(t) => t,
        };
        let Target::Where(filter) = target else {
            for id in target.ids().unwrap_or_default() {
                self.apply_to_id(id, op, now)?;
            }
            return Ok(());
        };
        // A version's retained ledger already holds the filter operations of its pending
        // deltas (a reader folds them again): those are not added twice, but still applied.
        let at = self.ledger.partition_point(|r| r.op.seq < op.seq);
        let at = match self.ledger[at..]
            .iter()
            .take_while(|r| r.op.seq == op.seq)
            .position(|r| r.op == *op)
        {
            Some(i) => at + i,
            None => {
                let after = self.ledger.partition_point(|r| r.op.seq <= op.seq);
                self.ledger.insert(
                    after,
                    RetainedOp {
                        op: op.clone(),
                        time_ms: now,
                    },
                );
                after
            }
        };
        // The ids the filter may touch: those it matches now, and those with a history whose
        // state just before the filter (replayed on metadata alone) matches it.
        let mut ids: BTreeSet<String> = self.matching_ids(filter)?.into_iter().collect();
        let probe = FilterProbe::new(op.seq, filter, &self.ledger[..at]);
        ids.extend(
            self.overlay
                .iter()
                .filter(|(_, e)| e.history.is_some() && e.may_match_at(&probe))
                .map(|(id, _)| id.clone()),
        );
        let index_key = probe.index_key();
        for slot in &self.segments {
            let candidates: Vec<&strata_formats::History> = match &index_key {
                Some((key, value)) => slot.seg.histories_with(key, value),
                None => slot.seg.histories().collect(),
            };
            ids.extend(
                candidates
                    .into_iter()
                    .filter(|h| stored_history_matches(h, &probe))
                    .map(|h| h.id.clone()),
            );
        }
        for id in ids {
            self.replay_id(&id, now)?;
        }
        Ok(())
    }

    /// Drop ledger entries older than the horizon that no history still replays: an entry
    /// newer than some history's `through` stays until that history is folded.
    pub(crate) fn expire_ledger(&mut self, horizon_start_ms: u64) {
        if self.ledger.iter().all(|r| r.time_ms >= horizon_start_ms) {
            // Nothing has left the horizon: no need to ask every history what it needs.
            return;
        }
        let needed_after = self
            .overlay
            .values()
            .filter_map(|e| e.history.as_ref().map(|h| h.through))
            .chain(
                self.segments
                    .iter()
                    .filter_map(|s| s.seg.min_history_through()),
            )
            .min();
        self.ledger.retain(|r| {
            r.time_ms >= horizon_start_ms || needed_after.is_some_and(|t| r.op.seq > t)
        });
    }

    /// Candidate rows of a segment for a filter: an equality index lookup when the filter
    /// requires `key == value` on an indexable value, otherwise every row.
    pub(crate) fn candidates(
        &self,
        si: usize,
        filter: Option<&Filter>,
    ) -> Result<Option<Vec<u32>>> {
        let Some(filter) = filter else {
            return Ok(None);
        };
        for (key, value) in filter.required_equalities() {
            if let Some(k) = IndexKey::of_scalar(value) {
                let ix = self.segments[si].seg.eq_index(key)?;
                return Ok(Some(ix.get(&k).cloned().unwrap_or_default()));
            }
        }
        Ok(None)
    }

    pub(crate) fn segment_matches(
        &self,
        si: usize,
        filter: Option<&Filter>,
        mut f: impl FnMut(usize) -> Result<()>,
    ) -> Result<()> {
        let slot = &self.segments[si];
        let view = slot.seg.view();
        let mut visit = |row: usize| -> Result<()> {
            if slot.dead.contains(row) {
                return Ok(());
            }
            if let Some(filter) = filter {
                let meta = view.row_meta(row).map_err(|e| slot.seg.err(e))?;
                if !filter.matches(&meta.metadata) {
                    return Ok(());
                }
            }
            f(row)
        };
        match self.candidates(si, filter)? {
            Some(rows) => rows.into_iter().try_for_each(|r| visit(r as usize)),
            None => (0..slot.seg.rows()).try_for_each(visit),
        }
    }

    fn for_each_live<'a>(
        &'a self,
        filter: Option<&Filter>,
        mut f: impl FnMut(Loc<'a>) -> Result<()>,
    ) -> Result<()> {
        for si in 0..self.segments.len() {
            self.segment_matches(si, filter, |row| f(Loc::Seg(si, row)))?;
        }
        for (id, e) in &self.overlay {
            if e.is_live() && filter.is_none_or(|fl| fl.matches(&e.row.metadata)) {
                f(Loc::Overlay(id, e))?;
            }
        }
        Ok(())
    }

    pub(crate) fn output(
        &self,
        loc: Loc<'_>,
        include: Include,
        dist: Option<f32>,
    ) -> Result<RecordOut> {
        match loc {
            Loc::Overlay(id, e) => Ok(RecordOut {
                id: id.to_string(),
                distance: dist,
                embedding: include
                    .embeddings
                    .then(|| e.row.embedding.as_deref().map(<[f32]>::to_vec))
                    .flatten(),
                document: include.documents.then(|| e.row.document.clone()).flatten(),
                metadata: include.metadatas.then(|| e.row.metadata.clone()),
            }),
            Loc::Seg(si, row) => {
                let seg = &self.segments[si].seg;
                let view = seg.view();
                let err = |e| seg.err(e);
                Ok(RecordOut {
                    id: view.id(row).map_err(err)?.to_string(),
                    distance: dist,
                    embedding: if include.embeddings && view.dims() > 0 {
                        Some(view.vector(row).map_err(|e| seg.err(e))?.to_vec())
                    } else {
                        None
                    },
                    document: if include.documents {
                        view.document(row).map_err(|e| seg.err(e))?
                    } else {
                        None
                    },
                    metadata: if include.metadatas {
                        Some(view.row_meta(row).map_err(|e| seg.err(e))?.metadata)
                    } else {
                        None
                    },
                })
            }
        }
    }

    pub(crate) fn id_of<'a>(&'a self, loc: Loc<'a>) -> Result<&'a str> {
        match loc {
            Loc::Overlay(id, _) => Ok(id),
            Loc::Seg(si, row) => {
                let seg = &self.segments[si].seg;
                seg.view().id(row).map_err(|e| seg.err(e))
            }
        }
    }
}

/// A k-nearest-neighbour request.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The query vector.
    pub vector: &'a [f32],
    /// How many neighbours.
    pub k: usize,
    /// Only records matching this filter.
    pub filter: Option<&'a Filter>,
    /// What to return.
    pub include: Include,
}

impl Snapshot {
    /// The collection's settings.
    pub fn info(&self) -> &CollectionInfo {
        &self.0.info
    }

    /// The version shown.
    pub fn version(&self) -> &VersionRecord {
        &self.0.version
    }

    /// Records by id, in the order asked; ids with no visible record are skipped.
    pub fn get(&self, ids: &[String], include: Include) -> Result<Vec<RecordOut>> {
        crate::limits::check("ids", ids.len(), crate::limits::MAX_GET_IDS)?;
        let s = &self.0;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = s.overlay.get(id) {
                if e.is_live() {
                    out.push(s.output(Loc::Overlay(id, e), include, None)?);
                }
                continue;
            }
            if let (entry, Some((si, row))) = s.lookup(id)? {
                if entry.is_live() {
                    out.push(s.output(Loc::Seg(si, row), include, None)?);
                }
            }
        }
        Ok(out)
    }

    /// Records matching a filter (all records without one), ordered by id, paged.
    pub fn get_where(
        &self,
        filter: Option<&Filter>,
        limit: Option<usize>,
        offset: usize,
        include: Include,
    ) -> Result<Vec<RecordOut>> {
        let s = &self.0;
        let mut locs: Vec<(&str, Loc<'_>)> = Vec::new();
        s.for_each_live(filter, |loc| {
            locs.push((s.id_of(loc)?, loc));
            Ok(())
        })?;
        locs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        locs.into_iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
            .map(|(_, loc)| s.output(loc, include, None))
            .collect()
    }

    /// Number of records matching a filter (all records without one).
    pub fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        let mut n = 0;
        self.0.for_each_live(filter, |_| {
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// Live rows.
    pub fn rows(&self) -> Result<usize> {
        self.count(None)
    }
}
