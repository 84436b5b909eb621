//! `LocalStorage`: a store in a directory of the local filesystem (or NFS/EFS). Durable
//! publication: write to a temporary file, fsync, link or rename into place, fsync the
//! directory. This is the only code in strata that calls `std::fs`.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::bytes::FileBytes;
use crate::error::{Result, StorageError};
use crate::failpoint;
use crate::layout;
use crate::storage::{check_path, check_range, DirEntry, Metadata, Storage, TempFile, TempWrite};

/// A store in a local directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// The store at `root`, creating the directory (and its parents) if missing.
    pub fn new(root: impl Into<PathBuf>) -> Result<LocalStorage> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(StorageError::io("create directory", &root))?;
        Ok(LocalStorage { root })
    }

    /// The store at `root`, without touching the filesystem: for readers, which must not
    /// create anything (operations fail if `root` does not exist).
    pub fn at(root: impl Into<PathBuf>) -> LocalStorage {
        LocalStorage { root: root.into() }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a checked relative path.
    fn resolve(&self, path: &str) -> Result<PathBuf> {
        check_path(path)?;
        Ok(path
            .split('/')
            .filter(|c| !c.is_empty())
            .fold(self.root.clone(), |p, c| p.join(c)))
    }

    /// The directory holding `path`, absolute.
    fn parent_of(&self, path: &str) -> Result<PathBuf> {
        self.resolve(layout::parent(path))
    }
}

/// fsync a directory so that entries created, renamed or removed in it are durable.
fn sync_dir(dir: &Path) -> Result<()> {
    failpoint!("storage::fsync_dir", dir.to_path_buf());
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("fsync directory", dir))
}

/// Rename `from` over `to` (a failpoint ahead of it under the `failpoints` feature).
fn rename_into(from: &Path, to: &Path) -> Result<()> {
    failpoint!("storage::rename", to.to_path_buf());
    fs::rename(from, to).map_err(StorageError::io("rename into", to))
}

fn metadata_of(meta: &fs::Metadata, path: &Path) -> Result<Metadata> {
    Ok(Metadata {
        len: meta.len(),
        modified: meta.modified().map_err(StorageError::io("stat", path))?,
        is_dir: meta.is_dir(),
    })
}

