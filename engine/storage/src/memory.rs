//! `MemoryStorage`: a store held in memory, for tests, with a capacity, injected faults and
//! simulated crashes (the idea of redb's `CrashBackend`).
//!
//! # The model
//!
//! Files are inodes holding bytes; names (paths) point at inodes, so a link gives an inode a
//! second name, as a hard link does. Each inode has its *current* bytes, which every read
//! sees, and its *synced* bytes, copied from the current ones at each fsync of the file
//! ([`SyncPoint::File`]: the end of [`Storage::write_temp`], [`TempWrite::finish`], the
//! temporary of [`Storage::replace`]). Names likewise have a current table and a *durable*
//! one: a directory sync ([`SyncPoint::Dir`]: after publish, link, replace and remove)
//! makes the durable entries of that directory equal to its current ones — every entry of
//! it, as fsync of a real directory does. Directories themselves are durable as soon as
//! they are created or removed (the local backend does not sync a parent after `mkdir`;
//! this model does not cover losing a directory).
//!
//! A crash ([`Fault::Crash`], or [`MemoryStorage::crash`]) stops the storage: the operation
//! or sync it hits does not take effect, and it and every later operation fail.
//! [`MemoryStorage::recover`] then gives a fresh storage holding only what was durable:
//! the durable names (in directories that exist), each with its inode's synced bytes — a
//! name made durable before its data was fsynced comes back with the bytes of its last
//! fsync (empty if none). Data written but not synced and entries not yet synced are lost.
//! The recovered storage has the same [`Storage::location`], so state kept beside it under
//! that name (the engine's in-memory RocksDB manifest) is found again.
//!
//! Capacity: the bytes of the files that have a current name (each inode once) count
//! against it; a write that would exceed it fails with ENOSPC
//! ([`crate::StorageError::is_no_space`]), and [`Storage::available_space`] reports what is
//! left (`u64::MAX` without a capacity).
//!
//! Faults: [`MemoryStorage::inject`] arms a [`Fault`] (EIO, ENOSPC or a crash) that fires
//! once (two due at the same point: the first armed fires there, the other at the next
//! matching point), at the `n`th operation of an [`OpKind`] or at the `n`th [`SyncPoint`] (of a kind,
//! under a path prefix) after the injection. An operation that a fault hits at its start
//! fails without any effect; a failed sync leaves what the operation did before it in place
//! (not durable), exactly where the local backend would have stopped. A temporary whose
//! write or fsync failed, or a streaming one dropped unfinished, loses its name (the local
//! backend removes the file), so a failure leaves no temporary behind.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::bytes::{AlignedBytes, FileBytes};
use crate::error::{Result, StorageError};
use crate::layout;
use crate::storage::{check_path, check_range, DirEntry, Metadata, Storage, TempFile, TempWrite};

/// An operation of [`MemoryStorage`], as [`Trigger::Op`] counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpKind {
    /// [`Storage::read`].
    Read,
    /// [`Storage::map`].
    Map,
    /// [`Storage::read_range`].
    ReadRange,
    /// [`Storage::write_temp`].
    WriteTemp,
    /// [`Storage::create_temp`].
    CreateTemp,
    /// One `write` call on a streaming temporary ([`TempWrite`]).
    Write,
    /// [`Storage::publish`].
    Publish,
    /// [`Storage::link`].
    Link,
    /// [`Storage::replace`].
    Replace,
    /// [`Storage::list`].
    List,
    /// [`Storage::remove`].
    Remove,
    /// [`Storage::stat`] and [`Storage::exists`].
    Stat,
    /// [`Storage::create_dir`].
    CreateDir,
    /// [`Storage::remove_dir`].
    RemoveDir,
    /// [`Storage::available_space`].
    AvailableSpace,
}

/// What a sync point makes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncKind {
    /// A file's data.
    File,
    /// A directory's entries.
    Dir,
}

/// A point where the storage makes something durable, named by what it syncs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SyncPoint {
    /// The fsync of a file's data (a temporary's path).
    File(String),
    /// The fsync of a directory, which makes its entries durable (`""` is the root).
    Dir(String),
}

