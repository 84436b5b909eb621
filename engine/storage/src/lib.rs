//! strata-storage: the storage layer. Everything strata keeps in files goes through the
//! [`Storage`] trait — immutable files read whole, mapped or by range; temporaries
//! published create-if-absent; small pointer files replaced atomically; listings; deletion
//! — over paths relative to a store's root, so that the engine does not know whether the
//! store is a local directory ([`LocalStorage`]), memory ([`MemoryStorage`], with fault
//! injection and simulated crashes for tests) or, later, an object store.
//!
//! Only this crate touches `std::fs`. It knows nothing of RocksDB, the engine or the file
//! formats; it also holds the store's directory [`layout`] and name rules, and the
//! producer side of the [`inbox`] protocol, which is all the stream Lambda needs to write.
//! Every backend passes [`conformance::run`].

#![deny(missing_docs)]

mod bytes;
pub mod conformance;
mod error;
#[cfg(feature = "failpoints")]
#[doc(hidden)]
pub mod failpoints;
pub mod inbox;
pub mod layout;
mod local;
pub mod memory;
#[cfg(feature = "remote")]
pub mod remote;
mod storage;

use std::time::{SystemTime, UNIX_EPOCH};

/// The `fail` crate, for [`failpoint!`] (only with the `failpoints` feature).
#[cfg(feature = "failpoints")]
#[doc(hidden)]
pub use fail;

/// Marks an I/O step (see the `failpoints` module); without the `failpoints` feature it
/// expands to nothing, so release builds carry no failpoint code.
#[cfg(not(feature = "failpoints"))]
#[macro_export]
macro_rules! failpoint {
    ($name:literal, $path:expr) => {};
}

pub use bytes::{BytesWatch, FileBytes};
pub use error::{Result, StorageError};
pub use inbox::publish_inbox_delta;
pub use local::LocalStorage;
pub use memory::MemoryStorage;
pub use storage::{check_path, DirEntry, Metadata, Storage, TempFile, TempWrite};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
