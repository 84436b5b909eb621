//! [`Writer`]: the writer role of a store — the RocksDB manifest open read-write, the
//! fencing epoch, and every method that changes the store: collections, writes,
//! compaction, rollback and pins (GC and inbox ingestion live in `gc` and `inbox`).
//!
//! Write path: validate → encode one delta → temp file, fsync, link into `deltas/`, fsync
//! directory → one synced manifest batch (version record + head + history), after the epoch
//! check → version file and HEAD → swap the in-memory snapshot. The return of
//! [`Writer::write`] is the acknowledgment.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use strata_formats::{
    encode_version, DeltaHeader, DeltaRef, DeltaWriter, Metric, Op, Operation, Quantization, Seq,
    VersionRecord,
};
use strata_storage::{LocalStorage, Storage, TempFile};

use crate::clock::{now_ms, rfc3339};
use crate::compaction::{self, CompactReport, CompactionContext, CompactionPolicy, MergePolicy};
use crate::error::{Error, Result};
use crate::fsyncgate::{self, SyncState, SyncWatch};
use crate::layout::{self, check_collection_name};
use crate::manifest::{CommitBuilder, Lease, Manifest};
use crate::segment::MappedSegment;
use crate::snapshot::{CollectionInfo, Snapshot, SnapshotState};
use crate::store::{read_head_file, Catalog, Core, ReadableStore, Role, VersionInfo};
use crate::validate::validate;

/// Options of a [`Writer`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Who opens the store as writer (recorded in the lease; shown to a second writer).
    pub holder: String,
    /// Versions kept per collection besides the head and pinned ones (default 8).
    pub retain_versions: usize,
    /// Versions younger than this are kept too, whatever their number: the rollback window
    /// in time (default `None`: the count alone). A busy compactor commits many versions a
    /// minute, so a count alone is a window of seconds.
    pub retain_for: Option<Duration>,
    /// Files unreferenced for less than this are never deleted by GC (default 10 min):
    /// readers on other hosts may still map them.
    pub gc_grace: Duration,
    /// How long tombstones and filter operations are kept so that late, older operations
    /// still resolve in seq order (default 48 h; DynamoDB streams keep records 24 h).
    pub horizon: Duration,
    /// What `maybe_compact` and `compact` do: the default is [`CompactionPolicy`]'s
    /// size-tiered policy with its default settings.
    pub policy: Arc<dyn MergePolicy>,
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
            retain_for: None,
            gc_grace: Duration::from_secs(600),
            horizon: Duration::from_secs(48 * 3600),
            policy: Arc::new(CompactionPolicy::default()),
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

/// File numbers reserved in the manifest at a time (one synced manifest write per this
/// many new delta and segment files).
const FILE_NUMBER_BATCH: u64 = 256;

/// Deltas from this size on are written and synced on a thread of their own while the
/// write's state is folded; below it a thread costs more than the overlap saves.
const OVERLAPPED_WRITE_BYTES: usize = 1 << 20;

/// The next file number to hand out, and the watermark persisted in the manifest (every
/// number below it may have been used).
#[derive(Debug, Default)]
struct FileNumbers {
    next: u64,
    reserved: u64,
}

/// The writer role of a store: one directory (or other [`Storage`]), many collections, and
/// every method that changes them. At most one writer holds a store at a time (RocksDB's
/// lock on the manifest; the fencing epoch stops a writer whose lock was lost); any number
/// of [`Reader`](crate::Reader)s may read beside it.
///
/// The reads are [`ReadableStore`]'s (bring the trait into scope to call them).
pub struct Writer {
    core: Core,
    manifest: Manifest,
    /// The fencing epoch of the lease this writer took.
    epoch: u64,
    options: StoreOptions,
    /// Serializes writes, compactions, commits and GC.
    write_lock: Mutex<()>,
    /// File numbers: the next to hand out and the watermark reserved in the manifest.
    files: Mutex<FileNumbers>,
    /// The store's id (in the manifest).
    store_id: String,
    /// The first failed sync: from then on every change is refused (see `fsyncgate`).
    sync: SyncState,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("root", &self.core.root())
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl Role for Writer {
    fn core(&self) -> &Core {
        &self.core
    }

    fn catalog(&self) -> &dyn Catalog {
        &self.manifest
    }
}

impl ReadableStore for Writer {}

/// Whether a manifest open failed because RocksDB's lock file is held: another process (or
/// another open in this process) is the writer.
fn is_lock_failure(e: &Error) -> bool {
    // RocksDB reports a held lock as an `IOError` status like any other I/O failure, and its
    // C API passes on the status code (what `kind()` reads) but no subcode: the message is
    // the only thing that tells a held lock from, say, an unreadable directory. These are
    // the messages of its POSIX file system (another process; this process) and of its
    // in-memory environment (`env/fs_posix.cc`, `env/mock_env.cc`).
    const HELD: [&str; 3] = [
        "While lock file",
        "lock hold by current process",
        "lock is already held",
    ];
    matches!(e, Error::Manifest { op: "open", source }
        if source.kind() == rocksdb::ErrorKind::IOError
            && HELD.iter().any(|m| source.to_string().contains(m)))
}

impl Writer {
    /// Create or open a store at `path` and take the writer role.
    ///
    /// Fails fast with [`Error::WriterBusy`] naming the holder if another writer has it.
    /// Bumps the fencing epoch; republishes any version file or HEAD a crash left unwritten.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Writer> {
        Writer::open_on(Arc::new(LocalStorage::new(path.as_ref())?), options)
    }

