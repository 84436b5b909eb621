//! What the two roles of a store share: the read API ([`ReadableStore`], implemented by
//! [`Writer`](crate::Writer) and [`Reader`](crate::Reader)), the core both are built on
//! (storage, segment cache, head cache, live snapshots) and the catalog a role reads its
//! collections and versions from — the RocksDB manifest for the writer, the version files
//! and HEAD pointers for a reader.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};

use strata_formats::{decode_delta, decode_version, VersionRecord};
use strata_storage::remote::RemoteStorage;
use strata_storage::Storage;

use crate::error::{Error, Result};
use crate::layout;
use crate::manifest::Manifest;
use crate::segment::MappedSegment;
use crate::snapshot::{CollectionInfo, Snapshot, SnapshotState};

/// A version as [`ReadableStore::versions`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// Version number.
    pub version: u64,
    /// Parent version.
    pub parent: Option<u64>,
    /// Commit time (ms since the Unix epoch).
    pub created_ms: u64,
    /// Epoch of the writer that committed it.
    pub writer_epoch: u64,
    /// Live rows.
    pub rows: u64,
    /// Bytes of the files it references.
    pub bytes: u64,
    /// Segments referenced.
    pub segments: usize,
    /// Deltas referenced.
    pub deltas: usize,
    /// Whether it is the head.
    pub head: bool,
    /// Whether it is pinned (a local reader does not know pins, a remote one knows them
    /// from the head object: see [`Reader::pins`]).
    ///
    /// [`Reader::pins`]: crate::Reader::pins
    pub pinned: bool,
    /// What produced it.
    pub note: String,
}

/// The reads both roles offer, as redb's `ReadableDatabase`: implemented by
/// [`Writer`](crate::Writer) and [`Reader`](crate::Reader) only (the trait is sealed), and
/// usable to write code that works on either.
///
/// A writer reads from its manifest; a reader reads the version files and HEAD pointers
/// and never writes anything.
pub trait ReadableStore: sealed::Role {
    /// The store's root (its [`Storage::location`]).
    fn path(&self) -> &Path {
        &self.core().root
    }

    /// The storage the store's files live in.
    fn storage(&self) -> &Arc<dyn Storage> {
        &self.core().storage
    }

    /// All collections, by name.
    fn collections(&self) -> Result<Vec<CollectionInfo>> {
        self.catalog().collections()
    }

    /// One collection's settings.
    fn collection_info(&self, name: &str) -> Result<CollectionInfo> {
        self.catalog()
            .collection(name)?
            .ok_or_else(|| Error::NoSuchCollection(name.to_string()))
    }

    /// A collection's head version.
    fn head(&self, collection: &str) -> Result<u64> {
        self.catalog()
            .head(collection)?
            .ok_or_else(|| Error::NoSuchCollection(collection.to_string()))
    }

    /// The current snapshot of a collection (its head). Cheap after the first call; a
    /// reader re-reads HEAD on every call and reloads when it moved.
    fn snapshot(&self, collection: &str) -> Result<Snapshot> {
        self.core().snapshot(self.catalog(), collection)
    }

    /// A snapshot of a collection at a retained version.
    fn snapshot_at(&self, collection: &str, version: u64) -> Result<Snapshot> {
        self.core().snapshot_at(self.catalog(), collection, version)
    }

    /// The versions of a collection, newest first.
    fn versions(&self, collection: &str) -> Result<Vec<VersionInfo>> {
        self.core().versions(self.catalog(), collection)
    }

    /// Where the store's bytes go: what the heads need, what only the rollback window
    /// (other retained and pinned versions) holds, what awaits GC, and the rest.
    fn space(&self) -> Result<crate::SpaceReport> {
        let catalog = self.catalog();
        let mut head: HashSet<String> = HashSet::new();
        let mut retained: HashSet<String> = HashSet::new();
        for info in catalog.collections()? {
            let head_version = catalog.head(&info.name)?;
            for v in catalog.versions(&info.name)? {
                let files = v
                    .segments
                    .iter()
                    .map(|s| s.file.clone())
                    .chain(v.deltas.iter().map(|d| d.file.clone()));
                match Some(v.version) == head_version {
                    true => head.extend(files),
                    false => retained.extend(files),
                }
            }
        }
        crate::space::space(&**self.storage(), &head, &retained)
    }
}

