//! The compaction executor: carries a merge policy's plans out — fold the registered
//! deltas into a new segment (flush), merge runs of adjacent segments, rewrite segments
//! alone — and commits the result as one version. Rows stream from the mapped inputs to the
//! output file; rows are decoded in parallel chunks with rayon. Nothing is committed unless
//! every output is durable, and the disk must have twice a plan's inputs free before the
//! plan starts. The store it works on is reached through [`CompactionContext`] only.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::io::BufWriter;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;
use strata_formats::{
    History, RowInput, RowMeta, SegmentRef, SegmentWriter, Seq, ShadowEntry, VersionRecord,
};

use super::plan::{CompactionPlan, CompactionProgress, CompactionStats, SegmentStats};
use super::policy::MergePolicy;
use crate::error::{Error, Result};
use strata_storage::{Storage, TempFile};

use crate::clock::now_ms;
use crate::layout;
use crate::resolve::Entry;
use crate::segment::{MappedSegment, RowSet};
use crate::snapshot::{history_error, SegmentSlot, Snapshot, SnapshotState};

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompactReport {
    /// The committed version (None when there was nothing to do).
    pub version: Option<u64>,
    /// Deltas folded.
    pub deltas_folded: usize,
    /// Segments read.
    pub segments_in: usize,
    /// Segments written.
    pub segments_out: usize,
    /// Rows written.
    pub rows_out: u64,
    /// Bytes read from inputs.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
}

/// What the executor needs of the store it compacts (the [`Writer`](crate::Writer)
/// implements it; the executor knows nothing else of it).
pub(crate) trait CompactionContext {
    /// Where the store's files live.
    fn storage(&self) -> &dyn Storage;
    /// The store's location, for messages.
    fn root(&self) -> &Path;
    /// How long tombstones and filter operations are kept.
    fn horizon(&self) -> Duration;
    /// Publish `temp` as a new file in `dir` named by a fresh file number; returns the name.
    fn publish_numbered(
        &self,
        temp: &TempFile,
        dir: &str,
        name: fn(u64) -> String,
    ) -> Result<String>;
    /// Map a published segment (shared with every snapshot that maps it).
    fn map_segment(&self, name: &str) -> Result<Arc<MappedSegment>>;
    /// Commit a new version derived from `state` (derived from the current head), its
    /// record edited by `edit`, and make it the current snapshot.
    fn commit(
        &self,
        state: SnapshotState,
        edit: impl FnOnce(&mut VersionRecord),
    ) -> Result<Snapshot>;
}

/// Compact a collection from its head snapshot `snap`, step by step as `policy` plans, and
/// commit everything carried out as one version. `full` is [`CompactionStats::full`]. The
/// caller holds the writer lock.
pub(crate) fn compact<C: CompactionContext>(
    ctx: &C,
    policy: &dyn MergePolicy,
    snap: &Snapshot,
    full: bool,
) -> Result<CompactReport> {
    let mut executor = Executor::new(ctx, snap, full);
    loop {
        let stats = executor.stats();
        let plan = policy.plan(&stats);
        plan.check(&stats)?;
        if plan.input_bytes > 0 {
            executor.check_space(plan.input_bytes)?;
        }
        if plan.is_empty() {
            break;
        }
        executor.carry_out(&plan)?;
    }
    executor.commit()
}

/// One output row, resolved from a segment or the overlay.
struct OutRow {
    id: String,
    seq: Seq,
    vector: Arc<[f32]>,
    document: Option<String>,
    meta: RowMeta,
}

const CHUNK: usize = 2048;

/// One compaction call: the state being compacted and what has been done to it.
struct Executor<'a, C> {
    ctx: &'a C,
    full: bool,
    /// The head's state, changed as plans are carried out.
    state: SnapshotState,
    /// The segments of the next version record, in step with `state.segments`.
    refs: Vec<SegmentRef>,
    /// Deltas registered and not yet flushed, and their bytes.
    deltas: usize,
    delta_bytes: u64,
    /// Operations that arrived before this are settled (ms since the Unix epoch).
    horizon_start: u64,
    /// Segments written by this call.
    written: HashSet<String>,
    progress: CompactionProgress,
    report: CompactReport,
}

