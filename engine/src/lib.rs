//! strata-engine: the store, its collections, the write path, merge-on-read snapshots,
//! compaction into memory-mapped segments, the RocksDB manifest with atomic swap, rollback,
//! retention and garbage collection.
//!
//! See ARCHITECTURE.md at the repository root for the data flow of a write, a compaction and
//! a query, and for where each invariant (durability, ordering, fencing) lives.

#![deny(missing_docs)]

pub mod compaction;
pub mod distance;
pub mod error;
pub mod fsutil;
pub mod gc;
pub mod inbox;
pub mod layout;
pub mod manifest;
pub mod resolve;
pub mod search;
pub mod segment;
pub mod snapshot;
pub mod store;
pub mod verify;

pub use compaction::{
    CompactReport, CompactionPlan, CompactionPolicy, CompactionProgress, CompactionStats,
    MergePolicy, SegmentStats,
};
pub use error::{Error, Result};
pub use gc::GcReport;
pub use inbox::IngestReport;
pub use search::{default_oversample, SearchOptions};
pub use snapshot::{CollectionInfo, Include, Query, RecordOut, Snapshot};
pub use store::{validate, write_inbox_delta, Store, StoreOptions, VersionInfo, WriteReceipt};
pub use verify::{inspect_file, verify_store, FileSummary, Problem, VerifyReport};