mod sealed {
    /// What the provided methods of [`ReadableStore`](super::ReadableStore) work on. Public
    /// in a private module: nameable by no other crate, so no other crate implements it.
    pub trait Role {
        /// The shared core.
        fn core(&self) -> &super::Core;
        /// Where the role reads collections and versions from.
        fn catalog(&self) -> &dyn super::Catalog;
    }
}

pub(crate) use sealed::Role;

/// Where a role reads collections and versions from: the manifest (the writer) or the
/// version files and HEAD pointers ([`VersionFiles`], a reader).
pub trait Catalog {
    /// All collections.
    fn collections(&self) -> Result<Vec<CollectionInfo>>;
    /// One collection, if it exists.
    fn collection(&self, name: &str) -> Result<Option<CollectionInfo>>;
    /// A collection's head version, if it exists.
    fn head(&self, collection: &str) -> Result<Option<u64>>;
    /// One version record, if it is retained.
    fn version(&self, collection: &str, version: u64) -> Result<Option<VersionRecord>>;
    /// All retained version records of a collection.
    fn versions(&self, collection: &str) -> Result<Vec<VersionRecord>>;
    /// Pinned versions of a collection (as far as this catalog knows).
    fn pins(&self, collection: &str) -> Result<BTreeSet<u64>>;
}

impl Catalog for Manifest {
    fn collections(&self) -> Result<Vec<CollectionInfo>> {
        Manifest::collections(self)
    }

    fn collection(&self, name: &str) -> Result<Option<CollectionInfo>> {
        Manifest::collection(self, name)
    }

    fn head(&self, collection: &str) -> Result<Option<u64>> {
        Manifest::head(self, collection)
    }

    fn version(&self, collection: &str, version: u64) -> Result<Option<VersionRecord>> {
        Manifest::version(self, collection, version)
    }

    fn versions(&self, collection: &str) -> Result<Vec<VersionRecord>> {
        Manifest::versions(self, collection)
    }

    fn pins(&self, collection: &str) -> Result<BTreeSet<u64>> {
        Manifest::pins(self, collection)
    }
}

/// A reader's catalog: the published version files and HEAD pointers. They record no
/// pins; a store read from object storage has them in its head object (`remote`).
pub(crate) struct VersionFiles {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) remote: Option<Arc<RemoteStorage>>,
}

impl VersionFiles {
    fn read(&self, collection: &str, version: u64) -> Result<VersionRecord> {
        let path = layout::version_file(collection, version);
        let bytes = self.storage.read(&path).map_err(|e| {
            if e.is_not_found() {
                Error::NoSuchVersion {
                    collection: collection.to_string(),
                    version,
                }
            } else {
                e.into()
            }
        })?;
        Ok(decode_version(&bytes)
            .map_err(Error::format(self.storage.location(&path)))?
            .1)
    }
}