impl<'a, C: CompactionContext> Executor<'a, C> {
    fn new(ctx: &'a C, snap: &Snapshot, full: bool) -> Executor<'a, C> {
        let version = snap.version();
        Executor {
            ctx,
            full,
            state: (*snap.0).clone(),
            refs: version.segments.clone(),
            deltas: version.deltas.len(),
            delta_bytes: version.deltas.iter().map(|d| d.bytes).sum(),
            horizon_start: now_ms().saturating_sub(ctx.horizon().as_millis() as u64),
            written: HashSet::new(),
            progress: CompactionProgress::default(),
            report: CompactReport::default(),
        }
    }

    /// The statistics the policy plans the next step from.
    fn stats(&self) -> CompactionStats {
        // A history blocks the ledger from dropping a filter operation newer than the
        // history's `through`; two horizons after it arrived, that is stale.
        let stale = now_ms().saturating_sub(2 * self.ctx.horizon().as_millis() as u64);
        let ledger = &self.state.ledger;
        let segments = self
            .state
            .segments
            .iter()
            .zip(&self.refs)
            .map(|(slot, sref)| SegmentStats {
                rows: slot.seg.rows(),
                dead_rows: slot.dead.len(),
                bytes: sref.bytes,
                stale_history: slot.seg.min_history_through().is_some_and(|through| {
                    ledger
                        .iter()
                        .any(|r| r.time_ms < stale && r.op.seq > through)
                }),
                written: self.written.contains(&sref.file),
            })
            .collect();
        CompactionStats {
            full: self.full,
            deltas: self.deltas,
            delta_bytes: self.delta_bytes,
            segments,
            progress: self.progress,
        }
    }

    /// Carry out a checked plan: the flush, then the merge and the rewrites from the last
    /// segment to the first (so that the plan's indices keep naming the same segments).
    fn carry_out(&mut self, plan: &CompactionPlan) -> Result<()> {
        if plan.flush {
            self.flush()?;
        }
        let mut runs: Vec<Range<usize>> = plan
            .rewrite
            .iter()
            .map(|i| *i..*i + 1)
            .chain(plan.merge.clone())
            .collect();
        runs.sort_by_key(|r| Reverse(r.start));
        for range in runs {
            self.merge_in_place(range)?;
        }
        if plan.merge.is_some() {
            self.progress.merges += 1;
        }
        if !plan.rewrite.is_empty() {
            self.progress.rewritten = true;
        }
        Ok(())
    }

    /// Commit what was carried out as one version (nothing when nothing was).
    fn commit(mut self) -> Result<CompactReport> {
        if self.progress.is_start() {
            return Ok(self.report);
        }
        let (refs, flushed) = (self.refs, self.progress.flushed);
        let snap = self.ctx.commit(self.state, |r| {
            r.segments = refs;
            if flushed {
                r.deltas.clear();
            }
            r.note = "compact".into();
        })?;
        self.report.version = Some(snap.version().version);
        Ok(self.report)
    }

    fn check_space(&self, input_bytes: u64) -> Result<()> {
        let available = self.ctx.storage().available_space()?;
        let needed = input_bytes.saturating_mul(2);
        if available < needed {
            return Err(Error::NoSpace {
                path: self.ctx.root().to_path_buf(),
                needed,
                available,
            });
        }
        Ok(())
    }

    /// Write rows and shadows into a new published segment; returns its slot and ref.
    fn write_segment(
        &self,
        state: &SnapshotState,
        rows: impl Iterator<Item = Result<Vec<OutRow>>>,
        shadows: Vec<ShadowEntry>,
        histories: Vec<History>,
    ) -> Result<Option<(SegmentSlot, SegmentRef, u64)>> {
        let storage = self.ctx.storage();
        strata_storage::failpoint!("compact: write segment", storage.location(layout::TMP));
        let file = storage.create_temp("segment")?;
        let temp = file.temp().clone();
        let location = storage.location(temp.path());
        let mut w = SegmentWriter::new(
            BufWriter::with_capacity(1 << 20, file),
            state.info.dims,
            state.info.quantization,
        )
        .map_err(|e| segment_error(e, &location))?;
        for chunk in rows {
            for r in chunk? {
                w.push(RowInput {
                    id: &r.id,
                    seq: r.seq,
                    vector: &r.vector,
                    document: r.document.as_deref(),
                    meta: &r.meta,
                })
                .map_err(|e| match e {
                    strata_formats::segment::SegmentWriteError::Io(_) => {
                        segment_error(e, &location)
                    }
                    other => Error::invalid("segment row", other.to_string()),
                })?;
            }
        }
        let n = w.rows();
        if n == 0 && shadows.is_empty() {
            drop(w);
            storage.discard_temp(&temp);
            return Ok(None);
        }
        for s in shadows {
            w.push_shadow(s);
        }
        for h in histories {
            w.push_history(h);
        }
        let (out, len) = w.finish().map_err(|e| segment_error(e, &location))?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io("flush", &location)(e.into_error()))?;
        let temp = file.finish()?;
        let name = self
            .ctx
            .publish_numbered(&temp, layout::SEGMENTS, layout::segment_name)?;
        let seg = self.ctx.map_segment(&name)?;
        let slot = SegmentSlot {
            dead: RowSet::new(seg.rows()),
            version_dead: RowSet::new(seg.rows()),
            seg,
        };
        let sref = SegmentRef {
            file: name,
            rows: n,
            bytes: len,
            deleted: vec![],
        };
        Ok(Some((slot, sref, n)))
    }

