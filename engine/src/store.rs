//! `Store`: the writer (RocksDB manifest open read-write, fencing epoch) or a reader (version
//! files and HEAD only), collections, writes, snapshots, versions, rollback and pins.
//!
//! Write path: validate → encode one delta → temp file, fsync, link into `deltas/`, fsync
//! directory → one synced manifest batch (version record + head + history), after the epoch
//! check → version file and HEAD → swap the in-memory snapshot. The return of
//! [`Store::write`] is the acknowledgment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use strata_formats::{
    decode_delta, decode_version, encode_version, DeltaHeader, DeltaRef, DeltaWriter, Metric, Op,
    Operation, Quantization, Seq, VersionRecord,
};

use strata_storage::{publish_inbox_delta, LocalStorage, Storage, TempFile};

use crate::clock::{now_ms, rfc3339};
use crate::compaction::CompactionPolicy;
use crate::error::{Error, Result};
use crate::layout::{self, check_collection_name};
use crate::manifest::{Lease, Manifest};
use crate::segment::MappedSegment;
use crate::snapshot::{CollectionInfo, Snapshot, SnapshotState};

/// Options of a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Who opens the store as writer (recorded in the lease; shown to a second writer).
    pub holder: String,
    /// Versions kept per collection besides the head and pinned ones (default 8).
    pub retain_versions: usize,
    /// Files unreferenced for less than this are never deleted by GC (default 10 min):
    /// readers on other hosts may still map them.
    pub gc_grace: Duration,
    /// How long tombstones and filter operations are kept so that late, older operations
    /// still resolve in seq order (default 48 h; DynamoDB streams keep records 24 h).
    pub horizon: Duration,
    /// Compaction policy.
    pub policy: CompactionPolicy,
    /// Check every block crc of a segment when it is first mapped (default true).
    pub verify_on_open: bool,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            holder: format!(
                "pid {} on {}",
                std::process::id(),
                std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into())
            ),
            retain_versions: 8,
            gc_grace: Duration::from_secs(600),
            horizon: Duration::from_secs(48 * 3600),
            policy: CompactionPolicy::default(),
            verify_on_open: true,
        }
    }
}

/// What a write committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReceipt {
    /// The new head version.
    pub version: u64,
    /// The delta file registered (empty when the batch was empty).
    pub delta: String,
    /// Operations written.
    pub count: usize,
    /// Smallest seq written.
    pub first_seq: Seq,
    /// Largest seq written.
    pub last_seq: Seq,
}

/// A version as `versions()` lists it.
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
    /// Whether it is pinned.
    pub pinned: bool,
    /// What produced it.
    pub note: String,
}

pub(crate) struct Writer {
    pub manifest: Manifest,
    pub epoch: u64,
}

/// A strata store: one directory (or other [`Storage`]), many collections.
pub struct Store {
    /// Where the store's files live; every file operation goes through it.
    pub(crate) storage: Arc<dyn Storage>,
    /// The store's location (`storage.location("")`), for messages.
    pub(crate) root: PathBuf,
    pub(crate) options: StoreOptions,
    pub(crate) writer: Option<Writer>,
    /// Serializes writes, compactions, commits and GC.
    pub(crate) write_lock: Mutex<()>,
    pub(crate) heads: RwLock<HashMap<String, Snapshot>>,
    pub(crate) segments: Mutex<HashMap<String, Weak<MappedSegment>>>,
    pub(crate) live: Mutex<Vec<Weak<SnapshotState>>>,
    pub(crate) next_file: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.root)
            .field("writer", &self.writer.is_some())
            .finish()
    }
}