    /// [`Writer::open`] on any storage, for example a [`strata_storage::MemoryStorage`]
    /// (the manifest then lives in RocksDB's in-memory environment, under a path named
    /// after the storage's location).
    pub fn open_on(storage: Arc<dyn Storage>, options: StoreOptions) -> Result<Writer> {
        let sync = SyncState::default();
        let storage: Arc<dyn Storage> = Arc::new(SyncWatch::new(storage, sync.clone()));
        for dir in layout::STORE_DIRS {
            storage.create_dir(dir)?;
        }
        let manifest = match Manifest::open_on(&*storage) {
            Ok(m) => m,
            Err(e) if is_lock_failure(&e) => return Err(busy_error(&*storage)),
            Err(e) => return Err(e),
        };
        let lease = manifest.take_lease(&options.holder, now_ms())?;
        let store_id = manifest.store_id_or_create()?;
        let writer = Writer {
            core: Core::new(storage, options.verify_on_open),
            manifest,
            epoch: lease.epoch,
            options,
            write_lock: Mutex::new(()),
            files: Mutex::new(FileNumbers::default()),
            store_id,
            sync,
        };
        writer.init_file_numbers()?;
        writer.sweep_temporaries()?;
        writer.recover_published()?;
        writer.sync.check()?;
        Ok(writer)
    }