impl Catalog for VersionFiles {
    fn collections(&self) -> Result<Vec<CollectionInfo>> {
        let mut names: Vec<String> = self
            .storage
            .list(layout::VERSIONS)?
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Some(v) = read_head_file(&*self.storage, &layout::head(&name))? {
                out.push(info_of(&self.read(&name, v)?));
            }
        }
        Ok(out)
    }

    fn collection(&self, name: &str) -> Result<Option<CollectionInfo>> {
        match read_head_file(&*self.storage, &layout::head(name))? {
            Some(v) => Ok(Some(info_of(&self.read(name, v)?))),
            None => Ok(None),
        }
    }

    fn head(&self, collection: &str) -> Result<Option<u64>> {
        read_head_file(&*self.storage, &layout::head(collection))
    }

    fn version(&self, collection: &str, version: u64) -> Result<Option<VersionRecord>> {
        self.read(collection, version).map(Some)
    }

    fn versions(&self, collection: &str) -> Result<Vec<VersionRecord>> {
        let mut records = Vec::new();
        for entry in self.storage.list(&layout::versions(collection))? {
            if let Some(v) = layout::version_number(&entry.name) {
                records.push(self.read(collection, v)?);
            }
        }
        Ok(records)
    }

    fn pins(&self, collection: &str) -> Result<BTreeSet<u64>> {
        Ok(match &self.remote {
            Some(remote) => remote_pins(remote, collection),
            None => BTreeSet::new(),
        })
    }
}

/// The pins a published head records for `collection` (none if it is not published).
pub(crate) fn remote_pins(remote: &RemoteStorage, collection: &str) -> BTreeSet<u64> {
    remote
        .head()
        .collections
        .get(collection)
        .map(|c| c.pins.iter().copied().collect())
        .unwrap_or_default()
}

/// What both roles are built on: the storage, the mapped segments (shared by every
/// snapshot that maps them), the cached head snapshots and the snapshots handed out.
pub struct Core {
    /// Where the store's files live; every file operation goes through it.
    storage: Arc<dyn Storage>,
    /// The store's location (`storage.location("")`), for messages.
    root: PathBuf,
    /// Whether a segment's block crcs are all checked when it is first mapped.
    verify_on_open: bool,
    heads: RwLock<HashMap<String, Snapshot>>,
    segments: Mutex<HashMap<String, Weak<MappedSegment>>>,
    live: Mutex<Vec<Weak<SnapshotState>>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("root", &self.root).finish()
    }
}