impl SyncPoint {
    /// Which kind of sync it is.
    pub fn kind(&self) -> SyncKind {
        match self {
            SyncPoint::File(_) => SyncKind::File,
            SyncPoint::Dir(_) => SyncKind::Dir,
        }
    }

    /// The file or directory synced.
    pub fn path(&self) -> &str {
        match self {
            SyncPoint::File(p) | SyncPoint::Dir(p) => p,
        }
    }

    fn op(&self) -> &'static str {
        match self {
            SyncPoint::File(_) => "fsync",
            SyncPoint::Dir(_) => "fsync directory",
        }
    }
}

impl fmt::Display for SyncPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.op(), self.path())
    }
}

/// When an injected fault fires. Counts start at the injection: `1` is the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trigger {
    /// The `n`th operation of a kind.
    Op(OpKind, u64),
    /// The `n`th sync point of any kind and path.
    Sync(u64),
    /// The `n`th sync point of `kind` whose path starts with `prefix`.
    SyncOf {
        /// File or directory syncs.
        kind: SyncKind,
        /// The start of the synced path (`"deltas"`, `"versions/c"`, `"tmp/"`).
        prefix: String,
        /// Which matching sync.
        n: u64,
    },
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The operation or sync fails with an input/output error (EIO).
    Eio,
    /// The operation or sync fails with "no space left on device" (ENOSPC).
    Enospc,
    /// Power is lost: the operation or sync does not happen, and it and every later
    /// operation fail until [`MemoryStorage::recover`].
    Crash,
}

struct Armed {
    trigger: Trigger,
    /// For [`Trigger::Op`]: the kind's count at the injection; for syncs: matches seen.
    count: u64,
    fault: Fault,
}

struct Inode {
    data: Arc<AlignedBytes>,
    synced: Arc<AlignedBytes>,
    modified: SystemTime,
}

impl Inode {
    fn new() -> Inode {
        Inode {
            data: Arc::default(),
            synced: Arc::default(),
            modified: SystemTime::now(),
        }
    }
}

struct State {
    id: u64,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    /// Current names → inodes.
    names: BTreeMap<String, u64>,
    /// Names as of the last sync of their directory.
    durable: BTreeMap<String, u64>,
    /// Directories and when they were created (`""`, the root, always exists).
    dirs: BTreeMap<String, SystemTime>,
    /// Inodes of streaming temporaries still being written.
    writing: HashSet<u64>,
    capacity: Option<u64>,
    counts: HashMap<OpKind, u64>,
    syncs: Vec<SyncPoint>,
    faults: Vec<Armed>,
    crashed: Option<String>,
}

/// A store in memory, with a capacity, fault injection and crash simulation (see the
/// module documentation for the model). Clones share the same files.
#[derive(Clone)]
pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Default for MemoryStorage {
    fn default() -> MemoryStorage {
        MemoryStorage::new()
    }
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("MemoryStorage")
            .field("id", &s.id)
            .field("files", &s.names.len())
            .field("capacity", &s.capacity)
            .field("crashed", &s.crashed)
            .finish()
    }
}

fn io_error(kind: io::ErrorKind, msg: impl Into<String>) -> io::Error {
    io::Error::new(kind, msg.into())
}

fn into_io(e: StorageError) -> io::Error {
    match e {
        StorageError::Io { source, .. } => source,
        other => io::Error::new(other.kind(), other),
    }
}

