//! strata-engine: the store, its collections, the write path, merge-on-read snapshots,
//! compaction into memory-mapped segments, the RocksDB manifest with atomic swap, rollback,
//! retention and garbage collection.
//!
//! Every file operation goes through a [`Storage`] (the `strata-storage` crate): a local
//! directory ([`LocalStorage`], what [`Store::open`] uses) or memory ([`MemoryStorage`],
//! [`Store::open_on`]), where tests inject faults and crashes.
//!
//! See ARCHITECTURE.md at the repository root for the data flow of a write, a compaction and
//! a query, and for where each invariant (durability, ordering, fencing) lives.

#![deny(missing_docs)]

mod clock;
pub mod compaction;
pub mod distance;
pub mod error;
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

pub use clock::rfc3339;
pub use compaction::{CompactReport, CompactionPolicy};
pub use error::{Error, Result};
pub use gc::GcReport;
pub use inbox::IngestReport;
pub use search::{default_oversample, SearchOptions};
pub use snapshot::{CollectionInfo, Include, Query, RecordOut, Snapshot};
pub use store::{validate, write_inbox_delta, Store, StoreOptions, VersionInfo, WriteReceipt};
pub use strata_storage::{LocalStorage, MemoryStorage, Storage, StorageError};
pub use verify::{inspect_file, verify_store, verify_store_on, FileSummary, Problem, VerifyReport};
