//! The plain data a merge policy works on: the statistics of a collection's segments and
//! pending deltas in ([`CompactionStats`]), the next step of a compaction out
//! ([`CompactionPlan`]). No I/O: the executor gathers the statistics and carries the plan out.

use std::ops::Range;

use crate::error::{Error, Result};

/// One segment as a merge policy sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentStats {
    /// Rows stored in the file.
    pub rows: usize,
    /// Rows dead in the snapshot: deleted in its version, or superseded by pending deltas.
    pub dead_rows: usize,
    /// Bytes of the file.
    pub bytes: u64,
    /// Whether the segment's histories keep a filter operation of the ledger that arrived
    /// more than two horizons ago (only a rewrite folds it, so that the ledger can drop it).
    pub stale_history: bool,
    /// Whether this compaction call wrote the segment.
    pub written: bool,
}

impl SegmentStats {
    /// Rows that are not dead.
    pub fn live_rows(&self) -> usize {
        self.rows.saturating_sub(self.dead_rows)
    }
}

/// What a compaction call has carried out so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionProgress {
    /// The pending deltas were flushed into a segment.
    pub flushed: bool,
    /// Plans with a merge (or a vacuum, a merge of one segment) carried out.
    pub merges: usize,
    /// A plan with rewrites carried out.
    pub rewritten: bool,
}

impl CompactionProgress {
    /// Whether nothing has been carried out yet (the call's first plan is being made).
    pub fn is_start(&self) -> bool {
        *self == CompactionProgress::default()
    }
}

/// The statistics of one collection a merge policy plans from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Whether the call is [`Writer::compact`](crate::Writer::compact) (merge everything
    /// below the policy's maximum size) rather than
    /// [`Writer::maybe_compact`](crate::Writer::maybe_compact).
    pub full: bool,
    /// Deltas registered and not yet flushed.
    pub deltas: usize,
    /// Bytes of those deltas.
    pub delta_bytes: u64,
    /// Segments, oldest first.
    pub segments: Vec<SegmentStats>,
    /// What the call has carried out so far.
    pub progress: CompactionProgress,
}

/// The next step of a compaction: a plain value the executor carries out, then asks the
/// policy again with the new statistics, until a plan does nothing.
///
/// Indices name segments as [`CompactionStats::segments`] lists them. The executor flushes
/// first (the flushed segment goes after all of them), then carries out the merge and the
/// rewrites from the last segment to the first, so that every index keeps naming the
/// segment the statistics listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionPlan {
    /// Fold the pending deltas into a new segment.
    pub flush: bool,
    /// An adjacent run of segments to merge into one (newest entry of an id wins); a run of
    /// one segment is a vacuum: its dead rows are dropped.
    pub merge: Option<Range<usize>>,
    /// Segments to rewrite alone, each in its place (dead rows dropped, histories folded).
    pub rewrite: Vec<usize>,
    /// Bytes of input the plan reads: the disk must have twice this free before it starts.
    pub input_bytes: u64,
}

impl CompactionPlan {
    /// Whether the plan carries nothing out (the compaction call ends).
    pub fn is_empty(&self) -> bool {
        !self.flush && self.merge.is_none() && self.rewrite.is_empty()
    }

    /// Check that the plan can be carried out on the segments and deltas `stats` describes:
    /// indices in range and disjoint, a flush only of pending deltas, and no segment
    /// rewritten while deltas are pending unless the plan flushes them first (the deltas
    /// would lose the rows they supersede, which they still need as bases).
    pub(crate) fn check(&self, stats: &CompactionStats) -> Result<()> {
        let bad = |detail: String| Err(Error::invalid("compaction plan", detail));
        let n = stats.segments.len();
        if self.flush && stats.deltas == 0 {
            return bad("it flushes, but no deltas are pending".into());
        }
        if !self.flush && stats.deltas > 0 && !(self.merge.is_none() && self.rewrite.is_empty()) {
            return bad(format!(
                "it rewrites segments while {} deltas are pending without flushing them",
                stats.deltas
            ));
        }
        if let Some(range) = &self.merge {
            if range.is_empty() || range.end > n {
                return bad(format!("merge {range:?} is not a run of the {n} segments"));
            }
        }
        for (k, i) in self.rewrite.iter().enumerate() {
            if *i >= n {
                return bad(format!("rewrite of segment {i}, but there are {n}"));
            }
            if self.rewrite[..k].contains(i) || self.merge.as_ref().is_some_and(|r| r.contains(i)) {
                return bad(format!("segment {i} is rewritten twice"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(deltas: usize, segments: usize) -> CompactionStats {
        CompactionStats {
            deltas,
            delta_bytes: deltas as u64 * 100,
            segments: vec![SegmentStats::default(); segments],
            ..CompactionStats::default()
        }
    }

    #[test]
    fn plans_that_cannot_be_carried_out_are_refused() {
        let plan = |flush, merge: Option<Range<usize>>, rewrite: Vec<usize>| CompactionPlan {
            flush,
            merge,
            rewrite,
            input_bytes: 0,
        };
        let cases: Vec<(&str, CompactionStats, CompactionPlan, Option<&str>)> = vec![
            ("nothing", stats(0, 0), plan(false, None, vec![]), None),
            ("flush", stats(2, 1), plan(true, Some(0..1), vec![]), None),
            (
                "merge, no deltas",
                stats(0, 3),
                plan(false, Some(0..2), vec![2]),
                None,
            ),
            (
                "flush of nothing",
                stats(0, 1),
                plan(true, None, vec![]),
                Some("no deltas"),
            ),
            (
                "merge before flush",
                stats(1, 2),
                plan(false, Some(0..2), vec![]),
                Some("pending"),
            ),
            (
                "rewrite before flush",
                stats(1, 2),
                plan(false, None, vec![0]),
                Some("pending"),
            ),
            (
                "empty run",
                stats(0, 2),
                plan(false, Some(1..1), vec![]),
                Some("not a run"),
            ),
            (
                "run past the end",
                stats(0, 2),
                plan(false, Some(1..3), vec![]),
                Some("not a run"),
            ),
            (
                "rewrite past the end",
                stats(0, 2),
                plan(false, None, vec![2]),
                Some("there are 2"),
            ),
            (
                "rewrite twice",
                stats(0, 2),
                plan(false, None, vec![1, 1]),
                Some("twice"),
            ),
            (
                "rewrite in the run",
                stats(0, 3),
                plan(false, Some(0..2), vec![1]),
                Some("twice"),
            ),
        ];
        for (name, stats, plan, refused) in cases {
            match (plan.check(&stats), refused) {
                (Ok(()), None) => {}
                (Err(e), Some(why)) => assert!(e.to_string().contains(why), "{name}: {e}"),
                (got, _) => panic!("{name}: {got:?}, expected refusal {refused:?}"),
            }
        }
    }
}
