//! [`RemoteStorage`]: a published store read from object storage as a [`Storage`], so the
//! engine's [`Reader`](../../strata_engine/struct.Reader.html) runs on it unchanged. The
//! head object stands in for the HEAD files and the version listings; segment, delta and
//! version files are fetched once into a local cache directory (streamed into a
//! temporary, its length checked, then published create-if-absent, so readers in several
//! processes can share one cache) and mapped from there. Everything that would change the
//! store is refused: a remote store is read-only.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use super::head::{RemoteHead, HEAD_OBJECT, MAX_HEAD_BYTES};
use super::object::{ObjectStorage, Refreshed};
use crate::error::{Result, StorageError};
use crate::layout;
use crate::storage::{check_path, DirEntry, Metadata, Storage, TempFile, TempWrite};
use crate::{BytesWatch, FileBytes, LocalStorage};

/// How a [`RemoteStorage`] behaves.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// How long a head read stays current: a read of a HEAD after this long sends one
    /// conditional GET of the head object (`If-None-Match`). Zero checks on every read.
    pub refresh_after: Duration,
    /// The most bytes the cache keeps for this store: past it, the least recently used
    /// files are removed after each fetch (never the one just fetched). A removed file
    /// that a snapshot has mapped stays readable through the map (the kernel keeps an
    /// unlinked file's pages while they are mapped); a later read fetches it again.
    /// `None`: no limit.
    pub cache_limit: Option<u64>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            refresh_after: Duration::from_secs(1),
            cache_limit: None,
        }
    }
}

/// The default cache directory: `$XDG_CACHE_HOME/strata`, else `~/.cache/strata`, else
/// `strata-cache` in the system's temporary directory.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("strata");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home).join(".cache").join("strata");
    }
    std::env::temp_dir().join("strata-cache")
}

struct HeadState {
    head: RemoteHead,
    etag: Option<String>,
    checked: Instant,
}

/// A published store, read through a local cache.
pub struct RemoteStorage {
    remote: Arc<ObjectStorage>,
    cache: LocalStorage,
    state: RwLock<HeadState>,
    options: RemoteOptions,
    fetched_files: AtomicU64,
    fetched_bytes: AtomicU64,
    /// Cached files this process has mapped, watched: eviction spares those still mapped
    /// (an open snapshot reads them).
    mapped: Mutex<HashMap<String, BytesWatch>>,
}

impl std::fmt::Debug for RemoteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStorage")
            .field("url", &self.remote.url())
            .field("cache", &self.cache.root())
            .finish()
    }
}

fn read_only(op: &'static str, location: String) -> StorageError {
    StorageError::Io {
        op,
        path: PathBuf::from(location),
        source: io::Error::new(
            io::ErrorKind::Unsupported,
            "a store opened from object storage is read-only",
        ),
    }
}

fn bad_head(location: String, detail: String) -> StorageError {
    StorageError::Io {
        op: "read the head object",
        path: PathBuf::from(location),
        source: io::Error::new(io::ErrorKind::InvalidData, detail),
    }
}

fn dir_meta() -> Metadata {
    Metadata {
        len: 0,
        modified: SystemTime::UNIX_EPOCH,
        is_dir: true,
    }
}

/// What a path means in a remote store.
enum Place<'a> {
    /// `""`, `versions` or `versions/<c>`.
    Dir,
    /// `versions/<c>/HEAD`.
    Head(&'a str),
    /// Anything else: an immutable file, fetched into the cache.
    File,
}

fn place(path: &str) -> Place<'_> {
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(""), None, ..) | (Some(layout::VERSIONS), None, ..) => Place::Dir,
        (Some(layout::VERSIONS), Some(_), None, _) => Place::Dir,
        (Some(layout::VERSIONS), Some(c), Some(layout::HEAD), None) => Place::Head(c),
        _ => Place::File,
    }
}