impl State {
    fn location(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("memory://{}/{path}", self.id))
    }

    fn err(&self, op: &'static str, path: &str, source: io::Error) -> StorageError {
        StorageError::Io {
            op,
            path: self.location(path),
            source,
        }
    }

    fn alive(&self, op: &'static str, path: &str) -> Result<()> {
        match &self.crashed {
            Some(at) => Err(self.err(
                op,
                path,
                io::Error::other(format!(
                    "simulated crash at {at}: the storage is down until recover()"
                )),
            )),
            None => Ok(()),
        }
    }

    /// Start an operation: fail if crashed, count it, fire a fault armed for it.
    fn begin(&mut self, kind: OpKind, op: &'static str, path: &str) -> Result<()> {
        self.alive(op, path)?;
        check_path(path)?;
        let n = self.counts.entry(kind).or_insert(0);
        *n += 1;
        let n = *n;
        let hit = self.faults.iter().position(
            |a| matches!(a.trigger, Trigger::Op(k, nth) if k == kind && a.count + nth == n),
        );
        self.fire(hit, op, path, format!("{op} {path:?}"))
    }

    /// Reach a sync point: fail if crashed, log it, fire a fault armed for it. The caller
    /// applies the sync's effect only on `Ok`.
    fn sync(&mut self, point: SyncPoint) -> Result<()> {
        let (op, path) = (point.op(), point.path().to_string());
        self.alive(op, &path)?;
        self.syncs.push(point.clone());
        let mut hit = None;
        for (i, a) in self.faults.iter_mut().enumerate() {
            let (matches, nth) = match &a.trigger {
                Trigger::Op(..) => (false, 0),
                Trigger::Sync(n) => (true, *n),
                Trigger::SyncOf { kind, prefix, n } => (
                    *kind == point.kind() && point.path().starts_with(prefix.as_str()),
                    *n,
                ),
            };
            // A second fault due at a point another one hits waits for the next matching
            // point (each armed fault fires once; none is skipped).
            if matches && !(hit.is_some() && a.count + 1 == nth) {
                a.count += 1;
                if a.count == nth {
                    hit = Some(i);
                }
            }
        }
        self.fire(hit, op, &path, point.to_string())
    }

    fn fire(&mut self, hit: Option<usize>, op: &'static str, path: &str, at: String) -> Result<()> {
        let Some(i) = hit else { return Ok(()) };
        let source = match self.faults.remove(i).fault {
            Fault::Eio => io::Error::other(format!("simulated EIO (input/output error) at {at}")),
            Fault::Enospc => io_error(
                io::ErrorKind::StorageFull,
                format!("simulated ENOSPC (no space left on device) at {at}"),
            ),
            Fault::Crash => {
                self.crashed = Some(at);
                return self.alive(op, path);
            }
        };
        Err(self.err(op, path, source))
    }

    /// Make the entries of `dir` durable.
    fn apply_dir_sync(&mut self, dir: &str) {
        let under = |name: &String| layout::parent(name) == dir;
        self.durable.retain(|name, _| !under(name));
        let current: Vec<(String, u64)> = self
            .names
            .iter()
            .filter(|(name, _)| under(name))
            .map(|(n, i)| (n.clone(), *i))
            .collect();
        self.durable.extend(current);
        self.prune();
    }

    fn apply_file_sync(&mut self, inode: u64) {
        if let Some(node) = self.inodes.get_mut(&inode) {
            node.synced = node.data.clone();
        }
    }

    /// Forget inodes that no name (current or durable) and no writer refers to.
    fn prune(&mut self) {
        let live: HashSet<u64> = self
            .names
            .values()
            .chain(self.durable.values())
            .chain(self.writing.iter())
            .copied()
            .collect();
        self.inodes.retain(|i, _| live.contains(i));
    }

    fn used(&self) -> u64 {
        let live: HashSet<u64> = self
            .names
            .values()
            .chain(self.writing.iter())
            .copied()
            .collect();
        live.iter()
            .filter_map(|i| self.inodes.get(i))
            .map(|n| n.data.len() as u64)
            .sum()
    }

    /// Fail with ENOSPC if `growth` more bytes exceed the capacity.
    fn reserve(&self, growth: u64, op: &'static str, path: &str) -> Result<()> {
        match self.capacity {
            Some(cap) if self.used().saturating_add(growth) > cap => Err(self.err(
                op,
                path,
                io_error(
                    io::ErrorKind::StorageFull,
                    format!(
                        "no space left on device (capacity {cap} bytes, {} used)",
                        self.used()
                    ),
                ),
            )),
            _ => Ok(()),
        }
    }

    fn need_dir(&self, dir: &str, op: &'static str, path: &str) -> Result<()> {
        if self.dirs.contains_key(dir) {
            Ok(())
        } else {
            Err(self.err(
                op,
                path,
                io_error(io::ErrorKind::NotFound, format!("no directory {dir:?}")),
            ))
        }
    }

    fn file(&self, path: &str, op: &'static str) -> Result<(u64, &Inode)> {
        let missing = || {
            let kind = if self.dirs.contains_key(path) {
                io::ErrorKind::IsADirectory
            } else {
                io::ErrorKind::NotFound
            };
            self.err(op, path, io_error(kind, "no such file"))
        };
        let ino = *self.names.get(path).ok_or_else(missing)?;
        let node = self.inodes.get(&ino).ok_or_else(missing)?;
        Ok((ino, node))
    }

    fn occupied(&self, path: &str) -> bool {
        self.names.contains_key(path) || self.dirs.contains_key(path)
    }

    /// A new file at `path` (its directory must exist), empty.
    fn create(&mut self, path: &str, op: &'static str) -> Result<u64> {
        self.need_dir(layout::parent(path), op, path)?;
        if self.dirs.contains_key(path) {
            return Err(self.err(
                op,
                path,
                io_error(io::ErrorKind::IsADirectory, "a directory is in the way"),
            ));
        }
        let ino = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(ino, Inode::new());
        self.names.insert(path.to_string(), ino);
        self.prune();
        Ok(ino)
    }

    /// Write `bytes` at `pos` of an inode, within the capacity.
    fn write_at(&mut self, ino: u64, pos: u64, bytes: &[u8], path: &str) -> Result<()> {
        let Some(len) = self.inodes.get(&ino).map(|n| n.data.len() as u64) else {
            return Err(self.err(
                "write",
                path,
                io_error(io::ErrorKind::NotFound, "the file is gone"),
            ));
        };
        let end = pos.saturating_add(bytes.len() as u64);
        self.reserve(end.saturating_sub(len), "write", path)?;
        let Ok(start) = usize::try_from(pos) else {
            return Err(self.err(
                "write",
                path,
                io_error(io::ErrorKind::InvalidInput, "position beyond memory"),
            ));
        };
        let Some(node) = self.inodes.get_mut(&ino) else {
            return Ok(());
        };
        Arc::make_mut(&mut node.data).write_at(start, bytes);
        node.modified = SystemTime::now();
        Ok(())
    }

    /// Create a temporary holding `bytes` and fsync it (`write_temp`, and `replace`'s).
    fn write_temp(&mut self, hint: &str, bytes: &[u8]) -> Result<TempFile> {
        let temp = layout::temp_file(hint);
        let ino = self.create(&temp, "create")?;
        let written = self
            .write_at(ino, 0, bytes, &temp)
            .and_then(|()| self.sync(SyncPoint::File(temp.clone())));
        if let Err(e) = written {
            // A failed write removes its own temporary (as the local backend does).
            if self.crashed.is_none() {
                self.names.remove(&temp);
                self.prune();
            }
            return Err(e);
        }
        self.apply_file_sync(ino);
        Ok(TempFile::new(temp))
    }

    fn meta(&self, path: &str) -> Option<Metadata> {
        if let Some(created) = self.dirs.get(path) {
            return Some(Metadata {
                len: 0,
                modified: *created,
                is_dir: true,
            });
        }
        let node = self.inodes.get(self.names.get(path)?)?;
        Some(Metadata {
            len: node.data.len() as u64,
            modified: node.modified,
            is_dir: false,
        })
    }
}