    /// Remove the temporaries a killed writer left in `tmp/`: only the writer makes
    /// temporaries other than producers' inbox ones, and this one holds the writer role, so
    /// none of them is being written. Producers' (`inbox` temporaries: a stream Lambda on
    /// another host may be writing one now) wait for GC's grace period.
    fn sweep_temporaries(&self) -> Result<()> {
        let storage = self.core.storage();
        for entry in storage.list(layout::TMP)? {
            if entry.meta.is_dir || layout::temp_hint(&entry.name).is_none_or(|h| h == "inbox") {
                continue;
            }
            let path = strata_storage::layout::join(layout::TMP, &entry.name);
            strata_storage::failpoint!("recover: sweep temporaries", storage.location(&path));
            match storage.remove(&path) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Commit a manifest batch (synced), after checking that no sync failed; a failed
    /// commit is final like a failed fsync.
    pub(crate) fn commit_batch(&self, c: CommitBuilder<'_>) -> Result<()> {
        self.sync.check()?;
        strata_storage::failpoint!("manifest commit", self.core.storage().location("manifest"));
        let r = c.commit(self.epoch);
        if let Err(e) = &r {
            if fsyncgate::is_sync_failure(e) {
                self.sync.fail(e);
            }
        }
        r
    }

    /// The options.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The writer's fencing epoch (one more than the previous writer's).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Flush the manifest and release the writer role (also done on drop).
    pub fn close(self) -> Result<()> {
        self.manifest.flush()
    }

    pub(crate) fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Refuse if a sync failed (see `fsyncgate`).
    pub(crate) fn check_sync(&self) -> Result<()> {
        self.sync.check()
    }

    /// The writer lock, which every change takes; refused once a sync failed.
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, ()>> {
        let g = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.sync.check()?;
        Ok(g)
    }

    /// The next file number: above every file in the store and the persisted watermark.
    fn init_file_numbers(&self) -> Result<()> {
        let mut max = 0;
        for dir in [layout::DELTAS, layout::SEGMENTS] {
            for entry in self.core.storage().list(dir)? {
                if let Some(n) = layout::file_number(&entry.name) {
                    max = max.max(n);
                }
            }
        }
        let watermark = self.manifest.file_watermark()?;
        let next = (max + 1).max(watermark);
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = FileNumbers {
            next,
            reserved: watermark.max(next),
        };
        Ok(())
    }

    /// A file number no file of this store ever had, nor will have: numbers are reserved
    /// in the manifest ([`FILE_NUMBER_BATCH`] at a time, synced) before they are handed
    /// out, so neither GC nor a crash lets a name come back.
    pub(crate) fn alloc_file(&self) -> Result<u64> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if files.next >= files.reserved {
            let reserved = files.next + FILE_NUMBER_BATCH;
            self.manifest.reserve_file_numbers(reserved)?;
            files.reserved = reserved;
        }
        let n = files.next;
        files.next += 1;
        Ok(n)
    }

    /// The store's id (see `Manifest::store_id_or_create`).
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// Publish `temp` as a new file in `dir` named by a fresh file number.
    fn publish_numbered(
        &self,
        temp: &TempFile,
        dir: &str,
        name: fn(u64) -> String,
    ) -> Result<String> {
        let storage = self.core.storage();
        loop {
            let file = name(self.alloc_file()?);
            let dest = layout::join(dir, &file);
            let published = (|| {
                strata_storage::failpoint!("publish file", storage.location(&dest));
                Ok::<_, Error>(storage.publish(temp, &dest)?)
            })();
            match published {
                Ok(true) => return Ok(file),
                Ok(false) => {}
                Err(e) => {
                    // A failed publication removes the temporary before it returns.
                    storage.discard_temp(temp);
                    return Err(e);
                }
            }
        }
    }

    fn recover_published(&self) -> Result<()> {
        let m = &self.manifest;
        for info in m.collections()? {
            if let Some(v) = m.head(&info.name)? {
                if let Some(record) = m.version(&info.name, v)? {
                    let storage = self.core.storage();
                    if read_head_file(storage, &layout::head(&info.name))? != Some(v)
                        || !storage.exists(&layout::version_file(&info.name, v))?
                    {
                        strata_storage::failpoint!(
                            "recover: republish version",
                            storage.location(&layout::head(&info.name))
                        );
                        self.publish_version(&record)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Write the version file and move HEAD (temp, fsync, rename, fsync directory).
    fn publish_version(&self, record: &VersionRecord) -> Result<()> {
        let storage = self.core.storage();
        storage.create_dir(&layout::versions(&record.collection))?;
        let path = layout::version_file(&record.collection, record.version);
        if !storage.exists(&path)? {
            strata_storage::failpoint!("publish version file", storage.location(&path));
            let temp = storage.write_temp("version", &encode_version(record))?;
            let published = (|| {
                strata_storage::failpoint!("publish version file", storage.location(&path));
                storage.publish(&temp, &path)
            })();
            match published {
                Ok(true) => {}
                // Published meanwhile (by an earlier attempt): this copy is not needed.
                Ok(false) => storage.discard_temp(&temp),
                Err(e) => {
                    storage.discard_temp(&temp);
                    return Err(e.into());
                }
            }
        }
        let head = layout::head(&record.collection);
        strata_storage::failpoint!("publish HEAD", storage.location(&head));
        storage.replace(&head, format!("{}\n", record.version).as_bytes())?;
        Ok(())
    }

    /// Simulate another writer stealing the lease (bumps the epoch behind this writer's
    /// back). For the fencing test only: a real second writer cannot be made in one
    /// process, because RocksDB holds the manifest's lock for as long as the first writer
    /// has it open (locally and in its in-memory environment alike), and fencing is about
    /// a writer whose lock was lost while it still runs (a network filesystem's lease).
    #[cfg(test)]
    fn simulate_stolen_lease(&self) -> Result<()> {
        let mut lease = self.manifest.lease()?.unwrap_or(Lease {
            holder: String::new(),
            epoch: 0,
            since_ms: 0,
            heartbeat_ms: 0,
        });
        lease.epoch += 1;
        lease.holder = "a simulated thief".into();
        self.manifest.put_lease(&lease)
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
        let _g = self.lock()?;
        if self.manifest.collection(name)?.is_some() {
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
            version: self.manifest.next_version()?,
            parent: None,
            writer_epoch: self.epoch,
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
        let mut c = self.manifest.begin();
        c.put_collection(&info);
        c.put_head_version(&record, None, now);
        self.commit_batch(c)?;
        self.publish_version(&record)?;
        let state = SnapshotState::new(info.clone(), Arc::new(record), vec![])?;
        self.core.set_head(Snapshot(Arc::new(state)));
        Ok(info)
    }

    /// Change the quantization a collection's next compaction builds.
    pub fn set_quantization(&self, name: &str, quantization: Quantization) -> Result<()> {
        let _g = self.lock()?;
        let mut info = self.collection_info(name)?;
        info.quantization = if info.dims == 0 {
            Quantization::None
        } else {
            quantization
        };
        let mut c = self.manifest.begin();
        c.put_collection(&info);
        self.commit_batch(c)?;
        self.core.forget_head(name);
        Ok(())
    }

    /// Drop a collection: it disappears at once; its files are collected by GC.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        let _g = self.lock()?;
        if self.manifest.collection(name)?.is_none() {
            return Err(Error::NoSuchCollection(name.to_string()));
        }
        let mut c = self.manifest.begin();
        c.drop_collection(name)?;
        self.commit_batch(c)?;
        let head = layout::head(name);
        if self.core.storage().exists(&head)? {
            self.core.storage().remove(&head)?;
        }
        self.core.forget_head(name);
        Ok(())
    }

    // ---- commits ----

    /// Commit a new version of a collection derived from `state` (which must be derived
    /// from the current head), then publish it and make it the current snapshot.
    fn commit_state(
        &self,
        mut state: SnapshotState,
        edit: impl FnOnce(&mut VersionRecord),
        extra: impl FnOnce(&mut CommitBuilder<'_>),
    ) -> Result<Snapshot> {
        let now = now_ms();
        let previous = state.version.version;
        let mut record = (*state.version).clone();
        record.version = self.manifest.next_version()?;
        record.parent = Some(previous);
        record.writer_epoch = self.epoch;
        record.created_ms = now;
        edit(&mut record);
        state.expire_ledger(now.saturating_sub(self.options.horizon.as_millis() as u64));
        record.retained = state.ledger.clone();
        for (slot, sref) in state.segments.iter().zip(record.segments.iter_mut()) {
            sref.deleted = slot.version_dead.to_vec();
        }
        let overlay_live = state.overlay_live();
        record.rows = state
            .segments
            .iter()
            .map(|s| (s.seg.rows() - s.dead.len()) as u64)
            .sum::<u64>()
            + overlay_live as u64;
        record.bytes = record.segments.iter().map(|s| s.bytes).sum::<u64>()
            + record.deltas.iter().map(|d| d.bytes).sum::<u64>();
        let mut c = self.manifest.begin();
        c.put_head_version(&record, Some(previous), now);
        extra(&mut c);
        self.commit_batch(c)?;
        self.publish_version(&record)?;
        state.version = Arc::new(record);
        let snap = Snapshot(Arc::new(state));
        self.core.set_head(snap.clone());
        Ok(snap)
    }

    /// The head snapshot a commit builds on. Loading it checks every file it references
    /// (each segment's block crcs when it is first mapped, with `verify_on_open`; each
    /// delta's crc and seal): a head that fails to load because a file is damaged is
    /// [`Error::DamagedHead`], and nothing is committed on top of it. The check costs
    /// nothing extra: a head is loaded once after open and whenever it moved.
    pub(crate) fn head_for_commit(&self, collection: &str) -> Result<Snapshot> {
        self.snapshot(collection).map_err(|e| {
            let damaged = |path: PathBuf, detail: String| Error::DamagedHead {
                collection: collection.to_string(),
                version: self.manifest.head(collection).ok().flatten().unwrap_or(0),
                path,
                detail,
            };
            match e {
                Error::Format { path, source } => damaged(path, source.to_string()),
                Error::Io { path, source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    damaged(path, "missing".into())
                }
                Error::Invalid { what, detail } if what == "delta file" => damaged(
                    PathBuf::from(detail.split(": ").next().unwrap_or("")),
                    detail,
                ),
                other => other,
            }
        })
    }

    /// The state behind a head snapshot, to derive the next version from: taken without a
    /// copy when no reader holds the snapshot, cloned otherwise. The head leaves the cache;
    /// if the commit then fails, the next `snapshot` call reloads it from the manifest.
    fn take_state(&self, snap: Snapshot) -> SnapshotState {
        self.core.forget_head(&snap.info().name);
        Arc::try_unwrap(snap.0).unwrap_or_else(|shared| (*shared).clone())
    }

    // ---- writes ----

    /// Apply a batch of operations without source seqs: the writer stamps them so that they
    /// order after everything it has seen. One sealed delta; returns once it is durable
    /// and registered (the acknowledgment).
    pub fn write(&self, collection: &str, ops: Vec<Op>) -> Result<WriteReceipt> {
        let _g = self.lock()?;
        let snap = self.head_for_commit(collection)?;
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
    /// stream SequenceNumbers). Same durability as [`Writer::write`].
    pub fn write_sequenced(&self, collection: &str, ops: Vec<Operation>) -> Result<WriteReceipt> {
        let _g = self.lock()?;
        let snap = self.head_for_commit(collection)?;
        self.write_locked(snap, ops)
    }

    fn write_locked(&self, snap: Snapshot, ops: Vec<Operation>) -> Result<WriteReceipt> {
        let info = snap.info().clone();
        for (i, op) in ops.iter().enumerate() {
            validate(&info, op).map_err(|e| Error::invalid_operation(i, e))?;
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
        let header = DeltaHeader {
            collection: info.name.clone(),
            dims: info.dims,
            producer: self.options.holder.clone(),
            first_seq: ops[0].seq,
            created_ms: now,
        };
        let bytes = DeltaWriter::encode(&header, &ops).map_err(crate::error::delta_error)?;
        let storage = self.core.storage();
        let write = || -> Result<_> {
            strata_storage::failpoint!("write delta", storage.location(layout::TMP));
            Ok(storage.write_temp("delta", &bytes)?)
        };
        // A large delta's state is built while the delta is written and synced: the fold is
        // memory work, the write mostly waiting on the disk. The write gets a thread of its
        // own, not a rayon task: this thread holds the writer lock, and a rayon worker
        // waiting on a join may run a queued task that takes the same lock.
        let (temp, state) = if bytes.len() >= OVERLAPPED_WRITE_BYTES {
            std::thread::scope(|scope| {
                let written = scope.spawn(write);
                let state = self.fold_delta(snap, &ops, now);
                let temp = written
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (temp, state)
            })
        } else {
            (write(), self.fold_delta(snap, &ops, now))
        };
        // The state is committed only once the delta is durable and published; a failed
        // fold takes its written temporary with it.
        let (temp, state) = match (temp, state) {
            (Ok(temp), Ok(state)) => (temp, state),
            (Ok(temp), Err(e)) => {
                storage.discard_temp(&temp);
                return Err(e);
            }
            (Err(e), _) => return Err(e),
        };
        let file = self.publish_numbered(&temp, layout::DELTAS, layout::delta_name)?;
        self.commit_delta(state, file, bytes.len() as u64, &ops, |_| {})
    }

    /// Register a published delta file holding `ops` as a new head version.
    pub(crate) fn register_delta(
        &self,
        snap: Snapshot,
        file: String,
        bytes: u64,
        ops: &[Operation],
        now: u64,
        extra: impl FnOnce(&mut CommitBuilder<'_>),
    ) -> Result<WriteReceipt> {
        let state = self.fold_delta(snap, ops, now)?;
        self.commit_delta(state, file, bytes, ops, extra)
    }

    /// The head's state with `ops` folded in (not yet committed).
    fn fold_delta(&self, snap: Snapshot, ops: &[Operation], now: u64) -> Result<SnapshotState> {
        let mut state = self.take_state(snap);
        for op in ops {
            state.fold(op, now)?;
        }
        Ok(state)
    }

    /// Commit `state`, which has the published delta `file` holding `ops` folded in, as the
    /// new head version.
    fn commit_delta(
        &self,
        state: SnapshotState,
        file: String,
        bytes: u64,
        ops: &[Operation],
        extra: impl FnOnce(&mut CommitBuilder<'_>),
    ) -> Result<WriteReceipt> {
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

    // ---- compaction ----

    /// Compact a collection now: flush its deltas and merge all of its segments that are
    /// below the policy's maximum size into as few as possible.
    pub fn compact(&self, collection: &str) -> Result<CompactReport> {
        self.compact_with(collection, true)
    }

    /// Compact a collection if the policy says so (too many deltas, a run of small
    /// segments, or a segment with too many dead rows). Returns None when nothing was due.
    pub fn maybe_compact(&self, collection: &str) -> Result<Option<CompactReport>> {
        let r = self.compact_with(collection, false)?;
        Ok(r.version.map(|_| r))
    }

    fn compact_with(&self, collection: &str, full: bool) -> Result<CompactReport> {
        let _g = self.lock()?;
        let snap = self.head_for_commit(collection)?;
        compaction::compact(self, self.options.policy.as_ref(), &snap, full)
    }

    // ---- rollback and pins ----

    /// Make a retained version the head again, as a new version (history is kept; rolling
    /// forward is another rollback).
    pub fn rollback(&self, collection: &str, version: u64) -> Result<VersionInfo> {
        let _g = self.lock()?;
        let target = self
            .core
            .version_record(&self.manifest, collection, version)?;
        let info = self.collection_info(collection)?;
        // The head's record only, not its state: a head whose files are damaged can be
        // rolled back from.
        let head = self.head(collection)?;
        let current = self.core.version_record(&self.manifest, collection, head)?;
        let mut state = self.core.load_state(info, target.clone())?;
        state.version = Arc::new(current);
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
        let _g = self.lock()?;
        self.core
            .version_record(&self.manifest, collection, version)?;
        let mut c = self.manifest.begin();
        c.pin(collection, version);
        self.commit_batch(c)
    }

    /// Unpin a version.
    pub fn unpin(&self, collection: &str, version: u64) -> Result<()> {
        let _g = self.lock()?;
        if !self.manifest.pins(collection)?.contains(&version) {
            return Err(Error::invalid(
                "unpin",
                format!("version {version} of {collection:?} is not pinned"),
            ));
        }
        let mut c = self.manifest.begin();
        c.unpin(collection, version);
        self.commit_batch(c)
    }
}

/// The [`Error::WriterBusy`] for a store whose manifest lock is held, naming the holder its
/// lease records (as far as a read-only open of the manifest can tell).
fn busy_error(storage: &dyn Storage) -> Error {
    let path = storage.location("");
    match Manifest::open_read_only_on(storage).and_then(|m| m.lease()) {
        Ok(Some(Lease {
            holder,
            epoch,
            since_ms,
            ..
        })) => Error::WriterBusy {
            path,
            holder,
            since: rfc3339(since_ms),
            epoch,
        },
        _ => Error::WriterBusy {
            path,
            holder: "another process".into(),
            since: "unknown".into(),
            epoch: 0,
        },
    }
}

/// The executor's view of the writer: its inherent methods, under the writer lock.
impl CompactionContext for Writer {
    fn storage(&self) -> &dyn Storage {
        self.core.storage()
    }

    fn root(&self) -> &Path {
        self.core.root()
    }

    fn horizon(&self) -> Duration {
        self.options.horizon
    }

    fn publish_numbered(
        &self,
        temp: &TempFile,
        dir: &str,
        name: fn(u64) -> String,
    ) -> Result<String> {
        Writer::publish_numbered(self, temp, dir, name)
    }

    fn map_segment(&self, name: &str) -> Result<Arc<MappedSegment>> {
        self.core.map_segment(name)
    }

    fn commit(
        &self,
        state: SnapshotState,
        edit: impl FnOnce(&mut VersionRecord),
    ) -> Result<Snapshot> {
        self.commit_state(state, edit, |_| {})
    }
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

    fn ids(store: &Writer, c: &str) -> Vec<String> {
        let snap = store.snapshot(c).unwrap();
        let rows = snap.get_where(None, None, 0, Include::ids()).unwrap();
        rows.into_iter().map(|r| r.id).collect()
    }

    /// Moved here from `tests/lifecycle.rs`: it needs the crate-private
    /// `simulate_stolen_lease` (see there why no real second writer can be made).
    #[test]
    fn a_fenced_writer_commits_nothing() {
        let disk = Arc::new(MemoryStorage::new());
        let store = Writer::open_on(disk.clone(), StoreOptions::default()).unwrap();
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
        let reopened = Writer::open_on(disk, StoreOptions::default()).unwrap();
        assert_eq!(reopened.snapshot("c").unwrap().version().version, head);
        assert_eq!(ids(&reopened, "c"), vec!["a"]);
    }
}
