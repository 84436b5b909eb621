//! The RocksDB manifest: collections, immutable version records, heads, head history,
//! pins, the writer lease with its fencing epoch, and ingested inbox files.
//!
//! Commit is one synced `WriteBatch`; a version record is written once and never changed.
//! Before every commit the writer's epoch is compared with the lease's: a writer whose
//! epoch is no longer current commits nothing (fencing).
//!
//! The manifest needs a real directory: `manifest/` under a store's local root, or — for a
//! store without one ([`strata_storage::MemoryStorage`]) — a path named after the store's
//! location in the process's in-memory RocksDB environment, where reopening finds it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rocksdb::{
    ColumnFamilyDescriptor, Direction, Env, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};
use strata_formats::VersionRecord;
use strata_storage::{layout, Storage};

use crate::error::{Error, Result};
use crate::snapshot::CollectionInfo;

const CF_COLLECTIONS: &str = "collections";
const CF_VERSIONS: &str = "versions";
const CF_HEADS: &str = "heads";
const CF_HISTORY: &str = "history";
const CF_PINS: &str = "pins";
const CF_LEASE: &str = "lease";
const CF_FILES: &str = "files";
const CF_META: &str = "meta";
const ALL_CFS: [&str; 8] = [
    CF_COLLECTIONS,
    CF_VERSIONS,
    CF_HEADS,
    CF_HISTORY,
    CF_PINS,
    CF_LEASE,
    CF_FILES,
    CF_META,
];
const LEASE_KEY: &[u8] = b"writer";
const NEXT_VERSION_KEY: &[u8] = b"next_version";
const STORE_ID_KEY: &[u8] = b"store_id";
const FILE_WATERMARK_KEY: &[u8] = b"file_watermark";

/// Who holds the writer role, since when, and with which fencing epoch.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub(crate) struct Lease {
    /// Holder description (host, pid, purpose).
    pub(crate) holder: String,
    /// Fencing epoch, incremented by every writer that opens the store.
    pub(crate) epoch: u64,
    /// When the holder took the role (ms since the Unix epoch).
    pub(crate) since_ms: u64,
    /// Last heartbeat (ms since the Unix epoch).
    pub(crate) heartbeat_ms: u64,
}

/// One move of a collection's head.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub(crate) struct HistoryEntry {
    /// The new head.
    pub(crate) version: u64,
    /// The head before.
    pub(crate) previous: Option<u64>,
    /// When (ms since the Unix epoch).
    pub(crate) time_ms: u64,
    /// What moved it.
    pub(crate) note: String,
}

fn encode<T: bincode::Encode>(v: &T) -> Vec<u8> {
    strata_formats::codec::encode(v)
}

fn decode<T: bincode::Decode<()>>(key: &[u8], bytes: &[u8]) -> Result<T> {
    bincode::decode_from_slice(
        bytes,
        bincode::config::standard().with_limit::<{ 1 << 30 }>(),
    )
    .map(|(v, _)| v)
    .map_err(|e| Error::ManifestEntry {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: e.to_string(),
    })
}