impl RemoteStorage {
    /// Open the store published at `remote`: read its head object, and cache its files
    /// under `cache_dir/<store id>/`. Fails if nothing is published there.
    pub fn open(
        remote: Arc<ObjectStorage>,
        cache_dir: &Path,
        options: RemoteOptions,
    ) -> Result<RemoteStorage> {
        let location = remote.location(HEAD_OBJECT);
        let Some(fetched) = remote.get(HEAD_OBJECT, MAX_HEAD_BYTES as u64)? else {
            return Err(StorageError::Io {
                op: "open a published store at",
                path: PathBuf::from(remote.url()),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "no head object: nothing was published here",
                ),
            });
        };
        let head = RemoteHead::parse(&fetched.bytes).map_err(|e| bad_head(location, e))?;
        crate::layout::check_collection_name(&head.store_id).map_err(|_| {
            bad_head(
                remote.location(HEAD_OBJECT),
                format!("store id {:?} is not a plain name", head.store_id),
            )
        })?;
        let cache = LocalStorage::new(cache_dir.join(&head.store_id))?;
        for dir in [
            layout::TMP,
            layout::SEGMENTS,
            layout::DELTAS,
            layout::VERSIONS,
        ] {
            cache.create_dir(dir)?;
        }
        Ok(RemoteStorage {
            remote,
            cache,
            state: RwLock::new(HeadState {
                head,
                etag: fetched.etag,
                checked: Instant::now(),
            }),
            options,
            fetched_files: AtomicU64::new(0),
            fetched_bytes: AtomicU64::new(0),
            mapped: Mutex::new(HashMap::new()),
        })
    }

    /// The head object as last read.
    pub fn head(&self) -> RemoteHead {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .head
            .clone()
    }

    /// The cache directory of this store.
    pub fn cache_root(&self) -> &Path {
        self.cache.root()
    }

    /// Files and bytes fetched from object storage so far (cache misses).
    pub fn fetched(&self) -> (u64, u64) {
        (
            self.fetched_files.load(Ordering::Relaxed),
            self.fetched_bytes.load(Ordering::Relaxed),
        )
    }

    /// Check the head object now (one conditional GET); `true` if it changed. A head
    /// published by another store (a different store id) is an error: the prefix was
    /// overwritten.
    pub fn refresh(&self) -> Result<bool> {
        let etag = self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .etag
            .clone();
        let location = self.remote.location(HEAD_OBJECT);
        let refreshed =
            self.remote
                .get_if_changed(HEAD_OBJECT, etag.as_deref(), MAX_HEAD_BYTES as u64)?;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.checked = Instant::now();
        match refreshed {
            Refreshed::Unchanged => Ok(false),
            Refreshed::Missing => Err(bad_head(location, "the head object is gone".into())),
            Refreshed::Changed(f) => {
                let head =
                    RemoteHead::parse(&f.bytes).map_err(|e| bad_head(location.clone(), e))?;
                if head.store_id != state.head.store_id {
                    return Err(bad_head(
                        location,
                        format!(
                            "published by store {}, not by store {} that was opened",
                            head.store_id, state.head.store_id
                        ),
                    ));
                }
                let changed = head != state.head;
                state.head = head;
                state.etag = f.etag;
                Ok(changed)
            }
        }
    }

    fn current_head(&self) -> Result<RemoteHead> {
        let stale = {
            let s = self.state.read().unwrap_or_else(|e| e.into_inner());
            s.checked.elapsed() >= self.options.refresh_after
        };
        if stale {
            self.refresh()?;
        }
        Ok(self.head())
    }

    /// Make sure `path` is in the cache, fetching it if not; a hit marks the file used.
    fn fetch(&self, path: &str) -> Result<()> {
        check_path(path)?;
        if self.cache.stat(path)?.is_some() {
            if self.options.cache_limit.is_some() {
                self.touch(path);
            }
            return Ok(());
        }
        self.cache.create_dir(layout::parent(path))?;
        let mut temp = self.cache.create_temp("fetch")?;
        let n = match self.remote.download(path, &mut temp) {
            Ok(n) => n,
            Err(e) => {
                let t = temp.temp().clone();
                drop(temp);
                self.cache.discard_temp(&t);
                return Err(e);
            }
        };
        let temp = temp.finish()?;
        if !self.cache.publish(&temp, path)? {
            // Another reader sharing the cache fetched it meanwhile.
            self.cache.discard_temp(&temp);
        }
        self.fetched_files.fetch_add(1, Ordering::Relaxed);
        self.fetched_bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(limit) = self.options.cache_limit {
            self.evict(limit, path)?;
        }
        Ok(())
    }

    /// Fetch `path` if needed, then `f` on the cached file; if a reader sharing the cache
    /// evicted it in between, fetch it again (a few times).
    fn with_cached<T>(&self, path: &str, f: impl Fn(&str) -> Result<T>) -> Result<T> {
        let mut tries = 0;
        loop {
            self.fetch(path)?;
            match f(path) {
                Err(e) if e.is_not_found() && tries < 3 => tries += 1,
                r => return r,
            }
        }
    }

    /// The absolute path of a cached file.
    fn cached(&self, path: &str) -> PathBuf {
        path.split('/')
            .fold(self.cache.root().to_path_buf(), |p, c| p.join(c))
    }

    /// Mark a cached file used now (its modification time), best effort: the cache's
    /// recency order is all it affects.
    fn touch(&self, path: &str) {
        let _ = std::fs::File::options()
            .append(true)
            .open(self.cached(path))
            .and_then(|f| f.set_modified(SystemTime::now()));
    }

    /// Remove the least recently used cached files until at most `limit` bytes remain,
    /// sparing `keep` and the files this process still maps (other processes sharing the
    /// cache may remove those: a mapping outlives its file's name).
    fn evict(&self, limit: u64, keep: &str) -> Result<()> {
        let in_use: HashSet<String> = {
            let mut mapped = self.mapped.lock().unwrap_or_else(|e| e.into_inner());
            mapped.retain(|_, w| w.in_use());
            mapped.keys().cloned().collect()
        };
        let mut files = Vec::new();
        let mut dirs = vec![
            layout::SEGMENTS.to_string(),
            layout::DELTAS.to_string(),
            layout::VERSIONS.to_string(),
        ];
        while let Some(dir) = dirs.pop() {
            for e in self.cache.list(&dir)? {
                let path = layout::join(&dir, &e.name);
                if e.meta.is_dir {
                    dirs.push(path);
                } else {
                    files.push((e.meta.modified, e.meta.len, path));
                }
            }
        }
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= limit {
                break;
            }
            if path == keep || in_use.contains(&path) {
                continue;
            }
            match self.cache.remove(&path) {
                Ok(()) => total -= len,
                // Another reader sharing the cache evicted it first.
                Err(e) if e.is_not_found() => total -= len,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn collection_entries(&self, collection: &str) -> Result<Vec<DirEntry>> {
        let head = self.current_head()?;
        let Some(c) = head.collections.get(collection) else {
            return Err(StorageError::Io {
                op: "list",
                path: self.location(&layout::versions(collection)),
                source: io::ErrorKind::NotFound.into(),
            });
        };
        let file = Metadata {
            len: 0,
            modified: SystemTime::UNIX_EPOCH,
            is_dir: false,
        };
        let mut out: Vec<DirEntry> = c
            .versions
            .iter()
            .map(|v| DirEntry {
                name: layout::version_name(*v),
                meta: file,
            })
            .collect();
        out.push(DirEntry {
            name: layout::HEAD.to_string(),
            meta: file,
        });
        Ok(out)
    }
}

impl Storage for RemoteStorage {
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        match place(path) {
            Place::Head(c) => match self.current_head()?.collections.get(c) {
                Some(c) => Ok(format!("{}\n", c.head).into_bytes()),
                None => Err(StorageError::Io {
                    op: "read",
                    path: self.location(path),
                    source: io::ErrorKind::NotFound.into(),
                }),
            },
            Place::Dir => Err(StorageError::Io {
                op: "read",
                path: self.location(path),
                source: io::Error::new(io::ErrorKind::IsADirectory, "a directory"),
            }),
            Place::File => self.with_cached(path, |p| self.cache.read(p)),
        }
    }

    fn map(&self, path: &str) -> Result<FileBytes> {
        let bytes = self.with_cached(path, |p| self.cache.map(p))?;
        self.mapped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_string(), bytes.watch());
        Ok(bytes)
    }

    fn read_range(&self, path: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.with_cached(path, |p| self.cache.read_range(p, range.clone()))
    }

    fn write_temp(&self, _hint: &str, _bytes: &[u8]) -> Result<TempFile> {
        Err(read_only("write", self.remote.location(layout::TMP)))
    }

    fn create_temp(&self, _hint: &str) -> Result<Box<dyn TempWrite>> {
        Err(read_only("create", self.remote.location(layout::TMP)))
    }

    fn publish(&self, _temp: &TempFile, dest: &str) -> Result<bool> {
        Err(read_only("publish", self.remote.location(dest)))
    }

    fn link(&self, _src: &str, dest: &str) -> Result<bool> {
        Err(read_only("link", self.remote.location(dest)))
    }

    fn replace(&self, dest: &str, _bytes: &[u8]) -> Result<()> {
        Err(read_only("replace", self.remote.location(dest)))
    }

    fn list(&self, dir: &str) -> Result<Vec<DirEntry>> {
        check_path(dir)?;
        if dir == layout::VERSIONS {
            return Ok(self
                .current_head()?
                .collections
                .keys()
                .map(|name| DirEntry {
                    name: name.clone(),
                    meta: dir_meta(),
                })
                .collect());
        }
        if let Some(c) = dir.strip_prefix("versions/").filter(|c| !c.contains('/')) {
            return self.collection_entries(c);
        }
        if dir.is_empty() {
            return Ok([layout::DELTAS, layout::SEGMENTS, layout::VERSIONS]
                .into_iter()
                .map(|name| DirEntry {
                    name: name.to_string(),
                    meta: dir_meta(),
                })
                .collect());
        }
        let prefix = format!("{dir}/");
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for listed in self.remote.list(dir)? {
            let len = listed.size;
            let Some(rest) = listed.path.strip_prefix(&prefix) else {
                continue;
            };
            let (name, is_dir) = match rest.split_once('/') {
                Some((d, _)) => (d, true),
                None => (rest, false),
            };
            if seen.insert(name.to_string()) {
                out.push(DirEntry {
                    name: name.to_string(),
                    meta: Metadata {
                        len: if is_dir { 0 } else { len },
                        modified: SystemTime::UNIX_EPOCH,
                        is_dir,
                    },
                });
            }
        }
        Ok(out)
    }

    fn remove(&self, path: &str) -> Result<()> {
        Err(read_only("remove", self.remote.location(path)))
    }

    fn discard_temp(&self, _temp: &TempFile) {}

    fn stat(&self, path: &str) -> Result<Option<Metadata>> {
        check_path(path)?;
        match place(path) {
            Place::Dir => {
                let known = match path.strip_prefix("versions/") {
                    Some(c) => self.current_head()?.collections.contains_key(c),
                    None => true,
                };
                Ok(known.then(dir_meta))
            }
            Place::Head(c) => {
                Ok(self
                    .current_head()?
                    .collections
                    .contains_key(c)
                    .then_some(Metadata {
                        len: 0,
                        modified: SystemTime::UNIX_EPOCH,
                        is_dir: false,
                    }))
            }
            Place::File => {
                if let Some(m) = self.cache.stat(path)? {
                    return Ok(Some(m));
                }
                let name = layout::file_name(path);
                Ok(self
                    .list(layout::parent(path))?
                    .into_iter()
                    .find(|e| e.name == name)
                    .map(|e| e.meta))
            }
        }
    }

    fn create_dir(&self, dir: &str) -> Result<()> {
        Err(read_only("create directory", self.remote.location(dir)))
    }

    fn remove_dir(&self, dir: &str) -> Result<()> {
        Err(read_only("remove directory", self.remote.location(dir)))
    }

    fn available_space(&self) -> Result<u64> {
        Ok(0)
    }

    fn local_root(&self) -> Option<&Path> {
        None
    }

    fn location(&self, path: &str) -> PathBuf {
        PathBuf::from(self.remote.location(path))
    }
}