impl MemoryStorage {
    /// An empty store without a capacity.
    pub fn new() -> MemoryStorage {
        MemoryStorage::from_state(
            NEXT_ID.fetch_add(1, Ordering::Relaxed),
            BTreeMap::new(),
            HashMap::new(),
            [(String::new(), SystemTime::now())].into_iter().collect(),
            None,
        )
    }

    /// An empty store that holds at most `bytes` bytes of files.
    pub fn with_capacity(bytes: u64) -> MemoryStorage {
        let m = MemoryStorage::new();
        m.set_capacity(Some(bytes));
        m
    }

    fn from_state(
        id: u64,
        names: BTreeMap<String, u64>,
        inodes: HashMap<u64, Inode>,
        dirs: BTreeMap<String, SystemTime>,
        capacity: Option<u64>,
    ) -> MemoryStorage {
        let next_inode = inodes.keys().max().map_or(0, |m| m + 1);
        MemoryStorage {
            state: Arc::new(Mutex::new(State {
                id,
                inodes,
                next_inode,
                durable: names.clone(),
                names,
                dirs,
                writing: HashSet::new(),
                capacity,
                counts: HashMap::new(),
                syncs: Vec::new(),
                faults: Vec::new(),
                crashed: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set or remove the capacity (files already stored stay, even above it).
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// Bytes of the files that have a current name.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used()
    }

    /// Arm a fault; it fires once, when `trigger` is reached.
    pub fn inject(&self, trigger: Trigger, fault: Fault) {
        let mut s = self.lock();
        let count = match trigger {
            Trigger::Op(kind, _) => s.counts.get(&kind).copied().unwrap_or(0),
            Trigger::Sync(_) | Trigger::SyncOf { .. } => 0,
        };
        s.faults.push(Armed {
            trigger,
            count,
            fault,
        });
    }

    /// Disarm every fault that has not fired.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Lose power now: every later operation fails until [`MemoryStorage::recover`].
    pub fn crash(&self) {
        let mut s = self.lock();
        if s.crashed.is_none() {
            s.crashed = Some("MemoryStorage::crash".into());
        }
    }

    /// Where the storage crashed, if it did.
    pub fn crashed_at(&self) -> Option<String> {
        self.lock().crashed.clone()
    }

    /// A fresh storage holding what was durable here (see the module documentation): what
    /// a machine finds after a crash and restart. Works whether or not this storage
    /// crashed (if not, it is what a power loss now would leave). Keeps the capacity and
    /// the location; no faults are armed in it.
    pub fn recover(&self) -> MemoryStorage {
        let s = self.lock();
        let names: BTreeMap<String, u64> = s
            .durable
            .iter()
            .filter(|(name, _)| s.dirs.contains_key(layout::parent(name)))
            .map(|(n, i)| (n.clone(), *i))
            .collect();
        let inodes = names
            .values()
            .filter_map(|i| {
                let node = s.inodes.get(i)?;
                let inode = Inode {
                    data: node.synced.clone(),
                    synced: node.synced.clone(),
                    modified: node.modified,
                };
                Some((*i, inode))
            })
            .collect();
        MemoryStorage::from_state(s.id, names, inodes, s.dirs.clone(), s.capacity)
    }

    /// Every sync point reached so far, in order (including one a fault hit).
    pub fn sync_points(&self) -> Vec<SyncPoint> {
        self.lock().syncs.clone()
    }

    /// How many operations of `kind` were started so far.
    pub fn op_count(&self, kind: OpKind) -> u64 {
        self.lock().counts.get(&kind).copied().unwrap_or(0)
    }
}

impl Storage for MemoryStorage {
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let mut s = self.lock();
        s.begin(OpKind::Read, "read", path)?;
        Ok(s.file(path, "read")?.1.data.as_bytes().to_vec())
    }

    fn map(&self, path: &str) -> Result<FileBytes> {
        let mut s = self.lock();
        s.begin(OpKind::Map, "open", path)?;
        Ok(FileBytes::shared(s.file(path, "open")?.1.data.clone()))
    }

    fn read_range(&self, path: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let mut s = self.lock();
        s.begin(OpKind::ReadRange, "read", path)?;
        let data = s.file(path, "open")?.1.data.clone();
        let (start, end) =
            check_range(&range, data.len() as u64).map_err(|e| s.err("read", path, e))?;
        Ok(data.as_bytes()[start..end].to_vec())
    }

    fn write_temp(&self, hint: &str, bytes: &[u8]) -> Result<TempFile> {
        let mut s = self.lock();
        s.begin(OpKind::WriteTemp, "create", layout::TMP)?;
        s.write_temp(hint, bytes)
    }

    fn create_temp(&self, hint: &str) -> Result<Box<dyn TempWrite>> {
        let mut s = self.lock();
        s.begin(OpKind::CreateTemp, "create", layout::TMP)?;
        let temp = layout::temp_file(hint);
        let ino = s.create(&temp, "create")?;
        s.writing.insert(ino);
        Ok(Box::new(MemoryTemp {
            storage: self.clone(),
            inode: ino,
            temp: TempFile::new(temp),
            pos: 0,
            finished: false,
        }))
    }

    fn publish(&self, temp: &TempFile, dest: &str) -> Result<bool> {
        let mut s = self.lock();
        s.begin(OpKind::Publish, "link", dest)?;
        let (ino, _) = s.file(temp.path(), "link")?;
        let dir = layout::parent(dest);
        s.need_dir(dir, "link", dest)?;
        if s.occupied(dest) {
            return Ok(false);
        }
        s.names.insert(dest.to_string(), ino);
        s.names.remove(temp.path());
        s.sync(SyncPoint::Dir(dir.to_string()))?;
        s.apply_dir_sync(dir);
        Ok(true)
    }

    fn link(&self, src: &str, dest: &str) -> Result<bool> {
        let mut s = self.lock();
        s.begin(OpKind::Link, "link", src)?;
        check_path(dest)?;
        let (ino, _) = s.file(src, "link")?;
        let dir = layout::parent(dest);
        s.need_dir(dir, "link", dest)?;
        if s.occupied(dest) {
            return Ok(false);
        }
        s.names.insert(dest.to_string(), ino);
        s.sync(SyncPoint::Dir(dir.to_string()))?;
        s.apply_dir_sync(dir);
        Ok(true)
    }

    fn replace(&self, dest: &str, bytes: &[u8]) -> Result<()> {
        let mut s = self.lock();
        s.begin(OpKind::Replace, "rename into", dest)?;
        let temp = s.write_temp("replace", bytes)?;
        let dir = layout::parent(dest);
        let blocked = s.need_dir(dir, "rename into", dest).and_then(|()| {
            if s.dirs.contains_key(dest) {
                Err(s.err(
                    "rename into",
                    dest,
                    io_error(io::ErrorKind::IsADirectory, "a directory is in the way"),
                ))
            } else {
                Ok(())
            }
        });
        if let Err(e) = blocked {
            // The rename failed: the temporary goes, as the local backend removes it.
            s.names.remove(temp.path());
            s.prune();
            return Err(e);
        }
        let (ino, _) = s.file(temp.path(), "rename into")?;
        s.names.remove(temp.path());
        s.names.insert(dest.to_string(), ino);
        s.prune();
        s.sync(SyncPoint::Dir(dir.to_string()))?;
        s.apply_dir_sync(dir);
        Ok(())
    }

    fn list(&self, dir: &str) -> Result<Vec<DirEntry>> {
        let mut s = self.lock();
        s.begin(OpKind::List, "list", dir)?;
        if !s.dirs.contains_key(dir) {
            let kind = if s.names.contains_key(dir) {
                io::ErrorKind::NotADirectory
            } else {
                io::ErrorKind::NotFound
            };
            return Err(s.err("list", dir, io_error(kind, "no such directory")));
        }
        let children: BTreeSet<&String> = s
            .names
            .keys()
            .chain(s.dirs.keys())
            .filter(|p| !p.is_empty() && layout::parent(p) == dir)
            .collect();
        Ok(children
            .into_iter()
            .filter_map(|p| {
                Some(DirEntry {
                    name: layout::file_name(p).to_string(),
                    meta: s.meta(p)?,
                })
            })
            .collect())
    }

    fn remove(&self, path: &str) -> Result<()> {
        let mut s = self.lock();
        s.begin(OpKind::Remove, "remove", path)?;
        s.file(path, "remove")?;
        s.names.remove(path);
        s.prune();
        let dir = layout::parent(path);
        s.sync(SyncPoint::Dir(dir.to_string()))?;
        s.apply_dir_sync(dir);
        Ok(())
    }

    fn discard_temp(&self, temp: &TempFile) {
        let mut s = self.lock();
        if s.crashed.is_none() && s.names.remove(temp.path()).is_some() {
            s.prune();
        }
    }

    fn stat(&self, path: &str) -> Result<Option<Metadata>> {
        let mut s = self.lock();
        s.begin(OpKind::Stat, "stat", path)?;
        Ok(s.meta(path))
    }

    fn create_dir(&self, dir: &str) -> Result<()> {
        let mut s = self.lock();
        s.begin(OpKind::CreateDir, "create directory", dir)?;
        let mut prefix = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            prefix = layout::join(&prefix, part);
            if s.names.contains_key(&prefix) {
                return Err(s.err(
                    "create directory",
                    dir,
                    io_error(io::ErrorKind::AlreadyExists, "a file is in the way"),
                ));
            }
            s.dirs.entry(prefix.clone()).or_insert_with(SystemTime::now);
        }
        Ok(())
    }

    fn remove_dir(&self, dir: &str) -> Result<()> {
        let mut s = self.lock();
        s.begin(OpKind::RemoveDir, "remove", dir)?;
        let fail = |s: &State, kind, msg: &str| Err(s.err("remove", dir, io_error(kind, msg)));
        if dir.is_empty() {
            return fail(
                &s,
                io::ErrorKind::InvalidInput,
                "the root cannot be removed",
            );
        }
        if !s.dirs.contains_key(dir) {
            return fail(&s, io::ErrorKind::NotFound, "no such directory");
        }
        let busy = s
            .names
            .keys()
            .chain(s.dirs.keys())
            .any(|p| layout::parent(p) == dir && p != dir);
        if busy {
            return fail(&s, io::ErrorKind::DirectoryNotEmpty, "directory not empty");
        }
        s.dirs.remove(dir);
        Ok(())
    }

    fn available_space(&self) -> Result<u64> {
        let mut s = self.lock();
        s.begin(OpKind::AvailableSpace, "free space of", "")?;
        Ok(s.capacity
            .map_or(u64::MAX, |cap| cap.saturating_sub(s.used())))
    }

    fn local_root(&self) -> Option<&Path> {
        None
    }

    fn location(&self, path: &str) -> PathBuf {
        self.lock().location(path)
    }
}

/// A streaming temporary of [`MemoryStorage`].
struct MemoryTemp {
    storage: MemoryStorage,
    inode: u64,
    temp: TempFile,
    pos: u64,
    finished: bool,
}

impl Write for MemoryTemp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.storage.lock();
        let path = self.temp.path();
        s.begin(OpKind::Write, "write", path).map_err(into_io)?;
        s.write_at(self.inode, self.pos, buf, path)
            .map_err(into_io)?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for MemoryTemp {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let len = {
            let s = self.storage.lock();
            s.inodes.get(&self.inode).map_or(0, |n| n.data.len() as u64)
        };
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io_error(io::ErrorKind::InvalidInput, "seek to a negative position"))?;
        Ok(self.pos)
    }
}

impl TempWrite for MemoryTemp {
    fn temp(&self) -> &TempFile {
        &self.temp
    }

    fn finish(mut self: Box<Self>) -> Result<TempFile> {
        {
            let mut s = self.storage.lock();
            s.sync(SyncPoint::File(self.temp.path().to_string()))?;
            s.apply_file_sync(self.inode);
        }
        self.finished = true;
        Ok(self.temp.clone())
    }
}

impl Drop for MemoryTemp {
    /// Dropped before `finish` succeeded (a failed segment write), the temporary's name is
    /// removed, as the local backend removes the file.
    fn drop(&mut self) {
        let mut s = self.storage.lock();
        s.writing.remove(&self.inode);
        if !self.finished && s.crashed.is_none() {
            let path = self.temp.path().to_string();
            if s.names.get(&path) == Some(&self.inode) {
                s.names.remove(&path);
            }
        }
        s.prune();
    }
}