    /// Fold the overlay into a new segment after the others; superseded rows become the
    /// version's dead rows.
    fn flush(&mut self) -> Result<()> {
        let (live, shadows, histories) = flush_rows(&self.state, self.horizon_start);
        let out = self.write_segment(&self.state, std::iter::once(Ok(live)), shadows, histories)?;
        for slot in &mut self.state.segments {
            slot.version_dead = slot.dead.clone();
        }
        self.state.clear_overlay();
        if let Some((slot, sref, n)) = out {
            self.report.bytes_out += sref.bytes;
            self.report.rows_out += n;
            self.report.segments_out += 1;
            self.state.segments.push(slot);
            self.written.insert(sref.file.clone());
            self.refs.push(sref);
        }
        self.report.deltas_folded = self.deltas;
        self.report.bytes_in += self.delta_bytes;
        self.deltas = 0;
        self.delta_bytes = 0;
        self.progress.flushed = true;
        Ok(())
    }

    /// Merge a run of the state's segments and put the result (one segment, or none when
    /// nothing survives) in its place, in the state and in `refs`; counts it in the report.
    fn merge_in_place(&mut self, range: Range<usize>) -> Result<()> {
        self.report.segments_in += range.len();
        self.report.bytes_in += self.refs[range.clone()]
            .iter()
            .map(|r| r.bytes)
            .sum::<u64>();
        let (new_slots, new_refs) = match self.merge_run(range.clone())? {
            Some((slot, sref, n)) => {
                self.report.bytes_out += sref.bytes;
                self.report.rows_out += n;
                self.report.segments_out += 1;
                (vec![slot], vec![sref])
            }
            None => (vec![], vec![]),
        };
        self.state.segments.splice(range.clone(), new_slots);
        self.written.extend(new_refs.iter().map(|r| r.file.clone()));
        self.refs.splice(range, new_refs);
        Ok(())
    }

