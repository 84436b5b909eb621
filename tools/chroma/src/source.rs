//! Where a persist directory's files come from: a directory on disk (opened read-only,
//! read with positioned reads, never written) or files held in memory (a tarball's members,
//! or objects fetched from a prefix). [`Blob`] is one file of either kind.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{ChromaError, Result};
use crate::tarball::Files;

/// One file's bytes: in memory, or an open file read on demand.
#[derive(Debug)]
pub enum Blob<'a> {
    /// Bytes in memory.
    Memory(&'a [u8]),
    /// A file opened read-only, and its length when opened.
    File(File, u64),
}

impl Blob<'_> {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Blob::Memory(b) => b.len() as u64,
            Blob::File(_, len) => *len,
        }
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill `buf` from `offset`; reading past the end is an error naming `name`.
    pub fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len()) {
            return Err(ChromaError::segment(
                name,
                format!(
                    "read of {} bytes at offset {offset} past the end ({} bytes)",
                    buf.len(),
                    self.len()
                ),
            ));
        }
        match self {
            Blob::Memory(b) => {
                buf.copy_from_slice(&b[offset as usize..offset as usize + buf.len()]);
                Ok(())
            }
            Blob::File(f, _) => f
                .read_exact_at(buf, offset)
                .map_err(|source| ChromaError::Io {
                    file: name.to_string(),
                    source,
                }),
        }
    }
}

/// The files of one persist directory.
#[derive(Debug)]
pub(crate) enum Source {
    /// A directory on disk.
    Dir(PathBuf),
    /// Files in memory, by relative path.
    Memory(Files),
}

impl Source {
    /// How a relative path is shown in errors.
    pub(crate) fn show(&self, rel: &str) -> String {
        match self {
            Source::Dir(d) => d.join(rel).display().to_string(),
            Source::Memory(_) => rel.to_string(),
        }
    }

    /// The file at `rel`, or `None` when it does not exist.
    pub(crate) fn blob(&self, rel: &str) -> Result<Option<Blob<'_>>> {
        match self {
            Source::Memory(files) => Ok(files.get(rel).map(|b| Blob::Memory(b))),
            Source::Dir(d) => {
                let path = d.join(rel);
                let io = |source| ChromaError::Io {
                    file: path.display().to_string(),
                    source,
                };
                match File::open(&path) {
                    Ok(f) => {
                        let meta = f.metadata().map_err(io)?;
                        if !meta.is_file() {
                            return Err(ChromaError::segment(
                                path.display().to_string(),
                                "not a regular file",
                            ));
                        }
                        Ok(Some(Blob::File(f, meta.len())))
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io(e)),
                }
            }
        }
    }

    /// The whole file at `rel` if it exists, refused when longer than `limit`.
    pub(crate) fn read_small(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(blob) = self.blob(rel)? else {
            return Ok(None);
        };
        if blob.len() > limit {
            return Err(ChromaError::Limit {
                file: self.show(rel),
                what: "the file size",
                actual: blob.len(),
                limit,
            });
        }
        let mut buf = match &blob {
            Blob::Memory(b) => return Ok(Some(b.to_vec())),
            Blob::File(..) => Vec::new(),
        };
        if let Blob::File(f, _) = blob {
            f.take(limit)
                .read_to_end(&mut buf)
                .map_err(|source| ChromaError::Io {
                    file: self.show(rel),
                    source,
                })?;
        }
        Ok(Some(buf))
    }

    /// Whether a file exists at `rel`.
    pub(crate) fn exists(&self, rel: &str) -> bool {
        match self {
            Source::Memory(files) => files.contains_key(rel),
            Source::Dir(d) => Path::new(d).join(rel).exists(),
        }
    }
}
