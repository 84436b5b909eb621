//! strata: an embedded storage engine for vector collections that change through a stream
//! of edits.
//!
//! This facade re-exports the workspace crates: [`formats`] (file formats, operations,
//! filters), [`storage`] (the storage layer every file operation goes through), [`engine`]
//! (store, writes, compaction, search, manifest, GC) and [`stream`] (DynamoDB stream
//! records of the receipts system turned into operations). The most used types are
//! re-exported at the top level.
//!
//! A store is opened as a [`Writer`] (one at a time; the only role that changes it) or as
//! a [`Reader`] (any number, never writing); the reads both offer are [`ReadableStore`]'s.
//!
//! ```no_run
//! use strata::{
//!     Include, Metric, Op, Quantization, Query, ReadableStore, Record, StoreOptions, Writer,
//! };
//!
//! let store = Writer::open("./strata-data", StoreOptions::default())?;
//! store.create_collection("lines", 3, Metric::L2, Quantization::None)?;
//! store.write("lines", vec![Op::Upsert(Record {
//!     id: "a".into(),
//!     embedding: Some(vec![0.1, 0.2, 0.3]),
//!     document: Some("TOTAL 12.99".into()),
//!     metadata: Default::default(),
//! })])?;
//! let hits = store.snapshot("lines")?.query(&Query {
//!     vector: &[0.1, 0.2, 0.3],
//!     k: 10,
//!     filter: None,
//!     include: Include::default(),
//! })?;
//! assert_eq!(hits[0].id, "a");
//! store.close()?;
//! # Ok::<(), strata::engine::Error>(())
//! ```

pub use strata_engine as engine;
pub use strata_formats as formats;
pub use strata_storage as storage;
pub use strata_stream as stream;

pub use strata_engine::{
    CollectionInfo, CompactReport, CompactionPolicy, GcReport, Include, Query, ReadableStore,
    Reader, RecordOut, Snapshot, StoreOptions, VersionInfo, WriteReceipt, Writer,
};
pub use strata_formats::{
    Filter, MetaValue, Metadata, Metric, Op, Operation, Patch, Quantization, Record, Scalar, Seq,
    Target,
};
