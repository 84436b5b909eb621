//! strata-engine: the store, its collections, the write path, merge-on-read snapshots,
//! compaction into memory-mapped segments, the RocksDB manifest with atomic swap, rollback,
//! retention and garbage collection.
//!
//! A store is opened in one of two roles, as redb's `Database` and `ReadOnlyDatabase`:
//! a [`Writer`] (at most one per store; it alone has the methods that change the store)
//! or a [`Reader`] (any number, never writing). The reads both offer are the
//! [`ReadableStore`] trait's.
//!
//! Every file operation goes through a [`Storage`] (the `strata-storage` crate): a local
//! directory ([`LocalStorage`], what [`Writer::open`] uses) or memory ([`MemoryStorage`],
//! [`Writer::open_on`]), where tests inject faults and crashes.
//!
//! The modules are private; this root re-exports the API.
//!
//! See ARCHITECTURE.md at the repository root for the data flow of a write, a compaction and
//! a query, and for where each invariant (durability, ordering, fencing) lives.

#![deny(missing_docs)]
#![deny(unreachable_pub)]

mod batch;
mod clock;
mod code_batch;
mod compaction;
mod distance;
mod error;
mod fsyncgate;
mod gc;
mod inbox;
mod layout;
pub mod limits;
mod manifest;
mod publish;
mod reader;
mod remote_gc;
mod resolve;
mod search;
mod segment;
mod snapshot;
mod space;
mod store;
mod topk;
mod validate;
mod verify;
mod writer;

pub use clock::rfc3339;
pub use compaction::{
    CompactReport, CompactionPlan, CompactionPolicy, CompactionProgress, CompactionStats,
    MergePolicy, SegmentStats,
};
pub use distance::scalar_distance;
pub use error::{Error, Field, InvalidOp, Result};
pub use gc::{GcOptions, GcReport};
pub use inbox::{write_inbox_delta, IngestReport};
pub use layout::check_collection_name;
pub use publish::{PublishOptions, PublishReport};
pub use reader::Reader;
pub use remote_gc::RemoteGcReport;
pub use search::{default_oversample, SearchOptions};
pub use snapshot::{CollectionInfo, Include, Query, RecordOut, Snapshot};
pub use space::{SpaceReport, SpaceUsage};
pub use store::{ReadableStore, VersionInfo};
pub use strata_storage::remote::{
    default_cache_dir, ObjectStorage, RemoteHead, RemoteOptions, RemoteStorage,
};
pub use strata_storage::{LocalStorage, MemoryStorage, Storage, StorageError};
pub use validate::validate;
pub use verify::{
    inspect_file, verify_store, verify_store_on, FileSummary, Problem, VerifyReport, VersionHealth,
};
pub use writer::{StoreOptions, WriteReceipt, Writer};