impl Core {
    pub(crate) fn new(storage: Arc<dyn Storage>, verify_on_open: bool) -> Core {
        Core {
            root: storage.location(""),
            storage,
            verify_on_open,
            heads: RwLock::new(HashMap::new()),
            segments: Mutex::new(HashMap::new()),
            live: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Map a published segment, or share the map a live snapshot already holds.
    pub(crate) fn map_segment(&self, name: &str) -> Result<Arc<MappedSegment>> {
        let mut cache = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seg) = cache.get(name).and_then(Weak::upgrade) {
            return Ok(seg);
        }
        let seg = Arc::new(MappedSegment::open(
            &*self.storage,
            &layout::segment(name),
            self.verify_on_open,
        )?);
        cache.insert(name.to_string(), Arc::downgrade(&seg));
        Ok(seg)
    }

    /// Read a registered delta file (it must be sealed and intact).
    fn read_delta(&self, name: &str) -> Result<strata_formats::Delta> {
        let path = layout::delta(name);
        let bytes = self.storage.read(&path)?;
        let location = self.storage.location(&path);
        let delta = decode_delta(&bytes).map_err(Error::format(&location))?;
        if !delta.is_sealed() {
            return Err(Error::invalid(
                "delta file",
                format!(
                    "{}: not sealed (torn) but registered in the manifest",
                    location.display()
                ),
            ));
        }
        Ok(delta)
    }

    /// The state of a version: its segments mapped, its deltas folded.
    pub(crate) fn load_state(
        &self,
        info: CollectionInfo,
        record: VersionRecord,
    ) -> Result<SnapshotState> {
        let segments = record
            .segments
            .iter()
            .map(|s| self.map_segment(&s.file))
            .collect::<Result<Vec<_>>>()?;
        let mut state = SnapshotState::new(info, Arc::new(record), segments)?;
        let deltas = state.version.deltas.clone();
        for d in deltas {
            let delta = self.read_delta(&d.file)?;
            for op in &delta.ops {
                state.fold(op, delta.header.created_ms)?;
            }
        }
        Ok(state)
    }

    fn register_live(&self, snap: &Snapshot) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&snap.0));
    }

    /// The states of every snapshot handed out and still held (GC keeps their files).
    pub(crate) fn live_states(&self) -> Vec<Arc<SnapshotState>> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|s| s.strong_count() > 0);
        live.iter().filter_map(Weak::upgrade).collect()
    }

    /// Make `snap` the cached head of its collection.
    pub(crate) fn set_head(&self, snap: Snapshot) {
        self.register_live(&snap);
        self.heads
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(snap.info().name.clone(), snap);
    }

    /// Forget the cached head of a collection (the next `snapshot` reloads it).
    pub(crate) fn forget_head(&self, collection: &str) -> Option<Snapshot> {
        self.heads
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(collection)
    }

    /// A retained version record, or [`Error::NoSuchVersion`].
    pub(crate) fn version_record(
        &self,
        catalog: &dyn Catalog,
        collection: &str,
        version: u64,
    ) -> Result<VersionRecord> {
        catalog
            .version(collection, version)?
            .ok_or_else(|| Error::NoSuchVersion {
                collection: collection.to_string(),
                version,
            })
    }

    fn snapshot(&self, catalog: &dyn Catalog, collection: &str) -> Result<Snapshot> {
        let head = catalog
            .head(collection)?
            .ok_or_else(|| Error::NoSuchCollection(collection.to_string()))?;
        if let Some(s) = self
            .heads
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(collection)
        {
            if s.version().version == head {
                return Ok(s.clone());
            }
        }
        let snap = self.snapshot_at(catalog, collection, head)?;
        self.set_head(snap.clone());
        Ok(snap)
    }

    fn snapshot_at(
        &self,
        catalog: &dyn Catalog,
        collection: &str,
        version: u64,
    ) -> Result<Snapshot> {
        let record = self.version_record(catalog, collection, version)?;
        let mut info = catalog
            .collection(collection)?
            .ok_or_else(|| Error::NoSuchCollection(collection.to_string()))?;
        info.dims = record.dims;
        info.metric = record.metric;
        let snap = Snapshot(Arc::new(self.load_state(info, record)?));
        self.register_live(&snap);
        Ok(snap)
    }

    fn versions(&self, catalog: &dyn Catalog, collection: &str) -> Result<Vec<VersionInfo>> {
        let head = catalog
            .head(collection)?
            .ok_or_else(|| Error::NoSuchCollection(collection.to_string()))?;
        let records = catalog.versions(collection)?;
        let pins = catalog.pins(collection)?;
        let mut out: Vec<VersionInfo> = records
            .into_iter()
            .map(|r| VersionInfo {
                version: r.version,
                parent: r.parent,
                created_ms: r.created_ms,
                writer_epoch: r.writer_epoch,
                rows: r.rows,
                bytes: r.bytes,
                segments: r.segments.len(),
                deltas: r.deltas.len(),
                head: r.version == head,
                pinned: pins.contains(&r.version),
                note: r.note,
            })
            .collect();
        out.sort_by_key(|v| std::cmp::Reverse(v.version));
        Ok(out)
    }
}

/// Read a HEAD pointer file: None when it does not exist.
pub(crate) fn read_head_file(storage: &dyn Storage, path: &str) -> Result<Option<u64>> {
    match storage.read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            text.trim().parse().map(Some).map_err(|_| {
                Error::invalid(
                    "HEAD file",
                    format!(
                        "{}: {:?} is not a version number",
                        storage.location(path).display(),
                        text.trim()
                    ),
                )
            })
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn info_of(record: &VersionRecord) -> CollectionInfo {
    CollectionInfo {
        name: record.collection.clone(),
        dims: record.dims,
        metric: record.metric,
        quantization: record.quantization,
        created_ms: record.created_ms,
    }
}

/// Whether a storage holds a store (a reader needs its `versions/` directory).
pub(crate) fn is_store(storage: &dyn Storage) -> bool {
    matches!(storage.stat(layout::VERSIONS), Ok(Some(m)) if m.is_dir)
}
