//! Compaction: fold the registered deltas into a new segment (flush), merge runs of small
//! adjacent segments (size-tiered: every merge lowers the segment count), and rewrite
//! segments with many dead rows (vacuum). Rows stream from the mapped inputs to the output
//! file; rows are decoded in parallel chunks with rayon. Nothing is committed unless every
//! output is durable, and the disk must have twice the inputs free before anything starts.

use std::collections::HashSet;
use std::io::BufWriter;
use std::sync::Arc;

use rayon::prelude::*;
use strata_formats::{History, RowInput, RowMeta, SegmentRef, SegmentWriter, Seq, ShadowEntry};

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::layout;
use crate::resolve::Entry;
use crate::segment::{MappedSegment, RowSet};
use crate::snapshot::{history_error, SegmentSlot, Snapshot, SnapshotState};
use crate::store::Store;

/// When [`Store::maybe_compact`] compacts, and how segments are merged.
///
/// Defaults follow the anchors (reference/anchors.md): Qdrant merges the smallest segments
/// only while the count falls and vacuums above 20 % deleted; tantivy merges at least 8
/// segments of a log-size level; Lance materializes deletions above 10 %. Our deltas are
/// small and frequent, so a flush after 16 deltas (or 64 MiB) keeps merge-on-read cheap.
#[derive(Debug, Clone)]
pub struct CompactionPolicy {
    /// Flush when this many deltas are registered.
    pub max_deltas: usize,
    /// Flush when registered deltas reach this many bytes.
    pub max_delta_bytes: u64,
    /// Merge a run of this many adjacent segments of the same size tier.
    pub merge_factor: usize,
    /// Rows of the smallest tier; tiers grow by `merge_factor`.
    pub min_segment_rows: usize,
    /// Segments at or above this many live rows are never merged, only vacuumed.
    pub max_segment_rows: usize,
    /// Vacuum a segment whose dead fraction exceeds this...
    pub vacuum_fraction: f64,
    /// ...and that has at least this many dead rows.
    pub vacuum_min_dead: usize,
}

impl Default for CompactionPolicy {
    fn default() -> CompactionPolicy {
        CompactionPolicy {
            max_deltas: 16,
            max_delta_bytes: 64 << 20,
            merge_factor: 4,
            min_segment_rows: 4096,
            max_segment_rows: 1 << 20,
            vacuum_fraction: 0.2,
            vacuum_min_dead: 1000,
        }
    }
}

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

impl CompactionPolicy {
    fn tier(&self, rows: usize) -> u32 {
        let mut tier = 0;
        let mut cap = self.min_segment_rows.max(1);
        while rows > cap {
            cap = cap.saturating_mul(self.merge_factor.max(2));
            tier += 1;
        }
        tier
    }

