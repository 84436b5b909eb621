//! Merge policies: the decisions of a compaction, as pure functions from a collection's
//! statistics to the next plan. [`MergePolicy`] is the trait; [`CompactionPolicy`], the
//! size-tiered policy every store uses unless told otherwise, is its default implementation.

use std::fmt::Debug;
use std::ops::Range;

use super::plan::{CompactionPlan, CompactionStats, SegmentStats};

/// Decides what a compaction does, one step at a time (as tantivy's `MergePolicy`).
///
/// The executor asks for a plan, carries it out, and asks again with the new statistics
/// (deltas flushed, segments merged, [`CompactionProgress`](super::CompactionProgress)
/// updated) until the plan is empty; then it commits whatever was carried out as one
/// version. A policy must
/// eventually return an empty plan. The executor refuses plans it cannot carry out (see
/// [`CompactionPlan`]), with an error and nothing committed.
pub trait MergePolicy: Debug + Send + Sync {
    /// The next step for a collection with these statistics.
    fn plan(&self, stats: &CompactionStats) -> CompactionPlan;
}

/// When [`Writer::maybe_compact`](crate::Writer::maybe_compact) compacts, and how segments
/// are merged: the default [`MergePolicy`].
///
/// Defaults follow the anchors (docs/reference/anchors.md): Qdrant merges the smallest segments
/// only while the count falls and vacuums above 20 % deleted; tantivy merges at least 8
/// segments of a log-size level; Lance materializes deletions above 10 %. Our deltas are
/// small and frequent, so a flush after 16 deltas (or 64 MiB) keeps merge-on-read cheap.
///
/// Its plans, in order: while deltas are pending, a flush when one is due (or nothing: merges
/// always flush first); then merges, one run per plan — for `compact` one run of every
/// segment below the maximum, for `maybe_compact` the longest run of the lowest size tier,
/// else a vacuum of the first segment with too many dead rows; then, once, a rewrite of
/// every segment with a stale history that the call did not write.
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

impl MergePolicy for CompactionPolicy {
    fn plan(&self, stats: &CompactionStats) -> CompactionPlan {
        // `compact` checks for all of its segments before anything starts, even those it
        // then finds nothing to do for.
        let upfront: u64 = if stats.full && stats.progress.is_start() {
            stats.segments.iter().map(|s| s.bytes).sum()
        } else {
            0
        };
        if stats.deltas > 0 {
            // Merging while deltas are pending would drop rows the overlay supersedes from
            // the output while the deltas still need them as bases: merges always flush
            // first, so a due merge makes a flush due.
            let flush = stats.full
                || self.pick_merge(&live_rows(&stats.segments)).is_some()
                || stats.deltas >= self.max_deltas
                || stats.delta_bytes >= self.max_delta_bytes;
            return CompactionPlan {
                flush,
                input_bytes: if flush {
                    stats.delta_bytes + upfront
                } else {
                    0
                },
                ..CompactionPlan::default()
            };
        }
        if stats.progress.rewritten {
            return CompactionPlan::default();
        }
        if let Some(range) = self.next_merge(stats) {
            let input_bytes = if stats.full {
                upfront
            } else {
                stats.segments[range.clone()].iter().map(|s| s.bytes).sum()
            };
            return CompactionPlan {
                merge: Some(range),
                input_bytes,
                ..CompactionPlan::default()
            };
        }
        // Histories fold only when their segment is rewritten; a segment whose histories
        // keep a filter operation two horizons old is rewritten alone (once per call), so
        // that the ledger and the histories stay bounded.
        CompactionPlan {
            rewrite: stats
                .segments
                .iter()
                .enumerate()
                .filter(|(_, s)| s.stale_history && !s.written)
                .map(|(i, _)| i)
                .collect(),
            input_bytes: upfront,
            ..CompactionPlan::default()
        }
    }
}

