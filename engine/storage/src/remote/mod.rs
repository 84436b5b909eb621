//! Object storage (with the `remote` feature): [`ObjectStorage`], the blocking facade over
//! the `object_store` crate that publishing writes through; [`RemoteStorage`], a published
//! store read as a [`crate::Storage`] through a local cache; and [`RemoteHead`], the head
//! object a publish moves.

mod aws_profile;
mod cache;
mod head;
mod object;

pub use cache::{default_cache_dir, RemoteOptions, RemoteStorage};
pub use head::{RemoteCollection, RemoteHead, HEAD_FORMAT, HEAD_OBJECT, MAX_HEAD_BYTES};
pub use object::{
    Fetched, HeadMove, Listed, ObjectStorage, Refreshed, CRC_METADATA, MULTIPART_FROM, PART_BYTES,
};