fn version_key(collection: &str, version: u64) -> Vec<u8> {
    let mut k = collection.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// Published heads remembered per collection (see `Manifest::put_published`).
pub(crate) const MAX_PUBLISHED_PER_COLLECTION: usize = 256;

fn published_prefix(collection: &str) -> Vec<u8> {
    let mut k = b"published\0".to_vec();
    k.extend_from_slice(collection.as_bytes());
    k.push(0);
    k
}

fn prefix(collection: &str) -> Vec<u8> {
    let mut k = collection.as_bytes().to_vec();
    k.push(0);
    k
}

/// The manifest database.
pub(crate) struct Manifest {
    db: DB,
    /// Whether it lives in the in-memory environment, whose WAL files cannot be synced on
    /// demand (synced write batches work there as anywhere).
    in_memory: bool,
}

/// The changes of one commit, applied atomically by [`Manifest::commit`].
#[derive(Default)]
pub(crate) struct Commit {
    batch: WriteBatch,
    ops: usize,
}

impl Manifest {
    fn options() -> Options {
        let mut o = Self::cf_options();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_use_fsync(true);
        o.set_keep_log_file_num(4);
        o.set_max_log_file_size(1 << 20);
        // RocksDB preallocates its MANIFEST (4 MiB by default) and each WAL (1.1 × the
        // write buffer, 64 MiB by default) with fallocate on every open. The manifest holds
        // kilobytes, so both are sized to it: on tmpfs and network filesystems (EFS) the
        // default preallocation dominated the time of an open.
        o.set_manifest_preallocation_size(64 << 10);
        o.set_db_write_buffer_size(1 << 20);
        o
    }

    /// Column family options: a 1 MiB write buffer (commits are a few kilobytes).
    fn cf_options() -> Options {
        let mut o = Options::default();
        o.set_write_buffer_size(1 << 20);
        o
    }

    /// Open read-write, creating the database if missing. Fails if another process (or
    /// another open in this process) holds it.
    pub(crate) fn open(path: &Path) -> Result<Manifest> {
        Self::open_with(path, Self::options())
    }

    fn open_with(path: &Path, options: Options) -> Result<Manifest> {
        let cfs = ALL_CFS
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, Self::cf_options()));
        let db = DB::open_cf_descriptors(&options, path, cfs).map_err(Error::manifest("open"))?;
        Ok(Manifest {
            db,
            in_memory: false,
        })
    }

    /// Open read-only (works while a writer holds the database; sees its flushed state).
    pub(crate) fn open_read_only(path: &Path) -> Result<Manifest> {
        Self::open_read_only_with(path, Options::default())
    }

    fn open_read_only_with(path: &Path, options: Options) -> Result<Manifest> {
        let db = DB::open_cf_for_read_only(&options, path, ALL_CFS, false)
            .map_err(Error::manifest("open read-only"))?;
        Ok(Manifest {
            db,
            in_memory: false,
        })
    }

    /// [`Manifest::open`] for the store in `storage`: `manifest/` under its local root, or
    /// in the in-memory environment when it has none (see the module documentation).
    pub(crate) fn open_on(storage: &dyn Storage) -> Result<Manifest> {
        match storage.local_root() {
            Some(root) => Self::open(&root.join(layout::MANIFEST)),
            None => {
                let mut options = Self::options();
                options.set_env(memory_env()?);
                let mut m = Self::open_with(&memory_path(storage), options)?;
                m.in_memory = true;
                Ok(m)
            }
        }
    }

    /// [`Manifest::open_read_only`] for the store in `storage`.
    pub(crate) fn open_read_only_on(storage: &dyn Storage) -> Result<Manifest> {
        match storage.local_root() {
            Some(root) => Self::open_read_only(&root.join(layout::MANIFEST)),
            None => {
                let mut options = Options::default();
                options.set_env(memory_env()?);
                let mut m = Self::open_read_only_with(&memory_path(storage), options)?;
                m.in_memory = true;
                Ok(m)
            }
        }
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    fn get<T: bincode::Decode<()>>(&self, cf: &str, key: &[u8]) -> Result<Option<T>> {
        match self
            .db
            .get_cf(self.cf(cf), key)
            .map_err(Error::manifest("get"))?
        {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn scan<T: bincode::Decode<()>>(&self, cf: &str, prefix: &[u8]) -> Result<Vec<(Vec<u8>, T)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(cf), IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(Error::manifest("scan"))?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), decode(&k, &v)?));
        }
        Ok(out)
    }

    /// The current lease, if any writer ever opened the store.
    pub(crate) fn lease(&self) -> Result<Option<Lease>> {
        self.get(CF_LEASE, LEASE_KEY)
    }

    /// Take the writer role: bump the epoch and record the holder (synced).
    pub(crate) fn take_lease(&self, holder: &str, now_ms: u64) -> Result<Lease> {
        let epoch = self.lease()?.map_or(0, |l| l.epoch) + 1;
        let lease = Lease {
            holder: holder.to_string(),
            epoch,
            since_ms: now_ms,
            heartbeat_ms: now_ms,
        };
        self.write_synced(|b| b.put_cf(self.cf(CF_LEASE), LEASE_KEY, encode(&lease)))?;
        Ok(lease)
    }

    /// The store's id, created (synced) the first time a writer opens the store: 32
    /// hexadecimal digits, random. Publishing and remote readers check it.
    pub(crate) fn store_id_or_create(&self) -> Result<String> {
        if let Some(id) = self.get::<String>(CF_META, STORE_ID_KEY)? {
            return Ok(id);
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.write_synced(|b| b.put_cf(self.cf(CF_META), STORE_ID_KEY, encode(&id)))?;
        Ok(id)
    }

    /// The file-number watermark: no delta or segment file ever had a number at or above
    /// it (0 before the first reservation).
    pub(crate) fn file_watermark(&self) -> Result<u64> {
        Ok(self.get::<u64>(CF_META, FILE_WATERMARK_KEY)?.unwrap_or(0))
    }

    /// Raise the watermark (synced) before numbers below it are handed out, so that a
    /// number is never reused: not after GC removed its file, not after a crash.
    pub(crate) fn reserve_file_numbers(&self, watermark: u64) -> Result<()> {
        self.write_synced(|b| b.put_cf(self.cf(CF_META), FILE_WATERMARK_KEY, encode(&watermark)))
    }

    /// Remember that version `version` of `collection`, whose version file has crc32
    /// `crc`, was published as a head (synced), so that a later publish recognises it as
    /// this store's even after local retention dropped it. The newest
    /// [`MAX_PUBLISHED_PER_COLLECTION`] are kept per collection.
    pub(crate) fn put_published(&self, collection: &str, version: u64, crc: u32) -> Result<()> {
        let prefix = published_prefix(collection);
        let mut key = prefix.clone();
        key.extend_from_slice(&version.to_be_bytes());
        let old = self.scan::<u32>(CF_META, &prefix)?;
        self.write_synced(|b| {
            b.put_cf(self.cf(CF_META), &key, encode(&crc));
            // Keys sort by version: drop the oldest beyond the limit.
            let excess = (old.len() + 1).saturating_sub(MAX_PUBLISHED_PER_COLLECTION);
            for (k, _) in old.iter().take(excess) {
                if *k != key {
                    b.delete_cf(self.cf(CF_META), k);
                }
            }
        })
    }

    /// The crc32 recorded by [`Manifest::put_published`], if this store published that
    /// version as a head.
    pub(crate) fn published_crc(&self, collection: &str, version: u64) -> Result<Option<u32>> {
        let mut key = published_prefix(collection);
        key.extend_from_slice(&version.to_be_bytes());
        self.get(CF_META, &key)
    }

    /// Overwrite the lease (tests simulate a stolen lease with it).
    #[cfg(test)]
    pub(crate) fn put_lease(&self, lease: &Lease) -> Result<()> {
        self.write_synced(|b| b.put_cf(self.cf(CF_LEASE), LEASE_KEY, encode(lease)))
    }

    fn write_synced(&self, f: impl FnOnce(&mut WriteBatch)) -> Result<()> {
        let mut batch = WriteBatch::default();
        f(&mut batch);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db
            .write_opt(batch, &wo)
            .map_err(Error::manifest("write"))
    }

    /// All collections.
    pub(crate) fn collections(&self) -> Result<Vec<CollectionInfo>> {
        Ok(self
            .scan::<CollectionInfo>(CF_COLLECTIONS, b"")?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// One collection.
    pub(crate) fn collection(&self, name: &str) -> Result<Option<CollectionInfo>> {
        self.get(CF_COLLECTIONS, name.as_bytes())
    }

    /// A collection's head version.
    pub(crate) fn head(&self, collection: &str) -> Result<Option<u64>> {
        self.get(CF_HEADS, collection.as_bytes())
    }

    /// One version record.
    pub(crate) fn version(&self, collection: &str, version: u64) -> Result<Option<VersionRecord>> {
        self.get(CF_VERSIONS, &version_key(collection, version))
    }

    /// All stored version records of a collection, ascending.
    pub(crate) fn versions(&self, collection: &str) -> Result<Vec<VersionRecord>> {
        Ok(self
            .scan::<VersionRecord>(CF_VERSIONS, &prefix(collection))?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Pinned versions of a collection.
    pub(crate) fn pins(&self, collection: &str) -> Result<BTreeSet<u64>> {
        Ok(self
            .scan::<u64>(CF_PINS, &prefix(collection))?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// The next version number to use.
    pub(crate) fn next_version(&self) -> Result<u64> {
        Ok(self.get::<u64>(CF_META, NEXT_VERSION_KEY)?.unwrap_or(1))
    }

    /// The delta an inbox file was ingested as, if it was.
    pub(crate) fn ingested(&self, inbox_name: &str) -> Result<Option<String>> {
        self.get(CF_FILES, format!("inbox/{inbox_name}").as_bytes())
    }

    /// All ingested inbox file names.
    pub(crate) fn ingested_all(&self) -> Result<Vec<String>> {
        Ok(self
            .scan::<String>(CF_FILES, b"inbox/")?
            .into_iter()
            .map(|(k, _)| String::from_utf8_lossy(&k["inbox/".len()..]).into_owned())
            .collect())
    }

    /// Apply a commit as one synced write batch, after checking the writer's epoch.
    pub(crate) fn commit(&self, commit: Commit, epoch: u64) -> Result<()> {
        let current = self.lease()?.map_or(0, |l| l.epoch);
        if current != epoch {
            return Err(Error::Fenced {
                mine: epoch,
                current,
            });
        }
        if commit.ops == 0 {
            return Ok(());
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db
            .write_opt(commit.batch, &wo)
            .map_err(Error::manifest("commit"))
    }

    /// Flush memtables and the WAL to disk.
    pub(crate) fn flush(&self) -> Result<()> {
        self.db
            .flush_wal(!self.in_memory)
            .map_err(Error::manifest("flush WAL"))?;
        self.db.flush().map_err(Error::manifest("flush"))
    }

    /// Start a commit.
    pub(crate) fn begin(&self) -> CommitBuilder<'_> {
        CommitBuilder {
            m: self,
            c: Commit::default(),
        }
    }
}

/// RocksDB's in-memory environment, one per process: the manifests of all stores without a
/// local directory live in it, each under its own path, for as long as the process runs
/// (they are small; tests are their only users).
fn memory_env() -> Result<&'static Env> {
    static ENV: OnceLock<std::result::Result<Env, rocksdb::Error>> = OnceLock::new();
    ENV.get_or_init(Env::mem_env)
        .as_ref()
        .map_err(|e| Error::manifest("create the in-memory environment")(e.clone()))
}

/// The manifest's path in the in-memory environment: absolute (the environment requires
/// it), named by the store's location, which a recovered `MemoryStorage` keeps.
fn memory_path(storage: &dyn Storage) -> PathBuf {
    Path::new("/").join(
        storage
            .location(layout::MANIFEST)
            .to_string_lossy()
            .replace(':', "")
            .trim_start_matches('/'),
    )
}

/// Accumulates the changes of one commit.
pub(crate) struct CommitBuilder<'a> {
    m: &'a Manifest,
    c: Commit,
}

impl CommitBuilder<'_> {
    fn put(&mut self, cf: &str, key: &[u8], value: Vec<u8>) {
        self.c.batch.put_cf(self.m.cf(cf), key, value);
        self.c.ops += 1;
    }

    fn delete(&mut self, cf: &str, key: &[u8]) {
        self.c.batch.delete_cf(self.m.cf(cf), key);
        self.c.ops += 1;
    }

    /// Record a collection.
    pub(crate) fn put_collection(&mut self, info: &CollectionInfo) {
        self.put(CF_COLLECTIONS, info.name.as_bytes(), encode(info));
    }

    /// Write a new version record, make it the head, log the move and advance the
    /// version counter.
    pub(crate) fn put_head_version(
        &mut self,
        record: &VersionRecord,
        previous: Option<u64>,
        now_ms: u64,
    ) {
        self.put(
            CF_VERSIONS,
            &version_key(&record.collection, record.version),
            encode(record),
        );
        self.put(
            CF_HEADS,
            record.collection.as_bytes(),
            encode(&record.version),
        );
        self.put(
            CF_HISTORY,
            &version_key(&record.collection, record.version),
            encode(&HistoryEntry {
                version: record.version,
                previous,
                time_ms: now_ms,
                note: record.note.clone(),
            }),
        );
        self.put(CF_META, NEXT_VERSION_KEY, encode(&(record.version + 1)));
    }

    /// Move a head to an existing version (no new record).
    pub(crate) fn delete_version(&mut self, collection: &str, version: u64) {
        self.delete(CF_VERSIONS, &version_key(collection, version));
    }

    /// Pin a version.
    pub(crate) fn pin(&mut self, collection: &str, version: u64) {
        self.put(CF_PINS, &version_key(collection, version), encode(&version));
    }

    /// Unpin a version.
    pub(crate) fn unpin(&mut self, collection: &str, version: u64) {
        self.delete(CF_PINS, &version_key(collection, version));
    }

    /// Record that an inbox file was ingested as a delta.
    pub(crate) fn put_ingested(&mut self, inbox_name: &str, delta_file: &str) {
        self.put(
            CF_FILES,
            format!("inbox/{inbox_name}").as_bytes(),
            encode(&delta_file.to_string()),
        );
    }

    /// Forget an ingested inbox file (after GC removed it).
    pub(crate) fn delete_ingested(&mut self, inbox_name: &str) {
        self.delete(CF_FILES, format!("inbox/{inbox_name}").as_bytes());
    }

    /// Remove a collection: its record, head, versions, pins and history.
    pub(crate) fn drop_collection(&mut self, name: &str) -> Result<()> {
        self.delete(CF_COLLECTIONS, name.as_bytes());
        self.delete(CF_HEADS, name.as_bytes());
        for cf in [CF_VERSIONS, CF_PINS, CF_HISTORY] {
            for (k, _) in self.m.scan::<rocksdb_any::Any>(cf, &prefix(name))? {
                self.delete(cf, &k);
            }
        }
        Ok(())
    }

    /// Commit (synced), checking the epoch.
    pub(crate) fn commit(self, epoch: u64) -> Result<()> {
        self.m.commit(self.c, epoch)
    }
}

mod rocksdb_any {
    /// Decodes any value (for scans that only need keys).
    pub(super) struct Any;
    impl<C> bincode::Decode<C> for Any {
        fn decode<D: bincode::de::Decoder<Context = C>>(
            _: &mut D,
        ) -> Result<Any, bincode::error::DecodeError> {
            Ok(Any)
        }
    }
}