fn read_head_file(storage: &dyn Storage, path: &str) -> Result<Option<u64>> {
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

impl Store {
    /// Create or open a store at `path` and take the writer role.
    ///
    /// Fails fast with [`Error::WriterBusy`] naming the holder if another writer has it.
    /// Bumps the fencing epoch; republishes any version file or HEAD a crash left unwritten.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        Store::open_on(Arc::new(LocalStorage::new(path.as_ref())?), options)
    }

    /// [`Store::open`] on any storage, for example a [`strata_storage::MemoryStorage`]
    /// (the manifest then lives in RocksDB's in-memory environment, see
    /// [`Manifest::open_on`]).
    pub fn open_on(storage: Arc<dyn Storage>, options: StoreOptions) -> Result<Store> {
        for dir in layout::STORE_DIRS {
            storage.create_dir(dir)?;
        }
        let manifest = match Manifest::open_on(&*storage) {
            Ok(m) => m,
            Err(e) => return Err(Self::busy_error(&*storage, e)),
        };
        let lease = manifest.take_lease(&options.holder, now_ms())?;
        let store = Store {
            root: storage.location(""),
            storage,
            options,
            writer: Some(Writer {
                manifest,
                epoch: lease.epoch,
            }),
            write_lock: Mutex::new(()),
            heads: RwLock::new(HashMap::new()),
            segments: Mutex::new(HashMap::new()),
            live: Mutex::new(Vec::new()),
            next_file: AtomicU64::new(0),
        };
        store.init_file_numbers()?;
        store.recover_published()?;
        Ok(store)
    }

    fn busy_error(storage: &dyn Storage, e: Error) -> Error {
        let msg = e.to_string();
        if !(msg.contains("lock") || msg.contains("Resource temporarily unavailable")) {
            return e;
        }
        match Manifest::open_read_only_on(storage).and_then(|m| m.lease()) {
            Ok(Some(Lease {
                holder,
                epoch,
                since_ms,
                ..
            })) => Error::WriterBusy {
                path: storage.location(""),
                holder,
                since: rfc3339(since_ms),
                epoch,
            },
            _ => Error::WriterBusy {
                path: storage.location(""),
                holder: "another process".into(),
                since: "unknown".into(),
                epoch: 0,
            },
        }
    }

    /// Open a store for reading only, from its version files and HEAD pointers. Never
    /// writes anything (no lock, no repair, no publication). Every segment's block crcs are
    /// checked when it is first mapped; [`Store::open_reader_with`] can defer that.
    pub fn open_reader(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_reader_with(path, true)
    }

    /// [`Store::open_reader`], choosing whether segments are verified when first mapped.
    /// `verify_on_open = false` trades the full crc check (≈ 250 ms per 600 MB) for a
    /// faster first read; the header and block table are still checked, and `verify` or
    /// `strata verify` checks everything.
    pub fn open_reader_with(path: impl AsRef<Path>, verify_on_open: bool) -> Result<Store> {
        Store::open_reader_on(Arc::new(LocalStorage::at(path.as_ref())), verify_on_open)
    }

    /// [`Store::open_reader_with`] on any storage.
    pub fn open_reader_on(storage: Arc<dyn Storage>, verify_on_open: bool) -> Result<Store> {
        if !is_store(&*storage) {
            return Err(Error::invalid(
                "store",
                format!(
                    "{} is not a strata store (no versions/ directory)",
                    storage.location("").display()
                ),
            ));
        }
        Ok(Store {
            root: storage.location(""),
            storage,
            options: StoreOptions {
                verify_on_open,
                ..StoreOptions::default()
            },
            writer: None,
            write_lock: Mutex::new(()),
            heads: RwLock::new(HashMap::new()),
            segments: Mutex::new(HashMap::new()),
            live: Mutex::new(Vec::new()),
            next_file: AtomicU64::new(0),
        })
    }

    /// The store's root directory (its [`Storage::location`]).
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The storage the store's files live in.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The options.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Whether this handle is the writer.
    pub fn is_writer(&self) -> bool {
        self.writer.is_some()
    }

    /// The writer's fencing epoch.
    pub fn epoch(&self) -> Option<u64> {
        self.writer.as_ref().map(|w| w.epoch)
    }

    pub(crate) fn writer(&self, what: &'static str) -> Result<&Writer> {
        self.writer.as_ref().ok_or(Error::ReadOnly(what))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn init_file_numbers(&self) -> Result<()> {
        let mut max = 0;
        for dir in [layout::DELTAS, layout::SEGMENTS] {
            for entry in self.storage.list(dir)? {
                if let Some(n) = layout::file_number(&entry.name) {
                    max = max.max(n);
                }
            }
        }
        self.next_file.store(max + 1, Ordering::SeqCst);
        Ok(())
    }

    pub(crate) fn alloc_file(&self) -> u64 {
        self.next_file.fetch_add(1, Ordering::SeqCst)
    }

    /// Publish `temp` as a new file in `dir` named by a fresh file number.
    pub(crate) fn publish_numbered(
        &self,
        temp: &TempFile,
        dir: &str,
        name: fn(u64) -> String,
    ) -> Result<String> {
        loop {
            let file = name(self.alloc_file());
            if self.storage.publish(temp, &layout::join(dir, &file))? {
                return Ok(file);
            }
        }
    }

    fn recover_published(&self) -> Result<()> {
        let w = self.writer("recovery")?;
        for info in w.manifest.collections()? {
            if let Some(v) = w.manifest.head(&info.name)? {
                if let Some(record) = w.manifest.version(&info.name, v)? {
                    if read_head_file(&*self.storage, &layout::head(&info.name))? != Some(v)
                        || !self.storage.exists(&layout::version_file(&info.name, v))?
                    {
                        self.publish_version(&record)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Write the version file and move HEAD (temp, fsync, rename, fsync directory).
    pub(crate) fn publish_version(&self, record: &VersionRecord) -> Result<()> {
        self.storage
            .create_dir(&layout::versions(&record.collection))?;
        let path = layout::version_file(&record.collection, record.version);
        if !self.storage.exists(&path)? {
            let temp = self
                .storage
                .write_temp("version", &encode_version(record))?;
            self.storage.publish(&temp, &path)?;
        }
        self.storage.replace(
            &layout::head(&record.collection),
            format!("{}\n", record.version).as_bytes(),
        )?;
        Ok(())
    }

    /// Flush the manifest and release the writer role (also done on drop).
    pub fn close(self) -> Result<()> {
        if let Some(w) = &self.writer {
            w.manifest.flush()?;
        }
        Ok(())
    }

    /// Simulate another writer stealing the lease (bumps the epoch behind this writer's
    /// back). For the fencing test only: a real second writer cannot be made in one
    /// process, because RocksDB holds the manifest's lock for as long as the first writer
    /// has it open (locally and in its in-memory environment alike), and fencing is about
    /// a writer whose lock was lost while it still runs (a network filesystem's lease).
    #[cfg(test)]
    pub(crate) fn simulate_stolen_lease(&self) -> Result<()> {
        let w = self.writer("simulate_stolen_lease")?;
        let mut lease = w.manifest.lease()?.unwrap_or(Lease {
            holder: String::new(),
            epoch: 0,
            since_ms: 0,
            heartbeat_ms: 0,
        });
        lease.epoch += 1;
        lease.holder = "a simulated thief".into();
        w.manifest.put_lease(&lease)
    }

    // ---- collections ----

    /// Create a collection.
    pub fn create_collection(
        &self,
        name: &str,
        dims: u32,
        metric: Metric,
        quantization: Quantization,
    ) -> Result<CollectionInfo> {
        check_collection_name(name)?;
        if dims > strata_formats::segment::MAX_DIMS {
            return Err(Error::invalid(
                "dims",
                format!("{dims} exceeds {}", strata_formats::segment::MAX_DIMS),
            ));
        }
        let w = self.writer("create_collection")?;
        let _g = self.lock();
        if w.manifest.collection(name)?.is_some() {
            return Err(Error::CollectionExists(name.to_string()));
        }
        let now = now_ms();
        let info = CollectionInfo {
            name: name.to_string(),
            dims,
            metric,
            quantization: if dims == 0 {
                Quantization::None
            } else {
                quantization
            },
            created_ms: now,
        };
        let record = VersionRecord {
            collection: name.to_string(),
            version: w.manifest.next_version()?,
            parent: None,
            writer_epoch: w.epoch,
            created_ms: now,
            dims,
            metric,
            quantization: info.quantization,
            seq_watermark: Seq::ZERO,
            segments: vec![],
            deltas: vec![],
            retained: vec![],
            rows: 0,
            bytes: 0,
            note: "create".into(),
        };
        let mut c = w.manifest.begin();
        c.put_collection(&info);
        c.put_head_version(&record, None, now);
        c.commit(w.epoch)?;
        self.publish_version(&record)?;
        let state = SnapshotState::new(info.clone(), Arc::new(record), vec![])?;
        self.set_head(Snapshot(Arc::new(state)));
        Ok(info)
    }

    /// Change the quantization a collection's next compaction builds.
    pub fn set_quantization(&self, name: &str, quantization: Quantization) -> Result<()> {
        let w = self.writer("set_quantization")?;
        let _g = self.lock();
        let mut info = self.collection_info(name)?;
        info.quantization = if info.dims == 0 {
            Quantization::None
        } else {
            quantization
        };
        let mut c = w.manifest.begin();
        c.put_collection(&info);
        c.commit(w.epoch)?;
        self.heads
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    /// All collections.
    pub fn collections(&self) -> Result<Vec<CollectionInfo>> {
        match &self.writer {
            Some(w) => w.manifest.collections(),
            None => {
                let mut out = Vec::new();
                let mut names: Vec<String> = self
                    .storage
                    .list(layout::VERSIONS)?
                    .into_iter()
                    .map(|e| e.name)
                    .collect();
                names.sort();
                for name in names {
                    if let Some(v) = read_head_file(&*self.storage, &layout::head(&name))? {
                        let record = self.read_version_file(&name, v)?;
                        out.push(info_of(&record));
                    }
                }
                Ok(out)
            }
        }
    }

    /// One collection's settings.
    pub fn collection_info(&self, name: &str) -> Result<CollectionInfo> {
        match &self.writer {
            Some(w) => w
                .manifest
                .collection(name)?
                .ok_or_else(|| Error::NoSuchCollection(name.to_string())),
            None => {
                let v = read_head_file(&*self.storage, &layout::head(name))?
                    .ok_or_else(|| Error::NoSuchCollection(name.to_string()))?;
                Ok(info_of(&self.read_version_file(name, v)?))
            }
        }
    }

    /// Drop a collection: it disappears at once; its files are collected by GC.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        let w = self.writer("drop_collection")?;
        let _g = self.lock();
        if w.manifest.collection(name)?.is_none() {
            return Err(Error::NoSuchCollection(name.to_string()));
        }
        let mut c = w.manifest.begin();
        c.drop_collection(name)?;
        c.commit(w.epoch)?;
        let head = layout::head(name);
        if self.storage.exists(&head)? {
            self.storage.remove(&head)?;
        }
        self.heads
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    // ---- versions and snapshots ----

    pub(crate) fn read_version_file(
        &self,
        collection: &str,
        version: u64,
    ) -> Result<VersionRecord> {
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

    pub(crate) fn version_record(&self, collection: &str, version: u64) -> Result<VersionRecord> {
        let found = match &self.writer {
            Some(w) => w.manifest.version(collection, version)?,
            None => Some(self.read_version_file(collection, version)?),
        };
        found.ok_or_else(|| Error::NoSuchVersion {
            collection: collection.to_string(),
            version,
        })
    }

    pub(crate) fn head_version(&self, collection: &str) -> Result<u64> {
        let head = match &self.writer {
            Some(w) => w.manifest.head(collection)?,
            None => read_head_file(&*self.storage, &layout::head(collection))?,
        };
        head.ok_or_else(|| Error::NoSuchCollection(collection.to_string()))
    }

    pub(crate) fn map_segment(&self, name: &str) -> Result<Arc<MappedSegment>> {
        let mut cache = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seg) = cache.get(name).and_then(Weak::upgrade) {
            return Ok(seg);
        }
        let seg = Arc::new(MappedSegment::open(
            &*self.storage,
            &layout::segment(name),
            self.options.verify_on_open,
        )?);
        cache.insert(name.to_string(), Arc::downgrade(&seg));
        Ok(seg)
    }

    /// Read a registered delta file (it must be sealed and intact).
    pub(crate) fn read_delta(&self, name: &str) -> Result<strata_formats::Delta> {
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

    pub(crate) fn set_head(&self, snap: Snapshot) {
        self.register_live(&snap);
        self.heads
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(snap.info().name.clone(), snap);
    }

    /// The current snapshot of a collection (its head). Cheap after the first call; a
    /// reader re-reads HEAD on every call and reloads when it moved.
    pub fn snapshot(&self, collection: &str) -> Result<Snapshot> {
        let head = self.head_version(collection)?;
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
        let snap = self.snapshot_at(collection, head)?;
        self.set_head(snap.clone());
        Ok(snap)
    }

    /// A snapshot of a collection at a retained version.
    pub fn snapshot_at(&self, collection: &str, version: u64) -> Result<Snapshot> {
        let record = self.version_record(collection, version)?;
        let mut info = self.collection_info(collection)?;
        info.dims = record.dims;
        info.metric = record.metric;
        let snap = Snapshot(Arc::new(self.load_state(info, record)?));
        self.register_live(&snap);
        Ok(snap)
    }

    /// The versions of a collection, newest first.
    pub fn versions(&self, collection: &str) -> Result<Vec<VersionInfo>> {
        let head = self.head_version(collection)?;
        let (records, pins) = match &self.writer {
            Some(w) => (
                w.manifest.versions(collection)?,
                w.manifest.pins(collection)?,
            ),
            None => {
                let mut records = Vec::new();
                for entry in self.storage.list(&layout::versions(collection))? {
                    if let Some(v) = layout::version_number(&entry.name) {
                        records.push(self.read_version_file(collection, v)?);
                    }
                }
                (records, Default::default())
            }
        };
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

    /// Commit a new version of a collection derived from `state` (which must be derived
    /// from the current head), then publish it and make it the current snapshot.
    pub(crate) fn commit_state(
        &self,
        mut state: SnapshotState,
        edit: impl FnOnce(&mut VersionRecord),
        extra: impl FnOnce(&mut crate::manifest::CommitBuilder<'_>),
    ) -> Result<Snapshot> {
        let w = self.writer("commit")?;
        let now = now_ms();
        let previous = state.version.version;
        let mut record = (*state.version).clone();
        record.version = w.manifest.next_version()?;
        record.parent = Some(previous);
        record.writer_epoch = w.epoch;
        record.created_ms = now;
        edit(&mut record);
        state.expire_ledger(now.saturating_sub(self.options.horizon.as_millis() as u64));
        record.retained = state.ledger.clone();
        for (slot, sref) in state.segments.iter().zip(record.segments.iter_mut()) {
            sref.deleted = slot.version_dead.to_vec();
        }
        let overlay_live = state.overlay.values().filter(|e| e.is_live()).count();
        record.rows = state
            .segments
            .iter()
            .map(|s| (s.seg.rows() - s.dead.len()) as u64)
            .sum::<u64>()
            + overlay_live as u64;
        record.bytes = record.segments.iter().map(|s| s.bytes).sum::<u64>()
            + record.deltas.iter().map(|d| d.bytes).sum::<u64>();
        let mut c = w.manifest.begin();
        c.put_head_version(&record, Some(previous), now);
        extra(&mut c);
        c.commit(w.epoch)?;
        self.publish_version(&record)?;
        state.version = Arc::new(record);
        let snap = Snapshot(Arc::new(state));
        self.set_head(snap.clone());
        Ok(snap)
    }

    /// The state behind a head snapshot, to derive the next version from: taken without a
    /// copy when no reader holds the snapshot, cloned otherwise. The head leaves the cache;
    /// if the commit then fails, the next `snapshot` call reloads it from the manifest.
    pub(crate) fn take_state(&self, snap: Snapshot) -> SnapshotState {
        self.heads
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&snap.info().name);
        Arc::try_unwrap(snap.0).unwrap_or_else(|shared| (*shared).clone())
    }

    // ---- writes ----

    /// Apply a batch of operations without source seqs: the writer stamps them so that they
    /// order after everything it has seen. One sealed delta; returns once it is durable
    /// and registered (the acknowledgment).
    pub fn write(&self, collection: &str, ops: Vec<Op>) -> Result<WriteReceipt> {
        let _g = self.lock();
        let snap = self.snapshot(collection)?;
        let mut seq = snap.version().seq_watermark;
        let ops = ops
            .into_iter()
            .map(|op| {
                seq = seq.next();
                Operation { seq, op }
            })
            .collect();
        self.write_locked(snap, ops)
    }

    /// Apply a batch of operations that carry their source seqs (for example DynamoDB
    /// stream SequenceNumbers). Same durability as [`Store::write`].
    pub fn write_sequenced(&self, collection: &str, ops: Vec<Operation>) -> Result<WriteReceipt> {
        let _g = self.lock();
        let snap = self.snapshot(collection)?;
        self.write_locked(snap, ops)
    }

    fn write_locked(&self, snap: Snapshot, ops: Vec<Operation>) -> Result<WriteReceipt> {
        self.writer("write")?;
        let info = snap.info().clone();
        for (i, op) in ops.iter().enumerate() {
            validate(&info, op)
                .map_err(|detail| Error::invalid(format!("operation {i}"), detail))?;
        }
        if ops.is_empty() {
            return Ok(WriteReceipt {
                version: snap.version().version,
                delta: String::new(),
                count: 0,
                first_seq: Seq::ZERO,
                last_seq: Seq::ZERO,
            });
        }
        let now = now_ms();
        let mut w = DeltaWriter::new(&DeltaHeader {
            collection: info.name.clone(),
            dims: info.dims,
            producer: self.options.holder.clone(),
            first_seq: ops[0].seq,
            created_ms: now,
        })
        .map_err(|e| Error::invalid("delta", e.to_string()))?;
        for op in &ops {
            w.push(op)
                .map_err(|e| Error::invalid("operation", e.to_string()))?;
        }
        let bytes = w.seal();
        let temp = self.storage.write_temp("delta", &bytes)?;
        let file = self.publish_numbered(&temp, layout::DELTAS, layout::delta_name)?;
        self.register_delta(snap, file, bytes.len() as u64, &ops, now, |_| {})
    }

    /// Register a published delta file holding `ops` as a new head version.
    pub(crate) fn register_delta(
        &self,
        snap: Snapshot,
        file: String,
        bytes: u64,
        ops: &[Operation],
        now: u64,
        extra: impl FnOnce(&mut crate::manifest::CommitBuilder<'_>),
    ) -> Result<WriteReceipt> {
        let mut state = self.take_state(snap);
        for op in ops {
            state.fold(op, now)?;
        }
        let min = ops.iter().map(|o| o.seq).min().unwrap_or(Seq::ZERO);
        let max = ops.iter().map(|o| o.seq).max().unwrap_or(Seq::ZERO);
        let delta = DeltaRef {
            file: file.clone(),
            count: ops.len() as u64,
            min_seq: min,
            max_seq: max,
            bytes,
        };
        let snap = self.commit_state(
            state,
            |r| {
                r.deltas.push(delta);
                r.seq_watermark = r.seq_watermark.max(max);
                r.note = "write".into();
            },
            extra,
        )?;
        Ok(WriteReceipt {
            version: snap.version().version,
            delta: file,
            count: ops.len(),
            first_seq: min,
            last_seq: max,
        })
    }

    // ---- rollback and pins ----

    /// Make a retained version the head again, as a new version (history is kept; rolling
    /// forward is another rollback).
    pub fn rollback(&self, collection: &str, version: u64) -> Result<VersionInfo> {
        self.writer("rollback")?;
        let _g = self.lock();
        let target = self.version_record(collection, version)?;
        let info = self.collection_info(collection)?;
        let current = self.snapshot(collection)?;
        let mut state = self.load_state(info, target.clone())?;
        state.version = current.0.version.clone();
        let snap = self.commit_state(
            state,
            |r| {
                r.segments = target.segments.clone();
                r.deltas = target.deltas.clone();
                r.dims = target.dims;
                r.metric = target.metric;
                r.seq_watermark = r.seq_watermark.max(target.seq_watermark);
                r.note = format!("rollback to {version}");
            },
            |_| {},
        )?;
        let v = snap.version().version;
        self.versions(collection)?
            .into_iter()
            .find(|i| i.version == v)
            .ok_or_else(|| Error::NoSuchVersion {
                collection: collection.to_string(),
                version: v,
            })
    }

    /// Pin a version: retention and GC keep it until it is unpinned.
    pub fn pin(&self, collection: &str, version: u64) -> Result<()> {
        let w = self.writer("pin")?;
        let _g = self.lock();
        self.version_record(collection, version)?;
        let mut c = w.manifest.begin();
        c.pin(collection, version);
        c.commit(w.epoch)
    }

    /// Unpin a version.
    pub fn unpin(&self, collection: &str, version: u64) -> Result<()> {
        let w = self.writer("unpin")?;
        let _g = self.lock();
        if !w.manifest.pins(collection)?.contains(&version) {
            return Err(Error::invalid(
                "unpin",
                format!("version {version} of {collection:?} is not pinned"),
            ));
        }
        let mut c = w.manifest.begin();
        c.unpin(collection, version);
        c.commit(w.epoch)
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

/// Check an operation against a collection's settings (ids, embedding dimensions, finite
/// floats): what every write does before anything touches the disk. Front ends call it to
/// report every bad input before writing.
pub fn validate(info: &CollectionInfo, op: &Operation) -> std::result::Result<(), String> {
    let check_id = |id: &str| {
        if id.is_empty() {
            Err("empty id".to_string())
        } else if id.len() > 4096 {
            Err(format!("id of {} bytes exceeds 4096", id.len()))
        } else {
            Ok(())
        }
    };
    match &op.op {
        Op::Upsert(r) => {
            check_id(&r.id)?;
            match (&r.embedding, info.dims) {
                (None, 0) => Ok(()),
                (Some(v), 0) => Err(format!(
                    "record {:?} has a {}-d embedding but collection {:?} is metadata-only",
                    r.id,
                    v.len(),
                    info.name
                )),
                (None, d) => Err(format!(
                    "record {:?} has no embedding; collection {:?} needs {d} dimensions",
                    r.id, info.name
                )),
                (Some(v), d) if v.len() != d as usize => Err(format!(
                    "record {:?} has {} dimensions; collection {:?} has {d}",
                    r.id,
                    v.len(),
                    info.name
                )),
                (Some(v), _) => match v.iter().position(|x| !x.is_finite()) {
                    Some(i) => Err(format!("record {:?}: embedding[{i}] is not finite", r.id)),
                    None => Ok(()),
                },
            }
        }
        Op::Patch(p) => p
            .target
            .ids()
            .unwrap_or_default()
            .iter()
            .try_for_each(|id| check_id(id)),
        Op::Delete(t) => t
            .ids()
            .unwrap_or_default()
            .iter()
            .try_for_each(|id| check_id(id)),
    }
}

/// Write a sealed delta into a store's inbox, without any lock: what producers that are not
/// the writer (the stream Lambda) do. The writer ingests it with [`Store::ingest_inbox`].
pub fn write_inbox_delta(
    store: impl AsRef<Path>,
    producer: &str,
    header: &DeltaHeader,
    ops: &[Operation],
) -> Result<PathBuf> {
    layout::check_producer_name(producer)?;
    let mut w = DeltaWriter::new(header).map_err(|e| Error::invalid("delta", e.to_string()))?;
    for op in ops {
        w.push(op)
            .map_err(|e| Error::invalid("operation", e.to_string()))?;
    }
    let storage = LocalStorage::new(store.as_ref())?;
    let path = publish_inbox_delta(&storage, producer, &w.seal())?;
    Ok(storage.location(&path))
}

/// Whether a storage holds a store (a reader needs its `versions/` directory).
pub(crate) fn is_store(storage: &dyn Storage) -> bool {
    matches!(storage.stat(layout::VERSIONS), Ok(Some(m)) if m.is_dir)
}

#[cfg(test)]
mod tests {
    use strata_formats::{MetaValue, Record};
    use strata_storage::MemoryStorage;

    use super::*;
    use crate::snapshot::Include;

    fn rec(id: &str, v: [f32; 2]) -> Op {
        Op::Upsert(Record {
            id: id.into(),
            embedding: Some(v.to_vec()),
            document: None,
            metadata: [("n".to_string(), MetaValue::Int(1))].into_iter().collect(),
        })
    }

    fn ids(store: &Store, c: &str) -> Vec<String> {
        let snap = store.snapshot(c).unwrap();
        let rows = snap.get_where(None, None, 0, Include::ids()).unwrap();
        rows.into_iter().map(|r| r.id).collect()
    }

    /// Moved here from `tests/lifecycle.rs`: it needs the crate-private
    /// `simulate_stolen_lease` (see there why no real second writer can be made).
    #[test]
    fn a_fenced_writer_commits_nothing() {
        let disk = Arc::new(MemoryStorage::new());
        let store = Store::open_on(disk.clone(), StoreOptions::default()).unwrap();
        store
            .create_collection("c", 2, Metric::L2, Quantization::None)
            .unwrap();
        store.write("c", vec![rec("a", [0.0, 0.0])]).unwrap();
        let head = store.snapshot("c").unwrap().version().version;
        store.simulate_stolen_lease().unwrap();
        let err = store.write("c", vec![rec("b", [1.0, 1.0])]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Fenced {
                    mine: 1,
                    current: 2
                }
            ),
            "{err}"
        );
        assert!(matches!(store.compact("c"), Err(Error::Fenced { .. })));
        drop(store);
        let reopened = Store::open_on(disk, StoreOptions::default()).unwrap();
        assert_eq!(reopened.snapshot("c").unwrap().version().version, head);
        assert_eq!(ids(&reopened, "c"), vec!["a"]);
    }
}