fn live_rows(segments: &[SegmentStats]) -> Vec<usize> {
    segments.iter().map(SegmentStats::live_rows).collect()
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
    fn pick_merge(&self, live_rows: &[usize]) -> Option<Range<usize>> {
        let mergeable = |r: usize| r < self.max_segment_rows;
        let lowest = live_rows
            .iter()
            .filter(|r| mergeable(**r))
            .map(|r| self.tier(*r))
            .min()?;
        let mut best: Option<Range<usize>> = None;
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

    /// The run to merge next, with no deltas pending: for `compact` (once per call) every
    /// segment below the maximum, when they are adjacent and merging them changes anything;
    /// for `maybe_compact` a tiered run, else a vacuum.
    fn next_merge(&self, stats: &CompactionStats) -> Option<Range<usize>> {
        let live = live_rows(&stats.segments);
        if !stats.full {
            return self
                .pick_merge(&live)
                .or_else(|| self.pick_vacuum(&stats.segments));
        }
        if stats.progress.merges > 0 {
            return None;
        }
        let mergeable: Vec<usize> = (0..live.len())
            .filter(|i| live[*i] < self.max_segment_rows)
            .collect();
        let any_dead = stats.segments.iter().any(|s| s.dead_rows > 0);
        match (mergeable.first(), mergeable.last()) {
            (Some(a), Some(b)) if (b > a || any_dead) && b - a + 1 == mergeable.len() => {
                Some(*a..*b + 1)
            }
            _ => None,
        }
    }

    /// The first segment with enough dead rows, as a run of one.
    fn pick_vacuum(&self, segments: &[SegmentStats]) -> Option<Range<usize>> {
        segments
            .iter()
            .position(|s| {
                s.dead_rows >= self.vacuum_min_dead
                    && s.dead_rows as f64 > self.vacuum_fraction * s.rows as f64
            })
            .map(|i| i..i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan::CompactionProgress;
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

    /// The policy of the table: tiers of 10, 30, 90 … rows, at most 1000 live rows merged;
    /// flush at 4 deltas or 1000 bytes; vacuum above 20 % dead and at least 10 dead rows.
    fn policy() -> CompactionPolicy {
        CompactionPolicy {
            max_deltas: 4,
            max_delta_bytes: 1000,
            merge_factor: 3,
            min_segment_rows: 10,
            max_segment_rows: 1000,
            vacuum_fraction: 0.2,
            vacuum_min_dead: 10,
        }
    }

    /// A segment of `rows` rows (and bytes), none dead.
    fn s(rows: usize) -> SegmentStats {
        d(rows, 0)
    }

    /// A segment of `rows` rows (and bytes), `dead` of them dead.
    fn d(rows: usize, dead: usize) -> SegmentStats {
        SegmentStats {
            rows,
            dead_rows: dead,
            bytes: rows as u64,
            ..SegmentStats::default()
        }
    }

    fn stale(s: SegmentStats) -> SegmentStats {
        SegmentStats {
            stale_history: true,
            ..s
        }
    }

    fn written(s: SegmentStats) -> SegmentStats {
        SegmentStats { written: true, ..s }
    }

    /// `maybe_compact`'s first statistics, with `deltas` deltas of 10 bytes each.
    fn due<const N: usize>(deltas: usize, segments: [SegmentStats; N]) -> CompactionStats {
        CompactionStats {
            full: false,
            deltas,
            delta_bytes: deltas as u64 * 10,
            segments: segments.to_vec(),
            progress: CompactionProgress::default(),
        }
    }

    /// `compact`'s first statistics.
    fn full<const N: usize>(deltas: usize, segments: [SegmentStats; N]) -> CompactionStats {
        CompactionStats {
            full: true,
            ..due(deltas, segments)
        }
    }

    /// The statistics after the call carried `progress` out.
    fn after(progress: CompactionProgress, stats: CompactionStats) -> CompactionStats {
        CompactionStats { progress, ..stats }
    }

    const FLUSHED: CompactionProgress = CompactionProgress {
        flushed: true,
        merges: 0,
        rewritten: false,
    };
    const MERGED: CompactionProgress = CompactionProgress {
        flushed: false,
        merges: 1,
        rewritten: false,
    };
    const REWRITTEN: CompactionProgress = CompactionProgress {
        flushed: false,
        merges: 0,
        rewritten: true,
    };

    fn nothing() -> CompactionPlan {
        CompactionPlan::default()
    }

    /// A plan that only checks for space (and then does nothing).
    fn checked(input_bytes: u64) -> CompactionPlan {
        CompactionPlan {
            input_bytes,
            ..nothing()
        }
    }

    fn flush(input_bytes: u64) -> CompactionPlan {
        CompactionPlan {
            flush: true,
            ..checked(input_bytes)
        }
    }

    fn merge(range: Range<usize>, input_bytes: u64) -> CompactionPlan {
        CompactionPlan {
            merge: Some(range),
            ..checked(input_bytes)
        }
    }

    fn rewrite<const N: usize>(segments: [usize; N], input_bytes: u64) -> CompactionPlan {
        CompactionPlan {
            rewrite: segments.to_vec(),
            ..checked(input_bytes)
        }
    }

    #[test]
    fn the_default_policy_plans_as_the_table_says() {
        let bytes_1000 = CompactionStats {
            delta_bytes: 1000,
            ..due(1, [])
        };
        #[rustfmt::skip]
        let cases: Vec<(&str, CompactionStats, CompactionPlan)> = vec![
            // Nothing due.
            ("empty collection", due(0, []), nothing()),
            ("one small segment", due(0, [s(5)]), nothing()),
            ("a run below merge_factor", due(0, [s(5), s(5)]), nothing()),
            ("deltas below both limits", due(3, [s(5)]), nothing()),
            // Flushes.
            ("flush at max_deltas", due(4, []), flush(40)),
            ("flush at max_delta_bytes", bytes_1000, flush(1000)),
            ("a due merge makes a flush due", due(1, [s(5), s(5), s(5)]), flush(10)),
            // Merges, vacuums and rewrites only after flushing the pending deltas.
            ("no vacuum before a flush", due(1, [d(100, 50)]), nothing()),
            ("no rewrite before a flush", due(1, [stale(s(5))]), nothing()),
            ("merges after the flush",
                after(FLUSHED, due(0, [s(5), s(5), written(s(5))])), merge(0..3, 15)),
            // Tiered merges: the longest run of at least merge_factor in the lowest tier.
            ("a run of merge_factor", due(0, [s(5); 3]), merge(0..3, 15)),
            ("the lowest tier's run, not a bigger one",
                due(0, [s(500), s(5), s(5), s(5), s(5), s(50)]), merge(1..5, 20)),
            ("the longest run; the first of equals",
                due(0, [s(5), s(5), s(5), s(50), s(8), s(8), s(8), s(8), s(50), s(9), s(9), s(9),
                    s(9)]), merge(4..8, 32)),
            ("tiers by live rows", due(0, [d(40, 35), s(5), s(5)]), merge(0..3, 50)),
            ("only the lowest tier, whose run is too short",
                due(0, [s(5), s(50), s(50), s(50)]), nothing()),
            ("big segments are never merged", due(0, [s(2000); 3]), nothing()),
            ("a big segment splits a run", due(0, [s(5), s(5), s(2000), s(5), s(5)]), nothing()),
            // Vacuum: more than vacuum_fraction dead, and at least vacuum_min_dead.
            ("vacuum", due(0, [s(100), d(100, 21)]), merge(1..2, 100)),
            ("vacuum a big segment", due(0, [d(2000, 401)]), merge(0..1, 2000)),
            ("vacuum the first of two", due(0, [d(100, 30), d(100, 90)]), merge(0..1, 100)),
            ("not at vacuum_fraction", due(0, [d(100, 20)]), nothing()),
            ("not below vacuum_min_dead", due(0, [d(40, 9)]), nothing()),
            ("a merge before a vacuum", due(0, [d(100, 90), s(5), s(5), s(5)]), merge(0..4, 115)),
            // Rewrites of stale histories: once per call, after the merges, not of segments
            // the call wrote, without a space check.
            ("rewrite stale histories",
                due(0, [stale(s(5)), s(5), stale(s(2000))]), rewrite([0, 2], 0)),
            ("not of a segment the call wrote",
                after(MERGED, due(0, [stale(s(5)), written(stale(s(15)))])), rewrite([0], 0)),
            ("merges before the rewrite", due(0, [stale(s(5)), s(5), s(5)]), merge(0..3, 15)),
            ("one rewrite per call",
                after(REWRITTEN, due(0, [stale(s(5)), s(5), s(5)])), nothing()),
            // Full compaction: a flush, one merge of every segment below the maximum, the
            // rewrites; its first plan checks for the bytes of every segment.
            ("full flushes any delta", full(1, [s(5), s(2000)]), flush(2015)),
            ("full merges after the flush, unchecked",
                after(FLUSHED, full(0, [s(5), written(s(3))])), merge(0..2, 0)),
            ("full merges all below the maximum",
                full(0, [s(2000), s(5), s(9)]), merge(1..3, 2014)),
            ("full vacuums one if any row is dead",
                full(0, [s(5), d(2000, 1)]), merge(0..1, 2005)),
            ("full leaves one clean segment", full(0, [s(5), s(2000)]), checked(2005)),
            ("full merges no gapped run", full(0, [s(5), s(2000), s(5)]), checked(2010)),
            ("full merges once", after(MERGED, full(0, [s(5), s(5), d(5, 1)])), nothing()),
            ("full rewrites stale histories",
                after(MERGED, full(0, [stale(s(2000)), written(s(5))])), rewrite([0], 0)),
            ("full, only a rewrite", full(0, [stale(s(2000))]), rewrite([0], 2000)),
            ("full, empty collection", full(0, []), nothing()),
        ];
        let p = policy();
        for (name, stats, expected) in cases {
            assert_eq!(p.plan(&stats), expected, "{name}");
            assert!(
                expected.check(&stats).is_ok(),
                "{name}: the plan is refused"
            );
        }
    }
}
