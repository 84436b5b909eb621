//! Compaction: fold the registered deltas into a new segment (flush), merge runs of small
//! adjacent segments (size-tiered: every merge lowers the segment count), and rewrite
//! segments with many dead rows (vacuum) or stale histories.
//!
//! Split in two: a merge policy ([`MergePolicy`], by default [`CompactionPolicy`]) maps a
//! collection's [`CompactionStats`] to a [`CompactionPlan`] with no I/O (`policy`, `plan`);
//! the executor (`executor`) gathers the statistics, carries each plan out and commits, and
//! reaches the store only through its `CompactionContext`.

mod executor;
mod plan;
mod policy;

pub use executor::CompactReport;
pub(crate) use executor::{compact, CompactionContext};
pub use plan::{CompactionPlan, CompactionProgress, CompactionStats, SegmentStats};
pub use policy::{CompactionPolicy, MergePolicy};

use crate::snapshot::Snapshot;

impl Snapshot {
    /// Deltas registered and not yet compacted.
    pub fn pending_deltas(&self) -> usize {
        self.version().deltas.len()
    }
}