    /// Merge an adjacent run of segments into one (newest entry of each id wins).
    fn merge_run(&self, range: Range<usize>) -> Result<Option<(SegmentSlot, SegmentRef, u64)>> {
        let (state, horizon_start) = (&self.state, self.horizon_start);
        let slots = &state.segments[range];
        // Newest first: decide which rows and shadows survive.
        let mut seen: HashSet<&str> = HashSet::new();
        let mut keep: Vec<Vec<u32>> = vec![Vec::new(); slots.len()];
        let mut shadows = Vec::new();
        let mut histories = Vec::new();
        // A history is carried over until it settles (then the row or shadow alone is the
        // folded state); a shadow entry lives while it or its history is within the horizon.
        let folded = |seg: &MappedSegment, id: &str, shadow: Option<&ShadowEntry>| {
            seg.history(id)
                .map(|h| Entry::fold_stored(id, h, shadow, &state.ledger, horizon_start))
                .transpose()
                .map(Option::flatten)
                .map_err(|d| history_error(seg, d))
        };
        for (i, slot) in slots.iter().enumerate().rev() {
            let view = slot.seg.view();
            for s in slot.seg.shadows() {
                if !seen.insert(s.id.as_str()) {
                    continue;
                }
                let history = folded(&slot.seg, &s.id, Some(s))?;
                if s.time_ms >= horizon_start || history.is_some() {
                    shadows.push(s.clone());
                    histories.extend(history);
                }
            }
            for row in 0..slot.seg.rows() {
                if slot.dead.contains(row) {
                    continue;
                }
                let id = view.id(row).map_err(|e| slot.seg.err(e))?;
                if seen.insert(id) {
                    keep[i].push(row as u32);
                    histories.extend(folded(&slot.seg, id, None)?);
                }
            }
        }
        shadows.sort_by(|a, b| a.id.cmp(&b.id));
        let chunks = slots.iter().zip(keep).flat_map(|(slot, rows)| {
            let seg = slot.seg.clone();
            let n = rows.len().div_ceil(CHUNK);
            rows.chunks(CHUNK)
                .map(|c| c.to_vec())
                .collect::<Vec<_>>()
                .into_iter()
                .enumerate()
                .map(move |(i, chunk)| {
                    let out = read_rows(&seg, &chunk);
                    if i + 1 == n {
                        seg.release_pages();
                    }
                    out
                })
        });
        self.write_segment(state, chunks, shadows, histories)
    }
}

/// The rows, shadow entries and histories a flush writes: overlay live entries become rows,
/// non-live entries within the horizon shadow entries, and histories are written with
/// their settled prefix folded.
fn flush_rows(
    state: &SnapshotState,
    horizon_start: u64,
) -> (Vec<OutRow>, Vec<ShadowEntry>, Vec<History>) {
    let mut entries: Vec<(&String, &Arc<Entry>)> = state.overlay.iter().collect();
    entries.sort_unstable_by_key(|(id, _)| *id);
    let mut live = Vec::new();
    let mut shadows = Vec::new();
    let mut histories = Vec::new();
    for (id, e) in entries {
        let mut e: &Entry = e;
        // The settled part of a history is folded before it is written.
        let folded;
        if e.history.is_some() {
            let mut f = e.clone();
            f.fold_settled(&state.ledger, horizon_start);
            folded = f;
            e = &folded;
        }
        let history = e.to_history(id);
        let keep = e.is_live() || e.time_ms >= horizon_start || history.is_some();
        histories.extend(history.filter(|_| keep));
        if e.is_live() {
            live.push(OutRow {
                id: id.clone(),
                seq: e.seq,
                vector: e
                    .row
                    .embedding
                    .clone()
                    .unwrap_or_else(|| Arc::from(Vec::new())),
                document: e.row.document.clone(),
                meta: e.row_meta(),
            });
        } else if keep {
            shadows.push(e.to_shadow(id));
        }
    }
    (live, shadows, histories)
}

/// Decode a chunk of rows of a segment in parallel.
fn read_rows(seg: &Arc<MappedSegment>, rows: &[u32]) -> Result<Vec<OutRow>> {
    rows.par_iter()
        .map(|row| {
            let row = *row as usize;
            let view = seg.view();
            let e = |e| seg.err(e);
            Ok(OutRow {
                id: view.id(row).map_err(e)?.to_string(),
                seq: view.seq(row).map_err(|e| seg.err(e))?,
                vector: Arc::from(view.vector(row).map_err(|e| seg.err(e))?),
                document: view.document(row).map_err(|e| seg.err(e))?,
                meta: view.row_meta(row).map_err(|e| seg.err(e))?,
            })
        })
        .collect()
}

/// A segment writer's error: an I/O error (a full disk, say) as the `Error::Io` it is,
/// naming the temporary; anything else as an invalid segment.
fn segment_error(e: strata_formats::segment::SegmentWriteError, location: &Path) -> Error {
    match e {
        strata_formats::segment::SegmentWriteError::Io(source) => Error::Io {
            op: "write segment",
            path: location.to_path_buf(),
            source,
        },
        other => Error::invalid("segment", other.to_string()),
    }
}