impl Storage for LocalStorage {
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let p = self.resolve(path)?;
        fs::read(&p).map_err(StorageError::io("read", &p))
    }

    fn map(&self, path: &str) -> Result<FileBytes> {
        let p = self.resolve(path)?;
        let file = File::open(&p).map_err(StorageError::io("open", &p))?;
        let len = file.metadata().map_err(StorageError::io("stat", &p))?.len();
        if len == 0 {
            // An empty file cannot be mapped; there is nothing to share either.
            return Ok(FileBytes::shared(Default::default()));
        }
        // SAFETY: `map` is only called for immutable files (the trait's contract): strata
        // never writes, truncates or renames over a published delta, segment or version
        // file (`publish` and `link` refuse to replace), and GC unlinks a file only after
        // no retained version or live snapshot references it, which keeps the mapping valid
        // on local filesystems (the inode lives while mapped) and on NFS (silly-rename).
        // The map is read-only and owned by the returned handle; every slice handed out
        // borrows the handle, so no slice outlives the map. If another process truncated
        // the file anyway (tools inspecting a foreign file), the OS would raise SIGBUS —
        // the exposure every reader of a mapped file has. Bytes are only read through
        // bounds-checked decoders. Alignment: the map starts on a page boundary.
        let map = unsafe { Mmap::map(&file) }.map_err(StorageError::io("map", &p))?;
        Ok(FileBytes::mapped(map))
    }

    fn read_range(&self, path: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let p = self.resolve(path)?;
        let mut file = File::open(&p).map_err(StorageError::io("open", &p))?;
        let len = file.metadata().map_err(StorageError::io("stat", &p))?.len();
        let (start, end) = check_range(&range, len).map_err(StorageError::io("read", &p))?;
        let mut buf = vec![0; end - start];
        file.seek(SeekFrom::Start(range.start))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(StorageError::io("read", &p))?;
        Ok(buf)
    }

    fn write_temp(&self, hint: &str, bytes: &[u8]) -> Result<TempFile> {
        let temp = layout::temp_file(hint);
        let path = self.resolve(&temp)?;
        let mut f = File::create(&path).map_err(StorageError::io("create", &path))?;
        let written = write_all_checked(&mut f, bytes, &path).and_then(|()| {
            failpoint!("storage::fsync", path.clone());
            f.sync_all().map_err(StorageError::io("fsync", &path))
        });
        if let Err(e) = written {
            // A failed write removes its own temporary: on a full disk the partial bytes
            // would otherwise keep the space taken until GC's grace period ends.
            drop(f);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(TempFile::new(temp))
    }

    fn create_temp(&self, hint: &str) -> Result<Box<dyn TempWrite>> {
        let temp = TempFile::new(layout::temp_file(hint));
        let path = self.resolve(temp.path())?;
        let file = File::create(&path).map_err(StorageError::io("create", &path))?;
        Ok(Box::new(LocalTemp {
            file,
            path,
            temp,
            finished: false,
        }))
    }

    fn publish(&self, temp: &TempFile, dest: &str) -> Result<bool> {
        let from = self.resolve(temp.path())?;
        let to = self.resolve(dest)?;
        failpoint!("storage::link", to.clone());
        match fs::hard_link(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(StorageError::io("link", &to)(e)),
        }
        fs::remove_file(&from).map_err(StorageError::io("remove", &from))?;
        sync_dir(&self.parent_of(dest)?)?;
        Ok(true)
    }

    fn link(&self, src: &str, dest: &str) -> Result<bool> {
        let from = self.resolve(src)?;
        let to = self.resolve(dest)?;
        failpoint!("storage::link", to.clone());
        match fs::hard_link(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(StorageError::io("link", &from)(e)),
        }
        sync_dir(&self.parent_of(dest)?)?;
        Ok(true)
    }

    fn replace(&self, dest: &str, bytes: &[u8]) -> Result<()> {
        let to = self.resolve(dest)?;
        let temp = self.write_temp("replace", bytes)?;
        let from = self.resolve(temp.path())?;
        if let Err(e) = rename_into(&from, &to) {
            let _ = fs::remove_file(&from);
            return Err(e);
        }
        sync_dir(&self.parent_of(dest)?)
    }

    fn list(&self, dir: &str) -> Result<Vec<DirEntry>> {
        let d = self.resolve(dir)?;
        let mut out = Vec::new();
        for entry in fs::read_dir(&d).map_err(StorageError::io("list", &d))? {
            let entry = entry.map_err(StorageError::io("list", &d))?;
            let path = entry.path();
            let meta = match fs::metadata(&path) {
                Ok(m) => metadata_of(&m, &path)?,
                // Removed since the directory was read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::io("stat", &path)(e)),
            };
            out.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                meta,
            });
        }
        Ok(out)
    }

    fn remove(&self, path: &str) -> Result<()> {
        let p = self.resolve(path)?;
        failpoint!("storage::remove", p.clone());
        fs::remove_file(&p).map_err(StorageError::io("remove", &p))?;
        sync_dir(&self.parent_of(path)?)
    }

    fn discard_temp(&self, temp: &TempFile) {
        if let Ok(p) = self.resolve(temp.path()) {
            let _ = fs::remove_file(p);
        }
    }

    fn stat(&self, path: &str) -> Result<Option<Metadata>> {
        let p = self.resolve(path)?;
        match fs::metadata(&p) {
            Ok(m) => metadata_of(&m, &p).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io("stat", &p)(e)),
        }
    }

    fn create_dir(&self, dir: &str) -> Result<()> {
        let d = self.resolve(dir)?;
        // The directories about to be created, deepest first: each one's parent is fsynced
        // after, so that the new entries survive a power loss.
        let missing: Vec<PathBuf> = d
            .ancestors()
            .take_while(|a| *a != self.root && !a.exists())
            .map(Path::to_path_buf)
            .collect();
        fs::create_dir_all(&d).map_err(StorageError::io("create directory", &d))?;
        for created in missing.iter().rev() {
            if let Some(parent) = created.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    fn remove_dir(&self, dir: &str) -> Result<()> {
        let d = self.resolve(dir)?;
        fs::remove_dir(&d).map_err(StorageError::io("remove", &d))
    }

    fn available_space(&self) -> Result<u64> {
        fs4::available_space(&self.root).map_err(StorageError::io("free space of", &self.root))
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn location(&self, path: &str) -> PathBuf {
        self.resolve(path).unwrap_or_else(|_| self.root.join(path))
    }
}

/// Write all of `bytes`; the `storage::write` failpoint can make it fail (`return(eio)`,
/// `return(enospc)`) or write half the bytes and then fail as a full disk does
/// (`return(short)`).
fn write_all_checked(f: &mut File, bytes: &[u8], path: &Path) -> Result<()> {
    #[cfg(feature = "failpoints")]
    fail::fail_point!("storage::write", |arg: Option<String>| {
        if arg.as_deref() == Some("short") {
            let _ = f.write_all(&bytes[..bytes.len() / 2]);
            return Err(StorageError::io("write", path)(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected short write: half the bytes, then no space left on device",
            )));
        }
        Err(crate::failpoints::injected(
            "storage::write",
            path.to_path_buf(),
            arg.as_deref(),
        ))
    });
    f.write_all(bytes).map_err(StorageError::io("write", path))
}

/// A local temporary file being written. Dropped before [`TempWrite::finish`] succeeded
/// (a failed segment write), it removes its file.
struct LocalTemp {
    file: File,
    path: PathBuf,
    temp: TempFile,
    finished: bool,
}

impl Drop for LocalTemp {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Write for LocalTemp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // `return(short)`: accept half the buffer, as a write(2) may; callers loop.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("storage::temp_write", |arg: Option<String>| {
            match arg.as_deref() {
                Some("short") if buf.len() > 1 => self.file.write(&buf[..buf.len() / 2]),
                _ => Err(crate::failpoints::injected(
                    "storage::temp_write",
                    self.path.clone(),
                    arg.as_deref(),
                )
                .into_io()),
            }
        });
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for LocalTemp {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl TempWrite for LocalTemp {
    fn temp(&self) -> &TempFile {
        &self.temp
    }

    fn finish(mut self: Box<Self>) -> Result<TempFile> {
        // On failure `self` drops unfinished and removes the file.
        self.file
            .flush()
            .map_err(StorageError::io("write", &self.path))?;
        failpoint!("storage::fsync", self.path.clone());
        self.file
            .sync_all()
            .map_err(StorageError::io("fsync", &self.path))?;
        self.finished = true;
        Ok(self.temp.clone())
    }
}
