//! [`Reader`]: the read-only role of a store, from its version files and HEAD pointers. It
//! takes no lock, repairs nothing, publishes nothing, and works while a writer (in this
//! process or another) has the store open; it has no method that could change the store.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use strata_storage::remote::{default_cache_dir, ObjectStorage, RemoteOptions, RemoteStorage};
use strata_storage::{LocalStorage, Storage};

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::store::{is_store, Catalog, Core, ReadableStore, Role, VersionFiles};

/// A read-only handle on a store. Its reads are [`ReadableStore`]'s (bring the trait into
/// scope to call them); writing takes a [`Writer`](crate::Writer), so a reader that tries
/// does not compile:
///
/// ```compile_fail
/// use strata_engine::{ReadableStore, Reader};
///
/// let reader = Reader::open("./store")?;
/// reader.write("lines", vec![])?;
/// # Ok::<(), strata_engine::Error>(())
/// ```
pub struct Reader {
    core: Core,
    files: VersionFiles,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("root", &self.core.root())
            .finish()
    }
}

impl Role for Reader {
    fn core(&self) -> &Core {
        &self.core
    }

    fn catalog(&self) -> &dyn Catalog {
        &self.files
    }
}

impl ReadableStore for Reader {}

impl Reader {
    /// Open the store at `path` for reading. Every segment's block crcs are checked when it
    /// is first mapped; [`Reader::open_with`] can defer that.
    pub fn open(path: impl AsRef<Path>) -> Result<Reader> {
        Reader::open_with(path, true)
    }

    /// [`Reader::open`], choosing whether segments are verified when first mapped.
    /// `verify_on_open = false` trades the full crc check (≈ 250 ms per 600 MB) for a
    /// faster first read; the header and block table are still checked, and
    /// [`verify_store`](crate::verify_store) or `strata verify` checks everything.
    pub fn open_with(path: impl AsRef<Path>, verify_on_open: bool) -> Result<Reader> {
        Reader::open_on(Arc::new(LocalStorage::at(path.as_ref())), verify_on_open)
    }

    /// Open a store published to object storage ([`Writer::publish`](crate::Writer::publish)):
    /// `s3://BUCKET/PREFIX` (credentials and endpoint from the environment) or
    /// `file:///DIR`. Only the head object is read now; each segment, delta and version
    /// file is fetched into `cache_dir` (default [`default_cache_dir`]) the first time it
    /// is used, checked, and mapped from there. The head is re-checked with a conditional
    /// GET once [`RemoteOptions::refresh_after`] has passed.
    pub fn open_remote(
        url: &str,
        cache_dir: Option<&Path>,
        options: RemoteOptions,
    ) -> Result<Reader> {
        let remote = Arc::new(ObjectStorage::from_url(url)?);
        let cache = cache_dir.map_or_else(default_cache_dir, Path::to_path_buf);
        Reader::open_remote_on(remote, &cache, options)
    }

    /// [`Reader::open_remote`] on an [`ObjectStorage`] already opened.
    pub fn open_remote_on(
        remote: Arc<ObjectStorage>,
        cache_dir: &Path,
        options: RemoteOptions,
    ) -> Result<Reader> {
        let storage = Arc::new(RemoteStorage::open(remote, cache_dir, options)?);
        let mut reader = Reader::open_on(storage.clone(), true)?;
        reader.files.remote = Some(storage);
        Ok(reader)
    }

    /// [`Reader::open_with`] on any storage.
    pub fn open_on(storage: Arc<dyn Storage>, verify_on_open: bool) -> Result<Reader> {
        if !is_store(&*storage) {
            return Err(Error::invalid(
                "store",
                format!(
                    "{} is not a strata store (no versions/ directory)",
                    storage.location("").display()
                ),
            ));
        }
        Ok(Reader {
            files: VersionFiles {
                storage: storage.clone(),
                remote: None,
            },
            core: Core::new(storage, verify_on_open),
        })
    }

    /// The pinned versions of a collection. Version files do not record pins (a local
    /// reader's [`versions`](ReadableStore::versions) shows none), so this reads them from
    /// the manifest, opened read-only: it sees what the writer has flushed, and fails where
    /// the manifest cannot be read (another host's store, a damaged manifest). A store read
    /// from object storage has them in its head object, as of the last refresh (and there
    /// `versions` marks them too).
    pub fn pins(&self, collection: &str) -> Result<BTreeSet<u64>> {
        match &self.files.remote {
            Some(remote) => Ok(crate::store::remote_pins(remote, collection)),
            None => Manifest::open_read_only_on(self.core.storage())?.pins(collection),
        }
    }
}