    /// The adjacent run of segments to merge next, if any: the longest run of at least
    /// `merge_factor` segments in the lowest tier present.
    fn pick_merge(&self, live_rows: &[usize]) -> Option<std::ops::Range<usize>> {
        let mergeable = |r: usize| r < self.max_segment_rows;
        let lowest = live_rows
            .iter()
            .filter(|r| mergeable(**r))
            .map(|r| self.tier(*r))
            .min()?;
        let mut best: Option<std::ops::Range<usize>> = None;
        let mut start = 0;
        for i in 0..=live_rows.len() {
            let in_run =
                i < live_rows.len() && mergeable(live_rows[i]) && self.tier(live_rows[i]) == lowest;
            if !in_run {
                if i - start >= self.merge_factor.max(2)
                    && best.as_ref().is_none_or(|b| b.len() < i - start)
                {
                    best = Some(start..i);
                }
                start = i + 1;
            }
        }
        best
    }
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

impl Store {
    fn check_space(&self, input_bytes: u64) -> Result<()> {
        let available = self.storage.available_space()?;
        let needed = input_bytes.saturating_mul(2);
        if available < needed {
            return Err(Error::NoSpace {
                path: self.root.clone(),
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
        let file = self.storage.create_temp("segment")?;
        let temp = file.temp().clone();
        let location = self.storage.location(temp.path());
        let mut w = SegmentWriter::new(
            BufWriter::with_capacity(1 << 20, file),
            state.info.dims,
            state.info.quantization,
        )
        .map_err(|e| Error::invalid("segment", e.to_string()))?;
        for chunk in rows {
            for r in chunk? {
                w.push(RowInput {
                    id: &r.id,
                    seq: r.seq,
                    vector: &r.vector,
                    document: r.document.as_deref(),
                    meta: &r.meta,
                })
                .map_err(|e| Error::invalid("segment row", e.to_string()))?;
            }
        }
        let n = w.rows();
        if n == 0 && shadows.is_empty() {
            drop(w);
            self.storage.discard_temp(&temp);
            return Ok(None);
        }
        for s in shadows {
            w.push_shadow(s);
        }
        for h in histories {
            w.push_history(h);
        }
        let (out, len) = w.finish().map_err(|e| match e {
            strata_formats::segment::SegmentWriteError::Io(source) => Error::Io {
                op: "write segment",
                path: location.clone(),
                source,
            },
            other => Error::invalid("segment", other.to_string()),
        })?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io("flush", &location)(e.into_error()))?;
        let temp = file.finish()?;
        let name = self.publish_numbered(&temp, layout::SEGMENTS, layout::segment_name)?;
        let seg = self.map_segment(&name)?;
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

    /// Compact a collection now: flush its deltas and merge all of its segments that are
    /// below the policy's maximum size into as few as possible.
    pub fn compact(&self, collection: &str) -> Result<CompactReport> {
        self.compact_with(collection, true)
    }

    /// Compact a collection if the policy says so (too many deltas, a run of small
    /// segments, or a segment with too many dead rows). Returns None when nothing was due.
    pub fn maybe_compact(&self, collection: &str) -> Result<Option<CompactReport>> {
        let r = self.compact_with(collection, false)?;
        Ok(r.version.map(|_| r))
    }

    fn compact_with(&self, collection: &str, full: bool) -> Result<CompactReport> {
        self.writer("compact")?;
        let _g = self.lock();
        let snap = self.snapshot(collection)?;
        let policy = self.options.policy.clone();
        let version = snap.version().clone();
        let delta_bytes: u64 = version.deltas.iter().map(|d| d.bytes).sum();
        let mut state: SnapshotState = (*snap.0).clone();
        let merge_due = {
            let live: Vec<usize> = state
                .segments
                .iter()
                .map(|s| s.seg.rows() - s.dead.len())
                .collect();
            policy.pick_merge(&live).is_some()
        };
        // Merging while deltas are pending would drop rows the overlay supersedes from the
        // output while the deltas still need them as bases: merges always flush first.
        let flush = !version.deltas.is_empty()
            && (full
                || merge_due
                || version.deltas.len() >= policy.max_deltas
                || delta_bytes >= policy.max_delta_bytes);
        let may_merge = flush || version.deltas.is_empty();
        let mut refs = version.segments.clone();
        let mut report = CompactReport::default();
        let horizon_start = now_ms().saturating_sub(self.options.horizon.as_millis() as u64);

        let plan_bytes = if flush { delta_bytes } else { 0 }
            + if full {
                refs.iter().map(|r| r.bytes).sum()
            } else {
                0
            };
        self.check_space(plan_bytes)?;

        // Segments written by this call (the history fold pass skips them).
        let mut written: HashSet<String> = HashSet::new();
        if flush {
            let mut ids: Vec<&String> = state.overlay.keys().collect();
            ids.sort();
            let mut live = Vec::new();
            let mut shadows = Vec::new();
            let mut histories = Vec::new();
            for id in ids {
                let mut e: &Entry = &state.overlay[id];
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
            let out = self.write_segment(&state, std::iter::once(Ok(live)), shadows, histories)?;
            // Superseded rows become the version's dead rows; the overlay is folded.
            for slot in &mut state.segments {
                slot.version_dead = slot.dead.clone();
            }
            state.overlay.clear();
            if let Some((slot, sref, n)) = out {
                report.bytes_out += sref.bytes;
                report.rows_out += n;
                report.segments_out += 1;
                state.segments.push(slot);
                written.insert(sref.file.clone());
                refs.push(sref);
            }
            report.deltas_folded = version.deltas.len();
            report.bytes_in += delta_bytes;
        }

        loop {
            if !may_merge {
                break;
            }
            let live_rows: Vec<usize> = state
                .segments
                .iter()
                .map(|s| s.seg.rows() - s.dead.len())
                .collect();
            let range = if full {
                let mergeable: Vec<usize> = (0..live_rows.len())
                    .filter(|i| live_rows[*i] < policy.max_segment_rows)
                    .collect();
                let any_dead = state.segments.iter().any(|s| !s.dead.is_empty());
                match (mergeable.first(), mergeable.last()) {
                    (Some(a), Some(b)) if (b > a || any_dead) && b - a + 1 == mergeable.len() => {
                        Some(*a..*b + 1)
                    }
                    _ => None,
                }
            } else {
                policy.pick_merge(&live_rows).or_else(|| {
                    state
                        .segments
                        .iter()
                        .position(|s| {
                            let dead = s.dead.len();
                            dead >= policy.vacuum_min_dead
                                && dead as f64 > policy.vacuum_fraction * s.seg.rows() as f64
                        })
                        .map(|i| i..i + 1)
                })
            };
            let Some(range) = range else { break };
            if !full {
                self.check_space(refs[range.clone()].iter().map(|r| r.bytes).sum())?;
            }
            self.merge_in_place(
                &mut state,
                &mut refs,
                range,
                horizon_start,
                &mut report,
                &mut written,
            )?;
            if full {
                break;
            }
        }

        // Histories fold only when their segment is rewritten; a segment whose histories
        // keep a filter operation in the ledger two horizons after it arrived is rewritten
        // alone (once per call), so that the ledger and the histories stay bounded.
        let stale = now_ms().saturating_sub(2 * self.options.horizon.as_millis() as u64);
        for i in (0..state.segments.len()).rev() {
            let Some(through) = state.segments[i].seg.min_history_through() else {
                continue;
            };
            let blocking = state
                .ledger
                .iter()
                .any(|r| r.time_ms < stale && r.op.seq > through);
            if !blocking || !may_merge || written.contains(&refs[i].file) {
                continue;
            }
            self.merge_in_place(
                &mut state,
                &mut refs,
                i..i + 1,
                horizon_start,
                &mut report,
                &mut written,
            )?;
        }

        if !flush && report.segments_in == 0 {
            return Ok(report);
        }
        let snap = self.commit_state(
            state,
            |r| {
                r.segments = refs;
                if flush {
                    r.deltas.clear();
                }
                r.note = "compact".into();
            },
            |_| {},
        )?;
        report.version = Some(snap.version().version);
        Ok(report)
    }

    /// Merge a run of the state's segments and put the result (one segment, or none when
    /// nothing survives) in its place, in the state and in `refs`; counts it in `report`.
    fn merge_in_place(
        &self,
        state: &mut SnapshotState,
        refs: &mut Vec<SegmentRef>,
        range: std::ops::Range<usize>,
        horizon_start: u64,
        report: &mut CompactReport,
        written: &mut HashSet<String>,
    ) -> Result<()> {
        report.segments_in += range.len();
        report.bytes_in += refs[range.clone()].iter().map(|r| r.bytes).sum::<u64>();
        let (new_slots, new_refs) = match self.merge_run(state, range.clone(), horizon_start)? {
            Some((slot, sref, n)) => {
                report.bytes_out += sref.bytes;
                report.rows_out += n;
                report.segments_out += 1;
                (vec![slot], vec![sref])
            }
            None => (vec![], vec![]),
        };
        state.segments.splice(range.clone(), new_slots);
        written.extend(new_refs.iter().map(|r| r.file.clone()));
        refs.splice(range, new_refs);
        Ok(())
    }

    /// Merge an adjacent run of segments into one (newest entry of each id wins).
    fn merge_run(
        &self,
        state: &SnapshotState,
        range: std::ops::Range<usize>,
        horizon_start: u64,
    ) -> Result<Option<(SegmentSlot, SegmentRef, u64)>> {
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

impl Snapshot {
    /// Deltas registered and not yet compacted.
    pub fn pending_deltas(&self) -> usize {
        self.version().deltas.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_picks_longest_low_tier_run_and_skips_big_segments() {
        let p = CompactionPolicy {
            merge_factor: 3,
            min_segment_rows: 10,
            max_segment_rows: 1000,
            ..CompactionPolicy::default()
        };
        assert_eq!(p.pick_merge(&[5, 5]), None);
        assert_eq!(p.pick_merge(&[5, 5, 5]), Some(0..3));
        assert_eq!(p.pick_merge(&[500, 5, 5, 5, 5, 50]), Some(1..5));
        assert_eq!(p.pick_merge(&[5000, 5000, 5000]), None);
        assert_eq!(p.pick_merge(&[5, 5, 50, 5, 5]), None);
    }
}
